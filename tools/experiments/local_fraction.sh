#!/usr/bin/env bash
# Far-memory sensitivity to local memory: latency-vs-throughput curves of kvserver with 100%,
# 50%, 20% and 10% of its item memory local, in one fault mode (sync by default: the FCFS
# busy-wait baseline), open-loop GETs of 128 B values over the whole working set. Saves
# results/local-fraction-<mode>-<date>.{csv,png}.
#   tools/experiments/local_fraction.sh [sync|async] [RATES] [DURATION_S]
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:-sync}
RATES=${2:-${RATES:-20k:200k:20k}}
DURATION=${3:-${DURATION:-2}}
KEYS=${KEYS:-200000}
FRACTIONS=${FRACTIONS:-"1.0 0.5 0.2 0.1"}
tools/setup.sh >/dev/null
tools/build.sh >/dev/null
. tools/experiments/lib.sh
mkdir -p results
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=results/local-fraction-$MODE-$STAMP
exp_start_memnode 256
csvs=()
for f in $FRACTIONS; do
  label="local-$(python3 -c "print(int(round($f*100)))")%"
  exp_start_server "$label" "$(exp_mode_toml "$MODE" "$f")"
  echo "local_fraction: $label ($MODE faults), rates $RATES"
  exp_loadgen --keys "$KEYS" --value-size 128 --rate "$RATES" --duration "$DURATION" --warmup 0.5 \
    --stop-p99-us 2000 --label "$label" --csv "$EXP_WORK/$label.csv" --quiet >/dev/null ||
    exp_loadgen_status "local_fraction: $label" $? sweep
  exp_stop_server
  csvs+=("$EXP_WORK/$label.csv")
done
for c in "${csvs[@]}"; do exp_append_csv "$c" "$OUT.csv"; done
[ -s "$OUT.csv" ] || { echo "$(basename "$0" .sh): no run produced a row" >&2; exit 1; }
python3 tools/loadgen/plot.py -o "$OUT.png" --title "kvserver, $MODE faults, local memory share" "$OUT.csv" || true
python3 - "$OUT.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"{'run':>12} {'offered':>9} {'achieved':>9} {'p50 us':>8} {'p99 us':>9} {'valid':>5}")
for r in rows:
    print(f"{r['label']:>12} {float(r['offered_rps']):9.0f} {float(r['all_achieved_rps']):9.0f} "
          f"{float(r['all_p50_us']):8.1f} {float(r['all_p99_us']):9.1f} {r['valid']:>5}")
PY
echo "local_fraction: $OUT.csv $OUT.png"
