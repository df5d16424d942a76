/* sso: the route phase. Finds the session (sealed cookie, or an id looked up in the per-worker cache / Redis), checks
 * its expiry, starts a refresh when due, authorizes it against the route's `groups`, and hands the identity on:
 * headers from the ID token claims (`forward`), optionally the access token as Authorization, ficus's cookies
 * removed from the Cookie header, and the claims for later plugins. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/worker.h"
#include "ficus/cookie.h"
#include "sso.h"

/* Removes ficus's cookies (session and flow) from the Cookie headers sent upstream. */
static void strip_own_cookies(h2o_req_t *req, const sso_global_t *g)
{
    for (ssize_t j = -1; (j = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, j)) != -1;) {
        h2o_iovec_t v = req->headers.entries[j].value;
        char *out = h2o_mem_alloc_pool(&req->pool, v.len + 1);
        size_t o = 0;
        h2o_iovec_t pair;
        for (const char *p = v.base, *end = v.base + v.len; ficus_cookie_next_pair(&p, end, &pair);) {
            if (ficus_cookie_pair_is(pair, g->cookie_name, strlen(g->cookie_name)) ||
                ficus_cookie_pair_is(pair, g->flow_cookie_name, strlen(g->flow_cookie_name)))
                continue;
            if (o != 0) {
                out[o++] = ';';
                out[o++] = ' ';
            }
            memcpy(out + o, pair.base, pair.len);
            o += pair.len;
        }
        if (o == 0) {
            h2o_delete_header(&req->headers, j);
            --j;
        } else {
            req->headers.entries[j].value = h2o_iovec_init(out, o);
        }
    }
}

static int authorized(const sso_route_t *rc, json_t *claims)
{
    if (rc->num_groups == 0)
        return 1;
    json_t *groups = json_object_get(claims, "groups");
    for (size_t i = 0; i != rc->num_groups; ++i) {
        size_t k;
        json_t *e;
        if (json_is_string(groups) && strcmp(json_string_value(groups), rc->groups[i]) == 0)
            return 1;
        json_array_foreach(groups, k, e) if (json_is_string(e) && strcmp(json_string_value(e), rc->groups[i]) == 0) return 1;
    }
    return 0;
}

static void forward_identity(const sso_route_t *rc, ficus_req_t *r, json_t *session)
{
    h2o_req_t *req = r->h2o;
    json_t *claims = json_object_get(session, "claims");
    ficus_claim_forwards_apply(&rc->forward, r, claims);
    /* the upstream never sees the browser's Authorization: only ficus's, when configured */
    ssize_t at;
    while ((at = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1)) != -1)
        h2o_delete_header(&req->headers, at);
    const char *token = json_string_value(json_object_get(session, "access_token"));
    if (rc->forward_access_token && token != NULL) {
        size_t len = strlen(token) + 7;
        char *v = h2o_mem_alloc_pool(&req->pool, len + 1);
        snprintf(v, len + 1, "Bearer %s", token);
        h2o_add_header(&req->pool, &req->headers, H2O_TOKEN_AUTHORIZATION, NULL, v, len);
    }
    strip_own_cookies(req, rc->g);
    if (r->claims == NULL && claims != NULL)
        r->claims = json_incref(claims);
}

/* The session is valid for this request: authorize (RESPONDED with 403 when outside the route's groups) and hand the
 * identity on (CONTINUE). */
ficus_status_t sso_session_ok(sso_pending_t *p, json_t *session)
{
    ficus_req_t *r = p->r;
    if (!authorized(p->rc, json_object_get(session, "claims"))) {
        r->error = "sso_forbidden";
        ficus_req_respond_error(r, 403, "forbidden");
        return FICUS_RESPONDED;
    }
    forward_identity(p->rc, r, session);
    return FICUS_CONTINUE;
}

ficus_status_t sso_check_session(sso_pending_t *p, json_t *session)
{
    const sso_global_t *g = p->g;
    double now = sso_unix_now();
    double expires = json_number_value(json_object_get(session, "expires"));
    if (expires != 0 && now >= expires)
        return sso_start_login(g, p->r);
    if (g->store_redis && sso_refresh_due(g, session, now)) {
        p->session = json_incref(session);
        return sso_start_refresh(p);
    }
    /* touch for the idle timeout, at most every idle/10 */
    double touched = json_number_value(json_object_get(session, "touched"));
    if (g->store_redis && (now - touched) * 1000 > g->idle_ms / 10) {
        json_object_set_new(session, "touched", json_real(now));
        sso_store_session(p->r->worker, g, p->session_id, session, 1);
    }
    return sso_session_ok(p, session);
}

ficus_status_t sso_on_request(void *_rc, ficus_req_t *r)
{
    sso_route_t *rc = _rc;
    const sso_global_t *g = rc->g;
    h2o_iovec_t cookie = sso_get_cookie(r->h2o, g->cookie_name);
    if (cookie.base == NULL || cookie.len == 0 || cookie.len > MAX_COOKIE)
        return sso_start_login(g, r);
    if (!g->store_redis) {
        size_t len;
        uint8_t *plain = ficus_unseal(&g->keys, "ficus-sso-session", cookie.base, cookie.len, &len);
        json_t *session = plain != NULL ? json_loadb((char *)plain, len, 0, NULL) : NULL;
        free(plain);
        if (session == NULL)
            return sso_start_login(g, r); /* tampered, or sealed with a retired key */
        sso_pending_t p = {.r = r, .g = g, .rc = rc};
        ficus_status_t st = sso_check_session(&p, session); /* no refresh with this store: never PAUSE */
        json_decref(session);
        return st;
    }
    for (size_t i = 0; i != cookie.len; ++i)
        if (!(isalnum((unsigned char)cookie.base[i]) || cookie.base[i] == '-' || cookie.base[i] == '_'))
            return sso_start_login(g, r);
    sso_pending_t *p = sso_pending_new(r, g, rc);
    p->session_id = strndup(cookie.base, cookie.len);
    json_t *cached = sso_cache_get(p->session_id, h2o_now(r->worker->loop), g->cache_ttl_ms);
    if (cached != NULL) {
        json_incref(cached);
        ficus_status_t st = sso_check_session(p, cached);
        json_decref(cached);
        return st;
    }
    if (r->worker->redis == NULL) {
        r->error = "sso_session_store_unavailable";
        ficus_req_respond_error(r, 503, "session_store_unavailable");
        return FICUS_RESPONDED;
    }
    return sso_lookup_session(p);
}
