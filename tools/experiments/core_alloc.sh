#!/usr/bin/env bash
# Core allocation experiments (docs/results.md), one command:
#  1. load steps: the loadgen changes its offered rate over time while automatic allocation is on;
#     active cores (dpctl watch, 10 ms) and p99 per 10 ms (loadgen timeline) on one plot;
#  2. reallocation latency: decision -> the woken worker's first work, for cores added by command
#     (under load) and by the congestion signal (from step 1);
#  3. CPU saved: server CPU time at low load with automatic allocation vs every core polling.
# Writes results/core-alloc-<date>/ (CSV, JSON, summary.txt, PNG).
#   tools/experiments/core_alloc.sh
#   EXP_LCORES="1 0" EXP_LOADGEN_LCORES=0 STEPS="30k@1.5,300k@1.5,30k@1.5" tools/experiments/core_alloc.sh
# On 2 CPUs the default puts worker 0 on CPU 1 and worker 1 on CPU 0 with the loadgen (worker 1
# is parked while the load is low). On a many-core machine set EXP_LCORES to the server's CPUs and
# EXP_LOADGEN_LCORES to others.
set -euo pipefail
cd "$(dirname "$0")/../.."
export EXP_LCORES=${EXP_LCORES:-"1 0"}
export EXP_LOADGEN_LCORES=${EXP_LOADGEN_LCORES:-0}
export IDLE_BACKOFF=false  # polling cores: what parking saves is their CPU
MODE=${MODE:-no-fault}
STEPS=${STEPS:-"30k@1.5,400k@1.5,30k@1.5,250k@1.5,30k@1.5"}
LOW_RATE=${LOW_RATE:-40000}
LOW_S=${LOW_S:-4}
CMD_CYCLES=${CMD_CYCLES:-40}
KEYS=${KEYS:-100000}
. tools/lib/farmem.sh
fm_setup
fm_workdir exp
NW=$(echo $EXP_LCORES | wc -w)
NQ=$NW
OUTDIR=${OUTDIR:-results/core-alloc-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUTDIR"
SUMMARY=$OUTDIR/summary.txt
: >"$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
[ "$MODE" = no-fault ] || fm_start_memnode 256

server_toml() {  # auto(true/false) initial
  fm_mode_toml "$MODE"
  printf '[alloc]\nauto = %s\ninitial = %s\npark = "%s"\n' "$1" "$2" "${PARK:-sleep}"
}
LG=(--queues "$NQ" --keys "$KEYS" --value-size 128 --quiet)

say "core allocation: $NW workers on CPUs [$EXP_LCORES], loadgen on [$EXP_LOADGEN_LCORES], mode $MODE, parked workers ${PARK:-sleep}, $(date -u +%FT%TZ), $(nproc) CPUs"

# PARTS="steps command cpu" picks parts (e.g. PARTS=command PARK=spin for the spinning park).
has() { case " ${PARTS:-steps command cpu} " in *" $1 "*) return 0 ;; esac; return 1; }

# --- 1. load steps with automatic allocation ---------------------------------------------------
if has steps; then
fm_start_server steps "$(server_toml true 1)"
fm_bg -e /dev/null "$OUTDIR/cores.jsonl" ${FM_ENV[@]+"${FM_ENV[@]}"} "$FM_DPCTL" --socket "$FM_CONTROL" \
  watch --interval-ms 10 --json
watch_pid=$FM_PID
fm_loadgen "${LG[@]}" --rate-steps "$STEPS" --timeline "$OUTDIR/timeline.csv" --timeline-ms 10 \
  --warmup 0.5 --label steps --csv "$OUTDIR/steps.csv" >"$OUTDIR/steps.out" 2>&1 ||
  fm_loadgen_status "core_alloc: steps" $? sweep
fm_stop "$watch_pid" TERM
fm_dpctl decisions --last 256 --json >"$OUTDIR/decisions-steps.json"
fm_stop_server
python3 tools/lib/report.py core-alloc steps "$OUTDIR" | tee -a "$SUMMARY"
fi

# --- 2. reallocation latency by command, under load on every queue ------------------------------
if has command; then
fm_start_server command "$(server_toml false 0)"
fm_loadgen_cmd "${LG[@]}" --rate "$LOW_RATE" --duration $((CMD_CYCLES / 5 + 3)) --warmup 0.5 \
  --label command --csv "$OUTDIR/command.csv"
fm_bg -s INT "$OUTDIR/command.out" "${FM_CMD[@]}"
lg=$FM_PID
sleep 1.5
for _ in $(seq "$CMD_CYCLES"); do
  fm_dpctl cores set 1 >/dev/null
  sleep 0.05
  fm_dpctl cores set "$NW" >/dev/null
  sleep 0.05
done
fm_wait $lg || fm_loadgen_status "core_alloc: command" $? sweep
fm_dpctl decisions --last 256 --json >"$OUTDIR/decisions-command.json"
fm_stop_server
python3 tools/lib/report.py core-alloc command "$OUTDIR" | tee -a "$SUMMARY"
fi

# --- 3. CPU used at low load: automatic allocation vs every core polling -------------------------
if has cpu; then
for variant in auto all-polling; do
  if [ $variant = auto ]; then fm_start_server $variant "$(server_toml true 1)"
  else fm_start_server $variant "$(server_toml false 0)"; fi
  sleep 0.5
  cpu0=$(fm_server_cpu_s)
  t0=$(date +%s.%N)
  fm_loadgen "${LG[@]}" --rate "$LOW_RATE" --duration "$LOW_S" --warmup 0.5 --no-preload \
    --label "$variant" --csv "$OUTDIR/cpu-$variant.csv" >"$OUTDIR/cpu-$variant.out" 2>&1 ||
    fm_loadgen_status "core_alloc: $variant" $? sweep
  cpu1=$(fm_server_cpu_s)
  t1=$(date +%s.%N)
  fm_dpctl status --json >"$OUTDIR/status-$variant.json"
  fm_stop_server
  echo "$variant $cpu0 $cpu1 $t0 $t1" >>"$OUTDIR/cpu.txt"
done
python3 tools/lib/report.py core-alloc cpu "$OUTDIR" | tee -a "$SUMMARY"
fi
has steps && python3 tools/lib/report.py core-alloc plot "$OUTDIR" | tee -a "$SUMMARY"
fm_record >>"$SUMMARY"
echo "core_alloc: results in $OUTDIR"
