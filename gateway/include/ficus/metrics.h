/* Metrics: counters kept per worker thread without locks, summed when /metrics is scraped.
 *
 * DESIGN: every series object (one per route name, one per upstream name, plus process-wide ones) has one slot per
 * worker; only that worker writes its slot (single writer → relaxed atomic load/store, no lock, no contended cache
 * line), the admin thread reads all slots. Series are created at config load on the control thread, looked up by
 * name so a reload keeps counting where the previous generation stopped (Prometheus counters never go back), and
 * live until exit: their number is bounded by the distinct names ever configured.
 * THREADING: ficus_metrics_*_get() take a mutex (config load and scrape only); the hot path only calls the inline
 * ficus_counter_add(). */
#ifndef ficus__metrics_h
#define ficus__metrics_h

#include <stddef.h>
#include <stdint.h>
#include "h2o/memory.h"

#define FICUS_MAX_WORKERS 64
#define FICUS_LATENCY_BUCKETS 12 /* upper bounds in ficus_metrics_latency_bounds_us, +Inf implied */

extern const uint64_t ficus_metrics_latency_bounds_us[FICUS_LATENCY_BUCKETS];

typedef enum enum_ficus_upstream_error_t {
    FICUS_UPSTREAM_ERR_CONNECT = 0, /* refused, unreachable, DNS */
    FICUS_UPSTREAM_ERR_TIMEOUT,     /* connect or response timeout */
    FICUS_UPSTREAM_ERR_RESET,       /* closed/reset before a complete response */
    FICUS_UPSTREAM_ERR_PROTOCOL,    /* unparsable response */
    FICUS_UPSTREAM_ERR_OVERLOADED,  /* max_connections reached */
    FICUS_UPSTREAM_ERR__COUNT
} ficus_upstream_error_t;

extern const char *const ficus_upstream_error_names[FICUS_UPSTREAM_ERR__COUNT];

typedef struct st_ficus_route_stats_slot_t {
    uint64_t by_class[6]; /* 1xx..5xx, [0] = other */
    uint64_t latency_buckets[FICUS_LATENCY_BUCKETS + 1];
    uint64_t latency_sum_us;
    char _pad[64];
} ficus_route_stats_slot_t;

typedef struct st_ficus_route_stats_t {
    char *name;
    ficus_route_stats_slot_t slots[FICUS_MAX_WORKERS];
} ficus_route_stats_t;

typedef struct st_ficus_upstream_stats_slot_t {
    uint64_t errors[FICUS_UPSTREAM_ERR__COUNT];
    uint64_t requests;
    char _pad[64];
} ficus_upstream_stats_slot_t;

typedef struct st_ficus_upstream_stats_t {
    char *name;
    ficus_upstream_stats_slot_t slots[FICUS_MAX_WORKERS];
} ficus_upstream_stats_t;

typedef struct st_ficus_worker_stats_t {
    uint64_t inflight; /* current */
    uint64_t reset_flood_closes;
    uint64_t aborted_requests;
    uint64_t send_timeouts;      /* client connections closed by server.limits.send_timeout */
    uint64_t header_timeouts;    /* ... by server.limits.header_timeout */
    uint64_t frame_flood_closes; /* HTTP/2 connections closed for a flood of frames that do nothing */
    char _pad[64];
} ficus_worker_stats_t;

/* process-wide series */
extern ficus_worker_stats_t ficus_worker_stats[FICUS_MAX_WORKERS];
extern uint64_t ficus_metrics_reloads_success, ficus_metrics_reloads_failure; /* control thread only */

static inline void ficus_counter_add(uint64_t *c, uint64_t n)
{
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
static inline uint64_t ficus_counter_get(const uint64_t *c)
{
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/** Returns the series of a route / upstream name, creating it on first use. Control thread only. */
ficus_route_stats_t *ficus_metrics_route_get(const char *name);
ficus_upstream_stats_t *ficus_metrics_upstream_get(const char *name);
/** The series used for requests that matched no route ("_none"). */
ficus_route_stats_t *ficus_metrics_no_route(void);

/** Records one finished request in a worker's slot. */
void ficus_metrics_record_request(ficus_route_stats_t *rs, unsigned worker, int status, uint64_t duration_us);

/* A text buffer in a pool that metrics renderers append to (start with {pool, NULL, 0, 0}). */
typedef struct st_ficus_metrics_buf_t {
    h2o_mem_pool_t *pool;
    char *buf;
    size_t len, cap;
} ficus_metrics_buf_t;
/** printf-appends to b, growing it from its pool. */
void ficus_metrics_appendf(ficus_metrics_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Appends all metrics in Prometheus text format to buf (allocated from pool). */
void ficus_metrics_render(h2o_mem_pool_t *pool, h2o_iovec_t *out, unsigned num_workers);

#endif
