/* The `upstreams:` section of a configuration: upstreams and their endpoints (ficus/upstream.h).
 *
 * DESIGN: each upstream is validated whole (unknown keys, bounds, endpoint URLs) with file:line errors through
 * ficus_conf_error(); an endpoint's URL is split into host, port and the authority used as Host. Each endpoint takes a
 * reference to its state in the registry (gateway/upstream/registry.c), so a new generation finds what the previous
 * one learned about the same endpoint.
 * HOST NAMES: an entry of `endpoints` is a source; an IP literal is one endpoint, a host name one endpoint per address
 * the resolver knows for it now (ficus_resolver_addresses, gateway/resolver.c: none yet at the very first load, and
 * none while it does not resolve). An endpoint's identity is its address ("ip:port"), its Host the source's
 * authority. The same address reached through two sources is one endpoint (the first).
 * ficus_upstreams_derive() rebuilds only the endpoints, for a generation made when a name's answer changes.
 * OWNERSHIP: malloc'd, freed by ficus_upstreams_free() with the generation (config_free in gateway/config.c); a
 * derived upstream owns only its endpoints (the rest is its base's, which outlives it). */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/config.h"
#include "ficus/dns.h"
#include "ficus/log.h"
#include "ficus/resolver.h"
#include "ficus/upstream.h"
#include "ficus/upstream/registry.h"

static void *alloc_zeroed(size_t n, size_t size)
{
    void *p = calloc(n == 0 ? 1 : n, size);
    if (p == NULL)
        ficus_fatal("no memory");
    return p;
}

static char *dup_str(const char *s)
{
    return h2o_strdup(NULL, s, SIZE_MAX).base;
}

/* what ficus writes onto the wire (request line, Host) must be visible ASCII without spaces */
static int has_unsafe_char(const char *s)
{
    for (; *s != '\0'; ++s)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return 1;
    return 0;
}

static int load_endpoint(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_endpoint_source_t *ep)
{
    if (ficus_conf_expect(cc, node, FICUS_NODE_SCALAR) != 0)
        return -1;
    const char *url = node->data.scalar.value;
    ep->url = dup_str(url);
    if (has_unsafe_char(url))
        return ficus_conf_error(cc, node, "invalid endpoint '%s': spaces and control characters are not allowed", url);
    if (strncmp(url, "http://", 7) != 0)
        return ficus_conf_error(cc, node, "invalid endpoint '%s': only http://HOST:PORT upstreams are supported", url);
    const char *hp = url + 7, *end = hp + strlen(hp);
    if (end > hp && end[-1] == '/')
        --end;
    if (memchr(hp, '/', end - hp) != NULL || memchr(hp, '?', end - hp) != NULL || memchr(hp, '@', end - hp) != NULL)
        return ficus_conf_error(cc, node, "invalid endpoint '%s': give scheme, host and port only (no path)", url);
    const char *host_start = hp, *host_end, *port_start;
    if (*hp == '[') {
        const char *rb = memchr(hp, ']', end - hp);
        if (rb == NULL)
            return ficus_conf_error(cc, node, "invalid endpoint '%s': unterminated IPv6 address", url);
        host_start = hp + 1;
        host_end = rb;
        port_start = rb + 1;
    } else {
        host_end = memchr(hp, ':', end - hp);
        if (host_end == NULL)
            host_end = end;
        port_start = host_end;
    }
    if (host_end == host_start)
        return ficus_conf_error(cc, node, "invalid endpoint '%s': missing host", url);
    unsigned long port = 80;
    if (port_start < end) {
        if (*port_start != ':' || port_start + 1 == end)
            return ficus_conf_error(cc, node, "invalid endpoint '%s': bad port", url);
        port = 0;
        for (const char *p = port_start + 1; p != end; ++p) {
            if (!isdigit((unsigned char)*p) || (port = port * 10 + (*p - '0')) > 65535)
                return ficus_conf_error(cc, node, "invalid endpoint '%s': bad port", url);
        }
        if (port == 0)
            return ficus_conf_error(cc, node, "invalid endpoint '%s': bad port", url);
    }
    ep->host = strndup(host_start, host_end - host_start);
    ep->port = (uint16_t)port;
    char authority[300];
    int n = snprintf(authority, sizeof(authority), *hp == '[' ? "[%s]:%u" : "%s:%u", ep->host, (unsigned)port);
    if (n < 0 || (size_t)n >= sizeof(authority))
        return ficus_conf_error(cc, node, "invalid endpoint '%s': host too long", url);
    ep->authority = h2o_iovec_init(dup_str(authority), n);
    struct in6_addr a6;
    if (inet_pton(AF_INET, ep->host, &a6) != 1 && inet_pton(AF_INET6, ep->host, &a6) != 1) {
        if (*hp == '[' || !ficus_dns_name_valid(ep->host))
            return ficus_conf_error(cc, node, "invalid endpoint '%s': '%s' is neither an IP address nor a host name", url,
                                    ep->host);
        ep->is_name = 1;
    }
    return 0;
}

/* adds one endpoint for (src, address text ip, identity addr) unless the address is there already */
static void add_endpoint(ficus_upstream_conf_t *u, const ficus_endpoint_source_t *src, const char *ip, const char *addr)
{
    for (size_t i = 0; i != u->num_endpoints; ++i)
        if (strcmp(u->endpoints[i].address, addr) == 0)
            return;
    if (u->num_endpoints == FICUS_UPSTREAM_MAX_ENDPOINTS) {
        ficus_warn("upstream %s: more than %d addresses; %s (%s) left out", u->name, FICUS_UPSTREAM_MAX_ENDPOINTS, addr, src->url);
        return;
    }
    ficus_endpoint_conf_t *ep = u->endpoints + u->num_endpoints++;
    ep->url = dup_str(src->url);
    ep->host = dup_str(ip);
    ep->port = src->port;
    ep->authority = h2o_strdup(NULL, src->authority.base, src->authority.len);
    ep->address = dup_str(addr);
    ep->name = src->is_name ? dup_str(src->host) : NULL;
    ep->state = ficus_endpoint_state_get(u->state, ep->address);
}

/* u->endpoints from u->sources and the resolver's current answers */
static void build_endpoints(ficus_upstream_conf_t *u)
{
    u->endpoints = alloc_zeroed(FICUS_UPSTREAM_MAX_ENDPOINTS, sizeof(*u->endpoints));
    u->num_endpoints = 0;
    for (size_t i = 0; i != u->num_sources; ++i) {
        const ficus_endpoint_source_t *src = u->sources + i;
        if (!src->is_name) {
            add_endpoint(u, src, src->host, src->authority.base);
            continue;
        }
        const ficus_dns_addr_t *addrs;
        size_t n = ficus_resolver_addresses(src->host, &addrs);
        for (size_t k = 0; k != n; ++k) {
            char addr[64], ip[48];
            ficus_dns_addr_format(addrs + k, src->port, addr, sizeof(addr), ip, sizeof(ip));
            add_endpoint(u, src, ip, addr);
        }
    }
    ficus_endpoint_conf_t *shrunk = realloc(u->endpoints, (u->num_endpoints != 0 ? u->num_endpoints : 1) * sizeof(*u->endpoints));
    if (shrunk != NULL)
        u->endpoints = shrunk;
}

static void free_endpoints(ficus_upstream_conf_t *u)
{
    for (size_t j = 0; j != u->num_endpoints; ++j) {
        free(u->endpoints[j].url);
        free(u->endpoints[j].host);
        free(u->endpoints[j].authority.base);
        free(u->endpoints[j].address);
        free(u->endpoints[j].name);
        ficus_endpoint_state_unconfigure(u->endpoints[j].state);
    }
    free(u->endpoints);
    u->endpoints = NULL;
    u->num_endpoints = 0;
}

/* "20%" (a share in whole percent, within [min, max]) */
static int load_percent(ficus_conf_ctx_t *cc, const ficus_node_t *node, unsigned min, unsigned max, unsigned *out)
{
    if (ficus_conf_expect(cc, node, FICUS_NODE_SCALAR) != 0)
        return -1;
    const char *s = node->data.scalar.value;
    size_t len = node->data.scalar.len;
    unsigned long v = 0;
    size_t i = 0;
    for (; i < len && i < 4 && s[i] >= '0' && s[i] <= '9'; ++i)
        v = v * 10 + (s[i] - '0');
    if (i == 0 || i + 1 != len || s[i] != '%' || v < min || v > max)
        return ficus_conf_error(cc, node, "expected a percentage from %u%% to %u%% (like \"20%%\"), got '%s'", min, max, s);
    *out = (unsigned)v;
    return 0;
}

static int load_count(ficus_conf_ctx_t *cc, const ficus_node_t *node, uint64_t min, uint64_t max, unsigned *out)
{
    uint64_t v;
    if (ficus_conf_uint(cc, node, min, max, &v) != 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int load_balance(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_upstream_conf_t *u)
{
    if (node->type == FICUS_NODE_SCALAR) {
        static const char *const kinds[] = {"round_robin", "least_request", NULL};
        int k;
        if (ficus_conf_enum(cc, node, kinds, &k) != 0)
            return -1;
        u->balance.kind = k == 0 ? FICUS_BALANCE_ROUND_ROBIN : FICUS_BALANCE_LEAST_REQUEST;
        return 0;
    }
    ficus_node_t *hash;
    if (node->type != FICUS_NODE_MAPPING)
        return ficus_conf_error(cc, node, "balance: expected round_robin, least_request or { hash: KEY }");
    if (ficus_conf_mapping(cc, node, "hash:s", "", &hash) != 0)
        return -1;
    const char *k = hash->data.scalar.value;
    static const struct {
        const char *prefix;
        ficus_hash_key_t key;
    } kinds[] = {{"header:", FICUS_HASH_HEADER}, {"claim:", FICUS_HASH_CLAIM}, {"cookie:", FICUS_HASH_COOKIE}};
    u->balance.kind = FICUS_BALANCE_HASH;
    if (strcmp(k, "ip") == 0) {
        u->balance.key = FICUS_HASH_IP;
        return 0;
    }
    for (size_t i = 0; i != sizeof(kinds) / sizeof(kinds[0]); ++i) {
        size_t plen = strlen(kinds[i].prefix);
        if (strncmp(k, kinds[i].prefix, plen) == 0 && k[plen] != '\0' && !has_unsafe_char(k + plen)) {
            u->balance.key = kinds[i].key;
            u->balance.name = h2o_strdup(NULL, k + plen, SIZE_MAX);
            if (kinds[i].key == FICUS_HASH_HEADER)
                h2o_strtolower(u->balance.name.base, u->balance.name.len);
            return 0;
        }
    }
    return ficus_conf_error(cc, hash, "balance hash key '%s': expected header:NAME, claim:NAME, cookie:NAME or ip", k);
}

static int load_retry(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_upstream_conf_t *u)
{
    ficus_node_t *attempts, *on, *backoff, *budget;
    if (ficus_conf_mapping(cc, node, "", "attempts:s,on:a,backoff:m,budget:s", &attempts, &on, &backoff, &budget) != 0)
        return -1;
    if (attempts != NULL && load_count(cc, attempts, 1, 10, &u->retry.attempts) != 0)
        return -1;
    if (on != NULL) {
        static const char *const reasons[] = {"connect_failure", "reset", "502", "503", "504", NULL};
        u->retry.on = 0;
        for (size_t i = 0; i != on->data.sequence.size; ++i) {
            int reason;
            if (ficus_conf_enum(cc, on->data.sequence.elements[i], reasons, &reason) != 0)
                return -1;
            u->retry.on |= 1u << reason;
        }
    }
    if (backoff != NULL) {
        ficus_node_t *base, *max;
        if (ficus_conf_mapping(cc, backoff, "", "base:s,max:s", &base, &max) != 0)
            return -1;
        if (base != NULL && ficus_conf_duration(cc, base, 1, 60000, &u->retry.backoff_base_ms) != 0)
            return -1;
        if (max != NULL && ficus_conf_duration(cc, max, 1, 600000, &u->retry.backoff_max_ms) != 0)
            return -1;
        if (u->retry.backoff_max_ms < u->retry.backoff_base_ms)
            return ficus_conf_error(cc, max != NULL ? max : base, "retry backoff: max must not be less than base");
    }
    if (budget != NULL && load_percent(cc, budget, 0, 100, &u->retry.budget_percent) != 0)
        return -1;
    return 0;
}

static int load_outlier(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_upstream_conf_t *u)
{
    ficus_node_t *consecutive, *ejection, *max_ejection, *max_ejected;
    if (ficus_conf_mapping(cc, node, "", "consecutive_failures:s,ejection:s,max_ejection:s,max_ejected:s", &consecutive, &ejection,
                           &max_ejection, &max_ejected) != 0)
        return -1;
    u->outlier.enabled = 1;
    u->outlier.consecutive_failures = 5;
    u->outlier.ejection_ms = 10000;
    u->outlier.max_ejection_ms = 300000;
    u->outlier.max_ejected_percent = 50;
    if (consecutive != NULL && load_count(cc, consecutive, 1, 1000, &u->outlier.consecutive_failures) != 0)
        return -1;
    if (ejection != NULL && ficus_conf_duration(cc, ejection, 1, 86400000, &u->outlier.ejection_ms) != 0)
        return -1;
    if (max_ejection != NULL && ficus_conf_duration(cc, max_ejection, 1, 86400000, &u->outlier.max_ejection_ms) != 0)
        return -1;
    if (u->outlier.max_ejection_ms < u->outlier.ejection_ms)
        return ficus_conf_error(cc, max_ejection != NULL ? max_ejection : ejection,
                                "outlier: max_ejection must not be less than ejection");
    if (max_ejected != NULL && load_percent(cc, max_ejected, 0, 100, &u->outlier.max_ejected_percent) != 0)
        return -1;
    return 0;
}

static int load_expect(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_upstream_conf_t *u)
{
    if (node->data.sequence.size == 0 || node->data.sequence.size > 16)
        return ficus_conf_error(cc, node, "health_check expect: give 1 to 16 statuses or ranges (like 200-399)");
    u->health.num_expect = node->data.sequence.size;
    u->health.expect = alloc_zeroed(u->health.num_expect, sizeof(*u->health.expect));
    for (size_t i = 0; i != u->health.num_expect; ++i) {
        const ficus_node_t *e = node->data.sequence.elements[i];
        if (ficus_conf_expect(cc, e, FICUS_NODE_SCALAR) != 0)
            return -1;
        const char *v = e->data.scalar.value;
        size_t len = e->data.scalar.len;
        int digits_ok = len == 3 || (len == 7 && v[3] == '-');
        for (size_t k = 0; k != len && digits_ok; ++k)
            digits_ok = k == 3 || (v[k] >= '0' && v[k] <= '9');
        if (!digits_ok)
            return ficus_conf_error(cc, e, "health_check expect: '%s' is not a status (200) or a range (200-399)", v);
        unsigned lo = (unsigned)((v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0')), hi = lo;
        if (len == 7)
            hi = (unsigned)((v[4] - '0') * 100 + (v[5] - '0') * 10 + (v[6] - '0'));
        if (lo < 100 || hi > 599 || lo > hi)
            return ficus_conf_error(cc, e, "health_check expect: '%s' is not within 100-599", e->data.scalar.value);
        u->health.expect[i].lo = (uint16_t)lo;
        u->health.expect[i].hi = (uint16_t)hi;
    }
    return 0;
}

static int load_health(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_upstream_conf_t *u)
{
    ficus_node_t *path, *interval, *timeout, *healthy, *unhealthy, *expect;
    if (ficus_conf_mapping(cc, node, "path:s", "interval:s,timeout:s,healthy:s,unhealthy:s,expect:a", &path, &interval, &timeout,
                           &healthy, &unhealthy, &expect) != 0)
        return -1;
    if (path->data.scalar.value[0] != '/' || has_unsafe_char(path->data.scalar.value) || path->data.scalar.len > 1024)
        return ficus_conf_error(cc, path, "health_check path must start with '/' and have no spaces or control characters");
    u->health.enabled = 1;
    u->health.path = dup_str(path->data.scalar.value);
    u->health.interval_ms = 2000;
    u->health.timeout_ms = 1000;
    u->health.healthy = 2;
    u->health.unhealthy = 3;
    if (interval != NULL && ficus_conf_duration(cc, interval, 10, 3600000, &u->health.interval_ms) != 0)
        return -1;
    if (timeout != NULL && ficus_conf_duration(cc, timeout, 1, 600000, &u->health.timeout_ms) != 0)
        return -1;
    if (u->health.timeout_ms > u->health.interval_ms)
        return ficus_conf_error(cc, timeout != NULL ? timeout : interval, "health_check timeout must not exceed interval");
    if (healthy != NULL && load_count(cc, healthy, 1, 100, &u->health.healthy) != 0)
        return -1;
    if (unhealthy != NULL && load_count(cc, unhealthy, 1, 100, &u->health.unhealthy) != 0)
        return -1;
    if (expect != NULL)
        return load_expect(cc, expect, u);
    u->health.num_expect = 1;
    u->health.expect = alloc_zeroed(1, sizeof(*u->health.expect));
    u->health.expect[0].lo = 200;
    u->health.expect[0].hi = 399;
    return 0;
}

static int load_breaker(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_upstream_conf_t *u)
{
    ficus_node_t *ratio, *min_requests, *window, *open_for;
    if (ficus_conf_mapping(cc, node, "", "failure_ratio:s,min_requests:s,window:s,open_for:s", &ratio, &min_requests, &window,
                           &open_for) != 0)
        return -1;
    ficus_breaker_conf_t *b = &u->breaker;
    b->enabled = 1;
    b->failure_ratio_percent = 50;
    b->min_requests = 20;
    b->window_ms = 10000;
    b->open_for_ms = 5000;
    if (ratio != NULL && load_percent(cc, ratio, 1, 100, &b->failure_ratio_percent) != 0)
        return -1;
    if (min_requests != NULL && ficus_conf_uint(cc, min_requests, 1, 1000000, &b->min_requests) != 0)
        return -1;
    if (window != NULL && ficus_conf_duration(cc, window, 100, 3600000, &b->window_ms) != 0)
        return -1;
    if (open_for != NULL && ficus_conf_duration(cc, open_for, 1, 3600000, &b->open_for_ms) != 0)
        return -1;
    return 0;
}

static int load_upstream(ficus_conf_ctx_t *cc, const ficus_node_t *name, const ficus_node_t *node, ficus_upstream_conf_t *u)
{
    ficus_node_t *endpoints, *connect_timeout, *timeout, *max_connections, *keepalive_timeout, *request_timeout, *balance,
        *dns_refresh, *retry, *outlier, *health, *breaker;
    u->name = dup_str(name->data.scalar.value);
    u->line = name->line;
    if (ficus_conf_mapping(cc, node, "endpoints:a",
                           "connect_timeout:s,timeout:s,max_connections:s,keepalive_timeout:s,request_timeout:s,balance:*,"
                           "dns_refresh:s,retry:m,outlier:m,health_check:m,breaker:m",
                           &endpoints, &connect_timeout, &timeout, &max_connections, &keepalive_timeout, &request_timeout, &balance,
                           &dns_refresh, &retry, &outlier, &health, &breaker) != 0)
        return -1;
    if (endpoints->data.sequence.size == 0)
        return ficus_conf_error(cc, endpoints, "upstream '%s' needs at least one endpoint", u->name);
    if (endpoints->data.sequence.size > FICUS_UPSTREAM_MAX_ENDPOINTS)
        return ficus_conf_error(cc, endpoints, "upstream '%s' has more than %d endpoints", u->name, FICUS_UPSTREAM_MAX_ENDPOINTS);
    u->num_sources = endpoints->data.sequence.size;
    u->sources = alloc_zeroed(u->num_sources, sizeof(*u->sources));
    for (size_t i = 0; i != u->num_sources; ++i) {
        if (load_endpoint(cc, endpoints->data.sequence.elements[i], u->sources + i) != 0)
            return -1;
        for (size_t j = 0; j != i; ++j)
            if (strcmp(u->sources[j].authority.base, u->sources[i].authority.base) == 0)
                return ficus_conf_error(cc, endpoints->data.sequence.elements[i], "upstream '%s' lists endpoint '%s' twice",
                                        u->name, u->sources[i].authority.base);
    }
    u->connect_timeout_ms = 1000;
    u->timeout_ms = 30000;
    u->max_connections = 1024; /* a bound by default (as Envoy's circuit breaker): a slow upstream cannot take all sockets */
    u->keepalive_timeout_ms = 2000;
    u->dns_refresh_ms = 30000;
    u->retry.attempts = 2;
    u->retry.on = 1u << FICUS_RETRY_CONNECT_FAILURE | 1u << FICUS_RETRY_RESET;
    u->retry.backoff_base_ms = 25;
    u->retry.backoff_max_ms = 250;
    u->retry.budget_percent = 20;
    if (connect_timeout != NULL && ficus_conf_duration(cc, connect_timeout, 1, 600000, &u->connect_timeout_ms) != 0)
        return -1;
    if (timeout != NULL && ficus_conf_duration(cc, timeout, 1, 86400000, &u->timeout_ms) != 0)
        return -1;
    if (request_timeout != NULL && ficus_conf_duration(cc, request_timeout, 1, 86400000, &u->request_timeout_ms) != 0)
        return -1;
    if (keepalive_timeout != NULL && ficus_conf_duration(cc, keepalive_timeout, 0, 3600000, &u->keepalive_timeout_ms) != 0)
        return -1;
    if (max_connections != NULL && ficus_conf_uint(cc, max_connections, 1, 10000000, &u->max_connections) != 0)
        return -1;
    if (dns_refresh != NULL && ficus_conf_duration(cc, dns_refresh, 100, 86400000, &u->dns_refresh_ms) != 0)
        return -1;
    if (balance != NULL && load_balance(cc, balance, u) != 0)
        return -1;
    if (retry != NULL && load_retry(cc, retry, u) != 0)
        return -1;
    if (outlier != NULL && load_outlier(cc, outlier, u) != 0)
        return -1;
    if (health != NULL && load_health(cc, health, u) != 0)
        return -1;
    if (breaker != NULL && load_breaker(cc, breaker, u) != 0)
        return -1;
    u->state = ficus_upstream_state_get(u->name);
    build_endpoints(u);
    u->stats = ficus_metrics_upstream_get(u->name);
    return 0;
}

int ficus_upstreams_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_config_t *config)
{
    if (ficus_conf_expect(cc, node, FICUS_NODE_MAPPING) != 0)
        return -1;
    config->num_upstreams = node->data.mapping.size;
    config->upstreams = alloc_zeroed(config->num_upstreams, sizeof(*config->upstreams));
    for (size_t i = 0; i != node->data.mapping.size; ++i) {
        ficus_node_t *key = node->data.mapping.keys[i];
        if (key->data.scalar.len == 0)
            return ficus_conf_error(cc, key, "upstream name must not be empty");
        for (size_t j = 0; j != i; ++j)
            if (strcmp(config->upstreams[j]->name, key->data.scalar.value) == 0)
                return ficus_conf_error(cc, key, "duplicate upstream '%s'", key->data.scalar.value);
        config->upstreams[i] = alloc_zeroed(1, sizeof(ficus_upstream_conf_t));
        config->upstreams[i]->index = i;
        if (load_upstream(cc, key, node->data.mapping.values[i], config->upstreams[i]) != 0)
            return -1;
    }
    return 0;
}

ficus_upstream_conf_t *ficus_config_upstream(const ficus_config_t *config, const char *name)
{
    for (size_t i = 0; i != config->num_upstreams; ++i)
        if (config->upstreams[i] != NULL && strcmp(config->upstreams[i]->name, name) == 0)
            return config->upstreams[i];
    return NULL;
}

void ficus_upstreams_derive(const ficus_config_t *base, ficus_config_t *derived)
{
    derived->num_upstreams = base->num_upstreams;
    derived->upstreams = alloc_zeroed(base->num_upstreams, sizeof(*derived->upstreams));
    for (size_t i = 0; i != base->num_upstreams; ++i) {
        ficus_upstream_conf_t *u = alloc_zeroed(1, sizeof(*u));
        *u = *base->upstreams[i];
        u->derived = 1;
        build_endpoints(u);
        derived->upstreams[i] = u;
    }
}

void ficus_upstreams_free(ficus_config_t *c)
{
    for (size_t i = 0; i != c->num_upstreams; ++i) {
        ficus_upstream_conf_t *u = c->upstreams[i];
        if (u == NULL)
            continue;
        free_endpoints(u);
        if (u->derived) {
            free(u);
            continue;
        }
        for (size_t j = 0; j != u->num_sources; ++j) {
            free(u->sources[j].url);
            free(u->sources[j].host);
            free(u->sources[j].authority.base);
        }
        free(u->sources);
        ficus_upstream_state_unconfigure(u->state);
        free(u->balance.name.base);
        free(u->health.path);
        free(u->health.expect);
        free(u->name);
        free(u);
    }
    free(c->upstreams);
}
