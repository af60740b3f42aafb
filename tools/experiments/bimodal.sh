#!/usr/bin/env bash
# The head-of-line-blocking case: mostly single-key GETs plus a small share of 64-key GETs, at one
# offered load, against kvserver in each scheduling mode side by side (FCFS busy-wait, +preemption,
# +page-table predictor; async, +predictor, central dispatch). Prints p50/p99/p99.9 of the short
# and of the long requests separately and saves results/bimodal-<date>.csv.
#   tools/experiments/bimodal.sh [RATE] [DURATION_S]
#   MODES="sync sync+preempt" MGET_KEYS=64 MGET_RATIO=0.01 tools/experiments/bimodal.sh
#   EXP_LCORES="1 2 3 4" EXP_LOADGEN_LCORES="5 6" LG_EXTRA="--queues 4" tools/experiments/bimodal.sh 240000
#                                                  (several server cores: see lib.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-${RATE:-60000}}
DURATION=${2:-${DURATION:-5}}
KEYS=${KEYS:-200000}
MGET_KEYS=${MGET_KEYS:-64}
MGET_RATIO=${MGET_RATIO:-0.01}
MODES=${MODES:-"no-fault sync sync+preempt sync+pagetable sync+pagetable+preempt async async+pagetable async+central"}
[ -n "${SKIP_SETUP:-}" ] || { tools/setup.sh >/dev/null; tools/build.sh >/dev/null; }
. tools/experiments/lib.sh
mkdir -p results
CSV=results/bimodal-$(date +%Y%m%d-%H%M%S).csv
rm -f "$CSV"
exp_start_memnode 256
echo "bimodal: $RATE req/s for $DURATION s: GETs of 128 B over $KEYS keys, $(python3 -c "print($MGET_RATIO*100)")% of them $MGET_KEYS-key GETs; fetch ${LATENCY_NS:-3300} ns, 20% local"
for mode in $MODES; do
  exp_start_server "$mode" "$(exp_mode_toml "$mode")"
  exp_loadgen --keys "$KEYS" --value-size 128 --rate "$RATE" --duration "$DURATION" --warmup 1 \
    --multiget-keys "$MGET_KEYS" --multiget-ratio "$MGET_RATIO" \
    --label "$mode" --csv "$EXP_WORK/$mode.csv" --quiet ${LG_EXTRA:-} >/dev/null ||
    exp_loadgen_status "bimodal: $mode" $?
  exp_stop_server
  exp_predictor_line "$mode" >>"$EXP_WORK/predictors.txt"
  exp_append_csv "$EXP_WORK/$mode.csv" "$CSV"
done
[ -s "$CSV" ] || { echo "bimodal: no mode produced a row" >&2; exit 1; }
python3 - "$CSV" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
f = lambda r, k: float(r[k]) if r.get(k) not in (None, "", "nan") else float("nan")
print(f"{'':24}{'achieved':>10}{'short p50':>11}{'p99':>9}{'p99.9':>9}{'long p50':>10}{'p99':>9}{'p99.9':>9}{'drops':>7}{'valid':>6}")
for r in rows:
    print(f"{r['label']:24}{f(r,'all_achieved_rps'):>10.0f}{f(r,'get_p50_us'):>11.1f}{f(r,'get_p99_us'):>9.1f}"
          f"{f(r,'get_p999_us'):>9.1f}{f(r,'mget_p50_us'):>10.1f}{f(r,'mget_p99_us'):>9.1f}{f(r,'mget_p999_us'):>9.1f}"
          f"{r['drops']:>7}{r['valid']:>6}")
print("(us; short = single-key GETs, long = multi-key GETs)")
PY
cat "$EXP_WORK/predictors.txt" 2>/dev/null || true
echo "bimodal: rows in $CSV"
