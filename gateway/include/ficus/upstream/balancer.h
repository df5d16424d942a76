/* Which endpoint of an upstream an attempt goes to (gateway/upstream/balancer.c). Worker thread only. */
#ifndef ficus__upstream_balancer_h
#define ficus__upstream_balancer_h

#include "ficus/upstream/types.h"

/** Picks the endpoint of the next attempt: round robin over the upstream's endpoints. Never NULL. */
ficus_endpoint_rt_t *ficus_balancer_pick(ficus_upstream_rt_t *up);

#endif
