# Sourced by the benchmarks that time commands (db_load.sh, cdc.sh): `measure` runs a command
# under /usr/bin/time and appends a line to $WORK/results; `report` prints the medians and the
# targets (bench/medians.py). Needs WORK.

# Where this file is, taken now: the benchmarks change directory later.
MEASURE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# One line per measurement in $WORK/results: label, wall s, cpu s (user + system of the measured
# process, not the server's), peak RSS KB, rows.
measure() { # label rows command...
    local label=$1 rows=$2
    shift 2
    if ! /usr/bin/time -f '%e %M %U %S' -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err"; then
        echo "FAILED: $label" >&2
        cat "$WORK/out" "$WORK/err" >&2
        return 1
    fi
    read -r secs kb user sys <"$WORK/time"
    printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$secs" "$(awk -v u="$user" -v y="$sys" 'BEGIN { print u + y }')" "$kb" "$rows" >>"$WORK/results"
}

# The table of medians, then each target: `--wall A B T` (A's median wall time / B's <= T) or
# `--rate A B T` (A's rows per second / B's >= T).
report() { # repeat target-args...
    python3 "$MEASURE_DIR/medians.py" "$WORK/results" "$@"
}
