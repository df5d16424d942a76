/* Compact JWS / JWT verification against a ficus_jwks_t (see jws.h for the order of checks and the statuses).
 *
 * OWNS: ficus_jwt_verify, ficus_jwt_dispose, ficus_jwt_status_name, and the signature primitives: RSA PKCS#1 v1.5 and
 * PSS (salt = digest length), ECDSA from raw r||s (converted to DER), Ed25519 one-shot, HMAC compared in constant time.
 * MEMORY: decoded segments live in an 8 KiB stack buffer, or one heap buffer bounded by the token size for larger
 * tokens; the JSON trees go to the caller through ficus_jwt_t. No static mutable state: safe from any thread. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include "ficus/jws.h"

#define DEFAULT_MAX_TOKEN_BYTES 8192
#define STACK_DECODE_BYTES 8192

static const char *const status_names[FICUS_JWT_STATUS_COUNT] = {
    "ok",          "too_large",    "malformed",      "bad_header", "alg_none",         "alg_not_allowed",
    "crit",        "bad_typ",      "unknown_kid",    "no_key",     "key_alg_mismatch", "bad_signature",
    "bad_payload", "missing_exp",  "bad_claim_type", "expired",    "not_yet_valid",    "issued_in_future",
    "bad_issuer",  "bad_audience",
};

const char *ficus_jwt_status_name(ficus_jwt_status_t status)
{
    unsigned i = (unsigned)-(int)status;
    return i < FICUS_JWT_STATUS_COUNT ? status_names[i] : "unknown";
}

void ficus_jwt_dispose(ficus_jwt_t *jwt)
{
    if (jwt == NULL)
        return;
    json_decref(jwt->header);
    json_decref(jwt->claims);
    jwt->header = NULL;
    jwt->claims = NULL;
}

/* ---- signatures ---- */

enum { SIG_RSA_PKCS1, SIG_RSA_PSS, SIG_ECDSA, SIG_EDDSA, SIG_HMAC };

static const struct {
    int kind;
    const EVP_MD *(*md)(void);
    size_t len; /* ECDSA: coordinate length; HMAC: digest length */
} algs[FICUS_JWA__COUNT] = {
    [FICUS_JWA_RS256] = {SIG_RSA_PKCS1, EVP_sha256, 0}, [FICUS_JWA_RS384] = {SIG_RSA_PKCS1, EVP_sha384, 0},
    [FICUS_JWA_RS512] = {SIG_RSA_PKCS1, EVP_sha512, 0}, [FICUS_JWA_PS256] = {SIG_RSA_PSS, EVP_sha256, 0},
    [FICUS_JWA_PS384] = {SIG_RSA_PSS, EVP_sha384, 0},   [FICUS_JWA_PS512] = {SIG_RSA_PSS, EVP_sha512, 0},
    [FICUS_JWA_ES256] = {SIG_ECDSA, EVP_sha256, 32},    [FICUS_JWA_ES384] = {SIG_ECDSA, EVP_sha384, 48},
    [FICUS_JWA_ES512] = {SIG_ECDSA, EVP_sha512, 66},    [FICUS_JWA_EDDSA] = {SIG_EDDSA, NULL, 0},
    [FICUS_JWA_HS256] = {SIG_HMAC, EVP_sha256, 32},     [FICUS_JWA_HS384] = {SIG_HMAC, EVP_sha384, 48},
    [FICUS_JWA_HS512] = {SIG_HMAC, EVP_sha512, 64},
};

static int verify_hmac(ficus_jwa_t alg, const ficus_jwk_t *key, const uint8_t *input, size_t inlen, const uint8_t *sig,
                       size_t siglen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    if (key->secret == NULL || siglen != algs[alg].len)
        return 0;
    if (HMAC(algs[alg].md(), key->secret, (int)key->secret_len, input, inlen, mac, &maclen) == NULL || maclen != siglen)
        return 0;
    int match = CRYPTO_memcmp(mac, sig, siglen) == 0;
    OPENSSL_cleanse(mac, sizeof(mac));
    return match;
}

/* raw r||s (2 × coordinate length) → DER ECDSA-Sig-Value; returns the DER length or 0. */
static size_t ecdsa_raw_to_der(const uint8_t *sig, size_t coord_len, uint8_t *der, size_t dercap)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)coord_len, NULL), *s = BN_bin2bn(sig + coord_len, (int)coord_len, NULL);
    size_t len = 0;
    if (es == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return 0;
    }
    int need = i2d_ECDSA_SIG(es, NULL);
    if (need > 0 && (size_t)need <= dercap) {
        unsigned char *p = der;
        len = i2d_ECDSA_SIG(es, &p) == need ? (size_t)need : 0;
    }
    ECDSA_SIG_free(es); /* frees r and s */
    return len;
}

static int verify_signature(ficus_jwa_t alg, const ficus_jwk_t *key, const uint8_t *input, size_t inlen, const uint8_t *sig,
                            size_t siglen)
{
    int kind = algs[alg].kind;
    if (kind == SIG_HMAC)
        return verify_hmac(alg, key, input, inlen, sig, siglen);
    if (key->pkey == NULL)
        return 0;

    uint8_t der[2 * 66 + 16];
    if (kind == SIG_ECDSA) {
        if (siglen != 2 * algs[alg].len || (siglen = ecdsa_raw_to_der(sig, algs[alg].len, der, sizeof(der))) == 0)
            return 0;
        sig = der;
    } else if (kind == SIG_EDDSA && siglen != 64) {
        return 0;
    } else if ((kind == SIG_RSA_PKCS1 || kind == SIG_RSA_PSS) && siglen != (size_t)EVP_PKEY_get_size(key->pkey)) {
        return 0;
    }

    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = 0;
    if (ctx == NULL)
        return 0;
    if (EVP_DigestVerifyInit(ctx, &pctx, algs[alg].md != NULL ? algs[alg].md() : NULL, NULL, key->pkey) != 1)
        goto Exit;
    if (kind == SIG_RSA_PKCS1 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0)
        goto Exit;
    if (kind == SIG_RSA_PSS && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
                                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0))
        goto Exit;
    ok = EVP_DigestVerify(ctx, sig, siglen, input, inlen) == 1;
Exit:
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* ---- claims ---- */

static int string_equals(json_t *v, const char *s)
{
    size_t n = strlen(s);
    return json_string_length(v) == n && memcmp(json_string_value(v), s, n) == 0;
}

/* A NumericDate claim: 1 and *out when present as a number, 0 when absent, -1 when of another type. */
static int numeric_date(json_t *claims, const char *name, double *out)
{
    json_t *v = json_object_get(claims, name);
    if (v == NULL)
        return 0;
    if (!json_is_number(v))
        return -1;
    *out = json_number_value(v);
    return 1;
}

static ficus_jwt_status_t check_claims(json_t *claims, const ficus_jwt_policy_t *policy, double now, double *exp)
{
    double leeway = (double)policy->leeway_s, t;
    int r;
    if ((r = numeric_date(claims, "exp", exp)) == 0)
        return FICUS_JWT_ERR_MISSING_EXP;
    if (r < 0)
        return FICUS_JWT_ERR_BAD_CLAIM_TYPE;
    if (!(now < *exp + leeway))
        return FICUS_JWT_ERR_EXPIRED;
    if ((r = numeric_date(claims, "nbf", &t)) < 0)
        return FICUS_JWT_ERR_BAD_CLAIM_TYPE;
    if (r > 0 && !(t <= now + leeway))
        return FICUS_JWT_ERR_NOT_YET_VALID;
    if ((r = numeric_date(claims, "iat", &t)) < 0)
        return FICUS_JWT_ERR_BAD_CLAIM_TYPE;
    if (r > 0 && !(t <= now + leeway))
        return FICUS_JWT_ERR_ISSUED_IN_FUTURE;

    if (policy->issuer != NULL) {
        json_t *iss = json_object_get(claims, "iss");
        if (iss == NULL)
            return FICUS_JWT_ERR_BAD_ISSUER;
        if (!json_is_string(iss))
            return FICUS_JWT_ERR_BAD_CLAIM_TYPE;
        if (!string_equals(iss, policy->issuer))
            return FICUS_JWT_ERR_BAD_ISSUER;
    }

    if (policy->num_audiences != 0) {
        json_t *aud = json_object_get(claims, "aud"), *v;
        size_t i;
        int found = 0;
        if (aud == NULL)
            return FICUS_JWT_ERR_BAD_AUDIENCE;
        if (json_is_string(aud)) {
            for (size_t j = 0; j < policy->num_audiences && !found; ++j)
                found = string_equals(aud, policy->audiences[j]);
        } else if (json_is_array(aud)) {
            json_array_foreach(aud, i, v)
            {
                if (!json_is_string(v))
                    return FICUS_JWT_ERR_BAD_CLAIM_TYPE;
                for (size_t j = 0; j < policy->num_audiences && !found; ++j)
                    found = string_equals(v, policy->audiences[j]);
            }
        } else {
            return FICUS_JWT_ERR_BAD_CLAIM_TYPE;
        }
        if (!found)
            return FICUS_JWT_ERR_BAD_AUDIENCE;
    }
    return FICUS_JWT_OK;
}

/* ---- header ---- */

static int typ_accepted(json_t *typ, const char *extra)
{
    const char *s = json_string_value(typ);
    size_t n = json_string_length(typ);
    if (n > 12 && strncasecmp(s, "application/", 12) == 0)
        s += 12, n -= 12;
    return (n == 3 && strncasecmp(s, "JWT", 3) == 0) || (n == 6 && strncasecmp(s, "at+jwt", 6) == 0) ||
           (extra != NULL && n == strlen(extra) && strncasecmp(s, extra, n) == 0);
}

/* The key for `alg`: by exact kid, or the only key that may verify alg when the token has no kid. */
static ficus_jwt_status_t select_key(const ficus_jwks_t *keys, json_t *kid, ficus_jwa_t alg, const ficus_jwk_t **out)
{
    size_t n = keys != NULL ? keys->num_keys : 0;
    if (kid != NULL) {
        for (size_t i = 0; i < n; ++i) {
            const ficus_jwk_t *k = &keys->keys[i];
            if (k->kid != NULL && string_equals(kid, k->kid)) {
                *out = k;
                return FICUS_JWT_OK;
            }
        }
        return FICUS_JWT_ERR_UNKNOWN_KID;
    }
    const ficus_jwk_t *found = NULL;
    for (size_t i = 0; i < n; ++i) {
        if ((keys->keys[i].algs & FICUS_JWA_BIT(alg)) != 0) {
            if (found != NULL)
                return FICUS_JWT_ERR_NO_KEY;
            found = &keys->keys[i];
        }
    }
    if (found == NULL)
        return FICUS_JWT_ERR_NO_KEY;
    *out = found;
    return FICUS_JWT_OK;
}

/* ---- verify ---- */

static int b64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

ficus_jwt_status_t ficus_jwt_verify(const char *token, size_t len, const ficus_jwks_t *keys, const ficus_jwt_policy_t *policy,
                                    double now, ficus_jwt_t *out)
{
    ficus_jwt_t scratch;
    if (out == NULL)
        out = &scratch;
    memset(out, 0, sizeof(*out));
    size_t max = policy->max_token_bytes != 0 ? policy->max_token_bytes : DEFAULT_MAX_TOKEN_BYTES;
    if (len > max)
        return FICUS_JWT_ERR_TOO_LARGE;

    /* three segments of the base64url alphabet; the strict decoder checks lengths and final bits */
    size_t dot1 = 0, dot2 = 0, dots = 0;
    for (size_t i = 0; i < len; ++i) {
        unsigned char c = (unsigned char)token[i];
        if (c == '.') {
            if (++dots == 1)
                dot1 = i;
            else if (dots == 2)
                dot2 = i;
            else
                return FICUS_JWT_ERR_MALFORMED;
        } else if (!b64url_char(c)) {
            return FICUS_JWT_ERR_MALFORMED;
        }
    }
    if (dots != 2)
        return FICUS_JWT_ERR_MALFORMED;

    uint8_t stackbuf[STACK_DECODE_BYTES], *buf = stackbuf;
    size_t cap = len / 4 * 3 + 6; /* bound of the three decoded segments together */
    if (cap > sizeof(stackbuf) && (buf = malloc(cap)) == NULL)
        return FICUS_JWT_ERR_TOO_LARGE;
    ficus_jwt_status_t status;
    uint8_t *hdr = buf, *pay, *sig;
    size_t hdrlen = cap, paylen, siglen;
    if (ficus_base64url_decode(token, dot1, hdr, &hdrlen) != 0)
        goto Malformed;
    pay = hdr + hdrlen;
    paylen = cap - hdrlen;
    if (ficus_base64url_decode(token + dot1 + 1, dot2 - dot1 - 1, pay, &paylen) != 0)
        goto Malformed;
    sig = pay + paylen;
    siglen = cap - hdrlen - paylen;
    if (ficus_base64url_decode(token + dot2 + 1, len - dot2 - 1, sig, &siglen) != 0)
        goto Malformed;

    /* header */
    json_t *h = out->header = json_loadb((const char *)hdr, hdrlen, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(h)) {
        status = FICUS_JWT_ERR_BAD_HEADER;
        goto Exit;
    }
    json_t *alg = json_object_get(h, "alg"), *kid = json_object_get(h, "kid"), *typ = json_object_get(h, "typ");
    if (!json_is_string(alg) || (kid != NULL && !json_is_string(kid)) || (typ != NULL && !json_is_string(typ))) {
        status = FICUS_JWT_ERR_BAD_HEADER;
        goto Exit;
    }
    if (strcasecmp(json_string_value(alg), "none") == 0) {
        status = FICUS_JWT_ERR_ALG_NONE;
        goto Exit;
    }
    int a = ficus_jwa_from_name(json_string_value(alg), json_string_length(alg));
    if (a < 0 || (policy->allowed_algs & FICUS_JWA_BIT(a)) == 0) {
        status = FICUS_JWT_ERR_ALG_NOT_ALLOWED;
        goto Exit;
    }
    out->alg = (ficus_jwa_t)a;
    if (json_object_get(h, "crit") != NULL) {
        status = FICUS_JWT_ERR_CRIT;
        goto Exit;
    }
    if (typ != NULL && !typ_accepted(typ, policy->extra_typ)) {
        status = FICUS_JWT_ERR_BAD_TYP;
        goto Exit;
    }

    /* key and signature over the ASCII "header.payload" as received */
    const ficus_jwk_t *key = NULL;
    if ((status = select_key(keys, kid, out->alg, &key)) != FICUS_JWT_OK)
        goto Exit;
    if ((key->algs & FICUS_JWA_BIT(a)) == 0 || (algs[a].kind == SIG_HMAC) != (key->secret != NULL)) {
        status = FICUS_JWT_ERR_KEY_ALG_MISMATCH;
        goto Exit;
    }
    if (!verify_signature(out->alg, key, (const uint8_t *)token, dot2, sig, siglen)) {
        status = FICUS_JWT_ERR_BAD_SIGNATURE;
        goto Exit;
    }
    out->key = key;

    /* claims */
    json_t *claims = json_loadb((const char *)pay, paylen, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(claims)) {
        json_decref(claims);
        status = FICUS_JWT_ERR_BAD_PAYLOAD;
        goto Exit;
    }
    out->claims = claims;
    status = check_claims(claims, policy, now, &out->exp);
    goto Exit;

Malformed:
    status = FICUS_JWT_ERR_MALFORMED;
Exit:
    if (buf != stackbuf)
        free(buf);
    if (out == &scratch)
        ficus_jwt_dispose(out);
    return status;
}
