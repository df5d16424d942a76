/* The circuit breaker (ficus/breaker.h), shared by the upstream layer and the Redis client.
 *
 * WINDOW: a ring of FICUS_BREAKER_BUCKETS buckets, each window/FICUS_BREAKER_BUCKETS long and tagged with its epoch
 * (now / bucket length); a bucket whose epoch is stale is reset by the first writer of its new epoch. The window's
 * counts are the sum of the buckets of the last FICUS_BREAKER_BUCKETS epochs, summed only when a failure is recorded
 * (the success path costs two relaxed increments).
 * With no ratio rule (failure_ratio_percent 0) the window is not kept at all.
 * CONSECUTIVE: a counter of failures in a row, reset by a success; reaching consecutive_failures opens.
 * HALF-OPEN: the first admission after open_until moves OPEN → HALF_OPEN by CAS; `trials` trials may be in flight;
 * `trials` successes close it (the window and the counter start empty), one failure opens it again. */
#include <stddef.h>
#include "ficus/breaker.h"

#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)
#define SUB(p, v) __atomic_sub_fetch((p), (v), __ATOMIC_ACQ_REL)

static int cas_state(ficus_breaker_t *b, int from, int to)
{
    return __atomic_compare_exchange_n(&b->state, &from, to, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static uint64_t bucket_ms(const ficus_breaker_conf_t *c)
{
    uint64_t ms = c->window_ms / FICUS_BREAKER_BUCKETS;
    return ms == 0 ? 1 : ms;
}

static unsigned trials(const ficus_breaker_conf_t *c)
{
    return c->trials != 0 ? c->trials : FICUS_BREAKER_TRIALS;
}

static void clear_window(ficus_breaker_t *b)
{
    STORE(&b->consecutive, 0);
    for (size_t i = 0; i != FICUS_BREAKER_BUCKETS; ++i) {
        STORE(&b->buckets[i].requests, 0);
        STORE(&b->buckets[i].failures, 0);
    }
}

static void count_in_window(ficus_breaker_t *b, const ficus_breaker_conf_t *c, uint64_t now_us, int failed)
{
    uint64_t epoch = now_us / 1000 / bucket_ms(c);
    struct st_ficus_breaker_bucket_t *bk = b->buckets + epoch % FICUS_BREAKER_BUCKETS;
    uint64_t seen = LOAD(&bk->epoch);
    if (seen != epoch && __atomic_compare_exchange_n(&bk->epoch, &seen, epoch, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        STORE(&bk->requests, 0);
        STORE(&bk->failures, 0);
    }
    ADD(&bk->requests, 1);
    if (failed)
        ADD(&bk->failures, 1);
}

static void window_counts(ficus_breaker_t *b, const ficus_breaker_conf_t *c, uint64_t now_us, uint64_t *failures, uint64_t *total)
{
    uint64_t epoch = now_us / 1000 / bucket_ms(c);
    *failures = *total = 0;
    for (size_t i = 0; i != FICUS_BREAKER_BUCKETS; ++i) {
        uint64_t e = LOAD(&b->buckets[i].epoch);
        if (e + FICUS_BREAKER_BUCKETS > epoch && e <= epoch) {
            *total += LOAD(&b->buckets[i].requests);
            *failures += LOAD(&b->buckets[i].failures);
        }
    }
}

ficus_breaker_admit_t ficus_breaker_admit(ficus_breaker_t *b, const ficus_breaker_conf_t *c, uint64_t now_us,
                                          uint64_t *retry_after_ms)
{
    int state = LOAD(&b->state);
    if (state == FICUS_BREAKER_CLOSED)
        return FICUS_BREAKER_ALLOW;
    if (state == FICUS_BREAKER_OPEN) {
        uint64_t until = LOAD(&b->open_until_us);
        if (now_us < until) {
            *retry_after_ms = (until - now_us + 999) / 1000;
            return FICUS_BREAKER_REJECT;
        }
        if (cas_state(b, FICUS_BREAKER_OPEN, FICUS_BREAKER_HALF_OPEN)) {
            STORE(&b->trials_inflight, 0);
            STORE(&b->trial_successes, 0);
        }
    }
    /* half-open: a few trials at a time */
    if (ADD(&b->trials_inflight, 1) <= trials(c) && LOAD(&b->state) == FICUS_BREAKER_HALF_OPEN)
        return FICUS_BREAKER_TRIAL;
    SUB(&b->trials_inflight, 1);
    *retry_after_ms = 1000;
    return FICUS_BREAKER_REJECT;
}

int ficus_breaker_record(ficus_breaker_t *b, const ficus_breaker_conf_t *c, int is_trial, int failed, uint64_t now_us,
                         uint64_t *failed_out, uint64_t *total_out)
{
    if (is_trial) {
        SUB(&b->trials_inflight, 1);
        if (LOAD(&b->state) != FICUS_BREAKER_HALF_OPEN)
            return -1;
        if (failed) {
            STORE(&b->open_until_us, now_us + c->open_for_ms * 1000);
            if (cas_state(b, FICUS_BREAKER_HALF_OPEN, FICUS_BREAKER_OPEN)) {
                *failed_out = 1;
                *total_out = 1;
                return FICUS_BREAKER_OPEN;
            }
            return -1;
        }
        if (ADD(&b->trial_successes, 1) >= trials(c) && cas_state(b, FICUS_BREAKER_HALF_OPEN, FICUS_BREAKER_CLOSED)) {
            clear_window(b);
            return FICUS_BREAKER_CLOSED;
        }
        return -1;
    }
    if (!failed) {
        if (c->consecutive_failures != 0 && LOAD(&b->consecutive) != 0)
            STORE(&b->consecutive, 0);
        if (c->failure_ratio_percent != 0)
            count_in_window(b, c, now_us, 0);
        return -1;
    }
    uint64_t total = 0, failures = 0;
    unsigned in_a_row = c->consecutive_failures != 0 ? ADD(&b->consecutive, 1) : 0;
    if (c->failure_ratio_percent != 0)
        count_in_window(b, c, now_us, 1);
    if (LOAD(&b->state) != FICUS_BREAKER_CLOSED)
        return -1;
    if (c->consecutive_failures != 0 && in_a_row >= c->consecutive_failures) {
        failures = total = in_a_row;
    } else {
        if (c->failure_ratio_percent == 0)
            return -1;
        window_counts(b, c, now_us, &failures, &total);
        if (total < c->min_requests || failures * 100 < total * c->failure_ratio_percent)
            return -1;
    }
    STORE(&b->open_until_us, now_us + c->open_for_ms * 1000);
    if (!cas_state(b, FICUS_BREAKER_CLOSED, FICUS_BREAKER_OPEN))
        return -1;
    *failed_out = failures;
    *total_out = total;
    return FICUS_BREAKER_OPEN;
}

void ficus_breaker_abandon(ficus_breaker_t *b, int is_trial)
{
    if (is_trial)
        SUB(&b->trials_inflight, 1);
}

ficus_breaker_state_t ficus_breaker_state(const ficus_breaker_t *b)
{
    return (ficus_breaker_state_t)LOAD(&b->state);
}

int ficus_breaker_is_rejecting(const ficus_breaker_t *b, uint64_t now_us)
{
    return LOAD(&b->state) == FICUS_BREAKER_OPEN && now_us < LOAD(&b->open_until_us);
}

void ficus_breaker_reset(ficus_breaker_t *b)
{
    clear_window(b);
    STORE(&b->trial_successes, 0);
    STORE(&b->state, FICUS_BREAKER_CLOSED);
}
