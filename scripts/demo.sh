#!/usr/bin/env bash
# The main job, end to end on this machine: `freshet replicate` streams a
# demo SQLite database to a file replica while an application writes to it,
# stops cleanly on SIGTERM, and then both `freshet restore` and the real
# `litestream restore` rebuild the database byte for byte.
#
#   bash scripts/demo.sh [WORK_DIR]
#
# WORK_DIR (default: a new temporary directory, removed at the end unless
# KEEP=1) receives demo.db, the replica directory and the restored copies.
# SECONDS_OF_WRITES (default 5) sets how long the application writes.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd_repo_root

bash scripts/setup.sh
LITESTREAM=$(litestream_bin) || die "no litestream binary found after set-up"
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
WRITE_SECONDS=${SECONDS_OF_WRITES:-5}

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

log "1/6 building freshet (release; the first build takes a few minutes)"
cargo build --release --quiet --bin freshet
FRESHET=$PWD/target/release/freshet

log "2/6 creating $DB (WAL mode)"
python3 - "$DB" <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("PRAGMA journal_mode = WAL")
con.execute("CREATE TABLE readings (id INTEGER PRIMARY KEY, sensor TEXT NOT NULL,"
            " taken_at INTEGER NOT NULL, value REAL NOT NULL, note BLOB)")
con.commit()
PY

log "3/6 freshet replicate $DB file://$REPLICA"
"$FRESHET" replicate "$DB" "file://$REPLICA" &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"' EXIT

log "4/6 the application writes for ${WRITE_SECONDS}s"
python3 - "$DB" "$WRITE_SECONDS" <<'PY'
import random, sqlite3, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
rng = random.Random(20240501)
con = sqlite3.connect(path, timeout=10)
n, deadline = 0, time.time() + seconds
while time.time() < deadline:
    with con:
        con.executemany(
            "INSERT INTO readings (sensor, taken_at, value, note) VALUES (?, ?, ?, ?)",
            ((f"sensor-{rng.randrange(40):02d}", 1_700_000_000 + n + i, rng.gauss(20, 5),
              rng.randbytes(rng.randrange(0, 400))) for i in range(50)))
    n += 50
    time.sleep(0.01)
print(f"committed {n} rows")
PY
sleep 2
"$FRESHET" ltx -level all "file://$REPLICA"

log "5/6 stopping freshet (SIGTERM: final sync and upload)"
kill -TERM "$PID"
wait "$PID"

log "6/6 restoring with freshet and with litestream $("$LITESTREAM" version)"
"$FRESHET" restore -integrity-check full -o "$WORK/restored-freshet.db" "file://$REPLICA"
"$LITESTREAM" restore -o "$WORK/restored-litestream.db" "file://$REPLICA"
python3 - "$DB" "$WORK/restored-freshet.db" "$WORK/restored-litestream.db" <<'PY'
import shutil, sqlite3, sys, tempfile, os
src, *restored = sys.argv[1:]
# The source as SQLite sees it: checkpoint a copy of the database and its WAL.
tmp = tempfile.mkdtemp()
copy = os.path.join(tmp, "source.db")
shutil.copy(src, copy)
if os.path.exists(src + "-wal"):
    shutil.copy(src + "-wal", copy + "-wal")
con = sqlite3.connect(copy)
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
rows = con.execute("SELECT count(*) FROM readings").fetchone()[0]
con.close()
want = open(copy, "rb").read()
for path in restored:
    got = open(path, "rb").read()
    con = sqlite3.connect(path)
    check = con.execute("PRAGMA integrity_check").fetchone()[0]
    n = con.execute("SELECT count(*) FROM readings").fetchone()[0]
    con.close()
    same = "byte-identical to the source" if got == want else "DIFFERENT from the source"
    print(f"{os.path.basename(path)}: {n}/{rows} rows, integrity_check={check}, {same}")
    if got != want or check != "ok":
        sys.exit(1)
PY
log "the replica restores to exactly what the application committed"
