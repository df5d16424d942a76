"""Load shedding (plugins/shed): priorities against max_inflight thresholds, a synthetic overload, the upstream
bulkhead (max_connections), the fleet shed level and budget in a real redis-server, Redis killed, metrics.

Requests are held in flight with the echo upstream's /_sleep/MS; the tests wait for the gauge
ficus_inflight_by_priority to show them before probing, so assertions are about counts, not timings.
"""
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import SLOW, wait_for
from redis_fixtures import RedisServer

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"

HOLD_MS = int(4000 * SLOW)  # how long a held request sleeps in the upstream


# ---------------------------------------------------------------------------------------------------------------
# redis-server


class Redis(RedisServer):
    """redis_fixtures' server (free port, collision checks) with redis-cli's text answers."""

    def cli(self, *args):
        r = subprocess.run([REDIS_CLI, "-p", str(self.port), *args], capture_output=True, text=True, timeout=10)
        return r.stdout.strip()


@pytest.fixture
def redis(tmp_path):
    r = Redis(tmp_path / "redis")
    yield r
    r.kill()


# ---------------------------------------------------------------------------------------------------------------
# config and clients

CONFIG = """\
server:
  workers: $workers
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
  log_level: info
$redis_section
shedding:
  max_inflight: 20
  thresholds: { low: 50%, normal: 75%, high: 90% }
  max_loop_lag: $max_loop_lag
  retry_after: 2s
$fleet_section
upstreams:
  a: { endpoints: ["http://$echo_a"], timeout: 60s }
  b: { endpoints: ["http://$echo_b"], timeout: 60s }
routes:
  - name: low
    match: { path_prefix: /low/ }
    strip_prefix: /low
    priority: low
    to: a
  - name: normal
    match: { path_prefix: /normal/ }
    strip_prefix: /normal
    priority: normal
    to: a
  - name: high
    match: { path_prefix: /high/ }
    strip_prefix: /high
    priority: high
    to: a
  - name: critical
    match: { path_prefix: /critical/ }
    strip_prefix: /critical
    priority: critical
    to: b
  - name: default
    match: { path_prefix: /default/ }
    strip_prefix: /default
    to: a
"""

PRIORITIES = ("low", "normal", "high", "critical")


def config(redis=None, fleet=""):
    redis_section = ""
    if redis is not None:
        redis_section = f'redis: {{ address: "127.0.0.1:{redis.port}", command_timeout: 300ms, connect_timeout: 500ms, ' \
                        f'reconnect_min: 50ms, reconnect_max: 200ms }}'
    fleet_section = f"  fleet: {{ {fleet} }}" if fleet else ""
    return CONFIG.replace("$redis_section", redis_section).replace("$fleet_section", fleet_section)


def start(ficus_factory, redis=None, fleet="", workers=2, max_loop_lag="0"):
    return ficus_factory(config(redis, fleet), workers=workers, max_loop_lag=max_loop_lag)


_ctx_lock = threading.Lock()
_ctxs = {}


def _ctx(ca):
    with _ctx_lock:
        if ca not in _ctxs:
            c = ssl.create_default_context(cafile=ca)
            c.set_alpn_protocols(["http/1.1"])
            _ctxs[ca] = c
        return _ctxs[ca]


def get(fx, path, timeout=None):
    """One GET on its own TLS connection: (status, headers dict lower-case, body bytes)."""
    conn = http.client.HTTPSConnection("localhost", fx.tls_port, context=_ctx(fx.certs.ca), timeout=timeout or 30 * SLOW)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def inflight_by_priority(fx):
    m = fx.metrics()
    return {p: m.get("ficus_inflight_by_priority", priority=p) for p in PRIORITIES}


class Holder:
    """Holds n requests of one priority in flight (GET /<priority>/_sleep/HOLD_MS), joined at the end."""

    def __init__(self, fx, priority, n, ms=HOLD_MS):
        self.results = []
        self.threads = [threading.Thread(target=self._one, args=(fx, f"/{priority}/_sleep/{ms}"), daemon=True)
                        for _ in range(n)]
        for t in self.threads:
            t.start()

    def _one(self, fx, path):
        try:
            self.results.append(get(fx, path)[0])
        except Exception as e:  # noqa: BLE001 - recorded and asserted by the caller
            self.results.append(repr(e))

    def join(self):
        for t in self.threads:
            t.join(60 * SLOW)
        return self.results


def hold(fx, priority, n, base=0):
    """Start n held requests of `priority` and wait until ficus counts them in flight."""
    h = Holder(fx, priority, n)
    wait_for(lambda: inflight_by_priority(fx)[priority] == base + n, 20 * SLOW,
             what=f"{base + n} {priority} requests in flight")
    return h


def probe(fx, priority):
    """(status, error from the body or None, retry-after header) of one quick request of `priority`."""
    status, headers, body = get(fx, f"/{priority}/probe")
    err = json.loads(body).get("error") if headers.get("content-type", "").startswith("application/json") and status != 200 else None
    return status, err, headers.get("retry-after")


def log_errors(fx, route):
    return [e["error"] for e in fx.access_log() if e.get("route") == route and e.get("error")]


# ---------------------------------------------------------------------------------------------------------------
# local shedding


def test_thresholds_by_priority(ficus_factory):
    """max_inflight 20, low 50 % / normal 75 % / high 90 %: with 12, 16, 19, 20 requests held in flight, exactly the
    priorities whose threshold is exceeded (counting the probe itself) are shed, with 503 + Retry-After."""
    fx = start(ficus_factory)
    for p in PRIORITIES:
        assert probe(fx, p)[0] == 200, p

    expect = {  # held -> priorities shed (in-flight with the probe: 13, 17, 20, 21)
        12: {"low"},
        16: {"low", "normal"},
        19: {"low", "normal", "high"},
        20: {"low", "normal", "high", "critical"},
    }
    holders, held = [], 0
    for n, shed in expect.items():
        holders.append(hold(fx, "critical", n - held, base=held))
        held = n
        for p in PRIORITIES:
            status, err, retry_after = probe(fx, p)
            if p in shed:
                assert (status, err, retry_after) == (503, "overloaded", "2"), (n, p)
            else:
                assert status == 200, (n, p, status, err)
        assert probe(fx, "default")[0] == (503 if "normal" in shed else 200), n  # no `priority:` = normal
    for h in holders:
        assert h.join() == [200] * len(h.threads)
    for p in PRIORITIES:
        assert probe(fx, p)[0] == 200, p

    m = fx.metrics()
    assert m.get("ficus_shed_total", priority="low", reason="inflight") == 4
    assert m.get("ficus_shed_total", priority="normal", reason="inflight") == 3 + 3  # + the route without priority
    assert m.get("ficus_shed_total", priority="high", reason="inflight") == 2
    assert m.get("ficus_shed_total", priority="critical", reason="inflight") == 1
    fx.wait_access_log(lambda es: len([e for e in es if e.get("error") == "shed_inflight"]) == 13)
    assert log_errors(fx, "low") == ["shed_inflight"] * 4
    shed = [e for e in fx.access_log() if e.get("error") == "shed_inflight"]
    assert all(e["status"] == 503 and e["upstream"] is None for e in shed), shed


def test_synthetic_overload_sheds_low_first(ficus_factory):
    """45 clients (CLIENTS per priority, started interleaved) loop on a slow upstream (300 ms) with max_inflight 20, about
    twice what it admits: low is shed first and most, critical is still served. Only 200 or 503 overloaded is ever
    answered. Each client's first `warmup` answers (while the clients all arrive at once) are left out of the ratios,
    not out of the counts. Admission does not preempt: high may hold up to 90 % (18), so critical demand beyond the
    remaining headroom and turnover is shed too (at 100 %)."""
    fx = start(ficus_factory)
    per_client, warmup = 10, 2
    results = {p: [] for p in PRIORITIES}
    lock = threading.Lock()

    def client(p):
        conn, mine = None, []
        for _ in range(per_client):
            try:
                if conn is None:
                    conn = http.client.HTTPSConnection("localhost", fx.tls_port, context=_ctx(fx.certs.ca), timeout=30 * SLOW)
                conn.request("GET", f"/{p}/_sleep/300")
                r = conn.getresponse()
                body = r.read()
                res = r.status if r.status == 200 else (r.status, json.loads(body).get("error"))
            except Exception as e:  # noqa: BLE001
                res = repr(e)
                conn = None
            mine.append(res)
            if res != 200:
                time.sleep(0.05)  # a shed client backs off a little (bounded), as Retry-After asks
        if conn is not None:
            conn.close()
        with lock:
            results[p].append(mine)

    clients = {"low": 15, "normal": 15, "high": 10, "critical": 5}
    threads = [threading.Thread(target=client, args=(p,)) for i in range(15) for p in PRIORITIES if i < clients[p]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120 * SLOW)
    assert not any(t.is_alive() for t in threads)

    shed = (503, "overloaded")
    ratio = {}
    for p in PRIORITIES:
        every = [r for mine in results[p] for r in mine]
        assert len(every) == clients[p] * per_client
        assert set(every) <= {200, shed}, (p, [r for r in every if r not in (200, shed)][:5])
        steady = [r for mine in results[p] for r in mine[warmup:]]
        ratio[p] = steady.count(shed) / len(steady)
    print("shed ratios after warm-up", ratio)
    assert ratio["low"] >= 0.8, ratio
    assert ratio["low"] >= ratio["high"] and ratio["normal"] >= ratio["high"] >= ratio["critical"], ratio
    assert ratio["critical"] <= 0.1, ratio
    m = fx.metrics()
    for p in PRIORITIES:
        assert m.sum("ficus_shed_total", priority=p) == sum(mine.count(shed) for mine in results[p]), p
    assert m.sum("ficus_shed_total", reason="inflight") == m.sum("ficus_shed_total")
    assert all(v == 0 for v in inflight_by_priority(fx).values())


# ---------------------------------------------------------------------------------------------------------------
# bulkhead


BULKHEAD = """\
server:
  workers: 1
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
shedding: { max_inflight: 1000 }
upstreams:
  slow: { endpoints: ["http://$echo_a"], max_connections: 4, timeout: 60s }
  other: { endpoints: ["http://$echo_b"] }
routes:
  - name: slow
    match: { path_prefix: /slow/ }
    strip_prefix: /slow
    priority: high
    to: slow
  - name: other
    match: { path_prefix: /other/ }
    strip_prefix: /other
    priority: low
    to: other
"""


def test_bulkhead_isolates_a_slow_upstream(ficus_factory):
    """An upstream with max_connections 4 and a slow endpoint: 10 concurrent requests → 4 served, 6 get 503
    upstream_overloaded at once; meanwhile another route/upstream answers normally."""
    fx = ficus_factory(BULKHEAD)
    h = Holder(fx, "slow", 10)
    wait_for(lambda: inflight_by_priority(fx)["high"] == 4 and len(h.results) == 6, 20 * SLOW,
             what="4 slow requests in flight and 6 answered")
    assert h.results == [503] * 6
    for _ in range(5):
        status, _, body = get(fx, "/other/x")
        assert status == 200 and json.loads(body)["upstream"] == "b"
    assert inflight_by_priority(fx)["high"] == 4  # still saturated while the other route was served
    assert sorted(h.join()) == [200] * 4 + [503] * 6
    fx.wait_access_log(lambda es: len([e for e in es if e.get("error") == "upstream_overloaded"]) == 6)
    m = fx.metrics()
    assert m.get("ficus_upstream_errors_total", upstream="slow", kind="overloaded") == 6
    assert m.sum("ficus_shed_total") == 0


# ---------------------------------------------------------------------------------------------------------------
# fleet state in Redis


def wait_status(fx, priority, status, err=None, timeout=3.0):
    """Poll one priority until it answers `status` (and error `err`); returns the seconds it took."""
    t0 = time.monotonic()
    wait_for(lambda: probe(fx, priority)[:2] == (status, err), timeout * SLOW, interval=0.02,
             what=f"{priority} to answer {status} {err or ''}")
    return time.monotonic() - t0


def test_fleet_level_from_redis_cli(ficus_factory, redis):
    fx = start(ficus_factory, redis, fleet='key_prefix: "ficus:shed"')  # poll_interval: 500ms (default)
    wait_for(lambda: fx.metrics().get("ficus_fleet_instances") == 1, 5 * SLOW, what="this instance registered")
    for p in PRIORITIES:
        assert probe(fx, p)[0] == 200, p

    assert redis.cli("SET", "{ficus:shed}:level", "2") == "OK"
    took = wait_status(fx, "low", 503, "overloaded")
    print(f"level 2 applied after {took:.2f}s")
    assert took < 1.0 * SLOW, took
    assert probe(fx, "normal")[:2] == (503, "overloaded")
    assert probe(fx, "high")[0] == 200
    assert probe(fx, "critical")[0] == 200
    assert fx.metrics().get("ficus_shed_level") == 2
    fx.wait_access_log(lambda es: "shed_fleet_level" in log_errors(fx, "normal") and "shed_fleet_level" in log_errors(fx, "low"))
    assert set(log_errors(fx, "low")) == {"shed_fleet_level"}

    assert redis.cli("SET", "{ficus:shed}:level", "3") == "OK"
    wait_status(fx, "high", 503, "overloaded")
    assert probe(fx, "critical")[0] == 200

    assert redis.cli("SET", "{ficus:shed}:level", "0") == "OK"
    took = wait_status(fx, "low", 200)
    assert took < 1.0 * SLOW, took
    for p in PRIORITIES:
        assert probe(fx, p)[0] == 200, p
    m = fx.metrics()
    assert m.get("ficus_shed_level") == 0
    assert m.get("ficus_shed_total", priority="high", reason="fleet_level") >= 1
    assert m.get("ficus_shed_total", priority="critical", reason="fleet_level") == 0

    # this instance's load is published under the documented key, with a TTL
    entries = redis.cli("HGETALL", "{ficus:shed}:instances").splitlines()
    assert len(entries) == 2 and re.fullmatch(rf"[^:]+:{fx.pid}", entries[0]), entries
    assert re.fullmatch(r"\d+ \d+ \d+", entries[1]), entries
    assert 0 < int(redis.cli("PTTL", "{ficus:shed}:instances")) <= 1500


def test_fleet_budget_is_shared_by_live_instances(ficus_factory, redis):
    """fleet max_inflight 6: alone, this instance may have 6 in flight; with a second live instance in Redis
    (published like ficus does, kept fresh by the test) its share is 3, so a 4th request is shed (fleet_budget)."""
    fx = start(ficus_factory, redis, fleet="poll_interval: 100ms, max_inflight: 6")
    wait_for(lambda: fx.metrics().get("ficus_fleet_instances") == 1, 5 * SLOW, what="this instance registered")
    h = hold(fx, "critical", 3)
    assert probe(fx, "normal")[0] == 200  # 4 <= 6

    stop = threading.Event()

    def other_instance():
        while not stop.is_set():
            sec, usec = redis.cli("TIME").split()
            ms = int(sec) * 1000 + int(usec) // 1000
            redis.cli("HSET", "{ficus:shed}:instances", "other-host:1", f"5 0 {ms}")
            stop.wait(0.05)

    t = threading.Thread(target=other_instance, daemon=True)
    t.start()
    try:
        wait_for(lambda: fx.metrics().get("ficus_fleet_instances") == 2, 5 * SLOW, what="two live instances")
        assert fx.metrics().get("ficus_fleet_inflight") >= 5 + 3
        wait_status(fx, "normal", 503, "overloaded")
        assert probe(fx, "critical")[0] == 200  # critical only at 100 % of the local max_inflight
        fx.wait_access_log(lambda es: "shed_fleet_budget" in log_errors(fx, "normal"))
    finally:
        stop.set()
        t.join(10)
    # the other instance stops publishing: dropped after 3 poll intervals, the whole budget is ours again
    wait_for(lambda: fx.metrics().get("ficus_fleet_instances") == 1, 5 * SLOW, what="the stale instance dropped")
    wait_status(fx, "normal", 200)  # bounded: the gauge and the share in force may be a poll apart on a loaded box
    assert h.join() == [200] * 3
    assert fx.metrics().get("ficus_shed_total", priority="normal", reason="fleet_budget") >= 1


def test_redis_killed_local_shedding_goes_on(ficus_factory, redis):
    fx = start(ficus_factory, redis, fleet="poll_interval: 200ms")
    assert redis.cli("SET", "{ficus:shed}:level", "1") == "OK"
    wait_status(fx, "low", 503, "overloaded")

    redis.kill()  # SIGKILL
    t_kill = time.monotonic()
    # the last level is kept for at most 5 s, then dropped (level 0)
    assert probe(fx, "low")[:2] == (503, "overloaded")
    wait_for(lambda: probe(fx, "low")[0] == 200, 10 * SLOW, interval=0.1, what="level dropped after Redis died")
    assert time.monotonic() - t_kill >= 4.5
    assert fx.metrics().get("ficus_shed_level") == 0
    wait_for(lambda: "fleet state unavailable" in fx.stderr(), 5 * SLOW, what="the outage warning")

    # local shedding still works without Redis
    h = hold(fx, "critical", 12)
    assert probe(fx, "low")[:2] == (503, "overloaded")
    assert probe(fx, "normal")[0] == 200
    assert h.join() == [200] * 12
    fx.wait_access_log(lambda es: "shed_inflight" in log_errors(fx, "low"))
    assert fx.alive()
    assert fx.stderr().count("fleet state unavailable") == 1, "one warning per outage"


def test_fleet_removed_on_reload(ficus_factory, redis):
    fx = start(ficus_factory, redis, fleet="poll_interval: 200ms")
    assert redis.cli("SET", "{ficus:shed}:level", "2") == "OK"
    wait_status(fx, "normal", 503, "overloaded")
    assert fx.reload(config(redis)).ok  # same redis:, no shedding.fleet
    wait_status(fx, "normal", 200)
    assert fx.metrics().get("ficus_shed_level") == 0


# ---------------------------------------------------------------------------------------------------------------
# loop lag, metrics


def all_threads_stopped(pid):
    """SIGSTOP takes effect thread by thread: whether every thread of pid is now in state T (stopped)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] != "T":
                return False
    return True


def test_loop_lag_sheds_low_and_normal(ficus_factory):
    """A stalled event loop (the whole process stopped for 600 ms with SIGSTOP): the requests it reads when it runs
    again are shed if low or normal (loop_lag, max_loop_lag 250ms), high is served; then all is served again."""
    fx = start(ficus_factory, workers=1, max_loop_lag="250ms")
    conns = {}
    try:
        for p in ("low", "normal", "high"):
            conns[p] = http.client.HTTPSConnection("localhost", fx.tls_port, context=_ctx(fx.certs.ca), timeout=30 * SLOW)
            conns[p].request("GET", f"/{p}/before")
            r = conns[p].getresponse()
            r.read()
            assert r.status == 200, p
        os.kill(fx.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: all_threads_stopped(fx.pid), 5, interval=0.005, what="every ficus thread stopped")
            for p, c in conns.items():
                c.request("GET", f"/{p}/during")  # buffered by the kernel until ficus runs again
            time.sleep(0.6)
        finally:
            os.kill(fx.pid, signal.SIGCONT)
        got = {}
        for p, c in conns.items():
            r = c.getresponse()
            body = r.read()
            got[p] = (r.status, json.loads(body).get("error") if r.status != 200 else None, r.getheader("retry-after"))
        assert got == {"low": (503, "overloaded", "2"), "normal": (503, "overloaded", "2"), "high": (200, None, None)}, got
    finally:
        for c in conns.values():
            c.close()
    # the lag measured when the loop ran again holds until the next 100 ms tick: probes may be shed until then
    wait_for(lambda: probe(fx, "low")[0] == 200, 5 * SLOW, what="low served again")
    m = fx.metrics()
    low = m.get("ficus_shed_total", priority="low", reason="loop_lag")
    assert low >= 1
    assert m.get("ficus_shed_total", priority="normal", reason="loop_lag") == 1
    assert m.sum("ficus_shed_total", priority="high") == 0
    assert m.sum("ficus_shed_total") == low + 1
    fx.wait_access_log(lambda es: len([e for e in es if e.get("error") == "shed_loop_lag"]) == low + 1)


def test_metrics(ficus_factory):
    fx = start(ficus_factory, max_loop_lag="250ms")
    assert probe(fx, "low")[0] == 200
    h = hold(fx, "high", 2)
    m = fx.metrics()
    assert m.get("ficus_inflight_by_priority", priority="high") == 2
    assert m.get("ficus_inflight_by_priority", priority="low") == 0
    for p in PRIORITIES:
        for r in ("inflight", "loop_lag", "fleet_level", "fleet_budget"):
            assert m.get("ficus_shed_total", priority=p, reason=r) == 0, (p, r)
    assert m.get("ficus_shed_level") == 0
    assert m.get("ficus_fleet_inflight") == 0
    assert m.get("ficus_fleet_instances") == 0
    lags = [m.get("ficus_loop_lag_seconds", worker=str(w)) for w in range(2)]
    assert all(v is not None and 0 <= v < 0.25 for v in lags), lags
    assert "# TYPE ficus_shed_total counter" in m.text
    assert h.join() == [200, 200]
    assert fx.metrics().get("ficus_inflight_by_priority", priority="high") == 0
