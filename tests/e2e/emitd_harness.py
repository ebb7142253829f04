"""emitd_harness.py - start and stop a real emitd for the Python tests.

The Python twin of lib/harness.js: writes a libconfig file (free port on
127.0.0.1, workers = 2, the handler scripts in handlers/), starts
$EMITD_BIN -c <file> with its output captured to a file, waits (bounded)
until the port accepts connections, and stops it by PID: SIGTERM, then
SIGKILL after a bounded wait. Every daemon still running when the
interpreter exits is killed. Under `tests/run --valgrind` it runs emitd
under memcheck as lib/harness.js does and stop() raises when memcheck
reported anything.
"""

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HANDLERS = os.path.join(HERE, "handlers")
VALGRIND = os.environ.get("EMITD_VALGRIND", "")
VALGRIND_SUPP = os.environ.get("EMITD_VALGRIND_SUPP", "")
TIME_SCALE = max(1.0, float(os.environ.get("EMITD_TIME_SCALE") or 1))
START_TIMEOUT = 20.0 * TIME_SCALE
STOP_TIMEOUT = 10.0 * TIME_SCALE

_live = set()


@atexit.register
def _kill_leftovers():
    for d in list(_live):
        d.kill()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lc_value(v, indent=""):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        inner = indent + "  "
        if any(isinstance(x, dict) for x in v):
            return "(\n" + ",\n".join(inner + _lc_value(x, inner) for x in v) + "\n" + indent + ")"
        return "[ " + ", ".join(_lc_value(x, inner) for x in v) + " ]"
    if isinstance(v, dict):
        inner = indent + "  "
        body = "\n".join("%s%s = %s;" % (inner, k, _lc_value(x, inner)) for k, x in v.items())
        return "{\n" + body + "\n" + indent + "}"
    raise TypeError("cannot write %r in libconfig" % (v,))


def to_libconfig(settings):
    return "".join("%s = %s;\n" % (k, _lc_value(v)) for k, v in settings.items())


def _tail(path, n=4000):
    try:
        with open(path, "rb") as f:
            data = f.read()
        return data[-n:].decode("utf-8", "replace")
    except OSError as e:
        return "<no log: %s>" % e


class Emitd:
    """A running emitd; .url, .port, .pid, .log(), .stop()."""

    def __init__(self, config=None):
        binary = os.environ.get("EMITD_BIN")
        if not binary:
            raise RuntimeError("EMITD_BIN is not set: it must name the built emitd (build/emitd)")
        if not os.path.exists(binary):
            raise RuntimeError("EMITD_BIN=%s does not exist: build emitd first" % binary)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.dir = tempfile.mkdtemp(prefix="emitd-e2e-py-")
        settings = {
            "listen": "127.0.0.1:%d" % self.port,
            "workers": 2,
            "log_level": "info",
            "max_payload": 100000,
            "namespaces": [
                {"name": "/", "script": os.path.join(HANDLERS, "main.lua")},
                {"name": "/custom", "script": os.path.join(HANDLERS, "main.lua")},
                {"name": "/reject", "script": os.path.join(HANDLERS, "reject.lua")},
                {"name": "/crash", "script": os.path.join(HANDLERS, "crash.lua")},
                {"name": "/device/:deviceId", "api_key": {"keys": ["py-key"]}},
            ],
        }
        settings.update(config or {})
        self.conf_path = os.path.join(self.dir, "emitd.conf")
        with open(self.conf_path, "w") as f:
            f.write(to_libconfig(settings))
        with open(self.conf_path + ".json", "w") as f:
            json.dump(settings, f, indent=2)
        self.log_path = os.path.join(self.dir, "emitd.log")
        cmd = [os.path.abspath(binary), "-c", self.conf_path]
        if binary.endswith(".js"):          # a reference server, see lib/harness.js
            cmd = ["node"] + cmd
        elif VALGRIND:
            cmd = [VALGRIND, "-q", "--tool=memcheck",
                   "--log-file=" + os.path.join(self.dir, "valgrind.%p.log"),
                   "--leak-check=full", "--show-leak-kinds=definite",
                   "--errors-for-leak-kinds=definite", "--num-callers=30", "--run-libc-freeres=no"] + \
                (["--suppressions=" + VALGRIND_SUPP] if VALGRIND_SUPP else []) + cmd
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.dir)
        self.pid = self.proc.pid
        _live.add(self)
        try:
            self._wait_listening()
        except Exception:
            self.stop(2.0)
            raise

    def _wait_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        for _ in range(5000):
            if self.proc.poll() is not None:
                raise RuntimeError("emitd did not start (exit %s); log tail:\n%s"
                                   % (self.proc.returncode, _tail(self.log_path)))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                break
            time.sleep(0.025)
        raise RuntimeError("emitd did not start listening on 127.0.0.1:%d within %.0f s; log tail:\n%s"
                           % (self.port, START_TIMEOUT, _tail(self.log_path)))

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _children(self):
        kids = []
        try:
            for task in os.listdir("/proc/%d/task" % self.pid):
                with open("/proc/%d/task/%s/children" % (self.pid, task)) as f:
                    kids += [int(x) for x in f.read().split()]
        except OSError:
            pass
        return kids

    def kill(self):
        for pid in [self.pid] + self._children():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        _live.discard(self)

    def memcheck_reports(self):
        """The non-empty memcheck logs of this daemon's processes."""
        reports = []
        if not VALGRIND:
            return reports
        for name in sorted(os.listdir(self.dir)):
            if name.startswith("valgrind.") and name.endswith(".log"):
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text = f.read()
                if text.strip():
                    reports.append("%s:\n%s" % (name, text[:6000]))
        return reports

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, SIGKILL after timeout; returns the exit status.
        Raises when memcheck reported an error (under --valgrind)."""
        if self.proc.poll() is None:
            kids = self._children()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            for pid in kids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        _live.discard(self)
        reports = self.memcheck_reports()
        if reports:
            raise AssertionError("valgrind memcheck found errors in emitd:\n" + "\n".join(reports))
        return self.proc.returncode


class TapResult:
    """Print unittest outcomes as TAP points: ok N - name / not ok N - name."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def point(self, ok, name, detail=None, skip=None):
        self.n += 1
        line = "%s %d - %s" % ("ok" if ok else "not ok", self.n, name)
        if skip:
            line += " # SKIP " + skip
        print(line, flush=True)
        if detail:
            for dl in detail.rstrip().splitlines():
                print("# " + dl, flush=True)
        if not ok:
            self.failed += 1


def run_tap(test_case_classes):
    """Run unittest cases one by one and report them as TAP; exit status."""
    import unittest
    print("TAP version 13", flush=True)
    loader = unittest.TestLoader()
    tests = []
    for cls in test_case_classes:
        tests.extend(loader.loadTestsFromTestCase(cls))
    tap = TapResult()
    print("1..%d" % len(tests), flush=True)
    for t in tests:
        result = unittest.TestResult()
        t.run(result)
        name = t.id().split(".", 1)[-1]
        doc = t.shortDescription()
        if doc:
            name = "%s: %s" % (name, doc)
        if result.skipped:
            tap.point(True, name, skip=result.skipped[0][1])
        elif result.errors or result.failures:
            detail = "\n".join(tb for _, tb in result.errors + result.failures)
            tap.point(False, name, detail)
        else:
            tap.point(True, name)
    # class-level teardown runs when the class's last test ran
    sys.stdout.flush()
    return 1 if tap.failed else 0
