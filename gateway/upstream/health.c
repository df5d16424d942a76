/* Active health checks, once per process, on the control thread (ficus/upstream.h: ficus_health_apply).
 *
 * DESIGN: one checker per endpoint with a `health_check:`, keyed by the endpoint's shared state, so a reload keeps
 * the checkers (and their counts) of the endpoints still configured; endpoints no longer checked go back to healthy.
 * Every `interval` a checker sends `GET path HTTP/1.1` with the endpoint's Host, `user-agent: ficus-health` and
 * `connection: close` through ficus's own client (gateway/upstream/client.c) on the control loop, from a pool without
 * keep-alive: the socket is closed when the check ends, never left open across the interval. A check passes when the
 * final status is within `expect`; a connect failure, reset, malformed answer or no answer within `timeout` fails it.
 * `unhealthy` failures in a row mark the endpoint unhealthy (a new endpoint starts healthy unless its first check
 * fails), `healthy` passes in a row mark it healthy again; one log line per change.
 * PUBLISHING: the result is one word per endpoint state (ficus/upstream/registry.h), stored with release ordering
 * by this thread and read with acquire loads by the workers' balancers: like provider.c's key sets, workers never
 * wait for the control thread and never see a half-made result.
 * BOUNDS: one connection per checked endpoint at a time; a check never outlives `timeout` (timeout <= interval). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/config.h"
#include "ficus/log.h"
#include "ficus/upstream.h"
#include "ficus/upstream/registry.h"

typedef struct st_checker_t {
    h2o_linklist_t link;
    ficus_endpoint_state_t *state;
    char *upstream;
    unsigned healthy, unhealthy;
    struct st_ficus_status_range_t expect[16];
    size_t num_expect;
    uint64_t interval_ms, timeout_ms;
    char *path;
    char *request; /* fixed for the checker's life: a check in flight may be sending it */
    size_t request_len;
    h2o_iovec_t buf;
    h2o_loop_t *loop;
    h2o_timeout_t interval, timeout, zero;
    h2o_timeout_entry_t next_check, deadline;
    ficus_upc_pool_t pool;
    ficus_upc_t x;
    int running;
    int seen;
} checker_t;

static h2o_linklist_t checkers = {&checkers, &checkers};
static h2o_multithread_receiver_t getaddr_receiver;
static int receiver_registered;

static void record(checker_t *c, int pass, const char *why)
{
    ficus_endpoint_state_t *s = c->state;
    FICUS_ATOMIC_ADD(&s->up->health_checks[pass ? 0 : 1], 1);
    int first = !s->checked;
    s->checked = 1;
    if (pass) {
        s->check_failures = 0;
        ++s->check_passes;
        if (FICUS_ATOMIC_LOAD(&s->health) == FICUS_HEALTH_UNHEALTHY && s->check_passes >= c->healthy) {
            FICUS_ATOMIC_STORE(&s->health, FICUS_HEALTH_HEALTHY);
            FICUS_ATOMIC_SUB(&s->up->num_unhealthy, 1);
            ficus_info("upstream %s: endpoint %s healthy (%u checks passed)", c->upstream, s->authority, s->check_passes);
        }
    } else {
        s->check_passes = 0;
        ++s->check_failures;
        if (FICUS_ATOMIC_LOAD(&s->health) == FICUS_HEALTH_HEALTHY && (first || s->check_failures >= c->unhealthy)) {
            FICUS_ATOMIC_STORE(&s->health, FICUS_HEALTH_UNHEALTHY);
            FICUS_ATOMIC_ADD(&s->up->num_unhealthy, 1);
            ficus_warn("upstream %s: endpoint %s unhealthy (%u checks failed, last: %s)", c->upstream, s->authority,
                       s->check_failures, why);
        }
    }
}

static void end_check(checker_t *c, int pass, const char *why)
{
    ficus_upc_cancel(&c->x); /* closes the connection if it is still open */
    h2o_buffer_consume(&c->x.body, c->x.body->size);
    if (h2o_timeout_is_linked(&c->deadline))
        h2o_timeout_unlink(&c->deadline);
    c->running = 0;
    record(c, pass, why);
}

static void on_head(ficus_upc_t *x, const char *err, const ficus_upc_response_t *res)
{
    checker_t *c = x->data;
    if (err != NULL) {
        end_check(c, 0, err);
        return;
    }
    int pass = 0;
    for (size_t i = 0; i != c->num_expect; ++i)
        if (res->status >= c->expect[i].lo && res->status <= c->expect[i].hi)
            pass = 1;
    char why[32];
    snprintf(why, sizeof(why), "status %d", res->status);
    end_check(c, pass, why);
}

static void on_connect(ficus_upc_t *x, const char *err)
{
    checker_t *c = x->data;
    if (err != NULL) {
        end_check(c, 0, err);
        return;
    }
    c->buf = h2o_iovec_init(c->request, c->request_len);
    ficus_upc_send(x, &c->buf, 1, 0, on_head);
}

static void on_deadline(h2o_timeout_entry_t *entry)
{
    checker_t *c = H2O_STRUCT_FROM_MEMBER(checker_t, deadline, entry);
    end_check(c, 0, "timeout");
}

static void on_next_check(h2o_timeout_entry_t *entry)
{
    checker_t *c = H2O_STRUCT_FROM_MEMBER(checker_t, next_check, entry);
    if (c->running)
        end_check(c, 0, "timeout");
    h2o_timeout_link(c->loop, &c->interval, &c->next_check);
    h2o_timeout_link(c->loop, &c->timeout, &c->deadline);
    c->running = 1;
    ficus_upc_connect(&c->x, &c->pool, on_connect); /* may end the check from inside */
}

static void checker_free(checker_t *c)
{
    h2o_linklist_unlink(&c->link);
    ficus_upc_dispose(&c->x);
    if (h2o_timeout_is_linked(&c->deadline))
        h2o_timeout_unlink(&c->deadline);
    if (h2o_timeout_is_linked(&c->next_check))
        h2o_timeout_unlink(&c->next_check);
    ficus_upc_pool_dispose(&c->pool);
    h2o_timeout_dispose(c->loop, &c->interval);
    h2o_timeout_dispose(c->loop, &c->timeout);
    h2o_timeout_dispose(c->loop, &c->zero);
    /* not checked any more: the endpoint is no longer held down by a check */
    ficus_endpoint_state_t *s = c->state;
    if (FICUS_ATOMIC_LOAD(&s->health) == FICUS_HEALTH_UNHEALTHY) {
        FICUS_ATOMIC_STORE(&s->health, FICUS_HEALTH_HEALTHY);
        FICUS_ATOMIC_SUB(&s->up->num_unhealthy, 1);
    }
    s->checked = 0;
    s->check_passes = s->check_failures = 0;
    free(c->request);
    free(c->path);
    free(c->upstream);
    free(c);
}

static int same_settings(const checker_t *c, const ficus_upstream_conf_t *u)
{
    return c->interval_ms == u->health.interval_ms && c->timeout_ms == u->health.timeout_ms && strcmp(c->path, u->health.path) == 0;
}

static checker_t *checker_new(h2o_loop_t *loop, const ficus_upstream_conf_t *u, const ficus_endpoint_conf_t *ep)
{
    checker_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        ficus_fatal("no memory");
    c->state = ep->state;
    c->upstream = h2o_strdup(NULL, u->name, SIZE_MAX).base;
    c->loop = loop;
    c->interval_ms = u->health.interval_ms;
    c->timeout_ms = u->health.timeout_ms;
    h2o_timeout_init(loop, &c->interval, c->interval_ms);
    h2o_timeout_init(loop, &c->timeout, c->timeout_ms);
    h2o_timeout_init(loop, &c->zero, 0);
    c->path = h2o_strdup(NULL, u->health.path, SIZE_MAX).base;
    size_t cap = strlen(u->health.path) + ep->authority.len + 128;
    if ((c->request = malloc(cap)) == NULL)
        ficus_fatal("no memory");
    c->request_len =
        (size_t)snprintf(c->request, cap, "GET %s HTTP/1.1\r\nhost: %s\r\nuser-agent: ficus-health\r\nconnection: close\r\n\r\n",
                         u->health.path, ep->authority.base);
    c->next_check.cb = on_next_check;
    c->deadline.cb = on_deadline;
    ficus_upc_pool_init(&c->pool, loop, &getaddr_receiver, ep->host, ep->port, &c->timeout, &c->timeout, NULL, 0);
    ficus_upc_init(&c->x, c);
    h2o_linklist_insert(&checkers, &c->link);
    h2o_timeout_link(loop, &c->zero, &c->next_check); /* the first check now */
    return c;
}

static void checker_update(checker_t *c, const ficus_upstream_conf_t *u)
{
    c->healthy = u->health.healthy;
    c->unhealthy = u->health.unhealthy;
    c->num_expect = u->health.num_expect < 16 ? u->health.num_expect : 16;
    memcpy(c->expect, u->health.expect, c->num_expect * sizeof(c->expect[0]));
}

void ficus_health_apply(h2o_loop_t *loop, h2o_multithread_queue_t *queue, const ficus_config_t *config)
{
    if (!receiver_registered) {
        h2o_multithread_register_receiver(queue, &getaddr_receiver, h2o_hostinfo_getaddr_receiver);
        receiver_registered = 1;
    }
    for (h2o_linklist_t *l = checkers.next; l != &checkers; l = l->next)
        H2O_STRUCT_FROM_MEMBER(checker_t, link, l)->seen = 0;
    for (size_t i = 0; i != config->num_upstreams; ++i) {
        const ficus_upstream_conf_t *u = config->upstreams[i];
        if (!u->health.enabled)
            continue;
        for (size_t j = 0; j != u->num_endpoints; ++j) {
            const ficus_endpoint_conf_t *ep = u->endpoints + j;
            checker_t *c = NULL;
            for (h2o_linklist_t *l = checkers.next; l != &checkers && c == NULL; l = l->next) {
                checker_t *k = H2O_STRUCT_FROM_MEMBER(checker_t, link, l);
                if (k->state == ep->state && !k->seen && same_settings(k, u))
                    c = k;
            }
            if (c == NULL)
                c = checker_new(loop, u, ep);
            c->seen = 1;
            checker_update(c, u);
        }
    }
    for (h2o_linklist_t *l = checkers.next; l != &checkers;) {
        checker_t *c = H2O_STRUCT_FROM_MEMBER(checker_t, link, l);
        l = l->next;
        if (!c->seen)
            checker_free(c);
    }
}
