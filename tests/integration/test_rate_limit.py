"""Rate limiting (.work/CONTRACT-RL.md, issue 4 "Rate limits" and "Tests"), black-box: a real redis-server per test
(redis_fixtures.py), ficus processes from conftest's ficus_factory, requests over TLS on loopback.

Covered: limits per key kind (ip, header, claim, route) with RateLimit-* headers and Retry-After, `headers: false`;
Retry-After / deny cache for a key over its limit; GCRA burst and refill; sliding window; dry run; fleet accuracy of
two instances on one Redis (h2load at 3x the limit) with the Redis cost in leases per admitted request; Redis killed
with SIGKILL under traffic (local / open / closed) and restarted on the same port; Redis stalled (DEBUG SLEEP and
CLIENT PAUSE) past a 100ms (x FICUS_TEST_SLOWDOWN) command timeout; NOSCRIPT after SCRIPT FLUSH; the embedded store without `redis:`;
configuration errors (`ficus -t`, FILE:LINE).
"""
import json
import math
import re
import subprocess
import threading
import time

import httpx
import pytest

from conftest import SLOW, wait_for
from jwt_fixtures import check_config, claims, gen_key, make_token, public
from redis_fixtures import redis_factory, redis_server  # noqa: F401 - fixtures

HEAD = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
"""

REDIS = """\
redis:
  address: "$redis"
  command_timeout: $cmd_timeout
  connect_timeout: 200ms
  reconnect_min: 50ms
  reconnect_max: 500ms
  breaker: { failures: 5, open_for: 500ms }
"""


def respond_route(name, path, policies, extra=""):
    return (f"  - name: {name}\n    match: {{ path_prefix: {path} }}\n{extra}    rate_limit: {policies}\n"
            f"    respond: {{ status: 200, body: \"ok\\n\", content_type: text/plain }}\n")


# Redis's command_timeout in these tests: a Redis round trip on a loaded 2-core box under ASan stays far below it, so
# that no decision becomes a store error by accident. The stall test sets its own (STALL_CMD_TIMEOUT_S).
CMD_TIMEOUT_S = 0.5 * SLOW


def start(ficus_factory, redis, body, cmd_timeout=None, **kw):
    """ficus with HEAD + (redis section when redis is given) + body."""
    cmd_timeout = cmd_timeout or f"{int(CMD_TIMEOUT_S * 1000)}ms"
    tpl = HEAD + (REDIS if redis is not None else "") + body
    extra = dict(kw)
    if redis is not None:
        extra.update(redis=redis.addr, cmd_timeout=cmd_timeout)
    fx = ficus_factory(tpl, **extra)
    if redis is not None:
        # both workers connected before the first request, so that no decision is a store error by accident
        wait_for(lambda: (fx.metrics().get("ficus_redis_connected_workers") or 0) >= 2, 10 * SLOW,
                 what="both workers connected to redis")
    return fx


def client(fx, local_address=None, timeout=10):
    transport = httpx.HTTPTransport(verify=fx.certs.ca, local_address=local_address)
    return httpx.Client(transport=transport, base_url=f"https://localhost:{fx.tls_port}", timeout=timeout * SLOW)


def burst(c, path, n, headers=None):
    """n sequential requests on one keep-alive connection; returns (responses, elapsed seconds)."""
    t0 = time.monotonic()
    out = [c.get(path, headers=headers or {}) for _ in range(n)]
    return out, time.monotonic() - t0


def statuses(rs):
    return [r.status_code for r in rs]


def decisions(fx, policy, result):
    return fx.metrics().get("ficus_ratelimit_decisions_total", policy=policy, result=result) or 0


def leases(fx, policy=None):
    m = fx.metrics()
    return m.sum("ficus_ratelimit_leases_total", **({"policy": policy} if policy else {}))


def redis_waits(fx, policy):
    return fx.metrics().get("ficus_ratelimit_redis_waits_total", policy=policy) or 0


def metric(fx, name):
    return fx.metrics().sum(name)


def check_limited(r):
    """A 429 as the contract says: JSON body, Retry-After >= 1."""
    assert r.status_code == 429, r
    assert r.json() == {"error": "rate_limited"}, r.text
    ra = r.headers.get("retry-after")
    assert ra is not None and ra.isdigit() and int(ra) >= 1, f"Retry-After {ra!r}"
    return int(ra)


def check_rl_headers(r, limit, policy_header, per_s, burst_=None):
    """RateLimit-* present and sane; returns Remaining."""
    h = r.headers
    for name in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy"):
        assert name in h, f"{name} missing on {r.status_code}: {dict(h)}"
    assert h["ratelimit-limit"] == str(limit)
    assert h["ratelimit-policy"] == policy_header
    rem, reset = int(h["ratelimit-remaining"]), int(h["ratelimit-reset"])
    assert 0 <= rem <= (burst_ or limit), f"RateLimit-Remaining {rem}"
    # GCRA: the bucket is full again at most burst * (per / limit) seconds from now
    assert 0 <= reset <= math.ceil((burst_ or limit) * per_s / limit) + 1, f"RateLimit-Reset {reset}"
    return rem


def assert_no_rl_headers(r):
    present = [k for k in r.headers if k.lower().startswith("ratelimit-")]
    assert not present, f"headers: false but {present} sent"


# ---------------------------------------------------------------------------------------------------------------
# 1. key kinds and headers


@pytest.fixture(scope="module")
def jwt_key():
    return gen_key("RSA", 2048, "rl1", "RS256")


KINDS = """\
providers:
  corp:
    issuer: "https://idp.test/"
    jwks_file: "$jwks"
    audiences: ["api://gateway"]
rate_limits:
  per-ip: { key: ip, limit: 5, per: 1m }
  per-key: { key: "header:X-Api-Key", limit: 3, per: 1m }
  per-user: { key: "claim:sub", limit: 4, per: 1m }
  per-route: { key: route, limit: 6, per: 1m, burst: 6 }
  quiet: { key: ip, limit: 2, per: 1m, headers: false }
  both-ip: { key: ip, limit: 10, per: 1m }
  both-key: { key: "header:X-Api-Key", limit: 2, per: 1m }
routes:
""" + (respond_route("ip", "/ip", "per-ip") + respond_route("apikey", "/key", "per-key")
       + respond_route("user", "/user", "per-user", extra="    jwt: { provider: corp, required: true }\n")
       + respond_route("route-a", "/ra", "per-route") + respond_route("route-b", "/rb", "per-route")
       + respond_route("quiet", "/quiet", "quiet") + respond_route("both", "/both", "[both-ip, both-key]"))


@pytest.fixture
def kinds(ficus_factory, redis_server, jwt_key, tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public(jwt_key)]}))
    return start(ficus_factory, redis_server, KINDS, jwks=jwks), redis_server


def test_ip_key_headers_and_429(kinds):
    fx, redis = kinds
    with client(fx) as c, client(fx, local_address="127.0.0.2") as c2:
        rs, _ = burst(c, "/ip", 8)
        assert statuses(rs) == [200] * 5 + [429] * 3
        rem = [check_rl_headers(r, 5, "5;w=60;burst=5", 60) for r in rs]
        assert rem[:5] == [4, 3, 2, 1, 0], f"RateLimit-Remaining {rem}"
        assert rem[5:] == [0, 0, 0]
        for r in rs[5:]:
            check_limited(r)
        # another client address has its own budget
        rs2, _ = burst(c2, "/ip", 7)
        assert statuses(rs2) == [200] * 5 + [429] * 2
        assert c.get("/ip").status_code == 429
    # one Redis key per policy and client address, with the contract's name (hash tag = one cluster slot)
    keys = set(redis.client().keys("ficus:rl:*"))
    assert {"ficus:rl:{per-ip:127.0.0.1}", "ficus:rl:{per-ip:127.0.0.2}"} <= keys, keys
    assert decisions(fx, "per-ip", "allowed") == 10
    assert decisions(fx, "per-ip", "limited") == 6
    # access log: the 429's reason
    fx.wait_access_log(lambda es: sum(1 for e in es if e.get("status") == 429 and e.get("route") == "ip"
                                      and e.get("error") == "rate_limited:per-ip") == 6,
                       what="six 429 lines with error rate_limited:per-ip")


def test_header_key_independent_budgets(kinds):
    fx, _ = kinds
    with client(fx) as c:
        a, _ = burst(c, "/key", 5, {"X-Api-Key": "key-a"})
        b, _ = burst(c, "/key", 5, {"X-Api-Key": "key-b"})
        # a different header case is the same header; the value is the key
        a2 = c.get("/key", headers={"x-api-key": "key-a"})
    assert statuses(a) == [200] * 3 + [429] * 2
    assert statuses(b) == [200] * 3 + [429] * 2
    assert a2.status_code == 429
    assert [check_rl_headers(r, 3, "3;w=60;burst=3", 60) for r in a] == [2, 1, 0, 0, 0]
    for r in a[3:] + b[3:]:
        check_limited(r)
    assert decisions(fx, "per-key", "allowed") == 6


def test_claim_key_per_user(kinds, jwt_key):
    fx, _ = kinds
    alice = make_token(jwt_key, claims_=claims(sub="alice"))
    alice2 = make_token(jwt_key, claims_=claims(sub="alice"))  # another token, same subject: same budget
    bob = make_token(jwt_key, claims_=claims(sub="bob"))
    with client(fx) as c:
        ra, _ = burst(c, "/user", 4, {"Authorization": f"Bearer {alice}"})
        ra2, _ = burst(c, "/user", 2, {"Authorization": f"Bearer {alice2}"})
        rb, _ = burst(c, "/user", 6, {"Authorization": f"Bearer {bob}"})
        # no token: the jwt plugin answers first (401), nothing is counted against anybody
        anon = c.get("/user")
    assert statuses(ra) == [200] * 4, [r.text for r in ra]
    assert statuses(ra2) == [429, 429]
    assert statuses(rb) == [200] * 4 + [429] * 2
    assert [check_rl_headers(r, 4, "4;w=60;burst=4", 60) for r in ra] == [3, 2, 1, 0]
    for r in ra2 + rb[4:]:
        check_limited(r)
    assert anon.status_code == 401
    assert decisions(fx, "per-user", "allowed") == 8
    assert decisions(fx, "per-user", "limited") == 4


def test_route_key_and_headers_off(kinds):
    fx, _ = kinds
    with client(fx) as c, client(fx, local_address="127.0.0.2") as c2:
        # route key: one budget per route, shared by every client
        first, _ = burst(c, "/ra", 4)
        second, _ = burst(c2, "/ra", 4)
        other, _ = burst(c2, "/rb", 3)
        q, _ = burst(c, "/quiet", 4)
    assert statuses(first + second) == [200] * 6 + [429] * 2
    assert statuses(other) == [200] * 3
    assert [check_rl_headers(r, 6, "6;w=60;burst=6", 60) for r in first + second][:6] == [5, 4, 3, 2, 1, 0]
    # headers: false: still limited, no RateLimit-* on any answer (Retry-After stays on 429s)
    assert statuses(q) == [200, 200, 429, 429]
    for r in q:
        assert_no_rl_headers(r)
    for r in q[2:]:
        check_limited(r)


def test_two_policies_on_a_route(kinds):
    """A route with [per-ip, per-key]: both apply; the headers describe the most constrained one."""
    fx, _ = kinds
    with client(fx) as c:
        k1, _ = burst(c, "/both", 3, {"X-Api-Key": "k1"})
        k2, _ = burst(c, "/both", 3, {"X-Api-Key": "k2"})
    assert statuses(k1) == statuses(k2) == [200, 200, 429]
    assert [check_rl_headers(r, 2, "2;w=60;burst=2", 60) for r in k1] == [1, 0, 0]
    for r in (k1[2], k2[2]):
        check_limited(r)
    assert decisions(fx, "both-key", "allowed") == 4 and decisions(fx, "both-key", "limited") == 2
    fx.wait_access_log(lambda es: sum(1 for e in es if e.get("route") == "both" and e.get("error") == "rate_limited:both-key") == 2,
                       what="two 429 lines with error rate_limited:both-key")


def test_retry_after_and_deny_cache(ficus_factory, redis_server):
    """A key over its limit: Retry-After tells the real wait (limit 5/min: the next token is 12 s away) and the
    denials come from the deny cache until then (issue 4: "an abusive client costs no Redis traffic")."""
    fx = start(ficus_factory, redis_server, "rate_limits:\n  slow: { key: ip, limit: 5, per: 1m }\nroutes:\n"
               + respond_route("slow", "/slow", "slow"))
    with client(fx) as c:
        ok, _ = burst(c, "/slow", 5)
        assert statuses(ok) == [200] * 5
        leases0, cmds0 = leases(fx, "slow"), metric(fx, "ficus_redis_commands_total")
        denied, elapsed = burst(c, "/slow", 20)
    assert statuses(denied) == [429] * 20
    ras = [check_limited(r) for r in denied]
    hits = fx.metrics().get("ficus_ratelimit_deny_cache_hits_total", policy="slow")
    lease_rt = leases(fx, "slow") - leases0
    cmd_rt = metric(fx, "ficus_redis_commands_total") - cmds0
    print(f"\n[deny cache] 20 denials in {elapsed:.2f}s: Retry-After {sorted(set(ras))}, deny_cache_hits {hits:.0f}, "
          f"lease round trips {lease_rt:.0f}, redis commands {cmd_rt:.0f}")
    # the next token is 60/5 = 12 s after the 5th admission (ficus may add up to 1/8 of jitter to its deny time)
    assert min(ras) >= 10 and max(ras) <= 15, f"Retry-After {ras} (the next token is ~12 s away)"
    assert lease_rt <= 2 and hits >= 18, \
        f"denials went to Redis: {lease_rt:.0f} lease round trips and {hits:.0f} deny-cache hits for 20 denials"


# ---------------------------------------------------------------------------------------------------------------
# 2-4. GCRA burst, sliding window, dry run


def test_gcra_burst_then_refill(ficus_factory, redis_server):
    fx = start(ficus_factory, redis_server, "rate_limits:\n  b: { key: ip, limit: 10, per: 1s, burst: 5 }\nroutes:\n"
               + respond_route("b", "/b", "b"))
    with client(fx) as c:
        c.get("/nothing")  # connection (TLS handshake) before the burst; 404 is not limited
        rs, el = burst(c, "/b", 12)
        ok = statuses(rs).count(200)
        # 5 at once, plus what refilled (10/s) while the burst ran
        assert statuses(rs)[:5] == [200] * 5
        assert 5 <= ok <= 5 + math.floor(el * 10) + 1, f"{ok} allowed in a burst of 12 taking {el:.3f}s"
        assert 429 in statuses(rs)
        for r in rs:
            if r.status_code == 429:
                check_limited(r)
                assert r.headers["ratelimit-remaining"] == "0"
            check_rl_headers(r, 10, "10;w=1;burst=5", 1, burst_=5)
        time.sleep(0.5)
        rs2, el2 = burst(c, "/b", 12)
        ok2 = statuses(rs2).count(200)
        print(f"\n[gcra] burst 1: {ok}/12 allowed in {el:.3f}s; after 0.5 s: {ok2}/12 allowed in {el2:.3f}s")
        assert 4 <= ok2 <= 6 + math.floor(el2 * 10) + 1, f"{ok2} allowed 0.5 s after the bucket was emptied"
    # never more than the bucket allows over the whole run
    total = decisions(fx, "b", "allowed")
    assert total == ok + ok2


def test_sliding_window(ficus_factory, redis_server):
    n = 5
    fx = start(ficus_factory, redis_server,
               f"rate_limits:\n  sw: {{ key: ip, limit: {n}, per: 1s, algorithm: sliding_window }}\nroutes:\n"
               + respond_route("sw", "/sw", "sw"))

    def to_window_start():
        # windows are aligned on Redis's clock (whole seconds): start a burst just after a boundary
        frac = time.time() % 1.0
        time.sleep((1.0 - frac) + 0.05)

    with client(fx) as c:
        c.get("/nothing")
        to_window_start()
        rs, el = burst(c, "/sw", 3 * n)
        assert el < 0.8, f"burst took {el:.2f}s"
        assert statuses(rs) == [200] * n + [429] * (2 * n), statuses(rs)
        for r in rs:
            check_rl_headers(r, n, f"{n};w=1", 1)
        for r in rs[n:]:
            check_limited(r)
        # the next window: the previous one still weighs (sliding), so some but at most n get through
        time.sleep(max(0.0, 1.0 - (time.time() % 1.0)) + 0.5)
        rs2, _ = burst(c, "/sw", 3 * n)
        ok2 = statuses(rs2).count(200)
        assert 1 <= ok2 <= n, f"{ok2} allowed in the middle of the next window"
        # two windows later the old counts are gone: a full n again, never more
        to_window_start()
        to_window_start()
        rs3, _ = burst(c, "/sw", 3 * n)
        assert statuses(rs3) == [200] * n + [429] * (2 * n), statuses(rs3)


def test_dry_run(ficus_factory, redis_server):
    fx = start(ficus_factory, redis_server,
               "rate_limits:\n  dry: { key: ip, limit: 3, per: 1m, dry_run: true }\nroutes:\n"
               + respond_route("dry", "/dry", "dry"))
    with client(fx) as c:
        rs, _ = burst(c, "/dry", 10)
    assert statuses(rs) == [200] * 10
    for r in rs:
        assert "retry-after" not in r.headers
    assert [check_rl_headers(r, 3, "3;w=60;burst=3", 60) for r in rs][:3] == [2, 1, 0]
    assert decisions(fx, "dry", "allowed") == 3
    assert decisions(fx, "dry", "dry_run_limited") == 7
    assert decisions(fx, "dry", "limited") == 0


# ---------------------------------------------------------------------------------------------------------------
# 5. fleet accuracy

FLEET = """\
rate_limits:
  fleet: { key: route, limit: 100, per: 1s, burst: 20, instances: 2 }
routes:
""" + respond_route("fleet", "/fleet", "fleet")


def h2load(port, path, seconds, clients, rps):
    return subprocess.Popen(["h2load", "-c", str(clients), "-m", "4", "--rps", str(rps), "-D", str(seconds),
                             f"https://127.0.0.1:{port}{path}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def parse_h2load(out):
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    t = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, \d+ succeeded, \d+ failed, (\d+) errored, "
                  r"(\d+) timeout", out)
    assert m and t, f"unexpected h2load output:\n{out[-2000:]}"
    return {"2xx": int(m.group(1)), "4xx": int(m.group(3)), "5xx": int(m.group(4)), "total": int(t.group(1)),
            "done": int(t.group(2)), "errored": int(t.group(3)), "timeout": int(t.group(4))}


def test_fleet_accuracy_two_instances(ficus_factory, redis_server):
    limit, burst_, seconds = 100, 20, 10
    a = start(ficus_factory, redis_server, FLEET)
    b = start(ficus_factory, redis_server, FLEET)
    # 4 clients x 38 req/s per instance = ~3x the limit in total
    procs = [h2load(fx.tls_port, "/fleet", seconds, 4, 38) for fx in (a, b)]
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 60 * SLOW)
        assert p.returncode == 0, out[-2000:]
        outs.append(parse_h2load(out))
    sent = sum(o["total"] for o in outs)
    admitted_client = sum(o["2xx"] for o in outs)
    admitted = sum(fx.metrics().get("ficus_requests_total", route="fleet", code="2xx") or 0 for fx in (a, b))
    allowed = sum(decisions(fx, "fleet", "allowed") for fx in (a, b))
    limited = sum(decisions(fx, "fleet", "limited") for fx in (a, b))
    store_errors = sum(decisions(fx, "fleet", r) for fx in (a, b) for r in ("store_error_allowed", "store_error_denied"))
    n_leases = sum(leases(fx, "fleet") for fx in (a, b))
    expected = limit * seconds + burst_
    ratio = n_leases / admitted if admitted else float("inf")
    print(f"\n[fleet] sent {sent} ({sent / seconds:.0f}/s, {sent / seconds / limit:.1f}x the limit), admitted {admitted:.0f}"
          f" (2xx seen by h2load {admitted_client}, per instance {[o['2xx'] for o in outs]}), expected {expected}"
          f" ({(admitted - expected) / expected * 100:+.1f} %), limited {limited:.0f}, store errors {store_errors:.0f},"
          f" leases {n_leases:.0f} = {ratio:.3f} per admitted request (target <= 0.1),"
          f" deny-cache hits {sum(fx.metrics().sum('ficus_ratelimit_deny_cache_hits_total') for fx in (a, b)):.0f},"
          f" redis commands {sum(metric(fx, 'ficus_redis_commands_total') for fx in (a, b)):.0f}")
    assert all(o["errored"] == 0 and o["timeout"] == 0 and o["5xx"] == 0 for o in outs), outs
    assert sent >= 2.5 * limit * seconds, f"load generator sent only {sent} requests"
    assert admitted == allowed, (admitted, allowed)
    # h2load stops counting at the end of its -D window: answers then in flight (at most 4 clients x 4 streams per
    # instance) reached it too late
    assert 0 <= admitted - admitted_client <= 2 * 4 * 4, (admitted, admitted_client)
    assert store_errors == 0
    assert admitted <= expected * 1.05, f"fleet admitted {admitted:.0f} > {expected} + 5 %"
    assert admitted >= expected * 0.95, f"fleet admitted {admitted:.0f} < {expected} - 5 %"
    assert ratio <= 0.1, f"{ratio:.3f} lease round trips per admitted request (issue target: 0.1)"


# ---------------------------------------------------------------------------------------------------------------
# 5b. a hot key far below its limit

HOT = """\
rate_limits:
  hot: { key: route, limit: 400, per: 10s }
routes:
""" + respond_route("hot", "/hot", "hot")


def test_hot_key_refills_ahead_and_steps_remaining(ficus_factory, redis_server):
    """Once its lease has grown, a hot key never waits for Redis: the next lease is taken while half of the current
    one is left. Its RateLimit-Remaining (shared bucket at the last answer + unspent lease) moves in quarter-lease steps,
    rounded down, so that HTTP/2 can index it, and stays within the bucket's bounds.

    What "never waits" needs, whatever the box's speed: half a lease lasts longer than a Redis round trip, and a whole
    one is spent within a lease's lifetime (1 s; after that its tokens expire and the next request waits, by design).
    So the largest lease is small (limit / 8 = 50) and the client at most 250 requests/s: half a lease lasts >= 100 ms,
    and a client as slow as 100 requests/s (ASan on a loaded box) spends a lease in 0.5 s."""
    limit, per_s, quarter_of_max_lease = 400, 10, 12  # max lease: limit / 8
    n_warm, n, rate = 100, 250, 250.0
    fx = start(ficus_factory, redis_server, HOT)
    with client(fx) as c:
        t0 = time.monotonic()
        warm, _ = burst(c, "/hot", n_warm)  # the lease grows 1, 2, 4 ... 32, 50
        waits0, leases0 = redis_waits(fx, "hot"), leases(fx, "hot")
        t1 = time.monotonic()
        rs = []
        for i in range(n):
            time.sleep(max(0.0, t1 + i / rate - time.monotonic()))
            rs.append(c.get("/hot"))
        elapsed = time.monotonic() - t1
        waits1, leases1 = redis_waits(fx, "hot"), leases(fx, "hot")
        since_first = time.monotonic() - t0
    assert statuses(warm + rs) == [200] * (n_warm + n)
    rems = [check_rl_headers(r, limit, "400;w=10;burst=400", per_s) for r in rs]
    print(f"\n[hot key] {n} requests in {elapsed:.2f}s: {leases1 - leases0:.0f} leases, {waits1 - waits0:.0f} waits for "
          f"Redis (warm-up: {waits0:.0f}), {len(set(rems))} distinct RateLimit-Remaining values, last {rems[-1]}")
    assert leases1 - leases0 >= 3, "the run took fewer than 3 leases: it proves little"
    assert waits0 >= 1, "the warm-up (lease of 1 token first) must have waited for Redis"
    assert waits1 == waits0, f"{waits1 - waits0:.0f} requests of a hot key waited for Redis"
    assert len(set(rems)) <= n // 8, f"RateLimit-Remaining changed on most responses: {rems[:40]} ..."
    # all admitted: the bucket holds limit - admitted + what refilled since the first request (limit / per_s per second)
    admitted = n_warm + n
    assert limit - admitted - quarter_of_max_lease <= rems[-1] <= min(limit, limit - admitted + limit / per_s * since_first + 1)


# ---------------------------------------------------------------------------------------------------------------
# 6-7. Redis killed, Redis stalled

# opn's bucket (1000) is far beyond what the lease commands a stall leaves queued in Redis take when it wakes up (the
# gateway gave up on them, Redis still runs them): so /opn is never limited, only served through store errors
STORE_ERRORS = """\
rate_limits:
  loc: { key: "header:X-Client", limit: 20, per: 1s, burst: 20, instances: 2, on_store_error: local }
  opn: { key: "header:X-Client", limit: 1000, per: 1s, burst: 1000, on_store_error: open }
  cls: { key: "header:X-Client", limit: 1000, per: 1s, burst: 2, on_store_error: closed }
routes:
""" + respond_route("loc", "/loc", "loc") + respond_route("opn", "/opn", "opn") + respond_route("cls", "/cls", "cls")


class Traffic:
    """One thread per path, each a keep-alive client doing a request every `interval`; records
    (start time, status, latency, retry-after, body or exception)."""

    def __init__(self, fx, paths, interval=0.05, timeout=5):
        self.fx, self.interval, self.timeout = fx, interval, timeout
        self.records = {p: [] for p in paths}
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(p,), daemon=True) for p in paths]
        for t in self.threads:
            t.start()

    def _run(self, path):
        c = client(self.fx, timeout=self.timeout / SLOW)
        try:
            while not self.stop_ev.is_set():
                t0 = time.monotonic()
                try:
                    r = c.get(path, headers={"X-Client": "bg"})
                    rec = (t0, r.status_code, time.monotonic() - t0, r.headers.get("retry-after"), r.text)
                except httpx.HTTPError as e:
                    rec = (t0, None, time.monotonic() - t0, None, repr(e))
                    c.close()
                    c = client(self.fx, timeout=self.timeout / SLOW)
                self.records[path].append(rec)
                self.stop_ev.wait(self.interval)
        finally:
            c.close()

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(10)

    def between(self, path, t0, t1):
        """The requests that started in [t0, t1)."""
        return [r for r in self.records[path] if t0 <= r[0] < t1]

    def answered_before(self, path, t):
        """The requests answered before t (a request that started before t may be answered after it)."""
        return [r for r in self.records[path] if r[0] + r[2] < t]


def connected_lines(fx):
    return len(re.findall(r"redis \S+: connected \(worker \d+\)", fx.stderr()))


def test_redis_sigkill_and_restart(ficus_factory, redis_server):
    cmd_timeout = CMD_TIMEOUT_S  # a killed Redis resets its connections: no decision waits for the timeout
    redis = redis_server
    fx = start(ficus_factory, redis, STORE_ERRORS)
    traffic = Traffic(fx, ["/loc", "/opn", "/cls"])
    try:
        with client(fx) as c:
            time.sleep(1.0)
            # Redis up: the policy's own burst (20) for a fresh key
            m0, el0 = burst(c, "/loc", 30, {"X-Client": "m0"})
            ok0 = statuses(m0).count(200)
            assert 20 <= ok0 <= 20 + math.ceil(el0 * 20) + 2, f"{ok0} allowed with Redis up ({el0:.2f}s)"
            before = fx.metrics()
            connected_before = connected_lines(fx)
            t_kill = time.monotonic()
            redis.kill()
            time.sleep(0.5 * SLOW)
            # Redis down, local mode: the embedded store at limit / instances (burst 20 / 2 = 10)
            m1, el1 = burst(c, "/loc", 30, {"X-Client": "m1"})
            ok1 = statuses(m1).count(200)
            assert set(statuses(m1)) <= {200, 429}, statuses(m1)
            assert 10 <= ok1 <= 10 + math.ceil(el1 * 10) + 1, f"{ok1} allowed by the embedded store ({el1:.2f}s)"
            for r in m1:
                if r.status_code == 429:
                    check_limited(r)
            time.sleep(max(0.0, t_kill + 2.5 * SLOW - time.monotonic()))
            down = fx.metrics()
            t_restart = time.monotonic()
            redis.restart()
            leases_restart = leases(fx)
            # back on Redis within a bounded time: both workers reconnected, leases counted again, /cls served
            wait_for(lambda: connected_lines(fx) >= connected_before + 2, 10 * SLOW,
                     what="'redis ...: connected' logged again by both workers")
            wait_for(lambda: leases(fx) > leases_restart and c.get("/cls", headers={"X-Client": "probe"}).status_code == 200,
                     10 * SLOW, what="decisions from Redis again after the restart")
            t_back = time.monotonic()
            # Redis up again: the full burst of 20 (not 10) for a fresh key
            m2, el2 = burst(c, "/loc", 30, {"X-Client": "m2"})
            ok2 = statuses(m2).count(200)
            assert 20 <= ok2 <= 20 + math.ceil(el2 * 20) + 2, f"{ok2} allowed after Redis came back ({el2:.2f}s)"
            time.sleep(0.5)
    finally:
        traffic.stop()
    t_end = time.monotonic()
    print(f"\n[sigkill] burst of 30: {ok0} allowed (Redis), {ok1} (embedded store, Redis down), {ok2} (Redis back "
          f"{t_back - t_restart:.2f}s after the restart)")

    # no hang: every answer within command_timeout + 1 s; no connection error
    for path, recs in traffic.records.items():
        errors = [r for r in recs if r[1] is None]
        assert not errors, f"{path}: client errors {errors[:3]}"
        slowest = max(r[2] for r in recs)
        assert slowest <= cmd_timeout + 1.0 * SLOW, f"{path}: a request took {slowest:.2f}s"
        assert len(recs) >= 40, f"{path}: only {len(recs)} requests in the run"
    # open: always served
    opn = traffic.records["/opn"]
    assert {r[1] for r in opn} == {200}, sorted({r[1] for r in opn})
    # closed: 503 rate_limit_unavailable + Retry-After: 1 while Redis is down, 200 before and after
    outage = traffic.between("/cls", t_kill + 0.3 * SLOW, t_restart)
    assert len(outage) >= 10
    bad = [r for r in outage if r[1] != 503 or r[3] != "1" or json.loads(r[4]) != {"error": "rate_limit_unavailable"}]
    assert not bad, f"closed mode during the outage: {bad[:3]}"
    assert {r[1] for r in traffic.answered_before("/cls", t_kill)} == {200}
    assert {r[1] for r in traffic.between("/cls", t_back + 0.1, t_end)} == {200}
    assert {r[1] for r in traffic.between("/loc", 0, t_end)} <= {200, 429}
    # what the metrics say about the outage
    d = {n: down.sum(n) - before.sum(n) for n in ("ficus_redis_errors_total", "ficus_redis_unavailable_total",
                                                  "ficus_redis_timeouts_total", "ficus_redis_connects_total")}
    print(f"[sigkill] redis metrics over the outage: {d}")
    assert down.get("ficus_redis_connected_workers") == 0
    assert down.get("ficus_ratelimit_decisions_total", policy="opn", result="store_error_allowed") >= 10
    assert down.get("ficus_ratelimit_decisions_total", policy="cls", result="store_error_denied") >= 10
    assert down.get("ficus_ratelimit_decisions_total", policy="loc", result="store_error_denied") >= 10
    assert fx.metrics().get("ficus_redis_connected_workers") == 2
    err = fx.stderr()
    assert re.search(r"redis 127\.0\.0\.1:\d+: disconnected", err), err[-3000:]
    fx.wait_access_log(lambda es: any(e.get("status") == 503 and e.get("route") == "cls"
                                      and e.get("error") == "rate_limit_store_unavailable" for e in es),
                       what="access log 503 with error rate_limit_store_unavailable")
    # the Redis client's own counters show the outage: ~2.5 s without Redis and ~150 decisions made without it
    assert d["ficus_redis_errors_total"] + d["ficus_redis_unavailable_total"] >= 10, \
        f"ficus_redis_* counters did not record the outage: {d}"


# The stall test's margins are in proportion, not tens of ms: command_timeout 100 ms x SLOW (far above a Redis round
# trip on a loaded box), a stall 30 command timeouts long, and "no request waited for the stall" = none took half of it.
STALL_CMD_TIMEOUT_S = 0.1 * SLOW
STALL_S = 30 * STALL_CMD_TIMEOUT_S


@pytest.mark.parametrize("stall", ["debug_sleep", "client_pause"])
def test_redis_stalled(ficus_factory, redis_server, stall):
    """Redis up but not answering (DEBUG SLEEP / CLIENT PAUSE ALL) for STALL_S: open mode serves, closed mode answers
    503 after command_timeout (never waits for the stall), and Redis's decisions come back after it."""
    redis = redis_server
    fx = start(ficus_factory, redis, STORE_ERRORS, cmd_timeout=f"{int(STALL_CMD_TIMEOUT_S * 1000)}ms")
    traffic = Traffic(fx, ["/opn", "/cls"], interval=0.03)
    try:
        time.sleep(0.7 * SLOW)
        before = fx.metrics()
        t0 = time.monotonic()  # the stall starts after t0 and ends after t0 + STALL_S
        if stall == "debug_sleep":
            th = redis.debug_sleep(STALL_S)
        else:
            redis.client_pause(STALL_S * 1000)
        t_in = redis.wait_stalled()  # the stall had begun by then
        t_stall_end = t0 + STALL_S
        if stall == "debug_sleep":
            th.join(STALL_S + 10 * SLOW)
        else:
            time.sleep(max(0.0, t_stall_end - time.monotonic()))
        during = fx.metrics()
        leases_end = leases(fx)
        # normal operation resumes (bounded): leases from Redis again and /cls served
        wait_for(lambda: leases(fx) > leases_end and traffic.records["/cls"][-1][1] == 200, 10 * SLOW,
                 what="decisions from Redis again after the stall")
        t_back = time.monotonic()
        time.sleep(0.5)
    finally:
        traffic.stop()
    t_end = time.monotonic()
    for path, recs in traffic.records.items():
        assert not [r for r in recs if r[1] is None], f"{path}: client errors"
        slowest = max(r[2] for r in recs)
        assert slowest < STALL_S / 2, \
            f"{path}: a request took {slowest:.2f}s during a {STALL_S:.1f}s Redis stall (command_timeout {STALL_CMD_TIMEOUT_S}s)"
    # a /cls request that started in the stall and whose command timed out before the stall's end: 503
    stalled = traffic.between("/cls", t_in, t_stall_end - STALL_CMD_TIMEOUT_S - 1.0 * SLOW)
    assert len(stalled) >= 10
    assert {r[1] for r in stalled} == {503}, sorted({r[1] for r in stalled})
    assert {r[1] for r in traffic.between("/opn", t0, t_end)} == {200}
    assert {r[1] for r in traffic.between("/cls", t_back + 0.1, t_end)} == {200}
    before_stall = traffic.answered_before("/cls", t0)
    assert len(before_stall) >= 10 and {r[1] for r in before_stall} == {200}, sorted({r[1] for r in before_stall})
    timeouts = during.sum("ficus_redis_timeouts_total") - before.sum("ficus_redis_timeouts_total")
    print(f"\n[{stall}] {len(stalled)} /cls requests during the stall, slowest answer "
          f"{max(r[2] for recs in traffic.records.values() for r in recs) * 1000:.0f}ms, timeouts +{timeouts:.0f}, "
          f"breaker opens +{during.sum('ficus_redis_breaker_opens_total') - before.sum('ficus_redis_breaker_opens_total'):.0f},"
          f" back {t_back - t_stall_end:.2f}s after the stall")
    assert timeouts >= 1
    assert during.get("ficus_ratelimit_decisions_total", policy="opn", result="store_error_allowed") >= 10


# ---------------------------------------------------------------------------------------------------------------
# 8. NOSCRIPT


def test_noscript_after_script_flush(ficus_factory, redis_server):
    redis = redis_server
    fx = start(ficus_factory, redis, "rate_limits:\n  ns: { key: ip, limit: 5, per: 1m }\nroutes:\n"
               + respond_route("ns", "/ns", "ns"))
    with client(fx) as c:
        rs, _ = burst(c, "/ns", 3)
        assert statuses(rs) == [200] * 3
        assert redis.calls("evalsha") >= 3
        eval_before = redis.calls("eval")
        assert redis.script_flush() in (True, "OK")
        assert redis.cli("SCRIPT", "EXISTS", "0" * 40) == [0]
        rs2, _ = burst(c, "/ns", 5)
        # a second connection (possibly the other worker, whose connection also meets NOSCRIPT)
        with client(fx) as c2:
            rs3, _ = burst(c2, "/ns", 2)
    # the budget carried over the flush (keys are untouched): 2 more, then limited; no error reached a client
    assert statuses(rs2) == [200, 200, 429, 429, 429]
    assert statuses(rs3) == [429, 429]
    assert redis.calls("eval") > eval_before, redis.commandstats()
    assert decisions(fx, "ns", "store_error_allowed") == 0 and decisions(fx, "ns", "store_error_denied") == 0
    assert decisions(fx, "ns", "allowed") == 5


# ---------------------------------------------------------------------------------------------------------------
# 9. without redis: the embedded store


def test_embedded_store_without_redis(ficus_factory):
    body = "rate_limits:\n  emb: { key: ip, limit: 5, per: 1m }\nroutes:\n" + respond_route("emb", "/emb", "emb")
    a = start(ficus_factory, None, body)
    b = start(ficus_factory, None, body)
    for fx in (a, b):
        assert "rate limits: no `redis:` configured, limits are enforced per instance" in fx.stderr()
        # one connection per request: both workers see the key; the store is per instance, not per worker
        res = []
        for _ in range(9):
            with client(fx) as c:
                res.append(c.get("/emb"))
        assert statuses(res) == [200] * 5 + [429] * 4
        for r in res[5:]:
            check_limited(r)
        assert [check_rl_headers(r, 5, "5;w=60;burst=5", 60) for r in res][:5] == [4, 3, 2, 1, 0]
        assert decisions(fx, "emb", "allowed") == 5
        assert fx.metrics().get("ficus_ratelimit_leases_total", policy="emb") in (None, 0)


# ---------------------------------------------------------------------------------------------------------------
# 10. configuration errors


BAD_BASE = """\
server:
  listen:
    - address: "127.0.0.1:18080"
"""


def line_of(text, needle):
    for i, l in enumerate(text.splitlines(), 1):
        if needle in l:
            return i
    raise AssertionError(needle)


BAD_CONFIGS = {
    "unknown_policy": ("rate_limits:\n  a: { key: ip, limit: 5, per: 1s }\nroutes:\n  - name: r\n"
                       "    match: { path_prefix: / }\n    rate_limit: [a, nosuch]   # HERE\n"
                       "    respond: { status: 200 }\n", "nosuch"),
    "bad_key_kind": ("rate_limits:\n  a:\n    key: cookie:sid   # HERE\n    limit: 5\n    per: 1s\nroutes:\n"
                     "  - name: r\n    match: { path_prefix: / }\n    respond: { status: 200 }\n", "cookie:sid"),
    "bad_key_in_list": ("rate_limits:\n  a:\n    key: [ip, 'claim:']   # HERE\n    limit: 5\n    per: 1s\nroutes:\n"
                        "  - name: r\n    match: { path_prefix: / }\n    respond: { status: 200 }\n", "claim:"),
    "burst_with_sliding_window": ("rate_limits:\n  a:\n    key: ip\n    limit: 5\n    per: 1s\n"
                                  "    algorithm: sliding_window\n    burst: 3   # HERE\nroutes:\n"
                                  "  - name: r\n    match: { path_prefix: / }\n    respond: { status: 200 }\n", "burst"),
    "unknown_on_store_error": ("rate_limits:\n  a:\n    key: ip\n    limit: 5\n    per: 1s\n"
                               "    on_store_error: fail   # HERE\nroutes:\n"
                               "  - name: r\n    match: { path_prefix: / }\n    respond: { status: 200 }\n", "fail"),
    "redis_host_name": ("redis:\n  address: \"no-such-host.invalid:6379\"   # HERE\nrate_limits:\n  a: { key: ip, limit: 5, per: 1s }\n"
                        "routes:\n  - name: r\n    match: { path_prefix: / }\n    rate_limit: a\n"
                        "    respond: { status: 200 }\n", "cannot resolve redis host"),
    "zero_limit": ("rate_limits:\n  a:\n    key: ip\n    limit: 0   # HERE\n    per: 1s\nroutes:\n"
                   "  - name: r\n    match: { path_prefix: / }\n    respond: { status: 200 }\n", None),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_config_errors(tmp_path, case):
    body, mention = BAD_CONFIGS[case]
    text = BAD_BASE + body
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    r = check_config(path)
    assert r.returncode == 1, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    line = line_of(text, "# HERE")
    assert f"{path}:{line}:" in r.stderr, f"expected {path}:{line}: in\n{r.stderr}"
    if mention:
        assert mention in r.stderr.split(f"{path}:{line}:", 1)[1], r.stderr


def test_config_good_file_ok(tmp_path):
    text = BAD_BASE + ("redis: { address: \"127.0.0.1:6379\", command_timeout: 5ms }\nrate_limits:\n"
                       "  a: { key: [ip, \"header:X-Api-Key\"], limit: 5, per: 1s, burst: 8 }\n"
                       "  b: { key: route, limit: 100, per: 1m, algorithm: sliding_window, on_store_error: closed }\n"
                       "routes:\n  - name: r\n    match: { path_prefix: / }\n    rate_limit: [a, b]\n"
                       "    respond: { status: 200 }\n")
    path = tmp_path / "good.yaml"
    path.write_text(text)
    r = check_config(path)
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stdout
