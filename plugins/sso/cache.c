/* sso: the per-worker session cache and coalesced lookups. A fixed table of SESSION_CACHE_SLOTS entries per worker
 * thread (no locks) keeps sessions read from Redis for cache_ttl; requests for a session whose entry is missing or stale
 * share one GET in flight instead of sending their own (no stampede on Redis when a popular session's entry expires).
 * A lookup that fails (command timeout, reconnect) is asked again up to MAX_LOOKUP_RETRIES times LOOKUP_RETRY_MS apart
 * before the request gets 503 session_store_unavailable. */
#include <stdlib.h>
#include <string.h>
#include "ficus/log.h"
#include "ficus/worker.h"
#include "sso.h"

typedef struct st_cache_entry_t {
    char id[48];
    json_t *session;
    uint64_t fetched_ms;
} cache_entry_t;

static __thread cache_entry_t *session_cache;

static cache_entry_t *cache_slot(const char *id)
{
    if (session_cache == NULL && (session_cache = calloc(SESSION_CACHE_SLOTS, sizeof(*session_cache))) == NULL)
        return NULL;
    uint64_t h = 1469598103934665603ULL;
    for (const char *c = id; *c != '\0'; ++c)
        h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    return session_cache + h % SESSION_CACHE_SLOTS;
}

json_t *sso_cache_get(const char *id, uint64_t now, uint64_t ttl)
{
    cache_entry_t *e = cache_slot(id);
    if (e == NULL || e->session == NULL || strcmp(e->id, id) != 0 || now - e->fetched_ms >= ttl)
        return NULL;
    return e->session;
}

void sso_cache_put(const char *id, json_t *session, uint64_t now)
{
    cache_entry_t *e = cache_slot(id);
    if (e == NULL || strlen(id) >= sizeof(e->id))
        return;
    if (e->session != NULL)
        json_decref(e->session);
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->session = session != NULL ? json_incref(session) : NULL;
    e->fetched_ms = now;
}

/* Session lookups in flight on this worker: requests for the same session while its cache entry is being refreshed
 * wait on one GET instead of sending their own (no stampede on Redis when a popular session's entry expires).
 * Bounded by the number of distinct sessions with a request in flight. */
typedef struct st_session_lookup_t {
    h2o_linklist_t link;
    char *id;
    h2o_linklist_t waiters; /* sso_pending_t.lookup_link */
} session_lookup_t;

static __thread h2o_linklist_t lookups;

static session_lookup_t *find_lookup(const char *id)
{
    if (lookups.next == NULL)
        h2o_linklist_init_anchor(&lookups);
    for (h2o_linklist_t *n = lookups.next; n != &lookups; n = n->next) {
        session_lookup_t *l = H2O_STRUCT_FROM_MEMBER(session_lookup_t, link, n);
        if (strcmp(l->id, id) == 0)
            return l;
    }
    return NULL;
}

#define MAX_LOOKUP_RETRIES 2
#define LOOKUP_RETRY_MS 50

static void on_lookup_retry(h2o_timeout_entry_t *entry)
{
    sso_pending_t *p = H2O_STRUCT_FROM_MEMBER(sso_pending_t, wait, entry);
    sso_lookup_session(p);
}

static void on_lookup(void *data, redisReply *reply, const char *err)
{
    session_lookup_t *l = data;
    h2o_linklist_unlink(&l->link);
    int failed = err != NULL || reply->type == REDIS_REPLY_ERROR;
    json_t *session = !failed && reply->type == REDIS_REPLY_STRING ? json_loadb(reply->str, reply->len, 0, NULL) : NULL;
    if (session != NULL)
        sso_cache_put(l->id, session, h2o_now(ficus_current_worker->loop));
    while (!h2o_linklist_is_empty(&l->waiters)) {
        sso_pending_t *p = H2O_STRUCT_FROM_MEMBER(sso_pending_t, lookup_link, l->waiters.next);
        h2o_linklist_unlink(&p->lookup_link);
        ficus_req_t *r = p->r;
        if (failed && p->lookup_tries < MAX_LOOKUP_RETRIES) {
            /* a command timeout or a reconnect is not an outage: ask again shortly (bounded) before a 503 */
            ++p->lookup_tries;
            p->wait.cb = on_lookup_retry;
            h2o_timeout_link(r->worker->loop, ficus_worker_timeout(r->worker, LOOKUP_RETRY_MS), &p->wait);
        } else if (failed) {
            r->error = "sso_session_store_unavailable";
            h2o_add_header(&r->h2o->pool, &r->h2o->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
            ficus_req_respond_error(r, 503, "session_store_unavailable");
        } else if (session == NULL) {
            sso_start_login(p->g, r); /* unknown, expired or deleted (logout): a new login */
        } else {
            json_t *copy = json_deep_copy(session); /* each request may update its own (touch, refresh) */
            sso_finish(p, sso_check_session(p, copy));
            json_decref(copy);
        }
    }
    if (session != NULL)
        json_decref(session);
    free(l->id);
    free(l);
}

/* Looks the session up in Redis for p, sharing a lookup already in flight for the same id. */
ficus_status_t sso_lookup_session(sso_pending_t *p)
{
    session_lookup_t *l = find_lookup(p->session_id);
    if (l == NULL) {
        if ((l = calloc(1, sizeof(*l))) == NULL || (l->id = strdup(p->session_id)) == NULL)
            ficus_fatal("no memory");
        h2o_linklist_init_anchor(&l->waiters);
        h2o_linklist_insert(&lookups, &l->link);
        char key[128];
        sso_session_key(key, sizeof(key), "s", l->id);
        const char *argv[] = {"GET", key};
        sso_redis_cmd(p->r, on_lookup, l, 2, argv); /* never cancelled: its answer serves whoever still waits */
    }
    h2o_linklist_insert(&l->waiters, &p->lookup_link);
    return FICUS_PAUSE;
}
