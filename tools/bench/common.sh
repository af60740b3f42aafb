# Shared by the benchmark scripts: build, machine description, process start/stop. Sourced.

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BUILD=${FARMEM_BUILD:-build}
LOADGEN=$BUILD/tools/loadgen/loadgen
# Benchmarks run their processes at a high CPU priority so that other jobs on a shared machine
# preempt them less: as root, each in its own session whose autogroup gets nice -19 (with
# CONFIG_SCHED_AUTOGROUP, plain `nice` only ranks processes within one session, so a compile in
# another session would still take half a CPU), and nice -19 itself. PRIO=0 turns this off.
PRIO=${PRIO:-1}
if [ "$(id -u)" = 0 ] && [ "$PRIO" = 1 ]; then
  NICE=(setsid --wait sh -c 'echo -19 >/proc/self/autogroup 2>/dev/null; exec nice -n -19 "$@"' prio)
else
  NICE=()
fi
PIDS=()

bench_build() {
  if [ -z "${NO_BUILD:-}" ]; then tools/build.sh >/dev/null; fi
  for b in "$@"; do
    [ -x "$b" ] || { echo "bench: $b is missing (build first: tools/build.sh)" >&2; exit 1; }
  done
}

# bench_loadgen_status WHO RC: one plain line on stderr about a loadgen exit status
# (tools/loadgen/exit_code.h; `loadgen --help` lists them). A sweep runs past saturation, so
# timeouts (3) are part of its curve and INVALID points (4) are marked in their rows: neither is
# told. Always returns 0: the summary says what could be measured.
bench_loadgen_status() {
  case $2 in
    0|3|4) ;;
    1) echo "bench: $1: the loadgen did not run (its error is above): no curve" >&2 ;;
    2) echo "bench: $1: WRONG or missing answers from the server (the CSV's wrong and misses columns): its curve measures a broken server" >&2 ;;
    *) echo "bench: $1: the loadgen exited $2" >&2 ;;
  esac
  return 0
}

# One paragraph about this machine for the summary files.
machine_info() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(uname -sr), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  if grep -q hypervisor /proc/cpuinfo; then
    echo "virtualised: $(lscpu 2>/dev/null | awk -F: '/Hypervisor vendor/ {gsub(/^ +/, "", $2); print $2}') VM ($(nproc) vCPUs)"
  fi
  echo "memory: $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); free 2 MiB hugepages: $(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)"
  echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
}

# Starts a background process with its output in a log; remembered for cleanup.
start_bg() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  PIDS+=($!)
  LAST_PID=$!
}

stop_pid() {
  local pid=$1
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup_all() {
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  PIDS=()
}

wait_for_socket() {
  local sock=$1 pid=$2 log=$3
  for _ in $(seq 100); do
    [ -S "$sock" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: no memif socket $sock; the end of $log:" >&2
  tail -n 15 "$log" >&2
  return 1
}
