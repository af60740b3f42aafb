#!/usr/bin/env bash
# The paper's Table 1, on this machine, in one run: the same open-loop GET load (128 B values,
# working set 5x local memory) against kvserver in three modes — no-fault (all local), sync
# (faults busy-wait, FCFS) and async (faults park the request), then async with each fault
# predictor — plus the Table's columns and p99.9 and drops, side by side, and the predictors'
# accuracy. Writes results/table1-<date>.csv.
#   tools/experiments/table1.sh [RATE] [DURATION_S]
#   MODES="no-fault sync async sync+pagetable" tools/experiments/table1.sh   (tools/lib/farmem.sh)
#   KEY_DIST=zipf:0.99 tools/experiments/table1.sh                         (loadgen --key-dist)
#   EXP_LCORES="1 2 3 4" EXP_LOADGEN_LCORES="5 6" LG_EXTRA="--queues 4" tools/experiments/table1.sh
#                                                  (several server cores: tools/lib/farmem.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-${RATE:-60000}}
DURATION=${2:-${DURATION:-5}}
KEYS=${KEYS:-200000}
LATENCY_NS=${LATENCY_NS:-3300}
. tools/lib/farmem.sh
fm_setup
fm_workdir exp
mkdir -p results
CSV=results/table1-$(date +%Y%m%d-%H%M%S).csv
rm -f "$CSV"
fm_start_memnode 256

run_mode() {  # label extra-toml
  fm_start_server "$1" "$2"
  fm_loadgen --keys "$KEYS" --value-size 128 --key-dist "${KEY_DIST:-uniform}" --rate "$RATE" --duration "$DURATION" --warmup 1 \
    --label "$1" --csv "$FM_WORK/$1.csv" --quiet ${LG_EXTRA:-} >/dev/null || fm_loadgen_status "table1: $1" $?
  fm_stop_server
  fm_predictor_line "$1" >>"$FM_WORK/predictors.txt"
  fm_append_csv "$FM_WORK/$1.csv" "$CSV"  # one header, then every mode's row
}

echo "table1: $RATE req/s GETs for $DURATION s, $KEYS keys of 128 B (${KEY_DIST:-uniform}), fetch latency $LATENCY_NS ns, 20% local"
for mode in ${MODES:-no-fault sync async async+history async+pagetable}; do
  run_mode "$mode" "$(fm_mode_toml "$mode")"
done

if [ -s "$CSV" ]; then python3 tools/lib/report.py table1 "$CSV"; else echo "table1: no mode produced a row" >&2; fi
cat "$FM_WORK/predictors.txt" 2>/dev/null || true
echo "table1: rows in $CSV"
