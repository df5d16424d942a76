/* Which endpoint of an upstream an attempt goes to (gateway/upstream/balancer.c). Worker thread only. */
#ifndef ficus__upstream_balancer_h
#define ficus__upstream_balancer_h

#include <sys/types.h>
#include "ficus/upstream/types.h"

typedef struct st_ficus_req_t ficus_req_t;

/* a set of endpoint indexes (the endpoints a request already tried) */
typedef struct st_ficus_endpoint_set_t {
    uint64_t bits[FICUS_UPSTREAM_MAX_ENDPOINTS / 64];
} ficus_endpoint_set_t;

static inline int ficus_endpoint_set_has(const ficus_endpoint_set_t *s, size_t i)
{
    return (s->bits[i / 64] >> (i % 64)) & 1;
}
static inline void ficus_endpoint_set_add(ficus_endpoint_set_t *s, size_t i)
{
    s->bits[i / 64] |= (uint64_t)1 << (i % 64);
}

/**
 * Picks the endpoint of the next attempt of r among the available ones (not unhealthy by check, not ejected),
 * preferring one not in `tried`, by the upstream's `balance`; in panic, the least recently failed one. Returns its
 * index in conf->endpoints, or -1 when no endpoint is available. *is_trial = 1 when the attempt is an ejected
 * endpoint's trial request (ficus/upstream/outlier.h).
 */
ssize_t ficus_balancer_pick(ficus_upstream_rt_t *up, ficus_req_t *r, const ficus_endpoint_set_t *tried, uint64_t now_us,
                            int *is_trial);
/** Whether any endpoint of up is available now (for failing fast when none is). */
int ficus_balancer_any_available(const ficus_upstream_rt_t *up, uint64_t now_us);
/** When to come back when no endpoint is available: the first ejection to end, else the health check interval
 * (at least 1 s). */
uint64_t ficus_balancer_retry_after_ms(const ficus_upstream_rt_t *up, uint64_t now_us);
/** A per-thread pseudo-random number (xorshift, seeded from getrandom): backoff jitter, power of two choices. */
uint64_t ficus_upstream_random(void);

#endif
