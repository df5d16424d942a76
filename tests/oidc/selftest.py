#!/usr/bin/python3
"""Self-test of the test OpenID provider and of tests/integration/oidc_fixtures.py, without ficus.

    /usr/bin/python3 tests/oidc/selftest.py          # exit 0 = every check passed; about 5-10 s

Plays the relying party with requests + jwcrypto against a real provider process: discovery, authorization code +
PKCE S256 with the scripted login, code exchange (client_secret_basic and client_secret_post), ID token validation
against the JWKS, userinfo, refresh (rotation, reuse detection), the control endpoint (counters, injected failures,
delays), RP-initiated logout with back-channel logout tokens delivered over verified TLS to a local HTTPS receiver
standing in for ficus, back-channel logout triggered by the control endpoint, stop/start keeping keys and tokens.
"""
import base64
import json
import os
import ssl
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from conftest import Certs, free_port  # noqa: E402
from oidc_fixtures import LoginError, OidcProvider, query_params  # noqa: E402

PASSED = []


def check(cond, what, detail=""):
    if not cond:
        print(f"FAIL: {what} {detail}", file=sys.stderr)
        raise SystemExit(1)
    PASSED.append(what)
    print(f"ok   {what}")


class Receiver:
    """HTTPS on 127.0.0.1:port (certificate for localhost from the test CA): records back-channel logout POSTs."""

    def __init__(self, certs, port):
        self.posts = []
        self.status = 200
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n).decode()
                outer.posts.append({"path": self.path, "ctype": self.headers.get("content-type"), "form": parse_qs(body)})
                self.send_response(outer.status)
                self.send_header("content-length", "0")
                self.send_header("cache-control", "no-store")
                self.end_headers()

        self.srv = ThreadingHTTPServer(("127.0.0.1", port), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*certs.localhost)
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def wait(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        while len(self.posts) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.posts


def verify_logout_token(op, token, client):
    from jwcrypto import jwk, jwt
    keys = jwk.JWKSet.from_json(json.dumps(op.jwks()))
    t = jwt.JWT(jwt=token, key=keys, algs=["RS256"], check_claims=False)
    c = json.loads(t.claims)
    ok = (c["iss"] == op.issuer and c["aud"] == client.client_id and "nonce" not in c
          and "http://schemas.openid.net/event/backchannel-logout" in c.get("events", {})
          and c.get("sid") and c.get("sub") and c.get("jti") and c["exp"] > time.time())
    return ok, c


def main():
    tmp = tempfile.mkdtemp(prefix="oidc-selftest-")
    certs = Certs(os.path.join(tmp, "certs"))
    certs.localhost = certs.issue("localhost", ["DNS:localhost", "IP:127.0.0.1"])
    ficus_port = free_port()
    rx = Receiver(certs, ficus_port)

    t0 = time.monotonic()
    op = OidcProvider(os.path.join(tmp, "op"), ficus_port=ficus_port, ca_file=certs.ca, ttl={"AccessToken": 10})
    try:
        run(op, rx, t0)
    except BaseException:
        print("---- provider log tail:\n" + op.log_tail(), file=sys.stderr)
        raise
    finally:
        op.stop()
    print(f"all {len(PASSED)} checks passed")


def run(op, rx, t0):
    check(op.startup_seconds < 2.0, f"provider ready in {op.startup_seconds:.2f}s (< 2 s)")
    d = op.discovery
    check(d["issuer"] == op.issuer and d["issuer"].startswith("http://127.0.0.1:"), "discovery: issuer is http://127.0.0.1:PORT")
    check(d["code_challenge_methods_supported"] == ["S256"], "discovery: PKCE S256")
    for k in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint", "end_session_endpoint",
              "revocation_endpoint", "introspection_endpoint"):
        check(d.get(k, "").startswith(op.issuer + "/"), f"discovery: {k}")
    check(d.get("backchannel_logout_supported") is True and d.get("backchannel_logout_session_supported") is True,
          "discovery: back-channel logout with sid")
    check({"client_secret_basic", "client_secret_post"} <= set(d["token_endpoint_auth_methods_supported"]), "discovery: auth methods")

    # ---- PKCE is required
    browser = requests.Session()
    url, st = op.authorize_url(op.basic)
    no_pkce = url.replace("code_challenge=", "x_code_challenge=")
    cb = op.login(requests.Session(), no_pkce, "alice")
    check(query_params(cb).get("error") == "invalid_request" and "code_challenge" in query_params(cb).get("error_description", ""),
          "authorization without code_challenge is refused (PKCE required)", cb)

    # ---- unknown user
    try:
        op.login(requests.Session(), op.authorize_url(op.basic)[0], "mallory")
        check(False, "unknown user refused")
    except LoginError:
        check(True, "unknown user refused (LoginError)")

    # ---- authorization code + PKCE, client_secret_basic
    c0 = op.counters()
    cb = op.login(browser, url, "alice")
    q = query_params(cb)
    check(cb.startswith(op.basic.redirect_uri + "?"), "login redirects to the client's redirect_uri (not followed)", cb)
    check(q.get("state") == st["state"] and q.get("iss") == op.issuer and q.get("code"), "callback has code, state, iss")
    tok = op.exchange_code(op.basic, cb, st["code_verifier"])
    check({"access_token", "id_token", "refresh_token", "expires_in"} <= set(tok) and tok["token_type"] == "Bearer",
          "code exchange (client_secret_basic): access, ID and refresh tokens")
    check(tok["expires_in"] <= 10, f"access token TTL from settings (expires_in {tok['expires_in']})")
    claims = op.verify_id_token(tok["id_token"], op.basic, nonce=st["nonce"])
    check(claims["sub"] == "alice" and claims["email"] == "alice@example.test" and claims["name"] == "Alice Example"
          and claims["groups"] == ["staff", "admins"] and claims.get("sid"), "ID token: RS256, iss, aud, nonce, exp; sub/email/name/groups/sid", claims)
    ui = requests.get(d["userinfo_endpoint"], headers={"Authorization": "Bearer " + tok["access_token"]}, timeout=5)
    check(ui.status_code == 200 and ui.json()["sub"] == "alice" and ui.json()["groups"] == ["staff", "admins"], "userinfo", ui.text)

    # ---- codes: used once (a replayed code also revokes what the first exchange issued), verifier checked
    other = requests.Session()
    urlx, stx = op.authorize_url(op.basic)
    cbx = op.login(other, urlx, "alice")
    r = op.token_request(op.basic, {"grant_type": "authorization_code", "code": query_params(cbx)["code"],
                                    "redirect_uri": op.basic.redirect_uri, "code_verifier": stx["code_verifier"] + "x"})
    check(r.status_code == 400 and r.json()["error"] == "invalid_grant", "wrong code_verifier is refused", r.text)
    urlx, stx = op.authorize_url(op.basic)
    cbx = op.login(other, urlx, "alice")  # SSO: OP session, no login page
    tx = op.exchange_code(op.basic, cbx, stx["code_verifier"])
    r = op.token_request(op.basic, {"grant_type": "authorization_code", "code": query_params(cbx)["code"],
                                    "redirect_uri": op.basic.redirect_uri, "code_verifier": stx["code_verifier"]})
    check(r.status_code == 400 and r.json()["error"] == "invalid_grant", "a code is used once", r.text)
    r = op.refresh(op.basic, tx["refresh_token"])
    check(r.status_code == 400, "a replayed code revokes the tokens of its first exchange", r.text)
    c1 = op.counters()
    check(c1.get("token:authorization_code", 0) - c0.get("token:authorization_code", 0) == 4, "counters: code exchanges counted", c1)
    out = op.end_session(other)  # no id_token_hint / post_logout_redirect_uri: ends at the OP's success page
    check(out == op.url("/session/end/success"), "end_session without a client ends on the OP's success page", out)
    rx.wait(1)
    op.reset()
    rx.posts.clear()

    # ---- refresh (rotation on)
    before = op.count("token:refresh_token")
    r = op.refresh(op.basic, tok["refresh_token"])
    check(r.status_code == 200, "refresh_token grant", r.text)
    tok2 = r.json()
    check(tok2["refresh_token"] != tok["refresh_token"] and tok2["access_token"] != tok["access_token"], "refresh rotates the refresh token")
    c2 = op.verify_id_token(tok2["id_token"], op.basic)
    check(c2["sub"] == "alice" and c2["sid"] == claims["sid"], "refreshed ID token valid, same sid")
    check(op.count("token:refresh_token") - before == 1, "counters: one refresh counted")

    # ---- injected failures
    op.fail("token", "invalid_grant", times=1, grant_type="refresh_token")
    r = op.refresh(op.basic, tok2["refresh_token"])
    check(r.status_code == 400 and r.json()["error"] == "invalid_grant", "injected invalid_grant (once)")
    op.fail("token", "500", times=1)
    r = op.refresh(op.basic, tok2["refresh_token"])
    check(r.status_code == 500, "injected 500 (once)")
    op.fail("token", "delay", delay_ms=600, times=1)
    t = time.monotonic()
    r = op.refresh(op.basic, tok2["refresh_token"])
    dt = time.monotonic() - t
    check(r.status_code == 200 and 0.55 < dt < 3, f"injected delay then normal answer ({dt:.2f}s)")
    tok3 = r.json()
    op.fail("token", "close", times=1)
    try:
        op.refresh(op.basic, tok3["refresh_token"])
        check(False, "injected close")
    except requests.ConnectionError:
        check(True, "injected connection close")
    check(op.count("injected:token:invalid_grant") == 1 and op.count("injected:token:500") == 1, "counters: injections counted")

    # ---- reuse of a rotated refresh token revokes the grant (what a double refresh by an RP would cause)
    url3, st3 = op.authorize_url(op.post)  # second client, same OP session
    cb3 = op.login(browser, url3, "alice")
    tp = op.exchange_code(op.post, cb3, st3["code_verifier"])
    check(op.verify_id_token(tp["id_token"], op.post, nonce=st3["nonce"])["sub"] == "alice", "code exchange with client_secret_post")
    r1 = op.refresh(op.post, tp["refresh_token"])
    r2 = op.refresh(op.post, tp["refresh_token"])
    check(r1.status_code == 200 and r2.status_code == 400 and r2.json()["error"] == "invalid_grant", "a rotated refresh token used twice: invalid_grant")
    r3 = op.refresh(op.post, r1.json()["refresh_token"])
    check(r3.status_code == 400, "... and the whole grant is revoked (the newer refresh token fails too)")
    cb3 = op.login(browser, op.authorize_url(op.post)[0], "alice")  # get a fresh grant for ficus-post
    url3, st3 = op.authorize_url(op.post)
    tp = op.exchange_code(op.post, op.login(browser, url3, "alice"), st3["code_verifier"])

    # ---- RP-initiated logout: both clients of the OP session get a logout_token over verified TLS
    sess = op.sessions()
    alice = [s for s in sess if s["sub"] == "alice"]
    check(len(alice) == 1 and set(alice[0]["clients"]) == {"ficus-basic", "ficus-post"}, "control: OP session lists both clients", sess)
    rx.posts.clear()
    out = op.end_session(browser, id_token_hint=tok2["id_token"], post_logout_redirect_uri=op.basic.post_logout_redirect_uris[0], state="s1")
    check(out == op.basic.post_logout_redirect_uris[0] + "?state=s1", "end_session redirects to post_logout_redirect_uri with state", out)
    posts = rx.wait(2)
    check(len(posts) == 2 and all(p["path"] == "/_ficus/backchannel-logout" for p in posts), "back-channel logout POSTed for both clients", posts)
    check(all(p["ctype"].startswith("application/x-www-form-urlencoded") for p in posts), "logout_token form-encoded")
    for p in posts:
        token = p["form"]["logout_token"][0]
        aud = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==")).get("aud")
        ok, lc = verify_logout_token(op, token, op.clients[aud])
        check(ok and lc["sub"] == "alice", f"logout_token for {aud}: RS256, iss, aud, events, sid, sub, jti, no nonce", lc)
        if aud == "ficus-basic":
            check(lc["sid"] == claims["sid"], "logout_token sid = ID token sid")
    check(op.count("backchannel.success") == 2, "counters: back-channel successes")
    r = op.refresh(op.basic, tok3["refresh_token"])
    check(r.status_code == 400 and r.json()["error"] == "invalid_grant", "after logout the refresh token is dead")
    check(not [s for s in op.sessions() if s["sub"] == "alice"], "after logout the OP session is gone")
    url4, _ = op.authorize_url(op.basic)
    try:
        op.login(browser, url4, None)
        check(False, "login page after logout")
    except LoginError:
        check(True, "after logout the OP asks for a login again")

    # ---- back-channel logout triggered by the control endpoint; RP answering 500 is reported
    bob_browser = requests.Session()
    url5, st5 = op.authorize_url(op.basic, scope="openid profile email offline_access")
    tb = op.exchange_code(op.basic, op.login(bob_browser, url5, "bob"), st5["code_verifier"])
    bclaims = op.verify_id_token(tb["id_token"], op.basic, nonce=st5["nonce"])
    check(bclaims["groups"] == ["staff"], "bob's groups")
    rx.posts.clear()
    res = op.backchannel_logout(sub="bob", end_session=False)
    check(len(res) == 1 and res[0]["ok"] and res[0]["sid"] == bclaims["sid"], "control: back-channel logout of bob's session", res)
    ok, lc = verify_logout_token(op, rx.wait(1)[0]["form"]["logout_token"][0], op.basic)
    check(ok and lc["sub"] == "bob" and lc["sid"] == bclaims["sid"], "control-triggered logout_token valid")
    rx.status = 500
    res = op.backchannel_logout(sub="bob", end_session=False)
    check(len(res) == 1 and not res[0]["ok"] and "500" in res[0]["error"], "RP answering 500: reported as not ok", res)
    rx.status = 200
    check(op.refresh(op.basic, tb["refresh_token"]).status_code == 200, "end_session=False keeps the grant")

    # ---- stop / start: same port, keys, sessions and tokens
    kid = op.jwks()["keys"][0]["kid"]
    tb2 = op.refresh(op.basic, tb["refresh_token"])
    check(tb2.status_code == 400, "rotated token reuse again refused")  # tb's token was rotated by the previous refresh
    url6, st6 = op.authorize_url(op.basic)
    tb = op.exchange_code(op.basic, op.login(bob_browser, url6, "bob"), st6["code_verifier"])
    op.stop()
    try:
        requests.get(op.url("/jwks"), timeout=2)
        check(False, "provider down refuses connections")
    except requests.ConnectionError:
        check(True, "provider stopped: connection refused")
    t = time.monotonic()
    op.start()
    check(time.monotonic() - t < 2.0, f"restart in {time.monotonic() - t:.2f}s")
    check(op.jwks()["keys"][0]["kid"] == kid, "same signing key after restart")
    r = op.refresh(op.basic, tb["refresh_token"])
    check(r.status_code == 200, "refresh token issued before the restart still works", r.text)
    cb7 = op.login(bob_browser, op.authorize_url(op.basic)[0], None)
    check("code=" in cb7, "OP session (cookie) survives the restart: SSO without login page")

    # ---- runtime settings: auto_login, TTLs
    op.set_config(auto_login="bob", ttl={"AccessToken": 3})
    url8, st8 = op.authorize_url(op.post)
    t8 = op.exchange_code(op.post, op.login(requests.Session(), url8, None), st8["code_verifier"])
    check(op.verify_id_token(t8["id_token"], op.post)["sub"] == "bob" and t8["expires_in"] <= 3, "auto_login (no login page) and runtime TTL")
    check(time.monotonic() - t0 < 30, f"whole self-test bounded ({time.monotonic() - t0:.1f}s)")


if __name__ == "__main__":
    main()
