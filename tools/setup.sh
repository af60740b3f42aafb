#!/usr/bin/env bash
# Installs everything the build, tests and demo need (Debian 12), and reserves hugepages.
# Idempotent: a second run installs nothing and only tops up hugepages.
set -euo pipefail

PACKAGES=(
  build-essential g++ meson ninja-build pkg-config
  libasan8 libubsan1 libtsan2
  libdpdk-dev dpdk
  libboost-context-dev libtomlplusplus-dev libcli11-dev libfmt-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libibverbs-dev
  libbpf-dev libxdp-dev
  iproute2 ethtool iputils-ping netcat-openbsd
  memcached libmemcached-tools
  python3 gnuplot-nox valgrind
  libsodium-dev
  clang-14 libclang-rt-14-dev
)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Stock memcached is only a reference for benchmarks: never leave Debian's service running.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet memcached 2>/dev/null; then
  $SUDO systemctl stop memcached || true
fi
pkill -x memcached 2>/dev/null || true

# Hugepages: ask for enough 2 MiB pages for a server, a loadgen and a memory node. A machine that
# cannot give them still runs everything with --no-huge (eal.hugepages = "auto").
WANT_PAGES=${FARMEM_HUGEPAGES:-1024}
HP=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
if [ -w "$HP" ] || [ -n "$SUDO" ]; then
  cur=$(cat "$HP" 2>/dev/null || echo 0)
  if [ "$cur" -lt "$WANT_PAGES" ]; then
    echo "$WANT_PAGES" | $SUDO tee "$HP" >/dev/null 2>&1 || true
  fi
fi
got=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)
echo "setup: packages ok; $got free 2 MiB hugepages (programs fall back to --no-huge without them)"
