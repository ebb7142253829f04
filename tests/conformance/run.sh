#!/usr/bin/env bash
# run.sh - run the official Engine.IO / Socket.IO protocol test suites
# against emitd.
#
# usage: tests/conformance/run.sh ENGINE_IO_PROTOCOL_DIR SOCKET_IO_PROTOCOL_DIR
#   Each argument is a checkout of github.com/socketio/engine.io-protocol or
#   github.com/socketio/socket.io-protocol (the directory that holds
#   test-suite/); pass "-" to skip that suite. Nothing of theirs is kept in
#   this repository.
#
# For each suite: installs the suite's pinned dependencies (npm ci) if its
# test-suite/node_modules is missing, starts `$EMITD_BIN -c <conf>` on
# 127.0.0.1:3000 (the suites hard-code http://localhost:3000), runs the suite
# with its own runner (npx mocha test-suite.js, what its `npm test` does),
# stops emitd by PID and prints a pass/fail summary.
#
# Environment:
#   EMITD_BIN      emitd binary (default: <repo>/build/emitd)
#   EMITD_WORKERS  override `workers` of the configuration files
#   RUNS           run each suite this many times against one server (default 1);
#                  the suites have client-side races (see README.md), so a
#                  failure that does not repeat is worth a second look
#   MOCHA_ARGS     extra mocha arguments, e.g. MOCHA_ARGS='--grep upgrade'
#   EIO_SERVER_CMD / SIO_SERVER_CMD
#                  start this command (via bash -c, with exec) instead of emitd,
#                  e.g. to check a suite against a reference Node.js server
#   SUITE_TIMEOUT  seconds one mocha run may take before it is killed (default 300)
#
# Exit status: 0 if every run of every suite passed, 1 otherwise, 2 on usage
# or setup errors.

set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
EMITD_BIN=${EMITD_BIN:-$REPO/build/emitd}
RUNS=${RUNS:-1}
MOCHA_ARGS=${MOCHA_ARGS:-}
SUITE_TIMEOUT=${SUITE_TIMEOUT:-300}
HOST=127.0.0.1
PORT=3000
START_WAIT=20      # seconds emitd may take to accept connections
STOP_WAIT=10       # seconds between SIGTERM and SIGKILL

usage() {
  sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

[ $# -eq 2 ] || usage
case "$1" in -h|--help) usage ;; esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/emitd-conformance.XXXXXX")
SERVER_PID=
SERVER_CHILDREN=

port_open() {
  (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  # emitd's workers are its children; remember them in case the master has
  # to be killed and leaves them behind.
  SERVER_CHILDREN=$(ps -o pid= --ppid "$SERVER_PID" 2>/dev/null | tr -s ' \n' ' ')
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null
    local i=0
    while kill -0 "$SERVER_PID" 2>/dev/null && [ $i -lt $((STOP_WAIT * 10)) ]; do
      sleep 0.1; i=$((i + 1))
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "run.sh: server $SERVER_PID did not stop within ${STOP_WAIT}s, sending SIGKILL" >&2
      kill -KILL "$SERVER_PID" 2>/dev/null
    fi
  fi
  wait "$SERVER_PID" 2>/dev/null
  local c
  for c in $SERVER_CHILDREN; do
    if kill -0 "$c" 2>/dev/null; then
      echo "run.sh: worker $c outlived the master, sending SIGKILL" >&2
      kill -KILL "$c" 2>/dev/null
    fi
  done
  SERVER_PID=
}

cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Copy a configuration file to $WORK with absolute script paths (so that
# workers can be overridden without writing into the repository).
prepare_conf() {
  local src=$1 dst=$WORK/$(basename "$1")
  sed -e "s#script = \"\\([^/\"][^\"]*\\)\"#script = \"$HERE/\\1\"#g" "$src" > "$dst"
  if [ -n "${EMITD_WORKERS:-}" ]; then
    sed -i -e "s#^workers = .*#workers = $EMITD_WORKERS;#" "$dst"
  fi
  echo "$dst"
}

# start_server NAME CONF [CMD]: start emitd (or CMD) and wait for the port.
start_server() {
  local name=$1 conf=$2 cmd=${3:-} log=$WORK/$1.server.log
  if port_open; then
    echo "run.sh: $HOST:$PORT is already in use; the suites need that port" >&2
    return 1
  fi
  if [ -n "$cmd" ]; then
    echo "== $name: starting: $cmd"
    bash -c "exec $cmd" > "$log" 2>&1 &
  else
    if [ ! -x "$EMITD_BIN" ]; then
      echo "run.sh: $EMITD_BIN not found or not executable (build it: meson setup build && meson compile -C build, or set EMITD_BIN)" >&2
      return 1
    fi
    echo "== $name: starting: $EMITD_BIN -c $conf"
    "$EMITD_BIN" -c "$conf" > "$log" 2>&1 &
  fi
  SERVER_PID=$!
  local i=0
  until port_open; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      wait "$SERVER_PID"; local rc=$?
      echo "run.sh: server exited (status $rc) before listening; its log:" >&2
      tail -n 40 "$log" >&2
      SERVER_PID=
      return 1
    fi
    if [ $i -ge $((START_WAIT * 10)) ]; then
      echo "run.sh: server did not listen on $HOST:$PORT within ${START_WAIT}s; its log:" >&2
      tail -n 40 "$log" >&2
      stop_server
      return 1
    fi
    sleep 0.1; i=$((i + 1))
  done
  echo "== $name: server PID $SERVER_PID listening on $HOST:$PORT"
}

# Failing test titles from mocha's spec output: the epilogue lists them as
#   "  1) Suite" / "       sub" / "         test name:"
failed_titles() {
  awk '
    /^  [0-9]+\) / { sub(/^  [0-9]+\) /, ""); t = $0; if (t ~ /:$/) { print substr(t, 1, length(t) - 1); t = "" } ; next }
    t != "" { s = $0; sub(/^ +/, "", s); if (s ~ /:$/) { print t " > " substr(s, 1, length(s) - 1); t = "" } else t = t " > " s }
  ' "$1"
}

TOTAL_FAILED_RUNS=0
SUMMARY=$WORK/summary.txt
: > "$SUMMARY"

# run_suite NAME CHECKOUT CONF SERVER_CMD
run_suite() {
  local name=$1 checkout=$2 conf=$3 cmd=$4
  local suite=$checkout/test-suite
  if [ ! -f "$suite/test-suite.js" ] || [ ! -f "$suite/package.json" ]; then
    echo "run.sh: $suite/test-suite.js not found (is $checkout a checkout of socketio/$name-protocol?)" >&2
    echo "$name: SETUP ERROR (no test-suite/ in $checkout)" >> "$SUMMARY"
    TOTAL_FAILED_RUNS=$((TOTAL_FAILED_RUNS + 1))
    return
  fi
  if [ ! -d "$suite/node_modules" ]; then
    echo "== $name: installing the suite's dependencies (npm ci in $suite)"
    if ! (cd "$suite" && npm ci --no-audit --no-fund); then
      echo "$name: SETUP ERROR (npm ci failed)" >> "$SUMMARY"
      TOTAL_FAILED_RUNS=$((TOTAL_FAILED_RUNS + 1))
      return
    fi
  fi
  if ! start_server "$name" "$(prepare_conf "$conf")" "$cmd"; then
    echo "$name: SETUP ERROR (server did not start)" >> "$SUMMARY"
    TOTAL_FAILED_RUNS=$((TOTAL_FAILED_RUNS + 1))
    return
  fi

  local r out rc passing failing pending
  for r in $(seq 1 "$RUNS"); do
    out=$WORK/$name.run$r.txt
    echo "== $name: run $r/$RUNS: (cd $suite && npx mocha test-suite.js $MOCHA_ARGS)"
    # shellcheck disable=SC2086
    (cd "$suite" && timeout --kill-after=5 "$SUITE_TIMEOUT" npx --no-install mocha --color test-suite.js $MOCHA_ARGS) 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    sed -i 's/\x1b\[[0-9;]*m//g' "$out"
    passing=$(sed -n 's/^ *\([0-9][0-9]*\) passing.*/\1/p' "$out" | tail -n 1)
    failing=$(sed -n 's/^ *\([0-9][0-9]*\) failing.*/\1/p' "$out" | tail -n 1)
    pending=$(sed -n 's/^ *\([0-9][0-9]*\) pending.*/\1/p' "$out" | tail -n 1)
    {
      printf '%s run %d: %s passing, %s failing' "$name" "$r" "${passing:-0}" "${failing:-0}"
      [ -n "$pending" ] && printf ', %s pending' "$pending"
      [ "$rc" -eq 124 ] && printf ' (mocha killed after %ss: it did not exit)' "$SUITE_TIMEOUT"
      [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ -z "$failing" ] && printf ' (mocha exit status %d)' "$rc"
      printf '\n'
      failed_titles "$out" | sed 's/^/    FAIL /'
    } >> "$SUMMARY"
    [ "$rc" -ne 0 ] && TOTAL_FAILED_RUNS=$((TOTAL_FAILED_RUNS + 1))
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "    server exited during the run; last lines of its log:" >> "$SUMMARY"
      tail -n 20 "$WORK/$name.server.log" | sed 's/^/    | /' >> "$SUMMARY"
      break
    fi
  done
  stop_server
  if grep -qE 'AddressSanitizer|runtime error:|Segmentation|assert' "$WORK/$name.server.log"; then
    echo "    server log mentions a crash/sanitizer report:" >> "$SUMMARY"
    grep -m 5 -E 'AddressSanitizer|runtime error:|Segmentation|assert' "$WORK/$name.server.log" | sed 's/^/    | /' >> "$SUMMARY"
    TOTAL_FAILED_RUNS=$((TOTAL_FAILED_RUNS + 1))
  fi
}

for arg in "$1" "$2"; do
  if [ "$arg" != "-" ] && [ ! -d "$arg" ]; then
    echo "run.sh: $arg is not a directory" >&2
    exit 2
  fi
done
[ "$1" != "-" ] && run_suite engine.io "$(cd "$1" && pwd)" "$HERE/engine.io.conf" "${EIO_SERVER_CMD:-}"
[ "$2" != "-" ] && run_suite socket.io "$(cd "$2" && pwd)" "$HERE/socket.io.conf" "${SIO_SERVER_CMD:-}"

echo
echo "==================== conformance summary ===================="
cat "$SUMMARY"
if [ "$TOTAL_FAILED_RUNS" -eq 0 ]; then
  echo "ALL PASSED"
  exit 0
fi
echo "FAILED ($TOTAL_FAILED_RUNS failed run(s))"
exit 1
