/* Strangler-fig traffic control on a proxied route: `split:` (sticky weighted choice of upstream, overrides),
 * `fallback:` and `mirror:` (issue 12), plus the per-route-and-upstream series that compare old and new.
 *
 * FILES: gateway/split.c (the bucket mapping, pure), gateway/traffic_conf.c (the YAML sections and their checks),
 * gateway/traffic.c (the decision at request time: key → bucket → upstream, sticky cookie, override, response
 * headers), gateway/traffic_metrics.c (series and /metrics), gateway/traffic_mirror.c (shadow copies and comparison).
 * OWNERSHIP: a route's ficus_traffic_conf_t is malloc'd at load and freed with the route (config generation);
 * series are looked up by name at load (a reload keeps counting) and live until exit, like ficus/metrics.h's. */
#ifndef ficus__traffic_h
#define ficus__traffic_h

#include "h2o.h"
#include "ficus/config.h"
#include "ficus/split.h"

typedef struct st_ficus_req_t ficus_req_t;
typedef struct st_ficus_traffic_mirror_t ficus_traffic_mirror_t;

typedef enum enum_ficus_split_key_kind_t {
    FICUS_SPLIT_KEY_CLAIM = 0, /* claim:NAME, from the verified identity (jwt / sso) */
    FICUS_SPLIT_KEY_HEADER,    /* header:NAME */
    FICUS_SPLIT_KEY_COOKIE,    /* cookie:NAME */
    FICUS_SPLIT_KEY_IP,        /* the client address */
} ficus_split_key_kind_t;

typedef struct st_ficus_split_key_t {
    ficus_split_key_kind_t kind;
    h2o_iovec_t name; /* claim / cookie name as written, header name lowercase; NUL-terminated; {NULL,0} for ip */
} ficus_split_key_t;

#define FICUS_SPLIT_MAX_KEYS 16
#define FICUS_SPLIT_MAX_TARGETS 64

typedef struct st_ficus_split_conf_t {
    ficus_split_key_t *keys; /* the first one present is the user's key */
    size_t num_keys;
    h2o_iovec_t sticky_cookie; /* base NULL: none */
    h2o_iovec_t salt;          /* default: the route name */
    ficus_split_target_t *targets;
    ficus_upstream_conf_t **upstreams; /* parallel to targets */
    size_t num_targets;
    h2o_iovec_t override_header; /* lowercase; base NULL: none */
    h2o_iovec_t override_cookie; /* base NULL: none */
} ficus_split_conf_t;

typedef enum enum_ficus_decision_t {
    FICUS_DECISION_ROUTE = 0,     /* the route's `to` */
    FICUS_DECISION_BUCKET,        /* split: the user's key (or a random number when there is none) */
    FICUS_DECISION_STICKY_COOKIE, /* split: the bucket kept in the sticky cookie (new or returning visitor) */
    FICUS_DECISION_OVERRIDE,      /* split: the override header or cookie */
    FICUS_DECISION_FALLBACK,      /* the fallback upstream answered after the chosen one failed */
    FICUS_DECISION__COUNT
} ficus_decision_t;

extern const char *const ficus_decision_names[FICUS_DECISION__COUNT];

typedef enum enum_ficus_mirror_stat_t {
    FICUS_MIRROR_STAT_SENT = 0,
    FICUS_MIRROR_STAT_SKIPPED_SAMPLE,
    FICUS_MIRROR_STAT_SKIPPED_METHOD,
    FICUS_MIRROR_STAT_SKIPPED_BODY,
    FICUS_MIRROR_STAT_SKIPPED_CAPACITY,
    FICUS_MIRROR_STAT_ERROR,
    FICUS_MIRROR_STAT_TIMEOUT,
    FICUS_MIRROR_STAT__COUNT
} ficus_mirror_stat_t;

typedef enum enum_ficus_compare_result_t {
    FICUS_COMPARE_MATCH = 0,
    FICUS_COMPARE_STATUS_DIFFERS,
    FICUS_COMPARE_BODY_DIFFERS,
    FICUS_COMPARE_SHADOW_ERROR,
    FICUS_COMPARE_SHADOW_TIMEOUT,
    FICUS_COMPARE__COUNT
} ficus_compare_result_t;

typedef enum enum_ficus_fallback_reason_t {
    FICUS_FALLBACK_CONNECT = 0,  /* could not connect */
    FICUS_FALLBACK_NO_ENDPOINT,  /* no endpoint available (all unhealthy or ejected) */
    FICUS_FALLBACK_CIRCUIT_OPEN, /* the upstream's circuit is open */
    FICUS_FALLBACK_RESET,        /* the connection died before the response head */
    FICUS_FALLBACK_STATUS_502,   /* a 502, 503 or 504 answer */
    FICUS_FALLBACK_STATUS_503,
    FICUS_FALLBACK_STATUS_504,
    FICUS_FALLBACK__COUNT
} ficus_fallback_reason_t;

extern const char *const ficus_mirror_stat_names[FICUS_MIRROR_STAT__COUNT];
extern const char *const ficus_compare_result_names[FICUS_COMPARE__COUNT];
extern const char *const ficus_fallback_reason_names[FICUS_FALLBACK__COUNT];

/* One series per (route, upstream) the route can send to: responses by class, latency, decisions, fallbacks from
 * this upstream to the route's fallback. One slot per worker (single writer), like ficus/metrics.h. */
typedef struct st_ficus_route_upstream_stats_slot_t {
    uint64_t by_class[6]; /* [0] other, 1xx..5xx */
    uint64_t latency_buckets[FICUS_LATENCY_BUCKETS + 1];
    uint64_t latency_sum_us;
    uint64_t decisions[FICUS_DECISION__COUNT];
    char _pad[64];
} ficus_route_upstream_stats_slot_t;

typedef struct st_ficus_route_upstream_stats_t {
    char *route, *upstream;
    ficus_route_upstream_stats_slot_t slots[FICUS_MAX_WORKERS];
} ficus_route_upstream_stats_t;

/* Fallbacks of one route from one upstream to another, by reason. */
typedef struct st_ficus_fallback_stats_slot_t {
    uint64_t reasons[FICUS_FALLBACK__COUNT];
    char _pad[64];
} ficus_fallback_stats_slot_t;

typedef struct st_ficus_fallback_stats_t {
    char *route, *from, *to;
    ficus_fallback_stats_slot_t slots[FICUS_MAX_WORKERS];
} ficus_fallback_stats_t;

typedef struct st_ficus_mirror_stats_slot_t {
    uint64_t results[FICUS_MIRROR_STAT__COUNT];
    uint64_t compare[FICUS_COMPARE__COUNT];
    uint64_t inflight; /* copies of this worker in flight now (a gauge; the max_inflight bound) */
    char _pad[64];
} ficus_mirror_stats_slot_t;

typedef struct st_ficus_mirror_stats_t {
    char *route;
    uint64_t last_log_s; /* when a mismatch of this route was last logged (any worker; atomic) */
    ficus_mirror_stats_slot_t slots[FICUS_MAX_WORKERS];
} ficus_mirror_stats_t;

typedef struct st_ficus_mirror_conf_t {
    ficus_upstream_conf_t *upstream;
    uint32_t sample; /* in 1/10000 (1 = 0.01 %, 10000 = 100 %) */
    char **methods;
    size_t num_methods;
    uint64_t max_body;
    uint64_t timeout_ms;
    uint64_t max_inflight; /* per instance (split across workers) */
    int compare;
    ficus_mirror_stats_t *stats;
} ficus_mirror_conf_t;

/* The traffic control of one proxied route (every `to` or `split` route has one). */
typedef struct st_ficus_traffic_conf_t {
    ficus_split_conf_t *split;               /* NULL: a `to` route */
    ficus_upstream_conf_t *to;               /* the `to` upstream (NULL for split) */
    ficus_upstream_conf_t *fallback;         /* NULL: none */
    ficus_mirror_conf_t *mirror;             /* NULL: none */
    ficus_route_upstream_stats_t **stats;    /* by upstream index (config->num_upstreams); NULL where unreachable */
    ficus_fallback_stats_t **fallback_stats; /* by index of the failed upstream; NULL where no fallback applies */
} ficus_traffic_conf_t;

/* ---- configuration (gateway/traffic_conf.c) ---- */

/** Loads the route's `split:`, `fallback:` and `mirror:` keys (node = the route mapping) into route->traffic for a
 * proxied route (route->action == FICUS_ACTION_PROXY, data.proxy.upstream set for `to`, NULL for `split`); for other
 * routes reports `fallback`/`mirror` as errors. 0, or -1 with "file:line: what" in cc. */
int ficus_traffic_conf_load(ficus_conf_ctx_t *cc, const ficus_node_t *route_node, ficus_config_t *config, ficus_route_t *route);
/** Parses one `split:` section (also the fuzz target's entry). *out is NULL or a conf to free on error too. */
int ficus_split_conf_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, const ficus_config_t *config, const char *route_name,
                          ficus_split_conf_t **out);
void ficus_split_conf_free(ficus_split_conf_t *split);
void ficus_traffic_conf_free(ficus_traffic_conf_t *traffic);
/** Parses a mirror `sample` ("100%", "0.01%", "12.5%") into 1/10000 units. 0, or -1 (malformed, more than two
 * decimals, outside 0.01 %–100 %). */
int ficus_parse_sample(const char *s, size_t len, uint32_t *out);

/* ---- at request time (gateway/traffic.c) ---- */

/** The route's proxy action (request.c): chooses the upstream, sends the mirrored copy, starts the exchange with the
 * route's fallback, and accounts for the outcome (fallbacks, decisions, the primary's side of the comparison). */
void ficus_traffic_proxy(ficus_req_t *req);
/** Chooses the upstream of a proxied request (the route's `to`, or the split's decision) and records the decision
 * in req->traffic. Removes the override header and cookie from the request. Returns the upstream. */
const ficus_upstream_conf_t *ficus_traffic_choose(ficus_req_t *req);
/** Records that the request goes to `upstream` because of `decision` (counted in ficus_split_decisions_total). */
void ficus_traffic_set_upstream(ficus_req_t *req, const ficus_upstream_conf_t *upstream, ficus_decision_t decision);
/** At the end of a request: counts the answer of the upstream it ended on (ficus_upstream_responses_total). */
void ficus_traffic_on_request_end(ficus_req_t *req);
/** Adds the response headers of the decision (sticky cookie, x-ficus-upstream); called for every response. */
void ficus_traffic_before_response(ficus_req_t *req);
/** Removes every `name=value` pair named `name` from a Cookie header value. Returns the new value (allocated from
 * pool, or `value` itself when nothing was removed); an empty result has len 0. Pure, for the fuzz target too. */
h2o_iovec_t ficus_cookie_strip(h2o_mem_pool_t *pool, h2o_iovec_t value, const char *name, size_t name_len);
/** Whether `value` names one of the split's targets; the index, or SIZE_MAX. */
size_t ficus_split_target_by_name(const ficus_split_conf_t *split, const char *value, size_t len);

/* ---- mirroring (gateway/traffic_mirror.c) ---- */

/** Sends the mirrored copy of a request of a route with `mirror:` (or counts why not), without waiting. */
void ficus_traffic_mirror(ficus_req_t *req);
/** Hands the primary's result to the comparison waiting in req->traffic.mirror (set) and detaches it. digest: the
 * SHA-256 of the body relayed, or NULL. complete = 0: not compared. */
void ficus_traffic_mirror_primary(ficus_req_t *req, int complete, int status, uint64_t body_bytes, const uint8_t *digest);

/* ---- metrics (gateway/traffic_metrics.c) ---- */

/** The series of (route, upstream) (control thread, at load). */
ficus_route_upstream_stats_t *ficus_traffic_stats_get(const char *route, const char *upstream);
ficus_fallback_stats_t *ficus_fallback_stats_get(const char *route, const char *from, const char *to);
ficus_mirror_stats_t *ficus_mirror_stats_get(const char *route);
/** Records one answer (or failure, as 5xx) of `upstream` for the request's route: class and latency. */
void ficus_traffic_record_response(ficus_req_t *req, const ficus_upstream_conf_t *upstream, int status, uint64_t duration_us);
/** Appends ficus_split_decisions_total, ficus_upstream_responses_total, ficus_upstream_duration_seconds,
 * ficus_fallbacks_total, ficus_mirror_requests_total and ficus_mirror_compare_total (admin thread). */
void ficus_traffic_render_metrics(h2o_mem_pool_t *pool, h2o_iovec_t *out, unsigned num_workers);

#endif
