"""JWT bearer authentication (.work/CONTRACT-JWT.md), black-box: tokens are made by jwcrypto (never by ficus), keys are
served by an HTTPS JWKS server (jwks_server.py) whose certificate the test CA signs, requests go through ficus over TLS
to an echo upstream that shows the headers it received.

Module-scoped ficus (`fx`): validation, reasons, algorithms, confusion, leeway, scopes, spoofing, token sources.
Function-scoped ficus: the JWKS lifecycle (rotation, single-flight refetch, IdP down / garbage / 500 / hang, IdP
down at start, discovery; the refetch budget and the unknown-kid cache are in test_jwks_refetch.py). `ficus -t` for
configuration errors.
"""
import concurrent.futures
import json
import os
import re
import time
import uuid

import httpx
import pytest
from jwcrypto import jwk

from conftest import SLOW, free_port, h1_raw, module_ficus, wait_for
from jwks_server import DISCOVERY_PATH, JwksServer
from jwt_fixtures import (ASYM_ALGS, AUDIENCE, ISSUER, WWW_INSUFFICIENT_SCOPE, WWW_INVALID_REQUEST, WWW_INVALID_TOKEN,
                          WWW_MISSING, b64u, check_config, claims, ecdsa_token_any_curve, gen_key, get, hmac_token,
                          log_entry, make_token, readyz, validations, wait_metric_delta)
from jwt_fixtures import hs_secret, jwks_factory, keys  # noqa: F401 - fixtures

ALL_ALGS = list(ASYM_ALGS)

MAIN = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
providers:
  corp:
    issuer: "https://idp.test/"
    jwks_uri: "$jwks_uri"
    ca_file: "$ca"
    audiences: ["api://gateway"]
    algorithms: [RS256, ES256]
    kid_wait: 1s
  all:
    issuer: "https://idp.test/"
    jwks_uri: "$jwks_uri"
    ca_file: "$ca"
    audiences: ["api://gateway"]
    algorithms: [RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA]
    kid_wait: 1s
  lee60:
    issuer: "https://idp.test/"
    jwks_uri: "$jwks_uri"
    ca_file: "$ca"
    leeway: 60s
  lee10:
    issuer: "https://idp.test/"
    jwks_uri: "$jwks_uri"
    ca_file: "$ca"
    leeway: 10s
  hs:
    issuer: "https://idp.test/"
    hs_secret_file: "$hs_file"
    audiences: ["api://gateway"]
    algorithms: [HS256]
upstreams:
  a: { endpoints: ["http://$echo_a"] }
routes:
  - name: api
    match: { path_prefix: /api }
    jwt:
      provider: corp
      required: true
      forward: { sub: x-user-id, email: x-user-email }
    to: a
  - name: fwd
    match: { path_prefix: /fwd }
    jwt: { provider: corp, required: true, forward: { sub: x-user-id }, forward_token: true }
    to: a
  - name: scoped
    match: { path_prefix: /scoped }
    jwt:
      provider: corp
      required: true
      scopes: [orders]
      claims: { tenant: [acme, globex] }
      forward: { sub: x-user-id }
    to: a
  - name: opt
    match: { path_prefix: /opt }
    jwt: { provider: corp, required: false, forward: { sub: x-user-id } }
    to: a
  - name: cookie
    match: { path_prefix: /cookie }
    jwt: { provider: corp, required: true, cookie: access_token, forward: { sub: x-user-id } }
    to: a
  - name: query
    match: { path_prefix: /query }
    jwt: { provider: corp, required: true, query_param: access_token, forward: { sub: x-user-id } }
    to: a
  - name: all
    match: { path_prefix: /all }
    jwt: { provider: all, required: true, forward: { sub: x-user-id } }
    to: a
  - name: hs
    match: { path_prefix: /hs }
    jwt: { provider: hs, required: true, forward: { sub: x-user-id } }
    to: a
  - name: lee60
    match: { path_prefix: /lee60 }
    jwt: { provider: lee60, required: true }
    to: a
  - name: lee10
    match: { path_prefix: /lee10 }
    jwt: { provider: lee10, required: true }
    to: a
  - name: open
    match: { path_prefix: /open }
    to: a
"""


@pytest.fixture(scope="module")
def idp(request, certs, keys):
    k = keys
    small = gen_key("RSA", 1024, "rsa1024", "RS256")
    s = JwksServer(certs)
    s.set_keys([*k.alg.values(), k.k1, k.rsa_nopin, k.p384_nopin, small])
    request.addfinalizer(s.stop)
    s.small_key = small
    return s


@pytest.fixture(scope="module")
def fx(request, tmp_path_factory, certs, echoes, idp, hs_secret):
    d = tmp_path_factory.mktemp("jwt-secret")
    hs_file = d / "hs.key"
    hs_file.write_bytes(hs_secret)
    f = module_ficus(request, tmp_path_factory, certs, echoes, MAIN, jwks_uri=idp.jwks_uri, hs_file=hs_file)
    # every jwks_uri provider has its keys before the first test
    wait_for(lambda: all(p.get("state") == "ok" for p in readyz(f)[1].get("providers", {}).values())
             and len(readyz(f)[1].get("providers", {})) == 5, 15 * SLOW, what="providers ready")
    return f


@pytest.fixture(scope="module")
def client(fx):
    with fx.client(limits=httpx.Limits(max_connections=100)) as c:
        yield c


def assert_401(fx, client, path, token=None, auth=None, reason=None, provider="corp", www=WWW_INVALID_TOKEN,
               body_error="invalid_token", headers=None):
    before = validations(fx, provider, reason=reason)
    r = get(client, path, token=token, auth=auth, headers=headers)
    assert r.status == 401, r
    assert r.headers.get_list("www-authenticate") == [www], r
    assert r.json == {"error": body_error}, r
    d = wait_metric_delta(lambda: validations(fx, provider, reason=reason), before, 1)
    assert d == 1, f"ficus_jwt_validations_total{{provider={provider},reason={reason}}} moved by {d}"
    e = log_entry(fx, r.request_id)
    assert e["status"] == 401
    assert e["error"] == f"jwt_{reason}", e
    return r


# ---------------------------------------------------------------------------------------------------------------
# valid tokens


def test_valid_token_forwards_identity_and_drops_authorization(fx, client, keys):
    tok = make_token(keys.k1, claims_=claims(sub="alice", email="alice@example.com"))
    before = validations(fx, "corp", result="valid", reason="ok")
    r = get(client, "/api/orders", token=tok)
    assert r.status == 200, r
    h = r.upstream_headers
    assert h.get("x-user-id") == "alice"
    assert h.get("x-user-email") == "alice@example.com"
    assert "authorization" not in h, h
    e = log_entry(fx, r.request_id)
    assert e["status"] == 200 and e["route"] == "api" and e["error"] is None, e
    assert wait_metric_delta(lambda: validations(fx, "corp", result="valid", reason="ok"), before, 1) == 1
    assert tok not in fx.stdout() and tok not in fx.stderr(), "the token leaked into a log"


def test_forward_token_true_keeps_authorization(client, keys):
    tok = make_token(keys.k1)
    r = get(client, "/fwd/x", token=tok)
    assert r.status == 200, r
    assert r.upstream_headers.get("authorization") == f"Bearer {tok}"
    assert r.upstream_headers.get("x-user-id") == "alice"


def test_scheme_is_case_insensitive(client, keys):
    r = get(client, "/api/x", auth=f"bEaReR {make_token(keys.k1)}")
    assert r.status == 200, r


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt", "application/at+jwt"])
def test_accepted_typ(client, keys, typ):
    r = get(client, "/api/x", token=make_token(keys.k1, header={"typ": typ}))
    assert r.status == 200, r


def test_audience_array_containing_ours(client, keys):
    r = get(client, "/api/x", token=make_token(keys.k1, claims_=claims(aud=["api://other", AUDIENCE])))
    assert r.status == 200, r


def test_same_token_twice(client, keys):
    """The second request may come from the per-worker cache: same answer."""
    tok = make_token(keys.k1, claims_=claims(sub="cached"))
    for _ in range(3):
        r = get(client, "/api/x", token=tok)
        assert r.status == 200 and r.upstream_headers.get("x-user-id") == "cached", r


@pytest.mark.parametrize("alg", ALL_ALGS)
def test_every_algorithm(fx, client, keys, alg):
    tok = make_token(keys.alg[alg], claims_=claims(sub=f"user-{alg}"))
    r = get(client, "/all/x", token=tok)
    assert r.status == 200, r
    assert r.upstream_headers.get("x-user-id") == f"user-{alg}"


def test_hs256_with_secret_file(fx, client, hs_secret):
    r = get(client, "/hs/x", token=hmac_token(hs_secret, claims_=claims(sub="hs-user")))
    assert r.status == 200, r
    assert r.upstream_headers.get("x-user-id") == "hs-user"
    # wrong secret
    assert_401(fx, client, "/hs/x", token=hmac_token(os.urandom(48)), reason="bad_signature", provider="hs")


# ---------------------------------------------------------------------------------------------------------------
# one test per reason


def _now():
    return int(time.time())


def _alg_none(k):
    h = b64u(json.dumps({"alg": "none", "typ": "JWT", "kid": "k1"}))
    return f"{h}.{b64u(json.dumps(claims()))}."


def _tampered(k):
    tok = make_token(k.k1, claims_=claims(sub="alice"))
    h, _, s = tok.split(".")
    return f"{h}.{b64u(json.dumps(claims(sub='admin')))}.{s}"


def _padded(k):
    tok = make_token(k.k1)
    h, p, s = tok.split(".")
    s_padded = s + "=" * (-len(s) % 4 or 4)  # whichever padding, never allowed in a JWS compact serialization
    return f"{h}.{p}.{s_padded}"


REASONS = [
    ("expired", "expired", lambda k: make_token(k.k1, claims_=claims(exp=_now() - 3600, iat=_now() - 7200,
                                                                      nbf=_now() - 7200))),
    ("not_yet_valid", "not_yet_valid", lambda k: make_token(k.k1, claims_=claims(nbf=_now() + 3600))),
    ("iat_in_future", "issued_in_future", lambda k: make_token(k.k1, claims_=claims(iat=_now() + 3600, nbf=None))),
    ("exp_missing", "missing_exp", lambda k: make_token(k.k1, claims_=claims(exp=None))),
    ("exp_string", "bad_claim_type", lambda k: make_token(k.k1, claims_=claims(exp=str(_now() + 600)))),
    ("wrong_iss", "bad_issuer", lambda k: make_token(k.k1, claims_=claims(iss="https://evil.test/"))),
    ("wrong_aud", "bad_audience", lambda k: make_token(k.k1, claims_=claims(aud=["api://other", "api://x"]))),
    ("alg_none", "alg_none", _alg_none),
    ("alg_not_allowed", "alg_not_allowed", lambda k: make_token(k.alg["RS384"])),
    ("crit", "crit", lambda k: make_token(k.k1, header={"crit": ["x-policy"], "x-policy": 1})),
    ("typ_jose", "bad_typ", lambda k: make_token(k.k1, header={"typ": "JOSE"})),
    ("unknown_kid", "unknown_kid", lambda k: make_token(k.attacker, header={"kid": "unknown-" + uuid.uuid4().hex})),
    ("tampered_payload", "bad_signature", _tampered),
    ("wrong_key_same_kid", "bad_signature", lambda k: make_token(k.k1_impostor)),
    ("two_segments", "malformed", lambda k: ".".join(make_token(k.k1).split(".")[:2])),
    ("padding", "malformed", _padded),
    ("too_large", "too_large", lambda k: make_token(k.k1, claims_=claims(filler="x" * 9000))),
    ("bad_header_json", "bad_header", lambda k: make_token(k.k1, header_raw=b'{"alg":"RS256","kid":"k1",')),
    ("bad_payload_json", "bad_payload", lambda k: make_token(k.k1, payload_raw=b'{"sub":"alice",')),
]


@pytest.mark.parametrize("case,reason,build", REASONS, ids=[r[0] for r in REASONS])
def test_invalid_token_reason(fx, client, keys, case, reason, build):
    tok = build(keys)
    t0 = time.monotonic()
    assert_401(fx, client, "/api/x", token=tok, reason=reason)
    if reason == "unknown_kid":
        assert time.monotonic() - t0 < 1 + 1.5, "unknown kid waited longer than kid_wait (1s) + 1.5s"


def test_invalid_token_reason_never_reaches_upstream_or_client(fx, client, keys):
    """The generic body: no reason text in the response to the client."""
    r = get(client, "/api/x", token=make_token(keys.k1, claims_=claims(exp=_now() - 3600)))
    assert r.status == 401
    assert "expired" not in r.text and "expired" not in str(dict(r.headers))


# ---------------------------------------------------------------------------------------------------------------
# algorithm confusion and header-supplied keys


def test_hs256_signed_with_rsa_public_key_pem(fx, client, keys):
    pem = keys.k1.export_to_pem()  # the public key as the IdP publishes it
    for path, provider in (("/api/x", "corp"), ("/all/x", "all")):
        tok = hmac_token(pem, header={"kid": "k1"})
        r = get(client, path, token=tok)
        assert r.status == 401, (path, r)
        assert r.headers.get("www-authenticate") == WWW_INVALID_TOKEN
        e = log_entry(fx, r.request_id)
        assert e["error"] in ("jwt_alg_not_allowed", "jwt_key_alg_mismatch"), e


def test_es256_signed_with_p384_key(fx, client, keys):
    tok = ecdsa_token_any_curve(keys.p384_nopin, "ES256")
    r = get(client, "/all/x", token=tok)
    assert r.status == 401, r
    assert r.headers.get("www-authenticate") == WWW_INVALID_TOKEN
    assert log_entry(fx, r.request_id)["error"] in ("jwt_key_alg_mismatch", "jwt_no_key"), "curve mismatch reason"


def test_pinned_key_alg_mismatch(fx, client, keys):
    """A key whose JWK `alg` is PS256 used with RS256 (same RSA key material): rejected."""
    tok = make_token(keys.alg["PS256"], alg="RS256")
    r = get(client, "/all/x", token=tok)
    assert r.status == 401, r
    assert log_entry(fx, r.request_id)["error"] in ("jwt_key_alg_mismatch", "jwt_no_key")


@pytest.mark.parametrize("member", ["jwk", "jku", "x5u"])
def test_header_supplied_key_is_ignored(fx, client, idp, keys, member):
    atk = keys.attacker
    path = f"/attacker-{member}.json"
    idp.extra[path] = (200, json.dumps({"keys": [atk.export_public(as_dict=True)]}).encode())
    value = atk.export_public(as_dict=True) if member == "jwk" else f"https://localhost:{idp.port}{path}"
    # (a) kid of a trusted key, signed by the attacker, attacker's key in the header
    tok = make_token(atk, header={"kid": "k1", member: value})
    r = get(client, "/api/x", token=tok)
    assert r.status == 401, r
    assert log_entry(fx, r.request_id)["error"] == "jwt_bad_signature"
    # (b) the attacker's own kid
    tok = make_token(atk, header={member: value})
    r = get(client, "/api/x", token=tok)
    assert r.status == 401, r
    assert log_entry(fx, r.request_id)["error"] == "jwt_unknown_kid"
    assert idp.count(path) == 0, f"ficus fetched the {member} URL from the token header"


def test_small_rsa_key_skipped(fx, client, idp):
    tok = make_token(idp.small_key)
    r = get(client, "/api/x", token=tok)
    assert r.status == 401, r
    assert log_entry(fx, r.request_id)["error"] in ("jwt_unknown_kid", "jwt_no_key")
    assert re.search(r"provider corp: \d+ keys loaded \([1-9]\d* skipped\)", fx.stderr()), fx.stderr_tail()


# ---------------------------------------------------------------------------------------------------------------
# leeway, scopes, claims


def test_leeway(fx, client, keys):
    tok = make_token(keys.k1, claims_=claims(exp=_now() - 30, iat=_now() - 300, nbf=_now() - 300))
    r = get(client, "/lee60/x", token=tok)
    assert r.status == 200, r
    assert_401(fx, client, "/lee10/x", token=tok, reason="expired", provider="lee10")


def test_missing_scope_403(fx, client, keys):
    tok = make_token(keys.k1, claims_=claims(scope="read write", tenant="acme"))
    before = validations(fx, "corp", reason="insufficient_scope")
    r = get(client, "/scoped/x", token=tok)
    assert r.status == 403, r
    assert r.headers.get_list("www-authenticate") == [WWW_INSUFFICIENT_SCOPE]
    assert r.json == {"error": "insufficient_scope"}
    assert log_entry(fx, r.request_id)["error"] == "jwt_insufficient_scope"
    assert wait_metric_delta(lambda: validations(fx, "corp", reason="insufficient_scope"), before, 1) == 1


@pytest.mark.parametrize("scope_claims", [
    {"scope": "read orders write"},
    {"scp": ["read", "orders"]},
    {"scp": "orders"},
], ids=["scope-string", "scp-array", "scp-string"])
def test_scope_forms_accepted(client, keys, scope_claims):
    r = get(client, "/scoped/x", token=make_token(keys.k1, claims_=claims(tenant="globex", **scope_claims)))
    assert r.status == 200, r
    assert r.upstream_headers.get("x-user-id") == "alice"


def test_scope_is_a_whole_word(client, keys):
    r = get(client, "/scoped/x", token=make_token(keys.k1, claims_=claims(scope="orders:read xorders", tenant="acme")))
    assert r.status == 403, r


@pytest.mark.parametrize("tenant,status", [
    ("acme", 200), ("initech", 403), (["initech", "globex"], 200), (["initech"], 403), (None, 403),
], ids=["match", "other", "array-any", "array-none", "absent"])
def test_claim_rule(client, keys, tenant, status):
    r = get(client, "/scoped/x", token=make_token(keys.k1, claims_=claims(scope="orders", tenant=tenant)))
    assert r.status == status, r
    if status == 403:
        assert r.headers.get("www-authenticate") == WWW_INSUFFICIENT_SCOPE
        assert r.json == {"error": "insufficient_scope"}


# ---------------------------------------------------------------------------------------------------------------
# identity header spoofing, optional auth, token sources


SPOOF = {"x-user-id": "admin", "X-User-Email": "root@evil.test"}


def test_spoofed_identity_stripped_on_jwt_route(client, keys):
    r = get(client, "/api/x", token=make_token(keys.k1, claims_=claims(sub="alice")), headers=SPOOF)
    assert r.status == 200, r
    h = r.upstream_headers
    assert h.get("x-user-id") == "alice", h
    assert "x-user-email" not in h, h


def test_spoofed_identity_stripped_on_route_without_jwt(client):
    r = get(client, "/open/x", headers=SPOOF)
    assert r.status == 200, r
    assert "x-user-id" not in r.upstream_headers and "x-user-email" not in r.upstream_headers, r.upstream_headers


def test_optional_route_without_token(client):
    r = get(client, "/opt/x", headers=SPOOF)
    assert r.status == 200, r
    assert "x-user-id" not in r.upstream_headers and "x-user-email" not in r.upstream_headers, r.upstream_headers


def test_optional_route_with_tokens(fx, client, keys):
    r = get(client, "/opt/x", token=make_token(keys.k1, claims_=claims(sub="bob")))
    assert r.status == 200 and r.upstream_headers.get("x-user-id") == "bob", r
    # a token that is present is validated
    assert_401(fx, client, "/opt/x", token=make_token(keys.k1, claims_=claims(exp=_now() - 3600)), reason="expired")


def test_missing_token(fx, client):
    assert_401(fx, client, "/api/x", reason="missing_token", www=WWW_MISSING, body_error="missing_token")


def test_basic_scheme_invalid_request(fx, client):
    assert_401(fx, client, "/api/x", auth="Basic YWxhZGRpbjpvcGVuc2VzYW1l", reason="bad_request",
               www=WWW_INVALID_REQUEST, body_error="invalid_request")


@pytest.mark.parametrize("auth", [b"Bearer", b"Bearer a b", b"Bearer a,b", b"Bearer a=b", b"Bearer a\"b", b"Bearer a\xe9b",
                                  b"Token abc"],
                         ids=["empty", "two-words", "comma", "inner-equals", "quote", "non-ascii", "other-scheme"])
def test_bad_bearer_values_invalid_request(fx, auth):
    req = (b"GET /api/x HTTP/1.1\r\nHost: localhost\r\nAuthorization: " + auth +
           b"\r\nConnection: close\r\n\r\n")
    status, headers, body = h1_raw(fx.tls_port, req, ca=fx.certs.ca)
    assert status == 401, (status, headers, body)
    assert [v for k, v in headers if k == "www-authenticate"] == [WWW_INVALID_REQUEST], headers
    assert json.loads(body) == {"error": "invalid_request"}


def test_two_authorization_headers_invalid_request(fx, client, keys):
    tok = make_token(keys.k1)
    rid = uuid.uuid4().hex
    r = client.get("/api/x", headers=[("x-request-id", rid), ("authorization", f"Bearer {tok}"),
                                      ("authorization", f"Bearer {tok}")])
    assert r.status_code == 401, r.text
    assert r.headers.get("www-authenticate") == WWW_INVALID_REQUEST


def test_query_string_is_never_a_token_source(client, keys):
    tok = make_token(keys.k1)
    r = client.get(f"/api/x?access_token={tok}&token={tok}")
    assert r.status_code == 401 and r.headers.get("www-authenticate") == WWW_MISSING, r.text


def test_query_param_token_source_when_configured(fx, client, keys):
    tok = make_token(keys.k1, claims_=claims(sub="query-user"))
    for path, upstream_path in [(f"/query/x?access_token={tok}", "/query/x"),
                                (f"/query/x?a=1&access_token={tok}&b=2", "/query/x?a=1&b=2"),
                                (f"/query/x?a=1&access_token={tok}", "/query/x?a=1")]:
        r = get(client, path)
        assert r.status == 200, r
        e = r.json
        assert e["headers"].get("x-user-id") == "query-user"
        assert e["path"] == upstream_path, e["path"]  # the token never reaches the upstream's URL
    r = get(client, "/query/x?access_token=not.a.token")
    assert r.status == 401, r


def test_cookie_token_source(client, keys):
    tok = make_token(keys.k1, claims_=claims(sub="cookie-user"))
    r = get(client, "/cookie/x", headers={"cookie": f"theme=dark; access_token={tok}"})
    assert r.status == 200, r
    assert r.upstream_headers.get("x-user-id") == "cookie-user"
    # the cookie is not a source on a route that does not name it
    r = get(client, "/api/x", headers={"cookie": f"access_token={tok}"})
    assert r.status == 401, r


def test_http2(fx, keys):
    tok = make_token(keys.k1, claims_=claims(sub="h2-user"))
    with fx.client(http2=True) as c:
        r = c.get("/api/x", headers={"authorization": f"Bearer {tok}"})
        assert r.http_version == "HTTP/2"
        assert r.status_code == 200 and r.json()["headers"].get("x-user-id") == "h2-user", r.text
        r = c.get("/api/x", headers={"authorization": "Bearer x.y.z"})
        assert r.status_code == 401 and r.headers.get("www-authenticate") == WWW_INVALID_TOKEN


def test_readyz_and_metrics(fx):
    status, doc = readyz(fx)
    assert status == 200, doc
    prov = doc["providers"]
    assert set(prov) == {"corp", "all", "lee60", "lee10", "hs"}, prov
    # "all" allows every algorithm: the 13 keys of the set minus nothing but the 1024-bit RSA key (skipped)
    assert prov["all"]["state"] == "ok" and prov["all"]["keys"] == 13, prov
    assert prov["corp"]["state"] == "ok" and prov["corp"]["keys"] >= 3, prov
    assert prov["hs"]["state"] == "ok", prov
    m = fx.metrics()
    assert m.get("ficus_jwks_keys", provider="all") == 13
    assert m.sum("ficus_jwks_fetches_total", provider="corp", result="success") >= 1
    assert m.get("ficus_jwks_age_seconds", provider="corp") is not None
    assert m.get("ficus_jwks_forced_refetches_total", provider="corp") is not None


# ---------------------------------------------------------------------------------------------------------------
# JWKS lifecycle (one ficus per test)


LIFE = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
providers:
  corp:
    issuer: "$issuer"
$source
    ca_file: "$ca"
    audiences: ["api://gateway"]
$opts
upstreams:
  a: { endpoints: ["http://$echo_a"] }
routes:
  - name: api
    match: { path_prefix: /api }
    jwt: { provider: corp, required: true, forward: { sub: x-user-id } }
    to: a
  - name: open
    match: { path_prefix: /open }
    to: a
"""


def start_life(ficus_factory, srv, issuer=ISSUER, discovery=False, wait_keys=True, **opts):
    opts = {"refresh_min": "1s", "kid_wait": "1s", "fetch_timeout": "3s", **opts}
    source = "    discovery: true" if discovery else f'    jwks_uri: "{srv.jwks_uri}"'
    f = ficus_factory(LIFE, issuer=issuer, source=source, opts="\n".join(f"    {k}: {v}" for k, v in opts.items()))
    if wait_keys:
        wait_for(lambda: readyz(f)[1]["providers"]["corp"]["state"] == "ok", 10 * SLOW, what="provider corp ok")
    return f


def state(f):
    return readyz(f)[1]["providers"]["corp"]


def burst(client, path, tokens):
    """Concurrent GETs (one thread each): [(status, seconds)]."""
    def one(t):
        t0 = time.monotonic()
        r = client.get(path, headers={"authorization": f"Bearer {t}"})
        return r.status_code, time.monotonic() - t0

    with concurrent.futures.ThreadPoolExecutor(len(tokens)) as ex:
        return list(ex.map(one, tokens))


def test_rotation_single_flight_and_removal(ficus_factory, jwks_factory, keys):
    srv = jwks_factory([keys.k1], max_age=3600)
    f = start_life(ficus_factory, srv)
    with f.client(limits=httpx.Limits(max_connections=100)) as c:
        assert get(c, "/api/x", token=make_token(keys.k1)).status == 200
        # warm the connection pool so the burst below is 20 truly concurrent requests
        burst(c, "/open/x", ["-"] * 20)
        # the IdP adds k2; ficus learns it on the first k2 request (forced refetch), once for 20 concurrent requests
        srv.set_keys([keys.k1, keys.k2])
        srv.max_age = 6  # next scheduled refresh 6 s after the forced refetch: outside the burst
        c0 = srv.count()
        forced0 = f.metrics().get("ficus_jwks_forced_refetches_total", provider="corp")
        t0 = time.monotonic()
        res = burst(c, "/api/x", [make_token(keys.k2, claims_=claims(sub=f"u{i}")) for i in range(20)])
        took = time.monotonic() - t0
        assert [s for s, _ in res] == [200] * 20, res
        assert took < 5 * SLOW, f"burst took {took:.1f}s"
        assert srv.count() - c0 == 1, f"{srv.count() - c0} JWKS fetches for 20 concurrent requests with a new kid"
        assert f.metrics().get("ficus_jwks_forced_refetches_total", provider="corp") - forced0 == 1
        assert f.stderr().count("provider corp: unknown kid, refetching keys") == 1, f.stderr_tail()
        # the IdP drops k1; with max-age=1 (clamped to refresh_min 1s) the next refresh brings the new set in
        srv.set_keys([keys.k2])
        srv.max_age = 1
        k1_tok = make_token(keys.k1, claims_=claims(sub="old"))
        assert get(c, "/api/x", token=k1_tok).status == 200  # cached now, still valid with the current set
        wait_for(lambda: get(c, "/api/x", token=k1_tok).status == 401, 15 * SLOW, interval=0.2,
                 what="k1 token rejected after k1 left the JWKS")
        r = get(c, "/api/x", token=make_token(keys.k1))
        assert r.status == 401 and log_entry(f, r.request_id)["error"] == "jwt_unknown_kid"
        assert get(c, "/api/x", token=make_token(keys.k2)).status == 200
        assert get(c, "/api/x", token=k1_tok).status == 401  # not served from a stale cache entry


@pytest.mark.parametrize("failure", ["down", "garbage", "500"])
def test_refresh_failure_keeps_last_good_keys(ficus_factory, jwks_factory, keys, failure):
    srv = jwks_factory([keys.k1], max_age=1)
    f = start_life(ficus_factory, srv)
    with f.client() as c:
        assert get(c, "/api/x", token=make_token(keys.k1)).status == 200
        fails0 = f.metrics().sum("ficus_jwks_fetches_total", provider="corp", result="failure")
        if failure == "down":
            srv.stop()
        else:
            srv.mode = failure
        wait_for(lambda: f.metrics().sum("ficus_jwks_fetches_total", provider="corp", result="failure") >= fails0 + 2,
                 10 * SLOW, what="two failed refreshes")
        for i in range(3):  # fresh tokens: verified with the kept keys, not answered from the token cache
            r = get(c, "/api/x", token=make_token(keys.k1, claims_=claims(sub=f"s{i}")))
            assert r.status == 200, r
            assert r.upstream_headers.get("x-user-id") == f"s{i}"
        st = state(f)
        assert st["state"] in ("ok", "stale") and st["keys"] == 1, st
        assert "provider corp: JWKS fetch failed" in f.stderr()
        assert f.metrics().get("ficus_jwks_keys", provider="corp") == 1


def test_hanging_idp_does_not_block_requests(ficus_factory, jwks_factory, keys):
    srv = jwks_factory([keys.k1], max_age=3600)
    f = start_life(ficus_factory, srv, kid_wait="1s", fetch_timeout="5s")
    with f.client() as c:
        assert get(c, "/open/x").status == 200  # connection established before the timing below
        c0 = srv.count()
        srv.hang(20)
        t0 = time.monotonic()
        r = get(c, "/api/x", token=make_token(keys.attacker, header={"kid": "new-" + uuid.uuid4().hex}))
        took = time.monotonic() - t0
        assert r.status == 401, r
        assert took < 1 + 1.5 * SLOW, f"unknown-kid request took {took:.2f}s with a hanging IdP (kid_wait 1s)"
        assert srv.count() == c0 + 1  # the forced refetch is hanging at the IdP
        timed_out_rid = r.request_id
        for i in range(5):  # known kid, new tokens: answered while the fetch hangs
            t0 = time.monotonic()
            r = get(c, "/api/x", token=make_token(keys.k1, claims_=claims(sub=f"h{i}")))
            assert r.status == 200, r
            assert time.monotonic() - t0 < 1.0
        # a second unknown kid while the refetch still hangs: may join the in-flight refetch (bounded by kid_wait),
        # never starts a second fetch
        t0 = time.monotonic()
        r = get(c, "/api/x", token=make_token(keys.attacker, header={"kid": "new-" + uuid.uuid4().hex}))
        assert r.status == 401 and time.monotonic() - t0 < 1 + 1.5, r
        assert srv.count() == c0 + 1
        srv.unhang()
        assert log_entry(f, r.request_id)["error"] == "jwt_unknown_kid"
        # the request that waited kid_wait for the hanging refetch: reason unknown_kid as well (contract)
        assert log_entry(f, timed_out_rid)["error"] == "jwt_unknown_kid"


def test_idp_down_at_start_then_up(ficus_factory, jwks_factory, keys):
    srv = jwks_factory([keys.k1], start=False)
    f = start_life(ficus_factory, srv, wait_keys=False)
    with f.client() as c:
        wait_for(lambda: f.metrics().sum("ficus_jwks_fetches_total", provider="corp", result="failure") >= 1,
                 10 * SLOW, what="first failed fetch")
        before = validations(f, "corp", reason="no_keys")
        r = get(c, "/api/x", token=make_token(keys.k1))
        assert r.status == 503, r
        assert r.json == {"error": "auth_unavailable"}, r
        assert r.headers.get("retry-after") == "5"
        assert wait_metric_delta(lambda: validations(f, "corp", reason="no_keys"), before, 1) == 1
        st = state(f)
        assert st["state"] == "no_keys" and st["keys"] == 0, st
        assert get(c, "/open/x").status == 200  # other routes unaffected
        srv.start()
        t0 = time.monotonic()
        wait_for(lambda: get(c, "/api/x", token=make_token(keys.k1)).status == 200, 15, interval=0.2,
                 what="200 once the JWKS server is up")
        assert time.monotonic() - t0 < 15
        assert state(f)["state"] == "ok"


def test_discovery(ficus_factory, jwks_factory, keys):
    srv = jwks_factory([keys.k1])
    f = start_life(ficus_factory, srv, issuer=srv.issuer, discovery=True)
    with f.client() as c:
        r = get(c, "/api/x", token=make_token(keys.k1, claims_=claims(iss=srv.issuer, sub="disco")))
        assert r.status == 200, r
        assert r.upstream_headers.get("x-user-id") == "disco"
        r = get(c, "/api/x", token=make_token(keys.k1, claims_=claims(iss=ISSUER)))
        assert r.status == 401 and log_entry(f, r.request_id)["error"] == "jwt_bad_issuer"
    assert srv.count(DISCOVERY_PATH) >= 1


def test_discovery_issuer_mismatch_gives_no_keys(ficus_factory, jwks_factory, keys):
    srv = jwks_factory([keys.k1])
    srv.discovery_doc = {"issuer": "https://evil.test", "jwks_uri": srv.jwks_uri}
    f = start_life(ficus_factory, srv, issuer=srv.issuer, discovery=True, wait_keys=False)
    wait_for(lambda: srv.count(DISCOVERY_PATH) >= 1, 10 * SLOW, what="discovery fetch")
    wait_for(lambda: f.metrics().sum("ficus_jwks_fetches_total", provider="corp", result="failure") >= 1,
             10 * SLOW, what="failed discovery counted")
    with f.client() as c:
        assert get(c, "/api/x", token=make_token(keys.k1, claims_=claims(iss=srv.issuer))).status == 503
    assert srv.count() == 0, "ficus fetched the jwks_uri of a discovery document with the wrong issuer"


# ---------------------------------------------------------------------------------------------------------------
# configuration errors (ficus -t)

CHECK = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
providers:
  corp:
    issuer: "https://idp.test/"
    jwks_uri: "https://localhost:$jwks_port/jwks.json"
    ca_file: "$ca"
    algorithms: [RS256, ES256]
upstreams:
  a: { endpoints: ["http://127.0.0.1:9"] }
routes:
  - name: api
    match: { path_prefix: /api }
    jwt: { provider: corp, forward: { sub: x-user-id } }
    to: a
"""

CONFIG_ERRORS = [
    ("unknown-provider", [("    jwt: { provider: corp, forward: { sub: x-user-id } }\n",
                           "    jwt: { provider: nope, forward: { sub: x-user-id } }  #<\n")], "nope"),
    ("two-key-sources", [('    ca_file: "$ca"\n', '    ca_file: "$ca"\n    jwks_file: "$tmp/jwks.json"  #<\n'),
                         ("  corp:\n", "  corp:  #<\n"), ("/jwks.json\"\n", "/jwks.json\"  #<\n"),
                         ('    issuer: "https://idp.test/"\n', '    issuer: "https://idp.test/"  #< (the provider mapping)\n')],
     None),
    ("hs256-with-jwks-uri", [("algorithms: [RS256, ES256]\n", "algorithms: [HS256]  #<\n"),
                             ("  corp:\n", "  corp:  #<\n"), ("/jwks.json\"\n", "/jwks.json\"  #<\n")], "hs_secret_file"),
    ("jwks-file-empty", [('    jwks_uri: "https://localhost:$jwks_port/jwks.json"\n', '    jwks_file: "$tmp/empty.json"  #<\n'),
                         ("  corp:\n", "  corp:  #<\n")], None),
    ("jwks-file-only-small-rsa", [('    jwks_uri: "https://localhost:$jwks_port/jwks.json"\n',
                                   '    jwks_file: "$tmp/small.json"  #<\n'), ("  corp:\n", "  corp:  #<\n")], None),
    ("unknown-algorithm", [("algorithms: [RS256, ES256]\n", "algorithms: [RS256, XS999]  #<\n")], "XS999"),
    ("forward-to-host", [("    jwt: { provider: corp, forward: { sub: x-user-id } }\n",
                          "    jwt: { provider: corp, forward: { sub: Host } }  #<\n")], "header 'Host' cannot carry a claim"),
    ("forward-to-x-forwarded", [("    jwt: { provider: corp, forward: { sub: x-user-id } }\n",
                                 "    jwt: { provider: corp, forward: { sub: x-forwarded-user } }  #<\n")],
     "cannot carry a claim"),
]


def _render_check(text, certs, tmp_path):
    from string import Template
    return Template(text).substitute(tls_port=free_port(), jwks_port=free_port(), cert=certs.localhost[0],
                                     key=certs.localhost[1], ca=certs.ca, tmp=str(tmp_path))


def test_check_good_config(certs, tmp_path, keys):
    p = tmp_path / "good.yaml"
    p.write_text(_render_check(CHECK, certs, tmp_path))
    r = check_config(p)
    assert r.returncode == 0, r.stderr
    # a jwks_file with one usable key is good too
    (tmp_path / "one.json").write_text(json.dumps({"keys": [keys.k1.export_public(as_dict=True)]}))
    p.write_text(_render_check(CHECK.replace('jwks_uri: "https://localhost:$jwks_port/jwks.json"',
                                             'jwks_file: "$tmp/one.json"'), certs, tmp_path))
    r = check_config(p)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name,edits,word", CONFIG_ERRORS, ids=[c[0] for c in CONFIG_ERRORS])
def test_check_config_errors(certs, tmp_path, keys, name, edits, word):
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [keys.k1.export_public(as_dict=True)]}))
    (tmp_path / "empty.json").write_text(json.dumps({"keys": []}))
    small = jwk.JWK.generate(kty="RSA", size=1024, kid="small")
    (tmp_path / "small.json").write_text(json.dumps({"keys": [small.export_public(as_dict=True)]}))
    text = CHECK
    for old, new in edits:
        assert old in text, (name, old)
        text = text.replace(old, new, 1)
    lines = text.splitlines()
    want = {i + 1 for i, l in enumerate(lines) if "#<" in l}
    assert want, name
    p = tmp_path / f"{name}.yaml"
    p.write_text(_render_check(text, certs, tmp_path))
    r = check_config(p)
    assert r.returncode == 1, f"exit {r.returncode}; stdout {r.stdout!r} stderr {r.stderr!r}"
    m = re.search(rf"ficus: {re.escape(str(p))}:(\d+): (.*)", r.stderr)
    assert m, f"no FILE:LINE error in {r.stderr!r}"
    assert int(m.group(1)) in want, f"error on line {m.group(1)}, expected one of {sorted(want)}: {m.group(0)}"
    if word:
        assert word in m.group(2), m.group(0)
