#!/usr/bin/env bash
# Sensitivity to the fetch latency: latency-vs-throughput curves of kvserver at 20% local memory
# with 1, 3.3 and 10 us fetches (the emulated transport's latency_ns), sync and async side by side,
# and each curve's peak at p99 <= 500 us (tools/lib/report.py's rule). Saves
# results/fetch-latency-<date>.{csv,png,txt} (.txt: peaks, ratios, command, machine, build, noise
# floor).
#   tools/experiments/fetch_latency.sh [RATES] [DURATION_S]
set -euo pipefail
cd "$(dirname "$0")/../.."
RATES=${1:-${RATES:-25k:500k:25k}}
DURATION=${2:-${DURATION:-2}}
KEYS=${KEYS:-200000}
LATENCIES=${LATENCIES:-"1000 3300 10000"}
MODES=${MODES:-"sync async"}
. tools/lib/farmem.sh
fm_setup
fm_workdir exp
mkdir -p results
OUT=results/fetch-latency-$(date +%Y%m%d-%H%M%S)
fm_start_memnode 256
csvs=()
for lat in $LATENCIES; do
  for mode in $MODES; do
    label="$mode-$((lat / 100))00ns"
    fm_start_server "$label" "$(LATENCY_NS=$lat fm_mode_toml "$mode")"
    echo "fetch_latency: $label, rates $RATES"
    fm_loadgen --keys "$KEYS" --value-size 128 --rate "$RATES" --duration "$DURATION" --warmup 0.5 \
      --stop-p99-us 2000 --label "$label" --csv "$FM_WORK/$label.csv" --quiet >/dev/null ||
      fm_loadgen_status "fetch_latency: $label" $? sweep
    fm_stop_server
    csvs+=("$FM_WORK/$label.csv")
  done
done
for c in "${csvs[@]}"; do fm_append_csv "$c" "$OUT.csv"; done
[ -s "$OUT.csv" ] || { echo "$(basename "$0" .sh): no run produced a row" >&2; exit 1; }
{
  echo "fetch_latency: LATENCIES=\"$LATENCIES\" MODES=\"$MODES\" IDLE_BACKOFF=${IDLE_BACKOFF:-true} tools/experiments/fetch_latency.sh $RATES $DURATION"
  python3 tools/lib/report.py fetch-latency --bound-us 500 "$OUT.csv"
  fm_record
} | tee "$OUT.txt"
python3 tools/loadgen/plot.py -o "$OUT.png" --title "kvserver at 20% local memory: fetch latency" "$OUT.csv" >/dev/null 2>&1 && echo "fetch_latency: plot $OUT.png" || true
echo "fetch_latency: rows in $OUT.csv"
