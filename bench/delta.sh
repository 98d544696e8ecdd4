#!/usr/bin/env bash
# Delta benchmark (a script, not a test): pipectl's Delta merge against the Python deltalake
# package's `merge` on the same data in the same run, and compaction of 1,000 small files.
#
#   bench/delta.sh            (builds crates/delta/examples/delta_bench.rs with the fast profile;
#                              PROFILE=release reuses a `cargo install` build's target dir)
#
# A table of ROWS rows (default 2,000,000) gets CHANGES changes (default 100,000: 50% updates,
# 40% inserts, 10% deletes) merged by key, the highest `seq` winning and `op = 'D'` deleting;
# the same base table (copied) and the same changes (one Parquet file) go through
# `deltalake.DeltaTable.merge` (delta-rs under Python). Each merge runs in its own process;
# prints wall time and peak RSS of each, and the ratio. The Python side is installed into
# ~/.cache/pipectl-tools/bench-venv on first use.
set -euo pipefail

ROWS=${ROWS:-2000000}
CHANGES=${CHANGES:-100000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PROFILE=${PROFILE:-fast}
(cd "$ROOT" && cargo build -q --locked --profile "$PROFILE" -p pipectl-delta --example delta_bench)
BIN=$CARGO_TARGET_DIR/$PROFILE/examples/delta_bench
VENV="$HOME/.cache/pipectl-tools/bench-venv"
if ! "$VENV/bin/python" -c 'import deltalake, pyarrow' 2>/dev/null; then
    python3 -m venv "$VENV" && "$VENV/bin/pip" -q install pyarrow 'deltalake==1.6.6'
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$BIN" prepare "$WORK" "$ROWS" "$CHANGES"
cp -r "$WORK/table" "$WORK/table_py"
pipectl_line=$("$BIN" merge "$WORK" table)
echo "pipectl  $pipectl_line"
python_line=$("$VENV/bin/python" - "$WORK" <<'PY'
import resource, sys, time
import pyarrow.parquet as pq
from deltalake import DeltaTable
work = sys.argv[1]
changes = pq.read_table(f"{work}/changes.parquet")
started = time.time()
# As pipectl's merge: per key the highest seq wins (one change per key here), 'D' deletes.
(DeltaTable(f"{work}/table_py")
    .merge(source=changes, predicate="t.id = s.id", source_alias="s", target_alias="t")
    .when_matched_delete(predicate="s.op = 'D' and s.seq >= t.seq")
    .when_matched_update_all(predicate="s.seq >= t.seq")
    .when_not_matched_insert_all(predicate="s.op <> 'D'")
    .execute())
seconds = time.time() - started
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(f"merge {seconds:.2f} s, peak RSS {rss} MB (reading the changes included), {changes.num_rows} changes")
PY
)
echo "deltalake $python_line"
python3 - "$pipectl_line" "$python_line" <<'PY'
import sys
a, b = (float(l.split()[1]) for l in sys.argv[1:3])
print(f"merge ratio pipectl / deltalake: {a / b:.2f}x (target <= 1.0x)")
PY
# Both merges give the same table.
"$VENV/bin/python" - "$WORK" <<'PY'
import sys
from deltalake import DeltaTable
work = sys.argv[1]
a = DeltaTable(f"{work}/table").to_pyarrow_table().sort_by("id")
b = DeltaTable(f"{work}/table_py").to_pyarrow_table().select(a.column_names).sort_by("id")
print("same rows after both merges:", a.num_rows == b.num_rows and a.equals(b.cast(a.schema)), f"({a.num_rows} rows)")
PY
echo "pipectl  $("$BIN" compact "$WORK")"
