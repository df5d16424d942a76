"""Redis under Sentinel (issue 14, "Sentinel"), black-box with real processes: one master, one replica and three
`redis-sentinel` processes on loopback ports, ficus configured with `redis: { sentinel: ... }`.

Covered: ficus asks the sentinels for the master and checks its ROLE; rate limits are decided in the master; a
`SENTINEL failover` and then a SIGKILL of the new master, both under traffic: ficus follows each new master (all
workers, counted in `ficus_redis_failovers_total`, logged), full service is back within 2 s of the sentinels' switch,
no request hangs past command_timeout + 1 s, the only failures during a switch are the documented store-error answers
(`on_store_error: closed` → 503 `rate_limit_unavailable`), rate limits are enforced from the new master afterwards;
`/readyz` reports the mode and the master; an SSO session created before the master's SIGKILL (and replicated) still
works on the promoted replica; configuration errors for the `sentinel:` and `cluster:` sections.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest
import redis as redis_py

from conftest import SLOW, free_port, port_accepts, wait_for
from redis_fixtures import RedisServer
from test_rate_limit import HEAD, STORE_ERRORS, Traffic, burst, client, statuses

SENTINEL_BIN = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"
MASTER = "ficusmaster"


class Sentinel:
    """One redis-sentinel process monitoring MASTER at master_port (quorum 2, down-after 1 s)."""

    def __init__(self, workdir, master_port):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.port = free_port()
        self.conf = os.path.join(self.workdir, "sentinel.conf")
        with open(self.conf, "w") as f:
            f.write(f"port {self.port}\nbind 127.0.0.1\ndaemonize no\ndir {self.workdir}\n"
                    f"logfile {self.workdir}/sentinel.log\n"
                    f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n"
                    f"sentinel down-after-milliseconds {MASTER} 1000\n"
                    f"sentinel failover-timeout {MASTER} 10000\n"
                    f"sentinel parallel-syncs {MASTER} 1\n")
        self.proc = subprocess.Popen([SENTINEL_BIN, self.conf], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: port_accepts(self.port), 10 * SLOW, what=f"sentinel on {self.port}")

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def cmd(self, *args):
        c = redis_py.Redis(host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=5 * SLOW)
        try:
            return c.execute_command(*args)
        finally:
            c.close()

    def master_port(self):
        try:
            a = self.cmd("SENTINEL", "get-master-addr-by-name", MASTER)
        except redis_py.RedisError:
            return None
        return int(a[1]) if a else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def sentinel_setup(tmp_path):
    """(master, replica, [3 sentinels]) with the sentinels agreed on the master, its replica and each other."""
    master = RedisServer(tmp_path / "master")
    replica = RedisServer(tmp_path / "replica", extra_args=["--replicaof", "127.0.0.1", str(master.port)])
    sentinels = []
    try:
        wait_for(lambda: master.client().info("replication").get("connected_slaves") == 1, 20 * SLOW,
                 what="the replica attached to the master")
        sentinels = [Sentinel(tmp_path / f"sentinel{i}", master.port) for i in range(3)]

        def agreed():
            for s in sentinels:
                m = s.cmd("SENTINEL", "master", MASTER)
                info = dict(zip(m[::2], m[1::2])) if isinstance(m, list) else m
                if int(info.get("num-slaves", 0)) != 1 or int(info.get("num-other-sentinels", 0)) != 2:
                    return False
            return True

        # sentinels find the replica through the master's INFO and each other through hello messages (a few s)
        wait_for(agreed, 40 * SLOW, interval=0.2, what="3 sentinels that know the replica and each other")
        yield master, replica, sentinels
    finally:
        for s in sentinels:
            s.stop()
        replica.stop()
        master.stop()


def sentinel_config(sentinels, extra=""):
    addrs = ", ".join(f'"{s.addr}"' for s in sentinels)
    return (HEAD + "redis:\n"
            f"  sentinel: {{ master: {MASTER}, addresses: [{addrs}] }}\n"
            "  command_timeout: 100ms\n  connect_timeout: 200ms\n  reconnect_min: 50ms\n  reconnect_max: 500ms\n"
            "  breaker: { failures: 5, open_for: 500ms }\n" + extra + STORE_ERRORS)


def readyz(fx):
    import httpx
    return httpx.get(f"http://127.0.0.1:{fx.admin_port}/readyz", timeout=5 * SLOW).json()


def serving_from(fx, port):
    """Both workers connected to the master on `port` and /cls decided from Redis (200)."""
    rz = readyz(fx)["redis"]
    if rz["master"] != f"127.0.0.1:{port}" or rz["connected_workers"] != 2:
        return False
    with client(fx) as c:
        return all(c.get("/cls", headers={"X-Client": f"probe-{i}"}).status_code == 200 for i in range(4))


def fresh_burst_from_redis(fx, key):
    """A fresh key's burst of 30 on /loc: 20 allowed when decided in Redis (the embedded store would allow 10)."""
    with client(fx) as c:
        rs, el = burst(c, "/loc", 30, {"X-Client": key})
    ok = statuses(rs).count(200)
    assert 20 <= ok <= 20 + int(el * 20) + 2, f"{ok} of 30 allowed for a fresh key ({el:.2f}s): not from Redis"


def has_rl_keys(server):
    return any("loc" in k or "ficus" in k for k in server.client().keys("*"))


def test_sentinel_failover_and_master_killed(ficus_factory, sentinel_setup):
    master, replica, sentinels = sentinel_setup
    fx = ficus_factory(sentinel_config(sentinels))
    wait_for(lambda: serving_from(fx, master.port), 15 * SLOW, what="ficus serving from the master")
    assert re.search(r"connected, ROLE master \(worker \d\)", fx.stderr())
    fresh_burst_from_redis(fx, "before")
    assert has_rl_keys(master), "the rate-limit state is not in the master"

    traffic = Traffic(fx, ["/cls", "/opn"], interval=0.03)
    try:
        time.sleep(0.5)
        failovers0 = fx.metrics().sum("ficus_redis_failovers_total")
        # 1. a planned failover: the replica becomes the master
        sentinels[0].cmd("SENTINEL", "failover", MASTER)
        wait_for(lambda: all(s.master_port() == replica.port for s in sentinels), 30 * SLOW, interval=0.05,
                 what="the sentinels switched to the replica")
        t_switch1 = time.monotonic()
        wait_for(lambda: serving_from(fx, replica.port), 2 * SLOW + 1, interval=0.05,
                 what="full service from the new master within 2 s of the switch")
        back1 = time.monotonic() - t_switch1
        fresh_burst_from_redis(fx, "after-failover")
        wait_for(lambda: has_rl_keys(replica), 5, what="rate-limit state written to the new master")

        # 2. the new master is killed: the old one (now its replica) is promoted again
        wait_for(lambda: replica.client().info("replication").get("connected_slaves") == 1, 30 * SLOW,
                 what="the old master re-attached as a replica")
        time.sleep(1.0)
        t_kill = time.monotonic()
        replica.kill()
        wait_for(lambda: all(s.master_port() == master.port for s in sentinels if s.proc.poll() is None),
                 40 * SLOW, interval=0.05, what="the sentinels promoted the old master again")
        t_switch2 = time.monotonic()
        wait_for(lambda: serving_from(fx, master.port), 2 * SLOW + 1, interval=0.05,
                 what="full service from the promoted master within 2 s of the switch")
        back2 = time.monotonic() - t_switch2
        fresh_burst_from_redis(fx, "after-kill")
        time.sleep(0.5)
    finally:
        traffic.stop()
    print(f"\n[sentinel] full service {back1:.2f}s after a SENTINEL failover, {back2:.2f}s after the master's SIGKILL "
          f"({t_switch2 - t_kill:.1f}s for the sentinels to switch)")

    m = fx.metrics()
    assert m.sum("ficus_redis_failovers_total") - failovers0 >= 4, "each worker followed two switches"
    # per-node series: both servers were used as master; the killed one is not connected any more
    assert (m.get("ficus_redis_node_commands_total", node=replica.addr) or 0) > 0
    assert (m.get("ficus_redis_node_commands_total", node=master.addr) or 0) > 0
    assert m.get("ficus_redis_node_connected_workers", node=master.addr) == 2
    assert m.get("ficus_redis_node_connected_workers", node=replica.addr) == 0
    assert len(re.findall(r"redis failover \(worker \d\): the master is now", fx.stderr())) >= 4
    # nothing hung; the open policy always served; the closed one failed only with the documented store error
    for path, recs in traffic.records.items():
        assert not [r for r in recs if r[1] is None], f"{path}: client errors"
        slowest = max(r[2] for r in recs)
        assert slowest <= 0.1 + 1.0 * SLOW, f"{path}: a request took {slowest:.2f}s"
        assert len(recs) >= 50, f"{path}: only {len(recs)} requests"
    assert {r[1] for r in traffic.records["/opn"]} == {200}
    bad = [r for r in traffic.records["/cls"] if r[1] != 200 and
           not (r[1] == 503 and json.loads(r[4]) == {"error": "rate_limit_unavailable"})]
    assert not bad, f"/cls answers other than 200 or the store-error 503: {bad[:3]}"
    rz = readyz(fx)["redis"]
    assert rz["mode"] == "sentinel" and rz["master_name"] == MASTER and rz["master"] == f"127.0.0.1:{master.port}"


def test_sentinel_unreachable_then_reachable(ficus_factory, tmp_path, sentinel_setup):
    """The first sentinels listed are down: ficus goes on to the next ones and still finds the master."""
    master, _replica, sentinels = sentinel_setup
    dead = [free_port(), free_port()]
    fake = [type("S", (), {"addr": f"127.0.0.1:{p}"})() for p in dead]
    fx = ficus_factory(sentinel_config(fake + sentinels[:1]))
    wait_for(lambda: serving_from(fx, master.port), 15 * SLOW, what="ficus serving from the master")
    assert re.search(r"redis sentinel 127\.0\.0\.1:\d+ \(master '" + MASTER + r"'\): ", fx.stderr())


@pytest.mark.parametrize("case", [
    ("both", '  address: "127.0.0.1:6379"\n  sentinel: { master: m, addresses: ["127.0.0.1:26379"] }\n',
     "exactly one of `address`"),
    ("none", "  command_timeout: 5ms\n", "exactly one of `address`"),
    ("no master", '  sentinel: { addresses: ["127.0.0.1:26379"] }\n', "master"),
    ("empty list", "  sentinel: { master: m, addresses: [] }\n", "at least one"),
    ("bad name", '  sentinel: { master: "a b", addresses: ["127.0.0.1:26379"] }\n', "master name"),
    ("bad address", '  sentinel: { master: m, addresses: ["nowhere"] }\n', "HOST:PORT"),
    ("cluster db", '  cluster: { addresses: ["127.0.0.1:7000"] }\n  db: 1\n', "database 0"),
    ("cluster empty", "  cluster: { addresses: [] }\n", "at least one"),
    ("cluster and sentinel", '  cluster: { addresses: ["127.0.0.1:7000"] }\n'
     '  sentinel: { master: m, addresses: ["127.0.0.1:26379"] }\n', "exactly one of"),
], ids=lambda c: c[0] if isinstance(c, tuple) else c)
def test_sentinel_config_errors(tmp_path, case):
    _, body, expect = case
    path = tmp_path / "bad.yaml"
    text = ("server:\n  listen:\n    - address: \"127.0.0.1:18443\"\nredis:\n" + body +
            "routes:\n  - name: r\n    match: { path_prefix: / }\n    respond: { status: 200 }\n")
    path.write_text(text)
    bin_ = os.environ.get("FICUS_BIN")
    p = subprocess.run([bin_, "-t", "-c", str(path)], capture_output=True, text=True, timeout=30 * SLOW)
    assert p.returncode == 1, p
    assert expect in p.stderr, p.stderr
    assert re.search(r"bad\.yaml:\d+", p.stderr), p.stderr


def test_sso_session_survives_master_kill(tmp_path, ficus_factory, certs, sentinel_setup):
    """A browser session created before the failover, and replicated, still works on the promoted replica: the
    session record is read from Redis on every request (cache_ttl 0s), from the new master after the switch."""
    from oidc_fixtures import OidcProvider
    from sso_helpers import REDIS as SSO_REDIS, Browser, echo_json, sso_template, sso_values, wait_sso_ready
    master, replica, sentinels = sentinel_setup
    port = free_port()
    op = OidcProvider(tmp_path / "op", ficus_port=port, ca_file=certs.ca)
    try:
        addrs = ", ".join(f'"{s.addr}"' for s in sentinels)
        tpl = sso_template(redis=True).replace(SSO_REDIS, "redis:\n"
                                               f"  sentinel: {{ master: {MASTER}, addresses: [{addrs}] }}\n"
                                               "  command_timeout: 500ms\n  connect_timeout: 500ms\n"
                                               "  reconnect_min: 50ms\n  reconnect_max: 500ms\n")
        fx = ficus_factory(tpl, tls_port=port, **sso_values(tmp_path, op))
        wait_sso_ready(fx)
        b = Browser(fx)
        _, final = b.login(op, "/app/")
        assert final.status_code == 200, final.text[:300]
        key = f"ficus:sso:s:{{{b.session_id}}}"
        assert master.client().get(key) is not None, "the session is not in the master"
        wait_for(lambda: replica.client().get(key) is not None, 10 * SLOW, what="the session replicated")
        replica_port = replica.port
        master.kill()
        wait_for(lambda: all(s.master_port() == replica_port for s in sentinels), 40 * SLOW, interval=0.05,
                 what="the sentinels promoted the replica")
        wait_for(lambda: readyz(fx)["redis"]["master"] == f"127.0.0.1:{replica_port}"
                 and readyz(fx)["redis"]["connected_workers"] == 2, 2 * SLOW + 1, interval=0.05,
                 what="ficus on the new master")
        for i in range(6):  # over both workers' connections
            b.http.close()
            r = b.get(f"/app/after/{i}")
            assert r.status_code == 200, f"request {i} after the failover: {r.status_code} {r.text[:200]}"
            assert echo_json(r)["headers"].get("x-user-email"), echo_json(r)
        assert op.count("token:authorization_code") == 1, "a second login happened"
    finally:
        op.stop()
