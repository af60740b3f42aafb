#!/usr/bin/env python3
"""The one table and report printer of the experiment, benchmark and device scripts (standard
library only). Every subcommand reads loadgen CSV files (or a script's output folder) and prints
plain text; a value that cannot be measured (no CSV, every point INVALID, no valid point within
the bound, an infinite p99) is "not measurable here" with the reason, never a ratio against a
missing value.

  report.py table1 [--capacity CSV] [--bound-us B] CSV
                                       the paper's Table 1 (tools/experiments/table1.sh)
  report.py bimodal CSV                short and long requests' latencies (bimodal.sh)
  report.py points CSV                 one line per point (local_fraction.sh)
  report.py peaks [--bound-us 500] [--who curves] CSV
                                       each run's peak at the p99 bound (curves.sh)
  report.py fetch-latency [--bound-us 500] CSV
                                       peaks and async/sync per fetch latency (fetch_latency.sh)
  report.py predictor NAME STATS_JSON  the fault predictor's accuracy and far memory's reclaim and
                                       prefetch counters (from dpctl stats --json)
  report.py busy NAME BEFORE AFTER CSV the server's busy share between two dpctl stats snapshots
                                       next to the loadgen's (who saturated)
  report.py core-alloc steps|command|cpu|plot OUTDIR
                                       the parts of tools/experiments/core_alloc.sh
  report.py curves [--bound-us 500] CSV...
                                       curves and peak ratios (tools/bench/kvserver_vs_memcached.sh)
  report.py ceiling CSV...             the loadgen's own ceiling (tools/bench/loadgen_ceiling.sh)
  report.py striping CSV                capacity with 1, 2, 3 memory nodes (memnode_failure.sh)
  report.py memnode-failure [--replicas R] [--repair-gbps G] OUTDIR
                                       tools/experiments/memnode_failure.sh's timeline and verdict
  report.py scaling --modes M --cores C [--bound-us 500] [--peak C MODE] scaling.csv
                                       the table of tools/device/scaling.sh, or one run's peak

Every peak and capacity (peaks, fetch-latency, curves, scaling, ceiling, striping, table1's Tput)
follows one rule: the highest offered rate such that that point and every lower-rate point of
the same run passed. A point passes when it is VALID (the loadgen kept its schedule), >= 99% of
its requests were answered (replies / requests; achieved / offered where a CSV has no counts),
and, where a bound applies, its p99 is within it. So an INVALID point never counts, and it ends
the run's peak: the peak below it is printed as a lower bound (">= 450K"), with the point that
ended it and how many passing points above it were not counted. A run whose lowest point failed
has no peak ("not measurable here: its lowest point ... was INVALID"). A peak is a value (no
">=") only when a VALID point above it failed: the run reached saturation. Ratios of two peaks
are values only when both are; with one lower bound they are bounds (">=", "<="), with two
"not measurable here". Peaks are offered rates; the achieved rate at the peak is printed too.
"""
import argparse
import csv
import json
import math
import os
import subprocess
import sys


# --- shared -----------------------------------------------------------------------------------

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


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def load(path):
    rows = read_rows(path)
    if not rows:
        sys.exit(f"report.py: {path}: no rows")
    return rows


def try_load(path):
    """The rows of a CSV, or None when the file is missing or has none (the run did not happen)."""
    try:
        rows = read_rows(path)
    except OSError:
        return None
    return rows or None


def by_label(rows):
    """{label: [rows]} in the order the labels first appear."""
    out = {}
    for r in rows:
        out.setdefault(r["label"], []).append(r)
    return out


def within(r, bound_us, p99="p99_us"):
    """A VALID point whose p99 is within the bound."""
    return r["valid"] == "1" and num(r[p99]) <= bound_us


def answered_share(r, achieved="achieved_rps"):
    """The share of a point's requests that were answered: replies / requests where the CSV has
    them (loadgen CSVs), else achieved / offered (tools/device/scaling.sh's scaling.csv)."""
    req, rep = num(r.get("all_requests")), num(r.get("all_replies"))
    if req > 0 and rep >= 0:
        return rep / req
    off = num(r.get("offered_rps"))
    return num(r.get(achieved)) / off if off > 0 else math.nan


def fails(r, bound_us=None, achieved="achieved_rps", p99="p99_us"):
    """Why a point did not pass, in plain words; "" when it passed (see the module's doc)."""
    if r["valid"] != "1":
        return f"INVALID: {r.get('invalid_reason') or 'see the CSV'}"
    share = answered_share(r, achieved)
    if not share >= 0.99:
        return f"{100 * share:.1f}% of its requests answered (< 99%)"
    if bound_us is not None and not num(r[p99]) <= bound_us:
        return f"p99 {fmt_us(num(r[p99]))} us over {bound_us:g} us"
    return ""


class Capacity:
    """A run's capacity by the rule of the module's doc. row: the point of the capacity (None:
    no rate passed); stop: the lowest point that failed (None: every point passed, the sweep did
    not reach saturation); why: stop's reason; above: points above stop that passed (not counted)."""

    def __init__(self, row, stop, why, above):
        self.row, self.stop, self.why, self.above = row, stop, why, above

    def rate(self):
        """The capacity in req/s (the offered rate of its point), or None."""
        return num(self.row["offered_rps"]) if self.row is not None else None

    def exact(self):
        """True when a VALID point above it failed: the run reached saturation, the capacity is a
        value; False when it is only a lower bound (the sweep stopped first, or an INVALID point
        came next and says nothing about the server)."""
        return self.row is not None and self.stop is not None and self.stop["valid"] == "1"

    def invalid_stop(self):
        return self.stop is not None and self.stop["valid"] != "1"

    def note(self):
        """Why the capacity is what it is, one clause."""
        if self.stop is None:
            return ("no points" if self.row is None else
                    "every point passed: the sweep did not reach saturation")
        at = f"{num(self.stop['offered_rps']):.0f} req/s"
        if self.row is None:
            head = f"its lowest point ({at}) failed: {self.why}"
        elif self.invalid_stop():
            head = f"the next point ({at}) was INVALID, so the capacity above it is not known"
        else:
            head = f"the next point ({at}) failed: {self.why}"
        if self.above:
            head += f"; {self.above} passing point(s) above it not counted"
        return head

    def text(self):
        """'450K' (a value), '>= 450K' (a lower bound), or None (not measurable)."""
        if self.row is None:
            return None
        return f"{'' if self.exact() else '>= '}{self.rate() / 1000:.0f}K"


def capacity(rows, bound_us=None, achieved="achieved_rps", p99="p99_us"):
    """The Capacity of one run's points (any order): the highest offered rate such that every
    point at it and at every lower rate passed (fails() is "")."""
    by_rate = {}
    for r in rows:
        by_rate.setdefault(num(r["offered_rps"]), []).append(r)
    rates = sorted(by_rate)
    best = None
    for i, rate in enumerate(rates):
        bad = [(r, fails(r, bound_us, achieved, p99)) for r in by_rate[rate]]
        bad = [(r, why) for r, why in bad if why]
        if bad:
            above = sum(1 for hi in rates[i + 1:] for r in by_rate[hi]
                        if not fails(r, bound_us, achieved, p99))
            return Capacity(best, bad[0][0], bad[0][1], above)
        best = max(by_rate[rate], key=lambda r: num(r[achieved]))
    return Capacity(best, None, "", 0)


def ratio_text(a, b):
    """a / b of two Capacity values: '2.57x', '>= 2.57x' (a is a lower bound), '<= 2.57x' (b is),
    or None with the reason when both are only lower bounds or one is missing."""
    if a.row is None or b.row is None:
        return None, "a side has no capacity"
    r = a.rate() / b.rate()
    if a.exact() and b.exact():
        return f"{r:.2f}x", ""
    if b.exact():
        return f">= {r:.2f}x", ""
    if a.exact():
        return f"<= {r:.2f}x", ""
    return None, f"both are lower bounds ({r:.2f}x between them)"


def bound_note(caps, labels):
    """' (X's capacity is only a lower bound)' for those of labels whose Capacity is not exact."""
    lower = [l for l in labels if caps[l].row is not None and not caps[l].exact()]
    return f" ({' and '.join(lower)}: only a lower bound)" if lower else ""


def n_invalid(rows):
    return sum(1 for r in rows if r["valid"] != "1")


# --- tools/experiments ------------------------------------------------------------------------

def runs_of(rows):
    """{label: [[rows of one loadgen run], ...]}: a run is a label and the loadgen's start
    timestamp (each run of a script is its own loadgen command), in the order they appear."""
    out = {}
    for r in rows:
        runs = out.setdefault(r["label"], {})
        runs.setdefault(r.get("timestamp", ""), []).append(r)
    return {label: list(runs.values()) for label, runs in out.items()}


def table1(args):
    """The paper's Table 1: per mode the throughput (achieved capacity, from table1.sh's sweep to
    saturation, --capacity CSV) and the latencies in ms at the one offered load of CSV, plus
    p99.9 and drops. Where a mode ran in several interleaved trials (table1.sh TRIALS), the
    latency columns are the medians over its VALID trials and a line gives each p99's median
    (range). The closing line compares each row's p99 with the first row's; a row whose p99 does
    not measure the server (every trial INVALID, or more than 1% of requests lost, so p99 is
    infinite) is "not measurable here" with the reason."""
    rows = read_rows(args.csv)
    trials = {label: [rs[0] for rs in runs] for label, runs in runs_of(rows).items()}
    caps = {}
    if args.capacity:
        cap_rows = try_load(args.capacity) or []
        for label, runs in runs_of(cap_rows).items():
            caps[label] = [capacity(rs, args.bound_us, "all_achieved_rps", "all_p99_us") for rs in runs]

    def tput(label):
        """The Tput cell: the median capacity over the label's sweeps, '>=' when any is a bound."""
        got = [c for c in caps.get(label, []) if c.row is not None]
        if not got:
            return "n/m" if label in caps else "-"
        med, _, _ = median_range([c.rate() for c in got])
        exact = all(c.exact() for c in got) and len(got) == len(caps[label])
        return f"{'' if exact else '>='}{med / 1000:.0f}K"

    def measured(rs):
        """The trials whose p99 measures the server (VALID, finite, > 0)."""
        return [r for r in rs if r["valid"] == "1" and 0 < num(r["all_p99_us"]) < math.inf]

    cols = ["Tput", "Load", "Avg", "Min", "P50", "P95", "P99", "P99.9", "Max", "drops", "valid"]
    print(f"{'':17}" + "".join(f"{c:>9}" for c in cols))
    for label, rs in trials.items():
        use = measured(rs) or rs  # every trial INVALID: show them, the valid column says so

        def ms(k):
            return median_range([num(r[k]) for r in use])[0] / 1000.0
        ok = sum(1 for r in rs if r["valid"] == "1")
        drops = median_range([num(r["drops"]) for r in use])[0]
        vals = [tput(label), f"{num(rs[0]['offered_rps']) / 1000:.0f}K", f"{ms('all_mean_us'):.3f}",
                f"{ms('all_min_us'):.3f}", f"{ms('all_p50_us'):.3f}", f"{ms('all_p95_us'):.3f}",
                f"{ms('all_p99_us'):.3f}", f"{ms('all_p999_us'):.3f}", f"{ms('all_max_us'):.3f}",
                f"{drops:.0f}", rs[0]["valid"] if len(rs) == 1 else f"{ok}/{len(rs)}"]
        print(f"{label:17}" + "".join(f"{v:>9}" for v in vals))
    bound = f", p99 <= {args.bound_us:g} us" if args.bound_us is not None else ""
    if not caps:
        print("Tput: not measured in this run (no capacity sweep: tools/experiments/table1.sh "
              "CAPACITY_RATES); Load is the offered rate of the latency columns, not a capacity")
    else:
        print(f"Tput = achieved capacity: the highest offered rate such that it and every lower rate "
              f"of a sweep passed (VALID, >= 99% answered{bound}); '>=': a lower bound; n/m: not "
              f"measurable. Load: the offered rate of the latency columns.")
        for label in trials:
            for i, c in enumerate(caps.get(label, [])):
                print(f"  {label} sweep {i + 1}: {c.text() or 'not measurable here'} ({c.note()})")
    if any(len(rs) > 1 for rs in trials.values()):
        parts = []
        for label, rs in trials.items():
            got = measured(rs)
            if got:
                med, lo, hi = median_range([num(r["all_p99_us"]) for r in got])
                parts.append(f"{label} {med:.1f} ({lo:.1f}-{hi:.1f}) us over {len(got)} of {len(rs)}")
            else:
                parts.append(f"{label}: no valid trial of {len(rs)}")
        print("p99, median (range) of the VALID trials: " + "; ".join(parts))

    def p99_or_why(label):
        """(median p99 in us, "") when the mode's trials measure the server; else (None, why not)."""
        rs = trials[label]
        got = measured(rs)
        if got:
            return median_range([num(r["all_p99_us"]) for r in got])[0], ""
        r = rs[0]
        if r["valid"] != "1":
            return None, f"INVALID: {r.get('invalid_reason') or 'see the CSV'}"
        if not math.isfinite(num(r["all_p99_us"])):
            return None, f"p99 infinite: {r['drops']} of {r['all_requests']} requests lost"
        return None, "no latency recorded"

    if len(trials) > 1:
        labels = list(trials)
        base_p99, base_why = p99_or_why(labels[0])
        if base_p99 is None:
            print(f"p99 relative to the first row: not measurable here ({labels[0]}: {base_why})")
        else:
            parts = []
            for label in labels:
                p99, why = p99_or_why(label)
                parts.append(f"{label} {p99 / base_p99:.2f}x" if p99 is not None
                             else f"{label} not measurable here ({why})")
            print("p99 relative to the first row: " + ", ".join(parts))


def bimodal(args):
    rows = read_rows(args.csv)

    def f(r, k):
        return float(r[k]) if r.get(k) not in (None, "", "nan") else float("nan")
    print(f"{'':24}{'achieved':>10}{'short p50':>11}{'p99':>9}{'p99.9':>9}{'long p50':>10}{'p99':>9}"
          f"{'p99.9':>9}{'drops':>7}{'valid':>6}")
    for r in rows:
        print(f"{r['label']:24}{f(r,'all_achieved_rps'):>10.0f}{f(r,'get_p50_us'):>11.1f}"
              f"{f(r,'get_p99_us'):>9.1f}{f(r,'get_p999_us'):>9.1f}{f(r,'mget_p50_us'):>10.1f}"
              f"{f(r,'mget_p99_us'):>9.1f}{f(r,'mget_p999_us'):>9.1f}{r['drops']:>7}{r['valid']:>6}")
    print("(us; short = single-key GETs, long = multi-key GETs)")


def points(args):
    rows = read_rows(args.csv)
    print(f"{'run':>12} {'offered':>9} {'achieved':>9} {'p50 us':>8} {'p99 us':>9} {'valid':>5}")
    for r in rows:
        print(f"{r['label']:>12} {float(r['offered_rps']):9.0f} {float(r['all_achieved_rps']):9.0f} "
              f"{float(r['all_p50_us']):8.1f} {float(r['all_p99_us']):9.1f} {r['valid']:>5}")


def experiment_peaks(rows, bound_us):
    """{label: Capacity at the bound} over the experiments' all_* columns."""
    return {label: capacity(rs, bound_us, "all_achieved_rps", "all_p99_us")
            for label, rs in by_label(rows).items()}


def peak_line(cap):
    """'450K req/s (achieved 449K; why)' or 'not measurable here (why)'."""
    if cap.row is None:
        return f"not measurable here ({cap.note()})"
    ach = num(cap.row.get("all_achieved_rps", cap.row.get("achieved_rps")))
    return f"{cap.text()} req/s (achieved {ach / 1000:.0f}K; {cap.note()})"


def peaks(args):
    for label, cap in experiment_peaks(read_rows(args.csv), args.bound_us).items():
        print(f"{args.who}: {label}: peak at p99 <= {args.bound_us:g} us: {peak_line(cap)}")


def fetch_latency(args):
    rows = read_rows(args.csv)
    groups = by_label(rows)
    caps = experiment_peaks(rows, args.bound_us)

    print(f"peak throughput at p99 <= {args.bound_us:g} us (the highest rate that passed with every "
          "lower one):")
    for label in groups:
        print(f"  {label:16} {peak_line(caps[label])}")
    # Labels are MODE-LATENCYns (fetch_latency.sh); others have no async/sync pair.
    lats = sorted({l.split("-", 1)[1] for l in groups if "-" in l and l.endswith("ns")},
                  key=lambda s: int(s[:-2]) if s[:-2].isdigit() else 0)
    for lat in lats:
        s, a = "sync-" + lat, "async-" + lat
        if s not in caps or a not in caps:
            missing = "; ".join(f"{l}: not run" for l in (a, s) if l not in caps)
            print(f"  async/sync at {lat}: not measurable here ({missing})")
            continue
        ratio, why = ratio_text(caps[a], caps[s])
        if ratio is None:
            why = "; ".join(f"{l}: {caps[l].note()}" for l in (a, s) if caps[l].row is None) or why
            print(f"  async/sync at {lat}: not measurable here ({why})")
        else:
            print(f"  async/sync at {lat}: {ratio}{bound_note(caps, (a, s))}")


def paging(name, s):
    """Where far mode's faults got their frames and data: reclaim and prefetch counters."""
    if s.get("paging_mode") != "far" or "paging_reserve_takes" not in s:
        return
    faults = s["paging_faults"]
    line = (f"{name}: {faults} faults (READ p50 {s['paging_read_p50_ns']} ns, p99 "
            f"{s['paging_read_p99_ns']} ns), {s['paging_writebacks']} write-backs "
            f"({s['paging_reclaim_writebacks']} in the background); faults that swept CLOCK "
            f"themselves {s['paging_direct_reclaims']}, waited for a write-back "
            f"{s['paging_fault_writebacks']}")
    if s.get("sched_prefetch") == 1:
        used, wasted = s["paging_prefetch_used"], s["paging_prefetch_wasted"]
        line += (f"; prefetched {s['paging_prefetches']} pages ({used} used, {wasted} evicted "
                 f"unused, {s['paging_prefetch_no_frame']} skipped: no frame), "
                 f"{s['sched_prefetch_held']} requests waited apart "
                 f"({s['sched_prefetch_overflow']} did not fit)")
    print(line)


def busy(args):
    """Who saturated: the server's busy share (loop iterations that found work, by the TSC)
    between two `dpctl stats --json` snapshots taken around one loadgen run, next to the
    loadgen's own (its CSV's loadgen_busy_pct)."""
    try:
        with open(args.before) as f:
            before = json.load(f)["per_core"]
        with open(args.after) as f:
            after = json.load(f)["per_core"]
    except (OSError, ValueError, KeyError):
        return
    shares, busy_cycles, finished = [], 0, 0
    for b, a in zip(before, after):
        cycles = a.get("loop_cycles", 0) - b.get("loop_cycles", 0)
        if cycles > 0:
            shares.append(100.0 * (a["loop_busy_cycles"] - b["loop_busy_cycles"]) / cycles)
            busy_cycles += a["loop_busy_cycles"] - b["loop_busy_cycles"]
            finished += a.get("sched_finished", 0) - b.get("sched_finished", 0)
    if not shares:
        return
    rows = read_rows(args.csv) if os.path.exists(args.csv) else []
    lg = [f"{num(r.get('loadgen_busy_pct')):.1f}%" for r in rows]
    point = ""
    if rows:
        r = rows[-1]
        point = (f"; achieved {num(r.get('achieved_rps')):.0f} req/s, loadgen on schedule "
                 f"{num(r.get('adherence_pct')):.2f}%, {'VALID' if r.get('valid') == '1' else 'INVALID'}")
    per_req = f", {busy_cycles / finished:.0f} busy cycles per request" if finished else ""
    print(f"{args.name}: server busy {', '.join(f'{s:.1f}%' for s in shares)} of its loop time "
          f"(core {', '.join(str(i) for i in range(len(shares)))}){per_req}; loadgen busy "
          f"{', '.join(lg) if lg else '-'}{point}")


def predictor(args):
    try:
        with open(args.stats) as f:
            s = json.load(f)["server"]
    except (OSError, ValueError, KeyError):
        return
    paging(args.name, s)
    if s.get("sched_predictor", "none") == "none":
        return
    tp, fp = s["predictor_fault_faulted"], s["predictor_fault_clean"]
    fn, tn = s["predictor_clean_faulted"], s["predictor_clean_clean"]
    n = tp + fp + fn + tn
    print(f"{args.name}: predictor classified {n} requests: {tp + fp} fault-likely ({tp} faulted), "
          f"{fn + tn} fault-free ({fn} faulted); accuracy {100 * (tp + tn) / max(n, 1):.1f}%, "
          f"faulting requests caught {100 * tp / (tp + fn) if tp + fn else 100:.1f}%")


# --- core_alloc.sh ----------------------------------------------------------------------------

def pct(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def decisions(path):
    try:
        with open(path) as f:
            return json.load(f)["decisions"]
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
    rows = read_rows(os.path.join(out, "timeline.csv"))
    watch = []
    with open(os.path.join(out, "cores.jsonl")) as f:
        for line in f:
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


def alloc_steps(out):
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


def alloc_command(out):
    d = decisions(os.path.join(out, "decisions-command.json"))
    # The "set" decisions that woke cores (the others parked them).
    adds = [x for x in d if x["action"] == "set" and x["wake_us"] >= 0]
    print(latency_line("by command (dpctl cores set, under load)", adds))


def alloc_cpu(out):
    res = {}
    with open(os.path.join(out, "cpu.txt")) as f:
        for line in f:
            v, c0, c1, t0, t1 = line.split()
            res[v] = (float(c1) - float(c0), float(t1) - float(t0))
    p99 = {}
    for v in res:
        try:
            r = read_rows(os.path.join(out, f"cpu-{v}.csv"))[-1]
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


def alloc_plot(out):
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


def core_alloc(args):
    {"steps": alloc_steps, "command": alloc_command, "cpu": alloc_cpu, "plot": alloc_plot}[args.part](args.outdir)


# --- tools/bench ------------------------------------------------------------------------------

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
    if any(within(r, bound_us) for r in rows):
        return "its best point achieved 0 req/s"
    parts = [f"{len(over)} valid point(s) over p99 {bound_us:g} us"]
    if invalid:
        parts.append(f"{len(invalid)} INVALID")
    return "no valid point within the bound: " + ", ".join(parts)


def curves(args):
    """Each run's curve (offered, achieved, p50/p99/p99.9, drops, validity) and its peak at the p99
    bound; with two or more runs, the ratio of each run's peak to the last run's."""
    peaks_ = []  # (label, Capacity or None: no rows)
    for path in args.csv:
        rows = try_load(path)
        if rows is None:
            label = os.path.splitext(os.path.basename(path))[0]
            why = f"no rows in {path}: the loadgen or the server did not run"
            print(f"{label}: not measured ({why})")
            print()
            peaks_.append((label, None))
            continue
        label = rows[0].get("label") or path
        print(f"{label} ({path}; {rows[0].get('backend')}, server {rows[0].get('server')}):")
        print(f"  {'offered':>10} {'achieved':>10} {'p50':>8} {'p99':>8} {'p99.9':>8} {'drops':>7} "
              f"{'on-time':>8}  valid")
        cap = capacity(rows, args.bound_us)
        for r in sorted(rows, key=lambda r: num(r["offered_rps"])):
            valid = r["valid"] == "1"
            mark = "  <= bound" if within(r, args.bound_us) else ""
            if r is cap.row:
                mark += "  <- peak"
            elif r is cap.stop:
                mark += "  <- first failed"
            print(f"  {num(r['offered_rps']):>10.0f} {num(r['achieved_rps']):>10.0f} "
                  f"{fmt_us(num(r['p50_us'])):>8} {fmt_us(num(r['p99_us'])):>8} "
                  f"{fmt_us(num(r['p999_us'])):>8} {r['drops']:>7} "
                  f"{num(r['adherence_pct']):>7.2f}%  {'ok' if valid else 'INVALID'}{mark}")
        if cap.row is None:
            why = why_no_peak(rows, args.bound_us) if cap.stop is None else cap.note()
            print(f"  peak at p99 <= {args.bound_us:g} us: not measurable here ({why})")
        else:
            best = cap.row
            print(f"  peak at p99 <= {args.bound_us:g} us: {'' if cap.exact() else '>= '}"
                  f"{num(best['offered_rps']):.0f} req/s offered, {num(best['achieved_rps']):.0f} "
                  f"achieved (p99 {fmt_us(num(best['p99_us']))} us; {cap.note()})")
        peaks_.append((label, cap))
        print()
    if len(peaks_) >= 2:
        base_label, base = peaks_[-1]
        for label, cap in peaks_[:-1]:
            name = f"ratio of peak throughput at p99 <= {args.bound_us:g} us: {label} / {base_label}"
            if cap is None or base is None or cap.row is None or base.row is None:
                missing = [(l, c) for l, c in ((label, cap), (base_label, base))
                           if c is None or c.row is None]
                print(f"{name}: not measurable here (" + "; ".join(
                    f"{l}: {'no rows: the loadgen or the server did not run' if c is None else c.note()}"
                    for l, c in missing) + ")")
                continue
            ratio, why = ratio_text(cap, base)
            if ratio is None:
                print(f"{name}: not measurable here ({why})")
            else:
                print(f"{name} = {ratio} ({cap.rate():.0f} / {base.rate():.0f} req/s offered)"
                      f"{bound_note({label: cap, base_label: base}, (label, base_label))}")


def median_range(values):
    """'2.5M (1.5M-2.5M)'-style text pieces: (median, lowest, highest) of a non-empty list."""
    v = sorted(values)
    n = len(v)
    med = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    return med, v[0], v[-1]


def ceiling(args):
    """Per offered rate, in how many trials the point passed (VALID, >= 99% of its requests
    answered); each trial's capacity by the rule of the module's doc, and their median and range;
    the highest rate such that it and every lower rate passed in a majority of trials; and the
    highest rate whose requests were answered at >= 99% of the offered rate at all."""
    by_rate = {}
    trials = []
    for path in args.csv:
        rows = load(path)
        trials.append((path, capacity(rows)))
        for r in rows:
            by_rate.setdefault(num(r["offered_rps"]), []).append((not fails(r), r))
    if not by_rate:
        print("ceiling: not measurable here (no trial produced a CSV: the loadgen or the reflector did not run)")
        return
    print(f"  {'offered':>10}  passed  {'achieved (best)':>15} {'on-time (best)':>15} {'p99 (best)':>10}")
    majority = keeps_up = 0.0
    majority_broken = None
    for rate in sorted(by_rate):
        res = by_rate[rate]
        passed = sum(1 for ok, _ in res if ok)
        if any(num(r["achieved_rps"]) >= 0.99 * rate for _, r in res):
            keeps_up = max(keeps_up, rate)
        best = max(res, key=lambda x: num(x[1]["adherence_pct"]))[1]
        print(f"  {rate:>10.0f}  {passed}/{len(res)}   {num(best['achieved_rps']):>15.0f} "
              f"{num(best['adherence_pct']):>14.2f}% {fmt_us(num(best['p99_us'])):>10}")
        if majority_broken is None:
            if passed * 2 > len(res):
                majority = rate
            else:
                majority_broken = rate
    print("ceiling per trial (the highest rate that passed with every lower rate of that trial):")
    for path, cap in trials:
        print(f"  {path}: {cap.text() + ' req/s' if cap.row is not None else 'not measurable here'} "
              f"({cap.note()})")
    got = [cap.rate() for _, cap in trials if cap.row is not None]
    if got:
        med, lo, hi = median_range(got)
        lower = sum(1 for _, cap in trials if cap.row is not None and not cap.exact())
        print(f"ceiling, median (range) of the {len(got)} of {len(trials)} trials that have one: "
              f"{med:.0f} ({lo:.0f}-{hi:.0f}) req/s per core"
              + (f"; {lower} of them only lower bounds" if lower else ""))
    else:
        print("ceiling: not measurable here (no trial passed its lowest rate: the loadgen fell "
              "behind its schedule on this machine)")
    if majority > 0:
        tail = (f"; at {majority_broken:.0f} a majority did not pass" if majority_broken is not None
                else "; every rate passed in a majority (not saturated)")
        print(f"ceiling (it and every lower rate passed in a majority of {len(trials)} trials): "
              f"{majority:.0f} req/s per core{tail}")
    else:
        print(f"ceiling (it and every lower rate passed in a majority of {len(trials)} trials): "
              f"not measurable here (the lowest rate, {min(by_rate):.0f}, did not pass in a majority)")
    kept = f"{keeps_up:.0f} req/s" if keeps_up > 0 else "not measurable here (no rate had >= 99% answered)"
    print(f"throughput kept up (>= 99% of offered answered, on-time share aside): {kept}")


# --- tools/device/scaling.sh ------------------------------------------------------------------

def scaling(args):
    """scaling.csv (machine,cores,mode,offered_rps,achieved_rps,p50_us,p99_us,p999_us,valid): per
    core count and mode the peak (the rule of the module's doc; the sweeps of one run merged by
    rate) with its p99, async/sync, speed-up over the smallest core count, INVALID points per run
    and the point that ended each peak. With --peak C MODE only that run's peak, as an integer
    (0: none)."""
    rows = read_rows(args.csv)
    runs = {}
    for r in rows:
        runs.setdefault((int(r["cores"]), r["mode"]), []).append(r)
    caps = {key: capacity(rs, args.bound_us) for key, rs in runs.items()}
    peak = {key: cap for key, cap in caps.items() if cap.row is not None}
    if args.peak:
        cap = peak.get((int(args.peak[0]), args.peak[1]))
        print(int(cap.rate()) if cap else 0)
        return
    modes, cores = args.modes.split(), [int(c) for c in args.cores.split()]

    print(f"{'cores':>5}" + "".join(f" {m + ' (p99 us)':>22}" for m in modes) + f" {'async/sync':>10}")
    for c in cores:
        line = f"{c:>5d}"
        for m in modes:
            k = (c, m)
            if k not in runs:
                s = "n/a"
            elif k not in peak:
                s = "-"
            else:
                s = (f"{'' if peak[k].exact() else '>='}{int(peak[k].rate())} "
                     f"({num(peak[k].row['p99_us']):.0f})")
            line += f" {s:>22}"
        ks, ka = (c, "sync"), (c, "async")
        ratio = ratio_text(peak[ka], peak[ks])[0] if ks in peak and ka in peak else None
        line += f" {ratio or '-':>10}"
        print(line)
    print()
    print("speed-up over the smallest core count (peak / peak at that count), and peak per core:")
    for m in modes:
        base = None
        line = f"{m:<9}"
        for c in cores:
            k = (c, m)
            if k not in peak:
                line += f"  C={c}: -"
                continue
            p = peak[k].rate()
            base = base or p
            line += f"  C={c}: {p / base:.2f}x {int(p / c / 1000)}k/core"
        print(line)
    print()
    print("peak = the highest offered rate such that it and every lower rate of the run passed (VALID,")
    print(f">= 99% answered, p99 <= {args.bound_us:g} us); '>=': a lower bound. What ended each peak:")
    for c in cores:
        for m in modes:
            if (c, m) in runs:
                print(f"  C={c} {m}: {caps[(c, m)].note()}")
    print()
    print("INVALID points (loadgen behind schedule) per run:")
    for c in cores:
        for m in modes:
            if (c, m) in runs:
                print(f"  C={c} {m}: {n_invalid(runs[(c, m)])} of {len(runs[(c, m)])}")


def striping(args):
    """Capacity per node count when the link is the bottleneck (the rule of the module's doc, no
    latency bound: VALID and >= 99% answered) and its ratio to one node. Where INVALID points
    leave no capacity, the highest rate answered regardless of validity is printed as indicative
    only, never as a ratio."""
    runs = by_label(load(args.csv))
    caps = {}
    for label, rs in runs.items():
        cap = capacity(rs)
        caps[label] = cap
        # Validity aside: the highest rate below which every point was answered (indicative).
        loose = None
        for r in sorted(rs, key=lambda r: num(r["offered_rps"])):
            if not (answered_share(r) >= 0.99 and num(r["achieved_rps"]) >= 0.99 * num(r["offered_rps"])):
                break
            loose = num(r["achieved_rps"])
        state = f" (INVALID: {n_invalid(rs)} of {len(rs)} points fell behind schedule)" if n_invalid(rs) else ""
        if cap.row is not None:
            print(f"{label}: capacity {cap.text()} req/s ({cap.note()}){state}")
        else:
            print(f"{label}: capacity not measurable here ({cap.note()})")
        if loose and (cap.row is None or loose > num(cap.row["achieved_rps"])):
            print(f"  indicative only, validity aside: answered up to {loose / 1000:.1f}K req/s{state}")
    base = caps.get("nodes=1")
    for label, cap in caps.items():
        if label == "nodes=1" or base is None:
            continue
        ratio, why = ratio_text(cap, base)
        if ratio is None:
            why = "; ".join(f"{l}: {c.note()}" for l, c in (("nodes=1", base), (label, cap))
                            if c.row is None) or why
            print(f"{label} / nodes=1: not measurable here ({why})")
        else:
            print(f"{label} / nodes=1 = {ratio}{bound_note(caps, (label, 'nodes=1'))}")


# --- memnode_failure.sh ----------------------------------------------------------------------

def memnode_failure(args):
    """A timeline in 100 ms rows (from the 10 ms bins) with the kill, the replacement and full
    redundancy marked; the failure window's p99 against steady state; errors, wrong values and
    misses; the rebuild. Exits 1 on any wrong value or miss, or any error with replicas >= 2."""
    out = args.outdir
    rows = try_load(os.path.join(out, "timeline.csv"))
    if rows is None:
        print("memnode failure: no timeline (the loadgen did not run): not measurable here")
        sys.exit(1)
    ev = {}
    with open(os.path.join(out, "events.csv")) as f:
        for line in f:
            k, _, v = line.strip().partition(",")
            ev[k] = float(v) if v else None
    kill, replace = ev.get("kill"), ev.get("replace")
    died = rejoined = full = None
    mn = {}
    try:
        with open(os.path.join(out, "memnodes.json")) as f:
            mn = json.load(f)
    except (OSError, ValueError):
        pass
    for n in mn.get("nodes", []):
        if n.get("rejoins"):  # the server's own clock (ms) for what it saw
            died = (n.get("died_unix_ms") or 0) / 1e3 or None
            rejoined = (n.get("rejoined_unix_ms") or 0) / 1e3 or None
            full = (n.get("rebuilt_unix_ms") or 0) / 1e3 or None
    t0 = num(rows[0]["unix_s"])

    def agg(rs):
        p99 = max((num(r["p99_us"]) for r in rs if num(r["requests"]) > 0), default=0.0)
        return {k: sum(int(num(r[k])) for r in rs) for k in ("requests", "errors", "wrong", "misses", "timeouts")} | {"p99": p99}

    steady = [num(r["p99_us"]) for r in rows if kill and num(r["unix_s"]) < kill - 0.05 and num(r["requests"]) > 0]
    window_end = full if full else (kill + 1.0 if kill else None)
    failing = [r for r in rows if kill and kill <= num(r["unix_s"]) + 0.01 < (window_end or kill) + 0.01]
    print(f"{'t_ms':>6}  {'requests':>8}  {'p99_us':>8}  {'errors':>6}  {'wrong':>5}  {'misses':>6}  {'timeouts':>8}")
    marks = [(kill, "kill -9"), (died, "declared dead"), (replace, "replacement started"),
             (rejoined, "back, rebuilding"), (full, "full redundancy")]
    for i in range(0, len(rows), 10):
        chunk = rows[i:i + 10]
        a = agg(chunk)
        start, end = num(chunk[0]["unix_s"]), num(chunk[-1]["unix_s"]) + 0.01
        note = ", ".join(m for t, m in marks if t and start <= t < end)
        print(f"{(start - t0) * 1e3:6.0f}  {a['requests']:8d}  {fmt_us(a['p99'])}  {a['errors']:6d}  {a['wrong']:5d}  {a['misses']:6d}  {a['timeouts']:8d}  {note}")
    tot = agg(rows)
    print(f"totals: {tot['requests']} requests, {tot['errors']} errors, {tot['wrong']} wrong values, "
          f"{tot['misses']} misses (lost acknowledged writes), {tot['timeouts']} timeouts")
    if steady and failing:
        s99 = pct(steady, 0.5)
        f99s = [num(r["p99_us"]) for r in failing if num(r["requests"]) > 0]
        f99 = pct(f99s, 0.5)
        over = sum(1 for v in f99s if v > 2 * s99)
        print(f"p99 of each 10 ms bin, median: steady state {s99:.1f} us, failure window (kill to "
              f"full redundancy) {f99:.1f} us = {f99 / s99:.2f}x; worst bin: steady {max(steady):.0f} us, "
              f"window {max(f99s):.0f} us; window bins over 2x the steady median: {over} of {len(f99s)}"
              if s99 > 0 else "p99: steady state 0")
    if died and kill:
        print(f"declared dead {(died - kill) * 1e3:.0f} ms after the kill")
    if full and replace and rejoined:
        print(f"full redundancy {full - kill:.3f} s after the kill: back {(rejoined - replace) * 1e3:.0f} ms "
              f"after the replacement started, rebuilt {(full - rejoined) * 1e3:.0f} ms later")
    else:
        print("full redundancy: not reached")
    for n in mn.get("nodes", []):
        if n.get("rejoins"):
            ms = n.get("last_rebuild_ms", 0)
            gbps = n.get('rebuilt', 0) * 4096 * 8 / (ms * 1e-3) / 1e9 if ms else None
            rate = f"{gbps:.2f} Gb/s" if ms else "under 1 ms"
            if gbps is not None and args.repair_gbps:
                rate += f" ({gbps / args.repair_gbps * 100:.0f}% of the {args.repair_gbps:g} Gb/s allowed)"
            print(f"rebuild of {n['name']}: {n.get('rebuilt', 0)} pages ({n.get('lost', 0)} lost, "
                  f"{n.get('recopied', 0)} copied again) in {ms} ms = {rate}")
    bad = tot["wrong"] > 0 or tot["misses"] > 0 or (args.replicas >= 2 and tot["errors"] > 0)
    print("verdict: " + ("FAIL (wrong values, lost writes or errors)" if bad else "ok: no wrong value, no lost write" + (", no error" if args.replicas >= 2 else "")))
    sys.exit(1 if bad else 0)


# --- command line -----------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def cmd(name, fn, *csv_args, bound=False):
        p = sub.add_parser(name)
        p.set_defaults(fn=fn)
        if bound:
            p.add_argument("--bound-us", type=float, default=500)
        for a, kw in csv_args:
            p.add_argument(a, **kw)
        return p

    one = ("csv", {})
    t1 = cmd("table1", table1, one)
    t1.add_argument("--capacity", help="the CSV of table1.sh's sweeps to saturation (Tput)")
    t1.add_argument("--bound-us", type=float, default=None,
                    help="a p99 bound for the capacity (default: none, VALID and >= 99%% answered)")
    cmd("bimodal", bimodal, one)
    cmd("points", points, one)
    cmd("peaks", peaks, one, bound=True).add_argument("--who", default="curves")
    cmd("fetch-latency", fetch_latency, one, bound=True)
    cmd("predictor", predictor, ("name", {}), ("stats", {}))
    cmd("busy", busy, ("name", {}), ("before", {}), ("after", {}), ("csv", {}))
    cmd("core-alloc", core_alloc, ("part", {"choices": ["steps", "command", "cpu", "plot"]}), ("outdir", {}))
    cmd("curves", curves, ("csv", {"nargs": "+"}), bound=True)
    cmd("ceiling", ceiling, ("csv", {"nargs": "*"}))
    cmd("striping", striping, one)
    mf = cmd("memnode-failure", memnode_failure, ("outdir", {}))
    mf.add_argument("--replicas", type=int, default=2)
    mf.add_argument("--repair-gbps", type=float, default=None,
                    help="the rebuild's allowed rate (repair_share x link), to compare against")
    s = cmd("scaling", scaling, one, bound=True)
    s.add_argument("--modes", default="no-fault sync async")
    s.add_argument("--cores", default="")
    s.add_argument("--peak", nargs=2, metavar=("C", "MODE"))
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
