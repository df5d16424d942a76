/* Passive outlier detection (ficus/upstream/outlier.h).
 *
 * STATES per endpoint: OK → FAILING after `consecutive_failures` failed attempts in a row → EJECTED when a slot under
 * the cap is free (CAS on the upstream's num_ejected, so the cap holds across workers). An ejection lasts
 * ejection << level, capped at max_ejection; level grows by one per ejection and is forgotten after the endpoint went
 * max_ejection without a failure. When the time is up one trial request is let through (CAS on `trial`): success
 * returns the endpoint (OK), failure ejects it again for twice as long.
 * PANIC: when more endpoints are failing than may be ejected, the upstream is in panic: the balancer then sends
 * requests to the least recently failed endpoints (gateway/upstream/balancer.c); entering and leaving are logged once
 * and shown as ficus_upstream_panic{upstream}.
 * COST on the success path: two loads (consecutive_failures, ejection_level) unless something needs resetting. */
#include <stdio.h>
#include "ficus/log.h"
#include "ficus/upstream/outlier.h"

static int cas_int(int *p, int from, int to)
{
    return __atomic_compare_exchange_n(p, &from, to, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

unsigned ficus_outlier_cap(const ficus_upstream_conf_t *u)
{
    unsigned cap = (unsigned)(u->outlier.max_ejected_percent * u->num_endpoints / 100);
    return cap == 0 && u->outlier.max_ejected_percent != 0 ? 1 : cap;
}

int ficus_outlier_available(const ficus_endpoint_state_t *ep, uint64_t now_us)
{
    if (FICUS_ATOMIC_LOAD(&ep->outlier) != FICUS_OUTLIER_EJECTED)
        return 1;
    return now_us >= FICUS_ATOMIC_LOAD(&ep->ejected_until_us) && FICUS_ATOMIC_LOAD(&ep->trial) == 0;
}

int ficus_outlier_take(ficus_endpoint_state_t *ep, uint64_t now_us, int *is_trial)
{
    *is_trial = 0;
    if (FICUS_ATOMIC_LOAD(&ep->outlier) != FICUS_OUTLIER_EJECTED)
        return 1;
    if (now_us < FICUS_ATOMIC_LOAD(&ep->ejected_until_us) || !cas_int(&ep->trial, 0, 1))
        return 0;
    *is_trial = 1;
    return 1;
}

void ficus_outlier_abandon(ficus_endpoint_state_t *ep, int is_trial)
{
    if (is_trial)
        FICUS_ATOMIC_STORE(&ep->trial, 0);
}

static void update_panic(const ficus_upstream_conf_t *u, ficus_upstream_state_t *up)
{
    unsigned failing = FICUS_ATOMIC_LOAD(&up->num_failing), cap = ficus_outlier_cap(u);
    int now = failing > cap;
    if (!cas_int(&up->panic, !now, now))
        return;
    if (now)
        ficus_warn("upstream %s: panic entered (%u of %zu endpoints failing, at most %u may be ejected): requests go to the "
                   "least recently failed endpoints",
                   u->name, failing, u->num_endpoints, cap);
    else
        ficus_info("upstream %s: panic left (%u of %zu endpoints failing)", u->name, failing, u->num_endpoints);
}

static uint64_t ejection_ms(const ficus_upstream_conf_t *u, unsigned level)
{
    uint64_t ms = u->outlier.ejection_ms;
    for (unsigned i = 0; i < level && ms < u->outlier.max_ejection_ms; ++i)
        ms *= 2;
    return ms < u->outlier.max_ejection_ms ? ms : u->outlier.max_ejection_ms;
}

static void eject(const ficus_upstream_conf_t *u, ficus_endpoint_state_t *ep, uint64_t now_us, const char *why)
{
    unsigned level = FICUS_ATOMIC_LOAD(&ep->ejection_level);
    uint64_t ms = ejection_ms(u, level);
    FICUS_ATOMIC_STORE(&ep->ejected_until_us, now_us + ms * 1000);
    FICUS_ATOMIC_STORE(&ep->ejection_level, level + 1);
    FICUS_ATOMIC_ADD(&ep->ejections_total, 1);
    ficus_warn("upstream %s: endpoint %s ejected for %llums (%s)", u->name, ep->authority, (unsigned long long)ms, why);
}

/* A FAILING endpoint takes an ejection slot if one is free under the cap. */
static void try_eject(const ficus_upstream_conf_t *u, ficus_endpoint_state_t *ep, uint64_t now_us)
{
    ficus_upstream_state_t *up = ep->up;
    unsigned cap = ficus_outlier_cap(u), n = FICUS_ATOMIC_LOAD(&up->num_ejected);
    do {
        if (n >= cap)
            return;
    } while (!__atomic_compare_exchange_n(&up->num_ejected, &n, n + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
    if (!cas_int(&ep->outlier, FICUS_OUTLIER_FAILING, FICUS_OUTLIER_EJECTED)) {
        FICUS_ATOMIC_SUB(&up->num_ejected, 1); /* another worker changed it meanwhile */
        return;
    }
    char why[64];
    snprintf(why, sizeof(why), "%u consecutive failures", FICUS_ATOMIC_LOAD(&ep->consecutive_failures));
    eject(u, ep, now_us, why);
}

void ficus_outlier_record(const ficus_upstream_conf_t *u, ficus_endpoint_state_t *ep, int failed, int is_trial, uint64_t now_us)
{
    ficus_upstream_state_t *up = ep->up;
    if (!failed) {
        if (is_trial && cas_int(&ep->outlier, FICUS_OUTLIER_EJECTED, FICUS_OUTLIER_OK)) {
            FICUS_ATOMIC_STORE(&ep->consecutive_failures, 0);
            FICUS_ATOMIC_STORE(&ep->trial, 0);
            FICUS_ATOMIC_SUB(&up->num_ejected, 1);
            FICUS_ATOMIC_SUB(&up->num_failing, 1);
            ficus_info("upstream %s: endpoint %s returned (trial request succeeded)", u->name, ep->authority);
            update_panic(u, up);
            return;
        }
        if (FICUS_ATOMIC_LOAD(&ep->consecutive_failures) != 0) {
            FICUS_ATOMIC_STORE(&ep->consecutive_failures, 0);
            if (cas_int(&ep->outlier, FICUS_OUTLIER_FAILING, FICUS_OUTLIER_OK)) {
                FICUS_ATOMIC_SUB(&up->num_failing, 1);
                update_panic(u, up);
            }
        }
        if (FICUS_ATOMIC_LOAD(&ep->ejection_level) != 0 && FICUS_ATOMIC_LOAD(&ep->outlier) == FICUS_OUTLIER_OK &&
            now_us - FICUS_ATOMIC_LOAD(&ep->last_failure_us) > u->outlier.max_ejection_ms * 1000)
            FICUS_ATOMIC_STORE(&ep->ejection_level, 0);
        return;
    }
    FICUS_ATOMIC_STORE(&ep->last_failure_us, now_us);
    if (is_trial) {
        /* still ejected (the slot is kept): again, for twice as long */
        eject(u, ep, now_us, "trial request failed");
        FICUS_ATOMIC_STORE(&ep->trial, 0);
        return;
    }
    unsigned c = FICUS_ATOMIC_ADD(&ep->consecutive_failures, 1);
    int state = FICUS_ATOMIC_LOAD(&ep->outlier);
    if (state == FICUS_OUTLIER_EJECTED || c < u->outlier.consecutive_failures)
        return; /* failures of requests that were in flight when it was ejected do not count again */
    if (state == FICUS_OUTLIER_OK) {
        if (!cas_int(&ep->outlier, FICUS_OUTLIER_OK, FICUS_OUTLIER_FAILING))
            return;
        FICUS_ATOMIC_ADD(&up->num_failing, 1);
    }
    try_eject(u, ep, now_us);
    update_panic(u, up);
}
