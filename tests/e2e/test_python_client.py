#!/usr/bin/python3
"""The real python-socketio client (Debian's python3-socketio, sync Client)
against a real emitd: connect with auth and to a second namespace, events,
acks both ways, binary both ways and a refused connection, over websocket
and over polling. Prints TAP. Run with /usr/bin/python3 (Debian's packages).
"""

import os
import queue
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import socketio  # noqa: E402

from emitd_harness import Emitd, run_tap  # noqa: E402

WAIT = 5
EMITD = None


def new_client():
    return socketio.Client(reconnection=False, logger=False, engineio_logger=False)


class Base:
    """Tests shared by both transports; TRANSPORTS set by the subclasses."""

    TRANSPORTS = None

    def connect(self, client, namespaces=("/",), auth=None):
        client.connect(EMITD.url, auth=auth, transports=self.TRANSPORTS,
                       namespaces=list(namespaces), wait_timeout=WAIT)
        self.addCleanup(client.disconnect)
        self.assertEqual(client.transport(), self.TRANSPORTS[0])

    def test_connect_auth_and_second_namespace(self):
        """connect with auth to "/" and "/custom" on one connection"""
        c = new_client()
        self.connect(c, ("/", "/custom"), auth={"token": "py", "n": 7})
        who = c.call("whoami", namespace="/", timeout=WAIT)
        self.assertEqual(who["nsp"], "/")
        self.assertEqual(who["auth"], {"token": "py", "n": 7})
        self.assertEqual(who["id"], c.get_sid("/"))
        self.assertNotEqual(who["id"], c.eio.sid, "the Socket.IO id is not the Engine.IO sid")
        who2 = c.call("whoami", namespace="/custom", timeout=WAIT)
        self.assertEqual(who2["nsp"], "/custom")
        self.assertEqual(who2["id"], c.get_sid("/custom"))
        self.assertNotEqual(who2["id"], who["id"])
        self.assertEqual(who2["worker"], who["worker"])

    def test_events_both_ways(self):
        """an event to the server comes back as an event"""
        c = new_client()
        got = queue.Queue()
        c.on("echo", lambda *args: got.put(args), namespace="/custom")
        self.connect(c, ("/custom",))
        c.emit("echo", ("hello", 1, {"a": [1, None, "é😀"]}), namespace="/custom")
        self.assertEqual(got.get(timeout=WAIT), ("hello", 1, {"a": [1, None, "é😀"]}))

    def test_acks_both_ways(self):
        """call() answered by the script; a server emit answered by the client"""
        c = new_client()
        answers = queue.Queue()
        c.on("question", lambda a, b: ("reply:" + a, {"b": b}), namespace="/")
        c.on("answer", lambda *args: answers.put(args), namespace="/")
        self.connect(c)
        self.assertEqual(c.call("echo", ("x", 2), timeout=WAIT), ("x", 2))
        self.assertEqual(c.call("echo", "single", timeout=WAIT), "single")
        self.assertEqual(c.call("ask", ("question", "q1", 7), timeout=WAIT), True)
        self.assertEqual(answers.get(timeout=WAIT), ("reply:q1", {"b": 7}))

    def test_binary_both_ways(self):
        """bytes to the script and back, in events and acks"""
        c = new_client()
        got = queue.Queue()
        c.on("binary", lambda *args: got.put(args), namespace="/")
        c.on("question", lambda data: (b"\x01\x02\x03", {"z": b""}), namespace="/")
        answers = queue.Queue()
        c.on("answer", lambda *args: answers.put(args), namespace="/")
        self.connect(c)
        payload = (b"\x00\x01\x02\xff", {"nested": [b"abc", {"deep": b"\xfe"}]}, b"")
        desc = c.call("describe", payload, timeout=WAIT)
        self.assertEqual(desc, ["buf:000102ff", {"nested": ["buf:616263", {"deep": "buf:fe"}]}, "buf:"])
        self.assertEqual(c.call("echo", payload, timeout=WAIT), payload)
        c.emit("make_binary", namespace="/")
        self.assertEqual(got.get(timeout=WAIT),
                         (b"\x00\x01\x02\xff", b"", {"list": [1, b"abc", None], "deep": {"b": b"\xfe"}}))
        c.call("ask", ("question", b"q"), timeout=WAIT)
        self.assertEqual(answers.get(timeout=WAIT), (b"\x01\x02\x03", {"z": b""}))

    def test_connect_error(self):
        """a refused namespace reports the script's message and data"""
        c = new_client()
        errors = queue.Queue()
        c.on("connect_error", lambda *args: errors.put(args), namespace="/reject")
        with self.assertRaises(socketio.exceptions.ConnectionError):
            c.connect(EMITD.url, transports=self.TRANSPORTS, namespaces=["/reject"],
                      auth={"token": "wrong"}, wait_timeout=1)   # the client waits this long after the refusal
        args = errors.get(timeout=WAIT)
        self.assertEqual(args[0], {"message": "not allowed", "data": {"code": 42}})
        c.disconnect()
        ok = new_client()
        self.connect(ok, ("/reject",), auth={"token": "letmein"})
        self.assertEqual(ok.call("hello", namespace="/reject", timeout=WAIT), "welcome in")

    def test_api_key_header(self):
        """device-gateway.md's Python example: the API key in an apiKey header"""
        ok = new_client()
        ok.connect(EMITD.url, headers={"apiKey": "py-key"}, transports=self.TRANSPORTS,
                   namespaces=["/device/abc"], wait_timeout=WAIT)
        self.addCleanup(ok.disconnect)
        self.assertIn("/device/abc", ok.connection_namespaces)
        bad = new_client()
        errors = queue.Queue()
        bad.on("connect_error", lambda *args: errors.put(args), namespace="/device/abc")
        with self.assertRaises(socketio.exceptions.ConnectionError):
            bad.connect(EMITD.url, headers={"apiKey": "guess"}, transports=self.TRANSPORTS,
                        namespaces=["/device/abc"], wait_timeout=1)
        self.assertEqual(errors.get(timeout=WAIT)[0], {"message": "Invalid API key"})
        bad.disconnect()


class WebSocketTests(Base, unittest.TestCase):
    TRANSPORTS = ["websocket"]


class PollingTests(Base, unittest.TestCase):
    TRANSPORTS = ["polling"]


class Shutdown(unittest.TestCase):
    def test_sigterm(self):
        """emitd exits cleanly on SIGTERM"""
        code = EMITD.stop()
        if os.environ.get("EMITD_BIN", "").endswith(".js") and code == -15:
            code = 0    # a reference server dies of SIGTERM
        self.assertEqual(code, 0, "exit status on SIGTERM; log tail:\n" + EMITD.log()[-3000:])
        log = EMITD.log()
        for bad in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            self.assertNotIn(bad, log)


def main():
    global EMITD
    try:
        EMITD = Emitd()
    except Exception as e:   # report a start failure as a failed point, not a hang
        print("TAP version 13\n1..1\nnot ok 1 - emitd starts")
        for line in str(e).splitlines():
            print("# " + line)
        return 1
    try:
        return run_tap([WebSocketTests, PollingTests, Shutdown])
    finally:
        EMITD.stop()


if __name__ == "__main__":
    sys.exit(main())
