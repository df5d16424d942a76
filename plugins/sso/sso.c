/* sso: browser single sign-on with OpenID Connect (authorization code + PKCE) and server-side sessions.
 *
 *   sso:                                   # top level: the relying party
 *     provider: corp                       # a `providers:` entry (discovery: true gives the endpoints)
 *     client_id: ficus
 *     client_secret_file: conf/oidc-secret
 *     session: { store: redis, ttl: 8h, idle_timeout: 1h, keys_file: conf/sso-keys }
 *   routes:
 *     - sso: { forward: { email: x-user-email }, groups: [staff] }     # or `sso: true`
 *
 * FLOW: an unauthenticated browser navigation (GET/HEAD accepting text/html) to an sso route gets a 302 to the
 * provider's authorization endpoint with state, nonce and PKCE S256; those live in one sealed, short-lived flow cookie
 * (AES-256-GCM, seal.h; a new login replaces it, so they never pile up), which also binds the flow to the browser
 * (no login CSRF). Other requests get 401 {"error":"login_required"}. The callback (on every host, before routing)
 * checks state against the cookie and, with Redis, marks it used (SET NX: one use), exchanges the code at the token
 * endpoint asynchronously over verified TLS (client_secret_basic or _post), validates the ID token with the provider's
 * keys (iss, aud = client_id, nonce, exp, alg from the provider's allowlist), creates the session and redirects to
 * the original URL (a same-origin path only: never an open redirect).
 * SESSIONS: store redis (default with `redis:`): an opaque random id in a `__Host-` cookie (Secure; HttpOnly;
 * SameSite=Lax; Path=/), the record in Redis under "ficus:sso:s:{id}" whose expiry is the idle timeout (touched at
 * most every idle/10) within the absolute ttl; tokens never leave Redis. store cookie: the claims in a sealed cookie
 * (single instance without Redis; no refresh, no back-channel logout, no access token). A per-worker cache (cache_ttl,
 * default 5s) spares Redis a round trip per request; logout on this worker drops the entry at once, elsewhere it ends
 * within cache_ttl.
 * REFRESH: when the access token expires within refresh_before, one request refreshes it with the refresh token under
 * a Redis lock (SET NX PX lease, renewed every 2 s while the token call runs; the session is read again under the lock
 * so a refresh token is never used twice); the others go on with the still-valid token, or wait for the new one. A
 * refresh the provider rejects (invalid_grant) ends the session.
 * LOGOUT: logout_path deletes the session and redirects to the end_session_endpoint with id_token_hint and
 * post_logout_redirect_uri; backchannel_logout_path accepts a logout_token (JWT: iss, aud, events, sid or sub, no nonce)
 * and deletes the matching sessions (Redis store).
 * UPSTREAM: identity headers from the ID token claims (`forward`: names and values as in ficus/claim_forward.h),
 * optionally `Authorization: Bearer <access token>`; ficus's own cookies are removed from the Cookie header; client
 * copies of identity headers are stripped on every route (ficus_config_add_identity_header). Nothing secret is logged.
 * FILES: this one owns the plugin table and the pre-route dispatch; config.c (both YAML sections), login.c (redirect to
 * the provider, PKCE), callback.c (state, code exchange, ID token, new session), access.c (the route phase), store.c
 * (Redis records, per-request async state), cache.c (per-worker cache, coalesced lookups), refresh.c (refresh under a
 * lock), token.c (token endpoint client), logout.c, backchannel.c, origin.c (ficus's origin for the URIs it sends),
 * http.c (shared HTTP pieces), seal.c (sealed cookies); sso.h holds the shared types. */
#include "sso.h"

static ficus_status_t on_pre_route(void *_g, ficus_req_t *r)
{
    const sso_global_t *g = _g;
    h2o_req_t *req = r->h2o;
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    if (h2o_memis(req->path.base, plen, g->callback_path, strlen(g->callback_path)))
        return sso_on_callback(g, r);
    if (h2o_memis(req->path.base, plen, g->logout_path, strlen(g->logout_path)))
        return sso_on_logout(g, r);
    if (h2o_memis(req->path.base, plen, g->backchannel_path, strlen(g->backchannel_path)))
        return sso_on_backchannel(g, r);
    return FICUS_CONTINUE;
}

const ficus_plugin_t ficus_plugin_sso = {
    .name = "sso",
    .on_config = sso_on_config,
    .dispose = sso_dispose,
    .on_request = sso_on_request,
    .global_key = "sso",
    .on_global_config = sso_on_global_config,
    .global_dispose = sso_global_dispose,
    .on_pre_route = on_pre_route,
};
