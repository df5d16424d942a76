/* Endpoint state that outlives configuration generations (gateway/upstream/registry.c).
 *
 * An endpoint is identified by its upstream's name and its address ("host:port"). Every generation that configures
 * it holds a reference to the same ficus_endpoint_state_t, so what ficus learned about the endpoint (health, ejection,
 * breaker; issue 11) is kept across a reload for the endpoints still configured, and dropped with the last
 * generation that had it.
 * THREADING: get/release take the registry's mutex (config load and config release only: never per request). */
#ifndef ficus__upstream_registry_h
#define ficus__upstream_registry_h

#include "ficus/upstream/types.h"

struct st_ficus_endpoint_state_t {
    char *upstream;  /* owned */
    char *authority; /* owned */
    size_t _refcnt;  /* under the registry's mutex */
};

/** The state of endpoint `authority` of upstream `name`, created on first use; a reference for the caller. */
ficus_endpoint_state_t *ficus_endpoint_state_get(const char *name, const char *authority);
/** Drops a reference (any thread); the last one frees the state. NULL is fine. */
void ficus_endpoint_state_release(ficus_endpoint_state_t *state);

#endif
