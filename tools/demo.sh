#!/usr/bin/env bash
# The main job end to end on the embedded default: set-up, build, the memory node (emulated
# one-sided transport), kvserver on a memif port (lcore 1) with its values in far memory (20%
# local), the DPDK loadgen as memif client (lcore 0) — preload, then an open-loop GET run — and
# the server's per-core and paging statistics at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh >/dev/null
BUILD=${FARMEM_BUILD:-build}
RATE=${RATE:-100000}
KEYS=${KEYS:-200000}
DURATION=${DURATION:-3}
WORK=$(mktemp -d /tmp/farmem-demo.XXXXXX)
SOCK=$WORK/memif.sock
MNSOCK=$WORK/memnode.sock
LOG=$WORK/kvserver.log
MNLOG=$WORK/memnode.log
server_pid=""
memnode_pid=""

cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -INT "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$memnode_pid" ]; then kill -TERM "$memnode_pid" 2>/dev/null || true; wait "$memnode_pid" 2>/dev/null || true; fi
  rm -f "$SOCK" "$MNSOCK"
}
trap cleanup EXIT

# The embedded default configs, with this run's own sockets.
sed "s|/tmp/farmem-memnode.sock|$MNSOCK|" config/memnode.toml >"$WORK/memnode.toml"
sed -e "s|/tmp/farmem-memif.sock|$SOCK|" -e "s|/tmp/farmem-memnode.sock|$MNSOCK|" \
  config/kvserver.toml >"$WORK/kvserver.toml"
echo "demo: starting memnode (config/memnode.toml: emulated one-sided transport)"
"$BUILD/memnode/memnode" --config "$WORK/memnode.toml" 2>"$MNLOG" &
memnode_pid=$!
for _ in $(seq 100); do [ -S "$MNSOCK" ] && break; kill -0 "$memnode_pid" 2>/dev/null || break; sleep 0.05; done
[ -S "$MNSOCK" ] || { echo "demo: memnode did not come up:" >&2; cat "$MNLOG" >&2; exit 1; }
echo "demo: starting kvserver (config/kvserver.toml: far memory, 20% local, memif socket $SOCK)"
"$BUILD/kvapp/kvserver" --config "$WORK/kvserver.toml" 2>"$LOG" &
server_pid=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
if [ ! -S "$SOCK" ]; then
  echo "demo: kvserver did not come up; its log:" >&2
  cat "$LOG" >&2
  exit 1
fi

echo "demo: loadgen: preload $KEYS keys of 128 B (5x the local memory), then open-loop GETs at $RATE req/s for $DURATION s"
rc=0
"$BUILD/tools/loadgen/loadgen" \
  --vdev "net_memif0,role=client,socket=$SOCK,socket-abstract=no,mac=02:fa:00:00:00:02" \
  --keys "$KEYS" --value-size 128 --rate "$RATE" --duration "$DURATION" --warmup 0.5 --retries 2 \
  || rc=$?

kill -INT "$server_pid"
wait "$server_pid" || true
server_pid=""
echo "demo: kvserver statistics:"
grep -E "^core |^  drop |^  sched: |^paging: " "$LOG" || cat "$LOG"
kill -TERM "$memnode_pid" 2>/dev/null || true
wait "$memnode_pid" 2>/dev/null || true
memnode_pid=""
[ "$rc" = 0 ] || exit $rc

# The paper's Table 1 on the same machine: no-fault vs sync vs async at one offered load.
if [ "${TABLE1:-1}" = 1 ]; then
  echo
  echo "demo: Table 1 (tools/experiments/table1.sh ${TABLE1_RATE:-100000} 2)"
  IDLE_BACKOFF=${IDLE_BACKOFF:-false} tools/experiments/table1.sh "${TABLE1_RATE:-100000}" 2
fi
