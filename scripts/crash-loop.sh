#!/usr/bin/env bash
# Long crash loops: kills `freshet replicate` with SIGKILL CYCLES times
# (default 1000) under a write workload and checks that nothing
# acknowledged is ever lost (see tests/crash_loop.rs). A failure prints the
# seed that replays it.
#
#   bash scripts/crash-loop.sh [CYCLES] [SEED]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd_repo_root

bash scripts/setup.sh
LITESTREAM_BIN=$(litestream_bin) || die "no litestream binary found after set-up"
export LITESTREAM_BIN
export FRESHET_CRASH_CYCLES=${1:-1000}
if [ -n "${2:-}" ]; then
    export FRESHET_CRASH_SEED=$2
fi
log "crash loop: $FRESHET_CRASH_CYCLES cycles"
cargo test --test crash_loop -- --nocapture
