"""Rapid reset spread over many connections (issue 10 item 7): each connection stays under the per-connection guard
(server.http2.max_resets), but one address's connections together are held to server.http2.max_resets_per_address:
past it they are closed (counted in ficus_http2_reset_flood_total) and start no more upstream work, while a client
from another address is served."""
import socket

import h2.config
import h2.connection
import pytest

from conftest import SLOW, module_ficus
from h2_raw import END_HEADERS, END_STREAM, HEADERS, PREFACE, SETTINGS, ACK, Reader, frame, request_block

CONFIG = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: "off"
  http2: { max_resets: 200, max_resets_per_address: 300, max_resets_total: 100000, reset_window: 600s }
upstreams:
  a: { endpoints: ["http://$echo_a"] }
routes:
  - name: api
    match: { path_prefix: /api }
    to: a
"""

CONNECTIONS = 20
PAIRS = 150  # per connection: under max_resets


@pytest.fixture(scope="module")
def fx(request, tmp_path_factory, certs, echoes):
    return module_ficus(request, tmp_path_factory, certs, echoes, CONFIG)


def tls_h2(fx, certs, source="127.0.0.1"):
    raw = socket.socket()
    raw.settimeout(10 * SLOW)
    raw.bind((source, 0))
    raw.connect(("127.0.0.1", fx.tls_port))
    s = certs.ssl_context(alpn=["h2"]).wrap_socket(raw, server_hostname="localhost")
    assert s.selected_alpn_protocol() == "h2"
    return s


def flood_one(fx, certs):
    """One connection: PAIRS x (HEADERS, RST_STREAM CANCEL) in one write. Returns True when ficus closed it."""
    s = tls_h2(fx, certs)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    hdrs = [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"), (":path", "/api/_sleep/2000")]
    for _ in range(PAIRS):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, hdrs, end_stream=True)
        conn.reset_stream(sid, error_code=8)
    try:
        s.sendall(conn.data_to_send())
        r = Reader(s)
        return r.read_until(lambda r: r.eof, 3 * SLOW)
    except OSError:
        return True
    finally:
        s.close()


def served_from(fx, certs, source):
    with tls_h2(fx, certs, source) as s:
        s.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(SETTINGS, ACK, 0))
        s.sendall(frame(HEADERS, END_STREAM | END_HEADERS, 1, request_block(b"/api/ok")))
        r = Reader(s)
        return r.read_until(lambda r: any(f[0] == HEADERS and f[2] == 1 for f in r.frames), 10 * SLOW)


def test_resets_spread_over_connections_of_one_address(fx, certs):
    m = fx.metrics()
    closes_before = m.sum("ficus_http2_reset_flood_total")
    attempts_before = m.sum("ficus_upstream_requests_total", upstream="a")
    closed = sum(flood_one(fx, certs) for _ in range(CONNECTIONS))
    m = fx.metrics()
    closes = m.sum("ficus_http2_reset_flood_total") - closes_before
    attempts = m.sum("ficus_upstream_requests_total", upstream="a") - attempts_before
    # 20 x 150 = 3,000 cancelled requests; the address's budget is 300: the connection crossing it finishes its
    # one write (150), later ones are closed before their frames are parsed
    assert attempts <= 300 + 2 * PAIRS, f"{attempts} upstream attempts started"
    assert closes >= CONNECTIONS - 3, closes
    assert closed >= CONNECTIONS - 3, closed
    # another address is not affected
    assert served_from(fx, certs, "127.0.0.2")
