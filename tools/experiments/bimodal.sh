#!/usr/bin/env bash
# The head-of-line-blocking case: mostly single-key GETs plus a small share of 64-key GETs, at one
# offered load, against kvserver in each scheduling mode side by side (FCFS busy-wait, +preemption,
# +page-table predictor; async, +predictor, central dispatch). Prints p50/p99/p99.9 of the short
# and of the long requests separately and saves results/bimodal-<date>.{csv,txt} (.txt: the table,
# predictors, command, machine, build and noise floor). One offered load, one trial: the p99s of
# different runs move by several times on a noisy VM (docs/results.md).
#   tools/experiments/bimodal.sh [RATE] [DURATION_S]
#   MODES="sync sync+preempt" MGET_KEYS=64 MGET_RATIO=0.01 tools/experiments/bimodal.sh
#   EXP_LCORES="1 2 3 4" EXP_LOADGEN_LCORES="5 6" LG_EXTRA="--queues 4" tools/experiments/bimodal.sh 240000
#                                                  (several server cores: tools/lib/farmem.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-${RATE:-60000}}
DURATION=${2:-${DURATION:-5}}
KEYS=${KEYS:-200000}
MGET_KEYS=${MGET_KEYS:-64}
MGET_RATIO=${MGET_RATIO:-0.01}
MODES=${MODES:-"no-fault sync sync+preempt sync+pagetable sync+pagetable+preempt async async+pagetable async+central"}
. tools/lib/farmem.sh
fm_setup
fm_workdir exp
mkdir -p results
CSV=results/bimodal-$(date +%Y%m%d-%H%M%S).csv
SUMMARY=${CSV%.csv}.txt
rm -f "$CSV"
fm_start_memnode 256
echo "bimodal: $RATE req/s for $DURATION s: GETs of 128 B over $KEYS keys, $(python3 -c "print($MGET_RATIO*100)")% of them $MGET_KEYS-key GETs; fetch ${LATENCY_NS:-3300} ns, 20% local"
for mode in $MODES; do
  fm_start_server "$mode" "$(fm_mode_toml "$mode")"
  fm_loadgen --keys "$KEYS" --value-size 128 --rate "$RATE" --duration "$DURATION" --warmup 1 \
    --multiget-keys "$MGET_KEYS" --multiget-ratio "$MGET_RATIO" \
    --label "$mode" --csv "$FM_WORK/$mode.csv" --quiet ${LG_EXTRA:-} >/dev/null ||
    fm_loadgen_status "bimodal: $mode" $?
  fm_stop_server
  fm_predictor_line "$mode" >>"$FM_WORK/predictors.txt"
  fm_append_csv "$FM_WORK/$mode.csv" "$CSV"
done
[ -s "$CSV" ] || { echo "bimodal: no mode produced a row" >&2; exit 1; }
{
  echo "bimodal: MODES=\"$MODES\" MGET_KEYS=$MGET_KEYS MGET_RATIO=$MGET_RATIO EXP_LCORES=\"${EXP_LCORES:-1}\" EXP_LOADGEN_LCORES=\"${EXP_LOADGEN_LCORES:-0}\" LG_EXTRA=\"${LG_EXTRA:-}\" IDLE_BACKOFF=${IDLE_BACKOFF:-true} tools/experiments/bimodal.sh $RATE $DURATION"
  python3 tools/lib/report.py bimodal "$CSV"
  cat "$FM_WORK/predictors.txt" 2>/dev/null || true
  fm_record
} | tee "$SUMMARY"
echo "bimodal: rows in $CSV, summary in $SUMMARY"
