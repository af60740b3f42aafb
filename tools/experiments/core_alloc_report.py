#!/usr/bin/env python3
"""Summaries and the plot of tools/experiments/core_alloc.sh: core_alloc_report.py PART OUTDIR,
PART one of steps | command | cpu | plot."""
import csv
import json
import os
import subprocess
import sys


def pct(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def decisions(path):
    try:
        return json.load(open(path))["decisions"]
    except (OSError, ValueError, KeyError):
        return []


def latency_line(label, adds):
    first = [d["first_work_us"] for d in adds if d["first_work_us"] >= 0]
    wake = [d["wake_us"] for d in adds if d["wake_us"] >= 0]
    if not first:
        return f"{label}: {len(adds)} cores added, no first-work time recorded"
    return (f"{label}: {len(adds)} cores added; decision -> woken worker's first work: "
            f"p50 {pct(first, 0.5):.1f} us, p90 {pct(first, 0.9):.1f} us, max {max(first):.1f} us; "
            f"decision -> out of its park: p50 {pct(wake, 0.5):.1f} us")


def merged_steps(out):
    """Timeline rows with the active core count at each interval's start (from dpctl watch)."""
    rows = list(csv.DictReader(open(os.path.join(out, "timeline.csv"))))
    watch = []
    for line in open(os.path.join(out, "cores.jsonl")):
        try:
            j = json.loads(line)
            watch.append((j["unix_s"], j["active"]))
        except (ValueError, KeyError):
            pass
    watch.sort()
    merged = []
    k = 0
    for r in rows:
        t = float(r["unix_s"])
        while k + 1 < len(watch) and watch[k + 1][0] <= t:
            k += 1
        active = watch[k][1] if watch and watch[0][0] <= t else ""
        merged.append({"t_s": float(r["t_ms"]) / 1000, "offered_rps": float(r["offered_rps"]),
                       "achieved_rps": float(r["achieved_rps"]), "p99_us": r["p99_us"],
                       "active": active})
    with open(os.path.join(out, "steps-merged.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(merged[0].keys()) if merged else ["t_s"])
        w.writeheader()
        w.writerows(merged)
    return merged


def steps(out):
    merged = merged_steps(out)
    # One line per run of equal offered rate (the steps), with mean active cores and p99.
    print("load steps (automatic allocation):")
    print(f"{'from_s':>7} {'to_s':>6} {'offered':>9} {'achieved':>9} {'cores(mean)':>11} "
          f"{'p99 us (median of 10ms bins)':>29} {'(max bin)':>10}")
    seg = []
    def flush():
        if not seg:
            return
        off = sum(r["offered_rps"] for r in seg) / len(seg)
        ach = sum(r["achieved_rps"] for r in seg) / len(seg)
        act = [float(r["active"]) for r in seg if r["active"] != ""]
        p99 = [float(r["p99_us"]) for r in seg if r["p99_us"] not in ("", "nan", "inf")]
        print(f"{seg[0]['t_s']:>7.2f} {seg[-1]['t_s'] + 0.01:>6.2f} {off:>9.0f} {ach:>9.0f} "
              f"{(sum(act) / len(act)) if act else float('nan'):>11.2f} "
              f"{pct(p99, 0.5) if p99 else float('nan'):>29.1f} {max(p99) if p99 else float('nan'):>10.1f}")
    level = None
    for r in merged:
        # A new step when the scheduled rate moves by more than half (Poisson noise is smaller).
        if level is not None and abs(r["offered_rps"] - level) > 0.5 * max(level, 1.0) and len(seg) >= 20:
            flush()
            seg = []
        if not seg:
            level = r["offered_rps"]
        seg.append(r)
        level = 0.9 * level + 0.1 * r["offered_rps"] if len(seg) > 1 else level
    flush()
    d = decisions(os.path.join(out, "decisions-steps.json"))
    adds = [x for x in d if x["action"] == "add"]
    rel = [x for x in d if x["action"] == "release"]
    print(f"decisions: {len(adds)} add (queueing delay {', '.join(str(int(x['signal_us'])) for x in adds[:8])}"
          f"{' ...' if len(adds) > 8 else ''} us), {len(rel)} release")
    print(latency_line("congestion-triggered", adds))


def command(out):
    d = decisions(os.path.join(out, "decisions-command.json"))
    # The "set" decisions that woke cores (the others parked them).
    adds = [x for x in d if x["action"] == "set" and x["wake_us"] >= 0]
    print(latency_line("by command (dpctl cores set, under load)", adds))


def cpu(out):
    res = {}
    for line in open(os.path.join(out, "cpu.txt")):
        v, c0, c1, t0, t1 = line.split()
        res[v] = (float(c1) - float(c0), float(t1) - float(t0))
    p99 = {}
    for v in res:
        try:
            r = list(csv.DictReader(open(os.path.join(out, f"cpu-{v}.csv"))))[-1]
            p99[v] = (float(r["all_p99_us"]), float(r["all_achieved_rps"]), r["valid"])
        except (OSError, IndexError, KeyError, ValueError):
            p99[v] = (float("nan"), float("nan"), "?")
    print("CPU used by kvserver at low load:")
    for v, (c, t) in res.items():
        print(f"  {v:12} {c:7.2f} CPU-s over {t:5.2f} s = {c / t:5.2f} cores busy; "
              f"p99 {p99[v][0]:.1f} us at {p99[v][1]:.0f} req/s (valid {p99[v][2]})")
    if "auto" in res and "all-polling" in res:
        a = res["auto"][0] / res["auto"][1]
        b = res["all-polling"][0] / res["all-polling"][1]
        if not b > 0:
            print("  automatic vs all cores polling: not measurable here (all-polling used no CPU time)")
            return
        print(f"  automatic allocation used {a / b * 100:.0f}% of the CPU of all cores polling "
              f"(saved {b - a:.2f} cores)")


def plot(out):
    path = os.path.join(out, "steps-merged.csv")
    if not os.path.exists(path):
        return
    png = os.path.join(out, "core-alloc-steps.png")
    script = f"""
set terminal pngcairo size 1000,700
set output '{png}'
set datafile separator ','
set key autotitle columnhead
set multiplot layout 2,1
set title 'offered load and active cores (automatic allocation)'
set ylabel 'requests/s'
set y2label 'active cores'
set y2tics 1
set ytics nomirror
set yrange [0:*]
set y2range [0:*]
set xlabel 'time (s)'
plot '{path}' using 1:2 with lines title 'offered', '' using 1:3 with lines title 'achieved', \
     '' using 1:5 axes x1y2 with steps lw 2 title 'active cores'
set title 'p99 latency per 10 ms interval'
set ylabel 'p99 (us)'
unset y2label
unset y2tics
set logscale y
set yrange [1:*]
plot '{path}' using 1:4 with lines title 'p99'
unset multiplot
"""
    try:
        subprocess.run(["gnuplot"], input=script.encode(), check=True)
        print(f"plot: {png}")
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"plot: gnuplot failed: {e}")


if __name__ == "__main__":
    {"steps": steps, "command": command, "cpu": cpu, "plot": plot}[sys.argv[1]](sys.argv[2])
