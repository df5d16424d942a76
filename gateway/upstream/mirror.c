/* A detached copy of a request to another upstream (ficus/upstream.h, ficus_mirror_start).
 *
 * DETACHED: the copy's request bytes are copied into its own malloc'd buffer and it holds its own reference to the
 * worker generation (so the upstream's runtime and pools stay), so the client request may end at any time; nothing
 * of the client's exchange waits for it. One attempt, no retries, no fallback; the breaker is asked (open: not sent)
 * and told the outcome, outlier detection too.
 * BOUNDED: the response body is read as it arrives and dropped after updating a SHA-256 and a byte count: the
 * client's keep-alive pool backpressure is a pull, so at most one socket buffer is held. timeout_ms bounds it all.
 * CALLBACK: exactly once, on the worker's thread, never from inside ficus_mirror_start (early failures are deferred
 * to the next loop iteration). */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/breaker.h"
#include "ficus/clock.h"
#include "ficus/log.h"
#include "ficus/req.h"
#include "ficus/worker.h"
#include "ficus/upstream/balancer.h"
#include "ficus/upstream/outlier.h"
#include "ficus/upstream/registry.h"
#include "ficus/upstream/request_builder.h"

typedef struct st_ficus_mirror_t {
    ficus_upc_t x;
    ficus_wgen_t *wgen;
    ficus_worker_t *worker;
    ficus_upstream_rt_t *up;
    ficus_endpoint_rt_t *ep;
    int ep_trial, recorded;
    int breaker_trial, breaker_admitted;
    int is_head;
    int starting; /* inside ficus_mirror_start: failures are deferred */
    h2o_iovec_t bufs[1];
    h2o_timeout_entry_t timer; /* timeout_ms, or the zero timeout for a deferred early failure */
    ficus_mirror_result_t result;
    EVP_MD_CTX *digest;
    void (*cb)(void *data, const ficus_mirror_result_t *result);
    void *data;
} ficus_mirror_t;

static void record(ficus_mirror_t *m, int failed)
{
    if (m->ep == NULL || m->recorded)
        return;
    m->recorded = 1;
    if (m->up->conf->outlier.enabled)
        ficus_outlier_record(m->up->conf, m->ep->state, failed, m->ep_trial, ficus_mono_us());
}

static void finish(ficus_mirror_t *m, ficus_mirror_outcome_t outcome, const char *error)
{
    ficus_upc_dispose(&m->x);
    if (h2o_timeout_is_linked(&m->timer))
        h2o_timeout_unlink(&m->timer);
    int failed = outcome != FICUS_MIRROR_RESPONSE || m->result.status >= 500;
    if (m->ep != NULL) {
        record(m, failed);
        --m->ep->inflight;
        uint64_t *slot = &m->ep->state->inflight[m->worker->index];
        FICUS_ATOMIC_STORE(slot, FICUS_ATOMIC_LOAD(slot) - 1);
    }
    if (m->breaker_admitted) {
        uint64_t nf, nt;
        ficus_breaker_record(&m->up->state->breaker, &m->up->conf->breaker, m->breaker_trial, failed, ficus_mono_us(), &nf, &nt);
    }
    m->result.outcome = outcome;
    m->result.error = error;
    if (outcome == FICUS_MIRROR_RESPONSE && m->digest != NULL) {
        unsigned len;
        EVP_DigestFinal_ex(m->digest, m->result.digest, &len);
    }
    m->cb(m->data, &m->result);
    EVP_MD_CTX_free(m->digest);
    free(m->bufs[0].base);
    ficus_wgen_release(m->wgen);
    free(m);
}

static void on_timer(h2o_timeout_entry_t *entry)
{
    ficus_mirror_t *m = H2O_STRUCT_FROM_MEMBER(ficus_mirror_t, timer, entry);
    if (m->result.error != NULL) /* a deferred early failure */
        finish(m, FICUS_MIRROR_ERROR, m->result.error);
    else
        finish(m, FICUS_MIRROR_TIMEOUT, NULL);
}

static void on_body(ficus_upc_t *x, const char *err)
{
    ficus_mirror_t *m = x->data;
    if (x->body->size != 0) {
        m->result.body_bytes += x->body->size;
        EVP_DigestUpdate(m->digest, x->body->bytes, x->body->size);
        h2o_buffer_consume(&x->body, x->body->size);
    }
    if (err == NULL) {
        ficus_upc_read_body(x, on_body);
    } else if (err == ficus_upc_eos) {
        finish(m, FICUS_MIRROR_RESPONSE, NULL);
    } else {
        finish(m, err == ficus_upc_err_timeout ? FICUS_MIRROR_TIMEOUT : FICUS_MIRROR_ERROR,
               ficus_proxy_failure_names[FICUS_PROXY_RESET]);
    }
}

static void on_head(ficus_upc_t *x, const char *err, const ficus_upc_response_t *res)
{
    ficus_mirror_t *m = x->data;
    if (err != NULL) {
        if (err == ficus_upc_err_timeout)
            finish(m, FICUS_MIRROR_TIMEOUT, NULL);
        else
            finish(m, FICUS_MIRROR_ERROR,
                   ficus_proxy_failure_names[err == ficus_upc_err_reset ? FICUS_PROXY_RESET : FICUS_PROXY_PROTOCOL]);
        return;
    }
    m->result.status = res->status;
    record(m, res->status >= 500);
    on_body(x, x->done ? ficus_upc_eos : NULL);
}

static void fail_later(ficus_mirror_t *m, ficus_proxy_failure_t why);

static void on_connect(ficus_upc_t *x, const char *err)
{
    ficus_mirror_t *m = x->data;
    if (err != NULL && m->starting) {
        fail_later(m, FICUS_PROXY_CONNECT_FAILURE);
        return;
    }
    if (err != NULL) {
        finish(m, err == ficus_upc_err_connect_timeout ? FICUS_MIRROR_TIMEOUT : FICUS_MIRROR_ERROR,
               ficus_proxy_failure_names[FICUS_PROXY_CONNECT_FAILURE]);
        return;
    }
    ficus_upc_send(x, m->bufs, 1, m->is_head, on_head);
}

static void fail_later(ficus_mirror_t *m, ficus_proxy_failure_t why)
{
    m->result.error = ficus_proxy_failure_names[why];
    if (h2o_timeout_is_linked(&m->timer))
        h2o_timeout_unlink(&m->timer);
    h2o_timeout_link(m->worker->loop, &m->worker->ctx.zero_timeout, &m->timer);
}

int ficus_mirror_start(ficus_req_t *r, ficus_upstream_rt_t *up, h2o_iovec_t extra_headers, uint64_t timeout_ms,
                       void (*cb)(void *data, const ficus_mirror_result_t *result), void *data)
{
    h2o_iovec_t path;
    if (timeout_ms == 0 || ficus_upstream_request_path(r, &path) != 0)
        return -1;
    ficus_mirror_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return -1;
    m->worker = r->worker;
    m->wgen = r->wgen;
    ++m->wgen->refcnt;
    m->up = up;
    m->cb = cb;
    m->data = data;
    m->timer.cb = on_timer;
    ficus_upc_init(&m->x, m);
    if ((m->digest = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(m->digest, EVP_sha256(), NULL) != 1)
        ficus_fatal("no memory");

    if (up->conf->breaker.enabled) {
        uint64_t retry_after;
        ficus_breaker_admit_t a = ficus_breaker_admit(&up->state->breaker, &up->conf->breaker, ficus_mono_us(), &retry_after);
        if (a == FICUS_BREAKER_REJECT) {
            fail_later(m, FICUS_PROXY_BREAKER_OPEN);
            return 0;
        }
        m->breaker_admitted = 1;
        m->breaker_trial = a == FICUS_BREAKER_TRIAL;
    }
    int trial;
    ssize_t i = ficus_balancer_pick(up, r, NULL, ficus_mono_us(), &trial);
    if (i < 0) {
        fail_later(m, FICUS_PROXY_NO_ENDPOINT);
        return 0;
    }
    m->ep = up->endpoints[i];
    m->ep_trial = trial;
    ++m->ep->inflight;
    uint64_t *slot = &m->ep->state->inflight[m->worker->index];
    FICUS_ATOMIC_STORE(slot, FICUS_ATOMIC_LOAD(slot) + 1);

    /* the request as built for the primary, with this endpoint's request line, copied into one buffer of its own */
    ficus_upstream_request_t req;
    ficus_upstream_request_build(&req, r, path);
    ficus_upstream_request_line(&req, &up->conf->endpoints[i]);
    m->is_head = req.is_head;
    h2o_iovec_t line = req.reqbufs[0], headers = req.reqbufs[1],
                body = req.num_reqbufs > 2 ? req.reqbufs[2] : h2o_iovec_init("", 0);
    size_t len = line.len + headers.len + extra_headers.len + body.len;
    char *buf = malloc(len);
    if (buf == NULL)
        ficus_fatal("no memory");
    size_t off = 0;
    memcpy(buf, line.base, line.len);
    off += line.len;
    memcpy(buf + off, headers.base, headers.len - 2); /* all but the empty line */
    off += headers.len - 2;
    if (extra_headers.len != 0)
        memcpy(buf + off, extra_headers.base, extra_headers.len);
    off += extra_headers.len;
    memcpy(buf + off, "\r\n", 2);
    off += 2;
    if (body.len != 0)
        memcpy(buf + off, body.base, body.len);
    m->bufs[0] = h2o_iovec_init(buf, len);

    h2o_timeout_link(m->worker->loop, ficus_worker_timeout(m->worker, timeout_ms), &m->timer);
    m->starting = 1;
    ficus_upc_connect(&m->x, &m->ep->pool, on_connect); /* may call on_connect from inside */
    m->starting = 0;
    return 0;
}
