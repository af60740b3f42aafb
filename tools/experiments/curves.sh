#!/usr/bin/env bash
# Latency-vs-load curves of every mode on one plot, to saturation: no-fault (all local), sync
# (FCFS, busy-wait faults) and async (park at the fetch), 20% local memory, open-loop GETs of
# 128 B values. Saves results/curves-<date>.{csv,png,txt} (.txt: each mode's peak by
# tools/lib/report.py's rule, the command, machine, build and noise floor).
#   tools/experiments/curves.sh [RATES] [DURATION_S]
#   MODES="async async+prefetch" TRIALS=3 tools/experiments/curves.sh   (tools/lib/farmem.sh modes;
#                                  trials interleaved, each its own curve labelled "MODE-tN")
set -euo pipefail
cd "$(dirname "$0")/../.."
RATES=${1:-${RATES:-50k:800k:50k}}
DURATION=${2:-${DURATION:-2}}
KEYS=${KEYS:-200000}
MODES=${MODES:-no-fault sync async}
TRIALS=${TRIALS:-1}
. tools/lib/farmem.sh
fm_setup
fm_workdir exp
mkdir -p results
OUT=results/curves-$(date +%Y%m%d-%H%M%S)
fm_start_memnode 256
csvs=()
run_mode() {  # label extra-toml
  fm_start_server "$1" "$2"
  echo "curves: $1, rates $RATES"
  fm_loadgen --keys "$KEYS" --value-size 128 --rate "$RATES" --duration "$DURATION" --warmup 0.5 \
    --stop-p99-us 2000 --retries 2 --label "$1" --csv "$FM_WORK/$1.csv" --quiet ${LG_EXTRA:-} >/dev/null ||
    fm_loadgen_status "curves: $1" $? sweep
  fm_stop_server
  csvs+=("$FM_WORK/$1.csv")
}
for t in $(seq "$TRIALS"); do
  for mode in $MODES; do
    label=$mode
    [ "$TRIALS" = 1 ] || label="$mode-t$t"
    run_mode "$label" "$(fm_mode_toml "$mode")"
  done
done
for c in "${csvs[@]}"; do fm_append_csv "$c" "$OUT.csv"; done
[ -s "$OUT.csv" ] || { echo "$(basename "$0" .sh): no run produced a row" >&2; exit 1; }
python3 tools/loadgen/plot.py -o "$OUT.png" --percentiles p50,p99 --bound-us 500 \
  --title "kvserver, 20% local memory, 3.3 us fetches: $MODES" "$OUT.csv" || true
{
  echo "curves: IDLE_BACKOFF=${IDLE_BACKOFF:-true} MODES=\"$MODES\" TRIALS=$TRIALS${LG_EXTRA:+ LG_EXTRA=\"$LG_EXTRA\"} tools/experiments/curves.sh $RATES $DURATION ($KEYS keys)"
  python3 tools/lib/report.py peaks --bound-us 500 --who curves "$OUT.csv"
  fm_record
} | tee "$OUT.txt"
echo "curves: $OUT.csv $OUT.png $OUT.txt"
