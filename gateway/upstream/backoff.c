/* Retry backoff and delays of any length (ficus/upstream/backoff.h).
 *
 * FULL JITTER (as in AWS's "Exponential Backoff And Jitter"): the delay is uniform between 0 and the exponential
 * cap, so retries of many requests that failed together spread out instead of arriving in waves.
 * DELAY: the worker's fixed-duration timeouts (ficus_worker_timeout, alive as long as the thread) of 1, 4, 16, 64,
 * 256 and 1024 ms; each step links the entry on the longest rung not past the deadline, so a delay of d ms costs at
 * most ~3 wake-ups per rung and fires within 1 ms of its deadline, never early. */
#include "ficus/worker.h"
#include "ficus/upstream/backoff.h"
#include "ficus/upstream/balancer.h"

static const uint64_t rungs[] = {1024, 256, 64, 16, 4, 1};

static void link_next(ficus_delay_t *d);

static void on_step(h2o_timeout_entry_t *entry)
{
    ficus_delay_t *d = H2O_STRUCT_FROM_MEMBER(ficus_delay_t, _entry, entry);
    if (h2o_now(d->_worker->loop) >= d->_deadline_ms) {
        d->_cb(d);
        return;
    }
    link_next(d);
}

static void link_next(ficus_delay_t *d)
{
    uint64_t now = h2o_now(d->_worker->loop), left = d->_deadline_ms > now ? d->_deadline_ms - now : 0;
    h2o_timeout_t *t = &d->_worker->ctx.zero_timeout;
    for (size_t i = 0; i != sizeof(rungs) / sizeof(rungs[0]); ++i) {
        if (left >= rungs[i]) {
            t = ficus_worker_timeout(d->_worker, rungs[i]);
            break;
        }
    }
    h2o_timeout_link(d->_worker->loop, t, &d->_entry);
}

void ficus_delay_start(ficus_delay_t *d, ficus_worker_t *w, uint64_t ms, void (*cb)(ficus_delay_t *d))
{
    d->_worker = w;
    d->_cb = cb;
    d->_entry.cb = on_step;
    d->_deadline_ms = h2o_now(w->loop) + ms;
    link_next(d);
}

void ficus_delay_cancel(ficus_delay_t *d)
{
    if (h2o_timeout_is_linked(&d->_entry))
        h2o_timeout_unlink(&d->_entry);
}

uint64_t ficus_backoff_ms(const ficus_upstream_conf_t *u, unsigned n)
{
    uint64_t cap = u->retry.backoff_base_ms;
    for (unsigned i = 1; i < n && cap < u->retry.backoff_max_ms; ++i)
        cap *= 2;
    if (cap > u->retry.backoff_max_ms)
        cap = u->retry.backoff_max_ms;
    return ficus_upstream_random() % (cap + 1);
}
