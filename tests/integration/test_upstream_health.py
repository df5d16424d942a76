"""Active health checks (issue 11): once per process, `GET path` with the endpoint's Host and user-agent ficus-health,
a new socket each time (never left open across the interval); unhealthy after `unhealthy` failed checks, healthy
again after `healthy` passes; an endpoint unhealthy by check gets no traffic; a new endpoint starts healthy unless its
first check fails."""
from conftest import SLOW, wait_for
from flaky_fixtures import flaky  # noqa: F401 - the fixture
from upstream_helpers import endpoint, start, wait_endpoint, wait_log

HEALTH = """\
health_check: { path: /healthz, interval: 400ms, timeout: 300ms, healthy: 2, unhealthy: 3, expect: [200-299] }"""


def test_check_marks_down_and_up_and_steers_traffic(ficus_factory, flaky):
    a, b = flaky("a"), flaky("b")
    b.mode(health="status", health_status=503)
    gw = start(ficus_factory, [a.addr, b.addr], HEALTH, workers=2)
    # b's first check fails: unhealthy at once
    wait_log(gw, f"upstream up: endpoint {b.addr} unhealthy (1 checks failed, last: status 503)")
    checks = b.requests(health=True)
    assert checks and all(r["user_agent"] == "ficus-health" and r["host"] == b.addr for r in checks)
    with gw.client() as c:
        assert {c.get("/x").status_code for _ in range(10)} == {200}
    assert b.requests() == [] and len(a.requests()) == 10
    assert gw.metrics().get("ficus_upstream_endpoint_healthy", upstream="up", endpoint=b.addr) == 0
    # one process, one checker: checks of b come at the interval, not once per worker (2 workers here)
    n0 = len(b.requests(health=True))
    wait_for(lambda: len(b.requests(health=True)) >= n0 + 3, 10 * SLOW, what="three more checks")
    log = b.requests(health=True)
    gaps = [y["t"] - x["t"] for x, y in zip(log, log[1:])]
    assert min(gaps) > 0.3, gaps  # 400 ms apart (never two checkers)
    # a new connection per check, closed when the check is over
    assert b.log()["connections"] == len(b.requests(health=True))
    wait_for(lambda: b.log()["open"] == 0 or len(b.requests(health=True)) > len(log), 5 * SLOW, what="no idle socket")

    b.mode(health="ok")
    n1 = len(b.requests(health=True))
    wait_log(gw, f"upstream up: endpoint {b.addr} healthy (2 checks passed)")
    assert len(b.requests(health=True)) - n1 <= 2 + 1  # within interval x healthy (one more may be on its way)
    with gw.client() as c:
        assert {c.get("/y").status_code for _ in range(10)} == {200}
    assert len(b.requests("/y")) == 5

    # healthy → failing: down after `unhealthy` failed checks, not before
    b.mode(health="hang")
    n2 = len(b.requests(health=True))
    wait_endpoint(gw, b.addr, lambda e: e["health"] == "unhealthy", "b unhealthy again")
    assert 3 <= len(b.requests(health=True)) - n2 <= 3 + 1
    m = gw.metrics()
    assert m.get("ficus_health_checks_total", upstream="up", result="failure") >= 4
    assert m.get("ficus_health_checks_total", upstream="up", result="success") >= 2
    assert endpoint(gw, a.addr)["health"] == "healthy"
