#!/usr/bin/env bash
# Sensitivity to the fetch latency: latency-vs-throughput curves of kvserver at 20% local memory
# with 1, 3.3 and 10 us fetches (the emulated transport's latency_ns), sync and async side by side,
# and each curve's peak at p99 <= 500 us. Saves results/fetch-latency-<date>.{csv,png}.
#   tools/experiments/fetch_latency.sh [RATES] [DURATION_S]
set -euo pipefail
cd "$(dirname "$0")/../.."
RATES=${1:-${RATES:-25k:500k:25k}}
DURATION=${2:-${DURATION:-2}}
KEYS=${KEYS:-200000}
LATENCIES=${LATENCIES:-"1000 3300 10000"}
MODES=${MODES:-"sync async"}
[ -n "${SKIP_SETUP:-}" ] || { tools/setup.sh >/dev/null; tools/build.sh >/dev/null; }
. tools/experiments/lib.sh
mkdir -p results
OUT=results/fetch-latency-$(date +%Y%m%d-%H%M%S)
exp_start_memnode 256
csvs=()
for lat in $LATENCIES; do
  for mode in $MODES; do
    label="$mode-$((lat / 100))00ns"
    LATENCY_NS=$lat exp_start_server "$label" "$(LATENCY_NS=$lat exp_mode_toml "$mode")"
    echo "fetch_latency: $label, rates $RATES"
    exp_loadgen --keys "$KEYS" --value-size 128 --rate "$RATES" --duration "$DURATION" --warmup 0.5 \
      --stop-p99-us 2000 --label "$label" --csv "$EXP_WORK/$label.csv" --quiet >/dev/null || true
    exp_stop_server
    csvs+=("$EXP_WORK/$label.csv")
  done
done
head -1 "${csvs[0]}" >"$OUT.csv"
for c in "${csvs[@]}"; do tail -n +2 "$c" >>"$OUT.csv"; done
python3 - "$OUT.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
peaks = {}
for r in rows:
    ok = r["valid"] == "1" and float(r["all_p99_us"]) <= 500
    if ok:
        peaks[r["label"]] = max(peaks.get(r["label"], 0), float(r["all_achieved_rps"]))
    else:
        peaks.setdefault(r["label"], 0)
print("peak throughput at p99 <= 500 us (valid points):")
for label, p in peaks.items():
    print(f"  {label:16} {p / 1000:8.0f}K")
lats = sorted({l.split("-", 1)[1] for l in peaks}, key=lambda s: int(s[:-2]))
for lat in lats:
    s, a = peaks.get("sync-" + lat, 0), peaks.get("async-" + lat, 0)
    if s:
        print(f"  async/sync at {lat}: {a / s:.2f}x")
PY
python3 tools/loadgen/plot.py -o "$OUT.png" --title "kvserver at 20% local memory: fetch latency" "$OUT.csv" >/dev/null 2>&1 && echo "fetch_latency: plot $OUT.png" || true
echo "fetch_latency: rows in $OUT.csv"
