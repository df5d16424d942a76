"""Issue 9 item 4: token refresh under concurrency, against the real OpenID provider (tests/oidc) and redis-server.

The provider issues access tokens of 20 s while ficus runs with the default refresh_before (60 s) and the default
per-worker session cache (5 s): the early-refresh window is capped at half the token's lifetime (10 s here), so there
is exactly one refresh grant per token lifetime. One session, bursts of 15 parallel requests, each on its own
keep-alive connection (both workers), at four moments of two token lifetimes:
  1. right after the login (token fresh, 60 s > its whole life: the old rule refreshed on every burst) -> 0 refreshes;
  2. inside the window, the token still valid -> exactly 1 refresh, every request 200;
  3. again at once -> still 1 (the new token is not due: more than half its lifetime left);
  4. after the new token expired (no request meanwhile) -> exactly 1 more, every request 200 (they wait for it).
Every request of every burst must be a 200 from the upstream with the session's identity: no 503, no new login.
The OP counts refresh grants on arrival (`token:refresh_token`); it rotates refresh tokens and revokes the grant when an
old one is reused, so a second refresh with the same token would also end the session.
"""
import time

from conftest import SLOW
from sso_helpers import Browser, echo_json, parallel_get, sso_env

TTL = 20
PARALLEL = 15
ALICE = "alice@example.test"


def sleep_until(t):
    left = t - time.time()
    if left > 0:
        time.sleep(left)


def test_one_refresh_per_token_lifetime_under_parallel_requests(tmp_path, ficus_factory, certs):
    op, rs, fx = sso_env(tmp_path, ficus_factory, certs, refresh_before="60s", token_timeout="5s", cache_ttl="5s")
    try:
        op.set_config(ttl={"AccessToken": TTL})  # for the login and every refresh
        b = Browser(fx)
        _, final = b.login(op, "/app/")
        assert echo_json(final)["headers"]["x-user-email"] == ALICE
        r = rs.client()
        key = f"ficus:sso:s:{{{b.session_id}}}"

        def record():
            import json
            return json.loads(r.get(key))

        rec0 = record()
        assert abs(rec0["at_exp"] - time.time() - TTL) < 5, rec0["at_exp"] - time.time()
        op.reset()  # counters from here on (the login's code exchange is not counted)
        diag = lambda: (f"\nOP counters: {op.counters()}\nficus stderr (sso):\n"  # noqa: E731
                        + "\n".join(l for l in fx.stderr().splitlines() if "sso" in l)[-2000:])

        def burst(tag):
            results, errors = parallel_get(fx, b.session_id, [f"/app/{tag}/{i}" for i in range(PARALLEL)])
            assert not errors, f"{tag}: {errors[:3]}{diag()}"
            assert results == [(200, ALICE)] * PARALLEL, f"{tag}: {results}{diag()}"

        # 1. fresh token (TTL - a few s left: inside refresh_before, outside half its lifetime)
        assert time.time() < rec0["at_exp"] - TTL / 2 - 1, "login too slow to test the fresh token"
        burst("fresh")
        assert op.count("token:refresh_token") == 0, f"a fresh token was refreshed{diag()}"
        # 2. inside the capped window, token valid
        sleep_until(rec0["at_exp"] - TTL / 2 + 1)
        burst("window")
        assert op.count("token:refresh_token") == 1, f"refresh grants for one lifetime{diag()}"
        rec1 = record()
        assert rec1["access_token"] != rec0["access_token"] and rec1["refresh_token"] != rec0["refresh_token"]
        # 3. at once again: the new token is not due
        burst("again")
        assert op.count("token:refresh_token") == 1, f"the new token was refreshed again{diag()}"
        # 4. the new token expired: the burst waits for one refresh
        sleep_until(rec1["at_exp"] + 0.5)
        burst("expired")
        assert op.count("token:refresh_token") == 2, f"refresh grants after expiry{diag()}"
        rec2 = record()
        assert rec2["at_exp"] > time.time() + TTL / 2, rec2["at_exp"] - time.time()
        assert not r.exists(f"ficus:sso:l:{{{b.session_id}}}"), "refresh lock left behind"
        m = fx.metrics()
        assert m.get("ficus_plugin_contract_violations_total", plugin="sso") == 0
        assert not [e for e in fx.access_log() if str(e.get("path", "")).startswith("/app/") and e.get("status") != 200
                    and e.get("path") != "/app/"], "non-200 answers in the access log"
    finally:
        op.stop()
        rs.stop()
