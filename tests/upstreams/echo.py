#!/usr/bin/env python3
"""Echo upstream for ficus tests and the demo (stdlib only).

    python3 tests/upstreams/echo.py --port 9000 --name monolith [--host 127.0.0.1]

Threaded HTTP/1.1 server with keep-alive. Any path answers 200 application/json:
    {"upstream": NAME, "method": M, "path": "/raw/path?query",
     "headers": {"lower-name": "value", ...}, "body": "..."}
(repeated request headers are joined with ", ") plus the response header X-Upstream: NAME.

Special paths (matched at the end of the path, so "/api/_sleep/200" works behind a path_prefix route too):
    /_sleep/MS     sleep MS milliseconds, then answer as above
    /_status/CODE  answer with status CODE (same JSON body, none for 1xx/204/304)
    /_bytes/N      N bytes of 'x', text/plain
    /_close        close the connection without answering
Prints "ready" on stdout once listening.
"""
import argparse
import json
import re
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLEEP_RE = re.compile(r"/_sleep/(\d+)$")
STATUS_RE = re.compile(r"/_status/(\d{3})$")
BYTES_RE = re.compile(r"/_bytes/(\d+)$")
CLOSE_RE = re.compile(r"/_close$")
MAX_BODY = 64 * 1024 * 1024


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024
    upstream_name = "echo"


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ficus-echo/1"

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):  # keep the test output quiet
        pass

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            total = 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers up to the empty line
                    while True:
                        t = self.rfile.readline(65537)
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    break
                total += size
                if total > MAX_BODY:
                    raise ConnectionError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)  # CRLF after the chunk
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if length:
            n = int(length)
            if n > MAX_BODY:
                raise ConnectionError("body too large")
            return self.rfile.read(n)
        return b""

    def setup(self):
        super().setup()
        # no Nagle: a response written in two segments would otherwise wait for the peer's delayed ACK (~40 ms)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, code, body, ctype):
        self.send_response(code)
        self.send_header("X-Upstream", self.server.upstream_name)
        no_body = code < 200 or code in (204, 304)
        if not no_body:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        # head and body in one write (end_headers() would flush the head on its own)
        self._headers_buffer.append(b"\r\n")
        if not no_body and self.command != "HEAD":
            self._headers_buffer.append(body)
        self.wfile.write(b"".join(self._headers_buffer))
        self._headers_buffer = []
        self.wfile.flush()

    def _handle(self):
        try:
            body = self._read_body()
        except (ConnectionError, ValueError):
            self.close_connection = True
            return
        path_only = self.path.split("?", 1)[0]
        if CLOSE_RE.search(path_only):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        m = SLEEP_RE.search(path_only)
        if m:
            time.sleep(int(m.group(1)) / 1000.0)
        m = BYTES_RE.search(path_only)
        if m:
            self._send(200, b"x" * int(m.group(1)), "text/plain")
            return
        code = 200
        m = STATUS_RE.search(path_only)
        if m:
            code = int(m.group(1))
        headers = {}
        for name, value in self.headers.items():
            k = name.lower()
            headers[k] = headers[k] + ", " + value if k in headers else value
        doc = {
            "upstream": self.server.upstream_name,
            "method": self.command,
            "path": self.path,
            "headers": headers,
            "body": body.decode("utf-8", "replace"),
        }
        self._send(code, json.dumps(doc).encode(), "application/json")

    def __getattr__(self, name):
        # every method (GET, POST, PUT, DELETE, PATCH, OPTIONS, HEAD, anything) is echoed
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="echo")
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    srv = EchoServer((args.host, args.port), EchoHandler)
    srv.upstream_name = args.name
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
