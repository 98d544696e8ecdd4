#!/usr/bin/env bash
# Crawl benchmark: 10,000 objects in 1,000 Hive-style partitions (year/month/day, 10 JSON-lines
# files each) on the local filesystem, crawled with `pipectl crawl --path`. Prints the wall time
# of a first crawl (every file's schema read), a recrawl (nothing changed) and a
# `--recrawl new-folders` crawl. Target: at most 2 s for the first crawl.
#
#   cargo build --profile fast && bench/crawl.sh
set -euo pipefail

PARTITIONS=${PARTITIONS:-1000}
FILES_PER_PARTITION=${FILES_PER_PARTITION:-10}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

echo "writing $((PARTITIONS * FILES_PER_PARTITION)) objects in $PARTITIONS partitions under $WORK/lake/events ..."
python3 - "$WORK/lake/events" "$PARTITIONS" "$FILES_PER_PARTITION" <<'PY'
import os, sys
root, partitions, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for p in range(partitions):
    d = os.path.join(root, f"year={2020 + p // 360}", f"month={p % 360 // 30 + 1:02d}", f"day={p % 30 + 1:02d}")
    os.makedirs(d, exist_ok=True)
    for f in range(files):
        with open(os.path.join(d, f"part-{f:04d}.jsonl"), "w") as out:
            for r in range(20):
                out.write(f'{{"id": {p * 1000 + f * 20 + r}, "eventType": "rent", "film_id": {r}, "amount": {r * 1.5}}}\n')
PY

export PIPECTL_STATE_DIR="$WORK/state"
run() {
    local label=$1; shift
    local start end
    start=$(date +%s.%N)
    "$BIN" -q crawl --path "file://$WORK/lake/events" --database bench "$@" --format json > "$WORK/out.json"
    end=$(date +%s.%N)
    printf '%-28s %6.2f s  %s\n' "$label" "$(echo "$end - $start" | bc)" \
        "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))[0]; t=r["tables"][0]; print("%d objects, %d schemas read, table %s: %d partitions, %d files, %s" % (r["objects"], r["files_read"], t["table"], t["partitions"], t["files"], t["action"]))' "$WORK/out.json")"
}
run "first crawl"
run "recrawl (unchanged)"
run "recrawl --recrawl new-folders" --recrawl new-folders
