/* The status page of the admin listener: `GET /` (one self-contained HTML page, no external asset) and
 * `GET /status.json` (what the page refreshes from: generation, last reload, routes with their actions, upstreams and
 * endpoints, providers, Redis). The page reads the live counters from /metrics on the same listener and computes the
 * last minute's rate, error rate and p99 itself, so the server keeps no history. Nothing on it is a secret: no
 * header values, no response bodies, no keys. Control thread only. */
#ifndef ficus__status_h
#define ficus__status_h

#include "h2o.h"

typedef struct st_ficus_server_t ficus_server_t;

/** The HTML page (a static string). */
h2o_iovec_t ficus_status_page(void);
/** /status.json of the running generation, allocated from pool. */
h2o_iovec_t ficus_status_json(h2o_mem_pool_t *pool, const ficus_server_t *server);

#endif
