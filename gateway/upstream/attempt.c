/* One try of a proxied request on one endpoint, and the decision to try again (ficus/upstream/proxy.h).
 *
 * RETRY RULES (`retry:` of the upstream; defaults attempts 2 on [connect_failure, reset]):
 *   - connect_failure (refused, unreachable, name, connect timeout): nothing was sent, so any request may retry;
 *   - reset (the connection lost before the response head), 502 / 503 / 504 answers, and ficus's own response
 *     timeout (counted as 504): only requests that can be replayed: idempotent methods (GET, HEAD, OPTIONS, PUT,
 *     DELETE, TRACE) or any method with an Idempotency-Key header;
 *   - never once a response byte went to the client: a head that is not retried is relayed and that is final;
 *   - a 503 whose Retry-After (seconds) is longer than what is left of request_timeout is not retried;
 *   - at most retry.attempts tries in all; each retry waits a full-jitter backoff (gateway/upstream/backoff.c), and
 *     prefers an endpoint not tried yet (the balancer excludes tried ones while others are available);
 *   - the budget: retries in flight (requests between their first retry decision and their end) may not exceed
 *     retry.budget of the upstream's other requests in flight (those not retrying), with at least 3 allowed, counted
 *     over all workers (Envoy's retry budget). Taking the share of the requests not retrying makes the amplification
 *     of a wholesale failure (attempts ÷ client requests) at most 1 + budget when attempts take alike; of all
 *     requests it would be 1 / (1 - budget). A retry refused by it is counted in
 *     ficus_upstream_retry_budget_exhausted_total and the failure goes to the client.
 * A reused keep-alive connection that turns out dead before any response byte (the upstream closed it as we sent)
 * is retried once at once on a new connection for replayable requests, outside the attempts and the budget: the
 * endpoint did nothing wrong.
 * OUTCOMES for outlier detection: connect failures, resets, timeouts, malformed responses and 5xx heads count as
 * failures of the endpoint; any other head as a success. */
#include <string.h>
#include "ficus/clock.h"
#include "ficus/req.h"
#include "ficus/worker.h"
#include "ficus/upstream/proxy.h"
#include "ficus/upstream/registry.h"

int ficus_attempt_is_replayable(h2o_req_t *req)
{
    static const char *const methods[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE", NULL};
    for (const char *const *m = methods; *m != NULL; ++m)
        if (h2o_memis(req->method.base, req->method.len, *m, strlen(*m)))
            return 1;
    return h2o_find_header_by_str(&req->headers, H2O_STRLIT("idempotency-key"), -1) != -1;
}

/* Retry-After in milliseconds when it is a number of seconds (an HTTP-date is not trusted for timing), else 0. */
static uint64_t retry_after_ms(const ficus_upc_response_t *res)
{
    for (size_t i = 0; i != res->num_headers; ++i) {
        if (res->headers[i].name != &H2O_TOKEN_RETRY_AFTER->buf)
            continue;
        h2o_iovec_t v = res->headers[i].value;
        uint64_t s = 0;
        if (v.len == 0 || v.len > 9)
            return 0;
        for (size_t j = 0; j != v.len; ++j) {
            if (v.base[j] < '0' || v.base[j] > '9')
                return 0;
            s = s * 10 + (v.base[j] - '0');
        }
        return s * 1000;
    }
    return 0;
}

static uint64_t remaining_ms(ficus_proxy_t *p)
{
    if (!h2o_timeout_is_linked(&p->request_timer))
        return UINT64_MAX;
    uint64_t now = h2o_now(p->r->worker->loop), deadline = p->request_timer.registered_at + p->request_timeout->timeout;
    return deadline > now ? deadline - now : 0;
}

/* Whether the budget allows one more request to be retrying now (counted over every worker's slot). */
static int budget_allows(ficus_proxy_t *p)
{
    ficus_upstream_state_t *s = p->up->state;
    if (p->retrying)
        return 1;
    uint64_t inflight = 0, retrying = 0;
    for (unsigned w = 0; w != ficus_num_workers; ++w) {
        inflight += FICUS_ATOMIC_LOAD(&s->slots[w].inflight);
        retrying += FICUS_ATOMIC_LOAD(&s->slots[w].retries);
    }
    /* the share is of the requests not retrying: with every attempt failing alike, attempts ÷ requests ≤ 1 + budget */
    uint64_t allowed = (inflight > retrying ? inflight - retrying : 0) * p->up->conf->retry.budget_percent / 100;
    if (allowed < 3)
        allowed = 3;
    if (retrying < allowed)
        return 1;
    FICUS_ATOMIC_ADD(&s->budget_exhausted, 1);
    return 0;
}

static void on_backoff(ficus_delay_t *d)
{
    ficus_proxy_t *p = H2O_STRUCT_FROM_MEMBER(ficus_proxy_t, backoff, d);
    ficus_attempt_start(p);
}

/* Retries when the rules allow it (then 1), else 0. retry_after: the 503's Retry-After in ms, 0 when none. */
static int maybe_retry(ficus_proxy_t *p, ficus_retry_reason_t reason, uint64_t retry_after)
{
    const ficus_upstream_conf_t *u = p->up->conf;
    if ((u->retry.on & (1u << reason)) == 0 || (reason != FICUS_RETRY_CONNECT_FAILURE && !p->replayable) ||
        p->attempts >= u->retry.attempts || p->timed_out)
        return 0;
    uint64_t left = remaining_ms(p);
    if (retry_after > left || !budget_allows(p))
        return 0;
    uint64_t delay = ficus_backoff_ms(u, p->retries + 1);
    if (retry_after > delay) {
        /* Retry-After speaks for the endpoint that sent it: wait for it only when no other endpoint is left */
        int others = 0;
        for (size_t i = 0; i != u->num_endpoints && !others; ++i)
            others = !ficus_endpoint_set_has(&p->tried, i);
        if (!others)
            delay = retry_after;
    }
    FICUS_ATOMIC_ADD(&p->up->state->retries[reason], 1);
    ++p->retries;
    if (!p->retrying) {
        p->retrying = 1;
        struct st_ficus_upstream_slot_t *slot = &p->up->state->slots[p->r->worker->index];
        FICUS_ATOMIC_STORE(&slot->retries, FICUS_ATOMIC_LOAD(&slot->retries) + 1);
    }
    ficus_delay_start(&p->backoff, p->r->worker, delay, on_backoff);
    return 1;
}

static void discard_response(ficus_proxy_t *p)
{
    if (!p->x.done)
        ficus_upc_cancel(&p->x); /* the rest of a failed answer is not worth reading: the connection closes */
    h2o_buffer_consume(&p->x.body, p->x.body->size);
}

static void on_head(ficus_upc_t *x, const char *err, const ficus_upc_response_t *res)
{
    ficus_proxy_t *p = x->data;

    if (err == NULL) {
        int st = res->status;
        ficus_proxy_record(p, st >= 500);
        if (st >= 502 && st <= 504) {
            ficus_retry_reason_t reason = FICUS_RETRY_502 + (st - 502);
            if (maybe_retry(p, reason, st == 503 ? retry_after_ms(res) : 0)) {
                discard_response(p);
                ficus_proxy_end_attempt(p);
                return;
            }
            if (p->fallback != NULL && p->replayable) {
                discard_response(p);
                ficus_proxy_end_attempt(p);
                ficus_proxy_upstream_failed(p, FICUS_PROXY_STATUS_502 + (st - 502), 502, "bad_gateway", "upstream_status", 0);
                return;
            }
        }
        ficus_relay_start(p, res);
        return;
    }

    if (err == ficus_upc_err_reset && x->reused && !p->stale_retry_done && p->replayable) {
        /* a pooled connection the upstream had closed: nothing was processed, the endpoint is not to blame */
        ficus_proxy_count_error(p, FICUS_UPSTREAM_ERR_RESET);
        FICUS_ATOMIC_ADD(&p->up->state->retries[FICUS_RETRY_RESET], 1);
        p->stale_retry_done = 1;
        --p->attempts;
        ficus_proxy_end_attempt(p);
        ficus_attempt_start(p);
        return;
    }
    ficus_proxy_record(p, 1);
    ficus_proxy_end_attempt(p);
    if (err == ficus_upc_err_timeout) {
        ficus_proxy_count_error(p, FICUS_UPSTREAM_ERR_TIMEOUT);
        if (!maybe_retry(p, FICUS_RETRY_504, 0))
            ficus_proxy_upstream_failed(p, FICUS_PROXY_TIMEOUT, 504, "gateway_timeout", "upstream_timeout", 0);
    } else if (err == ficus_upc_err_reset) {
        ficus_proxy_count_error(p, FICUS_UPSTREAM_ERR_RESET);
        if (!maybe_retry(p, FICUS_RETRY_RESET, 0))
            ficus_proxy_upstream_failed(p, FICUS_PROXY_RESET, 502, "bad_gateway", "upstream_reset", 0);
    } else {
        ficus_proxy_count_error(p, FICUS_UPSTREAM_ERR_PROTOCOL);
        ficus_proxy_upstream_failed(p, FICUS_PROXY_PROTOCOL, 502, "bad_gateway", "upstream_protocol_error", 0);
    }
}

static void on_connect(ficus_upc_t *x, const char *err)
{
    ficus_proxy_t *p = x->data;
    if (err != NULL) {
        int is_timeout = err == ficus_upc_err_connect_timeout;
        ficus_proxy_count_error(p, is_timeout ? FICUS_UPSTREAM_ERR_TIMEOUT : FICUS_UPSTREAM_ERR_CONNECT);
        ficus_proxy_record(p, 1);
        ficus_proxy_end_attempt(p);
        if (maybe_retry(p, FICUS_RETRY_CONNECT_FAILURE, 0))
            return;
        if (is_timeout)
            ficus_proxy_upstream_failed(p, FICUS_PROXY_CONNECT_FAILURE, 504, "gateway_timeout", "upstream_connect_timeout", 0);
        else
            ficus_proxy_upstream_failed(
                p, FICUS_PROXY_CONNECT_FAILURE, 502, "bad_gateway",
                err == ficus_upc_err_connect_refused ? "upstream_connect_refused" : "upstream_connect_failed", 0);
        return;
    }
    h2o_socket_t *sock = ficus_upc_socket(x);
    if (sock != NULL && !x->reused)
        ficus_send_guard_bound_upstream(p->r, h2o_socket_get_fd(sock)); /* server.limits.max_response_buffer */
    ficus_upstream_request_line(&p->req, &p->up->conf->endpoints[p->ep_index]);
    ficus_upc_send(x, p->req.reqbufs, p->req.num_reqbufs, p->req.is_head, on_head);
}

void ficus_attempt_start(ficus_proxy_t *p)
{
    ficus_upstream_rt_t *up = p->up;
    uint64_t now = ficus_mono_us();
    if (p->attempts == 0 && p->fallback != NULL && up->conf->outlier.enabled && FICUS_ATOMIC_LOAD(&up->state->panic)) {
        ficus_proxy_upstream_failed(p, FICUS_PROXY_NO_ENDPOINT, 503, "upstream_unavailable", "upstream_panic", 1000);
        return;
    }
    int trial;
    ssize_t i = ficus_balancer_pick(up, p->r, &p->tried, now, &trial);
    if (i < 0) {
        ficus_proxy_upstream_failed(p, FICUS_PROXY_NO_ENDPOINT, 503, "upstream_unavailable", "upstream_no_endpoint",
                                    ficus_balancer_retry_after_ms(up, now));
        return;
    }
    ++p->attempts;
    ficus_endpoint_set_add(&p->tried, (size_t)i);
    p->ep_index = i;
    p->ep = up->endpoints[i];
    p->ep_trial = trial;
    p->recorded = 0;
    ++p->ep->inflight;
    uint64_t *slot = &p->ep->state->inflight[p->r->worker->index];
    FICUS_ATOMIC_STORE(slot, FICUS_ATOMIC_LOAD(slot) + 1);
    p->r->upstream.endpoint = up->conf->endpoints[i].address;
    p->r->upstream.started_at_us = now;
    /* may call on_connect synchronously (a pooled connection, or a connect that failed at once) */
    ficus_upc_connect(&p->x, &p->ep->pool, on_connect);
}
