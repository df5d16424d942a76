/* Relaying an upstream's response to the client (ficus/upstream/proxy.h).
 *
 * STREAMING: response bodies are relayed as they arrive through an h2o_doublebuffer, with backpressure from the
 * client: the upstream is read only when the previous chunk was written (H2O calls proceed). Hop-by-hop headers,
 * framing headers and the upstream's Server and Date are not relayed (H2O sets its own).
 * ERRORS: a body that fails after the head went out (reset, timeout, request_timeout) ends the client's response with
 * an error (RST_STREAM on h2, a closed connection on HTTP/1.1): the client can tell it is incomplete; never a retry
 * (a response byte was sent).
 * DIGEST: with options.digest, a running SHA-256 of the body bytes handed to the client (for mirror comparison). */
#include <string.h>
#include "ficus/clock.h"
#include "ficus/req.h"
#include "ficus/worker.h"
#include "ficus/upstream/proxy.h"

static void on_body(ficus_upc_t *x, const char *err);

static void account(ficus_proxy_t *p, h2o_iovec_t vec)
{
    p->result.body_bytes += vec.len;
    if (p->digest != NULL && vec.len != 0)
        EVP_DigestUpdate(p->digest, vec.base, vec.len);
}

static void do_send(ficus_proxy_t *p)
{
    h2o_iovec_t vec;
    assert(p->sending.bytes_inflight == 0);
    if (p->send_guard.timed_out) {
        h2o_send(p->r->h2o, NULL, 0, H2O_SEND_STATE_ERROR); /* the client connection is being closed */
        return;
    }
    vec = h2o_doublebuffer_prepare(&p->sending, &p->x.body, p->r->h2o->preferred_chunk_size);
    if (p->x.done && vec.len == p->sending.buf->size && p->x.body->size == 0) {
        int failed = p->body_error;
        account(p, vec);
        if (!failed && p->digest != NULL) {
            unsigned len = 0;
            p->result.has_digest = EVP_DigestFinal_ex(p->digest, p->result.digest, &len) == 1 && len == 32;
        }
        p->r->_completed = 1;
        p->result.complete = !failed;
        /* the breaker's and on_done's turn before h2o_send: the request may be gone when it returns */
        ficus_proxy_finish(p, failed || p->result.status >= 500);
        ficus_send_guard_sent(&p->send_guard);
        h2o_send(p->r->h2o, &vec, vec.len != 0 ? 1 : 0, failed ? H2O_SEND_STATE_ERROR : H2O_SEND_STATE_FINAL);
    } else if (vec.len != 0) {
        account(p, vec);
        ficus_send_guard_sent(&p->send_guard);
        h2o_send(p->r->h2o, &vec, 1, H2O_SEND_STATE_IN_PROGRESS);
    } else {
        /* everything read so far went out: read more (the upstream is not read while a chunk is in flight) */
        ficus_upc_read_body(&p->x, on_body);
    }
}

static void do_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    ficus_proxy_t *p = (void *)generator;
    ficus_send_guard_progress(&p->send_guard);
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
            ficus_proxy_count_error(p, is_timeout ? FICUS_UPSTREAM_ERR_TIMEOUT : FICUS_UPSTREAM_ERR_RESET);
        }
        ficus_proxy_end_attempt(p);
    }
    if (p->sending.bytes_inflight == 0)
        do_send(p);
}

void ficus_relay_abort(ficus_proxy_t *p)
{
    ficus_upc_cancel(&p->x);
    h2o_buffer_consume(&p->x.body, p->x.body->size);
    p->x.done = 1;
    p->body_error = 1;
    p->r->error = "upstream_request_timeout";
    ficus_proxy_end_attempt(p);
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

void ficus_relay_start(ficus_proxy_t *p, const ficus_upc_response_t *res)
{
    ficus_req_t *r = p->r;
    h2o_req_t *req = r->h2o;
    p->responded = 1;
    p->result.upstream = p->up->conf;
    p->result.status = res->status;
    if (p->opts.digest && (p->digest = EVP_MD_CTX_new()) != NULL && EVP_DigestInit_ex(p->digest, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(p->digest);
        p->digest = NULL;
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
    if (p->x.done)
        ficus_proxy_end_attempt(p);
    ficus_req_before_response(r);
    p->super.proceed = do_proceed;
    p->super.stop = do_stop;
    h2o_start_response(req, &p->super);
    do_send(p);
}
