/* The `providers:` section: each provider's settings parsed and checked at load (file:line errors), its
 * `jwks_file` / `hs_secret_file` read then (never on the request path), and the runtime it maps to (equal settings
 * = the running runtime, kept across reloads: see provider_registry.c).
 * OWNERSHIP: a ficus_provider_conf_t and everything it points to is malloc'd here and freed by
 * ficus_provider_conf_free(); it holds a reference to its runtime. */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include "ficus/config.h"
#include "ficus/fetch.h"
#include "ficus/log.h"
#include "provider_internal.h"

#define MAX_SECRET_BYTES 4096

/* ---- small helpers (shared by the provider files) ---- */

double ficus__provider_unix_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec / 1e6;
}

char *ficus__provider_strdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        ficus_fatal("no memory");
    return p;
}

int ficus__provider_is_loopback_url(const char *url)
{
    h2o_url_t u;
    if (h2o_url_parse(url, strlen(url), &u) != 0)
        return 0;
    return h2o_memis(u.host.base, u.host.len, H2O_STRLIT("127.0.0.1")) ||
           h2o_memis(u.host.base, u.host.len, H2O_STRLIT("localhost")) || h2o_memis(u.host.base, u.host.len, H2O_STRLIT("::1"));
}
/* ---- config ---- */

static char *canonical_identity(const ficus_provider_conf_t *pc)
{
    char *buf;
    size_t len;
    FILE *fp = open_memstream(&buf, &len);
    if (fp == NULL)
        ficus_fatal("no memory");
    fprintf(fp, "%s|%s|%d|%s|%s|%s|%u|%u|%llu|%llu|%llu|%llu|%llu|%llu|%llu|%llu|%llu", pc->name, pc->issuer, (int)pc->source,
            pc->jwks_uri != NULL ? pc->jwks_uri : "", pc->jwks_file != NULL ? pc->jwks_file : "",
            pc->ca_file != NULL ? pc->ca_file : "", pc->algs, pc->min_rsa_bits, (unsigned long long)pc->refresh_interval_ms,
            (unsigned long long)pc->refresh_min_ms, (unsigned long long)pc->refresh_max_ms, (unsigned long long)pc->max_stale_ms,
            (unsigned long long)pc->fetch_timeout_ms, (unsigned long long)pc->refetch_budget,
            (unsigned long long)pc->refetch_budget_window_ms, (unsigned long long)pc->unknown_kid_ttl_ms,
            (unsigned long long)pc->unknown_kid_cache_size);
    fclose(fp);
    return buf;
}
static int load_provider(ficus_conf_ctx_t *cc, const ficus_node_t *name, const ficus_node_t *node, ficus_provider_conf_t *pc)
{
    ficus_node_t *issuer, *jwks_uri, *jwks_file, *discovery, *secret_file, *audiences, *algorithms, *leeway, *ca_file, *min_rsa,
        *refresh_interval, *refresh_min, *refresh_max, *max_stale, *refetch_min, *kid_wait, *fetch_timeout, *budget, *budget_window,
        *kid_ttl, *kid_cache;
    pc->name = ficus__provider_strdup(name->data.scalar.value);
    if (ficus_conf_mapping(cc, node, "issuer:s",
                           "jwks_uri:s,jwks_file:s,discovery:s,hs_secret_file:s,audiences:a,algorithms:a,leeway:s,ca_file:s,"
                           "min_rsa_bits:s,refresh_interval:s,refresh_min:s,refresh_max:s,max_stale:s,refetch_min_interval:s,"
                           "kid_wait:s,fetch_timeout:s,refetch_budget:s,refetch_budget_window:s,unknown_kid_ttl:s,"
                           "unknown_kid_cache_size:s",
                           &issuer, &jwks_uri, &jwks_file, &discovery, &secret_file, &audiences, &algorithms, &leeway, &ca_file,
                           &min_rsa, &refresh_interval, &refresh_min, &refresh_max, &max_stale, &refetch_min, &kid_wait,
                           &fetch_timeout, &budget, &budget_window, &kid_ttl, &kid_cache) != 0)
        return -1;
    if (issuer->data.scalar.len == 0)
        return ficus_conf_error(cc, issuer, "`issuer` must not be empty");
    pc->issuer = ficus__provider_strdup(issuer->data.scalar.value);

    int use_discovery = 0;
    if (discovery != NULL && ficus_conf_bool(cc, discovery, &use_discovery) != 0)
        return -1;
    int nsources = (jwks_uri != NULL) + (jwks_file != NULL) + use_discovery + (secret_file != NULL);
    if (nsources != 1)
        return ficus_conf_error(cc, node,
                                "provider '%s' needs exactly one key source: jwks_uri, jwks_file, discovery: true or "
                                "hs_secret_file (found %d)",
                                pc->name, nsources);

    /* algorithms: the allowlist; HS* only with a shared secret, never with JWKS keys (RFC 8725 3.1) */
    pc->algs = FICUS_JWA_BIT(FICUS_JWA_RS256);
    if (algorithms != NULL) {
        if (algorithms->data.sequence.size == 0)
            return ficus_conf_error(cc, algorithms, "`algorithms` must not be empty");
        pc->algs = 0;
        for (size_t i = 0; i != algorithms->data.sequence.size; ++i) {
            ficus_node_t *a = algorithms->data.sequence.elements[i];
            if (ficus_conf_expect(cc, a, FICUS_NODE_SCALAR) != 0)
                return -1;
            int alg = ficus_jwa_from_name(a->data.scalar.value, a->data.scalar.len);
            if (alg < 0)
                return ficus_conf_error(cc, a,
                                        "unsupported algorithm '%s' (RS256/384/512, PS256/384/512, ES256/384/512, EdDSA, "
                                        "HS256/384/512)",
                                        a->data.scalar.value);
            pc->algs |= FICUS_JWA_BIT(alg);
        }
    } else if (secret_file != NULL) {
        pc->algs = FICUS_JWA_BIT(FICUS_JWA_HS256);
    }
    if (secret_file != NULL && (pc->algs & ~FICUS_JWA_HS_MASK) != 0)
        return ficus_conf_error(cc, algorithms != NULL ? algorithms : node,
                                "a provider with hs_secret_file accepts only HS256/HS384/HS512");
    if (secret_file == NULL && (pc->algs & FICUS_JWA_HS_MASK) != 0)
        return ficus_conf_error(cc, algorithms, "HS* algorithms need `hs_secret_file` (never with JWKS keys)");

    if (audiences != NULL) {
        pc->num_audiences = audiences->data.sequence.size;
        if ((pc->audiences = calloc(pc->num_audiences + 1, sizeof(char *))) == NULL)
            ficus_fatal("no memory");
        for (size_t i = 0; i != pc->num_audiences; ++i) {
            if (ficus_conf_expect(cc, audiences->data.sequence.elements[i], FICUS_NODE_SCALAR) != 0)
                return -1;
            pc->audiences[i] = ficus__provider_strdup(audiences->data.sequence.elements[i]->data.scalar.value);
        }
    }
    pc->leeway_s = 60;
    if (leeway != NULL) {
        uint64_t ms;
        if (ficus_conf_duration(cc, leeway, 0, 3600000, &ms) != 0)
            return -1;
        pc->leeway_s = ms / 1000;
    }
    uint64_t bits = 2048;
    if (min_rsa != NULL && ficus_conf_uint(cc, min_rsa, 1024, 16384, &bits) != 0)
        return -1;
    pc->min_rsa_bits = (unsigned)bits;
    pc->refresh_interval_ms = 10 * 60000;
    pc->refresh_min_ms = 60000;
    pc->refresh_max_ms = 24 * 3600000;
    pc->max_stale_ms = 24 * 3600000;
    pc->refetch_budget_window_ms = 60000;
    pc->unknown_kid_ttl_ms = 5 * 60000;
    pc->kid_wait_ms = 2000;
    pc->fetch_timeout_ms = 5000;
    struct {
        ficus_node_t *node;
        uint64_t min, max, *out;
    } durations[] = {{refresh_interval, 1000, 7 * 86400000ULL, &pc->refresh_interval_ms},
                     {refresh_min, 1000, 7 * 86400000ULL, &pc->refresh_min_ms},
                     {refresh_max, 1000, 30 * 86400000ULL, &pc->refresh_max_ms},
                     {max_stale, 0, 365 * 86400000ULL, &pc->max_stale_ms},
                     {budget_window, 1000, 86400000ULL, &pc->refetch_budget_window_ms},
                     {kid_ttl, 0, 86400000ULL, &pc->unknown_kid_ttl_ms},
                     {kid_wait, 0, 60000, &pc->kid_wait_ms},
                     {fetch_timeout, 100, 300000, &pc->fetch_timeout_ms}};
    for (size_t i = 0; i != sizeof(durations) / sizeof(durations[0]); ++i)
        if (durations[i].node != NULL &&
            ficus_conf_duration(cc, durations[i].node, durations[i].min, durations[i].max, durations[i].out) != 0)
            return -1;
    if (refetch_min != NULL)
        return ficus_conf_error(cc, refetch_min,
                                "`refetch_min_interval` was replaced by `refetch_budget` (forced refetches per "
                                "`refetch_budget_window`) and `unknown_kid_ttl` (see the README's providers section)");
    pc->refetch_budget = 10;
    if (budget != NULL && ficus_conf_uint(cc, budget, 0, 1000, &pc->refetch_budget) != 0)
        return -1;
    pc->unknown_kid_cache_size = 1024;
    if (kid_cache != NULL && ficus_conf_uint(cc, kid_cache, 1, 100000, &pc->unknown_kid_cache_size) != 0)
        return -1;
    if (pc->refresh_min_ms > pc->refresh_max_ms)
        return ficus_conf_error(cc, refresh_min != NULL ? refresh_min : refresh_max, "refresh_min must not exceed refresh_max");
    if (ca_file != NULL) {
        pc->ca_file = ficus__provider_strdup(ca_file->data.scalar.value);
        char err[256];
        SSL_CTX *ctx = ficus_fetch_new_ssl_ctx(pc->ca_file, err, sizeof(err));
        if (ctx == NULL)
            return ficus_conf_error(cc, ca_file, "%s", err);
        SSL_CTX_free(ctx);
    }

    if (jwks_uri != NULL) {
        pc->source = FICUS_KEYS_FROM_URI;
        pc->jwks_uri = ficus__provider_strdup(jwks_uri->data.scalar.value);
        if (strncmp(pc->jwks_uri, "https://", 8) != 0 &&
            !(strncmp(pc->jwks_uri, "http://", 7) == 0 && ficus__provider_is_loopback_url(pc->jwks_uri)))
            return ficus_conf_error(cc, jwks_uri, "jwks_uri must be https:// (http:// only for loopback addresses)");
        h2o_url_t u;
        if (h2o_url_parse(pc->jwks_uri, strlen(pc->jwks_uri), &u) != 0)
            return ficus_conf_error(cc, jwks_uri, "invalid jwks_uri '%s'", pc->jwks_uri);
    } else if (use_discovery) {
        pc->source = FICUS_KEYS_FROM_DISCOVERY;
        if (strncmp(pc->issuer, "https://", 8) != 0 &&
            !(strncmp(pc->issuer, "http://", 7) == 0 && ficus__provider_is_loopback_url(pc->issuer)))
            return ficus_conf_error(cc, issuer, "discovery needs an https:// issuer (http:// only for loopback addresses)");
    } else if (jwks_file != NULL) {
        pc->source = FICUS_KEYS_FROM_FILE;
        pc->jwks_file = ficus__provider_strdup(jwks_file->data.scalar.value);
        char *text, err[256];
        size_t len;
        if (ficus_conf_read_file(cc, jwks_file, "JWKS file", FICUS_JWKS_MAX_BYTES, &text, &len) != 0)
            return -1;
        pc->loaded_keys = ficus_jwks_parse(text, len, pc->algs, pc->min_rsa_bits, err, sizeof(err));
        free(text);
        if (pc->loaded_keys == NULL)
            return ficus_conf_error(cc, jwks_file, "invalid JWKS in '%s': %s", pc->jwks_file, err);
        if (pc->loaded_keys->num_keys == 0)
            return ficus_conf_error(cc, jwks_file, "no usable key in '%s' for algorithms allowed by provider '%s' (%zu skipped)",
                                    pc->jwks_file, pc->name, pc->loaded_keys->num_skipped);
    } else {
        pc->source = FICUS_KEYS_FROM_SECRET;
        char *text;
        size_t len;
        if (ficus_conf_read_file(cc, secret_file, "HS secret file", MAX_SECRET_BYTES, &text, &len) != 0)
            return -1;
        size_t file_len = len;
        while (len != 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
            --len;
        if (len < 32) {
            OPENSSL_cleanse(text, file_len);
            free(text);
            return ficus_conf_error(cc, secret_file, "HS secret must be at least 32 bytes (RFC 7518 3.2)");
        }
        pc->loaded_keys = ficus_jwks_from_secret((const uint8_t *)text, len, NULL, pc->algs);
        OPENSSL_cleanse(text, file_len);
        free(text);
    }

    pc->policy.issuer = pc->issuer;
    pc->policy.audiences = (const char *const *)pc->audiences;
    pc->policy.num_audiences = pc->num_audiences;
    pc->policy.allowed_algs = pc->algs;
    pc->policy.leeway_s = pc->leeway_s;
    pc->policy.max_token_bytes = 8192;
    pc->rt = ficus__provider_for(cc, pc->name, canonical_identity(pc));
    return 0;
}

int ficus_providers_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_config_t *config)
{
    if (ficus_conf_expect(cc, node, FICUS_NODE_MAPPING) != 0)
        return -1;
    if (node->data.mapping.size > 64)
        return ficus_conf_error(cc, node, "more than 64 providers");
    config->providers = calloc(node->data.mapping.size + 1, sizeof(*config->providers));
    if (config->providers == NULL)
        ficus_fatal("no memory");
    for (size_t i = 0; i != node->data.mapping.size; ++i) {
        ficus_node_t *key = node->data.mapping.keys[i];
        for (size_t j = 0; j != i; ++j)
            if (strcmp(config->providers[j]->name, key->data.scalar.value) == 0)
                return ficus_conf_error(cc, key, "duplicate provider '%s'", key->data.scalar.value);
        if ((config->providers[i] = calloc(1, sizeof(ficus_provider_conf_t))) == NULL)
            ficus_fatal("no memory");
        config->num_providers = i + 1;
        if (load_provider(cc, key, node->data.mapping.values[i], config->providers[i]) != 0)
            return -1;
    }
    return 0;
}

ficus_provider_conf_t *ficus_config_provider(const ficus_config_t *config, const char *name)
{
    for (size_t i = 0; i != config->num_providers; ++i)
        if (strcmp(config->providers[i]->name, name) == 0)
            return config->providers[i];
    return NULL;
}

void ficus_provider_conf_free(ficus_provider_conf_t *pc)
{
    if (pc == NULL)
        return;
    free(pc->name);
    free(pc->issuer);
    for (size_t i = 0; i != pc->num_audiences; ++i)
        free(pc->audiences[i]);
    free(pc->audiences);
    free(pc->jwks_uri);
    free(pc->jwks_file);
    free(pc->ca_file);
    if (pc->loaded_keys != NULL)
        ficus_jwks_release(pc->loaded_keys);
    if (pc->rt != NULL)
        ficus_provider_release(pc->rt);
    free(pc);
}
