/* sso: the login redirect. An unauthenticated browser navigation gets a 302 to the provider's authorization endpoint
 * with state, nonce and PKCE S256 (RFC 7636); the three live in one sealed, short-lived flow cookie that binds the
 * flow to this browser. Anything that is not a navigation (API calls, XHR, fetch) gets 401 login_required instead. */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/log.h"
#include "sso.h"

static char *pkce_challenge(const char *verifier)
{
    uint8_t md[32];
    unsigned len = 32;
    EVP_Digest(verifier, strlen(verifier), md, &len, EVP_sha256(), NULL);
    char *out = malloc(48);
    if (out == NULL)
        ficus_fatal("no memory");
    out[ficus_base64url_encode(md, 32, out)] = '\0';
    return out;
}

static int is_navigation(h2o_req_t *req)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        return 0;
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
    if (i == -1 ||
        h2o_strstr(req->headers.entries[i].value.base, req->headers.entries[i].value.len, H2O_STRLIT("text/html")) == SIZE_MAX)
        return 0;
    if (h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-requested-with"), -1) != -1)
        return 0;
    ssize_t m = h2o_find_header_by_str(&req->headers, H2O_STRLIT("sec-fetch-mode"), -1);
    if (m != -1 && !h2o_memis(req->headers.entries[m].value.base, req->headers.entries[m].value.len, H2O_STRLIT("navigate")))
        return 0;
    return 1;
}

ficus_status_t sso_start_login(const sso_global_t *g, ficus_req_t *r)
{
    h2o_req_t *req = r->h2o;
    if (!is_navigation(req)) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
        if (r->error == NULL)
            r->error = "sso_login_required";
        ficus_req_respond_error(r, 401, "login_required");
        return FICUS_RESPONDED;
    }
    const char *authz = sso_endpoint(g, r, 0);
    if (authz == NULL)
        return sso_respond_html(r, 503, "sso_provider_unavailable",
                                "The identity provider cannot be reached yet. Please try again shortly.");
    char *origin = sso_origin_of(g, r), *loc;
    if (origin == NULL)
        return sso_respond_unknown_host(r);
    char *state = sso_random_token(24), *nonce = sso_random_token(24), *verifier = sso_random_token(48);
    if (state == NULL || nonce == NULL || verifier == NULL) {
        free(state);
        free(nonce);
        free(verifier);
        free(origin);
        return sso_respond_html(r, 500, "sso_internal_error", "Sign-in could not start.");
    }
    char *challenge = pkce_challenge(verifier);
    /* the original URL: this request's path and query (same origin by construction) */
    json_t *flow = json_pack("{s:s, s:s, s:s, s:s%, s:f}", "state", state, "nonce", nonce, "verifier", verifier, "url",
                             req->path.base, req->path.len, "exp", sso_unix_now() + g->flow_ttl_ms / 1000.0);
    char *plain = json_dumps(flow, JSON_COMPACT);
    char *sealed = plain != NULL ? ficus_seal(&g->keys, "ficus-sso-flow", (const uint8_t *)plain, strlen(plain)) : NULL;
    json_decref(flow);
    free(plain);
    size_t loclen;
    FILE *fp = open_memstream(&loc, &loclen);
    fprintf(fp, "%s%sresponse_type=code&client_id=", authz, strchr(authz, '?') != NULL ? "&" : "?");
    sso_url_encode(fp, g->client_id);
    fputs("&redirect_uri=", fp);
    sso_url_encode(fp, origin);
    sso_url_encode(fp, g->callback_path);
    fputs("&scope=", fp);
    sso_url_encode(fp, g->scopes);
    fprintf(fp, "&state=%s&nonce=%s&code_challenge=%s&code_challenge_method=S256", state, nonce, challenge);
    fclose(fp);
    if (sealed != NULL) {
        sso_add_set_cookie(r, g->flow_cookie_name, sealed, (long)(g->flow_ttl_ms / 1000));
        if (r->error == NULL)
            r->error = "sso_login_redirect";
        sso_redirect(r, loc);
    } else {
        sso_respond_html(r, 500, "sso_internal_error", "Sign-in could not start.");
    }
    free(loc);
    free(origin);
    free(sealed);
    free(state);
    free(nonce);
    free(verifier);
    free(challenge);
    return FICUS_RESPONDED;
}
