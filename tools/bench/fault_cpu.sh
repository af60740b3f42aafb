#!/usr/bin/env bash
# CPU per fault, the issue #14 measure: everything but the fetch and the emulated copy. Runs
# fault_bench's NoCopy benchmarks (the emulated transport completes every transfer without moving
# its bytes, as a real NIC's DMA would spare the CPU) beside the resident request they are
# compared with, on the server's CPU, ROUNDS times; with several builds (A B A B ...), interleaved.
# A fault's CPU = the miss request's time minus the resident request's, per round; the summary
# gives their median and range, directly on one emulated queue pair and through the replicated
# layer with one node (kvserver's default), with a clean victim and with a dirty one (every
# eviction writes back: the write-back's cost amortized in). Ends with the machine, the build and
# the noise floor.
#
#   tools/bench/fault_cpu.sh [BENCH...]       # default build-rt/tests/paging/fault_bench, which
#   it sets up (meson release with tests) and builds first; given BENCHes are used as they are
# Knobs: ROUNDS (5), CPU (EXP_LCORES or 1), MIN_TIME (0.3 s a benchmark).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/lib/farmem.sh

ROUNDS=${ROUNDS:-5}
CPU=${CPU:-${EXP_LCORES:-1}}
MIN_TIME=${MIN_TIME:-0.3}
fm_setup  # packages, and the build engine_bench (the noise floor) comes from
# The default: a release build with tests in build-rt/, set up and brought up to date here.
fm_bench_binaries build-rt tests/paging/fault_bench "--buildtype=release -Dtests=enabled" "$@"
set -- "${FM_BENCHES[@]}"
[ "$ROUNDS" -ge 1 ] || { echo "bench: ROUNDS must be >= 1" >&2; exit 1; }
fm_workdir faultcpu
raw=$FM_WORK/raw.txt
: >"$raw"
for r in $(seq "$ROUNDS"); do
  for b in "$@"; do
    taskset -c "$CPU" "$b" --benchmark_filter='AsyncRequestResident|NoCopy' \
      --benchmark_min_time="$MIN_TIME" 2>/dev/null |
      awk -v b="$b" -v r="$r" '/^BM_/ { print b, r, $1, $2 }' >>"$raw"
  done
done
echo "CPU per fault (ns), fault_bench NoCopy minus the resident request, $ROUNDS rounds on CPU $CPU, median (range):"
python3 - "$raw" "$@" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
t = {}
for b, r, name, ns in rows:
    t[(b, int(r), name.removeprefix("BM_"))] = float(ns)
pairs = [("direct, clean victim", "AsyncMissCleanNoCopy", "AsyncRequestResident"),
         ("direct, dirty victim", "AsyncMissDirtyNoCopy", "AsyncRequestResident"),
         ("one-node layer, clean victim", "AsyncMissCleanNoCopyOneNodeLayer", "AsyncRequestResidentOneNodeLayer"),
         ("one-node layer, dirty victim", "AsyncMissDirtyNoCopyOneNodeLayer", "AsyncRequestResidentOneNodeLayer")]
rounds = sorted({r for _, r, _ in t})
for b in sys.argv[2:]:
    print(f"  {b}:")
    res = [t.get((b, r, "AsyncRequestResident")) for r in rounds]
    res = [v for v in res if v is not None]
    if res:
        print(f"    {'resident request':30s} {statistics.median(res):6.0f} ({min(res):.0f}-{max(res):.0f}) ns")
    for label, miss, base in pairs:
        d = [t[(b, r, miss)] - t[(b, r, base)] for r in rounds if (b, r, miss) in t and (b, r, base) in t]
        if d:
            print(f"    {label:30s} {statistics.median(d):6.0f} ({min(d):.0f}-{max(d):.0f}) ns a fault")
        else:
            print(f"    {label:30s} not in this build")
PY
echo "command: ROUNDS=$ROUNDS CPU=$CPU tools/bench/fault_cpu.sh $*"
fm_machine_info
fm_bench_builds "$@"
fm_noise_floor "$CPU"
