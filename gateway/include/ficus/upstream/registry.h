/* Upstream and endpoint state that outlives configuration generations (gateway/upstream/registry.c).
 *
 * IDENTITY: an upstream by its name, an endpoint by its upstream's name and its address ("host:port"). Every
 * generation that configures one holds the same state object, so what ficus learned (health, ejection, breaker,
 * pools) is kept across a reload for what is still configured.
 * LIFETIME: states are created at config load and never freed (like metric series, ficus/metrics.h): their number is
 * bounded by the distinct names and addresses ever configured; `configured` counts the generations holding one, so
 * /upstreams and the gauges show only what is configured now.
 * THREADING: lookups take the registry's mutex (config load, admin rendering). Fields are read and written with
 * atomics: workers on the request path, the control thread for health checks, the admin renderer; per-worker slots
 * have one writer each. */
#ifndef ficus__upstream_registry_h
#define ficus__upstream_registry_h

#include "ficus/breaker.h"
#include "ficus/upstream/types.h"

typedef enum enum_ficus_health_t {
    FICUS_HEALTH_HEALTHY = 0, /* also: not checked */
    FICUS_HEALTH_UNHEALTHY,
} ficus_health_t;

typedef enum enum_ficus_outlier_state_t {
    FICUS_OUTLIER_OK = 0,
    FICUS_OUTLIER_FAILING, /* consecutive_failures reached, not ejected (max_ejected) */
    FICUS_OUTLIER_EJECTED, /* until ejected_until_us, then one trial request */
} ficus_outlier_state_t;

struct st_ficus_upstream_state_t {
    char *name;
    size_t configured; /* generations configuring it (under the registry's mutex) */
    ficus_breaker_t breaker;
    int panic;              /* atomic */
    unsigned num_ejected;   /* endpoints ejected now (atomic) */
    unsigned num_failing;   /* endpoints failing or ejected now (atomic) */
    unsigned num_unhealthy; /* endpoints unhealthy by check (atomic) */
    uint64_t retries[FICUS_RETRY__COUNT];
    uint64_t budget_exhausted;
    uint64_t health_checks[2]; /* success, failure */
    struct st_ficus_upstream_slot_t {
        uint64_t inflight; /* requests in flight on this worker */
        uint64_t retries;  /* of which retrying (from the retry decision to the end of the retry) */
        char _pad[48];
    } slots[FICUS_MAX_WORKERS];
};

struct st_ficus_endpoint_state_t {
    char *upstream;  /* owned */
    char *authority; /* owned */
    ficus_upstream_state_t *up;
    uint64_t name_hash; /* ficus_split_name_hash(authority): the endpoint's seed for hash balancing */
    size_t configured;
    /* active health check (control thread writes) */
    int health;            /* ficus_health_t, atomic */
    unsigned check_passes; /* consecutive, control thread only */
    unsigned check_failures;
    int checked; /* a first check completed */
    /* outlier detection (any worker) */
    unsigned consecutive_failures;
    int outlier; /* ficus_outlier_state_t, CAS */
    int trial;   /* an ejected endpoint whose time is up has one trial request in flight (CAS) */
    uint64_t ejected_until_us;
    unsigned ejection_level; /* the next ejection lasts ejection << level (capped) */
    uint64_t last_failure_us;
    uint64_t ejections_total;
    uint64_t inflight[FICUS_MAX_WORKERS];       /* per worker (one writer each) */
    ficus_endpoint_rt_t *rt[FICUS_MAX_WORKERS]; /* worker i's runtime (pool), shared by its generations; worker i only */
};

/** The state of upstream `name`, created on first use; counts one more configuring generation. Control thread. */
ficus_upstream_state_t *ficus_upstream_state_get(const char *name);
/** The state of endpoint `authority` of upstream up, created on first use; counts one more configuring generation. */
ficus_endpoint_state_t *ficus_endpoint_state_get(ficus_upstream_state_t *up, const char *authority);
/** A generation no longer configures them (any thread). */
void ficus_upstream_state_unconfigure(ficus_upstream_state_t *s);
void ficus_endpoint_state_unconfigure(ficus_endpoint_state_t *s);
/** Calls fn for every endpoint state of up configured now, under the registry's mutex (fn must not call back in). */
void ficus_registry_foreach_endpoint(ficus_upstream_state_t *up, void (*fn)(ficus_endpoint_state_t *s, void *arg), void *arg);

#define FICUS_ATOMIC_LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define FICUS_ATOMIC_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define FICUS_ATOMIC_ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)
#define FICUS_ATOMIC_SUB(p, v) __atomic_sub_fetch((p), (v), __ATOMIC_ACQ_REL)

#endif
