/* Microbenchmark of ficus_jwt_verify (plugins/jwt_auth): CPU per verification on a token-cache miss, per algorithm and
 * for bad tokens, measured with CLOCK_THREAD_CPUTIME_ID. Standalone (not part of CMake); see loadtest/README-jwt.md.
 *
 * OWNS: nothing but itself. Tokens and keys come from the unit-test vectors (tests/unit/data/jwt/vectors.json, made
 * by python3-jwcrypto), verified at the file's fixed "now" with each vector's key set and policy.
 * Build: gcc -std=c11 -O2 -D_GNU_SOURCE -Igateway/include loadtest/jwt_verify_bench.c gateway/jwk.c \
 *            gateway/jws.c -lcrypto -ljansson -lpthread -o /tmp/jwt_verify_bench
 * Run:   /tmp/jwt_verify_bench [-n iterations] [-t threads] [-f vectors.json] [-c vector]   (from the repo root)
 * With -t N the same loop runs in N threads at once; CPU µs per verification is then the mean over threads and
 * "wall verif/s" the total throughput (shows whether verification scales across cores). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ficus/jwk.h"
#include "ficus/jws.h"

/* tamper: flip one character of the payload segment, i.e. a forged token for a real kid: a full signature check */
static const struct {
    const char *vector, *label;
    int tamper;
} cases[] = {
    {"rs256_ok", "RS256 valid (2048-bit)", 0},
    {"ps256_ok", "PS256 valid (2048-bit)", 0},
    {"es256_ok", "ES256 valid (P-256)", 0},
    {"es384_ok", "ES384 valid (P-384)", 0},
    {"es512_ok", "ES512 valid (P-521)", 0},
    {"eddsa_ok", "EdDSA valid (Ed25519)", 0},
    {"hs256_ok", "HS256 valid", 0},
    {"wrong_key_same_kid", "RS256 bad signature (other key)", 0},
    {"rs256_ok", "RS256 forged payload", 1},
    {"ps256_ok", "PS256 forged payload", 1},
    {"es256_ok", "ES256 forged payload", 1},
    {"es384_ok", "ES384 forged payload", 1},
    {"es512_ok", "ES512 forged payload", 1},
    {"eddsa_ok", "EdDSA forged payload", 1},
    {"hs256_ok", "HS256 forged payload", 1},
    {"es256_signature_zero", "ES256 zero r,s", 0},
    {"unknown_kid", "RS256 unknown kid", 0},
    {"alg_none", "alg none", 0},
    {"two_segments", "malformed (2 segments)", 0},
    {"header_not_json", "header not JSON", 0},
};

typedef struct st_bench_t {
    const char *token;
    size_t len;
    const ficus_jwks_t *keys;
    ficus_jwt_policy_t policy;
    const char *auds[8];
    double now;
    long iterations;
    ficus_jwt_status_t expect;
    double cpu_s;
    int mismatches;
} bench_t;

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint32_t algs_mask(json_t *names)
{
    uint32_t mask = 0;
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v)
    {
        int a = ficus_jwa_from_name(json_string_value(v), json_string_length(v));
        if (a >= 0)
            mask |= FICUS_JWA_BIT(a);
    }
    return mask;
}

static ficus_jwks_t *make_keyset(json_t *ks, double *parse_us)
{
    json_t *jwks = json_object_get(ks, "jwks");
    if (jwks != NULL) {
        char *text = json_dumps(jwks, JSON_COMPACT), err[256];
        uint32_t algs = algs_mask(json_object_get(ks, "algorithms"));
        unsigned bits = (unsigned)json_integer_value(json_object_get(ks, "min_rsa_bits"));
        double t0 = thread_cpu();
        ficus_jwks_t *set = ficus_jwks_parse(text, strlen(text), algs, bits, err, sizeof(err));
        *parse_us = (thread_cpu() - t0) * 1e6;
        free(text);
        return set;
    }
    json_t *s = json_object_get(ks, "secret_b64url");
    uint8_t secret[256];
    size_t len = sizeof(secret);
    if (ficus_base64url_decode(json_string_value(s), json_string_length(s), secret, &len) != 0)
        return NULL;
    return ficus_jwks_from_secret(secret, len, json_string_value(json_object_get(ks, "kid")),
                                  algs_mask(json_object_get(ks, "algorithms")));
}

static void *run(void *p)
{
    bench_t *b = p;
    /* warm up (first-use initialisation inside OpenSSL) */
    for (int i = 0; i < 50; ++i)
        ficus_jwt_verify(b->token, b->len, b->keys, &b->policy, b->now, NULL);
    double t0 = thread_cpu();
    for (long i = 0; i < b->iterations; ++i) {
        ficus_jwt_t jwt;
        b->mismatches += ficus_jwt_verify(b->token, b->len, b->keys, &b->policy, b->now, &jwt) != b->expect;
        ficus_jwt_dispose(&jwt);
    }
    b->cpu_s = thread_cpu() - t0;
    return NULL;
}

int main(int argc, char **argv)
{
    const char *file = "tests/unit/data/jwt/vectors.json";
    long iterations = 20000;
    const char *only = NULL;
    int threads = 1, opt;
    while ((opt = getopt(argc, argv, "n:t:f:c:")) != -1) {
        switch (opt) {
        case 'n':
            iterations = atol(optarg);
            break;
        case 't':
            threads = atoi(optarg);
            break;
        case 'f':
            file = optarg;
            break;
        case 'c':
            only = optarg;
            break;
        default:
            fprintf(stderr, "usage: %s [-n iterations] [-t threads] [-f vectors.json] [-c vector]\n", argv[0]);
            return 2;
        }
    }
    if (iterations <= 0 || threads <= 0 || threads > 64)
        return 2;
    json_error_t jerr;
    json_t *root = json_load_file(file, 0, &jerr);
    if (root == NULL) {
        fprintf(stderr, "%s: %s (run from the repository root or pass -f)\n", file, jerr.text);
        return 1;
    }
    double now = json_number_value(json_object_get(root, "now")), parse_us = 0;
    const char *name;
    json_t *v;
    const char *set_names[16];
    ficus_jwks_t *sets[16];
    size_t nsets = 0;
    json_object_foreach(json_object_get(root, "keysets"), name, v)
    {
        if (nsets < 16) {
            double us = 0;
            set_names[nsets] = name;
            sets[nsets++] = make_keyset(v, &us);
            if (strcmp(name, "main") == 0)
                parse_us = us;
        }
    }
    printf("ficus_jwt_verify, %ld iterations x %d thread(s), OpenSSL %s\n", iterations, threads, OpenSSL_version(OPENSSL_VERSION));
    printf("JWKS parse of the test set (9 keys: 5 RSA incl. 1024-bit/enc skipped, 3 EC, 1 Ed25519): %.0f us\n\n", parse_us);
    printf("%-32s %-16s %12s %16s %16s\n", "case", "status", "us/verify", "verif/s/core", "wall verif/s");
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); ++c) {
        json_t *vec = NULL;
        size_t i;
        if (only != NULL && strcmp(only, cases[c].vector) != 0)
            continue;
        json_array_foreach(json_object_get(root, "vectors"), i, v)
        {
            if (strcmp(json_string_value(json_object_get(v, "name")), cases[c].vector) == 0)
                vec = v;
        }
        if (vec == NULL) {
            printf("%-32s (vector %s missing)\n", cases[c].label, cases[c].vector);
            continue;
        }
        bench_t proto = {0};
        json_t *tok = json_object_get(vec, "token"),
               *pol = json_object_get(json_object_get(root, "policies"), json_string_value(json_object_get(vec, "policy")));
        char *copy = strdup(json_string_value(tok));
        proto.token = copy;
        proto.len = json_string_length(tok);
        if (cases[c].tamper) {
            char *p = strchr(copy, '.') + 6;
            *p = *p == 'A' ? 'B' : 'A';
        }
        for (size_t s = 0; s < nsets; ++s)
            if (strcmp(set_names[s], json_string_value(json_object_get(vec, "keyset"))) == 0)
                proto.keys = sets[s];
        proto.policy.issuer = json_string_value(json_object_get(pol, "issuer"));
        json_array_foreach(json_object_get(pol, "audiences"), i, v)
        {
            if (i < 8)
                proto.auds[proto.policy.num_audiences++] = json_string_value(v);
        }
        proto.policy.allowed_algs = algs_mask(json_object_get(pol, "algorithms"));
        proto.policy.leeway_s = (uint64_t)json_integer_value(json_object_get(pol, "leeway"));
        proto.policy.max_token_bytes = (size_t)json_integer_value(json_object_get(pol, "max_token_bytes"));
        proto.policy.audiences = proto.auds;
        proto.now = now;
        proto.iterations = iterations;
        proto.expect = ficus_jwt_verify(proto.token, proto.len, proto.keys, &proto.policy, now, NULL);

        bench_t b[64];
        pthread_t th[64];
        double w0 = wall();
        for (int t = 0; t < threads; ++t) {
            b[t] = proto;
            b[t].policy.audiences = b[t].auds;
            pthread_create(&th[t], NULL, run, &b[t]);
        }
        double cpu = 0;
        int mismatches = 0;
        for (int t = 0; t < threads; ++t) {
            pthread_join(th[t], NULL);
            cpu += b[t].cpu_s;
            mismatches += b[t].mismatches;
        }
        double elapsed = wall() - w0, us = cpu / threads / iterations * 1e6;
        printf("%-32s %-16s %12.2f %16.0f %16.0f%s\n", cases[c].label, ficus_jwt_status_name(proto.expect), us, 1e6 / us,
               threads * iterations / elapsed, mismatches ? "  (status changed between runs!)" : "");
        free(copy);
    }
    for (size_t s = 0; s < nsets; ++s)
        ficus_jwks_release(sets[s]);
    json_decref(root);
    return 0;
}
