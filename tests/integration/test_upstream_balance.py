"""Balancing (issue 11): least_request prefers the idle endpoint (power of two choices on in-flight counts); hash keeps
a key on its endpoint and, when an endpoint leaves, moves only the keys it held."""
import threading

from flaky_fixtures import flaky  # noqa: F401 - the fixture
from upstream_helpers import reload, start


def test_least_request_prefers_the_idle_endpoint(ficus_factory, flaky):
    slow, fast = flaky("slow"), flaky("fast")
    slow.mode(delay_ms=400)
    fast.mode(delay_ms=0)
    gw = start(ficus_factory, [slow.addr, fast.addr], "balance: least_request", workers=1)
    errors = []

    def run():
        try:
            with gw.client() as c:
                for _ in range(12):
                    assert c.get("/lr").status_code == 200
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=run) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors
    ns, nf = len(slow.requests("/lr")), len(fast.requests("/lr"))
    print(f"\n[least_request] slow {ns}, fast {nf}")
    assert ns + nf == 48
    # round robin would give the slow endpoint half; with 4 clients it holds one request most of the time
    assert ns <= 12, (ns, nf)


def test_hash_keeps_keys_and_moves_only_those_of_a_removed_endpoint(ficus_factory, flaky):
    ups = [flaky(n) for n in "abc"]
    gw = start(ficus_factory, [u.addr for u in ups], 'balance: { hash: "header:X-Tenant" }', workers=2)

    def placement(tenants):
        where = {}
        with gw.client() as c:
            for t in tenants:
                r = c.get(f"/t/{t}", headers={"X-Tenant": t})
                assert r.status_code == 200
                where[t] = r.json()["upstream"]
        return where

    tenants = [f"tenant-{i}" for i in range(240)]
    first = placement(tenants)
    assert placement(tenants) == first  # a key keeps its endpoint
    counts = {n: list(first.values()).count(n) for n in "abc"}
    assert all(40 <= v <= 120 for v in counts.values()), counts  # 80 each expected (σ ≈ 7)
    # without the header: round robin
    with gw.client() as c:
        assert len({c.get("/nokey").json()["upstream"] for _ in range(6)}) == 3

    reload(gw, [ups[0].addr, ups[1].addr], 'balance: { hash: "header:X-Tenant" }')
    after = placement(tenants)
    moved = [t for t in tenants if after[t] != first[t]]
    assert all(first[t] == "c" for t in moved)  # only the removed endpoint's keys move
    assert len(moved) == counts["c"]             # ≈ 1/N of them
