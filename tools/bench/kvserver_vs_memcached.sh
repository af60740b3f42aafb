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
cd "$(dirname "$0")/../.."
. tools/lib/farmem.sh

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

fm_build "$FM_LOADGEN" "$FM_KVSERVER" "$FM_MEMNODE"
command -v memcached >/dev/null || { echo "bench: stock memcached is not installed (tools/setup.sh)" >&2; exit 1; }
mkdir -p "$OUT"
rm -f "$OUT"/*.csv
fm_workdir bench
{ fm_machine_info; fm_build_info; } >"$FM_WORK/machine.txt"

COMMON=(--keys "$KEYS" --value-size "$VALUE_SIZE" --get-ratio "$GET_RATIO" --duration "$DURATION"
        --warmup "$WARMUP" --stop-p99-us "$STOP_P99_US" --retries "$RETRIES" --lcores "$LOADGEN_CPU")

# --- kvserver over memif, the DPDK loadgen as memif client; once per paging mode. kvserver runs
# config/kvserver.toml with this run's sockets (memif, memnode, control), CPU and paging mode.
kv_csvs=()
KV_CMD=()
for mode in $MODES; do
  sed -e "s|^vdev = .*|vdev = \"$(fm_memif_vdev server)\"|" -e "s|^memnode = .*|memnode = \"unix:$FM_MNSOCK\"|" \
    -e "s|^socket = .*|socket = \"$FM_CONTROL\"|" \
    -e "s|^lcores = .*|lcores = [$SERVER_CPU]|" -e "s|^mode = .*|mode = \"$mode\"|" \
    config/kvserver.toml >"$FM_WORK/kvserver.toml"
  kv_csvs+=("$OUT/kvserver-$mode.csv")  # absent when it did not run: the summary says so
  if [ "$mode" = far ] && ! fm_start_memnode 256; then
    echo "bench: no memnode: no curve for kvserver (paging $mode)" >&2
    continue
  fi
  echo "bench: kvserver (config/kvserver.toml, paging $mode, CPU $SERVER_CPU) <- DPDK loadgen over memif (CPU $LOADGEN_CPU): $KV_RATES"
  rm -f "$FM_MEMIF"
  fm_bg "$FM_WORK/kvserver-$mode.log" ${FM_NICE[@]+"${FM_NICE[@]}"} ${FM_ENV[@]+"${FM_ENV[@]}"} \
    "$FM_KVSERVER" --config "$FM_WORK/kvserver.toml"
  KV_PID=$FM_PID
  if fm_wait_socket "bench: kvserver (paging $mode)" "$KV_PID" "$FM_WORK/kvserver-$mode.log" "$FM_MEMIF"; then
    KV_CMD=("$FM_LOADGEN" --vdev "$(fm_memif_vdev client)"
            --rate "$KV_RATES" --label "kvserver-$mode" --csv "$OUT/kvserver-$mode.csv" "${COMMON[@]}")
    # Exit 3 (timeouts past saturation) and 4 (a point INVALID) keep their rows, marked in the CSV.
    fm_fg ${FM_NICE[@]+"${FM_NICE[@]}"} ${FM_ENV[@]+"${FM_ENV[@]}"} "${KV_CMD[@]}" ||
      fm_loadgen_status "bench: kvserver-$mode" $? sweep
  else
    echo "bench: kvserver (paging $mode) did not start: no curve for it" >&2
  fi
  fm_stop "$KV_PID"
  if [ "$mode" = far ]; then fm_stop "$FM_MEMNODE_PID"; fi
done

# --- stock memcached, one worker thread on the same CPU, the kernel-socket loadgen
echo "bench: memcached -U $MC_PORT -t 1 (CPU $SERVER_CPU) <- kernel-socket loadgen over loopback (CPU $LOADGEN_CPU): $MC_RATES"
fm_bg "$FM_WORK/memcached.log" ${FM_NICE[@]+"${FM_NICE[@]}"} taskset -c "$SERVER_CPU" memcached -U "$MC_PORT" \
  -p 0 -l 127.0.0.1 -t 1 -u root -m 1024
MC_PID=$FM_PID
sleep 0.5
MC_CMD=("$FM_LOADGEN" --backend socket --server-ip 127.0.0.1 --server-port "$MC_PORT"
        --rate "$MC_RATES" --label memcached --csv "$OUT/memcached.csv" "${COMMON[@]}")
fm_fg ${FM_NICE[@]+"${FM_NICE[@]}"} ${FM_ENV[@]+"${FM_ENV[@]}"} "${MC_CMD[@]}" ||
  fm_loadgen_status "bench: memcached" $? sweep
fm_stop "$MC_PID"

# --- curves, ratio, plot
{
  echo "kvserver vs stock memcached -U, measured side by side by tools/bench/kvserver_vs_memcached.sh"
  cat "$FM_WORK/machine.txt"
  [ "$FM_NICE_VALUE" != 0 ] && echo "every process at nice $FM_NICE_VALUE in its own autogroup (tools/lib/farmem.sh)"
  echo "server CPU $SERVER_CPU, loadgen CPU $LOADGEN_CPU; keys $KEYS, values $VALUE_SIZE B, GET ratio $GET_RATIO, Poisson arrivals"
  echo "kvserver ($MODES): ${KV_CMD[*]}"
  echo "memcached: memcached -U $MC_PORT -p 0 -l 127.0.0.1 -t 1 -u root -m 1024 (taskset -c $SERVER_CPU)"
  echo "           ${MC_CMD[*]}"
  echo
  python3 tools/lib/report.py curves --bound-us "$P99_BOUND_US" "${kv_csvs[@]}" "$OUT/memcached.csv"
  echo
  fm_noise_floor "$LOADGEN_CPU"
} | tee "$OUT/summary.txt"
plot_csvs=()
for c in "${kv_csvs[@]}" "$OUT/memcached.csv"; do [ -s "$c" ] && plot_csvs+=("$c"); done
if [ ${#plot_csvs[@]} -gt 0 ]; then
  tools/loadgen/plot.py -o "$OUT/latency.png" --bound-us "$P99_BOUND_US" \
    --title "kvserver (DPDK, memif, 1 core) vs memcached -U (1 thread): GET $GET_RATIO, $VALUE_SIZE B values" \
    "${plot_csvs[@]}"
fi
