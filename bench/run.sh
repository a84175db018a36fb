#!/usr/bin/env bash
# bench/run.sh — CPU per request of edge vs. a minimal fasthttp proxy, on loopback.
#
# Rows (each a fresh process, measured one after the other):
#   direct    a 4th origin on 127.0.0.1:19000, no proxy (the limit)
#   refproxy  ../shared/bench/refproxy, a ~40-line fasthttp round-robin proxy (the reference)
#   edge      bin/edge with a generated config: one round_robin pool of the 3 origins,
#             a catch-all proxy route, access log off, admin on 127.0.0.1:19901
# All rows load GET /nocache (1 KiB, Cache-Control: no-store) from ../shared/bench/backend
# origins on 127.0.0.1:19001-19003.
#
# Per row: probe (200 and 1024 bytes), WARM s warm-up, wait for a quiet machine, then
# CONNS keep-alive connections for DUR s with wrk (-t1, if installed) or bench/load.
# "proxy CPU µs/req" = utime+stime of the proxy's process tree (children included,
# from /proc/PID/stat) during the measured window ÷ requests; for "direct" it is the
# origin's own. "peak RSS" = VmHWM of the process. With taskset and ≥ 2 CPUs the
# layout is peers.sh's MODE=sut: load generator alone on CPU0, proxy + origins on CPU1.
#
# Usage:  bench/run.sh                          # ~45 s: direct, refproxy, edge; 10 s each
#         DUR=5 ROWS="direct refproxy" bench/run.sh
#         RUNS=3 bench/run.sh                   # rows interleaved 3×; median ratio at the end
#         RATE=6000 bench/run.sh                # equal offered load for every row (bench/load -rate)
# Knobs [defaults]: DUR [10]  WARM [2]  CONNS [64]  ROWS ["direct refproxy edge"]  RUNS [1]
#         OUT [bench/results]  LOADGEN [auto: wrk if installed, else bench/load]  PIN [auto|off]
#         RATE [0 = closed loop; > 0: fixed total req/s, needs bench/load]
#         EDGE_BIN [build bin/edge]  QUIET_MAX [15 % busy]  QUIET_WAIT [5 s at most]
# Output: a Markdown table on stdout, OUT/run-<timestamp>.md and .csv, and the line
#         "edge CPU/req = X.XX × refproxy" (median over RUNS).
# Every process started here is tracked by PID and stopped by PID on exit.
set -euo pipefail
{ # One brace group: bash parses the whole script before running it, so editing
  # this file during a run cannot break that run.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=bench

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DUR=${DUR:-10}
WARM=${WARM:-2}
CONNS=${CONNS:-64}
ROWS=${ROWS:-"direct refproxy edge"}
RUNS=${RUNS:-1}
OUT=${OUT:-bench/results}
LOADGEN=${LOADGEN:-auto}
PIN=${PIN:-auto}
RATE=${RATE:-0}
EDGE_BIN=${EDGE_BIN:-}
QUIET_MAX=${QUIET_MAX:-15}
QUIET_WAIT=${QUIET_WAIT:-5}
SHARED=$ROOT/../shared/bench
PATH_UNDER_TEST=/nocache
WANT_SIZE=1024

O1=127.0.0.1:19001; O2=127.0.0.1:19002; O3=127.0.0.1:19003; DIRECT=127.0.0.1:19000
L_REF=127.0.0.1:18089; L_EDGE=127.0.0.1:18090; EDGE_ADMIN=127.0.0.1:19901

for r in $ROWS; do
  case $r in direct|refproxy|edge) ;; *) die "unknown row '$r' (want direct, refproxy, edge)" ;; esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
[[ $DUR =~ ^[1-9][0-9]*$ && $WARM =~ ^[0-9]+$ && $CONNS =~ ^[1-9][0-9]*$ && $RATE =~ ^[0-9]+$ ]] ||
  die "DUR and CONNS must be positive integers, WARM and RATE non-negative ones"
require go curl
[[ -d $SHARED/backend && -d $SHARED/refproxy ]] ||
  die "$SHARED/{backend,refproxy} not found (shared/ must be beside the repo)"

# ---------------------------------------------------------------- processes
track_processes edge-bench   # RUNDIR; every process started here is stopped on exit

# ---------------------------------------------------------------- build
BIN=$RUNDIR/bin
mkdir -p "$BIN" "$OUT"
log "building origin, refproxy and bench/load"
go build -C "$SHARED/backend" -o "$BIN/origin" .
go build -C "$SHARED/refproxy" -o "$BIN/refproxy" .
go build -o "$BIN/load" ./bench/load
if [[ " $ROWS " == *" edge "* ]]; then
  build_edge '(run with ROWS="direct refproxy" to skip edge)'
fi

case $LOADGEN in
  auto) if [ "$RATE" = 0 ] && command -v wrk >/dev/null; then LOADGEN=wrk; else LOADGEN=load; fi ;;
  wrk)  command -v wrk >/dev/null || die "LOADGEN=wrk but wrk is not installed (apt-get install wrk)"
        [ "$RATE" = 0 ] || die "RATE needs LOADGEN=load (wrk has no fixed-rate mode)" ;;
  load) ;;
  *) die "LOADGEN must be auto, wrk or load" ;;
esac
write_wrk_reporter "$RUNDIR/report.lua"   # for wrk: the same one-line result as bench/load

# ---------------------------------------------------------------- layout
pin_layout "$PIN" "load generator on CPU0; proxy + origins on CPU1 (MODE=sut)"

run_load() {  # secs url outfile — one result line (requests=... ) lands in outfile
  local rc=0
  if [ "$LOADGEN" = wrk ]; then
    "${LOAD_PIN[@]}" wrk -t1 -c"$CONNS" -d"$1"s --timeout 5s -s "$RUNDIR/report.lua" "$2" >"$3.raw" 2>&1 || rc=$?
  else
    "${LOAD_PIN[@]}" "$BIN/load" -c "$CONNS" -d "$1s" -rate "$RATE" -url "$2" >"$3.raw" 2>&1 || rc=$?
  fi
  grep '^requests=' "$3.raw" >"$3" || { log "load generator failed (rc=$rc):"; cat "$3.raw" >&2; return 1; }
}
field() { grep -o "\\b$2=[0-9.]*" "$1" | head -1 | cut -d= -f2; }

write_edge_config() {
  cat >"$RUNDIR/edge.yaml" <<EOF
# generated by bench/run.sh
listeners:
  - address: "$L_EDGE"
admin:
  address: "$EDGE_ADMIN"
access_log:
  format: "off"
upstreams:
  bench:
    policy: round_robin
    nodes:
      - {name: o1, address: "$O1"}
      - {name: o2, address: "$O2"}
      - {name: o3, address: "$O3"}
routes:
  - name: all
    proxy: bench
EOF
}

start_row() {  # row — starts the process under test; sets SPID and TADDR
  case $1 in
    direct)   TADDR=$DIRECT
              start_bg direct "${SUT_PIN[@]}" "$BIN/origin" -addr "$DIRECT" -name direct ;;
    refproxy) TADDR=$L_REF
              start_bg refproxy "${SUT_PIN[@]}" "$BIN/refproxy" -listen "$L_REF" -backends "$O1,$O2,$O3" ;;
    edge)     TADDR=$L_EDGE
              write_edge_config
              start_bg edge "${SUT_PIN[@]}" "$EDGE_BIN" run -config "$RUNDIR/edge.yaml" ;;
  esac
}

probe() {  # url — "200 1024" within 3 s, else prints what it got and fails
  local got=""
  for _ in $(seq 30); do
    got=$(curl -s -o /dev/null --max-time 2 -w '%{http_code} %{size_download}' "$1" || true)
    [ "$got" = "200 $WANT_SIZE" ] && return 0
    sleep 0.1
  done
  log "probe of $1 returned '$got' (want '200 $WANT_SIZE')"
  return 1
}

# ---------------------------------------------------------------- main
need_free_ports "$DIRECT" "$O1" "$O2" "$O3" "$L_REF" "$L_EDGE" "$EDGE_ADMIN"
start_origins "$O1" "$O2" "$O3"

STAMP=$(date +%Y%m%d-%H%M%S)
CSV=$OUT/run-$STAMP.csv
MD=$OUT/run-$STAMP.md
RAW=$RUNDIR/rows.csv
: >"$RAW"
FAILED=0
log "rows: $ROWS × $RUNS run(s); $LOADGEN -c$CONNS rate=$RATE ${DUR}s after ${WARM}s warm-up; $LAYOUT"

for run in $(seq "$RUNS"); do
  for row in $ROWS; do
    status=ok
    start_row "$row"
    pid=$SPID
    url=http://$TADDR$PATH_UNDER_TEST
    if ! wait_port "$TADDR" "$pid"; then
      status="did not start"
    elif ! probe "$url"; then
      status="probe failed"
    fi
    if [ "$status" != ok ]; then
      log "$row: $status; its log:"; sed 's/^/    /' "$RUNDIR/$row.log" >&2
      stop_pid "$pid"; forget_pid "$pid"
      echo "$run,$row,$PATH_UNDER_TEST,,,,,,,,,,,,$status" >>"$RAW"
      FAILED=1
      continue
    fi
    if [ "$WARM" -gt 0 ]; then
      log "$row: warm-up ${WARM}s"
      run_load "$WARM" "$url" "$RUNDIR/warm.out" || true
    fi
    busy_before=$(wait_quiet)
    o0=$(origins_snapshot "$O1" "$O2" "$O3")
    c0=$(cpu_snapshot); k0=$(tree_ticks "$pid")
    log "$row: measuring ${DUR}s (machine ${busy_before}% busy before)"
    if ! run_load "$DUR" "$url" "$RUNDIR/load.out"; then
      stop_pid "$pid"; forget_pid "$pid"
      echo "$run,$row,$PATH_UNDER_TEST,,,,,,,,,,,,load failed" >>"$RAW"
      FAILED=1
      continue
    fi
    k1=$(tree_ticks "$pid"); c1=$(cpu_snapshot)
    o1=$(origins_snapshot "$O1" "$O2" "$O3")
    rss=$(peak_rss_kib "$pid")
    alive "$pid" || { status="exited during the run"; FAILED=1; }
    stop_pid "$pid"; forget_pid "$pid"

    f=$RUNDIR/load.out
    req=$(field "$f" requests); errs=$(field "$f" errors); non2xx=$(field "$f" non2xx)
    rps=$(field "$f" rps); p50=$(field "$f" p50_us); p99=$(field "$f" p99_us); p999=$(field "$f" p999_us)
    cpu=$(us_per_req $((k1 - k0)) "$req")
    rss_mib=$(kib_to_mib "$rss")
    busy=$(busy_between "$c0" "$c1")
    # requests per origin and new upstream connections during the window (keep-alive check;
    # minus the 3 connections of our own /__stats requests)
    read -r split newconns < <(awk -v a="$o0" -v b="$o1" 'BEGIN { split(a, x, " "); split(b, y, " ")
      printf "%d/%d/%d %d\n", y[1]-x[1], y[3]-x[3], y[5]-x[5], (y[2]-x[2]) + (y[4]-x[4]) + (y[6]-x[6]) - 3 }')
    [ "$row" = direct ] && { split=-; newconns=-; }
    [ "$status" = ok ] && [ "${errs:-0}" != 0 ] && status="errors"
    [ "$status" = ok ] && [ "${non2xx:-0}" != 0 ] && status="non-2xx responses"
    [ "$status" = ok ] && [ "$busy_before" -gt "$QUIET_MAX" ] && status="noisy: ${busy_before}% busy before"
    echo "$run,$row,$PATH_UNDER_TEST,$req,$errs,$non2xx,$rps,$p50,$p99,$p999,$cpu,$rss_mib,$split,$newconns,$status,$busy,$busy_before" >>"$RAW"
    log "$row: $rps req/s p50=${p50}µs p99=${p99}µs cpu=${cpu}µs/req rss=${rss_mib}MiB split=$split newconns=$newconns cpu0/cpu1 busy=$busy% errors=$errs non2xx=$non2xx ($status)"
  done
done

# ---------------------------------------------------------------- report
# CPU/req ratio vs the refproxy row of the same run.
awk -F, -v OFS=, 'BEGIN { print "run,row,path,requests,errors,non2xx,rps,p50_us,p99_us,p999_us,cpu_us_per_req,peak_rss_mib,cpu_vs_refproxy,origin_split,new_upstream_conns,status,cpu0_cpu1_busy_pct,busy_before_pct" }
  { line[NR] = $0; if ($2 == "refproxy" && $11 > 0) ref[$1] = $11 }
  END { for (i = 1; i <= NR; i++) { $0 = line[i]
          ratio = ($11 > 0 && ($1 in ref)) ? sprintf("%.2f", $11 / ref[$1]) : ""
          print $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,ratio,$13,$14,$15,$16,$17 } }' "$RAW" >"$CSV"

{
  echo "### bench/run.sh $STAMP"
  echo
  echo "GET $PATH_UNDER_TEST (1 KiB, no-store) · $LOADGEN, $CONNS keep-alive connections, $([ "$RATE" = 0 ] && echo "closed loop" || echo "$RATE req/s offered"), ${DUR}s after ${WARM}s warm-up, $RUNS run(s) interleaved · $LAYOUT · $(nproc) CPUs, kernel $(uname -r), $(go env GOVERSION)."
  echo "proxy CPU = utime+stime of the process under test ÷ requests (for direct: the origin's own); ratio = CPU/req ÷ refproxy's in the same run."
  echo
  echo "| run | row | req/s | p50 µs | p99 µs | proxy CPU µs/req | peak RSS MiB | CPU/req vs refproxy | errors | origin split | new upstream conns | status |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"
  tail -n +2 "$CSV" | awk -F, '{ e = ($5 == "" ? "" : $5 + $6)
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $7, $8, $9, $11, $12, ($13 == "" ? "-" : $13), e, $14, $15, $16 }'
  echo
  ratios=$(awk -F, 'NR > 1 && $2 == "edge" && $13 != "" { print $13 }' "$CSV" | sort -n)
  if [ -n "$ratios" ]; then
    awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "edge CPU/req = %.2f × refproxy%s\n", m, (NR > 1 ? sprintf(" (median of %d runs, min %.2f, max %.2f)", NR, v[1], v[NR]) : "") }' <<<"$ratios"
  else
    echo "edge CPU/req vs refproxy: not measured (needs rows edge and refproxy)"
  fi
} >"$MD"
echo
cat "$MD"
log "results: $MD and $CSV"
exit "$FAILED"
}
