/* Request hygiene at entry (see ficus/req_hygiene.h).
 *
 * OWNS: the canonical path applied to the H2O request, the authority check, the raw HTTP/1.1 head check, and the
 * one pass over the request headers (validity, underscores, look-alikes of ficus's own headers, Connection-named
 * headers, HTTP/2 cookie crumbs). Runs synchronously inside the H2O handler call, before anything else of ficus
 * reads the request: the raw head is only valid then.
 * BOUNDS: the header pass is linear in the headers times the (few) identity headers and Connection tokens, which are
 * capped at FICUS_MAX_CONNECTION_TOKENS. */
#include <string.h>
#include "ficus/forwarding.h"
#include "ficus/h1_head.h"
#include "ficus/path.h"
#include "ficus/req_hygiene.h"
#include "ficus/upstream/response.h" /* ficus_http_list_next */

#define FICUS_MAX_CONNECTION_TOKENS 32

static const char *canonical_path(ficus_req_t *r)
{
    h2o_req_t *req = r->h2o;
    h2o_iovec_t raw = req->path;
    size_t plen = req->query_at != SIZE_MAX && req->query_at <= raw.len ? req->query_at : raw.len, qlen = raw.len - plen;
    ficus_path_error_t err;
    if (qlen != 0 && (err = ficus_path_check_query(raw.base + plen + 1, qlen - 1)) != FICUS_PATH_OK)
        return ficus_path_error_code(err);
    char *buf = h2o_mem_alloc_pool(&req->pool, FICUS_PATH_CANONICAL_CAP(plen) + qlen);
    size_t n;
    if ((err = ficus_path_canonicalize(&r->config->server.paths, raw.base, plen, buf, &n)) != FICUS_PATH_OK)
        return ficus_path_error_code(err);
    memcpy(buf + n, raw.base + plen, qlen);
    req->path = h2o_iovec_init(buf, n + qlen);
    req->path_normalized = h2o_iovec_init(buf, n);
    req->query_at = qlen != 0 ? n : SIZE_MAX;
    return NULL;
}

static const char *authority(ficus_req_t *r)
{
    h2o_req_t *req = r->h2o;
    /* without a Host, H2O fills in its host entry's name ("listener-N"): recognised by identity, never used */
    int missing = req->input.authority.len == 0 || req->input.authority.base == req->conn->hosts[0]->authority.hostport.base;
    if (missing) {
        if (req->version == 0x101)
            return "missing_host";
        req->authority = h2o_iovec_init("", 0); /* not the name of H2O's host entry ("listener-N") */
        return NULL;
    }
    if (!ficus_authority_is_valid(req->input.authority.base, req->input.authority.len))
        return "bad_host";
    req->authority = req->input.authority;
    return NULL;
}

/* ---- headers ---- */

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* what H2O hands over must be a field a peer could have meant: RFC 9110 5.1 names, values without NUL, CR or LF */
static const char *check_field(const h2o_header_t *h, int is_h1)
{
    if (h->name->len == 0)
        return is_h1 ? "bad_header_obs_fold" : "bad_header_name"; /* H2O's HTTP/1.1 parser: a continuation line */
    for (size_t i = 0; i != h->name->len; ++i)
        if (!is_tchar((unsigned char)h->name->base[i]))
            return "bad_header_name";
    for (size_t i = 0; i != h->value.len; ++i) {
        unsigned char c = (unsigned char)h->value.base[i];
        if (c == '\0' || c == '\r' || c == '\n')
            return "bad_header_value";
    }
    return NULL;
}

static const char *raw_h1_head(h2o_req_t *req)
{
    /* the head H2O parsed is at the start of the connection's input while the handler runs (lib/http1.c consumes
     * it when the request ends); checked to begin with this request's method before it is trusted */
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock == NULL || sock->input == NULL || sock->input->size <= req->input.method.len ||
        memcmp(sock->input->bytes, req->input.method.base, req->input.method.len) != 0)
        return NULL;
    ficus_h1_head_result_t res = ficus_h1_head_check(sock->input->bytes, sock->input->size);
    return res == FICUS_H1_HEAD_OK || res == FICUS_H1_HEAD_INCOMPLETE ? NULL : ficus_h1_head_error_code(res);
}

static int is_identity_lookalike(const ficus_config_t *config, const h2o_iovec_t *name)
{
    for (size_t i = 0; i != config->num_identity_headers; ++i)
        if (ficus_header_name_variant_eq(name->base, name->len, config->identity_headers[i].base, config->identity_headers[i].len))
            return 1;
    return 0;
}

/* HTTP/2 cookie crumbs (RFC 9113 8.2.3) become one header, joined with "; ", where the first one was */
static void join_cookies(h2o_req_t *req)
{
    size_t n = 0, total = 0, first = SIZE_MAX;
    for (size_t i = 0; i != req->headers.size; ++i) {
        if (req->headers.entries[i].name == &H2O_TOKEN_COOKIE->buf) {
            if (first == SIZE_MAX)
                first = i;
            ++n;
            total += req->headers.entries[i].value.len + 2;
        }
    }
    if (n < 2)
        return;
    char *buf = h2o_mem_alloc_pool(&req->pool, total), *o = buf;
    size_t w = 0;
    for (size_t i = 0; i != req->headers.size; ++i) {
        h2o_header_t *h = req->headers.entries + i;
        if (h->name == &H2O_TOKEN_COOKIE->buf) {
            if (o != buf)
                memcpy(o, "; ", 2), o += 2;
            memcpy(o, h->value.base, h->value.len);
            o += h->value.len;
            if (i != first)
                continue;
        }
        req->headers.entries[w++] = *h;
    }
    req->headers.size = w;
    req->headers.entries[first].value = h2o_iovec_init(buf, o - buf);
}

static const char *headers(ficus_req_t *r)
{
    h2o_req_t *req = r->h2o;
    int is_h1 = req->version < 0x200;
    const char *err;
    h2o_iovec_t tokens[FICUS_MAX_CONNECTION_TOKENS];
    size_t num_tokens = 0;
    for (size_t i = 0; i != req->headers.size; ++i) {
        const h2o_header_t *h = req->headers.entries + i;
        if ((err = check_field(h, is_h1)) != NULL)
            return err;
        if (h->name == &H2O_TOKEN_CONNECTION->buf) {
            h2o_iovec_t tok;
            const char *p = h->value.base;
            while (ficus_http_list_next(&p, h->value.base + h->value.len, &tok)) {
                if (num_tokens == FICUS_MAX_CONNECTION_TOKENS)
                    return "bad_connection_header";
                tokens[num_tokens++] = tok;
            }
        }
    }
    if (is_h1 && (err = raw_h1_head(req)) != NULL)
        return err;

    /* one compaction pass: what the upstream (and every plugin) must never see is removed before any plugin runs */
    size_t w = 0;
    for (size_t i = 0; i != req->headers.size; ++i) {
        const h2o_header_t *h = req->headers.entries + i;
        int drop = 0;
        if (memchr(h->name->base, '_', h->name->len) != NULL) {
            if (r->config->server.underscore_headers == FICUS_UNDERSCORE_REJECT)
                return "underscore_header";
            drop = r->config->server.underscore_headers == FICUS_UNDERSCORE_DROP;
        }
        /* identity headers are ficus's to set, on every route: client copies and every look-alike go */
        if (!drop && is_identity_lookalike(r->config, h->name))
            drop = 1;
        /* look-alikes of the forwarding headers (X_Forwarded_For ...); the exact names are the builder's input */
        if (!drop && memchr(h->name->base, '_', h->name->len) != NULL && ficus_forwarding_is_own(h->name->base, h->name->len))
            drop = 1;
        /* headers the client's Connection names are hop-by-hop (RFC 9110 7.6.1): removed now, so a Connection token
         * can only ever remove the client's own headers, never one a plugin sets later (identity, forwarding) */
        for (size_t t = 0; !drop && t != num_tokens; ++t)
            if (h2o_lcstris(tokens[t].base, tokens[t].len, h->name->base, h->name->len) && h->name != &H2O_TOKEN_CONNECTION->buf &&
                !ficus_forwarding_is_own(h->name->base, h->name->len))
                drop = 1;
        if (!drop)
            req->headers.entries[w++] = *h;
    }
    req->headers.size = w;
    if (!is_h1)
        join_cookies(req);
    return NULL;
}

const char *ficus_req_hygiene(ficus_req_t *r)
{
    const char *err;
    if ((err = headers(r)) != NULL) {
        r->h2o->http1_is_persistent = 0; /* the framing of what follows on this connection is in doubt */
        return err;
    }
    if ((err = canonical_path(r)) != NULL || (err = authority(r)) != NULL)
        return err;
    return NULL;
}
