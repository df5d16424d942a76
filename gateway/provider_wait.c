/* Worker side of an unknown kid: the request waits (at most kid_wait) for one forced refetch, asked of the control
 * thread once per worker and provider while one is pending (single flight); every waiter is woken when the refetch
 * is done (keys published, or refetch declined) or when its deadline passes (a 100 ms tick while any waits). Within
 * refetch_min_interval of the last refetch this worker saw done, an unknown kid fails at once without asking.
 * BOUND: at most MAX_WAITERS_PER_WORKER waiting requests per worker; beyond, the request fails at once.
 * THREADING: worker thread only (its slot, its kid_waiters list); a waiter lives in its request's pool. */
#include "ficus/control.h"
#include "ficus/worker.h"
#include "provider_internal.h"

#define MAX_WAITERS_PER_WORKER 4096

void ficus__provider_wake_waiters(ficus_worker_t *w, ficus_provider_t *p, int timed_out, uint64_t now)
{
    h2o_linklist_t *node = w->kid_waiters.next;
    while (node != &w->kid_waiters) {
        ficus_provider_waiter_t *waiter = H2O_STRUCT_FROM_MEMBER(ficus_provider_waiter_t, link, node);
        node = node->next;
        if ((p != NULL && waiter->provider != p) || (timed_out && waiter->deadline_ms > now))
            continue;
        h2o_linklist_unlink(&waiter->link);
        --w->num_kid_waiters;
        waiter->cb(waiter, timed_out);
    }
}

static void on_waiter_tick(h2o_timeout_entry_t *entry)
{
    ficus_worker_t *w = H2O_STRUCT_FROM_MEMBER(ficus_worker_t, kid_tick, entry);
    ficus__provider_wake_waiters(w, NULL, 1, h2o_now(w->loop));
    if (w->num_kid_waiters != 0)
        h2o_timeout_link(w->loop, &w->tick_timeout, &w->kid_tick);
}

int ficus_provider_wait_for_refetch(ficus_provider_conf_t *pc, ficus_worker_t *w, ficus_provider_waiter_t *waiter)
{
    ficus_provider_t *p = pc->rt;
    ficus_provider_slot_t *slot = p->slots + w->index;
    uint64_t now = h2o_now(w->loop);
    if (pc->source == FICUS_KEYS_FROM_FILE || pc->source == FICUS_KEYS_FROM_SECRET || pc->kid_wait_ms == 0)
        return -1;
    if (!slot->refetch_pending && slot->last_refetch_done_ms != 0 && now - slot->last_refetch_done_ms < pc->refetch_min_interval_ms)
        return -1;
    if (w->num_kid_waiters >= MAX_WAITERS_PER_WORKER)
        return -1;
    waiter->provider = p;
    waiter->deadline_ms = now + pc->kid_wait_ms;
    h2o_linklist_insert(&w->kid_waiters, &waiter->link);
    ++w->num_kid_waiters;
    if (!h2o_timeout_is_linked(&w->kid_tick)) {
        w->kid_tick.cb = on_waiter_tick;
        h2o_timeout_link(w->loop, &w->tick_timeout, &w->kid_tick);
    }
    if (!slot->refetch_pending) {
        slot->refetch_pending = 1;
        ficus_provider_retain(p);
        ficus_control_post(ficus__provider_on_refetch_request, p);
    }
    return 0;
}

void ficus_provider_cancel_wait(ficus_provider_conf_t *pc, ficus_worker_t *w, ficus_provider_waiter_t *waiter)
{
    if (h2o_linklist_is_linked(&waiter->link)) {
        h2o_linklist_unlink(&waiter->link);
        --w->num_kid_waiters;
    }
}
