"""Browser check for SSO (issue 5): headless Debian Chromium completes one login through ficus.

Needs the Debian packages `chromium` (the browser; /usr/bin/chromium) and `libnss3-tools` (certutil: the test CA is
added to a fresh NSS database, so the TLS of ficus is really verified; --ignore-certificate-errors is NOT used).
The test is skipped when chromium is missing (FICUS_REQUIRE_CHROMIUM=1 makes that a failure).

Chromium runs with a throw-away HOME (its NSS database is $HOME/.pki/nssdb) and --user-data-dir, loads
https://localhost:PORT/app/hello?via=chromium and dumps the final DOM (--dump-dom, --virtual-time-budget). On the way:
ficus's 302 to the OP, the OP's interaction (auto_login=alice: no login form), its redirect to ficus's callback
(the flow cookie must come back: SameSite=Lax on a cross-site top-level GET), the session cookie, the redirect to the
original URL, and the echo upstream's JSON, which must show x-user-email alice@example.test.
"""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import SLOW, free_port
from oidc_fixtures import OidcProvider
from redis_fixtures import RedisServer
from sso_helpers import sso_template, sso_values, wait_log_error, wait_sso_ready

CHROMIUM = os.environ.get("FICUS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CERTUTIL = shutil.which("certutil") or "/usr/bin/certutil"


def _need(path, package):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        msg = f"{path} not found: apt-get install -y {package}"
        if os.environ.get("FICUS_REQUIRE_CHROMIUM") == "1":
            pytest.fail(msg)
        pytest.skip(msg)


def nss_home(tmp_path, ca):
    """A HOME whose NSS database trusts the test CA (as a root for TLS servers)."""
    home = tmp_path / "home"
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    subprocess.run([CERTUTIL, "-N", "-d", f"sql:{db}", "--empty-password"], check=True, capture_output=True, timeout=30)
    subprocess.run([CERTUTIL, "-A", "-d", f"sql:{db}", "-n", "ficus test CA", "-t", "C,,", "-i", ca],
                   check=True, capture_output=True, timeout=30)
    return home


def run_chromium(tmp_path, home, url, budget_ms=15000):
    profile = tmp_path / "chromium-profile"
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--no-default-browser-check", "--password-store=basic",
            f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", "--dump-dom", url]
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    return subprocess.run(args, capture_output=True, text=True, timeout=90 * SLOW, env=env)


def test_chromium_login(tmp_path, ficus_factory, certs):
    _need(CHROMIUM, "chromium")
    _need(CERTUTIL, "libnss3-tools")
    port = free_port()
    op = OidcProvider(tmp_path / "op", ficus_port=port, ca_file=certs.ca, auto_login="alice")
    rs = RedisServer(tmp_path / "redis")
    try:
        fx = ficus_factory(sso_template(), tls_port=port, **sso_values(tmp_path, op, rs))
        wait_sso_ready(fx)
        home = nss_home(tmp_path, certs.ca)
        r = run_chromium(tmp_path, home, f"https://localhost:{port}/app/hello?via=chromium")
        dom = r.stdout
        where = f"\n--- chromium stdout ---\n{dom[-3000:]}\n--- chromium stderr ---\n{r.stderr[-3000:]}\n" \
                f"--- ficus access log ---\n{fx.stdout()[-3000:]}\n--- OP log ---\n{op.log_tail(20)}"
        m = re.search(r"<pre[^>]*>(.*?)</pre>", dom, re.S)
        assert m, "the final page is not the upstream's JSON" + where
        import html
        doc = json.loads(html.unescape(m.group(1)))
        assert doc["upstream"] == "a" and doc["path"] == "/app/hello?via=chromium", doc
        h = doc["headers"]
        assert h.get("x-user-email") == "alice@example.test", h
        assert "__Host-ficus" not in h.get("cookie", ""), h
        assert "mozilla" in h.get("user-agent", "").lower(), h  # it really was the browser
        wait_log_error(fx, "sso_login_redirect", "/app/hello")
        wait_log_error(fx, "sso_login", "/_ficus/callback")
        assert op.count("token:authorization_code") == 1
    finally:
        op.stop()
        rs.stop()
