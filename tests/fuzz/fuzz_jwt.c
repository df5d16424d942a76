/* libFuzzer target: JWT verification, input bytes → ficus_jwt_verify (gateway/jws.c) against fixed key sets.
 *
 * ATTACK SURFACE: the bearer token is the first thing an unauthenticated client controls on a protected route: size
 * cap, segment split, strict base64url, jansson header parsing, alg/typ/crit/kid handling, key selection and the
 * signature primitives (RSA PKCS#1/PSS, ECDSA raw r||s → DER, Ed25519, HMAC). Each input is verified against a JWKS of
 * one RSA-2048 and one P-256 key (all asymmetric algorithms allowed) and against an HS256/384/512 secret, then also
 * parsed as a JWKS document (ficus_jwks_parse, gateway/jwk.c). Besides the sanitizers, each run checks
 * invariants of the contract (jws.h): the status is a defined code; a byte outside the base64url alphabet and '.'
 * only ever gives too_large or malformed; key and claims are set exactly when the signature verified; and strict
 * base64url is canonical (whatever decodes re-encodes to the same text).
 * Seeds: tests/fuzz/corpus/jwt/, tokens made by python3-jwcrypto with throwaway keys whose public halves are below
 * (private halves discarded; the HS seed uses `secret`), valid at NOW. Dictionary: tests/fuzz/jwt.dict. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ficus/jwk.h"
#include "ficus/jws.h"

#define NOW 1700000000.0
#define ASYM_ALGS (((1u << FICUS_JWA__COUNT) - 1) & ~FICUS_JWA_HS_MASK)

static const char rsa_jwk[] =
    "{\"e\":\"AQAB\",\"kid\":\"fz-rsa\",\"kty\":\"RSA\",\"n\":\"0bp5uiv4yD8UCMr8XysxEuXn9D2XsOrzUG3J5OcWao7mluJEmg7ONtvE"
    "hVDgdm__o2sjHsTgbPAL9S6DVAy2BD4ja0V0xBQgDgQURJnAloq5nBSLC00cUYABmNUGn2JBWMFdv4XJfEwNegGVrxLxOwfQxQEO"
    "qy-JNch7MFTZ5wL3_patrI6M_1zkH0T3U9EKkJbEf3QC7cMGd3VBYe9ZhFamE3U-sU5lf0o6tnkeraBoD0MOXRvcV8x8U-KiXAE4"
    "7kNS8N8GTHD7Ftg5GFkhW5QakysqLsYMs_nbhgFVKAU2y73OZpowf330_jGoOr3KRjOlNvv1A1kVWVt_K6U6bQ\"}";
static const char ec_jwk[] =
    "{\"crv\":\"P-256\",\"kid\":\"fz-ec\",\"kty\":\"EC\",\"x\":\"-rorvvA2cN-6_XDYNza4RcErV2yqn9f9oedCo2YVdLc\",\"y\":\"Rggty"
    "o5P64bglrf69cdvhzr000-HVbaGE1n2BczT3no\"}";
static const char secret[] = "fuzz-secret-0123456789abcdef0123";

static ficus_jwks_t *jwks, *hs_keys;
static const char *const audiences[] = {"api", "other"};
static ficus_jwt_policy_t policy = {"https://idp.example.com/", audiences, 2, ASYM_ALGS, 60, 8192};
static ficus_jwt_policy_t hs_policy = {"https://idp.example.com/", audiences, 2, FICUS_JWA_HS_MASK, 0, 8192};

static void init(void)
{
    char doc[4096], err[256];
    int n = snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", rsa_jwk, ec_jwk);
    jwks = ficus_jwks_parse(doc, (size_t)n, ASYM_ALGS, 2048, err, sizeof(err));
    hs_keys = ficus_jwks_from_secret((const uint8_t *)secret, strlen(secret), NULL, FICUS_JWA_HS_MASK);
    if (jwks == NULL || jwks->num_keys != 2 || hs_keys == NULL) {
        fprintf(stderr, "fuzz_jwt: fixed keys do not load: %s\n", jwks == NULL ? err : "wrong key count");
        abort();
    }
}

static int signature_verified(ficus_jwt_status_t s)
{
    return s == FICUS_JWT_OK || s <= FICUS_JWT_ERR_BAD_PAYLOAD;
}

static void verify_one(const char *tok, size_t len, const ficus_jwks_t *keys, const ficus_jwt_policy_t *p)
{
    ficus_jwt_t jwt;
    ficus_jwt_status_t s = ficus_jwt_verify(tok, len, keys, p, NOW, &jwt);
    if (s > FICUS_JWT_OK || s <= -FICUS_JWT_STATUS_COUNT)
        abort();
    int verified = signature_verified(s);
    if ((jwt.key != NULL) != verified || (jwt.claims != NULL) != (verified && s != FICUS_JWT_ERR_BAD_PAYLOAD))
        abort();
    if (verified && (jwt.header == NULL || (jwt.key->algs & FICUS_JWA_BIT(jwt.alg)) == 0))
        abort();
    for (size_t i = 0; i < len; ++i) {
        unsigned char c = (unsigned char)tok[i];
        int b64 = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!b64 && c != '.' && s != FICUS_JWT_ERR_TOO_LARGE && s != FICUS_JWT_ERR_MALFORMED)
            abort();
    }
    ficus_jwt_dispose(&jwt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (jwks == NULL)
        init();
    /* no NUL terminator on purpose: the verifier must honour len */
    char *tok = malloc(size != 0 ? size : 1);
    if (tok == NULL)
        return 0;
    memcpy(tok, data, size);
    verify_one(tok, size, jwks, &policy);
    verify_one(tok, size, hs_keys, &hs_policy);

    /* strict base64url is canonical */
    if (size <= 4096) {
        uint8_t bin[3072];
        char again[4100];
        size_t binlen = sizeof(bin);
        if (ficus_base64url_decode(tok, size, bin, &binlen) == 0 &&
            (ficus_base64url_encode(bin, binlen, again) != size || memcmp(again, tok, size) != 0))
            abort();
    }

    ficus_jwks_t *set = ficus_jwks_parse(tok, size, ASYM_ALGS, 2048, NULL, 0);
    if (set != NULL && (set->num_keys + set->num_skipped > FICUS_JWKS_MAX_KEYS || set->refcnt != 1))
        abort();
    ficus_jwks_release(set);
    free(tok);
    return 0;
}
