#!/usr/bin/python3
"""A python-socketio client (Debian's python3-socketio) for the seed suites.

    py_client.py '<json options>'

options: url, socketio_path, namespaces, headers, auth, transports, ssl_verify, and
"emit": [[namespace, event, args...], ...] sent once connected, each with
an ack (its answer printed). Prints one JSON line per thing seen:
{"connect": ns}, {"event": name, "ns": ns, "args": [...]},
{"connect_error": ns, "data": ...}, {"ack": i, "args": [...]},
{"disconnect": ns}. Exits on stdin EOF or after "seconds" (default 30).
python-socketio runs each event handler in a thread of its own: the lines
of two events that arrive together may come in either order.
"""
import json
import sys
import threading

import socketio

opts = json.loads(sys.argv[1])
sio = socketio.Client(reconnection=False, ssl_verify=opts.get("ssl_verify", True))
namespaces = opts.get("namespaces") or ["/"]
lock = threading.Lock()


def say(obj):
    with lock:
        print(json.dumps(obj), flush=True)


def call_all(ns, calls):
    """Each [ns, event, arg] with an ack, one after another."""
    for i, e in calls:
        try:
            answer = sio.call(e[1], e[2] if len(e) > 2 else None, namespace=ns, timeout=10)
            say({"ack": i, "args": [answer]})
        except socketio.exceptions.TimeoutError:
            say({"ack": i, "timeout": True})


def handlers(ns):
    def connect():
        say({"connect": ns})
        calls = [(i, e) for i, e in enumerate(opts.get("emit", [])) if e[0] == ns]
        if calls:
            threading.Thread(target=call_all, args=(ns, calls), daemon=True).start()

    def connect_error(data):
        say({"connect_error": ns, "data": data})

    def disconnect():
        say({"disconnect": ns})

    def any_event(event, *args):
        say({"event": event, "ns": ns, "args": list(args)})

    sio.on("connect", connect, namespace=ns)
    sio.on("connect_error", connect_error, namespace=ns)
    sio.on("disconnect", disconnect, namespace=ns)
    sio.on("*", any_event, namespace=ns)


for ns in namespaces:
    handlers(ns)

try:
    sio.connect(opts["url"], socketio_path=opts.get("socketio_path", "socket.io"),
                namespaces=namespaces, headers=opts.get("headers", {}),
                auth=opts.get("auth"), transports=opts.get("transports"), wait_timeout=10)
except socketio.exceptions.ConnectionError as e:
    say({"failed": str(e)})
threading.Timer(opts.get("seconds", 30), lambda: sio.disconnect()).start()
sys.stdin.read()
sio.disconnect()
