/* Route matching: the first route of a generation whose match block fits the request.
 *
 * Cost: linear in the number of routes, each test a few memcmp; routes are few (tens), so this beats building
 * tries and keeps first-match-wins order obvious to operators. Hosts compare case-insensitively, without port. */
#ifndef ficus__route_h
#define ficus__route_h

#include "ficus/config.h"

/** Returns the first matching route, or NULL. host: authority without port, any case. */
const ficus_route_t *ficus_route_find(const ficus_config_t *config, h2o_iovec_t host, h2o_iovec_t method, h2o_iovec_t path,
                                      const h2o_headers_t *headers);
/** Whether host (without port, any case) fits the match block's `host` (any host when it has none). */
int ficus_route_host_matches(const ficus_route_match_t *m, h2o_iovec_t host);
/** Whether one route matches (exposed for unit tests). path is without query string. */
int ficus_route_matches(const ficus_route_t *route, h2o_iovec_t host, h2o_iovec_t method, h2o_iovec_t path,
                        const h2o_headers_t *headers);

#endif
