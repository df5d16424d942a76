/* Provider runtimes (ficus_provider_t) and the registry of the active ones: a runtime is found again by its settings
 * at every load, so a reload with unchanged settings neither drops keys nor refetches; activating a generation
 * starts the fetchers of its new providers, publishes file/secret key sets, and stops the providers it no longer
 * uses. Also the metrics series (by provider name, kept across reloads) and what /readyz and /metrics show.
 * THREADING: the registry is the control thread's; stats series are created under a mutex (config loads run on
 * the control thread and in `ficus -t`), their counters are per worker. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/config.h"
#include "ficus/log.h"
#include "provider_internal.h"

static H2O_VECTOR(ficus_provider_t *) registry; /* active providers; control thread only */

/* ---- metrics series (persist across reloads, by name) ---- */

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
    stats_by_name[num_stats].name = ficus__provider_strdup(name);
    if ((stats_by_name[num_stats].stats = calloc(1, sizeof(ficus_provider_stats_t))) == NULL)
        ficus_fatal("no memory");
    ficus_provider_stats_t *s = stats_by_name[num_stats++].stats;
    pthread_mutex_unlock(&stats_mutex);
    return s;
}

/* ---- runtimes, found by identity ---- */

ficus_provider_t *ficus__provider_for(ficus_conf_ctx_t *cc, const char *name, char *identity)
{
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
    p->name = ficus__provider_strdup(name);
    p->identity = identity;
    p->stats = stats_get(name);
    return p;
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

/* ---- activation ---- */

void ficus_providers_activate(ficus_config_t *config)
{
    for (size_t i = 0; i != config->num_providers; ++i) {
        ficus_provider_conf_t *pc = config->providers[i];
        ficus_provider_t *p = pc->rt;
        if (!p->active) {
            p->active = 1;
            ficus_provider_retain(p); /* the registry's reference */
            h2o_vector_reserve(NULL, &registry, registry.size + 1);
            registry.entries[registry.size++] = p;
            if (pc->source == FICUS_KEYS_FROM_URI || pc->source == FICUS_KEYS_FROM_DISCOVERY) {
                p->fetcher = ficus__provider_fetcher_start(p, pc);
            }
        }
        if (pc->loaded_keys != NULL) {
            /* file and secret keys are re-read at every load: publish them (an edited jwks_file takes effect) */
            ficus__provider_publish(p, pc->loaded_keys);
            p->state = FICUS_PROVIDER_OK;
            p->keys_at = ficus__provider_unix_now();
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
            ficus__provider_fetcher_destroy(p->fetcher);
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
    double now = ficus__provider_unix_now();
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
    double now = ficus__provider_unix_now();
    for (size_t i = 0; i != registry.size; ++i)
        if (registry.entries[i]->keys != NULL)
            fprintf(fp, "ficus_jwks_age_seconds{provider=\"%s\"} %.0f\n", registry.entries[i]->name,
                    now - registry.entries[i]->keys_at);
    fprintf(fp, "# HELP ficus_jwks_forced_refetches_total Refetches forced by unknown kids.\n"
                "# TYPE ficus_jwks_forced_refetches_total counter\n");
    for (size_t i = 0; i != registry.size; ++i)
        fprintf(fp, "ficus_jwks_forced_refetches_total{provider=\"%s\"} %llu\n", registry.entries[i]->name,
                (unsigned long long)registry.entries[i]->forced_refetches);
    fprintf(fp, "# HELP ficus_jwks_refetches_declined_total Refetches for unknown kids refused: the refetch budget was spent.\n"
                "# TYPE ficus_jwks_refetches_declined_total counter\n");
    for (size_t i = 0; i != registry.size; ++i)
        fprintf(fp, "ficus_jwks_refetches_declined_total{provider=\"%s\"} %llu\n", registry.entries[i]->name,
                (unsigned long long)registry.entries[i]->refetches_declined);
    fprintf(fp, "# HELP ficus_jwks_unknown_kid_cache_hits_total Unknown kids answered from the negative cache (no fetch).\n"
                "# TYPE ficus_jwks_unknown_kid_cache_hits_total counter\n");
    for (size_t i = 0; i != registry.size; ++i)
        fprintf(fp, "ficus_jwks_unknown_kid_cache_hits_total{provider=\"%s\"} %llu\n", registry.entries[i]->name,
                (unsigned long long)registry.entries[i]->unknown_kid_cache_hits);
    fclose(fp);
    *out = h2o_strdup(pool, buf, len);
    free(buf);
}
