#!/usr/bin/env bash
# Delta sink benchmark: a PostgreSQL table of $ROWS rows (default 2,000,000; the
# `pipectl_bench.events` table of bench/db_load.sh) loaded by `pipectl run` into a Delta table
# (format: delta, append into an empty root) and into plain Parquet, interleaved, REPEAT times
# (default 3). Prints the median wall time, rows/s and peak RSS of each and the Delta/Parquet
# ratio (target: <= 1.1).
#
#   cargo build --profile fast && bench/delta_sink.sh
#
# Server: PIPECTL_TEST_POSTGRES_URL (this machine's default).
set -euo pipefail

ROWS=${ROWS:-2000000}
REPEAT=${REPEAT:-3}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

# shellcheck source=bench/pg_events.sh
source "$(dirname "$0")/pg_events.sh"

setup_pg_events

spec() { # name format
    cat >"$WORK/$1.yaml" <<YAML
version: 1
name: bench-$1
connections:
  db: { url: "$PG_URL" }
  lake: { url: "file://$WORK/lake-$1" }
sources:
  pg: { type: postgres, connection: db, include: [{ schema: pipectl_bench, table: events }] }
sinks:
  out:
    type: object_store
    inputs: [pg]
    connection: lake
    key: "events/{table}/"
    format: $2
YAML
}
spec delta '{ type: delta }'
spec parquet '{ type: parquet, compression: snappy }'

# One line per measurement in $WORK/results: name, wall s, peak RSS KiB.
for i in $(seq "$REPEAT"); do
    for name in delta parquet; do
        rm -rf "$WORK/lake-$name" "$WORK/state-$name"
        /usr/bin/time -f '%e %M' -o "$WORK/time" \
            "$BIN" run -q --state-dir "$WORK/state-$name" "$WORK/$name.yaml" >/dev/null
        read -r wall rss <"$WORK/time"
        echo "$name $wall $rss" >>"$WORK/results"
        printf 'run %d %-8s %6.2f s  %7d KiB peak RSS\n' "$i" "$name" "$wall" "$rss"
    done
done

median() { # name column
    awk -v n="$1" -v c="$2" '$1 == n { print $c }' "$WORK/results" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo
for name in delta parquet; do
    wall=$(median "$name" 2)
    rss=$(median "$name" 3)
    printf '%-8s median %6.2f s  %9.0f rows/s  %6.1f MB peak RSS\n' "$name" "$wall" \
        "$(echo "$ROWS / $wall" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
done
ratio=$(echo "$(median delta 2) / $(median parquet 2)" | bc -l)
printf 'delta / parquet wall time: %.2fx (target <= 1.1x)\n' "$ratio"
