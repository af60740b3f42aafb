#!/usr/bin/env bash
# kvserver (DPDK, memif, one core) against stock memcached -U (one worker thread), side by side
# on this machine, each driven open loop by the same loadgen: the DPDK backend over memif for
# kvserver, the kernel-socket backend over loopback for memcached. Server on SERVER_CPU, loadgen
# on LOADGEN_CPU. Prints both latency-throughput curves and the ratio of their peak throughput
# at a p99 bound ("not measurable here" and why, when a side has no valid point within it); saves CSV, a PNG and summary.txt under $OUT (docs/benchmarks.md).
# kvserver runs once per paging mode in MODES: local (every value in local DRAM, like
# memcached: the like-for-like comparison) and far (config/kvserver.toml's default: values paged
# from an emulated memory node, 20% local).
#
#   tools/bench/kvserver_vs_memcached.sh              # defaults below; ~3-4 minutes
#   P99_BOUND_US=200 DURATION=3 tools/bench/kvserver_vs_memcached.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"

OUT=${OUT:-results/kvserver-vs-memcached}
SERVER_CPU=${SERVER_CPU:-1}
LOADGEN_CPU=${LOADGEN_CPU:-0}
P99_BOUND_US=${P99_BOUND_US:-500}
KEYS=${KEYS:-100000}
VALUE_SIZE=${VALUE_SIZE:-128}
GET_RATIO=${GET_RATIO:-0.9}
DURATION=${DURATION:-2}
WARMUP=${WARMUP:-0.5}
KV_RATES=${KV_RATES:-50k,100k,250k:3M:250k}
MC_RATES=${MC_RATES:-10k:100k:10k,125k:500k:25k}
# A sweep ends after the first point whose p99 exceeds this: the server is past saturation.
STOP_P99_US=${STOP_P99_US:-20000}
MC_PORT=${MC_PORT:-11311}
RETRIES=${RETRIES:-2}
MODES=${MODES:-local far}

bench_build "$LOADGEN" "$BUILD/kvserver" "$BUILD/memnode/memnode"
command -v memcached >/dev/null || { echo "bench: stock memcached is not installed (tools/setup.sh)" >&2; exit 1; }
mkdir -p "$OUT"
rm -f "$OUT"/*.csv
WORK=$(mktemp -d /tmp/farmem-bench.XXXXXX)
trap 'cleanup_all; rm -rf "$WORK"' EXIT
machine_info >"$WORK/machine.txt"

COMMON=(--keys "$KEYS" --value-size "$VALUE_SIZE" --get-ratio "$GET_RATIO" --duration "$DURATION"
        --warmup "$WARMUP" --stop-p99-us "$STOP_P99_US" --retries "$RETRIES" --lcores "$LOADGEN_CPU")

# --- kvserver over memif, the DPDK loadgen as memif client; once per paging mode
SOCK=$WORK/memif.sock
MNSOCK=$WORK/memnode.sock
kv_csvs=()
KV_CMD=()
for mode in $MODES; do
  sed -e "s|/tmp/farmem-memif.sock|$SOCK|" -e "s|/tmp/farmem-memnode.sock|$MNSOCK|" \
    -e "s|^lcores = .*|lcores = [$SERVER_CPU]|" -e "s|^mode = .*|mode = \"$mode\"|" \
    config/kvserver.toml >"$WORK/kvserver.toml"
  MN_PID=""
  if [ "$mode" = far ]; then
    sed -e "s|/tmp/farmem-memnode.sock|$MNSOCK|" -e "s|^pool_mb = .*|pool_mb = 256|" \
      config/memnode.toml >"$WORK/memnode.toml"
    start_bg "$WORK/memnode.log" "$BUILD/memnode/memnode" --config "$WORK/memnode.toml"
    MN_PID=$LAST_PID
    for _ in $(seq 100); do [ -S "$MNSOCK" ] && break; sleep 0.05; done
  fi
  echo "bench: kvserver (config/kvserver.toml, paging $mode, CPU $SERVER_CPU) <- DPDK loadgen over memif (CPU $LOADGEN_CPU): $KV_RATES"
  rm -f "$SOCK"
  start_bg "$WORK/kvserver-$mode.log" "${NICE[@]}" "$BUILD/kvserver" --config "$WORK/kvserver.toml"
  KV_PID=$LAST_PID
  if ! wait_for_socket "$SOCK" "$KV_PID" "$WORK/kvserver-$mode.log"; then
    echo "bench: kvserver (paging $mode) did not start: no curve for it" >&2
    stop_pid "$KV_PID"
    [ -n "$MN_PID" ] && stop_pid "$MN_PID"
    kv_csvs+=("$OUT/kvserver-$mode.csv")  # absent: the summary says it was not measured
    continue
  fi
  KV_CMD=("$LOADGEN" --vdev "net_memif0,role=client,socket=$SOCK,socket-abstract=no,mac=02:fa:00:00:00:02"
          --rate "$KV_RATES" --label "kvserver-$mode" --csv "$OUT/kvserver-$mode.csv" "${COMMON[@]}")
  # Exit 3 (timeouts past saturation) and 4 (a point INVALID) keep their rows, marked in the CSV.
  "${NICE[@]}" "${KV_CMD[@]}" || bench_loadgen_status "kvserver-$mode" $?
  stop_pid "$KV_PID"
  [ -n "$MN_PID" ] && stop_pid "$MN_PID"
  kv_csvs+=("$OUT/kvserver-$mode.csv")
done

# --- stock memcached, one worker thread on the same CPU, the kernel-socket loadgen
echo "bench: memcached -U $MC_PORT -t 1 (CPU $SERVER_CPU) <- kernel-socket loadgen over loopback (CPU $LOADGEN_CPU): $MC_RATES"
start_bg "$WORK/memcached.log" "${NICE[@]}" taskset -c "$SERVER_CPU" memcached -U "$MC_PORT" -p 0 -l 127.0.0.1 \
  -t 1 -u root -m 1024
MC_PID=$LAST_PID
sleep 0.5
MC_CMD=("$LOADGEN" --backend socket --server-ip 127.0.0.1 --server-port "$MC_PORT"
        --rate "$MC_RATES" --label memcached --csv "$OUT/memcached.csv" "${COMMON[@]}")
"${NICE[@]}" "${MC_CMD[@]}" || bench_loadgen_status memcached $?
stop_pid "$MC_PID"

# --- curves, ratio, plot
{
  echo "kvserver vs stock memcached -U, measured side by side by tools/bench/kvserver_vs_memcached.sh"
  cat "$WORK/machine.txt"
  [ ${#NICE[@]} -gt 0 ] && echo "every process at nice -19 in its own autogroup (tools/bench/common.sh)"
  echo "server CPU $SERVER_CPU, loadgen CPU $LOADGEN_CPU; keys $KEYS, values $VALUE_SIZE B, GET ratio $GET_RATIO, Poisson arrivals"
  echo "kvserver ($MODES): ${KV_CMD[*]}"
  echo "memcached: memcached -U $MC_PORT -p 0 -l 127.0.0.1 -t 1 -u root -m 1024 (taskset -c $SERVER_CPU)"
  echo "           ${MC_CMD[*]}"
  echo
  python3 tools/bench/summarize.py curves --bound-us "$P99_BOUND_US" "${kv_csvs[@]}" "$OUT/memcached.csv"
} | tee "$OUT/summary.txt"
plot_csvs=()
for c in "${kv_csvs[@]}" "$OUT/memcached.csv"; do [ -s "$c" ] && plot_csvs+=("$c"); done
if [ ${#plot_csvs[@]} -gt 0 ]; then
  tools/loadgen/plot.py -o "$OUT/latency.png" --bound-us "$P99_BOUND_US" \
    --title "kvserver (DPDK, memif, 1 core) vs memcached -U (1 thread): GET $GET_RATIO, $VALUE_SIZE B values" \
    "${plot_csvs[@]}"
fi
