"""The suite's own ports (ports.py, conftest.py): never shared with another process.

Covered: a port another process holds with SO_REUSEPORT (as a second ficus would) is never handed out; two test
processes drawing ports at the same time get disjoint ones; a ficus, an echo upstream and a redis-server whose port
is taken by another process between the pick and the start end up on another port, serving, with the other process
never answering for them.
"""
import os
import socket
import subprocess
import sys
import textwrap

import pytest

import conftest
import ports
import redis_fixtures
from conftest import SLOW, Echo, free_port
from redis_fixtures import RedisServer

HERE = os.path.dirname(os.path.abspath(__file__))

HOLDER = textwrap.dedent("""\
    import socket, sys, time
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(16)
    print("listening", flush=True)
    sys.stdin.read()  # until the test closes our stdin
""")


class Holder:
    """Another process listening on 127.0.0.1:port with SO_REUSEPORT (what a second ficus does)."""

    def __init__(self, port):
        self.port = port
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(port)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "listening"

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10 * SLOW)


def unused_port():
    """A port from the kernel that nobody holds (not from ports.py, which would never hand it out again)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_taken_ports_are_never_handed_out(monkeypatch):
    held = [Holder(unused_port()) for _ in range(2)]
    try:
        for h in held:
            assert not ports.port_is_free(h.port), f"port {h.port} (held with SO_REUSEPORT) looks free"
        # a fresh block whose first three ports another process takes: free_port() skips them
        monkeypatch.setattr(ports, "_blocks", [])
        first = ports._take_block()[1]
        lo, hi = ports._port_range()
        assert lo <= first and first + ports.BLOCK <= hi
        taken = [Holder(first + i) for i in range(3)]
        try:
            got = [free_port() for _ in range(5)]
        finally:
            for h in taken:
                h.close()
        assert got == [first + 3 + i for i in range(5)], (first, got)
    finally:
        for h in held:
            h.close()


def test_two_processes_draw_disjoint_ports():
    """Three processes drawing at the same time never share a port. Each child keeps its blocks (stays alive) until
    every process has drawn: a block is free for others again once its holder exits, by design."""
    code = (f"import sys; sys.path.insert(0, {HERE!r}); import ports; "
            "print(' '.join(str(ports.free_port()) for _ in range(200)), flush=True); sys.stdin.read()")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        mine = {free_port() for _ in range(200)}
        theirs = [set(map(int, p.stdout.readline().split())) for p in procs]
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(60 * SLOW)
    assert all(len(t) == 200 for t in theirs)
    assert not (mine & theirs[0]) and not (mine & theirs[1]) and not (theirs[0] & theirs[1])


def taken_first(monkeypatch, module, holder_port, n=1):
    """module.free_port() returns holder_port n times (as if another process bound it right after the pick)."""
    real = module.free_port
    calls = []

    def fake():
        calls.append(1)
        return holder_port if len(calls) <= n else real()

    monkeypatch.setattr(module, "free_port", fake)
    return calls


@pytest.mark.parametrize("which", ["tls", "admin"])
def test_ficus_moves_off_a_port_another_process_shares(monkeypatch, ficus_factory, which):
    """The TLS listener (SO_REUSEPORT: ficus binds beside the other process, caught by the check of who listens) or
    the admin listener (bind fails: caught from ficus's error) on a port another process holds."""
    h = Holder(unused_port())
    try:
        tpl = ('server:\n  workers: 2\n  listen:\n    - address: "127.0.0.1:$tls_port"\n'
               '      tls: { certificates: [{ cert: "$cert", key: "$key" }] }\n'
               '  admin: { address: "127.0.0.1:$admin_port" }\nroutes:\n  - name: r\n    match: { path_prefix: / }\n'
               '    respond: { status: 200, body: "ours\\n", content_type: text/plain }\n')
        other = "admin" if which == "tls" else "tls"
        given = {f"{other}_port": free_port()}
        # $dead, then the one port render() picks, get the port the holder listens on
        taken_first(monkeypatch, conftest, h.port, n=2)
        fx = ficus_factory(tpl, **given)
        assert fx.port(which) != h.port, f"ficus was left with its {which} listener on a port another process holds"
        assert fx.port(other) == given[f"{other}_port"], "a port the test chose was changed"
        assert ports.foreign_listeners([fx.tls_port, fx.admin_port], [fx.pid]) == []
        with fx.client() as c:
            for _ in range(20):  # new connections each time: with a shared port, about half would reach the holder
                r = c.get("/", headers={"Connection": "close"})
                assert r.status_code == 200 and r.text == "ours\n"
        assert fx.admin_get("/healthz")[0] == 200
    finally:
        h.close()


def test_echo_and_redis_move_off_a_taken_port(monkeypatch, tmp_path):
    h = Holder(unused_port())
    try:
        taken_first(monkeypatch, conftest, h.port)
        e = Echo("moved")
        try:
            assert e.port != h.port and ports.foreign_listeners([e.port], [e.proc.pid]) == []
        finally:
            e.stop()
        taken_first(monkeypatch, redis_fixtures, h.port)
        r = RedisServer(tmp_path / "redis")
        try:
            assert r.port != h.port and r.cli("PING") is True
        finally:
            r.stop()
    finally:
        h.close()
