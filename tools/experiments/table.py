#!/usr/bin/env python3
"""Prints loadgen CSV rows as the paper's Table 1 (throughput, latencies in ms) plus p99.9/drops.

The closing line compares each row's p99 with the first row's; a row whose p99 does not measure
the server (its point is INVALID, or more than 1% of requests were lost, so p99 is infinite) is
"not measurable here" with the reason, never a ratio against a missing value."""
import csv
import math
import sys

rows = list(csv.DictReader(open(sys.argv[1])))
cols = ["Tput", "Avg", "Min", "P50", "P95", "P99", "P99.9", "Max", "drops", "valid"]
print(f"{'':17}" + "".join(f"{c:>9}" for c in cols))
for r in rows:
    ms = lambda k: float(r[k]) / 1000.0
    tput = float(r["all_achieved_rps"])
    vals = [f"{tput/1000:.0f}K", f"{ms('all_mean_us'):.3f}", f"{ms('all_min_us'):.3f}",
            f"{ms('all_p50_us'):.3f}", f"{ms('all_p95_us'):.3f}", f"{ms('all_p99_us'):.3f}",
            f"{ms('all_p999_us'):.3f}", f"{ms('all_max_us'):.3f}", r["drops"], r["valid"]]
    print(f"{r['label']:17}" + "".join(f"{v:>9}" for v in vals))


def p99_or_why(r):
    """(p99 in us, "") when the row measures the server; else (None, why not)."""
    if r["valid"] != "1":
        return None, f"INVALID: {r.get('invalid_reason') or 'see the CSV'}"
    p99 = float(r["all_p99_us"])
    if not math.isfinite(p99):
        return None, f"p99 infinite: {r['drops']} of {r['all_requests']} requests lost"
    if p99 <= 0:
        return None, "no latency recorded"
    return p99, ""


if len(rows) > 1:
    base = rows[0]
    base_p99, base_why = p99_or_why(base)
    if base_p99 is None:
        print(f"p99 relative to the first row: not measurable here ({base['label']}: {base_why})")
    else:
        parts = []
        for r in rows:
            p99, why = p99_or_why(r)
            parts.append(f"{r['label']} {p99 / base_p99:.2f}x" if p99 is not None
                         else f"{r['label']} not measurable here ({why})")
        print("p99 relative to the first row: " + ", ".join(parts))
