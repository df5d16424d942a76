/* A worker's runtime of one upstream for one configuration generation (ficus/upstream.h).
 *
 * POOLS SURVIVE RELOADS: a worker's runtime of an endpoint (its keep-alive pool) hangs off the endpoint's shared state
 * (state->rt[worker]) and is refcounted by that worker's generations: a new generation that still configures the
 * endpoint takes the same pool, so a reload opens no new upstream connections; the pool is closed when the last
 * generation using it is disposed. Its timers are the worker's own (ficus_worker_timeout: they live as long as the
 * thread), so no generation owns them; a new generation's timeouts apply to the connections it starts.
 * DRAIN: an endpoint the new generation no longer has (a removed address) is retired at the switch
 * (ficus_upstream_rts_retire): its idle connections close, its in-flight requests finish and close theirs.
 * BOUNDS: the worker's share of max_connections caps in-flight requests, and idle connections per endpoint too
 * (FICUS_UPSTREAM_MAX_IDLE when unlimited), each kept for keepalive_timeout. */
#include <stdlib.h>
#include <string.h>
#include "ficus/log.h"
#include "ficus/worker.h"
#include "ficus/upstream/registry.h"

void ficus_upstream_rt_init(ficus_upstream_rt_t *rt, const ficus_upstream_conf_t *conf, ficus_worker_t *w, unsigned num_workers)
{
    memset(rt, 0, sizeof(*rt));
    rt->conf = conf;
    rt->state = conf->state;
    rt->worker_index = w->index;
    rt->request_timeout = conf->request_timeout_ms != 0 ? ficus_worker_timeout(w, conf->request_timeout_ms) : NULL;
    /* a connect never waited longer than `timeout` with H2O's client either */
    h2o_timeout_t *connect_timeout =
        ficus_worker_timeout(w, conf->connect_timeout_ms < conf->timeout_ms ? conf->connect_timeout_ms : conf->timeout_ms);
    h2o_timeout_t *io_timeout = ficus_worker_timeout(w, conf->timeout_ms);
    h2o_timeout_t *keepalive_timeout = conf->keepalive_timeout_ms != 0 ? ficus_worker_timeout(w, conf->keepalive_timeout_ms) : NULL;
    rt->max_inflight = conf->max_connections == 0 ? SIZE_MAX : (conf->max_connections + num_workers - 1) / num_workers;
    size_t max_idle = rt->max_inflight < FICUS_UPSTREAM_MAX_IDLE ? rt->max_inflight : FICUS_UPSTREAM_MAX_IDLE;
    rt->endpoints = calloc(conf->num_endpoints, sizeof(*rt->endpoints));
    if (rt->endpoints == NULL)
        ficus_fatal("no memory");
    for (size_t i = 0; i != conf->num_endpoints; ++i) {
        const ficus_endpoint_conf_t *ec = conf->endpoints + i;
        ficus_endpoint_rt_t *ep = ec->state->rt[w->index];
        if (ep == NULL) {
            if ((ep = calloc(1, sizeof(*ep))) == NULL)
                ficus_fatal("no memory");
            ep->state = ec->state;
            ficus_upc_pool_init(&ep->pool, w->loop, &w->ctx.receivers.hostinfo_getaddr, ec->host, ec->port, connect_timeout,
                                io_timeout, keepalive_timeout, max_idle);
            ec->state->rt[w->index] = ep;
        } else {
            /* kept from a previous generation: the idle connections stay; new exchanges use this generation's timeouts */
            ep->pool.connect_timeout = connect_timeout;
            ep->pool.io_timeout = io_timeout;
            ep->pool.idle_timeout = keepalive_timeout;
            ep->pool.max_idle = max_idle;
        }
        ++ep->refcnt;
        rt->endpoints[i] = ep;
    }
}

void ficus_upstream_rt_dispose(ficus_upstream_rt_t *rt, ficus_worker_t *w)
{
    /* runs once no request uses this generation; a pool no generation of this worker uses any more has only idle
     * connections left, and closing them unlinks their timers, so nothing of it can be called back afterwards */
    for (size_t i = 0; i != rt->conf->num_endpoints; ++i) {
        ficus_endpoint_rt_t *ep = rt->endpoints[i];
        if (--ep->refcnt != 0)
            continue;
        ep->state->rt[w->index] = NULL;
        ficus_upc_pool_dispose(&ep->pool);
        free(ep);
    }
    free(rt->endpoints);
}

void ficus_upstream_rts_retire(ficus_upstream_rt_t *old, size_t num_old, ficus_upstream_rt_t *cur, size_t num_cur)
{
    for (size_t i = 0; i != num_old; ++i)
        for (size_t j = 0; j != old[i].conf->num_endpoints; ++j)
            old[i].endpoints[j]->in_current = 0;
    for (size_t i = 0; i != num_cur; ++i)
        for (size_t j = 0; j != cur[i].conf->num_endpoints; ++j)
            cur[i].endpoints[j]->in_current = 1;
    for (size_t i = 0; i != num_old; ++i) {
        for (size_t j = 0; j != old[i].conf->num_endpoints; ++j) {
            ficus_endpoint_rt_t *ep = old[i].endpoints[j];
            if (ep->in_current)
                continue;
            /* no generation to come sends it new requests: nothing goes back to its pool (a later generation that
             * configures the address again restores max_idle in ficus_upstream_rt_init) */
            ep->pool.max_idle = 0;
            ficus_upc_pool_close_idle(&ep->pool);
        }
    }
}

ficus_upstream_rt_t *ficus_upstream_rt_of(ficus_req_t *r, const ficus_upstream_conf_t *conf)
{
    return r->wgen->upstreams + conf->index;
}
