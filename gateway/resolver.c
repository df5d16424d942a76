/* The host names of upstream endpoints, kept resolved on the control thread (ficus/resolver.h).
 *
 * DESIGN: one entry per distinct name the running generation's endpoints use, with its last good answer (sorted
 * addresses) and a lookup (gateway/dns_client.c) every `dns_refresh` (the shortest of the upstreams naming it). When
 * an answer differs from the last good one, the entry changes, one log line says so, and on_change() (control.c)
 * builds a new generation from the running one with the new addresses (ficus_config_derive: the file is not read
 * again) and publishes it like a reload: the registry keeps the state of the addresses that stay, new addresses start
 * fresh, removed ones drain (their in-flight requests finish on the generation they started on, their idle pooled
 * connections are closed by the workers' generation switch, gateway/upstream/runtime.c).
 * FAILURES: a lookup that fails (timeouts, SERVFAIL, REFUSED, malformed answers) keeps the last good answer: counted
 * (ficus_dns_refreshes_total{result="failed"}), logged when a name starts failing and when it recovers. NXDOMAIN (or
 * an answer without addresses) after a good answer keeps the last addresses for `hold_nx` (HAProxy's `hold nx`), so
 * a flapping record does not empty an upstream, then the name has no addresses. A name that never resolved has
 * none: its endpoints do not exist (requests get the no-endpoint answer or the route's fallback), a warning is
 * logged, and it is retried every refresh.
 * BOUNDS: names come from configuration (at most 256 endpoints per upstream); one lookup per name at a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/config.h"
#include "ficus/log.h"
#include "ficus/resolver.h"

enum { REFRESH_OK = 0, REFRESH_CHANGED, REFRESH_FAILED, REFRESH_NXDOMAIN, REFRESH__COUNT };
static const char *const refresh_result_names[REFRESH__COUNT] = {"ok", "changed", "failed", "nxdomain"};

typedef struct st_name_t {
    h2o_linklist_t link;
    char *name;
    uint64_t refresh_ms;
    int seen;
    ficus_dns_lookup_t lookup;
    h2o_timeout_t refresh;
    h2o_timeout_entry_t next;
    ficus_dns_addr_t *addrs; /* last good answer, sorted */
    size_t num_addrs;
    int completed;     /* a first lookup ended */
    int failing;       /* the last lookup failed (logged once per run of failures) */
    uint64_t nx_since; /* ms (loop clock) of the first NXDOMAIN after a good answer; 0: none */
    char source[64];   /* of the last good answer */
    uint64_t refreshes[REFRESH__COUNT];
} name_t;

static h2o_linklist_t names = {&names, &names};
static h2o_loop_t *resolver_loop;
static const ficus_resolver_conf_t *current_conf; /* the running generation's (valid until the next apply) */
static void (*change_cb)(void);
static h2o_timeout_t zero_timeout;
static h2o_timeout_entry_t change_entry;
static int priming;

static void normalize(const char *in, char *out, size_t cap)
{
    size_t len = strlen(in);
    if (len != 0 && in[len - 1] == '.')
        --len;
    if (len >= cap)
        len = cap - 1;
    for (size_t i = 0; i != len; ++i)
        out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] - 'A' + 'a' : in[i]);
    out[len] = '\0';
}

static name_t *find(const char *name)
{
    char key[256];
    normalize(name, key, sizeof(key));
    for (h2o_linklist_t *l = names.next; l != &names; l = l->next) {
        name_t *n = H2O_STRUCT_FROM_MEMBER(name_t, link, l);
        if (strcmp(n->name, key) == 0)
            return n;
    }
    return NULL;
}

size_t ficus_resolver_addresses(const char *name, const ficus_dns_addr_t **addrs)
{
    name_t *n = find(name);
    *addrs = n != NULL ? n->addrs : NULL;
    return n != NULL ? n->num_addrs : 0;
}

static void on_change_deferred(h2o_timeout_entry_t *entry)
{
    if (change_cb != NULL)
        change_cb();
}

static void changed(void)
{
    if (priming || resolver_loop == NULL || h2o_timeout_is_linked(&change_entry))
        return;
    change_entry.cb = on_change_deferred;
    h2o_timeout_link(resolver_loop, &zero_timeout, &change_entry);
}

static void format_addrs(const ficus_dns_addr_t *a, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    if (n == 0)
        snprintf(buf, cap, "none");
    for (size_t i = 0; i != n && o + 1 < cap; ++i) {
        char ip[48], full[64];
        ficus_dns_addr_format(a + i, 0, full, sizeof(full), ip, sizeof(ip));
        int w = snprintf(buf + o, cap - o, "%s%s", i == 0 ? "" : " ", ip);
        if (w < 0 || (size_t)w >= cap - o) {
            snprintf(buf + (cap > 4 ? cap - 4 : 0), cap > 4 ? 4 : cap, "...");
            break;
        }
        o += (size_t)w;
    }
}

static void set_addrs(name_t *n, const ficus_dns_addr_t *addrs, size_t num, const char *source, const char *why)
{
    char was[512], now[512];
    format_addrs(n->addrs, n->num_addrs, was, sizeof(was));
    format_addrs(addrs, num, now, sizeof(now));
    ficus_info("dns: %s: addresses %s (was %s; %s %s)", n->name, now, was, why, source);
    free(n->addrs);
    n->addrs = NULL;
    if (num != 0) {
        if ((n->addrs = malloc(num * sizeof(*addrs))) == NULL)
            ficus_fatal("no memory");
        memcpy(n->addrs, addrs, num * sizeof(*addrs));
    }
    n->num_addrs = num;
    changed();
}

static void schedule(name_t *n)
{
    if (h2o_timeout_is_linked(&n->next))
        h2o_timeout_unlink(&n->next);
    n->refresh.timeout = n->refresh_ms; /* nothing else is linked on a name's own timeout */
    h2o_timeout_link(resolver_loop, &n->refresh, &n->next);
}

static void on_lookup(ficus_dns_lookup_t *l, ficus_dns_result_t result, const ficus_dns_addr_t *addrs_in, size_t num,
                      const char *source)
{
    name_t *n = l->data;
    int first = !n->completed;
    n->completed = 1;
    schedule(n);
    uint64_t now = h2o_now(resolver_loop);
    if (result == FICUS_DNS_OK && num != 0) {
        ficus_dns_addr_t addrs[FICUS_DNS_MAX_ADDRS];
        memcpy(addrs, addrs_in, num * sizeof(*addrs));
        ficus_dns_addrs_sort(addrs, num);
        if (n->failing || n->nx_since != 0)
            ficus_info("dns: %s resolves again (%zu addresses from %s)", n->name, num, source);
        n->failing = 0;
        n->nx_since = 0;
        snprintf(n->source, sizeof(n->source), "%s", source);
        if (num == n->num_addrs && memcmp(addrs, n->addrs, num * sizeof(*addrs)) == 0) {
            ++n->refreshes[REFRESH_OK];
            return;
        }
        ++n->refreshes[REFRESH_CHANGED];
        set_addrs(n, addrs, num, source, "from");
        return;
    }
    if (result == FICUS_DNS_OK || result == FICUS_DNS_NXDOMAIN) {
        ++n->refreshes[REFRESH_NXDOMAIN];
        n->failing = 0;
        if (n->num_addrs == 0) {
            if (first)
                ficus_warn("dns: %s does not resolve (no such name or no address, from %s): its endpoints have no addresses "
                           "until it does; retried every %llums",
                           n->name, source, (unsigned long long)n->refresh_ms);
            return;
        }
        if (n->nx_since == 0) {
            n->nx_since = now != 0 ? now : 1;
            ficus_warn("dns: %s: no such name or no address (from %s): keeping its last %zu addresses for hold_nx (%llums)",
                       n->name, source, n->num_addrs, (unsigned long long)current_conf->hold_nx_ms);
        }
        if (now - n->nx_since >= current_conf->hold_nx_ms) {
            n->nx_since = 0;
            set_addrs(n, NULL, 0, source, "gone after hold_nx, from");
        }
        return;
    }
    ++n->refreshes[REFRESH_FAILED];
    if (!n->failing || first)
        ficus_warn("dns: %s: lookup failed (%s from %s): %s", n->name, ficus_dns_result_names[result], source,
                   n->num_addrs != 0 ? "keeping the last good answer" : "it has no addresses yet; retried every refresh");
    n->failing = 1;
}

static void start_lookup(name_t *n)
{
    if (n->lookup._running || current_conf == NULL)
        return;
    if (h2o_timeout_is_linked(&n->next))
        h2o_timeout_unlink(&n->next);
    ficus_dns_lookup_start(&n->lookup, current_conf, n->name, on_lookup);
}

static void on_refresh(h2o_timeout_entry_t *entry)
{
    start_lookup(H2O_STRUCT_FROM_MEMBER(name_t, next, entry));
}

static name_t *name_new(const char *key)
{
    name_t *n = calloc(1, sizeof(*n));
    if (n == NULL || (n->name = strdup(key)) == NULL)
        ficus_fatal("no memory");
    ficus_dns_lookup_init(&n->lookup, resolver_loop);
    n->lookup.data = n;
    h2o_timeout_init(resolver_loop, &n->refresh, 30000);
    n->next.cb = on_refresh;
    h2o_linklist_insert(&names, &n->link);
    return n;
}

static void name_free(name_t *n)
{
    h2o_linklist_unlink(&n->link);
    ficus_dns_lookup_dispose(&n->lookup);
    if (h2o_timeout_is_linked(&n->next))
        h2o_timeout_unlink(&n->next);
    h2o_timeout_dispose(resolver_loop, &n->refresh);
    free(n->addrs);
    free(n->name);
    free(n);
}

static void apply(h2o_loop_t *loop, const ficus_config_t *config)
{
    if (resolver_loop == NULL) {
        resolver_loop = loop;
        h2o_timeout_init(loop, &zero_timeout, 0);
    }
    current_conf = config->resolver;
    for (h2o_linklist_t *l = names.next; l != &names; l = l->next) {
        name_t *n = H2O_STRUCT_FROM_MEMBER(name_t, link, l);
        n->seen = 0;
        n->refresh_ms = UINT64_MAX;
    }
    for (size_t i = 0; i != config->num_upstreams; ++i) {
        const ficus_upstream_conf_t *u = config->upstreams[i];
        for (size_t j = 0; j != u->num_sources; ++j) {
            if (!u->sources[j].is_name)
                continue;
            char key[256];
            normalize(u->sources[j].host, key, sizeof(key));
            name_t *n = find(key);
            if (n == NULL) {
                n = name_new(key);
                n->refresh_ms = UINT64_MAX;
            }
            n->seen = 1;
            if (u->dns_refresh_ms < n->refresh_ms)
                n->refresh_ms = u->dns_refresh_ms;
        }
    }
    for (h2o_linklist_t *l = names.next; l != &names;) {
        name_t *n = H2O_STRUCT_FROM_MEMBER(name_t, link, l);
        l = l->next;
        if (!n->seen) {
            name_free(n);
            continue;
        }
        if (!n->completed)
            start_lookup(n); /* new: now */
        else if (!n->lookup._running && (!h2o_timeout_is_linked(&n->next) || n->refresh.timeout != n->refresh_ms))
            schedule(n); /* the interval changed: from now */
    }
}

void ficus_resolver_apply(h2o_loop_t *loop, const ficus_config_t *config, void (*on_change)(void))
{
    change_cb = on_change;
    apply(loop, config);
}

int ficus_resolver_prime(h2o_loop_t *loop, const ficus_config_t *config)
{
    priming = 1;
    apply(loop, config);
    const ficus_resolver_conf_t *c = config->resolver;
    /* every lookup ends by itself within its tries; the deadline is a second guard */
    uint64_t deadline = h2o_now(loop) + c->timeout_ms * c->attempts * (c->num_nameservers + 1) + 1000;
    for (;;) {
        int running = 0;
        for (h2o_linklist_t *l = names.next; l != &names && !running; l = l->next)
            running = !H2O_STRUCT_FROM_MEMBER(name_t, link, l)->completed;
        if (!running || h2o_now(loop) >= deadline)
            break;
        h2o_evloop_run(loop, 100);
    }
    priming = 0;
    int any = 0;
    for (h2o_linklist_t *l = names.next; l != &names; l = l->next)
        any |= H2O_STRUCT_FROM_MEMBER(name_t, link, l)->num_addrs != 0;
    return any;
}

void ficus_resolver_render_metrics(h2o_mem_pool_t *pool, h2o_iovec_t *out)
{
    size_t count = 0;
    for (h2o_linklist_t *l = names.next; l != &names; l = l->next)
        ++count;
    size_t cap = 2048 + count * (4 * 600), o = 0;
    char *buf = h2o_mem_alloc_pool(pool, cap);
#define APPEND(...) o += (size_t)snprintf(buf + o, o < cap ? cap - o : 0, __VA_ARGS__)
    APPEND("# HELP ficus_dns_queries_total DNS queries for upstream names, by outcome (one per A or AAAA query and try).\n"
           "# TYPE ficus_dns_queries_total counter\n");
    for (int r = 0; r != FICUS_DNS__COUNT; ++r)
        if (r != FICUS_DNS_MISMATCH)
            APPEND("ficus_dns_queries_total{result=\"%s\"} %llu\n", ficus_dns_result_names[r],
                   (unsigned long long)ficus_dns_queries_total[r]);
    APPEND("# HELP ficus_dns_refreshes_total Lookups of an upstream name (hosts file, then DNS), by outcome: ok (same "
           "addresses), changed, failed (last good answer kept), nxdomain.\n# TYPE ficus_dns_refreshes_total counter\n");
    for (h2o_linklist_t *l = names.next; l != &names; l = l->next) {
        name_t *n = H2O_STRUCT_FROM_MEMBER(name_t, link, l);
        for (int r = 0; r != REFRESH__COUNT; ++r)
            APPEND("ficus_dns_refreshes_total{host=\"%s\",result=\"%s\"} %llu\n", n->name, refresh_result_names[r],
                   (unsigned long long)n->refreshes[r]);
    }
    APPEND("# HELP ficus_dns_addresses Addresses an upstream name has now (its last good answer).\n"
           "# TYPE ficus_dns_addresses gauge\n");
    for (h2o_linklist_t *l = names.next; l != &names; l = l->next) {
        name_t *n = H2O_STRUCT_FROM_MEMBER(name_t, link, l);
        APPEND("ficus_dns_addresses{host=\"%s\"} %zu\n", n->name, n->num_addrs);
    }
#undef APPEND
    *out = h2o_iovec_init(buf, o < cap ? o : cap - 1);
}
