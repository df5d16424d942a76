/* JSON Web Keys: a provider's key set, parsed once per fetch into OpenSSL keys pinned to algorithms.
 *
 * DESIGN: a JWKS document (RFC 7517) becomes an immutable, refcounted ficus_jwks_t. Each usable key holds an
 * EVP_PKEY built with OSSL_PARAM_BLD + EVP_PKEY_fromdata (RSA n/e; EC P-256/384/521 from x/y with exact coordinate
 * lengths; OKP Ed25519 raw public key) and the set of algorithms it may verify: the JWK's own `alg` if it declares
 * one (and the provider allows it), else every algorithm of the provider's allowlist that fits its kty/crv
 * (RSA → RS* PS*; P-256 → ES256, P-384 → ES384, P-521 → ES512; Ed25519 → EdDSA). Keys with a `use` other than
 * "sig", `key_ops` without "verify", unknown kty/crv, bad members (EC coordinates not of the curve's exact length,
 * point not on the curve), RSA under min_rsa_bits, or no allowed algorithm are skipped (counted), never fatal for
 * the set; a document that is not a JSON object with a `keys` array is an error (the caller keeps its previous set).
 * Duplicate kids among usable keys are an error (a skipped `enc` key may share a signing key's kid).
 * Shared secrets (HS256/384/512) never come from a JWKS: only ficus_jwks_from_secret() makes such keys.
 * BOUNDS: at most FICUS_JWKS_MAX_KEYS keys, documents at most FICUS_JWKS_MAX_BYTES.
 * THREADING: immutable after parse; retain/release are atomic, so workers may share one set. EVP_PKEY verification
 * with a shared const key is thread-safe in OpenSSL 3. */
#ifndef ficus__jwk_h
#define ficus__jwk_h

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#define FICUS_JWKS_MAX_KEYS 64
#define FICUS_JWKS_MAX_BYTES (512 * 1024)

typedef enum enum_ficus_jwa_t {
    FICUS_JWA_RS256 = 0,
    FICUS_JWA_RS384,
    FICUS_JWA_RS512,
    FICUS_JWA_PS256,
    FICUS_JWA_PS384,
    FICUS_JWA_PS512,
    FICUS_JWA_ES256,
    FICUS_JWA_ES384,
    FICUS_JWA_ES512,
    FICUS_JWA_EDDSA,
    FICUS_JWA_HS256,
    FICUS_JWA_HS384,
    FICUS_JWA_HS512,
    FICUS_JWA__COUNT
} ficus_jwa_t;

#define FICUS_JWA_BIT(a) (1u << (a))
#define FICUS_JWA_HS_MASK (FICUS_JWA_BIT(FICUS_JWA_HS256) | FICUS_JWA_BIT(FICUS_JWA_HS384) | FICUS_JWA_BIT(FICUS_JWA_HS512))

/** "RS256" → FICUS_JWA_RS256 ...; -1 for anything else (including "none"). Case-sensitive, as RFC 7518. */
int ficus_jwa_from_name(const char *name, size_t len);
const char *ficus_jwa_name(ficus_jwa_t alg);

typedef struct st_ficus_jwk_t {
    char *kid;       /* NULL when the JWK has none */
    uint32_t algs;   /* FICUS_JWA_BIT set this key may verify (never empty) */
    EVP_PKEY *pkey;  /* NULL for HS keys */
    uint8_t *secret; /* HS keys only */
    size_t secret_len;
} ficus_jwk_t;

typedef struct st_ficus_jwks_t {
    int refcnt; /* atomic */
    ficus_jwk_t *keys;
    size_t num_keys;
    size_t num_skipped; /* keys in the document that were not usable */
} ficus_jwks_t;

/**
 * Parses a JWKS document. allowed_algs: the provider's allowlist (FICUS_JWA_BIT set; HS bits are ignored here).
 * Returns a set with refcnt 1 (possibly with zero usable keys), or NULL with a reason in err ("not JSON: ...",
 * "no `keys` array", "more than 64 keys", "duplicate kid 'x'").
 */
ficus_jwks_t *ficus_jwks_parse(const char *json, size_t len, uint32_t allowed_algs, unsigned min_rsa_bits, char *err,
                               size_t errlen);
/** A set with one shared-secret key for the HS algorithms in allowed_algs (refcnt 1); kid may be NULL.
 * NULL when allowed_algs has no HS algorithm or the secret is empty. */
ficus_jwks_t *ficus_jwks_from_secret(const uint8_t *secret, size_t len, const char *kid, uint32_t allowed_algs);
void ficus_jwks_retain(ficus_jwks_t *set);
void ficus_jwks_release(ficus_jwks_t *set);

/** base64url without padding (RFC 7515 §2): strict (no '=', no whitespace, no standard-alphabet chars, canonical
 * final bits). Writes at most *outlen bytes; returns 0 and sets *outlen, or -1. */
int ficus_base64url_decode(const char *in, size_t len, uint8_t *out, size_t *outlen);
/** Encodes without padding; out must hold ((len + 2) / 3) * 4 bytes; returns the length written. */
size_t ficus_base64url_encode(const uint8_t *in, size_t len, char *out);

#endif
