#!/usr/bin/env bash
# bench/tls.sh — TLS termination: edge vs HAProxy and nginx, on loopback.
#
# Rows (each a fresh process per row × scenario):
#   haproxy  HAProxy, bench/conf/haproxy-tls.cfg.in: bind ... ssl crt, alpn http/1.1,
#            roundrobin, http-reuse always, 1 thread, logging off
#   nginx    nginx, bench/conf/nginx-tls.conf.in: listen ssl, 1 worker, upstream keepalive,
#            proxy_http_version 1.1, access log off
#   edge     bin/edge, bench/conf/edge-tls.yaml.in: a tls: true listener, one round_robin pool,
#            access log off, admin off
# All three terminate TLS with the same self-signed ECDSA P-256 certificate for "bench.test"
# (generated into a temp dir with openssl, or bench/tlsload -gencert without it) and proxy
# GET /nocache (1 KiB, no-store) to three ../shared/bench/backend origins on
# 127.0.0.1:19201-19203. Everything else is each product's TLS default (TLS 1.3 is
# negotiated; the key exchange is X25519 in both scenarios).
#
# Scenarios:
#   keepalive  wrk -t1 -cCONNS over TLS: one handshake per connection, then requests
#              (the cost of TLS record encryption + proxying).
#   full       bench/tlsload -cCONNS: per request a new TCP connection, a FULL handshake
#              (no session cache, no tickets), one GET with Connection: close, close.
#              Not wrk -H 'Connection: close': wrk does reconnect, but resumes the TLS
#              session on every reconnect (it SSL_clear()s and reuses its SSL object),
#              which measured ~99.8 % resumed handshakes. req/s there = handshakes/s;
#              p50/p99 = connect() to last body byte. The client's own handshake costs
#              about as much CPU as the server's, so with one load CPU a fast proxy can be
#              client-bound here (cpu0 ≈ 90-100 % busy): compare CPU µs/handshake then.
#   resumed    (not in the default set) tlsload -resume: new connection per request, TLS
#              session resumed (what wrk -H 'Connection: close' measures).
#
# Per row × scenario: start the proxy, probe it with curl (certificate verified against the
# generated one, 200 and 1024 bytes), WARM s warm-up, wait for a quiet machine, then DUR s
# of load. "proxy CPU µs/req" = utime+stime of the proxy's process tree (nginx: master +
# worker) from /proc/PID/stat during the window ÷ requests (full: ÷ handshakes).
# "peak RSS" = VmHWM summed over the process tree. "conns/req" = new TCP connections
# accepted on the machine during the window (kernel Tcp PassiveOpens) minus the origins'
# new connections, ÷ requests: ≈ 0 with keep-alive, 1.00 for one handshake per request.
# With taskset and ≥ 2 CPUs the layout is peers.sh's MODE=sut: load generator alone on
# CPU0, proxy + origins on CPU1. Ratios are to HAProxy's figure in the same run and
# scenario; with RUNS > 1 the rows are interleaved and the table shows the median of each
# figure and the median of the per-run ratios.
#
# Usage:  bench/tls.sh                       # ~1.5 min: 3 rows × 2 scenarios, 10 s each
#         RUNS=3 DUR=5 bench/tls.sh          # interleaved 3× (row order rotated), medians
#         ROWS="haproxy edge" SCENARIOS="full" bench/tls.sh
# Knobs [defaults]: DUR [10]  WARM [2]  CONNS [64]  RUNS [1]  ROWS ["haproxy nginx edge"]
#         SCENARIOS ["keepalive full"; also "resumed"]  OUT [bench/results]  PIN [auto|off]
#         EDGE_BIN [build bin/edge]  QUIET_MAX [15 % busy]  QUIET_WAIT [5 s at most]
#         INSTALL [0; 1 = apt-get install missing haproxy/nginx/wrk when root]
# Needs go and curl; wrk for keepalive; haproxy / nginx for their rows (a missing one is
# skipped with a note: apt-get install -y haproxy nginx wrk).
# Output: a Markdown table on stdout and in OUT/tls-<timestamp>.md, raw rows in .csv.
# Exit status 1 only if a row errors: did not start, failed probe, non-2xx responses,
# failed connections > 1 %, a resumed handshake in "full", or it exited during the run.
# Every process started here is tracked by PID and stopped by PID on exit.
set -euo pipefail
{ # One brace group: bash parses the whole script before running it, so editing
  # this file during a run cannot break that run.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=tls

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DUR=${DUR:-10}
WARM=${WARM:-2}
CONNS=${CONNS:-64}
RUNS=${RUNS:-1}
ROWS=${ROWS:-"haproxy nginx edge"}
SCENARIOS=${SCENARIOS:-"keepalive full"}
OUT=${OUT:-bench/results}
PIN=${PIN:-auto}
EDGE_BIN=${EDGE_BIN:-}
QUIET_MAX=${QUIET_MAX:-15}
QUIET_WAIT=${QUIET_WAIT:-5}
INSTALL=${INSTALL:-0}
SHARED=$ROOT/../shared/bench
CONF=$ROOT/bench/conf
PATH_UNDER_TEST=/nocache
WANT_SIZE=1024
NAME=bench.test

O1=127.0.0.1:19201; O2=127.0.0.1:19202; O3=127.0.0.1:19203
L_HAPROXY=127.0.0.1:18441; L_NGINX=127.0.0.1:18442; L_EDGE=127.0.0.1:18443

for r in $ROWS; do
  case $r in haproxy|nginx|edge) ;; *) die "unknown row '$r' (want haproxy, nginx, edge)" ;; esac
done
for s in $SCENARIOS; do
  case $s in keepalive|full|resumed) ;; *) die "unknown scenario '$s' (want keepalive, full, resumed)" ;; esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ && $DUR =~ ^[1-9][0-9]*$ && $CONNS =~ ^[1-9][0-9]*$ && $WARM =~ ^[0-9]+$ ]] ||
  die "RUNS, DUR and CONNS must be positive integers, WARM a non-negative one"
require go curl
[ -d "$SHARED/backend" ] || die "$SHARED/backend not found (shared/ must be beside the repo)"

# Optional: install missing peers (never by default).
if [ "$INSTALL" = 1 ]; then
  missing=()
  for c in haproxy nginx wrk; do command -v "$c" >/dev/null || missing+=("$c"); done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "installing ${missing[*]} (INSTALL=1)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2 ||
        log "apt-get install failed; the missing rows will be skipped"
    else
      log "INSTALL=1 needs root and apt-get; the missing rows will be skipped"
    fi
  fi
fi

# ---------------------------------------------------------------- processes
track_processes edge-tls-bench   # RUNDIR; every process started here is stopped on exit

run_tracked() {  # outfile cmd... — run in the background, tracked, and wait for it; its rc
  local out=$1 p rc=0; shift
  "$@" >"$out" 2>&1 &
  p=$!
  PIDS+=("$p")
  wait "$p" || rc=$?
  forget_pid "$p"
  return "$rc"
}

# ---------------------------------------------------------------- measurement helpers
passive_opens() {  # the kernel's count of accepted TCP connections (this network namespace)
  awk '/^Tcp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "PassiveOpens") c = i; h = 1 } else print $c }' /proc/net/snmp
}
# CPU ticks of this shell's reaped children (the load generator, below): `times` must run in
# the main shell (a $(...) subshell starts with zero child usage), so it writes to a file.
children_ticks() {  # file written by `times`
  awk -v hz="$HZ" 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
    printf "%d\n", t * hz }' "$1"
}
origin_ticks() { local t=0 p; for p in "${ORIGIN_PIDS[@]}"; do t=$((t + $(tree_ticks "$p"))); done; echo "$t"; }
other_pct() {  # cpu0 cpu1 proxy_ticks origin_ticks load_ticks — machine CPU used by none of them,
               # % of the machine (other tenants, unattributed softirq)
  awk -v a="$1" -v b="$2" -v u=$(($3 + $4 + $5)) 'BEGIN { n = split(a, x, " "); split(b, y, " "); db = 0; dt = 0
    for (i = 1; i < n; i += 2) { db += y[i] - x[i]; dt += y[i+1] - x[i+1] }
    o = db - u; if (o < 0) o = 0; printf "%d\n", (dt > 0 ? 100 * o / dt : 0) }'
}
time_wait() {  # TCP sockets in TIME_WAIT (each full handshake leaves one for 60 s)
  if command -v ss >/dev/null; then ss -Htan state time-wait 2>/dev/null | wc -l; else echo "-"; fi
}
origins_newconns() {  # new connections the three origins accepted so far (incl. this query's)
  origins_snapshot "$O1" "$O2" "$O3" | awk '{ t = 0; for (i = 2; i <= NF; i += 2) t += $i; print t }'
}

# ---------------------------------------------------------------- build
BIN=$RUNDIR/bin
mkdir -p "$BIN" "$OUT" "$RUNDIR/nginx-tmp"
log "building origin and bench/tlsload"
go build -C "$SHARED/backend" -o "$BIN/origin" .
go build -o "$BIN/tlsload" ./bench/tlsload
if [[ " $ROWS " == *" edge "* ]]; then
  build_edge '(run with ROWS="haproxy nginx" to skip edge)' -trimpath
fi

# ---------------------------------------------------------------- certificate
CERT=$RUNDIR/cert.pem; KEY=$RUNDIR/key.pem; PEM=$RUNDIR/bench.pem
if command -v openssl >/dev/null; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=$NAME" -addext "subjectAltName=DNS:$NAME" -keyout "$KEY" -out "$CERT" 2>"$RUNDIR/openssl.log" ||
    { cat "$RUNDIR/openssl.log" >&2; die "openssl could not create the certificate"; }
  CERTGEN="openssl $(openssl version | awk '{print $2}')"
else
  "$BIN/tlsload" -gencert -name "$NAME" -cert "$CERT" -key "$KEY" || die "tlsload -gencert failed"
  CERTGEN="bench/tlsload -gencert"
fi
cat "$CERT" "$KEY" >"$PEM"   # HAProxy wants certificate and key in one file
log "certificate: self-signed ECDSA P-256 for $NAME ($CERTGEN)"

render() {  # template -> file
  local user="# (not root: no user directive)"
  [ "$(id -u)" = 0 ] && user="user root root;"
  sed -e "s#@RUNDIR@#$RUNDIR#g" -e "s#@CERT@#$CERT#g" -e "s#@KEY@#$KEY#g" -e "s#@PEM@#$PEM#g" \
      -e "s#@O1@#$O1#g" -e "s#@O2@#$O2#g" -e "s#@O3@#$O3#g" -e "s#@LISTEN@#$3#g" \
      -e "s%@USER@%$user%g" "$1" >"$2"
}
render "$CONF/haproxy-tls.cfg.in" "$RUNDIR/haproxy.cfg" "$L_HAPROXY"
render "$CONF/nginx-tls.conf.in" "$RUNDIR/nginx.conf" "$L_NGINX"
render "$CONF/edge-tls.yaml.in" "$RUNDIR/edge.yaml" "$L_EDGE"

write_wrk_reporter "$RUNDIR/report.lua"   # for wrk: the same one-line result as bench/load and bench/tlsload

# ---------------------------------------------------------------- layout
pin_layout "$PIN" "load generator on CPU0; proxy + origins on CPU1 (MODE=sut)"

missing_tool() {  # row scenario — prints why it cannot run, or nothing
  case $1 in
    haproxy) command -v haproxy >/dev/null || { echo "skipped: haproxy not installed (apt-get install -y haproxy)"; return; } ;;
    nginx)   command -v nginx >/dev/null || { echo "skipped: nginx not installed (apt-get install -y nginx)"; return; } ;;
  esac
  if [ "$2" = keepalive ] && ! command -v wrk >/dev/null; then echo "skipped: wrk not installed (apt-get install -y wrk)"; fi
}

start_row() {  # row — starts the proxy under test; sets SPID and TADDR
  case $1 in
    haproxy) TADDR=$L_HAPROXY
             start_bg haproxy "${SUT_PIN[@]}" haproxy -db -f "$RUNDIR/haproxy.cfg" ;;
    nginx)   TADDR=$L_NGINX
             start_bg nginx "${SUT_PIN[@]}" nginx -p "$RUNDIR" -c "$RUNDIR/nginx.conf" -e "$RUNDIR/nginx-error.log" ;;
    edge)    TADDR=$L_EDGE
             start_bg edge "${SUT_PIN[@]}" "$EDGE_BIN" run -config "$RUNDIR/edge.yaml" ;;
  esac
}

probe() {  # host:port — "200 1024" over HTTPS with the certificate verified, within 3 s
  local got="" i
  for i in $(seq 30); do
    got=$(curl -s --http1.1 --max-time 2 --cacert "$CERT" --resolve "$NAME:${1##*:}:${1%:*}" \
      -o /dev/null -w '%{http_code} %{size_download}' "https://$NAME:${1##*:}$PATH_UNDER_TEST" || true)
    [ "$got" = "200 $WANT_SIZE" ] && return 0
    sleep 0.1
  done
  log "probe of https://$NAME:${1##*:}$PATH_UNDER_TEST returned '$got' (want '200 $WANT_SIZE')"
  return 1
}
openssl_params() {  # host:port — "version/cipher/group" an OpenSSL client (as wrk) negotiates
  command -v openssl >/dev/null || { echo "-"; return; }
  timeout 5 openssl s_client -connect "$1" -servername "$NAME" -alpn http/1.1 </dev/null 2>/dev/null |
    awk '/^New, / { v = $2; c = $NF; sub(/,$/, "", v) } /^(Server|Peer) Temp Key:/ { g = $4; sub(/,$/, "", g) }
         END { printf "%s/%s/%s\n", (v == "" ? "?" : v), (c == "" ? "?" : c), (g == "" ? "?" : g) }'
}

run_load() {  # scenario secs host:port outfile — one result line (requests=... ) lands in outfile
  local rc=0 lim=$(( $2 + 30 ))
  case $1 in
    keepalive) run_tracked "$4.raw" "${LOAD_PIN[@]}" timeout -k 5 "$lim" wrk -t1 -c"$CONNS" -d"$2"s --timeout 5s \
                 -s "$RUNDIR/report.lua" "https://$3$PATH_UNDER_TEST" || rc=$? ;;
    full)      run_tracked "$4.raw" "${LOAD_PIN[@]}" timeout -k 5 "$lim" "$BIN/tlsload" -addr "$3" -name "$NAME" \
                 -path "$PATH_UNDER_TEST" -c "$CONNS" -d "$2s" -size "$WANT_SIZE" || rc=$? ;;
    resumed)   run_tracked "$4.raw" "${LOAD_PIN[@]}" timeout -k 5 "$lim" "$BIN/tlsload" -addr "$3" -name "$NAME" \
                 -path "$PATH_UNDER_TEST" -c "$CONNS" -d "$2s" -size "$WANT_SIZE" -resume || rc=$? ;;
  esac
  grep '^requests=' "$4.raw" >"$4" || { log "load generator failed (rc=$rc):"; sed 's/^/    /' "$4.raw" >&2; return 1; }
}
field() { { grep -o "\\b$2=[^ ]*" "$1" || true; } | head -1 | cut -d= -f2; }  # "" when absent

# ---------------------------------------------------------------- main
need_free_ports "$O1" "$O2" "$O3" "$L_HAPROXY" "$L_NGINX" "$L_EDGE"
start_origins "$O1" "$O2" "$O3"   # sets ORIGIN_PIDS

STAMP=$(date +%Y%m%d-%H%M%S)
CSV=$OUT/tls-$STAMP.csv
MD=$OUT/tls-$STAMP.md
RAW=$RUNDIR/rows.csv
: >"$RAW"
FAILED=0
VERSIONS="$(go env GOVERSION)"
command -v haproxy >/dev/null && VERSIONS="$VERSIONS, haproxy $(haproxy -v | awk 'NR == 1 { print $3 }')"
command -v nginx >/dev/null && VERSIONS="$VERSIONS, $(nginx -v 2>&1 | sed 's/.*: //; s#/# #')"
command -v openssl >/dev/null && VERSIONS="$VERSIONS, $(openssl version | awk '{ print $1, $2 }')"
command -v wrk >/dev/null && VERSIONS="$VERSIONS, wrk $( { wrk -v 2>&1 || true; } | awk 'NR == 1 { print $2 }')"  # wrk -v exits 1
log "rows: $ROWS × scenarios: $SCENARIOS × $RUNS run(s); -c$CONNS ${DUR}s after ${WARM}s warm-up; $LAYOUT"
log "versions: $VERSIONS"

emit() {  # run row scen status — a row without figures
  echo "$1,$2,$3,,,,,,,,,,,,,,,$4" >>"$RAW"
}

read -r -a ROW_LIST <<<"$ROWS"
for run in $(seq "$RUNS"); do
  # Interleaved runs rotate the row order, so that no row always comes last (the
  # full-handshake rows leave ~10k TIME_WAIT sockets behind for the next one).
  order=()
  for i in "${!ROW_LIST[@]}"; do order+=("${ROW_LIST[(i + run - 1) % ${#ROW_LIST[@]}]}"); done
  for scen in $SCENARIOS; do
    for row in "${order[@]}"; do
      why=$(missing_tool "$row" "$scen")
      if [ -n "$why" ]; then
        log "$row/$scen: $why"; emit "$run" "$row" "$scen" "$why"; continue
      fi
      status=ok
      start_row "$row"
      pid=$SPID
      if ! wait_port "$TADDR" "$pid"; then
        status="did not start"
      elif ! probe "$TADDR"; then
        status="probe failed"
      fi
      if [ "$status" != ok ]; then
        log "$row/$scen: $status; its log:"; sed 's/^/    /' "$RUNDIR/$row.log" >&2
        stop_pid "$pid"; forget_pid "$pid"
        emit "$run" "$row" "$scen" "$status"; FAILED=1; continue
      fi
      if [ "$scen" = keepalive ]; then tlsp=$(openssl_params "$TADDR"); else tlsp=""; fi
      if [ "$WARM" -gt 0 ]; then
        log "$row/$scen: warm-up ${WARM}s"
        run_load "$scen" "$WARM" "$TADDR" "$RUNDIR/warm.out" || true
      fi
      busy_before=$(wait_quiet)
      tw=$(time_wait)
      oc0=$(origins_newconns)
      c0=$(cpu_snapshot); po0=$(passive_opens); k0=$(tree_ticks "$pid"); ok0=$(origin_ticks); times >"$RUNDIR/times0"
      log "$row/$scen: measuring ${DUR}s (machine ${busy_before}% busy before)"
      if ! run_load "$scen" "$DUR" "$TADDR" "$RUNDIR/load.out"; then
        stop_pid "$pid"; forget_pid "$pid"
        emit "$run" "$row" "$scen" "load failed"; FAILED=1; continue
      fi
      times >"$RUNDIR/times1"; ok1=$(origin_ticks); k1=$(tree_ticks "$pid"); po1=$(passive_opens); c1=$(cpu_snapshot)
      oc1=$(origins_newconns)
      rss=$(peak_rss_kib "$pid" tree)
      alive "$pid" || status="exited during the run"
      stop_pid "$pid"; forget_pid "$pid"

      f=$RUNDIR/load.out
      req=$(field "$f" requests); errs=$(field "$f" errors); non2xx=$(field "$f" non2xx)
      rps=$(field "$f" rps); p50=$(field "$f" p50_us); p99=$(field "$f" p99_us)
      resumed=$(field "$f" resumed); badsize=$(field "$f" badsize)
      hs50=$(field "$f" hs_p50_us); hs99=$(field "$f" hs_p99_us)
      [ "$scen" = keepalive ] || tlsp=$(field "$f" tls)
      cpu=$(us_per_req $((k1 - k0)) "$req")
      rss_mib=$(kib_to_mib "$rss")
      busy=$(busy_between "$c0" "$c1")
      lt0=$(children_ticks "$RUNDIR/times0"); lt1=$(children_ticks "$RUNDIR/times1")
      other=$(other_pct "$c0" "$c1" $((k1 - k0)) $((ok1 - ok0)) $((lt1 - lt0)))
      lcpu=$(us_per_req $((lt1 - lt0)) "$req")
      # new upstream connections in the window: the origins' count minus our 3 /__stats queries
      newup=$((oc1 - oc0 - 3))
      cpr=$(awk -v a=$((po1 - po0 - newup)) -v n="$req" 'BEGIN { printf "%.2f", (n > 0 ? a / n : 0) }')
      if [ "$status" = ok ]; then
        if [ "${non2xx:-0}" != 0 ]; then status="non-2xx responses: $non2xx"
        elif awk -v e="${errs:-0}" -v n="${req:-0}" 'BEGIN { exit !(e > 0.01 * (n + e)) }'; then status="failed connections: $errs (> 1%)"
        elif [ "${resumed:-0}" != 0 ] && [ "$scen" = full ]; then status="resumed handshakes: $resumed"
        elif [ "${badsize:-0}" != 0 ]; then status="wrong body size: $badsize"
        elif [ "${errs:-0}" != 0 ]; then status="ok ($errs failed connections)"
        fi
      fi
      case $status in ok*) ;; *) FAILED=1 ;; esac
      [[ $status == ok* ]] && [ "$busy_before" -gt "$QUIET_MAX" ] && status="$status; noisy: ${busy_before}% busy before"
      echo "$run,$row,$scen,$req,$errs,$non2xx,$rps,$p50,$p99,$cpu,$rss_mib,$cpr,$newup,${resumed:--},$tlsp,$busy,$busy_before,$status,${hs50:--},${hs99:--},$tw,$other,$lcpu" >>"$RAW"
      log "$row/$scen: $rps req/s p50=${p50}µs p99=${p99}µs cpu=${cpu}µs/req rss=${rss_mib}MiB conns/req=$cpr newup=$newup resumed=${resumed:--} tls=$tlsp cpu0/cpu1 busy=$busy% other=$other% loadgen=${lcpu}µs/req time_wait_before=$tw errors=$errs non2xx=$non2xx ($status)"
    done
  done
done

# ---------------------------------------------------------------- report
{
  echo "run,row,scenario,requests,errors,non2xx,rps,p50_us,p99_us,cpu_us_per_req,peak_rss_mib,conns_per_req,new_upstream_conns,resumed,tls,cpu0_cpu1_busy_pct,busy_before_pct,status,handshake_p50_us,handshake_p99_us,time_wait_before,other_cpu_pct,loadgen_cpu_us_per_req"
  cat "$RAW"
} >"$CSV"

# Per row × scenario: median of each figure over the runs, and the median of the per-run
# ratios to HAProxy's figure (same run, same scenario).
table() {
  awk -F, -v runs="$RUNS" -v rows="$ROWS" -v scens="$SCENARIOS" '
    function med(s,   n, a, i, j, t) {
      n = split(s, a, " "); if (n == 0) return ""
      for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function cell(k, m, fmt,   v, r) {
      v = med(val[k, m]); if (v == "") return "-"
      v = sprintf(fmt, v); r = med(rat[k, m])
      return (r == "" || substr(k, 1, 7) == "haproxy") ? v : sprintf("%s (%.2f×)", v, r)
    }
    NR == FNR { if ($2 == "haproxy" && $4 != "") for (m = 7; m <= 11; m++) base[$1, $3, m] = $m; next }
    { k = $2 SUBSEP $3
      if ($4 != "") {
        n[k]++
        for (m = 7; m <= 11; m++) {
          val[k, m] = val[k, m] " " $m
          if (base[$1, $3, m] + 0 > 0) rat[k, m] = rat[k, m] " " ($m / base[$1, $3, m])
        }
        cpr[k] = cpr[k] " " $12; up[k] = up[k] " " $13; err[k] = err[k] " " ($5 + $6)
        cpus[k] = cpus[k] (cpus[k] == "" ? "" : " / ") $10; busy[k] = busy[k] (busy[k] == "" ? "" : ", ") $16 " · " $22
        if (!(k in tls) || tls[k] == "") tls[k] = $15
      }
      if (!((k, $18) in seen)) { seen[k, $18] = 1; st[k] = st[k] (st[k] == "" ? "" : "; ") $18 }
    }
    END {
      ns = split(scens, S, " "); nr = split(rows, R, " ")
      for (i = 1; i <= ns; i++) for (j = 1; j <= nr; j++) {
        k = R[j] SUBSEP S[i]
        sc = (S[i] == "keepalive") ? "keep-alive" : (S[i] == "full") ? "full handshake" : "resumed"
        if (!(k in n)) { printf "| %s | %s | - | - | - | - | - | - | - | - | - | - | %s |\n", R[j], sc, st[k]; continue }
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", R[j], sc,
          cell(k, 7, "%.0f"), cell(k, 8, "%.0f"), cell(k, 9, "%.0f"), cell(k, 10, "%.1f"), cell(k, 11, "%.1f"),
          (runs > 1 ? cpus[k] : "-"), sprintf("%.2f", med(cpr[k])), med(up[k]), tls[k], busy[k], med(err[k]) " · " st[k]
      }
    }' "$RAW" "$RAW"
}

{
  echo "### bench/tls.sh $STAMP"
  echo
  echo "TLS termination, GET $PATH_UNDER_TEST (1 KiB, no-store) through each proxy to 3 origins (round robin, upstream keep-alive, plain HTTP) · self-signed ECDSA P-256 certificate · $CONNS connections, ${DUR}s after ${WARM}s warm-up, $RUNS run(s)$([ "$RUNS" -gt 1 ] && echo ", rows interleaved (order rotated each run); figures are medians, ratios the median of per-run ratios") · $LAYOUT · $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r) · $VERSIONS."
  echo
  echo "- keep-alive: \`wrk -t1 -c$CONNS\` over TLS (one handshake per connection). full handshake: \`bench/tlsload -c$CONNS\`, a new TCP connection + full TLS handshake (no resumption) + one GET per request, so req/s = handshakes/s and p50/p99 run from connect() to the last byte (wrk -H 'Connection: close' is not used: it resumes the session on every reconnect). A full handshake costs the client about as much as the server, so when cpu0 nears 90-100 % busy the load generator caps req/s: compare proxy CPU µs/handshake then, not req/s."
  echo "- proxy CPU = utime+stime of the proxy's process tree ÷ requests (÷ handshakes in full); peak RSS = VmHWM summed over the tree; (r×) = ratio to HAProxy's figure in the same run and scenario (for latency, CPU and RSS lower is better)."
  echo "- conns/req = connections accepted on the machine (kernel PassiveOpens) minus the origins', ÷ requests; new upstream conns = connections the origins accepted during the window; tls = negotiated by an OpenSSL client (as wrk) for keep-alive, by tlsload for full; other % = machine CPU used by none of proxy, origins and load generator (other tenants, unattributed softirq); errors = failed connections + non-2xx. The .csv also has the load generator's CPU µs/req, handshake-only latency and the TIME_WAIT count before each window."
  echo
  echo "| row | scenario | req/s | p50 µs | p99 µs | proxy CPU µs/req | peak RSS MiB | CPU µs/req each run | conns/req | new upstream conns | tls | cpu0/cpu1 busy % · other % | errors · status |"
  echo "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---|---|---|"
  table
} >"$MD"
echo
cat "$MD"
log "results: $MD and $CSV"
exit "$FAILED"
}
