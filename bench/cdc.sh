#!/usr/bin/env bash
# Change data capture benchmark, on the private wal_level=logical cluster (scripts/pg-logical.sh):
#
# 1. Snapshot: the first run of a `postgres_cdc` pipeline (slot created with an exported snapshot,
#    the $ROWS-row `pipectl_bench.events` table copied into Parquet change files) next to the batch
#    `postgres` source's full load of the same table into the same sink. Target: <= 1.15x.
# 2. Sustained changes: a second process (psql) commits $CHANGES changes (batched inserts and
#    updates, $BATCH rows a transaction) while nothing reads them; then a catch-up run of the
#    pipeline reads them into change files, and `pg_recvlogical --plugin=pgoutput` reads the same
#    WAL range from a slot of its own to /dev/null (`--endpos`, the position the run stopped at).
#    Target: pipectl's change rate >= 0.8x pg_recvlogical's.
#
# Prints wall time, CPU, rows (or changes) per second and peak RSS of each measurement.
#
#   cargo build --profile fast && bench/cdc.sh
#
# Settings (environment): ROWS (default 2000000), CHANGES (default 200000), BATCH (1000),
# REPEAT (snapshot and full load, interleaved, default 3), PIPECTL_BIN (default
# $CARGO_TARGET_DIR/fast/pipectl). The events table is kept between runs (recreated when ROWS
# changes); the slots and publications the benchmark makes are dropped at exit, and the rows the
# change phase added deleted.
#
# Catch-up runs have no lag to speak of while they run (they read a backlog and stop), so lag
# percentiles are not measured here; each run records its lag at start (`pipectl runs show`).
set -euo pipefail

ROWS=${ROWS:-2000000}
CHANGES=${CHANGES:-200000}
BATCH=${BATCH:-1000}
REPEAT=${REPEAT:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${PIPECTL_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/fast/pipectl}
PG_BIN=${PIPECTL_PG_BIN:-/usr/lib/postgresql/15/bin}
WORK=$(mktemp -d)
SLOT=pipectl_bench_cdc
RECV_SLOT=pipectl_bench_recv

[[ -x "$BIN" ]] || { echo "no pipectl at $BIN; run: cargo build --profile fast" >&2; exit 2; }
bash "$ROOT/scripts/pg-logical.sh" start
eval "$(bash "$ROOT/scripts/pg-logical.sh" env)"
PG_URL=$PIPECTL_TEST_PG_LOGICAL_URL

pg() { psql -q -X -v ON_ERROR_STOP=1 "$PG_URL" "$@"; }
# shellcheck source=bench/pg_events.sh
source "$(dirname "$0")/pg_events.sh"

cleanup() {
    pg -c "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name in ('$SLOT', '$RECV_SLOT') and not active" \
        -c "drop publication if exists ${SLOT}_pub" \
        -c "delete from pipectl_bench.events where id > $ROWS" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

spec() { # name source-type
    local cdc=""
    [[ "$2" == postgres_cdc ]] && cdc=$'    publication: '"${SLOT}_pub"$'\n    slot: '"$SLOT"$'\n'
    cat >"$WORK/$1.yaml" <<YAML
version: 1
name: bench-$1
connections:
  db: { url: "$PG_URL" }
  lake: { url: "file://lake-$1" }
sources:
  src:
    type: $2
    connection: db
    include: [{ schema: pipectl_bench, table: events }]
$cdc
sinks:
  out:
    type: object_store
    inputs: [src]
    connection: lake
    key: "{table}/"
    format: { type: parquet }
YAML
}

# shellcheck source=bench/measure.sh
source "$(dirname "$0")/measure.sh"

setup_pg_events
pg -c "delete from pipectl_bench.events where id > $ROWS" >/dev/null
cd "$WORK"
export PIPECTL_STATE_DIR="$WORK/state"
spec full postgres
spec cdc postgres_cdc

# 1. Snapshot vs full load, interleaved (this machine's timings drift from run to run).
for _ in $(seq "$REPEAT"); do
    rm -rf "$WORK/state" "$WORK/lake-full"
    measure "postgres full load -> Parquet" "$ROWS" "$BIN" run -q "$WORK/full.yaml"
    "$BIN" cdc drop-slot --yes "$WORK/cdc.yaml" >/dev/null
    rm -rf "$WORK/state" "$WORK/lake-cdc"
    measure "postgres_cdc snapshot -> Parquet" "$ROWS" "$BIN" run -q "$WORK/cdc.yaml"
done

# 2. Sustained changes: the last snapshot left the slot and its position; pg_recvlogical gets a
# slot of its own at the same point in the WAL.
pg_recvlogical_cmd=("$PG_BIN/pg_recvlogical" -d "$PG_URL" --slot "$RECV_SLOT")
"${pg_recvlogical_cmd[@]}" --create-slot --plugin pgoutput
half=$((CHANGES / 2))
batches=$(((half + BATCH - 1) / BATCH))
{
    for b in $(seq 0 $((batches - 1))); do
        echo "insert into pipectl_bench.events (ts, event_type, film_id, distributor, platform, state, amount, note)
              select now(), 'rent', 1 + g % 1000, 'Disney', 'web', 'CA', 1.5, 'change ' || g
              from generate_series($((b * BATCH + 1)), $(((b + 1) * BATCH))) g;"
        echo "update pipectl_bench.events set amount = amount + 1, note = 'updated'
              where id > $((b * BATCH)) and id <= $(((b + 1) * BATCH));"
    done
} >"$WORK/writer.sql"
measure "writer: psql, $batches insert and $batches update transactions" "$((batches * BATCH * 2))" \
    psql -q -X -v ON_ERROR_STOP=1 "$PG_URL" -f "$WORK/writer.sql"
changes=$((batches * BATCH * 2))
measure "postgres_cdc catch-up of the changes -> Parquet" "$changes" "$BIN" run -q "$WORK/cdc.yaml"
end_lsn=$("$BIN" state --format json | python3 -c '
import json, sys
state = json.load(sys.stdin)
marks = state if isinstance(state, list) else state.get("bookmarks", [])
print([b for b in marks if b["stream"] == "src"][0]["values"][0])')
measure "pg_recvlogical --plugin=pgoutput to /dev/null (same WAL)" "$changes" \
    "${pg_recvlogical_cmd[@]}" --start --no-loop --endpos "$end_lsn" \
    -o proto_version=1 -o "publication_names=${SLOT}_pub" -f /dev/null

report "$REPEAT" \
    --wall "postgres_cdc snapshot -> Parquet" "postgres full load -> Parquet" 1.15 \
    --rate "postgres_cdc catch-up of the changes -> Parquet" "pg_recvlogical --plugin=pgoutput to /dev/null (same WAL)" 0.8
