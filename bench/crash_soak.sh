#!/usr/bin/env bash
# Crash soak: kill -9 pipectl at $ROUNDS random moments during a full load (the first run of a
# bookmarked table, from an empty lake and state) and during incremental loads, rerun after each
# kill, and check that the published lake holds exactly the source rows: none lost, none twice.
#
#   cargo build --profile fast && bench/crash_soak.sh
#
# PostgreSQL from PIPECTL_TEST_POSTGRES_URL (this machine's default). Prints one line per round.
set -euo pipefail

ROUNDS=${ROUNDS:-20}
ROWS=${ROWS:-1000000}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

pg -c "drop schema if exists pipectl_soak cascade; create schema pipectl_soak;
  create table pipectl_soak.events (id bigint primary key, ts timestamptz not null, note text);"
cat >"$WORK/soak.yaml" <<YAML
version: 1
name: soak
connections:
  db: { url: "$PG_URL" }
  lake: { url: "file://lake" }
sources:
  src:
    type: postgres
    connection: db
    include: [{ schema: pipectl_soak, table: events }]
    tables:
      events: { bookmark: { keys: [ts, id] } }
sinks:
  out:
    type: object_store
    inputs: [src]
    connection: lake
    key: "events/"
    format: { type: jsonl }
YAML
cd "$WORK"
export PIPECTL_STATE_DIR="$WORK/state"
next=1

add_rows() {
    pg -c "insert into pipectl_soak.events select g, now(), repeat('x', 40) from generate_series($next, $((next + $1 - 1))) g"
    next=$((next + $1))
}

check() { # label
    local source lake
    source=$(pg -tA -c "select count(*) || ' ' || coalesce(sum(id), 0) from pipectl_soak.events")
    lake=$(cat lake/events/*.jsonl 2>/dev/null | python3 -c '
import json, sys
ids = [json.loads(l)["id"] for l in sys.stdin]
dups = len(ids) - len(set(ids))
print(len(ids), sum(ids), dups)')
    read -r n s d <<<"$lake"
    if [[ "$n $s" != "$source" || "$d" != 0 ]]; then
        echo "$1: lake holds $n rows (sum $s, $d duplicates), source $source" >&2
        exit 1
    fi
}

kill_and_rerun() { # label
    local delay status
    delay=$(awk -v r=$RANDOM 'BEGIN { printf "%.3f", (r % 600) / 1000 }')
    "$BIN" run -q soak.yaml >/dev/null 2>&1 &
    local pid=$!
    sleep "$delay"
    if kill -9 "$pid" 2>/dev/null; then status=killed; else status=finished; fi
    wait "$pid" 2>/dev/null || true
    "$BIN" run -q soak.yaml >/dev/null
    check "$1"
    printf '%-26s kill after %5s s: %-8s ok (%d source rows)\n' "$1" "$delay" "$status" $((next - 1))
}

add_rows "$ROWS"
for round in $(seq 1 "$ROUNDS"); do
    rm -rf lake state
    kill_and_rerun "full load, round $round"
done
for round in $(seq 1 "$ROUNDS"); do
    add_rows $((ROWS / 10))
    kill_and_rerun "incremental, round $round"
done
pg -c "drop schema pipectl_soak cascade"
echo "all $((2 * ROUNDS)) rounds: the lake held exactly the source rows"
