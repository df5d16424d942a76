/* One request as ficus sees it: the H2O request plus the route, the generation it runs on and its log fields.
 *
 * LIFETIME: allocated in the H2O request pool when the request enters ficus; everything hanging off it dies with
 * the pool. It holds a reference to its worker generation, so the configuration it started with stays valid until
 * it ends, whatever reloads happen meanwhile. */
#ifndef ficus__req_h
#define ficus__req_h

#include <stdint.h>
#include "h2o.h"
#include "ficus/config.h"
#include "ficus/trace.h"

typedef struct st_ficus_worker_t ficus_worker_t;
typedef struct st_ficus_wgen_t ficus_wgen_t;
typedef struct st_ficus_req_t ficus_req_t;

struct st_ficus_req_t {
    h2o_req_t *h2o;
    ficus_worker_t *worker;
    ficus_wgen_t *wgen;
    const ficus_config_t *config;
    const ficus_route_t *route; /* NULL when no route matched */
    uint64_t started_at_us;     /* monotonic-ish (h2o loop clock in us) */
    h2o_iovec_t request_id;
    ficus_trace_t trace; /* W3C trace context (ficus/trace.h) */
    const char *error;   /* reason for the access log ("upstream_timeout", "no_route", ...) or NULL */
    struct {
        const char *endpoint; /* NULL = not proxied */
        int status;
        uint64_t started_at_us, head_at_us;
    } upstream;
    struct {
        const ficus_upstream_conf_t *upstream;    /* where the request went (after a fallback: the fallback), or NULL */
        int decision;                             /* ficus_decision_t (ficus/traffic.h) */
        h2o_iovec_t set_cookie;                   /* a new sticky cookie for the response, or {NULL, 0} */
        struct st_ficus_traffic_mirror_t *mirror; /* the mirrored copy waiting for this response (compare: true) */
    } traffic;
    const ficus_listener_conf_t *listener; /* the listener the request came through (in `config`) */
    int is_tls;
    struct json_t *claims; /* verified identity claims (jansson object, a reference owned by the request), or NULL */
    void *plugin_data[16]; /* per route plugin (by position in route->plugins): see ficus_req_plugin_slot */
    /* private */
    size_t _next_plugin;
    size_t _current_plugin;
    size_t _next_pre_route;
    int _pre_route_done;
    int _responded; /* a response head was started */
    int _completed; /* the final body chunk was handed to H2O */
    int _paused;
    const ficus_plugin_t *_blame; /* the plugin running, or the one that paused the request (contract accounting) */
    h2o_timeout_entry_t _resume;
};

/** Nonzero once a response (local or proxied) was started for this request: what a plugin asks instead of reading
 * private fields, e.g. after a helper that may have answered. */
int ficus_req_responded(const ficus_req_t *req);
/** A fast per-thread pseudo-random number (xorshift128+ seeded by getrandom): unique ids, never secrets. */
uint64_t ficus_random64(void);
/** Continues a paused request with the next plugin (or the route's action) on a later loop tick. */
void ficus_req_resume(ficus_req_t *req);
/** Sends a local JSON error reply {"error":"<code>"} with `status`, and records code as the log reason. */
void ficus_req_respond_error(ficus_req_t *req, int status, const char *code);
/** Sends a local reply with the given body (copied) and content type. */
void ficus_req_respond(ficus_req_t *req, int status, const char *content_type, h2o_iovec_t body);
/** The per-request pointer slot of the plugin being run (in on_request, on_response and what they call). */
void **ficus_req_plugin_slot(ficus_req_t *req);
/** The loop of the worker running this request. */
h2o_loop_t *ficus_req_loop(ficus_req_t *req);

/** Runs the route's response hooks and adds ficus's own response headers; called by every response path. */
void ficus_req_before_response(ficus_req_t *req);

#endif
