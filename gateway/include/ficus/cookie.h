/* Reading request cookies (RFC 6265 §5.4 syntax: "name=value" pairs separated by "; ").
 *
 * Lookups walk every Cookie header of the request without allocating; the value returned points into the request's
 * headers and lives as long as the request. */
#ifndef ficus__cookie_h
#define ficus__cookie_h

#include "h2o.h"

/** The value of the first cookie named `name` (case-sensitive), or {NULL, 0} when there is none. */
h2o_iovec_t ficus_cookie_get(const h2o_req_t *req, const char *name, size_t name_len);

#endif
