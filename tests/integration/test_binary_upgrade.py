"""Binary upgrade (issue 13): a new ficus takes over the running one's listening sockets (`--upgrade-from SOCKET`,
fds passed over the control socket) and the old one drains. Under continuous HTTP/2 and HTTP/1.1 load (long-lived
connections and a new connection per request, TLS and plain), three upgrades in a row: no failed request, no
connection error, each old process exits 0 after draining, the last one serves. A bad configuration on the new
process changes nothing; a new process that fails after receiving the sockets changes nothing either; `ficus -s
upgrade` starts the binary itself and tells systemd the new MAINPID.

What counts as a failure: any exception (reset, refused connect, EOF before a complete response, a TLS error), a
status other than 200, an HTTP/2 RST_STREAM or a GOAWAY with an error code. What does not: an HTTP/1.1 response with
`Connection: close` or an idle keep-alive connection closed with a FIN before the next request is sent (the client
opens a new one), an HTTP/2 GOAWAY(NO_ERROR) after which the client finishes its stream and opens a new connection,
and a stream above a GOAWAY's last stream id, which the server promises it did not process (RFC 9113 section 6.8:
retried on a new connection; counted apart, expected 0 with H2O's two-GOAWAY sequence). The figures are printed
(pytest -s shows them) and kept under the test's directory in upgrade-figures.json."""
import http.client
import json
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import threading
import time

import h2.config
import h2.connection
import h2.events
import pytest

from conftest import FICUS_BIN, SANITIZER_RE, SLOW, free_port, wait_for
from notify_fixtures import NotifyListener

CONFIG = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
    - address: "127.0.0.1:$plain_port"
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: "off"
  drain_timeout: 60s
upstreams:
  a: { endpoints: ["http://$echo_a"] }
routes:
  - name: ping
    match: { path: /ping }
    respond: { status: 200, body: "pong", content_type: text/plain }
  - name: api
    match: { path_prefix: /api }
    to: a
"""


class Refused(Exception):
    """An HTTP/2 stream the server declared unprocessed (above a GOAWAY's last stream id): safe to retry."""


class H2Client:
    """One HTTP/2 connection over TLS, one stream at a time, that honours GOAWAY: it finishes the streams the server
    keeps (id <= last_stream_id), then is done; the caller opens a new connection. GOAWAY frames are taken out of the
    byte stream before python-h2 sees them: h2 4.1 closes its state machine on the first GOAWAY and then refuses the
    frames of the streams the server still completes (H2O's graceful shutdown sends GOAWAY(2^31-1) first, RFC 9113
    section 6.8)."""

    def __init__(self, port, ca):
        ctx = ssl.create_default_context(cafile=ca)
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=20 * SLOW)
        self.s = ctx.wrap_socket(raw, server_hostname="localhost")
        assert self.s.selected_alpn_protocol() == "h2"
        self.c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.c.initiate_connection()
        self.c.increment_flow_control_window(1 << 30)  # no WINDOW_UPDATE needed later, even after a GOAWAY
        self.s.sendall(self.c.data_to_send())
        self.goaway = None  # last_stream_id of the latest GOAWAY
        self.inbuf = b""

    def _frames(self, data):
        """data with the GOAWAY frames taken out (recorded); incomplete frames wait for more bytes."""
        self.inbuf += data
        out = b""
        while len(self.inbuf) >= 9:
            length = int.from_bytes(self.inbuf[0:3], "big")
            if len(self.inbuf) < 9 + length:
                break
            frame, self.inbuf = self.inbuf[:9 + length], self.inbuf[9 + length:]
            if frame[3] == 0x7:
                last = int.from_bytes(frame[9:13], "big") & 0x7FFFFFFF
                code = int.from_bytes(frame[13:17], "big")
                if code != 0:
                    raise ConnectionError(f"h2: GOAWAY with error {code}")
                self.goaway = last
            else:
                out += frame
        return out

    def get(self, path):
        assert self.goaway is None
        sid = self.c.get_next_available_stream_id()
        self.c.send_headers(sid, [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"), (":path", path)],
                            end_stream=True)
        self.s.sendall(self.c.data_to_send())
        status, body, done = None, b"", False
        while not done:
            data = self.s.recv(65536)
            if not data:
                if self.goaway is not None and sid > self.goaway:
                    raise Refused()
                raise ConnectionError(f"h2: EOF before the end of stream {sid} (goaway {self.goaway})")
            for ev in self.c.receive_data(self._frames(data)):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    status = int(dict(ev.headers)[":status"])
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                    body += ev.data
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    done = True
                elif isinstance(ev, h2.events.StreamReset):
                    raise ConnectionError(f"h2: RST_STREAM {ev.error_code} on stream {ev.stream_id}")
            out = self.c.data_to_send()
            if out:
                try:
                    self.s.sendall(out)
                except OSError:
                    if not done:
                        raise
            if not done and self.goaway is not None and sid > self.goaway:
                raise Refused()
        return status, body

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class H1Client:
    """HTTP/1.1 keep-alive (or a new connection per request): reconnects after `Connection: close`, and when the
    server closed the idle connection (readable before a request is sent: a FIN), as browsers and httpcore do."""

    def __init__(self, port, ca=None, per_request=False):
        self.port, self.per_request = port, per_request
        self.ctx = ssl.create_default_context(cafile=ca) if ca else None
        self.conn = None

    def _new(self):
        if self.ctx:
            return http.client.HTTPSConnection("localhost", self.port, context=self.ctx, timeout=20 * SLOW)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=20 * SLOW)

    def get(self, path, stats):
        if self.conn is not None and self.conn.sock is not None:
            r, _, _ = select.select([self.conn.sock], [], [], 0)
            if r:
                stats["h1_idle_closed"] += 1
                self.close()
        if self.conn is None:
            self.conn = self._new()
        headers = {"Connection": "close"} if self.per_request else {}
        self.conn.request("GET", path, headers=headers)
        r = self.conn.getresponse()
        body = r.read()
        if r.will_close:
            if not self.per_request:
                stats["h1_connection_close"] += 1
            self.close()
        return r.status, body

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None


class Load:
    """Clients in threads until stop(); every request counted in the current phase (set by the test)."""

    KINDS = ("h1_keepalive_tls", "h1_keepalive_tls_slow", "h1_keepalive_plain", "h1_per_request", "h2_long",
             "h2_long_slow", "h2_per_request")

    def __init__(self, f):
        self.f = f
        self.phase = "before"
        self.lock = threading.Lock()
        self.ok = {}
        self.errors = []
        self.stats = {"h1_connection_close": 0, "h1_idle_closed": 0, "h2_goaway": 0, "h2_refused_retried": 0,
                      "new_connections": 0}
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in self.KINDS]

    def start(self):
        for t in self.threads:
            t.start()

    def total(self):
        with self.lock:
            return sum(self.ok.values())

    def _count(self, kind):
        with self.lock:
            key = f"{self.phase}/{kind}"
            self.ok[key] = self.ok.get(key, 0) + 1

    def _fail(self, kind, what):
        with self.lock:
            self.errors.append(f"{self.phase}/{kind}: {what}")

    def _check(self, kind, status, body, path):
        if status != 200:
            self._fail(kind, f"status {status} for {path}: {body[:200]!r}")
        elif path == "/ping" and body != b"pong":
            self._fail(kind, f"body {body[:200]!r}")
        else:
            self._count(kind)

    def _run(self, kind):
        f = self.f
        slow = kind.endswith("_slow")
        path = "/api/_sleep/300" if slow else ("/api/x" if "plain" in kind or kind == "h2_long" else "/ping")
        h1 = None
        if kind.startswith("h1"):
            h1 = H1Client(f.port("plain") if "plain" in kind else f.tls_port, None if "plain" in kind else f.certs.ca,
                          per_request=kind == "h1_per_request")
        h2c = None
        while not self._stop.is_set():
            try:
                if h1 is not None:
                    status, body = h1.get(path, self.stats)
                    self._check(kind, status, body, path)
                    continue
                if h2c is None:
                    h2c = H2Client(f.tls_port, f.certs.ca)
                    self.stats["new_connections"] += 1
                try:
                    status, body = h2c.get(path)
                    self._check(kind, status, body, path)
                except Refused:
                    self.stats["h2_refused_retried"] += 1
                    h2c.close()
                    h2c = None
                    continue
                if h2c.goaway is not None:
                    self.stats["h2_goaway"] += 1
                if h2c.goaway is not None or kind == "h2_per_request":
                    h2c.close()
                    h2c = None
            except Exception as e:  # noqa: BLE001 - every error is a failure of the test
                self._fail(kind, repr(e))
                if h1 is not None:
                    h1.close()
                if h2c is not None:
                    h2c.close()
                    h2c = None
                time.sleep(0.05)
        if h1 is not None:
            h1.close()
        if h2c is not None:
            h2c.close()

    def stop(self):
        self._stop.set()
        for t in self.threads:
            t.join(60 * SLOW)
        assert not any(t.is_alive() for t in self.threads), "a load thread hangs"

    def wait_more(self, n, what):
        start = self.total()
        wait_for(lambda: self.total() >= start + n, 60 * SLOW, what=what)


class NewFicus:
    """A ficus started with --upgrade-from (not through the fixture: its ports answer before it starts, and share
    their sockets with the old process by design)."""

    def __init__(self, workdir, config_path, sock, n, env=None):
        self.err_path = os.path.join(workdir, f"upgrade-{n}.stderr")
        self.out_path = os.path.join(workdir, f"upgrade-{n}.stdout")
        with open(self.err_path, "ab") as err, open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen([FICUS_BIN, "-c", config_path, "-S", sock, "-x", sock], stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, cwd=workdir, start_new_session=True,
                                         env=dict(os.environ, **(env or {})))
        self.pid = self.proc.pid

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_took_over(self, old_pid):
        def done():
            if self.proc.poll() is not None:
                pytest.fail(f"new ficus exited with {self.proc.returncode}:\n{self.stderr()[-3000:]}")
            return f"upgrade: took over" in self.stderr()

        wait_for(done, 60 * SLOW, what="the new process to take over")
        m = re.search(r"upgrade: took over (\d+) listeners from pid (\d+)", self.stderr())
        assert m and int(m.group(2)) == old_pid, self.stderr()[-2000:]
        return int(m.group(1))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def wait_exit(proc, what):
    deadline = time.monotonic() + 45 * SLOW
    while proc.poll() is None:
        assert time.monotonic() < deadline, f"{what} did not exit after draining"
        time.sleep(0.05)
    return proc.returncode


def ctl(sock, cmd):
    return subprocess.run([FICUS_BIN, "-s", cmd, "-S", sock], capture_output=True, text=True, timeout=120 * SLOW)


def admin_get(port, path):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10 * SLOW) as r:
        return r.status, r.read().decode()


def start_inflight(f):
    """An HTTP/1.1 and an HTTP/2 request of 1.5 s each, started (and seen by the upstream) before the caller goes on."""
    out = []
    for http2 in (False, True):
        result = []

        def run(http2=http2, result=result):
            try:
                if http2:
                    c = H2Client(f.tls_port, f.certs.ca)
                    status, _ = c.get("/api/_sleep/1500")
                    c.close()
                else:
                    status, _ = H1Client(f.tls_port, f.certs.ca).get("/api/_sleep/1500", {"h1_connection_close": 0})
                result.append(status)
            except Exception as e:  # noqa: BLE001
                result.append(repr(e))

        t = threading.Thread(target=run, daemon=True)
        t.start()
        out.append((t, result))
    time.sleep(0.5)  # sent and proxied: the echo upstream sleeps on them now
    return out


def test_three_upgrades_under_load(ficus_factory, tmp_path):
    sock = str(tmp_path / "ficus.sock")
    f = ficus_factory(CONFIG, args=["-S", sock])
    load = Load(f)
    load.start()
    news = []
    figures = []
    try:
        load.wait_more(100, "requests flowing before the first upgrade")
        old_proc, old_err, old_pid = f.proc, f.stderr, f.pid
        for n in (1, 2, 3):
            load.phase = f"upgrade{n}"
            before = load.total()
            # requests in flight on the old process when it is told to drain: they finish there
            inflight = start_inflight(f)
            t0 = time.monotonic()
            new = NewFicus(f.workdir, f.config_path, sock, n)
            news.append(new)
            taken = new.wait_took_over(old_pid)
            assert taken == 2 * 2 + 2, taken  # 2 workers x 2 listeners, admin, control socket
            rc = wait_exit(old_proc, f"old ficus pid {old_pid}")
            drained_s = time.monotonic() - t0
            for t, result in inflight:
                t.join(30 * SLOW)
                assert result == [200], (n, result)
            assert rc == 0, rc
            text = old_err()
            assert f"upgrade: handing listeners to pid {new.pid}" in text
            assert f"draining: pid {new.pid} took over the listeners" in text
            assert "drain timeout reached" not in text, text[-2000:]
            assert not SANITIZER_RE.search(text), text[-3000:]
            if old_proc is f.proc:
                assert f.check(expect_exit=0) is None
            load.wait_more(100, f"requests flowing after upgrade {n}")
            figures.append({"upgrade": n, "old_pid": old_pid, "new_pid": new.pid, "requests_during": load.total() - before,
                            "old_exit_s": round(drained_s, 2)})
            old_proc, old_err, old_pid = new.proc, new.stderr, new.pid
        load.phase = "after"
        load.wait_more(100, "requests flowing on the last process")
    finally:
        load.stop()
    last = news[-1]
    # the last process serves everything: TLS h1, plain, admin with its metrics
    assert last.proc.poll() is None
    status, body = H1Client(f.tls_port, f.certs.ca).get("/ping", {"h1_idle_closed": 0, "h1_connection_close": 0})
    assert status == 200 and body == b"pong"
    status, metrics = admin_get(f.admin_port, "/metrics")
    assert status == 200 and re.search(r"^ficus_config_generation 1$", metrics, re.M), metrics[:2000]
    r = ctl(sock, "status")
    assert r.returncode == 0 and "generation 1" in r.stdout, r
    r = ctl(sock, "reload")  # the sockets it took over are its own for a reload's checks too
    assert r.returncode == 0 and "generation 2 loaded" in r.stdout, r
    assert last.stop() == 0
    for new in news:
        assert not SANITIZER_RE.search(new.stderr()), new.stderr()[-3000:]
    total = sum(load.ok.values())
    summary = {"requests_ok": total, "failed": len(load.errors), "per_phase_kind": load.ok, "stats": load.stats,
               "upgrades": figures}
    with open(os.path.join(f.workdir, "upgrade-figures.json"), "w") as fp:
        json.dump(summary, fp, indent=1)
    print("\nbinary upgrade figures:", json.dumps(summary))
    assert not load.errors, load.errors[:20]
    # each kind of client got answers during every upgrade (not only before and after)
    for n in (1, 2, 3):
        for kind in Load.KINDS:
            assert load.ok.get(f"upgrade{n}/{kind}", 0) > 0, (n, kind, load.ok)
    # the old processes closed their connections gracefully, and clients reconnected
    assert load.stats["h2_goaway"] >= 3 and load.stats["h1_connection_close"] >= 3, load.stats


def run_new(f, sock, config_path, env=None):
    return subprocess.run([FICUS_BIN, "-c", config_path, "-S", sock, "-x", sock], capture_output=True, text=True,
                          timeout=120 * SLOW, cwd=f.workdir, env=dict(os.environ, **(env or {})))


def test_bad_config_or_failed_start_changes_nothing(ficus_factory, tmp_path):
    sock = str(tmp_path / "ficus.sock")
    f = ficus_factory(CONFIG, args=["-S", sock])
    load = Load(f)
    load.start()
    try:
        load.wait_more(50, "requests flowing")
        # a file that does not load: the new process exits 1 with file:line before it contacts the running one
        bad = tmp_path / "bad.yaml"
        bad.write_text(f.config_text.replace("  - name: ping\n", "  - name: ping\n    bogus_key: 1\n"))
        load.phase = "bad-config"
        r = run_new(f, sock, str(bad))
        assert r.returncode == 1, r
        assert re.search(re.escape(str(bad)) + r":\d+", r.stderr), r.stderr
        assert "handing listeners" not in f.stderr()
        load.wait_more(50, "requests flowing after the refused upgrade")
        # a file that loads, but a listener it adds cannot be bound (a foreign socket without SO_REUSEPORT holds the
        # port): it exits 1 after it received the sockets; the running one serves on and can be upgraded later
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        taken = holder.getsockname()[1]
        unbindable = tmp_path / "unbindable.yaml"
        unbindable.write_text(f.config_text.replace("  admin:", f'    - address: "127.0.0.1:{taken}"\n  admin:'))
        load.phase = "failed-start"
        r = run_new(f, sock, str(unbindable))
        holder.close()
        assert r.returncode == 1, r
        assert f"cannot listen on 127.0.0.1:{taken}" in r.stderr, r.stderr
        wait_for(lambda: "went away before taking over; serving on" in f.stderr(), 30 * SLOW, what="the old one noticing")
        assert f.alive()
        load.wait_more(50, "requests flowing after the failed upgrade")
        # the guard still refuses a second ficus (no --upgrade-from) on the same addresses
        second = tmp_path / "second.yaml"
        second.write_text(f.config_text.replace(str(f.admin_port), str(free_port())))
        r = subprocess.run([FICUS_BIN, "-c", str(second)], capture_output=True, text=True, timeout=60 * SLOW, cwd=f.workdir)
        assert r.returncode == 1 and "the address is also bound by another process" in r.stderr, r
        load.phase = "upgrade"
        new = NewFicus(f.workdir, f.config_path, sock, 1)
        new.wait_took_over(f.pid)
        assert wait_exit(f.proc, "the old ficus") == 0
        load.wait_more(50, "requests flowing on the new process")
    finally:
        load.stop()
    assert not load.errors, load.errors[:20]
    assert f.check(expect_exit=0) is None
    assert new.stop() == 0
    assert not SANITIZER_RE.search(new.stderr()), new.stderr()[-3000:]


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fp:
            return fp.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_signal_upgrade_starts_the_binary_and_tells_systemd(ficus_factory, tmp_path):
    """`ficus -s upgrade` (what an operator runs under systemd): the running ficus starts its executable file again
    with --upgrade-from, inside the service (its child), answers once the new one took over; the new one sends
    MAINPID= and READY=1 (NotifyAccess=all), the old one no STOPPING=1."""
    sock = str(tmp_path / "ficus.sock")
    notify = NotifyListener(tmp_path / "notify.sock")
    f = ficus_factory(CONFIG, args=["-S", sock], env={"NOTIFY_SOCKET": notify.path})
    wait_for(lambda: any(m.get("READY") == "1" for m in notify.poll()), 15 * SLOW, what="READY=1")
    notify.messages.clear()
    load = Load(f)
    load.start()
    child = None
    try:
        load.wait_more(50, "requests flowing")
        load.phase = "upgrade"
        r = ctl(sock, "upgrade")
        assert r.returncode == 0, r
        m = re.search(r"pid (\d+) took over the listeners; pid (\d+) drains", r.stdout)
        assert m and int(m.group(2)) == f.pid, r.stdout
        child = int(m.group(1))
        assert wait_exit(f.proc, "the old ficus") == 0
        load.wait_more(50, "requests flowing on the new process")
        msgs = notify.poll()
        assert any(x.get("MAINPID") == str(child) for x in msgs), msgs
        assert any(x.get("READY") == "1" for x in msgs), msgs
        assert not any("STOPPING" in x for x in msgs), msgs  # the service goes on: systemd must not see it stop
        r = ctl(sock, "status")
        assert r.returncode == 0 and "generation 1" in r.stdout, r
    finally:
        load.stop()
        if child is not None and pid_alive(child):
            os.kill(child, signal.SIGTERM)
            wait_for(lambda: not pid_alive(child), 60 * SLOW, what="the new ficus to exit")
        notify.sock.close()
    assert not load.errors, load.errors[:20]
    text = f.stderr()  # the child writes to the same stderr
    assert f"upgrade: started pid {child} to take over" in text
    assert f"upgrade: took over 6 listeners from pid {f.pid}" in text
    assert "all workers stopped; exiting" in text.split(f"took over 6 listeners from pid {f.pid}")[1]
    assert not SANITIZER_RE.search(text), text[-3000:]
    assert f.check(expect_exit=0) is None


def test_signal_upgrade_reports_a_new_process_that_fails(ficus_factory, tmp_path):
    sock = str(tmp_path / "ficus.sock")
    f = ficus_factory(CONFIG, args=["-S", sock])
    with open(f.config_path, "a") as fp:
        fp.write("bogus_top_level: 1\n")  # the file on disk no longer loads: the new process refuses it
    r = ctl(sock, "upgrade")
    assert r.returncode == 1 and "exited with status 1 before taking over" in r.stderr, r
    assert re.search(re.escape(f.config_path) + r":\d+", f.stderr()), f.stderr_tail()
    status, body = H1Client(f.tls_port, f.certs.ca).get("/ping", {"h1_connection_close": 0})
    assert status == 200 and body == b"pong"
    assert f.alive()
