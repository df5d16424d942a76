/* The `upstreams:` section of a configuration: upstreams and their endpoints (ficus/upstream.h).
 *
 * DESIGN: each upstream is validated whole (unknown keys, bounds, endpoint URLs) with file:line errors through
 * ficus_conf_error(); an endpoint's URL is split into host, port and the authority used as Host. Each endpoint takes a
 * reference to its state in the registry (gateway/upstream/registry.c), so a new generation finds what the previous
 * one learned about the same endpoint.
 * OWNERSHIP: malloc'd, freed by ficus_upstreams_free() with the generation (config_free in gateway/config.c). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/config.h"
#include "ficus/log.h"
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

static int load_endpoint(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_endpoint_conf_t *ep)
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
    return 0;
}

static int load_upstream(ficus_conf_ctx_t *cc, const ficus_node_t *name, const ficus_node_t *node, ficus_upstream_conf_t *u)
{
    ficus_node_t *endpoints, *connect_timeout, *timeout, *max_connections, *keepalive_timeout;
    u->name = dup_str(name->data.scalar.value);
    if (ficus_conf_mapping(cc, node, "endpoints:a", "connect_timeout:s,timeout:s,max_connections:s,keepalive_timeout:s", &endpoints,
                           &connect_timeout, &timeout, &max_connections, &keepalive_timeout) != 0)
        return -1;
    if (endpoints->data.sequence.size == 0)
        return ficus_conf_error(cc, endpoints, "upstream '%s' needs at least one endpoint", u->name);
    if (endpoints->data.sequence.size > 256)
        return ficus_conf_error(cc, endpoints, "upstream '%s' has more than 256 endpoints", u->name);
    u->num_endpoints = endpoints->data.sequence.size;
    u->endpoints = alloc_zeroed(u->num_endpoints, sizeof(*u->endpoints));
    for (size_t i = 0; i != u->num_endpoints; ++i)
        if (load_endpoint(cc, endpoints->data.sequence.elements[i], u->endpoints + i) != 0)
            return -1;
    u->connect_timeout_ms = 1000;
    u->timeout_ms = 30000;
    u->max_connections = 1024; /* a bound by default (as Envoy's circuit breaker): a slow upstream cannot take all sockets */
    u->keepalive_timeout_ms = 2000;
    if (connect_timeout != NULL && ficus_conf_duration(cc, connect_timeout, 1, 600000, &u->connect_timeout_ms) != 0)
        return -1;
    if (timeout != NULL && ficus_conf_duration(cc, timeout, 1, 86400000, &u->timeout_ms) != 0)
        return -1;
    if (keepalive_timeout != NULL && ficus_conf_duration(cc, keepalive_timeout, 0, 3600000, &u->keepalive_timeout_ms) != 0)
        return -1;
    if (max_connections != NULL && ficus_conf_uint(cc, max_connections, 1, 10000000, &u->max_connections) != 0)
        return -1;
    for (size_t i = 0; i != u->num_endpoints; ++i)
        u->endpoints[i].state = ficus_endpoint_state_get(u->name, u->endpoints[i].authority.base);
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

void ficus_upstreams_free(ficus_config_t *c)
{
    for (size_t i = 0; i != c->num_upstreams; ++i) {
        ficus_upstream_conf_t *u = c->upstreams[i];
        if (u == NULL)
            continue;
        for (size_t j = 0; j != u->num_endpoints; ++j) {
            free(u->endpoints[j].url);
            free(u->endpoints[j].host);
            free(u->endpoints[j].authority.base);
            ficus_endpoint_state_release(u->endpoints[j].state);
        }
        free(u->endpoints);
        free(u->name);
        free(u);
    }
    free(c->upstreams);
}
