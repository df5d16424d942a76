/* Worker side of an unknown kid: the request waits (at most kid_wait) while its worker asks the control thread
 * about that kid (one message per waiting request; the control thread merges questions about the same kid). The
 * answer (provider_refetch.c) comes after any new key set the control thread published (a worker's queue is in
 * order) and wakes every request of this worker waiting on that provider and kid; the request then verifies its
 * token again with the worker's set, with no further wait. A 100 ms tick, linked while any request waits, ends
 * the waits past their deadline. An answer saying the refetch budget is spent makes this worker fail unknown kids
 * of that provider at once, without asking, until the budget frees.
 * BOUND: at most MAX_WAITERS_PER_WORKER waiting requests per worker; beyond, the request fails at once.
 * THREADING: worker thread only (its slot, its kid_waiters list); a waiter lives in its request's pool. */
#include <stdlib.h>
#include <string.h>
#include "ficus/control.h"
#include "ficus/log.h"
#include "ficus/worker.h"
#include "provider_internal.h"

#define MAX_WAITERS_PER_WORKER 4096

ficus_provider_kid_msg_t *ficus__provider_kid_msg_new(ficus_provider_t *p, unsigned worker, const char *kid, size_t kid_len)
{
    ficus_provider_kid_msg_t *msg = malloc(sizeof(*msg) + kid_len);
    if (msg == NULL)
        ficus_fatal("no memory");
    ficus_provider_retain(p);
    msg->p = p;
    msg->worker = worker;
    msg->blocked_until_ms = 0;
    msg->kid_len = kid_len;
    memcpy(msg->kid, kid, kid_len);
    return msg;
}

void ficus__provider_kid_msg_free(ficus_provider_kid_msg_t *msg)
{
    ficus_provider_release(msg->p);
    free(msg);
}

/* Wakes w's waiters on p with that kid (the answer came), or, with kid NULL, those past their deadline. They are
 * moved to a list of their own before any callback runs: a callback may end other requests, whose dispose then
 * unlinks them from whichever list holds them (ficus_provider_cancel_wait). O(waiters) (MAX_WAITERS_PER_WORKER). */
static void wake(ficus_worker_t *w, ficus_provider_t *p, const char *kid, size_t kid_len, uint64_t now)
{
    h2o_linklist_t woken;
    h2o_linklist_init_anchor(&woken);
    for (h2o_linklist_t *node = w->kid_waiters.next, *next; node != &w->kid_waiters; node = next) {
        ficus_provider_waiter_t *waiter = H2O_STRUCT_FROM_MEMBER(ficus_provider_waiter_t, link, node);
        next = node->next;
        if (kid != NULL ? waiter->provider == p && h2o_memis(waiter->kid.base, waiter->kid.len, kid, kid_len)
                        : waiter->deadline_ms <= now) {
            h2o_linklist_unlink(&waiter->link);
            h2o_linklist_insert(&woken, &waiter->link);
        }
    }
    while (!h2o_linklist_is_empty(&woken)) {
        ficus_provider_waiter_t *waiter = H2O_STRUCT_FROM_MEMBER(ficus_provider_waiter_t, link, woken.next);
        h2o_linklist_unlink(&waiter->link);
        --w->num_kid_waiters;
        waiter->cb(waiter, kid == NULL);
    }
}

void ficus__provider_on_kid_answer(ficus_worker_t *w, void *arg)
{
    ficus_provider_kid_msg_t *msg = arg;
    ficus_provider_slot_t *slot = msg->p->slots + w->index;
    if (msg->blocked_until_ms > slot->refetch_blocked_until_ms)
        slot->refetch_blocked_until_ms = msg->blocked_until_ms;
    wake(w, msg->p, msg->kid, msg->kid_len, 0);
    ficus__provider_kid_msg_free(msg);
}

static void on_waiter_tick(h2o_timeout_entry_t *entry)
{
    ficus_worker_t *w = H2O_STRUCT_FROM_MEMBER(ficus_worker_t, kid_tick, entry);
    wake(w, NULL, NULL, 0, h2o_now(w->loop));
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
    if (waiter->kid.len == 0 || waiter->kid.len > FICUS_PROVIDER_MAX_KID_BYTES)
        return -1;
    if (now < slot->refetch_blocked_until_ms)
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
    ficus_control_post(ficus__provider_on_kid_question,
                       ficus__provider_kid_msg_new(p, w->index, waiter->kid.base, waiter->kid.len));
    return 0;
}

void ficus_provider_cancel_wait(ficus_provider_conf_t *pc, ficus_worker_t *w, ficus_provider_waiter_t *waiter)
{
    if (h2o_linklist_is_linked(&waiter->link)) {
        h2o_linklist_unlink(&waiter->link);
        --w->num_kid_waiters;
    }
}
