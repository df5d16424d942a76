"""`split:` at request time, black-box against real echo upstreams (issue 12): the user's key (header, claim from a
verified JWT, cookie) picks the upstream exactly as an independent reference of the bucket mapping says
(split_ref.py) and keeps picking it; keyless visitors get a sticky cookie (Secure; HttpOnly; SameSite=Lax; Path=/,
long-lived) or, without one, a random side; overrides by header or cookie win only when they name one of the split's
upstreams and never reach the upstream; the access log's upstream_name / decision, `x-ficus-upstream` with
server.expose_upstream, and the per-side series ficus_split_decisions_total, ficus_upstream_responses_total,
ficus_upstream_duration_seconds. Also `ficus -t` on split/fallback/mirror mistakes (file:line)."""
import collections
import re
import subprocess
import uuid

import httpx
import pytest

import split_ref
from conftest import FICUS_BIN, SLOW, module_ficus, wait_for
from jwt_fixtures import claims, hmac_token

MAIN = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
  expose_upstream: true
providers:
  hs:
    issuer: "https://idp.test/"
    hs_secret_file: "$hs_file"
    audiences: ["api://gateway"]
    algorithms: [HS256]
upstreams:
  a: { endpoints: ["http://$echo_a"] }
  b: { endpoints: ["http://$echo_b"] }
  c: { endpoints: ["http://$echo_c"] }
  gone: { endpoints: ["http://$dead"] }
routes:
  - name: byheader
    match: { path_prefix: /h }
    split:
      key: [header:X-User-Id]
      salt: s1
      to: [{ upstream: a, weight: 30 }, { upstream: b, weight: 70 }]
  - name: byclaim
    match: { path_prefix: /claim }
    jwt: { provider: hs, required: false }
    split:
      key: [claim:sub, header:X-User-Id]
      to: [{ upstream: a, weight: 50 }, { upstream: b, weight: 50 }]
  - name: sticky
    match: { path_prefix: /sticky }
    split:
      key: [cookie:sid]
      sticky_cookie: ficus-bucket
      to: [{ upstream: a, weight: 50 }, { upstream: b, weight: 50 }]
  - name: random
    match: { path_prefix: /random }
    split: { to: [{ upstream: a, weight: 50 }, { upstream: b, weight: 50 }] }
  - name: pinned
    match: { path_prefix: /pinned }
    split:
      key: [header:X-User-Id]
      to: [{ upstream: a, weight: 1 }, { upstream: b, weight: 0 }]
      override: { header: X-Ficus-Upstream, cookie: ficus-upstream }
  - name: deadside
    match: { path_prefix: /deadside }
    split:
      key: [header:X-User-Id]
      to: [{ upstream: gone, weight: 1 }, { upstream: a, weight: 0 }]
  - name: plain
    match: { path_prefix: /plain }
    to: c
"""

HEADER_TARGETS = [("a", 30), ("b", 70)]
HALF = [("a", 50), ("b", 50)]


@pytest.fixture(scope="module")
def secret():
    return b"split-test-secret-0123456789abcdef-0123456789"


@pytest.fixture(scope="module")
def fx(request, tmp_path_factory, certs, echoes, secret):
    d = tmp_path_factory.mktemp("split-secret")
    (d / "hs.key").write_bytes(secret)
    return module_ficus(request, tmp_path_factory, certs, echoes, MAIN, hs_file=d / "hs.key")


@pytest.fixture(scope="module")
def client(fx):
    with fx.client(limits=httpx.Limits(max_connections=20)) as c:
        yield c


def get(client, path, headers=None, cookies=None):
    h = {"x-request-id": uuid.uuid4().hex}
    h.update(headers or {})
    if cookies is not None:
        h["cookie"] = cookies
    client.cookies.clear()  # each request is its own visitor: only the cookies given here
    r = client.get(path, headers=h)
    r.request_id = h["x-request-id"]
    return r


def served_by(r):
    assert r.status_code == 200, f"{r.status_code} {r.text[:200]}"
    return r.json()["upstream"]


def log_entry(fx, request_id):
    return fx.wait_access_log(lambda es: next((e for e in es if e.get("request_id") == request_id), None),
                              what=f"access log line of {request_id}")


def test_header_key_is_sticky_and_follows_the_reference(client):
    seen = collections.Counter()
    for i in range(300):
        user = f"user-{i}"
        want = split_ref.side("s1", user, HEADER_TARGETS)
        first = served_by(get(client, f"/h/x{i}", {"x-user-id": user}))
        assert first == want, (user, first, want)
        assert served_by(get(client, "/h/again", {"x-user-id": user})) == first, user
        seen[first] += 1
    # 300 users at 30/70: both sides have users (the exact share is the unit test's, over 10,000 keys)
    assert 50 <= seen["a"] <= 130, seen


def test_claim_key_comes_from_the_verified_token(client, secret):
    for i in range(60):
        sub = f"sub-{i}"
        token = hmac_token(secret, claims_=claims(sub=sub))
        # the header key is listed second: the verified claim wins over whatever the client sends
        r = get(client, "/claim/x", {"authorization": f"Bearer {token}", "x-user-id": f"other-{i}"})
        assert served_by(r) == split_ref.side("byclaim", sub, HALF), sub
    # without a token (jwt is optional here) the next key applies
    for i in range(30):
        user = f"hdr-{i}"
        assert served_by(get(client, "/claim/x", {"x-user-id": user})) == split_ref.side("byclaim", user, HALF)
    # a forged token is not an identity: 401 from jwt, nothing chosen
    forged = hmac_token(b"not-the-secret-not-the-secret-not-the-secret!", claims_=claims(sub="sub-1"))
    assert get(client, "/claim/x", {"authorization": f"Bearer {forged}"}).status_code == 401


def test_sticky_cookie_for_keyless_visitors(fx, client):
    sides = collections.Counter()
    for i in range(40):
        r = get(client, "/sticky/x")
        side = served_by(r)
        set_cookies = r.headers.get_list("set-cookie")
        assert len(set_cookies) == 1, set_cookies
        sc = set_cookies[0]
        m = re.match(r"ficus-bucket=([0-9a-f]{16});", sc)
        assert m, sc
        attrs = [a.strip() for a in sc.split(";")[1:]]
        assert "Path=/" in attrs and "Secure" in attrs and "HttpOnly" in attrs and "SameSite=Lax" in attrs, sc
        max_age = [int(a.split("=")[1]) for a in attrs if a.startswith("Max-Age=")]
        assert max_age and max_age[0] >= 180 * 86400, sc
        value = m.group(1)
        assert side == split_ref.side("sticky", value, HALF), (value, side)
        # the returning visitor keeps its side and gets no new cookie
        for _ in range(3):
            again = get(client, "/sticky/y", cookies=f"other=1; ficus-bucket={value}")
            assert served_by(again) == side
            assert again.headers.get_list("set-cookie") == []
        sides[side] += 1
        if i == 0:
            e = log_entry(fx, r.request_id)
            assert e["decision"] == "sticky_cookie" and e["upstream_name"] == side, e
    assert sides["a"] > 0 and sides["b"] > 0, sides
    # a visitor with the key (cookie sid) is bucketed by it: no sticky cookie
    r = get(client, "/sticky/x", cookies="sid=session-42")
    assert served_by(r) == split_ref.side("sticky", "session-42", HALF)
    assert r.headers.get_list("set-cookie") == []
    assert log_entry(fx, r.request_id)["decision"] == "bucket"
    # a malformed sticky value is replaced
    r = get(client, "/sticky/x", cookies="ficus-bucket=bad%20value")
    assert re.match(r"ficus-bucket=[0-9a-f]{16};", r.headers.get("set-cookie", "")), r.headers


def test_random_bucket_without_key_or_cookie(fx, client):
    sides = collections.Counter(served_by(get(client, "/random/x")) for _ in range(100))
    # 100 fair coin flips: all on one side has probability 2^-99
    assert sides["a"] > 0 and sides["b"] > 0, sides
    r = get(client, "/random/x")
    assert r.headers.get_list("set-cookie") == []
    e = log_entry(fx, r.request_id)
    assert e["decision"] == "bucket" and e["upstream_name"] in ("a", "b"), e


def test_override_header_and_cookie(fx, client):
    # b has weight 0: only an override reaches it
    r = get(client, "/pinned/x", {"x-user-id": "u1", "X-Ficus-Upstream": "b"})
    assert served_by(r) == "b"
    assert "x-ficus-upstream" not in r.json()["headers"], r.json()["headers"]
    assert log_entry(fx, r.request_id)["decision"] == "override"
    r = get(client, "/pinned/x", {"x-user-id": "u1"}, cookies="x=1; ficus-upstream=b; y=2")
    assert served_by(r) == "b"
    assert r.json()["headers"].get("cookie") == "x=1; y=2", r.json()["headers"]
    # only the override cookie: the Cookie header goes away entirely
    r = get(client, "/pinned/x", {"x-user-id": "u1"}, cookies="ficus-upstream=b")
    assert served_by(r) == "b" and "cookie" not in r.json()["headers"]
    # a name outside the split (c exists, but not in this split) or garbage is ignored, and still removed
    for value in ("c", "gone", "B", "bb", ""):
        r = get(client, "/pinned/x", {"x-user-id": "u1", "x-ficus-upstream": value}, cookies=f"ficus-upstream={value}")
        assert served_by(r) == "a", value
        hdrs = r.json()["headers"]
        assert "x-ficus-upstream" not in hdrs and "ficus-upstream" not in hdrs.get("cookie", ""), hdrs
        assert log_entry(fx, r.request_id)["decision"] == "bucket"
    # the header wins over the cookie
    r = get(client, "/pinned/x", {"x-ficus-upstream": "a"}, cookies="ficus-upstream=b")
    assert served_by(r) == "a"
    assert log_entry(fx, r.request_id)["decision"] == "override"


def test_expose_upstream_and_access_log(fx, client):
    r = get(client, "/h/x", {"x-user-id": "user-7"})
    side = served_by(r)
    assert r.headers.get("x-ficus-upstream") == side
    e = log_entry(fx, r.request_id)
    assert e["upstream_name"] == side and e["decision"] == "bucket", e
    r = get(client, "/plain/x")
    assert served_by(r) == "c" and r.headers.get("x-ficus-upstream") == "c"
    e = log_entry(fx, r.request_id)
    assert e["upstream_name"] == "c" and e["decision"] == "route", e
    # not proxied: no upstream in the log, no header
    r = get(client, "/nowhere")
    assert r.status_code == 404 and "x-ficus-upstream" not in r.headers
    e = log_entry(fx, r.request_id)
    assert e["upstream_name"] is None and e["decision"] is None, e


def test_per_side_metrics(fx, client):
    m0 = fx.metrics()
    sides = collections.Counter(served_by(get(client, "/h/m", {"x-user-id": f"m-{i}"})) for i in range(40))
    dead = [get(client, "/deadside/x", {"x-user-id": f"d-{i}"}) for i in range(3)]
    assert all(r.status_code == 502 and r.headers.get("x-ficus-upstream") == "gone" for r in dead), dead

    def settled():
        m = fx.metrics()
        return m if (m.sum("ficus_upstream_responses_total", route="byheader")
                     - m0.sum("ficus_upstream_responses_total", route="byheader") >= 40) else None
    m = wait_for(settled, 5 * SLOW, what="responses counted")

    def delta(name, **labels):
        return m.sum(name, **labels) - m0.sum(name, **labels)
    for side in ("a", "b"):
        assert delta("ficus_split_decisions_total", route="byheader", upstream=side, decision="bucket") == sides[side]
        assert delta("ficus_upstream_responses_total", route="byheader", upstream=side, code="2xx") == sides[side]
        assert delta("ficus_upstream_duration_seconds_count", route="byheader", upstream=side) == sides[side]
        assert m.get("ficus_upstream_duration_seconds_bucket", route="byheader", upstream=side, le="+Inf") is not None
    assert delta("ficus_upstream_responses_total", route="byheader", code="5xx") == 0
    # the dead side's failures are visible as its 5xx
    wait_for(lambda: fx.metrics().sum("ficus_upstream_responses_total", route="deadside", upstream="gone", code="5xx")
             - m0.sum("ficus_upstream_responses_total", route="deadside", upstream="gone", code="5xx") == 3,
             5 * SLOW, what="5xx of the dead side")
    assert m.get("ficus_split_decisions_total", route="plain", upstream="c", decision="route") is not None


BAD = """\
server:
  listen: [{ address: "127.0.0.1:18080" }]
upstreams:
  monolith: { endpoints: ["http://127.0.0.1:9000"] }
  orders: { endpoints: ["http://127.0.0.1:9100"] }
routes:
  - name: orders
    match: { path_prefix: /api/orders }
"""


@pytest.mark.parametrize("tail,line,phrase", [
    ("    split: { to: [{ upstream: ordrs, weight: 1 }] }\n", 9, "unknown upstream 'ordrs'"),
    ("    to: orders\n    fallback: orders\n", 10, "fallback 'orders' is the route's only target"),
    ("    split:\n      to:\n        - { upstream: orders, weight: -10 }\n", 11, "weight must not be negative"),
    ("    split:\n      to:\n        - { upstream: orders, weight: 0 }\n        - { upstream: monolith, weight: 0 }\n",
     11, "weights are all 0"),
    ("    to: monolith\n    mirror:\n      upstream: orders\n      sample: 0.001%\n", 12, "from 0.01% to 100%"),
    ("    to: monolith\n    mirror:\n      upstream: orders\n      sample: 150%\n", 12, "from 0.01% to 100%"),
    ("    to: monolith\n    fallback: nowhere\n", 10, "unknown upstream 'nowhere'"),
])
def test_check_reports_file_and_line(tmp_path, tail, line, phrase):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD + tail)
    p = subprocess.run([FICUS_BIN, "-t", "-c", str(path)], capture_output=True, text=True, timeout=30 * SLOW)
    assert p.returncode != 0
    assert f"{path}:{line}: " in p.stderr and phrase in p.stderr, p.stderr
