"""Fixtures for the request-hygiene tests: the legacy-monolith upstream (tests/upstreams/monolith.py), an HS256
provider secret with tokens for it (made by jwcrypto), raw HTTP/1.1 requests, and HTTP/2 requests whose headers
python-h2 sends unvalidated (a TAB in :path, odd names)."""
import json
import os
import select
import signal
import ssl
import subprocess
import sys
import time

import pytest

from conftest import SLOW, SOURCE_DIR, free_port, read_h1_response, tls_connect
from jwt_fixtures import claims, hmac_token

MONOLITH_PY = os.path.join(SOURCE_DIR, "tests", "upstreams", "monolith.py")
HS_SECRET = b"0123456789abcdef0123456789abcdef0123456789abcdef"
# a provider `hs` for the test configs (hs_secret_file: $hs_file)
HS_PROVIDER = """\
providers:
  hs:
    issuer: "https://idp.test/"
    hs_secret_file: "$hs_file"
    audiences: ["api://gateway"]
    algorithms: [HS256]
"""


@pytest.fixture(scope="module")
def hs_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("hs") / "hs.key"
    p.write_bytes(HS_SECRET)
    return p


def token(sub="alice"):
    """A valid HS256 token of provider `hs` for `sub`."""
    return hmac_token(HS_SECRET, claims_=claims(iss="https://idp.test/", aud="api://gateway", sub=sub))


class Monolith:
    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, MONOLITH_PY, "--port", str(self.port)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 10 * SLOW
        buf = b""
        while b"ready" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"monolith did not start: {buf!r}")
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                buf += os.read(self.proc.stdout.fileno(), 4096)

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(5)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


@pytest.fixture(scope="module")
def monolith():
    m = Monolith()
    yield m
    m.stop()


def h1(port, ca, raw):
    """Raw HTTP/1.1 bytes over TLS: (status, headers [(lower, value)], body bytes)."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["http/1.1"])
    with tls_connect(port, ctx) as s:
        s.sendall(raw)
        return read_h1_response(s)


def h1_closes_after(port, ca, raw):
    """Sends raw, reads one response, then tells whether the server closed the connection: (status, body, closed)."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["http/1.1"])
    with tls_connect(port, ctx) as s:
        s.sendall(raw)
        status, _, body = read_h1_response(s)
        s.settimeout(5 * SLOW)
        try:
            closed = s.recv(1) == b""
        except (ConnectionError, ssl.SSLError):
            closed = True
        except TimeoutError:
            closed = False
        return status, body, closed


def h2_raw(port, ca, headers, timeout=10):
    """One HTTP/2 request with the given header list sent as is (no validation by python-h2):
    ("status", int, body bytes) or ("reset", error code, b"")."""
    import h2.config
    import h2.connection
    import h2.events

    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["h2"])
    with tls_connect(port, ctx, timeout=timeout) as s:
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8", validate_outbound_headers=False,
                                        normalize_outbound_headers=False, validate_inbound_headers=False)
        conn = h2.connection.H2Connection(cfg)
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, headers, end_stream=True)
        s.sendall(conn.data_to_send())
        status, data = None, b""
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            for ev in conn.receive_data(chunk):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    status = int(dict(ev.headers)[":status"])
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                    conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                    data += ev.data
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    return ("status", status, data)
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    return ("reset", ev.error_code, b"")
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    return ("reset", ev.error_code, b"")
            out = conn.data_to_send()
            if out:
                s.sendall(out)
        raise TimeoutError("no HTTP/2 response")


def body_json(body):
    try:
        return json.loads(body)
    except ValueError:
        return {}
