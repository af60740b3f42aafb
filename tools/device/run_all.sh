#!/usr/bin/env bash
# The one script of a device session (a borrowed 16-CPU machine, build-bundle/ carried along):
#  1. tools/device/scaling.sh: no-fault / sync / async peak throughput per server core count;
#  2. tools/experiments/core_alloc.sh with up to 12 workers: load steps under automatic
#     allocation, reallocation latency (command and congestion), CPU saved at low load.
# Everything lands under $OUT (scaling/, core-alloc/, machine.txt). Budget: SCALING_BUDGET_S for
# step 1 (default 240 s); step 2 takes about 60-90 s.
#   OUT=... bash tools/device/run_all.sh
#   OUT=/tmp/ra HUGEPAGES=0 SCALING_BUDGET_S=60 SCALING_CORES=1 SPARE_CORES=0 QUICK=1 ALLOC_LCORES="1 0" \
#     ALLOC_LG_LCORES=0 ALLOC_PEAK=200000 bash tools/device/run_all.sh     # a local check on 2 CPUs
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
OUT=${OUT:-results/device-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUNDLE=$ROOT/build-bundle
NCPU=$(nproc)
. tools/lib/farmem.sh
fm_machine_info long >"$OUT/machine.txt" 2>&1

# --- 1. scaling --------------------------------------------------------------------------------
SB=${SCALING_BUDGET_S:-240}
echo "=== scaling (budget ${SB} s) ==="
OUT=$OUT/scaling BUDGET_S=$SB CORES=${SCALING_CORES:-"1 4 11"} \
  timeout -k 10 $((SB + 40)) bash tools/device/scaling.sh 2>&1 | tail -40
cat "$OUT/scaling/summary.txt" 2>/dev/null

# --- 2. core allocation ------------------------------------------------------------------------
echo "=== core allocation ==="
# The bundle's programs with its libraries (only they get LD_LIBRARY_PATH; python3 and the
# shell keep the system's) and, where DPDK's own PMD folder is absent, its PMDs with EAL -d:
# FARMEM_BUNDLE (tools/lib/farmem.sh).
# HUGEPAGES (2048) 2 MiB pages reserved for it; 0 leaves the machine's setting alone.
[ "${HUGEPAGES:-2048}" = 0 ] || echo "${HUGEPAGES:-2048}" >/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages 2>/dev/null || true
NW=${ALLOC_WORKERS:-12}
[ $((NW + 4)) -le "$NCPU" ] || NW=$((NCPU - 4))
# (ALLOC_LCORES / ALLOC_LG_LCORES override the layout, e.g. "1 0" / "0" for a 2-CPU check.)
[ "$NW" -ge 2 ] || [ -n "${ALLOC_LCORES:-}" ] || { echo "core allocation: not enough CPUs ($NCPU)"; exit 0; }
LCORES=${ALLOC_LCORES:-$(seq -s ' ' 1 "$NW")}
LG_LCORES=${ALLOC_LG_LCORES:-$(seq -s ' ' $((NW + 1)) $((NCPU - 1)) | awk '{ for (i = 1; i <= NF && i <= 3; i++) printf "%s ", $i }')}
PEAK=${ALLOC_PEAK:-1200000}
timeout -k 10 ${ALLOC_TIMEOUT_S:-150} env FARMEM_BUNDLE="$BUNDLE" SKIP_SETUP=1 OUTDIR="$OUT/core-alloc" \
  EXP_LCORES="$LCORES" EXP_LOADGEN_LCORES="$LG_LCORES" EXP_EAL_MB=1024 \
  EXP_MBUFS=65535 STEPS="$((PEAK / 12))@1,$PEAK@1.5,$((PEAK / 12))@1,$((PEAK / 2))@1.5,$((PEAK / 12))@1" \
  LOW_RATE=$((PEAK / 10)) LOW_S=4 CMD_CYCLES=40 KEYS=100000 \
  bash tools/experiments/core_alloc.sh 2>&1 | tail -40
echo "=== done: $OUT ==="
