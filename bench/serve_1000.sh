#!/usr/bin/env bash
# Benchmark of `pipectl serve`: N pipelines (default 1,000) on minute schedules, each a small
# real run (a generator writing one CSV file into a local lake, history in sled).
# Prints: trigger lateness p50/p99/max (how late the scheduler dispatched each fire, from the
# daemon's /metrics), CPU while idle (a window between fires with no run going), CPU per
# minute including the runs, and memory (RSS now and peak).
# Targets: p99 lateness < 100 ms, idle CPU < 1 %.
#
#   bench/serve_1000.sh                 # N=1000, MINUTES=2
#   N=200 MINUTES=1 bench/serve_1000.sh
#   N=50 MINUTES=1 PROFILE=dev bench/serve_1000.sh   # a quick check of the script itself
set -euo pipefail
N=${N:-1000}
MINUTES=${MINUTES:-2}
CONCURRENCY=${CONCURRENCY:-4}
PROFILE=${PROFILE:-fast}   # `dev` to try the script quickly on a debug build
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --quiet --profile "$PROFILE" --bin pipectl
BIN=$CARGO_TARGET_DIR/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")/pipectl

WORK=$(mktemp -d)
PID=
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/pipelines"
for i in $(seq -w 1 "$N"); do
  cat > "$WORK/pipelines/p$i.yaml" <<EOF
version: 1
name: p$i
schedule:
  cron: "* * * * *"
  catch_up: none
run:
  keep_runs: 10
connections:
  lake: { url: "file://../lake" }
sources:
  events:
    type: generator
    count: 1
    seed: $((10#$i))
    template: '{"id": {{random.number({"min":1,"max":1000})}}}'
sinks:
  out:
    type: object_store
    inputs: [events]
    connection: lake
    key: p$i/
    format: { type: csv, header: true }
EOF
done

"$BIN" serve "$WORK/pipelines" --state-dir "$WORK/state" --listen 127.0.0.1:0 \
  --max-concurrent-runs "$CONCURRENCY" --reload-secs 2 2> "$WORK/serve.log" &
PID=$!
for _ in $(seq 1 600); do [ -f "$WORK/state.daemon" ] && break; sleep 0.1; done
ADDR=$(sed -E 's/.*"addr":"([^"]+)".*/\1/' "$WORK/state.daemon")
TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
rss_kb() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$PID/status"; }
metric() { curl -s "http://$ADDR/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
running() { curl -s "http://$ADDR/health" | tr -d '\n ' | sed -E 's/.*"running":([0-9]+).*/\1/'; }
echo "pipectl serve: $N pipelines loaded in $WORK (pid $PID, API $ADDR, $CONCURRENCY runs at once)"

# Wait for the start of a minute, then measure MINUTES whole minutes.
sleep $((60 - 10#$(date +%S)))
IDLE=()
for m in $(seq 1 "$MINUTES"); do
  START_TICKS=$(cpu_ticks); START_T=$(date +%s.%N)
  # Let the minute's runs finish, then measure an idle window up to second 58.
  sleep 1
  while [ "$(running)" != "0" ]; do sleep 0.2; done
  DONE_AT=$(echo "$(date +%s.%N) - $START_T" | bc | cut -c1-5)
  while [ "$((10#$(date +%S)))" -lt 20 ]; do sleep 0.5; done
  sleep 1
  I0=$(cpu_ticks); T0=$(date +%s.%N)
  sleep $((58 - 10#$(date +%S)))
  I1=$(cpu_ticks); T1=$(date +%s.%N)
  IDLE_PCT=$(echo "scale=3; 100 * ($I1 - $I0) / $TICK / ($T1 - $T0)" | bc)
  IDLE+=("$IDLE_PCT")
  sleep $((60 - 10#$(date +%S)))
  END_TICKS=$(cpu_ticks); END_T=$(date +%s.%N)
  MIN_PCT=$(echo "scale=2; 100 * ($END_TICKS - $START_TICKS) / $TICK / ($END_T - $START_T)" | bc)
  echo "minute $m: all $N runs ended ${DONE_AT} s after the fire time; idle CPU ${IDLE_PCT}% over $(echo "$T1 - $T0" | bc | cut -c1-5) s; CPU over the whole minute ${MIN_PCT}%"
done

ENDED=$(curl -s "http://$ADDR/metrics" | awk '$1 ~ /^pipectl_runs_ended_total/ && $1 ~ /succeeded/ {s += $2} END {print s}')
FAILED=$(curl -s "http://$ADDR/metrics" | awk '$1 ~ /^pipectl_runs_ended_total/ && $1 ~ /failed/ {s += $2} END {print s}')
P50=$(metric 'pipectl_trigger_lateness_seconds{quantile="0.5"}')
P99=$(metric 'pipectl_trigger_lateness_seconds{quantile="0.99"}')
PMAX=$(metric 'pipectl_trigger_lateness_seconds{quantile="1"}')
COUNT=$(metric 'pipectl_trigger_lateness_seconds_count')
echo
echo "fires: $COUNT (the minute before measuring included; the last minute's runs are still going); runs succeeded: $ENDED, failed: $FAILED"
printf 'trigger lateness: p50 %.1f ms, p99 %.1f ms, max %.1f ms (target p99 < 100 ms)\n' \
  "$(echo "$P50 * 1000" | bc)" "$(echo "$P99 * 1000" | bc)" "$(echo "$PMAX * 1000" | bc)"
echo "idle CPU per minute: ${IDLE[*]} % (target < 1 %)"
if [ "${FAILED:-0}" != "0" ]; then echo "failures (from the daemon's log):"; grep -m 5 'run ended' "$WORK/serve.log" || true; fi
echo "memory: RSS $(( $(rss_kb VmRSS) / 1024 )) MiB, peak $(( $(rss_kb VmHWM) / 1024 )) MiB"
