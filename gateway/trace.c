/* W3C trace context (see ficus/trace.h). Parsing is by position (the format is fixed-width), no sscanf. */
#include <string.h>
#include "ficus/config.h"
#include "ficus/req.h"
#include "ficus/trace.h"

#define TRACESTATE_MAX 512

static const char hex[] = "0123456789abcdef";

static int is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int all_zeros(const char *s, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        if (s[i] != '0')
            return 0;
    return 1;
}

/* traceparent = version "-" trace-id "-" parent-id "-" trace-flags (2-32-16-2 lowercase hex) */
static int parse_traceparent(h2o_iovec_t v, ficus_trace_t *t)
{
    const char *s = v.base;
    if (v.len < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' || !is_lower_hex(s, 2) || !is_lower_hex(s + 3, 32) ||
        !is_lower_hex(s + 36, 16) || !is_lower_hex(s + 53, 2))
        return 0;
    if (memcmp(s, "ff", 2) == 0 || all_zeros(s + 3, 32) || all_zeros(s + 36, 16))
        return 0;
    if (memcmp(s, "00", 2) == 0 ? v.len != 55 : (v.len > 55 && s[55] != '-'))
        return 0;
    memcpy(t->trace_id, s + 3, 32);
    t->trace_id[32] = '\0';
    /* only the sampled bit is defined by level 1; other bits are not propagated (the spec's advice) */
    t->flags[0] = '0';
    t->flags[1] = (s[54] >= '0' && s[54] <= '9' ? s[54] - '0' : s[54] - 'a' + 10) & 1 ? '1' : '0';
    t->flags[2] = '\0';
    return 1;
}

static void new_trace(ficus_trace_t *t)
{
    uint64_t a = ficus_random64(), b = ficus_random64();
    if ((a | b) == 0)
        b = 1; /* an all-zero trace id is invalid */
    for (int i = 15; i >= 0; --i, a >>= 4, b >>= 4) {
        t->trace_id[i] = hex[a & 15];
        t->trace_id[16 + i] = hex[b & 15];
    }
    t->trace_id[32] = '\0';
    memcpy(t->flags, "00", 3);
    t->continued = 0;
    t->tracestate = h2o_iovec_init(NULL, 0);
}

static int peer_is_trusted(ficus_req_t *r)
{
    struct sockaddr_storage ss;
    if (r->config->server.num_trusted_proxies == 0 || r->h2o->conn->callbacks->get_peername(r->h2o->conn, (void *)&ss) == 0)
        return 0;
    return ficus_cidr_contains(r->config->server.trusted_proxies, r->config->server.num_trusted_proxies, (void *)&ss);
}

void ficus_trace_start(ficus_req_t *r)
{
    ficus_trace_t *t = &r->trace;
    h2o_req_t *req = r->h2o;
    new_trace(t);
    if (!peer_is_trusted(r))
        return;
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("traceparent"), -1);
    if (i == -1 || h2o_find_header_by_str(&req->headers, H2O_STRLIT("traceparent"), i) != -1) /* two: invalid */
        return;
    ficus_trace_t parsed = *t;
    if (!parse_traceparent(req->headers.entries[i].value, &parsed))
        return;
    *t = parsed;
    t->continued = 1;
    /* tracestate: several headers are one list (RFC 9110 5.3); bounded, else dropped */
    size_t len = 0, n = 0;
    for (ssize_t j = -1; (j = h2o_find_header_by_str(&req->headers, H2O_STRLIT("tracestate"), j)) != -1; ++n)
        len += req->headers.entries[j].value.len + 1;
    if (n == 0 || len - 1 > TRACESTATE_MAX)
        return;
    char *buf = h2o_mem_alloc_pool(&req->pool, len), *p = buf;
    for (ssize_t j = -1; (j = h2o_find_header_by_str(&req->headers, H2O_STRLIT("tracestate"), j)) != -1;) {
        if (p != buf)
            *p++ = ',';
        memcpy(p, req->headers.entries[j].value.base, req->headers.entries[j].value.len);
        p += req->headers.entries[j].value.len;
    }
    for (size_t k = 0; k != (size_t)(p - buf); ++k)
        if ((unsigned char)buf[k] < 0x20 || (unsigned char)buf[k] == 0x7f)
            return; /* no control characters into the upstream request */
    t->tracestate = h2o_iovec_init(buf, p - buf);
}

size_t ficus_trace_headers(const ficus_trace_t *t, char *buf)
{
    size_t o = 0;
    memcpy(buf, "traceparent: 00-", 16);
    o = 16;
    memcpy(buf + o, t->trace_id, 32);
    o += 32;
    buf[o++] = '-';
    uint64_t span = ficus_random64();
    if (span == 0)
        span = 1;
    for (int i = 15; i >= 0; --i, span >>= 4)
        buf[o + i] = hex[span & 15];
    o += 16;
    buf[o++] = '-';
    buf[o++] = t->flags[0];
    buf[o++] = t->flags[1];
    buf[o++] = '\r';
    buf[o++] = '\n';
    if (t->tracestate.len != 0) {
        memcpy(buf + o, "tracestate: ", 12);
        o += 12;
        memcpy(buf + o, t->tracestate.base, t->tracestate.len);
        o += t->tracestate.len;
        buf[o++] = '\r';
        buf[o++] = '\n';
    }
    return o;
}

int ficus_trace_is_header(const h2o_iovec_t *name)
{
    return h2o_lcstris(name->base, name->len, H2O_STRLIT("traceparent")) ||
           h2o_lcstris(name->base, name->len, H2O_STRLIT("tracestate"));
}
