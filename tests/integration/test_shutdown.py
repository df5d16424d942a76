"""Graceful shutdown: SIGTERM/SIGINT drain in-flight requests, refuse new connections, exit 0; drain_timeout bound."""
import json
import signal
import socket
import threading
import time

import pytest

from conftest import SLOW, h2_request, wait_for

CONFIG = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
  drain_timeout: $drain
upstreams:
  a: { endpoints: ["http://$echo_a"], timeout: 30s }
routes:
  - name: api
    match: { path_prefix: /api }
    to: a
"""


def start_slow_request(f, ms, http2=False):
    result = {}

    def run():
        t0 = time.monotonic()
        try:
            if http2:  # python-h2: httpx 0.23 fails open streams on a graceful GOAWAY
                result["status"], _, result["body"] = h2_request(f.tls_port, f.certs.ca, f"/api/_sleep/{ms}", timeout=30)
            else:
                with f.client(timeout=30) as c:
                    r = c.get(f"/api/_sleep/{ms}")
                    result["status"] = r.status_code
                    result["body"] = r.content
        except Exception as e:  # noqa: BLE001
            result["exc"] = e
        result["took"] = time.monotonic() - t0

    t = threading.Thread(target=run, daemon=True)
    t.start()
    # the request is in flight once ficus counts it
    wait_for(lambda: (f.metrics().get("ficus_inflight_requests") or 0) >= 1, 5 * SLOW, what="request in flight")
    return t, result


def refused(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


@pytest.mark.parametrize("sig,http2", [(signal.SIGTERM, False), (signal.SIGTERM, True), (signal.SIGINT, False)],
                         ids=["SIGTERM-h1", "SIGTERM-h2", "SIGINT-h1"])
def test_drain_completes_inflight_request(ficus_factory, sig, http2):
    f = ficus_factory(CONFIG, drain="10s")
    t, result = start_slow_request(f, 1500, http2=http2)
    t_sig = time.monotonic()
    f.send_signal(sig)
    # new connections are refused soon after the signal, while the request is still running
    wait_for(lambda: refused(f.tls_port), 1.0 * SLOW, interval=0.02, what="TLS port refusing connections")
    t.join(20 * SLOW)
    assert not t.is_alive()
    assert "exc" not in result, f"in-flight request failed: {result.get('exc')!r}"
    assert result["status"] == 200
    assert json.loads(result["body"])["path"] == "/api/_sleep/1500"
    rc = f.proc.wait(10 * SLOW)
    exited_after = time.monotonic() - t_sig
    assert rc == 0, f"exit code {rc}\n{f.stderr_tail()}"
    assert exited_after < 1.5 + 3 * SLOW, f"exited {exited_after:.1f}s after the signal"


def test_readyz_draining(ficus_factory):
    f = ficus_factory(CONFIG, drain="10s")
    t, result = start_slow_request(f, 1500)
    f.send_signal(signal.SIGTERM)

    def draining():
        status, _, body = f.admin_get("/readyz", timeout=1)
        return status == 503 and json.loads(body)["status"] == "draining"

    wait_for(draining, 1.0 * SLOW, interval=0.02, what="/readyz 503 draining")
    t.join(20 * SLOW)
    assert result.get("status") == 200, result
    assert f.proc.wait(10 * SLOW) == 0


def test_idle_exits_promptly(ficus_factory):
    f = ficus_factory(CONFIG, drain="10s")
    with f.client(http2=True) as c:  # an idle keep-alive connection must not hold the drain up
        assert c.get("/api/x").status_code == 200
        t0 = time.monotonic()
        f.send_signal(signal.SIGTERM)
        rc = f.proc.wait(10 * SLOW)
        took = time.monotonic() - t0
    assert rc == 0
    assert took < 2 * SLOW, f"idle ficus took {took:.1f}s to exit"


def test_drain_timeout_cuts_request(ficus_factory):
    f = ficus_factory(CONFIG, drain="1s")
    t, result = start_slow_request(f, 6000)
    t0 = time.monotonic()
    f.send_signal(signal.SIGTERM)
    rc = f.proc.wait(10 * SLOW)
    took = time.monotonic() - t0
    t.join(10 * SLOW)
    assert rc == 0, f"exit code {rc}\n{f.stderr_tail()}"
    assert 0.8 <= took < 1.0 + 2 * SLOW, f"exited {took:.2f}s after SIGTERM with drain_timeout 1s"
    assert "exc" in result or result.get("status") != 200, f"request was not cut: {result}"
    assert result["took"] < 5.5, result
