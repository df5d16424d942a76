/* Forwarding headers (see ficus/forwarding.h).
 *
 * OWNS: which request headers are ficus's own on the way upstream, and their values: X-Forwarded-For / Forwarded /
 * X-Real-IP from the peer address and server.trusted_proxies, X-Forwarded-Proto/Host, X-Request-Id. The request
 * builder (gateway/upstream/request_builder.c) skips the client's copies and appends this block. */
#include <arpa/inet.h>
#include <string.h>
#include "ficus/forwarding.h"
#include "ficus/req.h"

static const char *const own_headers[] = {"x-forwarded-for",   "forwarded",        "x-real-ip",
                                          "x-forwarded-proto", "x-forwarded-host", "x-request-id"};

int ficus_header_name_variant_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i != alen; ++i) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        x = x == '_' ? '-' : (x >= 'A' && x <= 'Z' ? x | 0x20 : x);
        y = y == '_' ? '-' : (y >= 'A' && y <= 'Z' ? y | 0x20 : y);
        if (x != y)
            return 0;
    }
    return 1;
}

int ficus_forwarding_is_own(const char *name, size_t len)
{
    for (size_t i = 0; i != sizeof(own_headers) / sizeof(own_headers[0]); ++i)
        if (ficus_header_name_variant_eq(name, len, own_headers[i], strlen(own_headers[i])))
            return 1;
    return 0;
}

typedef struct st_block_t {
    char *base;
    size_t len;
} block_t;

static void put(block_t *b, const char *s, size_t n)
{
    memcpy(b->base + b->len, s, n);
    b->len += n;
}

static h2o_iovec_t client_value(h2o_req_t *req, const char *name, size_t len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, len, -1);
    return i != -1 ? req->headers.entries[i].value : h2o_iovec_init(NULL, 0);
}

h2o_iovec_t ficus_forwarding_headers(ficus_req_t *r)
{
    h2o_req_t *req = r->h2o;
    struct sockaddr_storage ss;
    char peer[INET6_ADDRSTRLEN] = "";
    socklen_t sslen = req->conn->callbacks->get_peername(req->conn, (void *)&ss);
    int v6 = 0;
    if (sslen != 0 && ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, peer, sizeof(peer));
    else if (sslen != 0 && ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, peer, sizeof(peer)), v6 = 1;
    size_t plen = strlen(peer);
    int trusted =
        plen != 0 && ficus_cidr_contains(r->config->server.trusted_proxies, r->config->server.num_trusted_proxies, (void *)&ss);
    h2o_iovec_t xff = {NULL, 0}, fwd = {NULL, 0}, xrip = {NULL, 0};
    if (trusted) {
        xff = client_value(req, H2O_STRLIT("x-forwarded-for"));
        fwd = client_value(req, H2O_STRLIT("forwarded"));
        xrip = client_value(req, H2O_STRLIT("x-real-ip"));
    }
    h2o_iovec_t proto = r->is_tls ? h2o_iovec_init(H2O_STRLIT("https")) : h2o_iovec_init(H2O_STRLIT("http"));
    block_t b = {
        h2o_mem_alloc_pool(&req->pool, 256 + 3 * plen + xff.len + fwd.len + xrip.len + 2 * req->authority.len + r->request_id.len),
        0};
    if (plen != 0) {
        put(&b, H2O_STRLIT("x-forwarded-for: "));
        if (xff.base != NULL)
            put(&b, xff.base, xff.len), put(&b, H2O_STRLIT(", "));
        put(&b, peer, plen);
        /* RFC 7239: for=1.2.3.4 or for="[::1]"; host quoted (it may hold a ':') */
        put(&b, H2O_STRLIT("\r\nforwarded: "));
        if (fwd.base != NULL)
            put(&b, fwd.base, fwd.len), put(&b, H2O_STRLIT(", "));
        put(&b, H2O_STRLIT("for="));
        if (v6)
            put(&b, H2O_STRLIT("\"[")), put(&b, peer, plen), put(&b, H2O_STRLIT("]\""));
        else
            put(&b, peer, plen);
        if (req->authority.len != 0)
            put(&b, H2O_STRLIT(";host=\"")), put(&b, req->authority.base, req->authority.len), put(&b, H2O_STRLIT("\""));
        put(&b, H2O_STRLIT(";proto=")), put(&b, proto.base, proto.len);
        put(&b, H2O_STRLIT("\r\nx-real-ip: "));
        if (xrip.base != NULL)
            put(&b, xrip.base, xrip.len);
        else
            put(&b, peer, plen);
        put(&b, H2O_STRLIT("\r\n"));
    }
    put(&b, H2O_STRLIT("x-forwarded-proto: ")), put(&b, proto.base, proto.len), put(&b, H2O_STRLIT("\r\n"));
    if (req->authority.len != 0)
        put(&b, H2O_STRLIT("x-forwarded-host: ")), put(&b, req->authority.base, req->authority.len), put(&b, H2O_STRLIT("\r\n"));
    put(&b, H2O_STRLIT("x-request-id: ")), put(&b, r->request_id.base, r->request_id.len), put(&b, H2O_STRLIT("\r\n"));
    return h2o_iovec_init(b.base, b.len);
}
