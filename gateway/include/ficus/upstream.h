/* The upstream layer (gateway/upstream/), as the rest of ficus sees it.
 *
 * FILES (one concept each):
 *   load.c             the `upstreams:` section: validation with file:line errors, defaults; a host name's endpoints
 *                      are its addresses (gateway/resolver.c resolves them off the workers)
 *   registry.c         upstream and endpoint state shared by the generations that configure them (survives reloads)
 *   runtime.c          a worker's runtime of one upstream for one generation; pools shared across generations
 *   client.c           the transport: HTTP/1.1 client and per-endpoint keep-alive pools
 *   response.c         the pure response parser: head, framing, chunked decoder
 *   request_builder.c  the upstream request: path rewriting, header filtering, forwarding headers
 *   balancer.c         which endpoint an attempt goes to (round robin, least request, hash; panic)
 *   attempt.c          one try on one endpoint and the decision to try again (retry rules, budget)
 *   backoff.c          full-jitter backoff and delays of any length on a worker
 *   outlier.c          passive ejection from real traffic, max_ejected, panic
 *   breaker.c          the circuit breaker (ficus/breaker.h)
 *   health.c           active health checks, once per process on the control thread
 *   relay.c            the response towards the client, with backpressure
 *   proxy.c            a proxied request from start to end, with an optional fallback upstream
 *   mirror.c           a detached copy of a request to another upstream (response read, digested, discarded)
 *   status.c           admin GET /upstreams and the upstream metrics
 * THREADING: configuration is loaded on the control thread; exchanges run on the worker owning the request. */
#ifndef ficus__upstream_h
#define ficus__upstream_h

#include "ficus/conf.h"
#include "ficus/upstream/types.h"

typedef struct st_ficus_config_t ficus_config_t;
typedef struct st_ficus_req_t ficus_req_t;
typedef struct st_ficus_worker_t ficus_worker_t;

/** Loads the `upstreams:` mapping into config->upstreams. 0, or -1 with the error recorded in cc (gateway/upstream/load.c). */
int ficus_upstreams_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_config_t *config);
/** Fills derived->upstreams with copies of base's upstreams whose endpoints are their sources' current addresses
 * (ficus_resolver_addresses); the copies share everything else with base's (gateway/upstream/load.c). */
void ficus_upstreams_derive(const ficus_config_t *base, ficus_config_t *derived);
/** Frees config->upstreams (a partly loaded one too). */
void ficus_upstreams_free(ficus_config_t *config);

/** Builds / frees a worker's runtime for one upstream (gateway/upstream/runtime.c). */
void ficus_upstream_rt_init(ficus_upstream_rt_t *rt, const ficus_upstream_conf_t *conf, ficus_worker_t *w, unsigned num_workers);
void ficus_upstream_rt_dispose(ficus_upstream_rt_t *rt, ficus_worker_t *w);
/** At a worker's switch from generation `old` to `cur` (their upstream runtimes): the endpoints `old` has and `cur`
 * has not (an address a DNS change or a reload removed) drain: their idle connections are closed now and the
 * connections of their in-flight requests are closed when those end, instead of going back to the pool. */
void ficus_upstream_rts_retire(ficus_upstream_rt_t *old, size_t num_old, ficus_upstream_rt_t *cur, size_t num_cur);
/** The worker generation's runtime of upstream conf (the upstream a route or a split names), for ficus_proxy_start_ex
 * and ficus_mirror_start. */
ficus_upstream_rt_t *ficus_upstream_rt_of(ficus_req_t *r, const ficus_upstream_conf_t *conf);

/* ---- proxied exchanges: the `to` action, and what split / fallback / mirror (issue 12) build on ----
 *
 * A proxied exchange sends the client request to one upstream: endpoints picked by its balancer, tried by its retry
 * rules (retry.attempts, retry.on, replay rules, backoff, budget), bounded by its request_timeout, its breaker and
 * outlier state consulted and updated, the response relayed with backpressure. With a fallback upstream, a request
 * that can be replayed (idempotent method, or any method with an Idempotency-Key header) and whose chosen upstream
 * failed before any byte of the response reached the client — a failure in ficus_proxy_failure_t from
 * CONNECT_FAILURE to STATUS_504, after that upstream's own retries — is sent once to the fallback, whose answer
 * (or failure) the client gets. Never more than one fallback, never back to the upstream that failed. */

typedef enum enum_ficus_proxy_failure_t {
    FICUS_PROXY_OK = 0,
    FICUS_PROXY_CONNECT_FAILURE, /* could not connect (refused, unreachable, name, connect timeout) */
    FICUS_PROXY_NO_ENDPOINT,     /* no endpoint available (all unhealthy or ejected), or panic with a fallback */
    FICUS_PROXY_BREAKER_OPEN,    /* the upstream's circuit is open */
    FICUS_PROXY_RESET,           /* the connection was lost before the response head */
    FICUS_PROXY_STATUS_502,      /* the upstream answered 502 / 503 / 504 */
    FICUS_PROXY_STATUS_503,
    FICUS_PROXY_STATUS_504,
    /* not fallen back from: */
    FICUS_PROXY_TIMEOUT,    /* no response head within `timeout`, or request_timeout */
    FICUS_PROXY_PROTOCOL,   /* a malformed response */
    FICUS_PROXY_OVERLOADED, /* the upstream's max_connections share is in use */
    FICUS_PROXY__COUNT
} ficus_proxy_failure_t;
/** "connect_failure", "no_endpoint", "breaker_open", "reset", "502", "503", "504", "timeout", "protocol", "overloaded" */
extern const char *const ficus_proxy_failure_names[FICUS_PROXY__COUNT];

typedef struct st_ficus_proxy_result_t {
    const ficus_upstream_conf_t *upstream;      /* the upstream whose answer (or failure) the client got */
    const ficus_upstream_conf_t *fallback_from; /* != NULL: that upstream failed and `upstream` is the fallback */
    ficus_proxy_failure_t fallback_reason;      /* why (when fallback_from != NULL) */
    ficus_proxy_failure_t failure;              /* FICUS_PROXY_OK, or why the client got a local error */
    int status;                                 /* sent to the client; 0 when it went away before a head */
    int complete;                               /* the whole response was handed to the client */
    uint64_t body_bytes;                        /* response body bytes relayed from the upstream */
    int has_digest;                             /* with options.digest, when the upstream's body was relayed whole */
    uint8_t digest[32];                         /* SHA-256 of that body */
} ficus_proxy_result_t;

typedef struct st_ficus_proxy_options_t {
    ficus_upstream_rt_t *fallback; /* NULL: none (ficus_upstream_rt_of(r, conf) gives one) */
    int digest;                    /* compute result.digest (costs a SHA-256 of the body) */
    /* called once when the exchange ends (response complete, a local error sent, or the client gone), on the worker
     * thread, with the request still readable; may be NULL */
    void (*on_done)(void *data, ficus_req_t *r, const ficus_proxy_result_t *result);
    /* called when the chosen upstream failed and the fallback is about to be tried (before any response head), with
     * the request still readable; may be NULL */
    void (*on_fallback)(void *data, ficus_req_t *r, const ficus_upstream_conf_t *from, ficus_proxy_failure_t why,
                        const ficus_upstream_conf_t *to);
    void *data;
} ficus_proxy_options_t;

/** Starts proxying r to upstream (the route's `to`): ficus_proxy_start_ex with no options. */
void ficus_proxy_start(ficus_req_t *r, ficus_upstream_rt_t *upstream);
/** Starts proxying r to upstream with options (copied; NULL = none). The request is answered exactly once. */
void ficus_proxy_start_ex(ficus_req_t *r, ficus_upstream_rt_t *upstream, const ficus_proxy_options_t *options);

/* ---- mirroring: a detached copy ----
 * ficus_mirror_start sends a copy of r's upstream request (the same method, path, headers and body as built for the
 * primary, plus `extra_headers`) to one endpoint of `upstream`, without retries. The copy owns its memory and its
 * reference to r's generation: r is never delayed by it and may end first. The response is read as it arrives
 * (bounded: nothing is kept but a running SHA-256 and a byte count) and discarded. The outcome is recorded in the
 * upstream's outlier and breaker state like any request's. */

typedef enum enum_ficus_mirror_outcome_t {
    FICUS_MIRROR_RESPONSE = 0, /* a whole response (any status) */
    FICUS_MIRROR_ERROR,        /* connect failure, reset, malformed response, no endpoint, breaker open */
    FICUS_MIRROR_TIMEOUT,      /* not complete within timeout_ms */
} ficus_mirror_outcome_t;

typedef struct st_ficus_mirror_result_t {
    ficus_mirror_outcome_t outcome;
    const char *error; /* with FICUS_MIRROR_ERROR: a ficus_proxy_failure_names entry */
    int status;
    uint64_t body_bytes;
    uint8_t digest[32]; /* SHA-256 of the body (with FICUS_MIRROR_RESPONSE) */
} ficus_mirror_result_t;

/**
 * Starts a mirrored copy of r to upstream. extra_headers: complete header lines ("x-ficus-mirror: 1\r\n"), copied.
 * The whole exchange is bounded by timeout_ms (> 0). cb(data, result) is called exactly once, on this worker's
 * thread, never from inside this call; data must stay valid until then (r may be gone by then). Returns 0, or -1
 * when nothing was started (cb is not called).
 */
int ficus_mirror_start(ficus_req_t *r, ficus_upstream_rt_t *upstream, h2o_iovec_t extra_headers, uint64_t timeout_ms,
                       void (*cb)(void *data, const ficus_mirror_result_t *result), void *data);

/* ---- visibility (gateway/upstream/status.c) and health checks (gateway/upstream/health.c) ---- */

/** Admin GET /upstreams: every configured upstream and endpoint as JSON (address, health, ejection, in-flight, breaker,
 * panic), allocated from pool. */
void ficus_upstreams_render_json(h2o_mem_pool_t *pool, h2o_iovec_t *out, const ficus_config_t *config, unsigned num_workers);
/** The upstream metrics in Prometheus text (retries, budget, ejections, health, breaker, panic), from pool. */
void ficus_upstreams_render_metrics(h2o_mem_pool_t *pool, h2o_iovec_t *out, const ficus_config_t *config, unsigned num_workers);
/** Control thread: (re)starts the active health checks for the generation now running (keeps the checkers of the
 * endpoints still configured, stops the others). */
void ficus_health_apply(h2o_loop_t *loop, h2o_multithread_queue_t *queue, const ficus_config_t *config);

#endif
