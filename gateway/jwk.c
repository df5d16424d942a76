/* JSON Web Keys (see jwk.h): algorithm names, strict base64url, and JWKS documents → refcounted sets of OpenSSL keys.
 *
 * OWNS: ficus_jwa_from_name/ficus_jwa_name, ficus_base64url_decode/encode, ficus_jwks_parse (jansson + OpenSSL 3
 * OSSL_PARAM_BLD/EVP_PKEY_fromdata; never PEM), ficus_jwks_from_secret, ficus_jwks_retain/release.
 * A key that cannot be used (use other than "sig", key_ops without "verify", unknown kty/crv, bad or missing members,
 * wrong EC coordinate length, point not on the curve, RSA under min_rsa_bits or over 16384 bits, declared alg unknown,
 * not allowed or not fitting kty/crv, no allowed algorithm at all) is skipped and counted in num_skipped. Duplicate
 * kids are checked among usable keys only (a skipped `enc` key may share the kid of a signing key). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "ficus/jwk.h"

#define RSA_MAX_BITS 16384
#define RSA_MASK                                                                                                                   \
    (FICUS_JWA_BIT(FICUS_JWA_RS256) | FICUS_JWA_BIT(FICUS_JWA_RS384) | FICUS_JWA_BIT(FICUS_JWA_RS512) |                            \
     FICUS_JWA_BIT(FICUS_JWA_PS256) | FICUS_JWA_BIT(FICUS_JWA_PS384) | FICUS_JWA_BIT(FICUS_JWA_PS512))

static const char *const jwa_names[FICUS_JWA__COUNT] = {
    [FICUS_JWA_RS256] = "RS256", [FICUS_JWA_RS384] = "RS384", [FICUS_JWA_RS512] = "RS512", [FICUS_JWA_PS256] = "PS256",
    [FICUS_JWA_PS384] = "PS384", [FICUS_JWA_PS512] = "PS512", [FICUS_JWA_ES256] = "ES256", [FICUS_JWA_ES384] = "ES384",
    [FICUS_JWA_ES512] = "ES512", [FICUS_JWA_EDDSA] = "EdDSA", [FICUS_JWA_HS256] = "HS256", [FICUS_JWA_HS384] = "HS384",
    [FICUS_JWA_HS512] = "HS512",
};

int ficus_jwa_from_name(const char *name, size_t len)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < FICUS_JWA__COUNT; ++i)
        if (strlen(jwa_names[i]) == len && memcmp(jwa_names[i], name, len) == 0)
            return i;
    return -1;
}

const char *ficus_jwa_name(ficus_jwa_t alg)
{
    return (unsigned)alg < FICUS_JWA__COUNT ? jwa_names[alg] : "?";
}

/* ---- base64url ---- */

static const char b64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 0..63, or -1 for anything outside the URL-safe alphabet. */
static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int ficus_base64url_decode(const char *in, size_t len, uint8_t *out, size_t *outlen)
{
    size_t rem = len % 4, need = len / 4 * 3 + (rem == 0 ? 0 : rem - 1);
    if (rem == 1 || need > *outlen)
        return -1;
    size_t i = 0, o = 0;
    for (; i + 4 <= len; i += 4) {
        int a = b64url_value(in[i]), b = b64url_value(in[i + 1]), c = b64url_value(in[i + 2]), d = b64url_value(in[i + 3]);
        if ((a | b | c | d) < 0)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    if (rem != 0) {
        int a = b64url_value(in[i]), b = b64url_value(in[i + 1]), c = rem == 3 ? b64url_value(in[i + 2]) : 0;
        if ((a | b | c) < 0)
            return -1;
        /* canonical: the bits past the last whole byte must be zero */
        if (rem == 2 ? (b & 0x0f) != 0 : (c & 0x03) != 0)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        out[o++] = (uint8_t)(v >> 16);
        if (rem == 3)
            out[o++] = (uint8_t)(v >> 8);
    }
    *outlen = o;
    return 0;
}

size_t ficus_base64url_encode(const uint8_t *in, size_t len, char *out)
{
    size_t i = 0, o = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = b64url_alphabet[v >> 6 & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = b64url_alphabet[v >> 6 & 63];
    }
    return o;
}

/* ---- sets ---- */

static ficus_jwks_t *set_new(size_t capacity)
{
    ficus_jwks_t *set = calloc(1, sizeof(*set));
    if (set == NULL)
        return NULL;
    if (capacity != 0 && (set->keys = calloc(capacity, sizeof(*set->keys))) == NULL) {
        free(set);
        return NULL;
    }
    set->refcnt = 1;
    return set;
}

static void set_free(ficus_jwks_t *set)
{
    for (size_t i = 0; i < set->num_keys; ++i) {
        ficus_jwk_t *k = &set->keys[i];
        free(k->kid);
        EVP_PKEY_free(k->pkey);
        if (k->secret != NULL) {
            OPENSSL_cleanse(k->secret, k->secret_len);
            free(k->secret);
        }
    }
    free(set->keys);
    free(set);
}

void ficus_jwks_retain(ficus_jwks_t *set)
{
    if (set != NULL)
        __atomic_fetch_add(&set->refcnt, 1, __ATOMIC_RELAXED);
}

void ficus_jwks_release(ficus_jwks_t *set)
{
    if (set != NULL && __atomic_sub_fetch(&set->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
        set_free(set);
}

ficus_jwks_t *ficus_jwks_from_secret(const uint8_t *secret, size_t len, const char *kid, uint32_t allowed_algs)
{
    uint32_t algs = allowed_algs & FICUS_JWA_HS_MASK;
    if (algs == 0 || secret == NULL || len == 0)
        return NULL;
    ficus_jwks_t *set = set_new(1);
    if (set == NULL)
        return NULL;
    ficus_jwk_t *k = &set->keys[0];
    set->num_keys = 1;
    k->algs = algs;
    if ((k->secret = malloc(len)) == NULL || (kid != NULL && (k->kid = strdup(kid)) == NULL)) {
        set_free(set);
        return NULL;
    }
    memcpy(k->secret, secret, len);
    k->secret_len = len;
    return set;
}

static void set_err(char *err, size_t errlen, const char *fmt, const char *arg)
{
    if (err != NULL && errlen != 0)
        snprintf(err, errlen, fmt, arg);
}

/* A base64url member of a JWK decoded into a fresh buffer (caller frees), or NULL if absent/not a string/invalid. */
static uint8_t *member_bytes(json_t *jwk, const char *name, size_t *outlen)
{
    json_t *v = json_object_get(jwk, name);
    if (!json_is_string(v))
        return NULL;
    size_t slen = json_string_length(v), cap = slen / 4 * 3 + 3;
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    *outlen = cap;
    if (ficus_base64url_decode(json_string_value(v), slen, buf, outlen) != 0 || *outlen == 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *rsa_key(json_t *jwk, unsigned min_rsa_bits)
{
    size_t nlen, elen;
    uint8_t *n = member_bytes(jwk, "n", &nlen), *e = member_bytes(jwk, "e", &elen);
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;
    if (n == NULL || e == NULL || elen > 8)
        goto Exit;
    if ((bn_n = BN_bin2bn(n, (int)nlen, NULL)) == NULL || (bn_e = BN_bin2bn(e, (int)elen, NULL)) == NULL)
        goto Exit;
    /* sanity: n and e odd, e > 1; size within [min_rsa_bits, 16384] */
    int bits = BN_num_bits(bn_n);
    if (!BN_is_odd(bn_n) || !BN_is_odd(bn_e) || BN_is_one(bn_e) || bits < (int)min_rsa_bits || bits > RSA_MAX_BITS)
        goto Exit;
    if ((bld = OSSL_PARAM_BLD_new()) == NULL || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
        goto Exit;
    pkey = pkey_fromdata("RSA", bld);
    if (pkey != NULL && EVP_PKEY_get_bits(pkey) < (int)min_rsa_bits) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
Exit:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    free(n);
    free(e);
    return pkey;
}

static EVP_PKEY *ec_key(json_t *jwk, const char *group, size_t coord_len)
{
    size_t xlen, ylen;
    uint8_t *x = member_bytes(jwk, "x", &xlen), *y = member_bytes(jwk, "y", &ylen);
    uint8_t pub[1 + 2 * 66];
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *check = NULL;
    if (x == NULL || y == NULL || xlen != coord_len || ylen != coord_len)
        goto Exit;
    pub[0] = 0x04;
    memcpy(pub + 1, x, coord_len);
    memcpy(pub + 1 + coord_len, y, coord_len);
    if ((bld = OSSL_PARAM_BLD_new()) == NULL || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * coord_len))
        goto Exit;
    if ((pkey = pkey_fromdata("EC", bld)) == NULL)
        goto Exit;
    /* the point must be on the curve and not the identity (parse-time cost only) */
    if ((check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL || EVP_PKEY_public_check(check) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
Exit:
    EVP_PKEY_CTX_free(check);
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pkey;
}

static EVP_PKEY *ed25519_key(json_t *jwk)
{
    size_t xlen;
    uint8_t *x = member_bytes(jwk, "x", &xlen);
    EVP_PKEY *pkey = NULL;
    if (x != NULL && xlen == 32)
        pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, 32);
    free(x);
    return pkey;
}

static int is_string(json_t *v, const char *s)
{
    return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

/* Builds one usable key from `jwk` into *out; returns 0, or -1 when the key is to be skipped. */
static int parse_key(json_t *jwk, uint32_t allowed, unsigned min_rsa_bits, ficus_jwk_t *out)
{
    if (!json_is_object(jwk))
        return -1;
    json_t *use = json_object_get(jwk, "use"), *ops = json_object_get(jwk, "key_ops"), *kid = json_object_get(jwk, "kid");
    json_t *alg = json_object_get(jwk, "alg"), *kty = json_object_get(jwk, "kty"), *crv = json_object_get(jwk, "crv");
    if (use != NULL && !is_string(use, "sig"))
        return -1;
    if (ops != NULL) {
        size_t i;
        json_t *op;
        int verify = 0;
        if (!json_is_array(ops))
            return -1;
        json_array_foreach(ops, i, op) verify |= is_string(op, "verify");
        if (!verify)
            return -1;
    }
    if ((kid != NULL && !json_is_string(kid)) || (alg != NULL && !json_is_string(alg)) || !json_is_string(kty))
        return -1;

    /* the algorithms the key type admits, and how to build it */
    uint32_t fits;
    const char *group = NULL;
    size_t coord_len = 0;
    int is_rsa = 0;
    if (is_string(kty, "RSA")) {
        fits = RSA_MASK;
        is_rsa = 1;
    } else if (is_string(kty, "EC")) {
        if (is_string(crv, "P-256")) {
            fits = FICUS_JWA_BIT(FICUS_JWA_ES256), group = "prime256v1", coord_len = 32;
        } else if (is_string(crv, "P-384")) {
            fits = FICUS_JWA_BIT(FICUS_JWA_ES384), group = "secp384r1", coord_len = 48;
        } else if (is_string(crv, "P-521")) {
            fits = FICUS_JWA_BIT(FICUS_JWA_ES512), group = "secp521r1", coord_len = 66;
        } else {
            return -1;
        }
    } else if (is_string(kty, "OKP") && is_string(crv, "Ed25519")) {
        fits = FICUS_JWA_BIT(FICUS_JWA_EDDSA);
    } else {
        return -1; /* oct (secrets never come from a JWKS), Ed448, X25519, unknown */
    }
    uint32_t algs = fits & allowed & ~FICUS_JWA_HS_MASK;
    if (alg != NULL) {
        int a = ficus_jwa_from_name(json_string_value(alg), json_string_length(alg));
        if (a < 0 || (algs & FICUS_JWA_BIT(a)) == 0)
            return -1;
        algs = FICUS_JWA_BIT(a);
    }
    if (algs == 0)
        return -1;

    EVP_PKEY *pkey = is_rsa ? rsa_key(jwk, min_rsa_bits) : group != NULL ? ec_key(jwk, group, coord_len) : ed25519_key(jwk);
    if (pkey == NULL)
        return -1;
    out->algs = algs;
    out->pkey = pkey;
    out->kid = NULL;
    if (kid != NULL && (out->kid = strdup(json_string_value(kid))) == NULL) {
        EVP_PKEY_free(pkey);
        return -1;
    }
    return 0;
}

ficus_jwks_t *ficus_jwks_parse(const char *json, size_t len, uint32_t allowed_algs, unsigned min_rsa_bits, char *err, size_t errlen)
{
    char buf[64];
    if (len > FICUS_JWKS_MAX_BYTES) {
        snprintf(buf, sizeof(buf), "%d", FICUS_JWKS_MAX_BYTES);
        set_err(err, errlen, "document larger than %s bytes", buf);
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr), *keys;
    if (doc == NULL) {
        char msg[sizeof(jerr.text) + 32];
        snprintf(msg, sizeof(msg), "%s (line %d)", jerr.text, jerr.line);
        set_err(err, errlen, "not JSON: %s", msg);
        return NULL;
    }
    ficus_jwks_t *set = NULL;
    if (!json_is_object(doc) || !json_is_array(keys = json_object_get(doc, "keys"))) {
        set_err(err, errlen, "%s", "no `keys` array");
        goto Exit;
    }
    size_t n = json_array_size(keys);
    if (n > FICUS_JWKS_MAX_KEYS) {
        snprintf(buf, sizeof(buf), "%d", FICUS_JWKS_MAX_KEYS);
        set_err(err, errlen, "more than %s keys", buf);
        goto Exit;
    }
    if ((set = set_new(n)) == NULL) {
        set_err(err, errlen, "%s", "out of memory");
        goto Exit;
    }
    for (size_t i = 0; i < n; ++i) {
        ficus_jwk_t *k = &set->keys[set->num_keys];
        if (parse_key(json_array_get(keys, i), allowed_algs, min_rsa_bits, k) != 0) {
            ++set->num_skipped;
            continue;
        }
        ++set->num_keys;
        for (size_t j = 0; k->kid != NULL && j + 1 < set->num_keys; ++j) {
            if (set->keys[j].kid != NULL && strcmp(set->keys[j].kid, k->kid) == 0) {
                char msg[256];
                snprintf(msg, sizeof(msg), "%.200s", k->kid);
                set_err(err, errlen, "duplicate kid '%s'", msg);
                set_free(set);
                set = NULL;
                goto Exit;
            }
        }
    }
Exit:
    json_decref(doc);
    return set;
}
