/* Unknown kids, on the control thread: every question a worker asks about a kid gets one answer, from the current
 * set, from the negative cache, or after a forced refetch of the keys, within a budget.
 *
 * DESIGN (cf. node-jwks-rsa's jwksRequestsPerMinute, with a negative cache it lacks):
 * - Budget: at most refetch_budget forced refetches in any refetch_budget_window (a sliding window: the times of
 *   the last refetch_budget refetches are kept, a refetch is allowed when the oldest is a window old; a token
 *   bucket whose every token comes back one window after it was spent). A flood of random kids therefore costs the
 *   IdP at most the budget per window, and a real rotation right after a few unknown kids still gets its refetch.
 *   While the budget is spent, questions are answered at once (their requests fail) and the answer tells the
 *   workers until when, so they stop asking.
 * - Negative cache: a kid that a fetch confirmed absent (it was asked before that fetch started), and every kid that
 *   left the set at a fetch (tokens of stale clients after a rotation), is answered at once for unknown_kid_ttl
 *   without any fetch. A kid in the current set is always answered from the set first, so an IdP that publishes a
 *   kid after it was cached absent is believed at the next fetch (scheduled, or forced by another kid), or after
 *   the ttl. Bounded: unknown_kid_cache_size kids, least recently used evicted (h2o_cache; keyed with a per-process
 *   random seed so clients cannot choose colliding kids).
 * - Single flight: one fetch at a time (scheduled or forced). Kids asked before it started get its answer; kids
 *   asked while it runs may have been published after it started: if its set lacks them, one follow-up fetch (within
 *   the budget) answers all of them. A failed fetch answers every kid waiting (no follow-up: its retry follows the
 *   backoff).
 * BOUNDS: at most MAX_ASKED distinct kids wait for a fetch per provider (beyond, a question is answered at once);
 * each answer is one message per worker that asked.
 * THREADING: control thread only. */
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include "h2o/cache.h"
#include "ficus/clock.h"
#include "ficus/control.h"
#include "ficus/log.h"
#include "ficus/worker.h"
#include "provider_internal.h"

#define MAX_ASKED 1024

_Static_assert(FICUS_MAX_WORKERS <= 64, "one bit per worker in asked_t.workers");

typedef struct st_asked_t {
    char *kid;
    size_t kid_len;
    uint64_t workers; /* one bit per worker waiting for the answer */
    int covered;      /* asked before the fetch under way started: its answer is final */
} asked_t;

struct st_ficus_provider_refetch_t {
    uint64_t budget, window_ms;
    uint64_t *spent_at; /* monotonic ms of the last `budget` forced refetches (a ring) */
    size_t num_spent, oldest;
    uint64_t logged_blocked_until; /* "budget spent" logged once per episode */
    h2o_cache_t *absent;           /* negative cache (NULL when unknown_kid_ttl is 0) */
    uint32_t seed;
    H2O_VECTOR(asked_t) asked;
};

static uint64_t mono_ms(void)
{
    return ficus_mono_us() / 1000;
}

int ficus__provider_jwks_has_kid(const ficus_jwks_t *set, const char *kid, size_t kid_len)
{
    for (size_t i = 0; set != NULL && i != set->num_keys; ++i) {
        const char *k = set->keys[i].kid;
        if (k != NULL && strlen(k) == kid_len && memcmp(k, kid, kid_len) == 0)
            return 1;
    }
    return 0;
}

/* ---- negative cache ---- */

static h2o_cache_hashcode_t kid_hash(struct st_ficus_provider_refetch_t *r, const char *kid, size_t len)
{
    uint32_t h = 2166136261u ^ r->seed; /* FNV-1a, seeded */
    for (size_t i = 0; i != len; ++i)
        h = (h ^ (unsigned char)kid[i]) * 16777619u;
    return h != 0 ? h : 1; /* 0 would make h2o_cache compute its own hash */
}

static int absent_lookup(struct st_ficus_provider_refetch_t *r, const char *kid, size_t len)
{
    if (r->absent == NULL)
        return 0;
    h2o_cache_ref_t *ref = h2o_cache_fetch(r->absent, mono_ms(), h2o_iovec_init(kid, len), kid_hash(r, kid, len));
    if (ref == NULL)
        return 0;
    h2o_cache_release(r->absent, ref);
    return 1;
}

static void absent_add(struct st_ficus_provider_refetch_t *r, const char *kid, size_t len)
{
    if (r->absent != NULL && len != 0 && len <= FICUS_PROVIDER_MAX_KID_BYTES)
        h2o_cache_set(r->absent, mono_ms(), h2o_iovec_init(kid, len), kid_hash(r, kid, len), h2o_iovec_init("", 1));
}

/* ---- budget ---- */

/* 1 and the refetch counted when the budget allows one at `now` (monotonic ms); else 0 and *free_in_ms until it
 * does. O(1). */
static int budget_take(struct st_ficus_provider_refetch_t *r, uint64_t now, uint64_t *free_in_ms)
{
    *free_in_ms = r->window_ms;
    if (r->budget == 0)
        return 0;
    if (r->num_spent == r->budget) {
        uint64_t oldest = r->spent_at[r->oldest];
        if (now - oldest < r->window_ms) {
            *free_in_ms = r->window_ms - (now - oldest);
            return 0;
        }
        r->spent_at[r->oldest] = now;
        r->oldest = (r->oldest + 1) % r->budget;
    } else {
        r->spent_at[(r->oldest + r->num_spent++) % r->budget] = now;
    }
    return 1;
}

/* ---- answers ---- */

static void answer(ficus_provider_t *p, unsigned worker, const char *kid, size_t len, uint64_t blocked_until_ms)
{
    ficus_provider_kid_msg_t *msg = ficus__provider_kid_msg_new(p, worker, kid, len);
    msg->blocked_until_ms = blocked_until_ms;
    ficus_worker_post(ficus_control_worker(worker), ficus__provider_on_kid_answer, msg);
}

/* Answers every worker waiting on asked[i] and removes it (order is not kept). */
static void answer_asked(ficus_provider_t *p, size_t i, uint64_t blocked_until_ms)
{
    struct st_ficus_provider_refetch_t *r = p->refetch;
    asked_t *a = r->asked.entries + i;
    for (unsigned w = 0; w != FICUS_MAX_WORKERS; ++w)
        if ((a->workers & ((uint64_t)1 << w)) != 0)
            answer(p, w, a->kid, a->kid_len, blocked_until_ms);
    free(a->kid);
    *a = r->asked.entries[--r->asked.size];
}

static void add_asked(struct st_ficus_provider_refetch_t *r, const char *kid, size_t len, unsigned worker, int covered)
{
    h2o_vector_reserve(NULL, &r->asked, r->asked.size + 1);
    asked_t *a = r->asked.entries + r->asked.size++;
    if ((a->kid = malloc(len)) == NULL)
        ficus_fatal("no memory");
    memcpy(a->kid, kid, len);
    a->kid_len = len;
    a->workers = (uint64_t)1 << worker;
    a->covered = covered;
}

/* The budget is spent for free_in_ms: the wall-clock time workers compare with (their h2o_now), logged once. */
static uint64_t declined(ficus_provider_t *p, uint64_t free_in_ms)
{
    struct st_ficus_provider_refetch_t *r = p->refetch;
    uint64_t until = h2o_now(ficus_control_loop()) + free_in_ms;
    ++p->refetches_declined;
    if (until > r->logged_blocked_until) {
        ficus_warn("provider %s: refetch budget spent (%llu per %llums): unknown kids fail at once for %llums", p->name,
                   (unsigned long long)r->budget, (unsigned long long)r->window_ms, (unsigned long long)free_in_ms);
        r->logged_blocked_until = until;
    }
    return until;
}

static void force(ficus_provider_t *p)
{
    ++p->forced_refetches;
    ficus_info("provider %s: unknown kid, refetching keys", p->name);
    ficus__provider_fetcher_force(p->fetcher); /* may end at once (on_fetched): touch nothing after it */
}

void ficus__provider_on_kid_question(void *arg)
{
    ficus_provider_kid_msg_t *msg = arg;
    ficus_provider_t *p = msg->p;
    struct st_ficus_provider_refetch_t *r = p->refetch;
    uint64_t free_in_ms;
    if (r == NULL || ficus__provider_jwks_has_kid(p->keys, msg->kid, msg->kid_len))
        goto Answer; /* not fetched (any more), or the set has it (already published to the worker) */
    if (absent_lookup(r, msg->kid, msg->kid_len)) {
        ++p->unknown_kid_cache_hits;
        goto Answer;
    }
    for (size_t i = 0; i != r->asked.size; ++i) {
        if (h2o_memis(r->asked.entries[i].kid, r->asked.entries[i].kid_len, msg->kid, msg->kid_len)) {
            r->asked.entries[i].workers |= (uint64_t)1 << msg->worker;
            ficus__provider_kid_msg_free(msg);
            return;
        }
    }
    if (r->asked.size >= MAX_ASKED)
        goto Answer;
    if (ficus__provider_fetcher_busy(p->fetcher)) {
        add_asked(r, msg->kid, msg->kid_len, msg->worker, 0); /* answered by that fetch or its follow-up */
        ficus__provider_kid_msg_free(msg);
        return;
    }
    if (!budget_take(r, mono_ms(), &free_in_ms)) {
        msg->blocked_until_ms = declined(p, free_in_ms);
        goto Answer;
    }
    add_asked(r, msg->kid, msg->kid_len, msg->worker, 1);
    ficus__provider_kid_msg_free(msg);
    force(p);
    return;

Answer:
    ficus_worker_post(ficus_control_worker(msg->worker), ficus__provider_on_kid_answer, msg);
}

void ficus__provider_refetch_on_fetched(ficus_provider_t *p, const ficus_jwks_t *before, const ficus_jwks_t *keys)
{
    struct st_ficus_provider_refetch_t *r = p->refetch;
    if (r == NULL)
        return;
    /* kids that left the set: tokens still carrying them must not spend the budget */
    if (keys != NULL && before != NULL && before != keys)
        for (size_t i = 0; i != before->num_keys; ++i)
            if (before->keys[i].kid != NULL &&
                !ficus__provider_jwks_has_kid(keys, before->keys[i].kid, strlen(before->keys[i].kid)))
                absent_add(r, before->keys[i].kid, strlen(before->keys[i].kid));
    for (size_t i = 0; i < r->asked.size;) {
        asked_t *a = r->asked.entries + i;
        int present = keys != NULL && ficus__provider_jwks_has_kid(keys, a->kid, a->kid_len);
        if (a->covered || present || keys == NULL) {
            if (a->covered && keys != NULL && !present)
                absent_add(r, a->kid, a->kid_len);
            answer_asked(p, i, 0);
        } else {
            ++i;
        }
    }
    if (r->asked.size == 0)
        return;
    /* kids asked while this fetch ran and absent from its set: one follow-up fetch for all of them */
    uint64_t free_in_ms;
    if (budget_take(r, mono_ms(), &free_in_ms)) {
        for (size_t i = 0; i != r->asked.size; ++i)
            r->asked.entries[i].covered = 1;
        force(p);
    } else {
        uint64_t until = declined(p, free_in_ms);
        while (r->asked.size != 0)
            answer_asked(p, r->asked.size - 1, until);
    }
}

void ficus__provider_refetch_create(ficus_provider_t *p, const ficus_provider_conf_t *pc)
{
    struct st_ficus_provider_refetch_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        ficus_fatal("no memory");
    r->budget = pc->refetch_budget;
    r->window_ms = pc->refetch_budget_window_ms;
    if (r->budget != 0 && (r->spent_at = calloc(r->budget, sizeof(*r->spent_at))) == NULL)
        ficus_fatal("no memory");
    if (pc->unknown_kid_ttl_ms != 0)
        r->absent = h2o_cache_create(0, pc->unknown_kid_cache_size, pc->unknown_kid_ttl_ms, NULL);
    if (RAND_bytes((unsigned char *)&r->seed, sizeof(r->seed)) != 1)
        ficus_fatal("RAND_bytes failed");
    p->refetch = r;
}

void ficus__provider_refetch_destroy(ficus_provider_t *p)
{
    struct st_ficus_provider_refetch_t *r = p->refetch;
    if (r == NULL)
        return;
    while (r->asked.size != 0) /* the provider stops: nobody waits for a fetch that will not come */
        answer_asked(p, r->asked.size - 1, 0);
    free(r->asked.entries);
    free(r->spent_at);
    if (r->absent != NULL)
        h2o_cache_destroy(r->absent);
    free(r);
    p->refetch = NULL;
}
