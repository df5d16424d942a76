/* Route matching (see ficus/route.h). */
#include <string.h>
#include "ficus/route.h"

int ficus_route_host_matches(const ficus_route_match_t *m, h2o_iovec_t host)
{
    if (m->host.base == NULL)
        return 1;
    if (m->host_is_suffix) /* ".example.com": any name ending with it, but not the bare domain */
        return host.len > m->host.len && h2o_lcstris(host.base + host.len - m->host.len, m->host.len, m->host.base, m->host.len);
    return h2o_lcstris(host.base, host.len, m->host.base, m->host.len);
}

static int path_matches(const ficus_route_match_t *m, h2o_iovec_t path)
{
    if (m->path.base == NULL)
        return 1;
    if (!m->path_is_prefix)
        return h2o_memis(path.base, path.len, m->path.base, m->path.len);
    if (path.len < m->path.len || memcmp(path.base, m->path.base, m->path.len) != 0)
        return 0;
    /* "/api" matches "/api", "/api/x" and "/api?..", not "/apix"; a prefix ending in '/' matches anything below it */
    return path.len == m->path.len || m->path.base[m->path.len - 1] == '/' || path.base[m->path.len] == '/';
}

static int method_matches(const ficus_route_match_t *m, h2o_iovec_t method)
{
    if (m->methods == NULL)
        return 1;
    for (size_t i = 0; i != m->num_methods; ++i)
        if (h2o_memis(method.base, method.len, m->methods[i], strlen(m->methods[i])))
            return 1;
    return 0;
}

static int headers_match(const ficus_route_match_t *m, const h2o_headers_t *headers)
{
    for (size_t i = 0; i != m->num_headers; ++i) {
        const ficus_header_match_t *hm = m->headers + i;
        int found = 0;
        for (size_t j = 0; j != headers->size && !found; ++j) {
            const h2o_header_t *h = headers->entries + j;
            if (!h2o_lcstris(h->name->base, h->name->len, hm->name.base, hm->name.len))
                continue;
            if (hm->value.base == NULL || h2o_memis(h->value.base, h->value.len, hm->value.base, hm->value.len))
                found = 1;
        }
        if (!found)
            return 0;
    }
    return 1;
}

int ficus_route_matches(const ficus_route_t *route, h2o_iovec_t host, h2o_iovec_t method, h2o_iovec_t path,
                        const h2o_headers_t *headers)
{
    const ficus_route_match_t *m = &route->match;
    return ficus_route_host_matches(m, host) && path_matches(m, path) && method_matches(m, method) && headers_match(m, headers);
}

const ficus_route_t *ficus_route_find(const ficus_config_t *config, h2o_iovec_t host, h2o_iovec_t method, h2o_iovec_t path,
                                      const h2o_headers_t *headers)
{
    for (size_t i = 0; i != config->num_routes; ++i)
        if (ficus_route_matches(config->routes[i], host, method, path, headers))
            return config->routes[i];
    return NULL;
}
