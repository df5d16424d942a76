/* Token issuers (`providers:`): their configuration, and their key sets fetched once for the whole process.
 *
 * DESIGN (JWKS lifecycle):
 * - A provider's keys come from `jwks_file` (read at config load), `jwks_uri`, or OIDC discovery
 *   ({issuer}/.well-known/openid-configuration → jwks_uri), or `hs_secret_file` for HS* shared secrets.
 * - The control thread fetches them asynchronously over verified TLS (ficus/fetch.h) and publishes each new,
 *   immutable, refcounted key set to every worker through its message queue; workers read their own copy of the
 *   pointer (no atomics, no locks on the request path). ficus starts and serves even when the IdP is down.
 * - Refresh: every Cache-Control max-age clamped to [refresh_min, refresh_max] (refresh_interval when absent); on
 *   failure the last good set is kept (until max_stale, after which its keys are dropped: fail closed), and the fetch
 *   is retried with exponential backoff from 1s up to refresh_min.
 * - Unknown kid: the request waits (at most kid_wait) while its worker asks the control thread about that kid, and
 *   is verified again when the answer comes. The control thread answers from the current set, from its negative
 *   cache (kids a fetch confirmed absent, or that left the set, for unknown_kid_ttl; bounded), or with a forced
 *   refetch: single-flight (one fetch answers every kid asked before it started; kids asked meanwhile get one
 *   follow-up fetch) and within a budget of refetch_budget per refetch_budget_window (a sliding window: a flood of
 *   random kids costs the IdP at most the budget, while a rotation right after a few unknown kids is still fetched
 *   at once). With the budget spent, unknown kids fail at once (workers stop asking until it frees).
 * - A provider's runtime (ficus_provider_t) survives reloads when its settings are unchanged, so a SIGHUP neither
 *   drops keys nor refetches; changed settings make a new runtime that fetches anew.
 * THREADING: ficus_provider_t is shared and refcounted (atomic); its per_worker slots are touched only by their
 * worker; the fetcher (timers, HTTP client) lives and dies on the control thread.
 * FILES: gateway/provider_conf.c (parsing), provider_registry.c (runtimes, registry, metrics), provider_publish.c
 * (to workers), provider_wait.c (kid waiters), provider_fetch.c (the fetcher); the control thread is reached only
 * through ficus/control.h. */
#ifndef ficus__provider_h
#define ficus__provider_h

#include <stdint.h>
#include "h2o.h"
#include "ficus/conf.h"
#include "ficus/metrics.h"
#include "ficus/jwk.h"
#include "ficus/jws.h"

typedef struct st_ficus_config_t ficus_config_t;
typedef struct st_ficus_worker_t ficus_worker_t;
typedef struct st_ficus_provider_t ficus_provider_t;
typedef struct st_ficus_provider_fetcher_t ficus_provider_fetcher_t;

typedef enum enum_ficus_key_source_t {
    FICUS_KEYS_FROM_FILE = 0,
    FICUS_KEYS_FROM_URI,
    FICUS_KEYS_FROM_DISCOVERY,
    FICUS_KEYS_FROM_SECRET,
} ficus_key_source_t;

typedef struct st_ficus_provider_conf_t {
    char *name;
    char *issuer;
    char **audiences;
    size_t num_audiences;
    uint32_t algs; /* FICUS_JWA_BIT set */
    uint64_t leeway_s;
    ficus_key_source_t source;
    char *jwks_uri;  /* FROM_URI */
    char *jwks_file; /* FROM_FILE */
    char *ca_file;   /* NULL = system CAs */
    unsigned min_rsa_bits;
    uint64_t refresh_interval_ms, refresh_min_ms, refresh_max_ms, max_stale_ms, kid_wait_ms, fetch_timeout_ms;
    uint64_t refetch_budget, refetch_budget_window_ms;   /* at most refetch_budget forced refetches per window */
    uint64_t unknown_kid_ttl_ms, unknown_kid_cache_size; /* negative cache of kids (ttl 0: none) */
    ficus_jwks_t *loaded_keys;                           /* FROM_FILE / FROM_SECRET: the set read at config load */
    ficus_jwt_policy_t policy;                           /* issuer/audiences/algs/leeway as the verifier wants them */
    ficus_provider_t *rt;                                /* runtime (reference held by this conf) */
} ficus_provider_conf_t;

typedef enum enum_ficus_provider_state_t {
    FICUS_PROVIDER_NO_KEYS = 0, /* never obtained keys (or dropped after max_stale) */
    FICUS_PROVIDER_OK,
    FICUS_PROVIDER_STALE, /* last refresh failed; serving the last good set */
} ficus_provider_state_t;

/* Endpoints from the provider's discovery document (OIDC Discovery 1.0), immutable and refcounted. */
typedef struct st_ficus_provider_meta_t {
    int refcnt; /* atomic */
    char *authorization_endpoint;
    char *token_endpoint;
    char *end_session_endpoint; /* NULL when the provider has none */
} ficus_provider_meta_t;

void ficus_provider_meta_release(ficus_provider_meta_t *meta);

/* A worker's view of a provider: only that worker touches it. */
typedef struct st_ficus_provider_slot_t {
    ficus_jwks_t *keys;                /* worker's reference, NULL when none */
    uint64_t keys_version;             /* process-unique id of the set (token caches key on it) */
    ficus_provider_meta_t *meta;       /* worker's reference to the discovery endpoints, NULL until discovered */
    uint64_t refetch_blocked_until_ms; /* the refetch budget is spent until then: unknown kids fail at once */
} ficus_provider_slot_t;

#define FICUS_PROVIDER_MAX_KID_BYTES 256 /* longer kids are never asked about (they fail at once) */

/* A request waiting for the answer about an unknown kid (lives in the request pool; unlink in its dispose). */
typedef struct st_ficus_provider_waiter_t {
    h2o_linklist_t link; /* in the worker's kid_waiters */
    ficus_provider_t *provider;
    h2o_iovec_t kid; /* the caller's (request pool) */
    uint64_t deadline_ms;
    void (*cb)(struct st_ficus_provider_waiter_t *waiter, int timed_out);
} ficus_provider_waiter_t;

typedef struct st_ficus_provider_stats_t {
    uint64_t validations[FICUS_MAX_WORKERS][FICUS_JWT_STATUS_COUNT + 4]; /* + the FICUS_PROVIDER_RESULT_* below */
} ficus_provider_stats_t;

#define FICUS_PROVIDER_RESULT_MISSING_TOKEN (FICUS_JWT_STATUS_COUNT + 0)
#define FICUS_PROVIDER_RESULT_INSUFFICIENT_SCOPE (FICUS_JWT_STATUS_COUNT + 1)
#define FICUS_PROVIDER_RESULT_NO_KEYS (FICUS_JWT_STATUS_COUNT + 2)
#define FICUS_PROVIDER_RESULT_BAD_REQUEST (FICUS_JWT_STATUS_COUNT + 3)

struct st_ficus_provider_t {
    int refcnt; /* atomic */
    char *name;
    char *identity; /* canonical settings: equal identity = same runtime across reloads */
    ficus_provider_slot_t slots[FICUS_MAX_WORKERS];
    ficus_provider_stats_t *stats;
    /* control thread only */
    ficus_provider_fetcher_t *fetcher; /* NULL when inactive */
    ficus_jwks_t *keys;                /* the control thread's reference to the current set */
    ficus_provider_meta_t *meta;       /* the control thread's reference to the discovered endpoints */
    ficus_provider_state_t state;
    double keys_at; /* unix time the current set was obtained */
    uint64_t fetch_success, fetch_failure, forced_refetches;
    uint64_t refetches_declined, unknown_kid_cache_hits; /* budget spent; answered from the negative cache */
    struct st_ficus_provider_refetch_t *refetch;         /* unknown kids (provider_refetch.c); NULL when not fetching */
    int active;                                          /* in the registry */
};

/** Parses `providers:`; sets config->providers. Reads jwks_file / hs_secret_file (load time). 0 or -1 (cc). */
int ficus_providers_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_config_t *config);
/** Looks up a provider of a config by name. */
ficus_provider_conf_t *ficus_config_provider(const ficus_config_t *config, const char *name);
void ficus_provider_conf_free(ficus_provider_conf_t *pc);

/** Control thread: after `config` became the running generation, start fetching for its providers, publish
 * file/secret key sets, and stop the providers no longer used. */
void ficus_providers_activate(ficus_config_t *config);
/** Control thread: a JSON object of providers' states for /readyz (appended with ',' separators), and metrics. */
void ficus_providers_render_readyz(h2o_mem_pool_t *pool, h2o_iovec_t *out);
void ficus_providers_render_metrics(h2o_mem_pool_t *pool, h2o_iovec_t *out, unsigned num_workers);

/** Worker: asks the control thread about an unknown kid (waiter->kid, set by the caller) and queues waiter; its cb
 * runs once: the answer came (the worker's set now has every key the IdP published for that kid, or the kid is
 * absent: verify again, with no further wait) with timed_out=0, or kid_wait elapsed first with timed_out=1.
 * Returns -1 (waiter not queued, cb never called) when the provider's keys are not fetched (file, secret), the kid
 * is empty or longer than FICUS_PROVIDER_MAX_KID_BYTES, the refetch budget is known to be spent, or too many
 * requests already wait: fail the request at once. */
int ficus_provider_wait_for_refetch(ficus_provider_conf_t *pc, ficus_worker_t *w, ficus_provider_waiter_t *waiter);
/** Worker: removes a waiter (request gone). */
void ficus_provider_cancel_wait(ficus_provider_conf_t *pc, ficus_worker_t *w, ficus_provider_waiter_t *waiter);

void ficus_provider_retain(ficus_provider_t *p);
void ficus_provider_release(ficus_provider_t *p);

#endif
