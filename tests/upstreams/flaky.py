#!/usr/bin/env python3
"""A controllable HTTP/1.1 upstream for the resilience tests (stdlib only).

    python3 tests/upstreams/flaky.py --port P --control-port C --name NAME

Every request on --port is recorded and answered according to the current mode, set through the control port:
    POST /mode    {"mode": "ok" | "status" | "reset" | "hang", "status": 503, "retry_after": "2", "delay_ms": 0,
                   "health": "ok" | "status" | "reset" | "hang", "health_status": 503}
    GET  /log     {"requests": [{"t": monotonic seconds, "method", "path", "idempotency_key", "user_agent", "host",
                   "request_id", "conn": connection number}], "connections": accepted, "open": open now}
    POST /clear   forget the log (the connection counters stay)
Modes: ok = 200 {"upstream": NAME, "path": ...}; status = that status (with Retry-After when given); reset = close
the connection with an RST and no answer; hang = never answer (until the peer closes, at most 60 s); partial = a 200
head and 1000 of 100000 body bytes, then an RST. /healthz follows
the "health" mode. Prints "ready" once both ports listen.
"""
import argparse
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

state = {"mode": "ok", "status": 503, "retry_after": None, "delay_ms": 0, "health": "ok", "health_status": 503}
log = []
counters = {"connections": 0, "open": 0}
lock = threading.Lock()
NAME = "flaky"


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        with lock:
            counters["connections"] += 1
            counters["open"] += 1
            self.conn_no = counters["connections"]

    def finish(self):
        try:
            super().finish()
        finally:
            with lock:
                counters["open"] -= 1

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _answer(self, status, body, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _reset(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _hang(self):
        self.connection.settimeout(0.2)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.connection.recv(1, socket.MSG_PEEK) == b"":
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        self.close_connection = True

    def _handle(self):
        self._body()
        health = self.path.split("?")[0] == "/healthz"
        with lock:
            log.append({"t": time.monotonic(), "method": self.command, "path": self.path,
                        "idempotency_key": self.headers.get("Idempotency-Key"),
                        "user_agent": self.headers.get("User-Agent"), "host": self.headers.get("Host"),
                        "request_id": self.headers.get("X-Request-Id"),
                        "conn": self.conn_no})
            mode = state["health"] if health else state["mode"]
            status = state["health_status"] if health else state["status"]
            retry_after, delay = state["retry_after"], state["delay_ms"]
        if delay and not health:
            time.sleep(delay / 1000)
        if mode == "reset":
            return self._reset()
        if mode == "hang":
            return self._hang()
        if mode == "partial":  # a head and part of the body, then a reset
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            self.wfile.flush()
            time.sleep(0.05)
            return self._reset()
        body = json.dumps({"upstream": NAME, "path": self.path}).encode()
        if mode == "status":
            return self._answer(status, body, [("Retry-After", retry_after)] if retry_after else [])
        self._answer(200, body, [("X-Upstream", NAME)])

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _handle


class Control(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _json(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with lock:
            self._json({"requests": list(log), "connections": counters["connections"], "open": counters["open"]})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = json.loads(self.rfile.read(n) or b"{}")
        with lock:
            if self.path == "/clear":
                log.clear()
            else:
                state.update(data)
        self._json({"ok": True})


def main():
    global NAME
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--control-port", type=int, required=True)
    ap.add_argument("--name", default="flaky")
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    NAME = args.name
    srv = Server((args.host, args.port), Handler)
    ctl = Server(("127.0.0.1", args.control_port), Control)
    threading.Thread(target=ctl.serve_forever, daemon=True).start()
    print("ready", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
