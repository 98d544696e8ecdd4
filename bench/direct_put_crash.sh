#!/usr/bin/env bash
# Direct PUT kill -9 loop (a script, not a test): a producer sends RECORDS numbered records with
# PutRecordBatch (BATCH records a request, retrying 429, 5xx and dropped connections until it
# gets a 200) while `pipectl run` is killed with SIGKILL every 1-3 s and started again, KILLS
# times; then one last run delivers what the write-ahead log still holds. Checks the lake:
# every number answered 200 is there (0 lost), and a number is there twice only if a request
# holding it lost its answer and was sent again.
#
#   cargo build --profile fast && bench/direct_put_crash.sh
#
# Environment: RECORDS (default 100000), BATCH (default 500), KILLS (default 10), PAUSE (seconds
# the producer waits between requests, default 0.1, so that its requests span the kills).
# Prints the kills, the requests whose answer was lost, lost and duplicated records, and the
# producer's rate.
set -euo pipefail

RECORDS=${RECORDS:-100000}
BATCH=${BATCH:-500}
KILLS=${KILLS:-10}
PAUSE=${PAUSE:-0.1}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
trap 'kill "${PID:-0}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cat >"$WORK/pipeline.yaml" <<YAML
version: 1
name: direct-put-crash
connections:
  lake: {url: "file://lake"}
sources:
  put: {type: http, listen: "127.0.0.1:$PORT"}
sinks:
  out:
    type: firehose
    inputs: [put]
    connection: lake
    format: {type: jsonl}
    prefix: "put/"
    max_bytes: 262144
    interval_secs: 1
YAML

cat >"$WORK/producer.py" <<'PY'
import base64, http.client, json, sys, time
port, total, batch, pause = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
lost_answers = []
started = time.time()
for first in range(1, total + 1, batch):
    numbers = range(first, min(first + batch, total + 1))
    body = json.dumps({"DeliveryStreamName": "direct-put-crash", "Records": [
        {"Data": base64.b64encode(json.dumps({"n": n}).encode()).decode()} for n in numbers]})
    sent = False
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("POST", "/", body, {"X-Amz-Target": "Firehose_20150804.PutRecordBatch",
                                          "Content-Type": "application/x-amz-json-1.1"})
            sent = True
            status = c.getresponse().status
            c.close()
            if status == 200:
                time.sleep(pause)
                break
        except OSError:
            if sent:
                lost_answers.append([numbers.start, numbers.stop - 1])
            time.sleep(0.05)
        sent = False
json.dump({"lost_answers": lost_answers, "seconds": time.time() - started}, open("producer.json", "w"))
PY

cat >"$WORK/check.py" <<'PY'
import collections, json, os, sys
total = int(sys.argv[1])
p = json.load(open("producer.json"))
seen = collections.Counter()
for root, _, files in os.walk("lake/put"):
    for f in files:
        for line in open(os.path.join(root, f)):
            seen[json.loads(line)["n"]] += 1
retried = set()
for a, b in p["lost_answers"]:
    retried.update(range(a, b + 1))
lost = [n for n in range(1, total + 1) if seen[n] == 0]
unexplained = [n for n, c in seen.items() if c > 2 or (c == 2 and n not in retried)]
twice = sum(1 for c in seen.values() if c == 2)
print(f"requests whose answer was lost: {len(p['lost_answers'])}")
print(f"records lost: {len(lost)}; twice (from those requests): {twice}; unexplained duplicates: {len(unexplained)}")
print(f"producer: {total} records in {p['seconds']:.1f} s, kills included")
sys.exit(1 if lost or unexplained else 0)
PY

cd "$WORK"
python3 producer.py "$PORT" "$RECORDS" "$BATCH" "$PAUSE" &
PRODUCER=$!
kills=0
while ((kills < KILLS)); do
    "$BIN" run pipeline.yaml >/dev/null 2>>runs.log &
    PID=$!
    sleep "$(python3 -c 'import random; print(1 + 2 * random.random())')"
    kill -9 "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    kills=$((kills + 1))
done
# Keep the endpoint up until the producer has every 200.
"$BIN" run pipeline.yaml >/dev/null 2>>runs.log &
PID=$!
wait "$PRODUCER"
sleep 3
kill -TERM "$PID"
wait "$PID" || true
echo "kills: $kills"
python3 check.py "$RECORDS"
