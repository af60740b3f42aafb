#!/usr/bin/env bash
# Stock kernel clients against kvserver through the project's veth + namespace (af_packet):
# ping, memccp --udp (libmemcached), a raw datagram with nc, and memaslap --udp with every GET
# verified. Exits 77 (skip) with the reason when this machine cannot host the namespace.
set -uo pipefail
KVSERVER=${KVSERVER:?path of build/kvserver}
SRC=${FARMEM_SOURCE_ROOT:?source root}
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root to create a network namespace"
command -v ip >/dev/null || skip "iproute2 (ip) is not installed"
for t in ping nc memccp memcaslap; do command -v $t >/dev/null || skip "$t is not installed (tools/setup.sh installs it)"; done

NETNS="$SRC/tools/netns.sh"
WORK=$(mktemp -d /tmp/farmem-kc.XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  "$NETNS" down >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- kvserver log:"; cat "$WORK/kv.log"; exit 1; }

"$NETNS" up >/dev/null || skip "cannot create the veth pair and namespace here"
"$KVSERVER" --config "$SRC/config/kvserver-veth.toml" 2>"$WORK/kv.log" &
pid=$!
for _ in $(seq 100); do grep -q "core(s) running" "$WORK/kv.log" && break; kill -0 $pid || break; sleep 0.1; done
grep -q "core(s) running" "$WORK/kv.log" || fail "kvserver did not start"

"$NETNS" exec ping -c 2 -W 2 10.78.0.1 >/dev/null || fail "ping 10.78.0.1"

# libmemcached's memccp stores a file's contents under its name over UDP.
printf 'stock-client-value' >"$WORK/kckey"
(cd "$WORK" && "$NETNS" exec memccp --udp --servers=10.78.0.1:11211 kckey) || fail "memccp --udp"
# Read it back with a raw memcached UDP datagram (frame header: id 7, seq 0, total 1).
got=$(printf '\x00\x07\x00\x00\x00\x01\x00\x00get kckey\r\n' |
      "$NETNS" exec timeout 3 nc -u -w1 10.78.0.1 11211 | tail -c +9)
want=$'VALUE kckey 0 18\r\nstock-client-value\r\nEND\r'
[ "${got%$'\n'}" = "$want" ] || fail "GET after memccp returned: $(printf '%q' "$got")"

# memaslap (libmemcached's memcaslap) over UDP: 90% GET / 10% SET, every GET verified.
out=$("$NETNS" exec timeout 60 memcaslap -s 10.78.0.1:11211 --udp -T 1 -c 4 -x 20000 -X 64 -v 1.0 2>&1) ||
  fail "memcaslap exited non-zero: $out"
for k in verify_failed get_misses udp_timeout packet_drop; do
  v=$(echo "$out" | awk -v k="$k:" '$1==k {print $2}')
  [ "$v" = 0 ] || fail "memcaslap $k = '$v'"$'\n'"$out"
done
echo "$out" | grep -E "cmd_get|cmd_set|TPS"
echo "PASS: ping, memccp --udp, raw UDP get and memcaslap --udp (verified) all worked"
