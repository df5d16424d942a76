/* The request ficus sends to an upstream, built once per client request (gateway/upstream/request_builder.c).
 *
 * The headers and the body are built once and reused by every attempt (retries, a fallback, a mirrored copy); only
 * the request line and Host depend on the endpoint an attempt goes to (ficus_upstream_request_line).
 * OWNERSHIP: everything is allocated from the client request's pool. */
#ifndef ficus__upstream_request_builder_h
#define ficus__upstream_request_builder_h

#include "h2o.h"
#include "ficus/upstream/types.h"

typedef struct st_ficus_req_t ficus_req_t;

typedef struct st_ficus_upstream_request_t {
    ficus_req_t *r;
    h2o_iovec_t path;       /* after prefix rewriting, with query */
    h2o_iovec_t reqbufs[3]; /* request line + host (per attempt), other headers, body */
    size_t num_reqbufs;
    int is_head; /* HEAD request: the response has no body */
} ficus_upstream_request_t;

/** The path to send upstream after the route's strip_prefix/add_prefix. Returns 0, or -1 when the raw path does not
 * start with the prefix (it matched only after percent-decoding). */
int ficus_upstream_request_path(ficus_req_t *r, h2o_iovec_t *out);
/** Builds the headers and body of the upstream request for r (hop-by-hop headers dropped, forwarding headers set). */
void ficus_upstream_request_build(ficus_upstream_request_t *p, ficus_req_t *r, h2o_iovec_t path);
/** Sets reqbufs[0], the request line and Host for endpoint ep (the client's authority with preserve_host). */
void ficus_upstream_request_line(ficus_upstream_request_t *p, const ficus_endpoint_conf_t *ep);

#endif
