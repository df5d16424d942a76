/* The circuit breaker, one for every dependency (gateway/breaker.c): closed → open at a failure ratio over a sliding
 * window, or after N consecutive failures → half-open after `open_for` (a few trial requests) → closed, or open again.
 * Upstreams use the ratio (`upstreams.NAME.breaker`: one breaker per upstream, shared by the workers); the Redis
 * client uses consecutive failures with one trial (`redis.breaker`: one breaker per worker and server).
 *
 * THREADING: lock-free; any thread may call any function (workers share an upstream's breaker). The window is
 * FICUS_BREAKER_BUCKETS buckets of window/FICUS_BREAKER_BUCKETS each with relaxed atomic counters: concurrent
 * updates at a bucket boundary may lose a count, never corrupt the state. The state word itself moves by
 * compare-and-swap, so each transition is reported to exactly one caller (one log line per change). */
#ifndef ficus__breaker_h
#define ficus__breaker_h

#include <stdint.h>

#define FICUS_BREAKER_BUCKETS 10
#define FICUS_BREAKER_TRIALS 3 /* default `trials`: this many successful trials close it; one failure opens it again */

typedef struct st_ficus_breaker_conf_t {
    int enabled;                    /* for the callers' convenience: the breaker itself does not look */
    unsigned failure_ratio_percent; /* opens when >= this share of the window's requests failed (0: no ratio rule) ... */
    uint64_t min_requests;          /* ... with at least this many requests in the window */
    uint64_t window_ms;
    unsigned consecutive_failures; /* also opens after this many failures in a row (0: no such rule) */
    uint64_t open_for_ms;          /* then half-open */
    unsigned trials;               /* half-open: trials at a time, and successes that close it (0: FICUS_BREAKER_TRIALS) */
} ficus_breaker_conf_t;

typedef enum enum_ficus_breaker_state_t {
    FICUS_BREAKER_CLOSED = 0,
    FICUS_BREAKER_OPEN = 1,
    FICUS_BREAKER_HALF_OPEN = 2,
} ficus_breaker_state_t;

typedef enum enum_ficus_breaker_admit_t {
    FICUS_BREAKER_ALLOW = 0, /* closed */
    FICUS_BREAKER_TRIAL,     /* half-open: this request is a trial (record it with is_trial = 1) */
    FICUS_BREAKER_REJECT,    /* open, or half-open with its trials in flight */
} ficus_breaker_admit_t;

typedef struct st_ficus_breaker_t {
    int state;              /* ficus_breaker_state_t, atomic */
    uint64_t open_until_us; /* while open */
    unsigned trials_inflight, trial_successes;
    unsigned consecutive; /* failures in a row of admitted, non-trial requests */
    struct st_ficus_breaker_bucket_t {
        uint64_t epoch, requests, failures;
    } buckets[FICUS_BREAKER_BUCKETS];
} ficus_breaker_t;

/** Whether a request may go now. On REJECT, *retry_after_ms says when to come back (at least 1 s when unknown). */
ficus_breaker_admit_t ficus_breaker_admit(ficus_breaker_t *b, const ficus_breaker_conf_t *c, uint64_t now_us,
                                          uint64_t *retry_after_ms);
/**
 * Records an admitted request's outcome. Returns the state the breaker moved to because of it (OPEN, CLOSED), or -1
 * when it did not move; *failed_out / *total_out get the window's counts that decided an opening (for the log line).
 */
int ficus_breaker_record(ficus_breaker_t *b, const ficus_breaker_conf_t *c, int is_trial, int failed, uint64_t now_us,
                         uint64_t *failed_out, uint64_t *total_out);
/** An admitted trial that ended without an outcome (the client went away): frees its slot. */
void ficus_breaker_abandon(ficus_breaker_t *b, int is_trial);
/** The current state (for metrics and /upstreams). */
ficus_breaker_state_t ficus_breaker_state(const ficus_breaker_t *b);
/** Open and within `open_for` at now_us: a request would be rejected (admits nothing, counts nothing). */
int ficus_breaker_is_rejecting(const ficus_breaker_t *b, uint64_t now_us);
/** Back to closed with an empty window (the dependency was replaced: e.g. Redis's master switched). */
void ficus_breaker_reset(ficus_breaker_t *b);

#endif
