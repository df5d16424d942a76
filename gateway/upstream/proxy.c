/* A proxied request from start to end (ficus/upstream.h, ficus/upstream/proxy.h).
 *
 * DESIGN: H2O's built-in proxy has one URL per handler, one timeout and no retries, so ficus drives its own HTTP/1.1
 * client (gateway/upstream/client.c). ficus_proxy_start() builds the upstream request once
 * (gateway/upstream/request_builder.c), takes an in-flight slot of the upstream (the bulkhead) and runs attempts
 * (gateway/upstream/attempt.c) on endpoints picked by the balancer; a final head goes to the relay
 * (gateway/upstream/relay.c).
 * BOUNDS: in-flight requests per upstream are capped by max_connections (split across workers): more than the
 * worker's share get 503 at once. Request bodies arrive fully buffered from H2O (server.limits.max_body_bytes).
 * LIFETIME: the proxy state lives in the request pool; its dispose cancels the exchange (closing its connection). */
#include <string.h>
#include "ficus/log.h"
#include "ficus/req.h"
#include "ficus/worker.h"
#include "ficus/upstream/proxy.h"

void ficus_proxy_count_error(ficus_proxy_t *p, ficus_upstream_error_t kind)
{
    ficus_counter_add(&p->up->conf->stats->slots[p->r->worker->index].errors[kind], 1);
}

void ficus_proxy_release_endpoint(ficus_proxy_t *p)
{
    if (p->ep != NULL) {
        --p->ep->inflight;
        p->ep = NULL;
    }
}

void ficus_proxy_fail(ficus_proxy_t *p, int status, const char *code, const char *reason)
{
    ficus_req_t *r = p->r;
    r->error = reason;
    if (p->holds_slot) {
        --p->up->inflight;
        p->holds_slot = 0;
    }
    ficus_debug("upstream %s: %s (request %.*s)", p->up->conf->name, reason, (int)r->request_id.len, r->request_id.base);
    ficus_req_respond_error(r, status, code);
}

static void on_proxy_dispose(void *_p)
{
    ficus_proxy_t *p = _p;
    ficus_upc_dispose(&p->x);
    ficus_proxy_release_endpoint(p);
    if (p->holds_slot)
        --p->up->inflight;
    h2o_doublebuffer_dispose(&p->sending);
}

void ficus_proxy_start(ficus_req_t *r, ficus_upstream_rt_t *up)
{
    h2o_req_t *req = r->h2o;
    h2o_iovec_t path;
    if (ficus_upstream_request_path(r, &path) != 0) {
        ficus_req_respond_error(r, 400, "bad_path");
        return;
    }
    ficus_counter_add(&up->conf->stats->slots[r->worker->index].requests, 1);
    if (up->inflight >= up->max_inflight) {
        ficus_counter_add(&up->conf->stats->slots[r->worker->index].errors[FICUS_UPSTREAM_ERR_OVERLOADED], 1);
        r->error = "upstream_overloaded";
        ficus_req_respond_error(r, 503, "upstream_overloaded");
        return;
    }
    ficus_proxy_t *p = h2o_mem_alloc_shared(&req->pool, sizeof(*p), on_proxy_dispose);
    memset(p, 0, sizeof(*p));
    p->r = r;
    p->up = up;
    ficus_upc_init(&p->x, p);
    h2o_doublebuffer_init(&p->sending, &h2o_socket_buffer_prototype);
    ++up->inflight;
    p->holds_slot = 1;
    ficus_upstream_request_build(&p->req, r, path);
    ficus_attempt_start(p);
}
