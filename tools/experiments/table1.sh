#!/usr/bin/env bash
# The paper's Table 1, on this machine, in one run: the same open-loop GET load (128 B values,
# working set 5x local memory) against kvserver in three modes — no-fault (all local), sync
# (faults busy-wait, FCFS) and async (faults park the request), then async with each fault
# predictor — plus the Table's columns and p99.9 and drops, side by side, and the predictors'
# accuracy. TRIALS interleaved trials (mode A B C, A B C, ...): each starts the mode's server,
# measures the latencies at RATE, then sweeps CAPACITY_RATES to saturation on the same server for
# the Tput column (achieved capacity: the highest offered rate that passed with every lower one,
# tools/lib/report.py). Writes results/table1-<date>.csv (latency rows), -capacity.csv (sweeps)
# and .txt (the table, predictors, command, machine, build, noise floor). ~5 minutes.
#   tools/experiments/table1.sh [RATE] [DURATION_S]
#   MODES="no-fault sync async sync+pagetable" tools/experiments/table1.sh   (tools/lib/farmem.sh)
#   KEY_DIST=zipf:0.99 tools/experiments/table1.sh                         (loadgen --key-dist)
#   EXP_LCORES="1 2 3 4" EXP_LOADGEN_LCORES="5 6" LG_EXTRA="--queues 4" tools/experiments/table1.sh
#                                                  (several server cores: tools/lib/farmem.sh)
#   FARMEM_RELEASE=1 tools/experiments/table1.sh   (an optimized build without debug checks)
#   SPIN_NS=5000 CAPACITY_RATES=20k:300k:10k tools/experiments/table1.sh 100000
#                                                  (the paper's regime: ~5 us of work a request)
# Knobs: TRIALS (3), CAPACITY_RATES (50k:1M:50k; "none": no sweep, the Tput column says so),
# CAPACITY_DURATION (1 s a point), CAPACITY_BOUND_US (none: the capacity needs VALID and >= 99%
# answered; a number also bounds the p99), CAPACITY_STOP_P99_US (50000: the sweep ends after the
# first point over it, i.e. past saturation; report.py says when that point was INVALID).
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-${RATE:-60000}}
DURATION=${2:-${DURATION:-5}}
KEYS=${KEYS:-200000}
LATENCY_NS=${LATENCY_NS:-3300}
TRIALS=${TRIALS:-3}
CAPACITY_RATES=${CAPACITY_RATES:-50k:1M:50k}
CAPACITY_DURATION=${CAPACITY_DURATION:-1}
CAPACITY_BOUND_US=${CAPACITY_BOUND_US:-}
CAPACITY_STOP_P99_US=${CAPACITY_STOP_P99_US:-50000}
MODES=${MODES:-no-fault sync async async+history async+pagetable}
. tools/lib/farmem.sh
fm_setup
fm_workdir exp
mkdir -p results
STAMP=$(date +%Y%m%d-%H%M%S)
CSV=results/table1-$STAMP.csv
CAP_CSV=results/table1-$STAMP-capacity.csv
SUMMARY=results/table1-$STAMP.txt
rm -f "$CSV" "$CAP_CSV"
: >"$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
[ "$TRIALS" -ge 1 ] || { echo "table1: TRIALS must be >= 1" >&2; exit 1; }
fm_start_memnode 256

run_mode() {  # label extra-toml trial
  local cap="$FM_WORK/$1-cap$3.csv"
  fm_start_server "$1" "$2"
  fm_dpctl stats --json >"$FM_WORK/$1-$3.before.json" 2>/dev/null || true
  fm_loadgen --keys "$KEYS" --value-size 128 --key-dist "${KEY_DIST:-uniform}" --rate "$RATE" --duration "$DURATION" --warmup 1 \
    --label "$1" --csv "$FM_WORK/$1-$3.csv" --quiet ${LG_EXTRA:-} >/dev/null || fm_loadgen_status "table1: $1 (trial $3)" $?
  fm_dpctl stats --json >"$FM_WORK/$1-$3.after.json" 2>/dev/null || true
  if [ "$CAPACITY_RATES" != none ]; then
    # The keys are stored by the run above: the sweep needs no preload.
    fm_loadgen --keys "$KEYS" --value-size 128 --key-dist "${KEY_DIST:-uniform}" --rate "$CAPACITY_RATES" \
      --duration "$CAPACITY_DURATION" --warmup 0.5 --no-preload --stop-p99-us "$CAPACITY_STOP_P99_US" \
      --label "$1" --csv "$cap" --quiet ${LG_EXTRA:-} >/dev/null || fm_loadgen_status "table1: $1 capacity (trial $3)" $? sweep
  fi
  fm_stop_server
  { python3 "$FM_REPORT" busy "$1 at $RATE" "$FM_WORK/$1-$3.before.json" "$FM_WORK/$1-$3.after.json" \
      "$FM_WORK/$1-$3.csv" || true; fm_predictor_line "$1"; } | sed "s/^/trial $3: /" >>"$FM_WORK/predictors.txt"
  fm_append_csv "$FM_WORK/$1-$3.csv" "$CSV"  # one header, then every mode's row
  [ "$CAPACITY_RATES" = none ] || fm_append_csv "$cap" "$CAP_CSV"
}

say "table1: $RATE req/s GETs for $DURATION s, $KEYS keys of 128 B (${KEY_DIST:-uniform}), fetch latency $LATENCY_NS ns, 20% local${SPIN_NS:+, $SPIN_NS ns of synthetic work a request (kv.spin_ns)}; $TRIALS interleaved trials of: $MODES"
say "capacity: $([ "$CAPACITY_RATES" = none ] && echo "not measured (CAPACITY_RATES=none)" || echo "sweep $CAPACITY_RATES, $CAPACITY_DURATION s a point, ends past p99 $CAPACITY_STOP_P99_US us; bound ${CAPACITY_BOUND_US:-none}")"
say "server CPUs [${EXP_LCORES:-1}], loadgen CPUs [${EXP_LOADGEN_LCORES:-0}], idle back-off ${IDLE_BACKOFF:-true}${LG_EXTRA:+, loadgen $LG_EXTRA}"
for t in $(seq "$TRIALS"); do
  for mode in $MODES; do
    run_mode "$mode" "$(fm_mode_toml "$mode")" "$t"
  done
done

if [ -s "$CSV" ]; then
  args=()
  [ -s "$CAP_CSV" ] && args+=(--capacity "$CAP_CSV")
  [ -n "$CAPACITY_BOUND_US" ] && args+=(--bound-us "$CAPACITY_BOUND_US")
  python3 tools/lib/report.py table1 ${args[@]+"${args[@]}"} "$CSV" | tee -a "$SUMMARY"
else
  say "table1: no mode produced a row"
fi
say "busy shares (the latency run), predictor accuracy and far memory counters (latency run and sweep together):"
tee -a "$SUMMARY" 2>/dev/null <"$FM_WORK/predictors.txt" || true
fm_record >>"$SUMMARY"
tail -2 "$SUMMARY"
echo "table1: rows in $CSV$([ -s "$CAP_CSV" ] && echo ", sweeps in $CAP_CSV"), summary in $SUMMARY"
