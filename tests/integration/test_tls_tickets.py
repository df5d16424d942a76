"""TLS session tickets (issue 15, "Handshakes"): `tls.session_ticket_keys` files (NGINX's format) let one instance
resume a session another issued, a key listed second still decrypts (rotation), automatic keys survive a reload but
are the instance's own, `session_tickets: false` turns resumption off, bad key files are refused with file:line.
Clients are Python's ssl (OpenSSL), TLS 1.3 and TLS 1.2, resumption read from `SSLSocket.session_reused`.
"""
import os
import re
import socket
import ssl
import subprocess

import pytest

from conftest import SLOW

CONF = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }]$tls_extra }
  admin: { address: "127.0.0.1:$admin_port" }
routes:
  - name: hello
    match: { path_prefix: / }
    respond: { status: 200, body: "hello\\n", content_type: text/plain }
"""


def key_file(tmp_path, name, size=80):
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    os.chmod(path, 0o600)
    return str(path)


def keys_extra(*files):
    return ", session_ticket_keys: [" + ", ".join(f'"{f}"' for f in files) + "]"


_contexts = {}


def client_context(ca, version):
    """One client context per CA and version: Python resumes a session only with the context that made it."""
    if (ca, version) not in _contexts:
        ctx = ssl.create_default_context(cafile=ca)
        ctx.minimum_version = ctx.maximum_version = version
        _contexts[(ca, version)] = ctx
    return _contexts[(ca, version)]


def connect(fx, version, session=None):
    """One TLS connection and one request; returns (session to resume with, whether this one was resumed)."""
    ctx = client_context(fx.certs.ca, version)
    raw = socket.create_connection(("127.0.0.1", fx.tls_port), timeout=10 * SLOW)
    with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.1 200"), data[:200]
        return s.session, s.session_reused


VERSIONS = [pytest.param(ssl.TLSVersion.TLSv1_3, id="tls13"), pytest.param(ssl.TLSVersion.TLSv1_2, id="tls12")]


@pytest.mark.parametrize("version", VERSIONS)
def test_shared_keys_resume_across_instances(ficus_factory, tmp_path, version):
    k = key_file(tmp_path, "ticket.key")
    a = ficus_factory(CONF, tls_extra=keys_extra(k))
    b = ficus_factory(CONF, tls_extra=keys_extra(k))
    sess, reused = connect(a, version)
    assert not reused
    for fx in (b, a, b):  # resumed on the other instance, and again on either
        _, reused = connect(fx, version, sess)
        assert reused, f"a ticket issued by one instance did not resume on {fx.tls_port}"


@pytest.mark.parametrize("version", VERSIONS)
def test_rotation_old_key_second_still_resumes(ficus_factory, tmp_path, version):
    old, new = key_file(tmp_path, "old.key"), key_file(tmp_path, "new.key")
    before = ficus_factory(CONF, tls_extra=keys_extra(old))
    rotated = ficus_factory(CONF, tls_extra=keys_extra(new, old))
    only_new = ficus_factory(CONF, tls_extra=keys_extra(new))
    sess_old, _ = connect(before, version)
    _, reused = connect(rotated, version, sess_old)
    assert reused, "a ticket of the key listed second must still resume"
    _, reused = connect(only_new, version, sess_old)
    assert not reused, "a ticket of a key no longer listed must not resume"
    sess_new, _ = connect(rotated, version)  # issued with the first key: the instance with only that key takes it
    _, reused = connect(only_new, version, sess_new)
    assert reused


def test_automatic_keys_survive_reload_but_are_per_instance(ficus_factory, tmp_path):
    version = ssl.TLSVersion.TLSv1_3
    a = ficus_factory(CONF, tls_extra="")
    b = ficus_factory(CONF, tls_extra="")
    sess, _ = connect(a, version)
    _, reused = connect(a, version, sess)
    assert reused, "automatic keys: no resumption on the same instance"
    _, reused = connect(b, version, sess)
    assert not reused, "automatic keys are the instance's own: another instance must not take its tickets"
    assert a.reload(CONF.replace("hello\\n", "hello again\\n")).ok  # new TLS contexts
    _, reused = connect(a, version, sess)
    assert reused, "a ticket issued before a reload must still resume after it"


def test_session_tickets_off(ficus_factory):
    fx = ficus_factory(CONF, tls_extra=", session_tickets: false")
    sess, _ = connect(fx, ssl.TLSVersion.TLSv1_3)
    _, reused = connect(fx, ssl.TLSVersion.TLSv1_3, sess)
    assert not reused


@pytest.mark.parametrize("case", [
    ("short file", lambda d: keys_extra(key_file(d, "short.key", 40)), "must hold 80 bytes"),
    ("missing file", lambda d: keys_extra(str(d / "nope.key")), "cannot open session ticket key file"),
    ("empty list", lambda d: ", session_ticket_keys: []", "at least one file"),
    ("keys but off", lambda d: ", session_tickets: false" + keys_extra(key_file(d, "k.key")), "session_tickets: false"),
    ("same key twice", lambda d: (lambda k: keys_extra(k, k))(key_file(d, "k2.key")), "same key name"),
], ids=lambda c: c[0] if isinstance(c, tuple) else c)
def test_ticket_config_errors(tmp_path, certs, case):
    _, extra, expect = case
    text = (CONF.replace("$tls_port", "18443").replace("$cert", certs.localhost[0]).replace("$key", certs.localhost[1])
            .replace("$admin_port", "18444").replace("$tls_extra", extra(tmp_path)))
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    p = subprocess.run([os.environ["FICUS_BIN"], "-t", "-c", str(path)], capture_output=True, text=True, timeout=30 * SLOW)
    assert p.returncode == 1, p
    assert expect in p.stderr, p.stderr
    assert re.search(r"bad\.yaml:5:", p.stderr), p.stderr
