#!/usr/bin/env bash
# A memory node dies under load and a replacement takes its place (issue #13), one command:
#  1. failure: NODES (3) memory nodes, REPLICAS (2) copies of each page, verified open-loop load
#     (GETs and SETs, every GET checked against the last acknowledged SET); kill -9 one node at
#     KILL_AT s, start a replacement (empty) REPLACE_AFTER s later; a 10 ms timeline of p99,
#     errors, wrong values and misses with the kill, the replacement and full redundancy marked.
#     Exits non-zero on any wrong value, any miss (a lost acknowledged write) or any
#     SERVER_ERROR when REPLICAS >= 2.
#     LINK_GBPS (100, the emulated default) is each node's link; the rebuild may use
#     REPAIR_SHARE (0.5) of it, and the summary gives the rate it reached against that.
#  2. striping (PARTS="failure striping"): peak throughput with 1, 2 and 3 nodes (1 copy) when
#     a slow emulated link (STRIPE_GBPS, 0.5 Gb/s) is the bottleneck.
# Writes results/memnode-failure-<date>/ (CSV, summary.txt).
#   tools/experiments/memnode_failure.sh
#   DURATION=10 RATE=40000 KILL_AT=3 tools/experiments/memnode_failure.sh
#   FARMEM_RELEASE=1 LINK_GBPS=10 LG_EXTRA="--late-us 50" tools/experiments/memnode_failure.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export EXP_LCORES=${EXP_LCORES:-1}
export EXP_LOADGEN_LCORES=${EXP_LOADGEN_LCORES:-0}
DURATION=${DURATION:-6}
RATE=${RATE:-30000}
KILL_AT=${KILL_AT:-2}
REPLACE_AFTER=${REPLACE_AFTER:-0.5}
NODES=${NODES:-3}
REPLICAS=${REPLICAS:-2}
KEYS=${KEYS:-50000}
GET_RATIO=${GET_RATIO:-0.9}
LINK_GBPS=${LINK_GBPS:-100}
REPAIR_SHARE=${REPAIR_SHARE:-0.5}
STRIPE_GBPS=${STRIPE_GBPS:-0.5}
STRIPE_RATES=${STRIPE_RATES:-"10000,15000,20000,25000,30000,40000,50000,60000,70000,80000"}
. tools/lib/farmem.sh
# The kill must land on time while the server's and the loadgen's cores poll at high priority
# (FM_NICE): this script runs at that priority too (it sleeps, apart from a few commands).
if [ -z "${FM_MF_PRIO:-}" ] && [ ${#FM_NICE[@]} -gt 0 ]; then
  export FM_MF_PRIO=1
  exec "${FM_NICE[@]}" bash "$0" "$@"
fi
fm_setup
fm_workdir exp
OUTDIR=${OUTDIR:-results/memnode-failure-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUTDIR"
SUMMARY=$OUTDIR/summary.txt
: >"$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
has() { case " ${PARTS:-failure} " in *" $1 "*) return 0 ;; esac; return 1; }
now() { date +%s.%N; }
# Values are all local memory's 20%: a uniform key spread faults on most GETs.
# LG_EXTRA: more loadgen flags (e.g. "--late-us 50" where this VM's stalls make every point
# INVALID by the default 10 us window).
# shellcheck disable=SC2206
LG=(--keys "$KEYS" --value-size 512 ${LG_EXTRA:-})

# start_node I: memnode I on its own socket (FM_WORK/mnI.sock); NODE_PIDS[I] is its pid.
NODE_PIDS=()
start_node() {  # I
  # Each in a session (autogroup) of its own at normal priority: memory nodes stand for other
  # machines, so their start (its pool) must not take the load cores' CPU.
  FM_MNSOCK=$FM_WORK/mn$1.sock FM_MEMNODE_LOG=$FM_WORK/mn$1.log fm_start_memnode 256 setsid nice -n 19
  NODE_PIDS[$1]=$FM_MEMNODE_PID
}
nodes_toml() {  # N REPLICAS GBPS
  local list="" i
  for ((i = 0; i < $1; i++)); do list+="${list:+, }\"unix:$FM_WORK/mn$i.sock\""; done
  fm_mode_toml async | sed -e "s|^memnode = .*|memnodes = [$list]\nreplicas = $2\nrepair_share = $REPAIR_SHARE|" \
    -e "s|^\[paging.emulated\]\$|&\nlink_gbps = $3|"
}

say "memnode failure: $NODES nodes, $REPLICAS copies, links of $LINK_GBPS Gb/s (rebuild: $REPAIR_SHARE of it), $RATE req/s for ${DURATION}s (GET ratio $GET_RATIO, $KEYS keys of 512 B), kill -9 at ${KILL_AT}s, replacement ${REPLACE_AFTER}s later${LG_EXTRA:+, loadgen $LG_EXTRA}; server CPU [$EXP_LCORES], loadgen [$EXP_LOADGEN_LCORES]; $(date -u +%FT%TZ), $(nproc) CPUs"

if has failure; then
  for ((i = 0; i < NODES; i++)); do start_node $i; done
  fm_start_server failure "$(nodes_toml "$NODES" "$REPLICAS" "$LINK_GBPS")"
  fm_loadgen_cmd "${LG[@]}" --rate "$RATE" --duration "$DURATION" --warmup 0.5 --get-ratio "$GET_RATIO" \
    --timeline "$OUTDIR/timeline.csv" --timeline-ms 10 --progress 0.1 --label failure --csv "$OUTDIR/failure.csv"
  fm_bg -s INT "$OUTDIR/failure.out" "${FM_CMD[@]}"
  lg=$FM_PID
  # The measured window starts after the preload and the warm-up: wait for the loadgen's first
  # progress line (stderr, every 0.1 s of the point), then the rest of the warm-up, then
  # KILL_AT. The server's control thread is not asked: on 2 CPUs it may not run while both load
  # cores poll. The timeline's rows carry wall-clock times, so the marks are exact whatever
  # this wait's error.
  for _ in $(seq 1200); do
    grep -q '^\[1/1\] rate' "$OUTDIR/failure.out" 2>/dev/null && break
    sleep 0.02
  done
  grep -q '^\[1/1\] rate' "$OUTDIR/failure.out" ||
    echo "memnode_failure: no progress from the loadgen in 24 s; killing anyway" >&2
  sleep "$(python3 -c "print(max(0.0, 0.5 - 0.1 + $KILL_AT))")"
  victim=$((NODES > 1 ? 1 : 0))
  t_kill=$(now)
  kill -KILL "${NODE_PIDS[$victim]}"
  fm_forget "${NODE_PIDS[$victim]}"
  sleep "$REPLACE_AFTER"
  t_replace=$(now)
  start_node $victim
  # Nothing polls the server during the run (a dpctl every few ms costs the load cores CPU on
  # a small machine): it timestamps the node's death, rejoin and rebuild itself.
  rc=0
  fm_wait "$lg" || rc=$?
  fm_loadgen_status "memnode_failure" $rc
  for _ in $(seq 300); do
    fm_dpctl memnodes --json >"$OUTDIR/memnodes.json" 2>/dev/null || true
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if all(n["state"]=="live" for n in d["nodes"]) else 1)' \
      "$OUTDIR/memnodes.json" 2>/dev/null && break
    sleep 0.1
  done
  fm_stop_server
  cp "$FM_WORK/failure.stats.json" "$OUTDIR/" 2>/dev/null || true
  for ((i = 0; i < NODES; i++)); do fm_stop "${NODE_PIDS[$i]}" TERM 2; done
  printf 'kill,%s\nreplace,%s\n' "$t_kill" "$t_replace" >"$OUTDIR/events.csv"
  verdict=0
  python3 tools/lib/report.py memnode-failure --replicas "$REPLICAS" \
    --repair-gbps "$(python3 -c "print($LINK_GBPS * $REPAIR_SHARE)")" "$OUTDIR" | tee -a "$SUMMARY" ||
    verdict=$?
fi

if has striping; then
  for n in 1 2 3; do
    for ((i = 0; i < n; i++)); do start_node $i; done
    toml=$(nodes_toml "$n" 1 "$STRIPE_GBPS")
    fm_start_server "stripe$n" "$toml"
    fm_loadgen "${LG[@]}" --rate "$STRIPE_RATES" --duration 1.5 --warmup 0.3 --label "nodes=$n" \
      --csv "$FM_WORK/stripe$n.csv" >"$OUTDIR/stripe$n.out" 2>&1 || fm_loadgen_status "striping $n" $? sweep
    fm_stop_server
    for ((i = 0; i < n; i++)); do fm_stop "${NODE_PIDS[$i]}" TERM 2; done
    fm_append_csv "$FM_WORK/stripe$n.csv" "$OUTDIR/striping.csv"
  done
  python3 tools/lib/report.py striping "$OUTDIR/striping.csv" | tee -a "$SUMMARY"
fi
# The machine, the build and its noise floor (stalls of a tight loop on the loadgen's CPU), for
# every result.
fm_record | tee -a "$SUMMARY" | grep '^noise floor\|^build' || true
exit "${verdict:-0}"
