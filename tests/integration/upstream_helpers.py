"""Shared by the upstream-resilience tests: a config template with one upstream `up`, and readers for its state."""
import json

from conftest import SLOW, wait_for

CONFIG = """\
server:
  workers: $workers
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
upstreams:
  up:
    endpoints: [$endpoints]
    timeout: 10s
$extra
routes:
  - name: all
    match: { path_prefix: / }
    to: up
"""


def render(endpoints, extra=""):
    eps = ", ".join(f'"http://{e}"' for e in endpoints)
    return eps, "\n".join("    " + line for line in extra.strip().splitlines())


def start(ficus_factory, endpoints, extra="", workers=2):
    eps, ex = render(endpoints, extra)
    return ficus_factory(CONFIG, endpoints=eps, extra=ex, workers=workers)


def reload(gw, endpoints, extra=""):
    eps, ex = render(endpoints, extra)
    gw.values.update(endpoints=eps, extra=ex)
    r = gw.reload(CONFIG)
    assert r.ok, r
    return r


def upstreams(gw):
    status, _, body = gw.admin_get("/upstreams")
    assert status == 200
    return {u["name"]: u for u in json.loads(body)["upstreams"]}


def endpoint(gw, addr, name="up"):
    return {e["address"]: e for e in upstreams(gw)[name]["endpoints"]}[addr]


def wait_endpoint(gw, addr, pred, what, timeout=10):
    return wait_for(lambda: pred(endpoint(gw, addr)), timeout * SLOW, what=what)


def wait_log(gw, text, timeout=10, count=1):
    return wait_for(lambda: gw.stderr().count(text) >= count, timeout * SLOW, what=f"log line {text!r}")
