/* `mirror:` (see ficus/traffic.h): a shadow copy of a route's requests to another upstream, sent without waiting, and
 * the comparison of the shadow's answer with the primary's.
 *
 * NEVER SLOWS THE PRIMARY: the copy is an object of its own (malloc'd, not in the client request's pool) with its own
 * copy of the request bytes, its own exchange on the shadow upstream's per-worker pool and its own deadline
 * (`timeout`). The client's request neither waits for it nor holds it: a slow, dead or refusing shadow only costs the
 * copy's bytes and a socket. The shadow's response is read as it comes and dropped chunk by chunk (only its digest is
 * kept), so buffering is bounded by one read.
 * BOUNDS: at most max_inflight copies per instance (split across workers; beyond it the copy is skipped, never
 * queued), and the shadow upstream's own max_connections; request bodies above max_body are not mirrored.
 * COMPARISON (compare: true): status and SHA-256 of the body of both sides; the primary's body is digested as the
 * relay sends it (ficus_traffic_on_primary_body), and the verdict is reached when both ends are known (whichever comes
 * last). A primary that did not complete (client gone, body error) is not compared. Mismatches are logged at most
 * once per second per route: route, method, path without query, both statuses and body lengths; never a body, a
 * header, a token or a cookie.
 * LIFETIME: a copy holds a reference to its worker generation (the shadow's pool and the route conf stay valid); the
 * request and the copy point at each other until one of them ends (the request's end detaches it). Copies still in
 * flight when the worker thread ends are cancelled (ficus_traffic_mirror_worker_exit).
 * THREADING: everything runs on the worker that received the request. */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/log.h"
#include "ficus/traffic.h"
#include "ficus/worker.h"
#include "ficus/clock.h"
#include "ficus/upstream/balancer.h"
#include "ficus/upstream/outlier.h"
#include "ficus/upstream/request_builder.h"

#define LOG_PATH_MAX 256

struct st_ficus_traffic_mirror_t {
    h2o_linklist_t link; /* the worker's copies in flight */
    ficus_worker_t *w;
    ficus_wgen_t *wg;
    const ficus_route_t *route;
    const ficus_mirror_conf_t *conf;
    ficus_upstream_rt_t *up;
    ficus_endpoint_rt_t *ep;
    ficus_upc_t x;
    h2o_iovec_t bufs[1]; /* the whole request: line, host, headers, x-ficus-mirror, body */
    h2o_timeout_entry_t deadline;
    struct st_ficus_traffic_mirror_t **req_slot; /* &req->traffic.mirror while the request lives */
    int shadow_done;                             /* 1: complete answer; -1: error or timeout (already counted) */
    int primary_done;
    int shadow_status, primary_status;
    uint64_t shadow_len, primary_len;
    EVP_MD_CTX *shadow_md, *primary_md; /* NULL unless compare */
    char method[33];
    char path[LOG_PATH_MAX + 1];
};

static __thread h2o_linklist_t inflight = {NULL, NULL};

static ficus_mirror_stats_slot_t *slot(ficus_traffic_mirror_t *m)
{
    return m->conf->stats->slots + m->w->index;
}

static void count(ficus_traffic_mirror_t *m, ficus_mirror_stat_t result)
{
    ficus_counter_add(&slot(m)->results[result], 1);
}

static void destroy(ficus_traffic_mirror_t *m)
{
    if (m->req_slot != NULL)
        *m->req_slot = NULL;
    if (h2o_timeout_is_linked(&m->deadline))
        h2o_timeout_unlink(&m->deadline);
    ficus_upc_dispose(&m->x);
    if (m->ep != NULL)
        --m->ep->inflight;
    --m->up->inflight;
    ficus_counter_add(&slot(m)->inflight, (uint64_t)-1);
    h2o_linklist_unlink(&m->link);
    EVP_MD_CTX_free(m->shadow_md);
    EVP_MD_CTX_free(m->primary_md);
    ficus_wgen_release(m->wg);
    free(m);
}

/* Both sides are known: count the verdict, log a mismatch (rate-limited per route), free the copy. */
static void conclude(ficus_traffic_mirror_t *m)
{
    unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
    unsigned alen = 0, blen = 0;
    EVP_DigestFinal_ex(m->shadow_md, a, &alen);
    EVP_DigestFinal_ex(m->primary_md, b, &blen);
    ficus_compare_result_t verdict = m->shadow_status != m->primary_status ? FICUS_COMPARE_STATUS_DIFFERS
                                     : m->shadow_len != m->primary_len || alen != blen || memcmp(a, b, alen) != 0
                                         ? FICUS_COMPARE_BODY_DIFFERS
                                         : FICUS_COMPARE_MATCH;
    ficus_counter_add(&slot(m)->compare[verdict], 1);
    if (verdict != FICUS_COMPARE_MATCH) {
        uint64_t now_s = h2o_now(m->w->loop) / 1000, last = __atomic_load_n(&m->conf->stats->last_log_s, __ATOMIC_RELAXED);
        if (now_s != last &&
            __atomic_compare_exchange_n(&m->conf->stats->last_log_s, &last, now_s, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            ficus_warn("mirror %s: %s %s: %s: primary %d (%llu bytes), shadow %s %d (%llu bytes)", m->route->name, m->method,
                       m->path, ficus_compare_result_names[verdict], m->primary_status, (unsigned long long)m->primary_len,
                       m->up->conf->name, m->shadow_status, (unsigned long long)m->shadow_len);
    }
    destroy(m);
}

/* The shadow failed (error or timeout): counted once; the comparison says so without waiting for the primary. */
static void shadow_failed(ficus_traffic_mirror_t *m, int is_timeout)
{
    count(m, is_timeout ? FICUS_MIRROR_STAT_TIMEOUT : FICUS_MIRROR_STAT_ERROR);
    if (m->conf->compare)
        ficus_counter_add(&slot(m)->compare[is_timeout ? FICUS_COMPARE_SHADOW_TIMEOUT : FICUS_COMPARE_SHADOW_ERROR], 1);
    destroy(m);
}

static void shadow_complete(ficus_traffic_mirror_t *m)
{
    m->shadow_done = 1;
    if (h2o_timeout_is_linked(&m->deadline))
        h2o_timeout_unlink(&m->deadline);
    if (m->ep != NULL) {
        --m->ep->inflight;
        m->ep = NULL;
    }
    if (!m->conf->compare || m->primary_done < 0)
        destroy(m);
    else if (m->primary_done > 0)
        conclude(m);
    /* else: the primary's end concludes */
}

static void take_body(ficus_traffic_mirror_t *m)
{
    if (m->x.body == NULL || m->x.body->size == 0)
        return;
    m->shadow_len += m->x.body->size;
    if (m->shadow_md != NULL)
        EVP_DigestUpdate(m->shadow_md, m->x.body->bytes, m->x.body->size);
    h2o_buffer_consume(&m->x.body, m->x.body->size); /* read and dropped: bounded by one read */
}

static void on_body(ficus_upc_t *x, const char *err)
{
    ficus_traffic_mirror_t *m = x->data;
    take_body(m);
    if (err == NULL) {
        ficus_upc_read_body(x, on_body);
    } else if (err == ficus_upc_eos) {
        shadow_complete(m);
    } else {
        shadow_failed(m, err == ficus_upc_err_timeout);
    }
}

static void on_head(ficus_upc_t *x, const char *err, const ficus_upc_response_t *res)
{
    ficus_traffic_mirror_t *m = x->data;
    if (err != NULL) {
        shadow_failed(m, err == ficus_upc_err_timeout);
        return;
    }
    m->shadow_status = res->status;
    if (x->done) {
        take_body(m);
        shadow_complete(m);
    } else {
        ficus_upc_read_body(x, on_body);
    }
}

static void on_connect(ficus_upc_t *x, const char *err)
{
    ficus_traffic_mirror_t *m = x->data;
    if (err != NULL) {
        shadow_failed(m, err == ficus_upc_err_connect_timeout);
        return;
    }
    ficus_upc_send(x, m->bufs, 1, strcmp(m->method, "HEAD") == 0, on_head);
}

static void on_deadline(h2o_timeout_entry_t *entry)
{
    ficus_traffic_mirror_t *m = H2O_STRUCT_FROM_MEMBER(ficus_traffic_mirror_t, deadline, entry);
    ficus_upc_cancel(&m->x); /* closes the connection: a late answer cannot be mistaken for the next one */
    shadow_failed(m, 1);
}

static int method_listed(const ficus_mirror_conf_t *conf, h2o_iovec_t method)
{
    for (size_t i = 0; i != conf->num_methods; ++i)
        if (h2o_memis(method.base, method.len, conf->methods[i], strlen(conf->methods[i])))
            return 1;
    return 0;
}

/* The path for the mismatch log: without the query, printable ASCII only, bounded. */
static void copy_log_path(char *out, h2o_req_t *req)
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
    ficus_upstream_rt_t *up = r->wgen->upstreams + conf->upstream->index;
    size_t body_len = req->entity.base != NULL ? req->entity.len : 0;
    uint64_t share = (conf->max_inflight + ficus_num_workers - 1) / ficus_num_workers;

    if (conf->sample < 10000 && arc4random_uniform(10000) >= conf->sample) {
        ficus_counter_add(&s->results[FICUS_MIRROR_STAT_SKIPPED_SAMPLE], 1);
        return;
    }
    if (!method_listed(conf, req->method)) {
        ficus_counter_add(&s->results[FICUS_MIRROR_STAT_SKIPPED_METHOD], 1);
        return;
    }
    if (body_len > conf->max_body) {
        ficus_counter_add(&s->results[FICUS_MIRROR_STAT_SKIPPED_BODY], 1);
        return;
    }
    if (ficus_counter_get(&s->inflight) >= share || up->inflight >= up->max_inflight) {
        ficus_counter_add(&s->results[FICUS_MIRROR_STAT_SKIPPED_CAPACITY], 1);
        return;
    }
    h2o_iovec_t path;
    if (ficus_upstream_request_path(r, &path) != 0)
        return; /* the primary answers 400 bad_path */

    /* the request exactly as the primary gets it (headers after ficus's processing, identity headers included),
     * built into the client's pool and then copied once into the copy's own buffer */
    int trial;
    ssize_t ep_index = ficus_balancer_pick(up, r, NULL, ficus_mono_us(), &trial);
    if (ep_index < 0) { /* no endpoint of the shadow is available (unhealthy, ejected) */
        ficus_counter_add(&s->results[FICUS_MIRROR_STAT_ERROR], 1);
        return;
    }
    ficus_endpoint_rt_t *ep = up->endpoints[ep_index];
    ficus_outlier_abandon(ep->state, trial); /* a copy never takes an ejected endpoint's trial */
    ficus_upstream_request_t built;
    ficus_upstream_request_build(&built, r, path);
    ficus_upstream_request_line(&built, &up->conf->endpoints[ep_index]);
    static const char mark[] = "x-ficus-mirror: 1\r\n";
    size_t total = built.reqbufs[0].len + sizeof(mark) - 1 + built.reqbufs[1].len + body_len;
    ficus_traffic_mirror_t *m = malloc(sizeof(*m) + total);
    if (m == NULL)
        ficus_fatal("no memory");
    memset(m, 0, sizeof(*m));
    char *p = (char *)(m + 1);
    memcpy(p, built.reqbufs[0].base, built.reqbufs[0].len);
    p += built.reqbufs[0].len;
    memcpy(p, mark, sizeof(mark) - 1);
    p += sizeof(mark) - 1;
    memcpy(p, built.reqbufs[1].base, built.reqbufs[1].len);
    p += built.reqbufs[1].len;
    if (body_len != 0)
        memcpy(p, req->entity.base, body_len);
    m->bufs[0] = h2o_iovec_init((char *)(m + 1), total);

    m->w = r->worker;
    m->wg = r->wgen;
    ++m->wg->refcnt;
    m->route = r->route;
    m->conf = conf;
    m->up = up;
    m->ep = ep;
    ++ep->inflight;
    ++up->inflight;
    ficus_counter_add(&s->inflight, 1);
    if (inflight.next == NULL)
        h2o_linklist_init_anchor(&inflight);
    h2o_linklist_insert(&inflight, &m->link);
    snprintf(m->method, sizeof(m->method), "%.*s", (int)(req->method.len < 32 ? req->method.len : 32), req->method.base);
    copy_log_path(m->path, req);
    if (conf->compare) {
        if ((m->shadow_md = EVP_MD_CTX_new()) == NULL || (m->primary_md = EVP_MD_CTX_new()) == NULL ||
            !EVP_DigestInit_ex(m->shadow_md, EVP_sha256(), NULL) || !EVP_DigestInit_ex(m->primary_md, EVP_sha256(), NULL))
            ficus_fatal("no memory");
        m->req_slot = &r->traffic.mirror;
        r->traffic.mirror = m;
    }
    ficus_counter_add(&s->results[FICUS_MIRROR_STAT_SENT], 1);
    m->deadline.cb = on_deadline;
    h2o_timeout_link(r->worker->loop, ficus_worker_timeout(r->worker, conf->timeout_ms), &m->deadline);
    ficus_upc_init(&m->x, m);
    ficus_upc_connect(&m->x, &ep->pool, on_connect); /* may fail synchronously: m may be gone on return */
}

void ficus_traffic_on_primary_body(ficus_req_t *r, const h2o_iovec_t *bufs, size_t n)
{
    ficus_traffic_mirror_t *m = r->traffic.mirror;
    for (size_t i = 0; i != n; ++i) {
        m->primary_len += bufs[i].len;
        EVP_DigestUpdate(m->primary_md, bufs[i].base, bufs[i].len);
    }
}

void ficus_traffic_mirror_end(ficus_req_t *r)
{
    ficus_traffic_mirror_t *m = r->traffic.mirror;
    r->traffic.mirror = NULL;
    m->req_slot = NULL;
    if (!r->_completed || (r->error != NULL && r->upstream.status != 0)) {
        /* the primary did not complete (client gone, body error): nothing to compare with; a shadow still in
         * flight is counted and freed when it ends */
        m->primary_done = -1;
        if (m->shadow_done)
            destroy(m);
        return;
    }
    m->primary_done = 1;
    m->primary_status = r->h2o->res.status;
    if (m->shadow_done)
        conclude(m);
}

void ficus_traffic_mirror_worker_exit(void)
{
    if (inflight.next == NULL)
        return;
    while (!h2o_linklist_is_empty(&inflight))
        destroy(H2O_STRUCT_FROM_MEMBER(ficus_traffic_mirror_t, link, inflight.next));
}
