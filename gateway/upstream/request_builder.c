/* Building the upstream request (ficus/upstream/request_builder.h): path rewriting, header filtering, forwarding
 * headers.
 *
 * HEADERS: hop-by-hop headers (RFC 9110 7.6.1; those the client's Connection names were removed at request entry,
 * gateway/req_hygiene.c, before any plugin added its own) and those ficus sets itself (Host, Content-Length, Expect,
 * and the forwarding headers of ficus/forwarding.h) are not copied; Content-Length is set from the buffered body.
 * COST: the header block is assembled with memcpy into one pool buffer sized up front (no printf per header). */
#include <stdio.h>
#include <string.h>
#include "ficus/forwarding.h"
#include "ficus/req.h"
#include "ficus/trace.h"
#include "ficus/upstream/request_builder.h"

static int is_hop_by_hop(const h2o_iovec_t *name)
{
    return name == &H2O_TOKEN_CONNECTION->buf || name == &H2O_TOKEN_KEEP_ALIVE->buf || name == &H2O_TOKEN_TE->buf ||
           name == &H2O_TOKEN_TRANSFER_ENCODING->buf || name == &H2O_TOKEN_UPGRADE->buf || name == &H2O_TOKEN_HTTP2_SETTINGS->buf ||
           h2o_lcstris(name->base, name->len, H2O_STRLIT("proxy-connection")) ||
           h2o_lcstris(name->base, name->len, H2O_STRLIT("trailer"));
}

static int is_replaced_header(const h2o_iovec_t *name)
{
    /* set by ficus itself: the client's copies never reach the upstream */
    return name == &H2O_TOKEN_HOST->buf || name == &H2O_TOKEN_CONTENT_LENGTH->buf || name == &H2O_TOKEN_EXPECT->buf ||
           ficus_forwarding_is_own(name->base, name->len) || ficus_trace_is_header(name);
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

int ficus_upstream_request_path(ficus_req_t *r, h2o_iovec_t *out)
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

void ficus_upstream_request_build(ficus_upstream_request_t *p, ficus_req_t *r, h2o_iovec_t path)
{
    p->r = r;
    p->is_head = h2o_memis(r->h2o->method.base, r->h2o->method.len, H2O_STRLIT("HEAD"));
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

    for (size_t i = 0; i != req->headers.size; ++i) {
        const h2o_header_t *h = req->headers.entries + i;
        if (is_replaced_header(h->name) || is_hop_by_hop(h->name))
            continue;
        sb_header(&sb, h->name->base, h->name->len, h->value.base, h->value.len);
    }

    h2o_iovec_t fwd = ficus_forwarding_headers(r); /* X-Forwarded-*, Forwarded, X-Real-IP, X-Request-Id */
    sb_append(&sb, fwd.base, fwd.len);
    char trace[FICUS_TRACE_HEADERS_MAX];
    sb_append(&sb, trace, ficus_trace_headers(&r->trace, trace)); /* traceparent (a new span), tracestate */
    sb_append(&sb, H2O_STRLIT("\r\n"));

    p->reqbufs[1] = h2o_iovec_init(sb.base, sb.len);
    p->num_reqbufs = 2;
    if (req->entity.base != NULL && req->entity.len != 0)
        p->reqbufs[p->num_reqbufs++] = req->entity;
}

void ficus_upstream_request_line(ficus_upstream_request_t *p, const ficus_endpoint_conf_t *ep)
{
    h2o_req_t *req = p->r->h2o;
    h2o_iovec_t host = p->r->route->data.proxy.preserve_host ? req->authority : ep->authority;
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
    p->reqbufs[0] = h2o_iovec_init(buf, n);
}
