#!/usr/bin/env python3
"""Summaries of loadgen CSV files for the benchmark scripts (standard library only).

  summarize.py curves --bound-us 500 kvserver.csv memcached.csv
      Each run's curve (offered, achieved, p50/p99/p99.9, drops, validity) and its peak
      throughput at the p99 bound: the highest achieved rate among VALID points whose p99 is
      within the bound (a p99 within the bound also means < 1% drops, since drops are infinite
      latency). With two or more runs: the ratio of each run's peak to the last run's.

  summarize.py ceiling trial1.csv trial2.csv ...
      The loadgen's own ceiling against an instant responder: per offered rate, in how many
      trials the point was VALID (>= --min-adherence on-time sends) and achieved >= 99% of the
      offered rate; the highest rate that passed in a majority of trials, and in any trial; and
      the highest rate whose requests were answered at >= 99% of the offered rate at all.
"""
import argparse
import csv
import math
import sys


def num(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def fmt_us(v):
    if math.isinf(v):
        return "inf"
    if math.isnan(v):
        return "-"
    return f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"summarize.py: {path}: no rows")
    return rows


def curves(args):
    peaks = []
    for path in args.csv:
        rows = load(path)
        label = rows[0].get("label") or path
        print(f"{label} ({path}; {rows[0].get('backend')}, server {rows[0].get('server')}):")
        print(f"  {'offered':>10} {'achieved':>10} {'p50':>8} {'p99':>8} {'p99.9':>8} {'drops':>7} "
              f"{'on-time':>8}  valid")
        best = None
        for r in rows:
            ach, p99 = num(r["achieved_rps"]), num(r["p99_us"])
            valid = r["valid"] == "1"
            mark = ""
            if valid and p99 <= args.bound_us:
                if best is None or ach > num(best["achieved_rps"]):
                    best = r
                mark = "  <= bound"
            print(f"  {num(r['offered_rps']):>10.0f} {ach:>10.0f} {fmt_us(num(r['p50_us'])):>8} "
                  f"{fmt_us(p99):>8} {fmt_us(num(r['p999_us'])):>8} {r['drops']:>7} "
                  f"{num(r['adherence_pct']):>7.2f}%  {'ok' if valid else 'INVALID'}{mark}")
        if best is None:
            print(f"  peak at p99 <= {args.bound_us:g} us: none (no valid point within the bound)")
            peaks.append((label, 0.0))
        else:
            print(f"  peak at p99 <= {args.bound_us:g} us: {num(best['achieved_rps']):.0f} req/s "
                  f"(offered {num(best['offered_rps']):.0f}, p99 {fmt_us(num(best['p99_us']))} us)")
            peaks.append((label, num(best["achieved_rps"])))
        print()
    if len(peaks) >= 2:
        base_label, base = peaks[-1]
        for label, peak in peaks[:-1]:
            if base > 0:
                print(f"ratio of peak throughput at p99 <= {args.bound_us:g} us: {label} / {base_label} "
                      f"= {peak / base:.1f}x ({peak:.0f} / {base:.0f} req/s)")
            else:
                print(f"ratio: undefined ({base_label} has no valid point within the bound)")


def ceiling(args):
    by_rate = {}
    for path in args.csv:
        for r in load(path):
            rate = num(r["offered_rps"])
            ok = r["valid"] == "1" and num(r["achieved_rps"]) >= 0.99 * rate
            by_rate.setdefault(rate, []).append((ok, r))
    trials = len(args.csv)
    print(f"  {'offered':>10}  passed  {'achieved (best)':>15} {'on-time (best)':>15} {'p99 (best)':>10}")
    majority = any_pass = keeps_up = 0.0
    for rate in sorted(by_rate):
        res = by_rate[rate]
        passed = sum(1 for ok, _ in res if ok)
        if any(num(r["achieved_rps"]) >= 0.99 * rate for _, r in res):
            keeps_up = max(keeps_up, rate)
        best = max(res, key=lambda x: num(x[1]["adherence_pct"]))[1]
        print(f"  {rate:>10.0f}  {passed}/{len(res)}   {num(best['achieved_rps']):>15.0f} "
              f"{num(best['adherence_pct']):>14.2f}% {fmt_us(num(best['p99_us'])):>10}")
        if passed * 2 > len(res):
            majority = max(majority, rate)
        if passed:
            any_pass = max(any_pass, rate)
    print(f"ceiling (passed in a majority of {trials} trials): {majority:.0f} req/s per core")
    print(f"ceiling (passed in at least one trial):           {any_pass:.0f} req/s per core")
    print(f"throughput kept up (>= 99% of offered answered, on-time share aside): {keeps_up:.0f} req/s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("curves")
    c.add_argument("--bound-us", type=float, default=500)
    c.add_argument("csv", nargs="+")
    k = sub.add_parser("ceiling")
    k.add_argument("csv", nargs="+")
    args = ap.parse_args()
    curves(args) if args.cmd == "curves" else ceiling(args)


if __name__ == "__main__":
    main()
