#!/usr/bin/python3
"""End-to-end smoke run of emitd-bench against the real emitd.

Starts emitd on a free loopback port with deploy/loadtest/emitd's handler
(a temporary configuration with the port and the script's absolute path),
runs every scenario for about two seconds with small counts, and checks the
--json report: connections opened as requested, replies received, no errors,
no timeouts, and exactly subscribers x publishes deliveries once the run has
drained. It asserts counts, never speeds. Prints TAP.

Environment: EMITD_BIN and BENCH_BIN (the two executables),
BENCH_LOADTEST_DIR (deploy/loadtest/emitd; found from this file otherwise).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EMITD = os.environ.get("EMITD_BIN", os.path.join(HERE, "../../build/emitd"))
BENCH = os.environ.get("BENCH_BIN", os.path.join(HERE, "../../build/bench/emitd-bench"))
LOADTEST = os.environ.get("BENCH_LOADTEST_DIR",
                          os.path.join(HERE, "../../deploy/loadtest/emitd"))

results = []


def tap(ok, name, detail=""):
    results.append(ok)
    line = "%s %d - %s" % ("ok" if ok else "not ok", len(results), name)
    if detail and not ok:
        line += " # " + detail.replace("\n", " ")[:500]
    print(line, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc, limit=10.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def run_bench(args, limit=60):
    """Run emitd-bench --json; return (rc, report or None, stderr)."""
    cmd = [BENCH, "--json", "--no-progress"] + args
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return -1, None, "emitd-bench did not finish in %ds" % limit
    try:
        report = json.loads(p.stdout)
    except ValueError:
        report = None
    return p.returncode, report, p.stderr


def check(name, args, conds, limit=60):
    rc, r, err = run_bench(args, limit)
    if r is None:
        tap(False, name, "rc=%d, no JSON report; stderr: %s" % (rc, err))
        return None
    failed = []
    if rc != 0:
        failed.append("exit status %d" % rc)
    for label, fn in conds:
        try:
            if not fn(r):
                failed.append(label)
        except (KeyError, TypeError) as e:
            failed.append("%s (%r)" % (label, e))
    summary = ", ".join("%s=%s" % (k, r.get(k)) for k in
                        ("opened", "handshakes", "requests", "acks", "joined", "publishes",
                         "deliveries", "expected_deliveries", "reconnects", "errors",
                         "timeouts"))
    tap(not failed, name, "; ".join(failed) + " | " + summary + " | " + err)
    return r


def no_errors(r):
    return r["errors"] == 0 and r["timeouts"] == 0 and r["complete"]


def main():
    port = free_port()
    url = "ws://127.0.0.1:%d" % port
    script = os.path.abspath(os.path.join(LOADTEST, "bench.lua"))
    tmp = tempfile.mkdtemp(prefix="emitd-bench-smoke-")
    conf = os.path.join(tmp, "emitd.conf")
    with open(conf, "w") as f:
        f.write('listen = "127.0.0.1:%d";\nworkers = 1;\nlog_level = "warn";\n'
                'namespaces = ( { name = "/"; script = "%s"; } );\n' % (port, script))
    log = open(os.path.join(tmp, "emitd.log"), "w")
    server = subprocess.Popen([EMITD, "-c", conf], stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_listening(port, server):
            tap(False, "emitd starts on 127.0.0.1:%d" % port)
            print("1..%d" % len(results))
            return 1
        pid = ["--pid", str(server.pid)]
        common = ["-d", "2", "--timeout", "5000"]

        check("connect over websocket: every loop completes handshakes, no errors",
              common + ["-c", "20", "-s", "connect", url],
              [("opened == 20", lambda r: r["opened"] == 20),
               ("handshakes >= 20", lambda r: r["handshakes"] >= 20),
               ("latency count == handshakes counted while measuring",
                lambda r: 0 < r["latency_us"]["count"] <= r["handshakes"]),
               ("no errors", no_errors)])

        check("idle over websocket: 50 held, server CPU and memory read from /proc",
              common + pid + ["-c", "50", "-s", "idle", url],
              [("opened == 50", lambda r: r["opened"] == 50),
               ("current == 50", lambda r: r["current"] == 50),
               ("server figures", lambda r: r["server"]["processes"] >= 2
                and r["server"]["rss_bytes"] > 0),
               ("no errors", no_errors)])

        check("echo over websocket, 2 processes, 3 source addresses: every emit acked",
              common + pid + ["-c", "20", "-w", "2", "-S", "3", "-s", "echo", url],
              [("opened == 20", lambda r: r["opened"] == 20),
               ("acks > 0", lambda r: r["acks"] > 0),
               ("acks == requests (drained)", lambda r: r["acks"] == r["requests"]),
               ("one latency per ack", lambda r: r["latency_us"]["count"] == r["acks"]),
               ("one-second samples add up to at most the acks",
                lambda r: 1 <= len(r["per_second"]["samples"]) <= 3
                and 0 < sum(r["per_second"]["samples"]) <= r["acks"]),
               ("p50 <= p99 <= max", lambda r: r["latency_us"]["p50"] <= r["latency_us"]["p99"]
                <= r["latency_us"]["max"]),
               ("no errors", no_errors)])

        check("broadcast over websocket at 200/s: deliveries == subscribers x publishes",
              common + ["-c", "20", "-r", "200", "-s", "broadcast", url],
              [("joined == 20", lambda r: r["joined"] == 20),
               ("publishes > 0", lambda r: r["publishes"] > 0),
               ("deliveries == 20 x publishes",
                lambda r: r["deliveries"] == 20 * r["publishes"] == r["expected_deliveries"]),
               ("one latency per delivery",
                lambda r: r["latency_us"]["count"] == r["deliveries"]),
               ("no errors", no_errors)])

        check("broadcast over websocket, closed loop, 2 processes: exact deliveries",
              common + ["-c", "30", "-w", "2", "-s", "broadcast", url],
              [("joined == 30", lambda r: r["joined"] == 30),
               ("publishes > 0", lambda r: r["publishes"] > 0),
               ("deliveries == 30 x publishes", lambda r: r["deliveries"] == 30 * r["publishes"]),
               ("no errors", no_errors)])

        check("reconnect over websocket: drops and reconnects, no errors",
              common + ["-c", "20", "-H", "100", "-s", "reconnect", url],
              [("opened == 20", lambda r: r["opened"] == 20),
               ("reconnects > 0", lambda r: r["reconnects"] > 0),
               ("handshakes == opened + reconnects + in-between",
                lambda r: r["handshakes"] >= r["opened"] + r["reconnects"]),
               ("no errors", no_errors)])

        check("reconnect storm over websocket: all 20 drop together, every 300 ms",
              common + ["-c", "20", "-H", "300", "--storm", "-s", "reconnect", url],
              [("opened == 20", lambda r: r["opened"] == 20),
               ("at least 3 storms of 20", lambda r: r["reconnects"] >= 60),
               ("no errors", no_errors)])

        check("connect over polling: handshakes, no errors",
              common + ["-c", "10", "-t", "polling", "-s", "connect", url],
              [("opened == 10", lambda r: r["opened"] == 10),
               ("no errors", no_errors)])

        check("echo over polling: every emit acked",
              common + ["-c", "10", "-t", "polling", "-s", "echo", url],
              [("opened == 10", lambda r: r["opened"] == 10),
               ("acks > 0", lambda r: r["acks"] > 0),
               ("acks == requests (drained)", lambda r: r["acks"] == r["requests"]),
               ("no errors", no_errors)])

        check("broadcast over polling at 100/s: exact deliveries",
              common + ["-c", "10", "-t", "polling", "-r", "100", "-s", "broadcast", url],
              [("joined == 10", lambda r: r["joined"] == 10),
               ("deliveries == 10 x publishes",
                lambda r: r["publishes"] > 0 and r["deliveries"] == 10 * r["publishes"]),
               ("no errors", no_errors)])

        # The table output (what a person reads).
        p = subprocess.run([BENCH, "--no-progress", "-c", "5", "-d", "1", "-s", "echo", url],
                           capture_output=True, text=True, timeout=60)
        ok = (p.returncode == 0 and "p99.9" in p.stdout and "Acks" in p.stdout
              and " 0 errors, 0 timeouts" in p.stdout)
        tap(ok, "table output has the percentiles, the throughput and the error counts",
            p.stdout + p.stderr)

        # The progress line, forced on although stderr is a pipe.
        p = subprocess.run([BENCH, "--progress", "-c", "5", "-d", "1.5", "-s", "echo", url],
                           capture_output=True, text=True, timeout=60)
        tap(p.returncode == 0 and "running" in p.stderr and "acks" in p.stderr,
            "progress line on stderr while it runs", p.stderr)

        # The loopback guard: refused before any connection is tried.
        p = subprocess.run([BENCH, "-c", "1", "-d", "1", "ws://192.0.2.1:3000"],
                           capture_output=True, text=True, timeout=30)
        tap(p.returncode == 2 and "loopback" in p.stderr,
            "a non-loopback target is refused without --allow-remote", p.stderr)

        # An unreachable (closed) loopback port: errors counted, run still bounded.
        dead = free_port()
        start = time.monotonic()
        rc, r, err = run_bench(["-c", "3", "-d", "1", "-s", "echo", "--timeout", "1000",
                                "ws://127.0.0.1:%d" % dead], limit=60)
        tap(r is not None and r["errors"] >= 3 and r["opened"] == 0
            and time.monotonic() - start < 45,
            "refused connections are counted as errors and the run stays bounded",
            "rc=%d %s %s" % (rc, r, err))

        tap(server.poll() is None, "emitd still running after every scenario")
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
        log.close()
    with open(os.path.join(tmp, "emitd.log")) as f:
        bad = [l for l in f if "Sanitizer" in l or "runtime error:" in l]
    tap(not bad, "emitd's log has no sanitizer report", "".join(bad[:5]))
    print("1..%d" % len(results))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
