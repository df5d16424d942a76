/* What the upstream layer shows: admin GET /upstreams (JSON) and its Prometheus series (ficus/upstream.h).
 *
 * Both read the running generation's upstreams and their shared states (ficus/upstream/registry.h) with atomic
 * loads, on the control thread, without stopping the workers. Per-worker in-flight counts are summed.
 * METRICS (the names are issue 11's contract): ficus_upstream_retries_total{upstream,reason},
 * ficus_upstream_retry_budget_exhausted_total{upstream}, ficus_upstream_ejections_total{upstream,endpoint},
 * ficus_upstream_endpoint_healthy{upstream,endpoint}, ficus_upstream_breaker_state{upstream} (0 closed, 1 open,
 * 2 half-open; 1 also while no endpoint is available), ficus_upstream_panic{upstream},
 * ficus_health_checks_total{upstream,result}. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include "ficus/clock.h"
#include "ficus/config.h"
#include "ficus/log.h"
#include "ficus/upstream.h"
#include "ficus/upstream/balancer.h"
#include "ficus/upstream/outlier.h"
#include "ficus/upstream/registry.h"

static const char *const breaker_names[] = {"closed", "open", "half_open"};

static uint64_t endpoint_inflight(const ficus_endpoint_state_t *s, unsigned num_workers)
{
    uint64_t n = 0;
    for (unsigned w = 0; w != num_workers; ++w)
        n += FICUS_ATOMIC_LOAD(&s->inflight[w]);
    return n;
}

static int endpoint_available(const ficus_upstream_conf_t *u, const ficus_endpoint_state_t *s, uint64_t now_us)
{
    if (u->health.enabled && FICUS_ATOMIC_LOAD(&s->health) == FICUS_HEALTH_UNHEALTHY)
        return 0;
    return !u->outlier.enabled || ficus_outlier_available(s, now_us);
}

static int any_available(const ficus_upstream_conf_t *u, uint64_t now_us)
{
    for (size_t i = 0; i != u->num_endpoints; ++i)
        if (endpoint_available(u, u->endpoints[i].state, now_us))
            return 1;
    return 0;
}

static int breaker_gauge(const ficus_upstream_conf_t *u, uint64_t now_us)
{
    int b = u->breaker.enabled ? (int)ficus_breaker_state(&u->state->breaker) : FICUS_BREAKER_CLOSED;
    return b == FICUS_BREAKER_CLOSED && !any_available(u, now_us) ? FICUS_BREAKER_OPEN : b;
}

static h2o_iovec_t pool_copy(h2o_mem_pool_t *pool, const char *s)
{
    size_t len = strlen(s);
    char *p = h2o_mem_alloc_pool(pool, len + 1);
    memcpy(p, s, len + 1);
    return h2o_iovec_init(p, len);
}

void ficus_upstreams_render_json(h2o_mem_pool_t *pool, h2o_iovec_t *out, const ficus_config_t *config, unsigned num_workers)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    double wall = tv.tv_sec + tv.tv_usec / 1e6;
    uint64_t now = ficus_mono_us();
    json_t *ups = json_array();
    for (size_t i = 0; i != config->num_upstreams; ++i) {
        const ficus_upstream_conf_t *u = config->upstreams[i];
        ficus_upstream_state_t *us = u->state;
        json_t *eps = json_array();
        uint64_t up_inflight = 0;
        for (size_t j = 0; j != u->num_endpoints; ++j) {
            const ficus_endpoint_state_t *s = u->endpoints[j].state;
            int outlier = FICUS_ATOMIC_LOAD(&s->outlier), ejected = outlier == FICUS_OUTLIER_EJECTED;
            uint64_t until = FICUS_ATOMIC_LOAD(&s->ejected_until_us), inflight = endpoint_inflight(s, num_workers);
            up_inflight += inflight;
            const char *health = !u->health.enabled                                        ? "unchecked"
                                 : FICUS_ATOMIC_LOAD(&s->health) == FICUS_HEALTH_UNHEALTHY ? "unhealthy"
                                                                                           : "healthy";
            json_t *e =
                json_pack("{s:s, s:s, s:s, s:b, s:b, s:o, s:I, s:I, s:I, s:b}", "address", s->authority, "url", u->endpoints[j].url,
                          "health", health, "ejected", ejected, "failing", outlier == FICUS_OUTLIER_FAILING, "ejected_until",
                          ejected ? json_real(wall + ((double)until - (double)now) / 1e6) : json_null(), "consecutive_failures",
                          (json_int_t)FICUS_ATOMIC_LOAD(&s->consecutive_failures), "inflight", (json_int_t)inflight, "ejections",
                          (json_int_t)FICUS_ATOMIC_LOAD(&s->ejections_total), "available", endpoint_available(u, s, now));
            json_object_set_new(e, "name", u->endpoints[j].name != NULL ? json_string(u->endpoints[j].name) : json_null());
            json_array_append_new(eps, e);
        }
        /* host names that have no address now (never resolved, or gone after hold_nx) */
        json_t *unresolved = json_array();
        for (size_t j = 0; j != u->num_sources; ++j) {
            int has = 0;
            for (size_t k = 0; k != u->num_endpoints && !has; ++k)
                has = u->endpoints[k].url != NULL && strcmp(u->endpoints[k].url, u->sources[j].url) == 0;
            if (u->sources[j].is_name && !has)
                json_array_append_new(unresolved, json_string(u->sources[j].url));
        }
        json_t *o = json_pack("{s:s, s:s, s:b, s:b, s:I, s:o}", "name", u->name, "breaker", breaker_names[breaker_gauge(u, now)],
                              "panic", FICUS_ATOMIC_LOAD(&us->panic) != 0, "available", any_available(u, now), "inflight",
                              (json_int_t)up_inflight, "endpoints", eps);
        json_object_set_new(o, "unresolved", unresolved);
        json_array_append_new(ups, o);
    }
    json_t *root = json_pack("{s:o}", "upstreams", ups);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (text == NULL)
        ficus_fatal("no memory");
    *out = pool_copy(pool, text);
    free(text);
}

typedef struct st_ficus_textbuf_t {
    h2o_mem_pool_t *pool;
    char *base;
    size_t len, cap;
} ficus_textbuf_t;

static void tb_printf(ficus_textbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(ficus_textbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->base + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += n;
            return;
        }
        size_t cap = (b->cap + (n > 0 ? n : 0)) * 2 + 1024;
        char *nb = h2o_mem_alloc_pool(b->pool, cap);
        memcpy(nb, b->base, b->len);
        b->base = nb;
        b->cap = cap;
    }
}

void ficus_upstreams_render_metrics(h2o_mem_pool_t *pool, h2o_iovec_t *out, const ficus_config_t *config, unsigned num_workers)
{
    ficus_textbuf_t b = {pool, h2o_mem_alloc_pool(pool, 4096), 0, 4096};
    uint64_t now = ficus_mono_us();
    tb_printf(&b, "# HELP ficus_upstream_retries_total Retries sent to an upstream, by reason.\n"
                  "# TYPE ficus_upstream_retries_total counter\n");
    for (size_t i = 0; i != config->num_upstreams; ++i)
        for (int k = 0; k != FICUS_RETRY__COUNT; ++k)
            tb_printf(&b, "ficus_upstream_retries_total{upstream=\"%s\",reason=\"%s\"} %llu\n", config->upstreams[i]->name,
                      ficus_retry_reason_names[k], (unsigned long long)FICUS_ATOMIC_LOAD(&config->upstreams[i]->state->retries[k]));
    tb_printf(&b, "# HELP ficus_upstream_retry_budget_exhausted_total Retries refused by the retry budget.\n"
                  "# TYPE ficus_upstream_retry_budget_exhausted_total counter\n");
    for (size_t i = 0; i != config->num_upstreams; ++i)
        tb_printf(&b, "ficus_upstream_retry_budget_exhausted_total{upstream=\"%s\"} %llu\n", config->upstreams[i]->name,
                  (unsigned long long)FICUS_ATOMIC_LOAD(&config->upstreams[i]->state->budget_exhausted));
    tb_printf(&b, "# HELP ficus_upstream_ejections_total Outlier ejections of an endpoint.\n"
                  "# TYPE ficus_upstream_ejections_total counter\n");
    for (size_t i = 0; i != config->num_upstreams; ++i)
        for (size_t j = 0; j != config->upstreams[i]->num_endpoints; ++j)
            tb_printf(&b, "ficus_upstream_ejections_total{upstream=\"%s\",endpoint=\"%s\"} %llu\n", config->upstreams[i]->name,
                      config->upstreams[i]->endpoints[j].address,
                      (unsigned long long)FICUS_ATOMIC_LOAD(&config->upstreams[i]->endpoints[j].state->ejections_total));
    tb_printf(&b,
              "# HELP ficus_upstream_endpoint_healthy Whether an endpoint passes its active health check (1 when not checked).\n"
              "# TYPE ficus_upstream_endpoint_healthy gauge\n");
    for (size_t i = 0; i != config->num_upstreams; ++i)
        for (size_t j = 0; j != config->upstreams[i]->num_endpoints; ++j)
            tb_printf(&b, "ficus_upstream_endpoint_healthy{upstream=\"%s\",endpoint=\"%s\"} %d\n", config->upstreams[i]->name,
                      config->upstreams[i]->endpoints[j].address,
                      !config->upstreams[i]->health.enabled ||
                          FICUS_ATOMIC_LOAD(&config->upstreams[i]->endpoints[j].state->health) != FICUS_HEALTH_UNHEALTHY);
    tb_printf(&b,
              "# HELP ficus_upstream_breaker_state Circuit breaker: 0 closed, 1 open (also: no endpoint available), 2 half-open.\n"
              "# TYPE ficus_upstream_breaker_state gauge\n");
    for (size_t i = 0; i != config->num_upstreams; ++i)
        tb_printf(&b, "ficus_upstream_breaker_state{upstream=\"%s\"} %d\n", config->upstreams[i]->name,
                  breaker_gauge(config->upstreams[i], now));
    tb_printf(&b, "# HELP ficus_upstream_panic Whether more endpoints are failing than may be ejected.\n"
                  "# TYPE ficus_upstream_panic gauge\n");
    for (size_t i = 0; i != config->num_upstreams; ++i)
        tb_printf(&b, "ficus_upstream_panic{upstream=\"%s\"} %d\n", config->upstreams[i]->name,
                  FICUS_ATOMIC_LOAD(&config->upstreams[i]->state->panic) != 0);
    tb_printf(&b, "# HELP ficus_upstream_addresses Endpoints (addresses) an upstream has now: its IP literals and every address "
                  "of its host names.\n# TYPE ficus_upstream_addresses gauge\n");
    for (size_t i = 0; i != config->num_upstreams; ++i)
        tb_printf(&b, "ficus_upstream_addresses{upstream=\"%s\"} %zu\n", config->upstreams[i]->name,
                  config->upstreams[i]->num_endpoints);
    tb_printf(&b, "# HELP ficus_health_checks_total Active health checks, by result.\n# TYPE ficus_health_checks_total counter\n");
    for (size_t i = 0; i != config->num_upstreams; ++i) {
        if (!config->upstreams[i]->health.enabled)
            continue;
        for (int k = 0; k != 2; ++k)
            tb_printf(&b, "ficus_health_checks_total{upstream=\"%s\",result=\"%s\"} %llu\n", config->upstreams[i]->name,
                      k == 0 ? "success" : "failure",
                      (unsigned long long)FICUS_ATOMIC_LOAD(&config->upstreams[i]->state->health_checks[k]));
    }
    *out = h2o_iovec_init(b.base, b.len);
}
