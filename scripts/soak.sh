#!/usr/bin/env bash
# Soaks `freshet replicate` under a write profile and checks that the WAL
# and memory stay bounded, that no checkpoint causes a snapshot, and that
# the replica restores to the source (see tests/soak.rs).
#
#   bash scripts/soak.sh [PROFILE] [DURATION]
#
# PROFILE: low (10 w/s), high (500 w/s wave), burst (1,000 w/s bursts),
# max (the machine's maximum write rate) or mixed (default). DURATION: a
# number with an s, m or h suffix (default 1h).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd_repo_root

profile=${1:-mixed}
duration=${2:-1h}
case $duration in
    *h) seconds=$((${duration%h} * 3600)) ;;
    *m) seconds=$((${duration%m} * 60)) ;;
    *s) seconds=${duration%s} ;;
    *[!0-9]*) die "DURATION must be a number with an s, m or h suffix: $duration" ;;
    *) seconds=$duration ;;
esac
bash scripts/setup.sh
LITESTREAM_BIN=$(litestream_bin) || die "no litestream binary found after set-up"
export LITESTREAM_BIN
export FRESHET_SOAK_PROFILE=$profile FRESHET_SOAK_SECONDS=$seconds
log "soak: profile $profile for ${seconds}s"
cargo test --release --test soak -- --nocapture
