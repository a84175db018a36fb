#!/usr/bin/env bash
# bench/cache.sh — cache hits: edge vs HAProxy's cache, nginx proxy_cache and Varnish, on
# loopback, through the shared side-by-side harness ../shared/bench/peers.sh.
#
# Rows (each a fresh process, measured one after the other by peers.sh):
#   direct         a 4th origin, no proxy (the limit)
#   haproxy-cache  HAProxy `cache` section (RAM)
#   nginx-cache    nginx proxy_cache on tmpfs + open_file_cache
#   varnish        Varnish, malloc storage
#   edge-cache     bin/edge, bench/conf/edge-cache.yaml.in: one round_robin pool of the three
#                  origins, a catch-all route with `cache: {}`, cache size 256MiB, access log
#                  off, admin on 127.0.0.1:19901
# All rows load GET / (1 KiB, Cache-Control: public, max-age=60) from ../shared/bench/backend
# origins on 127.0.0.1:19001-19003, so after the first request every proxy answers from its
# cache. The peers' configurations are peers.sh's own (../shared/bench/conf).
#
# Before the runs a preflight starts the origins and edge alone, sends GET / twice with
# `curl -sv` and checks: 200 and 1024 bytes both times, a Cache-Status with "hit" on the
# second answer, exactly one origin request for the two. Its headers are printed and kept in
# the report; a failure is reported (and makes the exit status 1) but the runs go on, so the
# table shows what the cache does under load.
#
# Per row (peers.sh): probe (200 + 1024 bytes), WARM s warm-up, wait for a quiet machine,
# `wrk -t1 -cCONNS -dDUR`, then `wrk -t1 -c1 -dLAT_DUR` (unloaded latency), stop by PID.
# "proxy CPU µs/req" = utime+stime of the proxy's process tree during the window ÷ requests
# (for direct: the origin's own). "origin/req" = requests the origins received during the
# window ÷ client requests: ≈ 0 when every request is a cache hit (a stored response that
# expires, max-age=60, costs one request per minute). Default layout is peers.sh MODE=sut:
# wrk alone on CPU0; proxy (1 worker) and the origins on CPU1.
#
# With RUNS > 1 peers.sh runs RUNS times; each run measures every row (direct first, the
# cache rows' order rotated from run to run); the table shows the median of each figure and
# the ratios are the median of the per-run ratios. Other tenants share the machine, and a
# busy machine inflates every proxy's CPU µs/req unevenly, so a row of a run is "quiet" only
# if the machine was < QUIET_MAX % busy just before it and the CPU used by none of wrk,
# proxy and origins ("other") stayed ≤ NOISY_OTHER % during it. The verdicts use the runs
# where both rows compared were quiet (all runs too, shown beside them).
#
# Targets (from the cache issue): edge-cache's CPU µs/req < haproxy-cache's (ratio < 1.00)
# and ≤ half of Varnish's (ratio ≤ 0.50).
#
# Usage:  bench/cache.sh                       # ~2 min: 5 rows, 10 s each
#         RUNS=3 bench/cache.sh                # interleaved 3×, medians
#         DUR=5 LAT_DUR=0 bench/cache.sh       # quick check
#         FIXED_DELAY_MS=10 LAT_DUR=0 bench/cache.sh   # equal offered load (~6.4k req/s)
# Knobs [defaults]: DUR [10]  WARM [3]  CONNS [64]  LAT_DUR [5; 0 = skip]  RUNS [1]
#         ROWS ["direct haproxy-cache nginx-cache varnish edge-cache"]  MODE [sut|pinned|shared]
#         FIXED_DELAY_MS [0]  OUT [bench/results]  EDGE_BIN [build bin/edge]
#         QUIET_MAX [15 % busy]  QUIET_WAIT [30 s at most]  PREFLIGHT [1; 0 = skip]
#         NOISY_OTHER [20: a row whose "other CPU" exceeds this % is not quiet]
#         REPORT_FROM [a cache-*.tsv: print its table and verdicts again, run nothing]
#         INSTALL [0; 1 = apt-get install missing haproxy/nginx/varnish/wrk when root]
# Needs go, curl, taskset, /usr/bin/time, wrk, haproxy, nginx and varnishd
# (apt-get install -y haproxy nginx varnish wrk). peers.sh also checks for caddy, which no
# row here uses: without it a stand-in that only answers `caddy version` is put on its PATH.
# Output: a Markdown table on stdout and in OUT/cache-<timestamp>.md, every run's rows in
# OUT/cache-<timestamp>.tsv.
# Exit status 1 if the preflight fails or a row fails: did not start, failed probe, wrk
# failed, errors, or a cache row with origin/req > 0.01.
# Every process started here is tracked by PID and stopped by PID on exit.
set -euo pipefail
{ # One brace group: bash parses the whole script before running it, so editing
  # this file during a run cannot break that run.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=cache

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DUR=${DUR:-10}
WARM=${WARM:-3}
CONNS=${CONNS:-64}
LAT_DUR=${LAT_DUR:-5}
RUNS=${RUNS:-1}
ROWS=${ROWS:-"direct haproxy-cache nginx-cache varnish edge-cache"}
MODE=${MODE:-sut}
FIXED_DELAY_MS=${FIXED_DELAY_MS:-0}
OUT=${OUT:-bench/results}
EDGE_BIN=${EDGE_BIN:-}
QUIET_MAX=${QUIET_MAX:-15}
QUIET_WAIT=${QUIET_WAIT:-30}
PREFLIGHT=${PREFLIGHT:-1}
REPORT_FROM=${REPORT_FROM:-}
NOISY_OTHER=${NOISY_OTHER:-20}
INSTALL=${INSTALL:-0}
SHARED=$ROOT/../shared/bench
CONF=$ROOT/bench/conf
PATH_UNDER_TEST=/
WANT_SIZE=1024
MAX_ORIGIN_PER_REQ=0.01

# Fixed by peers.sh: origins, the direct row and the listeners of the rows used here.
O1=127.0.0.1:19001; O2=127.0.0.1:19002; O3=127.0.0.1:19003; DIRECT=127.0.0.1:19000
L_HAPROXY_CACHE=127.0.0.1:18082; L_NGINX_CACHE=127.0.0.1:18084; L_VARNISH=127.0.0.1:18086
L_EDGE=127.0.0.1:18090; EDGE_ADMIN=127.0.0.1:19901

for r in $ROWS; do
  case $r in direct|haproxy-cache|nginx-cache|varnish|edge-cache) ;;
    *) die "unknown row '$r' (want direct, haproxy-cache, nginx-cache, varnish, edge-cache)" ;; esac
done
case $MODE in sut|pinned|shared) ;; *) die "MODE must be sut, pinned or shared" ;; esac
[[ $RUNS =~ ^[1-9][0-9]*$ && $DUR =~ ^[1-9][0-9]*$ && $CONNS =~ ^[1-9][0-9]*$ ]] ||
  die "RUNS, DUR and CONNS must be positive integers"
[[ $WARM =~ ^[0-9]+$ && $LAT_DUR =~ ^[0-9]+$ && $FIXED_DELAY_MS =~ ^[0-9]+$ && $NOISY_OTHER =~ ^[0-9]+$ ]] ||
  die "WARM, LAT_DUR, FIXED_DELAY_MS and NOISY_OTHER must be non-negative integers"
[ -x "$SHARED/peers.sh" ] || [ -f "$SHARED/peers.sh" ] ||
  die "$SHARED/peers.sh not found (shared/ must be beside the repo)"

# Optional: install missing peers (never by default, never in CI).
if [ "$INSTALL" = 1 ]; then
  missing=()
  for c in haproxy nginx varnishd wrk; do command -v "$c" >/dev/null || missing+=("${c%d}"); done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "installing ${missing[*]} (INSTALL=1)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2 || die "apt-get install failed"
    else
      die "INSTALL=1 needs root and apt-get"
    fi
  fi
fi
require go curl taskset wrk haproxy nginx varnishd
[ -x /usr/bin/time ] || die "/usr/bin/time is required (apt-get install -y time)"

# ---------------------------------------------------------------- report
# RAW columns: 1 run, 2 target, 3 path, 4 rps, 5 p50, 6 p90, 7 p99, 8 c1 p50, 9 c1 p99,
# 10 ratio vs direct, 11 proxy CPU µs/req, 12 wrk CPU µs/req, 13 busy, 14 origin/req,
# 15 new upstream conns, 16 errors, 17 split, 18 idle before, 19 other CPU, 20 req/s per core,
# 21 status.
AWK_MED='function med(s,   n, a, i, j, t) {
    n = split(s, a, " "); if (n == 0) return ""
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function mm(s,   n, a, i, lo, hi) {   # "min–max" of a list
    n = split(s, a, " "); lo = hi = a[1] + 0
    for (i = 2; i <= n; i++) { if (a[i] + 0 < lo) lo = a[i] + 0; if (a[i] + 0 > hi) hi = a[i] + 0 }
    return sprintf("%.2f–%.2f", lo, hi)
  }'
# A row of a run is "quiet" when its status is plain ok: no probe failure, no errors, cache
# hits, the machine quiet before it and little other CPU during it. With other tenants on
# the machine, the quiet figures are the ones to trust; the table shows both.
#
# edge-cache CPU/req ÷ another row's, per run that measured both: "all-runs-list|quiet-list"
ratios() {  # row
  awk -F'\t' -v peer="$1" '$4 ~ /^[0-9]+$/ { cpu[$1, $2] = $11; q[$1, $2] = ($21 == "ok"); if ($1 > maxr) maxr = $1 }
    END { for (r = 1; r <= maxr; r++) {
            if (cpu[r, "edge-cache"] > 0 && cpu[r, peer] > 0) {
              x = cpu[r, "edge-cache"] / cpu[r, peer]; all = all " " x
              if (q[r, "edge-cache"] && q[r, peer]) quiet = quiet " " x } }
          printf "%s|%s\n", all, quiet }' "$RAW"
}
ratio_line() {  # row [target-text awk-test-on-m]
  local rs
  rs=$(ratios "$1")
  if [ "$rs" = "|" ]; then echo "- edge-cache CPU/req ÷ $1: not measured (needs both rows)"; return; fi
  awk -v rs="$rs" -v peer="$1" -v tgt="${2:-}" "$AWK_MED"'
    function verdict(m) { return (tgt == "" ? "" : sprintf(" — target %s: **%s**", tgt, ('"${3:-1}"') ? "met" : "NOT met")) }
    BEGIN { split(rs, p, "|"); na = split(p[1], a, " "); nq = split(p[2], q, " ")
      if (nq > 0) {
        m = med(p[2])
        printf "- **edge-cache CPU/req = %.3f × %s** (quiet runs: %s)%s", m, peer,
          (nq > 1 ? sprintf("median of %d, range %s", nq, mm(p[2])) : "1 run"), verdict(m)
      } else printf "- edge-cache CPU/req ÷ %s: no run where both rows were quiet", peer
      m = med(p[1])
      printf "; all %d run(s): %.3f×%s%s\n", na, m, (na > 1 ? sprintf(", range %s", mm(p[1])) : ""), (nq > 0 ? "" : verdict(m)) }'
}

table() {
  awk -F'\t' -v rows="$ROWS" "$AWK_MED"'
    function cell(k, m, fmt,   v) { v = med(val[k, m]); return (v == "") ? "-" : sprintf(fmt, v) }
    $4 ~ /^[0-9]+$/ { cpu[$1, $2] = $11; q[$1, $2] = ($21 == "ok") }
    { k = $2; runs[k]++
      if ($4 ~ /^[0-9]+$/) {
        n[k]++
        for (m = 4; m <= 20; m++) if ($m != "-" && $m != "") val[k, m] = val[k, m] " " ($m + 0)
        if ($21 == "ok") { nq[k]++; qcpu[k] = qcpu[k] " " $11 }
        cpus[k] = cpus[k] (cpus[k] == "" ? "" : " / ") $11 ($21 == "ok" ? "" : "*")
        busy[k] = busy[k] (busy[k] == "" ? "" : ", ") $13 " · " $19
        row_run[k] = row_run[k] " " $1
      }
      if ($21 != "ok") st[k] = st[k] (st[k] == "" ? "" : ", ") "run " $1 ": " $21
    }
    END {
      nr = split(rows, R, " ")
      for (j = 1; j <= nr; j++) {
        k = R[j]
        status = sprintf("%d/%d quiet", nq[k], runs[k]) (st[k] == "" ? "" : "; " st[k])
        if (!(k in n)) { printf "| %s | - | - | - | - | - | - | - | - | - | - | - | - | - | - | - | %s |\n", k, status; continue }
        # edge-cache CPU/req ÷ this row, median of per-run ratios: quiet runs [all runs]
        ra = ""; rq = ""; split(row_run[k], rr, " ")
        for (i in rr) { r = rr[i]
          if (cpu[r, "edge-cache"] > 0 && cpu[r, k] > 0) {
            ra = ra " " (cpu[r, "edge-cache"] / cpu[r, k])
            if (q[r, "edge-cache"] && q[r, k]) rq = rq " " (cpu[r, "edge-cache"] / cpu[r, k]) } }
        er = (k == "edge-cache" || ra == "") ? "-" : sprintf("%s [%.2f]", (rq == "" ? "-" : sprintf("%.2f", med(rq))), med(ra))
        c = med(val[k, 11]); cq = (qcpu[k] == "" ? "-" : sprintf("%.1f", med(qcpu[k])))
        if (k == "edge-cache") { cq = "**" cq "**" }
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", \
          (k == "edge-cache" ? "**edge-cache**" : k), cell(k, 4, "%.0f"), cell(k, 10, "%.2f"), cell(k, 5, "%.0f"), cell(k, 7, "%.0f"),
          cell(k, 8, "%.0f"), cell(k, 9, "%.0f"), cq, sprintf("%.1f", c),
          (n[k] > 1 ? cpus[k] : "-"), (c > 0 ? sprintf("%.0f", 1e6 / c) : "-"), er,
          (k == "direct" ? "-" : cell(k, 14, "%.3f")), (k == "direct" ? "-" : cell(k, 15, "%.0f")), cell(k, 16, "%.0f"), busy[k], status
      }
    }' "$RAW"
}

summary() {  # the table and the verdicts, from RAW
  echo "| row | req/s | ratio vs direct | p50 µs | p99 µs | c1 p50 µs | c1 p99 µs | proxy CPU µs/req, quiet runs | proxy CPU µs/req, all runs | CPU µs/req each run | req/s per proxy core | edge-cache ÷ row (CPU/req), quiet [all] | origin/req | new upstream conns | errors | cpu0/cpu1 busy · other | status |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---|"
  table
  echo
  ratio_line haproxy-cache "< 1.00" "m < 1"
  ratio_line varnish "≤ 0.50" "m <= 0.5"
  ratio_line nginx-cache
  awk -F'\t' -v max="$MAX_ORIGIN_PER_REQ" '$2 == "edge-cache" && $4 ~ /^[0-9]+$/ { o = o " " $14 }
    END { if (o == "") { print "- edge-cache origin requests per client request: not measured"; exit }
      n = split(o, a, " "); hi = a[1] + 0; for (i = 2; i <= n; i++) if (a[i] + 0 > hi) hi = a[i] + 0
      printf "- edge-cache origin requests per client request:%s (must be ≈ 0; limit %s): **%s**\n", o, max, (hi <= max ? "ok" : "NOT cache hits") }' "$RAW"
}

if [ -n "$REPORT_FROM" ]; then   # only the table and verdicts of an earlier run's .tsv
  [ -f "$REPORT_FROM" ] || die "REPORT_FROM=$REPORT_FROM not found"
  RAW=$(mktemp); trap 'rm -f "$RAW"' EXIT
  tail -n +2 "$REPORT_FROM" >"$RAW"
  ROWS=$(awk -F'\t' '!($2 in s) { s[$2] = 1; printf "%s ", $2 }' "$RAW")
  RUNS=$(awk -F'\t' '$1 > m { m = $1 } END { print m + 0 }' "$RAW")
  echo "### bench/cache.sh: $REPORT_FROM ($RUNS run(s))"
  echo
  summary
  exit 0
fi

# ---------------------------------------------------------------- processes
track_processes edge-cache-bench   # RUNDIR; every process started here is stopped on exit

# ---------------------------------------------------------------- build and config
BIN=$RUNDIR/bin
mkdir -p "$BIN" "$OUT"
log "building origin"
go build -C "$SHARED/backend" -o "$BIN/origin" .
if [[ " $ROWS " == *" edge-cache "* || $PREFLIGHT = 1 ]]; then
  build_edge '(run with ROWS="direct haproxy-cache nginx-cache varnish" PREFLIGHT=0 to skip edge)'
fi
sed -e "s#@LISTEN@#$L_EDGE#g" -e "s#@ADMIN@#$EDGE_ADMIN#g" \
    -e "s#@O1@#$O1#g" -e "s#@O2@#$O2#g" -e "s#@O3@#$O3#g" "$CONF/edge-cache.yaml.in" >"$RUNDIR/edge.yaml"
if [ -n "$EDGE_BIN" ]; then
  "$EDGE_BIN" check -config "$RUNDIR/edge.yaml" >"$RUNDIR/check.log" 2>&1 ||
    { sed 's/^/    /' "$RUNDIR/check.log" >&2; die "edge check rejected the generated configuration"; }
fi

# peers.sh insists on caddy although no row here runs it.
SHIM_PATH=$PATH
if ! command -v caddy >/dev/null; then
  mkdir -p "$RUNDIR/shim"
  cat >"$RUNDIR/shim/caddy" <<'EOF'
#!/bin/sh
# stand-in written by bench/cache.sh: peers.sh checks for caddy, no cache row runs it
[ "$1" = version ] && { echo "not-installed"; exit 0; }
echo "caddy is not installed (stand-in from bench/cache.sh)" >&2; exit 1
EOF
  chmod +x "$RUNDIR/shim/caddy"
  SHIM_PATH=$RUNDIR/shim:$PATH
fi

pin_layout auto "-"   # for the preflight only (peers.sh pins its own processes); raises ulimit -n

# ---------------------------------------------------------------- preflight
PREFLIGHT_OK=skipped
PREFLIGHT_TXT=""
origin_requests() {  # total requests the three origins served so far
  origins_snapshot "$O1" "$O2" "$O3" | awk '{ t = 0; for (i = 1; i <= NF; i += 2) t += $i; print t }'
}
preflight() {
  local pids=() e r0 r1 i got ok=1 status age
  start_origins "$O1" "$O2" "$O3"; pids+=("${ORIGIN_PIDS[@]}")
  start_bg edge "${SUT_PIN[@]}" "$EDGE_BIN" run -config "$RUNDIR/edge.yaml"; e=$SPID; pids+=("$e")
  if ! wait_port "$L_EDGE" "$e"; then
    log "preflight: edge did not start; its log:"; sed 's/^/    /' "$RUNDIR/edge.log" >&2
    PREFLIGHT_OK=no; PREFLIGHT_TXT="edge did not start"
  else
    r0=$(origin_requests)
    for i in 1 2; do
      got=$(curl -sv --max-time 5 -o "$RUNDIR/pf$i.body" -w '%{http_code} %{size_download}' \
        "http://$L_EDGE$PATH_UNDER_TEST" 2>"$RUNDIR/pf$i.hdr" || true)
      echo "$got" >"$RUNDIR/pf$i.got"
    done
    r1=$(origin_requests)
    # one line per request: status, size, Cache-Status, Age
    for i in 1 2; do
      status=$(grep -i '^< Cache-Status:' "$RUNDIR/pf$i.hdr" | sed 's/^< [^:]*: *//' | tr -d '\r' | paste -sd, - || true)
      age=$(grep -i '^< Age:' "$RUNDIR/pf$i.hdr" | sed 's/^< [^:]*: *//' | tr -d '\r' || true)
      PREFLIGHT_TXT="$PREFLIGHT_TXT${PREFLIGHT_TXT:+; }GET #$i: $(cat "$RUNDIR/pf$i.got"), Cache-Status: ${status:-(none)}, Age: ${age:-(none)}"
    done
    PREFLIGHT_TXT="$PREFLIGHT_TXT; origin requests: $((r1 - r0))"
    [ "$(cat "$RUNDIR/pf1.got")" = "200 $WANT_SIZE" ] || ok=0
    [ "$(cat "$RUNDIR/pf2.got")" = "200 $WANT_SIZE" ] || ok=0
    grep -i '^< Cache-Status:' "$RUNDIR/pf2.hdr" | grep -qi 'hit' || ok=0
    [ $((r1 - r0)) = 1 ] || ok=0
    if [ "$ok" = 1 ]; then
      PREFLIGHT_OK=yes
      log "preflight ok: $PREFLIGHT_TXT"
    else
      PREFLIGHT_OK=no
      log "preflight FAILED: $PREFLIGHT_TXT"
      for i in 1 2; do
        log "curl -sv http://$L_EDGE$PATH_UNDER_TEST (#$i):"
        grep -E '^[<>] ' "$RUNDIR/pf$i.hdr" | sed 's/^/    /' >&2 || true
      done
      log "edge log:"; sed 's/^/    /' "$RUNDIR/edge.log" >&2
    fi
    cp "$RUNDIR/pf1.hdr" "$RUNDIR/preflight-1.txt"; cp "$RUNDIR/pf2.hdr" "$RUNDIR/preflight-2.txt"
  fi
  for i in "${pids[@]}"; do stop_pid "$i"; forget_pid "$i"; done
}

# ---------------------------------------------------------------- main
need_free_ports "$DIRECT" "$O1" "$O2" "$O3" "$L_HAPROXY_CACHE" "$L_NGINX_CACHE" "$L_VARNISH" "$L_EDGE" "$EDGE_ADMIN"
STAMP=$(date +%Y%m%d-%H%M%S)
TSV=$OUT/cache-$STAMP.tsv
MD=$OUT/cache-$STAMP.md
RAW=$RUNDIR/rows.tsv
: >"$RAW"
FAILED=0
VERSIONS="$(go env GOVERSION), haproxy $(haproxy -v | awk 'NR == 1 { print $3 }'), $(nginx -v 2>&1 | sed 's/.*: //; s#/# #')"
VERSIONS="$VERSIONS, $(varnishd -V 2>&1 | grep -o 'varnish-[0-9.]*' | head -1 | tr - ' '), wrk $( { wrk -v 2>&1 || true; } | awk 'NR == 1 { print $2 }')"
[ -n "$EDGE_BIN" ] && VERSIONS="$VERSIONS, edge $("$EDGE_BIN" version 2>/dev/null | head -1 | sed 's/^edge //' || echo '?')"

if [ "$PREFLIGHT" = 1 ]; then
  preflight
  if [ "$PREFLIGHT_OK" != yes ]; then
    FAILED=1
    cp "$RUNDIR/preflight-1.txt" "$OUT/cache-$STAMP.preflight-1.txt" 2>/dev/null || true
    cp "$RUNDIR/preflight-2.txt" "$OUT/cache-$STAMP.preflight-2.txt" 2>/dev/null || true
  fi
fi

read -r -a ROW_LIST <<<"$ROWS"
CACHE_ROWS=()
for r in "${ROW_LIST[@]}"; do [ "$r" = direct ] || CACHE_ROWS+=("$r"); done
EDGE_CMD="$EDGE_BIN run -config $RUNDIR/edge.yaml"
log "rows: $ROWS × $RUNS run(s); MODE=$MODE wrk -c$CONNS ${DUR}s after ${WARM}s warm-up, c1 ${LAT_DUR}s, fixed delay ${FIXED_DELAY_MS}ms"
log "versions: $VERSIONS"

for run in $(seq "$RUNS"); do
  # direct first (peers.sh's ratio vs direct needs it); the cache rows rotate.
  order=()
  [[ " $ROWS " == *" direct "* ]] && order+=(direct)
  n=${#CACHE_ROWS[@]}
  for i in $(seq 0 $((n - 1))); do order+=("${CACHE_ROWS[(i + run - 1) % n]}"); done
  log "run $run/$RUNS: ${order[*]}"
  pdir=$RUNDIR/peers-$run
  mkdir -p "$pdir"
  # peers.sh's stdout (its table) to a file, its progress log shown live.
  PATH=$SHIM_PATH MODE=$MODE DUR=$DUR WARM=$WARM CONNS=$CONNS LAT_DUR=$LAT_DUR BODY=small \
    FIXED_DELAY_MS=$FIXED_DELAY_MS QUIET_MAX=$QUIET_MAX QUIET_WAIT=$QUIET_WAIT \
    TARGETS="${order[*]}" EDGE_CMD="$EDGE_CMD" OUTDIR="$pdir" \
    bash "$SHARED/peers.sh" >"$pdir/stdout" 2>"$pdir/stderr" &
  ppid=$!; PIDS+=("$ppid")
  tail -n +1 --pid="$ppid" -f "$pdir/stderr" >&2 &
  tpid=$!; PIDS+=("$tpid")
  rc=0; wait "$ppid" || rc=$?
  wait "$tpid" 2>/dev/null || true
  forget_pid "$ppid"; forget_pid "$tpid"
  tsv=$(find "$pdir" -maxdepth 1 -name "peers-*.tsv" | head -1)
  if [ "$rc" != 0 ] || [ -z "$tsv" ]; then
    log "run $run: peers.sh failed (rc=$rc)"
    for r in "${order[@]}"; do
      printf '%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\tpeers.sh failed (rc=%s)\n' "$run" "$r" "$PATH_UNDER_TEST" "$rc" >>"$RAW"
    done
    FAILED=1
    continue
  fi
  # One line per row: run, peers.sh's 19 columns, status.
  tail -n +2 "$tsv" | while IFS=$'\t' read -r -a f; do
    row=${f[0]}
    status=ok
    probe=$(grep -o "\] $row: probe of .*" "$pdir/stderr" | sed "s/^\] $row: //" | head -1 || true)
    if ! [[ ${f[2]} =~ ^[0-9]+$ ]]; then status=${f[14]}
    elif [ -n "$probe" ]; then status="probe failed: $probe"
    elif [ "${f[14]}" != 0 ]; then status="errors: ${f[14]}"
    elif [ "$row" != direct ] && awk -v o="${f[12]}" -v m="$MAX_ORIGIN_PER_REQ" 'BEGIN { exit !(o > m) }'; then
      status="origin/req ${f[12]} > $MAX_ORIGIN_PER_REQ: not cache hits"
    elif [ "${f[16]%\%}" -gt "$QUIET_MAX" ] 2>/dev/null; then status="noisy: ${f[16]} busy before"
    elif [ "${f[17]%\%}" -gt "$NOISY_OTHER" ] 2>/dev/null; then status="noisy: other CPU ${f[17]}"
    fi
    printf '%s\t%s\t%s\n' "$run" "$(IFS=$'\t'; echo "${f[*]}")" "$status" >>"$RAW"
  done
  for r in "${order[@]}"; do
    grep -q "^$run	$r	" "$RAW" || printf '%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\tno result\n' "$run" "$r" "$PATH_UNDER_TEST" >>"$RAW"
  done
done
awk -F'\t' '$21 != "ok" && $21 !~ /^noisy/ { bad = 1 } END { exit !bad }' "$RAW" && FAILED=1

{
  printf 'run\ttarget\tpath\trps\tp50_us\tp90_us\tp99_us\tc1_p50_us\tc1_p99_us\tratio_direct\tproxy_cpu_us_per_req\twrk_cpu_us_per_req\tcpu_busy\torigin_per_req\torigin_new_conns\terrors\tbackend_split\tidle_before\tother_cpu\trps_per_proxy_core\tstatus\n'
  cat "$RAW"
} >"$TSV"

{
  echo "### bench/cache.sh $STAMP"
  echo
  echo "Cache hits: GET $PATH_UNDER_TEST (1 KiB, Cache-Control: public, max-age=60) through each proxy's cache in front of 3 origins (../shared/bench/peers.sh, MODE=$MODE) · wrk -t1 -c$CONNS $([ "$FIXED_DELAY_MS" = 0 ] && echo "closed loop" || echo "with ${FIXED_DELAY_MS} ms between requests per connection"), ${DUR}s after ${WARM}s warm-up; c1 = wrk -t1 -c1 -d${LAT_DUR}s · $RUNS run(s)$([ "$RUNS" -gt 1 ] && echo ", every row in every run (cache rows' order rotated); figures are medians, ratios the median of per-run ratios") · $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r) · $VERSIONS."
  echo
  echo "- proxy CPU = utime+stime of the proxy's process tree ÷ requests (direct: the origin's own), median over the quiet runs and over all runs; * marks a run that was not quiet; req/s per proxy core = 1e6 ÷ the all-runs median; edge-cache ÷ row = edge-cache's CPU µs/req ÷ the row's, median of the per-run ratios over the runs where both were quiet [over all runs] (lower is better for edge)."
  echo "- quiet = status ok: the machine was < $QUIET_MAX % busy before the row and other CPU during it ≤ $NOISY_OTHER % (other tenants share this machine); req/s and latency are medians over all runs."
  echo "- origin/req = requests the origins served during the window ÷ client requests (0 = every request a cache hit); new upstream conns = connections the origins accepted in the window; cpu0/cpu1 busy % · other CPU (machine CPU used by none of wrk, proxy, origins)."
  [ "$PREFLIGHT" = 1 ] && echo "- preflight ($([ "$PREFLIGHT_OK" = yes ] && echo ok || echo "**FAILED**"), edge alone, curl -sv twice): $PREFLIGHT_TXT."
  echo
  summary
} >"$MD"
echo
cat "$MD"
log "results: $MD and $TSV"
exit "$FAILED"
}
