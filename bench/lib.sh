# shellcheck shell=bash
# bench/lib.sh — helpers shared by the bench/*.sh harnesses (run, failover, tls, cache, peers).
#
# Sourced, not run:  source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Sourcing only defines functions and HZ (no traps, files or processes), so it is safe
# under `set -euo pipefail`; `source` reads the whole file before running it, so editing
# this file during a run cannot break that run either.
#
# Globals the caller sets:   LOG_TAG (log prefix, default "bench"); ROOT (repo root, the
#                            working directory) for build_edge; BIN (built binaries) and
#                            optionally ORIGIN_BIN / ORIGIN_TAG for start_origins; QUIET_MAX
#                            and QUIET_WAIT for wait_quiet.
# Globals set here:          RUNDIR and PIDS (track_processes), SPID (start_bg),
#                            LOAD_PIN, SUT_PIN and LAYOUT (pin_layout), EDGE_BIN (build_edge),
#                            ORIGIN_PIDS (start_origins), HZ.

# ---------------------------------------------------------------- basics
log() { printf '[%s %s] %s\n' "${LOG_TAG:-bench}" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
require() {  # cmd... — dies with "<cmd> is required" for the first one not installed
  local c
  for c in "$@"; do command -v "$c" >/dev/null || die "$c is required"; done
}
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $(( 10#$t / 1000 )); }

# ---------------------------------------------------------------- processes
# Every long-running process started here is tracked by PID (PIDS) and stopped by PID on exit.
track_processes() {  # tmpdir-prefix — creates RUNDIR; on exit stops every PID in PIDS, removes RUNDIR
  PIDS=()
  RUNDIR=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}
alive() {  # running and not a zombie
  local st
  st=$(awk '{sub(/^.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
descendants() {  # all descendant PIDs of $1
  ps -e -o pid=,ppid= | awk -v r="$1" '{ pp[$1] = $2 } END {
    s[r] = 1; ch = 1
    while (ch) { ch = 0; for (k in pp) if (!(k in s) && (pp[k] in s)) { s[k] = 1; ch = 1 } }
    for (k in s) if (k != r) print k }'
}
stop_pid() {  # TERM, up to 5 s, then KILL; leftover descendants are killed by PID too
  local pid=$1 kids k i
  if ! alive "$pid"; then wait "$pid" 2>/dev/null || true; return 0; fi
  kids=$(descendants "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  for k in $kids; do if alive "$k"; then kill -KILL "$k" 2>/dev/null || true; fi; done
  wait "$pid" 2>/dev/null || true
}
forget_pid() {
  local p keep=()
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local p
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  PIDS=()
  rm -rf "$RUNDIR"
}
start_bg() {  # [-a] name cmd... — output to RUNDIR/name.log (-a: appended to it); the command
              # must exec the real program (taskset does), so that $! is the PID we measure
              # and kill; sets SPID
  local append=0 name
  if [ "$1" = -a ]; then append=1; shift; fi
  name=$1; shift
  if [ "$append" = 1 ]; then "$@" >>"$RUNDIR/$name.log" 2>&1 &
  else "$@" >"$RUNDIR/$name.log" 2>&1 &
  fi
  SPID=$!
  PIDS+=("$SPID")
}
run_waited() {  # name cmd... — start_bg, then wait for it (a tracked foreground run: stopped
                # by PID if this script is interrupted); returns its exit status
  local rc=0
  start_bg "$@"
  wait "$SPID" || rc=$?
  forget_pid "$SPID"
  return "$rc"
}
result_field() {  # file key — the value of key=value in a load generator's result line ("" if absent)
  { grep -o "\\b$2=[^ ]*" "$1" 2>/dev/null || true; } | head -1 | cut -d= -f2
}
port_open() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
need_free_ports() {  # host:port... — dies if one already accepts connections
  local a
  for a in "$@"; do
    if port_open "$a"; then die "$a is already in use (a leftover run?)"; fi
  done
}
wait_port() {  # host:port pid [poll s, 0.1] — until it accepts connections (10 s), while pid lives
  local step=${3:-0.1} deadline=$(( $(now_ms) + 10000 ))
  while [ "$(now_ms)" -lt "$deadline" ]; do
    port_open "$1" && return 0
    alive "$2" || return 1
    sleep "$step"
  done
  return 1
}

# ---------------------------------------------------------------- build and layout
build_edge() {  # hint [go build flags...] — unless EDGE_BIN is set: build bin/edge; sets
                # EDGE_BIN. A non-empty hint is appended to the error messages (what to run instead).
  local hint=${1:+ $1}
  shift $(( $# > 0 ))
  if [ -n "${EDGE_BIN:-}" ]; then
    [ -x "$EDGE_BIN" ] || die "EDGE_BIN=$EDGE_BIN is not executable"
    return 0
  fi
  EDGE_BIN=$ROOT/bin/edge
  # `make build` when there is such a target and we are not already inside make
  # (a Makefile target that runs these scripts must not recurse into make again).
  if [ -z "${MAKELEVEL:-}" ] && [ -f Makefile ] && grep -q '^build:' Makefile; then
    log "building bin/edge (make build)"
    make --no-print-directory build >&2 || die "make build failed$hint"
  else
    log "building bin/edge (go build)"
    go build "$@" -o bin/edge ./cmd/edge || die "go build ./cmd/edge failed$hint"
  fi
  [ -x "$EDGE_BIN" ] || die "bin/edge was not built"
}
# shellcheck disable=SC2034  # LOAD_PIN, SUT_PIN and LAYOUT are for the sourcing script
pin_layout() {  # PIN layout-text — unless PIN=off, with taskset and ≥ 2 CPUs: LOAD_PIN on CPU0,
                # SUT_PIN (system under test) on CPU1 and LAYOUT=layout-text, else "no pinning";
                # also raises the open-files limit to the hard limit
  LOAD_PIN=(); SUT_PIN=(); LAYOUT="no pinning"
  if [ "$1" != off ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    LOAD_PIN=(taskset -c 0); SUT_PIN=(taskset -c 1)
    LAYOUT=$2
  fi
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}
write_wrk_reporter() {  # file — a wrk script that prints bench/load's one-line result format
                        # (wrk counts status ≥ 400 as non2xx)
  cat >"$1" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("requests=%d errors=%d non2xx=%d rps=%.0f p50_us=%.0f p99_us=%.0f p999_us=%.0f\n",
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
EOF
}

# ---------------------------------------------------------------- origins (../shared/bench/backend)
start_origins() {  # host:port... — origins o1, o2, ... (ORIGIN_BIN [BIN/origin], SUT_PIN), each
                   # waited for, logs RUNDIR/<ORIGIN_TAG [origin]>N.log; sets ORIGIN_PIDS
  local a i=0 bin=${ORIGIN_BIN:-$BIN/origin} tag=${ORIGIN_TAG:-origin}
  ORIGIN_PIDS=()
  for a in "$@"; do
    i=$((i + 1))
    start_bg "$tag$i" "${SUT_PIN[@]}" "$bin" -addr "$a" -name "o$i"
    ORIGIN_PIDS+=("$SPID")
    wait_port "$a" "$SPID" || { cat "$RUNDIR/$tag$i.log" >&2; die "origin $a did not start"; }
  done
}
origin_stats() {  # host:port — "requests newconns" of one origin (its /__stats is not counted)
  curl -s --max-time 2 "http://$1/__stats" || echo "0 0"
}
origins_snapshot() {  # host:port... — "r1 c1 r2 c2 ..."
  local a out=""
  for a in "$@"; do out="$out $(origin_stats "$a")"; done
  printf '%s\n' "${out# }"
}

# ---------------------------------------------------------------- measurement
HZ=$(getconf CLK_TCK)
tree_ticks() {  # utime+stime+cutime+cstime of $1 and its live descendants, in clock ticks
  local t=0 p v
  for p in "$1" $(descendants "$1"); do
    v=$(awk '{sub(/^.*\) /, ""); print $12 + $13 + $14 + $15}' "/proc/$p/stat" 2>/dev/null) || continue
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
peak_rss_kib() {  # pid [tree] — VmHWM of the process; with "tree": summed over it and its
                  # descendants (nginx: master + worker)
  local t=0 p v pids=$1
  [ "${2:-}" = tree ] && pids="$1 $(descendants "$1")"
  for p in $pids; do
    v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
us_per_req() {  # ticks requests — CPU µs per request, "%.1f" (0 without requests)
  awk -v d="$1" -v hz="$HZ" -v n="$2" 'BEGIN { printf "%.1f", (n > 0 ? d / hz * 1e6 / n : 0) }'
}
kib_to_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
cpu_snapshot() {  # "busy total" per CPU from /proc/stat
  awk '/^cpu[0-9]+ / { t = $2+$3+$4+$5+$6+$7+$8+$9; printf "%d %d ", t - $5 - $6, t } END { print "" }' /proc/stat
}
busy_between() {  # per-CPU busy % between two snapshots, "a/b"; with "all": the machine's
  awk -v a="$1" -v b="$2" -v all="${3:-}" 'BEGIN { n = split(a, x, " "); split(b, y, " "); out = ""; db = 0; dt = 0
    for (i = 1; i < n; i += 2) { d = y[i] - x[i]; t = y[i+1] - x[i+1]; db += d; dt += t
      out = out (out == "" ? "" : "/") sprintf("%d", (t > 0 ? 100 * d / t : 0)) }
    if (all != "") printf "%d\n", (dt > 0 ? 100 * db / dt : 0); else print out }'
}
wait_quiet() {  # until the machine is < QUIET_MAX % busy (at most QUIET_WAIT s); prints last busy %
  local i a b pct=100
  for i in $(seq "$QUIET_WAIT"); do
    a=$(cpu_snapshot); sleep 1; b=$(cpu_snapshot)
    pct=$(busy_between "$a" "$b" all)
    [ "$pct" -le "$QUIET_MAX" ] && break
  done
  echo "$pct"
}
