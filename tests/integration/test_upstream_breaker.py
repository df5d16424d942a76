"""The circuit breaker (issue 11): closed → open at the failure ratio (with min_requests in the window) → fails fast
with 503 {"error":"upstream_unavailable"} and Retry-After, costing the upstream nothing → half-open after open_for
(a few trials) → closed, or open again. All endpoints unavailable counts as open too."""
from conftest import SLOW, wait_for
from flaky_fixtures import flaky  # noqa: F401 - the fixture
from upstream_helpers import start, upstreams, wait_log

BREAKER = """\
retry: { attempts: 1 }
breaker: { failure_ratio: 50%, min_requests: 6, window: 30s, open_for: 1s }"""


def state(gw):
    return gw.metrics().get("ficus_upstream_breaker_state", upstream="up")


def test_opens_fails_fast_half_opens_and_closes(ficus_factory, flaky):
    a = flaky("a")
    gw = start(ficus_factory, [a.addr], BREAKER)
    with gw.client() as c:
        for _ in range(4):
            assert c.get("/ok").status_code == 200
        a.mode(mode="status", status=503)
        for _ in range(4):  # 4 failures of 8: 50 %
            assert c.get("/bad").status_code == 503
        wait_log(gw, "upstream up: breaker opened (4 of 8 requests failed; open for 1000ms)")
        assert state(gw) == 1
        # open: failing fast, the upstream sees nothing
        n = len(a.requests())
        for _ in range(5):
            r = c.get("/open")
            assert r.status_code == 503 and r.json() == {"error": "upstream_unavailable"}
            assert 1 <= int(r.headers["retry-after"]) <= 1
        assert len(a.requests()) == n
        assert upstreams(gw)["up"]["breaker"] == "open"

        # half-open with the upstream still failing: one trial, open again
        wait_for(lambda: c.get("/trial").status_code == 503 and len(a.requests("/trial")) == 1, 5 * SLOW,
                 what="a trial request after open_for")
        wait_log(gw, "breaker opened (1 of 1 requests failed", count=1)
        assert state(gw) == 1

        # recovered: trials succeed and the breaker closes
        a.mode(mode="ok")
        wait_for(lambda: c.get("/again").status_code == 200, 5 * SLOW, what="half-open letting a trial through")
        for _ in range(3):
            assert c.get("/again").status_code == 200
        wait_log(gw, "upstream up: breaker closed (3 trial requests succeeded)")
        assert state(gw) == 0


def test_no_endpoint_available_is_open(ficus_factory, flaky):
    a = flaky("a")
    a.mode(mode="status", status=503)
    gw = start(ficus_factory, [a.addr],
               "retry: { attempts: 1 }\noutlier: { consecutive_failures: 2, ejection: 30s, max_ejected: 100% }")
    with gw.client() as c:
        assert [c.get("/x").status_code for _ in range(2)] == [503, 503]
        wait_log(gw, f"endpoint {a.addr} ejected for 30000ms")
        r = c.get("/y")
        assert r.status_code == 503 and r.json() == {"error": "upstream_unavailable"}
        assert 25 <= int(r.headers["retry-after"]) <= 30
    assert len(a.requests()) == 2
    assert state(gw) == 1
    assert upstreams(gw)["up"]["available"] is False
