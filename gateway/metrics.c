/* Metrics registry and Prometheus rendering (see ficus/metrics.h). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/log.h"
#include "ficus/metrics.h"

const uint64_t ficus_metrics_latency_bounds_us[FICUS_LATENCY_BUCKETS] = {1000,   2500,   5000,   10000,   25000,   50000,
                                                                         100000, 250000, 500000, 1000000, 2500000, 10000000};
const char *const ficus_upstream_error_names[FICUS_UPSTREAM_ERR__COUNT] = {"connect", "timeout", "reset", "protocol", "overloaded"};

ficus_worker_stats_t ficus_worker_stats[FICUS_MAX_WORKERS];
uint64_t ficus_metrics_reloads_success, ficus_metrics_reloads_failure;

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static H2O_VECTOR(ficus_route_stats_t *) routes;
static H2O_VECTOR(ficus_upstream_stats_t *) upstreams;
static ficus_route_stats_t *no_route;

ficus_route_stats_t *ficus_metrics_route_get(const char *name)
{
    ficus_route_stats_t *rs = NULL;
    pthread_mutex_lock(&registry_mutex);
    for (size_t i = 0; i != routes.size; ++i)
        if (strcmp(routes.entries[i]->name, name) == 0)
            rs = routes.entries[i];
    if (rs == NULL) {
        if ((rs = calloc(1, sizeof(*rs))) == NULL || (rs->name = strdup(name)) == NULL)
            ficus_fatal("no memory");
        h2o_vector_reserve(NULL, &routes, routes.size + 1);
        routes.entries[routes.size++] = rs;
    }
    pthread_mutex_unlock(&registry_mutex);
    return rs;
}

ficus_route_stats_t *ficus_metrics_no_route(void)
{
    if (no_route == NULL)
        ficus_fatal("metrics not initialised");
    return no_route;
}

ficus_upstream_stats_t *ficus_metrics_upstream_get(const char *name)
{
    ficus_upstream_stats_t *us = NULL;
    pthread_mutex_lock(&registry_mutex);
    for (size_t i = 0; i != upstreams.size; ++i)
        if (strcmp(upstreams.entries[i]->name, name) == 0)
            us = upstreams.entries[i];
    if (us == NULL) {
        if ((us = calloc(1, sizeof(*us))) == NULL || (us->name = strdup(name)) == NULL)
            ficus_fatal("no memory");
        h2o_vector_reserve(NULL, &upstreams, upstreams.size + 1);
        upstreams.entries[upstreams.size++] = us;
    }
    pthread_mutex_unlock(&registry_mutex);
    return us;
}

__attribute__((constructor)) static void init_no_route(void)
{
    no_route = ficus_metrics_route_get("_none");
}

void ficus_metrics_record_request(ficus_route_stats_t *rs, unsigned worker, int status, uint64_t duration_us)
{
    ficus_route_stats_slot_t *s = rs->slots + worker;
    int cls = status >= 100 && status < 600 ? status / 100 : 0;
    ficus_counter_add(&s->by_class[cls], 1);
    size_t b = 0;
    while (b != FICUS_LATENCY_BUCKETS && duration_us > ficus_metrics_latency_bounds_us[b])
        ++b;
    ficus_counter_add(&s->latency_buckets[b], 1);
    ficus_counter_add(&s->latency_sum_us, duration_us);
}

typedef ficus_metrics_buf_t ficus_render_t;

static void vappendf(ficus_metrics_buf_t *r, const char *fmt, va_list ap)
{
    va_list args;
    if (r->buf == NULL) {
        r->cap = r->cap != 0 ? r->cap : 4096;
        r->buf = h2o_mem_alloc_pool(r->pool, r->cap);
    }
    for (;;) {
        va_copy(args, ap);
        int n = vsnprintf(r->buf + r->len, r->cap - r->len, fmt, args);
        va_end(args);
        if (n >= 0 && (size_t)n < r->cap - r->len) {
            r->len += n;
            return;
        }
        size_t cap = r->cap * 2 + (n > 0 ? (size_t)n : 0);
        char *nb = h2o_mem_alloc_pool(r->pool, cap);
        memcpy(nb, r->buf, r->len);
        r->buf = nb;
        r->cap = cap;
    }
}

void ficus_metrics_appendf(ficus_metrics_buf_t *r, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vappendf(r, fmt, args);
    va_end(args);
}

#define out ficus_metrics_appendf /* the renderer below keeps its short name */

void ficus_metrics_render(h2o_mem_pool_t *pool, h2o_iovec_t *result, unsigned num_workers)
{
    ficus_render_t r = {pool, NULL, 0, 16384};
    r.buf = h2o_mem_alloc_pool(pool, r.cap);
    static const char *const classes[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};

    pthread_mutex_lock(&registry_mutex);
    out(&r, "# HELP ficus_requests_total Requests finished, by route and status class.\n# TYPE ficus_requests_total counter\n");
    for (size_t i = 0; i != routes.size; ++i) {
        for (int c = 0; c != 6; ++c) {
            uint64_t sum = 0;
            for (unsigned w = 0; w != num_workers; ++w)
                sum += ficus_counter_get(&routes.entries[i]->slots[w].by_class[c]);
            if (sum != 0 || c == 2)
                out(&r, "ficus_requests_total{route=\"%s\",code=\"%s\"} %llu\n", routes.entries[i]->name, classes[c],
                    (unsigned long long)sum);
        }
    }
    out(&r, "# HELP ficus_request_duration_seconds Time from request head to end of response.\n"
            "# TYPE ficus_request_duration_seconds histogram\n");
    for (size_t i = 0; i != routes.size; ++i) {
        uint64_t cum = 0, sum_us = 0;
        for (unsigned w = 0; w != num_workers; ++w)
            sum_us += ficus_counter_get(&routes.entries[i]->slots[w].latency_sum_us);
        for (size_t b = 0; b <= FICUS_LATENCY_BUCKETS; ++b) {
            for (unsigned w = 0; w != num_workers; ++w)
                cum += ficus_counter_get(&routes.entries[i]->slots[w].latency_buckets[b]);
            if (b != FICUS_LATENCY_BUCKETS)
                out(&r, "ficus_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", routes.entries[i]->name,
                    ficus_metrics_latency_bounds_us[b] / 1e6, (unsigned long long)cum);
            else
                out(&r, "ficus_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", routes.entries[i]->name,
                    (unsigned long long)cum);
        }
        out(&r, "ficus_request_duration_seconds_sum{route=\"%s\"} %.6f\n", routes.entries[i]->name, sum_us / 1e6);
        out(&r, "ficus_request_duration_seconds_count{route=\"%s\"} %llu\n", routes.entries[i]->name, (unsigned long long)cum);
    }
    out(&r, "# HELP ficus_upstream_errors_total Failed upstream attempts, by kind.\n# TYPE ficus_upstream_errors_total counter\n");
    for (size_t i = 0; i != upstreams.size; ++i) {
        for (int k = 0; k != FICUS_UPSTREAM_ERR__COUNT; ++k) {
            uint64_t sum = 0;
            for (unsigned w = 0; w != num_workers; ++w)
                sum += ficus_counter_get(&upstreams.entries[i]->slots[w].errors[k]);
            out(&r, "ficus_upstream_errors_total{upstream=\"%s\",kind=\"%s\"} %llu\n", upstreams.entries[i]->name,
                ficus_upstream_error_names[k], (unsigned long long)sum);
        }
    }
    out(&r,
        "# HELP ficus_upstream_requests_total Requests sent towards an upstream.\n# TYPE ficus_upstream_requests_total counter\n");
    for (size_t i = 0; i != upstreams.size; ++i) {
        uint64_t sum = 0;
        for (unsigned w = 0; w != num_workers; ++w)
            sum += ficus_counter_get(&upstreams.entries[i]->slots[w].requests);
        out(&r, "ficus_upstream_requests_total{upstream=\"%s\"} %llu\n", upstreams.entries[i]->name, (unsigned long long)sum);
    }
    pthread_mutex_unlock(&registry_mutex);

    uint64_t inflight = 0, floods = 0, aborted = 0, send_timeouts = 0, header_timeouts = 0, frame_floods = 0;
    for (unsigned w = 0; w != num_workers; ++w) {
        inflight += ficus_counter_get(&ficus_worker_stats[w].inflight);
        floods += ficus_counter_get(&ficus_worker_stats[w].reset_flood_closes);
        aborted += ficus_counter_get(&ficus_worker_stats[w].aborted_requests);
        send_timeouts += ficus_counter_get(&ficus_worker_stats[w].send_timeouts);
        header_timeouts += ficus_counter_get(&ficus_worker_stats[w].header_timeouts);
        frame_floods += ficus_counter_get(&ficus_worker_stats[w].frame_flood_closes);
    }
    out(&r,
        "# HELP ficus_client_send_timeouts_total Client connections closed because a response did not move for "
        "server.limits.send_timeout.\n# TYPE ficus_client_send_timeouts_total counter\nficus_client_send_timeouts_total %llu\n",
        (unsigned long long)send_timeouts);
    out(&r,
        "# HELP ficus_client_header_timeouts_total Client connections closed because a request header block was not complete "
        "within server.limits.header_timeout.\n# TYPE ficus_client_header_timeouts_total counter\n"
        "ficus_client_header_timeouts_total %llu\n",
        (unsigned long long)header_timeouts);
    out(&r,
        "# HELP ficus_http2_frame_flood_total HTTP/2 connections closed for a flood of frames that do nothing (unknown "
        "types).\n# TYPE ficus_http2_frame_flood_total counter\nficus_http2_frame_flood_total %llu\n",
        (unsigned long long)frame_floods);
    out(&r,
        "# HELP ficus_inflight_requests Requests being processed.\n# TYPE ficus_inflight_requests gauge\n"
        "ficus_inflight_requests %lld\n",
        (long long)inflight);
    out(&r,
        "# HELP ficus_http2_reset_flood_total HTTP/2 connections closed for cancelling too many streams.\n"
        "# TYPE ficus_http2_reset_flood_total counter\nficus_http2_reset_flood_total %llu\n",
        (unsigned long long)floods);
    out(&r,
        "# HELP ficus_client_aborted_total Requests the client cancelled before the response was complete.\n"
        "# TYPE ficus_client_aborted_total counter\nficus_client_aborted_total %llu\n",
        (unsigned long long)aborted);
    *result = h2o_iovec_init(r.buf, r.len);
}
