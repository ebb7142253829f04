#!/usr/bin/env python3
"""compare.py - run emitd-bench's standard scenarios against emitd and against
Node's socket.io (deploy/loadtest/node) in the same run, one server process
each, and print every figure with the ratio emitd/Node.

    deploy/loadtest/compare.py [--duration S] [--scenarios echo,broadcast,...]
                               [--emitd-workers N] [--json FILE]

Each server is started fresh for each scenario on a free 127.0.0.1 port and
stopped by PID afterwards; every run is bounded by emitd-bench's own time
limit. Figures per server core-second divide by the CPU seconds the server
used while measuring (from /proc), so client and server sharing the machine
is accounted for.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EMITD = os.environ.get("EMITD_BIN", os.path.join(ROOT, "build", "emitd"))
BENCH = os.environ.get("BENCH_BIN", os.path.join(ROOT, "build", "bench", "emitd-bench"))
LOADTEST = os.path.join(ROOT, "deploy", "loadtest")

# name: (emitd-bench arguments, figures to compare: (label, path in the JSON, better))
SCENARIOS = {
    "echo": (["-s", "echo", "-c", "100"],
             [("acks/s", "throughput.per_sec", "higher"),
              ("acks per server core-s", "throughput.per_server_core_sec", "higher"),
              ("p99 latency (us)", "latency_us.p99", "lower")]),
    "broadcast": (["-s", "broadcast", "-c", "1000", "--rate", "0"],
                  [("deliveries/s", "throughput.per_sec", "higher"),
                   ("deliveries per server core-s", "throughput.per_server_core_sec", "higher"),
                   ("p99 latency (us)", "latency_us.p99", "lower")]),
    "broadcast10": (["-s", "broadcast", "-c", "1000", "--rate", "10"],
                    [("p50 latency (us)", "latency_us.p50", "lower"),
                     ("p99 latency (us)", "latency_us.p99", "lower")]),
    "connect": (["-s", "connect", "-c", "50", "-S", "8"],
                [("handshakes/s", "throughput.per_sec", "higher"),
                 ("handshakes per server core-s", "throughput.per_server_core_sec", "higher")]),
    "idle": (["-s", "idle", "-c", "5000", "-w", "2", "-S", "8"],
             [("RSS per connection (B)", "server.rss_per_connection", "lower"),
              ("PSS per connection (B)", "server.pss_per_connection", "lower")]),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not listen on port %d" % port)


def start_emitd(port, workers, tmp):
    conf = os.path.join(tmp, "emitd.conf")
    with open(conf, "w") as f:
        f.write('listen = "127.0.0.1:%d";\nworkers = %d;\nlog_level = "warn";\n'
                'namespaces = ( { name = "/"; script = "%s"; } );\n'
                % (port, workers, os.path.join(LOADTEST, "emitd", "bench.lua")))
    return subprocess.Popen([EMITD, "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(tmp, "emitd.log"), "ab"))


def start_node(port, tmp):
    return subprocess.Popen(["node", os.path.join(LOADTEST, "node", "server.js"), str(port)],
                            stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(tmp, "node.log"), "ab"))


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=12)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def run_bench(port, pid, args, duration):
    cmd = [BENCH, "-d", str(duration), "-q", "--json", "--pid", str(pid)] + args \
        + ["ws://127.0.0.1:%d" % port]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    return json.loads(out.stdout)


def get(d, path):
    for key in path.split("."):
        d = d.get(key) if isinstance(d, dict) else None
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--emitd-workers", type=int, default=1)
    ap.add_argument("--json", help="also write every raw report to this file")
    opt = ap.parse_args()

    if not os.path.isdir(os.path.join(LOADTEST, "node", "node_modules")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=os.path.join(LOADTEST, "node"),
                       check=True, timeout=300)
    raw = {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="emitd-loadtest-") as tmp:
        for name in opt.scenarios.split(","):
            args, figures = SCENARIOS[name]
            reports = {}
            for server in ("emitd", "node"):
                port = free_port()
                proc = start_emitd(port, opt.emitd_workers, tmp) if server == "emitd" \
                    else start_node(port, tmp)
                try:
                    wait_port(port, proc)
                    time.sleep(0.3)
                    reports[server] = run_bench(port, proc.pid, args, opt.duration)
                finally:
                    stop(proc)
                r = reports[server]
                if r.get("errors") or r.get("timeouts"):
                    print("warning: %s %s: %s errors, %s timeouts" % (name, server, r.get("errors"),
                                                                    r.get("timeouts")), file=sys.stderr)
            raw[name] = reports
            for label, path, better in figures:
                e, n = get(reports["emitd"], path), get(reports["node"], path)
                ratio = (e / n) if (e is not None and n) else None
                rows.append((name, label, e, n, ratio, better))

    print("%-12s %-30s %14s %14s %10s" % ("scenario", "figure", "emitd", "node", "emitd/node"))
    for name, label, e, n, ratio, better in rows:
        fmt = lambda v: "-" if v is None else ("%.0f" % v if isinstance(v, (int, float)) else str(v))
        print("%-12s %-30s %14s %14s %10s  (%s is better)"
              % (name, label, fmt(e), fmt(n), "-" if ratio is None else "%.2fx" % ratio, better))
    if opt.json:
        with open(opt.json, "w") as f:
            json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
