"""The Redis client's circuit breaker (`redis.breaker`: the breaker of gateway/breaker.c that the upstreams use, in its
consecutive-failures mode with one trial): a redis-server stopped with SIGSTOP (connections open, nothing answers)
costs `failures` command timeouts, then commands fail at once (counted as unavailable, the rate limit's store-error
path answers) until `open_for` has passed; a trial that times out opens it again; after SIGCONT one trial closes it
and Redis decides again. Counted behaviour: timeouts and unavailable commands from ficus's own metrics."""
import os
import re
import signal
import time

import httpx

from conftest import SLOW, wait_for
from redis_fixtures import redis_factory, redis_server  # noqa: F401 - fixtures

CMD_TIMEOUT_MS = int(100 * SLOW)
OPEN_FOR_MS = int(1500 * SLOW)
FAILURES = 3

CONF = """\
server:
  workers: 1
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
redis:
  address: "$redis"
  command_timeout: %dms
  connect_timeout: 200ms
  reconnect_min: 50ms
  reconnect_max: 200ms
  breaker: { failures: %d, open_for: %dms }
rate_limits:
  cls: { key: "header:X-Client", limit: 1000, per: 1s, burst: 2, on_store_error: closed }
routes:
  - name: cls
    match: { path_prefix: /cls }
    rate_limit: [cls]
    respond: { status: 200, body: "ok\\n", content_type: text/plain }
""" % (CMD_TIMEOUT_MS, FAILURES, OPEN_FOR_MS)


def client(fx):
    return httpx.Client(transport=httpx.HTTPTransport(verify=fx.certs.ca), base_url=f"https://localhost:{fx.tls_port}",
                        timeout=10 * SLOW)


def counters(fx):
    m = fx.metrics()
    return {k: m.sum(f"ficus_redis_{k}") for k in ("timeouts_total", "unavailable_total", "breaker_opens_total")}


def test_breaker_opens_fails_fast_and_closes_after_a_trial(ficus_factory, redis_server):
    redis = redis_server
    fx = ficus_factory(CONF, redis=redis.addr)
    wait_for(lambda: (fx.metrics().get("ficus_redis_connected_workers") or 0) >= 1, 10 * SLOW,
             what="the worker connected to redis")
    key = iter(range(1_000_000))  # a fresh key per request: each decision needs Redis
    with client(fx) as c:
        assert [c.get("/cls", headers={"X-Client": f"k{next(key)}"}).status_code for _ in range(5)] == [200] * 5
        before = counters(fx)
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            statuses = [c.get("/cls", headers={"X-Client": f"k{next(key)}"}).status_code for _ in range(30)]
            elapsed = time.monotonic() - t0
            during = counters(fx)
            assert fx.metrics().get("ficus_redis_breaker_open_workers") == 1
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        assert statuses == [503] * 30, statuses
        timeouts = during["timeouts_total"] - before["timeouts_total"]
        unavailable = during["unavailable_total"] - before["unavailable_total"]
        # FAILURES timeouts open it; at most one trial per open_for (each times out while Redis is stopped)
        trials = int(elapsed * 1000 / OPEN_FOR_MS) + 1
        assert FAILURES <= timeouts <= FAILURES + trials, (timeouts, elapsed)
        assert unavailable >= 30 - timeouts - trials, (unavailable, timeouts)
        assert during["breaker_opens_total"] - before["breaker_opens_total"] >= 1
        err = fx.stderr()
        assert re.search(rf"redis 127\.0\.0\.1:\d+: {FAILURES} consecutive failures \(last: timeout\): circuit open for "
                         rf"{OPEN_FOR_MS}ms", err), err[-3000:]
        # Redis answers again: one trial after open_for closes the circuit, and decisions come from Redis
        wait_for(lambda: c.get("/cls", headers={"X-Client": f"k{next(key)}"}).status_code == 200, 20 * SLOW,
                 what="a 200 from Redis after SIGCONT", interval=0.1)
        wait_for(lambda: "circuit closed (a trial command succeeded)" in fx.stderr(), 10 * SLOW,
                 what="the log line of the closing")
        assert fx.metrics().get("ficus_redis_breaker_open_workers") == 0
        assert [c.get("/cls", headers={"X-Client": f"k{next(key)}"}).status_code for _ in range(10)] == [200] * 10
