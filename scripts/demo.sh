#!/usr/bin/env bash
# Demonstrates what works today: freshet's LTX encoder writes a snapshot of a
# SQLite database into a file replica, and the real `litestream restore`
# turns it back into a byte-identical database.
#
#   bash scripts/demo.sh [WORK_DIR]
#
# WORK_DIR (default: a new temporary directory, removed at the end unless
# KEEP=1) receives demo.db, the replica directory and restored.db.
# ROWS (default 5000) sets the number of rows in the demo table.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd_repo_root

bash scripts/setup.sh
LITESTREAM=$(litestream_bin) || die "no litestream binary found after set-up"
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
ROWS=${ROWS:-5000}

if [ $# -ge 1 ]; then
    WORK=$1
    mkdir -p "$WORK"
    [ -z "$(ls -A "$WORK")" ] || die "$WORK is not empty"
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/freshet-demo.XXXXXX")
    if [ "${KEEP:-0}" != 1 ]; then
        trap 'rm -rf "$WORK"' EXIT
    fi
fi
DB=$WORK/demo.db
REPLICA=$WORK/replica
OUT=$WORK/restored.db

log "1/4 creating $DB with $ROWS rows (WAL mode, then checkpointed)"
python3 - "$DB" "$ROWS" <<'PY'
import random, sqlite3, sys
path, rows = sys.argv[1], int(sys.argv[2])
rng = random.Random(20240501)
con = sqlite3.connect(path)
con.execute("PRAGMA page_size = 4096")
con.execute("PRAGMA journal_mode = WAL")
con.execute("CREATE TABLE readings (id INTEGER PRIMARY KEY, sensor TEXT NOT NULL,"
            " taken_at INTEGER NOT NULL, value REAL NOT NULL, note BLOB)")
con.execute("CREATE INDEX readings_by_sensor ON readings (sensor, taken_at)")
with con:
    con.executemany(
        "INSERT INTO readings (sensor, taken_at, value, note) VALUES (?, ?, ?, ?)",
        ((f"sensor-{rng.randrange(40):02d}", 1_700_000_000 + i * 60, rng.gauss(20, 5),
          rng.randbytes(rng.randrange(0, 400))) for i in range(rows)))
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()
PY

log "2/4 encoding it as a snapshot LTX file into file://$REPLICA (the first run compiles the example)"
cargo run --release -p ltx --example encode_db -- "$DB" "$REPLICA"
ls -l "$REPLICA/ltx/0"
"$LITESTREAM" ltx "file://$REPLICA"

log "3/4 restoring with litestream $("$LITESTREAM" version) ($LITESTREAM)"
"$LITESTREAM" restore -o "$OUT" "file://$REPLICA"

log "4/4 comparing"
cmp "$DB" "$OUT"
python3 - "$DB" "$OUT" <<'PY'
import sqlite3, sys
for path in sys.argv[1:]:
    con = sqlite3.connect(path)
    check = con.execute("PRAGMA integrity_check").fetchone()[0]
    rows = con.execute("SELECT count(*) FROM readings").fetchone()[0]
    print(f"{path}: integrity_check={check}, {rows} rows")
    con.close()
    if check != "ok":
        sys.exit(f"integrity check failed for {path}")
PY
log "restored.db is byte-identical to demo.db ($(stat -c %s "$OUT") bytes)"
