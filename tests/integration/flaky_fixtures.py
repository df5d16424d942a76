"""Controllable upstream processes for the upstream-resilience tests (tests/upstreams/flaky.py): each is a real
process on a free loopback port that can be told to answer a status (with Retry-After), reset connections, hang, or
delay, and can be killed or stalled with SIGSTOP. Its control port gives the log of what reached it (timestamps,
methods, paths, Idempotency-Key, connection numbers) and how many connections it accepted.

Use the fixture with `from flaky_fixtures import flaky` (pytest collects it from there): flaky("name") -> Flaky,
all stopped at teardown.
"""
import json
import os
import signal
import sys
import urllib.request

import pytest

from conftest import SLOW, SOURCE_DIR, free_port, start_until_ready

FLAKY_PY = os.path.join(SOURCE_DIR, "tests", "upstreams", "flaky.py")


class Flaky:
    def __init__(self, name, port=None):
        self.name = name
        self.port = port or free_port()
        self.control_port = free_port()
        self.start()

    def start(self):
        self.proc = start_until_ready([sys.executable, FLAKY_PY, "--port", str(self.port), "--control-port",
                                       str(self.control_port), "--name", self.name], f"flaky upstream {self.name}")

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def _ctl(self, path, data=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.control_port}{path}",
                                     data=None if data is None else json.dumps(data).encode(),
                                     method="GET" if data is None else "POST")
        with urllib.request.urlopen(req, timeout=10 * SLOW) as r:
            return json.loads(r.read())

    def mode(self, **kw):
        """ok | status (status=, retry_after=) | reset | hang; delay_ms=; health= / health_status= for /healthz"""
        self._ctl("/mode", kw)

    def log(self):
        return self._ctl("/log")

    def requests(self, path=None, health=False):
        rs = self.log()["requests"]
        rs = [r for r in rs if (r["path"] == "/healthz") == health]
        return [r for r in rs if path is None or r["path"] == path]

    def clear(self):
        self._ctl("/clear", {})

    def signal(self, sig):
        os.killpg(self.proc.pid, sig)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGCONT)
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()


@pytest.fixture
def flaky():
    started = []

    def make(name, port=None):
        f = Flaky(name, port)
        started.append(f)
        return f

    yield make
    for f in started:
        f.stop()
