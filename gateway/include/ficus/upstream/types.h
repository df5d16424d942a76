/* The upstream layer's types (gateway/upstream/): an upstream's configuration, its endpoints, and their runtime.
 *
 * LAYERS: configuration (ficus_upstream_conf_t, ficus_endpoint_conf_t) is part of an immutable config generation
 * (gateway/upstream/load.c). What ficus learns about an upstream and its endpoints (health, ejection, breaker,
 * in-flight counts) lives in states keyed by identity (upstream name; upstream name + address) in the registry
 * (gateway/upstream/registry.c), shared by every generation that configures them, so a reload keeps it. A worker's
 * runtime of an endpoint (its keep-alive pool) hangs off the endpoint's state and is shared by that worker's
 * generations; the per-generation runtime of an upstream (ficus_upstream_rt_t) only points at them
 * (gateway/upstream/runtime.c). Only the owning worker thread touches a runtime. */
#ifndef ficus__upstream_types_h
#define ficus__upstream_types_h

#include <stddef.h>
#include <stdint.h>
#include "h2o.h"
#include "ficus/breaker.h"
#include "ficus/metrics.h"
#include "ficus/upstream/client.h"

#define FICUS_UPSTREAM_MAX_ENDPOINTS 256
#define FICUS_UPSTREAM_MAX_IDLE 512 /* idle connections per endpoint and worker when max_connections is unlimited */

typedef struct st_ficus_endpoint_state_t ficus_endpoint_state_t; /* gateway/upstream/registry.c */
typedef struct st_ficus_upstream_state_t ficus_upstream_state_t;

/* why a request was retried (`retry.on`); the order is the metric label order */
typedef enum enum_ficus_retry_reason_t {
    FICUS_RETRY_CONNECT_FAILURE = 0,
    FICUS_RETRY_RESET,
    FICUS_RETRY_502,
    FICUS_RETRY_503,
    FICUS_RETRY_504,
    FICUS_RETRY__COUNT
} ficus_retry_reason_t;
extern const char *const ficus_retry_reason_names[FICUS_RETRY__COUNT];

typedef enum enum_ficus_balance_t {
    FICUS_BALANCE_ROUND_ROBIN = 0,
    FICUS_BALANCE_LEAST_REQUEST, /* power of two random choices on in-flight counts */
    FICUS_BALANCE_HASH,          /* rendezvous hashing of a request key over the available endpoints */
} ficus_balance_t;

typedef enum enum_ficus_hash_key_t {
    FICUS_HASH_HEADER = 0,
    FICUS_HASH_CLAIM,
    FICUS_HASH_COOKIE,
    FICUS_HASH_IP,
} ficus_hash_key_t;

/* An entry of `endpoints:` as written. An IP literal is one endpoint; a host name is one endpoint per address it
 * resolves to (gateway/resolver.c), none while it resolves to nothing. */
typedef struct st_ficus_endpoint_source_t {
    char *url;  /* as written */
    char *host; /* host part (no brackets) */
    uint16_t port;
    h2o_iovec_t authority; /* "host:port" */
    int is_name;           /* host is a DNS name, not an IP literal */
} ficus_endpoint_source_t;

/* An endpoint: one address of a source. */
typedef struct st_ficus_endpoint_conf_t {
    char *url;  /* the source's, as written */
    char *host; /* the IP literal connected to (no brackets) */
    uint16_t port;
    h2o_iovec_t authority;         /* the source's "host:port", sent as Host when preserve_host is off */
    char *address;                 /* "ip:port" ("[v6]:port"): the endpoint's identity (registry, logs, metrics) */
    char *name;                    /* the host name it was resolved from; NULL for an IP literal */
    ficus_endpoint_state_t *state; /* shared across generations (registry) */
} ficus_endpoint_conf_t;

typedef struct st_ficus_upstream_conf_t {
    char *name;
    size_t index;
    unsigned line;                    /* where it was defined, for messages */
    ficus_endpoint_source_t *sources; /* as written */
    size_t num_sources;
    ficus_endpoint_conf_t *endpoints; /* every address of every source (at most FICUS_UPSTREAM_MAX_ENDPOINTS) */
    size_t num_endpoints;             /* 0 when every source is a name that does not resolve */
    int derived;                      /* a copy made by ficus_upstreams_derive(): owns only its endpoints */
    uint64_t connect_timeout_ms;
    uint64_t timeout_ms;
    uint64_t request_timeout_ms; /* 0 = off */
    uint64_t keepalive_timeout_ms;
    uint64_t max_connections; /* per instance (default 1024) */
    uint64_t dns_refresh_ms;
    struct {
        ficus_balance_t kind;
        ficus_hash_key_t key;
        h2o_iovec_t name; /* header (lowercase), claim or cookie name */
    } balance;
    struct {
        unsigned attempts; /* tries in all, the first included */
        unsigned on;       /* bit (1 << ficus_retry_reason_t) */
        uint64_t backoff_base_ms, backoff_max_ms;
        unsigned budget_percent; /* retries in flight <= this share of requests in flight (at least 3) */
    } retry;
    struct {
        int enabled;
        unsigned consecutive_failures;
        uint64_t ejection_ms, max_ejection_ms;
        unsigned max_ejected_percent;
    } outlier;
    struct {
        int enabled;
        char *path;
        uint64_t interval_ms, timeout_ms;
        unsigned healthy, unhealthy;
        struct st_ficus_status_range_t {
            uint16_t lo, hi;
        } * expect;
        size_t num_expect;
    } health;
    ficus_breaker_conf_t breaker;
    ficus_upstream_state_t *state; /* shared across generations (registry) */
    ficus_upstream_stats_t *stats;
} ficus_upstream_conf_t;

/* One worker's runtime of one endpoint, shared by that worker's generations (it hangs off the endpoint's state). */
typedef struct st_ficus_endpoint_rt_t {
    ficus_endpoint_state_t *state;
    ficus_upc_pool_t pool; /* keep-alive connections to this endpoint (gateway/upstream/client.c) */
    size_t inflight;       /* this worker's requests on it */
    size_t refcnt;         /* this worker's generations using it */
    int in_current;        /* scratch of ficus_upstream_rts_retire() */
} ficus_endpoint_rt_t;

/* One worker's runtime of one upstream for one generation. */
typedef struct st_ficus_upstream_rt_t {
    const ficus_upstream_conf_t *conf;
    ficus_upstream_state_t *state;
    unsigned worker_index;
    h2o_timeout_t *request_timeout; /* the worker's (ficus_worker_timeout), NULL when off */
    size_t max_inflight;            /* this worker's share of max_connections; SIZE_MAX = unlimited */
    size_t inflight;
    size_t next;                     /* round robin */
    ficus_endpoint_rt_t **endpoints; /* conf->num_endpoints, in the order of conf->endpoints */
} ficus_upstream_rt_t;

#endif
