#!/bin/sh
# check_init.sh BUILDDIR - the SysV init script as an operator runs it:
# meson install into a temporary directory, then the installed
# etc/init.d/emitd start, status, reload, status, stop, status against the
# installed emitd, with an /etc/default file of the test's own
# ($EMITD_DEFAULTS). Prints TAP. Needs root (start-stop-daemon --chuid, as
# at boot) and Debian's start-stop-daemon and /lib/lsb/init-functions.
build=$1
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; }
check() { if [ "$1" -eq 0 ]; then ok "$2"; else notok "$2 (status $1)"; fi; }

echo "1..10"
if [ "$(id -u)" != 0 ] || ! command -v start-stop-daemon >/dev/null || [ ! -r /lib/lsb/init-functions ]; then
  for i in 1 2 3 4 5 6 7 8 9 10; do echo "ok $i # SKIP needs root, start-stop-daemon and lsb init-functions"; done
  exit 0
fi
tmp=$(mktemp -d /tmp/emitd-init-XXXXXX)
pid=
cleanup() {
  # Only the daemon this test started, by its pid file.
  if [ -s "$tmp/run/emitd.pid" ]; then kill "$(cat "$tmp/run/emitd.pid")" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet >"$tmp/install.log" 2>&1
check $? "meson install into a temporary directory"
script=$(find "$tmp/root" -path '*/init.d/emitd' -type f | head -n 1)
daemon=$(find "$tmp/root" -path '*/sbin/emitd' -type f | head -n 1)
if [ -x "$script" ] && [ -x "$daemon" ]; then ok "installed: ${script#"$tmp"/root} and ${daemon#"$tmp"/root}"; else notok "init script or emitd not installed"; exit 1; fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$tmp/run"
cat >"$tmp/emitd.conf" <<EOF
listen = [ "127.0.0.1:$port" ];
workers = 2;
health_path = "/health";
EOF
cat >"$tmp/default" <<EOF
DAEMON=$daemon
CONF=$tmp/emitd.conf
USER=$(id -un)
GROUP=$(id -gn)
PIDFILE=$tmp/run/emitd.pid
LOGDIR=$tmp/log
LOGFILE=$tmp/log/emitd.log
EOF
export EMITD_DEFAULTS="$tmp/default"

# The health report's worker numbers, "" while it does not answer.
workers() {
  python3 - "$port" <<'EOF'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2) as r:
        print(" ".join(str(w["worker"]) for w in json.load(r)["details"]["workers"]))
except Exception:
    print("")
EOF
}
# Wait (at most 20 s) until workers() prints $1.
wait_workers() {
  i=0
  while [ $i -lt 200 ]; do
    [ "$(workers)" = "$1" ] && return 0
    sleep 0.1
    i=$((i + 1))
  done
  return 1
}

sh "$script" start >"$tmp/out" 2>&1 && wait_workers "1 2"
check $? "start: emitd serves with workers 1 and 2"
sh "$script" status >"$tmp/out" 2>&1
check $? "status: running"
pid=$(cat "$tmp/run/emitd.pid" 2>/dev/null)
sh "$script" reload >"$tmp/out" 2>&1 && wait_workers "3 4"
check $? "reload: new workers 3 and 4 serve"
[ "$(cat "$tmp/run/emitd.pid" 2>/dev/null)" = "$pid" ] && sh "$script" status >/dev/null 2>&1
check $? "status after reload: the same master ($pid) runs"
echo 'workers = ;' >>"$tmp/emitd.conf"
sh "$script" reload >"$tmp/out" 2>&1
rc=$?
sed -i '$d' "$tmp/emitd.conf"
if [ $rc -ne 0 ] && [ "$(workers)" = "3 4" ]; then ok "reload of a broken configuration fails and the running one serves"; else notok "a broken configuration: reload status $rc, workers $(workers)"; fi
grep -q "reload: done" "$tmp/log/emitd.log"
check $? "the log file has the reload"
sh "$script" stop >"$tmp/out" 2>&1
rc=$?
i=0
while [ $i -lt 100 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
if [ $rc -eq 0 ] && ! kill -0 "$pid" 2>/dev/null && [ ! -e "$tmp/run/emitd.pid" ]; then ok "stop: the master exited, the pid file is gone"; else notok "stop: status $rc"; fi
sh "$script" status >"$tmp/out" 2>&1
rc=$?
if [ $rc -eq 3 ]; then ok "status after stop: not running (3)"; else notok "status after stop: $rc"; fi
[ $fails -eq 0 ]
