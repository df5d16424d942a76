"""Admin listener: /healthz, /readyz, /metrics (series present, counters move by exactly what was done)."""
import json

import pytest

from conftest import SLOW, module_ficus, wait_for

CONFIG = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: "off"
upstreams:
  a: { endpoints: ["http://$echo_a"] }
  dead: { endpoints: ["http://$dead"] }
  slow: { endpoints: ["http://$echo_a"], timeout: 300ms }
routes:
  - name: ping
    match: { path: /ping }
    respond: { status: 200, body: "pong", content_type: text/plain }
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

SERIES = [
    "ficus_requests_total",
    "ficus_request_duration_seconds_bucket",
    "ficus_request_duration_seconds_sum",
    "ficus_request_duration_seconds_count",
    "ficus_inflight_requests",
    "ficus_upstream_errors_total",
    "ficus_config_reloads_total",
    "ficus_config_generation",
    "ficus_config_loaded_timestamp_seconds",
    "ficus_build_info",
    "ficus_http2_reset_flood_total",
]


@pytest.fixture(scope="module")
def fx(request, tmp_path_factory, certs, echoes):
    return module_ficus(request, tmp_path_factory, certs, echoes, CONFIG)


def test_healthz(fx):
    status, _, body = fx.admin_get("/healthz")
    assert status == 200 and body == "ok\n"


def test_readyz(fx):
    status, headers, body = fx.admin_get("/readyz")
    assert status == 200
    doc = json.loads(body)
    assert doc["status"] == "ready"
    assert doc["generation"] == 1


def test_admin_not_on_data_port(fx):
    with fx.client() as c:
        assert c.get("/metrics").status_code == 404


def test_metrics_series_present(fx):
    with fx.client() as c:
        c.get("/api/x")
        c.get("/dead/x")
        c.get("/nothing")
    m = fx.metrics()
    missing = [s for s in SERIES if s not in m.names()]
    assert not missing, f"missing series {missing}\n{m.text[:3000]}"
    assert m.get("ficus_config_generation") == 1
    bi = m.find("ficus_build_info")
    assert bi and bi[0][1].get("version") == "0.1.0" and bi[0][1].get("h2o") and bi[0][1].get("openssl")
    assert bi[0][2] == 1
    assert m.get("ficus_config_loaded_timestamp_seconds") > 1.6e9
    assert m.find("ficus_requests_total", route="_none", code="4xx")
    assert m.get("ficus_inflight_requests") is not None


def counter(fx, name, **labels):
    return fx.metrics().sum(name, **labels)


def wait_counter(fx, name, expected, **labels):
    return wait_for(lambda: counter(fx, name, **labels) == expected, 5 * SLOW,
                    what=f"{name}{labels} == {expected} (now {counter(fx, name, **labels)})")


def test_requests_total_moves(fx):
    before_2xx = counter(fx, "ficus_requests_total", route="api", code="2xx")
    before_5xx = counter(fx, "ficus_requests_total", route="api", code="5xx")
    before_hist = counter(fx, "ficus_request_duration_seconds_count", route="api")
    before_ping = counter(fx, "ficus_requests_total", route="ping", code="2xx")
    with fx.client() as c1, fx.client(http2=True) as c2:
        for i in range(7):
            assert (c1 if i % 2 else c2).get(f"/api/n{i}").status_code == 200
        for i in range(3):
            assert c2.get("/api/_status/503").status_code == 503
        for i in range(4):
            assert c1.get("/ping").status_code == 200
    wait_counter(fx, "ficus_requests_total", before_2xx + 7, route="api", code="2xx")
    wait_counter(fx, "ficus_requests_total", before_5xx + 3, route="api", code="5xx")
    wait_counter(fx, "ficus_request_duration_seconds_count", before_hist + 10, route="api")
    wait_counter(fx, "ficus_requests_total", before_ping + 4, route="ping", code="2xx")
    m = fx.metrics()
    inf = m.find("ficus_request_duration_seconds_bucket", route="api", le="+Inf")
    assert inf and inf[0][2] == m.get("ficus_request_duration_seconds_count", route="api")


def test_no_route_counted_as_none(fx):
    before = counter(fx, "ficus_requests_total", route="_none", code="4xx")
    with fx.client() as c:
        for _ in range(3):
            assert c.get("/nothing/here").status_code == 404
    wait_counter(fx, "ficus_requests_total", before + 3, route="_none", code="4xx")


def test_upstream_errors_move(fx):
    before_c = counter(fx, "ficus_upstream_errors_total", upstream="dead", kind="connect")
    before_t = counter(fx, "ficus_upstream_errors_total", upstream="slow", kind="timeout")
    with fx.client() as c:
        for _ in range(2):
            assert c.get("/dead/x").status_code == 502
        assert c.get("/slow/_sleep/1000").status_code == 504
    # two failed attempts per request: the default retry is 2 attempts on connect_failure (one endpoint: the same)
    wait_counter(fx, "ficus_upstream_errors_total", before_c + 4, upstream="dead", kind="connect")
    wait_counter(fx, "ficus_upstream_errors_total", before_t + 1, upstream="slow", kind="timeout")


def test_inflight_gauge(fx):
    import threading
    with fx.client() as c:
        t = threading.Thread(target=lambda: c.get("/api/_sleep/1200"))
        t.start()
        try:
            wait_for(lambda: fx.metrics().get("ficus_inflight_requests") >= 1, 3 * SLOW, what="inflight >= 1")
        finally:
            t.join(10 * SLOW)
    wait_for(lambda: fx.metrics().get("ficus_inflight_requests") == 0, 3 * SLOW, what="inflight back to 0")
