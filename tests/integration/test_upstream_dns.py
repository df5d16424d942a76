"""DNS service discovery for upstream endpoints (issue 11): a host name in `endpoints` is resolved by ficus's own
resolver on the control thread (a hosts file, then DNS over UDP), every address is an endpoint, and the addresses
follow the answers every `dns_refresh`; a removed address drains (its in-flight request finishes with 200, then it
gets nothing). Resolvers the test controls: a hosts file it rewrites, and a tiny DNS server on loopback (stdlib
socket, UDP) answering A records from a dict. Real upstream processes (tests/upstreams/flaky.py) listen on
127.0.0.2 and 127.0.0.3 (loopback on Linux), same port. Checks count requests at the upstreams; waits poll with
generous margins (no tight wall-clock window)."""
import os
import socket
import struct
import subprocess
import sys
import threading

import pytest

from conftest import FICUS_BIN, SLOW, free_port, start_until_ready, wait_for
from flaky_fixtures import FLAKY_PY, Flaky
from upstream_helpers import upstreams, wait_log

CONFIG = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
resolver: { $resolver }
upstreams:
  up:
    endpoints: ["http://$name:$port"]
    dns_refresh: 300ms
    timeout: 20s
$extra
routes:
  - name: all
    match: { path_prefix: / }
    to: up
"""


class LoopbackFlaky(Flaky):
    """flaky.py on another loopback address (127.0.0.x)."""

    def __init__(self, name, host, port):
        self.host = host
        super().__init__(name, port)

    def start(self):
        self.proc = start_until_ready([sys.executable, FLAKY_PY, "--host", self.host, "--port", str(self.port),
                                       "--control-port", str(self.control_port), "--name", self.name],
                                      f"flaky upstream {self.name}")

    @property
    def addr(self):
        return f"{self.host}:{self.port}"


def common_port(hosts):
    """A port free on every one of hosts."""
    for _ in range(50):
        p = free_port()
        try:
            for h in hosts:
                with socket.socket() as s:
                    s.bind((h, p))
            return p
        except OSError:
            continue
    raise RuntimeError("no common free port")


@pytest.fixture
def pair():
    port = common_port(["127.0.0.2", "127.0.0.3"])
    a, b = LoopbackFlaky("a", "127.0.0.2", port), LoopbackFlaky("b", "127.0.0.3", port)
    yield a, b
    a.stop()
    b.stop()


class DnsServer:
    """A tiny authoritative DNS server on 127.0.0.1 (UDP): A records from self.records {name: [ip, ...]}; a name it
    does not know is NXDOMAIN; AAAA is NOERROR without records; self.silent = True stops answering."""

    def __init__(self):
        self.records = {}
        self.silent = False
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", free_port()))
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stopped:
            try:
                data, peer = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            self.queries += 1
            if self.silent or len(data) < 12:
                continue
            reply = self._answer(data)
            if reply:
                self.sock.sendto(reply, peer)

    def _answer(self, q):
        qid, _flags, qd = struct.unpack("!HHH", q[:6])
        if qd != 1:
            return None
        labels, off = [], 12
        while q[off] != 0:
            n = q[off]
            labels.append(q[off + 1:off + 1 + n].decode().lower())
            off += 1 + n
        qtype, _qclass = struct.unpack("!HH", q[off + 1:off + 5])
        question = q[12:off + 5]
        name = ".".join(labels)
        ips = self.records.get(name)
        if ips is None:
            return struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question  # NXDOMAIN
        answers = b""
        count = 0
        if qtype == 1:
            for ip in ips:
                answers += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton(ip)
                count += 1
        return struct.pack("!HHHHHH", qid, 0x8180, 1, count, 0, 0) + question + answers

    def stop(self):
        self.stopped = True
        self.sock.close()


@pytest.fixture
def dns():
    d = DnsServer()
    yield d
    d.stop()


def start(ficus_factory, tmp_path, name, port, resolver, extra=""):
    ex = "\n".join("    " + line for line in extra.strip().splitlines())
    return ficus_factory(CONFIG, name=name, port=port, resolver=resolver, extra=ex)


def who(gw, n, path="/x"):
    """The upstream names that answered n requests (a dict name -> count), all 200."""
    seen = {}
    with gw.client() as c:
        for _ in range(n):
            r = c.get(path)
            assert r.status_code == 200, (r.status_code, r.text)
            seen[r.json()["upstream"]] = seen.get(r.json()["upstream"], 0) + 1
    return seen


def addresses(gw):
    return sorted(e["address"] for e in upstreams(gw)["up"]["endpoints"])


def wait_addresses(gw, want, what, timeout=15):
    wait_for(lambda: addresses(gw) == sorted(want), timeout * SLOW, what=what)


def write_hosts(path, text):
    tmp = str(path) + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)  # as editors and configuration tools do: never a half-written file


def drain_check(gw, old, new):
    """A slow request in flight on `old` when its address disappears completes with 200; afterwards `old` gets no new
    request and keeps no connection from ficus open."""
    old.mode(delay_ms=int(3000 * SLOW))
    result = {}

    def slow():
        with gw.client(timeout=60) as c:
            r = c.get("/slow")
            result["status"], result["upstream"] = r.status_code, r.json()["upstream"]

    t = threading.Thread(target=slow)
    t.start()
    wait_for(lambda: old.requests("/slow"), 10 * SLOW, what="the slow request reached the old address")
    return t, result


def test_hosts_file_changes_are_followed_and_removed_addresses_drain(ficus_factory, tmp_path, pair):
    a, b = pair
    hosts = tmp_path / "hosts"
    write_hosts(hosts, "127.0.0.1 localhost\n127.0.0.2 svc.test\n")
    gw = start(ficus_factory, tmp_path, "svc.test", a.port, f'hosts_file: "{hosts}", nameservers: []')
    assert addresses(gw) == [a.addr]
    assert who(gw, 6) == {"a": 6}
    # the Host sent upstream is the configured authority, not the address
    assert {r["host"] for r in a.requests()} == {f"svc.test:{a.port}"}
    ep = upstreams(gw)["up"]["endpoints"][0]
    assert ep["name"] == "svc.test" and ep["url"] == f"http://svc.test:{a.port}"

    # a second address: traffic follows within a few refreshes, both get requests
    write_hosts(hosts, "127.0.0.1 localhost\n127.0.0.2 svc.test\n127.0.0.3 svc.test\n")
    wait_addresses(gw, [a.addr, b.addr], "both addresses")
    wait_log(gw, "dns: svc.test: addresses 127.0.0.2 127.0.0.3 (was 127.0.0.2; from hosts)")
    assert who(gw, 10) == {"a": 5, "b": 5}
    m = gw.metrics()
    assert m.get("ficus_upstream_addresses", upstream="up") == 2
    assert m.get("ficus_dns_addresses", host="svc.test") == 2
    assert m.get("ficus_dns_refreshes_total", host="svc.test", result="changed") >= 1

    # only b: a's slow in-flight request finishes with 200, then a gets nothing and ficus closes its connections
    for _ in range(4):  # make sure a holds idle pooled connections from both workers
        who(gw, 4)
    t, result = drain_check(gw, a, b)
    write_hosts(hosts, "127.0.0.3 svc.test\n")
    wait_addresses(gw, [b.addr], "only b")
    t.join(60 * SLOW)
    assert result == {"status": 200, "upstream": "a"}
    n_a = len(a.requests())
    assert who(gw, 20) == {"b": 20}
    assert len(a.requests()) == n_a
    wait_for(lambda: a.log()["open"] == 0, 10 * SLOW, what="no connection left open to the removed address")
    # the hosts file is re-read at every refresh, the YAML file is not: an edited, unreloaded file has no effect
    gw.write_config(CONFIG.replace("dns_refresh: 300ms", "dns_refresh: 300ms\n    retry: { attempts: 1 }").replace(
        '"http://$name:$port"', '"http://127.0.0.9:1"'))
    write_hosts(hosts, "127.0.0.2 svc.test\n")
    wait_addresses(gw, [a.addr], "back to a")
    assert who(gw, 4) == {"a": 4}


def test_dns_server_answers_are_followed_and_kept_when_it_stops(ficus_factory, tmp_path, pair, dns):
    a, b = pair
    dns.records["svc.test"] = ["127.0.0.2"]
    resolver = f'nameservers: ["127.0.0.1:{dns.port}"], hosts_file: "", timeout: 200ms, attempts: 1, ipv6: false'
    gw = start(ficus_factory, tmp_path, "svc.test", a.port, resolver)
    assert addresses(gw) == [a.addr]
    assert who(gw, 4) == {"a": 4}

    dns.records["svc.test"] = ["127.0.0.2", "127.0.0.3"]
    wait_addresses(gw, [a.addr, b.addr], "both addresses from DNS")
    assert who(gw, 10) == {"a": 5, "b": 5}
    assert gw.metrics().get("ficus_dns_queries_total", result="ok") >= 2

    t, result = drain_check(gw, a, b)
    dns.records["svc.test"] = ["127.0.0.3"]
    wait_addresses(gw, [b.addr], "only b from DNS")
    t.join(60 * SLOW)
    assert result == {"status": 200, "upstream": "a"}
    n_a = len(a.requests())
    assert who(gw, 10) == {"b": 10}
    assert len(a.requests()) == n_a

    # the server stops answering: lookups time out, the last good answer is kept, the counters rise
    m0 = gw.metrics()
    dns.silent = True
    wait_log(gw, "dns: svc.test: lookup failed (timeout from 127.0.0.1:")
    wait_for(lambda: gw.metrics().get("ficus_dns_refreshes_total", host="svc.test", result="failed") >= 3, 20 * SLOW,
             what="three failed refreshes")
    m1 = gw.metrics()
    assert m1.get("ficus_dns_queries_total", result="timeout") > m0.get("ficus_dns_queries_total", result="timeout")
    assert addresses(gw) == [b.addr]
    assert who(gw, 6) == {"b": 6}
    # it answers again
    dns.silent = False
    dns.records["svc.test"] = ["127.0.0.2", "127.0.0.3"]
    wait_addresses(gw, [a.addr, b.addr], "both again")
    wait_log(gw, "dns: svc.test resolves again")


def test_a_name_that_does_not_resolve_at_load_is_a_warning_and_serves_once_it_resolves(ficus_factory, tmp_path, pair, dns):
    a, _ = pair
    resolver = f'nameservers: ["127.0.0.1:{dns.port}"], hosts_file: "", timeout: 200ms, attempts: 1, hold_nx: 1s'
    gw = start(ficus_factory, tmp_path, "later.test", a.port, resolver)
    wait_log(gw, "dns: later.test does not resolve (no such name or no address")
    u = upstreams(gw)["up"]
    assert u["endpoints"] == [] and u["unresolved"] == [f"http://later.test:{a.port}"]
    with gw.client() as c:
        r = c.get("/x")
    assert r.status_code == 503 and "upstream_unavailable" in r.text, r.text
    dns.records["later.test"] = ["127.0.0.2"]
    wait_addresses(gw, [a.addr], "later.test resolves")
    assert who(gw, 4) == {"a": 4}
    # NXDOMAIN after a good answer: kept for hold_nx (1s), then gone
    del dns.records["later.test"]
    wait_log(gw, "dns: later.test: no such name or no address (from 127.0.0.1:")
    wait_addresses(gw, [], "gone after hold_nx", timeout=20)
    wait_log(gw, "dns: later.test: addresses none (was 127.0.0.2; gone after hold_nx")


@pytest.mark.parametrize("resolver,line,phrase", [
    ("  nameserver: [\"127.0.0.1\"]\n", 2, "unknown key 'nameserver'"),
    ("  nameservers: [\"not-an-ip\"]\n", 2, "resolver: nameserver 'not-an-ip' is not IP"),
    ("  nameservers: \"127.0.0.1\"\n", 2, "nameservers"),
    ("  timeout: 5\n", 2, "invalid duration '5'"),
    ("  timeout: 2m\n", 2, "duration must be between 10ms and 1m"),
    ("  attempts: 0\n", 2, "must be between 1 and 5"),
    ("  hosts_file: etc/hosts\n", 2, "hosts_file must be an absolute path"),
    ("  ipv6: maybe\n", 2, "expected a boolean"),
])
def test_bad_resolver_keys_are_file_line_errors(tmp_path, resolver, line, phrase):
    path = tmp_path / "bad.yaml"
    path.write_text("resolver:\n" + resolver + "server:\n  listen: [{ address: \"127.0.0.1:8080\" }]\n"
                    "upstreams:\n  u: { endpoints: [\"http://svc.test:80\"] }\n"
                    "routes:\n  - { name: r, match: { path_prefix: / }, to: u }\n")
    p = subprocess.run([FICUS_BIN, "-t", "-c", str(path)], capture_output=True, text=True, timeout=30 * SLOW)
    assert p.returncode == 1, p
    assert f"{path}:{line}:" in p.stderr and phrase in p.stderr, p.stderr


def test_bad_host_name_is_a_file_line_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("server:\n  listen: [{ address: \"127.0.0.1:8080\" }]\n"
                    "upstreams:\n  u: { endpoints: [\"http://bad..name:80\"] }\n"
                    "routes:\n  - { name: r, match: { path_prefix: / }, to: u }\n")
    p = subprocess.run([FICUS_BIN, "-t", "-c", str(path)], capture_output=True, text=True, timeout=30 * SLOW)
    assert p.returncode == 1 and f"{path}:4:" in p.stderr and "neither an IP address nor a host name" in p.stderr, p.stderr


def test_sighup_and_dns_changes_keep_per_address_state(ficus_factory, tmp_path, pair):
    a, b = pair
    hosts = tmp_path / "hosts"
    write_hosts(hosts, "127.0.0.2 svc.test\n127.0.0.3 svc.test\n")
    extra = "retry: { attempts: 1 }\noutlier: { consecutive_failures: 2, ejection: 1m }"
    gw = start(ficus_factory, tmp_path, "svc.test", a.port, f'hosts_file: "{hosts}", nameservers: []', extra)
    a.mode(mode="status", status=502)
    with gw.client() as c:
        for _ in range(12):
            c.get("/fail")
    eps = {e["address"]: e for e in upstreams(gw)["up"]["endpoints"]}
    assert eps[a.addr]["ejected"] and not eps[b.addr]["ejected"], eps
    ejections = eps[a.addr]["ejections"]
    # SIGHUP: the same file again; the ejection stays with the address
    assert gw.reload().ok
    eps = {e["address"]: e for e in upstreams(gw)["up"]["endpoints"]}
    assert eps[a.addr]["ejected"] and eps[a.addr]["ejections"] == ejections, eps
    assert who(gw, 6) == {"b": 6}
    # a DNS change that keeps the address keeps it too (a new generation from memory)
    wrote = gw.stderr().count("dns: generation")
    write_hosts(hosts, "127.0.0.3 svc.test\n127.0.0.2 svc.test\n127.0.0.4 svc.test\n")
    wait_for(lambda: gw.stderr().count("dns: generation") > wrote, 15 * SLOW, what="a generation for the new address")
    eps = {e["address"]: e for e in upstreams(gw)["up"]["endpoints"]}
    assert set(eps) == {a.addr, b.addr, f"127.0.0.4:{a.port}"}
    assert eps[a.addr]["ejected"] and eps[a.addr]["ejections"] == ejections, eps
    assert not eps[f"127.0.0.4:{a.port}"]["ejected"] and eps[f"127.0.0.4:{a.port}"]["ejections"] == 0


def test_reload_to_another_name_resolves_it_at_once(ficus_factory, tmp_path, pair):
    a, b = pair
    hosts = tmp_path / "hosts"
    write_hosts(hosts, "127.0.0.2 svc.test\n127.0.0.3 other.test\n")
    gw = start(ficus_factory, tmp_path, "svc.test", a.port, f'hosts_file: "{hosts}", nameservers: []')
    assert who(gw, 4) == {"a": 4}
    gw.values.update(name="other.test")
    assert gw.reload(CONFIG).ok
    wait_addresses(gw, [b.addr], "the new name's address", timeout=5)
    assert who(gw, 4) == {"b": 4}
    m = gw.metrics()
    assert m.get("ficus_dns_addresses", host="other.test") == 1
    assert not m.find("ficus_dns_addresses", host="svc.test")  # a name no longer used is forgotten
