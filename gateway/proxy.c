/* ficus's own upstream layer: one proxied request over ficus's upstream client, per-endpoint keep-alive pools per worker.
 *
 * DESIGN: H2O's built-in proxy has one URL per handler, one timeout and no retries, so ficus drives its own HTTP/1.1
 * client (gateway/upstream_client.c). Per worker and generation, each upstream has its timers and each endpoint its
 * own keep-alive pool (no cross-thread lock, idle connections stay on the loop). An attempt picks the next endpoint
 * round robin.
 *   - connect failure or connect timeout: nothing was sent, so the next endpoint is tried (each at most once);
 *   - the connection dies before the response head (typically a keep-alive connection the upstream just closed):
 *     retried once on the next endpoint for idempotent methods, else 502;
 *   - no response head within `timeout`: 504 (not retried: the upstream may be working on it);
 *   - a malformed head or framing: 502;
 *   - more than the worker's share of `max_connections` in flight: 503 at once.
 * BOUNDS: in-flight requests per upstream are capped by max_connections (split across workers); idle connections per
 * endpoint by that share too (FICUS_UPSTREAM_MAX_IDLE when unlimited), for keepalive_timeout each.
 * STREAMING: response bodies are relayed as they arrive through an h2o_doublebuffer, with backpressure from the
 * client: the upstream is read only when the previous chunk was written (H2O calls proceed). Request bodies arrive
 * fully buffered from H2O (bounded by server.limits.max_body_bytes).
 * LIFETIME: the proxy state lives in the request pool; its dispose cancels the exchange (closing its connection). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include "ficus/clock.h"
#include "ficus/log.h"
#include "ficus/worker.h"

typedef struct st_ficus_proxy_t {
    h2o_generator_t super;
    ficus_req_t *r;
    ficus_upstream_rt_t *up;
    ficus_endpoint_rt_t *ep; /* endpoint of the current attempt (holds one in-flight slot) */
    ficus_upc_t x;
    h2o_iovec_t path;       /* after prefix rewriting, with query */
    h2o_iovec_t reqbufs[3]; /* request line + host, other headers, body */
    size_t num_reqbufs;
    size_t attempts;
    int retried_reset;
    int holds_slot; /* counted in up->inflight */
    h2o_doublebuffer_t sending;
    int body_error;
} ficus_proxy_t;

static void count_error(ficus_proxy_t *p, ficus_upstream_error_t kind)
{
    ficus_counter_add(&p->up->conf->stats->slots[p->r->worker->index].errors[kind], 1);
}

static void release_endpoint(ficus_proxy_t *p)
{
    if (p->ep != NULL) {
        --p->ep->inflight;
        p->ep = NULL;
    }
}

/* ---- building the upstream request ---- */

static int is_hop_by_hop(const h2o_iovec_t *name, const h2o_req_t *req)
{
    if (name == &H2O_TOKEN_CONNECTION->buf || name == &H2O_TOKEN_KEEP_ALIVE->buf || name == &H2O_TOKEN_TE->buf ||
        name == &H2O_TOKEN_TRANSFER_ENCODING->buf || name == &H2O_TOKEN_UPGRADE->buf || name == &H2O_TOKEN_HTTP2_SETTINGS->buf ||
        h2o_lcstris(name->base, name->len, H2O_STRLIT("proxy-connection")) ||
        h2o_lcstris(name->base, name->len, H2O_STRLIT("trailer")))
        return 1;
    /* headers named by the client's Connection header are hop-by-hop too (RFC 9110 7.6.1) */
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_CONNECTION, i)) != -1;) {
        h2o_iovec_t v = req->headers.entries[i].value, tok;
        const char *p = v.base;
        while (ficus_http_list_next(&p, v.base + v.len, &tok))
            if (h2o_lcstris(tok.base, tok.len, name->base, name->len)) /* name is lowercase, the token any case */
                return 1;
    }
    return 0;
}

static int is_replaced_header(const h2o_iovec_t *name)
{
    /* set by ficus itself: the client's copies never reach the upstream */
    return name == &H2O_TOKEN_HOST->buf || name == &H2O_TOKEN_CONTENT_LENGTH->buf || name == &H2O_TOKEN_EXPECT->buf ||
           name == &H2O_TOKEN_X_FORWARDED_FOR->buf || h2o_lcstris(name->base, name->len, H2O_STRLIT("x-forwarded-proto")) ||
           h2o_lcstris(name->base, name->len, H2O_STRLIT("x-forwarded-host")) ||
           h2o_lcstris(name->base, name->len, H2O_STRLIT("x-request-id"));
}

typedef struct st_ficus_strbuf_t {
    char *base;
    size_t len, cap;
    h2o_mem_pool_t *pool;
} ficus_strbuf_t;

static void sb_append(ficus_strbuf_t *sb, const char *s, size_t n)
{
    if (sb->len + n > sb->cap) {
        size_t cap = (sb->len + n) * 2;
        char *nb = h2o_mem_alloc_pool(sb->pool, cap);
        memcpy(nb, sb->base, sb->len);
        sb->base = nb;
        sb->cap = cap;
    }
    memcpy(sb->base + sb->len, s, n);
    sb->len += n;
}

static void sb_header(ficus_strbuf_t *sb, const char *name, size_t nlen, const char *value, size_t vlen)
{
    sb_append(sb, name, nlen);
    sb_append(sb, ": ", 2);
    sb_append(sb, value, vlen);
    sb_append(sb, "\r\n", 2);
}

static size_t peer_address(h2o_req_t *req, struct sockaddr_storage *ss, char *buf, size_t bufsize)
{
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (void *)ss);
    buf[0] = '\0';
    if (len == 0)
        return 0;
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)ss)->sin_addr, buf, bufsize);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ss)->sin6_addr, buf, bufsize);
    return strlen(buf);
}

/* Rewrites the path for strip_prefix/add_prefix. Returns 0, or -1 when the raw path does not start with the prefix
 * (it matched only after percent-decoding). */
static int upstream_path(ficus_req_t *r, h2o_iovec_t *out)
{
    h2o_req_t *req = r->h2o;
    const ficus_route_t *route = r->route;
    h2o_iovec_t rest = req->path, strip = route->data.proxy.strip_prefix, add = route->data.proxy.add_prefix;
    if (strip.base == NULL && add.base == NULL) {
        *out = req->path;
        return 0;
    }
    if (strip.base != NULL) {
        size_t slen = strip.len;
        if (slen > 1 && strip.base[slen - 1] == '/')
            --slen; /* "/api/" strips "/api" and keeps the slash */
        if (rest.len < slen || memcmp(rest.base, strip.base, slen) != 0)
            return -1;
        rest = h2o_iovec_init(rest.base + slen, rest.len - slen);
    }
    h2o_iovec_t prefix = add.base != NULL ? add : h2o_iovec_init("", 0);
    if (prefix.len != 0 && prefix.base[prefix.len - 1] == '/' && rest.len != 0 && rest.base[0] == '/')
        --prefix.len;
    int need_slash = prefix.len == 0 && (rest.len == 0 || rest.base[0] != '/');
    int need_sep =
        prefix.len != 0 && rest.len != 0 && rest.base[0] != '/' && rest.base[0] != '?' && prefix.base[prefix.len - 1] != '/';
    char *buf = h2o_mem_alloc_pool(&req->pool, prefix.len + rest.len + 2);
    size_t n = 0;
    if (need_slash)
        buf[n++] = '/';
    memcpy(buf + n, prefix.base, prefix.len);
    n += prefix.len;
    if (need_sep)
        buf[n++] = '/';
    memcpy(buf + n, rest.base, rest.len);
    n += rest.len;
    *out = h2o_iovec_init(buf, n);
    return 0;
}

static void build_request(ficus_proxy_t *p, h2o_iovec_t path)
{
    ficus_req_t *r = p->r;
    h2o_req_t *req = r->h2o;
    ficus_strbuf_t sb = {NULL, 0, 0, &req->pool};
    sb.cap = 512 + req->path.len;
    for (size_t i = 0; i != req->headers.size; ++i)
        sb.cap += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    sb.base = h2o_mem_alloc_pool(&req->pool, sb.cap);

    p->path = path;
    if (req->entity.base != NULL || h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")) ||
        h2o_memis(req->method.base, req->method.len, H2O_STRLIT("PUT")) ||
        h2o_memis(req->method.base, req->method.len, H2O_STRLIT("PATCH"))) {
        char cl[24];
        int n = snprintf(cl, sizeof(cl), "%zu", req->entity.base != NULL ? req->entity.len : 0);
        sb_header(&sb, H2O_STRLIT("content-length"), cl, n);
    }

    h2o_iovec_t client_xff = {NULL, 0};
    for (size_t i = 0; i != req->headers.size; ++i) {
        const h2o_header_t *h = req->headers.entries + i;
        if (h->name == &H2O_TOKEN_X_FORWARDED_FOR->buf && client_xff.base == NULL)
            client_xff = h->value;
        if (is_replaced_header(h->name) || is_hop_by_hop(h->name, req))
            continue;
        sb_header(&sb, h->name->base, h->name->len, h->value.base, h->value.len);
    }

    /* X-Forwarded-For: the client's value only when the peer is a trusted proxy (RFC 7239 spirit) */
    struct sockaddr_storage ss;
    char peer[INET6_ADDRSTRLEN];
    size_t peer_len = peer_address(req, &ss, peer, sizeof(peer));
    if (peer_len != 0) {
        if (client_xff.base != NULL &&
            ficus_cidr_contains(r->config->server.trusted_proxies, r->config->server.num_trusted_proxies, (void *)&ss)) {
            sb_append(&sb, H2O_STRLIT("x-forwarded-for: "));
            sb_append(&sb, client_xff.base, client_xff.len);
            sb_append(&sb, H2O_STRLIT(", "));
            sb_append(&sb, peer, peer_len);
            sb_append(&sb, H2O_STRLIT("\r\n"));
        } else {
            sb_header(&sb, H2O_STRLIT("x-forwarded-for"), peer, peer_len);
        }
    }
    if (r->is_tls)
        sb_header(&sb, H2O_STRLIT("x-forwarded-proto"), H2O_STRLIT("https"));
    else
        sb_header(&sb, H2O_STRLIT("x-forwarded-proto"), H2O_STRLIT("http"));
    if (req->authority.len != 0)
        sb_header(&sb, H2O_STRLIT("x-forwarded-host"), req->authority.base, req->authority.len);
    sb_header(&sb, H2O_STRLIT("x-request-id"), r->request_id.base, r->request_id.len);
    sb_append(&sb, H2O_STRLIT("\r\n"));

    p->reqbufs[1] = h2o_iovec_init(sb.base, sb.len);
    p->num_reqbufs = 2;
    if (req->entity.base != NULL && req->entity.len != 0)
        p->reqbufs[p->num_reqbufs++] = req->entity;
}

/* The request line and Host, which depends on the endpoint of the attempt (unless preserve_host). */
static h2o_iovec_t build_request_line(ficus_proxy_t *p)
{
    h2o_req_t *req = p->r->h2o;
    h2o_iovec_t host = p->r->route->data.proxy.preserve_host ? req->authority : p->ep->conf->authority;
    size_t cap = req->method.len + p->path.len + host.len + 32;
    char *buf = h2o_mem_alloc_pool(&req->pool, cap);
    /* per request: assembled with memcpy, no printf */
    size_t n = 0;
#define APPEND(s, l) (memcpy(buf + n, (s), (l)), n += (l))
    APPEND(req->method.base, req->method.len);
    APPEND(" ", 1);
    APPEND(p->path.base, p->path.len);
    APPEND(" HTTP/1.1\r\nhost: ", 17);
    APPEND(host.base, host.len);
    APPEND("\r\n", 2);
#undef APPEND
    return h2o_iovec_init(buf, n);
}

/* ---- the response ---- */

static void fail(ficus_proxy_t *p, int status, const char *code, const char *reason)
{
    ficus_req_t *r = p->r;
    r->error = reason;
    if (p->holds_slot) {
        --p->up->inflight;
        p->holds_slot = 0;
    }
    ficus_debug("upstream %s: %s (request %.*s)", p->up->conf->name, reason, (int)r->request_id.len, r->request_id.base);
    ficus_req_respond_error(r, status, code);
}

static void on_body(ficus_upc_t *x, const char *err);

static void do_send(ficus_proxy_t *p)
{
    h2o_iovec_t vec;
    h2o_send_state_t state;
    assert(p->sending.bytes_inflight == 0);
    vec = h2o_doublebuffer_prepare(&p->sending, &p->x.body, p->r->h2o->preferred_chunk_size);
    if (p->x.done && vec.len == p->sending.buf->size && p->x.body->size == 0) {
        state = p->body_error ? H2O_SEND_STATE_ERROR : H2O_SEND_STATE_FINAL;
        p->r->_completed = 1;
        h2o_send(p->r->h2o, &vec, vec.len != 0 ? 1 : 0, state);
    } else if (vec.len != 0) {
        h2o_send(p->r->h2o, &vec, 1, H2O_SEND_STATE_IN_PROGRESS);
    } else {
        /* everything read so far went out: read more (the upstream is not read while a chunk is in flight) */
        ficus_upc_read_body(&p->x, on_body);
    }
}

static void do_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    ficus_proxy_t *p = (void *)generator;
    h2o_doublebuffer_consume(&p->sending);
    do_send(p);
}

static void do_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    ficus_proxy_t *p = (void *)generator;
    ficus_upc_cancel(&p->x); /* closes the upstream connection if the response was not complete */
}

static void on_body(ficus_upc_t *x, const char *err)
{
    ficus_proxy_t *p = x->data;
    if (err != NULL) {
        if (err != ficus_upc_eos) {
            int is_timeout = err == ficus_upc_err_timeout;
            p->body_error = 1;
            p->r->error = is_timeout ? "upstream_timeout_body" : "upstream_reset_body";
            count_error(p, is_timeout ? FICUS_UPSTREAM_ERR_TIMEOUT : FICUS_UPSTREAM_ERR_RESET);
        }
        release_endpoint(p);
    }
    if (p->sending.bytes_inflight == 0)
        do_send(p);
}

static int is_dropped_response_header(const h2o_iovec_t *name)
{
    return name == &H2O_TOKEN_CONNECTION->buf || name == &H2O_TOKEN_KEEP_ALIVE->buf || name == &H2O_TOKEN_TRANSFER_ENCODING->buf ||
           name == &H2O_TOKEN_TE->buf || name == &H2O_TOKEN_UPGRADE->buf || name == &H2O_TOKEN_CONTENT_LENGTH->buf ||
           name == &H2O_TOKEN_SERVER->buf || name == &H2O_TOKEN_DATE->buf ||
           h2o_lcstris(name->base, name->len, H2O_STRLIT("proxy-connection")) ||
           h2o_lcstris(name->base, name->len, H2O_STRLIT("trailer"));
}

static int is_idempotent(h2o_iovec_t method)
{
    static const char *const methods[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE", NULL};
    for (const char *const *m = methods; *m != NULL; ++m)
        if (h2o_memis(method.base, method.len, *m, strlen(*m)))
            return 1;
    return 0;
}

static void attempt(ficus_proxy_t *p);

static void on_head(ficus_upc_t *x, const char *err, const ficus_upc_response_t *res)
{
    ficus_proxy_t *p = x->data;
    ficus_req_t *r = p->r;
    h2o_req_t *req = r->h2o;

    if (err != NULL) {
        release_endpoint(p);
        if (err == ficus_upc_err_timeout) {
            count_error(p, FICUS_UPSTREAM_ERR_TIMEOUT);
            fail(p, 504, "gateway_timeout", "upstream_timeout");
        } else if (err == ficus_upc_err_reset) {
            /* typically a keep-alive connection the upstream closed as we reused it: nothing was processed */
            count_error(p, FICUS_UPSTREAM_ERR_RESET);
            if (!p->retried_reset && is_idempotent(req->method)) {
                p->retried_reset = 1;
                ficus_counter_add(&p->up->conf->stats->slots[r->worker->index].retries, 1);
                p->attempts = 0;
                attempt(p);
            } else {
                fail(p, 502, "bad_gateway", "upstream_reset");
            }
        } else {
            count_error(p, FICUS_UPSTREAM_ERR_PROTOCOL);
            fail(p, 502, "bad_gateway", "upstream_protocol_error");
        }
        return;
    }

    r->upstream.status = res->status;
    r->upstream.head_at_us = ficus_mono_us();
    req->res.status = res->status;
    req->res.reason = h2o_strdup(&req->pool, res->reason.base, res->reason.len).base;
    if (res->content_length != SIZE_MAX)
        req->res.content_length = res->content_length;
    for (size_t i = 0; i != res->num_headers; ++i) {
        const h2o_iovec_t *name = res->headers[i].name;
        if (is_dropped_response_header(name))
            continue;
        h2o_iovec_t value = h2o_strdup(&req->pool, res->headers[i].value.base, res->headers[i].value.len);
        if (h2o_iovec_is_token(name)) {
            h2o_add_header(&req->pool, &req->res.headers, (const h2o_token_t *)name, NULL, value.base, value.len);
        } else {
            h2o_iovec_t n = h2o_strdup(&req->pool, name->base, name->len);
            h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 0, NULL, value.base, value.len);
        }
    }
    if (x->done)
        release_endpoint(p);
    ficus_req_before_response(r);
    p->super.proceed = do_proceed;
    p->super.stop = do_stop;
    h2o_start_response(req, &p->super);
    do_send(p);
}

static void on_connect(ficus_upc_t *x, const char *err)
{
    ficus_proxy_t *p = x->data;
    if (err != NULL) {
        release_endpoint(p);
        int is_timeout = err == ficus_upc_err_connect_timeout;
        count_error(p, is_timeout ? FICUS_UPSTREAM_ERR_TIMEOUT : FICUS_UPSTREAM_ERR_CONNECT);
        if (p->attempts < p->up->conf->num_endpoints) {
            attempt(p);
        } else if (is_timeout) {
            fail(p, 504, "gateway_timeout", "upstream_connect_timeout");
        } else {
            fail(p, 502, "bad_gateway",
                 err == ficus_upc_err_connect_refused ? "upstream_connect_refused" : "upstream_connect_failed");
        }
        return;
    }
    p->reqbufs[0] = build_request_line(p);
    ficus_upc_send(x, p->reqbufs, p->num_reqbufs, h2o_memis(p->r->h2o->method.base, p->r->h2o->method.len, H2O_STRLIT("HEAD")),
                   on_head);
}

static void attempt(ficus_proxy_t *p)
{
    ficus_upstream_rt_t *up = p->up;
    ++p->attempts;
    p->ep = up->endpoints + (up->next++ % up->conf->num_endpoints);
    ++p->ep->inflight;
    p->r->upstream.endpoint = p->ep->conf->authority.base;
    p->r->upstream.started_at_us = ficus_mono_us();
    /* may call on_connect synchronously (a pooled connection, or a connect that failed at once) */
    ficus_upc_connect(&p->x, &p->ep->pool, on_connect);
}

static void on_proxy_dispose(void *_p)
{
    ficus_proxy_t *p = _p;
    ficus_upc_dispose(&p->x);
    release_endpoint(p);
    if (p->holds_slot)
        --p->up->inflight;
    h2o_doublebuffer_dispose(&p->sending);
}

void ficus_proxy_start(ficus_req_t *r, ficus_upstream_rt_t *up)
{
    h2o_req_t *req = r->h2o;
    h2o_iovec_t path;
    if (upstream_path(r, &path) != 0) {
        ficus_req_respond_error(r, 400, "bad_path");
        return;
    }
    ficus_counter_add(&up->conf->stats->slots[r->worker->index].requests, 1);
    if (up->inflight >= up->max_inflight) {
        ficus_counter_add(&up->conf->stats->slots[r->worker->index].errors[FICUS_UPSTREAM_ERR_OVERLOADED], 1);
        r->error = "upstream_overloaded";
        ficus_req_respond_error(r, 503, "upstream_overloaded");
        return;
    }
    ficus_proxy_t *p = h2o_mem_alloc_shared(&req->pool, sizeof(*p), on_proxy_dispose);
    memset(p, 0, sizeof(*p));
    p->r = r;
    p->up = up;
    ficus_upc_init(&p->x, p);
    h2o_doublebuffer_init(&p->sending, &h2o_socket_buffer_prototype);
    ++up->inflight;
    p->holds_slot = 1;
    build_request(p, path);
    attempt(p);
}

/* ---- per-worker runtime ---- */

void ficus_upstream_rt_init(ficus_upstream_rt_t *rt, const ficus_upstream_conf_t *conf, ficus_worker_t *w, unsigned num_workers)
{
    memset(rt, 0, sizeof(*rt));
    rt->conf = conf;
    h2o_timeout_init(w->loop, &rt->io_timeout, conf->timeout_ms);
    /* a connect never waited longer than `timeout` with H2O's client either */
    h2o_timeout_init(w->loop, &rt->connect_timeout,
                     conf->connect_timeout_ms < conf->timeout_ms ? conf->connect_timeout_ms : conf->timeout_ms);
    h2o_timeout_init(w->loop, &rt->keepalive_timeout, conf->keepalive_timeout_ms);
    rt->max_inflight = conf->max_connections == 0 ? SIZE_MAX : (conf->max_connections + num_workers - 1) / num_workers;
    size_t max_idle = rt->max_inflight < FICUS_UPSTREAM_MAX_IDLE ? rt->max_inflight : FICUS_UPSTREAM_MAX_IDLE;
    rt->endpoints = calloc(conf->num_endpoints, sizeof(*rt->endpoints));
    if (rt->endpoints == NULL)
        ficus_fatal("no memory");
    for (size_t i = 0; i != conf->num_endpoints; ++i) {
        ficus_endpoint_rt_t *ep = rt->endpoints + i;
        ep->conf = conf->endpoints + i;
        ficus_upc_pool_init(&ep->pool, w->loop, &w->ctx.receivers.hostinfo_getaddr, ep->conf->host, ep->conf->port,
                            &rt->connect_timeout, &rt->io_timeout, conf->keepalive_timeout_ms != 0 ? &rt->keepalive_timeout : NULL,
                            max_idle);
    }
}

void ficus_upstream_rt_dispose(ficus_upstream_rt_t *rt, ficus_worker_t *w)
{
    /* runs once no request uses this generation: only idle connections are left, and closing them unlinks their
     * timers, so nothing of this runtime can be called back afterwards */
    for (size_t i = 0; i != rt->conf->num_endpoints; ++i)
        ficus_upc_pool_dispose(&rt->endpoints[i].pool);
    free(rt->endpoints);
    h2o_timeout_dispose(w->loop, &rt->io_timeout);
    h2o_timeout_dispose(w->loop, &rt->connect_timeout);
    h2o_timeout_dispose(w->loop, &rt->keepalive_timeout);
}
