/* Verifying a compact JWS / JWT against a provider's key set (RFC 7515, 7519, 8725 best practices).
 *
 * ficus_jwt_verify() checks, in this order, and stops at the first failure with a distinct status:
 *   size cap (max_token_bytes; 0 means 8 KiB) → three base64url segments (strict, no padding; a segment may be
 *   empty) → header is a JSON object, `alg` a string, `kid`/`typ` strings when present → `alg` not "none" (any
 *   case) → `alg` known and in the provider's allowlist → no `crit` → `typ` accepted → key: by `kid` (exact), or
 *   when the token has no kid, the only key of the set that may verify `alg` (none or several: error) → the key may
 *   verify `alg` (kty/crv/JWK alg pinning; HS* only with secret keys) → signature (EVP_DigestVerify; ES* raw r||s of
 *   the exact length converted to DER; PS* with RSA-PSS, salt length = hash length; EdDSA one-shot; HS* HMAC of
 *   the digest length compared in constant time) → payload is a JSON object → `exp` present and a JSON number,
 *   now < exp + leeway → `nbf` (if present, number) <= now + leeway → `iat` (if present, number) <= now + leeway →
 *   `iss` a string equal to the provider's issuer exactly (skipped when policy->issuer is NULL) → `aud` (string or
 *   array of strings; any other type, or a non-string element, is BAD_CLAIM_TYPE) contains one of the provider's
 *   audiences (skipped when the policy has none).
 * `typ` may be absent, "JWT" or "at+jwt" (case-insensitive, with or without the "application/" prefix, RFC 7515
 * §4.1.9); anything else is rejected.
 * Keys named by `jku`, `x5u`, `jwk` or `x5c` headers are never used (they are ignored, not trusted).
 * Header and claims are parsed with jansson (a real JSON parser; duplicate keys rejected: JSON_REJECT_DUPLICATES).
 * COST: decoded segments on the stack (heap above 8 KiB), the JSON trees, OpenSSL's per-call EVP_MD_CTX (and an
 * ECDSA_SIG for ES*); no PEM parsing; one signature check. Measured: loadtest/README-jwt.md. */
#ifndef ficus__jws_h
#define ficus__jws_h

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "ficus/jwk.h"

typedef enum enum_ficus_jwt_status_t {
    FICUS_JWT_OK = 0,
    FICUS_JWT_ERR_TOO_LARGE = -1,
    FICUS_JWT_ERR_MALFORMED = -2,  /* not three strict base64url segments */
    FICUS_JWT_ERR_BAD_HEADER = -3, /* header not a JSON object, or bad alg/kid/typ types */
    FICUS_JWT_ERR_ALG_NONE = -4,
    FICUS_JWT_ERR_ALG_NOT_ALLOWED = -5, /* not in allowlist or unknown */
    FICUS_JWT_ERR_CRIT = -6,
    FICUS_JWT_ERR_BAD_TYP = -7,
    FICUS_JWT_ERR_UNKNOWN_KID = -8,       /* kid not in the set: the caller may refetch the JWKS and retry */
    FICUS_JWT_ERR_NO_KEY = -9,            /* no kid and zero or several candidate keys */
    FICUS_JWT_ERR_KEY_ALG_MISMATCH = -10, /* key may not verify this alg (kty/crv/JWK alg/HS with public key) */
    FICUS_JWT_ERR_BAD_SIGNATURE = -11,
    FICUS_JWT_ERR_BAD_PAYLOAD = -12, /* payload not a JSON object */
    FICUS_JWT_ERR_MISSING_EXP = -13,
    FICUS_JWT_ERR_BAD_CLAIM_TYPE = -14, /* exp/nbf/iat not a number, iss not a string, aud not string/array */
    FICUS_JWT_ERR_EXPIRED = -15,
    FICUS_JWT_ERR_NOT_YET_VALID = -16,    /* nbf */
    FICUS_JWT_ERR_ISSUED_IN_FUTURE = -17, /* iat */
    FICUS_JWT_ERR_BAD_ISSUER = -18,
    FICUS_JWT_ERR_BAD_AUDIENCE = -19,
} ficus_jwt_status_t;

#define FICUS_JWT_STATUS_COUNT 20

/** A short snake_case reason for logs and metrics labels: "ok", "too_large", "malformed", ... "bad_audience". */
const char *ficus_jwt_status_name(ficus_jwt_status_t status);

typedef struct st_ficus_jwt_policy_t {
    const char *issuer;
    const char *const *audiences; /* may be empty: no aud check */
    size_t num_audiences;
    uint32_t allowed_algs; /* FICUS_JWA_BIT set */
    uint64_t leeway_s;
    size_t max_token_bytes;
    const char *extra_typ; /* one more accepted `typ` (e.g. "logout+jwt" for back-channel logout tokens), or NULL */
} ficus_jwt_policy_t;

typedef struct st_ficus_jwt_t {
    json_t *header; /* owned: json_decref when done (also set on some failures; always safe to decref if non-NULL) */
    json_t *claims; /* owned, set only when the signature verified */
    ficus_jwa_t alg;
    double exp;             /* the exp claim (valid when status is OK) */
    const ficus_jwk_t *key; /* the key that verified (borrowed from the set) */
} ficus_jwt_t;

/**
 * Verifies token (the compact serialization, without "Bearer ") against keys and policy at time `now` (seconds,
 * fractional). Fills *out (zeroed first; out may be NULL when only the status matters). Returns FICUS_JWT_OK or the
 * first failing check. keys may be NULL (no keys yet: UNKNOWN_KID or NO_KEY).
 */
ficus_jwt_status_t ficus_jwt_verify(const char *token, size_t len, const ficus_jwks_t *keys, const ficus_jwt_policy_t *policy,
                                    double now, ficus_jwt_t *out);
/** Releases what ficus_jwt_verify put in *out. */
void ficus_jwt_dispose(ficus_jwt_t *jwt);

#endif
