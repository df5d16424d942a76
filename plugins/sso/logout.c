/* sso: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0). logout_path deletes the session (record and
 * cache entry, cookie cleared) and redirects to the provider's end_session_endpoint with id_token_hint and
 * post_logout_redirect_uri, or straight to that URI when the provider has no end_session_endpoint. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/log.h"
#include "ficus/worker.h"
#include "sso.h"

static ficus_status_t finish_logout(sso_pending_t *p, const char *id_token)
{
    ficus_req_t *r = p->r;
    const sso_global_t *g = p->g;
    sso_add_set_cookie(r, g->cookie_name, "", 0);
    const char *end_session = sso_endpoint(g, r, 2);
    char *origin_slash = NULL;
    if (g->post_logout_redirect == NULL) {
        char *origin = sso_origin_of(g, r); /* checked by sso_on_logout: the same generation, the same host */
        if (asprintf(&origin_slash, "%s/", origin != NULL ? origin : "") < 0)
            ficus_fatal("no memory");
        free(origin);
    }
    const char *after = g->post_logout_redirect != NULL ? g->post_logout_redirect : origin_slash;
    r->error = "sso_logout";
    if (end_session == NULL) {
        sso_redirect(r, after);
    } else {
        char *loc;
        size_t len;
        FILE *fp = open_memstream(&loc, &len);
        fprintf(fp, "%s%sclient_id=", end_session, strchr(end_session, '?') != NULL ? "&" : "?");
        sso_url_encode(fp, g->client_id);
        fputs("&post_logout_redirect_uri=", fp);
        sso_url_encode(fp, after);
        if (id_token != NULL) {
            fputs("&id_token_hint=", fp);
            sso_url_encode(fp, id_token);
        }
        fclose(fp);
        sso_redirect(r, loc);
        free(loc);
    }
    free(origin_slash);
    return FICUS_RESPONDED;
}

static void on_logout_get(void *data, redisReply *reply, const char *err)
{
    sso_pending_t *p = data;
    p->cmd = NULL;
    json_t *session = err == NULL && reply->type == REDIS_REPLY_STRING ? json_loadb(reply->str, reply->len, 0, NULL) : NULL;
    sso_delete_session(p->r->worker, p->session_id);
    finish_logout(p, json_string_value(json_object_get(session, "id_token")));
    json_decref(session);
}

ficus_status_t sso_on_logout(const sso_global_t *g, ficus_req_t *r)
{
    if (g->post_logout_redirect == NULL) { /* the default post_logout_redirect_uri needs a host ficus serves */
        char *origin = sso_origin_of(g, r);
        if (origin == NULL)
            return sso_respond_unknown_host(r);
        free(origin);
    }
    h2o_iovec_t cookie = sso_get_cookie(r->h2o, g->cookie_name);
    sso_pending_t *p = sso_pending_new(r, g, NULL);
    if (g->store_redis && cookie.base != NULL && cookie.len != 0 && cookie.len <= 128 && r->worker->redis != NULL) {
        p->session_id = strndup(cookie.base, cookie.len);
        for (char *c = p->session_id; *c != '\0'; ++c)
            if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_'))
                return finish_logout(p, NULL);
        sso_get_session(p, on_logout_get);
        return FICUS_PAUSE;
    }
    return finish_logout(p, NULL);
}
