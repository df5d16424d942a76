"""W3C trace context: a trusted proxy's traceparent/tracestate is continued (same trace id and flags, a new span id
per hop upstream, tracestate kept); an untrusted client's, or an invalid one, starts a new trace (flags 00, no
tracestate); the trace id is in the access log, for proxied and local answers alike."""
import re

import pytest

from conftest import h1_raw

CONFIG = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  access_log: stdout
  trusted_proxies: [$trusted]
upstreams:
  a: { endpoints: ["http://$echo_a"] }
routes:
  - name: local
    match: { path: /local }
    respond: { status: 200, body: "ok", content_type: text/plain }
  - name: api
    match: { path_prefix: /api }
    to: a
"""

TP_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_TP = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"


def upstream_headers(f, headers, path="/api/x"):
    with f.client() as c:
        r = c.get(path, headers=headers)
        assert r.status_code == 200, r.text
        return r.json()["headers"], r.headers


def log_entry(f, rid):
    return f.wait_access_log(lambda es: next((e for e in es if e.get("request_id") == rid), None))


@pytest.fixture
def trusted(ficus_factory):
    return ficus_factory(CONFIG, trusted="127.0.0.1/32")


@pytest.fixture
def untrusted(ficus_factory):
    return ficus_factory(CONFIG, trusted="10.9.9.9/32")


def test_trusted_proxy_trace_is_continued_with_a_new_span(trusted):
    h, _ = upstream_headers(trusted, {"traceparent": CLIENT_TP, "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
                                      "x-request-id": "tp-1"})
    m = TP_RE.match(h["traceparent"])
    assert m, h["traceparent"]
    assert m.group(1) == CLIENT_TRACE and m.group(3) == "01"
    assert m.group(2) != "00f067aa0ba902b7" and m.group(2) != "0" * 16  # ficus's hop is a new span
    assert h["tracestate"] == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert log_entry(trusted, "tp-1")["trace_id"] == CLIENT_TRACE
    # each hop gets its own span id
    spans = {TP_RE.match(upstream_headers(trusted, {"traceparent": CLIENT_TP})[0]["traceparent"]).group(2) for _ in range(5)}
    assert len(spans) == 5


def test_tracestate_headers_joined_and_bounded(trusted):
    status, _, body = h1_raw(trusted.tls_port, (f"GET /api/x HTTP/1.1\r\nHost: localhost\r\ntraceparent: {CLIENT_TP}\r\n"
                                                "tracestate: a=1\r\ntracestate: b=2\r\n\r\n").encode(), ca=trusted.certs.ca)
    assert status == 200
    assert '"tracestate": "a=1,b=2"' in body.decode()
    h, _ = upstream_headers(trusted, {"traceparent": CLIENT_TP, "tracestate": "k=" + "v" * 600})
    assert "tracestate" not in h and TP_RE.match(h["traceparent"]).group(1) == CLIENT_TRACE


def test_untrusted_client_starts_a_new_trace(untrusted):
    h, _ = upstream_headers(untrusted, {"traceparent": CLIENT_TP, "tracestate": "congo=t61rcWkgMzE", "x-request-id": "tp-2"})
    m = TP_RE.match(h["traceparent"])
    assert m and m.group(1) != CLIENT_TRACE and m.group(3) == "00"
    assert "tracestate" not in h
    assert log_entry(untrusted, "tp-2")["trace_id"] == m.group(1)
    # no traceparent at all: a new trace too, a different one per request
    traces = {TP_RE.match(upstream_headers(untrusted, {})[0]["traceparent"]).group(1) for _ in range(5)}
    assert len(traces) == 5


@pytest.mark.parametrize("bad", [
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # uppercase
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # version 00 with more
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # short
    "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",  # separators
])
def test_invalid_traceparent_starts_a_new_trace(trusted, bad):
    h, _ = upstream_headers(trusted, {"traceparent": bad, "tracestate": "a=1"})
    m = TP_RE.match(h["traceparent"])
    assert m and m.group(1) != CLIENT_TRACE and m.group(3) == "00" and "tracestate" not in h


def test_future_version_is_continued(trusted):
    h, _ = upstream_headers(trusted, {"traceparent": f"cc-{CLIENT_TRACE}-00f067aa0ba902b7-01-what-the-future-holds"})
    m = TP_RE.match(h["traceparent"])
    assert m and m.group(1) == CLIENT_TRACE  # we speak version 00 to the upstream


def test_two_traceparents_are_invalid(trusted):
    status, _, body = h1_raw(trusted.tls_port, (f"GET /api/x HTTP/1.1\r\nHost: localhost\r\ntraceparent: {CLIENT_TP}\r\n"
                                                f"traceparent: {CLIENT_TP}\r\n\r\n").encode(), ca=trusted.certs.ca)
    assert status == 200
    assert CLIENT_TRACE not in body.decode()


def test_local_answers_are_logged_with_a_trace_id(untrusted):
    with untrusted.client() as c:
        assert c.get("/local", headers={"x-request-id": "tp-3"}).status_code == 200
    e = log_entry(untrusted, "tp-3")
    assert re.match(r"^[0-9a-f]{32}$", e["trace_id"]) and e["trace_id"] != "0" * 32
