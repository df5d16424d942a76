/* The series of traffic control (see ficus/traffic.h): per route and upstream (answers by class, latency,
 * decisions), per route, failed upstream and fallback (fallbacks by reason), per route (mirror results, comparisons).
 *
 * DESIGN: as gateway/metrics.c: series are created at config load on the control thread under a mutex, looked up by
 * their names so a reload keeps counting, one slot per worker written only by that worker. Label values are route
 * and upstream names from the configuration, so the number of series is bounded by what was ever configured.
 * The upstream's answer is counted per attempt: a failure without an answer (connect, reset, timeout) counts as
 * code 5xx of the upstream that failed, so the new side's errors are visible even when the fallback hid them. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/log.h"
#include "ficus/traffic.h"
#include "ficus/worker.h"

const char *const ficus_decision_names[FICUS_DECISION__COUNT] = {"route", "bucket", "sticky_cookie", "override", "fallback"};
const char *const ficus_mirror_stat_names[FICUS_MIRROR_STAT__COUNT] = {
    "sent", "skipped_sample", "skipped_method", "skipped_body", "skipped_capacity", "error", "timeout"};
const char *const ficus_compare_result_names[FICUS_COMPARE__COUNT] = {"match", "status_differs", "body_differs", "shadow_error",
                                                                      "shadow_timeout"};
const char *const ficus_fallback_reason_names[FICUS_FALLBACK__COUNT] = {"connect", "no_endpoint", "circuit_open", "reset",
                                                                        "502",     "503",         "504"};

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static H2O_VECTOR(ficus_route_upstream_stats_t *) pairs;
static H2O_VECTOR(ficus_fallback_stats_t *) fallbacks;
static H2O_VECTOR(ficus_mirror_stats_t *) mirrors;

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        ficus_fatal("no memory");
    return p;
}

static void *xcalloc(size_t size)
{
    void *p = calloc(1, size);
    if (p == NULL)
        ficus_fatal("no memory");
    return p;
}

ficus_route_upstream_stats_t *ficus_traffic_stats_get(const char *route, const char *upstream)
{
    ficus_route_upstream_stats_t *s = NULL;
    pthread_mutex_lock(&registry_mutex);
    for (size_t i = 0; i != pairs.size && s == NULL; ++i)
        if (strcmp(pairs.entries[i]->route, route) == 0 && strcmp(pairs.entries[i]->upstream, upstream) == 0)
            s = pairs.entries[i];
    if (s == NULL) {
        s = xcalloc(sizeof(*s));
        s->route = xstrdup(route);
        s->upstream = xstrdup(upstream);
        h2o_vector_reserve(NULL, &pairs, pairs.size + 1);
        pairs.entries[pairs.size++] = s;
    }
    pthread_mutex_unlock(&registry_mutex);
    return s;
}

ficus_fallback_stats_t *ficus_fallback_stats_get(const char *route, const char *from, const char *to)
{
    ficus_fallback_stats_t *s = NULL;
    pthread_mutex_lock(&registry_mutex);
    for (size_t i = 0; i != fallbacks.size && s == NULL; ++i)
        if (strcmp(fallbacks.entries[i]->route, route) == 0 && strcmp(fallbacks.entries[i]->from, from) == 0 &&
            strcmp(fallbacks.entries[i]->to, to) == 0)
            s = fallbacks.entries[i];
    if (s == NULL) {
        s = xcalloc(sizeof(*s));
        s->route = xstrdup(route);
        s->from = xstrdup(from);
        s->to = xstrdup(to);
        h2o_vector_reserve(NULL, &fallbacks, fallbacks.size + 1);
        fallbacks.entries[fallbacks.size++] = s;
    }
    pthread_mutex_unlock(&registry_mutex);
    return s;
}

ficus_mirror_stats_t *ficus_mirror_stats_get(const char *route)
{
    ficus_mirror_stats_t *s = NULL;
    pthread_mutex_lock(&registry_mutex);
    for (size_t i = 0; i != mirrors.size && s == NULL; ++i)
        if (strcmp(mirrors.entries[i]->route, route) == 0)
            s = mirrors.entries[i];
    if (s == NULL) {
        s = xcalloc(sizeof(*s));
        s->route = xstrdup(route);
        h2o_vector_reserve(NULL, &mirrors, mirrors.size + 1);
        mirrors.entries[mirrors.size++] = s;
    }
    pthread_mutex_unlock(&registry_mutex);
    return s;
}

void ficus_traffic_record_response(ficus_req_t *r, const ficus_upstream_conf_t *upstream, int status, uint64_t duration_us)
{
    const ficus_traffic_conf_t *t = r->route != NULL ? r->route->traffic : NULL;
    ficus_route_upstream_stats_t *rs;
    if (t == NULL || (rs = t->stats[upstream->index]) == NULL)
        return;
    ficus_route_upstream_stats_slot_t *s = rs->slots + r->worker->index;
    ficus_counter_add(&s->by_class[status >= 100 && status < 600 ? status / 100 : 0], 1);
    size_t b = 0;
    while (b != FICUS_LATENCY_BUCKETS && duration_us > ficus_metrics_latency_bounds_us[b])
        ++b;
    ficus_counter_add(&s->latency_buckets[b], 1);
    ficus_counter_add(&s->latency_sum_us, duration_us);
}

/* The sum over workers of one counter of a series (its slots are `stride` bytes apart). */
static uint64_t sum_slots(const uint64_t *first, size_t stride, unsigned num_workers)
{
    uint64_t sum = 0;
    for (unsigned w = 0; w != num_workers; ++w)
        sum += ficus_counter_get((const uint64_t *)((const char *)first + w * stride));
    return sum;
}

#define SUM(field) sum_slots(&s->slots[0].field, sizeof(s->slots[0]), num_workers)

void ficus_traffic_render_metrics(h2o_mem_pool_t *pool, h2o_iovec_t *out, unsigned num_workers)
{
    static const char *const classes[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    ficus_metrics_buf_t b = {pool, NULL, 0, 8192};
    pthread_mutex_lock(&registry_mutex);

    ficus_metrics_appendf(&b, "# HELP ficus_split_decisions_total How each proxied request's upstream was chosen.\n"
                              "# TYPE ficus_split_decisions_total counter\n");
    for (size_t i = 0; i != pairs.size; ++i) {
        ficus_route_upstream_stats_t *s = pairs.entries[i];
        for (int d = 0; d != FICUS_DECISION__COUNT; ++d)
            ficus_metrics_appendf(&b, "ficus_split_decisions_total{route=\"%s\",upstream=\"%s\",decision=\"%s\"} %llu\n", s->route,
                                  s->upstream, ficus_decision_names[d], (unsigned long long)SUM(decisions[d]));
    }
    ficus_metrics_appendf(&b, "# HELP ficus_upstream_responses_total Upstream answers by route, upstream and status class "
                              "(5xx includes attempts that got no answer).\n# TYPE ficus_upstream_responses_total counter\n");
    for (size_t i = 0; i != pairs.size; ++i) {
        ficus_route_upstream_stats_t *s = pairs.entries[i];
        for (int c = 1; c != 6; ++c)
            ficus_metrics_appendf(&b, "ficus_upstream_responses_total{route=\"%s\",upstream=\"%s\",code=\"%s\"} %llu\n", s->route,
                                  s->upstream, classes[c], (unsigned long long)SUM(by_class[c]));
    }
    ficus_metrics_appendf(&b, "# HELP ficus_upstream_duration_seconds Time from sending to an upstream to its response head.\n"
                              "# TYPE ficus_upstream_duration_seconds histogram\n");
    for (size_t i = 0; i != pairs.size; ++i) {
        ficus_route_upstream_stats_t *s = pairs.entries[i];
        uint64_t cum = 0;
        for (size_t k = 0; k <= FICUS_LATENCY_BUCKETS; ++k) {
            cum += SUM(latency_buckets[k]);
            if (k != FICUS_LATENCY_BUCKETS)
                ficus_metrics_appendf(&b, "ficus_upstream_duration_seconds_bucket{route=\"%s\",upstream=\"%s\",le=\"%g\"} %llu\n",
                                      s->route, s->upstream, ficus_metrics_latency_bounds_us[k] / 1e6, (unsigned long long)cum);
            else
                ficus_metrics_appendf(&b, "ficus_upstream_duration_seconds_bucket{route=\"%s\",upstream=\"%s\",le=\"+Inf\"} %llu\n",
                                      s->route, s->upstream, (unsigned long long)cum);
        }
        ficus_metrics_appendf(&b, "ficus_upstream_duration_seconds_sum{route=\"%s\",upstream=\"%s\"} %.6f\n", s->route, s->upstream,
                              SUM(latency_sum_us) / 1e6);
        ficus_metrics_appendf(&b, "ficus_upstream_duration_seconds_count{route=\"%s\",upstream=\"%s\"} %llu\n", s->route,
                              s->upstream, (unsigned long long)cum);
    }
    ficus_metrics_appendf(&b, "# HELP ficus_fallbacks_total Requests sent to the route's fallback after the chosen upstream "
                              "failed, by reason.\n# TYPE ficus_fallbacks_total counter\n");
    for (size_t i = 0; i != fallbacks.size; ++i) {
        ficus_fallback_stats_t *s = fallbacks.entries[i];
        for (int k = 0; k != FICUS_FALLBACK__COUNT; ++k)
            ficus_metrics_appendf(&b, "ficus_fallbacks_total{route=\"%s\",from=\"%s\",to=\"%s\",reason=\"%s\"} %llu\n", s->route,
                                  s->from, s->to, ficus_fallback_reason_names[k], (unsigned long long)SUM(reasons[k]));
    }
    ficus_metrics_appendf(&b, "# HELP ficus_mirror_requests_total Mirrored copies by result (sent, skipped by reason, failed).\n"
                              "# TYPE ficus_mirror_requests_total counter\n");
    for (size_t i = 0; i != mirrors.size; ++i) {
        ficus_mirror_stats_t *s = mirrors.entries[i];
        for (int k = 0; k != FICUS_MIRROR_STAT__COUNT; ++k)
            ficus_metrics_appendf(&b, "ficus_mirror_requests_total{route=\"%s\",result=\"%s\"} %llu\n", s->route,
                                  ficus_mirror_stat_names[k], (unsigned long long)SUM(results[k]));
    }
    ficus_metrics_appendf(&b, "# HELP ficus_mirror_compare_total The shadow's answer compared with the primary's.\n"
                              "# TYPE ficus_mirror_compare_total counter\n");
    for (size_t i = 0; i != mirrors.size; ++i) {
        ficus_mirror_stats_t *s = mirrors.entries[i];
        for (int k = 0; k != FICUS_COMPARE__COUNT; ++k)
            ficus_metrics_appendf(&b, "ficus_mirror_compare_total{route=\"%s\",result=\"%s\"} %llu\n", s->route,
                                  ficus_compare_result_names[k], (unsigned long long)SUM(compare[k]));
    }
    pthread_mutex_unlock(&registry_mutex);
    *out = h2o_iovec_init(b.buf, b.len);
}
