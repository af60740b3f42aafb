#!/usr/bin/env bash
# Instructions per request of fault_bench's fixed-size async benchmarks under callgrind — a
# resident request, a miss with a clean victim, a miss with a dirty victim (with the default
# frame reserve and without) — and how many of them are the emulated transport's page copies
# (memcpy/memmove: a real RNIC's DMA); the OneNodeLayer pair goes through the replicated layer with
# one node as kvserver does by default, with no bytes moved. Each runs at 20,000 and 100,000 iterations; the
# difference divided by 80,000 cancels the set-up. Instruction counts repeat run to run, unlike
# times on these VMs.
#
#   BUILD=build-rt tools/bench/fault_instructions.sh     # a release build with tests
#   (meson setup build-rt --buildtype=release -Dtests=enabled; ninja -C build-rt tests/paging/fault_bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
BENCH=$BUILD/tests/paging/fault_bench
[ -x "$BENCH" ] || { echo "bench: $BENCH is not built (ninja -C $BUILD tests/paging/fault_bench)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "bench: valgrind is not installed (tools/setup.sh)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Total and copy instructions of one fixed benchmark.
count() {  # NAME ITERATIONS
  local out=$work/$1.$2
  valgrind --tool=callgrind --callgrind-out-file="$out" "$BENCH" \
    --benchmark_filter="^Fixed/$1/$2/" >/dev/null 2>&1
  local total copy
  total=$(callgrind_annotate --auto=no "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); t = $1 } END { print t + 0 }')
  copy=$(callgrind_annotate --auto=no --inclusive=no --threshold=100 "$out" 2>/dev/null |
    awk '/mem(cpy|move)/ { gsub(",", "", $1); s += $1 } END { print s + 0 }')
  echo "$total $copy"
}
echo "fault_bench instructions per request ($BENCH, $(git rev-parse --short HEAD)):"
for name in Resident MissClean MissDirty MissDirtyNoReserve MissCleanOneNodeLayer MissDirtyOneNodeLayer; do
  read -r t1 c1 < <(count "$name" 20000)
  read -r t2 c2 < <(count "$name" 100000)
  awk -v n="$name" -v t1="$t1" -v t2="$t2" -v c1="$c1" -v c2="$c2" 'BEGIN {
    all = (t2 - t1) / 80000; copy = (c2 - c1) / 80000; if (copy < 0.5) copy = 0
    printf "  %-20s %7.0f instructions, of which page copies %7.0f, the rest %6.0f\n", n, all, copy, all - copy }'
done
