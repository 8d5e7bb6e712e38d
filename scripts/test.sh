#!/usr/bin/env bash
# Runs the whole test suite, as CI does: set-up, formatting, lints, the doc
# tests, the I/O-path tests with FRESHET_IO=sync (positional I/O instead of
# io_uring), then every test of the workspace with nextest (including the
# interop tests against the real Litestream). Exits non-zero on the first
# failure.
# nextest runs last so that its summary is the closing line.
#
#   bash scripts/test.sh
#
# Environment:
#   CARGO_BUILD_JOBS   parallel compile jobs (default 2)
#   FRESHET_SKIP_BIG=1 skip the > 1 GiB database tests (ignored when CI is set)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd_repo_root

started=$SECONDS
step() {
    printf '\n==> %s  (%ds)\n' "$*" "$((SECONDS - started))" >&2
}

step "set-up"
bash scripts/setup.sh
LITESTREAM_BIN=$(litestream_bin) || die "no litestream binary found after set-up"
export LITESTREAM_BIN
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --doc --workspace"
cargo test --doc --workspace

# Fuzz smoke: each target for FUZZ_SECONDS from its corpus. cargo-fuzz needs
# nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them. A
# debug build without a sanitizer: the decoders and parsers under test are
# safe Rust, so AddressSanitizer would add build minutes, not findings (long
# runs use `cargo fuzz run TARGET`, release with ASan).
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
for target in ltx_decoder wal_reader config_parser s3_xml; do
    step "cargo fuzz run $target (${FUZZ_SECONDS}s)"
    corpus=$(mktemp -d)
    cp -r "fuzz/corpus/$target/." "$corpus/"
    log_file=$(mktemp)
    if ! (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --dev -s none "$target" "$corpus" -- \
        -max_total_time="$FUZZ_SECONDS" -max_len=300000 >"$log_file" 2>&1); then
        tail -n 80 "$log_file" >&2
        die "fuzz target $target failed (crash input under fuzz/artifacts/$target)"
    fi
    grep -E '^#[0-9]+[[:space:]]+DONE' "$log_file" >&2 || tail -n 2 "$log_file" >&2
    rm -rf "$corpus" "$log_file"
done

# The I/O paths again on positional reads and writes, as on a kernel without
# io_uring: the engine's tests and the end-to-end tests that replicate and
# restore through the binary. The > 1 GiB, crash-loop, soak and outage tests
# run once, on the default engine, in the main pass below.
step "cargo nextest run with FRESHET_IO=sync (engine + end-to-end)"
FRESHET_IO=sync cargo nextest run --workspace --no-fail-fast -E \
    '(package(freshet-engine) - test(/crossing_the_lock_page/)) | (package(freshet) & (binary(replicate_e2e) | binary(replicate_cli) | binary(bad_input) | binary(concurrent_sqlite) | binary(snapshot_stream)))'

step "cargo nextest run --workspace"
cargo nextest run --workspace --no-fail-fast
