/* The life of a request inside ficus: entry from H2O, checks, route match, plugin pipeline, action, local replies,
 * and the end-of-request bookkeeping (metrics, access log, abort accounting).
 *
 * FLOW: on_req → (redirect-only listener? 308) → limits → route → plugins (CONTINUE / PAUSE / RESPONDED) → action
 * (proxy | redirect | respond). Every response, local or proxied, passes ficus_req_before_response() so plugins'
 * response hooks and ficus's own headers (x-request-id, HSTS) apply uniformly.
 * LIFETIME: ficus_req_t lives in the request pool; its dispose callback runs when H2O disposes the request (normal
 * end or client gone) and is the one place where the request is accounted and its generation reference dropped.
 * A paused request's pending resume is cancelled there too. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "ficus/clock.h"
#include "ficus/contract.h"
#include "ficus/h2_stream_error.h"
#include "ficus/log.h"
#include "ficus/metrics.h"
#include "ficus/plugin.h"
#include "ficus/req_hygiene.h"
#include "ficus/route.h"
#include "ficus/traffic.h"
#include "ficus/worker.h"

void **ficus_req_plugin_slot(ficus_req_t *req)
{
    return &req->plugin_data[req->_current_plugin];
}

h2o_loop_t *ficus_req_loop(ficus_req_t *req)
{
    return req->worker->loop;
}

int ficus_req_responded(const ficus_req_t *req)
{
    return req->_responded;
}

/* ---- request id ---- */

static __thread uint64_t rid_state[2];

uint64_t ficus_random64(void)
{
    /* xorshift128+: request ids must be unique, not secret */
    if (rid_state[0] == 0 && rid_state[1] == 0) {
        if (getrandom(rid_state, sizeof(rid_state), 0) != sizeof(rid_state) || (rid_state[0] | rid_state[1]) == 0)
            rid_state[0] = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&rid_state, rid_state[1] = ficus_mono_us() | 1;
    }
    uint64_t s1 = rid_state[0];
    const uint64_t s0 = rid_state[1];
    rid_state[0] = s0;
    s1 ^= s1 << 23;
    rid_state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return rid_state[1] + s0;
}

static int is_valid_request_id(h2o_iovec_t v)
{
    if (v.len == 0 || v.len > 128)
        return 0;
    for (size_t i = 0; i != v.len; ++i)
        if (!(isalnum((unsigned char)v.base[i]) || v.base[i] == '-' || v.base[i] == '_' || v.base[i] == '.'))
            return 0;
    return 1;
}

static h2o_iovec_t make_request_id(h2o_req_t *req)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i != -1 && is_valid_request_id(req->headers.entries[i].value))
        return req->headers.entries[i].value;
    char *buf = h2o_mem_alloc_pool(&req->pool, 33);
    static const char hex[] = "0123456789abcdef";
    uint64_t a = ficus_random64(), b = ficus_random64();
    for (int i = 15; i >= 0; --i, a >>= 4, b >>= 4) { /* per request: no printf */
        buf[i] = hex[a & 15];
        buf[16 + i] = hex[b & 15];
    }
    buf[32] = '\0';
    return h2o_iovec_init(buf, 32);
}

/* ---- responses ---- */

void ficus_req_before_response(ficus_req_t *r)
{
    h2o_req_t *req = r->h2o;
    r->_responded = 1;
    if (r->config->server.request_id_in_response)
        h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, r->request_id.base, r->request_id.len,
                              1);
    if (r->route != NULL) {
        for (size_t i = 0; i != r->route->num_plugins; ++i) {
            const ficus_plugin_instance_t *pi = r->route->plugins + i;
            r->_current_plugin = i;
            if (pi->plugin->on_response != NULL)
                pi->plugin->on_response(pi->conf, r);
        }
    }
    ficus_traffic_before_response(r);
    /* HSTS of the listener this request came through, formatted at config load */
    if (r->is_tls && r->listener->tls->hsts_value.base != NULL)
        h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_STRICT_TRANSPORT_SECURITY, r->listener->tls->hsts_value.base,
                       r->listener->tls->hsts_value.len, 1);
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "";
    }
}

static void send_local(ficus_req_t *r, int status, const char *content_type, h2o_iovec_t body, int copy)
{
    h2o_req_t *req = r->h2o;
    if (r->_responded) {
        ficus_contract_violation(r, r->_blame, FICUS_CONTRACT_SECOND_RESPONSE);
        return;
    }
    if (h2o_timeout_is_linked(&r->_resume)) {
        /* resumed, then answered: the answer stands, the resume is dropped */
        ficus_contract_violation(r, r->_blame, FICUS_CONTRACT_RESPONSE_AFTER_RESUME);
        h2o_timeout_unlink(&r->_resume);
    }
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    req->res.content_length = body.len;
    if (content_type != NULL)
        h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, content_type, strlen(content_type), 1);
    ficus_req_before_response(r);
    r->_completed = 1;
    if (copy) {
        h2o_send_inline(req, body.base, body.len);
    } else {
        static h2o_generator_t generator = {NULL, NULL};
        h2o_start_response(req, &generator);
        int is_head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
        h2o_send(req, is_head ? NULL : &body, is_head || body.len == 0 ? 0 : 1, H2O_SEND_STATE_FINAL);
    }
}

void ficus_req_respond(ficus_req_t *r, int status, const char *content_type, h2o_iovec_t body)
{
    send_local(r, status, content_type, body, 1);
}

void ficus_req_respond_error(ficus_req_t *r, int status, const char *code)
{
    char buf[160];
    int n = snprintf(buf, sizeof(buf), "{\"error\":\"%s\"}\n", code);
    if (r->error == NULL)
        r->error = code;
    send_local(r, status, "application/json", h2o_iovec_init(buf, n), 1);
}

/* ---- actions ---- */

static h2o_iovec_t path_without_query(h2o_req_t *req)
{
    size_t q = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    return h2o_iovec_init(req->path.base, q);
}

static h2o_iovec_t host_without_port(h2o_iovec_t authority)
{
    if (authority.len != 0 && authority.base[0] == '[') {
        const char *rb = memchr(authority.base, ']', authority.len);
        return rb != NULL ? h2o_iovec_init(authority.base, rb - authority.base + 1) : authority;
    }
    const char *colon = memchr(authority.base, ':', authority.len);
    return colon != NULL ? h2o_iovec_init(authority.base, colon - authority.base) : authority;
}

static void send_redirect(ficus_req_t *r, int status, const char *location, size_t len)
{
    h2o_req_t *req = r->h2o;
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, location, len, 1);
    send_local(r, status, NULL, h2o_iovec_init("", 0), 0);
}

static void do_redirect(ficus_req_t *r)
{
    h2o_req_t *req = r->h2o;
    const char *t = r->route->data.redirect.location_template;
    h2o_iovec_t path = path_without_query(req);
    h2o_iovec_t query = req->query_at != SIZE_MAX ? h2o_iovec_init(req->path.base + req->query_at, req->path.len - req->query_at)
                                                  : h2o_iovec_init("", 0);
    h2o_iovec_t host = host_without_port(req->authority);
    /* every placeholder may appear several times: size the output for the worst case */
    size_t placeholders = 0, len = 0;
    for (const char *p = t; (p = strchr(p, '{')) != NULL; ++p)
        ++placeholders;
    size_t longest = path.len > query.len ? path.len : query.len;
    if (host.len > longest)
        longest = host.len;
    char *out = h2o_mem_alloc_pool(&req->pool, strlen(t) + placeholders * longest + 1);
    while (*t != '\0') {
        h2o_iovec_t sub = {NULL, 0};
        size_t skip = 1;
        if (strncmp(t, "{path}", 6) == 0)
            sub = path, skip = 6;
        else if (strncmp(t, "{query}", 7) == 0)
            sub = query, skip = 7;
        else if (strncmp(t, "{host}", 6) == 0)
            sub = host, skip = 6;
        if (sub.base != NULL || skip != 1) {
            memcpy(out + len, sub.base, sub.len);
            len += sub.len;
        } else {
            out[len++] = *t;
        }
        t += skip;
    }
    send_redirect(r, r->route->data.redirect.status, out, len);
}

static void run_action(ficus_req_t *r)
{
    const ficus_route_t *route = r->route;
    switch (route->action) {
    case FICUS_ACTION_RESPOND:
        send_local(r, route->data.respond.status, route->data.respond.content_type, route->data.respond.body, 0);
        break;
    case FICUS_ACTION_REDIRECT:
        do_redirect(r);
        break;
    case FICUS_ACTION_PROXY:
        ficus_traffic_proxy(r); /* split, fallback, mirror (gateway/traffic.c) */
        break;
    }
}

/* ---- the plugin pipeline ---- */

/* A broken contract: logged and counted (ficus/contract.h); the request gets a 500 unless something was sent. */
static void contract_violation(ficus_req_t *r, const ficus_plugin_t *plugin, ficus_contract_violation_t what)
{
    ficus_contract_violation(r, plugin, what);
    if (!r->_responded) {
        r->error = "plugin_contract_violation";
        ficus_req_respond_error(r, 500, "internal_error");
    }
}

/* Checks the status a phase function returned against what it did (ficus/plugin.h CONTRACT), in every pipeline loop.
 * Returns 1 to go on with the next plugin, 0 when the request is paused or answered. */
static int check_status(ficus_req_t *r, const ficus_plugin_t *plugin, ficus_status_t status)
{
    switch (status) {
    case FICUS_CONTINUE:
        if (!r->_responded)
            return 1;
        contract_violation(r, plugin, FICUS_CONTRACT_CONTINUE_AFTER_RESPONSE);
        return 0;
    case FICUS_PAUSE:
        if (r->_responded) {
            contract_violation(r, plugin, FICUS_CONTRACT_PAUSE_AFTER_RESPONSE);
            return 0;
        }
        r->_paused = 1;
        return 0;
    case FICUS_RESPONDED:
        if (!r->_responded)
            contract_violation(r, plugin, FICUS_CONTRACT_RESPONDED_WITHOUT_RESPONSE);
        return 0;
    }
    contract_violation(r, plugin, FICUS_CONTRACT_UNKNOWN_STATUS);
    return 0;
}

static void run_pipeline(ficus_req_t *r)
{
    const ficus_route_t *route = r->route;
    while (r->_next_plugin < route->num_plugins) {
        r->_current_plugin = r->_next_plugin;
        const ficus_plugin_instance_t *pi = route->plugins + r->_next_plugin++;
        if (pi->plugin->on_request == NULL)
            continue;
        r->_blame = pi->plugin;
        if (!check_status(r, pi->plugin, pi->plugin->on_request(pi->conf, r)))
            return;
    }
    r->_blame = NULL;
    run_action(r);
}

static void route_and_run(ficus_req_t *r);

/* The pre-route phase: plugins that own paths on every host (ficus/plugin.h on_pre_route). Returns 1 to go on. */
static int run_pre_route(ficus_req_t *r)
{
    while (ficus_plugins[r->_next_pre_route] != NULL) {
        size_t i = r->_next_pre_route++;
        const ficus_plugin_t *p = ficus_plugins[i];
        if (p->on_pre_route == NULL || r->config->plugin_globals[i] == NULL)
            continue;
        r->_blame = p;
        if (!check_status(r, p, p->on_pre_route(r->config->plugin_globals[i], r)))
            return 0;
    }
    r->_blame = NULL;
    r->_pre_route_done = 1;
    return 1;
}

static void on_resume(h2o_timeout_entry_t *entry)
{
    ficus_req_t *r = H2O_STRUCT_FROM_MEMBER(ficus_req_t, _resume, entry);
    if (r->_responded)
        return; /* answered after resuming: counted by send_local */
    if (!r->_pre_route_done) {
        if (run_pre_route(r))
            route_and_run(r);
        return;
    }
    run_pipeline(r);
}

static void route_and_run(ficus_req_t *r)
{
    h2o_req_t *req = r->h2o;
    r->route = ficus_route_find(r->config, host_without_port(req->authority), req->method, req->path_normalized, &req->headers);
    if (r->route == NULL) {
        ficus_req_respond_error(r, 404, "no_route");
        return;
    }
    run_pipeline(r);
}

void ficus_req_resume(ficus_req_t *r)
{
    if (!r->_paused || r->_responded) {
        ficus_contract_violation(r, r->_blame,
                                 r->_responded ? FICUS_CONTRACT_RESUME_AFTER_RESPONSE : FICUS_CONTRACT_RESUME_NOT_PAUSED);
        return;
    }
    r->_paused = 0;
    /* always on a later tick: a completion never re-enters the code that started it */
    r->_resume.cb = on_resume;
    h2o_timeout_link(r->worker->loop, &r->worker->ctx.zero_timeout, &r->_resume);
}

/* ---- entry and end ---- */

static void on_req_dispose(void *_r)
{
    ficus_req_t *r = _r;
    ficus_worker_t *w = r->worker;
    if (h2o_timeout_is_linked(&r->_resume))
        h2o_timeout_unlink(&r->_resume);
    if (!r->_completed) {
        /* the client went away (stream reset, connection closed) before the response was complete */
        ficus_counter_add(&ficus_worker_stats[w->index].aborted_requests, 1);
        if (r->error == NULL)
            r->error = "client_aborted";
        if (r->h2o->version >= 0x200)
            ficus_h2_guard_on_abort(w, r->h2o, r->config);
    }
    uint64_t duration = ficus_mono_us() - r->started_at_us;
    int status = r->_responded ? r->h2o->res.status : 499;
    ficus_metrics_record_request(r->route != NULL ? r->route->stats : ficus_metrics_no_route(), w->index, status, duration);
    ficus_traffic_on_request_end(r);
    if (r->config->server.access_log_fd >= 0)
        ficus_access_log_write(&w->access_log, r->config->server.access_log_fd, r);
    if (r->claims != NULL)
        json_decref(r->claims);
    --w->inflight;
    ficus_counter_add(&ficus_worker_stats[w->index].inflight, (uint64_t)-1);
    ficus_wgen_release(r->wgen);
}

static size_t header_bytes(const h2o_req_t *req)
{
    size_t total = req->authority.len + req->path.len;
    for (size_t i = 0; i != req->headers.size; ++i)
        total += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    return total;
}

int ficus_request_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    ficus_worker_t *w = ficus_current_worker;
    ficus_wgen_t *wg = w->current;
    const ficus_listener_conf_t *lc = wg->config->server.listeners + ((ficus_handler_t *)self)->listener_index;

    if (ficus_h2_refuse_malformed(req))
        return 0; /* a stream error, not a response */
    ficus_req_t *r = h2o_mem_alloc_shared(&req->pool, sizeof(*r), on_req_dispose);
    memset(r, 0, sizeof(*r));
    r->h2o = req;
    r->worker = w;
    r->wgen = wg;
    ++wg->refcnt;
    r->config = wg->config;
    r->started_at_us = ficus_mono_us();
    r->listener = lc;
    r->is_tls = lc->tls != NULL;
    ++w->inflight;
    ficus_counter_add(&ficus_worker_stats[w->index].inflight, 1);
    r->request_id = make_request_id(req);
    ficus_trace_start(r);

    /* one canonical path, a checked authority and clean headers for everything below (ficus/req_hygiene.h): client
     * copies of identity headers and Connection-named headers are gone before any plugin sets a header */
    const char *bad = ficus_req_hygiene(r);
    if (bad != NULL) {
        ficus_req_respond_error(r, 400, bad);
        return 0;
    }

    if (lc->redirect_https_port != 0) {
        h2o_iovec_t host = host_without_port(req->authority);
        if (host.len == 0) {
            ficus_req_respond_error(r, 400, "missing_host");
            return 0;
        }
        char *loc = h2o_mem_alloc_pool(&req->pool, host.len + req->path.len + 32);
        int n = sprintf(loc, "https://%.*s", (int)host.len, host.base);
        if (lc->redirect_https_port != 443)
            n += sprintf(loc + n, ":%u", lc->redirect_https_port);
        memcpy(loc + n, req->path.base, req->path.len);
        n += (int)req->path.len;
        send_redirect(r, 308, loc, n);
        return 0;
    }

    if (header_bytes(req) > r->config->server.max_header_bytes) {
        ficus_req_respond_error(r, 431, "headers_too_large");
        return 0;
    }
    if (req->entity.base != NULL && req->entity.len > r->config->server.max_body_bytes) {
        ficus_req_respond_error(r, 413, "body_too_large");
        return 0;
    }

    if (run_pre_route(r))
        route_and_run(r);
    return 0;
}
