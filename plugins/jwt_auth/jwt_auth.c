/* jwt: bearer-token authentication of a route against a provider's rotating keys.
 *
 *   jwt: { provider: corp, required: true, scopes: [orders], claims: { tenant: [acme] },
 *          forward: { sub: x-user-id, email: x-user-email }, forward_token: false, cookie: access_token,
 *          query_param: access_token }
 *
 * FLOW: token from `Authorization: Bearer` (scheme case-insensitive; a cookie only when configured) → the worker's
 * cache of verified tokens → else ficus_jwt_verify() with the worker's copy of the provider's key set → on an
 * unknown kid, PAUSE until the control thread answers about that kid (after a refetch when needed; bounded by the
 * provider's kid_wait), then verify again → scopes and claims (403) → identity headers from claims (ficus/claim_forward.h),
 * Authorization removed unless forward_token. RESPONSES: 401 + `WWW-Authenticate: Bearer error="invalid_token"` (invalid_request
 * for a malformed header; no error code when no token was sent) with a generic body; 403 + error="insufficient_scope"; 503 when the
 * provider has never obtained keys. The precise reason goes to the access log (`error`) and ficus_jwt_validations_total{reason},
 * never to the client. CACHE: per worker (thread-local: no locks), FICUS_JWT_CACHE_SLOTS direct-mapped entries keyed by a seeded
 * hash of the token and compared in full; an entry holds the verified claims and is valid until the token's exp and while the
 * provider's key set is the one it was verified with (a new set invalidates: a removed key stops working at once).
 * Tokens over max_token_bytes are rejected before any work. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include "ficus/claim_forward.h"
#include "ficus/config.h"
#include "ficus/cookie.h"
#include "ficus/log.h"
#include "ficus/plugin.h"
#include "ficus/provider.h"
#include "ficus/worker.h"

#define FICUS_JWT_CACHE_SLOTS 4096

typedef struct st_claim_rule_t {
    char *name;
    char **values;
    size_t num_values;
} claim_rule_t;

typedef struct st_jwt_conf_t {
    ficus_provider_conf_t *provider;
    int required;
    char **scopes;
    size_t num_scopes;
    claim_rule_t *claims;
    size_t num_claims;
    ficus_claim_forwards_t forward;
    int forward_token;
    char *cookie;      /* NULL: no cookie source */
    char *query_param; /* NULL: the query string is never a source */
    size_t max_token_bytes;
} jwt_conf_t;

/* ---- configuration ---- */

static int is_header_name(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; ++s)
        if (!(isalnum((unsigned char)*s) || strchr("!#$%&'*+-.^_`|~", *s) != NULL))
            return 0;
    return 1;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        ficus_fatal("no memory");
    return p;
}

static void dispose(void *_conf)
{
    jwt_conf_t *c = _conf;
    for (size_t i = 0; i != c->num_scopes; ++i)
        free(c->scopes[i]);
    free(c->scopes);
    for (size_t i = 0; i != c->num_claims; ++i) {
        free(c->claims[i].name);
        for (size_t j = 0; j != c->claims[i].num_values; ++j)
            free(c->claims[i].values[j]);
        free(c->claims[i].values);
    }
    free(c->claims);
    ficus_claim_forwards_dispose(&c->forward);
    free(c->cookie);
    free(c->query_param);
    free(c);
}

static int on_config(ficus_conf_ctx_t *cc, const ficus_node_t *node, void **out)
{
    ficus_node_t *provider, *required, *scopes, *claims, *forward, *forward_token, *cookie, *query_param, *max_token_bytes;
    if (ficus_conf_mapping(cc, node, "provider:s",
                           "required:s,scopes:a,claims:m,forward:m,forward_token:s,cookie:s,query_param:s,max_token_bytes:s",
                           &provider, &required, &scopes, &claims, &forward, &forward_token, &cookie, &query_param,
                           &max_token_bytes) != 0)
        return -1;
    jwt_conf_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        ficus_fatal("no memory");
    *out = c;
    c->required = 1;
    c->max_token_bytes = 8192;
    if ((c->provider = ficus_config_provider(cc->config, provider->data.scalar.value)) == NULL)
        goto Error_unknown_provider;
    if (required != NULL && ficus_conf_bool(cc, required, &c->required) != 0)
        goto Error;
    if (forward_token != NULL && ficus_conf_bool(cc, forward_token, &c->forward_token) != 0)
        goto Error;
    if (max_token_bytes != NULL) {
        uint64_t n;
        if (ficus_conf_size(cc, max_token_bytes, 256, 65536, &n) != 0)
            goto Error;
        c->max_token_bytes = n;
    }
    if (cookie != NULL) {
        if (!is_header_name(cookie->data.scalar.value)) {
            ficus_conf_error(cc, cookie, "invalid cookie name '%s'", cookie->data.scalar.value);
            goto Error;
        }
        c->cookie = xstrdup(cookie->data.scalar.value);
    }
    if (query_param != NULL) {
        for (const char *q = query_param->data.scalar.value; *q != '\0'; ++q)
            if (!(isalnum((unsigned char)*q) || *q == '_' || *q == '-' || *q == '.')) {
                ficus_conf_error(cc, query_param, "invalid query parameter name '%s'", query_param->data.scalar.value);
                goto Error;
            }
        if (query_param->data.scalar.len == 0) {
            ficus_conf_error(cc, query_param, "query_param must not be empty");
            goto Error;
        }
        c->query_param = xstrdup(query_param->data.scalar.value);
    }
    if (scopes != NULL) {
        if ((c->scopes = calloc(scopes->data.sequence.size + 1, sizeof(char *))) == NULL)
            ficus_fatal("no memory");
        for (size_t i = 0; i != scopes->data.sequence.size; ++i) {
            ficus_node_t *s = scopes->data.sequence.elements[i];
            if (ficus_conf_expect(cc, s, FICUS_NODE_SCALAR) != 0)
                goto Error;
            if (s->data.scalar.len == 0 || strchr(s->data.scalar.value, ' ') != NULL) {
                ficus_conf_error(cc, s, "a scope is one non-empty word without spaces");
                goto Error;
            }
            c->scopes[c->num_scopes++] = xstrdup(s->data.scalar.value);
        }
    }
    if (claims != NULL) {
        if ((c->claims = calloc(claims->data.mapping.size + 1, sizeof(*c->claims))) == NULL)
            ficus_fatal("no memory");
        for (size_t i = 0; i != claims->data.mapping.size; ++i) {
            ficus_node_t *k = claims->data.mapping.keys[i], *v = claims->data.mapping.values[i];
            claim_rule_t *rule = c->claims + c->num_claims++;
            rule->name = xstrdup(k->data.scalar.value);
            if (v->type == FICUS_NODE_SCALAR) {
                if ((rule->values = calloc(1, sizeof(char *))) == NULL)
                    ficus_fatal("no memory");
                rule->values[rule->num_values++] = xstrdup(v->data.scalar.value);
            } else {
                if (ficus_conf_expect(cc, v, FICUS_NODE_SEQUENCE) != 0)
                    goto Error;
                if (v->data.sequence.size == 0) {
                    ficus_conf_error(cc, v, "claim '%s' needs at least one allowed value", rule->name);
                    goto Error;
                }
                if ((rule->values = calloc(v->data.sequence.size, sizeof(char *))) == NULL)
                    ficus_fatal("no memory");
                for (size_t j = 0; j != v->data.sequence.size; ++j) {
                    if (ficus_conf_expect(cc, v->data.sequence.elements[j], FICUS_NODE_SCALAR) != 0)
                        goto Error;
                    rule->values[rule->num_values++] = xstrdup(v->data.sequence.elements[j]->data.scalar.value);
                }
            }
        }
    }
    if (forward != NULL && ficus_claim_forwards_load(cc, forward, &c->forward) != 0)
        goto Error;
    return 0;
Error_unknown_provider:
    ficus_conf_error(cc, provider, "unknown provider '%s' (define it under `providers:`)", provider->data.scalar.value);
Error:
    dispose(c);
    *out = NULL;
    return -1;
}

/* ---- per-worker cache of verified tokens ---- */

typedef struct st_cache_entry_t {
    uint64_t hash;
    char *token;
    size_t len;
    const ficus_provider_t *provider;
    uint64_t keys_version;
    double exp;
    json_t *claims;
} cache_entry_t;

static __thread cache_entry_t *cache;
static __thread uint64_t cache_seed;

static uint64_t token_hash(const char *s, size_t len)
{
    if (cache_seed == 0 && getrandom(&cache_seed, sizeof(cache_seed), 0) != sizeof(cache_seed))
        cache_seed = (uint64_t)(uintptr_t)&cache_seed ^ 0x9e3779b97f4a7c15ULL;
    /* 8 bytes at a time (a token is ~1 KiB and hashed on every request); a hit is confirmed by a full compare */
    uint64_t h = cache_seed ^ (len * 0x9e3779b97f4a7c15ULL), w;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
    }
    for (; i != len; ++i)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h ^ (h >> 31);
}

static double unix_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec / 1e6;
}

static json_t *cache_lookup(const ficus_provider_t *p, uint64_t keys_version, uint64_t hash, const char *tok, size_t len,
                            double now, double leeway)
{
    if (cache == NULL)
        return NULL;
    cache_entry_t *e = cache + hash % FICUS_JWT_CACHE_SLOTS;
    if (e->claims == NULL || e->hash != hash || e->provider != p || e->keys_version != keys_version || e->len != len ||
        memcmp(e->token, tok, len) != 0)
        return NULL;
    if (now >= e->exp + leeway)
        return NULL;
    return e->claims;
}

static void cache_insert(const ficus_provider_t *p, uint64_t keys_version, uint64_t hash, const char *tok, size_t len, double exp,
                         json_t *claims)
{
    if (cache == NULL && (cache = calloc(FICUS_JWT_CACHE_SLOTS, sizeof(*cache))) == NULL)
        return;
    cache_entry_t *e = cache + hash % FICUS_JWT_CACHE_SLOTS;
    if (e->claims != NULL)
        json_decref(e->claims);
    char *copy = e->token != NULL && e->len >= len ? e->token : realloc(e->token, len);
    if (copy == NULL) {
        free(e->token);
        memset(e, 0, sizeof(*e));
        return;
    }
    memcpy(copy, tok, len);
    e->token = copy;
    e->len = len;
    e->hash = hash;
    e->provider = p;
    e->keys_version = keys_version;
    e->exp = exp;
    e->claims = json_incref(claims);
}

/* ---- the request ---- */

typedef enum { TOKEN_NONE, TOKEN_FOUND, TOKEN_MALFORMED_HEADER } token_source_result_t;

static int is_token68(const char *s, size_t len);

/* The token from the query parameter `conf->query_param` (only when configured: URLs leak into logs and Referer
 * headers). The parameter is removed from the request, so the upstream never sees the token in its URL either. */
static token_source_result_t take_query_token(jwt_conf_t *conf, h2o_req_t *req, h2o_iovec_t *tok)
{
    size_t nlen = strlen(conf->query_param), q = req->query_at + 1;
    const char *base = req->path.base, *end = req->path.base + req->path.len;
    const char *p = base + q;
    while (p < end) {
        const char *amp = memchr(p, '&', end - p), *stop = amp != NULL ? amp : end;
        if ((size_t)(stop - p) > nlen && memcmp(p, conf->query_param, nlen) == 0 && p[nlen] == '=') {
            const char *v = p + nlen + 1;
            if (!is_token68(v, stop - v))
                return TOKEN_MALFORMED_HEADER;
            *tok = h2o_strdup(&req->pool, v, stop - v);
            /* rebuild the path without this parameter (and without an empty '?') */
            char *path = h2o_mem_alloc_pool(&req->pool, req->path.len);
            size_t before = p - base, after_start = amp != NULL ? (size_t)(amp + 1 - base) : req->path.len, n = 0;
            memcpy(path, base, before);
            n = before;
            memcpy(path + n, base + after_start, req->path.len - after_start);
            n += req->path.len - after_start;
            while (n != 0 && (path[n - 1] == '&' || path[n - 1] == '?'))
                --n;
            req->path = h2o_iovec_init(path, n);
            req->query_at = memchr(path, '?', n) != NULL ? (size_t)((char *)memchr(path, '?', n) - path) : SIZE_MAX;
            return TOKEN_FOUND;
        }
        p = stop + 1;
    }
    return TOKEN_NONE;
}

static int is_token68(const char *s, size_t len)
{
    size_t i = 0;
    for (; i < len && (isalnum((unsigned char)s[i]) || strchr("-._~+/", s[i]) != NULL); ++i)
        ;
    if (i == 0)
        return 0;
    for (; i < len && s[i] == '='; ++i)
        ;
    return i == len;
}

static token_source_result_t find_token(jwt_conf_t *conf, h2o_req_t *req, h2o_iovec_t *tok)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i != -1) {
        if (h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, i) != -1)
            return TOKEN_MALFORMED_HEADER; /* two Authorization headers */
        h2o_iovec_t v = req->headers.entries[i].value;
        if (v.len < 7 || !h2o_lcstris(v.base, 6, H2O_STRLIT("bearer")) || v.base[6] != ' ')
            return TOKEN_MALFORMED_HEADER;
        size_t off = 7;
        while (off < v.len && v.base[off] == ' ')
            ++off;
        size_t end = v.len;
        while (end > off && v.base[end - 1] == ' ')
            --end;
        if (!is_token68(v.base + off, end - off))
            return TOKEN_MALFORMED_HEADER;
        *tok = h2o_iovec_init(v.base + off, end - off);
        return TOKEN_FOUND;
    }
    if (conf->cookie != NULL) {
        *tok = ficus_cookie_get(req, conf->cookie, strlen(conf->cookie));
        if (tok->base != NULL && tok->len != 0)
            return TOKEN_FOUND;
    }
    if (conf->query_param != NULL && req->query_at != SIZE_MAX)
        return take_query_token(conf, req, tok);
    return TOKEN_NONE;
}

typedef struct st_jwt_pending_t {
    ficus_provider_waiter_t waiter;
    ficus_req_t *req;
    jwt_conf_t *conf;
    h2o_iovec_t token;
} jwt_pending_t;

static void count(jwt_conf_t *conf, ficus_req_t *r, size_t idx)
{
    ficus_counter_add(&conf->provider->rt->stats->validations[r->worker->index][idx], 1);
}

static void respond_401(ficus_req_t *r, const char *error_code, const char *reason)
{
    h2o_req_t *req = r->h2o;
    char *v = h2o_mem_alloc_pool(&req->pool, 96);
    int n = error_code != NULL ? snprintf(v, 96, "Bearer realm=\"ficus\", error=\"%s\"", error_code)
                               : snprintf(v, 96, "Bearer realm=\"ficus\"");
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, v, n);
    r->error = reason;
    ficus_req_respond_error(r, 401, error_code != NULL ? error_code : "missing_token");
}

static int claim_matches(json_t *value, const char *wanted)
{
    char buf[64];
    if (json_is_string(value))
        return strcmp(json_string_value(value), wanted) == 0;
    if (json_is_integer(value)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(value));
        return strcmp(buf, wanted) == 0;
    }
    if (json_is_true(value))
        return strcmp(wanted, "true") == 0;
    if (json_is_false(value))
        return strcmp(wanted, "false") == 0;
    if (json_is_array(value)) {
        size_t i;
        json_t *e;
        json_array_foreach(value, i, e) if (claim_matches(e, wanted)) return 1;
    }
    return 0;
}

static int has_scope(json_t *claims, const char *scope)
{
    size_t slen = strlen(scope);
    const char *names[] = {"scope", "scp"};
    for (int k = 0; k != 2; ++k) {
        json_t *v = json_object_get(claims, names[k]);
        if (json_is_string(v)) {
            const char *s = json_string_value(v);
            while (*s != '\0') {
                while (*s == ' ')
                    ++s;
                const char *w = s;
                while (*s != '\0' && *s != ' ')
                    ++s;
                if ((size_t)(s - w) == slen && memcmp(w, scope, slen) == 0)
                    return 1;
            }
        } else if (json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) if (json_is_string(e) && strcmp(json_string_value(e), scope) == 0) return 1;
        }
    }
    return 0;
}

static int authorized(jwt_conf_t *conf, json_t *claims)
{
    for (size_t i = 0; i != conf->num_scopes; ++i)
        if (!has_scope(claims, conf->scopes[i]))
            return 0;
    for (size_t i = 0; i != conf->num_claims; ++i) {
        json_t *v = json_object_get(claims, conf->claims[i].name);
        int ok = 0;
        for (size_t j = 0; v != NULL && j != conf->claims[i].num_values && !ok; ++j)
            ok = claim_matches(v, conf->claims[i].values[j]);
        if (!ok)
            return 0;
    }
    return 1;
}

static void forward_claims(jwt_conf_t *conf, ficus_req_t *r, json_t *claims)
{
    h2o_req_t *req = r->h2o;
    ficus_claim_forwards_apply(&conf->forward, r, claims);
    if (!conf->forward_token) {
        ssize_t i;
        while ((i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1)) != -1)
            h2o_delete_header(&req->headers, i);
    }
}

/* The token header's kid, copied to the request pool (empty when absent or too long to ask about). */
static h2o_iovec_t header_kid(ficus_req_t *r, json_t *header)
{
    json_t *kid = json_object_get(header, "kid");
    size_t len = json_string_length(kid);
    if (!json_is_string(kid) || len == 0 || len > FICUS_PROVIDER_MAX_KID_BYTES)
        return h2o_iovec_init(NULL, 0);
    return h2o_strdup(&r->h2o->pool, json_string_value(kid), len);
}

static ficus_status_t wait_for_keys(jwt_conf_t *conf, ficus_req_t *r, h2o_iovec_t tok, h2o_iovec_t kid);

/* Verifies with the worker's current keys: CONTINUE, RESPONDED (401/403/503), or, when the kid is unknown and
 * may_wait, PAUSE while waiting for a refetch of the keys (wait_for_keys). */
static ficus_status_t check_token(jwt_conf_t *conf, ficus_req_t *r, h2o_iovec_t tok, int may_wait)
{
    ficus_provider_t *p = conf->provider->rt;
    ficus_provider_slot_t *slot = p->slots + r->worker->index;
    if (slot->keys == NULL) {
        count(conf, r, FICUS_PROVIDER_RESULT_NO_KEYS);
        h2o_add_header(&r->h2o->pool, &r->h2o->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("5"));
        r->error = "jwt_no_keys";
        ficus_req_respond_error(r, 503, "auth_unavailable");
        return FICUS_RESPONDED;
    }
    double now = unix_now();
    uint64_t hash = token_hash(tok.base, tok.len);
    json_t *claims = cache_lookup(p, slot->keys_version, hash, tok.base, tok.len, now, (double)conf->provider->leeway_s);
    if (claims != NULL) {
        json_incref(claims);
    } else {
        ficus_jwt_policy_t policy = conf->provider->policy;
        policy.max_token_bytes = conf->max_token_bytes;
        ficus_jwt_t jwt;
        ficus_jwt_status_t st = ficus_jwt_verify(tok.base, tok.len, slot->keys, &policy, now, &jwt);
        if (st == FICUS_JWT_ERR_UNKNOWN_KID && may_wait) {
            h2o_iovec_t kid = header_kid(r, jwt.header);
            ficus_jwt_dispose(&jwt);
            return wait_for_keys(conf, r, tok, kid);
        }
        if (st != FICUS_JWT_OK) {
            ficus_jwt_dispose(&jwt);
            count(conf, r, (size_t)-st);
            char *reason = h2o_mem_alloc_pool(&r->h2o->pool, 64); /* read by the access log when the request ends */
            snprintf(reason, 64, "jwt_%s", ficus_jwt_status_name(st));
            respond_401(r, "invalid_token", reason);
            return FICUS_RESPONDED;
        }
        claims = json_incref(jwt.claims);
        cache_insert(p, slot->keys_version, hash, tok.base, tok.len, jwt.exp, jwt.claims);
        ficus_jwt_dispose(&jwt);
    }
    int ok = authorized(conf, claims);
    if (ok) {
        count(conf, r, 0);
        forward_claims(conf, r, claims);
        if (r->claims == NULL)
            r->claims = json_incref(claims); /* for later plugins (rate limit keys); released when the request ends */
    }
    json_decref(claims);
    if (!ok) {
        count(conf, r, FICUS_PROVIDER_RESULT_INSUFFICIENT_SCOPE);
        h2o_add_header(&r->h2o->pool, &r->h2o->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                       H2O_STRLIT("Bearer realm=\"ficus\", error=\"insufficient_scope\""));
        r->error = "jwt_insufficient_scope";
        ficus_req_respond_error(r, 403, "insufficient_scope");
        return FICUS_RESPONDED;
    }
    return FICUS_CONTINUE;
}

static void on_waiter(ficus_provider_waiter_t *waiter, int timed_out)
{
    jwt_pending_t *pending = H2O_STRUCT_FROM_MEMBER(jwt_pending_t, waiter, waiter);
    ficus_req_t *r = pending->req;
    if (timed_out) {
        count(pending->conf, r, (size_t)-FICUS_JWT_ERR_UNKNOWN_KID);
        respond_401(r, "invalid_token", "jwt_unknown_kid"); /* kid_wait elapsed */
        return;
    }
    if (check_token(pending->conf, r, pending->token, 0) == FICUS_CONTINUE)
        ficus_req_resume(r);
}

static void on_pending_dispose(void *_pending)
{
    jwt_pending_t *pending = _pending;
    ficus_provider_cancel_wait(pending->conf->provider, pending->req->worker, &pending->waiter);
}

static ficus_status_t on_request(void *_conf, ficus_req_t *r)
{
    jwt_conf_t *conf = _conf;
    h2o_iovec_t tok;
    switch (find_token(conf, r->h2o, &tok)) {
    case TOKEN_NONE:
        if (!conf->required)
            return FICUS_CONTINUE;
        count(conf, r, FICUS_PROVIDER_RESULT_MISSING_TOKEN);
        respond_401(r, NULL, "jwt_missing_token");
        return FICUS_RESPONDED;
    case TOKEN_MALFORMED_HEADER:
        count(conf, r, FICUS_PROVIDER_RESULT_BAD_REQUEST);
        respond_401(r, "invalid_request", "jwt_bad_request");
        return FICUS_RESPONDED;
    case TOKEN_FOUND:
        break;
    }
    if (tok.len > conf->max_token_bytes) {
        count(conf, r, (size_t)-FICUS_JWT_ERR_TOO_LARGE);
        respond_401(r, "invalid_token", "jwt_too_large");
        return FICUS_RESPONDED;
    }
    return check_token(conf, r, tok, 1);
}

/* Unknown kid: wait for the control thread's answer about it (ficus/provider.h), then verify again. PAUSE, or
 * RESPONDED (401) when no wait is possible. */
static ficus_status_t wait_for_keys(jwt_conf_t *conf, ficus_req_t *r, h2o_iovec_t tok, h2o_iovec_t kid)
{
    jwt_pending_t *pending = h2o_mem_alloc_shared(&r->h2o->pool, sizeof(*pending), on_pending_dispose);
    memset(pending, 0, sizeof(*pending));
    pending->req = r;
    pending->conf = conf;
    pending->token = tok;
    pending->waiter.cb = on_waiter;
    pending->waiter.kid = kid;
    if (ficus_provider_wait_for_refetch(conf->provider, r->worker, &pending->waiter) != 0) {
        count(conf, r, (size_t)-FICUS_JWT_ERR_UNKNOWN_KID);
        respond_401(r, "invalid_token", "jwt_unknown_kid");
        return FICUS_RESPONDED;
    }
    return FICUS_PAUSE;
}

const ficus_plugin_t ficus_plugin_jwt = {
    .name = "jwt",
    .on_config = on_config,
    .dispose = dispose,
    .on_request = on_request,
};
