/* A proxied request from start to end (ficus/upstream.h, ficus/upstream/proxy.h).
 *
 * DESIGN: H2O's built-in proxy has one URL per handler, one timeout and no retries, so ficus drives its own HTTP/1.1
 * client (gateway/upstream/client.c). ficus_proxy_start_ex() builds the upstream request once
 * (gateway/upstream/request_builder.c), then for the chosen upstream: takes an in-flight slot (the bulkhead: more
 * than the worker's share of max_connections → 503 at once), asks the breaker (open → 503
 * {"error":"upstream_unavailable"} with Retry-After at once, costing the upstream nothing) and runs attempts
 * (gateway/upstream/attempt.c); a final head goes to the relay (gateway/upstream/relay.c). When the upstream fails
 * for good before any response byte and a fallback upstream was given, a replayable request starts over, once, on
 * the fallback (ficus/upstream.h says exactly when).
 * request_timeout bounds the whole exchange, retries and fallback included: 504 before the head, an aborted body
 * after it.
 * BREAKER OUTCOME per request and upstream: a failure when the upstream failed for good, answered 5xx, or its body
 * broke off; a success otherwise.
 * LIFETIME: the proxy state lives in the request pool; its dispose cancels the exchange (closing its connection), the
 * backoff and the request timer, and reports on_done if nothing did yet. */
#include <string.h>
#include "ficus/breaker.h"
#include "ficus/clock.h"
#include "ficus/log.h"
#include "ficus/req.h"
#include "ficus/worker.h"
#include "ficus/upstream/outlier.h"
#include "ficus/upstream/proxy.h"
#include "ficus/upstream/registry.h"

const char *const ficus_proxy_failure_names[FICUS_PROXY__COUNT] = {
    "ok", "connect_failure", "no_endpoint", "breaker_open", "reset", "502", "503", "504", "timeout", "protocol", "overloaded"};

static void slot_add(uint64_t *slot, int64_t n)
{
    FICUS_ATOMIC_STORE(slot, FICUS_ATOMIC_LOAD(slot) + n); /* one writer: this worker */
}

void ficus_proxy_count_error(ficus_proxy_t *p, ficus_upstream_error_t kind)
{
    ficus_counter_add(&p->up->conf->stats->slots[p->r->worker->index].errors[kind], 1);
}

void ficus_proxy_record(ficus_proxy_t *p, int failed)
{
    if (p->ep == NULL || p->recorded)
        return;
    p->recorded = 1;
    if (p->up->conf->outlier.enabled)
        ficus_outlier_record(p->up->conf, p->ep->state, failed, p->ep_trial, ficus_mono_us());
    p->ep_trial = 0;
}

void ficus_proxy_end_attempt(ficus_proxy_t *p)
{
    if (p->ep == NULL)
        return;
    if (!p->recorded)
        ficus_outlier_abandon(p->ep->state, p->ep_trial);
    --p->ep->inflight;
    slot_add(&p->ep->state->inflight[p->r->worker->index], -1);
    p->ep = NULL;
    p->ep_trial = 0;
}

static void log_breaker(const ficus_upstream_conf_t *u, int moved, uint64_t failed, uint64_t total)
{
    if (moved == FICUS_BREAKER_OPEN)
        ficus_warn("upstream %s: breaker opened (%llu of %llu requests failed; open for %llums)", u->name,
                   (unsigned long long)failed, (unsigned long long)total, (unsigned long long)u->breaker.open_for_ms);
    else if (moved == FICUS_BREAKER_CLOSED)
        ficus_info("upstream %s: breaker closed (%d trial requests succeeded)", u->name, FICUS_BREAKER_TRIALS);
}

/* Gives back what the request holds of the current upstream; failed >= 0 records the breaker outcome. */
static void leave_upstream(ficus_proxy_t *p, int failed)
{
    ficus_upstream_rt_t *up = p->up;
    if (p->breaker_admitted) {
        p->breaker_admitted = 0;
        if (failed < 0) {
            ficus_breaker_abandon(&up->state->breaker, p->breaker_trial);
        } else {
            uint64_t nf = 0, nt = 0;
            int moved =
                ficus_breaker_record(&up->state->breaker, &up->conf->breaker, p->breaker_trial, failed, ficus_mono_us(), &nf, &nt);
            if (moved >= 0)
                log_breaker(up->conf, moved, nf, nt);
        }
        p->breaker_trial = 0;
    }
    if (p->retrying) {
        p->retrying = 0;
        slot_add(&up->state->slots[p->r->worker->index].retries, -1);
    }
    if (p->holds_slot) {
        p->holds_slot = 0;
        --up->inflight;
        slot_add(&up->state->slots[p->r->worker->index].inflight, -1);
    }
}

static void report_done(ficus_proxy_t *p)
{
    if (p->done_reported)
        return;
    p->done_reported = 1;
    if (p->result.upstream == NULL)
        p->result.upstream = p->up->conf;
    if (p->opts.on_done != NULL)
        p->opts.on_done(p->opts.data, p->r, &p->result);
}

void ficus_proxy_finish(ficus_proxy_t *p, int failed)
{
    h2o_timeout_unlink(&p->request_timer);
    leave_upstream(p, failed);
    report_done(p);
}

static void begin_upstream(ficus_proxy_t *p);

void ficus_proxy_upstream_failed(ficus_proxy_t *p, ficus_proxy_failure_t why, int status, const char *code, const char *reason,
                                 uint64_t retry_after_ms)
{
    ficus_req_t *r = p->r;
    int counts_for_breaker = why != FICUS_PROXY_BREAKER_OPEN && why != FICUS_PROXY_OVERLOADED;
    ficus_delay_cancel(&p->backoff);
    leave_upstream(p, counts_for_breaker ? 1 : -1);
    if (p->fallback != NULL && why >= FICUS_PROXY_CONNECT_FAILURE && why <= FICUS_PROXY_STATUS_504 && p->replayable &&
        !p->timed_out) {
        ficus_debug("upstream %s: %s, falling back to %s (request %.*s)", p->up->conf->name, ficus_proxy_failure_names[why],
                    p->fallback->conf->name, (int)r->request_id.len, r->request_id.base);
        p->result.fallback_from = p->up->conf;
        p->result.fallback_reason = why;
        if (p->opts.on_fallback != NULL)
            p->opts.on_fallback(p->opts.data, r, p->up->conf, why, p->fallback->conf);
        p->up = p->fallback;
        p->fallback = NULL;
        p->attempts = 0;
        p->retries = 0;
        p->stale_retry_done = 0;
        memset(&p->tried, 0, sizeof(p->tried));
        begin_upstream(p);
        return;
    }
    p->result.upstream = p->up->conf;
    p->result.failure = why;
    p->result.status = status;
    h2o_timeout_unlink(&p->request_timer);
    r->error = reason;
    ficus_debug("upstream %s: %s (request %.*s)", p->up->conf->name, reason, (int)r->request_id.len, r->request_id.base);
    if (retry_after_ms != 0) {
        char *ra = h2o_mem_alloc_pool(&r->h2o->pool, 24);
        int n = snprintf(ra, 24, "%llu", (unsigned long long)((retry_after_ms + 999) / 1000));
        h2o_add_header(&r->h2o->pool, &r->h2o->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, ra, n);
    }
    ficus_req_respond_error(r, status, code);
    p->result.complete = 1;
    report_done(p);
}

static void begin_upstream(ficus_proxy_t *p)
{
    ficus_upstream_rt_t *up = p->up;
    ficus_req_t *r = p->r;
    ficus_counter_add(&up->conf->stats->slots[r->worker->index].requests, 1);
    if (up->inflight >= up->max_inflight) {
        ficus_proxy_count_error(p, FICUS_UPSTREAM_ERR_OVERLOADED);
        ficus_proxy_upstream_failed(p, FICUS_PROXY_OVERLOADED, 503, "upstream_overloaded", "upstream_overloaded", 0);
        return;
    }
    if (up->conf->breaker.enabled) {
        uint64_t retry_after = 0;
        switch (ficus_breaker_admit(&up->state->breaker, &up->conf->breaker, ficus_mono_us(), &retry_after)) {
        case FICUS_BREAKER_REJECT:
            ficus_proxy_upstream_failed(p, FICUS_PROXY_BREAKER_OPEN, 503, "upstream_unavailable", "upstream_breaker_open",
                                        retry_after);
            return;
        case FICUS_BREAKER_TRIAL:
            p->breaker_trial = 1;
            break;
        default:
            break;
        }
        p->breaker_admitted = 1;
    }
    ++up->inflight;
    p->holds_slot = 1;
    slot_add(&up->state->slots[r->worker->index].inflight, 1);
    if (up->request_timeout != NULL && !h2o_timeout_is_linked(&p->request_timer) && !p->timed_out) {
        p->request_timeout = up->request_timeout;
        h2o_timeout_link(r->worker->loop, up->request_timeout, &p->request_timer);
    }
    ficus_attempt_start(p);
}

static void on_request_timeout(h2o_timeout_entry_t *entry)
{
    ficus_proxy_t *p = H2O_STRUCT_FROM_MEMBER(ficus_proxy_t, request_timer, entry);
    p->timed_out = 1;
    if (p->responded) {
        ficus_relay_abort(p);
        return;
    }
    ficus_upc_cancel(&p->x);
    h2o_buffer_consume(&p->x.body, p->x.body->size);
    ficus_proxy_end_attempt(p);
    ficus_proxy_count_error(p, FICUS_UPSTREAM_ERR_TIMEOUT);
    ficus_proxy_upstream_failed(p, FICUS_PROXY_TIMEOUT, 504, "gateway_timeout", "upstream_request_timeout", 0);
}

static void on_proxy_dispose(void *_p)
{
    ficus_proxy_t *p = _p;
    ficus_send_guard_dispose(&p->send_guard);
    ficus_upc_dispose(&p->x);
    ficus_delay_cancel(&p->backoff);
    h2o_timeout_unlink(&p->request_timer);
    ficus_proxy_end_attempt(p);
    leave_upstream(p, -1);
    report_done(p);
    if (p->digest != NULL)
        EVP_MD_CTX_free(p->digest);
    h2o_doublebuffer_dispose(&p->sending);
}

/* the client did not read for send_timeout (gateway/send_guard.c): the exchange and what it holds of the upstream
 * go now, not when the client's connection is torn down; a slow client is no failure of the upstream's */
static void on_send_timeout(ficus_send_guard_t *g)
{
    ficus_proxy_t *p = H2O_STRUCT_FROM_MEMBER(ficus_proxy_t, send_guard, g);
    ficus_upc_cancel(&p->x);
    ficus_delay_cancel(&p->backoff);
    h2o_timeout_unlink(&p->request_timer);
    ficus_proxy_end_attempt(p);
    leave_upstream(p, -1);
}

void ficus_proxy_start_ex(ficus_req_t *r, ficus_upstream_rt_t *up, const ficus_proxy_options_t *options)
{
    h2o_req_t *req = r->h2o;
    h2o_iovec_t path;
    if (ficus_upstream_request_path(r, &path) != 0) {
        ficus_req_respond_error(r, 400, "bad_path");
        return;
    }
    ficus_proxy_t *p = h2o_mem_alloc_shared(&req->pool, sizeof(*p), on_proxy_dispose);
    memset(p, 0, sizeof(*p));
    p->r = r;
    p->up = up;
    p->ep_index = -1;
    if (options != NULL)
        p->opts = *options;
    p->fallback = p->opts.fallback != up ? p->opts.fallback : NULL;
    p->request_timer.cb = on_request_timeout;
    ficus_upc_init(&p->x, p);
    ficus_send_guard_init(&p->send_guard, r, on_send_timeout);
    h2o_doublebuffer_init(&p->sending, &h2o_socket_buffer_prototype);
    p->replayable = ficus_attempt_is_replayable(req);
    ficus_upstream_request_build(&p->req, r, path);
    begin_upstream(p);
}

void ficus_proxy_start(ficus_req_t *r, ficus_upstream_rt_t *up)
{
    ficus_proxy_start_ex(r, up, NULL);
}
