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
    --stop-p99-us 2000 --retries 2 --label "$1" --csv "$EXP_WORK/$1.csv" --quiet >/dev/null || true
  exp_stop_server
  csvs+=("$EXP_WORK/$1.csv")
}
for mode in no-fault sync async; do run_mode "$mode" "$(exp_mode_toml "$mode")"; done
head -1 "${csvs[0]}" >"$OUT.csv"
for c in "${csvs[@]}"; do tail -n +2 "$c" >>"$OUT.csv"; done
python3 tools/loadgen/plot.py -o "$OUT.png" --percentiles p50,p99 --bound-us 500 \
  --title "kvserver, 20% local memory, 3.3 us fetches: no-fault vs sync vs async" "$OUT.csv" || true
python3 - "$OUT.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
peak = {}
for r in rows:
    p99 = float(r["all_p99_us"])
    if r["valid"] == "1" and p99 <= 500:
        peak[r["label"]] = max(peak.get(r["label"], 0), float(r["all_achieved_rps"]))
for label, v in peak.items():
    print(f"curves: {label}: peak {v/1000:.0f}K req/s at p99 <= 500 us (valid points)")
PY
echo "curves: $OUT.csv $OUT.png"
