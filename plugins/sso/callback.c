/* sso: the callback (redirect_uri). Checks state against the sealed flow cookie and, with Redis, marks it used
 * (SET NX: one use, fleet-wide), exchanges the code at the token endpoint (with the PKCE verifier), validates the ID
 * token with the provider's keys (iss, aud = client_id, nonce, exp, alg from the provider's allowlist), creates the
 * session (Redis record + back-channel indexes, or a sealed cookie) and redirects to the original URL, a same-origin
 * path only (never an open redirect). */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/worker.h"
#include "sso.h"

static ficus_status_t callback_fail(ficus_req_t *r, const sso_global_t *g, int status, const char *code, const char *message)
{
    sso_add_set_cookie(r, g->flow_cookie_name, "", 0);
    return sso_respond_html(r, status, code, message);
}

static void on_code_token(void *data, const char *errstr, const ficus_fetch_response_t *res)
{
    sso_pending_t *p = data;
    p->fetch = NULL;
    ficus_req_t *r = p->r;
    const sso_global_t *g = p->g;
    if (errstr != NULL || res->status >= 500) {
        callback_fail(r, g, 502, "sso_token_endpoint_unavailable",
                      "The identity provider did not answer. Please try signing in again.");
        return;
    }
    json_t *doc = json_loadb(res->body.base, res->body.len, 0, NULL);
    const char *id_token = json_string_value(json_object_get(doc, "id_token"));
    if (res->status != 200 || id_token == NULL) {
        json_decref(doc);
        callback_fail(r, g, 401, "sso_code_rejected", "Sign-in failed: the identity provider refused the authorization code.");
        return;
    }
    /* the ID token: issuer, audience = client_id, signature with the provider's keys, exp/iat, then the nonce */
    ficus_provider_slot_t *slot = g->provider->rt->slots + r->worker->index;
    const char *aud[] = {g->client_id};
    ficus_jwt_policy_t policy = g->provider->policy;
    policy.audiences = aud;
    policy.num_audiences = 1;
    policy.max_token_bytes = 16384;
    ficus_jwt_t jwt;
    ficus_jwt_status_t st = ficus_jwt_verify(id_token, strlen(id_token), slot->keys, &policy, sso_unix_now(), &jwt);
    const char *nonce = json_string_value(json_object_get(jwt.claims, "nonce"));
    const char *want_nonce = json_string_value(json_object_get(p->flow, "nonce"));
    const char *sub = json_string_value(json_object_get(jwt.claims, "sub"));
    if (st != FICUS_JWT_OK || nonce == NULL || want_nonce == NULL || strcmp(nonce, want_nonce) != 0 || sub == NULL) {
        char *reason = h2o_mem_alloc_pool(&r->h2o->pool, 64);
        snprintf(reason, 64, "sso_id_token_%s",
                 st != FICUS_JWT_OK ? ficus_jwt_status_name(st)
                 : sub == NULL      ? "no_sub"
                                    : "bad_nonce");
        r->error = reason;
        ficus_jwt_dispose(&jwt);
        json_decref(doc);
        callback_fail(r, g, 401, reason, "Sign-in failed: the identity token could not be verified.");
        return;
    }
    double now = sso_unix_now();
    json_t *claims = json_deep_copy(jwt.claims);
    sub = json_string_value(json_object_get(claims, "sub")); /* jwt.claims is freed below */
    json_object_del(claims, "nonce");
    json_object_del(claims, "at_hash");
    json_object_del(claims, "c_hash");
    json_t *session =
        json_pack("{s:o, s:f, s:f, s:f}", "claims", claims, "created", now, "touched", now, "expires", now + g->ttl_ms / 1000.0);
    ficus_jwt_dispose(&jwt);
    char *cookie_value = NULL;
    if (g->store_redis) {
        json_object_set_new(session, "id_token", json_string(id_token));
        sso_take_tokens(session, doc, now);
        if ((cookie_value = sso_random_token(32)) == NULL) {
            json_decref(session);
            json_decref(doc);
            callback_fail(r, g, 500, "sso_internal_error", "Sign-in failed: the session could not be created.");
            return;
        }
        sso_store_session(r->worker, g, cookie_value, session, 0);
        const char *sid = json_string_value(json_object_get(claims, "sid"));
        char key[160], px[32];
        snprintf(px, sizeof(px), "%llu", (unsigned long long)g->ttl_ms);
        /* indexes for back-channel logout (by sid, and by sub) */
        const char *index_vals[2] = {sid, sub}, *index_names[2] = {"sid", "sub"};
        for (int i = 0; i != 2; ++i) {
            if (index_vals[i] == NULL || strlen(index_vals[i]) > 100)
                continue;
            sso_session_key(key, sizeof(key), index_names[i], index_vals[i]);
            const char *sadd[] = {"SADD", key, cookie_value}, *pexp[] = {"PEXPIRE", key, px};
            sso_redis_fire(r->worker, 3, sadd);
            sso_redis_fire(r->worker, 3, pexp);
        }
    } else {
        char *plain = json_dumps(session, JSON_COMPACT);
        cookie_value = plain != NULL ? ficus_seal(&g->keys, "ficus-sso-session", (const uint8_t *)plain, strlen(plain)) : NULL;
        free(plain);
        if (cookie_value != NULL && strlen(cookie_value) > MAX_COOKIE) {
            free(cookie_value);
            cookie_value = NULL;
        }
    }
    json_decref(session);
    json_decref(doc);
    if (cookie_value == NULL) {
        callback_fail(r, g, 500, "sso_session_too_large", "Sign-in failed: the session could not be stored.");
        return;
    }
    sso_add_set_cookie(r, g->cookie_name, cookie_value, -1);
    sso_add_set_cookie(r, g->flow_cookie_name, "", 0);
    free(cookie_value);
    const char *url = json_string_value(json_object_get(p->flow, "url"));
    /* same origin only: a path, never "//host" or "/\host" */
    if (url == NULL || url[0] != '/' || url[1] == '/' || url[1] == '\\' || strpbrk(url, "\r\n") != NULL)
        url = "/";
    r->error = "sso_login";
    sso_redirect(r, url);
}

/* PAUSE (the token call runs) or RESPONDED */
static ficus_status_t exchange_code(sso_pending_t *p, const char *code)
{
    char *form, *origin = sso_origin_of(p->g, p->r);
    if (origin == NULL)
        return sso_respond_unknown_host(p->r);
    size_t len;
    FILE *fp = open_memstream(&form, &len);
    fputs("grant_type=authorization_code&code=", fp);
    sso_url_encode(fp, code);
    fputs("&redirect_uri=", fp);
    sso_url_encode(fp, origin);
    sso_url_encode(fp, p->g->callback_path);
    fputs("&code_verifier=", fp);
    sso_url_encode(fp, json_string_value(json_object_get(p->flow, "verifier")));
    fclose(fp);
    free(origin);
    int rc = sso_post_token(p, form, on_code_token);
    OPENSSL_cleanse(form, len);
    free(form);
    if (rc != 0)
        return callback_fail(p->r, p->g, 503, "sso_provider_unavailable",
                             "The identity provider cannot be reached yet. Please try again.");
    return FICUS_PAUSE;
}

static void on_state_used(void *data, redisReply *reply, const char *err)
{
    sso_pending_t *p = data;
    p->cmd = NULL;
    if (err != NULL) {
        callback_fail(p->r, p->g, 503, "sso_session_store_unavailable", "Sign-in is unavailable right now. Please try again.");
        return;
    }
    if (reply->type != REDIS_REPLY_STATUS) {
        callback_fail(p->r, p->g, 400, "sso_state_replayed", "This sign-in link was already used. Please sign in again.");
        return;
    }
    sso_finish(p, exchange_code(p, p->code));
}

ficus_status_t sso_on_callback(const sso_global_t *g, ficus_req_t *r)
{
    char *origin = sso_origin_of(g, r); /* the code is only exchanged for a redirect_uri on a host ficus serves */
    if (origin == NULL)
        return sso_respond_unknown_host(r);
    free(origin);
    h2o_req_t *req = r->h2o;
    const char *q = req->query_at != SIZE_MAX ? req->path.base + req->query_at + 1 : "";
    size_t qlen = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0;
    char *code = sso_form_param(q, qlen, "code"), *state = sso_form_param(q, qlen, "state"),
         *error = sso_form_param(q, qlen, "error");
    h2o_iovec_t flow_cookie = sso_get_cookie(req, g->flow_cookie_name);
    json_t *flow = NULL;
    if (flow_cookie.base != NULL && flow_cookie.len <= MAX_COOKIE) {
        size_t len;
        uint8_t *plain = ficus_unseal(&g->keys, "ficus-sso-flow", flow_cookie.base, flow_cookie.len, &len);
        if (plain != NULL)
            flow = json_loadb((char *)plain, len, 0, NULL);
        free(plain);
    }
    const char *want_state = json_string_value(json_object_get(flow, "state"));
    ficus_status_t ret;
    if (error != NULL) {
        ret = callback_fail(r, g, 401, "sso_provider_error", "Sign-in was cancelled or refused by the identity provider.");
    } else if (flow == NULL || state == NULL || want_state == NULL || strlen(state) != strlen(want_state) ||
               CRYPTO_memcmp(state, want_state, strlen(state)) != 0) {
        ret = callback_fail(r, g, 400, "sso_bad_state", "This sign-in link is invalid or expired. Please sign in again.");
    } else if (json_number_value(json_object_get(flow, "exp")) < sso_unix_now()) {
        ret = callback_fail(r, g, 400, "sso_flow_expired", "This sign-in took too long. Please sign in again.");
    } else if (code == NULL || strlen(code) > 2048) {
        ret = callback_fail(r, g, 400, "sso_no_code", "Sign-in failed: no authorization code.");
    } else {
        sso_pending_t *p = sso_pending_new(r, g, NULL);
        p->flow = json_incref(flow);
        ret = FICUS_PAUSE;
        if (g->store_redis && r->worker->redis != NULL) {
            /* one use per state, fleet-wide */
            char key[128], px[32];
            sso_session_key(key, sizeof(key), "used", state);
            snprintf(px, sizeof(px), "%llu", (unsigned long long)g->flow_ttl_ms);
            p->code = sso_xstrdup(code);
            const char *argv[] = {"SET", key, "1", "NX", "PX", px};
            p->cmd = sso_redis_cmd(r, on_state_used, p, 6, argv);
        } else {
            ret = exchange_code(p, code);
        }
    }
    if (flow != NULL)
        json_decref(flow);
    free(code);
    free(state);
    free(error);
    return ret;
}
