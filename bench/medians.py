"""Prints the medians of bench/measure.sh's results and checks targets.

usage: medians.py RESULTS REPEAT [--wall A B TARGET | --rate A B TARGET]...

--wall: A's median wall time / B's must be <= TARGET; --rate: A's rows per second / B's must be
>= TARGET. Labels are matched exactly.
"""

import statistics
import sys

results, repeat, targets = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = {}
for line in open(results):
    label, wall, cpu, kb, rows = line.rstrip("\n").split("\t")
    runs.setdefault(label, []).append((float(wall), float(cpu), int(kb), int(rows)))
width = max([56] + [len(label) for label in runs])
print(f"{'what (median of ' + repeat + ' runs where repeated)':<{width}} {'wall s':>7} {'cpu s':>7} {'rows/s':>10} {'peak MB':>8}  all wall s")
median = {}
for label, rs in runs.items():
    walls = sorted(r[0] for r in rs)
    m = statistics.median(walls)
    rows = rs[0][3]
    median[label] = (m, rows)
    cpu = statistics.median(r[1] for r in rs)
    peak = max(r[2] for r in rs) / 1024
    print(f"{label:<{width}} {m:>7.2f} {cpu:>7.2f} {rows / m if m else 0:>10.0f} {peak:>8.1f}  {' '.join(f'{w:.2f}' for w in walls)}")
if targets:
    print("targets:")
while targets:
    kind, a, b, target = targets[0], targets[1], targets[2], float(targets[3])
    targets = targets[4:]
    (wa, ra), (wb, rb) = median[a], median[b]
    if kind == "--wall":
        r, ok, sign = wa / wb, wa / wb <= target, "<="
        what = f"{a} / {b} (wall time)"
    else:
        r = (ra / wa) / (rb / wb) if wa and wb and rb else 0.0
        ok, sign = r >= target, ">="
        what = f"{a} / {b} (rows per second)"
    print(f"  {what} = {r:.2f}  (target {sign} {target:g}) {'ok' if ok else 'MISSED'}")
