"""Prometheus as it is used: a /metrics scrape of a ficus with every metric source active (routes, upstreams, JWT
provider, Redis, rate limits, shedding) passes `promtool check metrics` with no complaint; the alerting rules
(packaging/prometheus/ficus-rules.yml) pass `promtool check rules` and their unit tests (`promtool test rules`); the
Grafana dashboard (packaging/grafana/ficus.json) is valid JSON whose every query is valid PromQL."""
import json
import os
import re
import subprocess

import pytest

from conftest import SOURCE_DIR
from jwt_fixtures import gen_key, make_token, public
from redis_fixtures import redis_factory, redis_server  # noqa: F401 - fixtures

RULES = os.path.join(SOURCE_DIR, "packaging", "prometheus", "ficus-rules.yml")
RULES_TEST = os.path.join(SOURCE_DIR, "packaging", "prometheus", "ficus-rules.test.yml")
DASHBOARD = os.path.join(SOURCE_DIR, "packaging", "grafana", "ficus.json")

CONFIG = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: "off"
redis: { address: "$redis", command_timeout: 1s }   # far above a round trip on a loaded box: no store error by accident
providers:
  corp:
    issuer: "https://idp.test/"
    jwks_file: "$jwks"
    audiences: ["api://gateway"]
rate_limits:
  per-ip: { key: ip, limit: 3, per: 1m }
shedding: { max_inflight: 1000 }
upstreams:
  a: { endpoints: ["http://$echo_a", "http://$echo_b"] }
  dead: { endpoints: ["http://$dead"] }
routes:
  - name: api
    match: { path_prefix: /api }
    jwt: { provider: corp, required: true }
    to: a
  - name: limited
    match: { path_prefix: /limited }
    rate_limit: [per-ip]
    to: a
  - name: dead
    match: { path_prefix: /dead }
    to: dead
"""


def promtool(*args, stdin=None):
    return subprocess.run(["promtool", *args], input=stdin, capture_output=True, text=True, timeout=120)


def test_metrics_pass_promtool(ficus_factory, redis_server, tmp_path):  # noqa: F811
    key = gen_key("RSA", 2048, "k1", "RS256")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public(key)]}))
    f = ficus_factory(CONFIG, redis=redis_server.addr, jwks=jwks)
    with f.client() as c:
        assert c.get("/api/x", headers={"authorization": f"Bearer {make_token(key)}"}).status_code == 200
        assert c.get("/api/x", headers={"authorization": "Bearer nope"}).status_code == 401
        assert c.get("/api/x").status_code == 401
        assert c.get("/nowhere").status_code == 404
        assert c.get("/dead").status_code == 502
        codes = [c.get("/limited").status_code for _ in range(5)]
        assert 429 in codes, codes
    # and a failed reload, so that every series of the config family has been moved
    f.write_config(CONFIG + "bogus: 1\n")
    assert not f.reload().ok
    status, headers, body = f.admin_get("/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    r = promtool("check", "metrics", stdin=body)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr
    m = f.metrics()
    assert m.get("ficus_config_last_reload_successful") == 0
    for name in ("ficus_requests_total", "ficus_jwt_validations_total", "ficus_redis_commands_total",
                 "ficus_ratelimit_decisions_total", "ficus_shed_level", "ficus_upstream_errors_total",
                 "ficus_redis_latency_seconds_count", "ficus_upstream_retries_total", "ficus_jwks_keys"):
        assert name in m.names(), name
    # a family's samples are contiguous and follow its own TYPE line (what promtool parses strictly)
    seen, current = set(), None
    for line in body.splitlines():
        t = re.match(r"# TYPE (\S+) (\S+)", line)
        if t:
            assert t.group(1) not in seen, f"family {t.group(1)} declared twice"
            seen.add(t.group(1))
            current = t.group(1)
        elif line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            assert name == current or re.sub(r"_(bucket|sum|count)$", "", name) == current, (name, current)
    # a good reload sets it back
    f.write_config(CONFIG)
    assert f.reload().ok
    assert f.metrics().get("ficus_config_last_reload_successful") == 1


def test_alerting_rules():
    r = promtool("check", "rules", RULES)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: " in r.stdout
    r = subprocess.run(["promtool", "test", "rules", os.path.basename(RULES_TEST)], cwd=os.path.dirname(RULES_TEST),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(RULES) as fp:
        text = fp.read()
    alerts = set(re.findall(r"- alert: (\w+)", text))
    # what the issue asks operators be told about
    for a in ("FicusReloadFailed", "FicusJwksStale", "FicusJwksNoKeys", "FicusRedisBreakerOpen", "FicusUpstreamBreakerOpen",
              "FicusUpstreamPanic", "FicusFallbacksRising", "FicusMirrorMismatchesRising", "FicusShedding"):
        assert a in alerts, a
    with open(RULES_TEST) as fp:
        tested = set(re.findall(r"alertname: (\w+)", fp.read()))
    assert {"FicusReloadFailed", "FicusJwksStale", "FicusJwksNoKeys", "FicusRedisBreakerOpen", "FicusShedding",
            "FicusUpstreamBreakerOpen", "FicusFallbacksRising", "FicusMirrorMismatchesRising"} <= tested


def test_grafana_dashboard(tmp_path):
    with open(DASHBOARD) as fp:
        d = json.load(fp)
    assert d["title"] == "ficus" and d["uid"]
    panels = d["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    rows = [p["title"] for p in panels if p["type"] == "row"]
    for want in ("Config and build", "Traffic", "Migration: old vs new ($route)", "Upstreams", "Identity (JWT, JWKS)",
                 "Redis", "Load shedding"):
        assert want in rows, want
    exprs = [t["expr"] for p in panels if p["type"] != "row" for t in p["targets"]]
    assert len(exprs) > 30
    for p in panels:
        if p["type"] != "row":
            assert p["targets"] and p["gridPos"]["w"] > 0, p["title"]
    # every query is valid PromQL: as recording rules, Grafana's variables replaced by values
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for i, e in enumerate(exprs):
        e = e.replace("$__rate_interval", "5m").replace("$instance", ".*").replace("$route", ".*")
        assert "$" not in e, e
        rules += [f"      - record: dashboard:query{i}", f"        expr: {json.dumps(e)}"]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text("\n".join(rules) + "\n")
    r = promtool("check", "rules", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
