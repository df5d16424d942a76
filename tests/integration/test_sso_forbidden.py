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
import requests

from conftest import SLOW
from oidc_fixtures import OidcProvider
from conftest import free_port
from redis_fixtures import RedisServer
from sso_helpers import Browser, echo_json, sso_template, sso_values, wait_sso_ready

SESSION = "__Host-ficus"
CONNECTIONS = 12
ROUNDS = 5


def start(tmp_path, ficus_factory, certs, store):
    port = free_port()
    op = OidcProvider(tmp_path / "op", ficus_port=port, ca_file=certs.ca)
    rs = RedisServer(tmp_path / "redis") if store == "redis" else None
    v = sso_values(tmp_path, op, rs, client=op.basic if rs else op.post, cache_ttl="5s")
    fx = ficus_factory(sso_template(redis=rs is not None), tls_port=port, **v)
    wait_sso_ready(fx, redis=rs is not None)
    return op, rs, fx


@pytest.mark.parametrize("store", ["cookie", "redis"])
def test_users_outside_groups_get_403_and_ficus_keeps_serving(tmp_path, ficus_factory, certs, store):
    op, rs, fx = start(tmp_path, ficus_factory, certs, store)
    try:
        bob, alice = Browser(fx), Browser(fx)
        _, final = bob.login(op, "/admin/panel", user="bob")
        assert final.status_code == 403, (final.status_code, final.text[:300])
        _, final = alice.login(op, "/admin/panel", user="alice")
        assert echo_json(final)["headers"]["x-user-email"] == "alice@example.test"

        results, errors = [], []
        lock = threading.Lock()
        barrier = threading.Barrier(CONNECTIONS)

        def one(i):
            with requests.Session() as s:  # one keep-alive connection: its requests stay on one worker
                s.verify, s.trust_env = fx.certs.ca, False
                barrier.wait(10 * SLOW)
                for k in range(ROUNDS):
                    try:
                        r = s.get(bob.url(f"/admin/x/{i}/{k}"), allow_redirects=False, timeout=10 * SLOW,
                                  headers={"Accept": "text/html", "Cookie": f"{SESSION}={bob.cookies[SESSION]}"})
                        with lock:
                            results.append((r.status_code, r.text.strip()))
                    except requests.RequestException as e:
                        with lock:
                            errors.append(repr(e))
                        return

        threads = [threading.Thread(target=one, args=(i,)) for i in range(CONNECTIONS)]
        for t in threads:
            t.start()
        # alice on the same route meanwhile, then after the burst
        mid = alice.get("/admin/during")
        for t in threads:
            t.join(60 * SLOW)
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
