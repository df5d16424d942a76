/* One proxied request inside the upstream layer: the state shared by gateway/upstream/proxy.c (start, failure,
 * cleanup), attempt.c (tries) and relay.c (the response towards the client).
 *
 * LIFETIME: allocated in the client request's pool (h2o_mem_alloc_shared); its dispose cancels the exchange, which
 * closes a connection still held, so no callback of this layer runs after the request is gone. */
#ifndef ficus__upstream_proxy_h
#define ficus__upstream_proxy_h

#include "h2o.h"
#include "ficus/metrics.h"
#include "ficus/upstream/client.h"
#include "ficus/upstream/request_builder.h"
#include "ficus/upstream/types.h"

typedef struct st_ficus_proxy_t {
    h2o_generator_t super;
    ficus_req_t *r;
    ficus_upstream_rt_t *up;
    ficus_endpoint_rt_t *ep; /* endpoint of the current attempt (holds one in-flight slot) */
    ficus_upc_t x;
    ficus_upstream_request_t req;
    size_t attempts;
    int retried_reset;
    int holds_slot; /* counted in up->inflight */
    h2o_doublebuffer_t sending;
    int body_error;
} ficus_proxy_t;

/* proxy.c */
/** Counts one failed attempt of kind in the upstream's metrics. */
void ficus_proxy_count_error(ficus_proxy_t *p, ficus_upstream_error_t kind);
/** Gives back the in-flight slot of the current attempt's endpoint. */
void ficus_proxy_release_endpoint(ficus_proxy_t *p);
/** Ends the request with a local JSON error (no response byte was sent yet); reason goes to the access log. */
void ficus_proxy_fail(ficus_proxy_t *p, int status, const char *code, const char *reason);

/* attempt.c */
/** Starts one more attempt on an endpoint picked by the balancer. */
void ficus_attempt_start(ficus_proxy_t *p);

/* relay.c */
/** Starts the client's response from the upstream's final head and relays the body. */
void ficus_relay_start(ficus_proxy_t *p, const ficus_upc_response_t *res);

#endif
