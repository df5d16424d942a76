/* Developer commands for the demo: `ficus token` mints a signed JWT, `ficus jwks` prints the JWKS of a key.
 *
 * They exist so the README's curl examples work without other tools. Tokens are issued with libjwt (sound for
 * signing: DESIGN.md §3); ficus itself never verifies with libjwt. These run as one-shot commands, never inside the
 * server. */
#include <getopt.h>
#include <jwt.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ficus/devtools.h"
#include "ficus/jwk.h"

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    char *buf = malloc(65537);
    *len = buf != NULL ? fread(buf, 1, 65536, fp) : 0;
    fclose(fp);
    if (buf != NULL)
        buf[*len] = '\0';
    return buf;
}

int ficus_devtool_token(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"key", required_argument, NULL, 'k'}, {"sub", required_argument, NULL, 's'},   {"scope", required_argument, NULL, 'o'},
        {"kid", required_argument, NULL, 'i'}, {"iss", required_argument, NULL, 'I'},   {"aud", required_argument, NULL, 'a'},
        {"ttl", required_argument, NULL, 't'}, {"claim", required_argument, NULL, 'c'}, {NULL}};
    const char *key_path = "certs-dev/dev-jwt.key", *sub = "alice", *scope = NULL, *kid = "dev", *iss = "https://idp.ficus.dev/",
               *aud = "api://ficus-demo";
    long ttl = 3600;
    const char *claims[16];
    size_t num_claims = 0;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'k':
            key_path = optarg;
            break;
        case 's':
            sub = optarg;
            break;
        case 'o':
            scope = optarg;
            break;
        case 'i':
            kid = optarg;
            break;
        case 'I':
            iss = optarg;
            break;
        case 'a':
            aud = optarg;
            break;
        case 't':
            ttl = atol(optarg);
            break;
        case 'c':
            if (num_claims == 16 || strchr(optarg, '=') == NULL) {
                fprintf(stderr, "ficus token: --claim NAME=VALUE (at most 16)\n");
                return 2;
            }
            claims[num_claims++] = optarg;
            break;
        default:
            fprintf(stderr,
                    "Usage: ficus token [--key PEM] [--sub S] [--scope 'a b'] [--kid K] [--iss I] [--aud A] [--ttl SECONDS] "
                    "[--claim NAME=VALUE]...\n");
            return 2;
        }
    }
    size_t keylen;
    char *key = read_file(key_path, &keylen);
    if (key == NULL) {
        fprintf(stderr, "ficus token: cannot read %s (run certs-dev/make-certs.sh)\n", key_path);
        return 1;
    }
    jwt_t *jwt;
    time_t now = time(NULL);
    int rc = jwt_new(&jwt);
    rc = rc != 0 ? rc : jwt_set_alg(jwt, JWT_ALG_RS256, (const unsigned char *)key, (int)keylen);
    rc = rc != 0 ? rc : jwt_add_header(jwt, "kid", kid);
    rc = rc != 0 ? rc : jwt_add_grant(jwt, "iss", iss);
    rc = rc != 0 ? rc : jwt_add_grant(jwt, "aud", aud);
    rc = rc != 0 ? rc : jwt_add_grant(jwt, "sub", sub);
    rc = rc != 0 ? rc : jwt_add_grant_int(jwt, "iat", (long)now);
    rc = rc != 0 ? rc : jwt_add_grant_int(jwt, "exp", (long)now + ttl);
    if (rc == 0 && scope != NULL)
        rc = jwt_add_grant(jwt, "scope", scope);
    for (size_t i = 0; rc == 0 && i != num_claims; ++i) {
        char name[128];
        const char *eq = strchr(claims[i], '=');
        snprintf(name, sizeof(name), "%.*s", (int)(eq - claims[i]), claims[i]);
        rc = jwt_add_grant(jwt, name, eq + 1);
    }
    char *out = rc == 0 ? jwt_encode_str(jwt) : NULL;
    free(key);
    if (out == NULL) {
        fprintf(stderr, "ficus token: cannot sign with %s (an RSA private key in PEM is expected)\n", key_path);
        jwt_free(jwt);
        return 1;
    }
    printf("%s\n", out);
    free(out);
    jwt_free(jwt);
    return 0;
}

static char *b64_bn(const BIGNUM *bn)
{
    int n = BN_num_bytes(bn);
    uint8_t *bytes = malloc(n > 0 ? n : 1);
    BN_bn2bin(bn, bytes);
    char *out = malloc((n + 2) / 3 * 4 + 1);
    size_t len = ficus_base64url_encode(bytes, n, out);
    out[len] = '\0';
    free(bytes);
    return out;
}

int ficus_devtool_jwks(int argc, char **argv)
{
    const char *key_path = argc > 1 ? argv[1] : "certs-dev/dev-jwt.key", *kid = argc > 2 ? argv[2] : "dev";
    FILE *fp = fopen(key_path, "r");
    if (fp == NULL) {
        fprintf(stderr, "Usage: ficus jwks [KEY.pem [KID]]  (cannot open %s)\n", key_path);
        return 1;
    }
    EVP_PKEY *pkey = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    if (pkey == NULL) {
        rewind(fp);
        pkey = PEM_read_PUBKEY(fp, NULL, NULL, NULL);
    }
    fclose(fp);
    BIGNUM *n = NULL, *e = NULL;
    if (pkey == NULL || EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
        fprintf(stderr, "ficus jwks: %s is not an RSA key in PEM\n", key_path);
        EVP_PKEY_free(pkey);
        return 1;
    }
    char *n64 = b64_bn(n), *e64 = b64_bn(e);
    printf("{\"keys\":[{\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"}]}\n", kid, n64,
           e64);
    free(n64);
    free(e64);
    BN_free(n);
    BN_free(e);
    EVP_PKEY_free(pkey);
    return 0;
}
