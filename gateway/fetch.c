/* Requests ficus originates, over h2o_http1client (see ficus/fetch.h). */
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/fetch.h"
#include "ficus/log.h"

struct st_ficus_fetch_t {
    ficus_fetch_ctx_t *ctx;
    h2o_http1client_t *client;
    h2o_mem_pool_t pool;
    h2o_iovec_t reqbufs[2];
    size_t num_reqbufs;
    size_t max_body;
    h2o_buffer_t *body;
    ficus_fetch_response_t res;
    ficus_fetch_cb cb;
    void *data;
    const char *deferred_err;
    h2o_timeout_entry_t defer;
};

static void destroy(ficus_fetch_t *f)
{
    if (h2o_timeout_is_linked(&f->defer))
        h2o_timeout_unlink(&f->defer);
    h2o_buffer_dispose(&f->body);
    h2o_mem_clear_pool(&f->pool);
    free(f);
}

static void finish(ficus_fetch_t *f, const char *err)
{
    f->client = NULL;
    if (err != NULL) {
        f->cb(f->data, err, NULL);
    } else {
        f->res.body = h2o_iovec_init(f->body->bytes, f->body->size);
        f->cb(f->data, NULL, &f->res);
    }
    destroy(f);
}

static void on_deferred(h2o_timeout_entry_t *entry)
{
    ficus_fetch_t *f = H2O_STRUCT_FROM_MEMBER(ficus_fetch_t, defer, entry);
    finish(f, f->deferred_err);
}

static void defer_error(ficus_fetch_t *f, const char *err)
{
    f->client = NULL;
    f->deferred_err = err;
    f->defer.cb = on_deferred;
    h2o_timeout_link(f->ctx->loop, f->ctx->zero_timeout, &f->defer);
}

static int on_body(h2o_http1client_t *client, const char *errstr)
{
    ficus_fetch_t *f = client->data;
    h2o_buffer_t *in = client->sock->input;
    if (in->size != 0) {
        if (f->body->size + in->size > f->max_body) {
            defer_error(f, "response body too large");
            return -1; /* the client closes itself */
        }
        h2o_iovec_t dst = h2o_buffer_reserve(&f->body, in->size);
        memcpy(dst.base, in->bytes, in->size);
        f->body->size += in->size;
        h2o_buffer_consume(&client->sock->input, in->size);
    }
    if (errstr == h2o_http1client_error_is_eos) {
        defer_error(f, NULL);
    } else if (errstr != NULL) {
        defer_error(f, errstr);
    }
    return 0;
}

static int64_t parse_max_age(h2o_iovec_t v)
{
    /* Cache-Control: no-store / no-cache → 0; max-age=N → N; else -1 */
    if (h2o_strstr(v.base, v.len, H2O_STRLIT("no-store")) != SIZE_MAX ||
        h2o_strstr(v.base, v.len, H2O_STRLIT("no-cache")) != SIZE_MAX)
        return 0;
    size_t at = h2o_strstr(v.base, v.len, H2O_STRLIT("max-age="));
    if (at == SIZE_MAX)
        return -1;
    int64_t n = 0;
    size_t i = at + 8, digits = 0;
    for (; i < v.len && v.base[i] >= '0' && v.base[i] <= '9' && digits < 12; ++i, ++digits)
        n = n * 10 + (v.base[i] - '0');
    return digits == 0 ? -1 : n;
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr, int minor_version, int status,
                                       h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers, int rlen)
{
    ficus_fetch_t *f = client->data;
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        defer_error(f, errstr);
        return NULL;
    }
    f->res.status = status;
    f->res.max_age = -1;
    for (size_t i = 0; i != num_headers; ++i) {
        if (headers[i].name == &H2O_TOKEN_CACHE_CONTROL->buf)
            f->res.max_age = parse_max_age(headers[i].value);
        else if (headers[i].name == &H2O_TOKEN_CONTENT_TYPE->buf)
            f->res.content_type = h2o_strdup(&f->pool, headers[i].value.base, headers[i].value.len);
    }
    if (errstr == h2o_http1client_error_is_eos) {
        defer_error(f, NULL);
        return NULL;
    }
    return on_body;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr, h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head)
{
    ficus_fetch_t *f = client->data;
    if (errstr != NULL) {
        defer_error(f, errstr);
        return NULL;
    }
    *reqbufs = f->reqbufs;
    *reqbufcnt = f->num_reqbufs;
    *method_is_head = 0;
    return on_head;
}

ficus_fetch_t *ficus_fetch_start(ficus_fetch_ctx_t *ctx, const char *method, const char *url, h2o_iovec_t extra_headers,
                                 h2o_iovec_t body, size_t max_body, ficus_fetch_cb cb, void *data, const char **err)
{
    h2o_url_t parsed;
    if (h2o_url_parse(url, strlen(url), &parsed) != 0) {
        *err = "invalid URL";
        return NULL;
    }
    int is_ssl = parsed.scheme == &H2O_URL_SCHEME_HTTPS;
    if (is_ssl && ctx->ssl_ctx == NULL) {
        *err = "https is not available";
        return NULL;
    }
    ficus_fetch_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        ficus_fatal("no memory");
    f->ctx = ctx;
    f->cb = cb;
    f->data = data;
    f->max_body = max_body;
    h2o_mem_init_pool(&f->pool);
    h2o_buffer_init(&f->body, &h2o_socket_buffer_prototype);

    size_t cap = strlen(method) + parsed.path.len + parsed.authority.len + extra_headers.len + 160;
    char *head = h2o_mem_alloc_pool(&f->pool, cap);
    int n = snprintf(head, cap, "%s %.*s HTTP/1.1\r\nhost: %.*s\r\nuser-agent: ficus/" FICUS_VERSION "\r\nconnection: close\r\n",
                     method, (int)parsed.path.len, parsed.path.base, (int)parsed.authority.len, parsed.authority.base);
    memcpy(head + n, extra_headers.base, extra_headers.len);
    n += (int)extra_headers.len;
    if (body.base != NULL)
        n += snprintf(head + n, cap - n, "content-length: %zu\r\n", body.len);
    n += snprintf(head + n, cap - n, "\r\n");
    f->reqbufs[0] = h2o_iovec_init(head, n);
    f->num_reqbufs = 1;
    if (body.base != NULL && body.len != 0)
        f->reqbufs[f->num_reqbufs++] = h2o_strdup(&f->pool, body.base, body.len);

    h2o_http1client_ctx_t *hctx = h2o_mem_alloc_pool(&f->pool, sizeof(*hctx));
    memset(hctx, 0, sizeof(*hctx));
    hctx->loop = ctx->loop;
    hctx->getaddr_receiver = ctx->getaddr_receiver;
    hctx->io_timeout = ctx->io_timeout;
    hctx->ssl_ctx = ctx->ssl_ctx;
    h2o_iovec_t host = h2o_strdup(&f->pool, parsed.host.base, parsed.host.len);
    h2o_http1client_connect(&f->client, f, hctx, host, h2o_url_get_port(&parsed), is_ssl, on_connect);
    return f;
}

void ficus_fetch_cancel(ficus_fetch_t *f)
{
    if (f->client != NULL)
        h2o_http1client_cancel(f->client);
    destroy(f);
}

SSL_CTX *ficus_fetch_new_ssl_ctx(const char *ca_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create TLS client context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int ok = ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        unsigned long e = ERR_get_error();
        ERR_clear_error();
        snprintf(err, errlen, "cannot load CA %s: %s", ca_file != NULL ? ca_file : "(system default)",
                 e != 0 ? ERR_reason_error_string(e) : "unknown error");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}
