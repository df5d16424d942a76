"""Upstream state survives reloads (issue 11): endpoints still configured keep their keep-alive connections, health,
ejection and breaker state across SIGHUPs; a ramp of 10 reloads under load opens (almost) no new upstream
connection. Counted at the upstream processes (accepted connections) and read back from /upstreams."""
import threading

from conftest import SLOW
from flaky_fixtures import flaky  # noqa: F401 - the fixture
from upstream_helpers import endpoint, reload, start, upstreams, wait_endpoint, wait_log


def test_ten_reloads_under_load_open_no_new_connections(ficus_factory, flaky):
    a, b = flaky("a"), flaky("b")
    extra = "keepalive_timeout: 30s"
    gw = start(ficus_factory, [a.addr, b.addr], extra, workers=2)
    stop, errors, statuses = threading.Event(), [], []

    def load():
        try:
            with gw.client(http2=True) as c:
                while not stop.is_set():
                    statuses.append(c.get("/ramp").status_code)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=load) for _ in range(4)]
    for t in ts:
        t.start()
    try:
        while len(statuses) < 200:  # warm: every worker's pools hold what the load needs
            stop.wait(0.05)
        before = a.log()["connections"] + b.log()["connections"]
        for i in range(10):  # a migration ramp: the route's settings change at every step
            reload(gw, [a.addr, b.addr], f"{extra}\nconnect_timeout: {1 + i}s")
        n_during = len(statuses)
        while len(statuses) < n_during + 200:
            stop.wait(0.05)
        after = a.log()["connections"] + b.log()["connections"]
    finally:
        stop.set()
        for t in ts:
            t.join(30 * SLOW)
    assert not errors, errors[:3]
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    print(f"\n[reload ramp] {len(statuses)} requests, 10 reloads, {after - before} new upstream connections "
          f"({before} before)")
    assert after - before <= 4  # ≈ 0 (was ~ one per client connection and worker at every reload): pools belong to endpoints


def test_reload_keeps_ejection_and_health_state(ficus_factory, flaky):
    a, b, c = flaky("a"), flaky("b"), flaky("c")
    b.mode(mode="status", status=503)
    c.mode(health="status", health_status=503)
    extra = ("retry: { attempts: 1 }\n"
             "outlier: { consecutive_failures: 2, ejection: 60s, max_ejected: 50% }\n"
             "health_check: { path: /healthz, interval: 500ms, timeout: 450ms, healthy: 2, unhealthy: 2 }")
    gw = start(ficus_factory, [a.addr, b.addr, c.addr], extra, workers=1)
    wait_endpoint(gw, c.addr, lambda e: e["health"] == "unhealthy", "c unhealthy by check")
    with gw.client() as cl:
        for _ in range(6):
            cl.get("/x")
    wait_log(gw, f"endpoint {b.addr} ejected for 60000ms")
    # reload with b and c kept and a new endpoint d: b stays ejected, c stays unhealthy, d starts fresh
    d = flaky("d")
    reload(gw, [a.addr, b.addr, c.addr, d.addr], extra)
    assert endpoint(gw, b.addr)["ejected"] is True
    assert endpoint(gw, c.addr)["health"] == "unhealthy"
    wait_endpoint(gw, d.addr, lambda e: e["health"] == "healthy" and not e["ejected"], "d healthy (a new endpoint)")
    nb, nc = len(b.requests()), len(c.requests())
    with gw.client() as cl:
        assert {cl.get("/y").status_code for _ in range(8)} == {200}
    assert (len(b.requests()), len(c.requests())) == (nb, nc)  # still out after the reload
    assert len(d.requests("/y")) > 0
    # an endpoint removed and configured again later starts over only if it was forgotten: state is per address
    reload(gw, [a.addr, d.addr], extra)
    assert set(e["address"] for e in upstreams(gw)["up"]["endpoints"]) == {a.addr, d.addr}
