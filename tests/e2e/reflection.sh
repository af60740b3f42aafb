#!/usr/bin/env bash
# No reflection and no reply loops: kvserver (af_packet on the host end of tools/netns.sh's veth)
# next to a stock memcached UDP server in the namespace. One datagram spoofed from memcached's
# address and port 11211 must not start a ping-pong; senders that cannot be clients (broadcast,
# multicast, loopback, port 0) and senders outside net.allow get no reply; each is counted under
# its drop reason. Frames are crafted with python3 AF_PACKET sockets on the namespace's end of the
# pair, so traffic never leaves it. Exits 77 (skip) with the reason when this machine cannot host
# the namespace.
set -uo pipefail
KVSERVER=${KVSERVER:?path of build/kvserver}
SRC=${FARMEM_SOURCE_ROOT:?source root}
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root to create a network namespace"
command -v ip >/dev/null || skip "iproute2 (ip) is not installed"
command -v python3 >/dev/null || skip "python3 is not installed"
for t in memcached ping; do command -v $t >/dev/null || skip "$t is not installed (tools/setup.sh installs it)"; done

NETNS="$SRC/tools/netns.sh"
NS=${FARMEM_NETNS:-farmem}
NS_IF=${FARMEM_NS_IF:-fmveth1}
KV_IP=10.78.0.1      # config/kvserver-veth.toml
MC_IP=10.78.0.2      # the namespace's address (tools/netns.sh); memcached listens here
OUTSIDER_IP=10.78.0.3  # a second namespace address, outside the allow-list of phase 3
WORK=$(mktemp -d /tmp/farmem-refl.XXXXXX)
kv_pid="" mc_pid=""
stop_kv() {
  if [ -n "$kv_pid" ]; then
    kill -INT "$kv_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$kv_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$kv_pid" 2>/dev/null
    wait "$kv_pid" 2>/dev/null
    kv_pid=""
  fi
}
cleanup() {
  stop_kv
  [ -n "$mc_pid" ] && kill "$mc_pid" 2>/dev/null && wait "$mc_pid" 2>/dev/null
  "$NETNS" down >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for f in "$WORK"/kv*.log; do echo "--- $f:"; cat "$f"; done
  exit 1
}

# Crafts, sends and captures frames on the namespace's veth end; asks memcached-UDP servers for
# stats. Every wait is bounded.
cat >"$WORK/pkt.py" <<'EOF'
import argparse, json, select, socket, struct, sys, time

INJECTED_ID = 0xfa57  # IP id of crafted frames, to tell them from the servers' own traffic

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def mac(s):
    return bytes.fromhex(s.replace(":", ""))

def udp_frame(dst_mac, src_mac, src_ip, sport, dst_ip, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload  # checksum 0: none
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), INJECTED_ID, 0x4000, 64, 17, 0,
                     socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return mac(dst_mac) + mac(src_mac) + b"\x08\x00" + ip + udp

def parse_udp(f):
    if len(f) < 42 or f[12:14] != b"\x08\x00" or f[23] != 17:
        return None
    hl = (f[14] & 0x0F) * 4
    ip_id = struct.unpack("!H", f[18:20])[0]
    src, dst = socket.inet_ntoa(f[26:30]), socket.inet_ntoa(f[30:34])
    sport, dport = struct.unpack("!HH", f[14 + hl:18 + hl])
    return ip_id, src, sport, dst, dport

def inject(a):
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL
    sniff.bind((a.iface, 0))
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    tx.bind((a.iface, 0))
    payload = a.payload.encode().decode("unicode_escape").encode("latin-1")
    tx.send(udp_frame(a.dst_mac, a.src_mac, a.src_ip, a.sport, a.kv_ip, a.kv_port, payload))
    mc_ip, mc_port = a.mc.split(":")
    n = {"injected": 0, "kv_sent": 0, "kv_to_mc": 0, "mc_to_kv": 0}
    end = time.monotonic() + a.listen
    while True:
        left = end - time.monotonic()
        if left <= 0 or not select.select([sniff], [], [], left)[0]:
            break
        u = parse_udp(sniff.recv(65535))
        if u is None:
            continue
        ip_id, src, sport, dst, dport = u
        if ip_id == INJECTED_ID and src == a.src_ip and dst == a.kv_ip:
            n["injected"] += 1
        elif src == a.kv_ip and sport == a.kv_port:
            n["kv_sent"] += 1
            if (dst, dport) == (mc_ip, int(mc_port)):
                n["kv_to_mc"] += 1
        elif (src, sport) == (mc_ip, int(mc_port)) and dst == a.kv_ip:
            n["mc_to_kv"] += 1
    print(json.dumps(n))

def request(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a.src_ip, 0))
    rid = 0x5151
    text = a.text.encode().decode("unicode_escape").encode("latin-1")
    s.sendto(struct.pack("!HHHH", rid, 0, 1, 0) + text, (a.server, a.port))
    parts, total = {}, None
    end = time.monotonic() + a.timeout
    while total is None or len(parts) < total:
        left = end - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            break
        d = s.recv(65535)
        if len(d) < 8:
            continue
        i, seq, tot, _ = struct.unpack("!HHHH", d[:8])
        if i == rid:
            parts[seq], total = d[8:], tot
    if total is None or len(parts) < total:
        print("<timeout>")
    else:
        sys.stdout.write(b"".join(parts[k] for k in sorted(parts)).decode("latin-1"))

p = argparse.ArgumentParser()
sub = p.add_subparsers(dest="cmd", required=True)
i = sub.add_parser("inject")
i.add_argument("--iface", required=True)
i.add_argument("--dst-mac", required=True)
i.add_argument("--src-mac", required=True)
i.add_argument("--src-ip", required=True)
i.add_argument("--sport", type=int, required=True)
i.add_argument("--kv-ip", required=True)
i.add_argument("--kv-port", type=int, default=11211)
i.add_argument("--mc", default="10.78.0.2:11211")
i.add_argument("--payload", default="\\x00\\x01\\x00\\x00\\x00\\x01\\x00\\x00version\\r\\n")
i.add_argument("--listen", type=float, default=1.0)
r = sub.add_parser("request")
r.add_argument("--src-ip", required=True)
r.add_argument("--server", required=True)
r.add_argument("--port", type=int, default=11211)
r.add_argument("--text", default="stats\\r\\n")
r.add_argument("--timeout", type=float, default=2.0)
a = p.parse_args()
inject(a) if a.cmd == "inject" else request(a)
EOF

nsx() { timeout 20 "$NETNS" exec "$@"; }
py() { nsx python3 "$WORK/pkt.py" "$@"; }
# kvserver's counter NAME (its `stats` over UDP, asked from the namespace's address).
kv_stat() {
  py request --src-ip "$MC_IP" --server "$KV_IP" | tr -d '\r' | awk -v k="$1" '$1=="STAT" && $2==k {print $3}'
}
mc_stat() {
  py request --src-ip "$MC_IP" --server "$MC_IP" | tr -d '\r' | awk -v k="$1" '$1=="STAT" && $2==k {print $3}'
}
# Starts kvserver with config $1 and log $2; sets kv_pid and KV_MAC.
start_kv() {
  : >"$2"  # exists before the first grep below, whenever the background shell opens it
  "$KVSERVER" --config "$1" 2>"$2" &
  kv_pid=$!
  for _ in $(seq 100); do grep -q "core(s) running" "$2" && break; kill -0 "$kv_pid" 2>/dev/null || break; sleep 0.1; done
  grep -q "core(s) running" "$2" || fail "kvserver did not start with $1"
  KV_MAC=$(sed -n 's/.*serving memcached UDP on .* (mac \([0-9a-f:]*\)).*/\1/p' "$2" | head -1)
  [ -n "$KV_MAC" ] || fail "no MAC in the kvserver log"
}
# inject NAME SRC_MAC SRC_IP SRC_PORT [LISTEN_S]: one crafted datagram to kvserver; prints counts.
inject() {
  py inject --iface "$NS_IF" --dst-mac "$KV_MAC" --src-mac "$2" --src-ip "$3" --sport "$4" \
    --kv-ip "$KV_IP" --mc "$MC_IP:11211" --listen "${5:-1}" || fail "$1: could not inject"
}
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

"$NETNS" up >/dev/null || skip "cannot create the veth pair and namespace here"
ip -n "$NS" addr add "$OUTSIDER_IP/24" dev "$NS_IF" || fail "cannot add $OUTSIDER_IP in the namespace"
NS_MAC=$(ip -n "$NS" -o link show "$NS_IF" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
[ -n "$NS_MAC" ] || fail "no MAC for $NS_IF"

# The shipped veth config, with the control socket off so no other kvserver's socket is touched.
cp "$SRC/config/kvserver-veth.toml" "$WORK/kv.toml"
printf '\n[control]\nenabled = false\n' >>"$WORK/kv.toml"
start_kv "$WORK/kv.toml" "$WORK/kv.log"

"$NETNS" exec memcached -U 11211 -p 0 -l "$MC_IP" -u root -t 1 -m 16 >"$WORK/mc.log" 2>&1 &
mc_pid=$!
mc_up() { py request --src-ip "$MC_IP" --server "$MC_IP" --text 'version\r\n' --timeout 0.3 | grep -q '^VERSION'; }
for _ in $(seq 20); do mc_up && break; kill -0 "$mc_pid" 2>/dev/null || break; sleep 0.1; done
mc_up || { cat "$WORK/mc.log"; skip "stock memcached did not answer over UDP in the namespace"; }

# --- 0. The crafted path works: an ordinary datagram made the same way is answered.
out=$(inject "control" "$NS_MAC" "$MC_IP" 40002)
echo "crafted request from $MC_IP:40002: $out"
[ "$(field "$out" injected)" = 1 ] || fail "the crafted datagram was not seen on $NS_IF: $out"
[ "$(field "$out" kv_sent)" -ge 1 ] || fail "kvserver did not answer an ordinary crafted datagram: $out"

# --- 1. A datagram spoofed from memcached's address and port: no ping-pong.
denied0=$(kv_stat dp_drop_src_port_denied)
mc_read0=$(mc_stat bytes_read)
out=$(inject "spoof" "$NS_MAC" "$MC_IP" 11211 2)
mc_read1=$(mc_stat bytes_read)
denied1=$(kv_stat dp_drop_src_port_denied)
stats_len=$(printf '\0\0\0\0\0\0\0\0stats\r\n' | wc -c)
mc_extra=$(( mc_read1 - mc_read0 - stats_len ))
echo "spoofed from $MC_IP:11211 -> $KV_IP:11211, 2 s: $out; memcached read $mc_extra byte(s)" \
     "besides our stats request; dp_drop_src_port_denied $denied0 -> $denied1"
[ "$(field "$out" injected)" = 1 ] || fail "the spoofed datagram was not sent: $out"
[ "$(field "$out" kv_to_mc)" = 0 ] || fail "kvserver answered memcached's port: $out"
[ "$(field "$out" mc_to_kv)" = 0 ] || fail "memcached sent to kvserver: $out"
[ "$mc_extra" = 0 ] || fail "memcached received $mc_extra unexpected bytes"
[ "$denied1" = $(( denied0 + 1 )) ] || fail "dp_drop_src_port_denied went $denied0 -> $denied1"

# --- 2. Senders that cannot be clients: no reply, each counted under its reason.
check_silent() {  # NAME REASON SRC_MAC SRC_IP SRC_PORT
  local before after out
  before=$(kv_stat "dp_drop_$2")
  out=$(inject "$1" "$3" "$4" "$5")
  after=$(kv_stat "dp_drop_$2")
  echo "$1 ($3 $4:$5): $out; dp_drop_$2 $before -> $after"
  [ "$(field "$out" injected)" = 1 ] || fail "$1: not sent: $out"
  [ "$(field "$out" kv_sent)" = 0 ] || fail "$1: kvserver answered: $out"
  [ "$after" = $(( before + 1 )) ] || fail "$1: dp_drop_$2 went $before -> $after"
}
check_silent "broadcast MAC" src_broadcast ff:ff:ff:ff:ff:ff "$MC_IP" 40003
check_silent "subnet broadcast IP" src_broadcast "$NS_MAC" 10.78.0.255 40004
check_silent "multicast IP" src_multicast "$NS_MAC" 224.0.0.1 40005
check_silent "loopback IP" src_loopback "$NS_MAC" 127.0.0.1 40006
check_silent "source port 0" src_port_zero "$NS_MAC" "$MC_IP" 0
check_silent "kvserver's own IP" src_is_us "$NS_MAC" "$KV_IP" 40007
stop_kv

# --- 3. An allow-list of one address: the namespace's second address is not answered.
sed "s|^\[net\]$|[net]\nallow = [\"$MC_IP/32\"]|" "$WORK/kv.toml" >"$WORK/kv-allow.toml"
grep -q "^allow = " "$WORK/kv-allow.toml" || fail "could not write the allow-list config"
start_kv "$WORK/kv-allow.toml" "$WORK/kv-allow.log"
grep -q "answering UDP and ICMP echo from $MC_IP/32" "$WORK/kv-allow.log" || fail "allow-list not in effect"
inside=$(py request --src-ip "$MC_IP" --server "$KV_IP" --text 'version\r\n' --timeout 1 | tr -d '\r')
outside=$(py request --src-ip "$OUTSIDER_IP" --server "$KV_IP" --text 'version\r\n' --timeout 1 | tr -d '\r')
nsx ping -c 1 -W 1 -I "$OUTSIDER_IP" "$KV_IP" >/dev/null 2>&1 && fail "ping from $OUTSIDER_IP was answered"
nsx ping -c 1 -W 2 -I "$MC_IP" "$KV_IP" >/dev/null 2>&1 || fail "ping from $MC_IP was not answered"
not_allowed=$(kv_stat dp_drop_src_not_allowed)
echo "allow = [\"$MC_IP/32\"]: version from $MC_IP -> '$inside'; from $OUTSIDER_IP -> '$outside';" \
     "ping from $OUTSIDER_IP unanswered; dp_drop_src_not_allowed $not_allowed"
[ "${inside#VERSION }" != "$inside" ] || fail "$MC_IP (allowed) got '$inside'"
[ "$outside" = "<timeout>" ] || fail "$OUTSIDER_IP (not allowed) got '$outside'"
[ "$not_allowed" = 2 ] || fail "dp_drop_src_not_allowed = '$not_allowed', want 2 (one datagram, one ping)"
stop_kv
echo "kvserver's drops at exit (server-wide, non-zero):"
for f in kv.log kv-allow.log; do
  echo "  $f: $(sed -n '/^server:/,$p' "$WORK/$f" | grep -oE 'dp_drop_[a-z_]+ [0-9]+' | tr '\n' ' ')"
done

# --- 4. A reply datagram larger than the port's MTU stops start-up instead of being dropped.
sed "s|^\[kv\]$|[kv]\nudp_max_payload = 1600|" "$WORK/kv.toml" >"$WORK/kv-mtu.toml"
grep -q "^\[kv\]" "$WORK/kv-mtu.toml" || printf '\n[kv]\nudp_max_payload = 1600\n' >>"$WORK/kv-mtu.toml"
timeout 60 "$KVSERVER" --config "$WORK/kv-mtu.toml" 2>"$WORK/kv-mtu.log" && fail "kvserver started with udp_max_payload 1600 on MTU 1500"
grep -q "kv.udp_max_payload = 1600 does not fit port 'net_af_packet0' (MTU 1500)" "$WORK/kv-mtu.log" ||
  fail "no clear MTU error"
echo "udp_max_payload = 1600: $(grep -o "kv.udp_max_payload = 1600 does not fit.*" "$WORK/kv-mtu.log")"
echo "PASS: no reply loop with memcached, no reply to impossible senders or to senders outside" \
     "net.allow, and a reply size over the MTU stops start-up"
