"""Outlier ejection (issue 11): an endpoint failing `consecutive_failures` times in a row is ejected, for twice as
long each time, until one trial request succeeds; `max_ejected` caps how many may be out, and beyond it the upstream
is in panic (a log line, ficus_upstream_panic 1, requests to the least recently failed endpoints).
Counted at real upstream processes: how many requests reached the failing endpoint, and when."""
from conftest import SLOW, wait_for
from flaky_fixtures import flaky  # noqa: F401 - the fixture
from upstream_helpers import endpoint, start, upstreams, wait_endpoint, wait_log

OUTLIER = """\
retry: { attempts: 1 }
outlier: { consecutive_failures: 3, ejection: 1s, max_ejection: 10s, max_ejected: 50% }"""


def send(gw, n, path="/x"):
    with gw.client() as c:
        return [c.get(path).status_code for _ in range(n)]


def test_ejection_doubling_and_return(ficus_factory, flaky):
    a, b = flaky("a"), flaky("b")
    b.mode(mode="status", status=503)
    gw = start(ficus_factory, [a.addr, b.addr], OUTLIER, workers=1)
    send(gw, 6)  # round robin: b sees its 3rd failure
    wait_log(gw, f"endpoint {b.addr} ejected for 1000ms (3 consecutive failures)")
    assert len(b.requests()) == 3
    assert endpoint(gw, b.addr)["ejected"] is True
    assert set(send(gw, 10)) == {200}  # all on a while b is out
    assert len(b.requests()) == 3

    # time up: exactly one trial request; it fails, so b is out again for twice as long
    wait_endpoint(gw, b.addr, lambda e: e["available"], "b's ejection to end")
    send(gw, 4)
    wait_log(gw, f"endpoint {b.addr} ejected for 2000ms (trial request failed)")
    assert len(b.requests()) == 4
    send(gw, 6)
    assert len(b.requests()) == 4

    # b recovers: the next trial returns it, and it takes its share again
    b.mode(mode="ok")
    wait_endpoint(gw, b.addr, lambda e: e["available"], "b's second ejection to end")
    send(gw, 4)
    wait_log(gw, f"endpoint {b.addr} returned (trial request succeeded)")
    n = len(b.requests())
    assert set(send(gw, 10)) == {200}
    assert len(b.requests()) - n == 5
    m = gw.metrics()
    assert m.get("ficus_upstream_ejections_total", upstream="up", endpoint=b.addr) == 2
    assert m.get("ficus_upstream_ejections_total", upstream="up", endpoint=a.addr) == 0


def test_max_ejected_and_panic(ficus_factory, flaky):
    a, b, c = flaky("a"), flaky("b"), flaky("c")
    for f in (b, c):
        f.mode(mode="status", status=503)
    # three endpoints, at most 34 % = 1 ejected
    gw = start(ficus_factory, [a.addr, b.addr, c.addr], OUTLIER.replace("max_ejected: 50%", "max_ejected: 34%"), workers=1)
    send(gw, 12)
    wait_log(gw, "upstream up: panic entered (2 of 3 endpoints failing, at most 1 may be ejected)")
    st = upstreams(gw)["up"]
    assert st["panic"] is True
    assert sum(e["ejected"] for e in st["endpoints"]) == 1  # the cap holds
    assert gw.metrics().get("ficus_upstream_panic", upstream="up") == 1
    # in panic: the least recently failed endpoint (a, which never failed) takes the requests
    nb, nc = len(b.requests()), len(c.requests())
    assert set(send(gw, 10)) == {200}
    assert (len(b.requests()), len(c.requests())) == (nb, nc)
    # recovery: the ejected one returns after its trial, and the panic ends
    b.mode(mode="ok")
    c.mode(mode="ok")
    wait_for(lambda: (send(gw, 3), "panic left" in gw.stderr())[1], 15 * SLOW, what="panic left")
    wait_for(lambda: gw.metrics().get("ficus_upstream_panic", upstream="up") == 0, 5 * SLOW, what="panic gauge 0")
