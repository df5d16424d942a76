"""Helpers of the traffic-control tests (test_split.py, test_mirror.py, test_fallback.py, test_migration_drill.py):
the shadow upstream (tests/upstreams/shadow.py) as a process, and metric deltas."""
import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import SLOW, SOURCE_DIR, _kill_group, free_port, wait_for

SHADOW_PY = os.path.join(SOURCE_DIR, "tests", "upstreams", "shadow.py")


class Shadow:
    """tests/upstreams/shadow.py on a free port: records what it receives (seen()), answers per its options."""

    def __init__(self, name="shadow", delay_ms=0, status=200, fill="x", port=None):
        self.name = name
        self.port = port or free_port()
        self.proc = subprocess.Popen(
            [sys.executable, SHADOW_PY, "--port", str(self.port), "--name", name, "--delay-ms", str(delay_ms),
             "--status", str(status), "--fill", fill],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 10 * SLOW
        buf = b""
        while b"ready" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"shadow {name} did not start: {buf!r}")
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                buf += os.read(self.proc.stdout.fileno(), 4096)

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def seen(self):
        with urllib.request.urlopen(f"http://{self.addr}/_shadow/seen", timeout=10 * SLOW) as r:
            return json.loads(r.read())

    def reset(self):
        req = urllib.request.Request(f"http://{self.addr}/_shadow/reset", method="POST", data=b"")
        urllib.request.urlopen(req, timeout=10 * SLOW).read()

    def kill(self):
        _kill_group(self.proc, signal.SIGKILL)
        self.proc.wait(5)

    def stop(self):
        if self.proc.poll() is None:
            _kill_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()


@pytest.fixture
def shadow_factory():
    started = []

    def make(**kw):
        s = Shadow(**kw)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


def wait_total(fx, name, expected, timeout=10, **labels):
    """Waits until the sum of a metric reaches `expected` (bounded); returns the last value (the caller asserts)."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = fx.metrics().sum(name, **labels)
        if v >= expected or time.monotonic() > deadline:
            return v
        time.sleep(0.05)
