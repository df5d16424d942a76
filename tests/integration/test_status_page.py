"""The status page on the admin listener (GET /, GET /status.json) in headless Chromium: it loads with no console
error, refreshes itself from /status.json and /metrics, and shows every route of the config with its action (the
split's weights as a bar), the upstreams with their endpoints, the providers. A screenshot is kept under the test
logs (build/test-logs/status-page.png). It is served on the admin listener only."""
import html
import json
import os
import re
import shutil
import subprocess
import threading

from conftest import FICUS_BIN, SLOW

CHROMIUM = os.environ.get("FICUS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LOG_DIR = os.environ.get("FICUS_TEST_LOGS") or os.path.join(os.path.dirname(FICUS_BIN), "test-logs")

CONFIG = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: "off"
providers:
  corp:
    issuer: "https://idp.test/"
    jwks_file: "$jwks"
    audiences: ["api://gateway"]
upstreams:
  monolith: { endpoints: ["http://$echo_a"] }
  orders: { endpoints: ["http://$echo_b", "http://$echo_c"] }
routes:
  - name: health
    match: { path: /health }
    respond: { status: 200, body: "ok", content_type: text/plain }
  - name: checkout-moved
    match: { path_prefix: /checkout }
    redirect: { to: "https://shop.example.com{path}", status: 308 }
  - name: orders-canary
    match: { path_prefix: /api/orders }
    split:
      key: [ip]
      to:
        - { upstream: orders, weight: 10 }
        - { upstream: monolith, weight: 90 }
  - name: everything-else
    match: { path_prefix: / }
    jwt: { provider: corp, required: false }
    to: monolith
"""


def chromium(tmp_path, url, *extra, budget_ms=9000):
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--no-default-browser-check",
            "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}",
            f"--virtual-time-budget={budget_ms}", *extra, url]
    env = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    return subprocess.run(args, capture_output=True, text=True, timeout=120 * SLOW, env=env)


def console_problems(stderr):
    return [l for l in stderr.splitlines() if "CONSOLE" in l or "Uncaught" in l]


def test_status_page_in_chromium(ficus_factory, tmp_path):
    from jwt_fixtures import gen_key, public
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public(gen_key("RSA", 2048, "k1", "RS256"))]}))
    f = ficus_factory(CONFIG, jwks=jwks)
    with f.client() as c:
        for p in ("/health", "/api/orders/1", "/x", "/checkout/a"):
            for _ in range(5):
                c.get(p)

    # the JSON the page refreshes from
    status, headers, body = f.admin_get("/status.json")
    assert status == 200 and headers["content-type"] == "application/json"
    st = json.loads(body)
    assert st["generation"] == 1 and st["last_reload"]["ok"] is True
    routes = {r["name"]: r for r in st["routes"]}
    assert list(routes) == ["health", "checkout-moved", "orders-canary", "everything-else"]
    assert routes["orders-canary"]["action"] == "split"
    assert routes["orders-canary"]["split"] == [{"upstream": "orders", "weight": 10}, {"upstream": "monolith", "weight": 90}]
    assert routes["everything-else"]["action"] == "proxy" and routes["everything-else"]["to"] == "monolith"
    assert "jwt" in routes["everything-else"]["plugins"]
    assert routes["checkout-moved"]["status"] == 308
    assert st["providers"]["corp"]["keys"] == 1
    assert {u["name"]: len(u["endpoints"]) for u in st["upstreams"]} == {"monolith": 1, "orders": 2}
    # nothing secret on it: no key material, no bodies
    assert '"kty"' not in body and '"n":' not in body and "BEGIN" not in body and "pong" not in body

    status, headers, page = f.admin_get("/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    # self-contained: no external script, style, image or font
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "external asset"
    assert "@import" not in page and "url(" not in page
    # the page exists on the admin listener only
    with f.client() as c:
        r = c.get("/status.json")
        assert "generation" not in r.text

    url = f"http://127.0.0.1:{f.admin_port}/"
    r = chromium(tmp_path, url, "--dump-dom")
    assert r.returncode == 0, r.stderr[-3000:]
    assert not console_problems(r.stderr), console_problems(r.stderr)
    dom = r.stdout
    m = re.search(r'data-refreshes="(\d+)"', dom)
    assert m and int(m.group(1)) >= 2, dom[-3000:]  # refreshed itself (virtual time: the 2 s timer ran)
    assert re.search(r'<div id="error"[^>]*style="display: none;"', dom), "the page shows a refresh error"
    for name in routes:
        assert f'data-route="{name}"' in dom, name
    text = html.unescape(re.sub(r"<[^>]+>", " ", dom))
    assert "generation 1" in text and "4 routes" in text
    assert "orders 10 / monolith 90" in text and "\u2192 monolith" in text and "308 \u2192 https://shop.example.com{path}" in text
    assert "last reload" in text or "no reload yet" in text
    assert "<svg" in dom and "<rect" in dom  # the split bar and sparklines are inline SVG
    assert 'data-upstream="orders"' in dom and f"http://{f.values['echo_c']}" in text
    assert re.search(r"corp\s+ok\s+1", text), text[:3000]

    os.makedirs(LOG_DIR, exist_ok=True)
    shot = os.path.join(LOG_DIR, "status-page.png")
    stop = threading.Event()

    def load():  # traffic while the page samples, so the screenshot shows rates and sparklines
        with f.client() as c:
            while not stop.is_set():
                for p in ("/health", "/api/orders/1", "/x", "/x", "/checkout/a", "/nowhere/_status/503"):
                    c.get(p)

    t = threading.Thread(target=load)
    t.start()
    try:
        r = chromium(tmp_path, url, f"--screenshot={shot}", "--window-size=1280,900", "--hide-scrollbars",
                     budget_ms=12000)
    finally:
        stop.set()
        t.join(30 * SLOW)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(shot, "rb") as fp:
        assert fp.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(shot) > 10000


def test_status_page_shows_a_failed_reload(ficus_factory, tmp_path):
    f = ficus_factory(CONFIG.replace("providers:", "unused_providers:").split("unused_providers:")[0] + """\
upstreams:
  monolith: { endpoints: ["http://$echo_a"] }
routes:
  - name: only
    match: { path_prefix: / }
    to: monolith
""")
    f.write_config(f.config_text + "bogus: 1\n")
    assert not f.reload().ok
    st = json.loads(f.admin_get("/status.json")[2])
    assert st["last_reload"]["ok"] is False and "bogus" in st["last_reload"]["error"]
    assert st["last_reload"]["at"] > 0 and st["redis"] is None and st["providers"] == {}
    r = chromium(tmp_path, f"http://127.0.0.1:{f.admin_port}/", "--dump-dom", budget_ms=3000)
    assert not console_problems(r.stderr), console_problems(r.stderr)
    assert re.search(r'class="bad">last reload FAILED: [^<]*bogus', r.stdout), r.stdout[-2000:]
