"""The demo (scripts/demo.sh = `make run`, the README's first command) and what it prints: issue 9 item 7.

The script is run as a newcomer runs it, from the repository root with conf/ficus.yaml, but with the binary under test
(FICUS_BIN: no package check, no build), its working files in this test's tmp dir and free ports instead of 8443,
8080, 9901, 9000, 9100 and 6379 (DEMO_*_PORT: it then runs a copy of the config that names them), so that nothing a
developer runs is disturbed. Every command of its "Try" list is then run with bash, exactly as printed, in the
printed order, and checked against what its comment promises; a printed command this test does not know fails it
(so the printout and this test change together). Then the printed reload command, the Redis line, and Ctrl-C (the
script stops everything it started).
"""
import json
import os
import re
import signal
import subprocess
import threading
import time

import httpx
import pytest

import split_ref
from conftest import FICUS_BIN, SANITIZER_RE, SLOW, SOURCE_DIR, free_port, port_accepts, wait_for

DEMO = os.path.join(SOURCE_DIR, "scripts", "demo.sh")
CA = os.path.join(SOURCE_DIR, "certs-dev", "dev-ca.crt")
LOG_LINE_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\S+ \[|\{\")")  # ficus's error log and access log on the same terminal
ANSI_RE = re.compile(r"\033\[[0-9;]*m")


class Demo:
    """scripts/demo.sh running in the background; its terminal output is collected by a thread."""

    def __init__(self, tmp_path):
        self.ports = {name: free_port() for name in ("TLS", "HTTP", "ADMIN", "MONOLITH", "ORDERS", "REDIS")}
        env = dict(os.environ, FICUS_BIN=FICUS_BIN, DEMO_RUN_DIR=str(tmp_path / "demo"),
                   **{f"DEMO_{k}_PORT": str(v) for k, v in self.ports.items()})
        self.out_path = tmp_path / "demo-output.log"
        # as from a terminal: SIGINT (Ctrl-C) at its default even when this test runs in the background (a
        # non-interactive shell's `cmd &` ignores it, and bash cannot trap a signal ignored at its start)
        self.proc = subprocess.Popen(["bash", DEMO], cwd=SOURCE_DIR, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self._chunks = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        with open(self.out_path, "wb") as log:
            for line in iter(self.proc.stdout.readline, b""):
                log.write(line)
                log.flush()
                with self._lock:
                    self._chunks.append(line.decode("utf-8", "replace"))

    def output(self):
        with self._lock:
            return ANSI_RE.sub("", "".join(self._chunks))

    def wait_output(self, pattern, timeout, what):
        def seen():
            if self.proc.poll() is not None:
                self._reader.join(10)
                pytest.fail(f"demo.sh exited ({self.proc.returncode}) before {what}:\n{self.output()[-4000:]}")
            return re.search(pattern, self.output(), re.M)

        return wait_for(seen, timeout, what=what)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def demo(tmp_path):
    d = Demo(tmp_path)
    yield d
    d.stop()


def parse_try(text):
    """The printed commands with their comments: [(command, comment)], in order. The list runs from "Try, from
    another terminal" to the blank line before "Reload:"; log lines of ficus that land in between are left out."""
    lines = text.split("Try, from another terminal in", 1)[1].split("\n")[1:]
    cmds = []
    for line in lines:
        if LOG_LINE_RE.match(line):
            continue
        if line.strip().startswith("Reload:"):
            break
        m = re.match(r"^  (\S.*?)(?:\s{2,}# (.*))?$", line)
        c = re.match(r"^\s+# (.*)$", line)
        if c and cmds:
            cmds[-1][1] = (cmds[-1][1] + " " + c.group(1)).strip()
        elif m:
            cmds.append([m.group(1), m.group(2) or ""])
    return cmds


def bash(cmd, env):
    """Run one printed command as a user would paste it: bash, from the repository root."""
    t0 = time.monotonic()
    r = subprocess.run(["bash", "-c", cmd], cwd=SOURCE_DIR, env=env, capture_output=True, text=True, timeout=60 * SLOW)
    return r, time.monotonic() - t0


def http_response(out):
    """curl -i output: (status, {lower-case name: value}, body)."""
    head, _, body = out.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, body


def test_demo_prints_commands_that_work(demo):
    p = demo.ports
    # the whole start-up (ficus -t, redis, upstreams, ficus and its /healthz) ends with the list of commands
    demo.wait_output(r"^  Ctrl-C stops ficus", 60 * SLOW, "the demo's list of commands")
    text = demo.output()
    assert "not yet" not in text and "roadmap" not in text and "not used by" not in text, text
    cmds = parse_try(text)
    base = f"https://localhost:{p['TLS']}"
    client = httpx.Client(verify=CA, timeout=10 * SLOW)
    env = dict(os.environ)
    checked = []

    def get(path, token=None):
        return client.get(base + path, headers={"Authorization": f"Bearer {token}"} if token else {})

    for cmd, comment in cmds:
        where = f"\n$ {cmd}    # {comment}"
        if cmd.startswith("TOKEN=$("):
            r, _ = bash(cmd + '; printf %s "$TOKEN"', env)
            assert r.returncode == 0 and re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", r.stdout), r.stderr + where
            env["TOKEN"] = r.stdout
            checked.append("token")
            continue
        r, took = bash(cmd, env)
        assert r.returncode == 0, f"exit {r.returncode}: {r.stderr[-2000:]}" + where
        out = r.stdout
        if re.fullmatch(rf"curl --cacert \S+ {base}/", cmd):
            echo = json.loads(out)
            assert echo["upstream"] == "monolith" and echo["path"] == "/", out + where
            checked.append("monolith")
        elif re.fullmatch(rf"curl --cacert \S+ {base}/ping", cmd):
            assert out == "pong\n", out + where
            checked.append("ping")
        elif "-i -H \"Authorization: Bearer $TOKEN\"" in cmd and "/api/orders?id=7'" in cmd:
            status, h, body = http_response(out)
            assert status == 200, out + where
            for name in ("x-route", "x-request-id", "ratelimit-limit", "ratelimit-remaining", "strict-transport-security"):
                assert name in h, f"{name} missing" + out + where
            assert h["x-route"] == "orders"
            echo = json.loads(body)
            sent = echo["headers"]
            assert echo["upstream"] == "orders" and echo["path"] == "/api/orders?id=7", body + where
            assert sent["x-user-id"] == "alice" and sent["x-served-by"] == "ficus", body + where
            assert sent["x-forwarded-proto"] == "https" and sent["x-forwarded-host"] == f"localhost:{p['TLS']}"
            assert sent["x-forwarded-for"] == "127.0.0.1" and sent["x-request-id"] == h["x-request-id"], body + where
            checked.append("orders")
        elif re.fullmatch(rf"curl --cacert \S+ -i {base}/api/orders", cmd):
            status, h, body = http_response(out)
            assert status == 401 and h["www-authenticate"].startswith("Bearer"), out + where
            checked.append("401")
        elif "--sub bob" in cmd:
            status, h, body = http_response(out)
            assert status == 403 and json.loads(body) == {"error": "insufficient_scope"}, out + where
            assert 'error="insufficient_scope"' in h["www-authenticate"], out + where
            checked.append("403")
        elif "/api/orders?n=[1-12]" in cmd:
            codes = [int(c) for c in out.split()]
            assert len(codes) == 12 and set(codes) <= {200, 429}, out + where
            # 5 in the bucket at most (less what the commands above took), plus what refilled at 10/s meanwhile
            assert codes[0] == 200 and 429 in codes, out + where
            assert codes.count(200) <= 5 + 10 * took + 1, f"{codes} in {took:.2f}s" + where
            checked.append("429")
        elif cmd.startswith("for u in alice bob carol dave erin; do curl"):
            users = ["alice", "bob", "carol", "dave", "erin"]
            want = [split_ref.side("catalog", u, [("orders", 20), ("monolith", 80)]) for u in users]
            assert out.split() == want, out + where
            assert bash(cmd, env)[0].stdout.split() == want, where  # each user keeps its side
            checked.append("split")
        elif "-H 'X-Ficus-Upstream: orders'" in cmd and "/api/catalog" in cmd:
            echo = json.loads(out)
            assert echo["upstream"] == "orders" and "x-ficus-upstream" not in echo["headers"], out + where
            checked.append("override")
        elif re.fullmatch(rf"curl --cacert \S+ -s {base}/reports/daily", cmd):
            assert json.loads(out)["upstream"] == "monolith", out + where
            wait_for(lambda: re.search(r'^ficus_mirror_compare_total\{route="reports",result="body_differs"\} [1-9]',
                                       httpx.get(f"http://127.0.0.1:{p['ADMIN']}/metrics").text, re.M),
                     5 * SLOW, what="the shadow's answer compared")
            checked.append("mirror")
        elif re.fullmatch(r"redis-cli -p (\d+) SET '\{ficus:shed\}:level' 2", cmd):
            assert out.strip() == "OK" and f"-p {p['REDIS']} " in cmd, out + where
            # what the comment says: normal and low routes shed, high ones served (a token of its own: alice's
            # bucket is empty after the burst above)
            carol = subprocess.run([FICUS_BIN, "token", "--sub", "carol", "--scope", "orders"], cwd=SOURCE_DIR,
                                   capture_output=True, text=True, check=True).stdout.strip()
            wait_for(lambda: get("/").status_code == 503, 5 * SLOW, what="/ (normal) shed after level 2")
            assert get("/api/orders", carol).status_code == 200
            checked.append("shed")
        elif re.fullmatch(r"redis-cli -p (\d+) SET '\{ficus:shed\}:level' 0", cmd):
            assert out.strip() == "OK", out + where
            wait_for(lambda: get("/").status_code == 200, 5 * SLOW, what="/ served again after level 0")
            checked.append("unshed")
        elif "/checkout/cart?step=2'" in cmd:
            status, h, _ = http_response(out)
            assert status == 308 and h["location"] == "https://shop.example.com/checkout/cart?step=2", out + where
            checked.append("checkout")
        elif "--http2 -sI" in cmd:
            assert out.startswith("HTTP/2 200"), out + where
            checked.append("h2")
        elif re.fullmatch(rf"curl -i http://localhost:{p['HTTP']}/some/page", cmd):
            status, h, _ = http_response(out)
            assert status == 308 and h["location"] == f"{base}/some/page", out + where
            checked.append("redirect")
        elif re.fullmatch(rf"curl http://127\.0\.0\.1:{p['ADMIN']}/metrics", cmd):
            assert re.search(r'^ficus_requests_total\{route="orders",code="2xx"\} [1-9]', out, re.M), out[:2000] + where
            checked.append("metrics")
        else:
            pytest.fail(f"demo.sh prints a command this test does not check: {cmd!r} (add its check here)")
    assert len(checked) == len(set(checked)) == 16, checked

    # the lines after the commands
    m = re.search(r"^  Reload: edit (\S+), then\s+(kill -HUP (\d+))\s", text, re.M)
    assert m, text
    assert os.path.isfile(os.path.join(SOURCE_DIR, m.group(1))), m.group(1)
    n_reloads = len(re.findall(r"\breload: ", demo.output()))
    r, _ = bash(m.group(2), env)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: len(re.findall(r"\breload: ", demo.output())) > n_reloads, 10 * SLOW, what="the reload's log line")
    assert get("/ping").text == "pong\n"
    assert re.search(rf"^  Redis: 127\.0\.0\.1:{p['REDIS']} \(started by this script\)", text, re.M), text
    jwt = re.search(r'^  JWT: provider "dev" of \S+: issuer (\S+), audience (\S+), keys\s+(\S+);', text, re.M)
    assert jwt, text
    conf = open(os.path.join(SOURCE_DIR, "conf", "ficus.yaml")).read()
    assert f'issuer: "{jwt.group(1)}"' in conf and f'audiences: ["{jwt.group(2)}"]' in conf
    assert f"jwks_file: {jwt.group(3)}" in conf

    # Ctrl-C: everything the script started is stopped
    client.close()
    os.kill(demo.proc.pid, signal.SIGINT)
    rc = demo.proc.wait(60 * SLOW)
    demo._reader.join(10)
    out = demo.output()
    assert rc == 130 and "demo: stopped" in out, out[-3000:]
    assert "ficus exited with status" not in out, out[-3000:]  # ficus ran until it was stopped
    assert not SANITIZER_RE.search(out), out[-6000:]
    for name, port in p.items():
        assert not port_accepts(port), f"{name} port {port} still accepts connections after Ctrl-C"
