"""systemd: the unit passes `systemd-analyze verify`; the notify protocol (READY, RELOADING, STOPPING, STATUS) seen by a
fake NOTIFY_SOCKET listener; `ficus -s reload|reopen|status` on the control socket waits for the outcome and fails
visibly (exit 1, file:line) on a bad file while the running generation keeps serving."""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import FICUS_BIN, SLOW, SOURCE_DIR, wait_for
from notify_fixtures import NotifyListener

UNIT = os.path.join(SOURCE_DIR, "packaging", "ficus.service")

CONFIG = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: "$tmp/access.log"
routes:
  - name: ping
    match: { path: /ping }
    respond: { status: 200, body: "pong", content_type: text/plain }
  - name: other
    match: { path: /other }
    respond: { status: 200, body: "other", content_type: text/plain }
"""


def unit_text():
    with open(UNIT) as f:
        return f.read()


def unit_settings():
    out = {}
    for line in unit_text().splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


def test_unit_verifies(tmp_path):
    # verify needs the executables to exist: point them at the built binary
    unit = tmp_path / "ficus.service"
    unit.write_text(unit_text().replace("/usr/sbin/ficus", FICUS_BIN))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


def test_unit_hardening_contract():
    s = unit_settings()
    one = {k: v[-1] for k, v in s.items()}
    assert one["Type"] == "notify"
    assert one["ExecStartPre"].split()[:2] == ["/usr/sbin/ficus", "-t"]
    assert "-s reload" in one["ExecReload"]
    assert one["User"] == "ficus" and one["Group"] == "ficus"
    assert one["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert one["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    for k, v in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                 "PrivateDevices": "yes"}.items():
        assert one[k] == v, k
    assert int(one["LimitNOFILE"]) >= 65536
    # the security review's figure: systemd's own scoring, "OK" is below 4
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", UNIT], capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for ficus.service: ([0-9.]+)", r.stdout)
    assert m and float(m.group(1)) < 2.5, r.stdout[-2000:]


@pytest.fixture
def notify(tmp_path):
    n = NotifyListener(tmp_path / "notify.sock")
    yield n
    n.close()


def ctl(sock, cmd):
    return subprocess.run([FICUS_BIN, "-s", cmd, "-S", sock], capture_output=True, text=True, timeout=60 * SLOW)


def test_notify_protocol_and_reload_outcome(ficus_factory, notify, tmp_path):
    sock = str(tmp_path / "ficus.sock")
    f = ficus_factory(CONFIG, env={"NOTIFY_SOCKET": notify.path}, args=["-S", sock])
    ready = notify.wait(lambda m: m.get("READY") == "1", "READY=1")
    assert ready["STATUS"] == "generation 1, 2 routes, 2 workers"
    assert oct(os.stat(sock).st_mode & 0o777) == "0o660"

    r = ctl(sock, "status")
    assert r.returncode == 0 and "generation 1, 2 routes, 2 workers" in r.stdout, r

    # a good reload: RELOADING=1 then READY=1 with the new status, and `-s reload` says so
    notify.messages.clear()
    r = ctl(sock, "reload")
    assert r.returncode == 0, r
    assert "generation 2 loaded" in r.stdout
    msgs = notify.poll()
    i = next(i for i, m in enumerate(msgs) if m.get("RELOADING") == "1")
    assert "MONOTONIC_USEC" in msgs[i]
    assert any(m.get("READY") == "1" and m.get("STATUS") == "generation 2, 2 routes, 2 workers" for m in msgs[i + 1:]), msgs

    # a bad file: exit 1 with file:line on stderr, the running generation keeps serving, status says why
    notify.messages.clear()
    f.write_config(CONFIG + "  - name: broken\n    match: { path: /x }\n    bogus_key: 1\n")
    r = ctl(sock, "reload")
    assert r.returncode == 1, r
    assert re.search(re.escape(f.config_path) + r":\d+: .*bogus_key", r.stderr), r.stderr
    assert "keeping generation 2" in r.stderr
    msgs = notify.wait(lambda m: m.get("READY") == "1", "READY=1 after the failed reload")
    assert msgs["STATUS"].startswith("generation 2, 2 routes, 2 workers; last reload failed: "), msgs
    with f.client() as c:
        assert c.get("/ping").text == "pong"
    assert f.metrics().get("ficus_config_generation") == 2

    # SIGHUP still works the same way (and is told to systemd the same way)
    f.write_config(CONFIG)
    notify.messages.clear()
    assert f.reload().ok
    notify.wait(lambda m: m.get("STATUS") == "generation 3, 2 routes, 2 workers", "READY after SIGHUP")

    # reopen through the socket
    os.rename(os.path.join(f.workdir, "access.log"), os.path.join(f.workdir, "access.log.1"))
    r = ctl(sock, "reopen")
    assert r.returncode == 0 and "reopened" in r.stdout, r
    assert os.path.exists(os.path.join(f.workdir, "access.log"))

    # unknown command: refused, exit 1
    r = ctl(sock, "frobnicate")
    assert r.returncode == 1 and "unknown command" in r.stderr, r

    # draining: STOPPING=1, the socket goes away
    f.send_signal(signal.SIGTERM)
    notify.wait(lambda m: m.get("STOPPING") == "1", "STOPPING=1")
    assert f.stop() == 0
    assert not os.path.exists(sock)
    r = ctl(sock, "reload")
    assert r.returncode == 2 and "no running ficus" in r.stderr, r


def test_control_socket_refuses_a_second_instance_and_replaces_a_stale_file(ficus_factory, tmp_path):
    sock = str(tmp_path / "ficus.sock")
    # a stale socket file (a crashed process): replaced
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock)
    stale.close()
    f = ficus_factory(CONFIG, args=["-S", sock])
    assert ctl(sock, "status").returncode == 0
    # a second instance on the same socket (other ports): refused at start, the first keeps it
    g = ficus_factory(CONFIG, args=["-S", sock], wait=False)
    g.expect_exit = 1
    wait_for(lambda: g.proc.poll() is not None, 15 * SLOW, what="second instance exits")
    assert g.proc.returncode == 1
    assert "another ficus is running on it" in g.stderr()
    assert ctl(sock, "status").returncode == 0
    assert f.alive()


def test_control_socket_bounds_its_input(ficus_factory, tmp_path):
    sock = str(tmp_path / "ficus.sock")
    f = ficus_factory(CONFIG, args=["-S", sock])
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10 * SLOW)
        s.connect(sock)
        s.sendall(b"x" * 200)
        data = s.recv(1000)
        assert data.startswith(b"error command line too long"), data
    # clients that connect and say nothing do not stop others (at most 8 are served at once; more wait)
    idle = []
    for _ in range(4):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        idle.append(s)
    assert ctl(sock, "status").returncode == 0
    for s in idle:
        s.close()
    assert f.alive()
