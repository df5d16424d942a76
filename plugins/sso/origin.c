/* sso: ficus's own origin ("https://host[:port]"), from which the redirect_uri of a login (and of its code exchange)
 * and the default post_logout_redirect_uri of a logout are built.
 *
 * external_url when configured. Otherwise the request's authority, but only for a host ficus serves: one named by a
 * route's `match.host` (exact, or "*.example.com" as routes match it) or by a certificate of the listener the request
 * came through (its SAN DNS names, or CN; "*.example.com" covers exactly one label, RFC 6125 6.4.3). Anything else
 * (`Host: evil.example`, a port that is not digits, an empty host) gets no origin, and the caller answers 400
 * unknown_host: a redirect_uri built from a client's Host header would send the authorization code to whoever the
 * client names. Routes without `match.host` do not count: they match any host, so they vouch for none.
 * COST: linear in routes + certificate names, on login, callback and logout only (never on a signed-in request). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/log.h"
#include "ficus/route.h"
#include "sso.h"

/* The host of an authority "host[:port]" ("[v6]" kept with its brackets); -1 when malformed. */
static int authority_host(h2o_iovec_t a, h2o_iovec_t *host)
{
    const char *end = a.base + a.len, *port;
    if (a.len != 0 && a.base[0] == '[') {
        const char *rb = memchr(a.base, ']', a.len);
        if (rb == NULL)
            return -1;
        *host = h2o_iovec_init(a.base, rb + 1 - a.base);
        port = rb + 1;
        if (port != end && *port != ':')
            return -1;
    } else {
        const char *colon = memchr(a.base, ':', a.len);
        port = colon != NULL ? colon : end;
        *host = h2o_iovec_init(a.base, port - a.base);
    }
    if (host->len == 0)
        return -1;
    if (port != end) {
        if (port + 1 == end)
            return -1;
        for (const char *p = port + 1; p != end; ++p)
            if (!isdigit((unsigned char)*p))
                return -1;
    }
    return 0;
}

static int cert_name_matches(const char *name, h2o_iovec_t host)
{
    if (name[0] == '*' && name[1] == '.') {
        const char *dot = memchr(host.base, '.', host.len);
        if (dot == NULL || dot == host.base)
            return 0;
        size_t rest = host.len - (size_t)(dot + 1 - host.base);
        return h2o_lcstris(dot + 1, rest, name + 2, strlen(name + 2));
    }
    return h2o_lcstris(host.base, host.len, name, strlen(name));
}

static int is_served(ficus_req_t *r, h2o_iovec_t host)
{
    const ficus_config_t *c = r->config;
    for (size_t i = 0; i != c->num_routes; ++i)
        if (c->routes[i]->match.host.base != NULL && ficus_route_host_matches(&c->routes[i]->match, host))
            return 1;
    const ficus_tls_conf_t *tls = r->listener != NULL ? r->listener->tls : NULL;
    for (size_t i = 0; tls != NULL && i != tls->num_certs; ++i)
        for (size_t j = 0; j != tls->certs[i].num_names; ++j)
            if (cert_name_matches(tls->certs[i].names[j], host))
                return 1;
    return 0;
}

char *sso_origin_of(const sso_global_t *g, ficus_req_t *r)
{
    if (g->external_url != NULL)
        return sso_xstrdup(g->external_url);
    h2o_iovec_t authority = r->h2o->authority, host;
    if (authority_host(authority, &host) != 0 || !is_served(r, host))
        return NULL;
    char *out;
    if (asprintf(&out, "https://%.*s", (int)authority.len, authority.base) < 0)
        ficus_fatal("no memory");
    return out;
}

ficus_status_t sso_respond_unknown_host(ficus_req_t *r)
{
    h2o_add_header(&r->h2o->pool, &r->h2o->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    r->error = "sso_unknown_host";
    ficus_req_respond_error(r, 400, "unknown_host");
    return FICUS_RESPONDED;
}
