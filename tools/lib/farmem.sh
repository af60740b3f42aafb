# The one shell library of tools/experiments/, tools/bench/ and tools/device/: where our programs
# are (a build folder or a device bundle), starting and stopping memnode, kvserver and the loadgen
# (with a clean-up trap), the kvserver modes as TOML, CPU priority, the loadgen's exit statuses,
# the machine's description. Sourced (bash) from the repository root; changes no folder.
#
# Knobs (environment), read when sourced unless said otherwise:
#   FARMEM_BUILD (build)   the build folder the programs come from (build/ is meson
#                          debugoptimized: -O2 with FM_DCHECKs on)
#   FARMEM_RELEASE=1       measure an optimized build without debug checks instead: FARMEM_BUILD
#                          defaults to build-release, which fm_build configures (once) as meson
#                          --buildtype=release (-O3, NDEBUG: FM_DCHECKs off), tests off. Every
#                          result file says which build it used (fm_build_info)
#   FARMEM_BUNDLE          a device bundle (tools/device/bundle.sh: bin/, lib/) instead: its
#                          programs run with LD_LIBRARY_PATH=bundle/lib, given to them alone
#   NO_BUILD=1             fm_build does not run tools/build.sh (nor does SKIP_SETUP=1)
#   SKIP_SETUP=1           fm_setup does not run tools/setup.sh nor tools/build.sh
#   PRIO (1)               1: as root, every kvserver and loadgen in its own session whose
#                          autogroup gets nice -19, and nice -19 itself; another negative number:
#                          that nice value; 0: neither
#   EXP_EAL_D              PMD libraries EAL loads with -d (default: the bundle's, where DPDK's own
#                          PMD folder lacks them; none with a build folder)
# and at each call: EXP_LCORES (1; "1 0": worker 0 on CPU 1, worker 1 on CPU 0),
# EXP_LOADGEN_LCORES (0), EXP_EAL_MB (EAL memory of kvserver and loadgen), EXP_MBUFS,
# IDLE_BACKOFF (true), LATENCY_NS (3300), LOCAL_FRACTION (0.2), PREEMPT_US (5), ITEM_SIZE_MAX
# (kvserver's default), SPIN_NS (kv.spin_ns: synthetic work per request in every mode; unset: 0),
# FM_KEEP=1 or EXP_KEEP=1 (keep the work folder).

# shellcheck shell=bash disable=SC2034,SC2119,SC2120,SC1091  # FM_* are for the sourcing scripts
FM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FM_REPORT=$FM_ROOT/tools/lib/report.py

# --- programs --------------------------------------------------------------------------------

# fm_prog NAME SUBDIR: the program NAME under FM_BIN, a bundle's bin/ (FM_BIN/NAME) or a build
# folder (FM_BIN/SUBDIR/NAME), as an absolute path; where neither exists, the path it should have.
fm_prog() {
  local p build=$FM_BIN/$2/$1
  [ "$2" = . ] && build=$FM_BIN/$1
  for p in "$build" "$FM_BIN/$1"; do
    [ -f "$p" ] || continue
    [ -x "$p" ] || chmod u+x "$p" 2>/dev/null  # a copy that lost its mode bits
    echo "$(cd "$(dirname "$p")" && pwd)/$1"
    return
  done
  if [ -n "$FM_LIB" ]; then echo "$FM_BIN/$1"; else echo "$build"; fi
}

# fm_programs BIN [LIB]: FM_KVSERVER, FM_MEMNODE, FM_LOADGEN, FM_DPCTL, FM_REFLECTOR and
# FM_ENGINE_BENCH from BIN (a build folder or a bundle's bin/), and FM_ENV, the prefix that gives
# LIB (empty: the system's libraries) to our programs alone, so that python3, awk and the shell
# keep the system's.
fm_programs() {
  FM_BIN=$1
  FM_LIB=${2:-}
  [ -n "$FM_LIB" ] && FM_LIB=$(cd "$FM_LIB" 2>/dev/null && pwd || echo "$FM_LIB")
  FM_KVSERVER=$(fm_prog kvserver .)
  FM_MEMNODE=$(fm_prog memnode memnode)
  FM_LOADGEN=$(fm_prog loadgen tools/loadgen)
  FM_DPCTL=$(fm_prog dpctl tools/dpctl)
  FM_REFLECTOR=$(fm_prog reflector tools/loadgen)
  FM_ENGINE_BENCH=$(fm_prog engine_bench tools/loadgen)
  FM_ENV=()
  [ -n "$FM_LIB" ] && FM_ENV=(env "LD_LIBRARY_PATH=$FM_LIB")
  return 0
}

# fm_pmds [auto|on|off]: FM_PMDS, the PMD libraries EAL loads with -d. DPDK loads its PMDs from
# the folder compiled into librte_eal; a machine without DPDK has none, so they come from FM_LIB.
# Where the folder exists, -d would load each PMD a second time (EAL panics), so auto loads them
# only where it lacks memif. EXP_EAL_D, when set, decides in auto. Fails when on finds none.
fm_pmds() {
  local mode=${1:-auto} dir pmd
  FM_PMDS=()
  if [ "$mode" = auto ] && [ -n "${EXP_EAL_D+x}" ]; then
    read -ra FM_PMDS <<<"$EXP_EAL_D"
    return 0
  fi
  [ -n "$FM_LIB" ] && [ "$mode" != off ] || return 0
  if [ "$mode" = auto ]; then
    dir=$(grep -aoE 'DPDK_PLUGIN_PATH=[[:graph:]]+' "$FM_LIB/librte_eal.so.23" 2>/dev/null | head -1 | cut -d= -f2)
    [ -e "${dir:-/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0}/librte_net_memif.so.23" ] && return 0
  fi
  for pmd in librte_mempool_ring.so.23 librte_net_memif.so.23; do
    [ -e "$FM_LIB/$pmd" ] || { echo "$FM_LIB/$pmd missing (tools/device/bundle.sh)" >&2; return 1; }
    FM_PMDS+=("$FM_LIB/$pmd")
  done
}

[ "${FARMEM_RELEASE:-0}" = 1 ] && export FARMEM_BUILD=${FARMEM_BUILD:-build-release}
if [ -n "${FARMEM_BUNDLE:-}" ]; then
  fm_programs "$FARMEM_BUNDLE/bin" "$FARMEM_BUNDLE/lib"
else
  fm_programs "${FARMEM_BUILD:-build}"
fi
fm_pmds auto || exit 1

# fm_setup: tools/setup.sh and tools/build.sh, unless SKIP_SETUP is set (the experiments).
fm_setup() {
  [ -n "${SKIP_SETUP:-}" ] && return 0
  "$FM_ROOT/tools/setup.sh" >/dev/null
  fm_build
}

# fm_build PROGRAM...: tools/build.sh (in FARMEM_BUILD) unless NO_BUILD or SKIP_SETUP is set or
# the programs come from a bundle; then fails with a line when a PROGRAM is missing. With
# FARMEM_RELEASE=1 a folder not yet configured is set up as a release build first (tools/build.sh
# would make it debugoptimized).
fm_build() {
  local p
  if [ -z "${NO_BUILD:-}${SKIP_SETUP:-}${FARMEM_BUNDLE:-}" ]; then
    if [ "${FARMEM_RELEASE:-0}" = 1 ] && [ ! -f "$FM_ROOT/$FARMEM_BUILD/build.ninja" ]; then
      (cd "$FM_ROOT" && meson setup "$FARMEM_BUILD" --buildtype=release -Dtests=disabled >/dev/null)
    fi
    "$FM_ROOT/tools/build.sh" >/dev/null
  fi
  for p in "$@"; do
    [ -x "$p" ] || { echo "$p is missing (build first: tools/build.sh)" >&2; exit 1; }
  done
}

# --- priority ----------------------------------------------------------------------------------

# FM_NICE: the prefix that runs a program at high CPU priority, so that other jobs on a shared
# machine preempt it less. As root, in its own session whose autogroup gets the nice value (with
# CONFIG_SCHED_AUTOGROUP, plain nice only ranks processes within one session, so a compile in
# another session would still take half a CPU), and the nice value itself. Empty when PRIO=0 or
# not root. FM_NICE_VALUE: the value, for the summaries.
FM_NICE_VALUE=${PRIO:-1}
[ "$FM_NICE_VALUE" = 1 ] && FM_NICE_VALUE=-19
case $FM_NICE_VALUE in -[0-9]*|0|[0-9]*) ;; *) echo "PRIO=$PRIO: 1, 0 or a nice value" >&2; exit 1 ;; esac
FM_NICE=()
if [ "$FM_NICE_VALUE" != 0 ] && [ "$(id -u)" = 0 ] && command -v setsid >/dev/null; then
  FM_NICE=(setsid --wait sh -c "echo $FM_NICE_VALUE >/proc/self/autogroup 2>/dev/null; exec nice -n $FM_NICE_VALUE \"\$@\"" prio)
else
  FM_NICE_VALUE=0
fi

# --- processes ---------------------------------------------------------------------------------

FM_PIDS=()              # started by fm_bg or fm_fg and not yet stopped; fm_cleanup stops them
declare -A FM_SIG=()    # pid -> the signal that stops it
FM_AT_EXIT=()           # commands fm_cleanup runs after stopping the processes
FM_WORK=""

# fm_workdir NAME: a fresh folder /tmp/farmem-NAME.XXXXXX (FM_WORK, removed by fm_cleanup) with
# the paths of this run's sockets: FM_MEMIF, FM_MNSOCK (memnode), FM_CONTROL (kvserver's control).
fm_workdir() {
  FM_WORK=$(mktemp -d "/tmp/farmem-$1.XXXXXX")
  FM_MEMIF=$FM_WORK/memif.sock
  FM_MNSOCK=$FM_WORK/memnode.sock
  FM_CONTROL=$FM_WORK/control.sock
}

# fm_bg [-a] [-e ERRLOG] [-s SIGNAL] LOG CMD...: starts CMD, a program (not a shell function:
# that would run in a subshell whose signals do not reach the program), in the background with
# its output in LOG (-a: appended; -e: its stderr in ERRLOG); SIGNAL (TERM) is what fm_cleanup
# stops it with. Sets FM_PID.
fm_bg() {
  local append="" err="" sig=TERM log
  while :; do
    case $1 in
      -a) append=1; shift ;;
      -e) err=$2; shift 2 ;;
      -s) sig=$2; shift 2 ;;
      *) break ;;
    esac
  done
  log=$1
  shift
  [ -n "$append" ] || : >"$log"
  "$@" >>"$log" 2>>"${err:-$log}" &
  FM_PID=$!
  FM_PIDS+=("$FM_PID")
  FM_SIG[$FM_PID]=$sig
}

# fm_fg CMD...: CMD (a program) as if in the foreground, but started in the background and waited for, so
# that a signal to the script is handled at once (fm_cleanup stops CMD with SIGINT). Returns
# CMD's exit status.
fm_fg() {
  "$@" &
  FM_PIDS+=($!)
  FM_SIG[$!]=INT
  fm_wait $!
}

# fm_wait PID: waits for a process fm_bg started; returns its exit status.
fm_wait() {
  local rc=0
  wait "$1" || rc=$?
  fm_forget "$1"
  return "$rc"
}

fm_forget() {  # PID: no longer ours to stop
  local p keep=()
  for p in "${FM_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  FM_PIDS=(${keep[@]+"${keep[@]}"})
  unset "FM_SIG[$1]"
}

fm_children() {  # PID: its child pids
  if command -v pgrep >/dev/null; then pgrep -P "$1" 2>/dev/null
  else cat "/proc/$1/task/$1/children" 2>/dev/null; fi | tr '\n' ' ' || true
}

# fm_note LINE: something the run's summary should tell (a process that had to be killed, one
# that did not start); on stderr. A script may define its own after sourcing this file.
fm_note() { echo "$*" >&2; }

# fm_stop PID [SIGNAL [GRACE_S]]: SIGNAL (the one fm_bg was given, else TERM); after GRACE_S (5)
# SIGKILL to it and its children (the program under a timeout(1) wrapper), with a note; waits
# for it.
fm_stop() {
  local pid=$1 sig=${2:-${FM_SIG[$1]:-TERM}} grace=${3:-5} i kids
  [ -n "$pid" ] || return 0
  fm_forget "$pid"
  if kill -0 "$pid" 2>/dev/null; then
    kill -"$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      kids=$(fm_children "$pid")
      # shellcheck disable=SC2086  # one word per pid
      kill -KILL $kids "$pid" 2>/dev/null
      fm_note "pid $pid ($kids) did not stop on SIG$sig within $grace s: killed"
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

# fm_cleanup: stops every process still running (the last started first), runs FM_AT_EXIT,
# removes FM_WORK. The EXIT trap; SIGINT and SIGTERM end the script through it.
fm_cleanup() {
  local rc=$? i cmd  # the script's exit status, kept
  trap '' INT TERM  # a second signal must not cut the clean-up short
  set +e            # nor a failed step
  for ((i = ${#FM_PIDS[@]} - 1; i >= 0; i--)); do fm_stop "${FM_PIDS[i]}" "" 10; done
  for cmd in ${FM_AT_EXIT[@]+"${FM_AT_EXIT[@]}"}; do eval "$cmd" || true; done
  # Only ever a folder fm_workdir made.
  case "$FM_WORK" in /tmp/farmem-*.*) [ -n "${FM_KEEP:-}${EXP_KEEP:-}" ] || rm -rf "$FM_WORK" ;; esac
  return "$rc"
}
trap fm_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# fm_wait_socket WHO PID LOG SOCKET...: waits (up to 20 s) for every SOCKET while PID lives;
# otherwise notes it with the end of LOG (less the configuration it echoes) and fails.
fm_wait_socket() {
  local who=$1 pid=$2 log=$3 i s ready
  shift 3
  for ((i = 0; i < 200; i++)); do
    ready=1
    for s in "$@"; do [ -S "$s" ] || ready=""; done
    [ -n "$ready" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  fm_note "$who did not start ($log): $(grep -v '^[a-z_.]* = \|^\[\|^$' "$log" | tail -6 | tr '\n' ' ')"
  return 1
}

# fm_memif_vdev server|client: the memif port of this run (kvserver or reflector: server).
fm_memif_vdev() {
  local mac=02:fa:00:00:00:01
  [ "$1" = client ] && mac=02:fa:00:00:00:02
  echo "net_memif0,role=$1,socket=$FM_MEMIF,socket-abstract=no,mac=$mac"
}

# fm_start_memnode POOL_MB [PREFIX...]: a memnode serving POOL_MB on FM_MNSOCK, its output in
# FM_MEMNODE_LOG (FM_WORK/memnode.log, appended); PREFIX (timeout, taskset) goes before the program.
# Waits for its socket. Sets FM_MEMNODE_PID.
fm_start_memnode() {
  local pool=$1 log=${FM_MEMNODE_LOG:-$FM_WORK/memnode.log}
  shift
  cat >"$FM_WORK/memnode.toml" <<TOML
[memnode]
pool_mb = $pool
listen = "unix:$FM_MNSOCK"
[log]
level = "warn"
TOML
  rm -f "$FM_MNSOCK"
  fm_bg -a "$log" "$@" ${FM_ENV[@]+"${FM_ENV[@]}"} "$FM_MEMNODE" --config "$FM_WORK/memnode.toml"
  FM_MEMNODE_PID=$FM_PID
  fm_wait_socket memnode "$FM_MEMNODE_PID" "$log" "$FM_MNSOCK" && return 0
  fm_stop "$FM_MEMNODE_PID" TERM 2
  FM_MEMNODE_PID=""
  return 1
}

# --- kvserver ----------------------------------------------------------------------------------

# fm_mode_toml MODE [LOCAL_FRACTION]: the kvserver config of one mode — no-fault (all local), sync
# or async (far memory, 64 MiB region, LOCAL_FRACTION (0.2) local, fetch latency LATENCY_NS
# (3300) from this run's memnode), optionally with scheduler variants appended with '+':
# sync+pagetable, async+history, async+central, sync+preempt (PREEMPT_US, 5 us quantum),
# async+nosteal, async+prefetch (sched.prefetch), async+noreserve (paging.reserve_frames = 0:
# faults reclaim for themselves, the old path). ITEM_SIZE_MAX, when set, bounds far modes' items (the many-core runs set 65536:
# 20% of 64 MiB holds too few frames to pin a 1 MiB item on each of 11 cores).
fm_mode_toml() {
  local base=${1%%+*} extra="" paging_extra="" v parts=()
  if [ "$base" = no-fault ]; then
    printf '[kv]\nmemory_mb = 64\n'
    [ -n "${SPIN_NS:-}" ] && printf 'spin_ns = %s\n' "$SPIN_NS"
    printf '[paging]\nmode = "local"\n'
    return
  fi
  case "$1" in *+*) IFS=+ read -ra parts <<<"${1#*+}" ;; esac
  for v in ${parts[@]+"${parts[@]}"}; do
    case "$v" in
      history|pagetable) extra+="predictor = \"$v\"\n" ;;
      central) extra+="dispatch = \"central\"\n" ;;
      preempt) extra+="preempt_us = ${PREEMPT_US:-5}\n" ;;
      nosteal) extra+="steal = false\n" ;;
      prefetch) extra+="prefetch = true\n" ;;
      noreserve) paging_extra+="reserve_frames = 0\n" ;;
      *) echo "fm_mode_toml: unknown variant '$v' in '$1'" >&2; return 1 ;;
    esac
  done
  printf '[kv]\nmemory_mb = 64\n'
  [ -n "${ITEM_SIZE_MAX:-}" ] && printf 'item_size_max = %s\n' "$ITEM_SIZE_MAX"
  [ -n "${SPIN_NS:-}" ] && printf 'spin_ns = %s\n' "$SPIN_NS"
  printf '[paging]\nmode = "far"\nlocal_fraction = %s\nmemnode = "unix:%s"\n' "${2:-${LOCAL_FRACTION:-0.2}}" "$FM_MNSOCK"
  printf '%b' "$paging_extra"
  printf '[paging.emulated]\nlatency_ns = %s\n[sched]\nfaults = "%s"\n' "${LATENCY_NS:-3300}" "$base"
  printf '%b' "$extra"
}

# shellcheck disable=SC2086  # split on any run of spaces
fm_lcores() { echo $1 | tr ' ' ','; }  # "1 0" -> 1,0

# fm_server_toml EXTRA: kvserver's config for this run: lcores EXP_LCORES, the EAL extras
# (FM_HUGE, EXP_EAL_MB, FM_PMDS), the memif port, EXP_MBUFS, IDLE_BACKOFF, the control socket,
# log level FM_LOG_LEVEL (warn), then EXTRA (fm_mode_toml and more).
fm_server_toml() {
  local d list=""
  for d in ${FM_PMDS[@]+"${FM_PMDS[@]}"}; do list+="${list:+, }\"-d\", \"$d\""; done
  echo "[eal]"
  echo "lcores = [$(fm_lcores "${EXP_LCORES:-1}")]"
  [ -n "${FM_HUGE:-}" ] && echo "hugepages = \"$FM_HUGE\""
  [ -n "${EXP_EAL_MB:-}" ] && echo "memory_mb = $EXP_EAL_MB"
  [ -n "$list" ] && echo "extra_args = [$list]"
  echo "[port]"
  echo "vdev = \"$(fm_memif_vdev server)\""
  [ -n "${EXP_MBUFS:-}" ] && echo "mbufs = $EXP_MBUFS"
  printf '[dataplane]\nidle_backoff = %s\n' "${IDLE_BACKOFF:-true}"
  printf '[control]\nsocket = "%s"\n' "$FM_CONTROL"
  printf '[log]\nlevel = "%s"\n' "${FM_LOG_LEVEL:-warn}"
  echo "$1"
}

# fm_start_server NAME EXTRA_TOML [PREFIX...]: kvserver with fm_server_toml EXTRA_TOML (saved as
# FM_WORK/NAME.toml), at FM_NICE priority, its output in FM_SERVER_LOG (FM_WORK/NAME.log);
# PREFIX (timeout) goes first. Waits for its memif and control sockets. Sets FM_SERVER_PID and
# FM_SERVER_NAME.
fm_start_server() {
  local name=$1 log=${FM_SERVER_LOG:-$FM_WORK/$1.log}
  fm_server_toml "$2" >"$FM_WORK/$name.toml"
  shift 2
  rm -f "$FM_MEMIF" "$FM_CONTROL"
  fm_bg -s INT "$log" "$@" ${FM_NICE[@]+"${FM_NICE[@]}"} ${FM_ENV[@]+"${FM_ENV[@]}"} \
    "$FM_KVSERVER" --config "$FM_WORK/$name.toml"
  FM_SERVER_PID=$FM_PID
  FM_SERVER_NAME=$name
  fm_wait_socket "kvserver ($name)" "$FM_SERVER_PID" "$log" "$FM_MEMIF" "$FM_CONTROL" && return 0
  fm_stop "$FM_SERVER_PID" INT 3
  FM_SERVER_PID=""
  return 1
}

# fm_dpctl ARGS...: dpctl against this run's server.
fm_dpctl() { ${FM_ENV[@]+"${FM_ENV[@]}"} "$FM_DPCTL" --socket "$FM_CONTROL" "$@"; }

# fm_server_cpu_s: CPU seconds (user + system) the running kvserver has used so far.
fm_server_cpu_s() {
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$FM_SERVER_PID/stat"
}

# fm_stop_server: saves the server's statistics as it stops (FM_WORK/NAME.stats.json: the
# counter registry, docs/control.md; never parsed from its stderr), then stops it (SIGINT; SIGKILL
# after 10 s).
fm_stop_server() {
  [ -n "${FM_SERVER_PID:-}" ] || return 0
  if [ -x "$FM_DPCTL" ] && kill -0 "$FM_SERVER_PID" 2>/dev/null; then
    fm_dpctl stats --json >"$FM_WORK/$FM_SERVER_NAME.stats.json" 2>/dev/null || true
  fi
  fm_stop "$FM_SERVER_PID" INT 10
  FM_SERVER_PID=""
}

# fm_predictor_line NAME: the predictor's accuracy over every core, from the statistics
# fm_stop_server saved; empty when it ran without a predictor.
fm_predictor_line() { python3 "$FM_REPORT" predictor "$1" "$FM_WORK/$1.stats.json" || true; }

# --- loadgen -----------------------------------------------------------------------------------

# fm_loadgen_args: the loadgen's arguments for this run, one a line: --lcores EXP_LOADGEN_LCORES
# (0), the EAL extras (FM_PMDS, FM_HUGE, EXP_EAL_MB, EXP_MBUFS) and the memif port.
fm_loadgen_args() {
  local d
  printf -- '--lcores\n%s\n' "$(fm_lcores "${EXP_LOADGEN_LCORES:-0}")"
  for d in ${FM_PMDS[@]+"${FM_PMDS[@]}"}; do printf -- '--eal-arg=-d\n--eal-arg=%s\n' "$d"; done
  [ -n "${FM_HUGE:-}" ] && printf -- '--hugepages\n%s\n' "$FM_HUGE"
  [ -n "${EXP_EAL_MB:-}" ] && printf -- '--memory-mb\n%s\n' "$EXP_EAL_MB"
  [ -n "${EXP_MBUFS:-}" ] && printf -- '--mbufs\n%s\n' "$EXP_MBUFS"
  printf -- '--vdev\n%s\n' "$(fm_memif_vdev client)"
}

# fm_loadgen_cmd ARGS...: FM_CMD, the DPDK loadgen against this run's server at FM_NICE priority
# (fm_loadgen_args, then ARGS; with several server workers pass --queues N).
fm_loadgen_cmd() {
  local lib
  mapfile -t lib < <(fm_loadgen_args)
  FM_CMD=(${FM_NICE[@]+"${FM_NICE[@]}"} ${FM_ENV[@]+"${FM_ENV[@]}"} "$FM_LOADGEN" "${lib[@]}" "$@")
}

# fm_loadgen ARGS...: runs it (fm_fg); returns its exit status.
fm_loadgen() {
  fm_loadgen_cmd "$@"
  fm_fg "${FM_CMD[@]}"
}

# fm_loadgen_status WHO RC [sweep [LOG]]: one plain line on stderr about a loadgen exit status
# (tools/loadgen/exit_code.h; `loadgen --help` lists them); LOG's last lines where it has the
# error. A sweep runs past saturation, so its timeouts (3) are part of the curve and not told.
# Always returns 0: the rows are in the CSV either way, and the next run goes on.
fm_loadgen_status() {
  local who=$1 rc=$2 sweep=${3:-} log=${4:-} tail=""
  [ -n "$log" ] && tail=": $(grep -v '^+ ' "$log" 2>/dev/null | tail -3 | tr '\n' ' ')"
  case $rc in
    0) ;;
    1) echo "$who: the loadgen did not run (its error is ${log:+in $log}${log:-above}): no rows$tail" >&2 ;;
    2) echo "$who: WRONG or missing answers from the server (the CSV's wrong and misses columns): its rows measure a broken server, whatever the latency says" >&2 ;;
    3) [ -n "$sweep" ] || echo "$who: timeouts or error replies above 1% at some point (the CSV's drops and server_errors columns; where valid is 0 the loadgen also fell behind)" >&2 ;;
    4) echo "$who: some point INVALID: the loadgen fell behind its schedule on this machine (the CSV's valid and invalid_reason columns); the answers were right" >&2 ;;
    124|137) echo "$who: the loadgen hit its time bound; its rows so far are kept" >&2 ;;
    *) echo "$who: the loadgen exited $rc$tail" >&2 ;;
  esac
  return 0
}

# fm_append_csv SRC DST: appends a run's rows to DST (with the header when DST is new); a run
# that wrote no CSV (its loadgen did not run) is skipped with a line.
fm_append_csv() {
  if [ ! -s "$1" ]; then echo "no rows from $(basename "$1" .csv): skipped" >&2; return 0; fi
  if [ -f "$2" ]; then tail -n +2 "$1" >>"$2"; else cp "$1" "$2"; fi
}

# --- the machine -------------------------------------------------------------------------------

# fm_machine_info [long]: one paragraph about this machine for the summary files; long adds the
# CPU list, memory, hugepages, frequency governor, kernel command line and tools.
fm_machine_info() {
  local hp=/sys/kernel/mm/hugepages/hugepages-2048kB
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(uname -sr), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  if grep -q hypervisor /proc/cpuinfo; then
    echo "virtualised: $(lscpu 2>/dev/null | awk -F: '/Hypervisor vendor/ {gsub(/^ +/, "", $2); print $2}') VM ($(nproc) vCPUs)"
  fi
  echo "memory: $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); free 2 MiB hugepages: $(cat $hp/free_hugepages 2>/dev/null || echo 0)"
  echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "git: $(git -C "$FM_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$FM_ROOT" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  [ "${1:-}" = long ] || return 0
  echo "uname: $(uname -a)"
  echo "os: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
  echo "glibc: $(getconf GNU_LIBC_VERSION 2>/dev/null)"
  echo "tools: $(command -v python3 gnuplot | tr '\n' ' ')"
  echo "--- lscpu | head -25"; lscpu 2>&1 | head -25
  echo "--- lscpu -e"; lscpu -e 2>&1 | head -70
  echo "--- memory"; head -5 /proc/meminfo; grep -i huge /proc/meminfo
  echo "--- hugepages 2M: nr $(cat $hp/nr_hugepages 2>/dev/null) free $(cat $hp/free_hugepages 2>/dev/null) resv $(cat $hp/resv_hugepages 2>/dev/null)"
  echo "--- cpufreq governor: $(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null || echo n/a)"
  echo "--- cmdline: $(cat /proc/cmdline)"
}

# fm_build_info: one line: where the programs come from and how they were built (the build
# folder's meson buildtype and whether NDEBUG turns FM_DCHECKs off; a bundle's MANIFEST line).
fm_build_info() {
  local opts=$FM_BIN/meson-info/intro-buildoptions.json
  if [ -n "$FM_LIB" ]; then
    echo "build: bundle $FM_BIN ($(grep -m1 '^bundle made' "$FM_BIN/../MANIFEST" 2>/dev/null || echo 'no MANIFEST'); its build type is that of the folder it was made from)"
  elif [ -f "$opts" ]; then
    python3 - "$opts" "$FM_BIN" <<'PY'
import json, sys
o = {x["name"]: x["value"] for x in json.load(open(sys.argv[1]))}
bt, nd = o.get("buildtype"), o.get("b_ndebug")
off = nd == "true" or (nd == "if-release" and bt == "release")
print(f"build: {sys.argv[2]}/ meson buildtype={bt} b_ndebug={nd}: debug checks (FM_DCHECK) "
      f"{'off' if off else 'ON'}, sanitizers {o.get('b_sanitize', 'none')}"
      + ("" if off else " (not a measurement build: FARMEM_RELEASE=1, tools/lib/farmem.sh)"))
PY
  else
    echo "build: $FM_BIN (no meson-info: build type unknown)"
  fi
}

# fm_bench_binaries DIR TARGET "MESON_ARGS" [BIN...]: FM_BENCHES, the benchmark binaries a
# micro-benchmark script runs (several: interleaved builds): the BINs given, each checked to be
# built; none given, DIR/TARGET, with DIR set up (meson setup MESON_ARGS) when it is new and
# TARGET brought up to date unless NO_BUILD is set.
fm_bench_binaries() {
  local dir=$1 target=$2 args=$3 b
  shift 3
  FM_BENCHES=("$@")
  if [ ${#FM_BENCHES[@]} -eq 0 ]; then
    # shellcheck disable=SC2086  # MESON_ARGS is a word list
    [ -f "$dir/build.ninja" ] || meson setup "$dir" $args >/dev/null
    [ -n "${NO_BUILD:-}" ] || ninja -C "$dir" "$target" >/dev/null
    FM_BENCHES=("$dir/$target")
  fi
  for b in "${FM_BENCHES[@]}"; do
    [ -x "$b" ] || { echo "bench: $b is not built (ninja -C <build> $target)" >&2; exit 1; }
  done
}

# fm_bench_builds BIN...: for each benchmark binary, how its build folder (the path before
# /tests/ or /tools/) was built (fm_build_info) and the commit its tree is at.
fm_bench_builds() {
  local b dir
  for b in "$@"; do
    dir=${b%%/tests/*}
    dir=${dir%%/tools/*}
    (FM_BIN=$dir FM_LIB="" fm_build_info)
    echo "  $b: git $(git -C "$(dirname "$b")" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$(dirname "$b")" diff --quiet HEAD -- 2>/dev/null || echo ' (with changes not committed)')"
  done
}

# fm_noise_floor [CPU]: this machine's noise floor on CPU (EXP_LOADGEN_LCORES's first, else 0):
# the share of 2 s a tight TSC loop lost in stalls > 10 us (engine_bench --hiccups 2), one line.
fm_noise_floor() {
  local cpu=${1:-${EXP_LOADGEN_LCORES:-0}} line
  cpu=${cpu%% *}
  line=$(${FM_ENV[@]+"${FM_ENV[@]}"} "$FM_ENGINE_BENCH" --cpu "$cpu" --hiccups 2 --rates 10000 \
    --duration 0.05 2>/dev/null | grep '^noise floor' || true)
  echo "${line:-noise floor: not measured ($FM_ENGINE_BENCH did not run)} (CPU $cpu, $(date -u +%H:%M:%SZ))"
}

# fm_record [CPU]: the lines every result file ends with: the machine (fm_machine_info), the
# build (fm_build_info), the priority, and the noise floor on CPU measured now (fm_noise_floor).
fm_record() {
  fm_machine_info
  fm_build_info
  echo "priority: $([ "$FM_NICE_VALUE" != 0 ] && echo "nice $FM_NICE_VALUE in its own autogroup" || echo "normal (PRIO=0 or not root)")"
  fm_noise_floor "${1:-}"
}
