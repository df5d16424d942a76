"""HTTP/2 rapid reset (CVE-2023-44487): a HEADERS+RST_STREAM flood closes that connection; others are unaffected."""
import socket
import ssl
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest

from conftest import SLOW, module_ficus, wait_for

CONFIG = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: "off"
  http2: { max_resets: 200, reset_window: 10s }
upstreams:
  a: { endpoints: ["http://$echo_a"] }
routes:
  - name: ping
    match: { path: /ping }
    respond: { status: 200, body: "pong", content_type: text/plain }
  - name: api
    match: { path_prefix: /api }
    to: a
"""

FRAME_GOAWAY = 0x7


@pytest.fixture(scope="module")
def fx(request, tmp_path_factory, certs, echoes):
    return module_ficus(request, tmp_path_factory, certs, echoes, CONFIG)


def h2_socket(fx, certs):
    ctx = certs.ssl_context(alpn=["h2"])
    raw = socket.create_connection(("127.0.0.1", fx.tls_port), timeout=10 * SLOW)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    assert s.selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    s.sendall(conn.data_to_send())
    return s, conn


def request_headers(fx, path):
    return [(":method", "GET"), (":scheme", "https"), (":authority", f"localhost:{fx.tls_port}"), (":path", path)]


class FrameState:
    """Raw frame accounting for the flooding connection (the h2 state machine is not fed: it would choke)."""

    def __init__(self):
        self.buf = b""
        self.goaway = False
        self.eof = False
        self.reason = None

    def feed(self, data):
        self.buf += data
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[0:3], "big")
            if len(self.buf) < 9 + length:
                break
            if self.buf[3] == FRAME_GOAWAY:
                self.goaway = True
            self.buf = self.buf[9 + length:]

    @property
    def closed(self):
        return self.eof or self.goaway


def pump(s, st, timeout):
    """Read what the server sent (waiting up to timeout for the first bytes, then without waiting)."""
    s.settimeout(timeout)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                st.eof, st.reason = True, "EOF"
                return
            st.feed(chunk)
            s.settimeout(0)
    except (ssl.SSLWantReadError, BlockingIOError, socket.timeout):
        return
    except OSError as e:
        st.eof, st.reason = True, repr(e)


def test_reset_flood_closes_connection(fx, certs):
    before = fx.metrics().sum("ficus_http2_reset_flood_total")
    s, conn = h2_socket(fx, certs)
    st = FrameState()

    # a well-behaved client on another connection during the flood
    probe = {"ok": 0, "bad": [], "max": 0.0}
    probing = threading.Event()
    probing.set()

    def prober():
        with fx.client(http2=True, timeout=5) as c:
            while probing.is_set():
                t0 = time.monotonic()
                try:
                    r = c.get("/api/probe")
                    if r.status_code == 200:
                        probe["ok"] += 1
                    else:
                        probe["bad"].append(r.status_code)
                except Exception as e:  # noqa: BLE001
                    probe["bad"].append(repr(e))
                probe["max"] = max(probe["max"], time.monotonic() - t0)
                time.sleep(0.02)

    pt = threading.Thread(target=prober, daemon=True)
    pt.start()
    # the prober is running (and connected) before the flood starts: the flood may be over in a fraction of a second
    wait_for(lambda: probe["ok"] >= 1, 15 * SLOW, what="the prober's first answer")

    sent_pairs = 0
    hdrs = request_headers(fx, "/api/flood")
    t_flood = time.monotonic()
    try:
        for batch in range(100):
            for _ in range(100):
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, hdrs, end_stream=True)
                conn.reset_stream(sid, error_code=8)  # CANCEL
                sent_pairs += 1
            s.settimeout(10 * SLOW)
            s.sendall(conn.data_to_send())
            pump(s, st, 0)
            if st.closed:
                break
    except (OSError, h2.exceptions.ProtocolError) as e:
        st.eof, st.reason = True, repr(e)  # the server closed the connection under us: what we want
    deadline = time.monotonic() + 10 * SLOW
    while not st.closed and time.monotonic() < deadline:
        pump(s, st, 0.5)
    flood_took = time.monotonic() - t_flood
    time.sleep(0.5)  # keep probing a bit after the flood
    probing.clear()
    pt.join(15 * SLOW)
    s.close()

    assert st.closed, f"connection still open {flood_took:.1f}s after {sent_pairs} HEADERS+RST_STREAM pairs"
    assert probe["ok"] >= 3 and not probe["bad"], f"other client during flood: {probe}"
    assert probe["max"] < 2.0 * SLOW, f"other client's slowest request took {probe['max']:.2f}s"
    after = fx.metrics().sum("ficus_http2_reset_flood_total")
    assert after >= before + 1, f"ficus_http2_reset_flood_total {before} -> {after}"
    with fx.client(http2=True) as c:
        assert c.get("/ping").status_code == 200


def read_response(s, conn, stream_id, timeout):
    """Read until stream_id has a complete response; returns (status, body)."""
    status, body = None, b""
    deadline = time.monotonic() + timeout
    s.settimeout(timeout)
    while time.monotonic() < deadline:
        data = s.recv(65536)
        if not data:
            raise ConnectionError("EOF")
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == stream_id:
                status = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if ev.stream_id == stream_id:
                    body += ev.data
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == stream_id:
                s.sendall(conn.data_to_send())
                return status, body
            elif isinstance(ev, h2.events.ConnectionTerminated):
                raise ConnectionError(f"GOAWAY {ev}")
        s.sendall(conn.data_to_send())
    raise TimeoutError("no response")


def test_few_resets_are_fine(fx, certs):
    """Cancelling fewer than max_resets streams is normal browsing: the connection stays usable."""
    s, conn = h2_socket(fx, certs)
    try:
        hdrs = request_headers(fx, "/api/_sleep/50")
        for _ in range(50):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, hdrs, end_stream=True)
            conn.reset_stream(sid, error_code=8)
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, request_headers(fx, "/ping"), end_stream=True)
        s.sendall(conn.data_to_send())
        status, body = read_response(s, conn, sid, 10 * SLOW)
        assert status == 200 and body == b"pong"
    finally:
        s.close()
