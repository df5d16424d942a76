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
 * copies of identity headers are stripped on every route (ficus_config_add_identity_header). Nothing secret is logged. */
#include <ctype.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include "ficus/claim_forward.h"
#include "ficus/config.h"
#include "ficus/cookie.h"
#include "ficus/fetch.h"
#include "ficus/log.h"
#include "ficus/plugin.h"
#include "ficus/provider.h"
#include "ficus/redis.h"
#include "ficus/worker.h"
#include "seal.h"

extern const ficus_plugin_t ficus_plugin_sso;

#define FLOW_COOKIE_SUFFIX "-flow"
#define MAX_COOKIE 4096
#define SESSION_CACHE_SLOTS 4096
#define MAX_TOKEN_RESPONSE (64 * 1024)

typedef struct st_sso_global_t {
    ficus_provider_conf_t *provider;
    char *client_id;
    char *client_secret;
    int auth_post;
    char *scopes; /* space separated, starts with "openid" */
    char *callback_path, *logout_path, *backchannel_path, *post_logout_redirect, *external_url;
    char *authorization_endpoint, *token_endpoint, *end_session_endpoint; /* overrides of discovery */
    int store_redis;
    uint64_t ttl_ms, idle_ms, cache_ttl_ms, refresh_before_ms, token_timeout_ms, flow_ttl_ms;
    char *cookie_name;
    char *flow_cookie_name;
    ficus_seal_keys_t keys;
    SSL_CTX *ssl_ctx;
} sso_global_t;

typedef struct st_sso_route_t {
    sso_global_t *g;
    ficus_claim_forwards_t forward;
    int forward_access_token;
    char **groups;
    size_t num_groups;
} sso_route_t;

/* ---- small helpers ---- */

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        ficus_fatal("no memory");
    return p;
}

static double unix_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec / 1e6;
}

static char *random_token(size_t bytes)
{
    uint8_t raw[64];
    char *out = malloc(bytes * 4 / 3 + 4);
    if (out == NULL || bytes > sizeof(raw) || RAND_bytes(raw, (int)bytes) != 1)
        ficus_fatal("no randomness");
    out[ficus_base64url_encode(raw, bytes, out)] = '\0';
    return out;
}

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

/* percent-encodes everything but unreserved characters (RFC 3986 2.3) */
static void url_encode(FILE *fp, const char *s)
{
    for (; *s != '\0'; ++s) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
            fputc(c, fp);
        else
            fprintf(fp, "%%%02X", c);
    }
}

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
}

/* Finds param `name` in an x-www-form-urlencoded string and returns its decoded value (malloc'd) or NULL. */
static char *form_param(const char *s, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = s, *end = s + len;
    while (p < end) {
        const char *amp = memchr(p, '&', end - p), *stop = amp != NULL ? amp : end;
        if ((size_t)(stop - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
            const char *v = p + nlen + 1;
            char *out = malloc(stop - v + 1);
            size_t o = 0;
            if (out == NULL)
                return NULL;
            for (; v < stop; ++v) {
                if (*v == '+') {
                    out[o++] = ' ';
                } else if (*v == '%' && v + 2 < stop && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                    out[o++] = (char)(hexval(v[1]) << 4 | hexval(v[2]));
                    v += 2;
                } else {
                    out[o++] = *v;
                }
            }
            out[o] = '\0';
            return out;
        }
        p = stop + 1;
    }
    return NULL;
}

static h2o_iovec_t get_cookie(h2o_req_t *req, const char *name)
{
    return ficus_cookie_get(req, name, strlen(name));
}

/* Removes ficus's cookies (session and flow) from the Cookie headers sent upstream. */
static void strip_own_cookies(h2o_req_t *req, const sso_global_t *g)
{
    for (ssize_t j = -1; (j = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, j)) != -1;) {
        h2o_iovec_t v = req->headers.entries[j].value;
        char *out = h2o_mem_alloc_pool(&req->pool, v.len + 1);
        size_t o = 0;
        const char *p = v.base, *end = v.base + v.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                ++p;
            const char *pair = p;
            while (p < end && *p != ';')
                ++p;
            size_t plen = p - pair;
            int own = (plen > strlen(g->cookie_name) && memcmp(pair, g->cookie_name, strlen(g->cookie_name)) == 0 &&
                       pair[strlen(g->cookie_name)] == '=') ||
                      (plen > strlen(g->flow_cookie_name) && memcmp(pair, g->flow_cookie_name, strlen(g->flow_cookie_name)) == 0 &&
                       pair[strlen(g->flow_cookie_name)] == '=');
            if (plen == 0 || own)
                continue;
            if (o != 0) {
                out[o++] = ';';
                out[o++] = ' ';
            }
            memcpy(out + o, pair, plen);
            o += plen;
        }
        if (o == 0) {
            h2o_delete_header(&req->headers, j);
            --j;
        } else {
            req->headers.entries[j].value = h2o_iovec_init(out, o);
        }
    }
}

static void add_set_cookie(ficus_req_t *r, const char *name, const char *value, long max_age)
{
    h2o_req_t *req = r->h2o;
    char *buf;
    size_t len;
    FILE *fp = open_memstream(&buf, &len);
    fprintf(fp, "%s=%s; Path=/; Secure; HttpOnly; SameSite=Lax", name, value);
    if (max_age >= 0)
        fprintf(fp, "; Max-Age=%ld", max_age);
    fclose(fp);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, h2o_strdup(&req->pool, buf, len).base, len);
    free(buf);
}

static void respond_html(ficus_req_t *r, int status, const char *code, const char *message)
{
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign-in</title></head>"
                     "<body><h1>Sign-in</h1><p>%s</p><p><a href=\"/\">Try again</a></p></body></html>\n",
                     message);
    h2o_add_header(&r->h2o->pool, &r->h2o->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    if (r->error == NULL)
        r->error = code;
    ficus_req_respond(r, status, "text/html; charset=utf-8", h2o_iovec_init(body, n));
}

static void redirect(ficus_req_t *r, const char *location)
{
    h2o_req_t *req = r->h2o;
    size_t len = strlen(location);
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, h2o_strdup(&req->pool, location, len).base, len, 1);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    ficus_req_respond(r, 302, NULL, h2o_iovec_init("", 0));
}

static const char *endpoint(const sso_global_t *g, ficus_req_t *r, int which)
{
    const char *override = which == 0 ? g->authorization_endpoint : which == 1 ? g->token_endpoint : g->end_session_endpoint;
    if (override != NULL)
        return override;
    ficus_provider_meta_t *meta = g->provider->rt->slots[r->worker->index].meta;
    if (meta == NULL)
        return NULL;
    return which == 0 ? meta->authorization_endpoint : which == 1 ? meta->token_endpoint : meta->end_session_endpoint;
}

/* "https://host[:port]" of this request, or external_url */
static char *origin_of(const sso_global_t *g, ficus_req_t *r)
{
    if (g->external_url != NULL)
        return xstrdup(g->external_url);
    char *out;
    if (asprintf(&out, "https://%.*s", (int)r->h2o->authority.len, r->h2o->authority.base) < 0)
        ficus_fatal("no memory");
    return out;
}

/* ---- configuration ---- */

static char *read_secret(ficus_conf_ctx_t *cc, const ficus_node_t *node)
{
    FILE *fp = fopen(node->data.scalar.value, "r");
    if (fp == NULL) {
        ficus_conf_error(cc, node, "cannot open '%s'", node->data.scalar.value);
        return NULL;
    }
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    while (n != 0 && isspace((unsigned char)buf[n - 1]))
        --n;
    buf[n] = '\0';
    if (n == 0) {
        ficus_conf_error(cc, node, "'%s' is empty", node->data.scalar.value);
        return NULL;
    }
    char *s = xstrdup(buf);
    OPENSSL_cleanse(buf, sizeof(buf));
    return s;
}

static void global_dispose(void *_g)
{
    sso_global_t *g = _g;
    free(g->client_id);
    if (g->client_secret != NULL) {
        OPENSSL_cleanse(g->client_secret, strlen(g->client_secret));
        free(g->client_secret);
    }
    free(g->scopes);
    free(g->callback_path);
    free(g->logout_path);
    free(g->backchannel_path);
    free(g->post_logout_redirect);
    free(g->external_url);
    free(g->authorization_endpoint);
    free(g->token_endpoint);
    free(g->end_session_endpoint);
    free(g->cookie_name);
    free(g->flow_cookie_name);
    if (g->ssl_ctx != NULL)
        SSL_CTX_free(g->ssl_ctx);
    OPENSSL_cleanse(&g->keys, sizeof(g->keys));
    free(g);
}

static int check_path(ficus_conf_ctx_t *cc, const ficus_node_t *node, char **out, const char *dflt)
{
    const char *v = node != NULL ? node->data.scalar.value : dflt;
    if (v[0] != '/' || strchr(v, '?') != NULL || strchr(v, ' ') != NULL)
        return ficus_conf_error(cc, node, "path must start with '/' and have no query or spaces (got '%s')", v);
    *out = xstrdup(v);
    return 0;
}

static int on_global_config(ficus_conf_ctx_t *cc, const ficus_node_t *node, void **out)
{
    if (node == NULL)
        return 0;
    ficus_node_t *provider, *client_id, *client_secret_file, *client_auth, *scopes, *callback_path, *logout_path, *backchannel,
        *post_logout, *external_url, *session, *refresh_before, *token_timeout, *authz_ep, *token_ep, *end_ep;
    if (ficus_conf_mapping(cc, node, "provider:s,client_id:s,client_secret_file:s,session:m",
                           "client_auth:s,scopes:a,callback_path:s,logout_path:s,backchannel_logout_path:s,post_logout_redirect:s,"
                           "external_url:s,refresh_before:s,token_timeout:s,authorization_endpoint:s,token_endpoint:s,"
                           "end_session_endpoint:s",
                           &provider, &client_id, &client_secret_file, &session, &client_auth, &scopes, &callback_path,
                           &logout_path, &backchannel, &post_logout, &external_url, &refresh_before, &token_timeout, &authz_ep,
                           &token_ep, &end_ep) != 0)
        return -1;
    sso_global_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        ficus_fatal("no memory");
    *out = g;
    if ((g->provider = ficus_config_provider(cc->config, provider->data.scalar.value)) == NULL)
        return ficus_conf_error(cc, provider, "unknown provider '%s' (define it under `providers:`)", provider->data.scalar.value);
    if (g->provider->source != FICUS_KEYS_FROM_DISCOVERY && (authz_ep == NULL || token_ep == NULL))
        return ficus_conf_error(cc, provider,
                                "sso needs provider '%s' with `discovery: true`, or authorization_endpoint and "
                                "token_endpoint here",
                                g->provider->name);
    g->client_id = xstrdup(client_id->data.scalar.value);
    if ((g->client_secret = read_secret(cc, client_secret_file)) == NULL)
        return -1;
    if (client_auth != NULL) {
        static const char *const methods[] = {"client_secret_basic", "client_secret_post", NULL};
        if (ficus_conf_enum(cc, client_auth, methods, &g->auth_post) != 0)
            return -1;
    }
    {
        char *buf;
        size_t len;
        FILE *fp = open_memstream(&buf, &len);
        fputs("openid", fp);
        for (size_t i = 0; scopes != NULL && i != scopes->data.sequence.size; ++i) {
            ficus_node_t *s = scopes->data.sequence.elements[i];
            if (ficus_conf_expect(cc, s, FICUS_NODE_SCALAR) != 0) {
                fclose(fp);
                free(buf);
                return -1;
            }
            for (const char *c = s->data.scalar.value; *c != '\0'; ++c)
                if (!isgraph((unsigned char)*c) || *c == '"' || *c == '\\') {
                    fclose(fp);
                    free(buf);
                    return ficus_conf_error(cc, s, "invalid scope '%s'", s->data.scalar.value);
                }
            if (strcmp(s->data.scalar.value, "openid") != 0)
                fprintf(fp, " %s", s->data.scalar.value);
        }
        if (scopes == NULL)
            fputs(" profile email", fp);
        fclose(fp);
        g->scopes = buf;
    }
    if (check_path(cc, callback_path, &g->callback_path, "/_ficus/callback") != 0 ||
        check_path(cc, logout_path, &g->logout_path, "/_ficus/logout") != 0 ||
        check_path(cc, backchannel, &g->backchannel_path, "/_ficus/backchannel-logout") != 0)
        return -1;
    g->post_logout_redirect = post_logout != NULL ? xstrdup(post_logout->data.scalar.value) : NULL;
    if (external_url != NULL) {
        const char *u = external_url->data.scalar.value;
        size_t n = strlen(u);
        if (strncmp(u, "https://", 8) != 0 || n < 9 || u[n - 1] == '/' || strchr(u + 8, '/') != NULL)
            return ficus_conf_error(cc, external_url, "external_url is https://host[:port] without a path");
        g->external_url = xstrdup(u);
    }
    g->authorization_endpoint = authz_ep != NULL ? xstrdup(authz_ep->data.scalar.value) : NULL;
    g->token_endpoint = token_ep != NULL ? xstrdup(token_ep->data.scalar.value) : NULL;
    g->end_session_endpoint = end_ep != NULL ? xstrdup(end_ep->data.scalar.value) : NULL;
    g->refresh_before_ms = 60000;
    g->token_timeout_ms = 5000;
    g->flow_ttl_ms = 600000;
    if (refresh_before != NULL && ficus_conf_duration(cc, refresh_before, 0, 3600000, &g->refresh_before_ms) != 0)
        return -1;
    if (token_timeout != NULL && ficus_conf_duration(cc, token_timeout, 100, 60000, &g->token_timeout_ms) != 0)
        return -1;

    ficus_node_t *store, *ttl, *idle, *cookie_name, *keys_file, *cache_ttl;
    if (ficus_conf_mapping(cc, session, "keys_file:s", "store:s,ttl:s,idle_timeout:s,cookie_name:s,cache_ttl:s", &keys_file, &store,
                           &ttl, &idle, &cookie_name, &cache_ttl) != 0)
        return -1;
    if (ficus_seal_keys_load(cc, keys_file, &g->keys) != 0)
        return -1;
    g->store_redis = cc->config->redis != NULL;
    if (store != NULL) {
        static const char *const stores[] = {"cookie", "redis", NULL};
        if (ficus_conf_enum(cc, store, stores, &g->store_redis) != 0)
            return -1;
        if (g->store_redis && cc->config->redis == NULL)
            return ficus_conf_error(cc, store, "session store redis needs a `redis:` section");
    }
    g->ttl_ms = 8 * 3600000;
    g->idle_ms = 3600000;
    g->cache_ttl_ms = 5000;
    if (ttl != NULL && ficus_conf_duration(cc, ttl, 60000, 30 * 86400000ULL, &g->ttl_ms) != 0)
        return -1;
    if (idle != NULL && ficus_conf_duration(cc, idle, 10000, 30 * 86400000ULL, &g->idle_ms) != 0)
        return -1;
    if (cache_ttl != NULL && ficus_conf_duration(cc, cache_ttl, 0, 60000, &g->cache_ttl_ms) != 0)
        return -1;
    const char *cn = cookie_name != NULL ? cookie_name->data.scalar.value : "__Host-ficus";
    for (const char *c = cn; *c != '\0'; ++c)
        if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_'))
            return ficus_conf_error(cc, cookie_name, "invalid cookie name '%s'", cn);
    g->cookie_name = xstrdup(cn);
    if (asprintf(&g->flow_cookie_name, "%s%s", cn, FLOW_COOKIE_SUFFIX) < 0)
        ficus_fatal("no memory");
    char err[256];
    if ((g->ssl_ctx = ficus_fetch_new_ssl_ctx(g->provider->ca_file, err, sizeof(err))) == NULL)
        return ficus_conf_error(cc, provider, "%s", err);
    return 0;
}

static void dispose(void *_rc)
{
    sso_route_t *rc = _rc;
    ficus_claim_forwards_dispose(&rc->forward);
    for (size_t i = 0; i != rc->num_groups; ++i)
        free(rc->groups[i]);
    free(rc->groups);
    free(rc);
}

static int on_config(ficus_conf_ctx_t *cc, const ficus_node_t *node, void **out)
{
    sso_route_t *rc = calloc(1, sizeof(*rc));
    if (rc == NULL)
        ficus_fatal("no memory");
    *out = rc;
    if ((rc->g = ficus_config_plugin_global(cc->config, &ficus_plugin_sso)) == NULL)
        return ficus_conf_error(cc, node, "`sso` on a route needs a top-level `sso:` section");
    if (node->type == FICUS_NODE_SCALAR) {
        int on;
        if (ficus_conf_bool(cc, node, &on) != 0)
            return -1;
        if (!on)
            return ficus_conf_error(cc, node, "`sso: false` is the default: remove the key");
        return 0;
    }
    ficus_node_t *forward, *forward_at, *groups;
    if (ficus_conf_mapping(cc, node, "", "forward:m,forward_access_token:s,groups:a", &forward, &forward_at, &groups) != 0)
        return -1;
    if (forward_at != NULL && ficus_conf_bool(cc, forward_at, &rc->forward_access_token) != 0)
        return -1;
    if (rc->forward_access_token && !rc->g->store_redis)
        return ficus_conf_error(cc, forward_at,
                                "forward_access_token needs the redis session store (tokens never go into cookies)");
    if (forward != NULL && ficus_claim_forwards_load(cc, forward, &rc->forward) != 0)
        return -1;
    if (groups != NULL) {
        if ((rc->groups = calloc(groups->data.sequence.size + 1, sizeof(char *))) == NULL)
            ficus_fatal("no memory");
        for (size_t i = 0; i != groups->data.sequence.size; ++i) {
            if (ficus_conf_expect(cc, groups->data.sequence.elements[i], FICUS_NODE_SCALAR) != 0)
                return -1;
            rc->groups[rc->num_groups++] = xstrdup(groups->data.sequence.elements[i]->data.scalar.value);
        }
    }
    return 0;
}

/* ---- per-worker resources: token-call timeouts (ficus_worker_timeout), session cache ---- */

static void fetch_ctx(const sso_global_t *g, ficus_req_t *r, ficus_fetch_ctx_t *ctx)
{
    ctx->loop = r->worker->loop;
    ctx->getaddr_receiver = &r->worker->ctx.receivers.hostinfo_getaddr;
    ctx->io_timeout = ficus_worker_timeout(r->worker, g->token_timeout_ms);
    ctx->zero_timeout = &r->worker->ctx.zero_timeout;
    ctx->ssl_ctx = g->ssl_ctx;
}

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

static json_t *cache_get(const char *id, uint64_t now, uint64_t ttl)
{
    cache_entry_t *e = cache_slot(id);
    if (e == NULL || e->session == NULL || strcmp(e->id, id) != 0 || now - e->fetched_ms >= ttl)
        return NULL;
    return e->session;
}

static void cache_put(const char *id, json_t *session, uint64_t now)
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

/* ---- the login redirect ---- */

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

static void start_login(const sso_global_t *g, ficus_req_t *r)
{
    h2o_req_t *req = r->h2o;
    if (!is_navigation(req)) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
        if (r->error == NULL)
            r->error = "sso_login_required";
        ficus_req_respond_error(r, 401, "login_required");
        return;
    }
    const char *authz = endpoint(g, r, 0);
    if (authz == NULL) {
        respond_html(r, 503, "sso_provider_unavailable", "The identity provider cannot be reached yet. Please try again shortly.");
        return;
    }
    char *state = random_token(24), *nonce = random_token(24), *verifier = random_token(48), *challenge = pkce_challenge(verifier);
    /* the original URL: this request's path and query (same origin by construction) */
    json_t *flow = json_pack("{s:s, s:s, s:s, s:s%, s:f}", "state", state, "nonce", nonce, "verifier", verifier, "url",
                             req->path.base, req->path.len, "exp", unix_now() + g->flow_ttl_ms / 1000.0);
    char *plain = json_dumps(flow, JSON_COMPACT);
    char *sealed = plain != NULL ? ficus_seal(&g->keys, "ficus-sso-flow", (const uint8_t *)plain, strlen(plain)) : NULL;
    json_decref(flow);
    free(plain);
    char *origin = origin_of(g, r), *loc;
    size_t loclen;
    FILE *fp = open_memstream(&loc, &loclen);
    fprintf(fp, "%s%sresponse_type=code&client_id=", authz, strchr(authz, '?') != NULL ? "&" : "?");
    url_encode(fp, g->client_id);
    fputs("&redirect_uri=", fp);
    url_encode(fp, origin);
    url_encode(fp, g->callback_path);
    fputs("&scope=", fp);
    url_encode(fp, g->scopes);
    fprintf(fp, "&state=%s&nonce=%s&code_challenge=%s&code_challenge_method=S256", state, nonce, challenge);
    fclose(fp);
    if (sealed != NULL) {
        add_set_cookie(r, g->flow_cookie_name, sealed, (long)(g->flow_ttl_ms / 1000));
        if (r->error == NULL)
            r->error = "sso_login_redirect";
        redirect(r, loc);
    } else {
        respond_html(r, 500, "sso_internal_error", "Sign-in could not start.");
    }
    free(loc);
    free(origin);
    free(sealed);
    free(state);
    free(nonce);
    free(verifier);
    free(challenge);
}

/* ---- sessions ---- */

typedef struct st_sso_pending_t sso_pending_t;
struct st_sso_pending_t {
    ficus_req_t *r;
    const sso_global_t *g;
    const sso_route_t *rc;
    ficus_redis_cmd_t *cmd;
    ficus_fetch_t *fetch;
    char *session_id;
    char *code; /* callback: the authorization code while the state is being marked used */
    json_t *flow;
    json_t *session;
    int step;
    int redis_tries;
    h2o_timeout_entry_t wait;
    h2o_timeout_entry_t renew;  /* renews the refresh lock's lease while the token call runs */
    h2o_linklist_t lookup_link; /* in a session_lookup_t's waiters */
};

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

static sso_pending_t *pending_new(ficus_req_t *r, const sso_global_t *g, const sso_route_t *rc)
{
    sso_pending_t *p = h2o_mem_alloc_shared(&r->h2o->pool, sizeof(*p), pending_dispose);
    memset(p, 0, sizeof(*p));
    p->r = r;
    p->g = g;
    p->rc = rc;
    return p;
}

static void session_key(char *buf, size_t cap, const char *prefix, const char *id)
{
    snprintf(buf, cap, "ficus:sso:%s:{%s}", prefix, id);
}

static ficus_redis_cmd_t *redis_cmd(ficus_req_t *r, ficus_redis_cb cb, void *data, int argc, const char **argv)
{
    size_t lens[8];
    for (int i = 0; i != argc; ++i)
        lens[i] = strlen(argv[i]);
    return ficus_redis_command(r->worker->redis, cb, data, argc, argv, lens);
}

/* GET the session record of p->session_id; cb gets the reply. */
static void get_session(sso_pending_t *p, ficus_redis_cb cb)
{
    char key[128];
    session_key(key, sizeof(key), "s", p->session_id);
    const char *argv[] = {"GET", key};
    p->cmd = redis_cmd(p->r, cb, p, 2, argv);
}

static void fire_and_forget_cb(void *data, redisReply *reply, const char *err)
{
}

static void redis_fire(ficus_worker_t *w, int argc, const char **argv)
{
    size_t lens[8];
    for (int i = 0; i != argc; ++i)
        lens[i] = strlen(argv[i]);
    if (w->redis != NULL)
        ficus_redis_command(w->redis, fire_and_forget_cb, NULL, argc, argv, lens);
}

static void store_session(ficus_worker_t *w, const sso_global_t *g, const char *id, json_t *session, int keep_ttl)
{
    char key[128], px[32];
    session_key(key, sizeof(key), "s", id);
    char *json = json_dumps(session, JSON_COMPACT);
    double expires = json_number_value(json_object_get(session, "expires"));
    double left_ms = (expires - unix_now()) * 1000;
    uint64_t ttl = left_ms < (double)g->idle_ms ? (left_ms > 1000 ? (uint64_t)left_ms : 1000) : g->idle_ms;
    snprintf(px, sizeof(px), "%llu", (unsigned long long)ttl);
    const char *argv[] = {"SET", key, json, "PX", px};
    redis_fire(w, 5, argv);
    free(json);
    (void)keep_ttl;
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

/* The session is valid for this request: authorize and continue (resume when paused). */
static void session_ok(sso_pending_t *p, json_t *session, int paused)
{
    ficus_req_t *r = p->r;
    if (!authorized(p->rc, json_object_get(session, "claims"))) {
        r->error = "sso_forbidden";
        ficus_req_respond_error(r, 403, "forbidden");
        return;
    }
    forward_identity(p->rc, r, session);
    if (paused)
        ficus_req_resume(r);
}

static void start_refresh(sso_pending_t *p);

/* Decides what a looked-up session needs: 1 = go on now, 0 = handled (responded or refresh started). */
static int check_session(sso_pending_t *p, json_t *session, int paused)
{
    const sso_global_t *g = p->g;
    double now = unix_now();
    double expires = json_number_value(json_object_get(session, "expires"));
    if (expires != 0 && now >= expires) {
        start_login(g, p->r);
        return 0;
    }
    double at_exp = json_number_value(json_object_get(session, "at_exp"));
    int has_refresh = json_is_string(json_object_get(session, "refresh_token"));
    if (g->store_redis && has_refresh && at_exp != 0 && (at_exp - now) * 1000 < (double)g->refresh_before_ms) {
        p->session = json_incref(session);
        start_refresh(p);
        return 0;
    }
    /* touch for the idle timeout, at most every idle/10 */
    double touched = json_number_value(json_object_get(session, "touched"));
    if (g->store_redis && (now - touched) * 1000 > g->idle_ms / 10) {
        json_object_set_new(session, "touched", json_real(now));
        store_session(p->r->worker, g, p->session_id, session, 1);
    }
    session_ok(p, session, paused);
    return 1;
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

static void on_lookup(void *data, redisReply *reply, const char *err)
{
    session_lookup_t *l = data;
    h2o_linklist_unlink(&l->link);
    int failed = err != NULL || reply->type == REDIS_REPLY_ERROR;
    json_t *session = !failed && reply->type == REDIS_REPLY_STRING ? json_loadb(reply->str, reply->len, 0, NULL) : NULL;
    if (session != NULL)
        cache_put(l->id, session, h2o_now(ficus_current_worker->loop));
    while (!h2o_linklist_is_empty(&l->waiters)) {
        sso_pending_t *p = H2O_STRUCT_FROM_MEMBER(sso_pending_t, lookup_link, l->waiters.next);
        h2o_linklist_unlink(&p->lookup_link);
        ficus_req_t *r = p->r;
        if (failed) {
            r->error = "sso_session_store_unavailable";
            h2o_add_header(&r->h2o->pool, &r->h2o->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
            ficus_req_respond_error(r, 503, "session_store_unavailable");
        } else if (session == NULL) {
            start_login(p->g, r); /* unknown, expired or deleted (logout): a new login */
        } else {
            json_t *copy = json_deep_copy(session); /* each request may update its own (touch, refresh) */
            check_session(p, copy, 1);
            json_decref(copy);
        }
    }
    if (session != NULL)
        json_decref(session);
    free(l->id);
    free(l);
}

/* Looks the session up in Redis for p, sharing a lookup already in flight for the same id. */
static void lookup_session(sso_pending_t *p)
{
    session_lookup_t *l = find_lookup(p->session_id);
    if (l == NULL) {
        if ((l = calloc(1, sizeof(*l))) == NULL || (l->id = strdup(p->session_id)) == NULL)
            ficus_fatal("no memory");
        h2o_linklist_init_anchor(&l->waiters);
        h2o_linklist_insert(&lookups, &l->link);
        char key[128];
        session_key(key, sizeof(key), "s", l->id);
        const char *argv[] = {"GET", key};
        redis_cmd(p->r, on_lookup, l, 2, argv); /* never cancelled: its answer serves whoever still waits */
    }
    h2o_linklist_insert(&l->waiters, &p->lookup_link);
}

/* ---- refresh (Redis store) ---- */

static void on_refresh_token(void *data, const char *errstr, const ficus_fetch_response_t *res);

static void add_client_auth(const sso_global_t *g, FILE *headers, FILE *body)
{
    if (g->auth_post) {
        fputs("&client_id=", body);
        url_encode(body, g->client_id);
        fputs("&client_secret=", body);
        url_encode(body, g->client_secret);
    } else {
        /* RFC 6749 2.3.1: form-urlencode id and secret, then base64 */
        char *cred;
        size_t len;
        FILE *fp = open_memstream(&cred, &len);
        url_encode(fp, g->client_id);
        fputc(':', fp);
        url_encode(fp, g->client_secret);
        fclose(fp);
        char *b64 = malloc(len * 4 / 3 + 8);
        if (b64 == NULL)
            ficus_fatal("no memory");
        int n = EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)cred, (int)len);
        fprintf(headers, "authorization: Basic %.*s\r\n", n, b64);
        OPENSSL_cleanse(cred, len);
        free(cred);
        free(b64);
    }
}

static int post_token(sso_pending_t *p, const char *form, ficus_fetch_cb cb)
{
    const sso_global_t *g = p->g;
    const char *token_ep = endpoint(g, p->r, 1);
    if (token_ep == NULL)
        return -1;
    char *hdrs, *body;
    size_t hlen, blen;
    FILE *hf = open_memstream(&hdrs, &hlen), *bf = open_memstream(&body, &blen);
    fputs("content-type: application/x-www-form-urlencoded\r\naccept: application/json\r\n", hf);
    fputs(form, bf);
    add_client_auth(g, hf, bf);
    fclose(hf);
    fclose(bf);
    ficus_fetch_ctx_t *ctx = h2o_mem_alloc_pool(&p->r->h2o->pool, sizeof(*ctx));
    fetch_ctx(g, p->r, ctx);
    const char *err = NULL;
    p->fetch = ficus_fetch_start(ctx, "POST", token_ep, h2o_iovec_init(hdrs, hlen), h2o_iovec_init(body, blen), MAX_TOKEN_RESPONSE,
                                 cb, p, &err);
    OPENSSL_cleanse(hdrs, hlen);
    OPENSSL_cleanse(body, blen);
    free(hdrs);
    free(body);
    return p->fetch != NULL ? 0 : -1;
}

static void on_lock(void *data, redisReply *reply, const char *err);
static void on_renew_lock(h2o_timeout_entry_t *entry);
static void on_locked_session(void *data, redisReply *reply, const char *err);
static void release_lock(ficus_req_t *r, const char *id);

static void start_refresh(sso_pending_t *p)
{
    char key[128], px[32];
    session_key(key, sizeof(key), "l", p->session_id);
    snprintf(px, sizeof(px), "%llu", (unsigned long long)(p->g->token_timeout_ms + 5000));
    const char *argv[] = {"SET", key, "1", "NX", "PX", px};
    p->cmd = redis_cmd(p->r, on_lock, p, 6, argv);
}

static void on_wait_tick(h2o_timeout_entry_t *entry);

static void on_session_reget(void *data, redisReply *reply, const char *err)
{
    sso_pending_t *p = data;
    p->cmd = NULL;
    json_t *session = err == NULL && reply->type == REDIS_REPLY_STRING ? json_loadb(reply->str, reply->len, 0, NULL) : NULL;
    if (session == NULL) {
        start_login(p->g, p->r);
        return;
    }
    double at_exp = json_number_value(json_object_get(session, "at_exp"));
    if (at_exp > unix_now()) {
        cache_put(p->session_id, session, h2o_now(p->r->worker->loop));
        session_ok(p, session, 1);
        json_decref(session);
        return;
    }
    json_decref(session);
    if (++p->redis_tries > (int)(p->g->token_timeout_ms / 100) + 50) {
        p->r->error = "sso_refresh_wait_timeout";
        ficus_req_respond_error(p->r, 503, "session_refresh_unavailable");
        return;
    }
    p->wait.cb = on_wait_tick;
    h2o_timeout_link(p->r->worker->loop, ficus_worker_timeout(p->r->worker, 100), &p->wait);
}

static void on_wait_tick(h2o_timeout_entry_t *entry)
{
    sso_pending_t *p = H2O_STRUCT_FROM_MEMBER(sso_pending_t, wait, entry);
    get_session(p, on_session_reget);
}

static void on_lock(void *data, redisReply *reply, const char *err)
{
    sso_pending_t *p = data;
    p->cmd = NULL;
    double at_exp = json_number_value(json_object_get(p->session, "at_exp"));
    int acquired = err == NULL && reply->type == REDIS_REPLY_STATUS;
    if (!acquired) {
        /* someone else refreshes (or Redis is unhappy): go on while the token is valid, else wait for theirs */
        if (at_exp > unix_now() || err != NULL) {
            session_ok(p, p->session, 1);
            return;
        }
        p->wait.cb = on_wait_tick;
        h2o_timeout_link(p->r->worker->loop, ficus_worker_timeout(p->r->worker, 100), &p->wait);
        return;
    }
    /* the lock is ours: read the session again, another request may have refreshed it since we looked (a refresh
     * token must never be used twice: providers that rotate them revoke the whole grant) */
    get_session(p, on_locked_session);
}

static void on_locked_session(void *data, redisReply *reply, const char *err)
{
    sso_pending_t *p = data;
    p->cmd = NULL;
    json_t *session = err == NULL && reply->type == REDIS_REPLY_STRING ? json_loadb(reply->str, reply->len, 0, NULL) : NULL;
    if (session == NULL) {
        release_lock(p->r, p->session_id);
        if (err != NULL) {
            session_ok(p, p->session, 1); /* store trouble: go on with what we have */
        } else {
            start_login(p->g, p->r); /* deleted meanwhile (logout) */
        }
        return;
    }
    json_decref(p->session);
    p->session = session;
    double at_exp = json_number_value(json_object_get(session, "at_exp"));
    if ((at_exp - unix_now()) * 1000 >= (double)p->g->refresh_before_ms) {
        release_lock(p->r, p->session_id);
        cache_put(p->session_id, session, h2o_now(p->r->worker->loop));
        session_ok(p, session, 1);
        return;
    }
    char *form;
    size_t len;
    FILE *fp = open_memstream(&form, &len);
    fputs("grant_type=refresh_token&refresh_token=", fp);
    url_encode(fp, json_string_value(json_object_get(session, "refresh_token")));
    fclose(fp);
    int rc = post_token(p, form, on_refresh_token);
    OPENSSL_cleanse(form, len);
    free(form);
    if (rc != 0) {
        release_lock(p->r, p->session_id);
        session_ok(p, p->session, 1);
        return;
    }
    p->renew.cb = on_renew_lock;
    h2o_timeout_link(p->r->worker->loop, ficus_worker_timeout(p->r->worker, 2000), &p->renew);
}

static void release_lock(ficus_req_t *r, const char *id)
{
    char key[128];
    session_key(key, sizeof(key), "l", id);
    const char *argv[] = {"DEL", key};
    redis_fire(r->worker, 2, argv);
}

static void delete_session(ficus_worker_t *w, const char *id)
{
    char key[128];
    session_key(key, sizeof(key), "s", id);
    const char *argv[] = {"DEL", key};
    redis_fire(w, 2, argv);
    cache_put(id, NULL, 0);
}

/* While the token call runs, extend the lock's lease (it was taken for token_timeout + 5 s) every 2 s, so a slow
 * but live provider never lets a second request refresh with the same refresh token. */
static void on_renew_lock(h2o_timeout_entry_t *entry)
{
    sso_pending_t *p = H2O_STRUCT_FROM_MEMBER(sso_pending_t, renew, entry);
    if (p->fetch == NULL)
        return;
    char key[128], px[32];
    session_key(key, sizeof(key), "l", p->session_id);
    snprintf(px, sizeof(px), "%llu", (unsigned long long)(p->g->token_timeout_ms + 5000));
    const char *argv[] = {"PEXPIRE", key, px};
    redis_fire(p->r->worker, 3, argv);
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
        if (json_number_value(json_object_get(p->session, "at_exp")) > unix_now()) {
            session_ok(p, p->session, 1);
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
        delete_session(r->worker, p->session_id);
        release_lock(r, p->session_id);
        add_set_cookie(r, p->g->cookie_name, "", 0);
        r->error = "sso_refresh_rejected";
        start_login(p->g, r);
        return;
    }
    json_object_set_new(p->session, "access_token", json_string(at));
    const char *rt = json_string_value(json_object_get(doc, "refresh_token"));
    if (rt != NULL)
        json_object_set_new(p->session, "refresh_token", json_string(rt));
    json_t *expires_in = json_object_get(doc, "expires_in");
    json_object_set_new(p->session, "at_exp",
                        json_real(unix_now() + (json_is_number(expires_in) ? json_number_value(expires_in) : 300)));
    json_decref(doc);
    store_session(r->worker, p->g, p->session_id, p->session, 0);
    release_lock(r, p->session_id); /* after the SET: the connection runs them in order */
    cache_put(p->session_id, p->session, h2o_now(r->worker->loop));
    session_ok(p, p->session, 1);
}

/* ---- route phase ---- */

static ficus_status_t on_request(void *_rc, ficus_req_t *r)
{
    sso_route_t *rc = _rc;
    const sso_global_t *g = rc->g;
    h2o_iovec_t cookie = get_cookie(r->h2o, g->cookie_name);
    if (cookie.base == NULL || cookie.len == 0 || cookie.len > MAX_COOKIE) {
        start_login(g, r);
        return FICUS_RESPONDED;
    }
    if (!g->store_redis) {
        size_t len;
        uint8_t *plain = ficus_unseal(&g->keys, "ficus-sso-session", cookie.base, cookie.len, &len);
        json_t *session = plain != NULL ? json_loadb((char *)plain, len, 0, NULL) : NULL;
        free(plain);
        if (session == NULL) {
            start_login(g, r); /* tampered, or sealed with a retired key */
            return FICUS_RESPONDED;
        }
        sso_pending_t p = {.r = r, .g = g, .rc = rc};
        int rc2 = check_session(&p, session, 0);
        json_decref(session);
        return rc2 == 1 ? FICUS_CONTINUE : FICUS_RESPONDED;
    }
    for (size_t i = 0; i != cookie.len; ++i)
        if (!(isalnum((unsigned char)cookie.base[i]) || cookie.base[i] == '-' || cookie.base[i] == '_')) {
            start_login(g, r);
            return FICUS_RESPONDED;
        }
    sso_pending_t *p = pending_new(r, g, rc);
    p->session_id = strndup(cookie.base, cookie.len);
    json_t *cached = cache_get(p->session_id, h2o_now(r->worker->loop), g->cache_ttl_ms);
    if (cached != NULL) {
        json_incref(cached);
        int rc2 = check_session(p, cached, 0);
        json_decref(cached);
        if (rc2 == 1)
            return FICUS_CONTINUE;
        return r->_responded ? FICUS_RESPONDED : FICUS_PAUSE;
    }
    if (r->worker->redis == NULL) {
        r->error = "sso_session_store_unavailable";
        ficus_req_respond_error(r, 503, "session_store_unavailable");
        return FICUS_RESPONDED;
    }
    lookup_session(p);
    return FICUS_PAUSE;
}

/* ---- callback ---- */

static void callback_fail(ficus_req_t *r, const sso_global_t *g, int status, const char *code, const char *message)
{
    add_set_cookie(r, g->flow_cookie_name, "", 0);
    respond_html(r, status, code, message);
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
    ficus_jwt_status_t st = ficus_jwt_verify(id_token, strlen(id_token), slot->keys, &policy, unix_now(), &jwt);
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
    double now = unix_now();
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
        const char *at = json_string_value(json_object_get(doc, "access_token")),
                   *rt = json_string_value(json_object_get(doc, "refresh_token"));
        json_t *expires_in = json_object_get(doc, "expires_in");
        if (at != NULL) {
            json_object_set_new(session, "access_token", json_string(at));
            json_object_set_new(session, "at_exp",
                                json_real(now + (json_is_number(expires_in) ? json_number_value(expires_in) : 300)));
        }
        if (rt != NULL)
            json_object_set_new(session, "refresh_token", json_string(rt));
        cookie_value = random_token(32);
        store_session(r->worker, g, cookie_value, session, 0);
        const char *sid = json_string_value(json_object_get(claims, "sid"));
        char key[160], px[32];
        snprintf(px, sizeof(px), "%llu", (unsigned long long)g->ttl_ms);
        /* indexes for back-channel logout (by sid, and by sub) */
        const char *index_vals[2] = {sid, sub}, *index_names[2] = {"sid", "sub"};
        for (int i = 0; i != 2; ++i) {
            if (index_vals[i] == NULL || strlen(index_vals[i]) > 100)
                continue;
            session_key(key, sizeof(key), index_names[i], index_vals[i]);
            const char *sadd[] = {"SADD", key, cookie_value}, *pexp[] = {"PEXPIRE", key, px};
            redis_fire(r->worker, 3, sadd);
            redis_fire(r->worker, 3, pexp);
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
    add_set_cookie(r, g->cookie_name, cookie_value, -1);
    add_set_cookie(r, g->flow_cookie_name, "", 0);
    free(cookie_value);
    const char *url = json_string_value(json_object_get(p->flow, "url"));
    /* same origin only: a path, never "//host" or "/\host" */
    if (url == NULL || url[0] != '/' || url[1] == '/' || url[1] == '\\' || strpbrk(url, "\r\n") != NULL)
        url = "/";
    r->error = "sso_login";
    redirect(r, url);
}

static void exchange_code(sso_pending_t *p, const char *code)
{
    char *form, *origin = origin_of(p->g, p->r);
    size_t len;
    FILE *fp = open_memstream(&form, &len);
    fputs("grant_type=authorization_code&code=", fp);
    url_encode(fp, code);
    fputs("&redirect_uri=", fp);
    url_encode(fp, origin);
    url_encode(fp, p->g->callback_path);
    fputs("&code_verifier=", fp);
    url_encode(fp, json_string_value(json_object_get(p->flow, "verifier")));
    fclose(fp);
    free(origin);
    int rc = post_token(p, form, on_code_token);
    OPENSSL_cleanse(form, len);
    free(form);
    if (rc != 0)
        callback_fail(p->r, p->g, 503, "sso_provider_unavailable",
                      "The identity provider cannot be reached yet. Please try again.");
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
    exchange_code(p, p->code);
}

static ficus_status_t on_callback(const sso_global_t *g, ficus_req_t *r)
{
    h2o_req_t *req = r->h2o;
    const char *q = req->query_at != SIZE_MAX ? req->path.base + req->query_at + 1 : "";
    size_t qlen = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0;
    char *code = form_param(q, qlen, "code"), *state = form_param(q, qlen, "state"), *error = form_param(q, qlen, "error");
    h2o_iovec_t flow_cookie = get_cookie(req, g->flow_cookie_name);
    json_t *flow = NULL;
    if (flow_cookie.base != NULL && flow_cookie.len <= MAX_COOKIE) {
        size_t len;
        uint8_t *plain = ficus_unseal(&g->keys, "ficus-sso-flow", flow_cookie.base, flow_cookie.len, &len);
        if (plain != NULL)
            flow = json_loadb((char *)plain, len, 0, NULL);
        free(plain);
    }
    const char *want_state = json_string_value(json_object_get(flow, "state"));
    ficus_status_t ret = FICUS_RESPONDED;
    if (error != NULL) {
        callback_fail(r, g, 401, "sso_provider_error", "Sign-in was cancelled or refused by the identity provider.");
    } else if (flow == NULL || state == NULL || want_state == NULL || strlen(state) != strlen(want_state) ||
               CRYPTO_memcmp(state, want_state, strlen(state)) != 0) {
        callback_fail(r, g, 400, "sso_bad_state", "This sign-in link is invalid or expired. Please sign in again.");
    } else if (json_number_value(json_object_get(flow, "exp")) < unix_now()) {
        callback_fail(r, g, 400, "sso_flow_expired", "This sign-in took too long. Please sign in again.");
    } else if (code == NULL || strlen(code) > 2048) {
        callback_fail(r, g, 400, "sso_no_code", "Sign-in failed: no authorization code.");
    } else {
        sso_pending_t *p = pending_new(r, g, NULL);
        p->flow = json_incref(flow);
        ret = FICUS_PAUSE;
        if (g->store_redis && r->worker->redis != NULL) {
            /* one use per state, fleet-wide */
            char key[128], px[32];
            session_key(key, sizeof(key), "used", state);
            snprintf(px, sizeof(px), "%llu", (unsigned long long)g->flow_ttl_ms);
            p->code = xstrdup(code);
            const char *argv[] = {"SET", key, "1", "NX", "PX", px};
            p->cmd = redis_cmd(r, on_state_used, p, 6, argv);
        } else {
            exchange_code(p, code);
        }
    }
    if (flow != NULL)
        json_decref(flow);
    free(code);
    free(state);
    free(error);
    return ret;
}

/* ---- logout ---- */

static void finish_logout(sso_pending_t *p, const char *id_token)
{
    ficus_req_t *r = p->r;
    const sso_global_t *g = p->g;
    add_set_cookie(r, g->cookie_name, "", 0);
    const char *end_session = endpoint(g, r, 2);
    char *origin = origin_of(g, r), *origin_slash;
    if (asprintf(&origin_slash, "%s/", origin) < 0)
        ficus_fatal("no memory");
    const char *after = g->post_logout_redirect != NULL ? g->post_logout_redirect : origin_slash;
    r->error = "sso_logout";
    if (end_session == NULL) {
        redirect(r, after);
    } else {
        char *loc;
        size_t len;
        FILE *fp = open_memstream(&loc, &len);
        fprintf(fp, "%s%sclient_id=", end_session, strchr(end_session, '?') != NULL ? "&" : "?");
        url_encode(fp, g->client_id);
        fputs("&post_logout_redirect_uri=", fp);
        url_encode(fp, after);
        if (id_token != NULL) {
            fputs("&id_token_hint=", fp);
            url_encode(fp, id_token);
        }
        fclose(fp);
        redirect(r, loc);
        free(loc);
    }
    free(origin);
    free(origin_slash);
}

static void on_logout_get(void *data, redisReply *reply, const char *err)
{
    sso_pending_t *p = data;
    p->cmd = NULL;
    json_t *session = err == NULL && reply->type == REDIS_REPLY_STRING ? json_loadb(reply->str, reply->len, 0, NULL) : NULL;
    delete_session(p->r->worker, p->session_id);
    finish_logout(p, json_string_value(json_object_get(session, "id_token")));
    json_decref(session);
}

static ficus_status_t on_logout(const sso_global_t *g, ficus_req_t *r)
{
    h2o_iovec_t cookie = get_cookie(r->h2o, g->cookie_name);
    sso_pending_t *p = pending_new(r, g, NULL);
    if (g->store_redis && cookie.base != NULL && cookie.len != 0 && cookie.len <= 128 && r->worker->redis != NULL) {
        p->session_id = strndup(cookie.base, cookie.len);
        for (char *c = p->session_id; *c != '\0'; ++c)
            if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_')) {
                finish_logout(p, NULL);
                return FICUS_RESPONDED;
            }
        get_session(p, on_logout_get);
        return FICUS_PAUSE;
    }
    finish_logout(p, NULL);
    return FICUS_RESPONDED;
}

/* ---- back-channel logout (OpenID Connect Back-Channel Logout 1.0) ---- */

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
            delete_session(r->worker, id);
        }
    const char *argv[] = {"DEL", p->session_id};
    redis_fire(r->worker, 2, argv);
    ficus_info("sso: back-channel logout ended %zu sessions", n);
    h2o_add_header(&r->h2o->pool, &r->h2o->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    r->error = "sso_backchannel_logout";
    ficus_req_respond(r, 200, "application/json", h2o_iovec_init(H2O_STRLIT("{}")));
}

static ficus_status_t on_backchannel(const sso_global_t *g, ficus_req_t *r)
{
    h2o_req_t *req = r->h2o;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        ficus_req_respond_error(r, 405, "method_not_allowed");
        return FICUS_RESPONDED;
    }
    char *token = req->entity.base != NULL ? form_param(req->entity.base, req->entity.len, "logout_token") : NULL;
    ficus_provider_slot_t *slot = g->provider->rt->slots + r->worker->index;
    const char *aud[] = {g->client_id};
    ficus_jwt_policy_t policy = g->provider->policy;
    policy.audiences = aud;
    policy.num_audiences = 1;
    policy.extra_typ = "logout+jwt";
    ficus_jwt_t jwt = {0};
    ficus_jwt_status_t st =
        token != NULL ? ficus_jwt_verify(token, strlen(token), slot->keys, &policy, unix_now(), &jwt) : FICUS_JWT_ERR_MALFORMED;
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
    sso_pending_t *p = pending_new(r, g, NULL);
    char key[160];
    session_key(key, sizeof(key), sid != NULL ? "sid" : "sub", sid != NULL ? sid : sub);
    p->session_id = xstrdup(key);
    ficus_jwt_dispose(&jwt);
    const char *argv[] = {"SMEMBERS", key};
    p->cmd = redis_cmd(r, on_backchannel_members, p, 2, argv);
    return FICUS_PAUSE;
}

static ficus_status_t on_pre_route(void *_g, ficus_req_t *r)
{
    const sso_global_t *g = _g;
    h2o_req_t *req = r->h2o;
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    if (h2o_memis(req->path.base, plen, g->callback_path, strlen(g->callback_path)))
        return on_callback(g, r);
    if (h2o_memis(req->path.base, plen, g->logout_path, strlen(g->logout_path)))
        return on_logout(g, r);
    if (h2o_memis(req->path.base, plen, g->backchannel_path, strlen(g->backchannel_path)))
        return on_backchannel(g, r);
    return FICUS_CONTINUE;
}

const ficus_plugin_t ficus_plugin_sso = {
    .name = "sso",
    .on_config = on_config,
    .dispose = dispose,
    .on_request = on_request,
    .global_key = "sso",
    .on_global_config = on_global_config,
    .global_dispose = global_dispose,
    .on_pre_route = on_pre_route,
};
