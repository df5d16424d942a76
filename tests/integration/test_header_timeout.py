"""Request-header completion deadline (issue 10 item 5, as NGINX's client_header_timeout): a client dripping an
unfinished header block is closed after server.limits.header_timeout, on HTTP/1.1 and HTTP/2 (TLS and h2c); an idle
keep-alive connection and a slowly arriving body are not affected."""
import socket
import time

import pytest

from conftest import SLOW, module_ficus
from h2_raw import ACK, CONTINUATION, END_HEADERS, END_STREAM, HEADERS, PREFACE, SETTINGS, Reader, frame, request_block

HEADER_TIMEOUT = 1.0 * SLOW

CONFIG = """\
server:
  workers: 1
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
    - address: "127.0.0.1:$plain_port"
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: "off"
  timeouts: { idle: 600s }
  http2: { h2c: true }
  limits: { header_timeout: $header_timeout }
routes:
  - name: ping
    match: { path_prefix: / }
    respond: { status: 200, body: "pong", content_type: text/plain }
"""


@pytest.fixture(scope="module")
def fx(request, tmp_path_factory, certs, echoes):
    return module_ficus(request, tmp_path_factory, certs, echoes, CONFIG, header_timeout=f"{int(HEADER_TIMEOUT * 1000)}ms")


def drip(s, chunks, interval, limit):
    """Send chunks one by one every interval until the peer closes; returns seconds until closed (None: never)."""
    t0 = time.monotonic()
    for c in chunks:
        if time.monotonic() - t0 > limit:
            return None
        try:
            s.sendall(c)
            s.settimeout(interval)
            data = s.recv(65536)
            if not data:
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - t0
    return None


def endless(unit):
    while True:
        yield unit


def connect(fx, certs, tls, alpn=None):
    raw = socket.create_connection(("127.0.0.1", fx.tls_port if tls else fx.port("plain")), timeout=10 * SLOW)
    if not tls:
        return raw
    return certs.ssl_context(alpn=alpn).wrap_socket(raw, server_hostname="localhost")


def header_timeouts(fx):
    return fx.metrics().get("ficus_client_header_timeouts_total")


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
def test_http1_dripping_head_closed(fx, certs, tls):
    before = header_timeouts(fx)
    with connect(fx, certs, tls, alpn=["http/1.1"]) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Drip: ")
        closed_after = drip(s, endless(b"a"), 0.2, 30 * SLOW)
    assert closed_after is not None, "a dripping header block kept its connection"
    assert closed_after >= HEADER_TIMEOUT * 0.9
    assert header_timeouts(fx) == before + 1


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "h2c"])
def test_http2_dripping_header_block_closed(fx, certs, tls):
    before = header_timeouts(fx)
    with connect(fx, certs, tls, alpn=["h2"]) as s:
        scheme = b"https" if tls else b"http"
        s.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(SETTINGS, ACK, 0))
        s.sendall(frame(HEADERS, END_STREAM, 1, request_block(b"/", scheme=scheme)))  # no END_HEADERS
        cont = frame(CONTINUATION, 0, 1, b"\x00\x01a\x01b")  # one more literal header, block still open
        closed_after = drip(s, endless(cont), 0.2, 30 * SLOW)
    assert closed_after is not None, "a dripping HTTP/2 header block kept its connection"
    assert header_timeouts(fx) == before + 1


def test_http2_partial_headers_frame_closed(fx, certs):
    with connect(fx, certs, True, alpn=["h2"]) as s:
        s.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(SETTINGS, ACK, 0))
        f = frame(HEADERS, END_STREAM | END_HEADERS, 1, request_block(b"/" + b"x" * 100))
        closed_after = drip(s, (f[i:i + 1] for i in range(len(f))), 0.2, 30 * SLOW)
    assert closed_after is not None


def read_pong(s):
    data = b""
    while not data.endswith(b"pong"):
        chunk = s.recv(65536)
        assert chunk, "closed"
        data += chunk
    return data


def test_idle_keepalive_and_slow_body_not_affected(fx, certs):
    with connect(fx, certs, True, alpn=["http/1.1"]) as s:
        for _ in range(2):
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert read_pong(s).startswith(b"HTTP/1.1 200")
            time.sleep(3 * HEADER_TIMEOUT)  # idle between requests: the idle timeout's business
        # a body arriving slowly after a complete head: not a header timeout
        s.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 6\r\n\r\n")
        for c in b"abcdef":
            time.sleep(HEADER_TIMEOUT / 2)
            s.sendall(bytes([c]))
        assert read_pong(s).startswith(b"HTTP/1.1 200")


def test_http2_idle_connection_with_finished_requests_kept(fx, certs):
    with connect(fx, certs, True, alpn=["h2"]) as s:
        s.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(SETTINGS, ACK, 0))
        r = Reader(s)
        for sid in (1, 3):
            s.sendall(frame(HEADERS, END_STREAM | END_HEADERS, sid, request_block(b"/")))
            assert r.read_until(lambda r: any(f[2] == sid and f[0] == HEADERS for f in r.frames), 10 * SLOW)
            time.sleep(3 * HEADER_TIMEOUT)
        assert not r.eof
