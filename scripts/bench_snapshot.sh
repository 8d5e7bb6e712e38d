#!/usr/bin/env bash
# Measures the first snapshot of a large database into a file replica and
# its restore: `freshet replicate -once` against `cp` of the same file.
#
#   bash scripts/bench_snapshot.sh FRESHET_BINARY [DB] [WORK_DIR]
#
# DB (default: WORK_DIR/big.db, created with SIZE_MB, default 1200, of rows
# half random and half zeros) is left untouched apart from freshet's own
# bookkeeping tables. Prints wall time, CPU time, peak RSS and bytes written
# to disk for each step (from /usr/bin/time -v; "File system outputs" are
# 512-byte blocks).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -ge 1 ] || die "usage: $0 FRESHET_BINARY [DB] [WORK_DIR]"
FRESHET=$(realpath "$1")
WORK=${3:-$(mktemp -d "${TMPDIR:-/tmp}/freshet-bench.XXXXXX")}
mkdir -p "$WORK"
DB=${2:-$WORK/big.db}
SIZE_MB=${SIZE_MB:-1200}

if [ ! -f "$DB" ]; then
    rows=$((SIZE_MB * 256))
    log "creating $DB ($SIZE_MB MB)"
    sqlite3 "$DB" "PRAGMA page_size=4096; PRAGMA journal_mode=WAL;
        CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT $rows)
        INSERT INTO t SELECT x, randomblob(2000) || zeroblob(2000) FROM c;
        PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
fi

# Prints "wall cpu rss_mb written_mb" of a command from /usr/bin/time -v.
measure() {
    local out=$WORK/time.txt
    /usr/bin/time -v "$@" >/dev/null 2>"$out" || { cat "$out" >&2; die "$* failed"; }
    awk -F': ' '
        /Elapsed \(wall clock\)/ { n = split($2, p, ":"); wall = (n == 3) ? p[1]*3600 + p[2]*60 + p[3] : p[1]*60 + p[2] }
        /User time/ { cpu += $2 } /System time/ { cpu += $2 }
        /Maximum resident/ { rss = $2 / 1024 }
        /File system outputs/ { out = $2 * 512 / 1048576 }
        END { printf "wall %.2f s  cpu %.2f s  peak RSS %.0f MB  written %.0f MB\n", wall, cpu, rss, out }' "$out"
}

sync
printf 'database: %s MB\n' "$(( $(stat -c %s "$DB") / 1048576 ))"
printf 'cp:               %s\n' "$(measure sh -c "cp '$DB' '$WORK/copy.db' && sync '$WORK/copy.db'")"
rm -f "$WORK/copy.db"

rm -rf "$WORK/replica" "$WORK/restored.db" "$(dirname "$DB")/.$(basename "$DB")-litestream"
cat >"$WORK/bench.yml" <<YAML
dbs:
  - path: $DB
    replica:
      type: file
      path: $WORK/replica
YAML
printf 'replicate -once:  %s\n' "$(measure "$FRESHET" replicate -once -config "$WORK/bench.yml")"
printf 'level-9 snapshot: %s\n' "$(measure "$FRESHET" replicate -once -force-snapshot -config "$WORK/bench.yml")"
printf 'replica: %s MB\n' "$(( $(du -sb "$WORK/replica" | cut -f1) / 1048576 ))"
printf 'restore:          %s\n' "$(measure "$FRESHET" restore -o "$WORK/restored.db" "file://$WORK/replica")"
