"""ficus's own HTTP/1.1 upstream client (gateway/upstream/client.c, response.c) against a scripted raw-socket upstream.

The upstream (RawUpstream, stdlib sockets) answers by path with exact bytes, often split at awkward boundaries, and
records which accepted connection carried each request, so the tests can tell whether ficus reused a keep-alive
connection or (correctly) did not.
"""
import hashlib
import socket
import threading
import time

import pytest

from conftest import SLOW, wait_for

CONFIG = """\
server:
  workers: 1
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
  log_level: info
upstreams:
  raw: { endpoints: ["http://127.0.0.1:$raw_port"], timeout: 3s, keepalive_timeout: 30s }
routes:
  - name: all
    match: { path_prefix: / }
    to: raw
"""


class Req:
    def __init__(self, conn, method, path, headers, body):
        self.conn, self.method, self.path, self.headers, self.body = conn, method, path, headers, body

    def __repr__(self):
        return f"Req(conn={self.conn}, {self.method} {self.path})"


def send_parts(c, data, sizes):
    """Send data in pieces of the given sizes (cycled), each on its own segment (TCP_NODELAY + a short pause)."""
    i = k = 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        c.sendall(data[i:i + n])
        i += n
        k += 1
        time.sleep(0.002)


def chunked(pieces, trailer=b""):
    out = b""
    for i, p in enumerate(pieces):
        ext = b";name=v" if i % 2 else b""
        out += b"%x%s\r\n%s\r\n" % (len(p), ext, p)
    return out + b"0\r\n" + trailer + b"\r\n"


class RawUpstream:
    """A scripted upstream: handler(conn_socket, req) writes the response and returns True to keep the connection."""

    def __init__(self, handler):
        self.handler = handler
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.listeners = [self.lsock]
        try:  # where "localhost" also resolves to ::1, listen there too (same port)
            l6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            l6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            l6.bind(("::1", self.port))
            l6.listen(64)
            self.listeners.append(l6)
        except OSError:
            pass
        self.lock = threading.Lock()
        self.accepted = 0
        self.requests = []
        self.socks = []
        self.eof = set()  # connections ficus closed (EOF seen while waiting for a request)
        self.armed = set()  # connections to close, unanswered, on their next request
        for l in self.listeners:
            threading.Thread(target=self._accept, args=(l,), daemon=True).start()

    def _accept(self, lsock):
        while True:
            try:
                c, _ = lsock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                n = self.accepted
                self.socks.append(c)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(c, n), daemon=True).start()

    def _serve(self, c, n):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        with self.lock:
                            self.eof.add(n)
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
                cl = int(headers.get("content-length", "0"))
                while len(buf) < cl:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                body, buf = buf[:cl], buf[cl:]
                req = Req(n, method, path, headers, body)
                with self.lock:
                    self.requests.append(req)
                    if n in self.armed:
                        return  # as if the upstream had closed the keep-alive connection just as ficus reused it
                    if path.startswith("/arm-reset"):
                        self.armed.add(n)
                if not self.handler(c, req):
                    return
        except OSError:
            return
        finally:
            try:
                c.close()
            except OSError:
                pass

    def conns_of(self, path_prefix):
        with self.lock:
            return [r.conn for r in self.requests if r.path.startswith(path_prefix)]

    def close(self):
        for l in self.listeners:
            l.close()
        with self.lock:
            for s in self.socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


BIG = bytes((i * 7 + 3) % 251 for i in range(3 * 1024 * 1024 + 17))


def script(c, req):
    """The default upstream: the response is chosen by the request path."""
    p = req.path.split("?")[0]
    if p == "/cl":
        body = b"hello, content-length\n"
        msg = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nX-Kind: cl\r\n\r\n%s" % (len(body), body)
        send_parts(c, msg, [7, 1, 13, 2])
        return True
    if p == "/cl-one-write":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        return True
    if p == "/chunked-bytewise":
        # every framing byte on its own segment: chunk-size lines, CR/LF pairs and the trailer all split
        body = chunked([b"abc", b"d" * 70, b"\r\n-not-framing-\r\n", b"z"], trailer=b"X-Trailer: t\r\n")
        c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: chunked\r\n\r\n")
        send_parts(c, body, [1])
        return True
    if p == "/chunked-with-head":
        # head and the whole chunked body in one segment, uppercase hex, extensions
        c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"A;x=y\r\n0123456789\r\n" + b"0\r\n\r\n")
        return True
    if p == "/chunked-odd":
        pieces = [bytes([65 + i % 26]) * (i * 37 % 500 + 1) for i in range(40)]
        send_parts(c, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(pieces), [3, 5, 1, 4093, 2, 700])
        return True
    if p == "/big-cl":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BIG))
        c.sendall(BIG)
        return True
    if p == "/big-chunked":
        c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(BIG), 10000):
            c.sendall(b"%x\r\n%s\r\n" % (len(BIG[i:i + 10000]), BIG[i:i + 10000]))
        c.sendall(b"0\r\n\r\n")
        return True
    if p == "/close-delimited":
        send_parts(c, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end\n", [10, 3])
        return False
    if p == "/conn-close":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        return True  # keeps the socket open: ficus must not send another request on it
    if p == "/http10":
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        return True
    if p == "/http10-ka":
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello")
        return True
    if p == "/continue":
        c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        time.sleep(0.05)
        c.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        time.sleep(0.02)
        c.sendall(b"after")
        return True
    if p == "/204":
        c.sendall(b"HTTP/1.1 204 No Content\r\nX-Kind: 204\r\n\r\n")
        return True
    if p == "/304":
        c.sendall(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n")
        return True
    if p == "/head":
        # a HEAD answer announces a length but carries no body
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nX-Kind: head\r\n\r\n")
        return True
    if p.startswith("/headers/"):
        n = int(p.rsplit("/", 1)[1])  # total header count, Content-Length included
        hs = b"".join(b"X-H%d: v%d\r\n" % (i, i) for i in range(n - 1))
        c.sendall(b"HTTP/1.1 200 OK\r\n" + hs + b"Content-Length: 2\r\n\r\nok")
        return True
    if p == "/huge-head":
        c.sendall(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\nContent-Length: 2\r\n\r\nok")
        return True
    if p.startswith("/bad/"):
        c.sendall(BAD[p[5:]])
        return False
    if p == "/truncated-chunked":
        c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        time.sleep(0.05)
        return False
    if p == "/truncated-cl":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel")
        time.sleep(0.05)
        return False
    if p == "/close-when-idle":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        time.sleep(0.1)
        return False  # the upstream's keep-alive timeout: closes the idle connection
    if p == "/garbage-when-idle":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        time.sleep(0.1)
        c.sendall(b"HTTP/1.1 200 OK\r\n")  # unsolicited bytes on an idle connection
        return True
    if p == "/arm-reset":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True
    if p == "/stall-body":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel")
        time.sleep(1.5 * SLOW)
        return False
    if p == "/post":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(req.body), req.body))
        return True
    c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    return True


BAD = {
    "status-letters": b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n",
    "status-http2": b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    "status-icy": b"ICY 200 OK\r\nContent-Length: 0\r\n\r\n",
    "status-nospace": b"HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n",
    "status-range": b"HTTP/1.1 999 What\r\nContent-Length: 0\r\n\r\n",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    "bare-lf": b"HTTP/1.1 200 OK\r\nX-A: a\nContent-Length: 0\r\n\r\n",
    "space-before-colon": b"HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length: 0\r\n\r\n",
    "ctl-in-value": b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 0\r\n\r\n",
    "te-and-cl": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "te-gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx",
    "cl-conflict": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "cl-negative": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    "bad-chunk-size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "switching": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
}


@pytest.fixture
def raw():
    up = RawUpstream(script)
    yield up
    up.close()


@pytest.fixture
def gw(ficus_factory, raw):
    return ficus_factory(CONFIG, raw_port=raw.port)


@pytest.fixture
def c1(gw):
    with gw.client(http2=False) as c:
        yield c


def retries(gw):
    return gw.metrics().sum("ficus_upstream_retries_total", upstream="raw")


def upstream_errors(gw, kind):
    return gw.metrics().get("ficus_upstream_errors_total", upstream="raw", kind=kind)


# ---------------------------------------------------------------------------------------------------------- reuse


def test_sequential_requests_reuse_one_connection(gw, raw, c1):
    for i in range(20):
        r = c1.get(f"/cl?i={i}")
        assert r.status_code == 200 and r.content == b"hello, content-length\n"
    assert raw.accepted == 1, raw.requests
    assert len(raw.conns_of("/cl")) == 20


def test_reuse_across_response_kinds(gw, raw, c1):
    """Every self-delimited response leaves the connection reusable: all of these run on one connection."""
    for path in ["/cl", "/chunked-with-head", "/chunked-bytewise", "/204", "/304", "/continue", "/http10-ka", "/cl-one-write"]:
        assert c1.get(path).status_code in (200, 204, 304), path
    assert c1.head("/head").status_code == 200
    assert c1.get("/cl").status_code == 200
    assert raw.accepted == 1, raw.requests


def test_h2_clients_share_the_pool(gw, raw):
    with gw.client(http2=True) as c2:
        for _ in range(10):
            assert c2.get("/cl").content == b"hello, content-length\n"
    assert raw.accepted == 1


# ---------------------------------------------------------------------------------------------------------- framing


@pytest.mark.parametrize("proto", ["h1", "h2"])
def test_chunked_split_at_every_byte(gw, proto):
    with gw.client(http2=proto == "h2") as c:
        r = c.get("/chunked-bytewise")
    assert r.status_code == 200
    assert r.content == b"abc" + b"d" * 70 + b"\r\n-not-framing-\r\n" + b"z"
    assert r.headers["x-kind"] == "chunked"
    assert "x-trailer" not in r.headers


def test_chunked_with_head_in_one_segment(c1):
    r = c1.get("/chunked-with-head")
    assert r.status_code == 200 and r.content == b"0123456789"


def test_chunked_odd_splits(c1):
    r = c1.get("/chunked-odd")
    assert r.content == b"".join(bytes([65 + i % 26]) * (i * 37 % 500 + 1) for i in range(40))


def test_content_length_split(c1):
    r = c1.get("/cl")
    assert r.status_code == 200 and r.content == b"hello, content-length\n"
    assert r.headers["content-length"] == str(len(r.content))
    assert r.headers["x-kind"] == "cl"


@pytest.mark.parametrize("path", ["/big-cl", "/big-chunked"])
@pytest.mark.parametrize("proto", ["h1", "h2"])
def test_large_bodies_streamed_intact(gw, raw, path, proto):
    with gw.client(http2=proto == "h2") as c:
        for _ in range(2):
            r = c.get(path)
            assert r.status_code == 200
            assert len(r.content) == len(BIG) and hashlib.sha256(r.content).digest() == hashlib.sha256(BIG).digest()
    assert raw.accepted == 1


def test_close_delimited_body_not_reused(gw, raw, c1):
    r = c1.get("/close-delimited")
    assert r.status_code == 200 and r.content == b"until the end\n"
    assert c1.get("/cl").status_code == 200
    assert raw.accepted == 2


def test_connection_close_not_reused(gw, raw, c1):
    assert c1.get("/conn-close").content == b"ok"
    assert c1.get("/cl").status_code == 200
    conns = raw.conns_of("/conn-close") + raw.conns_of("/cl")
    assert conns[0] != conns[1], raw.requests


def test_http10_without_keepalive_not_reused(gw, raw, c1):
    assert c1.get("/http10").content == b"hello"
    assert c1.get("/cl").status_code == 200
    assert raw.conns_of("/http10")[0] != raw.conns_of("/cl")[0]


def test_http10_keepalive_reused(gw, raw, c1):
    assert c1.get("/http10-ka").content == b"hello"
    assert c1.get("/cl").status_code == 200
    assert raw.accepted == 1


def test_informational_responses_skipped(c1):
    r = c1.get("/continue")
    assert r.status_code == 200 and r.content == b"after"
    assert "link" not in r.headers


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(gw, raw, c1, status):
    r = c1.get(f"/{status}")
    assert r.status_code == status and r.content == b""
    assert c1.get("/cl").content == b"hello, content-length\n"  # the same connection, framing intact
    assert raw.accepted == 1


def test_head_has_no_body(gw, raw, c1):
    r = c1.head("/head")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["x-kind"] == "head"
    assert c1.get("/cl").content == b"hello, content-length\n"
    assert raw.accepted == 1


def test_request_body_sent_and_connection_reused(gw, raw, c1):
    for n in (0, 1, 70000):
        body = bytes(i % 256 for i in range(n))
        r = c1.post("/post", content=body)
        assert r.status_code == 200 and r.content == body
    assert raw.accepted == 1


# ---------------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("n,status", [(100, 200), (101, 502), (200, 502)])
def test_header_count_bound(c1, n, status):
    r = c1.get(f"/headers/{n}")
    assert r.status_code == status
    if status == 502:
        assert r.json() == {"error": "bad_gateway"}


def test_head_size_bound(gw, c1):
    r = c1.get("/huge-head")
    assert r.status_code == 502
    assert upstream_errors(gw, "protocol") == 1


@pytest.mark.parametrize("kind", sorted(BAD))
def test_malformed_responses_502(gw, c1, kind):
    r = c1.get(f"/bad/{kind}", headers={"X-Request-Id": f"bad-{kind}"})
    assert r.status_code == 502 and r.json() == {"error": "bad_gateway"}
    e = gw.wait_access_log(lambda es: [x for x in es if x.get("request_id") == f"bad-{kind}"])[0]
    assert e["error"] == "upstream_protocol_error"
    assert retries(gw) == 0


@pytest.mark.parametrize("path", ["/truncated-chunked", "/truncated-cl"])
def test_body_cut_short_is_an_error(gw, c1, path):
    import httpx
    with pytest.raises(httpx.HTTPError):
        c1.get(path, headers={"X-Request-Id": f"cut-{path[1:]}"})
    e = gw.wait_access_log(lambda es: [x for x in es if x.get("request_id") == f"cut-{path[1:]}"])[0]
    assert e["error"] == "upstream_reset_body"
    assert e["upstream_status"] == 200


# ---------------------------------------------------------------------------------------------------------- idle connections


@pytest.mark.parametrize("path", ["/close-when-idle", "/garbage-when-idle"])
def test_idle_connection_closed_by_upstream(gw, raw, c1, path):
    """The upstream closes (or writes to) a pooled connection: ficus notices while idle, no request fails or retries."""
    assert c1.get(path).content == b"ok"
    time.sleep(0.5 * SLOW)
    for _ in range(3):
        assert c1.get("/cl").status_code == 200
    assert raw.accepted == 2
    assert retries(gw) == 0
    assert upstream_errors(gw, "reset") == 0


def test_idle_timeout_closes_pooled_connections(ficus_factory, raw):
    gw = ficus_factory(CONFIG.replace("keepalive_timeout: 30s", "keepalive_timeout: 200ms"), raw_port=raw.port)
    with gw.client(http2=False) as c:
        assert c.get("/cl").status_code == 200
        t0 = time.monotonic()
        wait_for(lambda: 1 in raw.eof, 5 * SLOW, what="ficus closing the idle connection")
        assert time.monotonic() - t0 >= 0.1
        assert c.get("/cl").status_code == 200
    assert raw.accepted == 2


def test_reload_keeps_idle_connections(gw, raw, c1):
    """Pools belong to the endpoint, not to the generation (issue 11): the next generation reuses the idle connection."""
    assert c1.get("/cl").status_code == 200
    assert gw.reload().ok
    assert gw.reload().ok
    assert c1.get("/cl").status_code == 200
    assert c1.get("/cl").status_code == 200
    assert raw.accepted == 1
    assert raw.eof == set()


def test_client_gone_mid_body_closes_upstream_connection(gw, raw):
    """A client that leaves during a large body: the half-read upstream connection is closed, never pooled."""
    with gw.client(http2=False) as c:
        with c.stream("GET", "/big-cl") as r:
            assert r.status_code == 200
            next(r.iter_bytes())
    # the upstream connection that carried /big-cl must not serve the next request if it was left half-read; when
    # ficus managed to relay the whole body into the kernel's buffers before noticing the client was gone (loopback
    # buffers grow to megabytes), the response was complete and pooling its connection is right
    entry = gw.wait_access_log(lambda es: [x for x in es if x.get("path") == "/big-cl"])[0]
    with gw.client(http2=False) as c:
        assert c.get("/cl").status_code == 200
    if entry.get("error") is not None:
        assert raw.conns_of("/cl")[0] != raw.conns_of("/big-cl")[0], entry
    else:
        assert entry["bytes"] == len(BIG), entry


# ---------------------------------------------------------------------------------------------------------- retries, timeouts, names


def test_reset_on_reused_connection_retried_for_idempotent(gw, raw, c1):
    assert c1.get("/arm-reset").content == b"ok"
    r = c1.get("/cl")  # goes out on the pooled connection, which the upstream drops unanswered
    assert r.status_code == 200 and r.content == b"hello, content-length\n"
    assert retries(gw) == 1
    assert upstream_errors(gw, "reset") == 1
    assert raw.accepted == 2


def test_reset_on_reused_connection_not_retried_for_post(gw, raw, c1):
    assert c1.get("/arm-reset").content == b"ok"
    r = c1.post("/post", content=b"x", headers={"X-Request-Id": "post-reset"})
    assert r.status_code == 502 and r.json() == {"error": "bad_gateway"}
    e = gw.wait_access_log(lambda es: [x for x in es if x.get("request_id") == "post-reset"])[0]
    assert e["error"] == "upstream_reset"
    assert retries(gw) == 0


def test_body_stall_times_out(ficus_factory, raw):
    gw = ficus_factory(CONFIG.replace("timeout: 3s", "timeout: 300ms"), raw_port=raw.port)
    import httpx
    with gw.client(http2=False) as c:
        t0 = time.monotonic()
        with pytest.raises(httpx.HTTPError):
            c.get("/stall-body", headers={"X-Request-Id": "stall"})
        assert time.monotonic() - t0 < 1.4 * SLOW
    e = gw.wait_access_log(lambda es: [x for x in es if x.get("request_id") == "stall"])[0]
    assert e["error"] == "upstream_timeout_body" and e["upstream_status"] == 200
    assert upstream_errors(gw, "timeout") == 1


def test_connect_timeout_504(ficus_factory):
    # a listener whose accept queue is full: further SYNs are dropped and connect() hangs
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    time.sleep(0.1)
    try:
        gw = ficus_factory(CONFIG.replace("timeout: 3s,", "timeout: 3s, connect_timeout: 300ms,"), raw_port=port)
        with gw.client(http2=False) as c:
            t0 = time.monotonic()
            r = c.get("/x", headers={"X-Request-Id": "cto"})
            took = time.monotonic() - t0
        assert r.status_code == 504 and r.json() == {"error": "gateway_timeout"}
        assert 0.25 <= took < 2 * SLOW
        e = gw.wait_access_log(lambda es: [x for x in es if x.get("request_id") == "cto"])[0]
        assert e["error"] == "upstream_connect_timeout"
        assert upstream_errors(gw, "timeout") == 2  # default retry: 2 attempts on connect_failure (one endpoint: again)
    finally:
        for s in fillers:
            s.close()
        lsock.close()


def test_host_name_endpoint(ficus_factory, raw):
    gw = ficus_factory(CONFIG.replace("http://127.0.0.1:$raw_port", "http://localhost:$raw_port"), raw_port=raw.port)
    with gw.client(http2=False) as c:
        for _ in range(5):
            assert c.get("/cl").content == b"hello, content-length\n"
    assert raw.accepted == 1
