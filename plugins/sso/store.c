/* sso: the Redis session store and the per-request async state. A session record lives under "ficus:sso:s:{id}" with
 * the idle timeout as its expiry (capped by the absolute ttl); the refresh lock under "ficus:sso:l:{id}", used states
 * under "ficus:sso:used:{state}", back-channel indexes under "ficus:sso:sid:{sid}" / "ficus:sso:sub:{sub}".
 * Every pending operation of a request (a Redis command, a token call, a timer) hangs on one sso_pending_t in the
 * request pool, whose dispose cancels them all when the client goes away. */
#include <stdlib.h>
#include <string.h>
#include "ficus/worker.h"
#include "sso.h"

static void pending_dispose(void *_p)
{
    sso_pending_t *p = _p;
    if (p->cmd != NULL)
        ficus_redis_cancel(p->cmd);
    if (p->fetch != NULL)
        ficus_fetch_cancel(p->fetch);
    if (h2o_timeout_is_linked(&p->wait))
        h2o_timeout_unlink(&p->wait);
    if (h2o_timeout_is_linked(&p->renew))
        h2o_timeout_unlink(&p->renew);
    if (h2o_linklist_is_linked(&p->lookup_link))
        h2o_linklist_unlink(&p->lookup_link);
    free(p->session_id);
    free(p->code);
    if (p->flow != NULL)
        json_decref(p->flow);
    if (p->session != NULL)
        json_decref(p->session);
}

sso_pending_t *sso_pending_new(ficus_req_t *r, const sso_global_t *g, const sso_route_t *rc)
{
    sso_pending_t *p = h2o_mem_alloc_shared(&r->h2o->pool, sizeof(*p), pending_dispose);
    memset(p, 0, sizeof(*p));
    p->r = r;
    p->g = g;
    p->rc = rc;
    return p;
}

void sso_finish(sso_pending_t *p, ficus_status_t status)
{
    if (status == FICUS_CONTINUE)
        ficus_req_resume(p->r);
}

void sso_session_key(char *buf, size_t cap, const char *prefix, const char *id)
{
    snprintf(buf, cap, "ficus:sso:%s:{%s}", prefix, id);
}

ficus_redis_cmd_t *sso_redis_cmd(ficus_req_t *r, ficus_redis_cb cb, void *data, int argc, const char **argv)
{
    size_t lens[8];
    for (int i = 0; i != argc; ++i)
        lens[i] = strlen(argv[i]);
    return ficus_redis_command(r->worker->redis, cb, data, argc, argv, lens);
}

/* GET the session record of p->session_id; cb gets the reply. */
void sso_get_session(sso_pending_t *p, ficus_redis_cb cb)
{
    char key[128];
    sso_session_key(key, sizeof(key), "s", p->session_id);
    const char *argv[] = {"GET", key};
    p->cmd = sso_redis_cmd(p->r, cb, p, 2, argv);
}

static void fire_and_forget_cb(void *data, redisReply *reply, const char *err)
{
}

void sso_redis_fire(ficus_worker_t *w, int argc, const char **argv)
{
    size_t lens[8];
    for (int i = 0; i != argc; ++i)
        lens[i] = strlen(argv[i]);
    if (w->redis != NULL)
        ficus_redis_command(w->redis, fire_and_forget_cb, NULL, argc, argv, lens);
}

void sso_store_session(ficus_worker_t *w, const sso_global_t *g, const char *id, json_t *session, int keep_ttl)
{
    char key[128], px[32];
    sso_session_key(key, sizeof(key), "s", id);
    char *json = json_dumps(session, JSON_COMPACT);
    double expires = json_number_value(json_object_get(session, "expires"));
    double left_ms = (expires - sso_unix_now()) * 1000;
    uint64_t ttl = left_ms < (double)g->idle_ms ? (left_ms > 1000 ? (uint64_t)left_ms : 1000) : g->idle_ms;
    snprintf(px, sizeof(px), "%llu", (unsigned long long)ttl);
    const char *argv[] = {"SET", key, json, "PX", px};
    sso_redis_fire(w, 5, argv);
    free(json);
    (void)keep_ttl;
}

void sso_delete_session(ficus_worker_t *w, const char *id)
{
    char key[128];
    sso_session_key(key, sizeof(key), "s", id);
    const char *argv[] = {"DEL", key};
    sso_redis_fire(w, 2, argv);
    sso_cache_put(id, NULL, 0);
}
