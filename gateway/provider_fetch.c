/* The fetcher: a provider's keys fetched on the control thread, for the whole process (ficus/fetch.h: async,
 * verified TLS). Discovery first when configured ({issuer}/.well-known/openid-configuration → jwks_uri and the SSO
 * endpoints), then the JWKS; refreshed on Cache-Control max-age clamped to [refresh_min, refresh_max]
 * (refresh_interval without it); a failure keeps the last good set and retries with exponential backoff from 1 s
 * up to refresh_min; keys older than max_stale with no success since are dropped (fail closed). One fetch at a
 * time; forced ones are started for unknown kids by provider_refetch.c, told of the end of every fetch.
 * THREADING: control thread only: a fetcher's timers and HTTP client live on the control loop and die with it. */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/control.h"
#include "ficus/fetch.h"
#include "ficus/log.h"
#include "provider_internal.h"

#define MAX_DISCOVERY_BYTES (256 * 1024)

struct st_ficus_provider_fetcher_t {
    ficus_provider_t *p;
    ficus_key_source_t source;
    char *issuer;
    char *jwks_uri; /* configured, or found by discovery */
    char *discovery_url;
    uint32_t algs;
    unsigned min_rsa_bits;
    uint64_t refresh_interval_ms, refresh_min_ms, refresh_max_ms, max_stale_ms;
    SSL_CTX *ssl_ctx;
    h2o_timeout_t io_timeout;
    ficus_fetch_ctx_t fctx;
    ficus_fetch_t *inflight;
    int inflight_is_discovery;
    uint64_t next_fetch_at_ms, backoff_ms;
    uint8_t body_digest[32];
    int has_digest;
    h2o_timeout_entry_t tick; /* each second: due refresh, max_stale */
};

static h2o_timeout_t zero_timeout, tick_timeout; /* on the control loop, created with the first fetcher */
static int timeouts_ready;

static void start_fetch(ficus_provider_fetcher_t *f);

static uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void fetch_failed(ficus_provider_fetcher_t *f, const char *what, const char *why)
{
    ficus_provider_t *p = f->p;
    ++p->fetch_failure;
    p->state = p->keys != NULL ? FICUS_PROVIDER_STALE : FICUS_PROVIDER_NO_KEYS;
    f->backoff_ms = f->backoff_ms == 0 ? 1000 : f->backoff_ms * 2;
    if (f->backoff_ms > f->refresh_min_ms)
        f->backoff_ms = f->refresh_min_ms;
    f->next_fetch_at_ms = h2o_now(ficus_control_loop()) + f->backoff_ms;
    ficus_warn("provider %s: %s failed: %s; %s; retrying in %llums", p->name, what, why,
               p->keys != NULL ? "keeping the last good keys" : "no keys yet (its routes answer 503)",
               (unsigned long long)f->backoff_ms);
    ficus__provider_refetch_on_fetched(p, p->keys, NULL); /* last: it may start another fetch */
}

static void on_jwks(void *data, const char *errstr, const ficus_fetch_response_t *res)
{
    ficus_provider_fetcher_t *f = data;
    ficus_provider_t *p = f->p;
    ficus_jwks_t *before = NULL; /* the set a new one replaced */
    char err[256];
    f->inflight = NULL;
    if (errstr != NULL)
        return fetch_failed(f, "JWKS fetch", errstr);
    if (res->status != 200) {
        snprintf(err, sizeof(err), "HTTP status %d", res->status);
        return fetch_failed(f, "JWKS fetch", err);
    }
    uint8_t digest[32];
    unsigned dlen = 32;
    EVP_Digest(res->body.base, res->body.len, digest, &dlen, EVP_sha256(), NULL);
    int unchanged = f->has_digest && memcmp(digest, f->body_digest, 32) == 0 && p->keys != NULL;
    if (!unchanged) {
        ficus_jwks_t *keys = ficus_jwks_parse(res->body.base, res->body.len, f->algs, f->min_rsa_bits, err, sizeof(err));
        if (keys == NULL) {
            char why[320];
            snprintf(why, sizeof(why), "invalid JWKS: %s", err);
            return fetch_failed(f, "JWKS fetch", why);
        }
        if (keys->num_keys == 0) {
            ficus_jwks_release(keys);
            return fetch_failed(f, "JWKS fetch", "invalid JWKS: no usable key for the allowed algorithms");
        }
        memcpy(f->body_digest, digest, 32);
        f->has_digest = 1;
        ficus_info("provider %s: %zu keys loaded (%zu skipped)", p->name, keys->num_keys, keys->num_skipped);
        if ((before = p->keys) != NULL)
            ficus_jwks_retain(before);
        ficus__provider_publish(p, keys);
        ficus_jwks_release(keys);
    }
    ++p->fetch_success;
    p->state = FICUS_PROVIDER_OK;
    p->keys_at = ficus__provider_unix_now();
    f->backoff_ms = 0;
    uint64_t next =
        res->max_age >= 0 ? clamp_u64((uint64_t)res->max_age * 1000, f->refresh_min_ms, f->refresh_max_ms) : f->refresh_interval_ms;
    f->next_fetch_at_ms = h2o_now(ficus_control_loop()) + next;
    ficus__provider_refetch_on_fetched(p, before != NULL ? before : p->keys, p->keys); /* last: may start a fetch */
    if (before != NULL)
        ficus_jwks_release(before);
}

static void on_discovery(void *data, const char *errstr, const ficus_fetch_response_t *res)
{
    ficus_provider_fetcher_t *f = data;
    f->inflight = NULL;
    if (errstr != NULL)
        return fetch_failed(f, "discovery", errstr);
    char err[256];
    if (res->status != 200) {
        snprintf(err, sizeof(err), "HTTP status %d", res->status);
        return fetch_failed(f, "discovery", err);
    }
    json_error_t jerr;
    json_t *doc = json_loadb(res->body.base, res->body.len, JSON_REJECT_DUPLICATES, &jerr);
    const char *issuer = json_string_value(json_object_get(doc, "issuer")),
               *jwks_uri = json_string_value(json_object_get(doc, "jwks_uri"));
    if (doc == NULL || !json_is_object(doc)) {
        json_decref(doc);
        return fetch_failed(f, "discovery", "not a JSON object");
    }
    if (issuer == NULL || strcmp(issuer, f->issuer) != 0) {
        json_decref(doc);
        return fetch_failed(f, "discovery", "the document's issuer differs from the configured issuer (OIDC Discovery 4.3)");
    }
    if (jwks_uri == NULL || (strncmp(jwks_uri, "https://", 8) != 0 &&
                             !(strncmp(jwks_uri, "http://", 7) == 0 && ficus__provider_is_loopback_url(jwks_uri)))) {
        json_decref(doc);
        return fetch_failed(f, "discovery", "no https jwks_uri in the document");
    }
    free(f->jwks_uri);
    f->jwks_uri = ficus__provider_strdup(jwks_uri);
    const char *authz = json_string_value(json_object_get(doc, "authorization_endpoint")),
               *token = json_string_value(json_object_get(doc, "token_endpoint")),
               *end_session = json_string_value(json_object_get(doc, "end_session_endpoint"));
    if (authz != NULL && token != NULL) {
        ficus_provider_meta_t *meta = calloc(1, sizeof(*meta));
        if (meta == NULL)
            ficus_fatal("no memory");
        meta->refcnt = 1;
        meta->authorization_endpoint = ficus__provider_strdup(authz);
        meta->token_endpoint = ficus__provider_strdup(token);
        meta->end_session_endpoint = end_session != NULL ? ficus__provider_strdup(end_session) : NULL;
        ficus__provider_publish_meta(f->p, meta);
    }
    json_decref(doc);
    start_fetch(f);
}

static void start_fetch(ficus_provider_fetcher_t *f)
{
    const char *err = NULL;
    h2o_iovec_t accept = h2o_iovec_init(H2O_STRLIT("accept: application/json\r\n"));
    if (f->jwks_uri == NULL) {
        f->inflight_is_discovery = 1;
        f->inflight = ficus_fetch_start(&f->fctx, "GET", f->discovery_url, accept, h2o_iovec_init(NULL, 0), MAX_DISCOVERY_BYTES,
                                        on_discovery, f, &err);
    } else {
        f->inflight_is_discovery = 0;
        f->inflight = ficus_fetch_start(&f->fctx, "GET", f->jwks_uri, accept, h2o_iovec_init(NULL, 0), FICUS_JWKS_MAX_BYTES,
                                        on_jwks, f, &err);
    }
    if (f->inflight == NULL)
        fetch_failed(f, f->jwks_uri == NULL ? "discovery" : "JWKS fetch", err);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    ficus_provider_fetcher_t *f = H2O_STRUCT_FROM_MEMBER(ficus_provider_fetcher_t, tick, entry);
    ficus_provider_t *p = f->p;
    uint64_t now = h2o_now(ficus_control_loop());
    double unow = ficus__provider_unix_now();
    if (f->inflight == NULL && now >= f->next_fetch_at_ms)
        start_fetch(f);
    if (p->state == FICUS_PROVIDER_STALE && p->keys != NULL && (unow - p->keys_at) * 1000 > f->max_stale_ms) {
        ficus_error("provider %s: keys older than max_stale and no refresh succeeded: dropping them (its routes answer 503)",
                    p->name);
        p->state = FICUS_PROVIDER_NO_KEYS;
        ficus__provider_publish(p, NULL);
    }
    h2o_timeout_link(ficus_control_loop(), &tick_timeout, &f->tick);
}

int ficus__provider_fetcher_busy(const ficus_provider_fetcher_t *f)
{
    return f->inflight != NULL;
}

void ficus__provider_fetcher_force(ficus_provider_fetcher_t *f)
{
    start_fetch(f);
}

ficus_provider_fetcher_t *ficus__provider_fetcher_start(ficus_provider_t *p, const ficus_provider_conf_t *pc)
{
    char err[256];
    if (!timeouts_ready) {
        timeouts_ready = 1;
        h2o_timeout_init(ficus_control_loop(), &zero_timeout, 0);
        h2o_timeout_init(ficus_control_loop(), &tick_timeout, 1000);
    }
    ficus_provider_fetcher_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        ficus_fatal("no memory");
    f->p = p;
    f->source = pc->source;
    f->issuer = ficus__provider_strdup(pc->issuer);
    f->algs = pc->algs;
    f->min_rsa_bits = pc->min_rsa_bits;
    f->refresh_interval_ms = pc->refresh_interval_ms;
    f->refresh_min_ms = pc->refresh_min_ms;
    f->refresh_max_ms = pc->refresh_max_ms;
    f->max_stale_ms = pc->max_stale_ms;
    if (pc->jwks_uri != NULL)
        f->jwks_uri = ficus__provider_strdup(pc->jwks_uri);
    if (pc->source == FICUS_KEYS_FROM_DISCOVERY) {
        size_t len = strlen(pc->issuer);
        int slash = len != 0 && pc->issuer[len - 1] == '/';
        if (asprintf(&f->discovery_url, "%s%s.well-known/openid-configuration", pc->issuer, slash ? "" : "/") < 0)
            ficus_fatal("no memory");
    }
    if ((f->ssl_ctx = ficus_fetch_new_ssl_ctx(pc->ca_file, err, sizeof(err))) == NULL)
        ficus_error("provider %s: %s", p->name, err); /* checked at load; https fetches will fail and be retried */
    h2o_timeout_init(ficus_control_loop(), &f->io_timeout, pc->fetch_timeout_ms);
    f->fctx.loop = ficus_control_loop();
    f->fctx.getaddr_receiver = ficus_control_getaddr_receiver();
    f->fctx.io_timeout = &f->io_timeout;
    f->fctx.zero_timeout = &zero_timeout;
    f->fctx.ssl_ctx = f->ssl_ctx;
    f->tick.cb = on_tick;
    h2o_timeout_link(ficus_control_loop(), &tick_timeout, &f->tick);
    ficus__provider_refetch_create(p, pc);
    start_fetch(f);
    return f;
}

void ficus__provider_fetcher_destroy(ficus_provider_fetcher_t *f)
{
    h2o_timeout_unlink(&f->tick);
    if (f->inflight != NULL)
        ficus_fetch_cancel(f->inflight);
    f->inflight = NULL;
    ficus__provider_refetch_destroy(f->p);
    h2o_timeout_dispose(ficus_control_loop(), &f->io_timeout);
    if (f->ssl_ctx != NULL)
        SSL_CTX_free(f->ssl_ctx);
    free(f->issuer);
    free(f->jwks_uri);
    free(f->discovery_url);
    free(f);
}
