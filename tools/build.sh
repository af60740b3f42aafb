#!/usr/bin/env bash
# Configures (once) and builds the project. Used by test.sh, demo.sh and the experiments.
#   tools/build.sh          the normal build in $FARMEM_BUILD (build/): debugoptimized, tests on
#   tools/build.sh asan     AddressSanitizer + UndefinedBehaviorSanitizer, no recovery (the
#                           first report ends the program), in $FARMEM_ASAN_BUILD (build-asan/)
#   tools/build.sh tsan     ThreadSanitizer, in $FARMEM_TSAN_BUILD (build-tsan/)
# Ninja targets after the variant build only those (test.sh builds just the threaded tests under
# TSan): tools/build.sh tsan tests/sched/sched_test
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:-default}
targets=("${@:2}")
case "$variant" in
  default)
    BUILD=${FARMEM_BUILD:-build}
    args=(-Dtests=enabled --buildtype=debugoptimized)
    ;;
  asan)
    BUILD=${FARMEM_ASAN_BUILD:-build-asan}
    # b_lundef=false: the sanitizer runtimes resolve some symbols at load time. No recovery, so
    # a UBSan finding fails its test like an ASan one does.
    args=(-Dtests=enabled --buildtype=debugoptimized -Db_sanitize=address,undefined
          -Db_lundef=false -Dcpp_args=-fno-sanitize-recover=all)
    ;;
  tsan)
    BUILD=${FARMEM_TSAN_BUILD:-build-tsan}
    # b_lundef=false as for asan. Fibers tell TSan about each switch (sched/context.cc).
    args=(-Dtests=enabled --buildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false)
    ;;
  *) echo "build.sh: unknown variant '$variant' (default | asan | tsan)" >&2; exit 2 ;;
esac
if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" "${args[@]}"
fi
ninja -C "$BUILD" "${targets[@]}"
