"""Shared helpers and fixtures for the JWT tests: keys and tokens made with jwcrypto (an implementation independent of
ficus), the HTTPS JWKS server fixture, and small assertion helpers (access log entry by request id, metric deltas).

Fixtures are imported into a test module with `from jwt_fixtures import *` (pytest collects them from there).
"""
import base64
import json
import os
import subprocess
import time
import uuid

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import utils as ec_utils
from jwcrypto import jwk
from jwcrypto.jwa import JWA

from conftest import FICUS_BIN, SLOW, free_port, wait_for
from jwks_server import JwksServer

ISSUER = "https://idp.test/"
AUDIENCE = "api://gateway"

WWW_MISSING = 'Bearer realm="ficus"'
WWW_INVALID_TOKEN = 'Bearer realm="ficus", error="invalid_token"'
WWW_INVALID_REQUEST = 'Bearer realm="ficus", error="invalid_request"'
WWW_INSUFFICIENT_SCOPE = 'Bearer realm="ficus", error="insufficient_scope"'

# every asymmetric algorithm ficus supports: alg -> (kty, parameter)
ASYM_ALGS = {
    "RS256": ("RSA", 2048), "RS384": ("RSA", 2048), "RS512": ("RSA", 2048),
    "PS256": ("RSA", 2048), "PS384": ("RSA", 2048), "PS512": ("RSA", 2048),
    "ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
}


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def gen_key(kty, param, kid, alg=None):
    if kty == "RSA":
        k = jwk.JWK.generate(kty="RSA", size=param, kid=kid)
    else:
        k = jwk.JWK.generate(kty=kty, crv=param, kid=kid)
    if alg:
        # the `alg` member pins the key to one algorithm (RFC 7517 4.4); jwcrypto keeps it in the export
        k = jwk.JWK(**{**json.loads(k.export()), "alg": alg})
    return k


def public(k):
    return k.export_public(as_dict=True)


def claims(**over):
    """Good claims for ISSUER/AUDIENCE valid for 10 minutes; keyword None removes a claim."""
    now = int(time.time())
    c = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now - 5, "nbf": now - 5, "exp": now + 600,
         "jti": uuid.uuid4().hex}
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def make_token(key, alg=None, claims_=None, header=None, header_raw=None, payload_raw=None, kid=True):
    """Compact JWS signed by jwcrypto's JWA primitives. header: extra/overriding header members (None value removes);
    header_raw / payload_raw: exact bytes for the encoded segments (e.g. invalid JSON)."""
    alg = alg or key.get("alg") or "RS256"
    h = {"alg": alg, "typ": "JWT"}
    if kid and key is not None and key.get("kid"):
        h["kid"] = key.get("kid")
    for k, v in (header or {}).items():
        if v is None:
            h.pop(k, None)
        else:
            h[k] = v
    hb = header_raw if header_raw is not None else json.dumps(h, separators=(",", ":")).encode()
    pb = payload_raw if payload_raw is not None else json.dumps(claims_ if claims_ is not None else claims(),
                                                                separators=(",", ":")).encode()
    signing_input = f"{b64u(hb)}.{b64u(pb)}".encode()
    sig = JWA.signing_alg(alg).sign(key, signing_input)
    return f"{signing_input.decode()}.{b64u(sig)}"


def hmac_token(secret, alg="HS256", claims_=None, header=None):
    """HS* token with a raw byte secret."""
    k = jwk.JWK(kty="oct", k=b64u(secret))
    h = {"kid": None}
    h.update(header or {})
    return make_token(k, alg=alg, claims_=claims_, header=h)


def ecdsa_token_any_curve(key, alg, claims_=None, kid=None):
    """ECDSA signature with whatever curve `key` has (jwcrypto refuses a curve that does not match the alg):
    the attacker's view of an ES256 token made with a P-384 key."""
    hashfn = {"ES256": hashes.SHA256(), "ES384": hashes.SHA384(), "ES512": hashes.SHA512()}[alg]
    h = {"alg": alg, "typ": "JWT", "kid": kid or key.get("kid")}
    signing_input = f"{b64u(json.dumps(h))}.{b64u(json.dumps(claims_ or claims()))}".encode()
    priv = key.get_op_key("sign")
    r, s = ec_utils.decode_dss_signature(priv.sign(signing_input, ec.ECDSA(hashfn)))
    size = (priv.curve.key_size + 7) // 8
    return f"{signing_input.decode()}.{b64u(r.to_bytes(size, 'big') + s.to_bytes(size, 'big'))}"


# ---------------------------------------------------------------------------------------------------------------
# fixtures


class Keys:
    """Session keys: keys.alg[ALG] (pinned with `alg`, kid = ALG lower-case), keys.k1/k2/k3 (RS256, pinned),
    keys.rsa_nopin (RSA without alg), keys.p384_nopin (P-384 without alg), keys.attacker (RSA, kid "attacker")."""

    def __init__(self):
        self.alg = {a: gen_key(kty, p, a.lower(), a) for a, (kty, p) in ASYM_ALGS.items()}
        self.k1 = gen_key("RSA", 2048, "k1", "RS256")
        self.k2 = gen_key("RSA", 2048, "k2", "RS256")
        self.k3 = gen_key("RSA", 2048, "k3", "RS256")
        self.rsa_nopin = gen_key("RSA", 2048, "rsa-nopin")
        self.p384_nopin = gen_key("EC", "P-384", "p384-nopin")
        self.attacker = gen_key("RSA", 2048, "attacker", "RS256")
        # same kid as k1, different key material: a "wrong key" signature
        self.k1_impostor = gen_key("RSA", 2048, "k1", "RS256")


@pytest.fixture(scope="session")
def keys():
    return Keys()


@pytest.fixture(scope="session")
def hs_secret():
    return os.urandom(48)


@pytest.fixture
def jwks_factory(certs):
    """jwks_factory(keys, start=True, port=None) -> JwksServer (stopped at teardown)."""
    started = []

    def make(keys=(), start=True, port=None, max_age=None):
        s = JwksServer(certs, port=port, start=start)
        s.set_keys(list(keys))
        s.max_age = max_age
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


# ---------------------------------------------------------------------------------------------------------------
# requests and observations


class Resp:
    def __init__(self, r, request_id):
        self.status = r.status_code
        self.headers = r.headers
        self.text = r.text
        self.request_id = request_id
        try:
            self.json = r.json()
        except ValueError:
            self.json = None

    @property
    def upstream_headers(self):
        """Headers the echo upstream received (only for proxied 200s)."""
        assert self.status == 200 and self.json and "headers" in self.json, f"not an echo answer: {self.status} {self.text[:300]}"
        return self.json["headers"]

    def __repr__(self):
        return f"<Resp {self.status} {dict(self.headers)} {self.text[:200]!r}>"


def get(client, path, token=None, headers=None, auth=None):
    """GET with a fresh X-Request-Id (to find the access log line); token -> Authorization: Bearer token."""
    rid = uuid.uuid4().hex
    h = {"x-request-id": rid}
    if token is not None:
        h["authorization"] = f"Bearer {token}"
    if auth is not None:
        h["authorization"] = auth
    h.update(headers or {})
    return Resp(client.get(path, headers=h), rid)


def log_entry(fx, request_id, timeout=5):
    """The access log line of one request (waits for the flush)."""
    return fx.wait_access_log(lambda es: next((e for e in es if e.get("request_id") == request_id), None), timeout,
                              what=f"access log line for request {request_id}")


def validations(fx, provider, result=None, reason=None):
    labels = {"provider": provider}
    if result:
        labels["result"] = result
    if reason:
        labels["reason"] = reason
    return fx.metrics().sum("ficus_jwt_validations_total", **labels)


def wait_metric_delta(read, before, expected, timeout=3):
    """Wait (bounded) until read() - before >= expected and return the final delta (which the caller asserts)."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        d = read() - before
        if d >= expected or time.monotonic() > deadline:
            return d
        time.sleep(0.05)


def readyz(fx):
    status, _, body = fx.admin_get("/readyz")
    try:
        return status, json.loads(body)
    except ValueError:
        pytest.fail(f"/readyz answered {status} with a body that is not JSON: {body!r}")


def check_config(path, cwd=None):
    """ficus -t -c path -> CompletedProcess (text)."""
    return subprocess.run([FICUS_BIN, "-t", "-c", str(path)], capture_output=True, text=True, timeout=30 * SLOW, cwd=cwd)


