#!/usr/bin/env python3
"""Latency-throughput curves from loadgen CSV files, drawn by gnuplot (Debian's gnuplot-nox).

One line per run and percentile: p50, p99 and p99.9 (or --percentiles) against achieved
throughput, every run on the same axes so runs compare on one plot. A run is a CSV file, or one
`label` within a file that holds several. INVALID points (the generator fell behind) are drawn
as crosses and never joined to the curve; points whose percentile is infinite (drops) are left
out and break the line there. Optional: a horizontal line at a p99 bound (--bound-us).

  tools/loadgen/plot.py -o curves.png a.csv b.csv [--title T] [--op all|get|set|mget] [--bound-us 500]
"""
import argparse
import csv
import math
import os
import shutil
import subprocess
import sys
import tempfile

PERCENTILES = {"p50": "p50", "p90": "p90", "p99": "p99", "p999": "p99.9", "p9999": "p99.99"}


def number(text):
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def load_runs(paths, op):
    """Returns [(label, [row dicts sorted by achieved throughput])] in file/label order."""
    runs = []
    for path in paths:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            print(f"plot.py: {path}: no rows", file=sys.stderr)
            continue
        if f"{op}_achieved_rps" not in rows[0]:
            sys.exit(f"plot.py: {path}: not a loadgen CSV (no {op}_achieved_rps column)")
        by_label = {}
        for r in rows:
            by_label.setdefault(r.get("label") or os.path.basename(path), []).append(r)
        for label, rs in by_label.items():
            rs.sort(key=lambda r: number(r[f"{op}_achieved_rps"]) or 0.0)
            runs.append((label, rs))
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+", help="loadgen --csv files")
    ap.add_argument("-o", "--output", required=True, help="PNG file to write")
    ap.add_argument("--title", default="latency vs throughput")
    ap.add_argument("--op", default="all", choices=["all", "get", "set", "mget"])
    ap.add_argument("--percentiles", default="p50,p99,p999",
                    help="comma-separated among " + ",".join(PERCENTILES))
    ap.add_argument("--bound-us", type=float, default=0, help="draw a p99 bound at this latency")
    ap.add_argument("--linear", action="store_true", help="linear latency axis (default: log)")
    args = ap.parse_args()

    pcts = [p.strip() for p in args.percentiles.split(",") if p.strip()]
    for p in pcts:
        if p not in PERCENTILES:
            sys.exit(f"plot.py: --percentiles: unknown '{p}' (choose from {', '.join(PERCENTILES)})")
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        sys.exit("plot.py: gnuplot is not installed (tools/setup.sh installs gnuplot-nox)")
    runs = load_runs(args.csv, args.op)
    if not runs:
        sys.exit("plot.py: nothing to plot")

    tmp = tempfile.mkdtemp(prefix="loadgen-plot.")
    plots = []
    dash = {"p50": 1, "p90": 4, "p99": 2, "p999": 3, "p9999": 5}
    point = {"p50": 7, "p90": 9, "p99": 5, "p999": 13, "p9999": 11}
    try:
        for ri, (label, rows) in enumerate(runs):
            color = ri + 1
            for p in pcts:
                ok_path = os.path.join(tmp, f"run{ri}_{p}_ok.dat")
                bad_path = os.path.join(tmp, f"run{ri}_{p}_bad.dat")
                n_ok = n_bad = 0
                with open(ok_path, "w") as ok, open(bad_path, "w") as bad:
                    for r in rows:
                        x = number(r[f"{args.op}_achieved_rps"])
                        y = number(r[f"{args.op}_{p}_us"])
                        if x is None or y is None or y <= 0:
                            ok.write("\n")  # an infinite percentile (drops) breaks the line
                            continue
                        if r.get("valid", "1") == "1":
                            ok.write(f"{x / 1000.0} {y}\n")
                            n_ok += 1
                        else:
                            bad.write(f"{x / 1000.0} {y}\n")
                            n_bad += 1
                title = f"{label} {PERCENTILES[p]}".replace('"', "'")
                if n_ok:
                    plots.append(f"'{ok_path}' using 1:2 with linespoints lc {color} dt {dash[p]} "
                                 f"pt {point[p]} ps 0.8 lw 1.5 title \"{title}\"")
                if n_bad:
                    plots.append(f"'{bad_path}' using 1:2 with points lc {color} pt 2 ps 1.2 "
                                 f"title \"{title} (INVALID)\"")
        if args.bound_us > 0:
            plots.append(f"{args.bound_us} with lines lc rgb '#888888' dt 2 lw 1 "
                         f"title \"p99 bound {args.bound_us:g} us\"")
        if not plots:
            sys.exit("plot.py: no finite latency to plot")
        script = "\n".join([
            "set terminal pngcairo size 1100,700 enhanced font 'sans,10'",
            f"set output '{args.output}'",
            f"set title \"{args.title}\" noenhanced",
            "set xlabel 'achieved throughput (k requests/s)'",
            "set ylabel 'latency (us), from the scheduled send time'",
            "" if args.linear else "set logscale y",
            "set grid",
            "set key outside right top noenhanced",
            "set xrange [0:*]",
            "plot " + ", \\\n     ".join(plots),
        ]) + "\n"
        res = subprocess.run([gnuplot], input=script, text=True, capture_output=True)
        if res.returncode != 0:
            sys.exit(f"plot.py: gnuplot failed:\n{res.stderr}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"plot.py: wrote {args.output} ({len(runs)} run(s))")


if __name__ == "__main__":
    main()
