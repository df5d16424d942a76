#!/usr/bin/python3
"""Generates tests/unit/data/jwt/vectors.json: JWT test vectors for tests/unit/test_jwt.c, made by an independent
implementation (Debian's python3-jwcrypto, and python3-cryptography for the few signatures jwcrypto refuses to make,
e.g. ES256 with a P-384 key). ficus code is never used here.

Usage: /usr/bin/python3 tests/unit/data/jwt/make_vectors.py [out.json]   (apt-get install -y python3-jwcrypto)

Keys are freshly generated on every run, so the file changes when regenerated; the C test reads every expectation from
the file, so any regenerated file is as valid as the committed one. Timestamps are fixed (NOW) so nothing depends on
the wall clock.

File layout:
  now                         the verification time for every vector
  keysets.NAME                {"jwks": <JWKS object>, "algorithms": [...], "min_rsa_bits": N}
                              or {"secret_b64url": "...", "kid": "..."|null, "algorithms": [...]}
  policies.NAME               {"issuer", "audiences", "algorithms", "leeway", "max_token_bytes"}
  vectors[]                   {"name", "keyset", "policy", "token", "expect"}   expect = ficus_jwt_status_name()
  jwks_documents[]            {"name", "document" (a string, parsed as-is), "algorithms", "min_rsa_bits",
                               "expect": "error" + "error_prefix" | "ok" + "num_keys", "num_skipped", "kids"}
"""
import base64
import json
import os
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwcrypto import jwk
from jwcrypto.jws import JWS, JWSCore

NOW = 1700000000
ISS = "https://idp.example.com/"
AUD = ["orders-api", "billing-api"]
ASYM_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
ALL_ALGS = ASYM_ALGS + ["HS256", "HS384", "HS512"]


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header, payload):
    """header: dict or exact JSON text; payload: dict or exact bytes. Returns (protected_b64, payload_b64) texts."""
    htext = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    ptext = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
    return b64(htext.encode()), b64(ptext)


def sign(key, header, payload, alg=None):
    """A compact JWS signed by jwcrypto (JWSCore: the exact header text we give is the protected header)."""
    htext = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    alg = alg or json.loads(htext)["alg"]
    ptext = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
    s = JWSCore(alg, key, htext, ptext).sign()
    token = "%s.%s.%s" % (s["protected"], s["payload"].decode(), s["signature"])
    return token


def claims(**over):
    c = {"iss": ISS, "sub": "alice", "aud": AUD[0], "exp": NOW + 600, "iat": NOW - 10, "scope": "orders:read"}
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def gen_rsa(bits, kid, **extra):
    k = jwk.JWK.generate(kty="RSA", size=bits, kid=kid, **extra)
    return k


def public(k):
    return json.loads(k.export_public())


def jwcrypto_verifies(token, key):
    try:
        t = JWS()
        t.allowed_algs = ALL_ALGS
        t.deserialize(token)
        t.verify(key)
        return True
    except Exception:  # noqa: BLE001 -- any failure means "does not verify with this key"
        return False


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.json")

    rsa1 = gen_rsa(2048, "rsa1")
    rsa2 = gen_rsa(2048, "rsa2")
    rsa_rs384 = gen_rsa(2048, "rsa-rs384-only", alg="RS384")
    rsa_weak = gen_rsa(1024, "rsa-weak")
    rsa_enc = gen_rsa(2048, "rsa-enc", use="enc")
    ec256 = jwk.JWK.generate(kty="EC", crv="P-256", kid="ec256")
    ec384 = jwk.JWK.generate(kty="EC", crv="P-384", kid="ec384")
    ec521 = jwk.JWK.generate(kty="EC", crv="P-521", kid="ec521")
    ed1 = jwk.JWK.generate(kty="OKP", crv="Ed25519", kid="ed1")
    # attackers' keys: never in any key set
    evil_rsa = gen_rsa(2048, "rsa1")  # same kid as the victim's key
    evil_ec = jwk.JWK.generate(kty="EC", crv="P-256", kid="attacker-key")

    main_jwks = {"keys": [public(k) for k in (rsa1, rsa2, rsa_rs384, rsa_weak, rsa_enc, ec256, ec384, ec521, ed1)]}
    secret = os.urandom(32)
    hs = jwk.JWK(kty="oct", k=b64(secret))
    rsa1_pem = rsa1.export_to_pem(private_key=False)  # the public key PEM, as an attacker would fetch it
    confusion_key = jwk.JWK(kty="oct", k=b64(rsa1_pem))

    keysets = {
        "main": {"jwks": main_jwks, "algorithms": ASYM_ALGS, "min_rsa_bits": 2048},
        "secret": {"secret_b64url": b64(secret), "kid": "hs1", "algorithms": ["HS256"]},
        "secret_nokid": {"secret_b64url": b64(secret), "kid": None, "algorithms": ["HS256", "HS384", "HS512"]},
    }
    base_policy = {"issuer": ISS, "audiences": AUD, "leeway": 60, "max_token_bytes": 8192}
    policies = {
        "default": dict(base_policy, algorithms=ASYM_ALGS),
        "noleeway": dict(base_policy, algorithms=ASYM_ALGS, leeway=0),
        "noaud": dict(base_policy, algorithms=ASYM_ALGS, audiences=[]),
        "mixed": dict(base_policy, algorithms=ALL_ALGS),  # misconfigured: HS allowed next to JWKS keys
        "hs256": dict(base_policy, algorithms=["HS256"]),
        "hs_all": dict(base_policy, algorithms=["HS256", "HS384", "HS512"]),
        "small": dict(base_policy, algorithms=ASYM_ALGS, max_token_bytes=512),
    }

    vectors = []

    def add(name, token, expect, keyset="main", policy="default"):
        vectors.append({"name": name, "keyset": keyset, "policy": policy, "token": token, "expect": expect})

    def hdr(alg, kid, **extra):
        h = {"alg": alg, "typ": "JWT"}
        if kid is not None:
            h["kid"] = kid
        h.update(extra)
        return h

    # every algorithm
    for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]:
        add("%s_ok" % alg.lower(), sign(rsa1, hdr(alg, "rsa1"), claims()), "ok")
    add("es256_ok", sign(ec256, hdr("ES256", "ec256"), claims()), "ok")
    add("es384_ok", sign(ec384, hdr("ES384", "ec384"), claims()), "ok")
    add("es512_ok", sign(ec521, hdr("ES512", "ec521"), claims()), "ok")
    add("eddsa_ok", sign(ed1, hdr("EdDSA", "ed1"), claims()), "ok")
    add("hs256_ok", sign(hs, hdr("HS256", "hs1"), claims()), "ok", "secret", "hs256")
    add("hs256_nokid_ok", sign(hs, hdr("HS256", None), claims()), "ok", "secret_nokid", "hs_all")
    add("hs384_ok", sign(hs, hdr("HS384", None), claims()), "ok", "secret_nokid", "hs_all")
    add("hs512_ok", sign(hs, hdr("HS512", None), claims()), "ok", "secret_nokid", "hs_all")
    add("hs384_not_allowed", sign(hs, hdr("HS384", "hs1"), claims()), "alg_not_allowed", "secret", "hs256")
    add("hs256_wrong_secret", sign(jwk.JWK(kty="oct", k=b64(os.urandom(32))), hdr("HS256", "hs1"), claims()), "bad_signature",
        "secret", "hs256")
    add("hs256_unknown_kid", sign(hs, hdr("HS256", "other"), claims()), "unknown_kid", "secret", "hs256")
    add("rs256_fractional_dates_ok", sign(rsa1, hdr("RS256", "rsa1"), claims(exp=NOW + 0.5, iat=NOW - 0.25, nbf=NOW - 0.5)),
        "ok", policy="noleeway")

    # alg confusion: HS256 HMAC'd with the RSA public key PEM
    conf = sign(confusion_key, hdr("HS256", "rsa1"), claims())
    add("alg_confusion_hs256_rsa_pem", conf, "alg_not_allowed")
    add("alg_confusion_hs256_rsa_pem_hs_allowed", conf, "key_alg_mismatch", policy="mixed")
    add("alg_confusion_hs256_rsa_pem_nokid", sign(confusion_key, hdr("HS256", None), claims()), "no_key", policy="mixed")

    # alg none, whatever the case
    p = compact({}, claims())[1]
    for alg in ["none", "None", "NONE"]:
        h = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        add("alg_%s" % alg, "%s.%s." % (h, p), "alg_none")
        add("alg_%s_with_kid_and_sig" % alg,
            "%s.%s.%s" % (b64(json.dumps({"alg": alg, "kid": "rsa1"}).encode()), p, b64(b"x" * 32)), "alg_none")
    add("alg_unknown", sign(rsa1, hdr("RS1", "rsa1"), claims(), alg="RS256"), "alg_not_allowed")
    add("alg_lowercase_rs256", sign(rsa1, hdr("rs256", "rsa1"), claims(), alg="RS256"), "alg_not_allowed")

    # curve / key pinning
    h = hdr("ES256", "ec384")
    hp = "%s.%s" % compact(h, claims())
    der = ec384.get_op_key("sign").sign(hp.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    add("es256_with_p384_key", hp + "." + b64(r.to_bytes(48, "big") + s.to_bytes(48, "big")), "key_alg_mismatch")
    add("es384_token_p256_key", sign(ec256, hdr("ES384", "ec256"), claims(), alg="ES256"), "key_alg_mismatch")
    add("rs256_with_jwk_alg_rs384", sign(rsa_rs384, hdr("RS256", "rsa-rs384-only"), claims()), "key_alg_mismatch")
    add("rs384_with_jwk_alg_rs384_ok", sign(rsa_rs384, hdr("RS384", "rsa-rs384-only"), claims()), "ok")
    add("eddsa_token_rsa_key", sign(ed1, hdr("EdDSA", "rsa1"), claims()), "key_alg_mismatch")
    add("rsa_weak_key_skipped", sign(rsa_weak, hdr("RS256", "rsa-weak"), claims()), "unknown_kid")
    rsa_enc_signer = jwk.JWK(**{k: v for k, v in json.loads(rsa_enc.export_private()).items() if k != "use"})
    add("rsa_enc_key_skipped", sign(rsa_enc_signer, hdr("RS256", "rsa-enc"), claims()), "unknown_kid")

    # signatures
    good = sign(rsa1, hdr("RS256", "rsa1"), claims())
    hs_, ps_, ss_ = good.split(".")
    add("tampered_payload", "%s.%s.%s" % (hs_, compact({}, claims(sub="admin"))[1], ss_), "bad_signature")
    add("tampered_header", "%s.%s.%s" % (compact(hdr("RS256", "rsa1", x=1), b"")[0], ps_, ss_), "bad_signature")
    add("wrong_key_same_kid", sign(evil_rsa, hdr("RS256", "rsa1"), claims()), "bad_signature")
    add("empty_signature", "%s.%s." % (hs_, ps_), "bad_signature")
    add("signature_of_other_token", "%s.%s.%s" % (hs_, ps_, sign(rsa1, hdr("RS256", "rsa1"), claims(sub="bob")).split(".")[2]),
        "bad_signature")
    es = sign(ec256, hdr("ES256", "ec256"), claims())
    eh, ep, esig = es.split(".")
    raw = base64.urlsafe_b64decode(esig + "==")
    add("es256_signature_short", "%s.%s.%s" % (eh, ep, b64(raw[:63])), "bad_signature")
    add("es256_signature_der", "%s.%s.%s" % (eh, ep, b64(ec256.get_op_key("sign").sign(
        ("%s.%s" % (eh, ep)).encode(), ec.ECDSA(hashes.SHA256())))), "bad_signature")
    add("es256_signature_zero", "%s.%s.%s" % (eh, ep, b64(bytes(64))), "bad_signature")
    add("es256_signature_swapped_rs", "%s.%s.%s" % (eh, ep, b64(raw[32:] + raw[:32])), "bad_signature")
    ed = sign(ed1, hdr("EdDSA", "ed1"), claims()).split(".")
    add("eddsa_tampered", "%s.%s.%s" % (ed[0], compact({}, claims(sub="root"))[1], ed[2]), "bad_signature")
    # RFC 7518 §3.5: PSS salt length = hash length; a maximal salt (python-cryptography's PSS.MAX_LENGTH) must fail
    hp = "%s.%s" % compact(hdr("PS256", "rsa1"), claims())
    maxsalt = rsa1.get_op_key("sign").sign(hp.encode(), padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.MAX_LENGTH),
                                           hashes.SHA256())
    add("ps256_max_salt_length", hp + "." + b64(maxsalt), "bad_signature")
    ps = sign(rsa1, hdr("PS256", "rsa1"), claims()).split(".")
    add("ps256_signature_as_rs256", "%s.%s.%s" % (compact(hdr("RS256", "rsa1"), b"")[0], ps[1], ps[2]), "bad_signature")

    # encodings
    add("padding_in_signature", good + "==", "malformed")
    add("padding_in_header", "%s=.%s.%s" % (hs_, ps_, ss_), "malformed")
    padded_payload = base64.urlsafe_b64encode(json.dumps(claims(x="ab")).encode()).decode()
    if "=" not in padded_payload:
        padded_payload = base64.urlsafe_b64encode(json.dumps(claims(x="abc")).encode()).decode()
    add("padding_in_payload", "%s.%s.%s" % (hs_, padded_payload, ss_), "malformed")
    add("plus_in_signature", "%s.%s.%s" % (hs_, ps_, "+" + ss_[1:]), "malformed")
    add("slash_in_payload", "%s.%s.%s" % (hs_, "/" + ps_[1:], ss_), "malformed")
    add("two_segments", "%s.%s" % (hs_, ps_), "malformed")
    add("four_segments", good + "." + ss_, "malformed")
    add("trailing_dot", good + ".", "malformed")
    add("whitespace", good[:20] + " " + good[20:], "malformed")
    add("bearer_prefix", "Bearer " + good, "malformed")
    add("empty", "", "malformed")
    add("dots_only", "..", "bad_header")
    add("segment_len_mod4_1", "%s.%s.%s" % (hs_, ps_ + "A" * ((1 - len(ps_)) % 4), ss_), "malformed")
    # non-canonical final bits: "e30" is "{}"; "e31" decodes to the same bytes with a stray bit
    add("noncanonical_bits", "e31.%s.%s" % (ps_, ss_), "malformed")

    # header shape
    add("header_not_json", "%s.%s.%s" % (b64(b"{alg:RS256}"), ps_, ss_), "bad_header")
    add("header_array", "%s.%s.%s" % (b64(b'["RS256"]'), ps_, ss_), "bad_header")
    add("header_alg_number", sign(rsa1, '{"alg":256,"kid":"rsa1"}', claims(), alg="RS256"), "bad_header")
    add("header_no_alg", sign(rsa1, '{"kid":"rsa1"}', claims(), alg="RS256"), "bad_header")
    add("header_kid_number", sign(rsa1, '{"alg":"RS256","kid":1}', claims()), "bad_header")
    add("header_duplicate_alg", sign(rsa1, '{"alg":"none","alg":"RS256","kid":"rsa1"}', claims(), alg="RS256"), "bad_header")
    add("crit_present", sign(rsa1, hdr("RS256", "rsa1", crit=["exp"], exp=NOW + 600), claims()), "crit")
    add("crit_b64", sign(rsa1, hdr("RS256", "rsa1", crit=["b64"], b64=True), claims()), "crit")

    # typ
    for name, typ, expect in [("typ_jwt", "JWT", "ok"), ("typ_at_jwt", "at+jwt", "ok"),
                              ("typ_application_at_jwt", "application/at+jwt", "ok"), ("typ_jwt_lower", "jwt", "ok"),
                              ("typ_at_jwt_upper", "AT+JWT", "ok"), ("typ_jose", "JOSE", "bad_typ"),
                              ("typ_jose_json", "JOSE+JSON", "bad_typ"), ("typ_dpop", "dpop+jwt", "bad_typ")]:
        add(name, sign(ec256, {"alg": "ES256", "kid": "ec256", "typ": typ}, claims()), expect)
    add("typ_absent", sign(ec256, {"alg": "ES256", "kid": "ec256"}, claims()), "ok")
    add("typ_number", sign(ec256, {"alg": "ES256", "kid": "ec256", "typ": 1}, claims()), "bad_header")

    # key selection and header-borne keys
    add("unknown_kid", sign(rsa1, hdr("RS256", "nope"), claims()), "unknown_kid")
    add("kid_case_differs", sign(rsa1, hdr("RS256", "RSA1"), claims()), "unknown_kid")
    evil_pub = public(evil_ec)
    add("jwk_header_attacker_kid", sign(evil_ec, hdr("ES256", "attacker-key", jwk=evil_pub), claims()), "unknown_kid")
    add("jku_header_attacker_kid", sign(evil_ec, hdr("ES256", "attacker-key", jku="https://evil.example/jwks.json"), claims()),
        "unknown_kid")
    add("x5u_header_attacker_kid", sign(evil_ec, hdr("ES256", "attacker-key", x5u="https://evil.example/cert.pem"), claims()),
        "unknown_kid")
    add("jwk_header_victim_kid", sign(evil_ec, hdr("ES256", "ec256", jwk=dict(evil_pub, kid="ec256")), claims()),
        "bad_signature")
    add("jku_header_victim_kid", sign(evil_rsa, hdr("RS256", "rsa1", jku="https://evil.example/jwks.json"), claims()),
        "bad_signature")
    add("jwk_header_no_kid", sign(evil_ec, hdr("ES256", None, jwk=evil_pub), claims()), "bad_signature")
    add("no_kid_one_candidate_es256", sign(ec256, hdr("ES256", None), claims()), "ok")
    add("no_kid_one_candidate_eddsa", sign(ed1, hdr("EdDSA", None), claims()), "ok")
    add("no_kid_two_candidates_rs256", sign(rsa1, hdr("RS256", None), claims()), "no_key")
    add("no_kid_three_candidates_rs384", sign(rsa1, hdr("RS384", None), claims()), "no_key")  # rsa1, rsa2, rsa-rs384-only
    add("no_kid_one_candidate_hs256", sign(hs, hdr("HS256", None), claims()), "ok", "secret", "hs256")

    # payload
    add("payload_not_json", sign(rsa1, hdr("RS256", "rsa1"), b"not json"), "bad_payload")
    add("payload_array", sign(rsa1, hdr("RS256", "rsa1"), b'[{"exp":1}]'), "bad_payload")
    add("payload_string", sign(rsa1, hdr("RS256", "rsa1"), b'"x"'), "bad_payload")
    dup = ('{"iss":"%s","aud":"%s","exp":%d,"exp":%d}' % (ISS, AUD[0], NOW - 1000, NOW + 600)).encode()
    add("payload_duplicate_exp", sign(rsa1, hdr("RS256", "rsa1"), dup), "bad_payload")
    dup_iss = ('{"iss":"https://evil/","iss":"%s","aud":"%s","exp":%d}' % (ISS, AUD[0], NOW + 600)).encode()
    add("payload_duplicate_iss", sign(ec256, hdr("ES256", "ec256"), dup_iss), "bad_payload")
    add("payload_trailing_garbage", sign(rsa1, hdr("RS256", "rsa1"), json.dumps(claims()).encode() + b" x"), "bad_payload")

    # time claims (default policy: leeway 60; noleeway: 0)
    def tok(**over):
        return sign(ec256, hdr("ES256", "ec256"), claims(**over))

    add("missing_exp", tok(exp=None), "missing_exp")
    add("exp_string", tok(exp=str(NOW + 600)), "bad_claim_type")
    add("exp_null", sign(ec256, hdr("ES256", "ec256"), b'{"iss":"%s","aud":"%s","exp":null}' % (ISS.encode(), AUD[0].encode())),
        "bad_claim_type")
    add("exp_bool", tok(exp=True), "bad_claim_type")
    add("nbf_string", tok(nbf="0"), "bad_claim_type")
    add("iat_string", tok(iat="yesterday"), "bad_claim_type")
    add("exp_past_beyond_leeway", tok(exp=NOW - 61), "expired")
    add("exp_at_leeway_boundary", tok(exp=NOW - 60), "expired")
    add("exp_within_leeway", tok(exp=NOW - 59), "ok")
    add("exp_now_noleeway", tok(exp=NOW), "expired", policy="noleeway")
    add("exp_now_plus_1_noleeway", tok(exp=NOW + 1), "ok", policy="noleeway")
    add("exp_past_noleeway", tok(exp=NOW - 1), "expired", policy="noleeway")
    add("exp_fraction_past_noleeway", tok(exp=NOW - 0.001), "expired", policy="noleeway")
    add("exp_real_ok", tok(exp=float(NOW + 600) + 0.75), "ok")
    add("exp_exponent_at_now", sign(ec256, hdr("ES256", "ec256"), ('{"iss":"%s","aud":"%s","exp":1.7e9}' % (ISS, AUD[0])).encode()),
        "expired", policy="noleeway")
    add("exp_exponent_ok", sign(ec256, hdr("ES256", "ec256"), ('{"iss":"%s","aud":"%s","exp":1.8E+9}' % (ISS, AUD[0])).encode()),
        "ok")
    add("nbf_future_beyond_leeway", tok(nbf=NOW + 61), "not_yet_valid")
    add("nbf_at_leeway_boundary", tok(nbf=NOW + 60), "ok")
    add("nbf_future_noleeway", tok(nbf=NOW + 1), "not_yet_valid", policy="noleeway")
    add("nbf_now_noleeway", tok(nbf=NOW), "ok", policy="noleeway")
    add("iat_future_beyond_leeway", tok(iat=NOW + 61), "issued_in_future")
    add("iat_at_leeway_boundary", tok(iat=NOW + 60), "ok")
    add("iat_future_noleeway", tok(iat=NOW + 1), "issued_in_future", policy="noleeway")
    add("iat_now_noleeway", tok(iat=NOW), "ok", policy="noleeway")
    add("iat_absent_ok", tok(iat=None), "ok")
    add("expired_and_nbf_future", tok(exp=NOW - 100, nbf=NOW + 100), "expired")

    # issuer and audience
    add("iss_mismatch", tok(iss="https://evil.example.com/"), "bad_issuer")
    add("iss_prefix", tok(iss=ISS.rstrip("/")), "bad_issuer")
    add("iss_missing", tok(iss=None), "bad_issuer")
    add("iss_number", tok(iss=1), "bad_claim_type")
    add("aud_string_second", tok(aud=AUD[1]), "ok")
    add("aud_array", tok(aud=["other", AUD[1]]), "ok")
    add("aud_mismatch", tok(aud="other-api"), "bad_audience")
    add("aud_array_mismatch", tok(aud=["a", "b"]), "bad_audience")
    add("aud_array_empty", tok(aud=[]), "bad_audience")
    add("aud_missing", tok(aud=None), "bad_audience")
    add("aud_number", tok(aud=5), "bad_claim_type")
    add("aud_array_with_number", tok(aud=[5, AUD[0]]), "bad_claim_type")
    add("aud_missing_no_aud_policy", tok(aud=None), "ok", policy="noaud")
    add("aud_mismatch_no_aud_policy", tok(aud="other"), "ok", policy="noaud")

    # size cap
    big = sign(ec256, hdr("ES256", "ec256"), claims(pad="x" * 9000))
    add("too_large", big, "too_large")
    add("too_large_small_policy", tok(pad="y" * 600), "too_large", policy="small")
    add("under_small_policy_ok", tok(), "ok", policy="small")

    # JWKS documents
    docs = []

    def doc(name, document, expect, **kw):
        d = {"name": name, "document": document if isinstance(document, str) else json.dumps(document),
             "algorithms": kw.pop("algorithms", ASYM_ALGS), "min_rsa_bits": kw.pop("min_rsa_bits", 2048), "expect": expect}
        d.update(kw)
        docs.append(d)

    pub = {k: public(v) for k, v in [("rsa1", rsa1), ("ec256", ec256), ("ec384", ec384), ("ed1", ed1), ("weak", rsa_weak)]}
    doc("main_set", main_jwks, "ok", num_keys=7, num_skipped=2,
        kids=["rsa1", "rsa2", "rsa-rs384-only", "ec256", "ec384", "ec521", "ed1"])
    doc("malformed_json", '{"keys": [', "error", error_prefix="not JSON: ")
    doc("not_an_object", "[]", "error", error_prefix="no `keys` array")
    doc("no_keys_array", {"kty": "RSA"}, "error", error_prefix="no `keys` array")
    doc("keys_not_array", {"keys": {}}, "error", error_prefix="no `keys` array")
    doc("empty_keys", {"keys": []}, "ok", num_keys=0, num_skipped=0, kids=[])
    doc("duplicate_kid", {"keys": [pub["rsa1"], dict(pub["ec256"], kid="rsa1")]}, "error", error_prefix="duplicate kid 'rsa1'")
    doc("duplicate_kid_with_skipped_enc", {"keys": [pub["rsa1"], dict(pub["ec256"], kid="rsa1", use="enc")]}, "ok", num_keys=1,
        num_skipped=1, kids=["rsa1"])
    doc("too_many_keys", {"keys": [dict(pub["ed1"], kid="k%d" % i) for i in range(65)]}, "error", error_prefix="more than 64 keys")
    doc("sixty_four_keys", {"keys": [dict(pub["ed1"], kid="k%d" % i) for i in range(64)]}, "ok", num_keys=64, num_skipped=0,
        kids=["k%d" % i for i in range(64)])
    doc("unsupported_kty", {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "o"}, {"kty": "XYZ", "kid": "x"}, pub["ec256"]]},
        "ok", num_keys=1, num_skipped=2, kids=["ec256"])
    unsupported_crv = [{"kty": "OKP", "crv": "Ed448", "x": b64(bytes(57)), "kid": "ed448"},
                       {"kty": "OKP", "crv": "X25519", "x": b64(bytes(32)), "kid": "x25519"},
                       dict(pub["ec256"], crv="secp256k1", kid="k1")]
    doc("unsupported_crv", {"keys": unsupported_crv + [pub["ed1"]]}, "ok", num_keys=1, num_skipped=3, kids=["ed1"])
    e = pub["ec256"]
    xb = base64.urlsafe_b64decode(e["x"] + "==")
    doc("ec_x_too_long", {"keys": [dict(e, x=b64(b"\0" + xb)), pub["ed1"]]}, "ok", num_keys=1, num_skipped=1, kids=["ed1"])
    doc("ec_x_too_short", {"keys": [dict(e, x=b64(xb[1:])), pub["ed1"]]}, "ok", num_keys=1, num_skipped=1, kids=["ed1"])
    doc("ec_p384_coords_as_p256", {"keys": [dict(pub["ec384"], crv="P-256")]}, "ok", num_keys=0, num_skipped=1, kids=[])
    doc("ec_point_not_on_curve", {"keys": [dict(e, y=b64(bytes(31) + b"\x01"))]}, "ok", num_keys=0, num_skipped=1, kids=[])
    doc("ec_x_padded_base64", {"keys": [dict(e, x=e["x"] + "=")]}, "ok", num_keys=0, num_skipped=1, kids=[])
    doc("ed25519_wrong_length", {"keys": [dict(pub["ed1"], x=b64(bytes(31)))]}, "ok", num_keys=0, num_skipped=1, kids=[])
    doc("rsa_1024_min_2048", {"keys": [pub["weak"], pub["rsa1"]]}, "ok", num_keys=1, num_skipped=1, kids=["rsa1"])
    doc("rsa_1024_min_1024", {"keys": [pub["weak"], pub["rsa1"]]}, "ok", min_rsa_bits=1024, num_keys=2, num_skipped=0,
        kids=["rsa-weak", "rsa1"])
    doc("rsa_missing_e", {"keys": [{k: v for k, v in pub["rsa1"].items() if k != "e"}]}, "ok", num_keys=0, num_skipped=1, kids=[])
    doc("use_enc_skipped", {"keys": [dict(pub["rsa1"], use="enc"), dict(pub["ec256"], use="sig")]}, "ok", num_keys=1,
        num_skipped=1, kids=["ec256"])
    doc("key_ops_without_verify", {"keys": [dict(pub["ec256"], key_ops=["encrypt"])]}, "ok", num_keys=0, num_skipped=1, kids=[])
    doc("key_ops_verify", {"keys": [dict(pub["ec256"], key_ops=["verify"])]}, "ok", num_keys=1, num_skipped=0, kids=["ec256"])
    doc("alg_not_allowed", {"keys": [dict(pub["rsa1"], alg="RS256"), pub["ec256"]]}, "ok", algorithms=["ES256"], num_keys=1,
        num_skipped=1, kids=["ec256"])
    doc("alg_incompatible_with_kty", {"keys": [dict(pub["rsa1"], alg="ES256"), dict(pub["ec256"], alg="ES384"),
                                               dict(pub["ed1"], alg="HS256")]}, "ok", algorithms=ALL_ALGS, num_keys=0,
        num_skipped=3, kids=[])
    doc("alg_unknown", {"keys": [dict(pub["ec256"], alg="ES256K")]}, "ok", num_keys=0, num_skipped=1, kids=[])
    doc("no_allowed_alg_for_kty", {"keys": [pub["rsa1"], pub["ed1"]]}, "ok", algorithms=["ES256"], num_keys=0, num_skipped=2,
        kids=[])
    doc("kid_not_string", {"keys": [dict(pub["ec256"], kid=5)]}, "ok", num_keys=0, num_skipped=1, kids=[])
    doc("key_not_object", {"keys": ["x", 1, None, pub["ec256"]]}, "ok", num_keys=1, num_skipped=3, kids=["ec256"])
    doc("keys_without_kid", {"keys": [{k: v for k, v in pub["ec256"].items() if k != "kid"},
                                      {k: v for k, v in pub["ec384"].items() if k != "kid"}]}, "ok", num_keys=2, num_skipped=0,
        kids=[None, None])
    doc("duplicate_member", '{"keys": [], "keys": []}', "error", error_prefix="not JSON: ")

    # self-check: every token expected "ok" must also verify with jwcrypto under one of the published keys
    verifiers = [jwk.JWK(**public(k)) for k in (rsa1, rsa_rs384, ec256, ec384, ec521, ed1)] + [hs]
    for v in vectors:
        if v["expect"] == "ok" and not any(jwcrypto_verifies(v["token"], k) for k in verifiers):
            sys.exit("vector %s is expected ok but jwcrypto does not verify it" % v["name"])

    with open(out_path, "w") as f:
        json.dump({"generator": "tests/unit/data/jwt/make_vectors.py (python3-jwcrypto)", "now": NOW, "keysets": keysets,
                   "policies": policies, "vectors": vectors, "jwks_documents": docs}, f, indent=1)
        f.write("\n")
    print("wrote %d vectors and %d JWKS documents to %s" % (len(vectors), len(docs), out_path))


if __name__ == "__main__":
    main()
