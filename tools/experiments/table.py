#!/usr/bin/env python3
"""Prints loadgen CSV rows as the paper's Table 1 (throughput, latencies in ms) plus p99.9/drops."""
import csv
import sys

rows = list(csv.DictReader(open(sys.argv[1])))
cols = ["Tput", "Avg", "Min", "P50", "P95", "P99", "P99.9", "Max", "drops", "valid"]
print(f"{'':17}" + "".join(f"{c:>9}" for c in cols))
base = None
for r in rows:
    ms = lambda k: float(r[k]) / 1000.0
    tput = float(r["all_achieved_rps"])
    vals = [f"{tput/1000:.0f}K", f"{ms('all_mean_us'):.3f}", f"{ms('all_min_us'):.3f}",
            f"{ms('all_p50_us'):.3f}", f"{ms('all_p95_us'):.3f}", f"{ms('all_p99_us'):.3f}",
            f"{ms('all_p999_us'):.3f}", f"{ms('all_max_us'):.3f}", r["drops"], r["valid"]]
    print(f"{r['label']:17}" + "".join(f"{v:>9}" for v in vals))
    if base is None:
        base = r
if base is not None and len(rows) > 1:
    print("p99 relative to the first row: " + ", ".join(
        f"{r['label']} {float(r['all_p99_us']) / max(float(base['all_p99_us']), 1e-9):.2f}x" for r in rows))
