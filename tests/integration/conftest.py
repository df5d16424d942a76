"""Fixtures for the ficus black-box integration suite (see README.md).

Everything runs over real loopback sockets: echo upstreams (tests/upstreams/echo.py) on free ports, a ficus process
started with a YAML config rendered from a string.Template ($name placeholders; any "$xxx_port" placeholder that is
not given gets a free port), and dev certificates generated per session with the openssl CLI.
"""
import contextlib
import json
import os
import re
import select
import signal
import socket
import ssl
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from ports import ATTEMPTS as PORT_ATTEMPTS, foreign_listeners, free_port  # noqa: F401 - free_port re-exported

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.environ.get("FICUS_SOURCE_DIR") or os.path.join(HERE, "..", ".."))
FICUS_BIN = os.path.abspath(os.environ.get("FICUS_BIN") or os.path.join(SOURCE_DIR, "build", "ficus"))
ECHO_PY = os.path.join(SOURCE_DIR, "tests", "upstreams", "echo.py")

SANITIZER_RE = re.compile(
    r"(ERROR: (Address|Leak|Thread|Memory)Sanitizer|WARNING: ThreadSanitizer|runtime error:|"
    r"SUMMARY: \w*Sanitizer|AddressSanitizer:DEADLYSIGNAL)"
)
DEFAULT_TEST_TIMEOUT = 180  # seconds per test (pytest-timeout, when installed)


def _detect_sanitizer(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"__tsan_init" in data or b"__ubsan_handle" in data


IS_SANITIZED = _detect_sanitizer(FICUS_BIN)
# multiplier for waits (startup, reload, ...) - never used to relax a behavioural assertion
SLOW = float(os.environ.get("FICUS_TEST_SLOWDOWN") or (3.0 if IS_SANITIZED else 1.0))


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): per-test timeout (pytest-timeout)")


def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("timeout"):
        return
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TEST_TIMEOUT * SLOW))


# ---------------------------------------------------------------------------------------------------------------
# ports

class PortCollision(RuntimeError):
    """A server we started could not have its port to itself (bind failed, or another process listens there too)."""

    def __init__(self, ports, why):
        super().__init__(f"port collision on {sorted(ports)}: {why}")
        self.ports = set(ports)


def start_until_ready(argv, what, timeout=10):
    """Starts a helper process (own session, stdout/stderr piped) and waits until it prints "ready" on stdout."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + timeout * SLOW
    buf = b""
    while b"ready" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            _kill_group(proc, signal.SIGKILL)
            proc.wait(5)
            err = proc.stderr.read()
            proc.stdout.close()
            proc.stderr.close()
            raise RuntimeError(f"{what} did not start: {buf!r} {err!r}")
        r, _, _ = select.select([proc.stdout], [], [], left)
        if r:
            buf += os.read(proc.stdout.fileno(), 4096)
    return proc


def port_accepts(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(pred, timeout, interval=0.05, what="condition"):
    """Poll pred() until it returns a truthy value (returned) or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - keep polling, report the last one
            last_exc = e
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.1f}s waiting for {what}" + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


def _kill_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------------------------------------------------------
# certificates


def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {r.stderr.decode(errors='replace')}")


class Certs:
    """A CA plus leaf certificates signed by it, in one directory."""

    def __init__(self, directory):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.ca = os.path.join(self.dir, "ca.crt")
        self.ca_key = os.path.join(self.dir, "ca.key")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", self.ca_key, "-out", self.ca,
                 "-days", "30", "-subj", "/CN=ficus test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 cwd=self.dir)
        self._serial = 1000

    def issue(self, name, sans, cn=None):
        """Create NAME.crt / NAME.key for the SAN list (e.g. ["DNS:localhost", "IP:127.0.0.1"]); returns (crt, key)."""
        crt = os.path.join(self.dir, f"{name}.crt")
        key = os.path.join(self.dir, f"{name}.key")
        csr = os.path.join(self.dir, f"{name}.csr")
        ext = os.path.join(self.dir, f"{name}.ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\nsubjectAltName=" + ",".join(sans) + "\n")
        self._serial += 1
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr,
                 "-subj", f"/CN={cn or sans[0].split(':', 1)[1]}", cwd=self.dir)
        _openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-set_serial", str(self._serial),
                 "-days", "30", "-sha256", "-extfile", ext, "-out", crt, cwd=self.dir)
        return crt, key

    def ssl_context(self, alpn=None):
        ctx = ssl.create_default_context(cafile=self.ca)
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    c = Certs(tmp_path_factory.mktemp("certs"))
    c.localhost = c.issue("localhost", ["DNS:localhost", "IP:127.0.0.1"])
    c.other = c.issue("other", ["DNS:other.test"])
    return c


# ---------------------------------------------------------------------------------------------------------------
# echo upstreams


class Echo:
    def __init__(self, name, port=None):
        self.name = name
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.port = port or free_port()
            try:
                self._start()
                return
            except PortCollision as e:
                if port is not None or attempt == PORT_ATTEMPTS:
                    raise RuntimeError(f"echo upstream {name}: {e}") from None

    def _start(self):
        name = self.name
        self.proc = subprocess.Popen(
            [sys.executable, ECHO_PY, "--port", str(self.port), "--name", name],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 10 * SLOW
        buf = b""
        while b"ready" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                err = self.proc.stderr.read() if self.proc.poll() is not None else b""
                self.stop()
                if b"Address already in use" in err:
                    raise PortCollision([self.port], "bind failed")
                raise RuntimeError(f"echo upstream {name} did not start: {buf!r} {err!r}")
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    continue
                buf += chunk
        if foreign_listeners([self.port], [self.proc.pid]):
            self.stop()
            raise PortCollision([self.port], "another process listens there too")

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            _kill_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                _kill_group(self.proc, signal.SIGKILL)
                self.proc.wait(5)
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()


@pytest.fixture(scope="session")
def echoes():
    """Three echo upstreams named a, b, c (session-wide), as a dict name -> Echo."""
    started = {}
    try:
        for n in ("a", "b", "c"):
            started[n] = Echo(n)
        yield started
    finally:
        for e in started.values():
            e.stop()


@pytest.fixture
def echo_factory():
    """Start extra echo upstreams for one test: echo_factory("name") -> Echo (stopped at teardown)."""
    started = []

    def make(name, port=None):
        e = Echo(name, port)
        started.append(e)
        return e

    yield make
    for e in started:
        e.stop()


# ---------------------------------------------------------------------------------------------------------------
# ficus


class ReloadResult:
    def __init__(self, ok, line):
        self.ok = ok
        self.line = line

    def __repr__(self):
        return f"ReloadResult(ok={self.ok}, line={self.line!r})"


_running = []  # Ficus instances alive right now (checked after every test)


class Ficus:
    """One ficus process. Placeholders available in config templates:
    $tls_port $plain_port $admin_port (and any other $..._port: free ports), $cert $key (localhost),
    $other_cert $other_key (other.test), $ca, $echo_a $echo_b $echo_c ("127.0.0.1:PORT"), $dead (a port nobody
    listens on, "127.0.0.1:PORT"), $tmp (this instance's directory), plus any extra keyword given."""

    def __init__(self, template, workdir, certs, echoes, env=None, cwd=None, wait=True, args=(), **extra):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.certs = certs
        self.values = {
            "cert": certs.localhost[0], "key": certs.localhost[1],
            "other_cert": certs.other[0], "other_key": certs.other[1], "ca": certs.ca,
            "dead": f"127.0.0.1:{free_port()}", "tmp": self.workdir,
        }
        for n, e in (echoes or {}).items():
            self.values[f"echo_{n}"] = e.addr
        self.values.update({k: str(v) for k, v in extra.items()})
        self._auto_ports = set()  # names of the $..._port values render() picked (may be picked again on a collision)
        self.config_path = os.path.join(self.workdir, "ficus.yaml")
        self.stdout_path = os.path.join(self.workdir, "stdout.log")
        self.stderr_path = os.path.join(self.workdir, "stderr.log")
        self.template = template
        self.write_config(template)
        self.env = dict(os.environ)
        if env:
            self.env.update(env)
        self.cwd = cwd or self.workdir
        self.args = list(args)  # extra command-line arguments (e.g. ["-S", socket])
        self.proc = None
        self.returncode = None
        self.stopped = False
        self.checked = False
        self.start(wait=wait)

    # -- config -----------------------------------------------------------------------------------------------
    def render(self, template):
        names = set()
        for m in string.Template.pattern.finditer(template):
            n = m.group("named") or m.group("braced")
            if n:
                names.add(n)
        for n in names:
            if n.endswith("_port") and n not in self.values:
                self.values[n] = str(free_port())
                self._auto_ports.add(n)
        return string.Template(template).substitute(self.values)

    def write_config(self, template):
        text = self.render(template)
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)
        self.config_text = text
        return text

    def port(self, name):
        return int(self.values[f"{name}_port"])

    @property
    def tls_port(self):
        return self.port("tls")

    @property
    def admin_port(self):
        return self.port("admin")

    @property
    def has_admin(self):
        return "admin_port" in self.values and re.search(r"^\s*admin\s*:", self.config_text, re.M) is not None

    # -- process ----------------------------------------------------------------------------------------------
    def start(self, wait=True):
        """Start ficus (wait: until its listeners accept and /healthz answers). On its first start, if a port of
        its own is taken by another process (ficus cannot bind it, or another process listens there too), the ports
        render() picked are picked again and ficus started again (ports.py); a port the test chose is reported."""
        first = not hasattr(self, "_started_once")
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self._spawn()
            if not wait:
                self._started_once = True  # the caller waits (wait_ready) and may know the ports already
                return
            try:
                self._wait_ready()
                self._started_once = True
                return
            except PortCollision as e:
                names = {n for n in self._auto_ports if int(self.values[n]) in e.ports}
                ours = {int(self.values[n]) for n in names}
                self._abandon()
                if not first or attempt == PORT_ATTEMPTS or not e.ports <= ours:
                    pytest.fail(f"ficus: {e} (attempt {attempt})\n--- stderr ---\n{self.stderr_tail()}")
                for n in names:
                    self.values[n] = str(free_port())
                self.write_config(self.template)

    def _spawn(self):
        self._out = open(self.stdout_path, "ab")
        self._err = open(self.stderr_path, "ab")
        self._err_offset = self._err.tell()
        self.proc = subprocess.Popen([FICUS_BIN, "-c", self.config_path, *self.args], stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, cwd=self.cwd, env=self.env, start_new_session=True)
        _running.append(self)

    def _abandon(self):
        """Stop a start that collided on a port (its exit code is not the test's business)."""
        if self.proc.poll() is None:
            _kill_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(15 * SLOW)
            except subprocess.TimeoutExpired:
                _kill_group(self.proc, signal.SIGKILL)
                self.proc.wait(10)
        self._out.close()
        self._err.close()
        if self in _running:
            _running.remove(self)

    def listen_ports(self):
        return [int(p) for p in re.findall(r'address:\s*"?127\.0\.0\.1:(\d+)"?', self.config_text)]

    def wait_ready(self, timeout=None):
        try:
            self._wait_ready(timeout)
        except PortCollision as e:
            pytest.fail(f"ficus: {e}\n--- stderr ---\n{self.stderr_tail()}")

    def _wait_ready(self, timeout=None):
        timeout = timeout or 15 * SLOW
        deadline = time.monotonic() + timeout
        ports = self.listen_ports()
        pending = set(ports)
        while True:
            if self.proc.poll() is not None:
                with open(self.stderr_path, "rb") as f:
                    f.seek(self._err_offset)
                    new = f.read().decode("utf-8", "replace")
                taken = [int(p) for p in re.findall(r"cannot listen on .*?:(\d+)\b.*(?:in use|holds the address|bound by another process)", new)]
                if taken:
                    raise PortCollision(taken, "ficus could not bind it")
                pytest.fail(f"ficus exited with {self.proc.returncode} during startup\n--- stderr ---\n{self.stderr_tail()}")
            for p in list(pending):
                if port_accepts(p):
                    pending.discard(p)
            if not pending and (not self.has_admin or self._healthz_ok()):
                shared = foreign_listeners(ports, [self.proc.pid])
                if shared:
                    raise PortCollision(shared, "another process listens there too")
                return
            if time.monotonic() > deadline:
                pytest.fail(f"ficus not ready after {timeout:.0f}s (ports not accepting: {sorted(pending)})\n"
                            f"--- stderr ---\n{self.stderr_tail()}")
            time.sleep(0.05)

    def _healthz_ok(self):
        try:
            status, _, _ = self.admin_get("/healthz", timeout=1)
            return status == 200
        except OSError:
            return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=None, sig=signal.SIGTERM):
        """SIGTERM (or sig), wait, SIGKILL after timeout. Returns the exit code (negative = killed by signal)."""
        if self.stopped:
            return self.returncode
        timeout = timeout or 15 * SLOW
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed_after_timeout = True
                _kill_group(self.proc, signal.SIGKILL)
                self.proc.wait(10)
        _kill_group(self.proc, signal.SIGKILL)  # any leftover children of the group
        self.returncode = self.proc.returncode
        self.stopped = True
        self._out.close()
        self._err.close()
        if self in _running:
            _running.remove(self)
        return self.returncode

    def check(self, expect_exit=0):
        """Stop (if running) and fail on a sanitizer report, a crash, a hang or an unexpected exit code."""
        if self.checked:
            return
        self.checked = True
        rc = self.stop()
        err = self.stderr()
        problems = []
        if SANITIZER_RE.search(err):
            problems.append("sanitizer report in stderr")
        if getattr(self, "killed_after_timeout", False):
            problems.append("did not exit after SIGTERM (killed)")
        if expect_exit is not None and rc != expect_exit:
            problems.append(f"exit code {rc} (expected {expect_exit})")
        if problems:
            pytest.fail(f"ficus (pid {self.proc.pid}): {'; '.join(problems)}\n--- stderr tail ---\n{self.stderr_tail(80)}",
                        pytrace=False)

    def crash_report(self):
        """A message if ficus died or printed a sanitizer report while it should be running, else None."""
        err = self.stderr()
        if SANITIZER_RE.search(err):
            return "sanitizer report in stderr"
        if not self.stopped and self.proc.poll() is not None:
            return f"ficus died unexpectedly with exit code {self.proc.returncode}"
        return None

    # -- logs -------------------------------------------------------------------------------------------------
    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr_tail(self, n=40):
        return "\n".join(self.stderr().splitlines()[-n:])

    def access_log(self):
        """Parsed JSON lines of stdout (a line that is not JSON raises)."""
        out = []
        for line in self.stdout().splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def wait_access_log(self, pred, timeout=5, what="access log entry"):
        """Wait until pred(entries) is truthy; returns its value."""
        return wait_for(lambda: pred(self.access_log()), timeout * SLOW, what=what)

    # -- reload -----------------------------------------------------------------------------------------------
    def reload(self, template=None, timeout=None):
        """Rewrite the config (when template is given), SIGHUP, wait for "reload:"/"reload failed" in stderr."""
        timeout = timeout or 10 * SLOW
        offset = len(self.stderr().encode())
        if template is not None:
            self.write_config(template)
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while True:
            with open(self.stderr_path, "rb") as f:
                f.seek(offset)
                new = f.read().decode("utf-8", "replace")
            for line in new.splitlines():
                if "reload failed" in line:
                    return ReloadResult(False, line)
                if re.search(r"\breload: ", line):
                    return ReloadResult(True, line)
            if self.proc.poll() is not None:
                pytest.fail(f"ficus exited ({self.proc.returncode}) during reload\n{self.stderr_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no reload log line within {timeout:.0f}s; new stderr:\n{new[-3000:]}")
            time.sleep(0.02)

    # -- clients ----------------------------------------------------------------------------------------------
    def url(self, path="/", host="localhost", port=None):
        return f"https://{host}:{port or self.tls_port}{path}"

    def client(self, http2=False, timeout=10, **kw):
        import httpx
        return httpx.Client(http2=http2, verify=self.certs.ca,
                            base_url=f"https://localhost:{self.tls_port}", timeout=timeout * SLOW, **kw)

    def admin_get(self, path, timeout=5):
        """GET on the admin listener: (status, headers dict lower-case, body str)."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}")
        try:
            with urllib.request.urlopen(req, timeout=timeout * SLOW) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()

    def metrics(self):
        status, _, body = self.admin_get("/metrics")
        assert status == 200, f"/metrics answered {status}"
        return Metrics(body)

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")


class Metrics:
    """Prometheus text exposition, parsed: m.get(name, **labels) -> float or None; m.sum(name, **labels)."""

    LINE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
    LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

    def __init__(self, text):
        self.text = text
        self.samples = []
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = self.LINE_RE.match(line.strip())
            if not m:
                continue
            labels = dict(self.LABEL_RE.findall(m.group(2) or ""))
            try:
                value = float(m.group(3))
            except ValueError:
                continue
            self.samples.append((m.group(1), labels, value))

    def names(self):
        return {s[0] for s in self.samples}

    def find(self, name, **labels):
        return [s for s in self.samples if s[0] == name and all(s[1].get(k) == v for k, v in labels.items())]

    def get(self, name, **labels):
        found = self.find(name, **labels)
        if not found:
            return None
        assert len(found) == 1, f"several samples for {name} {labels}: {found}"
        return found[0][2]

    def sum(self, name, **labels):
        return sum(s[2] for s in self.find(name, **labels))


@pytest.fixture
def ficus_factory(tmp_path, certs, echoes):
    """ficus_factory(template, **kw) -> running Ficus; stopped and checked (sanitizer, exit code) at teardown."""
    started = []
    counter = [0]

    def make(template, **kw):
        counter[0] += 1
        f = Ficus(template, tmp_path / f"ficus{counter[0]}", certs, echoes, **kw)
        started.append(f)
        return f

    yield make
    errors = []
    for f in started:
        try:
            f.check(expect_exit=getattr(f, "expect_exit", 0))
        except pytest.fail.Exception as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


def module_ficus(request, tmp_path_factory, certs, echoes, template, **kw):
    """Helper for module-scoped fixtures: start one ficus for a whole test module."""
    f = Ficus(template, tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]), certs, echoes, **kw)
    request.addfinalizer(lambda: f.check())
    return f


@pytest.fixture(autouse=True)
def _no_crash_during_test():
    """After every test: any ficus that should be running must still be alive and sanitizer-clean."""
    yield
    for f in list(_running):
        msg = f.crash_report()
        if msg:
            f.checked = True  # report once
            f.stop()
            pytest.fail(f"{msg}\n--- stderr tail ---\n{f.stderr_tail(80)}", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _ficus_binary():
    if not os.path.isfile(FICUS_BIN) or not os.access(FICUS_BIN, os.X_OK):
        pytest.fail(f"ficus binary not found at {FICUS_BIN} (set FICUS_BIN)", pytrace=False)


# ---------------------------------------------------------------------------------------------------------------
# small client helpers shared by the test modules


@contextlib.contextmanager
def tls_connect(port, ctx, server_hostname="localhost", timeout=10):
    """A TLS connection to 127.0.0.1:port made with the ssl.SSLContext ctx (server_hostname None: no SNI); yields the
    SSL socket (handshake done), closed on exit."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as s:
            yield s


def h1_raw(port, request, server_hostname="localhost", ca=None, timeout=10):
    """Send raw HTTP/1.1 bytes over TLS and read one response: (status, headers [(lower, value)], body bytes)."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["http/1.1"])
    with tls_connect(port, ctx, server_hostname=server_hostname, timeout=timeout) as s:
        s.sendall(request)
        return read_h1_response(s)


def read_h1_response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"EOF before response headers: {buf!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = []
    for l in lines[1:]:
        k, v = l.split(":", 1)
        headers.append((k.strip().lower(), v.strip()))
    hd = dict(headers)
    body = rest
    if "content-length" in hd:
        n = int(hd["content-length"])
        while len(body) < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    elif "chunked" in hd.get("transfer-encoding", ""):
        while not body.endswith(b"0\r\n\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        out, data = b"", body
        while data:
            line, data = data.split(b"\r\n", 1)
            n = int(line.split(b";")[0], 16)
            if n == 0:
                break
            out += data[:n]
            data = data[n + 2:]
        body = out
    return status, headers, body


def h2_request(port, ca, path, method="GET", headers=(), body=None, timeout=10, authority=None):
    """One HTTP/2 request on its own TLS connection with python-h2: (status, headers [(name, value)], body bytes).

    Unlike httpx 0.23 (which fails every open stream on any GOAWAY), a graceful GOAWAY whose last_stream_id covers
    our stream is honoured: the response is still read, as RFC 9113 section 6.8 requires of clients."""
    import h2.config
    import h2.connection
    import h2.events

    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["h2"])
    deadline = time.monotonic() + timeout * SLOW
    with tls_connect(port, ctx, timeout=timeout) as s:
        assert s.selected_alpn_protocol() == "h2"
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "https"), (":authority", authority or f"localhost:{port}"),
                (":path", path), *headers]
        conn.send_headers(sid, hdrs, end_stream=body is None)
        if body is not None:
            conn.send_data(sid, body, end_stream=True)  # small bodies only (initial window)
        s.sendall(conn.data_to_send())
        status, rhdrs, data = None, [], b""
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"h2 {path}: no complete response within {timeout * SLOW}s")
            s.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError(f"h2 {path}: EOF before the end of the response (status {status})")
            for ev in conn.receive_data(chunk):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    rhdrs = list(ev.headers)
                    status = int(dict(rhdrs)[":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    if ev.stream_id == sid:
                        data += ev.data
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    return status, rhdrs, data
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    raise ConnectionError(f"h2 {path}: stream reset by the server, error {ev.error_code!r}")
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    if ev.last_stream_id is None or ev.last_stream_id < sid or ev.error_code != 0:
                        raise ConnectionError(f"h2 {path}: GOAWAY {ev}")
                    # python-h2 4.x moves the connection to CLOSED on any GOAWAY and then rejects the frames
                    # of streams the GOAWAY let through; undo that (streams <= last_stream_id still complete)
                    conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
            out = conn.data_to_send()
            if out:
                s.sendall(out)
