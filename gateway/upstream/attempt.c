/* One try of a proxied request on one endpoint, and the decision to try again (ficus/upstream/proxy.h).
 *
 * RULES (issue 11 extends them):
 *   - connect failure or connect timeout: nothing was sent, so the next endpoint is tried (each at most once);
 *   - the connection dies before the response head (typically a keep-alive connection the upstream just closed):
 *     retried once on the next endpoint for idempotent methods, else 502;
 *   - no response head within `timeout`: 504 (not retried: the upstream may be working on it);
 *   - a malformed head or framing: 502.
 * A final head hands the request to the relay (gateway/upstream/relay.c). */
#include <string.h>
#include "ficus/clock.h"
#include "ficus/req.h"
#include "ficus/worker.h"
#include "ficus/upstream/balancer.h"
#include "ficus/upstream/proxy.h"

static int is_idempotent(h2o_iovec_t method)
{
    static const char *const methods[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE", NULL};
    for (const char *const *m = methods; *m != NULL; ++m)
        if (h2o_memis(method.base, method.len, *m, strlen(*m)))
            return 1;
    return 0;
}

static void on_head(ficus_upc_t *x, const char *err, const ficus_upc_response_t *res)
{
    ficus_proxy_t *p = x->data;
    ficus_req_t *r = p->r;
    h2o_req_t *req = r->h2o;

    if (err == NULL) {
        ficus_relay_start(p, res);
        return;
    }
    ficus_proxy_release_endpoint(p);
    if (err == ficus_upc_err_timeout) {
        ficus_proxy_count_error(p, FICUS_UPSTREAM_ERR_TIMEOUT);
        ficus_proxy_fail(p, 504, "gateway_timeout", "upstream_timeout");
    } else if (err == ficus_upc_err_reset) {
        /* typically a keep-alive connection the upstream closed as we reused it: nothing was processed */
        ficus_proxy_count_error(p, FICUS_UPSTREAM_ERR_RESET);
        if (!p->retried_reset && is_idempotent(req->method)) {
            p->retried_reset = 1;
            ficus_counter_add(&p->up->conf->stats->slots[r->worker->index].retries, 1);
            p->attempts = 0;
            ficus_attempt_start(p);
        } else {
            ficus_proxy_fail(p, 502, "bad_gateway", "upstream_reset");
        }
    } else {
        ficus_proxy_count_error(p, FICUS_UPSTREAM_ERR_PROTOCOL);
        ficus_proxy_fail(p, 502, "bad_gateway", "upstream_protocol_error");
    }
}

static void on_connect(ficus_upc_t *x, const char *err)
{
    ficus_proxy_t *p = x->data;
    if (err != NULL) {
        ficus_proxy_release_endpoint(p);
        int is_timeout = err == ficus_upc_err_connect_timeout;
        ficus_proxy_count_error(p, is_timeout ? FICUS_UPSTREAM_ERR_TIMEOUT : FICUS_UPSTREAM_ERR_CONNECT);
        if (p->attempts < p->up->conf->num_endpoints) {
            ficus_attempt_start(p);
        } else if (is_timeout) {
            ficus_proxy_fail(p, 504, "gateway_timeout", "upstream_connect_timeout");
        } else {
            ficus_proxy_fail(p, 502, "bad_gateway",
                             err == ficus_upc_err_connect_refused ? "upstream_connect_refused" : "upstream_connect_failed");
        }
        return;
    }
    ficus_upstream_request_line(&p->req, p->ep->conf);
    ficus_upc_send(x, p->req.reqbufs, p->req.num_reqbufs, p->req.is_head, on_head);
}

void ficus_attempt_start(ficus_proxy_t *p)
{
    ++p->attempts;
    p->ep = ficus_balancer_pick(p->up);
    ++p->ep->inflight;
    p->r->upstream.endpoint = p->ep->conf->authority.base;
    p->r->upstream.started_at_us = ficus_mono_us();
    /* may call on_connect synchronously (a pooled connection, or a connect that failed at once) */
    ficus_upc_connect(&p->x, &p->ep->pool, on_connect);
}
