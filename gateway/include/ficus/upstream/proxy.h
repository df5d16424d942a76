/* One proxied request inside the upstream layer: the state shared by gateway/upstream/proxy.c (start, upstream
 * switch, failure, end), attempt.c (tries and retries) and relay.c (the response towards the client).
 *
 * LIFETIME: allocated in the client request's pool (h2o_mem_alloc_shared); its dispose cancels the exchange, the
 * backoff and the request timer, which closes a connection still held, so no callback of this layer runs after the
 * request is gone. */
#ifndef ficus__upstream_proxy_h
#define ficus__upstream_proxy_h

#include <openssl/evp.h>
#include "h2o.h"
#include "ficus/metrics.h"
#include "ficus/upstream.h"
#include "ficus/upstream/backoff.h"
#include "ficus/upstream/balancer.h"
#include "ficus/send_guard.h"
#include "ficus/upstream/client.h"
#include "ficus/upstream/request_builder.h"
#include "ficus/upstream/types.h"

typedef struct st_ficus_proxy_t {
    h2o_generator_t super;
    ficus_req_t *r;
    ficus_upstream_rt_t *up;       /* the upstream of the current attempts (the fallback once switched) */
    ficus_upstream_rt_t *fallback; /* not used yet; NULL once used */
    ssize_t ep_index;              /* endpoint of the current attempt in up->conf->endpoints, -1 = none */
    ficus_endpoint_rt_t *ep;       /* its runtime (holds one in-flight count) */
    int ep_trial;                  /* the attempt is an ejected endpoint's trial */
    int recorded;                  /* the attempt's outcome went to outlier detection */
    int breaker_trial;             /* admitted by up's breaker as a half-open trial */
    int breaker_admitted;          /* an outcome is owed to up's breaker */
    ficus_upc_t x;
    ficus_upstream_request_t req;
    ficus_endpoint_set_t tried;
    unsigned attempts;    /* on up, the first included */
    unsigned retries;     /* on up */
    int retrying;         /* counted in up's state as a retry in flight */
    int stale_retry_done; /* a reused connection found dead was retried */
    int holds_slot;       /* counted in up->inflight and up's state slot */
    int replayable;
    ficus_delay_t backoff;
    h2o_timeout_entry_t request_timer;
    h2o_timeout_t *request_timeout; /* the timeout request_timer is linked on */
    int timed_out;                  /* request_timeout fired */
    int responded;                  /* the response head went to the client */
    h2o_doublebuffer_t sending;
    int body_error;
    ficus_proxy_options_t opts;
    ficus_proxy_result_t result;
    int done_reported;
    EVP_MD_CTX *digest;
    ficus_send_guard_t send_guard; /* server.limits.send_timeout toward the client (gateway/send_guard.c) */
} ficus_proxy_t;

/* proxy.c */
/** Counts one failed attempt of kind in the upstream's metrics. */
void ficus_proxy_count_error(ficus_proxy_t *p, ficus_upstream_error_t kind);
/** Records the current attempt's outcome for outlier detection (once per attempt). */
void ficus_proxy_record(ficus_proxy_t *p, int failed);
/** Ends the current attempt: gives back the endpoint's in-flight count (a trial without an outcome is released). */
void ficus_proxy_end_attempt(ficus_proxy_t *p);
/** The current upstream failed for good (its retries are over): falls back, or sends the local error. */
void ficus_proxy_upstream_failed(ficus_proxy_t *p, ficus_proxy_failure_t why, int status, const char *code, const char *reason,
                                 uint64_t retry_after_ms);
/** The exchange is over on up (response complete or failed after the head): records the breaker outcome, reports. */
void ficus_proxy_finish(ficus_proxy_t *p, int failed);

/* attempt.c */
/** Starts one more attempt on an endpoint picked by the balancer (or fails the upstream when none is available). */
void ficus_attempt_start(ficus_proxy_t *p);
/** Whether the request may be replayed (idempotent method, or an Idempotency-Key header). */
int ficus_attempt_is_replayable(h2o_req_t *req);

/* relay.c */
/** Starts the client's response from the upstream's final head and relays the body. */
void ficus_relay_start(ficus_proxy_t *p, const ficus_upc_response_t *res);
/** Ends a response whose head went out with an error (request_timeout): the client sees it incomplete. */
void ficus_relay_abort(ficus_proxy_t *p);

#endif
