#!/usr/bin/env bash
# The loadgen's own ceiling: requests/s one loadgen core sustains with >= 99% schedule
# adherence (and >= 99% of the offered rate answered) against a responder that answers at once
# (tools/loadgen/reflector over memif, on the other CPU). TRIALS sweeps; a rate counts when it
# passes in a majority of them. Also the engine alone, without any network (engine_bench).
# Saves CSV + summary.txt + a PNG under $OUT (docs/benchmarks.md).
#
#   tools/bench/loadgen_ceiling.sh                 # ~2-3 minutes
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/lib/farmem.sh

OUT=${OUT:-results/loadgen-ceiling}
REFLECTOR_CPU=${REFLECTOR_CPU:-1}
LOADGEN_CPU=${LOADGEN_CPU:-0}
RATES=${RATES:-1M:3M:500k,4M:8M:1M}
TRIALS=${TRIALS:-3}
DURATION=${DURATION:-2}

fm_build "$FM_LOADGEN" "$FM_REFLECTOR" "$FM_ENGINE_BENCH"
[ "$TRIALS" -ge 1 ] || { echo "bench: TRIALS must be >= 1" >&2; exit 1; }
mkdir -p "$OUT"
rm -f "$OUT"/trial*.csv
fm_workdir ceiling
{ fm_machine_info; fm_build_info; } >"$FM_WORK/machine.txt"
CMD=()
csvs=()
for t in $(seq "$TRIALS"); do
  echo "bench: trial $t of $TRIALS: reflector (CPU $REFLECTOR_CPU) <- DPDK loadgen over memif (CPU $LOADGEN_CPU): $RATES"
  rm -f "$FM_MEMIF" "$OUT/trial$t.csv"
  fm_bg "$FM_WORK/reflector.log" ${FM_NICE[@]+"${FM_NICE[@]}"} ${FM_ENV[@]+"${FM_ENV[@]}"} \
    "$FM_REFLECTOR" --lcores "$REFLECTOR_CPU" --vdev "$(fm_memif_vdev server)"
  RPID=$FM_PID
  fm_wait_socket "bench: reflector" "$RPID" "$FM_WORK/reflector.log" "$FM_MEMIF" || exit 1
  CMD=("$FM_LOADGEN" --lcores "$LOADGEN_CPU" --no-preload --no-verify --timeout-ms 10
       --vdev "$(fm_memif_vdev client)"
       --rate "$RATES" --duration "$DURATION" --warmup 0.2 --label "trial $t" --quiet
       --csv "$OUT/trial$t.csv")
  fm_fg ${FM_NICE[@]+"${FM_NICE[@]}"} ${FM_ENV[@]+"${FM_ENV[@]}"} "${CMD[@]}" ||
    fm_loadgen_status "bench: trial $t" $? sweep
  fm_stop "$RPID"
  if [ -s "$OUT/trial$t.csv" ]; then csvs+=("$OUT/trial$t.csv"); else echo "bench: trial $t produced no CSV" >&2; fi
done

{
  echo "loadgen ceiling: one DPDK loadgen core against tools/loadgen/reflector over memif"
  cat "$FM_WORK/machine.txt"
  [ "$FM_NICE_VALUE" != 0 ] && echo "every process at nice $FM_NICE_VALUE in its own autogroup (tools/lib/farmem.sh)"
  echo "reflector CPU $REFLECTOR_CPU, loadgen CPU $LOADGEN_CPU; GETs of 11-byte keys, replies END; ${#csvs[@]} of $TRIALS trials ran"
  echo "command: ${CMD[*]}"
  echo
  python3 tools/lib/report.py ceiling ${csvs[@]+"${csvs[@]}"}
  echo
  echo "engine alone (no network; $FM_ENGINE_BENCH --cpu $LOADGEN_CPU):"
  ${FM_NICE[@]+"${FM_NICE[@]}"} ${FM_ENV[@]+"${FM_ENV[@]}"} "$FM_ENGINE_BENCH" --cpu "$LOADGEN_CPU" --duration 1 --hiccups 5 | sed 's/^/  /'
} | tee "$OUT/summary.txt"
if [ ${#csvs[@]} -gt 0 ]; then
  tools/loadgen/plot.py -o "$OUT/latency.png" --title "loadgen against the instant reflector (1 core each, memif)" \
    --percentiles p50,p99 "${csvs[@]}"
fi
