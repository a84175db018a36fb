#!/usr/bin/env bash
# examples/demo.sh — edge in front of three demo nodes, on loopback.
#
#   examples/demo.sh                 # start everything, print what to try, Ctrl-C stops it all
#   DEMO_SMOKE=1 examples/demo.sh    # quick self-check instead (also when CI is set); exit 0/1
#
# Builds bin/edge and examples/demonode, starts node1..node3 on $NODE1..$NODE3
# (127.0.0.1:9001-9003) and `bin/edge run -config examples/edge.yaml` on $EDGE_HTTP
# (127.0.0.1:8080) with its admin listener on $EDGE_ADMIN (127.0.0.1:9901).
# Every process started here is stopped (by PID) on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export EDGE_HTTP=${EDGE_HTTP:-127.0.0.1:8080}
export EDGE_ADMIN=${EDGE_ADMIN:-127.0.0.1:9901}
export NODE1=${NODE1:-127.0.0.1:9001} NODE2=${NODE2:-127.0.0.1:9002} NODE3=${NODE3:-127.0.0.1:9003}
SMOKE=${DEMO_SMOKE:-0}
case ${CI:-} in ''|0|false) ;; *) SMOKE=1 ;; esac

PIDS=()
WORK=$(mktemp -d "${TMPDIR:-/tmp}/edge-demo.XXXXXX")
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {  # newest first (edge, then the nodes): TERM, and KILL if still running 5 s later
  local p i k
  for ((k = ${#PIDS[@]} - 1; k >= 0; k--)); do
    p=${PIDS[k]}
    kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 50); do running "$p" || break; sleep 0.1; done
    if running "$p"; then echo "demo: pid $p did not stop in 5 s; killing it" >&2; kill -KILL "$p" 2>/dev/null || true; fi
    wait "$p" 2>/dev/null || true
  done
  PIDS=()
  rm -rf "$WORK"
}
running() {  # alive and not a zombie
  local st
  st=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
trap cleanup EXIT
trap 'echo; echo "stopping..."; exit 0' INT TERM

say() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
die() { echo "demo: $*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

command -v curl >/dev/null || die "curl is required"
for a in "$EDGE_HTTP" "$EDGE_ADMIN" "$NODE1" "$NODE2" "$NODE3"; do
  if port_open "$a"; then die "$a is already in use (set EDGE_HTTP, EDGE_ADMIN, NODE1..NODE3 to other ports)"; fi
done

say "building bin/edge and the demo node"
go build -o bin/edge ./cmd/edge
go build -o "$WORK/demonode" ./examples/demonode

for i in 1 2 3; do
  addr_var=NODE$i
  "$WORK/demonode" -addr "${!addr_var}" -name "node$i" >"$WORK/node$i.log" 2>&1 &
  PIDS+=($!)
done
# edge gets its own session (setsid), so Ctrl-C reaches only this script, which then
# stops edge with one SIGTERM (a second signal during edge's graceful stop kills it).
SETSID=(); command -v setsid >/dev/null && SETSID=(setsid)
if [ "$SMOKE" = 1 ]; then
  "${SETSID[@]}" bin/edge run -config examples/edge.yaml >"$WORK/edge.log" 2>&1 &
else
  "${SETSID[@]}" bin/edge run -config examples/edge.yaml &   # its log goes to this terminal
fi
EDGE_PID=$!
PIDS+=("$EDGE_PID")

# Wait (10 s at most) until edge proxies a request to a node.
for i in $(seq 100); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$EDGE_HTTP/health" || true)" = 200 ]; then break; fi
  if ! running "$EDGE_PID"; then
    [ -f "$WORK/edge.log" ] && cat "$WORK/edge.log" >&2
    die "bin/edge exited"
  fi
  [ "$i" = 100 ] && { [ -f "$WORK/edge.log" ] && cat "$WORK/edge.log" >&2; die "edge did not answer on $EDGE_HTTP within 10 s"; }
  sleep 0.1
done

if [ "$SMOKE" = 1 ]; then
  FAILS=0
  check() {  # description, got, want
    if [ "$2" = "$3" ]; then echo "ok    $1"; else echo "FAIL  $1: got '$2', want '$3'"; FAILS=$((FAILS + 1)); fi
  }
  # status and one response header of GET url
  status_header() {
    curl -s -o /dev/null -D - --max-time 2 "$1" | tr -d '\r' |
      awk -v h="$(tr '[:upper:]' '[:lower:]' <<<"$2")" 'NR == 1 { s = $2 } tolower($1) == h ":" { v = $2 } END { print s, v }'
  }
  nodes=$(for i in 1 2 3; do status_header "http://$EDGE_HTTP/" X-Node; done)
  check "GET / ×3 reaches node1, node2 and node3 (round robin)" \
    "$(awk '{ print $2 }' <<<"$nodes" | sort | tr '\n' ' ')" "node1 node2 node3 "
  check "GET / is marked X-Served-By: edge" "$(status_header "http://$EDGE_HTTP/" X-Served-By)" "200 edge"
  check "GET / body comes from a node" "$(curl -s "http://$EDGE_HTTP/hello" | sed -n 2p)" "path: /hello"
  check "GET /blog/post -> 301 /news/post" "$(status_header "http://$EDGE_HTTP/blog/post" Location | sed 's#http://[^/]*##')" "301 /news/post"
  check "GET /admin -> 301 https://" "$(status_header "http://$EDGE_HTTP/admin" Location | cut -c1-12)" "301 https://"
  cache_status() {
    curl -s -o /dev/null -D - --max-time 2 "$1" | tr -d '\r' |
      awk 'tolower($1) == "cache-status:" { sub(/^[^:]*: */, ""); print }'
  }
  check "GET /catalog/shoes: a miss, stored" "$(cache_status "http://$EDGE_HTTP/catalog/shoes")" "edge; fwd=uri-miss; fwd-status=200; stored"
  second=$(cache_status "http://$EDGE_HTTP/catalog/shoes")
  check "GET /catalog/shoes again: a hit" "${second%%=*}" "edge; hit; ttl"
  check "POST admin /cache/purge?tag=catalog purges it" "$(curl -s -XPOST "http://$EDGE_ADMIN/cache/purge?tag=catalog" | tr -d ' \n')" '{"kind":"tag","purged":1}'
  check "after the purge: a miss again" "$(cache_status "http://$EDGE_HTTP/catalog/shoes")" "edge; fwd=uri-miss; fwd-status=200; stored"
  check "GET /maintenance -> 503" "$(curl -s -w ' %{http_code}' "http://$EDGE_HTTP/maintenance" | tr -d '\n')" "down for maintenance 503"
  check "GET admin /metrics -> 200" "$(curl -s -o /dev/null -w '%{http_code}' "http://$EDGE_ADMIN/metrics")" "200"
  check "POST admin /reload -> 2xx" "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$EDGE_ADMIN/reload" | cut -c1)xx" "2xx"
  kill -HUP "$EDGE_PID"; sleep 0.5
  check "still serving after SIGHUP" "$(status_header "http://$EDGE_HTTP/" X-Served-By)" "200 edge"
  if [ "$FAILS" -gt 0 ]; then
    echo "--- edge log"; cat "$WORK/edge.log"
    echo "smoke test: $FAILS check(s) failed"; exit 1
  fi
  echo "smoke test: all checks passed"
  exit 0
fi

echo
say "edge is running (pid $EDGE_PID) on http://$EDGE_HTTP in front of node1..node3 ($NODE1 $NODE2 $NODE3)"
echo
try() { printf '  %-62s # %s\n' "$1" "$2"; }
try "curl -i http://$EDGE_HTTP/" "repeat it: node1, node2, node3 in turn (X-Node header)"
try "for i in 1 2 3 4 5 6; do curl -s http://$EDGE_HTTP/ | head -1; done" "the same, six times"
try "curl -i http://$EDGE_HTTP/blog/post" "301, Location: /news/post (route old-blog)"
try "curl -i http://$EDGE_HTTP/admin" "301 to https://…/admin (route https-for-admin)"
try "curl -i http://$EDGE_HTTP/maintenance" "503 down for maintenance, Retry-After: 120"
try "curl -i http://$EDGE_HTTP/catalog/shoes" "twice: the second has Cache-Status: edge; hit (route catalog)"
try "curl -XPOST 'http://$EDGE_ADMIN/cache/purge?tag=catalog'" "purge every page tagged catalog"
try "curl -s http://$EDGE_ADMIN/metrics | grep -v '^#' | head -30" "Prometheus metrics"
try "curl -XPOST http://$EDGE_ADMIN/reload" "reload examples/edge.yaml after editing it"
try "kill -HUP $EDGE_PID" "the same, by signal"
echo
echo "Press Ctrl-C to stop edge and the nodes."
set +e
wait "$EDGE_PID"
rc=$?
echo "bin/edge exited with status $rc"
exit "$rc"
