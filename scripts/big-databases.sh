#!/usr/bin/env bash
# Databases past the 1 GiB lock page at every page size from 4 KiB to
# 64 KiB, including one that shrinks below 1 GiB and grows past it again in
# a single 1 GiB transaction (see tests/big_databases.rs). Needs about 8 GB
# of free disk in $TMPDIR.
#
#   bash scripts/big-databases.sh [PAGE_SIZES]   # e.g. 4096,16384
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd_repo_root

bash scripts/setup.sh
LITESTREAM_BIN=$(litestream_bin) || die "no litestream binary found after set-up"
export LITESTREAM_BIN
export FRESHET_BIG_PAGE_SIZES=${1:-4096,8192,16384,32768,65536}
export FRESHET_BIG_FULL=1
log "big databases: page sizes $FRESHET_BIG_PAGE_SIZES"
cargo test --release --test big_databases -- --nocapture
