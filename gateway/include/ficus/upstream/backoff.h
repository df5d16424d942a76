/* Retry backoff: exponential with full jitter, and a timer for any delay on a worker (gateway/upstream/backoff.c). */
#ifndef ficus__upstream_backoff_h
#define ficus__upstream_backoff_h

#include "h2o.h"
#include "ficus/upstream/types.h"

typedef struct st_ficus_worker_t ficus_worker_t;

/* A one-shot timer of any duration on a worker's loop. H2O 2.2.5 timeouts have one fixed duration each, so a delay
 * is walked down a ladder of the worker's timeouts (1, 4, 16, 64, 256, 1024 ms): at most 3 wake-ups per rung. */
typedef struct st_ficus_delay_t {
    h2o_timeout_entry_t _entry;
    ficus_worker_t *_worker;
    uint64_t _deadline_ms; /* on the loop's clock */
    void (*_cb)(struct st_ficus_delay_t *d);
} ficus_delay_t;

/** Calls cb(d) after ms milliseconds (0: on the next loop iteration), never from inside this call. */
void ficus_delay_start(ficus_delay_t *d, ficus_worker_t *w, uint64_t ms, void (*cb)(ficus_delay_t *d));
/** Stops a pending delay (no callback follows); fine on one that is not pending. */
void ficus_delay_cancel(ficus_delay_t *d);
/** The delay before retry number n (1 = the first retry): uniform in [0, min(max, base * 2^(n-1))] ms. */
uint64_t ficus_backoff_ms(const ficus_upstream_conf_t *u, unsigned n);

#endif
