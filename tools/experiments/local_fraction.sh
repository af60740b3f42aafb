#!/usr/bin/env bash
# Far-memory sensitivity to local memory: latency-vs-throughput curves of kvserver with 100%,
# 50%, 20% and 10% of its item memory local, in one fault mode (sync by default: the FCFS
# busy-wait baseline), open-loop GETs of 128 B values over the whole working set. Saves
# results/local-fraction-<mode>-<date>.{csv,png,txt} (.txt: every point, each fraction's peak at
# p99 <= 500 us by tools/lib/report.py's rule, the command, machine, build and noise floor).
#   tools/experiments/local_fraction.sh [sync|async] [RATES] [DURATION_S]
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:-sync}
RATES=${2:-${RATES:-20k:200k:20k}}
DURATION=${3:-${DURATION:-2}}
KEYS=${KEYS:-200000}
FRACTIONS=${FRACTIONS:-"1.0 0.5 0.2 0.1"}
. tools/lib/farmem.sh
fm_setup
fm_workdir exp
mkdir -p results
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=results/local-fraction-$MODE-$STAMP
fm_start_memnode 256
csvs=()
for f in $FRACTIONS; do
  label="local-$(python3 -c "print(int(round($f*100)))")%"
  fm_start_server "$label" "$(fm_mode_toml "$MODE" "$f")"
  echo "local_fraction: $label ($MODE faults), rates $RATES"
  fm_loadgen --keys "$KEYS" --value-size 128 --rate "$RATES" --duration "$DURATION" --warmup 0.5 \
    --stop-p99-us 2000 --label "$label" --csv "$FM_WORK/$label.csv" --quiet >/dev/null ||
    fm_loadgen_status "local_fraction: $label" $? sweep
  fm_stop_server
  csvs+=("$FM_WORK/$label.csv")
done
for c in "${csvs[@]}"; do fm_append_csv "$c" "$OUT.csv"; done
[ -s "$OUT.csv" ] || { echo "$(basename "$0" .sh): no run produced a row" >&2; exit 1; }
python3 tools/loadgen/plot.py -o "$OUT.png" --title "kvserver, $MODE faults, local memory share" "$OUT.csv" || true
{
  echo "local_fraction: FRACTIONS=\"$FRACTIONS\" IDLE_BACKOFF=${IDLE_BACKOFF:-true} tools/experiments/local_fraction.sh $MODE $RATES $DURATION"
  python3 tools/lib/report.py points "$OUT.csv"
  python3 tools/lib/report.py peaks --bound-us 500 --who "local_fraction $MODE" "$OUT.csv"
  fm_record
} | tee "$OUT.txt"
echo "local_fraction: $OUT.csv $OUT.png $OUT.txt"
