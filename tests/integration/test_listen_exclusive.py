"""Someone else on ficus's port (issue 10 item 9): ficus refuses to start, and a reload refuses, when another process
listens on one of its addresses (another ficus, anything with SO_REUSEPORT); its own workers still share it."""
import socket
import subprocess

from conftest import FICUS_BIN, SLOW, free_port

CONFIG = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$plain_port"
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: "off"
routes:
  - name: ping
    match: { path: /ping }
    respond: { status: 200, body: "pong", content_type: text/plain }
"""


def reuseport_listener(port, host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((host, port))
    s.listen(16)
    return s


def run_ficus(config_path):
    p = subprocess.run([FICUS_BIN, "-c", config_path], capture_output=True, timeout=30 * SLOW)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def ping(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW) as s:
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        buf = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return buf
            buf += chunk


def test_two_workers_share_and_second_ficus_refused(ficus_factory, tmp_path):
    f = ficus_factory(CONFIG)
    port = f.port("plain")
    # a second ficus with the same listen address (its own admin port): exits non-zero with a clear message
    second = tmp_path / "second.yaml"
    second.write_text(f.config_text.replace(str(f.admin_port), str(free_port())))
    rc, err = run_ficus(str(second))
    assert rc != 0
    assert f"cannot listen on 127.0.0.1:{port}: the address is also bound by another process" in err, err
    # the first one keeps serving every connection (its two workers share the address)
    for _ in range(20):
        assert ping(port).startswith(b"HTTP/1.1 200")
    assert f.alive()


def test_reuseport_socket_holding_the_port_refuses_start(tmp_path):
    port = free_port()
    holder = reuseport_listener(port)
    try:
        cfg = tmp_path / "f.yaml"
        cfg.write_text(CONFIG.replace("$plain_port", str(port)).replace("$admin_port", str(free_port())))
        rc, err = run_ficus(str(cfg))
        assert rc != 0
        assert f"cannot listen on 127.0.0.1:{port}: the address is also bound by another process" in err, err
    finally:
        holder.close()


def test_wildcard_holder_refuses_start(tmp_path):
    port = free_port()
    holder = reuseport_listener(port, host="0.0.0.0")
    try:
        cfg = tmp_path / "f.yaml"
        cfg.write_text(CONFIG.replace("$plain_port", str(port)).replace("$admin_port", str(free_port())))
        rc, err = run_ficus(str(cfg))
        assert rc != 0 and "also bound by another process" in err, err
    finally:
        holder.close()


def test_reload_refused_while_another_process_joined(ficus_factory):
    f = ficus_factory(CONFIG)
    port = f.port("plain")
    assert f.reload().ok
    holder = reuseport_listener(port)  # joins ficus's SO_REUSEPORT group after start
    try:
        r = f.reload()
        assert not r.ok
        assert f"cannot listen on 127.0.0.1:{port}: the address is also bound by another process" in r.line, r.line
    finally:
        holder.close()
    r = f.reload()
    assert r.ok, r.line
    assert ping(port).startswith(b"HTTP/1.1 200")
