//! Go-style flags (CLI_CONFIG.md §1): Litestream's users write `-config
//! PATH`, `-o out.db` and `-txid=…` with one dash. clap wants two for long
//! names, so one-dash words are rewritten before parsing. `-h` and `-help`
//! mean help, as in Go.

use std::ffi::OsString;

/// Rewrites `-name[=value]` to `--name[=value]`; leaves `--…`, `-`, and
/// anything after a bare `--` alone.
pub(crate) fn normalize(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut passthrough = false;
    for (i, arg) in args.into_iter().enumerate() {
        if i == 0 || passthrough {
            out.push(arg);
            continue;
        }
        let Some(s) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if s == "--" {
            passthrough = true;
            out.push(arg);
        } else if matches!(s, "-h" | "-help" | "--help" | "--h") {
            out.push("--help".into());
        } else if s.len() > 1 && s.starts_with('-') && !s.starts_with("--") && !is_number(&s[1..]) {
            out.push(format!("-{s}").into());
        } else {
            out.push(arg);
        }
    }
    out
}

fn is_number(s: &str) -> bool {
    s.parse::<f64>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(args: &[&str]) -> Vec<String> {
        normalize(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn one_dash_long_flags_become_two() {
        assert_eq!(
            n(&[
                "freshet",
                "restore",
                "-o",
                "out.db",
                "-txid=0000000000000002",
                "--force",
                "-",
                "db"
            ]),
            [
                "freshet",
                "restore",
                "--o",
                "out.db",
                "--txid=0000000000000002",
                "--force",
                "-",
                "db"
            ]
        );
        assert_eq!(n(&["freshet", "-h"]), ["freshet", "--help"]);
        assert_eq!(
            n(&["freshet", "replicate", "-help"]),
            ["freshet", "replicate", "--help"]
        );
        assert_eq!(n(&["freshet", "x", "-1"]), ["freshet", "x", "-1"]);
        assert_eq!(n(&["freshet", "--", "-exec"]), ["freshet", "--", "-exec"]);
    }
}
