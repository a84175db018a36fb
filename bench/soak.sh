#!/usr/bin/env bash
# bench/soak.sh — edge's soak test (issue #8, `make bench-soak`): builds bin/edge, then runs
# bench/soak (see its package doc: `go doc ./bench/soak`), which starts edge as a separate
# process with a generated config, in front of 3 origins it runs itself (node3 misbehaves),
# drives mixed load (keep-alive, churn, POST, slow-loris, slow readers/uploaders, aborts) and
# samples edge's RSS, goroutines and fds every 10 s.
#
# Usage:  bench/soak.sh                  # 10 minutes (plus the build)
#         bench/soak.sh -dur 2m -rate 100
#         DUR=2m bench/soak.sh           # same as -dur 2m (DUR=120: seconds)
#         EDGE_BIN=/path/to/edge bench/soak.sh   # use that binary, no build
# Output: Markdown on stdout and in bench/results/soak-<stamp>.md, samples in
#         bench/results/soak-<stamp>.csv; on failure also edge's log, config and goroutine dump
#         there. Exit status 1 on failure (leak or a failed must-succeed request), 130 if interrupted.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [ -z "${EDGE_BIN:-}" ]; then
  echo "[soak] building bin/edge" >&2
  go build -o bin/edge ./cmd/edge
  EDGE_BIN=bin/edge
fi
[ -x "$EDGE_BIN" ] || { echo "[soak] EDGE_BIN=$EDGE_BIN is not executable" >&2; exit 1; }
args=(-edge "$EDGE_BIN")
if [ -n "${DUR:-}" ]; then
  [[ $DUR =~ ^[0-9]+$ ]] && DUR=${DUR}s   # bare seconds, as the other bench scripts take them
  args+=(-dur "$DUR")
fi
exec go run ./bench/soak "${args[@]}" "$@"
