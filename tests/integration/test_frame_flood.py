"""Log flood (issue 10 item 6): a connection flooding frames of unknown types (H2O 2.2.5 prints a stderr line for each
and has no limit) is closed, ficus's stderr stays bounded, and other clients are served."""
import socket

import pytest

from conftest import SLOW, module_ficus
from h2_raw import ACK, END_HEADERS, END_STREAM, HEADERS, PREFACE, SETTINGS, Reader, frame, request_block

CONFIG = """\
server:
  workers: 1
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: "off"
routes:
  - name: ping
    match: { path_prefix: / }
    respond: { status: 200, body: "pong", content_type: text/plain }
"""

FLOOD_FRAMES = 50000


@pytest.fixture(scope="module")
def fx(request, tmp_path_factory, certs, echoes):
    return module_ficus(request, tmp_path_factory, certs, echoes, CONFIG)


def h2_connect(fx, certs):
    raw = socket.create_connection(("127.0.0.1", fx.tls_port), timeout=10 * SLOW)
    s = certs.ssl_context(alpn=["h2"]).wrap_socket(raw, server_hostname="localhost")
    s.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(SETTINGS, ACK, 0))
    return s


def served(fx, certs):
    with h2_connect(fx, certs) as s:
        s.sendall(frame(HEADERS, END_STREAM | END_HEADERS, 1, request_block(b"/")))
        r = Reader(s)
        return r.read_until(lambda r: any(f[0] == HEADERS and f[2] == 1 for f in r.frames), 10 * SLOW)


def test_unknown_frame_flood_closed_and_log_bounded(fx, certs):
    before_lines = len(fx.stderr().splitlines())
    before = fx.metrics().get("ficus_http2_frame_flood_total")
    s = h2_connect(fx, certs)
    closed = False
    batch = frame(0x42, 0, 0, b"x") * 1000
    try:
        for _ in range(FLOOD_FRAMES // 1000):
            s.sendall(batch)
    except OSError:
        closed = True
    r = Reader(s)
    closed = closed or r.read_until(lambda r: r.eof, 20 * SLOW)
    s.close()
    assert closed, "the flooding connection was not closed"
    assert fx.metrics().get("ficus_http2_frame_flood_total") == before + 1
    assert served(fx, certs)
    new_lines = len(fx.stderr().splitlines()) - before_lines
    assert new_lines <= 50, f"{new_lines} stderr lines for one flooding connection"


def slow_unknown_frames(fx, certs, count, types, per_batch=45):
    """count unknown frames in small batches (separate reads), staying under the per-connection flood guard."""
    import time
    with h2_connect(fx, certs) as s:
        sent = 0
        while sent < count:
            n = min(per_batch, count - sent)
            s.sendall(b"".join(frame(types[(sent + i) % len(types)], 0, 0, b"x") for i in range(n)))
            sent += n
            time.sleep(0.01)
        # make sure ficus handled all of it: a request on the same connection is answered
        s.sendall(frame(HEADERS, END_STREAM | END_HEADERS, 1, request_block(b"/")))
        r = Reader(s)
        assert r.read_until(lambda r: any(f[0] == HEADERS and f[2] == 1 for f in r.frames), 20 * SLOW)


def test_repeated_library_lines_deduplicated(fx, certs):
    """libh2o prints "skipping frame (type:66)" per frame: 900 identical lines become five and a repeat count."""
    import re
    from conftest import wait_for
    offset = len(fx.stderr())
    slow_unknown_frames(fx, certs, 900, [0x42])

    def accounted():  # lines written + repetitions counted (the count may come in several notes, one per second)
        new = fx.stderr()[offset:]
        return new.count("skipping frame") + sum(int(n) for n in re.findall(r"last message repeated (\d+) times", new))

    wait_for(lambda: accounted() >= 900, 10 * SLOW, what="all 900 lines accounted for")
    new = fx.stderr()[offset:]
    assert new.count("skipping frame") <= 5, new[-2000:]  # the first 5 of a repetition are shown
    assert accounted() == 900, new[-2000:]


def test_varied_library_lines_rate_limited(fx, certs):
    """Lines that differ each time are rate-limited: 4 connections x 900 frames of changing types (each connection
    under the flood guard) cannot write 3600 lines."""
    import time
    from conftest import wait_for
    offset = len(fx.stderr())
    t0 = time.monotonic()
    for _ in range(4):
        slow_unknown_frames(fx, certs, 900, list(range(0x10, 0xff)))
    elapsed = time.monotonic() - t0
    new = fx.stderr()[offset:]
    written = new.count("skipping frame")
    assert written <= 1000 + 200 * (elapsed + 1), (written, elapsed)
    assert written < 3600
    # what was left out is reported once a line gets through again (the reload logs one)
    fx.reload()
    wait_for(lambda: "lines suppressed (log rate limit)" in fx.stderr()[offset:], 10 * SLOW, what="the suppressed note")
