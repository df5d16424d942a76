/* The traffic decision of a proxied request (see ficus/traffic.h): which upstream, why, and what the response says
 * about it.
 *
 * ORDER (split): an override (header first, then cookie) naming one of the split's upstreams wins; else the first key
 * present (claim:, header:, cookie:, ip) is hashed with the salt into the user's bucket; else the sticky cookie's
 * value is the key (a visitor without one gets a random value, set in the response); else a random bucket. The
 * bucket maps to an upstream by weighted rendezvous hashing (gateway/split.c). It runs as the route's action, so
 * after every plugin: claims from jwt / sso are there.
 * HYGIENE: the override header and cookie are removed from the request before it goes upstream, whatever their
 * value (a name outside the split is ignored: it can never reach an upstream the split does not list).
 * COST: no allocation on the common path (a key present, no cookie to strip); one hash, one log() per target. */
#include <arpa/inet.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/clock.h"
#include "ficus/cookie.h"
#include "ficus/traffic.h"
#include "ficus/upstream.h"
#include "ficus/worker.h"

#define STICKY_MAX_AGE "31536000" /* one year: the bucket of a keyless visitor outlives any ramp */
#define STICKY_VALUE_LEN 16

size_t ficus_split_target_by_name(const ficus_split_conf_t *split, const char *value, size_t len)
{
    for (size_t i = 0; i != split->num_targets; ++i)
        if (h2o_memis(value, len, split->targets[i].name, strlen(split->targets[i].name)))
            return i;
    return SIZE_MAX;
}

h2o_iovec_t ficus_cookie_strip(h2o_mem_pool_t *pool, h2o_iovec_t value, const char *name, size_t name_len)
{
    char *out = NULL;
    size_t olen = 0;
    const char *p = value.base, *end = value.base + value.len;
    while (p < end) {
        const char *start = p;
        while (p < end && *p != ';')
            ++p;
        const char *pair = start, *pair_end = p;
        while (pair < pair_end && (*pair == ' ' || *pair == '\t'))
            ++pair;
        while (pair_end > pair && (pair_end[-1] == ' ' || pair_end[-1] == '\t'))
            --pair_end;
        if (p < end)
            ++p; /* the ';' */
        int named = (size_t)(pair_end - pair) >= name_len + 1 && memcmp(pair, name, name_len) == 0 && pair[name_len] == '=';
        if (named) {
            if (out == NULL) {
                /* first removal: copy what came before, then continue copying pair by pair */
                /* pairs are joined with "; " where the input may have had a bare ';': at most one byte more per pair */
                out = h2o_mem_alloc_pool(pool, value.len * 2 + 2);
                const char *q = value.base;
                while (q < start) {
                    const char *s = q;
                    while (q < start && *q != ';')
                        ++q;
                    const char *a = s, *b = q;
                    while (a < b && (*a == ' ' || *a == '\t'))
                        ++a;
                    while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
                        --b;
                    if (b > a) {
                        if (olen != 0)
                            memcpy(out + olen, "; ", 2), olen += 2;
                        memcpy(out + olen, a, b - a);
                        olen += b - a;
                    }
                    if (q < start)
                        ++q;
                }
            }
            continue;
        }
        if (out != NULL && pair_end > pair) {
            if (olen != 0)
                memcpy(out + olen, "; ", 2), olen += 2;
            memcpy(out + olen, pair, pair_end - pair);
            olen += pair_end - pair;
        }
    }
    if (out == NULL)
        return value;
    return h2o_iovec_init(out, olen);
}

/* Removes the cookie `name` from every Cookie header of the request (deleting headers left empty). Returns its
 * first value (pointing into the request's original headers, which stay in the pool), or {NULL, 0}. */
static h2o_iovec_t take_cookie(h2o_req_t *req, h2o_iovec_t name)
{
    h2o_iovec_t found = ficus_cookie_get(req, name.base, name.len);
    if (found.base == NULL)
        return found;
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) != -1;) {
        h2o_iovec_t v = ficus_cookie_strip(&req->pool, req->headers.entries[i].value, name.base, name.len);
        if (v.len == 0) {
            h2o_delete_header(&req->headers, i);
            --i; /* the next header moved into slot i */
        } else {
            req->headers.entries[i].value = v;
        }
    }
    return found;
}

static h2o_iovec_t take_header(h2o_req_t *req, h2o_iovec_t name)
{
    h2o_iovec_t found = {NULL, 0};
    ssize_t i;
    while ((i = h2o_find_header_by_str(&req->headers, name.base, name.len, -1)) != -1) {
        if (found.base == NULL)
            found = req->headers.entries[i].value;
        h2o_delete_header(&req->headers, i);
    }
    return found;
}

/* The user's key: the first of the split's keys present and non-empty. */
static int find_key(ficus_req_t *r, const ficus_split_conf_t *s, h2o_iovec_t *key)
{
    h2o_req_t *req = r->h2o;
    for (size_t i = 0; i != s->num_keys; ++i) {
        const ficus_split_key_t *k = s->keys + i;
        h2o_iovec_t v = {NULL, 0};
        switch (k->kind) {
        case FICUS_SPLIT_KEY_CLAIM: {
            json_t *c = r->claims != NULL ? json_object_get(r->claims, k->name.base) : NULL;
            if (json_is_string(c)) {
                v = h2o_iovec_init(json_string_value(c), json_string_length(c));
            } else if (json_is_integer(c)) {
                char *buf = h2o_mem_alloc_pool(&req->pool, 24);
                v = h2o_iovec_init(buf, snprintf(buf, 24, "%lld", (long long)json_integer_value(c)));
            }
        } break;
        case FICUS_SPLIT_KEY_HEADER: {
            ssize_t at = h2o_find_header_by_str(&req->headers, k->name.base, k->name.len, -1);
            if (at != -1)
                v = req->headers.entries[at].value;
        } break;
        case FICUS_SPLIT_KEY_COOKIE:
            v = ficus_cookie_get(req, k->name.base, k->name.len);
            break;
        case FICUS_SPLIT_KEY_IP: {
            struct sockaddr_storage ss;
            socklen_t len = req->conn->callbacks->get_peername(req->conn, (void *)&ss);
            if (len != 0 && ss.ss_family == AF_INET)
                v = h2o_iovec_init(&((struct sockaddr_in *)&ss)->sin_addr, 4);
            else if (len != 0 && ss.ss_family == AF_INET6)
                v = h2o_iovec_init(&((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
            if (v.base != NULL) /* the address bytes, copied out of the local sockaddr */
                v = h2o_strdup(&req->pool, v.base, v.len);
        } break;
        }
        if (v.base != NULL && v.len != 0) {
            *key = v;
            return 1;
        }
    }
    return 0;
}

static int is_sticky_value(h2o_iovec_t v)
{
    if (v.len == 0 || v.len > 64)
        return 0;
    for (size_t i = 0; i != v.len; ++i)
        if (!((v.base[i] >= '0' && v.base[i] <= '9') || (v.base[i] >= 'a' && v.base[i] <= 'z') ||
              (v.base[i] >= 'A' && v.base[i] <= 'Z') || v.base[i] == '-' || v.base[i] == '_'))
            return 0;
    return 1;
}

/* A fresh sticky value (random hex) and the Set-Cookie line that keeps it. */
static h2o_iovec_t new_sticky(ficus_req_t *r, const ficus_split_conf_t *s)
{
    static const char hex[] = "0123456789abcdef";
    h2o_req_t *req = r->h2o;
    uint64_t rnd = ((uint64_t)arc4random() << 32) | arc4random();
    char *value = h2o_mem_alloc_pool(&req->pool, STICKY_VALUE_LEN);
    for (int i = 0; i != STICKY_VALUE_LEN; ++i, rnd >>= 4)
        value[i] = hex[rnd & 15];
    static const char attrs[] = "; Path=/; Max-Age=" STICKY_MAX_AGE "; Secure; HttpOnly; SameSite=Lax";
    size_t len = s->sticky_cookie.len + 1 + STICKY_VALUE_LEN + sizeof(attrs) - 1;
    char *line = h2o_mem_alloc_pool(&req->pool, len);
    memcpy(line, s->sticky_cookie.base, s->sticky_cookie.len);
    line[s->sticky_cookie.len] = '=';
    memcpy(line + s->sticky_cookie.len + 1, value, STICKY_VALUE_LEN);
    memcpy(line + s->sticky_cookie.len + 1 + STICKY_VALUE_LEN, attrs, sizeof(attrs) - 1);
    r->traffic.set_cookie = h2o_iovec_init(line, len);
    return h2o_iovec_init(value, STICKY_VALUE_LEN);
}

static size_t choose_in_split(ficus_req_t *r, const ficus_split_conf_t *s, ficus_decision_t *decision)
{
    h2o_req_t *req = r->h2o;
    size_t idx = SIZE_MAX;
    if (s->override_header.base != NULL) {
        h2o_iovec_t v = take_header(req, s->override_header);
        if (v.base != NULL)
            idx = ficus_split_target_by_name(s, v.base, v.len);
    }
    if (s->override_cookie.base != NULL) {
        h2o_iovec_t v = take_cookie(req, s->override_cookie);
        if (v.base != NULL && idx == SIZE_MAX)
            idx = ficus_split_target_by_name(s, v.base, v.len);
    }
    if (idx != SIZE_MAX) {
        *decision = FICUS_DECISION_OVERRIDE;
        return idx;
    }
    h2o_iovec_t key;
    uint64_t bucket;
    if (find_key(r, s, &key)) {
        *decision = FICUS_DECISION_BUCKET;
        bucket = ficus_split_bucket(s->salt.base, s->salt.len, key.base, key.len);
    } else if (s->sticky_cookie.base != NULL) {
        *decision = FICUS_DECISION_STICKY_COOKIE;
        key = ficus_cookie_get(req, s->sticky_cookie.base, s->sticky_cookie.len);
        if (!is_sticky_value(key))
            key = new_sticky(r, s);
        bucket = ficus_split_bucket(s->salt.base, s->salt.len, key.base, key.len);
    } else {
        *decision = FICUS_DECISION_BUCKET;
        bucket = ((uint64_t)arc4random() << 32) | arc4random();
    }
    return ficus_split_pick(s->targets, s->num_targets, bucket);
}

void ficus_traffic_set_upstream(ficus_req_t *r, const ficus_upstream_conf_t *u, ficus_decision_t decision)
{
    r->traffic.upstream = u;
    r->traffic.decision = decision;
    ficus_route_upstream_stats_t *rs = r->route->traffic->stats[u->index];
    if (rs != NULL)
        ficus_counter_add(&rs->slots[r->worker->index].decisions[decision], 1);
}

const ficus_upstream_conf_t *ficus_traffic_choose(ficus_req_t *r)
{
    const ficus_traffic_conf_t *t = r->route->traffic;
    const ficus_upstream_conf_t *u = t->to;
    ficus_decision_t decision = FICUS_DECISION_ROUTE;
    if (t->split != NULL) {
        size_t idx = choose_in_split(r, t->split, &decision);
        u = t->split->upstreams[idx < t->split->num_targets ? idx : 0]; /* SIZE_MAX cannot happen: some weight is > 0 */
    }
    ficus_traffic_set_upstream(r, u, decision);
    return u;
}

void ficus_traffic_before_response(ficus_req_t *r)
{
    h2o_req_t *req = r->h2o;
    if (r->traffic.set_cookie.base != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, r->traffic.set_cookie.base,
                       r->traffic.set_cookie.len);
    if (r->traffic.upstream != NULL && r->config->server.expose_upstream)
        h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-ficus-upstream"), 0, r->traffic.upstream->name,
                              strlen(r->traffic.upstream->name), 1);
}

void ficus_traffic_on_request_end(ficus_req_t *r)
{
    if (r->traffic.mirror != NULL) /* the exchange never started or never reported (a 400 bad_path) */
        ficus_traffic_mirror_primary(r, 0, 0, 0, NULL);
    /* the answer of the upstream the request ended on (a failed attempt before a fallback is counted by the fallback) */
    if (r->traffic.upstream == NULL)
        return;
    if (r->upstream.status != 0) {
        ficus_traffic_record_response(r, r->traffic.upstream, r->upstream.status,
                                      r->upstream.head_at_us - r->upstream.started_at_us);
    } else if (r->_responded && r->h2o->res.status >= 500) {
        /* no answer: ficus's own 502/503/504 for this upstream (a client that left first is not the upstream's fault) */
        uint64_t started = r->upstream.started_at_us;
        ficus_traffic_record_response(r, r->traffic.upstream, r->h2o->res.status, started != 0 ? ficus_mono_us() - started : 0);
    }
}

static ficus_fallback_reason_t fallback_reason(ficus_proxy_failure_t why)
{
    switch (why) {
    case FICUS_PROXY_NO_ENDPOINT:
        return FICUS_FALLBACK_NO_ENDPOINT;
    case FICUS_PROXY_BREAKER_OPEN:
        return FICUS_FALLBACK_CIRCUIT_OPEN;
    case FICUS_PROXY_RESET:
        return FICUS_FALLBACK_RESET;
    case FICUS_PROXY_STATUS_502:
        return FICUS_FALLBACK_STATUS_502;
    case FICUS_PROXY_STATUS_503:
        return FICUS_FALLBACK_STATUS_503;
    case FICUS_PROXY_STATUS_504:
        return FICUS_FALLBACK_STATUS_504;
    default:
        return FICUS_FALLBACK_CONNECT;
    }
}

/* The chosen upstream failed before any response byte and the fallback is tried: the failure counts as that
 * upstream's 5xx, the fallback is where the request now goes (the response headers and the log say so). */
static void on_proxy_fallback(void *data, ficus_req_t *r, const ficus_upstream_conf_t *from, ficus_proxy_failure_t why,
                              const ficus_upstream_conf_t *to)
{
    const ficus_traffic_conf_t *t = r->route->traffic;
    uint64_t started = (uint64_t)(uintptr_t)data;
    int status = why >= FICUS_PROXY_STATUS_502 && why <= FICUS_PROXY_STATUS_504 ? 502 + (why - FICUS_PROXY_STATUS_502) : 502;
    ficus_traffic_record_response(r, from, status, ficus_mono_us() - started);
    ficus_fallback_stats_t *fs = t->fallback_stats[from->index];
    if (fs != NULL)
        ficus_counter_add(&fs->slots[r->worker->index].reasons[fallback_reason(why)], 1);
    ficus_traffic_set_upstream(r, to, FICUS_DECISION_FALLBACK);
}

static void on_proxy_done(void *data, ficus_req_t *r, const ficus_proxy_result_t *result)
{
    if (r->traffic.mirror != NULL)
        ficus_traffic_mirror_primary(r, result->complete && result->status != 0, result->status, result->body_bytes,
                                     result->has_digest ? result->digest : NULL);
}

void ficus_traffic_proxy(ficus_req_t *r)
{
    const ficus_traffic_conf_t *t = r->route->traffic;
    const ficus_upstream_conf_t *u = ficus_traffic_choose(r);
    if (t->mirror != NULL)
        ficus_traffic_mirror(r);
    ficus_proxy_options_t options = {.on_done = on_proxy_done,
                                     .on_fallback = on_proxy_fallback,
                                     .data = (void *)(uintptr_t)ficus_mono_us() /* when the exchange started */};
    if (t->fallback != NULL && t->fallback != u)
        options.fallback = ficus_upstream_rt_of(r, t->fallback);
    options.digest = r->traffic.mirror != NULL;
    ficus_proxy_start_ex(r, ficus_upstream_rt_of(r, u), &options);
}
