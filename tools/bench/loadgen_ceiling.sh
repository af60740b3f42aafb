#!/usr/bin/env bash
# The loadgen's own ceiling: requests/s one loadgen core sustains with >= 99% schedule
# adherence (and >= 99% of the offered rate answered) against a responder that answers at once
# (tools/loadgen/reflector over memif, on the other CPU). TRIALS sweeps; a rate counts when it
# passes in a majority of them. Also the engine alone, without any network (engine_bench).
# Saves CSV + summary.txt + a PNG under $OUT (docs/benchmarks.md).
#
#   tools/bench/loadgen_ceiling.sh                 # ~2-3 minutes
set -euo pipefail
source "$(dirname "$0")/common.sh"

OUT=${OUT:-results/loadgen-ceiling}
REFLECTOR_CPU=${REFLECTOR_CPU:-1}
LOADGEN_CPU=${LOADGEN_CPU:-0}
RATES=${RATES:-1M:3M:500k,4M:8M:1M}
TRIALS=${TRIALS:-3}
DURATION=${DURATION:-2}
REFLECTOR=$BUILD/tools/loadgen/reflector
ENGINE_BENCH=$BUILD/tools/loadgen/engine_bench

bench_build "$LOADGEN" "$REFLECTOR" "$ENGINE_BENCH"
[ "$TRIALS" -ge 1 ] || { echo "bench: TRIALS must be >= 1" >&2; exit 1; }
mkdir -p "$OUT"
rm -f "$OUT"/trial*.csv
WORK=$(mktemp -d /tmp/farmem-ceiling.XXXXXX)
trap 'cleanup_all; rm -rf "$WORK"' EXIT
machine_info >"$WORK/machine.txt"
SOCK=$WORK/memif.sock
CMD=()
csvs=()
for t in $(seq "$TRIALS"); do
  echo "bench: trial $t of $TRIALS: reflector (CPU $REFLECTOR_CPU) <- DPDK loadgen over memif (CPU $LOADGEN_CPU): $RATES"
  rm -f "$SOCK" "$OUT/trial$t.csv"
  start_bg "$WORK/reflector.log" "${NICE[@]}" "$REFLECTOR" --lcores "$REFLECTOR_CPU" \
    --vdev "net_memif0,role=server,socket=$SOCK,socket-abstract=no,mac=02:fa:00:00:00:01"
  RPID=$LAST_PID
  wait_for_socket "$SOCK" "$RPID" "$WORK/reflector.log" || exit 1
  CMD=("$LOADGEN" --lcores "$LOADGEN_CPU" --no-preload --no-verify --timeout-ms 10
       --vdev "net_memif0,role=client,socket=$SOCK,socket-abstract=no,mac=02:fa:00:00:00:02"
       --rate "$RATES" --duration "$DURATION" --warmup 0.2 --label "trial $t" --quiet
       --csv "$OUT/trial$t.csv")
  "${NICE[@]}" "${CMD[@]}" || bench_loadgen_status "trial $t" $?
  stop_pid "$RPID"
  if [ -s "$OUT/trial$t.csv" ]; then csvs+=("$OUT/trial$t.csv"); else echo "bench: trial $t produced no CSV" >&2; fi
done

{
  echo "loadgen ceiling: one DPDK loadgen core against tools/loadgen/reflector over memif"
  cat "$WORK/machine.txt"
  [ ${#NICE[@]} -gt 0 ] && echo "every process at nice -19 in its own autogroup (tools/bench/common.sh)"
  echo "reflector CPU $REFLECTOR_CPU, loadgen CPU $LOADGEN_CPU; GETs of 11-byte keys, replies END; ${#csvs[@]} of $TRIALS trials ran"
  echo "command: ${CMD[*]}"
  echo
  python3 tools/bench/summarize.py ceiling ${csvs[@]+"${csvs[@]}"}
  echo
  echo "engine alone (no network; $ENGINE_BENCH --cpu $LOADGEN_CPU):"
  "${NICE[@]}" "$ENGINE_BENCH" --cpu "$LOADGEN_CPU" --duration 1 --hiccups 5 | sed 's/^/  /'
} | tee "$OUT/summary.txt"
if [ ${#csvs[@]} -gt 0 ]; then
  tools/loadgen/plot.py -o "$OUT/latency.png" --title "loadgen against the instant reflector (1 core each, memif)" \
    --percentiles p50,p99 "${csvs[@]}"
fi
