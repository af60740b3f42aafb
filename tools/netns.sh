#!/usr/bin/env bash
# Creates (up) or removes (down) the project's test network: a veth pair whose end fmveth1 sits
# in namespace "farmem" (10.78.0.2/24) and whose end fmveth0 stays here with NO address, for a
# DPDK af_packet/af_xdp port. Kernel clients in the namespace (ping, nc -u, memcp) then reach a
# kvserver that claims 10.78.0.1 on fmveth0. Traffic never leaves this pair.
#   tools/netns.sh up | down | status | exec CMD...
set -euo pipefail
NS=${FARMEM_NETNS:-farmem}
HOST_IF=${FARMEM_HOST_IF:-fmveth0}
NS_IF=${FARMEM_NS_IF:-fmveth1}
NS_IP=${FARMEM_NS_IP:-10.78.0.2/24}

need_root() {
  if [ "$(id -u)" != 0 ]; then echo "netns.sh: must run as root" >&2; exit 1; fi
  command -v ip >/dev/null || { echo "netns.sh: 'ip' (iproute2) is missing: run tools/setup.sh" >&2; exit 1; }
}

up() {
  need_root
  if ip netns list | grep -qw "$NS"; then down; fi
  ip netns add "$NS"
  ip link add "$HOST_IF" type veth peer name "$NS_IF"
  ip link set "$NS_IF" netns "$NS"
  # No IPv6 on the pair: router solicitations would only be dropped and counted by the server.
  sysctl -qw "net.ipv6.conf.$HOST_IF.disable_ipv6=1" || true
  ip netns exec "$NS" sysctl -qw "net.ipv6.conf.$NS_IF.disable_ipv6=1" || true
  ip -n "$NS" addr add "$NS_IP" dev "$NS_IF"
  ip -n "$NS" link set lo up
  ip -n "$NS" link set "$NS_IF" up
  ip link set "$HOST_IF" up
  # veth hands packets over with checksums left to offload (CHECKSUM_PARTIAL); an af_packet
  # reader would see them unfilled. Make the namespace's kernel compute them in full.
  if command -v ethtool >/dev/null; then
    ip netns exec "$NS" ethtool -K "$NS_IF" tx off >/dev/null 2>&1 || true
    ethtool -K "$HOST_IF" tx off >/dev/null 2>&1 || true
  fi
  echo "netns.sh: namespace $NS ($NS_IF ${NS_IP}) <-> $HOST_IF (no address) is up"
}

down() {
  need_root
  # Detach any XDP program a crashed af_xdp port left behind, then remove the pair.
  if ip link show "$HOST_IF" >/dev/null 2>&1; then
    ip link set dev "$HOST_IF" xdp off 2>/dev/null || true
    ip link set dev "$HOST_IF" xdpgeneric off 2>/dev/null || true
    ip link del "$HOST_IF" 2>/dev/null || true
  fi
  if ip netns list | grep -qw "$NS"; then ip netns del "$NS"; fi
  echo "netns.sh: namespace $NS removed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) ip netns list | grep -w "$NS" && ip -n "$NS" addr show "$NS_IF" ;;
  exec) shift; need_root; exec ip netns exec "$NS" "$@" ;;
  *) echo "usage: $0 up|down|status|exec CMD..." >&2; exit 2 ;;
esac
