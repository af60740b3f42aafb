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
      --stop-p99-us 2000 --label "$label" --csv "$EXP_WORK/$label.csv" --quiet >/dev/null ||
      exp_loadgen_status "fetch_latency: $label" $? sweep
    exp_stop_server
    csvs+=("$EXP_WORK/$label.csv")
  done
done
for c in "${csvs[@]}"; do exp_append_csv "$c" "$OUT.csv"; done
[ -s "$OUT.csv" ] || { echo "$(basename "$0" .sh): no run produced a row" >&2; exit 1; }
python3 - "$OUT.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
peaks, points, invalid = {}, {}, {}
for r in rows:
    label = r["label"]
    points[label] = points.get(label, 0) + 1
    invalid[label] = invalid.get(label, 0) + (r["valid"] != "1")
    if r["valid"] == "1" and float(r["all_p99_us"]) <= 500 and float(r["all_achieved_rps"]) > 0:
        peaks[label] = max(peaks.get(label, 0), float(r["all_achieved_rps"]))


def why(label):
    if label not in points:
        return f"{label}: not run"
    behind = f", {invalid[label]} of {points[label]} INVALID (the loadgen fell behind)" if invalid[label] else ""
    return f"{label}: no valid point with p99 <= 500 us{behind}"


print("peak throughput at p99 <= 500 us (valid points):")
for label in points:
    if label in peaks:
        print(f"  {label:16} {peaks[label] / 1000:8.0f}K")
    else:
        print(f"  {label:16} not measurable here ({why(label)})")
lats = sorted({l.split("-", 1)[1] for l in points}, key=lambda s: int(s[:-2]))
for lat in lats:
    s, a = "sync-" + lat, "async-" + lat
    if s in peaks and a in peaks:
        print(f"  async/sync at {lat}: {peaks[a] / peaks[s]:.2f}x")
    elif s in points or a in points:
        missing = "; ".join(why(l) for l in (a, s) if l not in peaks)
        print(f"  async/sync at {lat}: not measurable here ({missing})")
PY
python3 tools/loadgen/plot.py -o "$OUT.png" --title "kvserver at 20% local memory: fetch latency" "$OUT.csv" >/dev/null 2>&1 && echo "fetch_latency: plot $OUT.png" || true
echo "fetch_latency: rows in $OUT.csv"
