/* A worker's runtime of one upstream for one configuration generation (ficus/upstream.h).
 *
 * Per worker and generation, each upstream has its timers (connect, response, keep-alive) and each endpoint its own
 * keep-alive pool: no cross-thread lock, idle connections stay on the worker's loop.
 * BOUNDS: the worker's share of max_connections caps in-flight requests, and idle connections per endpoint too
 * (FICUS_UPSTREAM_MAX_IDLE when unlimited), each kept for keepalive_timeout. */
#include <stdlib.h>
#include <string.h>
#include "ficus/log.h"
#include "ficus/worker.h"

void ficus_upstream_rt_init(ficus_upstream_rt_t *rt, const ficus_upstream_conf_t *conf, ficus_worker_t *w, unsigned num_workers)
{
    memset(rt, 0, sizeof(*rt));
    rt->conf = conf;
    h2o_timeout_init(w->loop, &rt->io_timeout, conf->timeout_ms);
    /* a connect never waited longer than `timeout` with H2O's client either */
    h2o_timeout_init(w->loop, &rt->connect_timeout,
                     conf->connect_timeout_ms < conf->timeout_ms ? conf->connect_timeout_ms : conf->timeout_ms);
    h2o_timeout_init(w->loop, &rt->keepalive_timeout, conf->keepalive_timeout_ms);
    rt->max_inflight = conf->max_connections == 0 ? SIZE_MAX : (conf->max_connections + num_workers - 1) / num_workers;
    size_t max_idle = rt->max_inflight < FICUS_UPSTREAM_MAX_IDLE ? rt->max_inflight : FICUS_UPSTREAM_MAX_IDLE;
    rt->endpoints = calloc(conf->num_endpoints, sizeof(*rt->endpoints));
    if (rt->endpoints == NULL)
        ficus_fatal("no memory");
    for (size_t i = 0; i != conf->num_endpoints; ++i) {
        ficus_endpoint_rt_t *ep = rt->endpoints + i;
        ep->conf = conf->endpoints + i;
        ficus_upc_pool_init(&ep->pool, w->loop, &w->ctx.receivers.hostinfo_getaddr, ep->conf->host, ep->conf->port,
                            &rt->connect_timeout, &rt->io_timeout, conf->keepalive_timeout_ms != 0 ? &rt->keepalive_timeout : NULL,
                            max_idle);
    }
}

void ficus_upstream_rt_dispose(ficus_upstream_rt_t *rt, ficus_worker_t *w)
{
    /* runs once no request uses this generation: only idle connections are left, and closing them unlinks their
     * timers, so nothing of this runtime can be called back afterwards */
    for (size_t i = 0; i != rt->conf->num_endpoints; ++i)
        ficus_upc_pool_dispose(&rt->endpoints[i].pool);
    free(rt->endpoints);
    h2o_timeout_dispose(w->loop, &rt->io_timeout);
    h2o_timeout_dispose(w->loop, &rt->connect_timeout);
    h2o_timeout_dispose(w->loop, &rt->keepalive_timeout);
}
