#!/usr/bin/env bash
# Builds freshet and freshet-bench in release mode and runs the side-by-side
# benchmark of freshet and the real Litestream with the given arguments.
# Results (report.md, results.json, plots/, logs/) go to
# bench-results/<UTC timestamp>/ unless --out is given.
#
#   bash scripts/bench.sh [FRESHET_BENCH_ARGS...]
#   bash scripts/bench.sh --backend both --size 1.2GB --repeat 3
#   bash scripts/bench.sh --workloads write-steady --tx-per-sec 1000 --duration 30s
#
# `bash scripts/bench.sh --help` lists every flag.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd_repo_root

bash scripts/setup.sh
LITESTREAM_BIN=$(litestream_bin) || die "no litestream binary found after set-up"
export LITESTREAM_BIN
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}

cargo build --release -p freshet -p freshet-bench
target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$target_dir/release/freshet-bench" "$@"
