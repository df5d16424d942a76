"""Helpers for the SSO tests (test_sso.py, test_sso_browser.py): ficus configuration for SSO, a "browser" that never
follows redirects by itself (every hop is asserted by the test), and minting tokens with the test OP's own signing key
(oidc-provider keeps its private JWKS in its work directory) to forge ID tokens / logout tokens a real OP would send.
"""
import http.client
import http.cookiejar
import json
import os
import re
import secrets
import ssl
import subprocess
import threading
import time
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from conftest import SLOW, wait_for

HEAD = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
"""

REDIS = """\
redis:
  address: "$redis"
  command_timeout: 500ms
  connect_timeout: 500ms
  reconnect_min: 50ms
  reconnect_max: 500ms
"""

PROVIDERS = """\
providers:
  idp:
    issuer: "$issuer"
    discovery: true
    refresh_min: 1s
    fetch_timeout: 2s
"""

SSO = """\
sso:
  provider: idp
  client_id: $client_id
  client_secret_file: "$secret_file"
  client_auth: $client_auth
  scopes: [profile, email]
  refresh_before: $refresh_before
  token_timeout: $token_timeout
  session: { keys_file: "$keys_file", cache_ttl: $cache_ttl$session_extra }
${sso_extra}"""

ROUTES = """\
upstreams:
  a: { endpoints: ["http://$echo_a"] }
routes:
  - name: open
    match: { path_prefix: /open }
    to: a
  - name: app
    match: { path_prefix: /app }
    sso: { forward: { email: x-user-email, sub: x-user, name: x-user-name, groups: x-user-groups } }
    to: a
  - name: admin
    match: { path_prefix: /admin }
    sso: { forward: { email: x-user-email }, groups: [admins] }
    to: a
  - name: token
    match: { path_prefix: /token }
    sso: { forward: { email: x-user-email }, forward_access_token: true }
    to: a
  - name: rest
    match: { path_prefix: / }
    sso: { forward: { email: x-user-email } }
    to: a
"""

ROUTES_COOKIE_STORE = ROUTES.replace(
    "  - name: token\n    match: { path_prefix: /token }\n"
    "    sso: { forward: { email: x-user-email }, forward_access_token: true }\n    to: a\n", "")


def write_keys_file(directory, n=1):
    """`openssl rand -hex 32` per line (n keys, the first seals)."""
    path = os.path.join(str(directory), "sso-keys")
    with open(path, "w") as f:
        for _ in range(n):
            f.write(subprocess.run(["openssl", "rand", "-hex", "32"], capture_output=True, text=True, check=True).stdout)
    os.chmod(path, 0o600)
    return path


def write_secret_file(directory, secret, name="client-secret"):
    path = os.path.join(str(directory), name)
    with open(path, "w") as f:
        f.write(secret + "\n")
    os.chmod(path, 0o600)
    return path


def sso_template(redis=True, routes=None, session_extra=""):
    return HEAD + (REDIS if redis else "") + PROVIDERS + SSO + (routes or (ROUTES if redis else ROUTES_COOKIE_STORE))


def sso_values(workdir, op, redis=None, client=None, refresh_before="3s", token_timeout="2s", cache_ttl="0s",
               session_extra="", sso_extra=""):
    client = client or op.basic
    v = dict(issuer=op.issuer, client_id=client.client_id, client_auth=client.auth_method,
             secret_file=write_secret_file(workdir, client.client_secret), keys_file=write_keys_file(workdir),
             refresh_before=refresh_before, token_timeout=token_timeout, cache_ttl=cache_ttl,
             session_extra=session_extra, sso_extra=sso_extra)
    if redis is not None:
        v["redis"] = redis.addr
    return v


def readyz(fx):
    status, _, body = fx.admin_get("/readyz")
    return status, json.loads(body)


def wait_sso_ready(fx, redis=True):
    """The provider discovered (endpoints and keys) and, with Redis, both workers connected."""
    wait_for(lambda: readyz(fx)[1].get("providers", {}).get("idp", {}).get("state") == "ok", 15 * SLOW,
             what="provider idp discovered (readyz state ok)")
    if redis:
        wait_for(lambda: (fx.metrics().get("ficus_redis_connected_workers") or 0) >= 2, 10 * SLOW,
                 what="both workers connected to redis")


# ---------------------------------------------------------------------------------------------------------------
# the browser


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie, request):
        return False

    def return_ok(self, cookie, request):
        return False


def parse_set_cookie(value):
    """'name=value; Path=/; Secure' -> (name, value, {attr-lower: value-or-True})."""
    parts = [p.strip() for p in value.split(";")]
    name, _, val = parts[0].partition("=")
    attrs = {}
    for p in parts[1:]:
        if not p:
            continue
        k, eq, v = p.partition("=")
        attrs[k.strip().lower()] = v.strip() if eq else True
    return name.strip(), val, attrs


class Browser:
    """Plays a browser against ficus (https://localhost:PORT, TLS verified with the test CA): sends
    `Accept: text/html`, never follows redirects, keeps ficus's cookies itself (so tests can read, tamper, replay
    them) and records every Set-Cookie. `op` is the browser's cookie jar at the OP (a requests.Session)."""

    def __init__(self, fx, op=None):
        self.fx = fx
        self.base = f"https://localhost:{fx.tls_port}"
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.verify = fx.certs.ca
        self.http.cookies.set_policy(_NoCookies())
        self.cookies = {}
        self.set_cookies = []  # every (name, value, attrs) received, in order
        self.op = op or requests.Session()
        self.op.trust_env = False

    def url(self, path):
        return path if path.startswith("https://") else self.base + path

    def request(self, method, path, headers=None, cookies=None, navigate=True, **kw):
        h = {}
        if navigate:
            h["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        h.update(headers or {})
        jar = dict(self.cookies) if cookies is None else cookies
        if jar:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        r = self.http.request(method, self.url(path), headers=h, allow_redirects=False, timeout=15 * SLOW, **kw)
        r.set_cookie_list = [parse_set_cookie(v) for v in r.raw.headers.getlist("Set-Cookie")]
        for name, value, attrs in r.set_cookie_list:
            self.set_cookies.append((name, value, attrs))
            if attrs.get("max-age") == "0" or value == "":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return r

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def xhr(self, path, method="GET", **kw):
        h = {"Accept": "application/json", "X-Requested-With": "XMLHttpRequest"}
        h.update(kw.pop("headers", {}))
        return self.request(method, path, headers=h, navigate=False, **kw)

    def start_login(self, op, path):
        """Navigate to PATH without a session: asserts the 302 to the OP's authorization endpoint, returns it."""
        r = self.get(path)
        assert r.status_code == 302, f"GET {path}: expected 302 to the OP, got {r.status_code} {r.text[:300]}"
        loc = r.headers["location"]
        assert loc.startswith(op.discovery["authorization_endpoint"] + "?"), loc
        return loc

    def login(self, op, path="/app/", user="alice"):
        """The whole login from a navigation to PATH: returns (callback response, final response at PATH)."""
        authz = self.start_login(op, path)
        callback = op.login(self.op, authz, user)
        assert callback.startswith(self.base + "/_ficus/callback?"), callback
        cb = self.get(callback)
        assert cb.status_code == 302, f"callback: {cb.status_code} {cb.text[:300]}"
        final = self.get(cb.headers["location"])
        return cb, final

    @property
    def session_id(self):
        return self.cookies.get("__Host-ficus")


def echo_json(r):
    assert r.status_code == 200, f"expected 200 from the upstream, got {r.status_code}: {r.text[:300]}"
    assert r.headers.get("x-upstream") == "a", r.headers
    return r.json()


def raw_get(fx, path, headers=()):
    """GET with the request target sent exactly as given (no client-side normalisation): (status, headers, body)."""
    ctx = ssl.create_default_context(cafile=fx.certs.ca)
    ctx.set_alpn_protocols(["http/1.1"])
    conn = http.client.HTTPSConnection("localhost", fx.tls_port, context=ctx, timeout=15 * SLOW)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        conn.close()


def access_entries(fx, pred=None):
    return [e for e in fx.access_log() if pred is None or pred(e)]


def wait_log_error(fx, error, path_prefix=None, n=1, timeout=5):
    """Waits until the access log has >= n entries with `error` == ERROR (and path starting with path_prefix)."""
    def find(entries):
        hits = [e for e in entries if e.get("error") == error and (path_prefix is None or str(e.get("path", "")).startswith(path_prefix))]
        return hits if len(hits) >= n else None
    return fx.wait_access_log(find, timeout=timeout, what=f"access log entry with error {error}")


# ---------------------------------------------------------------------------------------------------------------
# tokens signed with the OP's key


def op_private_jwk(op):
    from jwcrypto import jwk
    with open(os.path.join(op.workdir, "oidc-keys.json")) as f:
        keys = json.load(f)["keys"]
    return jwk.JWK(**keys[0]), keys[0]["kid"]


def mint(op, claims, typ="JWT", key=None):
    """A JWS signed with the OP's signing key (RS256, its kid) or with KEY (a jwcrypto JWK, e.g. a stranger's)."""
    from jwcrypto import jwk, jwt
    k, kid = op_private_jwk(op)
    if key is not None:
        k = key
    header = {"alg": "RS256", "kid": kid, "typ": typ}
    t = jwt.JWT(header=header, claims=claims)
    t.make_signed_token(k)
    return t.serialize()


def id_token_claims(op, client_id, nonce, sub="alice", **over):
    now = int(time.time())
    c = {"iss": op.issuer, "aud": client_id, "sub": sub, "iat": now, "exp": now + 300, "nonce": nonce,
         "email": f"{sub}@example.test", "sid": secrets.token_urlsafe(12)}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def logout_token_claims(op, client_id, sid=None, sub=None, **over):
    now = int(time.time())
    c = {"iss": op.issuer, "aud": client_id, "iat": now, "exp": now + 120, "jti": secrets.token_urlsafe(12),
         "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}
    if sid:
        c["sid"] = sid
    if sub:
        c["sub"] = sub
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def query(url):
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


# ---------------------------------------------------------------------------------------------------------------
# a provider, a redis-server and a ficus of their own


def sso_env(tmp_path, ficus_factory, certs, redis=True, client=None, template=None, placeholders=None, **values):
    """Starts an OidcProvider, a RedisServer (redis=True) and a ficus (2 workers) wired to them, and waits until SSO is
    ready. client: "basic" | "post" (default: basic with Redis, post without); template (default sso_template(redis))
    and its extra placeholders; values go to sso_values(). Returns (op, redis or None, fx); the caller stops op and
    redis (ficus_factory stops ficus)."""
    from conftest import free_port
    from oidc_fixtures import OidcProvider
    from redis_fixtures import RedisServer
    port = free_port()
    op = OidcProvider(tmp_path / "op", ficus_port=port, ca_file=certs.ca)
    rs = RedisServer(tmp_path / "redis") if redis else None
    c = getattr(op, client or ("basic" if redis else "post"))
    fx = ficus_factory(template or sso_template(redis=redis), tls_port=port,
                       **sso_values(tmp_path, op, rs, client=c, **values), **(placeholders or {}))
    wait_sso_ready(fx, redis=redis)
    return op, rs, fx


def parallel_get(fx, session_id, paths, rounds=1):
    """One thread and one keep-alive connection per path in PATHS (SO_REUSEPORT spreads connections over both
    workers), started together behind a barrier; each sends ROUNDS navigations (GET, Accept: text/html) with the
    session cookie SESSION_ID to its path (+ "/ROUND"). Returns [(status, body text or the upstream's x-user-email)],
    one per request that got an answer, and the list of request exceptions (a dead ficus shows there)."""
    results, errors = [], []
    lock = threading.Lock()
    barrier = threading.Barrier(len(paths))

    def one(path):
        with requests.Session() as s:
            s.verify, s.trust_env = fx.certs.ca, False
            barrier.wait(10 * SLOW)
            for k in range(rounds):
                try:
                    r = s.get(f"https://localhost:{fx.tls_port}{path}/{k}", allow_redirects=False, timeout=20 * SLOW,
                              headers={"Accept": "text/html", "Cookie": f"__Host-ficus={session_id}"})
                except requests.RequestException as e:
                    with lock:
                        errors.append(repr(e))
                    return
                ok = r.status_code == 200 and r.headers.get("x-upstream") == "a"
                with lock:
                    results.append((r.status_code, r.json()["headers"].get("x-user-email") if ok else r.text.strip()[:200]))

    threads = [threading.Thread(target=one, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60 * SLOW)
    return results, errors
