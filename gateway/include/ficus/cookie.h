/* Reading request cookies (RFC 6265 §5.4 syntax: "name=value" pairs separated by "; ").
 *
 * Lookups walk every Cookie header of the request without allocating; the value returned points into the request's
 * headers and lives as long as the request. */
#ifndef ficus__cookie_h
#define ficus__cookie_h

#include "h2o.h"

/** Steps over one "name=value" pair of a Cookie header value: skips separators from *p, stores the pair in *pair
 * (pointing into the value) and advances *p past it. Returns 0 when no pair is left before end. */
int ficus_cookie_next_pair(const char **p, const char *end, h2o_iovec_t *pair);
/** Whether `pair` ("name=value") is the cookie named `name`. */
int ficus_cookie_pair_is(h2o_iovec_t pair, const char *name, size_t name_len);
/** The value of the first cookie named `name` (case-sensitive), or {NULL, 0} when there is none. */
h2o_iovec_t ficus_cookie_get(const h2o_req_t *req, const char *name, size_t name_len);

#endif
