#!/usr/bin/env bash
# Builds and runs the libFuzzer harnesses of tests/fuzz (docs/fuzzing.md).
#
#   tools/fuzz.sh build                    configure (once) and build build-fuzz/ (clang-14)
#   tools/fuzz.sh ci                       every harness over its corpus and regressions, then a
#                                          fixed number of executions; non-zero on any finding
#   tools/fuzz.sh long <name|all> [runs]   long campaigns (default 10,000,000 executions each)
#   tools/fuzz.sh repro <name> <file>...   run inputs once (a crash artifact, a regression)
#
# Environment: FUZZ_BUILD (build dir, default build-fuzz), FUZZ_WORK (scratch for long runs,
# default /tmp/farmem-fuzz: corpus/<name> new inputs, artifacts/<name> crashes, logs/<name>.log),
# FUZZ_TIMEOUT (seconds one input may take in a long run, default 120: a campaign shares the
# machine, and on a 2-vCPU VM a niced fuzzer starved by builds once took 22 s for an input that
# runs in 0.06 s; a real hang still ends the run), FUZZ_NICE (niceness of long runs, default 10).
# New corpus entries never go into the tree; copy the good ones into tests/fuzz/corpus/ by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${FUZZ_BUILD:-build-fuzz}
WORK=${FUZZ_WORK:-/tmp/farmem-fuzz}
HARNESSES=(packet datagram config control memnode_wire)

# Per harness: -max_len, and the executions of one `ci` run (about 2-3 minutes for all five on
# a 2-vCPU VM; see docs/fuzzing.md for the rates).
declare -A MAX_LEN=([packet]=2048 [datagram]=9000 [config]=4096 [control]=4096 [memnode_wire]=9000)
declare -A CI_RUNS=([packet]=1000000 [datagram]=150000 [config]=60000 [control]=60000
                    [memnode_wire]=500000)

die() { echo "fuzz.sh: $*" >&2; exit 2; }

# Builds the harnesses named (default: all).
build() {
  command -v clang++-14 >/dev/null || die "clang++-14 not found (tools/setup.sh installs it)"
  if [ ! -f "$BUILD/build.ninja" ]; then
    # -fsanitize=fuzzer-no-link gives the libraries under test coverage counters; the harnesses
    # add -fsanitize=fuzzer (tests/fuzz/meson.build). Sanitizer reports never recover.
    CXX=clang++-14 CC=clang-14 meson setup "$BUILD" -Dfuzz=enabled -Dtests=disabled \
      --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
      "-Dcpp_args=-fsanitize=fuzzer-no-link -fno-sanitize-recover=all -fno-omit-frame-pointer -Wno-deprecated-volatile"
  fi
  local targets=() h
  for h in "${@:-${HARNESSES[@]}}"; do targets+=("tests/fuzz/${h}_fuzz"); done
  # One ninja at a time in the build dir (two campaigns may start together).
  flock "$BUILD/.fuzz-build.lock" nice ninja -C "$BUILD" "${targets[@]}"
}

check_name() {
  local h
  for h in "${HARNESSES[@]}"; do [ "$h" = "$1" ] && return 0; done
  die "unknown harness '$1' (have: ${HARNESSES[*]})"
}

# libFuzzer flags every run of harness $1 uses.
flags() {
  local h=$1 f=(-max_len="${MAX_LEN[$1]}" -rss_limit_mb=2048 -timeout="${TIMEOUT_S:-20}"
    -print_final_stats=1)
  [ -f "tests/fuzz/$h.dict" ] && f+=(-dict="tests/fuzz/$h.dict")
  echo "${f[@]}"
}

# One summary line from a libFuzzer log: executions, final cov/ft, exec/s.
summary() {
  local h=$1 log=$2 rc=$3 done execs rate
  done=$({ grep -E '^#[0-9]+[[:space:]].*cov: ' "$log" || true; } | tail -1)
  execs=$({ grep -oE 'stat::number_of_executed_units:[[:space:]]+[0-9]+' "$log" || true; } |
    tail -1 | awk '{print $2}')
  rate=$({ grep -oE 'stat::average_exec_per_sec:[[:space:]]+[0-9]+' "$log" || true; } |
    tail -1 | awk '{print $2}')
  printf '%-13s %s  execs %s  %s  exec/s %s  log %s\n' "$h" \
    "$([ "$rc" = 0 ] && echo ok || echo "FAILED (rc $rc)")" "${execs:-?}" \
    "$(echo "$done" | grep -oE 'cov: [0-9]+ ft: [0-9]+' || echo 'cov: ? ft: ?')" "${rate:-?}" "$log"
}

# Runs the committed regressions of $1 once each; returns non-zero on a crash.
regressions() {
  local h=$1 log=$2 files=()
  shopt -s nullglob
  files=(tests/fuzz/regressions/"$h"/*)
  shopt -u nullglob
  [ ${#files[@]} -eq 0 ] && return 0
  # shellcheck disable=SC2046
  nice "$BUILD/tests/fuzz/${h}_fuzz" $(flags "$h") "${files[@]}" >"$log" 2>&1
}

ci() {
  build
  local out failed=0 h rc
  out=$(mktemp -d /tmp/farmem-fuzz-ci.XXXXXX)
  for h in "${HARNESSES[@]}"; do
    mkdir -p "$out/$h/new"
    rc=0
    regressions "$h" "$out/$h/regressions.log" || rc=$?
    if [ "$rc" -ne 0 ]; then
      echo "$h: a regression input crashes: see $out/$h/regressions.log" >&2
      cp "$out/$h/regressions.log" "$out/$h/fuzz.log"
    else
      # The committed corpus, then a fixed number of executions (fixed seed: repeatable).
      # shellcheck disable=SC2046
      nice "$BUILD/tests/fuzz/${h}_fuzz" $(flags "$h") -seed=1 -runs="${CI_RUNS[$h]}" \
        -artifact_prefix="$out/$h/" "$out/$h/new" "tests/fuzz/corpus/$h" >"$out/$h/fuzz.log" 2>&1 ||
        rc=$?
    fi
    summary "$h" "$out/$h/fuzz.log" "$rc"
    [ "$rc" -ne 0 ] && failed=1
  done
  if [ "$failed" -ne 0 ]; then
    echo "fuzz.sh ci: FAILED; crash inputs and logs under $out" >&2
    return 1
  fi
  echo "fuzz.sh ci: all harnesses clean (logs under $out)"
}

long() {
  local which=${1:-all} runs=${2:-10000000} list=() h rc failed=0
  if [ "$which" = all ]; then list=("${HARNESSES[@]}"); else check_name "$which"; list=("$which"); fi
  build "${list[@]}"
  for h in "${list[@]}"; do
    mkdir -p "$WORK/corpus/$h" "$WORK/artifacts/$h" "$WORK/logs"
    local log="$WORK/logs/$h.log"
    echo "$h: $runs executions; log $log, new inputs $WORK/corpus/$h, crashes $WORK/artifacts/$h/"
    rc=0
    # shellcheck disable=SC2046
    nice -n "${FUZZ_NICE:-10}" "$BUILD/tests/fuzz/${h}_fuzz" \
      $(TIMEOUT_S=${FUZZ_TIMEOUT:-120} flags "$h") -runs="$runs" \
      -artifact_prefix="$WORK/artifacts/$h/" "$WORK/corpus/$h" "tests/fuzz/corpus/$h" \
      >"$log" 2>&1 || rc=$?
    summary "$h" "$log" "$rc"
    [ "$rc" -ne 0 ] && failed=1
  done
  return "$failed"
}

repro() {
  local h=${1:-}
  [ -n "$h" ] || die "usage: tools/fuzz.sh repro <name> <file>..."
  check_name "$h"
  shift
  [ $# -gt 0 ] || die "usage: tools/fuzz.sh repro <name> <file>..."
  build "$h" >/dev/null
  # shellcheck disable=SC2046
  "$BUILD/tests/fuzz/${h}_fuzz" $(flags "$h") "$@"
}

case "${1:-}" in
  build) build ;;
  ci) ci ;;
  long) shift; long "$@" ;;
  repro) shift; repro "$@" ;;
  *) die "usage: tools/fuzz.sh build | ci | long <name|all> [runs] | repro <name> <file>..." ;;
esac
