"""Issue 9 item 1: a signed-in user outside a route's `sso: { groups: [...] }` gets 403 and the gateway goes on
serving everyone, on both session stores, on both workers.

The bug it guards against: the sso plugin sent the 403 and returned CONTINUE; the core's contract check then aborted the
process. With the cookie store that happened on every such request; with the Redis store on a repeat within cache_ttl
on the same worker (the session then comes from the per-worker cache, answered synchronously). Here bob (groups
[staff]) requests the admins-only route many times over 12 keep-alive connections at once (SO_REUSEPORT spreads
connections over both workers; each connection repeats on its own worker within cache_ttl), while alice (admins) keeps
getting 200 on the same route; afterwards ficus is alive and no plugin broke the contract
(ficus_plugin_contract_violations_total stays 0).
"""
import threading

import pytest

from conftest import SLOW
from sso_helpers import Browser, echo_json, parallel_get, sso_env

SESSION = "__Host-ficus"
CONNECTIONS = 12
ROUNDS = 5


@pytest.mark.parametrize("store", ["cookie", "redis"])
def test_users_outside_groups_get_403_and_ficus_keeps_serving(tmp_path, ficus_factory, certs, store):
    op, rs, fx = sso_env(tmp_path, ficus_factory, certs, redis=store == "redis", cache_ttl="5s")
    try:
        bob, alice = Browser(fx), Browser(fx)
        _, final = bob.login(op, "/admin/panel", user="bob")
        assert final.status_code == 403, (final.status_code, final.text[:300])
        _, final = alice.login(op, "/admin/panel", user="alice")
        assert echo_json(final)["headers"]["x-user-email"] == "alice@example.test"

        # alice on the same route meanwhile, then after the burst
        mid = []
        t = threading.Thread(target=lambda: mid.append(alice.get("/admin/during")))
        t.start()
        results, errors = parallel_get(fx, bob.cookies[SESSION], [f"/admin/x/{i}" for i in range(CONNECTIONS)], ROUNDS)
        t.join(30 * SLOW)
        mid = mid[0]
        assert not errors, f"{len(errors)} connections failed (ficus died?): {errors[:3]}\n{fx.stderr_tail(20)}"
        assert fx.crash_report() is None, f"{fx.crash_report()}\n{fx.stderr_tail(20)}"
        assert results == [(403, '{"error":"forbidden"}')] * (CONNECTIONS * ROUNDS), results[:5]
        assert echo_json(mid)["headers"]["x-user-email"] == "alice@example.test"
        for k in range(4):  # each on a new connection: both workers
            a = Browser(fx)
            a.cookies = dict(alice.cookies)
            assert echo_json(a.get(f"/admin/after/{k}"))["headers"]["x-user-email"] == "alice@example.test"
            b = Browser(fx)
            b.cookies = dict(bob.cookies)
            assert b.get(f"/admin/after/{k}").status_code == 403
            assert echo_json(b.get(f"/app/after/{k}"))["headers"]["x-user-email"] == "bob@example.test"
        m = fx.metrics()
        assert m.sum("ficus_plugin_contract_violations_total") == 0, [s for s in m.samples if "contract" in s[0]]
        assert m.get("ficus_plugin_contract_violations_total", plugin="sso") == 0
        assert fx.alive()
    finally:
        op.stop()
        if rs is not None:
            rs.stop()
