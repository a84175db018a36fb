#!/usr/bin/env bash
# bench/cachetests.sh — edge's shared cache under the HTTP caching test suite (the one whose
# results cache-tests.fyi shows), on loopback.
#
#   suite origin (node, ORIGIN)  <--  edge (LISTEN, route `proxy: origin`, `cache: {}`)  <--  suite client
#
# Steps: install the suite (npm package http-cache-tests, pinned in bench/cachetests/
# package-lock.json) into bench/cachetests/node_modules if it is missing; build bin/edge;
# start the suite's origin server on ORIGIN; render bench/cachetests/edge.yaml.in (admin
# off, one upstream with the origin as its only node, a catch-all route through the cache)
# and start edge on LISTEN; run the suite's client against http://LISTEN; save the results
# JSON and print the summary, counted as cache-tests.fyi counts (bench/cachetests/summarize.mjs).
#
# Usage:  bench/cachetests.sh                    # whole suite (~1 min): results + summary
#         ID=freshness-max-age bench/cachetests.sh  # one test, with the suite's request/response dump
#         make cache-tests
# Knobs [defaults]:
#   LISTEN [127.0.0.1:18480]  edge's listener     ORIGIN [127.0.0.1:18481]  the suite's origin
#   ID []                  run only this test id, with its dump (nothing saved)
#   DUMP []                whole run, but these test ids (comma-separated) dump their requests
#                          and responses, saved in OUT/<timestamp>.client.log (a failure that
#                          shows only under the whole run's concurrency)
#   ROUTE_CACHE [{}]       the route's cache section, YAML flow style: '{strip_set_cookie: true}'
#   ACCESS_LOG [off]       edge's access log format (combined|json), saved with the results
#   OUT [bench/cachetests/results]   where <timestamp>.json, .summary.txt, .edge.log go
#   BASELINE [newest earlier OUT/*.json]  results to list changes against; "none": no list
#   COMPARE [0]            1: also count the suite's bundled results of other caches
#   REQ_TIMEOUT [10]       seconds per request before the test fails (FetchError timeout)
#   RUN_TIMEOUT [600]      seconds for the whole client run
#   FAIL_ON_REQUIRED [0]   1: exit 1 when a required test fails (⛔)
#   SUITE_DIR [bench/cachetests/node_modules/http-cache-tests]  another copy of the suite,
#                          e.g. a checkout of its git repository (test-engine/ layout) with its
#                          own node_modules installed
#   EDGE_BIN [build bin/edge]
# Output: OUT/<timestamp>.json (the results object the suite's CLI prints: test id -> true or
#   [error name, message]), OUT/<timestamp>.summary.txt (the summary printed on stdout),
#   OUT/<timestamp>.edge.log (edge's log, with the access log when ACCESS_LOG is set).
# Every process started here is tracked by PID and stopped by PID on exit.
set -euo pipefail
{ # One brace group: bash parses the whole script before running it, so editing
  # this file during a run cannot break that run.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=cache-tests

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CT=$ROOT/bench/cachetests
LISTEN=${LISTEN:-127.0.0.1:18480}
ORIGIN=${ORIGIN:-127.0.0.1:18481}
ID=${ID:-}
export DUMP=${DUMP:-}
ROUTE_CACHE=${ROUTE_CACHE:-"{}"}
ACCESS_LOG=${ACCESS_LOG:-off}
OUT=${OUT:-$CT/results}
BASELINE=${BASELINE:-}
COMPARE=${COMPARE:-0}
REQ_TIMEOUT=${REQ_TIMEOUT:-10}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
FAIL_ON_REQUIRED=${FAIL_ON_REQUIRED:-0}
SUITE_DIR=${SUITE_DIR:-$CT/node_modules/http-cache-tests}
EDGE_BIN=${EDGE_BIN:-}

require node npm timeout
for a in "$LISTEN" "$ORIGIN"; do
  case $a in 127.*:[0-9]*|localhost:[0-9]*) ;; *) die "$a: only loopback addresses (127.x.x.x:port)" ;; esac
done
case $ACCESS_LOG in off|combined|json) ;; *) die "ACCESS_LOG=$ACCESS_LOG (want off, combined or json)" ;; esac

# ---------------------------------------------------------------- the suite
pinned=$(node -p 'require(process.argv[1]).dependencies["http-cache-tests"]' "$CT/package.json")
installed=$(node -p 'try { require(process.argv[1]).version } catch { "" }' \
  "$CT/node_modules/http-cache-tests/package.json")
if [ "$installed" != "$pinned" ]; then
  log "installing http-cache-tests@$pinned into bench/cachetests/node_modules (npm ci)"
  (cd "$CT" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) >&2 \
    || die "npm ci in bench/cachetests failed"
fi
[ -d "$SUITE_DIR" ] || die "SUITE_DIR=$SUITE_DIR does not exist"
SUITE_DIR=$(cd "$SUITE_DIR" && pwd)

# ---------------------------------------------------------------- edge
build_edge "(is the tree compiling? go build ./...)"

track_processes cachetests
need_free_ports "$LISTEN" "$ORIGIN"

# The origin runs in RUNDIR, so its "other paths are files from the working directory"
# dispatch serves nothing of this tree.
# shellcheck disable=SC2016  # $1.. are the inner shell's arguments
start_bg origin bash -c 'cd "$1" && exec node "$2" "$3" "$4"' origin "$RUNDIR" "$CT/origin.mjs" "$SUITE_DIR" "$ORIGIN"
wait_port "$ORIGIN" "$SPID" || { cat "$RUNDIR/origin.log" >&2; die "the suite's origin did not start on $ORIGIN"; }
log "$(head -1 "$RUNDIR/origin.log")"

access_log_path=-
[ "$ACCESS_LOG" = off ] || access_log_path=$RUNDIR/access.log
sed -e "s|@LISTEN@|$LISTEN|g" -e "s|@ORIGIN@|$ORIGIN|g" \
    -e "s|@ACCESS_LOG@|$ACCESS_LOG|g" -e "s|@ACCESS_LOG_PATH@|$access_log_path|g" \
    -e "s|@ROUTE_CACHE@|$ROUTE_CACHE|g" "$CT/edge.yaml.in" >"$RUNDIR/edge.yaml"
"$EDGE_BIN" check -config "$RUNDIR/edge.yaml" >&2 || { cat "$RUNDIR/edge.yaml" >&2; die "edge rejects the rendered config"; }
start_bg edge "$EDGE_BIN" run -config "$RUNDIR/edge.yaml"
EDGE_PID=$SPID
wait_port "$LISTEN" "$EDGE_PID" || { cat "$RUNDIR/edge.log" >&2; die "edge did not start on $LISTEN"; }
log "edge $("$EDGE_BIN" version 2>/dev/null | head -1) on $LISTEN -> origin $ORIGIN (route cache: $ROUTE_CACHE)"

# The client runs in the background and is waited for, so that a signal to this script
# ends the wait at once (then the EXIT trap stops it with the rest, by PID).
run_client() {  # [test id] — the suite's client against edge; its exit status
  local pid rc=0
  REQ_TIMEOUT_MS=$((REQ_TIMEOUT * 1000)) timeout "$RUN_TIMEOUT" \
    node "$CT/run.mjs" "$SUITE_DIR" "http://$LISTEN" "$@" &
  pid=$!
  PIDS+=("$pid")
  wait "$pid" || rc=$?
  forget_pid "$pid"
  return "$rc"
}

# ---------------------------------------------------------------- one test
if [ -n "$ID" ]; then
  run_client "$ID" || true
  alive "$EDGE_PID" || { tail -50 "$RUNDIR/edge.log" >&2; die "edge exited during the test"; }
  log "origin log (the suite's server-side dump):"; tail -n +2 "$RUNDIR/origin.log" >&2
  if [ -s "$RUNDIR/edge.log" ]; then log "edge log:"; cat "$RUNDIR/edge.log" >&2; fi
  [ ! -s "$RUNDIR/access.log" ] || { log "access log:"; cat "$RUNDIR/access.log" >&2; }
  exit 0
fi

# ---------------------------------------------------------------- whole suite
mkdir -p "$OUT"
ts=$(date +%Y%m%d-%H%M%S)
res=$OUT/$ts.json
if [ -z "$BASELINE" ]; then
  BASELINE=$(find "$OUT" -maxdepth 1 -name '[0-9]*-[0-9]*.json' ! -name "$ts.json" | sort | tail -1)
fi
[ "$BASELINE" != none ] || BASELINE=

log "running the suite against http://$LISTEN (REQ_TIMEOUT ${REQ_TIMEOUT}s)"
start=$(now_ms)
rc=0
run_client >"$RUNDIR/results.json" 2>"$RUNDIR/client.err" || rc=$?
secs=$(( ($(now_ms) - start) / 1000 ))
save_logs() {
  { cat "$RUNDIR/edge.log"
    if [ -s "$RUNDIR/access.log" ]; then echo "==== access log"; cat "$RUNDIR/access.log"; fi
    if [ -s "$RUNDIR/origin.log" ]; then echo "==== origin log"; cat "$RUNDIR/origin.log"; fi
  } >"$OUT/$ts.edge.log"
}
if [ "$rc" != 0 ] || ! node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$RUNDIR/results.json" 2>/dev/null; then
  save_logs
  cat "$RUNDIR/client.err" >&2
  [ "$rc" != 124 ] || log "the client did not finish within RUN_TIMEOUT=${RUN_TIMEOUT}s"
  die "the suite's client failed (exit $rc) after ${secs}s; edge's log: $OUT/$ts.edge.log"
fi
if [ -s "$RUNDIR/client.err" ]; then
  cp "$RUNDIR/client.err" "$OUT/$ts.client.log"
  if [ -n "${DUMP:-}" ]; then log "dumps of $DUMP: $OUT/$ts.client.log"
  else log "client stderr:"; cat "$RUNDIR/client.err" >&2; fi
fi
alive "$EDGE_PID" || log "warning: edge exited during the run (see $OUT/$ts.edge.log)"
cp "$RUNDIR/results.json" "$res"
save_logs
log "finished in ${secs}s: $res"

args=("$SUITE_DIR" "$res")
[ -z "$BASELINE" ] || args+=(--baseline "$BASELINE")
[ "$COMPARE" != 1 ] || args+=(--compare)
node "$CT/summarize.mjs" "${args[@]}" | tee "$OUT/$ts.summary.txt"
log "saved: $res, $OUT/$ts.summary.txt, $OUT/$ts.edge.log"

if [ "$FAIL_ON_REQUIRED" = 1 ] && grep -q '^⛔ required failures ([1-9]' "$OUT/$ts.summary.txt"; then
  exit 1
fi
exit 0
}
