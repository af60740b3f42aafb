#!/usr/bin/env bash
# Packs kvserver, memnode, loadgen (and dpctl when built) with every shared library they and the
# memif/mempool-ring PMDs need, glibc excepted, into build-bundle/{bin,lib}: a folder that runs on
# a machine without DPDK or any of our packages (LD_LIBRARY_PATH=build-bundle/lib; the PMDs are
# loaded with EAL -d). Fails when the bundle is over 60 MiB.
#   tools/device/bundle.sh            # FARMEM_BUILD (build), BUNDLE (build-bundle), STRIP=0 keeps symbols
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${FARMEM_BUILD:-build}
DEST=${BUNDLE:-build-bundle}
LIMIT_MIB=${LIMIT_MIB:-60}
STRIP=${STRIP:-1}
# DPDK loads these with dlopen, so ldd of the programs does not name them. memif is the port,
# mempool_ring the default mempool ops ("ring_mp_mc") every pktmbuf pool needs.
PMDS=${PMDS:-"librte_mempool_ring.so.23 librte_net_memif.so.23"}

progs=(kvserver memnode/memnode tools/loadgen/loadgen)
[ -x "$BUILD/tools/dpctl/dpctl" ] && progs+=(tools/dpctl/dpctl)
for p in "${progs[@]}"; do
  [ -x "$BUILD/$p" ] || { echo "bundle: $BUILD/$p is missing: build it first (tools/build.sh)" >&2; exit 1; }
done

# Where this DPDK's EAL looks for plugins on its own (compiled in); the PMD files live there.
eal_so=$(ldd "$BUILD/kvserver" | awk '/librte_eal\.so/ {print $3}')
PMD_DIR=${PMD_DIR:-$(strings -a "$eal_so" | sed -n 's/^DPDK_PLUGIN_PATH=//p' | sed -n 1p)}
[ -d "$PMD_DIR" ] || { echo "bundle: no DPDK PMD folder '$PMD_DIR' (set PMD_DIR)" >&2; exit 1; }

# glibc and the dynamic loader come from the target machine: a newer glibc runs binaries built
# against ours (2.36), and mixing two glibcs in one process does not work. libstdc++ and
# libgcc_s are bundled: the target's (GCC 14 on Ubuntu 24.04) would also run our GCC 12 code, but
# ours is what was tested, needs nothing newer than glibc 2.36, and is seen only by our programs
# (tools/lib/farmem.sh sets LD_LIBRARY_PATH for them alone, so no system tool gets an older libstdc++).
is_glibc() {
  case "$1" in
    linux-vdso.so.*|ld-linux*.so.*|libc.so.*|libm.so.*|libmvec.so.*|libpthread.so.*|libdl.so.*|\
    librt.so.*|libresolv.so.*|libutil.so.*|libanl.so.*|libnsl.so.*|libBrokenLocale.so.*|\
    libthread_db.so.*|libc_malloc_debug.so.*) return 0 ;;
  esac
  return 1
}

rm -rf "$DEST"
mkdir -p "$DEST/bin" "$DEST/lib"
declare -A want=()  # soname -> resolved path
collect() {  # ldd of one ELF file into want[]
  local out
  out=$(ldd "$1") || { echo "bundle: ldd $1 failed" >&2; exit 1; }
  if grep -q 'not found' <<<"$out"; then
    echo "bundle: $1 has unresolved libraries:" >&2; grep 'not found' <<<"$out" >&2; exit 1
  fi
  while read -r name arrow path _; do
    [ "$arrow" = "=>" ] && [ -n "$path" ] || continue
    is_glibc "$name" && continue
    want[$name]=$path
  done <<<"$out"
}
for p in "${progs[@]}"; do
  cp "$BUILD/$p" "$DEST/bin/"
  collect "$BUILD/$p"
done
for pmd in $PMDS; do
  [ -e "$PMD_DIR/$pmd" ] || { echo "bundle: $PMD_DIR/$pmd not found" >&2; exit 1; }
  want[$pmd]=$PMD_DIR/$pmd
  collect "$PMD_DIR/$pmd"
done
for name in "${!want[@]}"; do cp -L "${want[$name]}" "$DEST/lib/$name"; done
chmod u+w "$DEST"/lib/* "$DEST"/bin/*

if [ "$STRIP" = 1 ]; then
  # Debug info only: dynamic symbols stay, and strip keeps the GNU build-id, so a backtrace from
  # the device can be symbolised against the unstripped programs in $BUILD (MANIFEST has the ids).
  strip --strip-unneeded "$DEST"/bin/* "$DEST"/lib/*
fi

# A record of what went in, to match the device's results to a build.
{
  echo "bundle made $(date -u +%FT%TZ) on $(hostname) from $BUILD"
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' + uncommitted changes')"
  echo "glibc here: $(ldd --version | head -1)"
  echo "PMD folder: $PMD_DIR (EAL gets them by -d on the target)"
  echo
  for f in "${progs[@]}"; do
    echo "$(sha256sum "$BUILD/$f" | cut -c1-16)  $(readelf -n "$BUILD/$f" 2>/dev/null | sed -n 's/.*Build ID: //p')  $BUILD/$f"
  done
  echo
  (cd "$DEST" && ls -l bin lib)
} >"$DEST/MANIFEST"

# Check: every program and PMD, with no environment but LD_LIBRARY_PATH, resolves every library
# other than glibc to the bundle.
libdir=$(cd "$DEST/lib" && pwd)
bad=0
for f in "$DEST"/bin/* "$DEST"/lib/librte_mempool_ring.so.23 "$DEST"/lib/librte_net_memif.so.23; do
  while read -r name arrow path _; do
    [ "$arrow" = "=>" ] || continue
    is_glibc "$name" && continue
    case "$path" in "$libdir"/*) ;; *) echo "bundle: $f: $name resolves to '$path', not the bundle" >&2; bad=1 ;; esac
  done < <(env -i LD_LIBRARY_PATH="$libdir" ldd "$f")
done
for p in kvserver memnode; do
  env -i LD_LIBRARY_PATH="$libdir" "$DEST/bin/$p" --print-config >/dev/null ||
    { echo "bundle: $DEST/bin/$p --print-config failed" >&2; bad=1; }
done
for p in loadgen dpctl; do
  [ -e "$DEST/bin/$p" ] || continue
  env -i LD_LIBRARY_PATH="$libdir" "$DEST/bin/$p" --help >/dev/null ||
    { echo "bundle: $DEST/bin/$p --help failed" >&2; bad=1; }
done
# The target's glibc must be at least the newest version any file asks for; symbols private to
# one glibc build would not resolve against another.
glibc_need=$(for f in "$DEST"/bin/* "$DEST"/lib/*; do objdump -T "$f"; done 2>/dev/null |
  grep -o 'GLIBC_2\.[0-9]*' | sort -uV | tail -1)
for f in "$DEST"/bin/* "$DEST"/lib/*; do
  objdump -T "$f" 2>/dev/null | grep -q GLIBC_PRIVATE && { echo "bundle: $f uses GLIBC_PRIVATE symbols" >&2; bad=1; }
done
echo "needs glibc >= ${glibc_need#GLIBC_} on the target (Ubuntu 24.04 has 2.39)" >>"$DEST/MANIFEST"
[ "$bad" = 0 ] || exit 1

bytes=$(du -sb "$DEST" | cut -f1)
mib=$(( (bytes + 1048575) / 1048576 ))
echo "bundle: $DEST: ${#progs[@]} programs, $(ls "$DEST/lib" | wc -l) libraries, $bytes bytes (${mib} MiB), needs glibc >= ${glibc_need#GLIBC_}"
if [ "$bytes" -gt $(( LIMIT_MIB * 1048576 )) ]; then
  echo "bundle: over the ${LIMIT_MIB} MiB limit" >&2
  exit 1
fi
