# Shared by the experiment scripts: start/stop memnode and kvserver variants on this machine.
# Source it from the repository root after tools/build.sh.
BUILD=${FARMEM_BUILD:-build}
EXP_WORK=$(mktemp -d /tmp/farmem-exp.XXXXXX)
EXP_MEMIF=$EXP_WORK/memif.sock
EXP_MNSOCK=$EXP_WORK/memnode.sock
exp_server_pid=""
exp_memnode_pid=""

exp_cleanup() {
  exp_stop_server
  if [ -n "$exp_memnode_pid" ]; then
    kill -TERM "$exp_memnode_pid" 2>/dev/null || true
    wait "$exp_memnode_pid" 2>/dev/null || true
    exp_memnode_pid=""
  fi
  # Only ever the directory mktemp made above (a caller may have pointed EXP_WORK elsewhere).
  case "$EXP_WORK" in /tmp/farmem-exp.*) [ -n "${EXP_KEEP:-}" ] || rm -rf "$EXP_WORK" ;; esac
}
trap exp_cleanup EXIT

exp_start_memnode() {  # pool_mb
  cat >"$EXP_WORK/memnode.toml" <<TOML
[memnode]
pool_mb = $1
listen = "unix:$EXP_MNSOCK"
[log]
level = "warn"
TOML
  "$BUILD/memnode/memnode" --config "$EXP_WORK/memnode.toml" 2>"$EXP_WORK/memnode.log" &
  exp_memnode_pid=$!
  for _ in $(seq 100); do [ -S "$EXP_MNSOCK" ] && return 0; sleep 0.05; done
  echo "memnode did not start:" >&2; cat "$EXP_WORK/memnode.log" >&2; return 1
}

# Extra EAL settings for machines without installed DPDK PMDs (tools/device): EXP_EAL_D lists PMD
# libraries to load with -d, EXP_EAL_MB sets the EAL memory of both programs.
exp_eal_toml() {
  local d list=""
  for d in ${EXP_EAL_D:-}; do list+="${list:+, }\"-d\", \"$d\""; done
  [ -n "$list" ] && echo "extra_args = [$list]"
  [ -n "${EXP_EAL_MB:-}" ] && echo "memory_mb = $EXP_EAL_MB"
  return 0
}
exp_loadgen_eal_args() {
  local d
  for d in ${EXP_EAL_D:-}; do printf -- '--eal-arg=-d\n--eal-arg=%s\n' "$d"; done
  [ -n "${EXP_EAL_MB:-}" ] && printf -- '--memory-mb\n%s\n' "$EXP_EAL_MB"
  [ -n "${EXP_MBUFS:-}" ] && printf -- '--mbufs\n%s\n' "$EXP_MBUFS"
  return 0
}

# exp_start_server NAME EXTRA_TOML: kvserver on lcore 1 (EXP_LCORES="1 0" for more workers,
# worker 0 first) with the memif socket of this run.
exp_start_server() {
  local name=$1 extra=$2
  cat >"$EXP_WORK/$name.toml" <<TOML
[eal]
lcores = [$(echo ${EXP_LCORES:-1} | tr ' ' ',')]
$(exp_eal_toml)
[port]
vdev = "net_memif0,role=server,socket=$EXP_MEMIF,socket-abstract=no,mac=02:fa:00:00:00:01"
${EXP_MBUFS:+mbufs = $EXP_MBUFS}
[dataplane]
idle_backoff = ${IDLE_BACKOFF:-true}
[control]
socket = "$EXP_WORK/control.sock"
[log]
level = "warn"
$extra
TOML
  sed -i "s|@MEMNODE@|unix:$EXP_MNSOCK|" "$EXP_WORK/$name.toml"
  rm -f "$EXP_MEMIF"
  nice -n -19 "$BUILD/kvserver" --config "$EXP_WORK/$name.toml" 2>"$EXP_WORK/$name.log" &
  exp_server_pid=$!
  exp_server_name=$name
  for _ in $(seq 100); do
    [ -S "$EXP_MEMIF" ] && [ -S "$EXP_WORK/control.sock" ] && return 0
    kill -0 $exp_server_pid || break
    sleep 0.05
  done
  echo "kvserver ($name) did not start:" >&2; cat "$EXP_WORK/$name.log" >&2; return 1
}

# exp_dpctl ARGS...: dpctl against this run's server.
exp_dpctl() { "$BUILD/tools/dpctl/dpctl" --socket "$EXP_WORK/control.sock" "$@"; }

# exp_server_cpu_s: CPU seconds (user + system) the running kvserver has used so far.
exp_server_cpu_s() {
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$exp_server_pid/stat"
}

exp_stop_server() {
  if [ -n "$exp_server_pid" ]; then
    # The server's statistics as it stops (the counter registry: docs/control.md), for the
    # reports below; never parsed from its stderr.
    exp_dpctl stats --json >"$EXP_WORK/$exp_server_name.stats.json" 2>/dev/null || true
    kill -INT "$exp_server_pid" 2>/dev/null || true
    wait "$exp_server_pid" 2>/dev/null || true
    exp_server_pid=""
  fi
}

# exp_loadgen ARGS...: the DPDK loadgen on lcore 0 (EXP_LOADGEN_LCORES) against this run's
# server; with several server workers pass --queues N.
exp_loadgen() {
  local extra
  mapfile -t extra < <(exp_loadgen_eal_args)
  nice -n -19 "$BUILD/tools/loadgen/loadgen" --lcores "$(echo ${EXP_LOADGEN_LCORES:-0} | tr ' ' ',')" "${extra[@]}" \
    --vdev "net_memif0,role=client,socket=$EXP_MEMIF,socket-abstract=no,mac=02:fa:00:00:00:02" "$@"
}

# exp_loadgen_status WHO RC [sweep]: one plain line on stderr about a loadgen exit status
# (tools/loadgen/exit_code.h; `loadgen --help` lists them). In a sweep, timeouts past saturation
# (3) are what the curve shows, so only the others are told. Always returns 0: the rows are in
# the CSV either way, and the next run goes on.
exp_loadgen_status() {
  local who=$1 rc=$2 sweep=${3:-}
  case $rc in
    0) ;;
    1) echo "$who: the loadgen did not run (its error is above): no rows" >&2 ;;
    2) echo "$who: WRONG or missing answers from the server (the CSV's wrong and misses columns): a server bug, whatever the latency says" >&2 ;;
    3) [ -n "$sweep" ] || echo "$who: timeouts or error replies above 1% at some point (the CSV's drops and server_errors columns; where valid is 0 the loadgen also fell behind)" >&2 ;;
    4) echo "$who: some point INVALID: the loadgen fell behind its schedule on this machine (the CSV's valid and invalid_reason columns); the answers were right" >&2 ;;
    *) echo "$who: the loadgen exited $rc" >&2 ;;
  esac
  return 0
}

# exp_append_csv SRC DST: appends a run's rows to DST (with the header when DST is new); a run
# that wrote no CSV (its loadgen did not run) is skipped with a line.
exp_append_csv() {
  if [ ! -s "$1" ]; then echo "no rows from $(basename "$1" .csv): skipped" >&2; return 0; fi
  if [ -f "$2" ]; then tail -n +2 "$1" >>"$2"; else cp "$1" "$2"; fi
}

# exp_mode_toml MODE [LOCAL_FRACTION]: the kvserver config of one mode of the experiments —
# no-fault (all local), sync or async (far memory, 64 MiB region, fetch latency $LATENCY_NS),
# optionally with scheduler variants appended with '+': sync+pagetable, async+history,
# async+central, sync+preempt (5 us quantum), async+nosteal.
exp_mode_toml() {
  local base=${1%%+*} extra="" v
  if [ "$base" = no-fault ]; then
    printf '[kv]\nmemory_mb = 64\n[paging]\nmode = "local"\n'
    return
  fi
  case "$1" in *+*) IFS=+ read -ra parts <<<"${1#*+}";; *) parts=();; esac
  for v in "${parts[@]}"; do
    case "$v" in
      history|pagetable) extra+="predictor = \"$v\"\n" ;;
      central) extra+="dispatch = \"central\"\n" ;;
      preempt) extra+="preempt_us = ${PREEMPT_US:-5}\n" ;;
      nosteal) extra+="steal = false\n" ;;
      *) echo "exp_mode_toml: unknown variant '$v' in '$1'" >&2; return 1 ;;
    esac
  done
  printf '[kv]\nmemory_mb = 64\n[paging]\nmode = "far"\nlocal_fraction = %s\nmemnode = "@MEMNODE@"\n' "${2:-0.2}"
  printf '[paging.emulated]\nlatency_ns = %s\n[sched]\nfaults = "%s"\n' "${LATENCY_NS:-3300}" "$base"
  printf "$extra"
}

# exp_predictor_line NAME: the predictor's accuracy over every core, from the statistics saved
# by exp_stop_server (dpctl stats --json); empty when it ran without a predictor.
exp_predictor_line() {
  python3 - "$1" "$EXP_WORK/$1.stats.json" <<'PY' || true
import json, sys
name, path = sys.argv[1], sys.argv[2]
try:
    s = json.load(open(path))["server"]
except (OSError, ValueError, KeyError):
    sys.exit(0)
if s.get("sched_predictor", "none") == "none":
    sys.exit(0)
tp, fp = s["predictor_fault_faulted"], s["predictor_fault_clean"]
fn, tn = s["predictor_clean_faulted"], s["predictor_clean_clean"]
n = tp + fp + fn + tn
print(f"{name}: predictor classified {n} requests: {tp + fp} fault-likely ({tp} faulted), "
      f"{fn + tn} fault-free ({fn} faulted); accuracy {100 * (tp + tn) / max(n, 1):.1f}%, "
      f"faulting requests caught {100 * tp / (tp + fn) if tp + fn else 100:.1f}%")
PY
}
