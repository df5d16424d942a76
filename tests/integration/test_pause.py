"""Plugin PAUSE path: the test-only `test_delay` plugin (FICUS_TEST_PLUGINS=1) parks requests on a timer.

200 concurrent requests, about half of them cancelled while paused (HTTP/1.1: socket closed or aborted; HTTP/2:
RST_STREAM, or the whole connection dropped). ficus must stay up and sanitizer-clean (teardown check), the others
complete with 200 after at least the pause, and nothing stays in flight afterwards.
"""
import asyncio
import time

import h2.config
import h2.connection
import h2.events
import pytest

from conftest import SLOW, h2_request, module_ficus, wait_for

DELAY_MS = 300

CONFIG = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: "off"
upstreams:
  a: { endpoints: ["http://$echo_a", "http://$echo_b"] }
routes:
  - name: delayed
    match: { path_prefix: /delay }
    test_delay: { ms: $delay }
    to: a
  - name: delayed-respond
    match: { path: /delay-respond }
    test_delay: { ms: $delay }
    respond: { status: 200, body: "late", content_type: text/plain }
"""


@pytest.fixture(scope="module")
def fx(request, tmp_path_factory, certs, echoes):
    return module_ficus(request, tmp_path_factory, certs, echoes, CONFIG, env={"FICUS_TEST_PLUGINS": "1"},
                       delay=DELAY_MS)


async def h1_request(fx, ctx, path, cancel):
    """cancel: None (complete), "close" or "abort" ~100 ms into the pause. Returns (status, seconds) or None."""
    reader, writer = await asyncio.open_connection("127.0.0.1", fx.tls_port, ssl=ctx, server_hostname="localhost")
    t0 = time.monotonic()
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost:{fx.tls_port}\r\n\r\n".encode())
    await writer.drain()
    if cancel:
        await asyncio.sleep(0.1)
        if cancel == "abort":
            writer.transport.abort()
        else:
            writer.close()
        return None
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    took = time.monotonic() - t0
    writer.close()
    return status, took


async def h2_connection(fx, ctx, n, cancel_every, drop_connection=False):
    """n streams on one h2 connection; every cancel_every-th stream is reset ~100 ms in (or the whole connection is
    dropped). Returns a list of (status, seconds) for the completed streams."""
    reader, writer = await asyncio.open_connection("127.0.0.1", fx.tls_port, ssl=ctx, server_hostname="localhost")
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    started, status, done = {}, {}, {}
    for i in range(n):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "GET"), (":scheme", "https"), (":authority", f"localhost:{fx.tls_port}"),
                                (":path", f"/delay/h2/{i}")], end_stream=True)
        started[sid] = time.monotonic()
    writer.write(conn.data_to_send())
    await writer.drain()
    sids = list(started)
    await asyncio.sleep(0.1)
    if drop_connection:
        writer.transport.abort()
        return []
    cancelled = {sid for i, sid in enumerate(sids) if i % cancel_every == 0}
    for sid in cancelled:
        conn.reset_stream(sid, error_code=8)
    writer.write(conn.data_to_send())
    await writer.drain()
    want = set(sids) - cancelled
    while not want <= set(done):
        data = await reader.read(65536)
        if not data:
            raise ConnectionError(f"EOF with {len(want - set(done))} streams unanswered")
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status[ev.stream_id] = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                done[ev.stream_id] = time.monotonic() - started[ev.stream_id]
            elif isinstance(ev, h2.events.StreamReset) and ev.stream_id in want:
                raise ConnectionError(f"stream {ev.stream_id} reset by ficus: {ev.error_code}")
            elif isinstance(ev, h2.events.ConnectionTerminated):
                raise ConnectionError(f"GOAWAY: {ev}")
        out = conn.data_to_send()
        if out:
            writer.write(out)
    writer.close()
    return [(status.get(sid), done[sid]) for sid in want]


async def storm(fx, certs):
    ctx1 = certs.ssl_context(alpn=["http/1.1"])
    ctx2 = certs.ssl_context(alpn=["h2"])
    tasks = []
    for i in range(100):  # 50 complete, 25 closed, 25 aborted
        cancel = None if i % 2 == 0 else ("close" if i % 4 == 1 else "abort")
        path = "/delay-respond" if i % 10 == 0 else f"/delay/h1/{i}"
        tasks.append(h1_request(fx, ctx1, path, cancel))
    for _ in range(4):  # 4 x 20 streams, every other one reset
        tasks.append(h2_connection(fx, ctx2, 20, cancel_every=2))
    tasks.append(h2_connection(fx, ctx2, 20, cancel_every=1, drop_connection=True))  # 20 more, connection dropped
    return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60 * SLOW)


def test_pause_with_cancellations(fx, certs):
    results = asyncio.run(storm(fx, certs))
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"{len(errors)} client errors, e.g. {errors[:3]!r}"
    completed = []
    for r in results:
        if isinstance(r, list):
            completed.extend(r)
        elif r is not None:
            completed.append(r)
    assert len(completed) == 50 + 40
    bad = [c for c in completed if c[0] != 200]
    assert not bad, f"non-200 answers: {bad[:10]}"
    # no slack: the plugin's pause is at least DELAY_MS of monotonic time from the request's arrival (which follows the
    # client's t0), whatever the loop's cached clock said when its timer was linked
    early = [t for _, t in completed if t < DELAY_MS / 1000]
    assert not early, f"{len(early)} answered before the {DELAY_MS} ms pause: {sorted(early)[:5]}"
    # ficus is healthy, nothing is stuck in flight, and the route still works
    status, _, body = fx.admin_get("/healthz")
    assert status == 200
    wait_for(lambda: fx.metrics().get("ficus_inflight_requests") == 0, 5 * SLOW, what="no request in flight")
    with fx.client(http2=True) as c:
        t0 = time.monotonic()
        r = c.get("/delay/after")
        assert r.status_code == 200 and time.monotonic() - t0 >= DELAY_MS / 1000


def test_pause_then_shutdown(ficus_factory):
    """SIGTERM while requests are paused: they finish (drain) and ficus exits 0 (checked at teardown)."""
    import concurrent.futures
    import signal
    f = ficus_factory(CONFIG, env={"FICUS_TEST_PLUGINS": "1"}, delay=1500)

    def one(i):
        if i % 2:  # python-h2: httpx 0.23 fails open streams on a graceful GOAWAY
            return h2_request(f.tls_port, f.certs.ca, f"/delay/sd/{i}", timeout=20)[0]
        with f.client() as c:
            return c.get(f"/delay/sd/{i}").status_code

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(one, i) for i in range(8)]
        wait_for(lambda: (f.metrics().get("ficus_inflight_requests") or 0) == 8, 5 * SLOW, interval=0.01,
                 what="paused requests in flight")
        f.send_signal(signal.SIGTERM)
        codes = [fu.result(timeout=20 * SLOW) for fu in futs]
    assert codes == [200] * 8
    assert f.proc.wait(10 * SLOW) == 0
