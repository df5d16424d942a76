/* Request hygiene: what ficus makes of a request once, at entry, before the redirect listener, limits, routing or any
 * plugin looks at it — so that all of them, and the upstream request, see the same request.
 *
 * PATH: req->path, req->path_normalized and req->query_at are replaced by the canonical path (ficus/path.h), with the
 * query kept as sent; a path that cannot be made unambiguous is refused.
 * AUTHORITY: Host / :authority must be a valid authority (ficus_authority_is_valid); an HTTP/1.1 request without
 * one is refused (RFC 9112 3.2); otherwise req->authority is what the client sent (never H2O's internal host name). */
#ifndef ficus__req_hygiene_h
#define ficus__req_hygiene_h

#include "ficus/req.h"

/**
 * Applies the rules above to r. Returns NULL, or the JSON error code of a 400 to send instead of serving it; when
 * the request's framing is in doubt the HTTP/1.1 connection is marked not to be reused.
 */
const char *ficus_req_hygiene(ficus_req_t *r);

#endif
