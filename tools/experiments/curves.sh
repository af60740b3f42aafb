#!/usr/bin/env bash
# Latency-vs-load curves of every mode on one plot, to saturation: no-fault (all local), sync
# (FCFS, busy-wait faults) and async (park at the fetch), 20% local memory, open-loop GETs of
# 128 B values. Saves results/curves-<date>.{csv,png}.
#   tools/experiments/curves.sh [RATES] [DURATION_S]
set -euo pipefail
cd "$(dirname "$0")/../.."
RATES=${1:-${RATES:-50k:800k:50k}}
DURATION=${2:-${DURATION:-2}}
KEYS=${KEYS:-200000}
tools/setup.sh >/dev/null
tools/build.sh >/dev/null
. tools/experiments/lib.sh
mkdir -p results
OUT=results/curves-$(date +%Y%m%d-%H%M%S)
exp_start_memnode 256
csvs=()
run_mode() {  # label extra-toml
  exp_start_server "$1" "$2"
  echo "curves: $1, rates $RATES"
  exp_loadgen --keys "$KEYS" --value-size 128 --rate "$RATES" --duration "$DURATION" --warmup 0.5 \
    --stop-p99-us 2000 --retries 2 --label "$1" --csv "$EXP_WORK/$1.csv" --quiet >/dev/null ||
    exp_loadgen_status "curves: $1" $? sweep
  exp_stop_server
  csvs+=("$EXP_WORK/$1.csv")
}
for mode in no-fault sync async; do run_mode "$mode" "$(exp_mode_toml "$mode")"; done
for c in "${csvs[@]}"; do exp_append_csv "$c" "$OUT.csv"; done
[ -s "$OUT.csv" ] || { echo "$(basename "$0" .sh): no run produced a row" >&2; exit 1; }
python3 tools/loadgen/plot.py -o "$OUT.png" --percentiles p50,p99 --bound-us 500 \
  --title "kvserver, 20% local memory, 3.3 us fetches: no-fault vs sync vs async" "$OUT.csv" || true
python3 - "$OUT.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
peak, points, invalid = {}, {}, {}
for r in rows:
    label = r["label"]
    points[label] = points.get(label, 0) + 1
    invalid[label] = invalid.get(label, 0) + (r["valid"] != "1")
    p99 = float(r["all_p99_us"])
    if r["valid"] == "1" and p99 <= 500:
        peak[label] = max(peak.get(label, 0), float(r["all_achieved_rps"]))
for label in points:
    if label in peak:
        print(f"curves: {label}: peak {peak[label]/1000:.0f}K req/s at p99 <= 500 us (valid points)")
    else:
        behind = (f"; {invalid[label]} of {points[label]} points INVALID: the loadgen fell behind"
                  if invalid[label] else "")
        print(f"curves: {label}: peak not measurable here (no valid point with p99 <= 500 us{behind})")
PY
echo "curves: $OUT.csv $OUT.png"
