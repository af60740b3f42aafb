#!/usr/bin/env bash
# The one script of a device session (a borrowed 16-CPU machine, build-bundle/ carried along):
#  1. tools/device/scaling.sh: no-fault / sync / async peak throughput per server core count;
#  2. tools/experiments/core_alloc.sh with up to 12 workers: load steps under automatic
#     allocation, reallocation latency (command and congestion), CPU saved at low load.
# Everything lands under $OUT (scaling/, core-alloc/, machine.txt). Budget: SCALING_BUDGET_S for
# step 1 (default 240 s); step 2 takes about 60-90 s.
#   OUT=... bash tools/device/run_all.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
OUT=${OUT:-results/device-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUNDLE=$ROOT/build-bundle
NCPU=$(nproc)
{
  echo "date: $(date -u +%FT%TZ)"; echo "nproc: $NCPU"; uname -a
  lscpu 2>/dev/null | head -20
  grep -E 'HugePages_(Total|Free)' /proc/meminfo
  command -v python3 gnuplot || true
} >"$OUT/machine.txt" 2>&1

# --- 1. scaling --------------------------------------------------------------------------------
SB=${SCALING_BUDGET_S:-240}
echo "=== scaling (budget ${SB} s) ==="
OUT=$OUT/scaling BUDGET_S=$SB CORES=${SCALING_CORES:-"1 4 11"} \
  timeout -k 10 $((SB + 40)) bash tools/device/scaling.sh 2>&1 | tail -40
cat "$OUT/scaling/summary.txt" 2>/dev/null

# --- 2. core allocation ------------------------------------------------------------------------
echo "=== core allocation ==="
# The experiment scripts call $BUILD/<dir>/<program>: wrappers that run the bundle's programs
# with its libraries (only they get LD_LIBRARY_PATH; python3 and the shell keep the system's).
FB=$(mktemp -d /tmp/farmem-fakebuild.XXXXXX)
for p in kvserver memnode/memnode tools/loadgen/loadgen tools/dpctl/dpctl; do
  mkdir -p "$FB/$(dirname $p)"
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s/lib exec %s/bin/%s "$@"\n' "$BUNDLE" "$BUNDLE" "$(basename $p)" >"$FB/$p"
  chmod +x "$FB/$p"
done
# PMDs from the bundle with -d where DPDK's own folder is absent (see scaling.sh).
EAL_D=""
if [ ! -e /usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0/librte_net_memif.so.23 ]; then
  EAL_D="$BUNDLE/lib/librte_mempool_ring.so.23 $BUNDLE/lib/librte_net_memif.so.23"
fi
echo 2048 >/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages 2>/dev/null || true
NW=${ALLOC_WORKERS:-12}
[ $((NW + 4)) -le "$NCPU" ] || NW=$((NCPU - 4))
# (ALLOC_LCORES / ALLOC_LG_LCORES override the layout, e.g. "1 0" / "0" for a 2-CPU check.)
[ "$NW" -ge 2 ] || [ -n "${ALLOC_LCORES:-}" ] || { echo "core allocation: not enough CPUs ($NCPU)"; exit 0; }
LCORES=${ALLOC_LCORES:-$(seq -s ' ' 1 "$NW")}
LG_LCORES=${ALLOC_LG_LCORES:-$(seq -s ' ' $((NW + 1)) $((NCPU - 1)) | awk '{ for (i = 1; i <= NF && i <= 3; i++) printf "%s ", $i }')}
PEAK=${ALLOC_PEAK:-1200000}
timeout -k 10 ${ALLOC_TIMEOUT_S:-150} env FARMEM_BUILD="$FB" SKIP_SETUP=1 OUTDIR="$OUT/core-alloc" \
  EXP_LCORES="$LCORES" EXP_LOADGEN_LCORES="$LG_LCORES" EXP_EAL_D="$EAL_D" EXP_EAL_MB=1024 \
  EXP_MBUFS=65535 STEPS="$((PEAK / 12))@1,$PEAK@1.5,$((PEAK / 12))@1,$((PEAK / 2))@1.5,$((PEAK / 12))@1" \
  LOW_RATE=$((PEAK / 10)) LOW_S=4 CMD_CYCLES=40 KEYS=100000 \
  bash tools/experiments/core_alloc.sh 2>&1 | tail -40
rm -rf "$FB"
echo "=== done: $OUT ==="
