#!/usr/bin/env bash
# Set-up, build, and the whole test suite: hermetic unit tests in parallel, then the tests that
# run DPDK processes one at a time (polling tests must not starve each other on 2 cores).
set -uo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh || exit 1
tools/build.sh || exit 1
BUILD=${FARMEM_BUILD:-build}
rc=0
# Every GoogleTest binary writes its results here; the closing line counts test cases.
case "$BUILD" in /*) BUILD_ABS=$BUILD ;; *) BUILD_ABS=$PWD/$BUILD ;; esac
export GTEST_OUTPUT="json:$BUILD_ABS/gtest-results/"
rm -rf "$BUILD/gtest-results"
meson test -C "$BUILD" --suite unit --print-errorlogs || rc=1
meson test -C "$BUILD" --no-rebuild --suite dpdk --suite e2e --num-processes 1 --print-errorlogs \
  --logbase serial || rc=1
# One closing line over both runs, counting GoogleTest cases (skips are reported with reasons).
python3 - "$BUILD" "$rc" <<'PY'
import json, sys, os, glob
passed = failed = skipped = 0
for path in glob.glob(os.path.join(sys.argv[1], "gtest-results", "*.json")):
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
# Script tests (meson tests named script_*) count once each, from meson's own logs.
for name in ("testlog.json", "serial.json"):
    path = os.path.join(sys.argv[1], "meson-logs", name)
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
if sys.argv[2] != "0" and failed == 0:
    failed = 1  # a test binary crashed or timed out before writing its results
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
exit $rc
