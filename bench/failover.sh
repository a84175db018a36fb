#!/usr/bin/env bash
# bench/failover.sh — how edge rides out the crash and return of one origin, on loopback.
#
# Setup: 3 origins (../shared/bench/backend) on 127.0.0.1:19101-19103; bin/edge with a
# generated config: one round_robin pool "bench" of o1-o3 with an active health check
# (GET /health every INTERVAL, timeout min(1s, INTERVAL), FALL/RISE), slow_start, access
# log off, listener 127.0.0.1:18091, admin 127.0.0.1:19911. Passive checks and retries
# keep edge's defaults unless PASSIVE is set.
#
# Timeline (seconds from the start of the load):
#   0           bench/load offers a fixed RATE req/s of GET /nocache for DUR s
#   KILL_AT     origin o2 is killed with SIGKILL (its sockets die as in a crash)
#   RESTORE_AT  o2 is started again on the same port
#   DUR         the load ends
# All along, bench/failover (the monitor) polls GET /pools and every origin's /__stats
# every 100 ms, with timestamps.
#
# Reported: requests; errors (transport errors + non-2xx); time to detect (kill → o2
# "down" in /pools) and time to recover (o2 accepting again → "up"), against the bounds
# FALL×INTERVAL + INTERVAL and RISE×INTERVAL + INTERVAL (measured times carry up to one
# poll period, 0.1 s, of monitor lag); o2's share of the origins' requests in the 5 s
# before the kill and in the 5 s after it was marked up (cut short if the load ends
# first; health checks, ~1 per INTERVAL per origin, are in the counts); o2's state
# timeline; edge's retry and ejection counters.
# Exit status 1 if there was any error, a bound was exceeded, or a transition was not seen.
#
# Usage:  bench/failover.sh                         # ~40 s (plus builds)
#         DUR=15 KILL_AT=5 RESTORE_AT=10 bench/failover.sh
#         PASSIVE=0 bench/failover.sh               # active checks only (no outlier ejection)
# Knobs [defaults]: DUR [30 s of load]  KILL_AT [10]  RESTORE_AT [20]  (whole seconds)
#         RATE [2000 req/s, fixed]  CONNS [64]  INTERVAL [1s]  FALL [3]  RISE [2]
#         SLOW_START [5s]  PASSIVE [edge default; N = passive.consecutive_failures]
#         OUT [bench/results]  EDGE_BIN [build bin/edge]  PIN [auto|off]
#         ACCESS_LOG [off; FILE = edge's JSON access log there, non-2xx answers summarized]
# Output: a Markdown summary on stdout and in OUT/failover-<timestamp>.md, the monitor's
#         samples in OUT/failover-<timestamp>.tsv, edge's log in OUT/failover-<timestamp>.edge.log.
# Every process started here is tracked by PID and stopped by PID on exit.
set -euo pipefail
{ # One brace group: bash parses the whole script before running it, so editing
  # this file during a run cannot break that run.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=failover

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DUR=${DUR:-30}
KILL_AT=${KILL_AT:-10}
RESTORE_AT=${RESTORE_AT:-20}
RATE=${RATE:-2000}
CONNS=${CONNS:-64}
INTERVAL=${INTERVAL:-1s}
FALL=${FALL:-3}
RISE=${RISE:-2}
SLOW_START=${SLOW_START:-5s}
PASSIVE=${PASSIVE:-}
ACCESS_LOG=${ACCESS_LOG:-}
OUT=${OUT:-bench/results}
EDGE_BIN=${EDGE_BIN:-}
PIN=${PIN:-auto}
SHARED=$ROOT/../shared/bench
PATH_UNDER_TEST=/nocache
POLL_MS=100     # monitor period
SHARE_MS=5000   # share windows before the kill and after the recovery

O1=127.0.0.1:19101; O2=127.0.0.1:19102; O3=127.0.0.1:19103
L_EDGE=127.0.0.1:18091; EDGE_ADMIN=127.0.0.1:19911

# "1s", "500ms", "1.5s", "2m", "0" → milliseconds; fails on anything else
dur_ms() {
  awk -v s="$1" 'BEGIN {
    if (s == "0") { print 0; exit 0 }
    if (match(s, /^[0-9]+(\.[0-9]+)?(ms|s|m)$/) == 0) exit 1
    u = s; sub(/^[0-9.]+/, "", u); v = s; sub(/[a-z]+$/, "", v)
    printf "%d\n", v * (u == "ms" ? 1 : (u == "s" ? 1000 : 60000)) }'
}
posint() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

for k in DUR KILL_AT RESTORE_AT RATE CONNS FALL RISE; do
  posint "${!k}" || die "$k must be a positive integer, got '${!k}'"
done
if [ "$KILL_AT" -ge "$RESTORE_AT" ] || [ "$RESTORE_AT" -ge "$DUR" ]; then
  die "need KILL_AT < RESTORE_AT < DUR (got $KILL_AT, $RESTORE_AT, $DUR)"
fi
[ -z "$PASSIVE" ] || [[ $PASSIVE =~ ^[0-9]+$ ]] || die "PASSIVE must be a non-negative integer"
if [ -n "$ACCESS_LOG" ]; then
  : >"$ACCESS_LOG" || die "cannot write ACCESS_LOG=$ACCESS_LOG"
  ACCESS_LOG=$(cd "$(dirname "$ACCESS_LOG")" && pwd)/$(basename "$ACCESS_LOG")
fi
INTERVAL_MS=$(dur_ms "$INTERVAL") || INTERVAL_MS=0
[ "$INTERVAL_MS" -gt 0 ] || die "INTERVAL must be a positive duration such as 1s or 500ms, got '$INTERVAL'"
SLOW_START_MS=$(dur_ms "$SLOW_START") || die "SLOW_START must be a duration such as 5s or 0, got '$SLOW_START'"
[ "$SLOW_START" = 0 ] && SLOW_START=0s
TIMEOUT_MS=$(( INTERVAL_MS < 1000 ? INTERVAL_MS : 1000 ))
DETECT_BOUND_MS=$(( (FALL + 1) * INTERVAL_MS ))
RECOVER_BOUND_MS=$(( (RISE + 1) * INTERVAL_MS ))
require go curl
[ -d "$SHARED/backend" ] || die "$SHARED/backend not found (shared/ must be beside the repo)"
if [ $(( (RESTORE_AT - KILL_AT) * 1000 )) -le "$DETECT_BOUND_MS" ]; then
  log "warning: RESTORE_AT - KILL_AT = $((RESTORE_AT - KILL_AT)) s is not more than the detect bound ($((DETECT_BOUND_MS / 1000)) s); o2 may come back before it is marked down"
fi
if [ $(( (DUR - RESTORE_AT) * 1000 )) -lt $(( RECOVER_BOUND_MS + SHARE_MS )) ]; then
  log "note: DUR - RESTORE_AT = $((DUR - RESTORE_AT)) s may cut the ${SHARE_MS} ms share window after recovery short"
fi

# ---------------------------------------------------------------- processes
track_processes edge-failover   # RUNDIR; every process started here is stopped on exit

sleep_until() {  # epoch ms
  local d
  d=$(( $1 - $(now_ms) ))
  if [ "$d" -gt 0 ]; then sleep "$((d / 1000)).$(printf %03d $((d % 1000)))"; fi
}
show_log() {  # name — the tail of a process's log, indented
  log "$1 log (last 20 lines):"
  tail -n 20 "$RUNDIR/$1.log" 2>/dev/null | sed 's/^/    /' >&2 || true
}

# ---------------------------------------------------------------- build
BIN=$RUNDIR/bin
mkdir -p "$BIN" "$OUT"
log "building origin, bench/load and the monitor (bench/failover)"
go build -C "$SHARED/backend" -o "$BIN/origin" .
go build -o "$BIN/load" ./bench/load
go build -o "$BIN/monitor" ./bench/failover
build_edge ""   # no hint: there is no run without edge

# ---------------------------------------------------------------- layout
pin_layout "$PIN" "load generator + monitor on CPU0; edge + origins on CPU1"

PASSIVE_YAML=""
[ -n "$PASSIVE" ] && PASSIVE_YAML="    passive: {consecutive_failures: $PASSIVE}"
cat >"$RUNDIR/edge.yaml" <<EOF
# generated by bench/failover.sh
listeners:
  - address: "$L_EDGE"
admin:
  address: "$EDGE_ADMIN"
access_log:
$(if [ -n "$ACCESS_LOG" ]; then printf '  format: "json"\n  path: "%s"' "$ACCESS_LOG"; else printf '  format: "off"'; fi)
upstreams:
  bench:
    policy: round_robin
    health_check: {path: /health, interval: $INTERVAL, timeout: ${TIMEOUT_MS}ms, rise: $RISE, fall: $FALL}
    slow_start: $SLOW_START
$PASSIVE_YAML
    nodes:
      - {name: o1, address: "$O1"}
      - {name: o2, address: "$O2"}
      - {name: o3, address: "$O3"}
routes:
  - name: all
    proxy: bench
EOF

# ---------------------------------------------------------------- setup
need_free_ports "$O1" "$O2" "$O3" "$L_EDGE" "$EDGE_ADMIN"
# Ports are polled every 10 ms (wait_port ... 0.01), so that the restart time of o2 is precise.
start_origin() {  # n address — sets SPID; appends to the log (o2's keeps its first life)
  start_bg -a "origin$1" "${SUT_PIN[@]}" "$BIN/origin" -addr "$2" -name "o$1"
  wait_port "$2" "$SPID" 0.01 || { show_log "origin$1"; die "origin o$1 on $2 did not start"; }
}
start_origin 1 "$O1"
start_origin 2 "$O2"; O2_PID=$SPID
start_origin 3 "$O3"

EDGE_START_MS=$(now_ms)
start_bg edge "${SUT_PIN[@]}" "$EDGE_BIN" run -config "$RUNDIR/edge.yaml"
EDGE_PID=$SPID
if ! wait_port "$L_EDGE" "$EDGE_PID" 0.01 || ! wait_port "$EDGE_ADMIN" "$EDGE_PID" 0.01; then
  show_log edge; die "edge did not start (config: $(tr '\n' ' ' <"$RUNDIR/edge.yaml"))"
fi
got=""
for _ in $(seq 30); do
  got=$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "http://$L_EDGE$PATH_UNDER_TEST" || true)
  [ "$got" = 200 ] && break
  sleep 0.1
done
[ "$got" = 200 ] || { show_log edge; die "probe of http://$L_EDGE$PATH_UNDER_TEST returned '$got'"; }

MON=$RUNDIR/monitor.tsv
: >"$MON"
start_bg monitor "${LOAD_PIN[@]}" "$BIN/monitor" -admin "$EDGE_ADMIN" -pool bench \
  -nodes o1,o2,o3 -watch o2 -origins "$O1,$O2,$O3" -every "${POLL_MS}ms" \
  -d "$((DUR + 30))s" -out "$MON"
MON_PID=$SPID
ok=0
for _ in $(seq 50); do  # up to 5 s for the three nodes to show up in /pools
  if [ "$(tail -n 1 "$MON" | cut -f2)" = "up,up,up" ]; then ok=1; break; fi
  alive "$MON_PID" || break
  sleep 0.1
done
if [ "$ok" != 1 ]; then
  show_log monitor; show_log edge
  log "GET /pools: $(curl -s --max-time 2 "http://$EDGE_ADMIN/pools" | head -c 2000)"
  die "the monitor did not see o1,o2,o3 all 'up' in /pools within 5 s (last sample: '$(tail -n 1 "$MON")')"
fi

# Nodes that are new at edge's start may be in slow start too: let that ramp end, so
# that the load meets a pool in its steady state.
if [ "$SLOW_START_MS" -gt 0 ]; then
  log "waiting for the slow start of the new nodes to end (${SLOW_START} after edge's start)"
  sleep_until $((EDGE_START_MS + SLOW_START_MS + 500))
fi

# ---------------------------------------------------------------- run
STAMP=$(date +%Y%m%d-%H%M%S)
log "load: $RATE req/s for ${DUR}s; kill o2 at ${KILL_AT}s, restart at ${RESTORE_AT}s; health check every $INTERVAL fall $FALL rise $RISE, slow_start $SLOW_START; $LAYOUT"
T0=$(now_ms)
start_bg load "${LOAD_PIN[@]}" "$BIN/load" -c "$CONNS" -d "${DUR}s" -rate "$RATE" \
  -url "http://$L_EDGE$PATH_UNDER_TEST"
LOAD_PID=$SPID

sleep_until $((T0 + KILL_AT * 1000))
KILL_MS=$(now_ms)
kill -KILL "$O2_PID" 2>/dev/null || true
wait "$O2_PID" 2>/dev/null || true
forget_pid "$O2_PID"
log "t=${KILL_AT}s: killed o2 (SIGKILL, pid $O2_PID)"

sleep_until $((T0 + RESTORE_AT * 1000))
RESTORE_MS=$(now_ms)
start_origin 2 "$O2"
READY_MS=$(now_ms)
log "t=${RESTORE_AT}s: o2 restarted (pid $SPID), accepting after $((READY_MS - RESTORE_MS)) ms"

load_rc=0
wait "$LOAD_PID" || load_rc=$?
forget_pid "$LOAD_PID"
LOAD_END_MS=$(now_ms)
sleep 0.3   # a few more samples
stop_pid "$MON_PID"; forget_pid "$MON_PID"
EDGE_ALIVE=yes; alive "$EDGE_PID" || EDGE_ALIVE=no
METRICS=$(curl -s --max-time 2 "http://$EDGE_ADMIN/metrics" || true)
log "load finished (rc=$load_rc) at t=$(( (LOAD_END_MS - T0) / 1000 )).$(printf %01d $(( (LOAD_END_MS - T0) % 1000 / 100 )))s"

# ---------------------------------------------------------------- analysis
LOADLINE=$(grep '^requests=' "$RUNDIR/load.log" || true)
LOADERR=$(grep '^load: ' "$RUNDIR/load.log" | head -3 || true)
field() { grep -o "\\b$1=[0-9.]*" <<<"$LOADLINE" | head -1 | cut -d= -f2 || true; }
REQ=$(field requests); TERR=$(field errors); NON2XX=$(field non2xx)
P50=$(field p50_us); P99=$(field p99_us); P999=$(field p999_us)

# The samples: t_ms, states "s1,s2,s3", requests "r1,r2,r3", o2's reason.
# Prints "key value" lines; the o2 state timeline goes to $RUNDIR/timeline.
declare -A R=()
while read -r k v; do R[$k]=$v; done < <(
  awk -F'\t' -v t0="$T0" -v kill="$KILL_MS" -v ready="$READY_MS" \
      -v wend="$(( T0 + DUR * 1000 < LOAD_END_MS ? T0 + DUR * 1000 : LOAD_END_MS ))" \
      -v win="$SHARE_MS" -v tl="$RUNDIR/timeline" '
  function num3(i) { return (r1[i] ~ /^[0-9]+$/ && r2[i] ~ /^[0-9]+$/ && r3[i] ~ /^[0-9]+$/) }
  function share(a, b,   d1, d2, d3) {  # o2 share between samples a and b, "pct ms"
    if (a == 0 || b == 0 || b <= a) return "- 0"
    d1 = r1[b] - r1[a]; d2 = r2[b] - r2[a]; d3 = r3[b] - r3[a]
    if (d1 < 0 || d2 < 0 || d3 < 0 || d1 + d2 + d3 == 0) return "- 0"
    return sprintf("%.1f %d %d", 100 * d2 / (d1 + d2 + d3), t[b] - t[a], d1 + d2 + d3)
  }
  { n++; t[n] = $1; split($2, s, ","); split($3, r, ",")
    s1[n] = s[1]; s2[n] = s[2]; s3[n] = s[3]; r1[n] = r[1]; r2[n] = r[2]; r3[n] = r[3]; why[n] = $4 }
  END {
    prev = ""
    for (i = 1; i <= n; i++) {
      if (s2[i] != prev) {
        printf "t=%+.1fs  %s  %s\n", (t[i] - t0) / 1000, s2[i], (why[i] == "-" ? "" : why[i]) > tl
        prev = s2[i]
      }
      if ((s1[i] != "up" || s3[i] != "up") && t[i] >= t0 && t[i] <= wend) others++
      if (s2[i] == "err") adminerr++
    }
    # time to detect: first "down" after the kill
    for (i = 1; i <= n; i++) if (t[i] > kill && s2[i] == "down") { down = i; break }
    # time to recover: first "up" at or after the restart, once it had been down
    if (down) for (i = down; i <= n; i++) if (t[i] >= ready && s2[i] == "up") { up = i; break }
    # not up again after the kill before it was marked down?
    if (down) for (i = 1; i < down; i++) if (t[i] > kill && s2[i] != "up") flap++
    print "detect_ms", (down ? t[down] - kill : "-")
    print "recover_ms", (up ? t[up] - ready : "-")
    print "down_at", (down ? sprintf("%.1f", (t[down] - t0) / 1000) : "-")
    print "up_at", (up ? sprintf("%.1f", (t[up] - t0) / 1000) : "-")
    # does it stay up until the end of the load?
    if (up) for (i = up + 1; i <= n && t[i] <= wend; i++) if (s2[i] != "up") { redown = i; break }
    print "redown_at", (redown ? sprintf("%.1f", (t[redown] - t0) / 1000) : "-")
    print "redown_why", (redown ? s2[redown] " " why[redown] : "-")
    print "others_not_up", others + 0
    print "admin_errors", adminerr + 0
    # share before the kill: [max(t0, kill - win), kill)
    a = 0; b = 0
    for (i = 1; i <= n; i++) {
      if (t[i] >= kill) break
      if (!num3(i)) continue
      if (a == 0 && t[i] >= t0 && t[i] >= kill - win) a = i
      if (a) b = i
    }
    split(share(a, b), x, " "); print "before_pct", x[1]; print "before_ms", x[2]; print "before_n", x[3] + 0
    # share after the recovery: [up, min(up + win, end of load)]
    a = 0; b = 0
    if (up) for (i = up; i <= n; i++) {
      if (t[i] > t[up] + win || t[i] > wend) break
      if (!num3(i)) continue
      if (a == 0) a = i
      b = i
    }
    split(share(a, b), x, " "); print "after_pct", x[1]; print "after_ms", x[2]; print "after_n", x[3] + 0
  }' "$MON")

# o2 share expected after recovery: slow start ramps a node from 10 % to 100 % of its
# share; averaged over the window, for a ramp of the weight (w/(w+2)) and of the share (w/3).
EXPECT_AFTER=$(awk -v w="${R[after_ms]}" -v s="$SLOW_START_MS" 'BEGIN {
  if (w <= 0) { print "-"; exit }
  steps = 1000; a = 0; b = 0
  for (k = 0; k < steps; k++) { tt = (k + 0.5) * w / steps; f = (s > 0 && tt < s) ? 0.1 + 0.9 * tt / s : 1
    a += f / (f + 2); b += f / 3 }
  lo = 100 * b / steps; hi = 100 * a / steps
  if (hi - lo < 0.5) printf "≈ %.0f %%\n", hi; else printf "≈ %.0f–%.0f %%\n", lo, hi }')

# edge counters (cumulative since edge started; a healthy run has none besides these)
metric() {  # name [label to skip as a regexp] — "labels=value ..." of the non-zero series, or "none"
  awk -v m="$1" -v skip="${2:-^$}" '
    index($0, m "{") == 1 && $NF + 0 > 0 {
      l = $0; sub(/^[^{]*\{/, "", l); sub(/\}[^}]*$/, "", l); gsub(/"/, "", l)
      n = split(l, kv, ","); lab = ""
      for (i = 1; i <= n; i++) if (kv[i] !~ /^(route|pool)=/ && kv[i] !~ skip) lab = lab (lab == "" ? "" : ",") kv[i]
      if (skip != "^$" && l ~ skip) next
      o = o (o == "" ? "" : " ") (lab == "" ? "" : lab ":") $NF + 0 }
    END { print (o == "" ? "none" : o) }' <<<"$METRICS"
}
if [ -n "$METRICS" ]; then
  COUNTERS="retries $(metric edge_upstream_retries_total); retry budget exhausted $(metric edge_upstream_retry_budget_exhausted_total); upstream errors $(metric edge_upstream_errors_total); non-2xx answers $(metric edge_http_requests_total 'code_class=2xx'); passive ejections $(metric edge_health_ejections_total)"
else
  COUNTERS="(GET /metrics failed)"
fi

FAIL=()
ERRS="-"
if [ -z "$LOADLINE" ]; then
  FAIL+=("the load generator printed no result (rc=$load_rc)")
else
  ERRS=$(( TERR + NON2XX ))
  [ "$ERRS" -eq 0 ] || FAIL+=("$ERRS errors ($TERR transport, $NON2XX non-2xx)")
fi
[ "$EDGE_ALIVE" = yes ] || FAIL+=("edge exited during the run")
fmt_s() { if [ "$1" = - ]; then echo "not seen"; else awk -v m="$1" 'BEGIN { printf "%.2f s", m / 1000 }'; fi; }
verdict() {  # measured_ms bound_ms
  if [ "$1" = - ]; then echo "FAIL"; elif [ "$1" -le "$2" ]; then echo ok; else echo "FAIL"; fi
}
DETECT_V=$(verdict "${R[detect_ms]}" "$DETECT_BOUND_MS")
RECOVER_V=$(verdict "${R[recover_ms]}" "$RECOVER_BOUND_MS")
[ "$DETECT_V" = ok ] || FAIL+=("time to detect $(fmt_s "${R[detect_ms]}") (bound $(fmt_s "$DETECT_BOUND_MS"))")
[ "$RECOVER_V" = ok ] || FAIL+=("time to recover $(fmt_s "${R[recover_ms]}") (bound $(fmt_s "$RECOVER_BOUND_MS"))")
[ "${R[redown_at]}" = - ] || FAIL+=("o2 did not stay up after its recovery: ${R[redown_why]} at t=${R[redown_at]}s")

# with ACCESS_LOG: the non-2xx answers, grouped (needs jq)
NON2XX_LOG=""
if [ -n "$ACCESS_LOG" ] && command -v jq >/dev/null; then
  sleep 0.5  # the access log is written in the background
  NON2XX_LOG=$(jq -r --argjson t0 "$T0" 'select(.status < 200 or .status > 299)
      | [(.status | tostring), (.node // "" | tostring), (.retries // 0 | tostring),
         (.retry_reason // "" | tostring), (.error // "" | tostring), (.time | tostring)] | @tsv' \
      "$ACCESS_LOG" 2>/dev/null | awk -F'\t' '{ k = "status=" $1 " node=" $2 " retries=" $3 " retry_reason=" $4 " error=" $5
        if (!(k in n)) { first[k] = $6; order[++m] = k } n[k]++; last[k] = $6 }
      END { for (i = 1; i <= m; i++) { k = order[i]; printf "%d × %s (first %s, last %s)\n", n[k], k, first[k], last[k] } }' || true)
fi
share_txt() {  # pct ms n why-shorter
  if [ "$1" = - ]; then echo "n/a"; else
    awk -v p="$1" -v m="$2" -v n="$3" -v w="$SHARE_MS" -v why="$4" 'BEGIN {
      printf "%.1f %% of %d requests over %.1f s%s", p, n, m / 1000, (m < w - 150 ? " (window cut short by " why ")" : "") }'
  fi
}

MD=$OUT/failover-$STAMP.md
{
  echo "### bench/failover.sh $STAMP"
  echo
  echo "GET $PATH_UNDER_TEST at a fixed $RATE req/s (bench/load, $CONNS keep-alive connections) for ${DUR} s through edge to a round_robin pool of 3 origins · health_check /health every $INTERVAL (timeout ${TIMEOUT_MS}ms, fall $FALL, rise $RISE), slow_start $SLOW_START, passive: ${PASSIVE:-edge default}, retries: edge default · o2 killed (SIGKILL) at ${KILL_AT} s, restarted at ${RESTORE_AT} s · /pools polled every ${POLL_MS} ms · $LAYOUT · $(nproc) CPUs, kernel $(uname -r), $(go env GOVERSION)."
  echo
  echo "| | measured | bound | |"
  echo "|---|---:|---:|---|"
  echo "| requests | ${REQ:--} | | |"
  echo "| errors (transport + non-2xx) | $ERRS (${TERR:--} + ${NON2XX:--}) | 0 | $([ "$ERRS" = 0 ] && echo ok || echo FAIL) |"
  echo "| latency p50 / p99 / p99.9 | ${P50:--} / ${P99:--} / ${P999:--} µs | | |"
  echo "| time to detect (kill → o2 down) | $(fmt_s "${R[detect_ms]}") | ≤ $(fmt_s "$DETECT_BOUND_MS") | $DETECT_V |"
  echo "| time to recover (o2 accepting → up) | $(fmt_s "${R[recover_ms]}") | ≤ $(fmt_s "$RECOVER_BOUND_MS") | $RECOVER_V |"
  echo "| o2 share, ${SHARE_MS} ms before the kill | $(share_txt "${R[before_pct]}" "${R[before_ms]}" "${R[before_n]}" "the start of the load") | | expected ≈ 33 % |"
  echo "| o2 share, ${SHARE_MS} ms after marked up | $(share_txt "${R[after_pct]}" "${R[after_ms]}" "${R[after_n]}" "the end of the load") | | $([ "$EXPECT_AFTER" = - ] || echo "expected $EXPECT_AFTER (slow_start $SLOW_START)") |"
  echo
  echo "Bounds: detect ≤ (FALL + 1) × INTERVAL, recover ≤ (RISE + 1) × INTERVAL; measured times include up to ${POLL_MS} ms of monitor lag. o2 marked down at t=${R[down_at]}s, up at t=${R[up_at]}s."
  echo "edge counters (since its start): $COUNTERS."
  echo "Samples with o1 or o3 not up during the load: ${R[others_not_up]}; failed /pools polls: ${R[admin_errors]}."
  [ -z "$LOADERR" ] || echo "load generator: $(tr '\n' ' ' <<<"$LOADERR")"
  if [ -n "$ACCESS_LOG" ]; then
    echo
    echo "Access log $ACCESS_LOG (load started at $(date -u -d "@$((T0 / 1000))" +%H:%M:%S).$(printf %03d $((T0 % 1000))) UTC), non-2xx answers:"
    echo
    echo '```'
    echo "${NON2XX_LOG:-none (or jq missing)}"
    echo '```'
  fi
  echo
  echo "o2 state in /pools (t from the start of the load; reason as edge reports it):"
  echo
  echo '```'
  cat "$RUNDIR/timeline" 2>/dev/null || echo "(no samples)"
  echo '```'
  echo
  if [ "${#FAIL[@]}" -eq 0 ]; then
    echo "Result: PASS"
  else
    msg=${FAIL[0]}
    for f in "${FAIL[@]:1}"; do msg="$msg; $f"; done
    echo "Result: FAIL — $msg"
  fi
} >"$MD"
cp "$MON" "$OUT/failover-$STAMP.tsv"
cp "$RUNDIR/edge.log" "$OUT/failover-$STAMP.edge.log" 2>/dev/null || true
echo
cat "$MD"
log "results: $MD (monitor samples: failover-$STAMP.tsv, edge's log: failover-$STAMP.edge.log)"
if [ "${#FAIL[@]}" -gt 0 ]; then
  [ "$EDGE_ALIVE" = yes ] || show_log edge
  exit 1
fi
exit 0
}
