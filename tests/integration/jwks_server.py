"""A controllable HTTPS JWKS / OpenID discovery server for the JWT integration tests (stdlib only).

    srv = JwksServer(certs)                # certificate for DNS:localhost signed by the test session CA
    srv.set_keys([jwk1, jwk2])             # jwcrypto JWKs (public parts are served) or plain dicts
    srv.max_age = 1                        # Cache-Control: max-age=1 (None = no Cache-Control header)
    srv.mode = "garbage" | "500" | "ok"    # what /jwks.json answers
    srv.hang(10)                           # accept, read the request, never answer (for up to 10 s or until unhang())
    srv.delay = 1.5                        # answer each request 1.5 s late, with the key set of its arrival time
    srv.stop(); srv.start()                # down (listening socket closed: connections refused) / up again, same port
    srv.count("/jwks.json")                # requests received on a path (counted on arrival, whatever the mode)

URLs: srv.jwks_uri = https://localhost:PORT/jwks.json; srv.issuer = https://localhost:PORT (its discovery document,
/.well-known/openid-configuration, names that issuer and jwks_uri unless overridden with srv.discovery_doc).
Other paths can be served with srv.extra[path] = (status, body_bytes). The server can be created without listening
(start=False), e.g. for "IdP down when ficus starts"; the port is reserved from the suite's free-port pool.
Every handshake and request runs on its own daemon thread, so a hanging response never blocks the others.
"""
import errno
import json
import os
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import PortCollision, free_port
from ports import ATTEMPTS as PORT_ATTEMPTS, foreign_listeners

JWKS_PATH = "/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def finish_request(self, request, client_address):
        # TLS handshake on the per-connection thread (not in accept(), which a stalled client would block)
        request.settimeout(10)
        try:
            tls = self.owner.ssl_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        self.owner._track(tls, True)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            self.owner._track(tls, False)

    def shutdown_request(self, request):
        try:
            request.close()
        except OSError:
            pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "jwks-test/1"

    def log_message(self, fmt, *args):
        pass

    def version_string(self):
        return self.server_version

    def do_GET(self):
        self.server.owner._handle(self)


class JwksServer:
    def __init__(self, certs, port=None, start=True):
        self.certs = certs
        self._fixed_port = port is not None
        self.port = port or free_port()
        if not hasattr(certs, "jwks_localhost"):
            certs.jwks_localhost = certs.issue("jwks-localhost", ["DNS:localhost"])
        crt, key = certs.jwks_localhost
        self.ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl_ctx.load_cert_chain(crt, key)
        self.ssl_ctx.set_alpn_protocols(["http/1.1"])
        self.jwks_uri = f"https://localhost:{self.port}{JWKS_PATH}"
        self.issuer = f"https://localhost:{self.port}"
        self.discovery_doc = None  # None = {"issuer": self.issuer, "jwks_uri": self.jwks_uri}
        self.extra = {}
        self.max_age = None
        self.mode = "ok"
        self.delay = 0.0
        self._lock = threading.Lock()
        self._keys_body = json.dumps({"keys": []}).encode()
        self._counts = {}
        self._log = []  # (monotonic time, path)
        self._hang_until = 0.0
        self._unhang = threading.Event()
        self._conns = set()
        self._httpd = None
        self._thread = None
        if start:
            self.start()
        else:
            self._fixed_port = True  # the caller may hand out jwks_uri before it starts

    # -- control ------------------------------------------------------------------------------------------------
    def set_keys(self, keys):
        """Serve this key set: a list of jwcrypto JWKs (their public part) and/or dicts, or a raw bytes body."""
        if isinstance(keys, (bytes, str)):
            body = keys.encode() if isinstance(keys, str) else keys
        else:
            out = []
            for k in keys:
                out.append(k if isinstance(k, dict) else k.export_public(as_dict=True))
            body = json.dumps({"keys": out}).encode()
        with self._lock:
            self._keys_body = body

    def hang(self, seconds):
        """From now on, requests are read and then left unanswered for `seconds` (or until unhang())."""
        self._unhang.clear()
        self._hang_until = time.monotonic() + seconds

    def unhang(self):
        self._hang_until = 0.0
        self._unhang.set()

    def count(self, path=JWKS_PATH):
        with self._lock:
            return self._counts.get(path, 0)

    def times(self, path=JWKS_PATH):
        """Monotonic arrival times of the requests on path."""
        with self._lock:
            return [t for t, p in self._log if p == path]

    @property
    def running(self):
        return self._httpd is not None

    def start(self):
        """Listen (again) on self.port. On the first start, a port taken by another process is replaced by another
        free one (jwks_uri and issuer follow); later starts keep the port."""
        if self._httpd is not None:
            return
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                httpd = _Server(("127.0.0.1", self.port), _Handler)
                if not foreign_listeners([self.port], [os.getpid()]):
                    break
                httpd.server_close()
                why = "another process listens there too"
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise
                why = "bind failed"
            if self._fixed_port or attempt == PORT_ATTEMPTS:
                raise PortCollision([self.port], why)
            self.port = free_port()
            self.jwks_uri = f"https://localhost:{self.port}{JWKS_PATH}"
            self.issuer = f"https://localhost:{self.port}"
        self._fixed_port = True  # clients know the port now
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self):
        """Close the listening socket (new connections are refused) and every open connection."""
        httpd, self._httpd = self._httpd, None
        self.unhang()
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        self._thread.join(5)
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- internals ----------------------------------------------------------------------------------------------
    def _track(self, conn, add):
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _handle(self, h):
        path = h.path.split("?", 1)[0]
        with self._lock:
            self._counts[path] = self._counts.get(path, 0) + 1
            self._log.append((time.monotonic(), path))
            keys_body = self._keys_body
        left = self._hang_until - time.monotonic()
        if left > 0:
            self._unhang.wait(left)
            h.close_connection = True
            return  # never answered: the connection is closed when the hang ends
        if self.delay:
            time.sleep(self.delay)  # a slow IdP: the answer is the set as it was when the request arrived
        headers = {}
        if path == JWKS_PATH:
            if self.mode == "500":
                status, body = 500, b'{"error":"internal"}'
            elif self.mode == "garbage":
                status, body = 200, b"\x00<html>not a key set}}{{\xff"
            else:
                status, body = 200, keys_body
            if status == 200 and self.max_age is not None:
                headers["Cache-Control"] = f"public, max-age={self.max_age}"
        elif path == DISCOVERY_PATH:
            doc = self.discovery_doc or {"issuer": self.issuer, "jwks_uri": self.jwks_uri}
            status, body = 200, json.dumps(doc).encode()
        elif path in self.extra:
            status, body = self.extra[path]
        else:
            status, body = 404, b'{"error":"not_found"}'
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Connection", "close")
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)
        h.close_connection = True
