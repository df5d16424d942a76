"""Access log: one JSON object per request on stdout with the contract's fields; no secrets anywhere in the logs."""
import json
import re
import time
import uuid

import pytest

from conftest import SLOW, module_ficus, wait_for

CONFIG = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
  log_level: debug
  request_id_in_response: true
upstreams:
  a: { endpoints: ["http://$echo_a"] }
  dead: { endpoints: ["http://$dead"] }
  slow: { endpoints: ["http://$echo_a"], timeout: 300ms }
routes:
  - name: ping
    match: { path: /ping }
    respond: { status: 200, body: "pong\\n", content_type: text/plain }
  - name: dead
    match: { path_prefix: /dead }
    to: dead
  - name: slow
    match: { path_prefix: /slow }
    to: slow
  - name: api
    match: { path_prefix: /api }
    to: a
"""

FIELDS = {"time", "request_id", "client", "protocol", "method", "host", "path", "status", "bytes", "duration_ms",
          "route", "upstream", "upstream_status", "upstream_ms", "error"}
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def fx(request, tmp_path_factory, certs, echoes):
    return module_ficus(request, tmp_path_factory, certs, echoes, CONFIG)


def new_id():
    return "t-" + uuid.uuid4().hex


def entry_for(fx, rid):
    """The (single) access log entry whose request_id is rid."""
    def find(entries):
        found = [e for e in entries if e.get("request_id") == rid]
        return found or None

    found = fx.wait_access_log(find, what=f"access log line for {rid}")
    assert len(found) == 1, f"{len(found)} lines for one request: {found}"
    return found[0]


def check_common(e, fx):
    assert FIELDS <= set(e), f"missing fields {FIELDS - set(e)} in {e}"
    assert TIME_RE.match(e["time"]), e["time"]
    assert e["client"] == "127.0.0.1"
    assert e["host"] in ("localhost", f"localhost:{fx.tls_port}")
    assert isinstance(e["duration_ms"], (int, float)) and e["duration_ms"] >= 0
    assert isinstance(e["status"], int) and isinstance(e["bytes"], int)


@pytest.mark.parametrize("http2,protocol", [(False, "HTTP/1.1"), (True, "HTTP/2")])
def test_proxied_request_line(fx, echoes, http2, protocol):
    rid = new_id()
    with fx.client(http2=http2) as c:
        r = c.get("/api/items/42?secret=hunter2&x=1", headers={"X-Request-Id": rid})
    assert r.status_code == 200
    e = entry_for(fx, rid)
    check_common(e, fx)
    assert e["protocol"] == protocol
    assert e["method"] == "GET"
    assert e["path"] == "/api/items/42"
    assert e["status"] == 200
    assert e["bytes"] == len(r.content)
    assert e["route"] == "api"
    assert e["upstream"] == echoes["a"].addr
    assert e["upstream_status"] == 200
    assert isinstance(e["upstream_ms"], (int, float)) and 0 <= e["upstream_ms"] <= e["duration_ms"] + 1
    assert e["error"] is None
    assert "hunter2" not in fx.stdout()


def test_generated_request_id_matches_response(fx):
    with fx.client() as c:
        r = c.post("/api/post", content=b"abc")
    rid = r.headers["x-request-id"]
    e = entry_for(fx, rid)
    assert e["method"] == "POST" and e["status"] == 200


def test_respond_route_line(fx):
    rid = new_id()
    with fx.client() as c:
        r = c.get("/ping", headers={"X-Request-Id": rid})
    e = entry_for(fx, rid)
    check_common(e, fx)
    assert e["route"] == "ping" and e["status"] == 200 and e["bytes"] == len(r.content) == 5
    assert e["upstream"] is None and e["upstream_status"] is None and e["upstream_ms"] is None
    assert e["error"] is None


def test_no_route_line(fx):
    rid = new_id()
    with fx.client() as c:
        c.get("/nowhere?q=1", headers={"X-Request-Id": rid})
    e = entry_for(fx, rid)
    check_common(e, fx)
    assert e["path"] == "/nowhere"
    assert e["status"] == 404 and e["route"] is None and e["upstream"] is None
    assert e["error"] == "no_route"


def test_upstream_refused_line(fx):
    rid = new_id()
    with fx.client() as c:
        assert c.get("/dead/x", headers={"X-Request-Id": rid}).status_code == 502
    e = entry_for(fx, rid)
    check_common(e, fx)
    assert e["status"] == 502 and e["route"] == "dead"
    assert e["upstream_status"] is None
    assert e["error"] == "upstream_connect_refused"


def test_upstream_timeout_line(fx):
    rid = new_id()
    with fx.client() as c:
        assert c.get("/slow/_sleep/1500", headers={"X-Request-Id": rid}).status_code == 504
    e = entry_for(fx, rid)
    assert e["status"] == 504 and e["route"] == "slow" and e["error"] == "upstream_timeout"
    assert e["upstream_status"] is None


def test_one_line_per_request(fx):
    ids = [new_id() for _ in range(30)]
    with fx.client(http2=True) as c2, fx.client() as c1:
        for i, rid in enumerate(ids):
            (c1 if i % 2 else c2).get(f"/api/n/{i}", headers={"X-Request-Id": rid})

    def all_there(entries):
        got = [e["request_id"] for e in entries if e.get("request_id") in set(ids)]
        return got if len(got) >= len(ids) else None

    fx.wait_access_log(all_there, what="30 access log lines")
    entries = fx.access_log()  # raises if any stdout line is not JSON
    got = [e["request_id"] for e in entries if e.get("request_id") in set(ids)]
    assert sorted(got) == sorted(ids)


def test_no_secrets_in_logs(fx):
    token = "SECRET-TOKEN-123"
    cookie = "SECRET-COOKIE"
    rids = []
    for http2 in (False, True):
        with fx.client(http2=http2) as c:
            for path in ("/api/secret", "/ping", "/nowhere", "/dead/x"):
                rid = new_id()
                rids.append(rid)
                c.get(path, headers={"Authorization": f"Bearer {token}", "Cookie": f"session={cookie}",
                                     "X-Request-Id": rid})
    for rid in rids:
        entry_for(fx, rid)
    everything = fx.stdout() + fx.stderr()
    assert token not in everything
    assert cookie not in everything


def test_line_flushed_promptly(fx):
    """The contract: a line reaches stdout at most ~200 ms after the request (checked with generous slack)."""
    rid = new_id()
    with fx.client() as c:
        c.get("/ping", headers={"X-Request-Id": rid})
    t0 = time.monotonic()
    wait_for(lambda: rid in fx.stdout(), 5 * SLOW, interval=0.01, what="access log line")
    took = time.monotonic() - t0
    assert took < 1.0 * SLOW, f"access log line appeared {took:.2f}s after the response"


OTHER = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  access_log: $log
routes:
  - name: ping
    match: { path: /ping }
    respond: { status: 200, body: "pong", content_type: text/plain }
"""


def test_access_log_to_file(ficus_factory, tmp_path):
    path = tmp_path / "access.log"
    f = ficus_factory(OTHER, log=f'"{path}"')
    rid = new_id()
    with f.client() as c:
        c.get("/ping", headers={"X-Request-Id": rid})
    wait_for(lambda: path.exists() and rid in path.read_text(), 5 * SLOW, what="line in the access log file")
    lines = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
    assert [l["request_id"] for l in lines] == [rid]
    assert rid not in f.stdout()


def test_access_log_off(ficus_factory):
    f = ficus_factory(OTHER, log='"off"')
    rid = new_id()
    with f.client() as c:
        assert c.get("/ping", headers={"X-Request-Id": rid}).status_code == 200
    time.sleep(0.5)
    assert rid not in f.stdout() and rid not in f.stderr()
