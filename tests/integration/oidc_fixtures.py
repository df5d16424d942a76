"""A real OpenID provider for the SSO tests: npm `oidc-provider` (OpenID Certified) run by tests/oidc/provider.js.

Import the fixtures into a test module with `from oidc_fixtures import oidc_provider, oidc_factory, ficus_port`
(pytest collects them from there). tests/oidc/README.md describes the provider's configuration and control API.

    def test_login(ficus_factory, oidc_provider, ficus_port):
        f = ficus_factory(TEMPLATE, tls_port=ficus_port, issuer=oidc_provider.issuer,
                          client_id=oidc_provider.basic.client_id, ...)
        s = requests.Session()                              # plays the browser at the OP
        r = httpx.get(f.url("/app"), headers={"Accept": "text/html"}, verify=certs.ca)   # 302 to the OP
        callback = oidc_provider.login(s, r.headers["location"], "alice")               # not followed
        r = httpx.get(callback, verify=certs.ca)            # to ficus: code exchange, session cookie, 302

`login()` drives the provider's development interactions over plain HTTP: GET the authorization URL, follow the
OP's redirects to /interaction/UID, POST the login form (prompt=login, login=USERNAME, password=anything), follow
back through /auth/UID (consent is automatic: the provider creates a grant with every requested scope), until the
OP redirects to a URL outside the issuer: that URL (the client's redirect_uri with code, state, iss; or with
error=...) is returned without being requested.

Users: alice (groups staff, admins), bob (staff); any other name is refused (the login page comes back: LoginError).
Clients (`oidc_provider.clients`, `.basic`, `.post`): "ficus-basic" (client_secret_basic) and "ficus-post"
(client_secret_post), both with redirect_uri https://localhost:FICUS_PORT/_ficus/callback, post_logout_redirect_uris
https://localhost:FICUS_PORT/ and .../_ficus/logged-out, backchannel_logout_uri .../_ficus/backchannel-logout
(session required), RS256 ID tokens, PKCE S256 required, refresh tokens for every code exchange (rotated on use).
"""
import base64
import hashlib
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import threading
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit

import pytest
import requests

from conftest import SLOW, PortCollision, free_port
from ports import ATTEMPTS as PORT_ATTEMPTS, foreign_listeners

HERE = os.path.dirname(os.path.abspath(__file__))
OIDC_DIR = os.path.abspath(os.path.join(HERE, "..", "oidc"))
PROVIDER_JS = os.path.join(OIDC_DIR, "provider.js")
INSTALL_SH = os.path.join(OIDC_DIR, "install.sh")
NODE = os.environ.get("FICUS_NODE") or shutil.which("node") or "/usr/bin/node"

DEFAULT_SCOPE = "openid profile email"


class OidcError(AssertionError):
    """The provider answered something the flow did not expect (status, page and URL in the message)."""


class LoginError(OidcError):
    """The login page came back after submitting it (unknown user) or the flow never left the provider."""


# ---------------------------------------------------------------------------------------------------------------
# installation (once per test session)

_install_lock = threading.Lock()
_installed = False


def ensure_installed():
    """Run tests/oidc/install.sh once per process (node/npm present, `npm ci` when node_modules is stale)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        r = subprocess.run([INSTALL_SH], capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"tests/oidc/install.sh failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        _installed = True


# ---------------------------------------------------------------------------------------------------------------
# small helpers


def pkce_pair():
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def query_params(url):
    """The query of URL as a dict of single values."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


class _Forms(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms = []
        self._cur = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._cur = {"action": a.get("action") or "", "method": (a.get("method") or "get").lower(), "id": a.get("id"), "inputs": []}
            self.forms.append(self._cur)
        elif tag == "input" and self._cur is not None and a.get("name"):
            self._cur["inputs"].append({"name": a["name"], "type": (a.get("type") or "text").lower(), "value": a.get("value") or ""})

    def handle_endtag(self, tag):
        if tag == "form":
            self._cur = None


def parse_forms(html):
    """Forms of an HTML page: [{"action", "method", "id", "inputs": [{"name", "type", "value"}]}]."""
    p = _Forms()
    p.feed(html)
    return p.forms


class Client:
    """A registered client: client_id, client_secret, auth_method ("client_secret_basic" | "client_secret_post"),
    redirect_uri, post_logout_redirect_uris, backchannel_logout_uri; `metadata` is the registration as given."""

    def __init__(self, metadata):
        self.metadata = metadata
        self.client_id = metadata["client_id"]
        self.client_secret = metadata.get("client_secret")
        self.auth_method = metadata.get("token_endpoint_auth_method", "client_secret_basic")
        self.redirect_uri = metadata["redirect_uris"][0]
        self.post_logout_redirect_uris = metadata.get("post_logout_redirect_uris", [])
        self.backchannel_logout_uri = metadata.get("backchannel_logout_uri")

    def __repr__(self):
        return f"<Client {self.client_id} {self.auth_method}>"


def default_clients(ficus_port, host="localhost"):
    """The two clients registered for a ficus on https://localhost:FICUS_PORT (see the module docstring)."""
    base = f"https://{host}:{ficus_port}"
    common = {
        "redirect_uris": [f"{base}/_ficus/callback"],
        "post_logout_redirect_uris": [f"{base}/", f"{base}/_ficus/logged-out"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "backchannel_logout_uri": f"{base}/_ficus/backchannel-logout",
        "backchannel_logout_session_required": True,
        "id_token_signed_response_alg": "RS256",
    }
    return [
        dict(common, client_id="ficus-basic", client_secret="ficus-basic-secret-" + "0123456789abcdef",
             token_endpoint_auth_method="client_secret_basic"),
        dict(common, client_id="ficus-post", client_secret="ficus-post-secret-" + "0123456789abcdef",
             token_endpoint_auth_method="client_secret_post"),
    ]


# ---------------------------------------------------------------------------------------------------------------


class OidcProvider:
    """One `node tests/oidc/provider.js` on http://127.0.0.1:PORT (issuer), started by the constructor.

    Keyword settings (all optional): ttl={"AccessToken": 10, "IdToken": 60, "RefreshToken": ..., "Session": ...,
    "Grant": ..., "AuthorizationCode": ..., "Interaction": ...} (seconds), rotate_refresh_tokens (True | False |
    "default"), refresh_tokens ("always" | "offline_access"), id_token_claims (True: profile/email/groups claims in the
    ID token), auto_consent (True), auto_login (a username: no login page, for a browser), users ({name: claims}),
    clients (a list of client metadata dicts; default: default_clients(ficus_port)), ca_file (trusted for the
    back-channel logout POSTs to ficus: NODE_EXTRA_CA_CERTS), port (default: a free one, kept across stop/start).
    The provider's keys, cookie keys and data (sessions, grants, tokens) are kept across stop()/start().
    """

    def __init__(self, workdir, ficus_port=None, ca_file=None, clients=None, port=None, start=True, **settings):
        ensure_installed()
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.port = port or free_port()
        self._fixed_port = port is not None or not start  # a port somebody may already know is kept
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.ca_file = ca_file
        if clients is None:
            if ficus_port is None:
                raise ValueError("give ficus_port (for the default clients) or clients")
            clients = default_clients(ficus_port)
        self.clients = {c["client_id"]: Client(c) for c in clients}
        self.config_path = os.path.join(self.workdir, "oidc-provider.json")
        self.stderr_path = os.path.join(self.workdir, "oidc-provider.log")
        self.config = {
            "clients": clients,
            "keys_file": os.path.join(self.workdir, "oidc-keys.json"),
            "state_file": os.path.join(self.workdir, "oidc-state.json"),
            "cookie_keys": [secrets.token_urlsafe(32)],
            **settings,
        }
        with open(self.config_path, "w") as f:
            json.dump(self.config, f, indent=1)
        self.proc = None
        self.starts = 0
        self._discovery = None
        self._http = requests.Session()  # for control / back-channel calls (no cookies of the "browser")
        if start:
            self.start()

    # -- clients ----------------------------------------------------------------------------------------------
    @property
    def basic(self):
        """The first client_secret_basic client."""
        return next(c for c in self.clients.values() if c.auth_method == "client_secret_basic")

    @property
    def post(self):
        """The first client_secret_post client."""
        return next(c for c in self.clients.values() if c.auth_method == "client_secret_post")

    def _client(self, client):
        return client if isinstance(client, Client) else self.clients[client]

    # -- process ----------------------------------------------------------------------------------------------
    def start(self, timeout=None):
        """Start node (again, same port, keys and data) and wait for its "ready" line (bounded: 10 s x SLOW)."""
        if self.alive:
            return
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._start(timeout or 10 * SLOW)
                self._fixed_port = True
                return
            except PortCollision:
                if self._fixed_port or attempt == PORT_ATTEMPTS:
                    raise
                self.port = free_port()  # first start: nobody knows the port yet
                self.issuer = f"http://127.0.0.1:{self.port}"

    def _start(self, timeout):
        env = dict(os.environ)
        if self.ca_file:
            env["NODE_EXTRA_CA_CERTS"] = str(self.ca_file)
        env.pop("NODE_OPTIONS", None)
        self._err = open(self.stderr_path, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [NODE, PROVIDER_JS, "--config", self.config_path, "--port", str(self.port), "--exit-on-stdin-close"],
            cwd=OIDC_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, env=env,
            start_new_session=True,
        )
        line = b""
        deadline = t0 + timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                break
            r, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.2))
            if r:
                ch = os.read(self.proc.stdout.fileno(), 4096)
                if not ch:
                    break
                line += ch
        text = line.decode(errors="replace").strip()
        if not text.startswith("ready "):
            self.stop()
            if "EADDRINUSE" in self.log_tail():
                raise PortCollision([self.port], "the provider could not bind it")
            raise RuntimeError(f"oidc provider did not start within {timeout:.0f}s (stdout {text!r}); "
                               f"log {self.stderr_path}:\n{self.log_tail()}")
        if text.split()[1] != self.issuer:
            self.stop()
            raise RuntimeError(f"oidc provider says {text!r}, expected issuer {self.issuer}")
        if foreign_listeners([self.port], [self.proc.pid]):
            self.stop()
            raise PortCollision([self.port], "another process listens there too")
        self.startup_seconds = time.monotonic() - t0
        self.starts += 1

    def stop(self, timeout=5):
        """SIGTERM (SIGKILL after timeout); the port stays reserved for start()."""
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)
        for s in (p.stdin, p.stdout):
            try:
                s.close()
            except OSError:
                pass
        self._err.close()
        self.proc = None

    def kill(self):
        """SIGKILL, no goodbye (the data written so far is kept: the state file is written on every change)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.stop()

    def restart(self):
        self.stop()
        self.start()

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=40):
        try:
            with open(self.stderr_path, "rb") as f:
                return "\n".join(f.read().decode(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def url(self, path):
        return self.issuer + path

    # -- discovery / keys -------------------------------------------------------------------------------------
    @property
    def discovery(self):
        """The discovery document (fetched once)."""
        if self._discovery is None:
            r = self._http.get(self.url("/.well-known/openid-configuration"), timeout=5)
            r.raise_for_status()
            self._discovery = r.json()
        return self._discovery

    def jwks(self):
        r = self._http.get(self.discovery["jwks_uri"], timeout=5)
        r.raise_for_status()
        return r.json()

    # -- control API (/_test/) --------------------------------------------------------------------------------
    def _ctl(self, method, path, body=None):
        r = self._http.request(method, self.url("/_test/" + path), json=body, timeout=10)
        if r.status_code != 200:
            raise OidcError(f"control {method} /_test/{path}: {r.status_code} {r.text}")
        return r.json()

    def counters(self):
        """Requests counted on arrival since start/reset: {"token": n, "token:refresh_token": n,
        "token:authorization_code": n, "authorization": n, "discovery": n, "jwks": n, "userinfo": n,
        "end_session": n, "end_session_confirm": n, "interaction": n, "revocation": n, "introspection": n,
        "backchannel.success": n, "backchannel.error": n, "injected:ENDPOINT:MODE": n}; missing = 0."""
        return self._ctl("GET", "counters")

    def count(self, name):
        return self.counters().get(name, 0)

    def reset(self):
        """Counters, failure rules and the back-channel log back to empty (sessions and tokens stay)."""
        return self._ctl("POST", "reset")

    def fail(self, endpoint, mode, times=None, grant_type=None, delay_ms=None, status=None, body=None):
        """Make ENDPOINT ("token", "discovery", "jwks", "authorization", "userinfo", "end_session", ...) misbehave:
        mode "500" | "invalid_grant" (400 JSON) | "status" (status=N, body) | "delay" (delay_ms, then normal) |
        "hang" (no answer for delay_ms, default 30000, then the connection is closed) | "close" (connection closed
        at once) | "off". times=N: the next N matching requests only (default: until "off"). grant_type: only token
        requests of that grant type ("refresh_token", "authorization_code"). Returns the active rules."""
        body_ = {"endpoint": endpoint, "mode": str(mode)}
        for k, v in (("times", times), ("grant_type", grant_type), ("delay_ms", delay_ms), ("status", status), ("body", body)):
            if v is not None:
                body_[k] = v
        return self._ctl("POST", "fail", body_)

    def clear_failures(self, endpoint):
        return self._ctl("POST", "fail", {"endpoint": endpoint, "mode": "off"})

    def set_config(self, **kw):
        """At run time: ttl={...} (merged), auto_login, auto_consent, rotate_refresh_tokens, refresh_tokens,
        auto_logout_confirm. Applies to tokens issued from then on."""
        return self._ctl("POST", "config", kw)

    def sessions(self):
        """The OP's sessions: [{"id", "uid", "sub", "login_ts", "clients": {client_id: {"sid", "grant_id"}}}]."""
        return self._ctl("GET", "sessions")

    def backchannel_logout(self, sub=None, sid=None, client_id=None, end_session=True):
        """Send a logout_token (iss, aud, iat, exp, jti, sub, sid, events) to the backchannel_logout_uri of every
        client of every matching OP session and wait for the answers; end_session=True also deletes the OP
        session / the client's grant (its refresh tokens stop working). Returns [{"client_id", "sub", "sid", "ok",
        "error"?}] (ok = the RP answered 200 or 204 within 2.5 s)."""
        body = {"end_session": end_session}
        for k, v in (("sub", sub), ("sid", sid), ("client_id", client_id)):
            if v is not None:
                body[k] = v
        return self._ctl("POST", "backchannel-logout", body)

    def backchannel_log(self):
        """Every back-channel delivery since start/reset (from RP-initiated logout or backchannel_logout()):
        [{"client_id", "sub", "sid", "ok", "error"?, "at"}]."""
        return self._ctl("GET", "backchannel")

    def revoke(self, sub=None, client_id=None):
        """Delete the grants (and their tokens) of a user / client: the next refresh gets a genuine invalid_grant."""
        body = {k: v for k, v in (("sub", sub), ("client_id", client_id)) if v is not None}
        return self._ctl("POST", "revoke", body)

    # -- browser side -----------------------------------------------------------------------------------------
    def authorize_url(self, client=None, scope=DEFAULT_SCOPE, redirect_uri=None, **extra):
        """An authorization URL with fresh state, nonce and PKCE S256 (as an RP would build it). Returns
        (url, {"state", "nonce", "code_verifier", "redirect_uri", "client_id"})."""
        c = self._client(client or self.basic)
        verifier, challenge = pkce_pair()
        p = {
            "client_id": c.client_id, "response_type": "code", "scope": scope,
            "redirect_uri": redirect_uri or c.redirect_uri, "state": secrets.token_urlsafe(16),
            "nonce": secrets.token_urlsafe(16), "code_challenge": challenge, "code_challenge_method": "S256",
        }
        p.update({k: v for k, v in extra.items() if v is not None})
        url = self.discovery["authorization_endpoint"] + "?" + urlencode(p)
        return url, {"state": p["state"], "nonce": p["nonce"], "code_verifier": verifier,
                     "redirect_uri": p["redirect_uri"], "client_id": c.client_id}

    def drive(self, session, url, username=None, password="test-password", max_steps=25, timeout=10):
        """Act as the browser at the OP from URL on: follow the OP's redirects, submit its pages (login form with
        USERNAME, consent, logout confirmation, form_post-style auto-submitting pages) until the OP redirects
        outside the issuer. Returns that URL (not requested). If the flow ends on an OP page without a form
        (e.g. the sign-out success page) its URL is returned. Raises LoginError / OidcError otherwise."""
        method, data, logins = "GET", None, 0
        for _ in range(max_steps):
            r = session.request(method, url, data=data, allow_redirects=False, timeout=timeout)
            if r.status_code in (301, 302, 303, 307, 308):
                loc = urljoin(url, r.headers["location"])
                if not self._at_op(loc):
                    return loc
                method, data, url = ("POST" if r.status_code in (307, 308) and method == "POST" else "GET"), (
                    data if r.status_code in (307, 308) else None), loc
                continue
            if r.status_code != 200:
                raise OidcError(f"OP answered {r.status_code} at {method} {url}:\n{_page_text(r)}")
            forms = parse_forms(r.text) if "html" in r.headers.get("content-type", "") else []
            if not forms:
                return url
            form = forms[0]
            names = {i["name"]: i for i in form["inputs"]}
            action = urljoin(url, form["action"]) if form["action"] else url
            if "login" in names and names.get("prompt", {}).get("value") == "login":
                if username is None:
                    raise LoginError(f"the OP asks for a login at {url} and no username was given")
                logins += 1
                if logins > 1:
                    raise LoginError(f"the OP refused the login of {username!r} (login page shown again)")
                data = {"prompt": "login", "login": username, "password": password}
            else:
                visible = [i for i in form["inputs"] if i["type"] not in ("hidden", "submit")]
                if visible:
                    raise OidcError(f"unexpected form at {url} (fields {[i['name'] for i in visible]}):\n{_page_text(r)}")
                data = {i["name"]: i["value"] for i in form["inputs"] if i["type"] == "hidden"}
            if not self._at_op(action):
                raise OidcError(f"the OP posts a form to {action} (response_mode=form_post?); use the query mode")
            method, url = form["method"].upper(), action
        raise LoginError(f"still at the OP after {max_steps} steps (last {url})")

    def login(self, session, authorize_url, username, password="test-password", timeout=10):
        """Drive the login at the OP with a requests.Session (the browser's OP cookies live in it): returns the
        callback URL the OP redirects to (redirect_uri?code=...&state=...&iss=..., or ?error=...), NOT requested.
        With an OP session already in `session` there is no login page (SSO) and username is not used."""
        return self.drive(session, authorize_url, username=username, password=password, timeout=timeout)

    def end_session(self, session, end_session_url=None, id_token_hint=None, post_logout_redirect_uri=None,
                    state=None, client=None):
        """RP-initiated logout at the OP with the browser's session: either END_SESSION_URL as an RP redirected
        to (e.g. ficus's logout Location) or one built from the arguments. Confirms the logout page (logout=yes:
        the OP session ends and every client of it gets a back-channel logout_token). Returns where the OP sends
        the browser (post_logout_redirect_uri?state=..., not requested) or the OP's success page URL."""
        if end_session_url is None:
            p = {}
            if id_token_hint:
                p["id_token_hint"] = id_token_hint
            if post_logout_redirect_uri:
                p["post_logout_redirect_uri"] = post_logout_redirect_uri
            if state:
                p["state"] = state
            if client is not None and not id_token_hint:
                p["client_id"] = self._client(client).client_id
            end_session_url = self.discovery["end_session_endpoint"] + ("?" + urlencode(p) if p else "")
        return self.drive(session, end_session_url)

    def _at_op(self, url):
        return url == self.issuer or url.startswith(self.issuer + "/")

    # -- RP side (for tests without ficus) --------------------------------------------------------------------
    def token_request(self, client, data, timeout=10):
        """POST to the token endpoint authenticating as CLIENT with its method; returns the requests.Response."""
        c = self._client(client)
        data = dict(data)
        headers = {}
        if c.auth_method == "client_secret_basic":
            cred = f"{quote(c.client_id, safe='')}:{quote(c.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
        elif c.auth_method == "client_secret_post":
            data.update(client_id=c.client_id, client_secret=c.client_secret)
        else:
            data["client_id"] = c.client_id
        return self._http.post(self.discovery["token_endpoint"], data=data, headers=headers, timeout=timeout)

    def exchange_code(self, client, callback_url, code_verifier, redirect_uri=None):
        """authorization_code grant with the code of CALLBACK_URL; returns the response JSON (raises on error)."""
        c = self._client(client)
        code = query_params(callback_url)["code"]
        r = self.token_request(c, {"grant_type": "authorization_code", "code": code,
                                   "redirect_uri": redirect_uri or c.redirect_uri, "code_verifier": code_verifier})
        if r.status_code != 200:
            raise OidcError(f"code exchange: {r.status_code} {r.text}")
        return r.json()

    def refresh(self, client, refresh_token):
        """refresh_token grant; returns the requests.Response (200 with new tokens or 400 invalid_grant...)."""
        return self.token_request(client, {"grant_type": "refresh_token", "refresh_token": refresh_token})

    def verify_id_token(self, id_token, client, nonce=None, max_age_s=None):
        """Validate an ID token like an RP (jwcrypto): RS256 signature with the OP's JWKS, iss, aud, exp, iat,
        nonce (when given). Returns the claims dict."""
        from jwcrypto import jwk, jwt
        c = self._client(client)
        keys = jwk.JWKSet.from_json(json.dumps(self.jwks()))
        tok = jwt.JWT(jwt=id_token, key=keys, algs=["RS256"], check_claims=False)
        header = json.loads(tok.header)
        claims = json.loads(tok.claims)
        now = time.time()
        problems = []
        if header.get("alg") != "RS256":
            problems.append(f"alg {header.get('alg')}")
        if claims.get("iss") != self.issuer:
            problems.append(f"iss {claims.get('iss')}")
        aud = claims.get("aud")
        if aud != c.client_id and not (isinstance(aud, list) and c.client_id in aud):
            problems.append(f"aud {aud}")
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            problems.append(f"exp {claims.get('exp')}")
        if not isinstance(claims.get("iat"), int) or claims["iat"] > now + 5:
            problems.append(f"iat {claims.get('iat')}")
        if nonce is not None and claims.get("nonce") != nonce:
            problems.append(f"nonce {claims.get('nonce')}")
        if problems:
            raise OidcError("ID token rejected: " + ", ".join(problems))
        return claims


def _page_text(r, n=1500):
    t = r.text
    return t if len(t) <= n else t[:n] + "..."


# ---------------------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture
def ficus_port():
    """The TLS port the ficus under test will listen on (give it to ficus_factory as tls_port=ficus_port): the
    provider's client registration (redirect_uri, backchannel_logout_uri...) names it."""
    return free_port()



@pytest.fixture
def oidc_factory(tmp_path, certs):
    """make(ficus_port=None, **settings) -> a started OidcProvider (see its docstring), stopped at teardown; the CA
    of the session's certificates is trusted for back-channel logout calls."""
    made = []

    def make(ficus_port=None, name=None, **kw):
        kw.setdefault("ca_file", certs.ca)
        p = OidcProvider(tmp_path / (name or f"oidc{len(made)}"), ficus_port=ficus_port, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


@pytest.fixture
def oidc_provider(oidc_factory, ficus_port):
    """A started provider with the default clients for https://localhost:{ficus_port} and default settings."""
    return oidc_factory(ficus_port)
