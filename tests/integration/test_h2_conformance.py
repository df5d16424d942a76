"""The two h2spec cases ficus itself sees (issue 10 item 8): an empty `:path` is a stream error PROTOCOL_ERROR (not a
400 response), over TLS and h2c; an invalid connection preface on a plain listener gets GOAWAY PROTOCOL_ERROR (not an
HTTP/1.1 fallback), while HTTP/1.1 and HTTP/2 with prior knowledge keep working there."""
import socket
import struct

import pytest

from conftest import SLOW, module_ficus
from h2_raw import (ACK, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PREFACE, PROTOCOL_ERROR, RST_STREAM, SETTINGS,
                    Reader, frame, request_block)

CONFIG = """\
server:
  workers: 1
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
    - address: "127.0.0.1:$plain_port"
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: "off"
  http2: { h2c: true }
routes:
  - name: ping
    match: { path_prefix: / }
    respond: { status: 200, body: "pong", content_type: text/plain }
"""


@pytest.fixture(scope="module")
def fx(request, tmp_path_factory, certs, echoes):
    return module_ficus(request, tmp_path_factory, certs, echoes, CONFIG)


def open_h2(fx, certs, tls):
    if tls:
        raw = socket.create_connection(("127.0.0.1", fx.tls_port), timeout=10 * SLOW)
        s = certs.ssl_context(alpn=["h2"]).wrap_socket(raw, server_hostname="localhost")
        assert s.selected_alpn_protocol() == "h2"
    else:
        s = socket.create_connection(("127.0.0.1", fx.port("plain")), timeout=10 * SLOW)
    s.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(SETTINGS, ACK, 0))
    return s


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "h2c"])
def test_empty_path_is_a_stream_error(fx, certs, tls):
    s = open_h2(fx, certs, tls)
    try:
        scheme = b"https" if tls else b"http"
        s.sendall(frame(HEADERS, END_STREAM | END_HEADERS, 1, request_block(b"", scheme=scheme)))
        r = Reader(s)
        assert r.read_until(lambda r: r.of_type(RST_STREAM) or r.of_type(HEADERS), 10 * SLOW), r.frames
        assert not r.of_type(HEADERS), "answered with a response instead of a stream error"
        (_, _, sid, payload), = r.of_type(RST_STREAM)
        assert sid == 1 and struct.unpack(">I", payload)[0] == PROTOCOL_ERROR
        # the connection stays usable
        s.sendall(frame(HEADERS, END_STREAM | END_HEADERS, 3, request_block(b"/ok", scheme=scheme)))
        assert r.read_until(lambda r: any(f[2] == 3 for f in r.of_type(HEADERS)), 10 * SLOW), r.frames
    finally:
        s.close()


def test_invalid_preface_on_plain_listener_gets_goaway(fx):
    with socket.create_connection(("127.0.0.1", fx.port("plain")), timeout=10 * SLOW) as s:
        s.sendall(b"INVALID CONNECTION PREFACE\r\n\r\n")
        r = Reader(s)
        assert r.read_until(lambda r: r.of_type(GOAWAY), 10 * SLOW), (r.frames, r.buf[:80])
        (_, _, sid, payload), = r.of_type(GOAWAY)
        assert sid == 0 and struct.unpack(">II", payload[:8])[1] == PROTOCOL_ERROR
        assert r.read_until(lambda r: r.eof, 10 * SLOW), "connection not closed after GOAWAY"


def test_broken_preface_gets_goaway(fx):
    with socket.create_connection(("127.0.0.1", fx.port("plain")), timeout=10 * SLOW) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        r = Reader(s)
        assert r.read_until(lambda r: r.of_type(GOAWAY), 10 * SLOW), (r.frames, r.buf[:80])


@pytest.mark.parametrize("request_bytes", [
    b"GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    b"\r\nGET /x HTTP/1.0\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"[:7],  # sent in two parts
], ids=["h1.1", "leading-crlf-h1.0", "split"])
def test_http1_still_served_on_plain_listener(fx, request_bytes):
    with socket.create_connection(("127.0.0.1", fx.port("plain")), timeout=10 * SLOW) as s:
        s.sendall(request_bytes)
        if len(request_bytes) == 7:
            s.sendall(b"GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"[7:])
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        assert buf.startswith(b"HTTP/1.") and b" 200 " in buf.split(b"\r\n")[0], buf[:200]
        assert buf.endswith(b"pong")


def test_bad_http1_request_still_gets_400(fx):
    with socket.create_connection(("127.0.0.1", fx.port("plain")), timeout=10 * SLOW) as s:
        s.sendall(b"GET /x HTTP/1.1\r\nbad header\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 400")


def test_h2c_prior_knowledge_served(fx, certs):
    s = open_h2(fx, certs, tls=False)
    try:
        s.sendall(frame(HEADERS, END_STREAM | END_HEADERS, 1, request_block(b"/x", scheme=b"http")))
        r = Reader(s)
        assert r.read_until(lambda r: r.of_type(HEADERS), 10 * SLOW), r.frames
    finally:
        s.close()
