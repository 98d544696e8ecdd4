#!/usr/bin/env bash
# Streaming benchmark (a script, not a test): KDG-shaped records (timestamp, eventType, film_id,
# distributor, platform, state) from a producer process (`pipectl generate`) through NATS
# JetStream and through the HTTP Direct PUT endpoint into JSON lines and into Parquet.
#
#   cargo build --profile fast && bench/streaming.sh
#
# Prints per case: records delivered; offered/s (what the producers sent per second);
# delivered/s (records landed per second while the producers ran: the slope of records in
# objects over the objects' times; it matches offered/s while the pipeline keeps up); overall/s
# (every record over the time from the producers' start to the last object, final flush
# included); the pipeline's peak RSS (VmHWM); and the delay from publish
# (a record's `timestamp`) to its object being visible (the object's mtime): the median over
# objects of their oldest record's delay, and the maximum.
#
# Environment: DURATION (producer seconds, default 60), RATE (records/s per producer, default
# unlimited), CASES (default "nats-jsonl nats-parquet http-jsonl http-parquet"), INTERVAL (sink
# interval_secs, default 5), MAX_BYTES (sink max_bytes, default 16 MiB), PRODUCERS (parallel
# producers, default 2), NATS_PUBLISH (`core`, the default: producers publish without waiting for
# JetStream's per-record acknowledgement, which costs the server as much CPU as storing the
# record; `jetstream`: wait for each one), PIPECTL_TEST_NATS_URL. Parquet files are read with pyarrow, installed
# into ~/.cache/pipectl-tools/bench-venv on first use.
set -euo pipefail

DURATION=${DURATION:-60}
RATE=${RATE:-}
CASES=${CASES:-"nats-jsonl nats-parquet http-jsonl http-parquet"}
INTERVAL=${INTERVAL:-5}
MAX_BYTES=${MAX_BYTES:-16777216}
PRODUCERS=${PRODUCERS:-2}
NATS_PUBLISH=${NATS_PUBLISH:-core}
NATS_URL=${PIPECTL_TEST_NATS_URL:-nats://127.0.0.1:4222}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
VENV="$HOME/.cache/pipectl-tools/bench-venv"
if [[ " $CASES " == *parquet* ]] && ! "$VENV/bin/python" -c 'import pyarrow' 2>/dev/null; then
    python3 -m venv "$VENV" && "$VENV/bin/pip" -q install pyarrow
fi
PY="$VENV/bin/python"
[[ -x "$PY" ]] || PY=python3

NATS_HOSTPORT=${NATS_URL#nats://}
NATS_HOSTPORT=${NATS_HOSTPORT##*@}
NATS_HOST=${NATS_HOSTPORT%%:*}
NATS_PORT=${NATS_HOSTPORT##*:}
STREAMS=()
PIDS=()

# One JetStream API request over the plain NATS protocol, so no NATS client is needed.
js_api() { # subject-suffix json
    exec 3<>"/dev/tcp/$NATS_HOST/$NATS_PORT"
    printf 'CONNECT {"verbose":false}\r\nPUB $JS.API.%s %d\r\n%s\r\nPING\r\n' "$1" "${#2}" "$2" >&3
    timeout 2 head -c 2 <&3 >/dev/null || true
    sleep 0.2
    exec 3>&-
}
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for s in "${STREAMS[@]}"; do js_api "STREAM.DELETE.$s" "" || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

TEMPLATE='{"timestamp": "{{date.now}}", "eventType": "{{random.weightedArrayElement({"weights":[0.3,0.1,0.6],"data":["rent","buy","trailer"]})}}", "film_id": {{random.number({"min":1,"max":1000})}}, "distributor": "{{random.arrayElement(["amazon prime","google play","apple itunes","vudo","fandango now","microsoft","youtube"])}}", "platform": "{{random.arrayElement(["ios","android","xbox","playstation","smart tv","other"])}}", "state": "{{address.state}}"}'
rate_args=()
[[ -n "$RATE" ]] && rate_args=(--rate "$RATE")

printf '%-13s %10s %10s %11s %11s %12s %12s %12s %8s\n' case records "offered/s" "delivered/s" "overall/s" "peak RSS MB" "delay p50 s" "delay max s" objects
for case in $CASES; do
    kind=${case%-*}
    format=${case#*-}
    dir="$WORK/$case"
    mkdir -p "$dir"
    id="PIPECTL_BENCH_$$_${kind}_${format}"
    port=$((18000 + RANDOM % 2000))
    if [[ "$format" == parquet ]]; then fmt='{ type: parquet, compression: snappy }'; else fmt='{ type: jsonl }'; fi
    if [[ "$kind" == nats ]]; then
        STREAMS+=("$id")
        js_api "STREAM.CREATE.$id" "{\"name\":\"$id\",\"subjects\":[\"bench.$id\"],\"storage\":\"file\"}"
        source="{ type: nats, connection: nats, stream: $id, subject: bench.$id, durable: bench }"
    else
        source="{ type: http, listen: \"127.0.0.1:$port\" }"
    fi
    cat >"$dir/pipeline.yaml" <<YAML
version: 1
name: bench
connections:
  nats: { url: "$NATS_URL" }
  lake: { url: "file://lake" }
sources:
  events: $source
sinks:
  out:
    type: firehose
    inputs: [events]
    connection: lake
    prefix: "rentals/!{timestamp:yyyy/MM/dd/HH}/"
    error_output_prefix: "errors/!{firehose:error-output-type}/"
    max_bytes: $MAX_BYTES
    interval_secs: $INTERVAL
    format: $fmt
YAML
    (cd "$dir" && exec env PIPECTL_STATE_DIR="$dir/state" "$BIN" -q run --format json pipeline.yaml >"$dir/run.json" 2>"$dir/run.err") &
    pid=$!
    PIDS+=("$pid")
    if [[ "$kind" == http ]]; then
        for _ in $(seq 100); do
            (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            sleep 0.1
        done
    fi
    sleep 1
    start=$(date +%s.%N)
    producers=()
    for p in $(seq "$PRODUCERS"); do
        if [[ "$kind" == nats ]]; then
            target=(--nats "$NATS_URL" --subject "bench.$id")
            [[ "$NATS_PUBLISH" == core ]] && target+=(--no-jetstream)
        else
            target=(--http "http://127.0.0.1:$port" --batch 500)
        fi
        "$BIN" generate --template "$TEMPLATE" --duration-secs "$DURATION" "${rate_args[@]}" "${target[@]}" >"$dir/gen$p.out" 2>&1 &
        producers+=($!)
    done
    peak=0
    sample() {
        local rss
        rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        ((rss > peak)) && peak=$rss
        return 0
    }
    for p in "${producers[@]}"; do
        while kill -0 "$p" 2>/dev/null; do sample; sleep 1; done
        wait "$p" || { echo "producer failed: $(cat "$dir"/gen*.out)" >&2; exit 1; }
    done
    sent=$(cat "$dir"/gen*.out | awk '/^sent/ {s += $2} END {print s + 0}')
    # Caught up when no object appeared for INTERVAL + 2 s (every buffer flushes by then).
    last=-1
    while :; do
        sample
        n=$(find "$dir/lake" -type f -newer "$dir/pipeline.yaml" -not -path '*/_pipectl/*' 2>/dev/null | wc -l)
        [[ "$n" == "$last" ]] && break
        last=$n
        sleep $((INTERVAL + 2))
    done
    sample
    kill -TERM "$pid"
    wait "$pid" || true
    "$PY" - "$dir/lake" "$format" "$sent" "$start" "$peak" "$case" "$DURATION" <<'PY'
import datetime, glob, json, os, statistics, sys
root, fmt, sent, start, peak, case, duration = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6], float(sys.argv[7])
end = start + duration
files = [f for f in glob.glob(os.path.join(root, "rentals", "**", "*"), recursive=True) if os.path.isfile(f)]
objects = []  # (mtime, records, oldest record's timestamp)
for f in files:
    if fmt == "parquet":
        import pyarrow.parquet as pq
        stamps = pq.read_table(f, columns=["timestamp"]).column("timestamp").to_pylist()
    else:
        with open(f) as fh:
            stamps = [json.loads(line)["timestamp"] for line in fh]
    oldest = min(datetime.datetime.fromisoformat(str(s).replace("Z", "+00:00")).timestamp() for s in stamps)
    objects.append((os.path.getmtime(f), len(stamps), oldest))
objects.sort()
records = sum(o[1] for o in objects)
# Delivered: the slope of records landed over time while the producers ran (the records of the
# first object landed before its time, so they are not counted).
during = [o for o in objects if o[0] <= end]
delivered = sum(o[1] for o in during[1:]) / (during[-1][0] - during[0][0]) if len(during) > 2 else 0
# Overall: every record over the time from the producers' start to the last object.
overall = records / (objects[-1][0] - start) if objects else 0
delays = [o[0] - o[2] for o in objects]
print(f"{case:<13} {records:>10} {sent / duration:>10.0f} {delivered:>11.0f} {overall:>11.0f} {peak / 1024:>12.1f} {statistics.median(delays):>12.2f} {max(delays):>12.2f} {len(objects):>8}")
if records != sent:
    print(f"  note: the producers sent {sent} records, the lake holds {records}")
PY
done
