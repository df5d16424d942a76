"""`fallback:` black-box (issue 12): a replayable request (idempotent method, or any method with Idempotency-Key) whose
chosen upstream fails before any response byte — refused connection, a 502/503/504 answer — is sent once to the
fallback and the client gets the fallback's answer; a non-replayable one gets the failure; never a fallback to the
upstream that failed, never two; the access log says `decision: fallback`, and ficus_fallbacks_total plus the failed
side's 5xx in ficus_upstream_responses_total count it."""
import uuid

import httpx
import pytest

from conftest import SLOW, module_ficus, wait_for
from traffic_fixtures import Shadow

MAIN = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
  expose_upstream: true
upstreams:
  a: { endpoints: ["http://$echo_a"] }
  b: { endpoints: ["http://$echo_b"] }
  busy: { endpoints: ["http://$busy"] }
  gone: { endpoints: ["http://$dead"] }
  gone2: { endpoints: ["http://$dead"] }
routes:
  - name: to-gone
    match: { path_prefix: /gone }
    to: gone
    fallback: a
  - name: to-b
    match: { path_prefix: /b }
    to: b
    fallback: a
  - name: to-busy
    match: { path_prefix: /busy }
    to: busy
    fallback: a
  - name: self
    match: { path_prefix: /self }
    split:
      key: [header:X-User-Id]
      to: [{ upstream: a, weight: 0 }, { upstream: gone, weight: 1 }]
    fallback: gone
  - name: both-gone
    match: { path_prefix: /both }
    to: gone
    fallback: gone2
"""


@pytest.fixture(scope="module")
def busy():
    s = Shadow("busy", status=503)  # answers 503 to everything
    yield s
    s.stop()


@pytest.fixture(scope="module")
def fx(request, tmp_path_factory, certs, echoes, busy):
    return module_ficus(request, tmp_path_factory, certs, echoes, MAIN, busy=busy.addr)


@pytest.fixture(scope="module")
def client(fx):
    with fx.client(limits=httpx.Limits(max_connections=10)) as c:
        yield c


def call(client, method, path, headers=None, content=None):
    rid = uuid.uuid4().hex
    h = {"x-request-id": rid}
    h.update(headers or {})
    r = client.request(method, path, headers=h, content=content)
    r.request_id = rid
    return r


def log_entry(fx, rid):
    return fx.wait_access_log(lambda es: next((e for e in es if e.get("request_id") == rid), None),
                              what=f"access log line of {rid}")


def fallbacks(fx, route, frm, to, reason=None):
    labels = {"route": route, "from": frm, "to": to}
    if reason:
        labels["reason"] = reason
    return fx.metrics().sum("ficus_fallbacks_total", **labels)


def test_connect_failure_falls_back_for_idempotent_requests(fx, client):
    f0 = fallbacks(fx, "to-gone", "gone", "a", "connect")
    e0 = fx.metrics().sum("ficus_upstream_responses_total", route="to-gone", upstream="gone", code="5xx")
    for method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS"):
        r = call(client, method, "/gone/x", content=b"body" if method == "PUT" else None)
        assert r.status_code == 200, (method, r.status_code)
        assert r.headers.get("x-ficus-upstream") == "a"
        if method != "HEAD":
            assert r.json()["upstream"] == "a" and r.json()["method"] == method
    e = log_entry(fx, r.request_id)
    assert e["decision"] == "fallback" and e["upstream_name"] == "a" and e["status"] == 200, e
    wait_for(lambda: fallbacks(fx, "to-gone", "gone", "a", "connect") - f0 == 5, 5 * SLOW, what="5 fallbacks counted")
    m = fx.metrics()
    assert m.sum("ficus_upstream_responses_total", route="to-gone", upstream="gone", code="5xx") - e0 == 5
    assert m.sum("ficus_split_decisions_total", route="to-gone", upstream="a", decision="fallback") >= 5


def test_post_needs_an_idempotency_key(fx, client):
    f0 = fallbacks(fx, "to-gone", "gone", "a")
    r = call(client, "POST", "/gone/x", content=b"once")
    assert r.status_code == 502 and r.json() == {"error": "bad_gateway"}
    assert log_entry(fx, r.request_id)["decision"] == "route"
    r = call(client, "POST", "/gone/x", headers={"idempotency-key": "k-1"}, content=b"replayable")
    assert r.status_code == 200 and r.json()["upstream"] == "a" and r.json()["body"] == "replayable"
    assert r.json()["headers"].get("idempotency-key") == "k-1"
    wait_for(lambda: fallbacks(fx, "to-gone", "gone", "a") - f0 == 1, 5 * SLOW, what="one fallback")


def test_503_answer_falls_back_500_does_not(fx, client):
    f0 = fallbacks(fx, "to-busy", "busy", "a", "503")
    r = call(client, "GET", "/busy/x")
    assert r.status_code == 200 and r.json()["upstream"] == "a" and r.headers.get("x-ficus-upstream") == "a"
    wait_for(lambda: fallbacks(fx, "to-busy", "busy", "a", "503") - f0 == 1, 5 * SLOW, what="fallback on 503")
    # the monolith answering 503 on its own is passed on (it has no fallback of its own here)
    for code in (500, 404, 200):
        r = call(client, "GET", f"/b/_status/{code}")
        assert r.status_code == code and r.headers.get("x-ficus-upstream") == "b"
        assert log_entry(fx, r.request_id)["decision"] == "route"


def test_never_back_to_the_failed_upstream_and_never_twice(fx, client):
    # the split chose `gone`, which is also the fallback: no fallback to itself
    r = call(client, "GET", "/self/x", headers={"x-user-id": "u"})
    assert r.status_code == 502 and r.headers.get("x-ficus-upstream") == "gone"
    assert log_entry(fx, r.request_id)["decision"] == "bucket"
    assert fx.metrics().sum("ficus_fallbacks_total", route="self") == 0
    # the fallback fails too: the client gets its failure, after exactly one fallback
    f0 = fallbacks(fx, "both-gone", "gone", "gone2")
    r = call(client, "GET", "/both/x")
    assert r.status_code == 502 and r.headers.get("x-ficus-upstream") == "gone2"
    e = log_entry(fx, r.request_id)
    assert e["decision"] == "fallback" and e["upstream_name"] == "gone2", e
    assert fallbacks(fx, "both-gone", "gone", "gone2") - f0 == 1
    m = fx.metrics()
    assert m.sum("ficus_upstream_responses_total", route="both-gone", upstream="gone2", code="5xx") >= 1
