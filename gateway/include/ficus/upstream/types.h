/* The upstream layer's types (gateway/upstream/): an upstream's configuration, its endpoints, and their runtime.
 *
 * LAYERS: configuration (ficus_upstream_conf_t, ficus_endpoint_conf_t) is part of an immutable config generation
 * (gateway/upstream/load.c). Endpoint state that must outlive generations (gateway/upstream/registry.c) is keyed by
 * the endpoint's identity (upstream name + address) and shared by every generation that configures it. The
 * per-worker runtime of one generation (ficus_upstream_rt_t: timers, pools, in-flight counts) lives in the worker
 * generation (gateway/upstream/runtime.c); only its worker thread touches it. */
#ifndef ficus__upstream_types_h
#define ficus__upstream_types_h

#include <stddef.h>
#include <stdint.h>
#include "h2o.h"
#include "ficus/metrics.h"
#include "ficus/upstream/client.h"

#define FICUS_UPSTREAM_MAX_ENDPOINTS 256
#define FICUS_UPSTREAM_MAX_IDLE 512 /* idle connections per endpoint and worker when max_connections is unlimited */

typedef struct st_ficus_endpoint_state_t ficus_endpoint_state_t; /* gateway/upstream/registry.c */

typedef struct st_ficus_endpoint_conf_t {
    char *url;  /* as written */
    char *host; /* host part (no brackets) */
    uint16_t port;
    h2o_iovec_t authority;         /* "host:port" used as Host when preserve_host is off */
    ficus_endpoint_state_t *state; /* shared across generations (a reference held by this conf) */
} ficus_endpoint_conf_t;

typedef struct st_ficus_upstream_conf_t {
    char *name;
    size_t index;
    ficus_endpoint_conf_t *endpoints;
    size_t num_endpoints;
    uint64_t connect_timeout_ms;
    uint64_t timeout_ms;
    uint64_t keepalive_timeout_ms;
    uint64_t max_connections; /* per instance (default 1024) */
    ficus_upstream_stats_t *stats;
} ficus_upstream_conf_t;

typedef struct st_ficus_endpoint_rt_t {
    const ficus_endpoint_conf_t *conf;
    ficus_upc_pool_t pool; /* keep-alive connections to this endpoint (gateway/upstream/client.c) */
    size_t inflight;
} ficus_endpoint_rt_t;

typedef struct st_ficus_upstream_rt_t {
    const ficus_upstream_conf_t *conf;
    h2o_timeout_t io_timeout; /* response timeout: to the head, and between body reads */
    h2o_timeout_t connect_timeout;
    h2o_timeout_t keepalive_timeout; /* idle pooled connections */
    size_t max_inflight;             /* this worker's share of max_connections; SIZE_MAX = unlimited */
    size_t inflight;
    size_t next; /* round robin */
    ficus_endpoint_rt_t *endpoints;
} ficus_upstream_rt_t;

#endif
