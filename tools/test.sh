#!/usr/bin/env bash
# Set-up, build, and the whole test suite: hermetic unit tests in parallel, then the tests that
# run DPDK processes one at a time (polling tests must not starve each other on 2 cores); then
# the same suites again on an ASan+UBSan build of the whole tree, the tests that start threads on a
# ThreadSanitizer build of just their targets, and a short run of every libFuzzer harness under
# ASan+UBSan (tools/fuzz.sh ci). FARMEM_SANITIZERS=0 skips the last three (a quick local run; CI
# always runs them).
set -uo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh || exit 1
BUILD=${FARMEM_BUILD:-build}
ASAN_BUILD=${FARMEM_ASAN_BUILD:-build-asan}
TSAN_BUILD=${FARMEM_TSAN_BUILD:-build-tsan}
# The meson tests that run threads of their own (the others gain nothing from TSan). A name this
# tree does not define is skipped with a note.
TSAN_TESTS=(sched_unit dataplane_unit paging_unit paging_verbs_unit memnode_unit kvapp_unit
            control_unit stress_farmem)
SANITIZERS=${FARMEM_SANITIZERS:-1}
rc=0
builds=()
stamp() { echo "test.sh: $(date +%T) $*"; }

# Runs the unit suite in parallel, then the dpdk and e2e suites one at a time, in build dir $1.
# Every GoogleTest binary writes its results under $1/gtest-results; the closing line counts them.
run_suites() {
  local dir=$1 abs
  case "$dir" in /*) abs=$dir ;; *) abs=$PWD/$dir ;; esac
  rm -rf "$dir/gtest-results"
  GTEST_OUTPUT="json:$abs/gtest-results/" meson test -C "$dir" --no-rebuild --suite unit \
    --print-errorlogs "${@:2}" || rc=1
  GTEST_OUTPUT="json:$abs/gtest-results/" meson test -C "$dir" --no-rebuild --suite dpdk \
    --suite e2e --num-processes 1 --print-errorlogs --logbase serial "${@:2}" || rc=1
  builds+=("$dir")
}

# Builds and runs only the named tests of the TSan build (one at a time: their threads poll, and
# two such tests would starve each other on 2 cores), results under gtest-results as above.
run_tsan_tests() {
  local dir=$TSAN_BUILD abs=$PWD/$TSAN_BUILD
  # Configure only (build.ninja is the one target that builds nothing), then ask meson which of
  # the tests exist and which targets they need.
  tools/build.sh tsan build.ninja >/dev/null || return 1
  local plan
  plan=$(meson introspect "$dir" --tests --targets | python3 -c '
import json, sys
info = json.load(sys.stdin)
files = {t["id"]: t["filename"][0] for t in info["targets"]}
tests = {t["name"]: t for t in info["tests"]}
for name in sys.argv[1:]:
    if name not in tests:
        print("missing", name)
        continue
    print("test", name)
    for dep in tests[name]["depends"]:
        print("target", files[dep])
' "${TSAN_TESTS[@]}") || return 1
  local names=() targets=() kind value
  while read -r kind value; do
    case "$kind" in
      test) names+=("$value") ;;
      target) targets+=("${value#"$abs"/}") ;;
      missing) echo "test.sh: no test '$value' in this tree; not run under TSan" ;;
    esac
  done <<<"$plan"
  [ ${#names[@]} -gt 0 ] || return 0
  stamp "build ($dir: TSan, ${#targets[@]} targets)"
  tools/build.sh tsan $(printf '%s\n' "${targets[@]}" | sort -u) || return 1
  stamp "tests ($dir: ${names[*]})"
  rm -rf "$dir/gtest-results"
  # TSan programs run 5-15x slower (kvapp_unit: 15 s, under TSan 190 s).
  GTEST_OUTPUT="json:$abs/gtest-results/" meson test -C "$dir" --no-rebuild --num-processes 1 \
    --print-errorlogs --timeout-multiplier 10 "${names[@]}" || rc=1
  builds+=("$dir")
}

stamp "build ($BUILD)"
tools/build.sh || exit 1
stamp "tests ($BUILD)"
run_suites "$BUILD"

if [ "$SANITIZERS" != 0 ]; then
  stamp "build ($ASAN_BUILD: ASan+UBSan)"
  if tools/build.sh asan; then
    stamp "tests ($ASAN_BUILD)"
    # halt_on_error: the first report ends the program. Leak checking stays on: a leak is a
    # finding. Reports also go to files, one per process, so a report from a server that a test
    # started in the background (whose exit status the test may not look at) fails the run too.
    san_logs=$PWD/$ASAN_BUILD/sanitizer-logs
    rm -rf "$san_logs"
    mkdir -p "$san_logs"
    export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:print_summary=1:log_path=$san_logs/asan"
    export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1:log_path=$san_logs/ubsan"
    # Sanitized programs run 2-3x slower: the suites get longer timeouts.
    run_suites "$ASAN_BUILD" --timeout-multiplier 3
    unset ASAN_OPTIONS UBSAN_OPTIONS
    # Reports, not warnings (ASan warns once when a noreturn call runs on a stack it was not
    # told about; that alone is no finding).
    reports=$(grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$san_logs"/* 2>/dev/null)
    if [ -n "$reports" ]; then
      echo "test.sh: sanitizer reports (one file per process):" >&2
      for f in $reports; do echo "=== $f" >&2; head -60 "$f" >&2; done
      rc=1
    fi
  else
    echo "test.sh: the ASan+UBSan build failed" >&2
    rc=1
  fi

  # ThreadSanitizer: the first report ends the program (log files as above). Fibers and rings tell
  # TSan what it cannot see (sched/context.cc, dataplane/ring.h); tools/tsan.supp silences only
  # third-party code, each entry with its reason.
  san_logs=$PWD/$TSAN_BUILD/sanitizer-logs
  rm -rf "$san_logs"
  mkdir -p "$san_logs"
  export TSAN_OPTIONS="halt_on_error=1:abort_on_error=1:second_deadlock_stack=1:history_size=4:suppressions=$PWD/tools/tsan.supp:log_path=$san_logs/tsan"
  if ! run_tsan_tests; then
    echo "test.sh: the TSan build failed" >&2
    rc=1
  fi
  unset TSAN_OPTIONS
  reports=$(grep -lE '(WARNING|ERROR): ThreadSanitizer' "$san_logs"/* 2>/dev/null)
  if [ -n "$reports" ]; then
    echo "test.sh: ThreadSanitizer reports (one file per process):" >&2
    for f in $reports; do echo "=== $f" >&2; head -80 "$f" >&2; done
    rc=1
  fi
  stamp "fuzz harnesses (tools/fuzz.sh ci)"
  tools/fuzz.sh ci || rc=1
fi
stamp "done"

# One closing line over every run, counting GoogleTest cases (skips are reported with reasons)
# and script tests (meson tests named script_*, once each, from meson's own logs).
python3 - "$rc" "${builds[@]}" <<'PY'
import json, sys, os, glob
passed = failed = skipped = 0
for build in sys.argv[2:]:
    for path in glob.glob(os.path.join(build, "gtest-results", "*.json")):
        try:
            doc = json.load(open(path))
        except ValueError:
            failed += 1
            continue
        for suite in doc.get("testsuites", []):
            for t in suite.get("testsuite", []):
                if t.get("result") == "SKIPPED" or t.get("status") == "NOTRUN":
                    skipped += 1
                elif t.get("failures"):
                    failed += 1
                else:
                    passed += 1
    for name in ("testlog.json", "serial.json"):
        path = os.path.join(build, "meson-logs", name)
        if not os.path.exists(path):
            continue
        for line in open(path):
            t = json.loads(line)
            if not t.get("name", "").startswith("script_"):
                continue
            r = t.get("result")
            if r == "OK": passed += 1
            elif r == "SKIP": skipped += 1
            else: failed += 1
if sys.argv[1] != "0" and failed == 0:
    failed = 1  # a test binary crashed or timed out before writing its results, or fuzzing failed
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
exit $rc
