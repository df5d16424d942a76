/* sso: back-channel logout (OpenID Connect Back-Channel Logout 1.0). backchannel_logout_path accepts a POSTed
 * logout_token (a JWT from the provider: iss, aud = client_id, typ logout+jwt accepted, the back-channel event, sid or
 * sub, no nonce) and deletes every session indexed under that sid or sub (Redis store; at most 1000 per token). */
#include <stdlib.h>
#include <string.h>
#include "ficus/log.h"
#include "ficus/worker.h"
#include "sso.h"

static void on_backchannel_members(void *data, redisReply *reply, const char *err)
{
    sso_pending_t *p = data;
    p->cmd = NULL;
    ficus_req_t *r = p->r;
    if (err != NULL || reply->type != REDIS_REPLY_ARRAY) {
        r->error = "sso_backchannel_store_unavailable";
        ficus_req_respond_error(r, 503, "session_store_unavailable");
        return;
    }
    size_t n = reply->elements < 1000 ? reply->elements : 1000;
    for (size_t i = 0; i != n; ++i)
        if (reply->element[i]->type == REDIS_REPLY_STRING && reply->element[i]->len < 64) {
            char id[64];
            snprintf(id, sizeof(id), "%.*s", (int)reply->element[i]->len, reply->element[i]->str);
            sso_delete_session(r->worker, id);
        }
    const char *argv[] = {"DEL", p->session_id};
    sso_redis_fire(r->worker, 2, argv);
    ficus_info("sso: back-channel logout ended %zu sessions", n);
    h2o_add_header(&r->h2o->pool, &r->h2o->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    r->error = "sso_backchannel_logout";
    ficus_req_respond(r, 200, "application/json", h2o_iovec_init(H2O_STRLIT("{}")));
}

ficus_status_t sso_on_backchannel(const sso_global_t *g, ficus_req_t *r)
{
    h2o_req_t *req = r->h2o;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        ficus_req_respond_error(r, 405, "method_not_allowed");
        return FICUS_RESPONDED;
    }
    char *token = req->entity.base != NULL ? sso_form_param(req->entity.base, req->entity.len, "logout_token") : NULL;
    ficus_provider_slot_t *slot = g->provider->rt->slots + r->worker->index;
    const char *aud[] = {g->client_id};
    ficus_jwt_policy_t policy = g->provider->policy;
    policy.audiences = aud;
    policy.num_audiences = 1;
    policy.extra_typ = "logout+jwt";
    ficus_jwt_t jwt = {0};
    ficus_jwt_status_t st =
        token != NULL ? ficus_jwt_verify(token, strlen(token), slot->keys, &policy, sso_unix_now(), &jwt) : FICUS_JWT_ERR_MALFORMED;
    free(token);
    json_t *events = json_object_get(jwt.claims, "events");
    const char *sid = json_string_value(json_object_get(jwt.claims, "sid")),
               *sub = json_string_value(json_object_get(jwt.claims, "sub"));
    int valid = st == FICUS_JWT_OK &&
                json_is_object(json_object_get(events, "http://schemas.openid.net/event/backchannel-logout")) &&
                json_object_get(jwt.claims, "nonce") == NULL && (sid != NULL || sub != NULL) && g->store_redis &&
                r->worker->redis != NULL && (sid == NULL || strlen(sid) <= 100) && (sub == NULL || strlen(sub) <= 100);
    if (!valid) {
        ficus_jwt_dispose(&jwt);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
        r->error = "sso_bad_logout_token";
        ficus_req_respond_error(r, 400, "invalid_request");
        return FICUS_RESPONDED;
    }
    sso_pending_t *p = sso_pending_new(r, g, NULL);
    char key[160];
    sso_session_key(key, sizeof(key), sid != NULL ? "sid" : "sub", sid != NULL ? sid : sub);
    p->session_id = sso_xstrdup(key);
    ficus_jwt_dispose(&jwt);
    const char *argv[] = {"SMEMBERS", key};
    p->cmd = sso_redis_cmd(r, on_backchannel_members, p, 2, argv);
    return FICUS_PAUSE;
}
