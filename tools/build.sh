#!/usr/bin/env bash
# Configures (once) and builds the project into build/. Used by test.sh and demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${FARMEM_BUILD:-build}
if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" -Dtests=enabled --buildtype=debugoptimized
fi
ninja -C "$BUILD"
