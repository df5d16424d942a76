/* Unit tests of plugins/jwt_auth (jwk.c, jws.c): JWKS parsing, strict base64url, and ficus_jwt_verify against test
 * vectors made by an independent implementation (python3-jwcrypto) in tests/unit/data/jwt/vectors.json — one test per
 * status code over every vector expecting it, plus JWKS documents, result fields, the heap decode path and threads.
 * The vectors are regenerated with tests/unit/data/jwt/make_vectors.py; every expectation is read from the file.
 * The file is found through $FICUS_SOURCE_DIR, else relative to this source file's path (__FILE__). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ficus/jwk.h"
#include "ficus/jws.h"
#include "runner.h"

#define VECTORS_RELPATH "tests/unit/data/jwt/vectors.json"
#define THIS_RELPATH "tests/unit/test_jwt.c"

/* ---- the vector file ---- */

static json_t *load_vectors(void)
{
    char path[4096];
    const char *dir = getenv("FICUS_SOURCE_DIR");
    if (dir != NULL && dir[0] != '\0') {
        snprintf(path, sizeof(path), "%s/%s", dir, VECTORS_RELPATH);
    } else {
        const char *file = __FILE__;
        size_t n = strlen(file), m = strlen(THIS_RELPATH);
        size_t prefix = n >= m && strcmp(file + n - m, THIS_RELPATH) == 0 ? n - m : 0;
        snprintf(path, sizeof(path), "%.*s%s", (int)prefix, file, VECTORS_RELPATH);
    }
    json_error_t jerr;
    json_t *v = json_load_file(path, 0, &jerr);
    if (v == NULL)
        printf("#   cannot load %s: %s (set FICUS_SOURCE_DIR to the repository root)\n", path, jerr.text);
    return v;
}

static uint32_t algs_mask(json_t *names)
{
    uint32_t mask = 0;
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v)
    {
        int a = ficus_jwa_from_name(json_string_value(v), json_string_length(v));
        if (!ok(a >= 0))
            printf("#     unknown algorithm %s\n", json_string_value(v));
        else
            mask |= FICUS_JWA_BIT(a);
    }
    return mask;
}

static ficus_jwks_t *make_keyset(json_t *ks)
{
    json_t *jwks = json_object_get(ks, "jwks");
    if (jwks != NULL) {
        char *text = json_dumps(jwks, JSON_COMPACT), err[256] = "";
        ficus_jwks_t *set = ficus_jwks_parse(text, strlen(text), algs_mask(json_object_get(ks, "algorithms")),
                                             (unsigned)json_integer_value(json_object_get(ks, "min_rsa_bits")), err, sizeof(err));
        if (!ok(set != NULL))
            printf("#     %s\n", err);
        free(text);
        return set;
    }
    json_t *s = json_object_get(ks, "secret_b64url");
    uint8_t secret[256];
    size_t len = sizeof(secret);
    if (!ok(ficus_base64url_decode(json_string_value(s), json_string_length(s), secret, &len) == 0))
        return NULL;
    ficus_jwks_t *set = ficus_jwks_from_secret(secret, len, json_string_value(json_object_get(ks, "kid")),
                                               algs_mask(json_object_get(ks, "algorithms")));
    ok(set != NULL);
    return set;
}

typedef struct st_policy_holder_t {
    ficus_jwt_policy_t policy;
    const char *auds[8];
} policy_holder_t;

static void make_policy(json_t *p, policy_holder_t *h)
{
    memset(h, 0, sizeof(*h));
    json_t *auds = json_object_get(p, "audiences"), *v;
    size_t i;
    h->policy.issuer = json_string_value(json_object_get(p, "issuer"));
    json_array_foreach(auds, i, v)
    {
        if (i < 8)
            h->auds[h->policy.num_audiences++] = json_string_value(v);
    }
    h->policy.audiences = h->auds;
    h->policy.allowed_algs = algs_mask(json_object_get(p, "algorithms"));
    h->policy.leeway_s = (uint64_t)json_integer_value(json_object_get(p, "leeway"));
    h->policy.max_token_bytes = (size_t)json_integer_value(json_object_get(p, "max_token_bytes"));
}

/* All keysets and policies of the file, built once per test. */
typedef struct st_fixture_t {
    json_t *root;
    double now;
    const char *keyset_names[16];
    ficus_jwks_t *keysets[16];
    size_t num_keysets;
    const char *policy_names[16];
    policy_holder_t policies[16];
    size_t num_policies;
} fixture_t;

static int fixture_open(fixture_t *fx)
{
    memset(fx, 0, sizeof(*fx));
    if (!ok((fx->root = load_vectors()) != NULL))
        return 0;
    fx->now = json_number_value(json_object_get(fx->root, "now"));
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(fx->root, "keysets"), name, v)
    {
        if (fx->num_keysets < 16) {
            fx->keyset_names[fx->num_keysets] = name;
            fx->keysets[fx->num_keysets++] = make_keyset(v);
        }
    }
    json_object_foreach(json_object_get(fx->root, "policies"), name, v)
    {
        if (fx->num_policies < 16) {
            fx->policy_names[fx->num_policies] = name;
            make_policy(v, &fx->policies[fx->num_policies++]);
        }
    }
    return 1;
}

static void fixture_close(fixture_t *fx)
{
    for (size_t i = 0; i < fx->num_keysets; ++i)
        ficus_jwks_release(fx->keysets[i]);
    json_decref(fx->root);
}

static ficus_jwks_t *fixture_keyset(fixture_t *fx, const char *name)
{
    for (size_t i = 0; i < fx->num_keysets; ++i)
        if (strcmp(fx->keyset_names[i], name) == 0)
            return fx->keysets[i];
    return NULL;
}

static const ficus_jwt_policy_t *fixture_policy(fixture_t *fx, const char *name)
{
    for (size_t i = 0; i < fx->num_policies; ++i)
        if (strcmp(fx->policy_names[i], name) == 0)
            return &fx->policies[i].policy;
    return NULL;
}

static json_t *find_vector(fixture_t *fx, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(fx->root, "vectors"), i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "name")), name) == 0)
            return v;
    }
    printf("#   no vector named %s\n", name);
    return NULL;
}

static const char *vstr(json_t *v, const char *member)
{
    return json_string_value(json_object_get(v, member));
}

/* Verifies one vector; returns the status. */
static ficus_jwt_status_t run_vector(fixture_t *fx, json_t *v, ficus_jwt_t *out)
{
    json_t *t = json_object_get(v, "token");
    return ficus_jwt_verify(json_string_value(t), json_string_length(t), fixture_keyset(fx, vstr(v, "keyset")),
                            fixture_policy(fx, vstr(v, "policy")), fx->now, out);
}

/* Runs every vector expecting `status` (at least one must exist), checking the status and the result invariants. */
static void run_vectors_expecting(ficus_jwt_status_t status)
{
    fixture_t fx;
    if (!fixture_open(&fx))
        return;
    const char *want = ficus_jwt_status_name(status);
    size_t i, count = 0;
    json_t *v;
    json_array_foreach(json_object_get(fx.root, "vectors"), i, v)
    {
        if (strcmp(vstr(v, "expect"), want) != 0)
            continue;
        ++count;
        if (!ok(fixture_keyset(&fx, vstr(v, "keyset")) != NULL && fixture_policy(&fx, vstr(v, "policy")) != NULL))
            continue;
        ficus_jwt_t jwt;
        ficus_jwt_status_t got = run_vector(&fx, v, &jwt);
        if (!ok_str(ficus_jwt_status_name(got), want))
            printf("#     vector: %s\n", vstr(v, "name"));
        /* claims and key are set only once the signature verified */
        int signed_ok = got == FICUS_JWT_OK || got <= FICUS_JWT_ERR_BAD_PAYLOAD;
        if (!ok((jwt.key != NULL) == signed_ok) || !ok((jwt.claims != NULL) == (signed_ok && got != FICUS_JWT_ERR_BAD_PAYLOAD)))
            printf("#     vector: %s\n", vstr(v, "name"));
        ficus_jwt_dispose(&jwt);
        ok(jwt.header == NULL && jwt.claims == NULL);
    }
    if (!ok(count > 0))
        printf("#     no vector expects %s\n", want);
    fixture_close(&fx);
}

#define STATUS_TEST(name, status)                                                                                                  \
    FICUS_TEST(vectors_##name)                                                                                                     \
    {                                                                                                                              \
        run_vectors_expecting(status);                                                                                             \
    }

STATUS_TEST(ok, FICUS_JWT_OK)
STATUS_TEST(too_large, FICUS_JWT_ERR_TOO_LARGE)
STATUS_TEST(malformed, FICUS_JWT_ERR_MALFORMED)
STATUS_TEST(bad_header, FICUS_JWT_ERR_BAD_HEADER)
STATUS_TEST(alg_none, FICUS_JWT_ERR_ALG_NONE)
STATUS_TEST(alg_not_allowed, FICUS_JWT_ERR_ALG_NOT_ALLOWED)
STATUS_TEST(crit, FICUS_JWT_ERR_CRIT)
STATUS_TEST(bad_typ, FICUS_JWT_ERR_BAD_TYP)
STATUS_TEST(unknown_kid, FICUS_JWT_ERR_UNKNOWN_KID)
STATUS_TEST(no_key, FICUS_JWT_ERR_NO_KEY)
STATUS_TEST(key_alg_mismatch, FICUS_JWT_ERR_KEY_ALG_MISMATCH)
STATUS_TEST(bad_signature, FICUS_JWT_ERR_BAD_SIGNATURE)
STATUS_TEST(bad_payload, FICUS_JWT_ERR_BAD_PAYLOAD)
STATUS_TEST(missing_exp, FICUS_JWT_ERR_MISSING_EXP)
STATUS_TEST(bad_claim_type, FICUS_JWT_ERR_BAD_CLAIM_TYPE)
STATUS_TEST(expired, FICUS_JWT_ERR_EXPIRED)
STATUS_TEST(not_yet_valid, FICUS_JWT_ERR_NOT_YET_VALID)
STATUS_TEST(issued_in_future, FICUS_JWT_ERR_ISSUED_IN_FUTURE)
STATUS_TEST(bad_issuer, FICUS_JWT_ERR_BAD_ISSUER)
STATUS_TEST(bad_audience, FICUS_JWT_ERR_BAD_AUDIENCE)

FICUS_TEST(every_vector_expects_a_known_status)
{
    fixture_t fx;
    if (!fixture_open(&fx))
        return;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(fx.root, "vectors"), i, v)
    {
        int known = 0;
        for (int s = 0; s < FICUS_JWT_STATUS_COUNT; ++s)
            known |= strcmp(ficus_jwt_status_name((ficus_jwt_status_t)-s), vstr(v, "expect")) == 0;
        if (!ok(known))
            printf("#     vector %s expects %s\n", vstr(v, "name"), vstr(v, "expect"));
    }
    ok(i >= 100);
    fixture_close(&fx);
}

/* Named vectors that the brief requires, so that a regenerated file cannot silently drop them. */
FICUS_TEST(required_vectors_present)
{
    static const char *const names[] = {"rs256_ok",
                                        "rs384_ok",
                                        "rs512_ok",
                                        "ps256_ok",
                                        "ps384_ok",
                                        "ps512_ok",
                                        "es256_ok",
                                        "es384_ok",
                                        "es512_ok",
                                        "eddsa_ok",
                                        "hs256_ok",
                                        "alg_confusion_hs256_rsa_pem",
                                        "alg_confusion_hs256_rsa_pem_hs_allowed",
                                        "alg_none",
                                        "alg_None",
                                        "alg_NONE",
                                        "es256_with_p384_key",
                                        "tampered_payload",
                                        "wrong_key_same_kid",
                                        "padding_in_signature",
                                        "plus_in_signature",
                                        "slash_in_payload",
                                        "two_segments",
                                        "four_segments",
                                        "empty_signature",
                                        "crit_present",
                                        "jwk_header_attacker_kid",
                                        "jku_header_attacker_kid",
                                        "jwk_header_victim_kid",
                                        "exp_at_leeway_boundary",
                                        "exp_now_noleeway",
                                        "exp_string",
                                        "iss_mismatch",
                                        "aud_string_second",
                                        "aud_array",
                                        "aud_mismatch",
                                        "typ_jwt",
                                        "typ_at_jwt",
                                        "typ_application_at_jwt",
                                        "typ_jose",
                                        "no_kid_one_candidate_es256",
                                        "no_kid_two_candidates_rs256",
                                        "rsa_weak_key_skipped",
                                        "rsa_enc_key_skipped",
                                        "rs256_with_jwk_alg_rs384",
                                        "payload_duplicate_exp",
                                        "too_large"};
    fixture_t fx;
    if (!fixture_open(&fx))
        return;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i)
        ok(find_vector(&fx, names[i]) != NULL);
    fixture_close(&fx);
}

FICUS_TEST(ok_result_fields)
{
    fixture_t fx;
    if (!fixture_open(&fx))
        return;
    ficus_jwt_t jwt;
    json_t *v = find_vector(&fx, "ps384_ok");
    if (ok(v != NULL) && ok_int(run_vector(&fx, v, &jwt), FICUS_JWT_OK)) {
        ok_int(jwt.alg, FICUS_JWA_PS384);
        ok(jwt.exp == fx.now + 600);
        ok(jwt.key != NULL && jwt.key->kid != NULL && strcmp(jwt.key->kid, "rsa1") == 0);
        ok_str(json_string_value(json_object_get(jwt.claims, "sub")), "alice");
        ok_str(json_string_value(json_object_get(jwt.header, "kid")), "rsa1");
    }
    ficus_jwt_dispose(&jwt);
    /* HS key without kid */
    v = find_vector(&fx, "hs512_ok");
    if (ok(v != NULL) && ok_int(run_vector(&fx, v, &jwt), FICUS_JWT_OK)) {
        ok_int(jwt.alg, FICUS_JWA_HS512);
        ok(jwt.key != NULL && jwt.key->kid == NULL && jwt.key->secret != NULL);
    }
    ficus_jwt_dispose(&jwt);
    fixture_close(&fx);
}

FICUS_TEST(failure_result_fields)
{
    fixture_t fx;
    if (!fixture_open(&fx))
        return;
    ficus_jwt_t jwt;
    json_t *v = find_vector(&fx, "wrong_key_same_kid");
    if (ok(v != NULL) && ok_int(run_vector(&fx, v, &jwt), FICUS_JWT_ERR_BAD_SIGNATURE)) {
        ok(jwt.header != NULL);
        ok(jwt.claims == NULL);
        ok(jwt.key == NULL);
    }
    ficus_jwt_dispose(&jwt);
    v = find_vector(&fx, "exp_past_beyond_leeway");
    if (ok(v != NULL) && ok_int(run_vector(&fx, v, &jwt), FICUS_JWT_ERR_EXPIRED))
        ok(jwt.claims != NULL && jwt.key != NULL); /* signature verified: claims available for the log */
    ficus_jwt_dispose(&jwt);
    v = find_vector(&fx, "two_segments");
    if (ok(v != NULL) && ok_int(run_vector(&fx, v, &jwt), FICUS_JWT_ERR_MALFORMED))
        ok(jwt.header == NULL && jwt.claims == NULL && jwt.key == NULL);
    ficus_jwt_dispose(&jwt);
    /* out may be NULL */
    v = find_vector(&fx, "es256_ok");
    if (ok(v != NULL)) {
        json_t *t = json_object_get(v, "token");
        ok_int(ficus_jwt_verify(json_string_value(t), json_string_length(t), fixture_keyset(&fx, "main"),
                                fixture_policy(&fx, "default"), fx.now, NULL),
               FICUS_JWT_OK);
    }
    fixture_close(&fx);
}

/* A token above 8 KiB decodes through the heap buffer when the policy allows it. */
FICUS_TEST(large_token_heap_path)
{
    fixture_t fx;
    if (!fixture_open(&fx))
        return;
    json_t *v = find_vector(&fx, "too_large"), *t;
    if (ok(v != NULL)) {
        ficus_jwt_policy_t p = *fixture_policy(&fx, "default");
        t = json_object_get(v, "token");
        ok(json_string_length(t) > 8192);
        p.max_token_bytes = json_string_length(t);
        ok_int(ficus_jwt_verify(json_string_value(t), json_string_length(t), fixture_keyset(&fx, "main"), &p, fx.now, NULL),
               FICUS_JWT_OK);
        p.max_token_bytes = json_string_length(t) - 1;
        ok_int(ficus_jwt_verify(json_string_value(t), json_string_length(t), fixture_keyset(&fx, "main"), &p, fx.now, NULL),
               FICUS_JWT_ERR_TOO_LARGE);
        p.max_token_bytes = 0; /* default 8 KiB */
        ok_int(ficus_jwt_verify(json_string_value(t), json_string_length(t), fixture_keyset(&fx, "main"), &p, fx.now, NULL),
               FICUS_JWT_ERR_TOO_LARGE);
    }
    fixture_close(&fx);
}

FICUS_TEST(null_or_empty_keyset)
{
    fixture_t fx;
    if (!fixture_open(&fx))
        return;
    json_t *v = find_vector(&fx, "es256_ok"), *t;
    ficus_jwks_t *empty = ficus_jwks_parse("{\"keys\":[]}", 11, ~0u, 2048, NULL, 0);
    if (ok(v != NULL) && ok(empty != NULL)) {
        t = json_object_get(v, "token");
        const ficus_jwt_policy_t *p = fixture_policy(&fx, "default");
        ok_int(ficus_jwt_verify(json_string_value(t), json_string_length(t), NULL, p, fx.now, NULL), FICUS_JWT_ERR_UNKNOWN_KID);
        ok_int(ficus_jwt_verify(json_string_value(t), json_string_length(t), empty, p, fx.now, NULL), FICUS_JWT_ERR_UNKNOWN_KID);
        t = json_object_get(find_vector(&fx, "no_kid_one_candidate_es256"), "token");
        ok_int(ficus_jwt_verify(json_string_value(t), json_string_length(t), empty, p, fx.now, NULL), FICUS_JWT_ERR_NO_KEY);
    }
    ficus_jwks_release(empty);
    fixture_close(&fx);
}

/* ---- JWKS documents ---- */

FICUS_TEST(jwks_documents)
{
    fixture_t fx;
    if (!fixture_open(&fx))
        return;
    size_t i, count = 0;
    json_t *d;
    json_array_foreach(json_object_get(fx.root, "jwks_documents"), i, d)
    {
        const char *name = vstr(d, "name");
        json_t *doc = json_object_get(d, "document");
        char err[256] = "";
        ++count;
        ficus_jwks_t *set =
            ficus_jwks_parse(json_string_value(doc), json_string_length(doc), algs_mask(json_object_get(d, "algorithms")),
                             (unsigned)json_integer_value(json_object_get(d, "min_rsa_bits")), err, sizeof(err));
        if (strcmp(vstr(d, "expect"), "error") == 0) {
            const char *prefix = vstr(d, "error_prefix");
            if (!ok(set == NULL) || !ok(strncmp(err, prefix, strlen(prefix)) == 0))
                printf("#     document %s: err '%s', expected prefix '%s'\n", name, err, prefix);
        } else if (ok(set != NULL)) {
            json_t *kids = json_object_get(d, "kids");
            if (!ok_int(set->num_keys, json_integer_value(json_object_get(d, "num_keys"))) ||
                !ok_int(set->num_skipped, json_integer_value(json_object_get(d, "num_skipped"))))
                printf("#     document %s\n", name);
            for (size_t k = 0; k < set->num_keys && k < json_array_size(kids); ++k) {
                if (!ok_str(set->keys[k].kid, json_string_value(json_array_get(kids, k))))
                    printf("#     document %s key %zu\n", name, k);
                ok(set->keys[k].algs != 0 && set->keys[k].pkey != NULL && set->keys[k].secret == NULL);
                ok((set->keys[k].algs & FICUS_JWA_HS_MASK) == 0);
            }
            ok_int(set->refcnt, 1);
        } else {
            printf("#     document %s: %s\n", name, err);
        }
        ficus_jwks_release(set);
    }
    ok(count >= 20);
    fixture_close(&fx);
}

FICUS_TEST(jwks_key_algorithms)
{
    fixture_t fx;
    if (!fixture_open(&fx))
        return;
    ficus_jwks_t *set = fixture_keyset(&fx, "main");
    static const struct {
        const char *kid;
        uint32_t algs;
    } expect[] = {
        {"rsa1", 0x3f}, /* RS* PS* */
        {"rsa-rs384-only", FICUS_JWA_BIT(FICUS_JWA_RS384)},
        {"ec256", FICUS_JWA_BIT(FICUS_JWA_ES256)},
        {"ec384", FICUS_JWA_BIT(FICUS_JWA_ES384)},
        {"ec521", FICUS_JWA_BIT(FICUS_JWA_ES512)},
        {"ed1", FICUS_JWA_BIT(FICUS_JWA_EDDSA)},
    };
    if (ok(set != NULL)) {
        for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); ++i) {
            const ficus_jwk_t *k = NULL;
            for (size_t j = 0; j < set->num_keys; ++j)
                if (set->keys[j].kid != NULL && strcmp(set->keys[j].kid, expect[i].kid) == 0)
                    k = &set->keys[j];
            if (ok(k != NULL))
                ok_int(k->algs, expect[i].algs);
        }
    }
    fixture_close(&fx);
}

FICUS_TEST(jwks_parse_errors)
{
    char err[256] = "";
    ficus_jwks_t *set = ficus_jwks_parse("{\"keys\": [}", 11, ~0u, 2048, err, sizeof(err));
    ok(set == NULL);
    ok(strncmp(err, "not JSON: ", 10) == 0 && strlen(err) > 10);
    ok(ficus_jwks_parse("{\"keys\": 1}", 11, ~0u, 2048, err, sizeof(err)) == NULL);
    ok_str(err, "no `keys` array");
    ok(ficus_jwks_parse("{}", 2, ~0u, 2048, err, sizeof(err)) == NULL);
    ok_str(err, "no `keys` array");
    ok(ficus_jwks_parse("", 0, ~0u, 2048, err, sizeof(err)) == NULL);
    ok(ficus_jwks_parse("{}", 2, ~0u, 2048, NULL, 0) == NULL); /* err is optional */
    /* size bound */
    size_t big = FICUS_JWKS_MAX_BYTES + 1;
    char *doc = malloc(big);
    if (ok(doc != NULL)) {
        memset(doc, ' ', big);
        memcpy(doc, "{\"keys\":[]}", 11);
        ok(ficus_jwks_parse(doc, big, ~0u, 2048, err, sizeof(err)) == NULL);
        ok(strncmp(err, "document larger than", 20) == 0);
        set = ficus_jwks_parse(doc, big - 1, ~0u, 2048, err, sizeof(err));
        ok(set != NULL && set->num_keys == 0);
        ficus_jwks_release(set);
        free(doc);
    }
}

FICUS_TEST(jwks_from_secret_and_refcount)
{
    const uint8_t secret[] = "0123456789abcdef0123456789abcdef";
    uint32_t all = ~0u;
    ficus_jwks_t *set = ficus_jwks_from_secret(secret, 32, "k", all);
    if (ok(set != NULL)) {
        ok_int(set->num_keys, 1);
        ok_int(set->keys[0].algs, FICUS_JWA_HS_MASK);
        ok_str(set->keys[0].kid, "k");
        ok(set->keys[0].pkey == NULL && set->keys[0].secret_len == 32 && memcmp(set->keys[0].secret, secret, 32) == 0);
        ficus_jwks_retain(set);
        ficus_jwks_retain(set);
        ok_int(set->refcnt, 3);
        ficus_jwks_release(set);
        ficus_jwks_release(set);
        ok_int(set->refcnt, 1);
        ficus_jwks_release(set); /* freed: LeakSanitizer checks nothing is left */
    }
    ok(ficus_jwks_from_secret(secret, 32, NULL, FICUS_JWA_BIT(FICUS_JWA_RS256)) == NULL); /* no HS algorithm */
    ok(ficus_jwks_from_secret(secret, 0, NULL, all) == NULL);
    set = ficus_jwks_from_secret(secret, 32, NULL, FICUS_JWA_BIT(FICUS_JWA_HS256) | FICUS_JWA_BIT(FICUS_JWA_ES256));
    if (ok(set != NULL)) {
        ok(set->keys[0].kid == NULL);
        ok_int(set->keys[0].algs, FICUS_JWA_BIT(FICUS_JWA_HS256));
    }
    ficus_jwks_release(set);
    ficus_jwks_release(NULL);
    ficus_jwks_retain(NULL);
}

/* ---- algorithms, statuses, base64url ---- */

FICUS_TEST(jwa_names)
{
    for (int a = 0; a < FICUS_JWA__COUNT; ++a) {
        const char *n = ficus_jwa_name((ficus_jwa_t)a);
        ok_int(ficus_jwa_from_name(n, strlen(n)), a);
    }
    ok_str(ficus_jwa_name(FICUS_JWA_EDDSA), "EdDSA");
    ok_int(ficus_jwa_from_name("none", 4), -1);
    ok_int(ficus_jwa_from_name("rs256", 5), -1);
    ok_int(ficus_jwa_from_name("EDDSA", 5), -1);
    ok_int(ficus_jwa_from_name("RS2560", 6), -1);
    ok_int(ficus_jwa_from_name("RS256", 3), -1);
    ok_int(ficus_jwa_from_name("ES256K", 6), -1);
    ok_int(ficus_jwa_from_name(NULL, 0), -1);
}

FICUS_TEST(status_names)
{
    for (int i = 0; i < FICUS_JWT_STATUS_COUNT; ++i) {
        const char *a = ficus_jwt_status_name((ficus_jwt_status_t)-i);
        ok(a != NULL && strcmp(a, "unknown") != 0);
        for (int j = 0; j < i; ++j)
            ok(strcmp(a, ficus_jwt_status_name((ficus_jwt_status_t)-j)) != 0);
    }
    ok_str(ficus_jwt_status_name(FICUS_JWT_OK), "ok");
    ok_str(ficus_jwt_status_name(FICUS_JWT_ERR_KEY_ALG_MISMATCH), "key_alg_mismatch");
    ok_str(ficus_jwt_status_name(FICUS_JWT_ERR_BAD_AUDIENCE), "bad_audience");
    ok_str(ficus_jwt_status_name((ficus_jwt_status_t)-FICUS_JWT_STATUS_COUNT), "unknown");
    ok_str(ficus_jwt_status_name((ficus_jwt_status_t)1), "unknown");
}

static int decodes_to(const char *in, const char *expect)
{
    uint8_t out[64];
    size_t outlen = sizeof(out);
    return ficus_base64url_decode(in, strlen(in), out, &outlen) == 0 && outlen == strlen(expect) &&
           memcmp(out, expect, outlen) == 0;
}

static int rejected(const char *in)
{
    uint8_t out[64];
    size_t outlen = sizeof(out);
    return ficus_base64url_decode(in, strlen(in), out, &outlen) == -1;
}

FICUS_TEST(base64url)
{
    ok(decodes_to("", ""));
    ok(decodes_to("Zg", "f"));
    ok(decodes_to("Zm8", "fo"));
    ok(decodes_to("Zm9v", "foo"));
    ok(decodes_to("Zm9vYg", "foob"));
    ok(decodes_to("_-8", "\xff\xef"));
    ok(rejected("Zg==")); /* padding */
    ok(rejected("Zm8="));
    ok(rejected("Z")); /* length 1 mod 4 */
    ok(rejected("Zm9vY"));
    ok(rejected("Zh")); /* non-canonical final bits */
    ok(rejected("Zm9"));
    ok(rejected("+-8")); /* standard alphabet */
    ok(rejected("/-8"));
    ok(rejected("Zm 9v")); /* whitespace */
    ok(rejected("Zm9v\n"));
    ok(rejected("Zm\0v"));
    uint8_t small[2];
    size_t n = sizeof(small);
    ok(ficus_base64url_decode("Zm9v", 4, small, &n) == -1); /* does not fit */
    /* round trips of every length and byte value */
    uint8_t in[300], out[300];
    char enc[400];
    for (size_t i = 0; i < sizeof(in); ++i)
        in[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(in); ++len) {
        size_t elen = ficus_base64url_encode(in, len, enc), olen = sizeof(out);
        ok(elen <= (len + 2) / 3 * 4 && elen == (len * 4 + 2) / 3);
        ok(memchr(enc, '=', elen) == NULL && memchr(enc, '+', elen) == NULL && memchr(enc, '/', elen) == NULL);
        if (!ok(ficus_base64url_decode(enc, elen, out, &olen) == 0 && olen == len && memcmp(in, out, len) == 0))
            printf("#     length %zu\n", len);
    }
}

/* ---- threads ---- */

typedef struct st_thread_arg_t {
    fixture_t *fx;
    int failures;
} thread_arg_t;

static void *verify_thread(void *p)
{
    thread_arg_t *arg = p;
    static const char *const names[] = {"rs256_ok", "ps256_ok",           "es256_ok",  "es512_ok",
                                        "eddsa_ok", "wrong_key_same_kid", "exp_string"};
    for (int round = 0; round < 20; ++round) {
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i) {
            json_t *v = find_vector(arg->fx, names[i]);
            ficus_jwt_t jwt;
            ficus_jwt_status_t s = run_vector(arg->fx, v, &jwt);
            arg->failures += strcmp(ficus_jwt_status_name(s), vstr(v, "expect")) != 0;
            ficus_jwt_dispose(&jwt);
        }
    }
    return NULL;
}

FICUS_TEST(concurrent_verification_shares_keys)
{
    fixture_t fx;
    if (!fixture_open(&fx))
        return;
    pthread_t th[4];
    thread_arg_t args[4];
    for (int i = 0; i < 4; ++i) {
        args[i] = (thread_arg_t){&fx, 0};
        ok(pthread_create(&th[i], NULL, verify_thread, &args[i]) == 0);
    }
    for (int i = 0; i < 4; ++i) {
        pthread_join(th[i], NULL);
        ok_int(args[i].failures, 0);
    }
    fixture_close(&fx);
}
