#!/usr/bin/env python3
"""Summaries of loadgen CSV files for the benchmark scripts (standard library only).

  summarize.py curves --bound-us 500 kvserver.csv memcached.csv
      Each run's curve (offered, achieved, p50/p99/p99.9, drops, validity) and its peak
      throughput at the p99 bound: the highest achieved rate among VALID points whose p99 is
      within the bound (a p99 within the bound also means < 1% drops, since drops are infinite
      latency). With two or more runs: the ratio of each run's peak to the last run's, or "not
      measurable here" and why when either has no peak (no CSV, every point INVALID, or no
      valid point within the bound): never a ratio against a missing value.

  summarize.py ceiling trial1.csv trial2.csv ...
      The loadgen's own ceiling against an instant responder: per offered rate, in how many
      trials the point was VALID (>= --min-adherence on-time sends) and achieved >= 99% of the
      offered rate; the highest rate that passed in a majority of trials, and in any trial; and
      the highest rate whose requests were answered at >= 99% of the offered rate at all.
"""
import argparse
import csv
import math
import os
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


def try_load(path):
    """The rows of a CSV, or None when the file is missing or has none (the run did not happen)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return None
    return rows or None


def why_no_peak(rows, bound_us):
    """Why a run has no peak at the bound, in plain words."""
    n = len(rows)
    invalid = [r for r in rows if r["valid"] != "1"]
    over = [r for r in rows if r["valid"] == "1" and not num(r["p99_us"]) <= bound_us]
    behind = sum(1 for r in invalid if r.get("invalid_reason", "").startswith("generator fell behind"))
    if len(invalid) == n:
        cause = ("the loadgen fell behind its schedule on this machine" if behind == n
                 else invalid[0].get("invalid_reason") or "see invalid_reason")
        return f"all {n} points INVALID: {cause}"
    parts = [f"{len(over)} valid point(s) over p99 {bound_us:g} us"]
    if invalid:
        parts.append(f"{len(invalid)} INVALID")
    return "no valid point within the bound: " + ", ".join(parts)


def curves(args):
    peaks = []  # (label, peak req/s or None, why not)
    for path in args.csv:
        rows = try_load(path)
        if rows is None:
            label = os.path.splitext(os.path.basename(path))[0]
            why = f"no rows in {path}: the loadgen or the server did not run"
            print(f"{label}: not measured ({why})")
            print()
            peaks.append((label, None, why))
            continue
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
        if best is None or not num(best["achieved_rps"]) > 0:
            why = why_no_peak(rows, args.bound_us) if best is None else "its best point achieved 0 req/s"
            print(f"  peak at p99 <= {args.bound_us:g} us: not measurable here ({why})")
            peaks.append((label, None, why))
        else:
            print(f"  peak at p99 <= {args.bound_us:g} us: {num(best['achieved_rps']):.0f} req/s "
                  f"(offered {num(best['offered_rps']):.0f}, p99 {fmt_us(num(best['p99_us']))} us)")
            peaks.append((label, num(best["achieved_rps"]), ""))
        print()
    if len(peaks) >= 2:
        base_label, base, base_why = peaks[-1]
        for label, peak, why in peaks[:-1]:
            name = f"ratio of peak throughput at p99 <= {args.bound_us:g} us: {label} / {base_label}"
            if peak is None or base is None:
                missing = [(label, why)] if peak is None else []
                if base is None:
                    missing.append((base_label, base_why))
                print(f"{name}: not measurable here (" + "; ".join(f"{l}: {w}" for l, w in missing) + ")")
            else:
                print(f"{name} = {peak / base:.1f}x ({peak:.0f} / {base:.0f} req/s)")


def ceiling(args):
    by_rate = {}
    for path in args.csv:
        for r in load(path):
            rate = num(r["offered_rps"])
            ok = r["valid"] == "1" and num(r["achieved_rps"]) >= 0.99 * rate
            by_rate.setdefault(rate, []).append((ok, r))
    trials = len(args.csv)
    if not by_rate:
        print("ceiling: not measurable here (no trial produced a CSV: the loadgen or the reflector did not run)")
        return
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
    # A rate of 0 here means none qualified: say why rather than print "0 req/s".
    every = [r for res in by_rate.values() for _, r in res]
    if any(r["valid"] == "1" for r in every):
        none_passed = "not measurable here (no valid point had >= 99% of its offered rate answered)"
    else:
        best_on_time = max(num(r["adherence_pct"]) for r in every)
        none_passed = (f"not measurable here (every point INVALID: the best on-time share was "
                       f"{best_on_time:.2f}%, below --min-adherence on this machine)")

    def rate_or_why(v, why):
        return f"{v:.0f} req/s per core" if v > 0 else why

    print(f"ceiling (passed in a majority of {trials} trials): {rate_or_why(majority, none_passed)}")
    print(f"ceiling (passed in at least one trial):           {rate_or_why(any_pass, none_passed)}")
    kept = f"{keeps_up:.0f} req/s" if keeps_up > 0 else "not measurable here (no rate had >= 99% answered)"
    print(f"throughput kept up (>= 99% of offered answered, on-time share aside): {kept}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("curves")
    c.add_argument("--bound-us", type=float, default=500)
    c.add_argument("csv", nargs="+")
    k = sub.add_parser("ceiling")
    k.add_argument("csv", nargs="*")
    args = ap.parse_args()
    curves(args) if args.cmd == "curves" else ceiling(args)


if __name__ == "__main__":
    main()
