"""Log rotation: SIGUSR1 reopens the access log file (NGINX's convention) without losing a line; SIGUSR2 and a
SIGUSR1 with no log file never terminate ficus."""
import json
import os
import signal
import threading
import time

from conftest import SLOW, wait_for

CONFIG = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: "$tmp/access.log"
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


def wait_stderr(f, text, offset):
    return wait_for(lambda: text in f.stderr()[offset:], 10 * SLOW, what=f"{text!r} in stderr")


def count_lines(path):
    with open(path) as fp:
        lines = [l for l in fp.read().splitlines() if l.strip()]
    for l in lines:
        json.loads(l)  # every line whole
    return len(lines)


def test_rotate_under_load_loses_no_line(ficus_factory):
    f = ficus_factory(CONFIG)
    log = os.path.join(f.workdir, "access.log")
    answered = [0] * 3
    errors = []
    stop = threading.Event()

    def load(i, http2, path):
        try:
            with f.client(http2=http2) as c:
                while not stop.is_set():
                    r = c.get(path)
                    assert r.status_code == 200, r.status_code
                    answered[i] += 1
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=load, args=(0, False, "/ping")),
               threading.Thread(target=load, args=(1, True, "/api/x")),
               threading.Thread(target=load, args=(2, False, "/api/y"))]
    for t in threads:
        t.start()
    try:
        rotated = []
        for n in (1, 2, 3):
            before = sum(answered)
            wait_for(lambda: sum(answered) >= before + 50, 30 * SLOW, what="requests flowing")
            # lines reach the file within 200 ms (the workers' flush timer)
            wait_for(lambda: os.path.getsize(log) > 0, 10 * SLOW, what="lines in the current file")
            os.rename(log, f"{log}.{n}")
            rotated.append(f"{log}.{n}")
            offset = len(f.stderr())
            f.send_signal(signal.SIGUSR1)
            wait_stderr(f, "reopen: access log", offset)
            assert os.path.exists(log)
    finally:
        stop.set()
        for t in threads:
            t.join(30 * SLOW)
    assert not errors, errors
    more = sum(answered)
    wait_for(lambda: sum(answered) == more, 5, what="load stopped")
    assert f.stop() == 0  # SIGTERM: the workers flush their buffers before exiting
    counts = [count_lines(p) for p in rotated + [log]]
    assert sum(counts) == sum(answered), (counts, answered)
    # every file of the rotation got lines: the old one up to the signal, the new one after
    assert all(c > 0 for c in counts), counts


def test_usr1_usr2_never_terminate(ficus_factory):
    f = ficus_factory(CONFIG.replace('"$tmp/access.log"', "stdout"))
    offset = len(f.stderr())
    f.send_signal(signal.SIGUSR2)
    wait_stderr(f, "SIGUSR2 ignored", offset)
    f.send_signal(signal.SIGUSR1)  # no file to reopen: nothing happens
    time.sleep(0.2)
    with f.client() as c:
        assert c.get("/ping").status_code == 200
    assert f.alive()


def test_reopen_failure_keeps_logging_to_the_old_file(ficus_factory, tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    f = ficus_factory(CONFIG.replace("$tmp/access.log", str(d / "access.log")))
    with f.client() as c:
        assert c.get("/ping").status_code == 200
    os.rename(d / "access.log", tmp_path / "moved.log")
    os.mkdir(d / "access.log")  # the path cannot be opened as a file (even by root)
    offset = len(f.stderr())
    f.send_signal(signal.SIGUSR1)
    wait_stderr(f, "cannot reopen access log", offset)
    with f.client() as c:
        assert c.get("/ping").status_code == 200
    assert f.stop() == 0
    assert count_lines(tmp_path / "moved.log") == 2
