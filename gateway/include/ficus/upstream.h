/* The upstream layer (gateway/upstream/), as the rest of ficus sees it.
 *
 * FILES (one concept each):
 *   load.c             the `upstreams:` section: validation with file:line errors, endpoint URLs
 *   registry.c         per-endpoint state shared by the generations that configure the endpoint
 *   runtime.c          a worker's runtime of one upstream for one generation (timers, pools)
 *   client.c           the transport: HTTP/1.1 client and per-endpoint keep-alive pools
 *   response.c         the pure response parser: head, framing, chunked decoder
 *   request_builder.c  the upstream request: path rewriting, header filtering, forwarding headers
 *   balancer.c         which endpoint an attempt goes to
 *   attempt.c          one try on one endpoint and the decision to try again
 *   relay.c            the response towards the client, with backpressure
 *   proxy.c            a proxied request from start to end: builds the request, runs attempts, relays, cleans up
 * THREADING: configuration is loaded on the control thread; everything else runs on the worker owning the request. */
#ifndef ficus__upstream_h
#define ficus__upstream_h

#include "ficus/conf.h"
#include "ficus/upstream/types.h"

typedef struct st_ficus_config_t ficus_config_t;
typedef struct st_ficus_req_t ficus_req_t;
typedef struct st_ficus_worker_t ficus_worker_t;

/** Loads the `upstreams:` mapping into config->upstreams. 0, or -1 with the error recorded in cc (gateway/upstream/load.c). */
int ficus_upstreams_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_config_t *config);
/** Frees config->upstreams (a partly loaded one too). */
void ficus_upstreams_free(ficus_config_t *config);

/** Starts proxying a request to the route's upstream (gateway/upstream/proxy.c). */
void ficus_proxy_start(ficus_req_t *req, ficus_upstream_rt_t *upstream);

/** Builds / frees a worker's runtime for one upstream (gateway/upstream/runtime.c). */
void ficus_upstream_rt_init(ficus_upstream_rt_t *rt, const ficus_upstream_conf_t *conf, ficus_worker_t *w, unsigned num_workers);
void ficus_upstream_rt_dispose(ficus_upstream_rt_t *rt, ficus_worker_t *w);

#endif
