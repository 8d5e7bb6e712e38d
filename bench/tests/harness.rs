#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A tiny run of every workload against freshet (the debug binary of this
//! workspace) and the real Litestream on the file backend: the harness's
//! own verification must pass, and the report, JSON and plots must exist
//! with sane values. Timings are not asserted.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The `freshet` binary of the same build as the bench binary.
fn freshet_bin() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_freshet-bench"));
    let p = bench.with_file_name("freshet");
    assert!(
        p.is_file(),
        "{} is missing: build it first (`cargo build -p freshet`; the workspace test run does)",
        p.display()
    );
    p
}

#[test]
fn every_workload_runs_and_verifies_against_both_tools() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let output = Command::new(env!("CARGO_BIN_EXE_freshet-bench"))
        .arg("--freshet")
        .arg(freshet_bin())
        .args(["--backend", "file"])
        .args([
            "--workloads",
            "snapshot,restore,write-max,write-steady,idle,many-dbs",
        ])
        .args(["--size", "2MB", "--duration", "1s"])
        .args(["--rows-per-tx", "2", "--row-bytes", "100"])
        .args(["--tx-per-sec", "50", "--dbs", "2", "--db-tx-per-sec", "5"])
        .args(["--monitor-interval", "100ms", "--sync-interval", "100ms"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "freshet-bench failed ({}):\n{stderr}",
        output.status
    );

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for w in [
        "snapshot",
        "restore",
        "write-max",
        "write-steady",
        "idle",
        "many-dbs",
    ] {
        assert!(
            report.contains(&format!("## {w} — file backend")),
            "no {w} section in the report:\n{report}"
        );
    }
    assert!(!report.contains("FAILED"), "{report}");

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert!(json["machine"]["cores"].as_u64().unwrap() >= 1);
    assert_eq!(json["versions"]["litestream"], "0.5.17");
    let runs = json["runs"].as_array().unwrap();
    // 6 workloads × 2 tools, plus a baseline for each of the 3 write workloads.
    assert_eq!(runs.len(), 15, "{runs:#?}");
    for r in runs {
        let what = format!("{} / {}", r["workload"], r["tool"]);
        assert_eq!(r["error"], Value::Null, "{what}: {r:#}");
        assert_eq!(r["verified"], true, "{what}: {r:#}");
        if r["tool"] == "baseline" {
            assert!(r["tx_count"].as_u64().unwrap() > 0, "{what}");
            continue;
        }
        assert!(
            r["peak_rss_bytes"].as_u64().unwrap() > 1 << 20,
            "{what}: {r:#}"
        );
        assert!(r["cpu_secs"].as_f64().unwrap() >= 0.0, "{what}");
        let detail = r["verify_detail"].as_str().unwrap();
        assert!(
            detail.contains("identical, integrity ok"),
            "{what}: {detail}"
        );
        match r["workload"].as_str().unwrap() {
            "snapshot" => {
                // The whole database went to the replica.
                assert!(
                    r["storage_bytes"].as_u64().unwrap() > 500_000,
                    "{what}: {r:#}"
                );
                assert!(r["reference_cp_secs"].as_f64().is_some(), "{what}");
            }
            "write-max" | "write-steady" | "many-dbs" => {
                assert!(r["tx_count"].as_u64().unwrap() > 0, "{what}");
                assert_eq!(r["lag_missing"], 0, "{what}: {r:#}");
                let (p50, max) = (r["lag_p50_ms"].as_f64(), r["lag_max_ms"].as_f64());
                assert!(
                    p50.unwrap() >= 0.0 && max.unwrap() >= p50.unwrap(),
                    "{what}"
                );
                assert!(r["peak_wal_bytes"].as_u64().unwrap() > 0, "{what}");
                assert!(r["storage_requests"].as_u64().unwrap() > 0, "{what}");
            }
            _ => {}
        }
    }
    for plot in [
        "throughput.svg",
        "lag-write-max-file.svg",
        "wal-many-dbs-file.svg",
    ] {
        let svg = std::fs::read_to_string(out.join("plots").join(plot)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("freshet"), "{plot}");
    }
}

/// The S3 path: s3s-fs started by the bench, the counting proxy in front of
/// it. Requests must be counted by kind and every run must verify.
#[test]
fn s3_backend_counts_requests_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let output = Command::new(env!("CARGO_BIN_EXE_freshet-bench"))
        .arg("--freshet")
        .arg(freshet_bin())
        .args(["--backend", "s3", "--workloads", "snapshot,write-steady"])
        .args(["--size", "2MB", "--duration", "1s", "--tx-per-sec", "50"])
        .args(["--monitor-interval", "100ms", "--sync-interval", "100ms"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "freshet-bench failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 5, "{runs:#?}");
    for r in runs.iter().filter(|r| r["tool"] != "baseline") {
        let what = format!("{} / {}", r["workload"], r["tool"]);
        assert_eq!(r["error"], Value::Null, "{what}: {r:#}");
        assert_eq!(r["verified"], true, "{what}: {r:#}");
        // Every LTX file is uploaded with a PUT (or multipart parts).
        let kinds = r["storage_by_kind"].as_object().unwrap();
        let puts = ["PUT", "PUT part"]
            .iter()
            .filter_map(|k| kinds.get(*k).and_then(Value::as_u64))
            .sum::<u64>();
        assert!(puts >= 1, "{what}: {kinds:?}");
        let total: u64 = kinds.values().filter_map(Value::as_u64).sum();
        assert_eq!(total, r["storage_requests"].as_u64().unwrap(), "{what}");
        assert!(
            r["storage_bytes"].as_u64().unwrap() > 100_000,
            "{what}: {r:#}"
        );
    }
}
