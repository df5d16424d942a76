"""Issue 9 item 3: redirect and post-logout URIs are built only from a host ficus serves.

Without `external_url`, the redirect_uri of a login (and of its code exchange) and the default post_logout_redirect_uri
come from the request's Host only when that host is one ficus serves: a route's `match.host` (exact or "*.x") or a
DNS name of the listener's certificates (SAN; "*.x" covers one label). Any other Host gets 400
{"error":"unknown_host"} (log reason sso_unknown_host) at login, callback and logout, and nothing is redirected. With
`external_url`, the Host does not matter. TLS stays on SNI localhost throughout; only the Host header changes.
"""
import http.client
import json
import ssl
from urllib.parse import quote

import pytest

from conftest import SLOW
from sso_helpers import ROUTES, HEAD, Browser, echo_json, query, sso_env, sso_template, wait_log_error

ROUTES_WITH_HOSTS = ROUTES.replace("routes:\n", """routes:
  - name: named-host
    match: { host: app.test, path_prefix: /named }
    sso: true
    to: a
  - name: wildcard-host
    match: { host: "*.apps.test", path_prefix: /wild }
    sso: true
    to: a
""", 1)
TWO_CERTS = 'tls: { certificates: [{ cert: "$cert", key: "$key" }, { cert: "$wild_cert", key: "$wild_key" }] }'


def get(fx, path, host, headers=()):
    """GET over TLS to localhost (SNI localhost, verified) with the Host header HOST: (status, headers, body)."""
    ctx = ssl.create_default_context(cafile=fx.certs.ca)
    conn = http.client.HTTPSConnection("localhost", fx.tls_port, context=ctx, timeout=10 * SLOW)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        conn.putheader("Accept", "text/html")
        for k, v in headers:
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode(errors="replace")
    finally:
        conn.close()


@pytest.fixture
def env(tmp_path, ficus_factory, certs):
    wild = certs.issue("wild", ["DNS:*.certs.test"])
    template = sso_template(routes=ROUTES_WITH_HOSTS).replace(HEAD, HEAD.replace(
        'tls: { certificates: [{ cert: "$cert", key: "$key" }] }', TWO_CERTS))
    assert TWO_CERTS in template
    op, rs, fx = sso_env(tmp_path, ficus_factory, certs, template=template,
                         placeholders=dict(wild_cert=wild[0], wild_key=wild[1]))
    yield op, fx
    op.stop()
    rs.stop()


def assert_unknown_host(status, headers, body):
    assert status == 400, (status, body[:200])
    assert json.loads(body) == {"error": "unknown_host"}
    assert "location" not in headers, headers


def login_redirect_uri(fx, path, host):
    status, headers, body = get(fx, path, host)
    assert status == 302, (host, status, body[:200])
    return query(headers["location"])["redirect_uri"]


def test_login_redirect_uri_only_for_served_hosts(env):
    op, fx = env
    port = fx.tls_port
    # served: a certificate name (localhost), a route's host, a route's wildcard, a certificate wildcard (one label)
    assert login_redirect_uri(fx, "/app/", f"localhost:{port}") == f"https://localhost:{port}/_ficus/callback"
    assert login_redirect_uri(fx, "/named/x", f"app.test:{port}") == f"https://app.test:{port}/_ficus/callback"
    assert login_redirect_uri(fx, "/wild/x", "a.apps.test") == "https://a.apps.test/_ficus/callback"
    assert login_redirect_uri(fx, "/app/", f"ONE.certs.test:{port}") == f"https://ONE.certs.test:{port}/_ficus/callback"
    # not served
    not_served = ("evil.example", f"evil.example:{port}", "apps.test", "a.b.certs.test", "certs.test",
                  "localhost.evil.example", "127.0.0.1", "[::1]")
    for host in not_served:
        assert_unknown_host(*get(fx, "/app/", host))
    wait_log_error(fx, "sso_unknown_host", "/app/", n=len(not_served))
    # malformed authorities: refused (by the core's Host check, or here), never redirected
    for host in (f"localhost:{port}x", "localhost:", f"localhost@evil.example:{port}"):
        status, headers, body = get(fx, "/app/", host)
        assert status == 400 and json.loads(body)["error"] in ("bad_host", "unknown_host"), (host, status, body[:200])
        assert "location" not in headers
    # API-style requests still get 401 login_required first (nothing is redirected for them anyway)
    status, _, body = get(fx, "/app/", "evil.example", headers=[("X-Requested-With", "XMLHttpRequest")])
    assert status == 401 and json.loads(body) == {"error": "login_required"}, (status, body)


def test_callback_and_logout_refuse_unknown_hosts(env):
    op, fx = env
    b = Browser(fx)
    b.login(op, "/app/")
    sid = b.session_id
    cookie = ("Cookie", f"__Host-ficus={sid}")
    # callback on another host: refused before anything (no code exchange)
    before = op.count("token:authorization_code")
    assert_unknown_host(*get(fx, "/_ficus/callback?code=x&state=y", "evil.example"))
    assert op.count("token:authorization_code") == before
    # logout on another host: refused, the session is still there
    assert_unknown_host(*get(fx, "/_ficus/logout", "evil.example", headers=[cookie]))
    assert echo_json(b.get("/app/still"))["headers"]["x-user-email"] == "alice@example.test"
    # logout on ficus's own host: post_logout_redirect_uri from it
    status, headers, _ = get(fx, "/_ficus/logout", f"localhost:{fx.tls_port}", headers=[cookie])
    assert status == 302, status
    assert query(headers["location"])["post_logout_redirect_uri"] == f"https://localhost:{fx.tls_port}/"


def test_external_url_wins_over_any_host(tmp_path, ficus_factory, certs):
    op, rs, fx = sso_env(tmp_path, ficus_factory, certs, sso_extra="  external_url: https://gw.example.net\n")
    try:
        for host in ("evil.example", f"localhost:{fx.tls_port}"):
            status, headers, body = get(fx, "/app/", host)
            assert status == 302, (status, body[:200])
            assert query(headers["location"])["redirect_uri"] == "https://gw.example.net/_ficus/callback"
        status, headers, _ = get(fx, "/_ficus/logout", "evil.example")
        assert status == 302
        assert query(headers["location"])["post_logout_redirect_uri"] == "https://gw.example.net/"
    finally:
        op.stop()
        rs.stop()
