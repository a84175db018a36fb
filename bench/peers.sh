#!/usr/bin/env bash
# bench/peers.sh — edge side by side with HAProxy, nginx, Varnish and Caddy, on loopback:
# the same scenarios, equivalent configurations, ONE table (`make bench-peers`).
# (Not ../shared/bench/peers.sh: nothing of it runs here; the configurations are ours,
# bench/conf/peers-* and bench/conf/edge-*.)
#
# Proxies (rows; each a fresh process per scenario, one worker pinned to the measured core,
# logging off, keep-alive to the three nodes, round robin; a missing one is skipped):
#   direct   no proxy: a 4th origin answers itself (the limit)
#   haproxy  conf/peers-haproxy.cfg.in: nbthread 1, http-reuse always; `cache` section for hits
#   nginx    conf/peers-nginx.conf.in: 1 worker, upstream keepalive; proxy_cache on tmpfs for hits
#   varnish  conf/peers-varnish.vcl.in: malloc 256m, thread_pools=1; pass for /nocache, /stream
#   caddy    conf/peers-caddy.Caddyfile.in, peers-caddy-tls.Caddyfile.in (tls),
#            peers-caddy-h2.Caddyfile.in (h2): reverse_proxy, keep-alive pool (no cache: no hit rows)
#   edge     bin/edge: conf/edge-peers.yaml.in, edge-cache.yaml.in (hits), edge-tls.yaml.in (tls
#            and h2: HTTP/2 is on by default on edge's TLS listeners)
#   edge-prev  only with EDGE2_BIN=/path/to/another/edge: the same rows as edge for a second
#            binary (say the previous commit's), to see what a change did; the report adds
#            edge ÷ edge-prev ratios. A binary without HTTP/2 skips the h2 row.
# TLS rows (tls, h2) use conf/haproxy-tls.cfg.in / haproxy-h2.cfg.in and nginx-tls.conf.in /
# nginx-h2.conf.in instead of the peers-* files (same settings plus the TLS listener).
# Origins: three ../shared/bench/backend nodes (fasthttp: / and /big cacheable for 60 s,
# /nocache and /nocache/big no-store) and, for stream-1g, three bench/origin nodes.
#
# Scenarios:
#   pass-1k    GET /nocache, 1 KiB, no-store: every request goes to a node
#   pass-64k   GET /nocache/big, 64 KiB
#   hit-1k     GET /, 1 KiB, max-age=60: cache hits (haproxy, nginx, varnish, edge caches)
#   hit-64k    GET /big, 64 KiB cache hits
#   close      GET /nocache with `Connection: close`: a new client connection per request
#   tls        GET /nocache over TLS keep-alive (conf/*-tls*, as bench/tls.sh; needs wrk):
#              haproxy, nginx, caddy, edge with the same self-signed ECDSA P-256 certificate
#   h2         the same GET /nocache, 1 KiB, over HTTP/2 on TLS (conf/*-h2*, ALPN h2; the probe
#              checks that h2 was negotiated), HTTP/1.1 keep-alive to the nodes; load from
#              h2load (Debian's nghttp2-client; skipped without it): -t1 -cH2_CONNS
#              -mH2_STREAMS -D DUR, by default 16 connections × 10 streams = 160 requests
#              in flight (HTTP/1.1 rows: 64 × 1). Measured here: with -c16 -m10 the proxy's
#              core is at 95-98 % and h2load's at 40-65 % for haproxy, nginx and edge, so
#              the row measures the proxy; -c64 -m1 (HTTP/2 used like HTTP/1.1) cost
#              HAProxy and nginx 1.7-2× the CPU per request (no multiplexing); -c8 -m20 gave
#              the same figures as -c16 -m10; -c32 -m10 (320) outgrows nginx's upstream
#              keep-alive pool. Every peer allows ≥ 100 streams per connection.
#              p50/p99/p99.9 come from h2load's per-request log (its summary has only
#              min/max/mean/sd). No fixed-load figures (h2load paces connections, not
#              requests).
#   stream-1g  one GET of STREAM_BYTES (1 GiB) streamed through the proxy from bench/origin,
#              `curl -o /dev/null`: "req/s" shows MiB/s, p50 the transfer time, CPU µs/req
#              the proxy's CPU for the whole body, peak RSS whether memory stayed flat
#
# Per row: render the configuration, start the proxy, probe it (status 200 and body size;
# for hits twice, so the object is stored), WARM s warm-up, wait for a quiet machine, then
# DUR s at saturation (wrk -t1 -cCONNS, or bench/load without wrk; h2load for h2) and DUR s
# at a fixed offered load of RATE req/s (bench/load -rate, same CONNS; the same rate for
# every proxy; bench/load speaks no TLS, so tls and h2 have no fixed-load figures).
# "CPU µs/req" = utime+stime of the proxy's process tree (nginx/varnish: all processes)
# during the window ÷ requests (direct: the origin's own). "peak RSS" = VmHWM summed over the tree at the end of the row.
# With taskset and ≥ 2 CPUs: load generator alone on CPU0; proxy and origins on CPU1.
# Ratios (n×) are to HAProxy's figure in the same run and scenario; under the table, edge's
# ratios to nginx (and to edge-prev) per scenario. With RUNS > 1 the runs
# are interleaved (every scenario and row per run, row order rotated), figures are medians,
# [min–max] the spread over runs, ratios the median of per-run ratios; the report ends with
# the run-to-run spread. A row that does not start, fails its probe, errs or whose cache does
# not hit is marked failed (exit status 1); the others go on.
#
# Usage:  bench/peers.sh                                  # ≈ 12 min: 41 rows, 5+5 s windows each
#         DUR=3 WARM=1 bench/peers.sh                     # quick check (9-11 min on a busy machine)
#         RUNS=3 bench/peers.sh                           # interleaved 3× (≈ 37 min): medians, spread
#         SCENARIOS="pass-1k hit-1k" PEERS="haproxy edge" bench/peers.sh
#         PUBLISH=1 RUNS=3 bench/peers.sh                 # also copy table + chart to bench/report/
#         SCENARIOS="h2 tls pass-1k" EDGE2_BIN=/tmp/old/bin/edge RUNS=2 PUBLISH=1 PUBLISH_NAME=h2 \
#           bench/peers.sh                                # HTTP/2 rows, and HTTP/1.1 new vs old
# Knobs [defaults]: DUR [5 s per window]  WARM [2 s]  CONNS [64]  RATE [5000 req/s; 0 = skip]
#         RUNS [1]  SCENARIOS ["pass-1k pass-64k hit-1k hit-64k close tls h2 stream-1g"]
#         PEERS ["direct haproxy nginx varnish caddy edge"; + edge-prev with EDGE2_BIN]
#         OUT [bench/results]  STREAM_BYTES [1073741824]
#         LOADGEN [auto: wrk if installed, else bench/load]  H2_CONNS [16]  H2_STREAMS [10]
#         PIN [auto|off]  EDGE_BIN [build bin/edge]  EDGE2_BIN [none: no edge-prev row]
#         QUIET_MAX [15 % busy]  QUIET_WAIT [5 s]
#         PUBLISH [0; 1 = copy the .md/.csv/.svg to bench/report/PUBLISH_NAME.*]
#         PUBLISH_NAME [peers]
# Needs go and curl; peers from Debian: apt-get install -y haproxy nginx varnish caddy wrk
# nghttp2-client (h2load).
# Output: the table on stdout; OUT/peers-<stamp>.md (table), .csv (the table: medians,
#         min, max, ratios), .runs.csv (every row of every run), .svg (CPU µs/req chart,
#         bench/chart).
# Every process started here is tracked by PID and stopped by PID on exit.
set -euo pipefail
{ # One brace group: bash parses the whole script before running it, so editing
  # this file during a run cannot break that run.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=peers

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DUR=${DUR:-5}
WARM=${WARM:-2}
CONNS=${CONNS:-64}
RATE=${RATE:-5000}
RUNS=${RUNS:-1}
ALL_SCENARIOS="pass-1k pass-64k hit-1k hit-64k close tls h2 stream-1g"
ALL_PEERS="direct haproxy nginx varnish caddy edge edge-prev"
SCENARIOS=${SCENARIOS:-$ALL_SCENARIOS}
PEERS=${PEERS:-direct haproxy nginx varnish caddy edge}
EDGE2_BIN=${EDGE2_BIN:-}
H2_CONNS=${H2_CONNS:-16}
H2_STREAMS=${H2_STREAMS:-10}
PUBLISH_NAME=${PUBLISH_NAME:-peers}
OUT=${OUT:-bench/results}
STREAM_BYTES=${STREAM_BYTES:-1073741824}
LOADGEN=${LOADGEN:-auto}
PIN=${PIN:-auto}
EDGE_BIN=${EDGE_BIN:-}
QUIET_MAX=${QUIET_MAX:-15}
QUIET_WAIT=${QUIET_WAIT:-5}
PUBLISH=${PUBLISH:-0}
SHARED=$ROOT/../shared/bench
CONF=$ROOT/bench/conf
REPORT_DIR=$ROOT/bench/report
TLS_NAME=bench.test

# Ports of this harness only (run.sh, cache.sh and tls.sh use others).
O1=127.0.0.1:19401; O2=127.0.0.1:19402; O3=127.0.0.1:19403        # shared/bench/backend
S1=127.0.0.1:19411; S2=127.0.0.1:19412; S3=127.0.0.1:19413        # bench/origin (stream)
DIRECT=127.0.0.1:19400
EDGE_ADMIN=127.0.0.1:19490
declare -A LISTEN=([direct]=$DIRECT [haproxy]=127.0.0.1:18401 [nginx]=127.0.0.1:18402
  [varnish]=127.0.0.1:18403 [caddy]=127.0.0.1:18404 [edge]=127.0.0.1:18405 [edge-prev]=127.0.0.1:18406)

contains() { [[ " $1 " == *" $2 "* ]]; }  # list word
for s in $SCENARIOS; do contains "$ALL_SCENARIOS" "$s" || die "unknown scenario '$s' (want some of: $ALL_SCENARIOS)"; done
for p in $PEERS; do contains "$ALL_PEERS" "$p" || die "unknown peer '$p' (want some of: $ALL_PEERS)"; done
# edge-prev: a second edge binary (EDGE2_BIN), the row right after edge's
if [ -n "$EDGE2_BIN" ]; then
  [ -x "$EDGE2_BIN" ] || die "EDGE2_BIN=$EDGE2_BIN is not executable"
  contains "$PEERS" edge-prev || PEERS="$PEERS edge-prev"
elif contains "$PEERS" edge-prev; then
  die "the edge-prev row needs EDGE2_BIN (a second edge binary)"
fi
[[ $H2_CONNS =~ ^[1-9][0-9]*$ && $H2_STREAMS =~ ^[1-9][0-9]*$ ]] || die "H2_CONNS and H2_STREAMS must be positive integers"
[[ $PUBLISH_NAME =~ ^[A-Za-z0-9_-]+$ ]] || die "PUBLISH_NAME must be a plain file name (letters, digits, - and _)"
[[ $RUNS =~ ^[1-9][0-9]*$ && $DUR =~ ^[1-9][0-9]*$ && $CONNS =~ ^[1-9][0-9]*$ ]] ||
  die "RUNS, DUR and CONNS must be positive integers"
[[ $WARM =~ ^[0-9]+$ && $RATE =~ ^[0-9]+$ && $STREAM_BYTES =~ ^[1-9][0-9]*$ ]] ||
  die "WARM and RATE must be non-negative integers, STREAM_BYTES a positive one"
case $LOADGEN in
  auto) if command -v wrk >/dev/null; then LOADGEN=wrk; else LOADGEN=load; fi ;;
  wrk) command -v wrk >/dev/null || die "LOADGEN=wrk but wrk is not installed (apt-get install -y wrk)" ;;
  load) ;;
  *) die "LOADGEN must be auto, wrk or load" ;;
esac
require go curl
[ -d "$SHARED/backend" ] || die "$SHARED/backend not found (shared/ must be beside the repo)"

# ---------------------------------------------------------------- build
# edge first (before any process exists): a failed build skips the edge rows, nothing else.
EDGE_NOTE=""
if contains "$PEERS" edge; then
  if ( build_edge '(run with PEERS without edge to skip it)' -trimpath ); then
    EDGE_BIN=${EDGE_BIN:-$ROOT/bin/edge}
  else
    EDGE_NOTE="edge did not build"; EDGE_BIN=""
  fi
fi

# RUNDIR on tmpfs when there is one: nginx's cache and temp paths are RAM like the others'.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then TMPDIR=/dev/shm track_processes edge-peers
else track_processes edge-peers; fi
BIN=$RUNDIR/bin
mkdir -p "$BIN" "$OUT" "$RUNDIR/nginx-tmp"
log "building the origins, bench/load, bench/tlsload and bench/chart"
go build -C "$SHARED/backend" -o "$BIN/origin" . || die "building $SHARED/backend failed"
for t in origin load tlsload chart; do
  go build -o "$BIN/bench-$t" "./bench/$t" || die "building bench/$t failed"
done
write_wrk_reporter "$RUNDIR/report.lua"   # wrk prints bench/load's one-line result

# TLS: one self-signed ECDSA P-256 certificate for every TLS row (bench/tlsload writes it).
CERT=$RUNDIR/cert.pem; KEY=$RUNDIR/key.pem; PEM=$RUNDIR/bench.pem
"$BIN/bench-tlsload" -gencert -name "$TLS_NAME" -cert "$CERT" -key "$KEY" || die "tlsload -gencert failed"
cat "$CERT" "$KEY" >"$PEM"   # HAProxy wants both in one file

pin_layout "$PIN" "load generator on CPU0; proxy (1 worker) + origins on CPU1"

# ---------------------------------------------------------------- scenarios and rows
# scenario → "path body-size kind" (kind: pass, hit, close, tls, h2, stream)
scenario_spec() {
  case $1 in
    pass-1k)   echo "/nocache 1024 pass" ;;
    pass-64k)  echo "/nocache/big 65536 pass" ;;
    hit-1k)    echo "/ 1024 hit" ;;
    hit-64k)   echo "/big 65536 hit" ;;
    close)     echo "/nocache 1024 close" ;;
    tls)       echo "/nocache 1024 tls" ;;
    h2)        echo "/nocache 1024 h2" ;;
    stream-1g) echo "/stream?bytes=$STREAM_BYTES $STREAM_BYTES stream" ;;
  esac
}

is_tls() { [ "$1" = tls ] || [ "$1" = h2 ]; }  # kind — the client speaks TLS

skip_reason() {  # peer kind — why this row cannot run here, or nothing
  local bin=$1
  case $1 in
    direct) is_tls "$2" && { echo "the origin speaks no TLS"; return; }; bin="" ;;
    varnish) bin=varnishd; is_tls "$2" && { echo "Varnish terminates no TLS"; return; } ;;
    caddy) [ "$2" = hit ] && { echo "Caddy has no HTTP cache"; return; } ;;
    edge|edge-prev) bin="" ;;
  esac
  if [ -n "$bin" ] && ! command -v "$bin" >/dev/null; then
    echo "$1 not installed (apt-get install -y ${bin%d})"; return
  fi
  if [ "$2" = tls ] && [ "$LOADGEN" != wrk ]; then echo "TLS keep-alive needs wrk (apt-get install -y wrk)"; fi
  if [ "$2" = h2 ] && ! command -v h2load >/dev/null; then echo "HTTP/2 load needs h2load (apt-get install -y nghttp2-client)"; fi
}

render() {  # template out listen nodes(a,b,c) kind — lines marked "# hit rows only" are kept
            # for kind hit only
  local user="# (not root: no user directive)" n1 n2 n3 drop='/# hit rows only/d'
  [ "$(id -u)" = 0 ] && user="user root root;"
  IFS=, read -r n1 n2 n3 <<<"$4"
  [ "$5" = hit ] && drop=""
  sed -e "$drop" -e "s#@LISTEN@#$3#g" -e "s#@LISTEN_HOST@#${3%:*}#g" -e "s#@LISTEN_PORT@#${3##*:}#g" -e "s#@ADMIN@#$EDGE_ADMIN#g" -e "s#@RUNDIR@#$RUNDIR#g" \
      -e "s#@O1@#$n1#g" -e "s#@O2@#$n2#g" -e "s#@O3@#$n3#g" \
      -e "s#@O1_HOST@#${n1%:*}#g" -e "s#@O1_PORT@#${n1##*:}#g" -e "s#@O2_HOST@#${n2%:*}#g" \
      -e "s#@O2_PORT@#${n2##*:}#g" -e "s#@O3_HOST@#${n3%:*}#g" -e "s#@O3_PORT@#${n3##*:}#g" \
      -e "s#@CACHEDIR@#$RUNDIR/nginx-cache#g" \
      -e "s#@CERT@#$CERT#g" -e "s#@KEY@#$KEY#g" -e "s#@PEM@#$PEM#g" -e "s%@USER@%$user%g" "$1" >"$2"
}

start_peer() {  # peer kind — renders its configuration and starts it; sets SPID and TADDR
  local nodes="$O1,$O2,$O3" c=$RUNDIR/conf-$1 tpl
  [ "$2" = stream ] && nodes="$S1,$S2,$S3"
  TADDR=${LISTEN[$1]}
  case $1 in
    direct)
      if [ "$2" = stream ]; then start_bg direct "${SUT_PIN[@]}" "$BIN/bench-origin" -addr "$TADDR" -name direct
      else start_bg direct "${SUT_PIN[@]}" "$BIN/origin" -addr "$TADDR" -name direct; fi ;;
    haproxy)
      case $2 in tls) tpl=haproxy-tls.cfg.in ;; h2) tpl=haproxy-h2.cfg.in ;; *) tpl=peers-haproxy.cfg.in ;; esac
      render "$CONF/$tpl" "$c" "$TADDR" "$nodes" "$2"
      start_bg haproxy "${SUT_PIN[@]}" haproxy -db -f "$c" ;;
    nginx)
      case $2 in tls) tpl=nginx-tls.conf.in ;; h2) tpl=nginx-h2.conf.in ;; *) tpl=peers-nginx.conf.in ;; esac
      rm -rf "$RUNDIR/nginx-cache"; mkdir -p "$RUNDIR/nginx-cache"
      render "$CONF/$tpl" "$c" "$TADDR" "$nodes" "$2"
      start_bg nginx "${SUT_PIN[@]}" nginx -p "$RUNDIR" -c "$c" -e "$RUNDIR/nginx-error.log" ;;
    varnish)
      render "$CONF/peers-varnish.vcl.in" "$c" "$TADDR" "$nodes" "$2"
      rm -rf "$RUNDIR/varnish"
      start_bg varnish "${SUT_PIN[@]}" varnishd -F -j none -n "$RUNDIR/varnish" -a "$TADDR" -T none \
        -f "$c" -s malloc,256m -p thread_pools=1 ;;
    caddy)
      case $2 in tls) tpl=peers-caddy-tls.Caddyfile.in ;; h2) tpl=peers-caddy-h2.Caddyfile.in ;; *) tpl=peers-caddy.Caddyfile.in ;; esac
      render "$CONF/$tpl" "$c" "$TADDR" "$nodes" "$2"
      mkdir -p "$RUNDIR/caddy"
      start_bg caddy "${SUT_PIN[@]}" env HOME="$RUNDIR/caddy" XDG_DATA_HOME="$RUNDIR/caddy" \
        XDG_CONFIG_HOME="$RUNDIR/caddy" caddy run --config "$c" --adapter caddyfile ;;
    edge|edge-prev)   # h2: edge-tls.yaml.in, HTTP/2 is on by default on TLS listeners
      case $2 in hit) tpl=edge-cache.yaml.in ;; tls|h2) tpl=edge-tls.yaml.in ;; *) tpl=edge-peers.yaml.in ;; esac
      render "$CONF/$tpl" "$c.yaml" "$TADDR" "$nodes" "$2"
      local bin=$EDGE_BIN; [ "$1" = edge-prev ] && bin=$EDGE2_BIN
      start_bg "$1" "${SUT_PIN[@]}" "$bin" run -config "$c.yaml" ;;
  esac
}

url_of() {  # kind addr path — the URL a client uses
  if is_tls "$1"; then echo "https://$2$3"; else echo "http://$2$3"; fi
}
curl_get() {  # kind url [curl args...] — prints "status size time_total"; for h2
              # "status size http-version time_total" (ALPN offers h2 and http/1.1)
  local kind=$1 url=$2 port ver=--http1.1 fmt='%{http_code} %{size_download} %{time_total}'; shift 2
  if is_tls "$kind"; then   # verified against our certificate, by name
    port=${url#https://*:}; port=${port%%/*}
    set -- --cacert "$CERT" --resolve "$TLS_NAME:$port:127.0.0.1" "$@"
    url=https://$TLS_NAME:$port${url#https://*:"$port"}
  fi
  [ "$kind" = h2 ] && { ver=--http2; fmt='%{http_code} %{size_download} %{http_version} %{time_total}'; }
  curl -s "$ver" -o /dev/null -w "$fmt" "$@" "$url" || true
}
probe() {  # kind url want-size — 200 and want-size bytes (h2: over HTTP/2) within ~3 s;
           # sets PROBE_GOT
  local i want="200 $3"
  [ "$1" = h2 ] && want="$want 2"
  for i in $(seq 30); do
    PROBE_GOT=$(curl_get "$1" "$2" --max-time 2)
    [ "${PROBE_GOT% *}" = "$want" ] && return 0
    sleep 0.1
  done
  return 1
}

load_window() {  # kind secs rate url out — one measured window; out gets the result line,
                 # LOAD_MS the window's wall-clock time
  local kind=$1 secs=$2 rate=$3 url=$4 out=$5 lim=$(( $2 + 30 )) rc=0 cmd t0
  if [ "$kind" = h2 ]; then   # saturation only (no fixed rate: h2load paces connections, not requests)
    rm -f "$RUNDIR/h2.log"
    cmd=(h2load -t1 -c"$H2_CONNS" -m"$H2_STREAMS" -D "$secs" --log-file="$RUNDIR/h2.log")
  elif [ "$rate" = 0 ] && [ "$LOADGEN" = wrk ]; then
    cmd=(wrk -t1 -c"$CONNS" -d"${secs}s" --timeout 5s -s "$RUNDIR/report.lua")
    [ "$kind" = close ] && cmd+=(-H "Connection: close")
  else
    cmd=("$BIN/bench-load" -c "$CONNS" -d "${secs}s" -rate "$rate")
    [ "$kind" = close ] && cmd+=(-new-conn)
    cmd+=(-url)
  fi
  t0=$(now_ms)
  run_waited load "${LOAD_PIN[@]}" timeout -k 5 "$lim" "${cmd[@]}" "$url" || rc=$?
  LOAD_MS=$(( $(now_ms) - t0 ))
  if [ "$kind" = h2 ]; then
    if ! grep -q '^Application protocol: h2$' "$RUNDIR/load.log"; then rc="not h2: $(grep '^Application protocol' "$RUNDIR/load.log" || echo no protocol)"
    elif h2_result "$RUNDIR/load.log" "$RUNDIR/h2.log" >"$out"; then return 0; fi
  elif grep '^requests=' "$RUNDIR/load.log" >"$out"; then return 0; fi
  log "load generator failed (rc=$rc):"; sed 's/^/    /' "$RUNDIR/load.log" >&2
  return 1
}

# h2load prints min/max/mean/sd of the request time but no percentiles; its --log-file has
# one line per request of the measured window ("start-µs status duration-µs"), from which
# the percentiles are taken (nearest rank), as wrk's and bench/load's are.
h2_result() {  # h2load-output h2load-log — bench/load's one-line result format: requests =
               # done (succeeded + failed), errors = errored (connection/stream level),
               # non2xx = 4xx + 5xx (as wrk counts them), rps = h2load's
  local pct
  pct=$(cut -f3 "$2" | sort -n | awk '{ v[NR] = $1 }
    function at(p,   i) { i = int(p * NR + 0.999999); if (i < 1) i = 1; return v[i] }
    END { if (NR > 0) printf "p50_us=%.0f p99_us=%.0f p999_us=%.0f logged=%d", at(0.5), at(0.99), at(0.999), NR }') || return 1
  awk -v pct="$pct" '
    /^finished in / { rps = $4 }
    /^requests: / { done = $6; errored = $12; ok = 1 }
    /^status codes: / { non2xx = $7 + $9 }
    END { if (!ok) exit 1
      printf "requests=%d errors=%d non2xx=%d rps=%.0f %s\n", done, errored, non2xx, rps, pct }' "$1"
}

origin_totals() {  # "requests newconns" over the three backend nodes (their /__stats)
  origins_snapshot "$O1" "$O2" "$O3" | awk '{ r = c = 0; for (i = 1; i < NF; i += 2) { r += $i; c += $(i + 1) } print r, c }'
}
frac() { awk -v a="$1" -v b="$2" -v f="${3:-%.3f}" 'BEGIN { if (b > 0) printf f, a / b; else printf "" }'; }

# ---------------------------------------------------------------- one row
# RAW columns (RAW_HEADER): every figure is empty when not measured.
RAW_HEADER="run,scenario,proxy,status,throughput,unit,p50_us,p99_us,p999_us,cpu_us_per_req,rate_rps,rate_p50_us,rate_p99_us,rate_p999_us,rate_cpu_us_per_req,peak_rss_mib,start_rss_mib,requests,errors,non2xx,origin_per_req,new_upstream_conns,busy_before_pct,cpu0_cpu1_busy_pct,loadgen"
RAW_COLS=$(awk -F, '{ print NF }' <<<"$RAW_HEADER")
emit() {  # run scen peer status [figures...] — one RAW line, padded to RAW_COLS fields
          # (commas in the status become ";")
  local f=("$1" "$2" "$3" "${4//,/;}" "${@:5}")
  while [ "${#f[@]}" -lt "$RAW_COLS" ]; do f+=(""); done
  (IFS=,; echo "${f[*]}") >>"$RAW"
}

measure_row() {  # run scen peer — measures one row, appends it to RAW; 1 if it failed
  local run=$1 scen=$2 peer=$3 path size kind why pid url notes="" busy0 c0 c1 k0 k1 k2 o0 o1 f
  local req errs non2xx tput unit=req/s p50 p99 p999 cpu rrps="" r50="" r99="" r999="" rcpu="" rss rss0 opr="" newup="" busy
  local ra ca rb cb code got secs lg=$LOADGEN
  read -r path size kind <<<"$(scenario_spec "$scen")"
  [ "$kind" = h2 ] && lg=h2load
  if [ "$peer" = edge ] && [ -n "$EDGE_NOTE" ]; then emit "$run" "$scen" "$peer" "failed: $EDGE_NOTE"; return 1; fi
  why=$(skip_reason "$peer" "$kind")
  if [ -n "$why" ]; then log "$peer/$scen: skipped: $why"; emit "$run" "$scen" "$peer" "skipped: $why"; return 0; fi

  start_peer "$peer" "$kind"
  pid=$SPID
  url=$(url_of "$kind" "$TADDR" "$path")
  PROBE_GOT=""
  local want=$size purl=$url
  [ "$kind" = stream ] && { want=1048576; purl=$(url_of "$kind" "$TADDR" "/stream?bytes=$want"); }
  if ! wait_port "$TADDR" "$pid"; then why="did not start"
  elif ! probe "$kind" "$purl" "$want"; then why="probe failed: got '${PROBE_GOT% *}', want '200 $want$([ "$kind" = h2 ] && echo " 2")'"
  elif [ "$kind" = hit ] && ! probe "$kind" "$purl" "$want"; then why="second probe failed: '${PROBE_GOT% *}'"
  fi
  if [ -n "$why" ] && [ "$peer" = edge-prev ] && [ "$kind" = h2 ] && [ "${PROBE_GOT% *}" = "200 $want 1.1" ]; then
    log "$peer/$scen: skipped: EDGE2_BIN does not offer h2 (answers over HTTP/1.1)"
    stop_pid "$pid"; forget_pid "$pid"
    emit "$run" "$scen" "$peer" "skipped: EDGE2_BIN offers no HTTP/2"; return 0
  fi
  if [ -n "$why" ]; then
    log "$peer/$scen: $why; its log:"; tail -n 20 "$RUNDIR/$peer.log" 2>/dev/null | sed 's/^/    /' >&2
    stop_pid "$pid"; forget_pid "$pid"
    emit "$run" "$scen" "$peer" "failed: $why"; return 1
  fi
  rss0=$(kib_to_mib "$(peak_rss_kib "$pid" tree)")

  if [ "$kind" = stream ]; then
    busy0=$(wait_quiet)
    c0=$(cpu_snapshot); k0=$(tree_ticks "$pid")
    log "$peer/$scen: streaming $STREAM_BYTES bytes (machine ${busy0}% busy before)"
    run_waited curl "${LOAD_PIN[@]}" curl -s --http1.1 -o /dev/null --max-time 300 \
      -w '%{http_code} %{size_download} %{time_total}' "$url" || true
    k1=$(tree_ticks "$pid"); c1=$(cpu_snapshot)
    rss=$(kib_to_mib "$(peak_rss_kib "$pid" tree)")
    alive "$pid" || notes="exited during the run"
    stop_pid "$pid"; forget_pid "$pid"
    read -r code got secs <"$RUNDIR/curl.log" || true
    if [ "${code:-}" != 200 ] || [ "${got:-}" != "$STREAM_BYTES" ]; then
      emit "$run" "$scen" "$peer" "failed: stream got '${code:-} ${got:-}', want '200 $STREAM_BYTES'"; return 1
    fi
    tput=$(awk -v b="$got" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? b / s / 1048576 : 0) }')
    p50=$(awk -v s="$secs" 'BEGIN { printf "%.0f", s * 1e6 }')
    cpu=$(us_per_req $((k1 - k0)) 1)
    busy=$(busy_between "$c0" "$c1")
    awk -v a="$rss0" -v b="$rss" 'BEGIN { exit !(b - a > 64) }' &&
      notes="${notes:+$notes; }memory not flat: RSS +$(awk -v a="$rss0" -v b="$rss" 'BEGIN { printf "%.0f", b - a }') MiB during the stream"
    [ "$busy0" -gt "$QUIET_MAX" ] && notes="${notes:+$notes; }noisy: ${busy0}% busy before"
    emit "$run" "$scen" "$peer" "ok${notes:+; $notes}" "$tput" MiB/s "$p50" "" "" "$cpu" "" "" "" "" "" \
      "$rss" "$rss0" 1 0 0 "" "" "$busy0" "$busy" curl
    log "$peer/$scen: ${tput} MiB/s in ${secs}s, cpu=${cpu}µs, peak RSS ${rss} MiB (${rss0} before)"
    return 0
  fi

  if [ "$WARM" -gt 0 ]; then
    log "$peer/$scen: warm-up ${WARM}s"
    load_window "$kind" "$WARM" 0 "$url" "$RUNDIR/warm.out" || true
  fi
  busy0=$(wait_quiet)
  o0=$(origin_totals); c0=$(cpu_snapshot); k0=$(tree_ticks "$pid")
  log "$peer/$scen: ${DUR}s at saturation (machine ${busy0}% busy before)"
  if ! load_window "$kind" "$DUR" 0 "$url" "$RUNDIR/sat.out"; then
    stop_pid "$pid"; forget_pid "$pid"
    emit "$run" "$scen" "$peer" "failed: load generator failed"; return 1
  fi
  k1=$(tree_ticks "$pid"); c1=$(cpu_snapshot); o1=$(origin_totals)
  f=$RUNDIR/sat.out
  req=$(result_field "$f" requests); errs=$(result_field "$f" errors); non2xx=$(result_field "$f" non2xx)
  tput=$(result_field "$f" rps); p50=$(result_field "$f" p50_us); p99=$(result_field "$f" p99_us); p999=$(result_field "$f" p999_us)
  cpu=$(us_per_req $((k1 - k0)) "$req")
  busy=$(busy_between "$c0" "$c1")
  if [ "$peer" != direct ]; then
    read -r ra ca <<<"$o0"; read -r rb cb <<<"$o1"
    opr=$(frac $((rb - ra)) "$req"); newup=$((cb - ca - 3))   # 3: our own /__stats queries
  fi

  if [ "$RATE" -gt 0 ] && ! is_tls "$kind"; then
    log "$peer/$scen: ${DUR}s at ${RATE} req/s"
    if load_window "$kind" "$DUR" "$RATE" "$url" "$RUNDIR/rate.out"; then
      k2=$(tree_ticks "$pid"); f=$RUNDIR/rate.out
      # bench/load sends every scheduled request, late ones late: a proxy that cannot keep
      # up makes the run last longer than DUR, so the rate reached is requests ÷ the wall
      # time (less 0.3 s for the load generator's start and stop), at most RATE.
      rrps=$(awk -v n="$(result_field "$f" requests)" -v ms="$LOAD_MS" -v d="$DUR" \
        'BEGIN { t = ms / 1000 - 0.3; if (t < d) t = d; printf "%.0f", n / t }')
      r50=$(result_field "$f" p50_us); r99=$(result_field "$f" p99_us); r999=$(result_field "$f" p999_us)
      rcpu=$(us_per_req $((k2 - k1)) "$(result_field "$f" requests)")
      errs=$(( ${errs:-0} + $(result_field "$f" errors) + 0 )); non2xx=$(( ${non2xx:-0} + $(result_field "$f" non2xx) + 0 ))
      awk -v a="$rrps" -v r="$RATE" 'BEGIN { exit !(a < 0.95 * r) }' &&
        notes="${notes:+$notes; }over capacity at ${RATE} req/s (reached $rrps: latency there is queueing)"
    else
      notes="${notes:+$notes; }fixed-load run failed"
    fi
  fi
  rss=$(kib_to_mib "$(peak_rss_kib "$pid" tree)")
  alive "$pid" || why="exited during the run"
  stop_pid "$pid"; forget_pid "$pid"

  # verdict: failures first, then notes
  if [ -z "$why" ] && [ "${non2xx:-0}" != 0 ]; then why="$non2xx non-2xx responses"; fi
  if [ -z "$why" ] && awk -v e="$errs" -v n="$req" 'BEGIN { exit !(e > 0.01 * (n + e)) }'; then why="$errs errors (> 1 %)"; fi
  if [ -z "$why" ] && [ -n "$opr" ]; then
    if [ "$kind" = hit ] && awk -v o="$opr" 'BEGIN { exit !(o > 0.01) }'; then why="not cache hits: origin/req $opr"
    elif [ "$kind" != hit ] && awk -v o="$opr" 'BEGIN { exit !(o < 0.9) }'; then why="not passed to the nodes: origin/req $opr"
    fi
  fi
  [ "${errs:-0}" != 0 ] && notes="${notes:+$notes; }$errs errors"
  local slack=$CONNS   # a cold pool may open one node connection per request in flight
  [ "$kind" = h2 ] && slack=$(( H2_CONNS * H2_STREAMS ))
  [ "$slack" -lt 64 ] && slack=64
  [ -n "$newup" ] && [ "$kind" != hit ] && [ "$newup" -gt $(( req / 100 + slack )) ] && notes="${notes:+$notes; }upstream keep-alive? $newup new node connections"
  [ "$busy0" -gt "$QUIET_MAX" ] && notes="${notes:+$notes; }noisy: ${busy0}% busy before"
  local status="ok${notes:+; $notes}"
  [ -n "$why" ] && status="failed: $why${notes:+; $notes}"
  emit "$run" "$scen" "$peer" "$status" "$tput" "$unit" "$p50" "$p99" "$p999" "$cpu" "$rrps" "$r50" "$r99" "$r999" "$rcpu" \
    "$rss" "$rss0" "$req" "$errs" "$non2xx" "$opr" "$newup" "$busy0" "$busy" "$lg"
  log "$peer/$scen: $tput req/s p50/p99/p99.9=$p50/$p99/${p999}µs cpu=${cpu}µs/req | @${RATE}: ${rrps:--} req/s p50/p99/p99.9=${r50:--}/${r99:--}/${r999:--}µs cpu=${rcpu:--}µs/req | rss=${rss}MiB origin/req=${opr:--} newup=${newup:--} cpu0/cpu1=$busy% ($status)"
  [ -z "$why" ]
}

# ---------------------------------------------------------------- main
ports=("$O1" "$O2" "$O3" "$S1" "$S2" "$S3" "$EDGE_ADMIN")
for p in $PEERS; do ports+=("${LISTEN[$p]}"); done
need_free_ports "${ports[@]}"
start_origins "$O1" "$O2" "$O3"
if contains "$SCENARIOS" stream-1g; then
  ORIGIN_BIN=$BIN/bench-origin ORIGIN_TAG=stream start_origins "$S1" "$S2" "$S3"
fi

STAMP=$(date +%Y%m%d-%H%M%S)
BASE=$OUT/peers-$STAMP
RAW=$RUNDIR/runs.csv
: >"$RAW"
FAILED=0
ver() { "$@" 2>&1 | head -1 || true; }
VERSIONS="$(go env GOVERSION)"
[ -n "$EDGE_BIN" ] && VERSIONS="$VERSIONS, $("$EDGE_BIN" version 2>/dev/null | awk '{ print $1, $2 }')"
[ -n "$EDGE2_BIN" ] && VERSIONS="$VERSIONS, edge-prev = $EDGE2_BIN ($("$EDGE2_BIN" version 2>/dev/null | awk '{ print $1, $2 }'))"
command -v haproxy >/dev/null && VERSIONS="$VERSIONS, haproxy $(ver haproxy -v | awk '{ print $3 }')"
command -v nginx >/dev/null && VERSIONS="$VERSIONS, nginx $(ver nginx -v | sed 's#.*/##')"
command -v varnishd >/dev/null && VERSIONS="$VERSIONS, $(ver varnishd -V | grep -o 'varnish-[0-9.]*' | tr - ' ')"
command -v caddy >/dev/null && VERSIONS="$VERSIONS, caddy $(ver caddy version | awk '{ print $1 }')"
command -v wrk >/dev/null && VERSIONS="$VERSIONS, wrk $(ver wrk -v | awk '{ print $2 }')"
contains "$SCENARIOS" h2 && command -v h2load >/dev/null && VERSIONS="$VERSIONS, $(ver h2load --version)"
VERSIONS="$VERSIONS, curl $(ver curl -V | awk '{ print $2 }')"
log "scenarios: $SCENARIOS; peers: $PEERS; $RUNS run(s); $LOADGEN -c$CONNS ${DUR}s + ${RATE} req/s ${DUR}s after ${WARM}s warm-up$(contains "$SCENARIOS" h2 && echo "; h2: h2load -t1 -c$H2_CONNS -m$H2_STREAMS ${DUR}s"); $LAYOUT"
log "versions: $VERSIONS"

read -r -a PEER_LIST <<<"$PEERS"
np=${#PEER_LIST[@]}
for run in $(seq "$RUNS"); do
  for scen in $SCENARIOS; do
    # rotate the row order from run to run: no proxy always runs first or last
    for i in $(seq 0 $((np - 1))); do
      measure_row "$run" "$scen" "${PEER_LIST[(i + run - 1) % np]}" || FAILED=1
    done
  done
done

# ---------------------------------------------------------------- report
{ echo "$RAW_HEADER"; cat "$RAW"; } >"$BASE.runs.csv"

# The table as CSV: per scenario × proxy, for every figure its median over the runs that
# measured it, min, max and the median of its per-run ratios to HAProxy's.
METRICS="throughput p50_us p99_us p999_us rate_rps rate_p50_us rate_p99_us rate_p999_us cpu_us_per_req rate_cpu_us_per_req peak_rss_mib"
summarize() {
  awk -F, -v scens="$SCENARIOS" -v peers="$PEERS" -v metrics="$METRICS" '
    function sorted(s, a,   n, i, j, t) {   # splits s into a[1..n], ascending; returns n
      n = split(s, a, " ")
      for (i = 2; i <= n; i++) { t = a[i] + 0; j = i - 1
        while (j > 0 && a[j] + 0 > t) { a[j + 1] = a[j]; j-- }
        a[j + 1] = t }
      return n
    }
    function median(s,   a, n) { n = sorted(s, a); if (n == 0) return ""; return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    function lo(s,   a) { return sorted(s, a) ? a[1] : "" }
    function hi(s,   a, n) { n = sorted(s, a); return n ? a[n] : "" }
    function num(v, m) { if (v == "") return ""; return (m ~ /cpu|rss/) ? sprintf("%.1f", v) : sprintf("%.0f", v) }
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; nm = split(metrics, M, " "); next }
    { ok = ($4 ~ /^ok/); k = $2 SUBSEP $3; runs[k]++
      if (!ok && !(k in why)) why[k] = $4
      if ($4 ~ /noisy/) noisy[k]++
      if (!ok) next
      nn = split($4, note, "; ")   # the notes after "ok", each once (noisy is counted)
      for (i = 2; i <= nn; i++) if (note[i] !~ /^noisy/ && !((k, note[i]) in seen)) { seen[k, note[i]] = 1; notes[k] = notes[k] "; " note[i] }
      nok[k]++; unit[k] = $6
      for (i = 1; i <= nm; i++) { v = $(col[M[i]]); if (v != "") { vals[k, i] = vals[k, i] " " v; at[$1, $2, $3, i] = v } }
    }
    END {
      printf "scenario,proxy,status,runs,ok_runs,unit"
      for (i = 1; i <= nm; i++) printf ",%s,%s_min,%s_max,%s_vs_haproxy", M[i], M[i], M[i], M[i]
      print ""
      ns = split(scens, S, " "); np = split(peers, P, " ")
      for (s = 1; s <= ns; s++) for (p = 1; p <= np; p++) {
        k = S[s] SUBSEP P[p]
        if (!(k in runs)) continue
        st = (nok[k] > 0) ? "ok" : why[k]
        if (nok[k] > 0 && nok[k] < runs[k]) st = st " (" nok[k] "/" runs[k] " runs; " why[k] ")"
        st = st notes[k]
        if (noisy[k] > 0) st = st "; noisy in " noisy[k] "/" runs[k]
        gsub(/,/, ";", st)
        printf "%s,%s,%s,%d,%d,%s", S[s], P[p], st, runs[k], nok[k], unit[k]
        for (i = 1; i <= nm; i++) {
          r = ""
          if (P[p] != "haproxy") for (x = 1; x <= runs[k]; x++)
            if (((x, S[s], P[p], i) in at) && at[x, S[s], "haproxy", i] + 0 > 0)
              r = r " " at[x, S[s], P[p], i] / at[x, S[s], "haproxy", i]
          m = median(vals[k, i])
          printf ",%s,%s,%s,%s", num(m, M[i]), num(lo(vals[k, i]), M[i]), num(hi(vals[k, i]), M[i]), (r == "" ? "" : sprintf("%.2f", median(r)))
        }
        print ""
      }
    }' "$BASE.runs.csv"
}
summarize >"$BASE.csv"

# Markdown from the table CSV: "value (ratio×)"; with RUNS > 1, req/s and CPU get [min–max].
markdown_rows() {
  awk -F, -v runs="$RUNS" -v rate="$RATE" '
    function group(v,   s, n) {   # 12345 -> 12,345
      if (v == "" || v !~ /^[0-9]+$/) return v
      s = ""; n = length(v)
      while (n > 3) { s = "," substr(v, n - 2, 3) s; n -= 3 }
      return substr(v, 1, n) s
    }
    function fmt(v) { return (v ~ /\./ && v + 0 < 1000) ? v : group(sprintf("%.0f", v)) }
    function secs(v) { return sprintf("%.2f s", v / 1e6) }
    function cell(m, spread,   v, r, out, s) {
      v = $(col[m]); if (v == "") return "-"
      s = (stream && m ~ /^(p50_us|cpu_us_per_req)$/)   # a whole 1 GiB transfer: in seconds
      out = s ? secs(v) : fmt(v)
      if (spread && runs > 1 && $(col[m "_min"]) != $(col[m "_max"]))
        out = out " [" (s ? secs($(col[m "_min"])) : fmt($(col[m "_min"]))) "–" (s ? secs($(col[m "_max"])) : fmt($(col[m "_max"]))) "]"
      r = $(col[m "_vs_haproxy"]); if (r != "") out = out " (" r "×)"
      return out
    }
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    { stream = ($(col["unit"]) == "MiB/s")
      tp = cell("throughput", 1); if (stream && tp != "-") tp = tp " MiB/s"
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, ($2 == "edge" ? "**edge**" : $2),
        tp, cell("p50_us"), cell("p99_us"), cell("p999_us"),
        cell("rate_p50_us"), cell("rate_p99_us"), cell("rate_p999_us"),
        cell("cpu_us_per_req", 1), cell("rate_cpu_us_per_req", 1), cell("peak_rss_mib"), $3 }' "$BASE.csv"
}

spread_lines() {  # run-to-run spread of req/s and CPU µs/req: (max − min) ÷ median, over rows
  awk -F, '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    function add(m,   v, a, b) { v = $(col[m]); a = $(col[m "_min"]); b = $(col[m "_max"])
      if ($5 < 2 || v + 0 <= 0) return
      x = 100 * (b - a) / v; n[m]++; list[m] = list[m] " " x
      if (x > worst[m]) { worst[m] = x; where[m] = $2 "/" $1 } }
    { add("throughput"); add("cpu_us_per_req") }
    END {
      for (m in n) {
        k = split(list[m], a, " ")
        for (i = 2; i <= k; i++) { t = a[i] + 0; j = i - 1; while (j > 0 && a[j] + 0 > t) { a[j + 1] = a[j]; j-- } a[j + 1] = t }
        med = (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
        printf "- run-to-run spread of %s, (max − min) ÷ median over %d rows: median %.0f %%, worst %.0f %% (%s)\n",
          (m == "throughput" ? "req/s" : "CPU µs/req"), n[m], med, worst[m], where[m]
      }
    }' "$BASE.csv" | sort -r
}

pair_lines() {  # a b — per scenario, a's req/s and CPU µs/req ÷ b's in the same run:
                # median [min–max] of the per-run ratios (runs where both rows are ok)
  awk -F, -v a="$1" -v b="$2" -v scens="$SCENARIOS" '
    function med(s,   x, n, i, j, t) { n = split(s, x, " ")
      for (i = 2; i <= n; i++) { t = x[i] + 0; j = i - 1; while (j > 0 && x[j] + 0 > t) { x[j + 1] = x[j]; j-- } x[j + 1] = t }
      lo = x[1]; hi = x[n]; return (n % 2) ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2 }
    function show(s,   m) { m = med(s); return sprintf("%.2f×", m) (lo != hi ? sprintf(" [%.2f–%.2f]", lo, hi) : "") }
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $4 ~ /^ok/ { t[$1, $2, $3] = $(col["throughput"]); c[$1, $2, $3] = $(col["cpu_us_per_req"]); if ($1 > nr) nr = $1 }
    END {
      ns = split(scens, S, " ")
      for (s = 1; s <= ns; s++) { rt = rc = ""; n = 0
        for (r = 1; r <= nr; r++) {
          if (!((r, S[s], a) in t) || !((r, S[s], b) in t) || t[r, S[s], b] <= 0 || c[r, S[s], b] <= 0) continue
          rt = rt " " t[r, S[s], a] / t[r, S[s], b]; rc = rc " " c[r, S[s], a] / c[r, S[s], b]; n++ }
        if (n) printf "- %s ÷ %s, %s: req/s %s, CPU µs/req %s (%d run%s)\n", a, b, S[s], show(rt), show(rc), n, (n > 1 ? "s" : "") }
    }' "$BASE.runs.csv"
}

CHART_OK=0
if "$BIN/bench-chart" -in "$BASE.csv" -out "$BASE.svg" \
     -title "CPU per request by scenario: edge vs peers ($STAMP)" \
     -note "$(nproc) CPUs, proxy and origins on one core; ${DUR}s windows, $RUNS run(s); lower is better" 2>"$RUNDIR/chart.log"; then
  CHART_OK=1
else
  log "chart failed:"; sed 's/^/    /' "$RUNDIR/chart.log" >&2
fi

{
  echo "### bench/peers.sh $STAMP"
  echo
  echo "edge vs HAProxy, nginx, Varnish and Caddy on loopback, 3 round-robin origin nodes with keep-alive, logging off, one worker each · $LOADGEN -t1 -c$CONNS$(contains "$SCENARIOS" h2 && echo " (h2: h2load -t1 -c$H2_CONNS -m$H2_STREAMS, $((H2_CONNS * H2_STREAMS)) streams in flight)") at saturation and bench/load -c$CONNS -rate $RATE (fixed offered load, latency from the scheduled send), ${DUR}s each after ${WARM}s warm-up · $RUNS run(s)$([ "$RUNS" -gt 1 ] && echo " interleaved (row order rotated): medians [min–max], ratios = median of per-run ratios") · $LAYOUT · $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r) · $VERSIONS."
  echo
  echo "- (n×) = ratio to HAProxy's figure in the same run and scenario: for req/s higher is better, for latency, CPU and RSS lower. CPU µs/req = utime+stime of the proxy's processes during the window ÷ requests (direct: the origin's own; the origins share the proxy's core). Peak RSS = VmHWM over the proxy's processes."
  echo "- pass = GET no-store bodies through to the nodes; hit = cacheable bodies served from each proxy's cache (Caddy has none); close = \`Connection: close\` from the client, one TCP connection per request; tls = TLS keep-alive (1.3 negotiated) with one self-signed ECDSA P-256 certificate (wrk; no fixed-load figures: bench/load speaks no TLS); h2 = the same over HTTP/2 (ALPN h2, checked on every row), HTTP/1.1 keep-alive to the nodes (h2load; no fixed-load figures; p50/p99/p99.9 from h2load's per-request log: from sending the request to the end of its response); stream-1g = one $STREAM_BYTES-byte GET with curl -o /dev/null: the req/s column is MiB/s, p50 the transfer time and CPU µs/req the proxy's CPU for the whole body (both in seconds), peak RSS shows whether memory stayed flat."
  echo "- status: ok, noisy (the machine was > $QUIET_MAX % busy before the window: other tenants), over capacity (the proxy could not sustain ${RATE} req/s: its fixed-load latency is queueing), skipped (not installed / not applicable), failed (did not start, probe, errors, not cache hits, not passed to the nodes). HAProxy allocates its whole 256 MB cache at start (its hit rows' peak RSS); edge, nginx and Varnish fill theirs as they go."
  echo
  echo "| scenario | proxy | req/s | p50 µs | p99 µs | p99.9 µs | p50 µs @${RATE}/s | p99 µs @${RATE}/s | p99.9 µs @${RATE}/s | CPU µs/req | CPU µs/req @${RATE}/s | peak RSS MiB | status |"
  echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
  markdown_rows
  echo
  [ "$RUNS" -gt 1 ] && spread_lines
  if contains "$PEERS" edge; then   # the ratios the table has no column for
    for other in nginx edge-prev; do
      contains "$PEERS" "$other" || continue
      lines=$(pair_lines edge "$other")
      [ -n "$lines" ] && { echo; echo "edge ÷ $other in the same run (median [min–max] of per-run ratios; req/s: higher is better for edge, CPU: lower):"; echo; echo "$lines"; }
    done
  fi
  [ "$CHART_OK" = 1 ] && { echo; echo "![CPU µs per request, by scenario and proxy]($(basename "$BASE.svg"))"; }
} >"$BASE.md"
echo
cat "$BASE.md"

if [ "$PUBLISH" = 1 ]; then
  mkdir -p "$REPORT_DIR"
  P=$REPORT_DIR/$PUBLISH_NAME
  sed "s#($(basename "$BASE.svg"))#($PUBLISH_NAME.svg)#" "$BASE.md" >"$P.md"
  cp "$BASE.csv" "$P.csv"
  [ "$CHART_OK" = 1 ] && cp "$BASE.svg" "$P.svg"
  log "published: $P.{md,csv$([ "$CHART_OK" = 1 ] && echo ",svg")}"
fi
log "results: $BASE.md, $BASE.csv, $BASE.runs.csv$([ "$CHART_OK" = 1 ] && echo ", $BASE.svg")"
exit "$FAILED"
}
