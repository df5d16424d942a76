"""A real redis-server for the rate-limit tests: started on a free loopback port, no persistence (`--save ''`,
`--appendonly no`), DEBUG allowed from loopback. Helpers to SIGKILL it, restart it on the same port, stall it
(`DEBUG SLEEP`, `CLIENT PAUSE`, `wait_stalled()`), empty its script cache (`SCRIPT FLUSH`) and read `INFO commandstats`.

Import the fixture into a test module with `from redis_fixtures import redis_server, redis_factory` (pytest collects it
from there). Each test gets its own server (empty data set), stopped at teardown.
"""
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest
import redis as redis_py

from conftest import SLOW, PortCollision, free_port, port_accepts
from ports import ATTEMPTS as PORT_ATTEMPTS, foreign_listeners

REDIS_SERVER = os.environ.get("FICUS_REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """One redis-server process on 127.0.0.1:port. `client()` is a redis-py client (decode_responses)."""

    def __init__(self, workdir, port=None, extra_args=()):
        self.workdir = str(workdir)
        self.extra_args = list(extra_args)
        os.makedirs(self.workdir, exist_ok=True)
        self.proc = None
        self.starts = 0
        self._clients = []
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.port = port or free_port()
            self.log_path = os.path.join(self.workdir, f"redis-{self.port}.log")
            try:
                self.start()
                return
            except PortCollision:
                if port is not None or attempt == PORT_ATTEMPTS:
                    raise
                self.starts = 0

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=10):
        """Start (or restart, after kill/stop) on the same port; waits until PING answers."""
        assert self.proc is None or self.proc.poll() is not None, "redis-server already running"
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.workdir, "--protected-mode", "yes", "--enable-debug-command", "local",
                "--logfile", self.log_path, "--daemonize", "no", "--databases", "4"] + self.extra_args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.starts += 1
        deadline = time.monotonic() + timeout * SLOW
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")
                if "Address already in use" in err + self.log_tail():
                    raise PortCollision([self.port], f"redis-server could not bind it: {err}{self.log_tail()}")
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {err}\n{self.log_tail()}")
            if port_accepts(self.port):
                try:
                    if self.client().ping():
                        if foreign_listeners([self.port], [self.proc.pid]):
                            self.stop()
                            raise PortCollision([self.port], "another process listens there too")
                        return
                except redis_py.RedisError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {self.port} not ready after {timeout}s\n{self.log_tail()}")
            time.sleep(0.02)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL (no shutdown: sockets reset by the kernel), wait until it is gone and the port is free."""
        if not self.alive():
            return
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._close_clients()

    def restart(self, timeout=10):
        """Start again on the same port (after kill); waits until PING answers."""
        self.kill()
        deadline = time.monotonic() + timeout * SLOW
        while True:
            try:
                self.start(timeout=timeout)
                return
            except RuntimeError:  # port still in TIME_WAIT/bound for an instant: retry until the deadline
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self):
        if self.proc is None:
            return
        self._close_clients()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()

    def _close_clients(self):
        for c in self._clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
        self._clients = []

    def client(self, timeout=5):
        c = redis_py.Redis(host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=timeout * SLOW,
                           socket_connect_timeout=timeout * SLOW)
        self._clients.append(c)
        return c

    def cli(self, *args):
        """redis-cli-like: one command on a short-lived connection, decoded answer."""
        c = self.client()
        try:
            return c.execute_command(*args)
        finally:
            c.close()
            self._clients.remove(c)

    # -- stalls -------------------------------------------------------------------------------------------------
    def debug_sleep(self, seconds):
        """`DEBUG SLEEP seconds` from a background thread (the server's event loop is blocked for that long).
        Returns the thread; join() it to wait for the end of the stall."""
        started = threading.Event()

        def run():
            c = redis_py.Redis(host="127.0.0.1", port=self.port, socket_timeout=seconds + 10)
            try:
                c.ping()
                started.set()
                c.execute_command("DEBUG", "SLEEP", str(seconds))
            finally:
                c.close()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        assert started.wait(5), "could not connect to redis to send DEBUG SLEEP"
        time.sleep(0.02)  # let the command reach the server
        return t

    def client_pause(self, ms, mode="ALL"):
        """`CLIENT PAUSE ms ALL`: every client's commands wait for ms (the server stays up and accepts connections)."""
        return self.cli("CLIENT", "PAUSE", str(int(ms)), mode)

    def wait_stalled(self, probe=None, timeout=None):
        """After starting a stall: wait until a PING on a new connection gets no answer within `probe` seconds
        (0.5 x SLOW) and return the monotonic time of that observation: the stall had begun by then."""
        probe = probe or 0.5 * SLOW
        deadline = time.monotonic() + (timeout or 10 * SLOW)
        while True:
            c = redis_py.Redis(host="127.0.0.1", port=self.port, socket_timeout=probe, socket_connect_timeout=5 * SLOW)
            try:
                c.ping()
            except redis_py.TimeoutError:
                return time.monotonic()
            finally:
                c.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {self.port} still answers PING: no stall")
            time.sleep(0.01)

    def script_flush(self):
        return self.cli("SCRIPT", "FLUSH")

    def commandstats(self):
        """INFO commandstats as {command: {"calls": n, "failed_calls": n, "rejected_calls": n, ...}} (lower-case)."""
        raw = self.client().info("commandstats")
        out = {}
        for k, v in raw.items():
            name = k[len("cmdstat_"):] if k.startswith("cmdstat_") else k
            out[name.lower()] = v if isinstance(v, dict) else {}
        return out

    def calls(self, command):
        return int(self.commandstats().get(command.lower(), {}).get("calls", 0))

    def log_tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


@pytest.fixture
def redis_factory(tmp_path):
    """redis_factory() -> a started RedisServer (stopped at teardown)."""
    started = []

    def make(port=None):
        r = RedisServer(tmp_path / f"redis{len(started) + 1}", port=port)
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()


@pytest.fixture
def redis_server(redis_factory):
    """One fresh redis-server for the test."""
    return redis_factory()
