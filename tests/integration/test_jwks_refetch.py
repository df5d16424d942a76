"""Unknown kids and JWKS rotation (issue 9 item 5): the refetch budget (`refetch_budget` per `refetch_budget_window`),
the negative cache of kids (`unknown_kid_ttl`, `unknown_kid_cache_size`) and single-flight refetches with one
follow-up for kids first seen while a fetch runs. Black-box: the IdP is jwks_server.py (it counts every JWKS request
it receives), tokens are made by jwcrypto; one ficus (2 workers) per test.
"""
import concurrent.futures
import json
import time
import uuid

import httpx
import pytest

from conftest import SLOW, free_port, wait_for
from jwt_fixtures import b64u, check_config, claims, get, log_entry, make_token
from jwt_fixtures import jwks_factory, keys  # noqa: F401 - fixtures
from test_jwt import burst, start_life


def forced(f):
    return f.metrics().get("ficus_jwks_forced_refetches_total", provider="corp")


def test_rotation_right_after_unknown_kids(ficus_factory, jwks_factory, keys):
    """A probe (3 unknown kids) and, seconds later, a real rotation (k2 added, k1 removed): the new kid's tokens are
    accepted at once (no 401 beyond kid_wait), the removed kid is rejected after the refetch, and repeated unknown
    kids cost no fetch. Before the budget, the rotation got 401s for the rest of refetch_min_interval (30 s)."""
    srv = jwks_factory([keys.k1], max_age=3600)
    f = start_life(ficus_factory, srv, kid_wait="3s")
    with f.client() as c:
        assert get(c, "/api/x", token=make_token(keys.k1, claims_=claims(sub="before"))).status == 200
        c0 = srv.count()
        for i in range(3):
            r = get(c, "/api/x", token=make_token(keys.attacker, header={"kid": f"probe-{i}"}))
            assert r.status == 401 and log_entry(f, r.request_id)["error"] == "jwt_unknown_kid", r
        probes = srv.count() - c0
        assert 1 <= probes <= 3, f"{probes} JWKS fetches for 3 unknown kids asked one after the other"
        # the same kids again: confirmed absent moments ago, answered from the negative cache without a fetch
        hits0 = f.metrics().get("ficus_jwks_unknown_kid_cache_hits_total", provider="corp")
        for i in range(3):
            assert get(c, "/api/x", token=make_token(keys.attacker, header={"kid": f"probe-{i}"})).status == 401
        assert srv.count() - c0 == probes, "a kid a fetch just confirmed absent was fetched again"

        # the rotation at the IdP
        srv.set_keys([keys.k2])
        res = burst(c, "/api/x", [make_token(keys.k2, claims_=claims(sub=f"new{i}")) for i in range(10)])
        assert [s for s, _ in res] == [200] * 10, res
        worst = max(t for _, t in res)
        assert worst < 3 + 2 * SLOW, f"slowest new-kid answer {worst:.2f}s (kid_wait 3s)"
        assert srv.count() - c0 == probes + 1, f"{srv.count() - c0 - probes} JWKS fetches for the rotation (10 requests)"
        for i in range(4):  # and afterwards, on both workers, without waiting
            r = get(c, "/api/x", token=make_token(keys.k2, claims_=claims(sub=f"later{i}")))
            assert r.status == 200 and r.upstream_headers.get("x-user-id") == f"later{i}", r
        # k1 left the set: its tokens (fresh ones, not from the token cache) are rejected, with no fetch
        for i in range(4):
            r = get(c, "/api/x", token=make_token(keys.k1, claims_=claims(sub=f"old{i}")))
            assert r.status == 401 and log_entry(f, r.request_id)["error"] == "jwt_unknown_kid", r
        assert srv.count() - c0 == probes + 1, "a kid that left the JWKS made ficus fetch again"
        assert probes == 3, "each new unknown kid gets its refetch while the budget lasts"
        assert f.metrics().get("ficus_jwks_unknown_kid_cache_hits_total", provider="corp") - hits0 == 3 + 4
    assert f.stderr().count("provider corp: unknown kid, refetching keys") == 4, f.stderr_tail()


def _kid_token(template, kid):
    """template's payload and signature under a header naming kid: the kid is looked up before any signature check,
    as an attacker sending random kids would have it."""
    _, payload, sig = template.split(".")
    return ".".join([b64u(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid})), payload, sig])


def test_random_kid_flood_costs_at_most_the_budget(ficus_factory, jwks_factory, keys):
    """1000 random kids, as fast as 20 clients send them (about 10 s): the IdP sees at most refetch_budget fetches,
    every such token is refused, known kids keep working, and a flood past the budget is answered at once."""
    srv = jwks_factory([keys.k1], max_age=3600)
    # a window longer than the flood can last even under ASan on a busy box: the bound is then exactly the budget
    f = start_life(ficus_factory, srv, kid_wait="2s", refetch_budget=10, refetch_budget_window="10m")
    template = make_token(keys.attacker)
    with f.client(limits=httpx.Limits(max_connections=20)) as c:
        burst(c, "/open/x", ["-"] * 20)  # 20 connections open before the flood
        c0, forced0 = srv.count(), forced(f)
        declined0 = f.metrics().get("ficus_jwks_refetches_declined_total", provider="corp")
        t0 = time.monotonic()
        res = []
        for _ in range(50):
            res += burst(c, "/api/x", [_kid_token(template, uuid.uuid4().hex) for _ in range(20)])
        took = time.monotonic() - t0
        assert [s for s, _ in res] == [401] * 1000, sorted(set(s for s, _ in res))
        fetched = srv.count() - c0
        assert 1 <= fetched <= 10, f"{fetched} JWKS fetches for 1000 random kids in {took:.1f}s (budget 10)"
        assert forced(f) - forced0 == fetched
        assert f.metrics().get("ficus_jwks_refetches_declined_total", provider="corp") - declined0 >= 1
        # the budget is spent: the last requests did not wait for a refetch
        late = [t for _, t in res[-100:]]
        assert max(late) < 1.0 * SLOW, f"slowest answer among the last 100: {max(late):.2f}s"
        # known kids are unaffected
        r = get(c, "/api/x", token=make_token(keys.k1, claims_=claims(sub="after-flood")))
        assert r.status == 200 and r.upstream_headers.get("x-user-id") == "after-flood", r
    assert f.stderr().count("provider corp: refetch budget spent") >= 1, f.stderr_tail()


def test_kid_seen_during_a_fetch_gets_a_follow_up(ficus_factory, jwks_factory, keys):
    """A fetch that started before a kid was first seen cannot speak for it: a slow IdP answers a refetch (forced by a
    random kid) with its set as it was before the rotation; the new kid, first seen while that fetch ran, gets one
    follow-up fetch and is accepted."""
    srv = jwks_factory([keys.k1], max_age=3600)
    f = start_life(ficus_factory, srv, kid_wait="8s")
    with f.client() as c:
        assert get(c, "/api/x", token=make_token(keys.k1)).status == 200
        c0 = srv.count()
        srv.delay = 2.0
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            probe = ex.submit(get, c, "/api/x", make_token(keys.attacker, header={"kid": "probe-" + uuid.uuid4().hex}))
            wait_for(lambda: srv.count() == c0 + 1, 5 * SLOW, interval=0.01, what="the probe's refetch at the IdP")
            srv.set_keys([keys.k1, keys.k2])  # the rotation, after that fetch took its snapshot ([k1], answered in 2 s)
            new = ex.submit(get, c, "/api/x", make_token(keys.k2, claims_=claims(sub="rotated")))
            r_probe, r_new = probe.result(), new.result()
        assert r_probe.status == 401, r_probe
        assert r_new.status == 200 and r_new.upstream_headers.get("x-user-id") == "rotated", r_new
        assert srv.count() - c0 == 2, f"{srv.count() - c0} fetches: expected the refetch and one follow-up"


CHECK = """\
server:
  workers: 1
  listen:
    - address: "127.0.0.1:$port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
providers:
  corp:
    issuer: "https://idp.test/"
    jwks_uri: "https://localhost:$port/jwks.json"
    ca_file: "$ca"
$opts
upstreams:
  a: { endpoints: ["http://127.0.0.1:9"] }
routes:
  - name: api
    match: { path_prefix: /api }
    jwt: { provider: corp }
    to: a
"""

GOOD = ["    refetch_budget: 20\n    refetch_budget_window: 30s\n    unknown_kid_ttl: 10m\n    unknown_kid_cache_size: 5000",
        "    refetch_budget: 0\n    unknown_kid_ttl: 0s"]

BAD = [
    ("refetch_min_interval: 30s", "replaced by `refetch_budget`"),
    ("refetch_budget: 1001", None),
    ("refetch_budget: -1", None),
    ("refetch_budget: lots", None),
    ("refetch_budget_window: 0s", None),
    ("refetch_budget_window: 2d", None),
    ("unknown_kid_ttl: soon", None),
    ("unknown_kid_cache_size: 0", None),
    ("unknown_kid_cache_size: 100001", None),
    ("refetch_budgets: 10", "refetch_budgets"),
]


def _check(certs, tmp_path, opts):
    from string import Template
    p = tmp_path / "c.yaml"
    p.write_text(Template(CHECK).substitute(port=free_port(), cert=certs.localhost[0], key=certs.localhost[1], ca=certs.ca,
                                            opts=opts))
    return p, check_config(p)


@pytest.mark.parametrize("opts", GOOD)
def test_check_budget_keys(certs, tmp_path, opts):
    _, r = _check(certs, tmp_path, opts)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("line,word", BAD, ids=[b[0] for b in BAD])
def test_check_budget_key_errors(certs, tmp_path, line, word):
    p, r = _check(certs, tmp_path, "    " + line)
    assert r.returncode == 1, f"exit {r.returncode}: {r.stderr}"
    want = CHECK.splitlines().index("$opts") + 1
    assert f"ficus: {p}:{want}: " in r.stderr, f"expected an error at line {want}: {r.stderr!r}"
    if word:
        assert word in r.stderr, r.stderr
