#!/usr/bin/env bash
# Cycles a no-fault GET costs on one core's whole request path (tools/bench/request_path: ring
# port, stack, queue set, scheduler, session, store, reply; no NIC, so no memif or loadgen noise),
# for a store that fits in the caches (1,000 keys) and for the experiments' 200,000 keys of
# 128 B (Table 1, core_loop.sh), whose lookups miss the caches. ROUNDS rounds on the server's CPU;
# with several builds, interleaved (A B A B ...). The summary gives each configuration's median
# and range in cycles (TSC) a request, then the machine, the builds and the noise floor.
#
#   tools/bench/request_cycles.sh [REQUEST_PATH...]   # default build-release/tools/bench/request_path
#   (set up and built as FARMEM_RELEASE=1 scripts do); given binaries are used as they are
# Knobs: ROUNDS (5), CPU (EXP_LCORES or 1), REQUESTS (400000 a run), BURST (8 requests a pass).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/lib/farmem.sh

ROUNDS=${ROUNDS:-5}
CPU=${CPU:-${EXP_LCORES:-1}}
REQUESTS=${REQUESTS:-400000}
BURST=${BURST:-8}
fm_setup  # packages, and the build engine_bench (the noise floor) comes from
fm_bench_binaries build-release tools/bench/request_path "--buildtype=release -Dtests=disabled" "$@"
set -- "${FM_BENCHES[@]}"
[ "$ROUNDS" -ge 1 ] || { echo "bench: ROUNDS must be >= 1" >&2; exit 1; }
fm_workdir reqcycles
raw=$FM_WORK/raw.txt
: >"$raw"
configs=("1000 32" "1000 128" "200000 128")
for r in $(seq "$ROUNDS"); do
  for c in "${configs[@]}"; do
    read -r keys value <<<"$c"
    for b in "$@"; do
      out=$(taskset -c "$CPU" "$b" --keys "$keys" --value-bytes "$value" --requests "$REQUESTS" \
              --burst "$BURST" 2>/dev/null | grep 'cycles/request') ||
        { echo "bench: $b --keys $keys failed" >&2; exit 1; }
      cyc=$(sed -n 's/.*cycles\/request \([0-9]*\).*/\1/p' <<<"$out")
      digest=$(sed -n 's/.*reply digest \([0-9a-f]*\).*/\1/p' <<<"$out")
      echo "$b $r $keys $value $cyc $digest" >>"$raw"
    done
  done
done
echo "cycles a GET (TSC), request_path, $REQUESTS GETs a run, burst $BURST, $ROUNDS rounds on CPU $CPU, median (range):"
python3 - "$raw" "$@" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for b in sys.argv[2:]:
    print(f"  {b}:")
    for keys, value in (("1000", "32"), ("1000", "128"), ("200000", "128")):
        v = [int(c) for bb, _, k, val, c, _ in rows if bb == b and k == keys and val == value]
        d = sorted({dg for bb, _, k, val, _, dg in rows if bb == b and k == keys and val == value})
        print(f"    {keys:>6} keys of {value:>3} B: {statistics.median(v):6.0f} ({min(v)}-{max(v)}) "
              f"cycles a GET; reply digest {' '.join(d)}")
PY
echo "command: ROUNDS=$ROUNDS CPU=$CPU REQUESTS=$REQUESTS BURST=$BURST tools/bench/request_cycles.sh $*"
fm_machine_info
fm_bench_builds "$@"
fm_noise_floor "$CPU"
