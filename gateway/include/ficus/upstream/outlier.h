/* Passive outlier detection: endpoints ejected from real traffic, with doubling re-ejection, a trial request to
 * return, the max_ejected cap and the panic state (gateway/upstream/outlier.c). Any worker thread; lock-free. */
#ifndef ficus__upstream_outlier_h
#define ficus__upstream_outlier_h

#include "ficus/upstream/registry.h"

/** How many of the upstream's endpoints may be ejected at once (max_ejected; at least one when it is above 0 %). */
unsigned ficus_outlier_cap(const ficus_upstream_conf_t *u);
/** Whether endpoint ep may be sent a request now, not counting health checks. An ejected endpoint whose time is up
 * may take exactly one trial request: this claims it (*is_trial = 1; pass it to ficus_outlier_record). */
int ficus_outlier_take(ficus_endpoint_state_t *ep, uint64_t now_us, int *is_trial);
/** Whether ep is available now, without claiming anything (balancer candidates, /upstreams). */
int ficus_outlier_available(const ficus_endpoint_state_t *ep, uint64_t now_us);
/** Records an attempt's outcome on ep (failed = connect failure, reset, timeout, malformed response or a 5xx);
 * ejects, returns and enters or leaves panic as needed, with one log line per change. */
void ficus_outlier_record(const ficus_upstream_conf_t *u, ficus_endpoint_state_t *ep, int failed, int is_trial, uint64_t now_us);
/** A trial that ended without an outcome (the client went away): another request may try. */
void ficus_outlier_abandon(ficus_endpoint_state_t *ep, int is_trial);

#endif
