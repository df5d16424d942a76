/* Picking an endpoint for an attempt (ficus/upstream/balancer.h).
 *
 * AVAILABLE = not unhealthy by active check and not ejected (an ejected endpoint whose time is up takes one trial).
 * round_robin: a per-worker cursor, skipping unavailable and already tried endpoints (at most N steps).
 * least_request: power of two random choices among the candidates, on this worker's in-flight counts (as Envoy).
 * hash: rendezvous hashing (gateway/split.c with equal weights) of the request's key over the available endpoints:
 * a key keeps its endpoint while that endpoint is available, and when one leaves only its keys move (≈ 1/N); a
 * request without the key goes round robin. Retries prefer endpoints not yet tried, so the key's next choice is the
 * next highest score.
 * PANIC (more endpoints failing than max_ejected allows): an ejected endpoint due for its trial first (so the panic
 * can end), else the least recently failed candidate, whatever the balance.
 * BOUNDS: O(N) per pick with N ≤ FICUS_UPSTREAM_MAX_ENDPOINTS, no allocation. */
#include <arpa/inet.h>
#include <jansson.h>
#include <string.h>
#include <sys/random.h>
#include "ficus/claim_forward.h"
#include "ficus/cookie.h"
#include "ficus/req.h"
#include "ficus/split.h"
#include "ficus/upstream/balancer.h"
#include "ficus/upstream/outlier.h"

uint64_t ficus_upstream_random(void)
{
    static __thread uint64_t s;
    if (s == 0 && (getrandom(&s, sizeof(s), 0) != sizeof(s) || s == 0))
        s = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)&s;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

static int is_available(const ficus_upstream_rt_t *up, size_t i, uint64_t now_us)
{
    const ficus_endpoint_state_t *s = up->conf->endpoints[i].state;
    if (up->conf->health.enabled && FICUS_ATOMIC_LOAD(&s->health) == FICUS_HEALTH_UNHEALTHY)
        return 0;
    return !up->conf->outlier.enabled || ficus_outlier_available(s, now_us);
}

int ficus_balancer_any_available(const ficus_upstream_rt_t *up, uint64_t now_us)
{
    for (size_t i = 0; i != up->conf->num_endpoints; ++i)
        if (is_available(up, i, now_us))
            return 1;
    return 0;
}

uint64_t ficus_balancer_retry_after_ms(const ficus_upstream_rt_t *up, uint64_t now_us)
{
    uint64_t best = UINT64_MAX;
    for (size_t i = 0; i != up->conf->num_endpoints; ++i) {
        const ficus_endpoint_state_t *s = up->conf->endpoints[i].state;
        if (FICUS_ATOMIC_LOAD(&s->outlier) != FICUS_OUTLIER_EJECTED)
            continue;
        uint64_t until = FICUS_ATOMIC_LOAD(&s->ejected_until_us), left = until > now_us ? (until - now_us) / 1000 : 0;
        if (left < best)
            best = left;
    }
    if (best == UINT64_MAX)
        best = up->conf->health.enabled ? up->conf->health.interval_ms : 1000;
    return best < 1000 ? 1000 : best;
}

/* The request's hash key, or {NULL, 0}. buf holds formatted values. */
static h2o_iovec_t hash_key(const ficus_upstream_conf_t *u, ficus_req_t *r, char *buf, size_t bufsize)
{
    h2o_req_t *req = r->h2o;
    switch (u->balance.key) {
    case FICUS_HASH_HEADER: {
        ssize_t i = h2o_find_header_by_str(&req->headers, u->balance.name.base, u->balance.name.len, -1);
        return i == -1 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
    }
    case FICUS_HASH_COOKIE:
        return ficus_cookie_get(req, u->balance.name.base, u->balance.name.len);
    case FICUS_HASH_CLAIM: {
        json_t *v = r->claims != NULL ? json_object_get(r->claims, u->balance.name.base) : NULL;
        size_t n = v != NULL ? ficus_claim_value_format(v, buf, bufsize) : 0;
        return n == 0 ? h2o_iovec_init(NULL, 0) : h2o_iovec_init(buf, n);
    }
    case FICUS_HASH_IP: {
        struct sockaddr_storage ss;
        socklen_t len = req->conn->callbacks->get_peername(req->conn, (void *)&ss);
        if (len == 0)
            return h2o_iovec_init(NULL, 0);
        if (ss.ss_family == AF_INET)
            return h2o_iovec_init(memcpy(buf, &((struct sockaddr_in *)&ss)->sin_addr, 4), 4);
        if (ss.ss_family == AF_INET6)
            return h2o_iovec_init(memcpy(buf, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16), 16);
        return h2o_iovec_init(NULL, 0);
    }
    }
    return h2o_iovec_init(NULL, 0);
}

/* Chooses among the candidates (indexes into conf->endpoints). */
static size_t choose(ficus_upstream_rt_t *up, ficus_req_t *r, const size_t *cand, size_t n)
{
    const ficus_upstream_conf_t *u = up->conf;
    if (u->outlier.enabled && FICUS_ATOMIC_LOAD(&up->state->panic)) {
        /* an ejected endpoint due for its trial goes first: that is how the panic ends */
        for (size_t k = 0; k != n; ++k)
            if (FICUS_ATOMIC_LOAD(&u->endpoints[cand[k]].state->outlier) == FICUS_OUTLIER_EJECTED)
                return cand[k];
        size_t best = cand[0];
        for (size_t k = 1; k != n; ++k)
            if (FICUS_ATOMIC_LOAD(&u->endpoints[cand[k]].state->last_failure_us) <
                FICUS_ATOMIC_LOAD(&u->endpoints[best].state->last_failure_us))
                best = cand[k];
        return best;
    }
    switch (u->balance.kind) {
    case FICUS_BALANCE_LEAST_REQUEST: {
        if (n == 1)
            return cand[0];
        size_t a = ficus_upstream_random() % n, b = ficus_upstream_random() % (n - 1);
        if (b >= a)
            ++b;
        return up->endpoints[cand[b]]->inflight < up->endpoints[cand[a]]->inflight ? cand[b] : cand[a];
    }
    case FICUS_BALANCE_HASH: {
        char buf[256];
        h2o_iovec_t key = hash_key(u, r, buf, sizeof(buf));
        if (key.base == NULL)
            break;
        uint64_t bucket = ficus_split_bucket("", 0, key.base, key.len);
        ficus_split_target_t targets[FICUS_UPSTREAM_MAX_ENDPOINTS];
        for (size_t k = 0; k != n; ++k) {
            targets[k].name = u->endpoints[cand[k]].address;
            targets[k].weight = 1;
            targets[k].name_hash = u->endpoints[cand[k]].state->name_hash;
        }
        size_t k = ficus_split_pick(targets, n, bucket);
        return cand[k < n ? k : 0];
    }
    default:
        break;
    }
    /* round robin: the first candidate at or after the cursor */
    size_t num = u->num_endpoints, start = up->next % num, best = cand[0], best_dist = SIZE_MAX;
    for (size_t k = 0; k != n; ++k) {
        size_t dist = (cand[k] + num - start) % num;
        if (dist < best_dist) {
            best_dist = dist;
            best = cand[k];
        }
    }
    up->next = best + 1;
    return best;
}

ssize_t ficus_balancer_pick(ficus_upstream_rt_t *up, ficus_req_t *r, const ficus_endpoint_set_t *tried, uint64_t now_us,
                            int *is_trial)
{
    const ficus_upstream_conf_t *u = up->conf;
    size_t cand[FICUS_UPSTREAM_MAX_ENDPOINTS], n;
    uint64_t excluded[FICUS_UPSTREAM_MAX_ENDPOINTS / 64] = {0}; /* lost a trial race during this pick */
    *is_trial = 0;
    for (size_t round = 0; round != u->num_endpoints + 1; ++round) {
        for (int allow_tried = 0; allow_tried != 2; ++allow_tried) {
            n = 0;
            for (size_t i = 0; i != u->num_endpoints; ++i)
                if ((allow_tried || tried == NULL || !ficus_endpoint_set_has(tried, i)) && !((excluded[i / 64] >> (i % 64)) & 1) &&
                    is_available(up, i, now_us))
                    cand[n++] = i;
            if (n != 0)
                break;
        }
        if (n == 0)
            return -1;
        size_t i = n == 1 && u->balance.kind != FICUS_BALANCE_ROUND_ROBIN ? cand[0] : choose(up, r, cand, n);
        if (!u->outlier.enabled || ficus_outlier_take(u->endpoints[i].state, now_us, is_trial))
            return (ssize_t)i;
        excluded[i / 64] |= (uint64_t)1 << (i % 64);
    }
    return -1;
}
