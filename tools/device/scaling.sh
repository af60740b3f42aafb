#!/usr/bin/env bash
# Multi-core scaling of kvserver, for one bounded run on a borrowed many-core machine: for each
# server core count C and each mode (no-fault, sync, async: 20% local, 3.3 us fetches, as the
# experiments: tools/lib/farmem.sh), the peak throughput at p99 <= P99_BOUND_US found by a coarse
# rate sweep (per-core rates x C) and a refinement between the last good and the first bad
# point. Runs from build-bundle/ (tools/device/bundle.sh) with no installed DPDK; every step has
# a hard time limit and the whole run a budget. Writes under $OUT: scaling.csv, summary.txt
# (rewritten after every step), machine.txt, progress.log, raw/ (loadgen CSVs), logs/.
#
#   tools/device/scaling.sh                                  # on the device, as root
#   BIN=build CORES=1 SPARE_CORES=0 QUICK=1 tools/device/scaling.sh   # a short local check
#
# Knobs (env): OUT, BUDGET_S (420), CORES ("1 2 4 8 12", capped to fit the CPUs), MODES,
# SPARE_CORES (1: CPU 0 left to memnode and this script), CPU_ORDER (physical: one thread of
# every core before any SMT sibling | numeric), RATES_PER_CORE, REFINE (3 points), DURATION (1),
# WARMUP (0.5), PAUSE (0.2), RETRIES (1), MIN_ADHERENCE (99), KEYS (200000), VALUE_SIZE (128), P99_BOUND_US (500),
# STOP_P99_US (4 x the bound: one stalled point does not end a sweep),
# LATENCY_NS (3300), LOCAL_FRACTION (0.2), ITEM_SIZE_MAX (65536), IDLE_BACKOFF (false), HUGEPAGES
# (2048 to reserve; 0 = use what is free), PRIO (-19), BUNDLE (build-bundle), BIN, LIB (empty = system libraries),
# PMD_D (auto: EAL -d for the PMDs when LIB is set and DPDK's own PMD folder is absent | on |
# off), LOADGEN_QUEUES (auto: use --queues when the loadgen has it | off), MACHINE (a name),
# QUICK=1 (short points and sweeps for a functional check), DRY_RUN=1 (print which CPUs each run
# gets and exit; CPU_LIST="0-15" and LOADGEN_QUEUES=on to try another machine's layout).
set -uo pipefail  # no -e: a failed step is recorded and the run goes on
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
T0=$SECONDS

if [ "${QUICK:-0}" = 1 ]; then
  : "${DURATION:=0.5}" "${WARMUP:=0.3}" "${PAUSE:=0.1}" "${RETRIES:=1}"
  : "${REFINE:=2}" "${BUDGET_S:=150}"
fi
BUDGET_S=${BUDGET_S:-420}
CORES=${CORES:-"1 2 4 8 12"}
MODES=${MODES:-"no-fault sync async"}
SPARE_CORES=${SPARE_CORES:-1}
CPU_ORDER=${CPU_ORDER:-physical}
RATES_PER_CORE=${RATES_PER_CORE:-"12500 25000 50000 100000 200000 400000 800000 1600000"}
REFINE=${REFINE:-3}
DURATION=${DURATION:-1}
WARMUP=${WARMUP:-0.5}
PAUSE=${PAUSE:-0.2}
RETRIES=${RETRIES:-1}
MIN_ADHERENCE=${MIN_ADHERENCE:-99}  # percent of sends on time for a VALID point (the loadgen's)
KEYS=${KEYS:-200000}
VALUE_SIZE=${VALUE_SIZE:-128}
P99_BOUND_US=${P99_BOUND_US:-500}
STOP_P99_US=${STOP_P99_US:-$((4 * P99_BOUND_US))}  # a sweep ends after a point over this
LATENCY_NS=${LATENCY_NS:-3300}
LOCAL_FRACTION=${LOCAL_FRACTION:-0.2}
ITEM_SIZE_MAX=${ITEM_SIZE_MAX:-65536}  # 20% of 64 MiB cannot pin a 1 MiB item on each of 11 cores
IDLE_BACKOFF=${IDLE_BACKOFF:-false}
HUGEPAGES=${HUGEPAGES:-2048}
PRIO=${PRIO:--19}
PMD_D=${PMD_D:-auto}
LOADGEN_QUEUES=${LOADGEN_QUEUES:-auto}
BUNDLE=${BUNDLE:-build-bundle}
BIN=${BIN:-$BUNDLE/bin}
if [ -z "${LIB+x}" ]; then
  if [ "$BIN" = "$BUNDLE/bin" ]; then LIB=$BUNDLE/lib; else LIB=""; fi
fi
OUT=${OUT:-results/device-$(date +%Y%m%d-%H%M%S)}
[ "${DRY_RUN:-0}" = 1 ] && OUT=$(mktemp -d /tmp/farmem-scaling-dry.XXXXXX)  # writes nothing real

mkdir -p "$OUT/raw" "$OUT/logs" || { echo "scaling: cannot create $OUT" >&2; exit 1; }
OUT=$(cd "$OUT" && pwd)
. tools/lib/farmem.sh
CSV=$OUT/scaling.csv
SUMMARY=$OUT/summary.txt
NOTES=$OUT/notes.txt
: >"$NOTES"

log() {  # a progress line: to the terminal and progress.log
  local line
  line=$(printf '[%4ds] %s' $((SECONDS - T0)) "$*")
  echo "$line"
  echo "$line" >>"$OUT/progress.log"
}
note() { log "NOTE: $*"; echo "$*" >>"$NOTES"; }
fm_note() { note "$@"; }
left() { echo $((BUDGET_S - (SECONDS - T0))); }
min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }
ceil_s() { awk -v x="$1" 'BEGIN { i = int(x); if (i < x) i++; print i }'; }

# --- programs (tools/lib/farmem.sh: FM_ENV gives LIB to our programs alone, FM_NICE is PRIO) ---
fm_programs "$BIN" "$LIB"
LIB=$FM_LIB
if [ ! -x "$FM_KVSERVER" ] || [ ! -x "$FM_MEMNODE" ] || [ ! -x "$FM_LOADGEN" ]; then
  echo "scaling: kvserver, memnode or loadgen not found under BIN=$BIN (run tools/device/bundle.sh, or set BIN=build)" >&2
  exit 1
fi
MACHINE=${MACHINE:-$(uname -n | tr -c 'A-Za-z0-9_.\n-' _)}
unset EXP_EAL_D  # the PMDs follow PMD_D here
fm_pmds "$PMD_D" || { echo "scaling: PMD_D=$PMD_D" >&2; exit 1; }
EAL_D_TEXT=""; for pmd in ${FM_PMDS[@]+"${FM_PMDS[@]}"}; do EAL_D_TEXT+="${EAL_D_TEXT:+ }-d $pmd"; done

# --- CPUs --------------------------------------------------------------------------------------
expand_list() {  # "0-3,8" -> "0 1 2 3 8"
  local IFS=, part out=""
  for part in $1; do
    if [[ $part == *-* ]]; then out+=" $(seq -s ' ' "${part%-*}" "${part#*-}")"; else out+=" $part"; fi
  done
  echo $out
}
allowed=$(expand_list "${CPU_LIST:-$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status)}")
[ -n "$allowed" ] || allowed=$(seq -s ' ' 0 $(($(nproc) - 1)))
CPUS=()
if [ "$CPU_ORDER" = physical ]; then
  # One hardware thread of every core first: a server core and a loadgen core should not be
  # SMT siblings while there are whole cores left.
  second=()
  for c in $allowed; do
    sib=/sys/devices/system/cpu/cpu$c/topology/thread_siblings_list
    first=$c
    [ -r "$sib" ] && first=$(expand_list "$(cat "$sib")" | awk '{print $1}')
    if [ "$first" = "$c" ]; then CPUS+=("$c"); else second+=("$c"); fi
  done
  CPUS+=("${second[@]}")
else
  for c in $allowed; do CPUS+=("$c"); done
fi
NCPU=${#CPUS[@]}

HAS_QUEUES=0
lg_help=$(timeout 10 ${FM_ENV[@]+"${FM_ENV[@]}"} "$FM_LOADGEN" --help 2>&1)  # whole, not piped into grep -q
if [ "$LOADGEN_QUEUES" = on ] || { [ "$LOADGEN_QUEUES" = auto ] && grep -q -- '--queues' <<<"$lg_help"; }; then
  HAS_QUEUES=1
fi
lg_cores_for() {  # C -> loadgen lcores
  if [ "$HAS_QUEUES" = 1 ]; then echo $(( ($1 + 2) / 3 )); else echo "$1"; fi
}
fits() { local c=$1; [ $((c + $(lg_cores_for "$c") + SPARE_CORES)) -le "$NCPU" ] && [ "$c" -le $((NCPU - 1)) ]; }
max_c=0
for ((c = 1; c < NCPU; c++)); do fits "$c" && max_c=$c; done
CORE_LIST=()
for c in $CORES; do
  if [ "$max_c" -eq 0 ]; then break; fi
  if ! fits "$c"; then
    note "C=$c does not fit $NCPU CPUs (server $c + loadgen $(lg_cores_for "$c") + spare $SPARE_CORES): using C=$max_c"
    c=$max_c
  fi
  [[ " ${CORE_LIST[*]} " == *" $c "* ]] || CORE_LIST+=("$c")
done
[ "${#CORE_LIST[@]}" -gt 0 ] || { echo "scaling: $NCPU CPUs cannot hold one server core, its loadgen and $SPARE_CORES spare" >&2; exit 1; }

server_cpus() { echo "${CPUS[@]:1:$1}"; }  # CPUs[1..C]
loadgen_cpus() {  # C L: the next L CPUs after the server's, then (no spare) CPU[0]
  local pool=("${CPUS[@]:$(($1 + 1))}")
  [ "$SPARE_CORES" -eq 0 ] && pool+=("${CPUS[0]}")
  echo "${pool[@]:0:$2}"
}

if [ "${DRY_RUN:-0}" = 1 ]; then  # the plan only: CPUs of every run
  echo "scaling (dry run): $NCPU CPUs in order ${CPUS[*]}; loadgen --queues $HAS_QUEUES; EAL -d: ${EAL_D_TEXT:-none}"
  for c in "${CORE_LIST[@]}"; do
    l=$(lg_cores_for "$c")
    echo "  C=$c: kvserver on $(server_cpus "$c" | tr ' ' ','), loadgen $l lcore(s) on $(loadgen_cpus "$c" "$l" | tr ' ' ','), spare ${CPUS[*]:0:$SPARE_CORES}"
  done
  [ -s "$NOTES" ] && cat "$NOTES"
  rm -rf "$OUT"
  exit 0
fi

# --- clean-up, always (tools/lib/farmem.sh's fm_cleanup stops every process, then these) ------
huge_orig=""
HP=/sys/kernel/mm/hugepages/hugepages-2048kB
restore_huge() { [ -z "$huge_orig" ] || timeout 30 sh -c "echo $huge_orig >$HP/nr_hugepages" 2>/dev/null || true; }
FM_AT_EXIT+=(restore_huge 'write_summary 2>/dev/null' 'log "done in $((SECONDS - T0)) s: $SUMMARY"')
fm_workdir scaling
trap 'note "interrupted"; exit 130' INT TERM

# --- machine record ---------------------------------------------------------------------------
{
  echo "nproc: $(nproc)   cpus used (order $CPU_ORDER): ${CPUS[*]}"
  echo "programs: $FM_KVSERVER $FM_MEMNODE $FM_LOADGEN; LIB=${LIB:-system}; EAL -d: ${EAL_D_TEXT:-none}"
  echo "loadgen --queues: $HAS_QUEUES"
  [ -f "$BUNDLE/MANIFEST" ] && [ -n "$LIB" ] && { echo "--- $BUNDLE/MANIFEST"; head -12 "$BUNDLE/MANIFEST"; }
  fm_machine_info long
} >"$OUT/machine.txt" 2>&1

# --- hugepages ---------------------------------------------------------------------------------
HUGE=off
cmax=${CORE_LIST[-1]}; for c in "${CORE_LIST[@]}"; do [ "$c" -gt "$cmax" ] && cmax=$c; done
eal_mb() { echo $((256 + 32 * $1)); }       # EAL memory for C queue pairs
mbufs() { local m=$((8192 * $1 - 1)); [ "$m" -lt 16383 ] && m=16383; echo "$m"; }
need_pages=$(( ($(eal_mb "$cmax") * 2) / 2 + 128 + 16 ))  # kvserver + loadgen + memnode pool
free_pages() { local f r; f=$(cat $HP/free_hugepages 2>/dev/null || echo 0); r=$(cat $HP/resv_hugepages 2>/dev/null || echo 0); echo $((f - r)); }
if [ -d "$HP" ]; then
  if [ "$HUGEPAGES" -gt 0 ] && [ "$(free_pages)" -lt "$need_pages" ]; then
    cur=$(cat $HP/nr_hugepages)
    if [ "$cur" -lt "$HUGEPAGES" ] && timeout 30 sh -c "echo $HUGEPAGES >$HP/nr_hugepages" 2>/dev/null; then
      huge_orig=$cur
      log "hugepages: nr_hugepages $cur -> $(cat $HP/nr_hugepages) (restored at the end)"
    fi
  fi
  [ "$(free_pages)" -ge "$need_pages" ] && HUGE=auto
fi
[ "$HUGE" = off ] && note "hugepages: $(free_pages) free 2 MiB pages < $need_pages needed: every program runs --no-huge"
log "hugepages: $HUGE ($(free_pages) free, $need_pages needed at C=$cmax)"
FM_HUGE=$HUGE
FM_LOG_LEVEL=info

# --- memnode -----------------------------------------------------------------------------------
start_memnode() {
  local pin=()
  [ "$SPARE_CORES" -gt 0 ] && command -v taskset >/dev/null && pin=(taskset -c "${CPUS[0]}")
  # The memnode lives for the whole run; its hard bound is the budget plus margin.
  FM_MEMNODE_LOG=$OUT/logs/memnode.log fm_start_memnode 256 \
    timeout -s TERM -k 5 $((BUDGET_S + 60)) ${pin[@]+"${pin[@]}"}
}

# --- one mode at one core count --------------------------------------------------------------
start_server() {  # C mode name max_s: kvserver on CPUs 1..C in MODE (fm_mode_toml)
  local c=$1 mode=$2 name=$3 max_s=$4 kpid
  EXP_LCORES=$(server_cpus "$c") EXP_EAL_MB=$(eal_mb "$c") EXP_MBUFS=$(mbufs "$c") \
    FM_SERVER_LOG=$OUT/logs/$name.kvserver.log \
    fm_start_server "$name" "$(fm_mode_toml "$mode")" timeout -s INT -k 5 "$max_s" || return 1
  cp "$FM_WORK/$name.toml" "$OUT/logs/$name.toml"
  # Which shared objects it really mapped (bundle or system), once per run.
  if [ ! -f "$OUT/logs/kvserver-maps.txt" ]; then
    kpid=$(fm_children "$FM_SERVER_PID" | awk '{print $1}')
    [ -n "$kpid" ] && grep -o '/[^ ]*\.so[^ ]*' "/proc/$kpid/maps" 2>/dev/null | sort -u >"$OUT/logs/kvserver-maps.txt"
  fi
  return 0
}

# loadgen C L name rates_csv preload(1/0) npoints: appends to raw/$name.csv; bounded by time left.
run_loadgen() {
  local c=$1 l=$2 name=$3 rates=$4 preload=$5 npts=$6 est bound rc=0 args
  mapfile -t args < <(EXP_LOADGEN_LCORES=$(loadgen_cpus "$c" "$l") EXP_EAL_MB=$(eal_mb "$c") \
    EXP_MBUFS=$(mbufs "$c") fm_loadgen_args)
  args+=(--keys "$KEYS" --value-size "$VALUE_SIZE" --rate "$rates" --duration "$DURATION"
    --warmup "$WARMUP" --pause "$PAUSE" --retries "$RETRIES" --min-adherence "$MIN_ADHERENCE" --stop-p99-us "$STOP_P99_US"
    --label "$name" --csv "$OUT/raw/$name.csv" --progress 0 --quiet)
  [ "$HAS_QUEUES" = 1 ] && args+=(--queues "$c")
  [ "$preload" = 0 ] && args+=(--no-preload)
  # start + preload + every point (with its retries) + slack
  est=$(ceil_s "$(awk -v n="$npts" -v w="$WARMUP" -v d="$DURATION" -v p="$PAUSE" -v r="$RETRIES" \
    -v k="$KEYS" -v c="$c" 'BEGIN { print 15 + k / (20000 * c) + n * (w + d + p + 0.3) * (1 + r) }')")
  bound=$(min "$est" $(($(left) - 12)))
  if [ "$bound" -lt 5 ]; then note "budget: no time for loadgen $name"; return 3; fi
  rm -f "$OUT/raw/$name.csv"
  echo "+ loadgen ${args[*]}" >"$OUT/logs/$name.loadgen.log"
  fm_fg timeout -s INT -k 5 "$bound" ${FM_NICE[@]+"${FM_NICE[@]}"} ${FM_ENV[@]+"${FM_ENV[@]}"} \
    "$FM_LOADGEN" "${args[@]}" >>"$OUT/logs/$name.loadgen.log" 2>&1 || rc=$?
  # 3 (timeouts past saturation) and 4 (a point INVALID) are in the rows and the summary.
  case $rc in
    0|3|4) ;;
    *) note "$(fm_loadgen_status "loadgen $name" "$rc" sweep "$OUT/logs/$name.loadgen.log" 2>&1)" ;;
  esac
  return 0
}

# CSV-aware column extraction of loadgen rows: offered achieved p50 p99 p999 valid (space-separated).
rows_of() {
  [ -s "$1" ] || return 0
  awk '
    function split_csv(line, out,   n, i, ch, f, q) {
      n = 0; f = ""; q = 0
      for (i = 1; i <= length(line); i++) {
        ch = substr(line, i, 1)
        if (q) { if (ch == "\"") { if (substr(line, i + 1, 1) == "\"") { f = f "\""; i++ } else q = 0 } else f = f ch }
        else if (ch == "\"") q = 1
        else if (ch == ",") { out[++n] = f; f = "" }
        else f = f ch
      }
      out[++n] = f
      return n
    }
    NR == 1 { n = split_csv($0, h); for (i = 1; i <= n; i++) col[h[i]] = i; next }
    { split_csv($0, v)
      print v[col["offered_rps"]], v[col["all_achieved_rps"]], v[col["all_p50_us"]], \
            v[col["all_p99_us"]], v[col["all_p999_us"]], v[col["valid"]] }' "$1"
}
ok_p99() { awk -v p="$1" -v b="$P99_BOUND_US" 'BEGIN { exit !(p !~ /inf|nan/ && p + 0 <= b) }'; }

append_csv() {  # C mode raw.csv
  rows_of "$3" | while read -r off ach p50 p99 p999 valid; do
    echo "$MACHINE,$1,$2,$off,$ach,$p50,$p99,$p999,$valid" >>"$CSV"
  done
}

# bracket raw.csv...: over the files' rows, sets lo (the highest offered rate of a valid point
# within the bound), hi (the lowest rate above lo whose p99 is over the bound) and last_off (the
# highest rate run). A stall that spoils one low point does not hide the good points above it.
bracket() {
  local off ach p50 p99 p999 valid f rows
  lo=""; hi=""; last_off=""
  rows=$(for f in "$@"; do rows_of "$f"; done | sort -g -k1,1)
  while read -r off ach p50 p99 p999 valid; do
    [ -n "$off" ] || continue
    last_off=$off
    if [ "$valid" = 1 ] && ok_p99 "$p99"; then lo=$off; hi=""
    elif ! ok_p99 "$p99" && [ -z "$hi" ]; then hi=$off; fi
  done <<<"$rows"
}

declare -A prev_peak_pc=()  # mode -> peak per core at the previous C (to start the next sweep)
run_combo() {  # C mode
  local c=$1 mode=$2 l name rates="" r npts=0 start=0 lo="" hi="" last_off="" files=() k
  local off ach p50 p99 p999 valid
  l=$(lg_cores_for "$c")
  name=c$c-$mode
  # Skip rates far below what the previous core count reached per core.
  [ -n "${prev_peak_pc[$mode]:-}" ] && start=$(awk -v p="${prev_peak_pc[$mode]}" 'BEGIN { print int(p / 4) }')
  local all=($RATES_PER_CORE) sel=()
  for r in "${all[@]}"; do [ "$r" -ge "$start" ] && sel+=("$r"); done
  [ "${#sel[@]}" -ge 3 ] || sel=("${all[@]: -3}")
  for r in "${sel[@]}"; do rates+="${rates:+,}$((r * c))"; npts=$((npts + 1)); done

  # Start a run when at least three points fit; the loadgen's bound cuts the rest short.
  local need
  need=$(ceil_s "$(awk -v w="$WARMUP" -v d="$DURATION" -v p="$PAUSE" 'BEGIN { print 12 + 3 * (w + d + p + 0.3) }')")
  if [ "$(left)" -lt "$need" ]; then note "budget: skipped C=$c $mode ($(left) s left, ~$need s needed)"; return; fi
  [ "$mode" = no-fault ] || { kill -0 "${FM_MEMNODE_PID:-}" 2>/dev/null || start_memnode || { note "skipped C=$c $mode: no memnode"; return; }; }
  log "C=$c $mode: kvserver on CPUs $(server_cpus "$c" | tr ' ' ','), loadgen on $(loadgen_cpus "$c" "$l" | tr ' ' ',')$([ "$HAS_QUEUES" = 1 ] && echo " driving $c queue pairs"); rates $rates"
  start_server "$c" "$mode" "$name" $(($(left) + 5)) || return
  sweep() {  # label rates npts preload
    [ "$(left)" -ge "$need" ] && kill -0 "$FM_SERVER_PID" 2>/dev/null || return 1
    run_loadgen "$c" "$l" "$name-$1" "$2" "$4" "$3"
    append_csv "$c" "$mode" "$OUT/raw/$name-$1.csv"
    files+=("$OUT/raw/$name-$1.csv")
  }
  sweep coarse "$rates" "$npts" 1

  # The loadgen ends a sweep after a point over STOP_P99_US. When that point was INVALID (the
  # generator itself stalled) it says nothing about the server: go on from the next rate.
  for k in 1 2; do
    local tail_row
    [ "${#files[@]}" -gt 0 ] || break
    tail_row=$(rows_of "${files[-1]}" | tail -1)
    [ -n "$tail_row" ] || break
    read -r off ach p50 p99 p999 valid <<<"$tail_row"
    awk -v p="$p99" -v s="$STOP_P99_US" 'BEGIN { exit !(p ~ /inf|nan/ || p + 0 > s) }' && [ "$valid" != 1 ] || break
    rates=""; npts=0
    for r in "${sel[@]}"; do
      awk -v a="$((r * c))" -v o="$off" 'BEGIN { exit !(a > o + 0.5) }' && { rates+="${rates:+,}$((r * c))"; npts=$((npts + 1)); }
    done
    [ -n "$rates" ] || break
    log "C=$c $mode: the point at $off was INVALID (loadgen behind) and over $STOP_P99_US us; resuming at $rates"
    sweep "resume$k" "$rates" "$npts" 0 || break
  done
  bracket "${files[@]}"

  # The sweep started above the lowest rate (from the previous core count) and already its
  # first point was over the bound: sweep the lower rates too.
  if [ -z "$lo" ] && [ -n "$last_off" ] && [ "${sel[0]}" -gt "${all[0]}" ]; then
    rates=""; npts=0
    for r in "${all[@]}"; do [ "$r" -lt "${sel[0]}" ] && { rates+="${rates:+,}$((r * c))"; npts=$((npts + 1)); }; done
    log "C=$c $mode: first point over the bound; lower rates $rates"
    sweep low "$rates" "$npts" 0 && bracket "${files[@]}"
  fi
  # Refine between the highest good point and the first bad one above it.
  if [ -n "$lo" ] && [ -n "$hi" ] && [ "$REFINE" -gt 0 ]; then
    rates=$(awk -v lo="$lo" -v hi="$hi" -v n="$REFINE" 'BEGIN { for (i = 1; i <= n; i++) printf "%s%d", (i > 1 ? "," : ""), lo + (hi - lo) * i / (n + 1) }')
    log "C=$c $mode: refining between $lo and $hi: $rates"
    sweep refine "$rates" "$REFINE" 0
  elif [ -z "$lo" ] && [ -n "$last_off" ]; then
    note "C=$c $mode: no valid point with p99 <= $P99_BOUND_US us (from $((sel[0] * c)) req/s)"
  elif [ -z "$hi" ] && [ -n "$lo" ]; then
    note "C=$c $mode: p99 stayed <= $P99_BOUND_US us up to $last_off req/s (not saturated, or points INVALID)"
  fi
  kill -0 "$FM_SERVER_PID" 2>/dev/null || note "C=$c $mode: kvserver exited during the run: $(tail -3 "$OUT/logs/$name.kvserver.log" | tr '\n' ' ')"
  fm_stop_server

  local peak
  peak=$(python3 "$FM_REPORT" scaling --bound-us "$P99_BOUND_US" --peak "$c" "$mode" "$CSV")
  [ "${peak:-0}" -gt 0 ] && prev_peak_pc[$mode]=$((peak / c))
  log "C=$c $mode: peak $peak req/s at p99 <= $P99_BOUND_US us"
  write_summary
}

# --- summary -------------------------------------------------------------------------------------
write_summary() {
  {
    echo "kvserver multi-core scaling on $MACHINE ($NCPU CPUs), $(date -u +%FT%TZ)"
    echo "peak = highest achieved req/s among VALID points with p99 <= $P99_BOUND_US us;"
    echo "GETs of $VALUE_SIZE B over $KEYS keys, far modes $LOCAL_FRACTION local with ${LATENCY_NS} ns fetches;"
    echo "points of $DURATION s after $WARMUP s warm-up, retries $RETRIES, valid = >= $MIN_ADHERENCE% sent on time;"
    echo "idle_backoff $IDLE_BACKOFF; hugepages $HUGE; EAL -d: ${EAL_D_TEXT:-none}; libraries: ${LIB:-system}."
    echo "loadgen lcores: $([ "$HAS_QUEUES" = 1 ] && echo 'ceil(C/3) with --queues C' || echo 'C (one per queue pair)')."
    echo "'>=': no point above the peak crossed the bound (not saturated, or the loadgen fell behind);"
    echo "'-': no valid point within the bound; 'n/a': not run."
    echo
    python3 "$FM_REPORT" scaling --bound-us "$P99_BOUND_US" --modes "$MODES" --cores "${CORE_LIST[*]}" "$CSV"
    echo
    if [ -s "$NOTES" ]; then echo "notes:"; sed 's/^/  /' "$NOTES"; echo; fi
    echo "files: scaling.csv (every point), raw/*.csv (every loadgen column), logs/, machine.txt, progress.log"
  } >"$SUMMARY.tmp" && mv "$SUMMARY.tmp" "$SUMMARY"
}

# --- run -----------------------------------------------------------------------------------------
echo "machine,cores,mode,offered_rps,achieved_rps,p50_us,p99_us,p999_us,valid" >"$CSV"
log "scaling: $MACHINE, $NCPU CPUs (${CPUS[*]}), cores ${CORE_LIST[*]}, modes $MODES, budget ${BUDGET_S} s, out $OUT"
log "programs from $BIN, libraries ${LIB:-system}, EAL -d ${EAL_D_TEXT:-none}, loadgen --queues $HAS_QUEUES"
write_summary
[[ " $MODES " == *" sync "* || " $MODES " == *" async "* ]] && { start_memnode || true; }
for c in "${CORE_LIST[@]}"; do
  for mode in $MODES; do
    run_combo "$c" "$mode"
  done
done
