#!/usr/bin/env bash
# Query benchmark: a 2,000,000-row Parquet table (written by pipectl's generator source),
# crawled, then queried with `pipectl query`: a plain scan that reads every column
# (`select sum(...)` over each), and a group-by. Prints the best of 3 wall times of each and
# their ratio. Target: the group-by within 1.5x of the scan.
#
#   cargo build --profile fast && bench/query.sh
set -euo pipefail

ROWS=${ROWS:-2000000}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
export PIPECTL_STATE_DIR="$WORK/state"

cat > "$WORK/gen.yaml" <<YAML
version: 1
name: query-bench
connections:
  lake: { url: file://lake }
sources:
  events:
    type: generator
    count: $ROWS
    seed: 1
    batch_rows: 65536
    template: >-
      {"id": {{random.number({"min":1,"max":1000000000})}},
      "eventType": "{{random.arrayElement(["rent","buy","trailer"])}}",
      "film_id": {{random.number({"min":1,"max":1000})}},
      "platform": "{{random.arrayElement(["web","ios","android","tv"])}}",
      "amount": {{random.number({"min":1,"max":5000})}}}
sinks:
  lake:
    type: object_store
    inputs: [events]
    connection: lake
    key: events/
    max_file_rows: 500000
    format: { type: parquet }
crawlers:
  catalog:
    type: catalog
    inputs: [lake]
    database: bench
YAML
echo "writing $ROWS rows of Parquet ..."
"$BIN" -q run "$WORK/gen.yaml" > /dev/null

best() {
    local sql=$1 best=""
    for _ in 1 2 3; do
        local start end t
        start=$(date +%s.%N)
        "$BIN" -q query "$sql" --database bench --format csv > /dev/null
        end=$(date +%s.%N)
        t=$(echo "$end - $start" | bc)
        if [[ -z "$best" ]] || (( $(echo "$t < $best" | bc) )); then best=$t; fi
    done
    echo "$best"
}
scan_sql='select count(*), sum(id), sum(film_id), sum(amount), max(eventType), max(platform) from events'
group_sql='select eventType, platform, count(*), sum(amount), avg(film_id) from events group by 1, 2'
scan=$(best "$scan_sql")
group=$(best "$group_sql")
printf 'rows                 %d\n' "$ROWS"
printf 'plain scan           %6.3f s   (%s)\n' "$scan" "$scan_sql"
printf 'group-by             %6.3f s   (%s)\n' "$group" "$group_sql"
printf 'group-by / scan      %6.2fx   (target <= 1.5x)\n' "$(echo "$group / $scan" | bc -l)"
