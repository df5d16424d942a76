#!/usr/bin/env python3
"""A shadow upstream for the mirror tests and the migration drill (stdlib only).

    python3 tests/upstreams/shadow.py --port 9200 [--delay-ms 2000] [--status 200] [--fill x] [--name shadow]

Threaded HTTP/1.1 server with keep-alive. It records every request it gets (method, path, headers, body) and answers:
    .../_bytes/N  N bytes of --fill (default 'x', as tests/upstreams/echo.py answers), text/plain
    anything else {"upstream": NAME, "method": M, "path": P} (application/json)
with status --status, after sleeping --delay-ms. Its own paths (never recorded, never delayed):
    GET /_shadow/seen     {"received": N, "answered": N, "requests": [{method, path, headers, body}, ...]}
    POST /_shadow/reset   forgets what it recorded
Prints "ready" on stdout once listening.
"""
import argparse
import json
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BYTES_RE = re.compile(r"/_bytes/(\d+)$")


class ShadowServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, code, body, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _handle(self):
        srv = self.server
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        path_only = self.path.split("?", 1)[0]
        if path_only == "/_shadow/seen":
            with srv.lock:
                doc = {"received": srv.received, "answered": srv.answered, "requests": list(srv.requests)}
            self._send(200, json.dumps(doc).encode(), "application/json")
            return
        if path_only == "/_shadow/reset":
            with srv.lock:
                srv.received = srv.answered = 0
                srv.requests = []
            self._send(200, b"{}", "application/json")
            return
        with srv.lock:
            srv.received += 1
            srv.requests.append({"method": self.command, "path": self.path,
                                 "headers": {k.lower(): v for k, v in self.headers.items()},
                                 "body": body.decode("utf-8", "replace")})
            del srv.requests[:-1000]
        if srv.delay_ms:
            time.sleep(srv.delay_ms / 1000.0)
        m = BYTES_RE.search(path_only)
        try:
            if m:
                self._send(srv.status, srv.fill * int(m.group(1)), "text/plain")
            else:
                doc = {"upstream": srv.name, "method": self.command, "path": self.path}
                self._send(srv.status, json.dumps(doc).encode(), "application/json")
        except OSError:
            return  # ficus gave up on the copy (its mirror timeout) and closed the connection
        with srv.lock:
            srv.answered += 1

    def __getattr__(self, name):
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="shadow")
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--status", type=int, default=200)
    ap.add_argument("--fill", default="x")
    args = ap.parse_args()
    srv = ShadowServer(("127.0.0.1", args.port), Handler)
    srv.name, srv.delay_ms, srv.status, srv.fill = args.name, args.delay_ms, args.status, args.fill.encode()
    srv.lock = threading.Lock()
    srv.received = srv.answered = 0
    srv.requests = []
    print("ready", flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
