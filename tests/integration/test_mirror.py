"""`mirror:` black-box (issue 12): copies reach a real shadow process with the primary's method, path, query, headers
after ficus's processing (identity headers included), body and `x-ficus-mirror: 1`; skipped copies are counted by
reason (sample, method, body size, capacity); a slow, dead or refusing shadow never holds the primary (counted: the
primaries all answer while the shadow has answered none); the comparison counts match / status_differs /
body_differs / shadow_error / shadow_timeout, and mismatches are logged at most once per second per route without
query strings, tokens or cookies."""
import re
import time

import httpx
import pytest

from conftest import SLOW, module_ficus, wait_for
from jwt_fixtures import claims, hmac_token
from traffic_fixtures import Shadow, wait_total

SECRET = b"mirror-test-secret-0123456789abcdef-0123456789"

MAIN = """\
server:
  workers: 1
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
providers:
  hs:
    issuer: "https://idp.test/"
    hs_secret_file: "$hs_file"
    audiences: ["api://gateway"]
    algorithms: [HS256]
upstreams:
  a: { endpoints: ["http://$echo_a"] }
  same: { endpoints: ["http://$same"] }
  diff: { endpoints: ["http://$diff"] }
  failing: { endpoints: ["http://$failing"] }
  slow: { endpoints: ["http://$slow"] }
  gone: { endpoints: ["http://$dead"] }
routes:
  - name: m-same
    match: { path_prefix: /same }
    jwt: { provider: hs, required: false, forward: { sub: x-user-id } }
    to: a
    mirror: { upstream: same, compare: true }
  - name: m-diff
    match: { path_prefix: /diff }
    to: a
    mirror: { upstream: diff, compare: true }
  - name: m-log
    match: { path_prefix: /log }
    jwt: { provider: hs, required: false }
    to: a
    mirror: { upstream: diff, compare: true }
  - name: m-status
    match: { path_prefix: /status }
    to: a
    mirror: { upstream: failing, compare: true }
  - name: m-gone
    match: { path_prefix: /gone }
    to: a
    mirror: { upstream: gone, compare: true }
  - name: m-timeout
    match: { path_prefix: /timeout }
    to: a
    mirror: { upstream: slow, timeout: 300ms, compare: true }
  - name: m-capacity
    match: { path_prefix: /capacity }
    to: a
    mirror: { upstream: slow, timeout: 60s, max_inflight: 2 }
  - name: m-rules
    match: { path_prefix: /rules }
    to: a
    mirror: { upstream: same, methods: [GET, POST], max_body: 1KiB }
  - name: m-sample
    match: { path_prefix: /sample }
    to: a
    mirror: { upstream: same, sample: 50% }
  - name: m-default
    match: { path_prefix: /default }
    to: a
    mirror: { upstream: same }
"""


@pytest.fixture(scope="module")
def shadows():
    s = {"same": Shadow("same"), "diff": Shadow("diff", fill="y"), "failing": Shadow("failing", status=500),
         "slow": Shadow("slow", delay_ms=60000)}
    yield s
    for x in s.values():
        x.stop()


@pytest.fixture(scope="module")
def fx(request, tmp_path_factory, certs, echoes, shadows):
    d = tmp_path_factory.mktemp("mirror-secret")
    (d / "hs.key").write_bytes(SECRET)
    return module_ficus(request, tmp_path_factory, certs, echoes, MAIN, hs_file=d / "hs.key",
                        **{name: s.addr for name, s in shadows.items()})


@pytest.fixture(scope="module")
def client(fx):
    with fx.client(limits=httpx.Limits(max_connections=10)) as c:
        yield c


def mirror_count(fx, route, result):
    return fx.metrics().sum("ficus_mirror_requests_total", route=route, result=result)


def compare_count(fx, route, result):
    return fx.metrics().sum("ficus_mirror_compare_total", route=route, result=result)


def requests_for(shadow, prefix):
    return [r for r in shadow.seen()["requests"] if r["path"].startswith(prefix)]


def test_copy_is_the_primary_request(fx, client, shadows):
    token = hmac_token(SECRET, claims_=claims(sub="alice"))
    r = client.get("/same/orders?page=2&x=%20y", headers={"authorization": f"Bearer {token}", "x-extra": "1"})
    assert r.status_code == 200
    primary = r.json()
    got = wait_for(lambda: requests_for(shadows["same"], "/same/orders"), 10 * SLOW, what="copy at the shadow")
    copy = got[-1]
    assert copy["method"] == "GET" and copy["path"] == "/same/orders?page=2&x=%20y"
    h = copy["headers"]
    assert h.get("x-ficus-mirror") == "1"
    assert h.get("x-user-id") == "alice"  # set by jwt from the verified token, as the primary got it
    assert "authorization" not in h and "authorization" not in primary["headers"]
    for name in ("x-extra", "x-request-id", "x-forwarded-for", "x-forwarded-proto"):
        assert h.get(name) == primary["headers"].get(name), name
    assert "x-ficus-mirror" not in primary["headers"]
    assert mirror_count(fx, "m-same", "sent") >= 1


def test_methods_body_size_and_sample_are_counted(fx, client, shadows):
    shadows["same"].reset()
    base = {res: mirror_count(fx, "m-rules", res) for res in ("sent", "skipped_method", "skipped_body")}
    r = client.post("/rules/small", content=b"a" * 100)
    assert r.status_code == 200
    assert client.post("/rules/big", content=b"b" * 2048).status_code == 200
    assert client.put("/rules/put", content=b"c").status_code == 200
    assert client.delete("/rules/del").status_code == 200
    wait_for(lambda: requests_for(shadows["same"], "/rules/small"), 10 * SLOW, what="POST copy")
    small = requests_for(shadows["same"], "/rules/small")[0]
    assert small["method"] == "POST" and small["body"] == "a" * 100
    assert mirror_count(fx, "m-rules", "sent") - base["sent"] == 1
    assert mirror_count(fx, "m-rules", "skipped_body") - base["skipped_body"] == 1
    assert mirror_count(fx, "m-rules", "skipped_method") - base["skipped_method"] == 2
    assert requests_for(shadows["same"], "/rules/big") == [] and requests_for(shadows["same"], "/rules/put") == []
    # defaults: GET and HEAD only (a mirrored POST would write twice)
    d0 = mirror_count(fx, "m-default", "skipped_method")
    assert client.post("/default/x", content=b"z").status_code == 200
    assert client.head("/default/x").status_code == 200
    wait_for(lambda: requests_for(shadows["same"], "/default/x"), 10 * SLOW, what="HEAD copy")
    assert [c["method"] for c in requests_for(shadows["same"], "/default/x")] == ["HEAD"]
    assert mirror_count(fx, "m-default", "skipped_method") - d0 == 1
    # sample 50 %: every request is either sent or skipped_sample, and over 200 both happen
    s0, k0 = mirror_count(fx, "m-sample", "sent"), mirror_count(fx, "m-sample", "skipped_sample")
    for i in range(200):
        assert client.get(f"/sample/{i}").status_code == 200
    sent, skipped = mirror_count(fx, "m-sample", "sent") - s0, mirror_count(fx, "m-sample", "skipped_sample") - k0
    assert sent + skipped == 200 and 40 < sent < 160, (sent, skipped)


def test_slow_shadow_never_holds_the_primary(fx, client, shadows):
    slow = shadows["slow"]
    before = slow.seen()
    s0, c0 = mirror_count(fx, "m-capacity", "sent"), mirror_count(fx, "m-capacity", "skipped_capacity")
    for i in range(6):
        r = client.get(f"/capacity/{i}")
        assert r.status_code == 200 and r.json()["upstream"] == "a"
    # all six primaries answered while the shadow (sleeping 60 s per request) answered nothing: nobody waited for it
    now = slow.seen()
    assert now["answered"] == before["answered"]
    # max_inflight 2: two copies in flight, the other four skipped, never queued
    assert mirror_count(fx, "m-capacity", "sent") - s0 == 2
    assert mirror_count(fx, "m-capacity", "skipped_capacity") - c0 == 4
    wait_for(lambda: len(requests_for(slow, "/capacity/")) == 2, 10 * SLOW, what="two copies at the slow shadow")


def test_comparison_results(fx, client, shadows):
    for route, path, result in (("m-same", "/same/_bytes/100", "match"), ("m-diff", "/diff/_bytes/100", "body_differs"),
                                ("m-status", "/status/_bytes/100", "status_differs")):
        before = compare_count(fx, route, result)
        for _ in range(5):
            r = client.get(path)
            assert r.status_code == 200 and r.text == "x" * 100
        assert wait_total(fx, "ficus_mirror_compare_total", before + 5, route=route, result=result) == before + 5, route
    # the same length with other bytes is a body difference, not a match
    assert compare_count(fx, "m-diff", "match") == 0
    # a refusing shadow: counted as an error of the copy and of the comparison; the primary is fine
    e0, ce0 = mirror_count(fx, "m-gone", "error"), compare_count(fx, "m-gone", "shadow_error")
    for _ in range(3):
        assert client.get("/gone/x").status_code == 200
    assert wait_total(fx, "ficus_mirror_requests_total", e0 + 3, route="m-gone", result="error") == e0 + 3
    assert compare_count(fx, "m-gone", "shadow_error") - ce0 == 3
    # a shadow slower than the mirror's timeout
    t0, ct0 = mirror_count(fx, "m-timeout", "timeout"), compare_count(fx, "m-timeout", "shadow_timeout")
    for _ in range(3):
        assert client.get("/timeout/x").status_code == 200
    assert wait_total(fx, "ficus_mirror_requests_total", t0 + 3, route="m-timeout", result="timeout") == t0 + 3
    assert compare_count(fx, "m-timeout", "shadow_timeout") - ct0 == 3


def test_mismatch_log_is_rate_limited_and_clean(fx, client):
    # a route of its own: the one-line-per-second budget is per route, and no other test spends it
    token = hmac_token(SECRET, claims_=claims(sub="bob"))
    offset = len(fx.stderr())
    before = compare_count(fx, "m-log", "body_differs")
    started = time.monotonic()
    for _ in range(30):
        r = client.get("/log/_bytes/10?token=QUERYSECRET", headers={"authorization": f"Bearer {token}",
                                                                      "cookie": "sid=COOKIESECRET"})
        assert r.status_code == 200
    assert wait_total(fx, "ficus_mirror_compare_total", before + 30, route="m-log", result="body_differs") == before + 30
    elapsed = time.monotonic() - started
    lines = [ln for ln in fx.stderr()[offset:].splitlines() if "mirror m-log:" in ln]
    assert 1 <= len(lines) <= int(elapsed) + 2, (len(lines), elapsed)
    line = lines[0]
    assert re.search(r"GET /log/_bytes/10: body_differs: primary 200 \(10 bytes\), shadow diff 200 \(10 bytes\)", line), line
    for secret in ("QUERYSECRET", "COOKIESECRET", token, "yyyy", "xxxx"):
        assert secret not in fx.stderr()[offset:]
