/* sso: refreshing the access token under a lock (Redis store).
 *
 * WHEN: a refresh is due once the access token expires within min(refresh_before, lifetime / 2), where lifetime is the
 * token's expires_in when it was obtained ("at_ttl" in the session). The cap makes it exactly one refresh grant per
 * token lifetime whatever the provider's TTL: a fresh token always has more than half its lifetime left, so it is not
 * due again until half of it has passed. (Without the cap, a 30 s token under the 60 s default was due from birth:
 * every request after a refresh refreshed again.)
 * HOW: one request takes the session's lock (SET NX PX lease, renewed every 2 s while the token call runs), reads the
 * session again under it (a refresh token is never used twice: providers that rotate them revoke the whole grant) and
 * refreshes only if still due; the session's other requests go on with the current token while it is valid, or poll
 * the record (every 100 ms, bounded by token_timeout + 5 s) for the new one. A transient Redis error while polling is
 * retried within the same bound, never taken for a logout. A refresh the provider rejects (invalid_grant) ends the
 * session; a provider that is down keeps the session while its token is valid. */
#include <stdlib.h>
#include <string.h>
#include "ficus/log.h"
#include "ficus/worker.h"
#include "sso.h"

static void on_wait_tick(h2o_timeout_entry_t *entry);
static void on_lock(void *data, redisReply *reply, const char *err);
static void on_locked_session(void *data, redisReply *reply, const char *err);
static void release_lock(ficus_req_t *r, const char *id);
static void on_renew_lock(h2o_timeout_entry_t *entry);
static void on_refresh_token(void *data, const char *errstr, const ficus_fetch_response_t *res);

int sso_refresh_due(const sso_global_t *g, json_t *session, double now)
{
    double at_exp = json_number_value(json_object_get(session, "at_exp")),
           at_ttl = json_number_value(json_object_get(session, "at_ttl"));
    if (at_exp == 0 || !json_is_string(json_object_get(session, "refresh_token")))
        return 0;
    double window_ms = (double)g->refresh_before_ms;
    if (at_ttl > 0 && at_ttl * 1000 / 2 < window_ms)
        window_ms = at_ttl * 1000 / 2;
    return (at_exp - now) * 1000 < window_ms;
}

void sso_take_tokens(json_t *session, json_t *doc, double now)
{
    const char *at = json_string_value(json_object_get(doc, "access_token")),
               *rt = json_string_value(json_object_get(doc, "refresh_token"));
    json_t *expires_in = json_object_get(doc, "expires_in");
    double ttl = json_is_number(expires_in) && json_number_value(expires_in) > 0 ? json_number_value(expires_in) : 300;
    if (at != NULL) {
        json_object_set_new(session, "access_token", json_string(at));
        json_object_set_new(session, "at_exp", json_real(now + ttl));
        json_object_set_new(session, "at_ttl", json_real(ttl));
    }
    if (rt != NULL)
        json_object_set_new(session, "refresh_token", json_string(rt));
}

static void wait_for_refresh(sso_pending_t *p)
{
    p->wait.cb = on_wait_tick;
    h2o_timeout_link(p->r->worker->loop, ficus_worker_timeout(p->r->worker, 100), &p->wait);
}

ficus_status_t sso_start_refresh(sso_pending_t *p)
{
    char key[128], px[32];
    sso_session_key(key, sizeof(key), "l", p->session_id);
    snprintf(px, sizeof(px), "%llu", (unsigned long long)(p->g->token_timeout_ms + 5000));
    const char *argv[] = {"SET", key, "1", "NX", "PX", px};
    p->cmd = sso_redis_cmd(p->r, on_lock, p, 6, argv);
    return FICUS_PAUSE;
}

static void on_session_reget(void *data, redisReply *reply, const char *err)
{
    sso_pending_t *p = data;
    p->cmd = NULL;
    int failed = err != NULL || reply->type == REDIS_REPLY_ERROR;
    json_t *session = !failed && reply->type == REDIS_REPLY_STRING ? json_loadb(reply->str, reply->len, 0, NULL) : NULL;
    if (session == NULL && !failed) {
        sso_start_login(p->g, p->r); /* deleted meanwhile (logout) */
        return;
    }
    double at_exp = json_number_value(json_object_get(session, "at_exp"));
    if (session != NULL && at_exp > sso_unix_now()) {
        sso_cache_put(p->session_id, session, h2o_now(p->r->worker->loop));
        sso_finish(p, sso_session_ok(p, session));
        json_decref(session);
        return;
    }
    if (session != NULL)
        json_decref(session);
    if (++p->redis_tries > (int)(p->g->token_timeout_ms / 100) + 50) {
        p->r->error = "sso_refresh_wait_timeout";
        ficus_req_respond_error(p->r, 503, "session_refresh_unavailable");
        return;
    }
    wait_for_refresh(p);
}

static void on_wait_tick(h2o_timeout_entry_t *entry)
{
    sso_pending_t *p = H2O_STRUCT_FROM_MEMBER(sso_pending_t, wait, entry);
    sso_get_session(p, on_session_reget);
}

static void on_lock(void *data, redisReply *reply, const char *err)
{
    sso_pending_t *p = data;
    p->cmd = NULL;
    double at_exp = json_number_value(json_object_get(p->session, "at_exp"));
    int acquired = err == NULL && reply->type == REDIS_REPLY_STATUS;
    if (!acquired) {
        /* someone else refreshes (or Redis is unhappy): go on while the token is valid, else wait for theirs */
        if (at_exp > sso_unix_now() || err != NULL) {
            sso_finish(p, sso_session_ok(p, p->session));
            return;
        }
        wait_for_refresh(p);
        return;
    }
    /* the lock is ours: read the session again, another request may have refreshed it since we looked (a refresh
     * token must never be used twice: providers that rotate them revoke the whole grant) */
    sso_get_session(p, on_locked_session);
}

static void on_locked_session(void *data, redisReply *reply, const char *err)
{
    sso_pending_t *p = data;
    p->cmd = NULL;
    json_t *session = err == NULL && reply->type == REDIS_REPLY_STRING ? json_loadb(reply->str, reply->len, 0, NULL) : NULL;
    if (session == NULL) {
        release_lock(p->r, p->session_id);
        if (err != NULL) {
            sso_finish(p, sso_session_ok(p, p->session)); /* store trouble: go on with what we have */
        } else {
            sso_start_login(p->g, p->r); /* deleted meanwhile (logout) */
        }
        return;
    }
    json_decref(p->session);
    p->session = session;
    if (!sso_refresh_due(p->g, session, sso_unix_now())) { /* refreshed meanwhile */
        release_lock(p->r, p->session_id);
        sso_cache_put(p->session_id, session, h2o_now(p->r->worker->loop));
        sso_finish(p, sso_session_ok(p, session));
        return;
    }
    char *form;
    size_t len;
    FILE *fp = open_memstream(&form, &len);
    fputs("grant_type=refresh_token&refresh_token=", fp);
    sso_url_encode(fp, json_string_value(json_object_get(session, "refresh_token")));
    fclose(fp);
    int rc = sso_post_token(p, form, on_refresh_token);
    OPENSSL_cleanse(form, len);
    free(form);
    if (rc != 0) {
        release_lock(p->r, p->session_id);
        sso_finish(p, sso_session_ok(p, p->session));
        return;
    }
    p->renew.cb = on_renew_lock;
    h2o_timeout_link(p->r->worker->loop, ficus_worker_timeout(p->r->worker, 2000), &p->renew);
}

static void release_lock(ficus_req_t *r, const char *id)
{
    char key[128];
    sso_session_key(key, sizeof(key), "l", id);
    const char *argv[] = {"DEL", key};
    sso_redis_fire(r->worker, 2, argv);
}

/* While the token call runs, extend the lock's lease (it was taken for token_timeout + 5 s) every 2 s, so a slow
 * but live provider never lets a second request refresh with the same refresh token. */
static void on_renew_lock(h2o_timeout_entry_t *entry)
{
    sso_pending_t *p = H2O_STRUCT_FROM_MEMBER(sso_pending_t, renew, entry);
    if (p->fetch == NULL)
        return;
    char key[128], px[32];
    sso_session_key(key, sizeof(key), "l", p->session_id);
    snprintf(px, sizeof(px), "%llu", (unsigned long long)(p->g->token_timeout_ms + 5000));
    const char *argv[] = {"PEXPIRE", key, px};
    sso_redis_fire(p->r->worker, 3, argv);
    h2o_timeout_link(p->r->worker->loop, ficus_worker_timeout(p->r->worker, 2000), &p->renew);
}

static void on_refresh_token(void *data, const char *errstr, const ficus_fetch_response_t *res)
{
    sso_pending_t *p = data;
    p->fetch = NULL;
    if (h2o_timeout_is_linked(&p->renew))
        h2o_timeout_unlink(&p->renew);
    ficus_req_t *r = p->r;
    json_t *doc = errstr == NULL ? json_loadb(res->body.base, res->body.len, 0, NULL) : NULL;
    const char *at = json_string_value(json_object_get(doc, "access_token"));
    if (errstr != NULL || res->status >= 500 || doc == NULL || (res->status == 200 && at == NULL)) {
        /* provider down: the session keeps working while its token is valid */
        ficus_warn("sso: token refresh failed (%s); session kept", errstr != NULL ? errstr : "bad response");
        json_decref(doc);
        release_lock(r, p->session_id);
        if (json_number_value(json_object_get(p->session, "at_exp")) > sso_unix_now()) {
            sso_finish(p, sso_session_ok(p, p->session));
        } else {
            r->error = "sso_refresh_failed";
            ficus_req_respond_error(r, 502, "identity_provider_unavailable");
        }
        return;
    }
    if (res->status != 200) {
        /* invalid_grant and friends: the provider ended the session */
        ficus_info("sso: refresh rejected by the provider (HTTP %d); session ended", res->status);
        json_decref(doc);
        sso_delete_session(r->worker, p->session_id);
        release_lock(r, p->session_id);
        sso_add_set_cookie(r, p->g->cookie_name, "", 0);
        r->error = "sso_refresh_rejected";
        sso_start_login(p->g, r);
        return;
    }
    sso_take_tokens(p->session, doc, sso_unix_now());
    json_decref(doc);
    sso_store_session(r->worker, p->g, p->session_id, p->session, 0);
    release_lock(r, p->session_id); /* after the SET: the connection runs them in order */
    sso_cache_put(p->session_id, p->session, h2o_now(r->worker->loop));
    sso_finish(p, sso_session_ok(p, p->session));
}
