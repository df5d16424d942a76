/* Picking an endpoint for an attempt (ficus/upstream/balancer.h).
 *
 * DESIGN: round robin over the upstream's endpoints with a per-worker cursor (no shared state, no lock); workers
 * start at the same place, which spreads evenly once requests interleave. */
#include "ficus/upstream/balancer.h"

ficus_endpoint_rt_t *ficus_balancer_pick(ficus_upstream_rt_t *up)
{
    return up->endpoints + (up->next++ % up->conf->num_endpoints);
}
