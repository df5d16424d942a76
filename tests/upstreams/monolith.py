#!/usr/bin/env python3
"""A legacy-monolith upstream for ficus's path and header confusion tests (stdlib only).

    python3 tests/upstreams/monolith.py --port 9000

It reads requests the lenient ways real monoliths do, and says whether any of them lands on its /admin handler:
  - "raw": the target as received (query, ';' parameters, '#' fragment and trailing whitespace cut off, no decoding),
    routed by prefix, as a servlet container or a prefix router would;
  - "decoded": fully percent-decoded (also %2F and %5C), '\\' read as '/', whitespace stripped, slashes merged, dot
    segments resolved, as a framework that decodes before routing would.
The request line is split on whitespace as Python's http.server does (so a TAB or SP inside the target, which a
proxy must never copy into a request line, cuts the path short). Headers are also shown as a WSGI/CGI environ
(`X_User_Id` and `X-User-Id` both become HTTP_X_USER_ID), with every value that mapped to a key.
Answers 200 application/json: {"admin": bool, "views": {...}, "path": target, "headers": [[name, value]...],
"environ": {"HTTP_...": [values]}}. Prints "ready" once listening.
"""
import argparse
import json
import posixpath
import re
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ADMIN_RE = re.compile(r"^/admin(/|$)")


def raw_view(target):
    p = target.split("?", 1)[0].split("#", 1)[0]
    p = "/".join(seg.split(";", 1)[0] for seg in p.split("/"))
    return p.rstrip()


def decoded_view(target):
    p = target.split("?", 1)[0].split("#", 1)[0]
    p = "/".join(seg.split(";", 1)[0] for seg in p.split("/"))
    p = urllib.parse.unquote(p).replace("\\", "/").strip()
    p = re.sub(r"/+", "/", p)
    p = posixpath.normpath(p) if p else "/"
    return p


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        views = {"raw": raw_view(self.path), "decoded": decoded_view(self.path)}
        environ = {}
        for k, v in self.headers.items():
            environ.setdefault("HTTP_" + k.upper().replace("-", "_"), []).append(v)
        body = json.dumps({
            "admin": any(ADMIN_RE.match(v) for v in views.values()),
            "views": views, "path": self.path, "headers": [[k, v] for k, v in self.headers.items()],
            "environ": environ,
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = handle_any


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    a = ap.parse_args()
    srv = Server((a.host, a.port), Handler)
    print("ready", flush=True)
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
