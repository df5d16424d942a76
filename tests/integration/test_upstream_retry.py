"""Retries (issue 11): the reasons and replay rules, never after a response byte, Retry-After, full-jitter backoff
on another endpoint, the retry budget under a wholesale failure, request_timeout.

Upstreams are real processes (tests/upstreams/flaky.py) told to refuse, reset, answer 503 or hang; what reached
them is read back from their logs, so the assertions count attempts instead of timing them.
"""
import re
import statistics
import subprocess

from conftest import SLOW, free_port, wait_for
from flaky_fixtures import flaky  # noqa: F401 - the fixture
from upstream_helpers import start

def retries(gw, reason=None):
    m = gw.metrics()
    return m.sum("ficus_upstream_retries_total", upstream="up", **({"reason": reason} if reason else {}))


def test_connect_failure_retried_on_another_endpoint_for_any_method(ficus_factory, flaky, echoes):
    a = flaky("a")
    dead = f"127.0.0.1:{free_port()}"  # nobody listens there: connection refused
    gw = start(ficus_factory, [dead, a.addr])
    with gw.client() as c:
        for i in range(10):
            r = c.post(f"/p{i}", content=b"x")  # nothing was sent to the dead endpoint: even a POST is retried
            assert r.status_code == 200, r.text
    assert len(a.requests()) == 10
    # round robin (the cursor moves with every attempt): requests that started on the dead endpoint were retried
    # once, on `a`
    assert 1 <= retries(gw, "connect_failure") <= 10
    assert retries(gw) == retries(gw, "connect_failure")


def test_reset_replay_rules(ficus_factory, flaky):
    a = flaky("a")
    a.mode(mode="reset")
    gw = start(ficus_factory, [a.addr], "retry: { attempts: 3, on: [reset], backoff: { base: 1ms, max: 5ms } }")
    with gw.client() as c:
        assert c.get("/get").status_code == 502
        assert c.post("/post", content=b"x").status_code == 502
        assert c.post("/post-key", content=b"x", headers={"Idempotency-Key": "k1"}).status_code == 502
        assert c.delete("/delete").status_code == 502
    assert len(a.requests("/get")) == 3       # idempotent: retried
    assert len(a.requests("/post")) == 1      # POST: the upstream may have acted on it
    assert len(a.requests("/post-key")) == 3  # POST with Idempotency-Key: replayable
    assert len(a.requests("/delete")) == 3
    assert retries(gw, "reset") == 6


def test_status_replay_rules_and_reasons(ficus_factory, flaky):
    a = flaky("a")
    a.mode(mode="status", status=503)
    gw = start(ficus_factory, [a.addr], "retry: { attempts: 3, on: [503], backoff: { base: 1ms, max: 5ms } }")
    with gw.client() as c:
        r = c.get("/g")
        assert r.status_code == 503 and r.json()["upstream"] == "a"  # the last answer is relayed as it was
        assert c.post("/p", content=b"x").status_code == 503
        a.mode(mode="status", status=502)  # not in `on`
        assert c.get("/g502").status_code == 502
    assert len(a.requests("/g")) == 3
    assert len(a.requests("/p")) == 1
    assert len(a.requests("/g502")) == 1
    assert retries(gw, "503") == 2 and retries(gw, "502") == 0


def test_default_retry_is_connect_failure_and_reset_only(ficus_factory, flaky):
    a = flaky("a")
    a.mode(mode="reset")
    gw = start(ficus_factory, [a.addr])
    with gw.client() as c:
        assert c.get("/r").status_code == 502  # first: no pooled connection to find dead
        a.mode(mode="status", status=503)
        assert c.get("/g").status_code == 503
    assert len(a.requests("/g")) == 1
    assert len(a.requests("/r")) == 2  # attempts: 2 by default


def test_never_retried_after_a_response_byte(ficus_factory, flaky):
    a = flaky("a")
    a.mode(mode="partial")
    gw = start(ficus_factory, [a.addr], "retry: { attempts: 3, on: [reset, 502, 503, 504], backoff: { base: 1ms, max: 5ms } }")
    with gw.client(http2=False) as c:
        try:
            r = c.get("/partial")
            got = len(r.content)
        except Exception:  # noqa: BLE001 - the response breaks off: what matters is that nothing was retried
            got = None
    assert got is None or got < 100000
    assert len(a.requests("/partial")) == 1
    assert retries(gw) == 0


def test_retry_after_longer_than_what_is_left_is_not_retried(ficus_factory, flaky):
    a = flaky("a")
    a.mode(mode="status", status=503, retry_after="30")
    gw = start(ficus_factory, [a.addr],
               "request_timeout: 5s\nretry: { attempts: 2, on: [503], backoff: { base: 1ms, max: 5ms } }")
    with gw.client() as c:
        r = c.get("/long")
        assert r.status_code == 503 and r.headers["retry-after"] == "30"
        a.mode(mode="status", status=503, retry_after="0")
        assert c.get("/short").status_code == 503
    assert len(a.requests("/long")) == 1
    assert len(a.requests("/short")) == 2


def test_backoff_is_jittered_and_goes_to_another_endpoint(ficus_factory, flaky):
    a, b = flaky("a"), flaky("b")
    for f in (a, b):
        f.mode(mode="status", status=503)
    gw = start(ficus_factory, [a.addr, b.addr], "retry: { attempts: 3, on: [503], backoff: { base: 80ms, max: 160ms } }")
    n = 24
    with gw.client() as c:
        for i in range(n):
            assert c.get(f"/b{i}", headers={"X-Request-Id": f"bk-{i}"}).status_code == 503
    log = sorted(a.requests() + b.requests(), key=lambda r: r["t"])
    gaps1, gaps2 = [], []
    for i in range(n):
        tries = [r for r in log if r["request_id"] == f"bk-{i}"]
        assert len(tries) == 3
        # the first retry goes to the endpoint not tried yet
        assert tries[0]["t"] <= tries[1]["t"] <= tries[2]["t"]
        first_two = {("a" if r in a.requests() else "b") for r in tries[:2]}
        assert len(first_two) == 2, tries
        gaps1.append(tries[1]["t"] - tries[0]["t"])
        gaps2.append(tries[2]["t"] - tries[1]["t"])
    # full jitter: uniform in [0, 80 ms] then [0, 160 ms]; spread, not a fixed delay
    slack = 0.25 * SLOW
    assert max(gaps1) <= 0.080 + slack and max(gaps2) <= 0.160 + slack, (gaps1, gaps2)
    assert max(gaps1) - min(gaps1) > 0.020 and max(gaps2) - min(gaps2) > 0.040, (gaps1, gaps2)
    assert statistics.mean(gaps2) > statistics.mean(gaps1)


def test_budget_holds_when_every_endpoint_fails(ficus_factory, flaky):
    """A wholesale outage under h2 load (h2load, 64 streams in flight, so the budget's share is above its floor of 3):
    attempts ÷ client requests stays ≤ 1 + budget, and the budget is what stopped the rest."""
    a, b = flaky("a"), flaky("b")
    for f in (a, b):
        f.mode(mode="status", status=503)
    gw = start(ficus_factory, [a.addr, b.addr],
               "retry: { attempts: 3, on: [503], backoff: { base: 25ms, max: 250ms }, budget: 20% }")
    n = 2000
    r = subprocess.run(["h2load", "-n", str(n), "-c", "4", "-m", "16", f"https://127.0.0.1:{gw.tls_port}/all-down"],
                       capture_output=True, text=True, timeout=300 * SLOW)
    assert re.search(rf"requests: {n} total, {n} started, {n} done", r.stdout), r.stdout
    assert re.search(rf"status codes: 0 2xx, 0 3xx, 0 4xx, {n} 5xx", r.stdout), r.stdout
    sent = len(a.requests("/all-down")) + len(b.requests("/all-down"))
    exhausted = gw.metrics().get("ficus_upstream_retry_budget_exhausted_total", upstream="up")
    print(f"\n[budget] {n} client requests, {sent} sent upstream (amplification {sent / n:.3f}), "
          f"budget refused {exhausted:.0f} retries")
    assert sent - n == retries(gw, "503")
    assert exhausted > 0, "the budget never had to refuse a retry: the test proves nothing"
    assert sent / n <= 1.2 + 0.02  # ≤ 1 + budget (and a little for the "at least 3" floor)


def test_request_timeout_bounds_the_exchange_with_its_retries(ficus_factory, flaky):
    a = flaky("a")
    a.mode(mode="hang")
    gw = start(ficus_factory, [a.addr],
               "request_timeout: 400ms\nretry: { attempts: 10, on: [503, 504], backoff: { base: 300ms, max: 300ms } }")
    with gw.client() as c:
        r = c.get("/hang", headers={"X-Request-Id": "rt-hang"})
        assert r.status_code == 504 and r.json() == {"error": "gateway_timeout"}
        a.mode(mode="status", status=503)
        r = c.get("/loop", headers={"X-Request-Id": "rt-loop"})
        assert r.status_code == 504
    e = gw.wait_access_log(lambda es: [x for x in es if x.get("request_id") == "rt-hang"])[0]
    assert e["error"] == "upstream_request_timeout"
    assert len(a.requests("/hang")) == 1
    # 400 ms with a backoff of up to 300 ms per retry: far fewer than 10 attempts, at least one retry
    assert 2 <= len(a.requests("/loop")) <= 9
    wait_for(lambda: a.log()["open"] <= 1, 5 * SLOW, what="the hung connection closed by ficus")
