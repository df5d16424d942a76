/* Token issuers: `providers:` config, JWKS fetching on the control thread, key sets published to workers,
 * forced refetches for unknown kids (see ficus/provider.h for the lifecycle). */
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include "ficus/config.h"
#include "ficus/fetch.h"
#include "ficus/log.h"
#include "ficus/provider.h"
#include "ficus/server.h"
#include "ficus/worker.h"

#define MAX_WAITERS_PER_WORKER 4096
#define MAX_SECRET_BYTES 4096
#define MAX_DISCOVERY_BYTES (256 * 1024)

struct st_ficus_provider_fetcher_t {
    ficus_provider_t *p;
    ficus_key_source_t source;
    char *issuer;
    char *jwks_uri; /* configured, or found by discovery */
    char *discovery_url;
    uint32_t algs;
    unsigned min_rsa_bits;
    uint64_t refresh_interval_ms, refresh_min_ms, refresh_max_ms, max_stale_ms, refetch_min_interval_ms;
    SSL_CTX *ssl_ctx;
    h2o_timeout_t io_timeout;
    ficus_fetch_ctx_t fctx;
    ficus_fetch_t *inflight;
    int inflight_is_discovery;
    int notify_when_done; /* workers wait for a forced refetch */
    uint64_t next_fetch_at_ms, backoff_ms, last_forced_ms;
    uint8_t body_digest[32];
    int has_digest;
};

/* ---- small helpers ---- */

static double unix_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec / 1e6;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        ficus_fatal("no memory");
    return p;
}

static int is_loopback_url(const char *url)
{
    h2o_url_t u;
    if (h2o_url_parse(url, strlen(url), &u) != 0)
        return 0;
    return h2o_memis(u.host.base, u.host.len, H2O_STRLIT("127.0.0.1")) ||
           h2o_memis(u.host.base, u.host.len, H2O_STRLIT("localhost")) || h2o_memis(u.host.base, u.host.len, H2O_STRLIT("::1"));
}

/* ---- metrics series (persist across reloads, by name) ---- */

static H2O_VECTOR(ficus_provider_t *) registry; /* active providers; control thread only */
static pthread_mutex_t stats_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char *name;
    ficus_provider_stats_t *stats;
} * stats_by_name;
static size_t num_stats;

static ficus_provider_stats_t *stats_get(const char *name)
{
    pthread_mutex_lock(&stats_mutex);
    for (size_t i = 0; i != num_stats; ++i) {
        if (strcmp(stats_by_name[i].name, name) == 0) {
            pthread_mutex_unlock(&stats_mutex);
            return stats_by_name[i].stats;
        }
    }
    if ((stats_by_name = realloc(stats_by_name, sizeof(*stats_by_name) * (num_stats + 1))) == NULL)
        ficus_fatal("no memory");
    stats_by_name[num_stats].name = xstrdup(name);
    if ((stats_by_name[num_stats].stats = calloc(1, sizeof(ficus_provider_stats_t))) == NULL)
        ficus_fatal("no memory");
    ficus_provider_stats_t *s = stats_by_name[num_stats++].stats;
    pthread_mutex_unlock(&stats_mutex);
    return s;
}

/* ---- config ---- */

static int read_small_file(ficus_conf_ctx_t *cc, const ficus_node_t *node, const char *path, size_t max, char **out, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return ficus_conf_error(cc, node, "cannot open '%s': %s", path, strerror(errno));
    char *buf = malloc(max + 1);
    if (buf == NULL)
        ficus_fatal("no memory");
    size_t n = fread(buf, 1, max + 1, fp);
    fclose(fp);
    if (n > max) {
        free(buf);
        return ficus_conf_error(cc, node, "'%s' is larger than %zu bytes", path, max);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static char *canonical_identity(const ficus_provider_conf_t *pc)
{
    char *buf;
    size_t len;
    FILE *fp = open_memstream(&buf, &len);
    if (fp == NULL)
        ficus_fatal("no memory");
    fprintf(fp, "%s|%s|%d|%s|%s|%s|%u|%u|%llu|%llu|%llu|%llu|%llu|%llu", pc->name, pc->issuer, (int)pc->source,
            pc->jwks_uri != NULL ? pc->jwks_uri : "", pc->jwks_file != NULL ? pc->jwks_file : "",
            pc->ca_file != NULL ? pc->ca_file : "", pc->algs, pc->min_rsa_bits, (unsigned long long)pc->refresh_interval_ms,
            (unsigned long long)pc->refresh_min_ms, (unsigned long long)pc->refresh_max_ms, (unsigned long long)pc->max_stale_ms,
            (unsigned long long)pc->refetch_min_interval_ms, (unsigned long long)pc->fetch_timeout_ms);
    fclose(fp);
    return buf;
}

static ficus_provider_t *provider_for(ficus_conf_ctx_t *cc, const ficus_provider_conf_t *pc)
{
    char *identity = canonical_identity(pc);
    if (!cc->dry_run) {
        for (size_t i = 0; i != registry.size; ++i) {
            if (strcmp(registry.entries[i]->identity, identity) == 0) {
                free(identity);
                ficus_provider_retain(registry.entries[i]);
                return registry.entries[i];
            }
        }
    }
    ficus_provider_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        ficus_fatal("no memory");
    p->refcnt = 1;
    p->name = xstrdup(pc->name);
    p->identity = identity;
    p->stats = stats_get(pc->name);
    for (size_t i = 0; i != FICUS_MAX_WORKERS; ++i)
        h2o_linklist_init_anchor(&p->slots[i].waiters);
    return p;
}

static int load_provider(ficus_conf_ctx_t *cc, const ficus_node_t *name, const ficus_node_t *node, ficus_provider_conf_t *pc)
{
    ficus_node_t *issuer, *jwks_uri, *jwks_file, *discovery, *secret_file, *audiences, *algorithms, *leeway, *ca_file, *min_rsa,
        *refresh_interval, *refresh_min, *refresh_max, *max_stale, *refetch_min, *kid_wait, *fetch_timeout;
    pc->name = xstrdup(name->data.scalar.value);
    if (ficus_conf_mapping(cc, node, "issuer:s",
                           "jwks_uri:s,jwks_file:s,discovery:s,hs_secret_file:s,audiences:a,algorithms:a,leeway:s,ca_file:s,"
                           "min_rsa_bits:s,refresh_interval:s,refresh_min:s,refresh_max:s,max_stale:s,refetch_min_interval:s,"
                           "kid_wait:s,fetch_timeout:s",
                           &issuer, &jwks_uri, &jwks_file, &discovery, &secret_file, &audiences, &algorithms, &leeway, &ca_file,
                           &min_rsa, &refresh_interval, &refresh_min, &refresh_max, &max_stale, &refetch_min, &kid_wait,
                           &fetch_timeout) != 0)
        return -1;
    if (issuer->data.scalar.len == 0)
        return ficus_conf_error(cc, issuer, "`issuer` must not be empty");
    pc->issuer = xstrdup(issuer->data.scalar.value);

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
            pc->audiences[i] = xstrdup(audiences->data.sequence.elements[i]->data.scalar.value);
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
    pc->refetch_min_interval_ms = 30000;
    pc->kid_wait_ms = 2000;
    pc->fetch_timeout_ms = 5000;
    struct {
        ficus_node_t *node;
        uint64_t min, max, *out;
    } durations[] = {{refresh_interval, 1000, 7 * 86400000ULL, &pc->refresh_interval_ms},
                     {refresh_min, 1000, 7 * 86400000ULL, &pc->refresh_min_ms},
                     {refresh_max, 1000, 30 * 86400000ULL, &pc->refresh_max_ms},
                     {max_stale, 0, 365 * 86400000ULL, &pc->max_stale_ms},
                     {refetch_min, 0, 86400000ULL, &pc->refetch_min_interval_ms},
                     {kid_wait, 0, 60000, &pc->kid_wait_ms},
                     {fetch_timeout, 100, 300000, &pc->fetch_timeout_ms}};
    for (size_t i = 0; i != sizeof(durations) / sizeof(durations[0]); ++i)
        if (durations[i].node != NULL &&
            ficus_conf_duration(cc, durations[i].node, durations[i].min, durations[i].max, durations[i].out) != 0)
            return -1;
    if (pc->refresh_min_ms > pc->refresh_max_ms)
        return ficus_conf_error(cc, refresh_min != NULL ? refresh_min : refresh_max, "refresh_min must not exceed refresh_max");
    if (ca_file != NULL) {
        pc->ca_file = xstrdup(ca_file->data.scalar.value);
        char err[256];
        SSL_CTX *ctx = ficus_fetch_new_ssl_ctx(pc->ca_file, err, sizeof(err));
        if (ctx == NULL)
            return ficus_conf_error(cc, ca_file, "%s", err);
        SSL_CTX_free(ctx);
    }

    if (jwks_uri != NULL) {
        pc->source = FICUS_KEYS_FROM_URI;
        pc->jwks_uri = xstrdup(jwks_uri->data.scalar.value);
        if (strncmp(pc->jwks_uri, "https://", 8) != 0 &&
            !(strncmp(pc->jwks_uri, "http://", 7) == 0 && is_loopback_url(pc->jwks_uri)))
            return ficus_conf_error(cc, jwks_uri, "jwks_uri must be https:// (http:// only for loopback addresses)");
        h2o_url_t u;
        if (h2o_url_parse(pc->jwks_uri, strlen(pc->jwks_uri), &u) != 0)
            return ficus_conf_error(cc, jwks_uri, "invalid jwks_uri '%s'", pc->jwks_uri);
    } else if (use_discovery) {
        pc->source = FICUS_KEYS_FROM_DISCOVERY;
        if (strncmp(pc->issuer, "https://", 8) != 0 && !(strncmp(pc->issuer, "http://", 7) == 0 && is_loopback_url(pc->issuer)))
            return ficus_conf_error(cc, issuer, "discovery needs an https:// issuer (http:// only for loopback addresses)");
    } else if (jwks_file != NULL) {
        pc->source = FICUS_KEYS_FROM_FILE;
        pc->jwks_file = xstrdup(jwks_file->data.scalar.value);
        char *text, err[256];
        size_t len;
        if (read_small_file(cc, jwks_file, pc->jwks_file, FICUS_JWKS_MAX_BYTES, &text, &len) != 0)
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
        if (read_small_file(cc, secret_file, secret_file->data.scalar.value, MAX_SECRET_BYTES, &text, &len) != 0)
            return -1;
        while (len != 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
            --len;
        if (len < 32) {
            free(text);
            return ficus_conf_error(cc, secret_file, "HS secret must be at least 32 bytes (RFC 7518 3.2)");
        }
        pc->loaded_keys = ficus_jwks_from_secret((const uint8_t *)text, len, NULL, pc->algs);
        OPENSSL_cleanse(text, len);
        free(text);
    }

    pc->policy.issuer = pc->issuer;
    pc->policy.audiences = (const char *const *)pc->audiences;
    pc->policy.num_audiences = pc->num_audiences;
    pc->policy.allowed_algs = pc->algs;
    pc->policy.leeway_s = pc->leeway_s;
    pc->policy.max_token_bytes = 8192;
    pc->rt = provider_for(cc, pc);
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

/* ---- runtime refcount ---- */

void ficus_provider_retain(ficus_provider_t *p)
{
    __atomic_add_fetch(&p->refcnt, 1, __ATOMIC_RELAXED);
}

void ficus_provider_release(ficus_provider_t *p)
{
    if (__atomic_sub_fetch(&p->refcnt, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    /* no config and no message refers to it any more: no worker can touch its slots */
    for (size_t i = 0; i != FICUS_MAX_WORKERS; ++i) {
        if (p->slots[i].keys != NULL)
            ficus_jwks_release(p->slots[i].keys);
        ficus_provider_meta_release(p->slots[i].meta);
    }
    if (p->keys != NULL)
        ficus_jwks_release(p->keys);
    ficus_provider_meta_release(p->meta);
    free(p->name);
    free(p->identity);
    free(p);
}

/* ---- publishing to workers ---- */

static uint64_t keys_version_counter;

void ficus_provider_meta_release(ficus_provider_meta_t *meta)
{
    if (meta == NULL || __atomic_sub_fetch(&meta->refcnt, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    free(meta->authorization_endpoint);
    free(meta->token_endpoint);
    free(meta->end_session_endpoint);
    free(meta);
}

typedef struct st_meta_msg_t {
    ficus_provider_t *p;
    ficus_provider_meta_t *meta;
} meta_msg_t;

static void on_publish_meta(ficus_worker_t *w, void *arg)
{
    meta_msg_t *msg = arg;
    ficus_provider_slot_t *slot = msg->p->slots + w->index;
    ficus_provider_meta_release(slot->meta);
    slot->meta = msg->meta;
    ficus_provider_release(msg->p);
    free(msg);
}

static void publish_meta(ficus_provider_t *p, ficus_provider_meta_t *meta)
{
    ficus_provider_meta_release(p->meta);
    p->meta = meta; /* the caller's reference moves here */
    for (unsigned i = 0; i != ficus_server.num_workers; ++i) {
        meta_msg_t *msg = calloc(1, sizeof(*msg));
        if (msg == NULL)
            ficus_fatal("no memory");
        ficus_provider_retain(p);
        __atomic_add_fetch(&meta->refcnt, 1, __ATOMIC_RELAXED);
        msg->p = p;
        msg->meta = meta;
        ficus_worker_post(ficus_server.workers + i, on_publish_meta, msg);
    }
}

typedef struct st_publish_msg_t {
    ficus_provider_t *p;
    ficus_jwks_t *keys; /* with has_keys: the new set (may be NULL = drop keys) */
    int has_keys;
    int refetch_done;
} publish_msg_t;

static void wake_waiters(ficus_worker_t *w, ficus_provider_t *p, int timed_out, uint64_t now)
{
    h2o_linklist_t *node = w->kid_waiters.next;
    while (node != &w->kid_waiters) {
        ficus_provider_waiter_t *waiter = H2O_STRUCT_FROM_MEMBER(ficus_provider_waiter_t, link, node);
        node = node->next;
        if ((p != NULL && waiter->provider != p) || (timed_out && waiter->deadline_ms > now))
            continue;
        h2o_linklist_unlink(&waiter->link);
        --w->num_kid_waiters;
        waiter->cb(waiter, timed_out);
    }
}

static void on_publish(ficus_worker_t *w, void *arg)
{
    publish_msg_t *msg = arg;
    ficus_provider_slot_t *slot = msg->p->slots + w->index;
    if (msg->has_keys) {
        if (slot->keys != NULL)
            ficus_jwks_release(slot->keys);
        slot->keys = msg->keys;
        slot->keys_version = __atomic_add_fetch(&keys_version_counter, 1, __ATOMIC_RELAXED);
    }
    if (msg->refetch_done) {
        slot->refetch_pending = 0;
        slot->last_refetch_done_ms = h2o_now(w->loop);
        wake_waiters(w, msg->p, 0, 0);
    }
    ficus_provider_release(msg->p);
    free(msg);
}

static void publish(ficus_provider_t *p, ficus_jwks_t *keys, int has_keys, int refetch_done)
{
    if (has_keys) {
        if (p->keys != NULL)
            ficus_jwks_release(p->keys);
        p->keys = keys;
        if (keys != NULL)
            ficus_jwks_retain(keys);
    }
    for (unsigned i = 0; i != ficus_server.num_workers; ++i) {
        publish_msg_t *msg = calloc(1, sizeof(*msg));
        if (msg == NULL)
            ficus_fatal("no memory");
        ficus_provider_retain(p);
        msg->p = p;
        msg->has_keys = has_keys;
        msg->refetch_done = refetch_done;
        if (has_keys && keys != NULL) {
            ficus_jwks_retain(keys);
            msg->keys = keys;
        }
        ficus_worker_post(ficus_server.workers + i, on_publish, msg);
    }
}

/* ---- worker side: waiting for a forced refetch ---- */

static void on_waiter_tick(h2o_timeout_entry_t *entry)
{
    ficus_worker_t *w = H2O_STRUCT_FROM_MEMBER(ficus_worker_t, kid_tick, entry);
    wake_waiters(w, NULL, 1, h2o_now(w->loop));
    if (w->num_kid_waiters != 0)
        h2o_timeout_link(w->loop, &w->tick_timeout, &w->kid_tick);
}

static void on_refetch_request(void *arg);

int ficus_provider_wait_for_refetch(ficus_provider_conf_t *pc, ficus_worker_t *w, ficus_provider_waiter_t *waiter)
{
    ficus_provider_t *p = pc->rt;
    ficus_provider_slot_t *slot = p->slots + w->index;
    uint64_t now = h2o_now(w->loop);
    if (pc->source == FICUS_KEYS_FROM_FILE || pc->source == FICUS_KEYS_FROM_SECRET || pc->kid_wait_ms == 0)
        return -1;
    if (!slot->refetch_pending && slot->last_refetch_done_ms != 0 && now - slot->last_refetch_done_ms < pc->refetch_min_interval_ms)
        return -1;
    if (w->num_kid_waiters >= MAX_WAITERS_PER_WORKER)
        return -1;
    waiter->provider = p;
    waiter->deadline_ms = now + pc->kid_wait_ms;
    h2o_linklist_insert(&w->kid_waiters, &waiter->link);
    ++w->num_kid_waiters;
    if (!h2o_timeout_is_linked(&w->kid_tick)) {
        w->kid_tick.cb = on_waiter_tick;
        h2o_timeout_link(w->loop, &w->tick_timeout, &w->kid_tick);
    }
    if (!slot->refetch_pending) {
        slot->refetch_pending = 1;
        ficus_provider_retain(p);
        ficus_control_post(on_refetch_request, p);
    }
    return 0;
}

void ficus_provider_cancel_wait(ficus_provider_conf_t *pc, ficus_worker_t *w, ficus_provider_waiter_t *waiter)
{
    if (h2o_linklist_is_linked(&waiter->link)) {
        h2o_linklist_unlink(&waiter->link);
        --w->num_kid_waiters;
    }
}

/* ---- control side: fetching ---- */

static h2o_multithread_receiver_t getaddr_receiver;
static h2o_timeout_t zero_timeout, tick_timeout;
static h2o_timeout_entry_t tick_entry;
static int control_ready;

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
    f->next_fetch_at_ms = h2o_now(ficus_server.loop) + f->backoff_ms;
    ficus_warn("provider %s: %s failed: %s; %s; retrying in %llums", p->name, what, why,
               p->keys != NULL ? "keeping the last good keys" : "no keys yet (its routes answer 503)",
               (unsigned long long)f->backoff_ms);
    if (f->notify_when_done) {
        f->notify_when_done = 0;
        publish(p, NULL, 0, 1);
    }
}

static void on_jwks(void *data, const char *errstr, const ficus_fetch_response_t *res)
{
    ficus_provider_fetcher_t *f = data;
    ficus_provider_t *p = f->p;
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
        publish(p, keys, 1, f->notify_when_done);
        ficus_jwks_release(keys);
    } else if (f->notify_when_done) {
        publish(p, NULL, 0, 1);
    }
    f->notify_when_done = 0;
    ++p->fetch_success;
    p->state = FICUS_PROVIDER_OK;
    p->keys_at = unix_now();
    f->backoff_ms = 0;
    uint64_t next =
        res->max_age >= 0 ? clamp_u64((uint64_t)res->max_age * 1000, f->refresh_min_ms, f->refresh_max_ms) : f->refresh_interval_ms;
    f->next_fetch_at_ms = h2o_now(ficus_server.loop) + next;
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
    if (jwks_uri == NULL ||
        (strncmp(jwks_uri, "https://", 8) != 0 && !(strncmp(jwks_uri, "http://", 7) == 0 && is_loopback_url(jwks_uri)))) {
        json_decref(doc);
        return fetch_failed(f, "discovery", "no https jwks_uri in the document");
    }
    free(f->jwks_uri);
    f->jwks_uri = xstrdup(jwks_uri);
    const char *authz = json_string_value(json_object_get(doc, "authorization_endpoint")),
               *token = json_string_value(json_object_get(doc, "token_endpoint")),
               *end_session = json_string_value(json_object_get(doc, "end_session_endpoint"));
    if (authz != NULL && token != NULL) {
        ficus_provider_meta_t *meta = calloc(1, sizeof(*meta));
        if (meta == NULL)
            ficus_fatal("no memory");
        meta->refcnt = 1;
        meta->authorization_endpoint = xstrdup(authz);
        meta->token_endpoint = xstrdup(token);
        meta->end_session_endpoint = end_session != NULL ? xstrdup(end_session) : NULL;
        publish_meta(f->p, meta);
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
    uint64_t now = h2o_now(ficus_server.loop);
    double unow = unix_now();
    for (size_t i = 0; i != registry.size; ++i) {
        ficus_provider_t *p = registry.entries[i];
        ficus_provider_fetcher_t *f = p->fetcher;
        if (f == NULL)
            continue;
        if (f->inflight == NULL && now >= f->next_fetch_at_ms)
            start_fetch(f);
        if (p->state == FICUS_PROVIDER_STALE && p->keys != NULL && (unow - p->keys_at) * 1000 > f->max_stale_ms) {
            ficus_error("provider %s: keys older than max_stale and no refresh succeeded: dropping them (its routes answer 503)",
                        p->name);
            p->state = FICUS_PROVIDER_NO_KEYS;
            publish(p, NULL, 1, 0);
        }
    }
    h2o_timeout_link(ficus_server.loop, &tick_timeout, &tick_entry);
}

static void on_refetch_request(void *arg)
{
    ficus_provider_t *p = arg;
    ficus_provider_fetcher_t *f = p->fetcher;
    uint64_t now = h2o_now(ficus_server.loop);
    if (f == NULL) {
        publish(p, NULL, 0, 1);
    } else if (f->inflight != NULL) {
        f->notify_when_done = 1; /* single flight: the fetch under way answers everyone */
    } else if (f->last_forced_ms != 0 && now - f->last_forced_ms < f->refetch_min_interval_ms) {
        publish(p, NULL, 0, 1); /* declined: waiters fail at once */
    } else {
        f->last_forced_ms = now;
        ++p->forced_refetches;
        f->notify_when_done = 1;
        ficus_info("provider %s: unknown kid, refetching keys", p->name);
        start_fetch(f);
    }
    ficus_provider_release(p);
}

static void init_control(void)
{
    if (control_ready)
        return;
    control_ready = 1;
    h2o_multithread_register_receiver(ficus_server.queue, &getaddr_receiver, h2o_hostinfo_getaddr_receiver);
    h2o_timeout_init(ficus_server.loop, &zero_timeout, 0);
    h2o_timeout_init(ficus_server.loop, &tick_timeout, 1000);
    tick_entry.cb = on_tick;
    h2o_timeout_link(ficus_server.loop, &tick_timeout, &tick_entry);
}

static ficus_provider_fetcher_t *fetcher_create(ficus_provider_t *p, const ficus_provider_conf_t *pc)
{
    char err[256];
    ficus_provider_fetcher_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        ficus_fatal("no memory");
    f->p = p;
    f->source = pc->source;
    f->issuer = xstrdup(pc->issuer);
    f->algs = pc->algs;
    f->min_rsa_bits = pc->min_rsa_bits;
    f->refresh_interval_ms = pc->refresh_interval_ms;
    f->refresh_min_ms = pc->refresh_min_ms;
    f->refresh_max_ms = pc->refresh_max_ms;
    f->max_stale_ms = pc->max_stale_ms;
    f->refetch_min_interval_ms = pc->refetch_min_interval_ms;
    if (pc->jwks_uri != NULL)
        f->jwks_uri = xstrdup(pc->jwks_uri);
    if (pc->source == FICUS_KEYS_FROM_DISCOVERY) {
        size_t len = strlen(pc->issuer);
        int slash = len != 0 && pc->issuer[len - 1] == '/';
        if (asprintf(&f->discovery_url, "%s%s.well-known/openid-configuration", pc->issuer, slash ? "" : "/") < 0)
            ficus_fatal("no memory");
    }
    if ((f->ssl_ctx = ficus_fetch_new_ssl_ctx(pc->ca_file, err, sizeof(err))) == NULL)
        ficus_error("provider %s: %s", p->name, err); /* checked at load; https fetches will fail and be retried */
    h2o_timeout_init(ficus_server.loop, &f->io_timeout, pc->fetch_timeout_ms);
    f->fctx.loop = ficus_server.loop;
    f->fctx.getaddr_receiver = &getaddr_receiver;
    f->fctx.io_timeout = &f->io_timeout;
    f->fctx.zero_timeout = &zero_timeout;
    f->fctx.ssl_ctx = f->ssl_ctx;
    return f;
}

static void fetcher_destroy(ficus_provider_fetcher_t *f)
{
    if (f->inflight != NULL)
        ficus_fetch_cancel(f->inflight);
    if (f->notify_when_done)
        publish(f->p, NULL, 0, 1);
    h2o_timeout_dispose(ficus_server.loop, &f->io_timeout);
    if (f->ssl_ctx != NULL)
        SSL_CTX_free(f->ssl_ctx);
    free(f->issuer);
    free(f->jwks_uri);
    free(f->discovery_url);
    free(f);
}

void ficus_providers_activate(ficus_config_t *config)
{
    init_control();
    for (size_t i = 0; i != config->num_providers; ++i) {
        ficus_provider_conf_t *pc = config->providers[i];
        ficus_provider_t *p = pc->rt;
        if (!p->active) {
            p->active = 1;
            ficus_provider_retain(p); /* the registry's reference */
            h2o_vector_reserve(NULL, &registry, registry.size + 1);
            registry.entries[registry.size++] = p;
            if (pc->source == FICUS_KEYS_FROM_URI || pc->source == FICUS_KEYS_FROM_DISCOVERY) {
                p->fetcher = fetcher_create(p, pc);
                start_fetch(p->fetcher);
            }
        }
        if (pc->loaded_keys != NULL) {
            /* file and secret keys are re-read at every load: publish them (an edited jwks_file takes effect) */
            publish(p, pc->loaded_keys, 1, 0);
            p->state = FICUS_PROVIDER_OK;
            p->keys_at = unix_now();
        }
    }
    /* stop the providers the running generation no longer uses */
    for (size_t i = 0; i != registry.size;) {
        ficus_provider_t *p = registry.entries[i];
        int used = 0;
        for (size_t j = 0; j != config->num_providers; ++j)
            used |= config->providers[j]->rt == p;
        if (used) {
            ++i;
            continue;
        }
        if (p->fetcher != NULL) {
            fetcher_destroy(p->fetcher);
            p->fetcher = NULL;
        }
        p->active = 0;
        registry.entries[i] = registry.entries[--registry.size];
        ficus_provider_release(p);
    }
}

/* ---- rendering ---- */

static const char *state_name(ficus_provider_state_t s)
{
    switch (s) {
    case FICUS_PROVIDER_OK:
        return "ok";
    case FICUS_PROVIDER_STALE:
        return "stale";
    default:
        return "no_keys";
    }
}

void ficus_providers_render_readyz(h2o_mem_pool_t *pool, h2o_iovec_t *out)
{
    size_t cap = 64 + registry.size * 256, len = 0;
    char *buf = h2o_mem_alloc_pool(pool, cap);
    double now = unix_now();
    for (size_t i = 0; i != registry.size; ++i) {
        ficus_provider_t *p = registry.entries[i];
        len += snprintf(buf + len, cap - len, "%s\"%.100s\":{\"state\":\"%s\",\"keys\":%zu,\"age_s\":%.0f}", i == 0 ? "" : ",",
                        p->name, state_name(p->state), p->keys != NULL ? p->keys->num_keys : 0,
                        p->keys != NULL ? now - p->keys_at : -1.0);
    }
    *out = h2o_iovec_init(buf, len);
}

void ficus_providers_render_metrics(h2o_mem_pool_t *pool, h2o_iovec_t *out, unsigned num_workers)
{
    char *buf;
    size_t len;
    FILE *fp = open_memstream(&buf, &len);
    if (fp == NULL)
        ficus_fatal("no memory");
    static const char *const extra[] = {"missing_token", "insufficient_scope", "no_keys", "bad_request"};
    fprintf(fp, "# HELP ficus_jwt_validations_total Token validations, by provider, result and reason.\n"
                "# TYPE ficus_jwt_validations_total counter\n");
    pthread_mutex_lock(&stats_mutex);
    for (size_t i = 0; i != num_stats; ++i) {
        for (size_t r = 0; r != FICUS_JWT_STATUS_COUNT + 4; ++r) {
            uint64_t sum = 0;
            for (unsigned w = 0; w != num_workers; ++w)
                sum += ficus_counter_get(&stats_by_name[i].stats->validations[w][r]);
            if (sum == 0 && r != 0)
                continue;
            const char *reason = r < FICUS_JWT_STATUS_COUNT ? ficus_jwt_status_name(-(int)r) : extra[r - FICUS_JWT_STATUS_COUNT];
            fprintf(fp, "ficus_jwt_validations_total{provider=\"%s\",result=\"%s\",reason=\"%s\"} %llu\n", stats_by_name[i].name,
                    r == 0 ? "valid" : "invalid", reason, (unsigned long long)sum);
        }
    }
    pthread_mutex_unlock(&stats_mutex);
    fprintf(fp, "# HELP ficus_jwks_fetches_total JWKS (and discovery) fetches, by provider and result.\n"
                "# TYPE ficus_jwks_fetches_total counter\n");
    for (size_t i = 0; i != registry.size; ++i) {
        ficus_provider_t *p = registry.entries[i];
        fprintf(fp, "ficus_jwks_fetches_total{provider=\"%s\",result=\"success\"} %llu\n", p->name,
                (unsigned long long)p->fetch_success);
        fprintf(fp, "ficus_jwks_fetches_total{provider=\"%s\",result=\"failure\"} %llu\n", p->name,
                (unsigned long long)p->fetch_failure);
    }
    fprintf(fp, "# HELP ficus_jwks_keys Usable keys in each provider's current set.\n# TYPE ficus_jwks_keys gauge\n");
    for (size_t i = 0; i != registry.size; ++i)
        fprintf(fp, "ficus_jwks_keys{provider=\"%s\"} %zu\n", registry.entries[i]->name,
                registry.entries[i]->keys != NULL ? registry.entries[i]->keys->num_keys : 0);
    fprintf(fp, "# HELP ficus_jwks_age_seconds Age of each provider's current key set.\n# TYPE ficus_jwks_age_seconds gauge\n");
    double now = unix_now();
    for (size_t i = 0; i != registry.size; ++i)
        if (registry.entries[i]->keys != NULL)
            fprintf(fp, "ficus_jwks_age_seconds{provider=\"%s\"} %.0f\n", registry.entries[i]->name,
                    now - registry.entries[i]->keys_at);
    fprintf(fp, "# HELP ficus_jwks_forced_refetches_total Refetches forced by unknown kids.\n"
                "# TYPE ficus_jwks_forced_refetches_total counter\n");
    for (size_t i = 0; i != registry.size; ++i)
        fprintf(fp, "ficus_jwks_forced_refetches_total{provider=\"%s\"} %llu\n", registry.entries[i]->name,
                (unsigned long long)registry.entries[i]->forced_refetches);
    fclose(fp);
    *out = h2o_strdup(pool, buf, len);
    free(buf);
}
