#!/usr/bin/env bash
# No-fault GETs on one server core over memif, and who saturates: at each offered rate, the rate
# achieved, the server's busy share (loop iterations that found work, by the TSC) and busy cycles
# per request, next to the loadgen's busy share and schedule adherence (issue #14, part 3). The
# server's counters are read 1 s and 2 s into each loadgen run (from its progress lines), so
# the share covers load only, never the loadgen's start. TRIALS sweeps; with PERF=1, a
# `perf record -e cpu-clock -g` of the server over that same second at the last rate of the last
# trial, its top functions in the summary. Saves CSVs and summary.txt under $OUT. On this project's
# KVM VMs cpu-clock samples pile up on the instruction after a PAUSE or RDTSC (the timer
# interrupt is taken there), so the profile overstates the loop's own lines: instruction counts
# come from callgrind (tools/bench/request_path), cycles from the busy share above.
#
#   tools/bench/core_loop.sh                       # ~1-2 minutes
#   FARMEM_RELEASE=1 PERF=1 tools/bench/core_loop.sh
#   NO_BUILD=1 FARMEM_BUILD=<build> ...      # another build's programs (A/B: run interleaved)
# Knobs: RATES (300000 600000 900000 1200000), DURATION (2.5 s a point), TRIALS (3), KEYS (200000),
# EXP_LCORES / EXP_LOADGEN_LCORES (server 1, loadgen 0; tools/lib/farmem.sh), PERF (0), MODE
# (no-fault; or a far mode of tools/experiments/table1.sh, e.g. async: 20% local, 3.3 us fetches
# from a memnode started here — where a fault's cycles go at saturation, with PERF=1), LG_EXTRA
# (more loadgen arguments, e.g. "--late-us 50": a send later than that counts as late).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/lib/farmem.sh

OUT=${OUT:-results/core-loop-$(date +%Y%m%d-%H%M%S)}
RATES=${RATES:-300000 600000 900000 1200000}
DURATION=${DURATION:-2.5}  # >= 2: the counters are read 1 s and 2 s in (0.5 s of it warm-up)
TRIALS=${TRIALS:-3}
KEYS=${KEYS:-200000}
MODE=${MODE:-no-fault}
export IDLE_BACKOFF=${IDLE_BACKOFF:-false}

fm_setup
fm_workdir coreloop
mkdir -p "$OUT"
[ "$TRIALS" -ge 1 ] || { echo "bench: TRIALS must be >= 1" >&2; exit 1; }
say() { echo "$*" | tee -a "$OUT/summary.txt"; }
: >"$OUT/summary.txt"
[ "$MODE" = no-fault ] || fm_start_memnode 256
say "core loop: $MODE GETs$([ "$MODE" = no-fault ] && echo " (local mode)" || echo " (20% local, ${LATENCY_NS:-3300} ns fetches)"), $KEYS keys of 128 B, one server core [${EXP_LCORES:-1}], loadgen [${EXP_LOADGEN_LCORES:-0}], idle back-off $IDLE_BACKOFF; rates $RATES, $DURATION s each, $TRIALS trials${LG_EXTRA:+; loadgen $LG_EXTRA}"
last_rate=${RATES##* }
for t in $(seq "$TRIALS"); do
  fm_start_server "trial$t" "$(fm_mode_toml "$MODE")" || exit 1
  preload=()
  for rate in $RATES; do
    name="t$t-$rate"
    fm_loadgen_cmd --keys "$KEYS" --value-size 128 --rate "$rate" --duration "$DURATION" --warmup 0.5 \
      ${preload[@]+"${preload[@]}"} --label "$name" --csv "$OUT/$name.csv" --quiet ${LG_EXTRA:-}
    fm_bg "$FM_WORK/$name.loadgen.log" "${FM_CMD[@]}"
    lg=$FM_PID
    # Progress lines ("rate R/s  1.0/2.5 s ...") mark the run's seconds.
    at() { timeout 60 bash -c "until grep -q 'rate $rate/s  $1/' '$FM_WORK/$name.loadgen.log'; do
             kill -0 $lg 2>/dev/null || exit 1; sleep 0.01; done"; }
    perf_pid=""
    if at 1.0; then
      fm_dpctl stats --json >"$FM_WORK/$name.before.json"
      if [ "${PERF:-0}" = 1 ] && [ "$t" = "$TRIALS" ] && [ "$rate" = "$last_rate" ]; then
        perf record -q -e cpu-clock -g -o "$FM_WORK/perf.data" -p "$FM_SERVER_PID" -- sleep 1 \
          >/dev/null 2>&1 &
        perf_pid=$!
      fi
      at 2.0 && fm_dpctl stats --json >"$FM_WORK/$name.after.json"
    fi
    rc=0
    fm_wait "$lg" || rc=$?
    fm_loadgen_status "core loop: trial $t at $rate" "$rc" sweep "$FM_WORK/$name.loadgen.log"
    [ -n "$perf_pid" ] && wait "$perf_pid" || true
    preload=(--no-preload)
    python3 "$FM_REPORT" busy "trial $t, $rate offered" "$FM_WORK/$name.before.json" \
      "$FM_WORK/$name.after.json" "$OUT/$name.csv" | tee -a "$OUT/summary.txt"
  done
  fm_stop_server
done
if [ -s "$FM_WORK/perf.data" ]; then
  say "perf (cpu-clock, server, trial $TRIALS at $last_rate offered), top functions by self time:"
  perf report -i "$FM_WORK/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null |
    grep -E '^ +[0-9]+\.[0-9]+%' | head -25 | tee -a "$OUT/summary.txt"
fi
fm_record >>"$OUT/summary.txt"
tail -3 "$OUT/summary.txt"
echo "bench: rows in $OUT"
