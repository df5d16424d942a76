/* `mirror:` (see ficus/traffic.h): which requests of a route get a shadow copy, and the comparison of the shadow's
 * answer with the primary's. The copy itself is the upstream layer's detached exchange (ficus_mirror_start,
 * gateway/upstream/mirror.c): its own copy of the request, its own generation reference and deadline, its response
 * read, digested and dropped as it arrives; the client request never waits for it.
 *
 * POLICY, in this order, each skip counted: sample (a share of the route's requests), methods, max_body, capacity
 * (max_inflight per instance, split across workers: beyond it the copy is skipped, never queued). The copy carries
 * `x-ficus-mirror: 1`.
 * COMPARISON (compare: true): a small verdict object waits for both ends, whichever comes last: the shadow's
 * (ficus_mirror_start's callback) and the primary's (the proxy's on_done, with the status and SHA-256 of the body it
 * relayed; gateway/traffic.c). A primary that did not complete is not compared. Mismatches are logged at most once
 * per second per route: route, method, path without query, both statuses and body lengths; never a body, a header, a
 * token or a cookie.
 * LIFETIME: the verdict object is malloc'd; the request points at it (req->traffic.mirror) until the primary's result
 * is handed over or the request ends; the shadow's callback always comes (the upstream layer guarantees exactly one).
 * THREADING: everything runs on the worker that received the request. */
#include <stdlib.h>
#include <string.h>
#include "ficus/log.h"
#include "ficus/traffic.h"
#include "ficus/upstream.h"
#include "ficus/worker.h"

#define LOG_PATH_MAX 256

struct st_ficus_traffic_mirror_t {
    const ficus_mirror_conf_t *conf; /* valid while the copy holds its generation, and as long as we wait */
    ficus_mirror_stats_t *stats;     /* lives until exit */
    ficus_mirror_stats_slot_t *slot;
    const char *route, *shadow_name;   /* from the configuration (kept alive by the copy's generation reference) */
    ficus_traffic_mirror_t **req_slot; /* &req->traffic.mirror while the request waits for its result */
    int compare;
    int shadow_done, primary_done; /* 0: pending; 1: known; -1: nothing to compare */
    ficus_mirror_result_t shadow;
    int primary_status, primary_has_digest;
    uint64_t primary_len;
    uint8_t primary_digest[32];
    uint64_t now_s; /* when the shadow answered (for the log budget) */
    char method[33];
    char path[LOG_PATH_MAX + 1];
};

static void conclude(ficus_traffic_mirror_t *m)
{
    ficus_compare_result_t verdict =
        m->shadow.status != m->primary_status ? FICUS_COMPARE_STATUS_DIFFERS
        : m->shadow.body_bytes != m->primary_len || !m->primary_has_digest || memcmp(m->shadow.digest, m->primary_digest, 32) != 0
            ? FICUS_COMPARE_BODY_DIFFERS
            : FICUS_COMPARE_MATCH;
    ficus_counter_add(&m->slot->compare[verdict], 1);
    if (verdict != FICUS_COMPARE_MATCH) {
        uint64_t last = __atomic_load_n(&m->stats->last_log_s, __ATOMIC_RELAXED);
        if (m->now_s != last &&
            __atomic_compare_exchange_n(&m->stats->last_log_s, &last, m->now_s, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            ficus_warn("mirror %s: %s %s: %s: primary %d (%llu bytes), shadow %s %d (%llu bytes)", m->route, m->method, m->path,
                       ficus_compare_result_names[verdict], m->primary_status, (unsigned long long)m->primary_len, m->shadow_name,
                       m->shadow.status, (unsigned long long)m->shadow.body_bytes);
    }
}

static void maybe_free(ficus_traffic_mirror_t *m)
{
    if (m->shadow_done == 0 || m->primary_done == 0)
        return;
    if (m->shadow_done > 0 && m->primary_done > 0)
        conclude(m);
    free(m);
}

static void on_shadow(void *data, const ficus_mirror_result_t *result)
{
    ficus_traffic_mirror_t *m = data;
    ficus_counter_add(&m->slot->inflight, (uint64_t)-1);
    m->now_s = h2o_now(ficus_current_worker->loop) / 1000;
    if (result->outcome != FICUS_MIRROR_RESPONSE) {
        int is_timeout = result->outcome == FICUS_MIRROR_TIMEOUT;
        ficus_counter_add(&m->slot->results[is_timeout ? FICUS_MIRROR_STAT_TIMEOUT : FICUS_MIRROR_STAT_ERROR], 1);
        if (m->compare)
            ficus_counter_add(&m->slot->compare[is_timeout ? FICUS_COMPARE_SHADOW_TIMEOUT : FICUS_COMPARE_SHADOW_ERROR], 1);
        m->shadow_done = -1;
    } else {
        m->shadow = *result;
        m->shadow_done = 1;
    }
    if (!m->compare)
        m->primary_done = -1;
    maybe_free(m);
}

static int method_listed(const ficus_mirror_conf_t *conf, h2o_iovec_t method)
{
    for (size_t i = 0; i != conf->num_methods; ++i)
        if (h2o_memis(method.base, method.len, conf->methods[i], strlen(conf->methods[i])))
            return 1;
    return 0;
}

/* The path for the mismatch log: without the query, printable ASCII only, bounded. */
static void copy_log_path(char *out, const h2o_req_t *req)
{
    size_t len = req->query_at != SIZE_MAX ? req->query_at : req->path.len, o = 0;
    for (size_t i = 0; i != len && o != LOG_PATH_MAX; ++i) {
        unsigned char c = (unsigned char)req->path.base[i];
        out[o++] = c > 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[o] = '\0';
}

void ficus_traffic_mirror(ficus_req_t *r)
{
    const ficus_mirror_conf_t *conf = r->route->traffic->mirror;
    h2o_req_t *req = r->h2o;
    ficus_mirror_stats_slot_t *s = conf->stats->slots + r->worker->index;
    uint64_t share = (conf->max_inflight + ficus_num_workers - 1) / ficus_num_workers;

    if (conf->sample < 10000 && arc4random_uniform(10000) >= conf->sample) {
        ficus_counter_add(&s->results[FICUS_MIRROR_STAT_SKIPPED_SAMPLE], 1);
        return;
    }
    if (!method_listed(conf, req->method)) {
        ficus_counter_add(&s->results[FICUS_MIRROR_STAT_SKIPPED_METHOD], 1);
        return;
    }
    if (req->entity.base != NULL && req->entity.len > conf->max_body) {
        ficus_counter_add(&s->results[FICUS_MIRROR_STAT_SKIPPED_BODY], 1);
        return;
    }
    if (ficus_counter_get(&s->inflight) >= share) {
        ficus_counter_add(&s->results[FICUS_MIRROR_STAT_SKIPPED_CAPACITY], 1);
        return;
    }
    ficus_traffic_mirror_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        ficus_fatal("no memory");
    m->conf = conf;
    m->stats = conf->stats;
    m->slot = s;
    m->route = r->route->name;
    m->shadow_name = conf->upstream->name;
    m->compare = conf->compare;
    snprintf(m->method, sizeof(m->method), "%.*s", (int)(req->method.len < 32 ? req->method.len : 32), req->method.base);
    copy_log_path(m->path, req);
    if (ficus_mirror_start(r, ficus_upstream_rt_of(r, conf->upstream), h2o_iovec_init(H2O_STRLIT("x-ficus-mirror: 1\r\n")),
                           conf->timeout_ms, on_shadow, m) != 0) {
        free(m); /* nothing started (a path the primary refuses with 400) */
        return;
    }
    ficus_counter_add(&s->results[FICUS_MIRROR_STAT_SENT], 1);
    ficus_counter_add(&s->inflight, 1);
    if (m->compare) {
        m->req_slot = &r->traffic.mirror;
        r->traffic.mirror = m;
    }
}

void ficus_traffic_mirror_primary(ficus_req_t *r, int complete, int status, uint64_t body_bytes, const uint8_t *digest)
{
    ficus_traffic_mirror_t *m = r->traffic.mirror;
    r->traffic.mirror = NULL;
    m->req_slot = NULL;
    if (complete) {
        m->primary_done = 1;
        m->primary_status = status;
        m->primary_len = body_bytes;
        if ((m->primary_has_digest = digest != NULL))
            memcpy(m->primary_digest, digest, 32);
    } else {
        m->primary_done = -1; /* the client left or the body broke off: nothing to compare with */
    }
    maybe_free(m);
}
