/* Unit tests of gateway/route.c: routes are built from YAML through ficus_config_load_string (as ficus does), then
 * requests (host, method, path, headers) are matched with ficus_route_find / ficus_route_matches: first match wins,
 * path_prefix segment boundaries, exact paths, exact and wildcard hosts (case-insensitive), methods, header presence
 * and exact values. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ficus/config.h"
#include "ficus/route.h"
#include "runner.h"

#define ERRLEN 1024

/* Loads `routes` (the YAML list under `routes:`) with a listener and an upstream `app`. */
static ficus_config_t *load_routes(const char *routes)
{
    char text[8192], err[ERRLEN];
    snprintf(text, sizeof(text),
             "server:\n  listen: [{ address: \"127.0.0.1:8080\" }]\n"
             "upstreams:\n  app: { endpoints: [\"http://127.0.0.1:9000\"] }\n"
             "routes:\n%s",
             routes);
    ficus_config_t *c = ficus_config_load_string("t.yaml", text, strlen(text), 1, err, sizeof(err));
    if (!ok(c != NULL))
        printf("#     error: %s\n", err);
    return c;
}

/* A request's headers, in a pool like h2o's. */
typedef struct st_req_headers_t {
    h2o_mem_pool_t pool;
    h2o_headers_t headers;
} req_headers_t;

static void headers_init(req_headers_t *h)
{
    h2o_mem_init_pool(&h->pool);
    memset(&h->headers, 0, sizeof(h->headers));
}

static void headers_add(req_headers_t *h, const char *name, const char *value)
{
    h2o_add_header_by_str(&h->pool, &h->headers, name, strlen(name), 1, NULL, value, strlen(value));
}

static void headers_clear(req_headers_t *h)
{
    h2o_mem_clear_pool(&h->pool);
    memset(&h->headers, 0, sizeof(h->headers));
}

/* The name of the route chosen for the request, or NULL. Headers: NULL-terminated name, value pairs. */
static const char *find(const ficus_config_t *c, const char *host, const char *method, const char *path, ...)
{
    req_headers_t h;
    headers_init(&h);
    va_list args;
    va_start(args, path);
    const char *name;
    while ((name = va_arg(args, const char *)) != NULL)
        headers_add(&h, name, va_arg(args, const char *));
    va_end(args);
    const ficus_route_t *r = ficus_route_find(c, h2o_iovec_init(host, strlen(host)), h2o_iovec_init(method, strlen(method)),
                                              h2o_iovec_init(path, strlen(path)), &h.headers);
    headers_clear(&h);
    return r != NULL ? r->name : NULL;
}

#define GET(c, host, path) find((c), (host), "GET", (path), NULL)

FICUS_TEST(first_match_wins)
{
    ficus_config_t *c = load_routes("  - { name: api, match: { path_prefix: /api }, to: app }\n"
                                    "  - { name: api-v2, match: { path_prefix: /api/v2 }, to: app }\n"
                                    "  - { name: ping, match: { path: /ping }, respond: {} }\n"
                                    "  - { name: ping-too, match: { path: /ping }, respond: {} }\n"
                                    "  - { name: all, to: app }\n"
                                    "  - { name: never, match: { path: /never }, to: app }\n");
    if (c == NULL)
        return;
    ok_str(GET(c, "x", "/api/v2/users"), "api"); /* written first, so it shadows the more specific route */
    ok_str(GET(c, "x", "/api"), "api");
    ok_str(GET(c, "x", "/ping"), "ping");
    ok_str(GET(c, "x", "/other"), "all");
    ok_str(GET(c, "x", "/never"), "all");
    ok_str(GET(c, "", ""), "all");
    /* the pointer is the config's own route */
    req_headers_t h;
    headers_init(&h);
    ok(ficus_route_find(c, h2o_iovec_init(H2O_STRLIT("x")), h2o_iovec_init(H2O_STRLIT("GET")), h2o_iovec_init(H2O_STRLIT("/ping")),
                        &h.headers) == c->routes[2]);
    headers_clear(&h);
    ficus_config_release(c);
}

FICUS_TEST(no_route)
{
    ficus_config_t *c = load_routes("  - { name: api, match: { path_prefix: /api }, to: app }\n"
                                    "  - { name: web, match: { host: www.example.com }, to: app }\n");
    if (c == NULL)
        return;
    ok(GET(c, "api.example.com", "/") == NULL);
    ok(GET(c, "www.example.com", "/x") != NULL);
    ok(GET(c, "example.com", "/apix") == NULL);
    ficus_config_release(c);

    c = load_routes("  []\n");
    if (c == NULL)
        return;
    ok_int(c->num_routes, 0);
    ok(GET(c, "x", "/") == NULL);
    ficus_config_release(c);
}

FICUS_TEST(path_prefix_boundaries)
{
    ficus_config_t *c = load_routes("  - { name: api, match: { path_prefix: /api }, to: app }\n"
                                    "  - { name: docs-dir, match: { path_prefix: /docs/ }, to: app }\n"
                                    "  - { name: root, match: { path_prefix: / }, to: app }\n");
    if (c == NULL)
        return;
    /* "/api": itself and anything below it, not a longer segment */
    ok_str(GET(c, "x", "/api"), "api");
    ok_str(GET(c, "x", "/api/"), "api");
    ok_str(GET(c, "x", "/api/x"), "api");
    ok_str(GET(c, "x", "/api/x/y"), "api");
    ok_str(GET(c, "x", "/apix"), "root");
    ok_str(GET(c, "x", "/api-v2"), "root");
    ok_str(GET(c, "x", "/ap"), "root");
    ok_str(GET(c, "x", "/API"), "root"); /* paths are case-sensitive */
    ok_str(GET(c, "x", "//api"), "root");
    /* "/docs/": anything below it, not "/docs" itself */
    ok_str(GET(c, "x", "/docs/x"), "docs-dir");
    ok_str(GET(c, "x", "/docs/"), "docs-dir");
    ok_str(GET(c, "x", "/docs"), "root");
    ok_str(GET(c, "x", "/docsx"), "root");
    /* "/": every path */
    ok_str(GET(c, "x", "/"), "root");
    ok_str(GET(c, "x", "/anything/at/all"), "root");
    ok(GET(c, "x", "") == NULL);
    ok(GET(c, "x", "*") == NULL);

    /* the same through ficus_route_matches */
    const ficus_route_t *api = c->routes[0];
    req_headers_t h;
    headers_init(&h);
    ok(ficus_route_matches(api, h2o_iovec_init(H2O_STRLIT("x")), h2o_iovec_init(H2O_STRLIT("GET")),
                           h2o_iovec_init(H2O_STRLIT("/api/x")), &h.headers));
    ok(!ficus_route_matches(api, h2o_iovec_init(H2O_STRLIT("x")), h2o_iovec_init(H2O_STRLIT("GET")),
                            h2o_iovec_init(H2O_STRLIT("/apix")), &h.headers));
    /* only `len` bytes of the path count */
    ok(ficus_route_matches(api, h2o_iovec_init(H2O_STRLIT("x")), h2o_iovec_init(H2O_STRLIT("GET")), h2o_iovec_init("/apixyz", 4),
                           &h.headers));
    headers_clear(&h);
    ficus_config_release(c);
}

FICUS_TEST(exact_path)
{
    ficus_config_t *c = load_routes("  - { name: exact, match: { path: /exact }, respond: {} }\n"
                                    "  - { name: slash, match: { path: / }, respond: {} }\n");
    if (c == NULL)
        return;
    ok_str(GET(c, "x", "/exact"), "exact");
    ok(GET(c, "x", "/exact/") == NULL);
    ok(GET(c, "x", "/exactly") == NULL);
    ok(GET(c, "x", "/exac") == NULL);
    ok(GET(c, "x", "/EXACT") == NULL);
    ok(GET(c, "x", "/exact/x") == NULL);
    ok_str(GET(c, "x", "/"), "slash");
    ok(GET(c, "x", "/x") == NULL);
    ok(GET(c, "x", "") == NULL);
    ficus_config_release(c);
}

FICUS_TEST(host_exact)
{
    ficus_config_t *c = load_routes("  - { name: api, match: { host: API.Example.com }, to: app }\n");
    if (c == NULL)
        return;
    ok_str(GET(c, "api.example.com", "/"), "api");
    ok_str(GET(c, "API.EXAMPLE.COM", "/"), "api");
    ok_str(GET(c, "Api.Example.Com", "/x"), "api");
    ok(GET(c, "api.example.com.evil", "/") == NULL);
    ok(GET(c, "xapi.example.com", "/") == NULL);
    ok(GET(c, "api.example.co", "/") == NULL);
    ok(GET(c, "b.api.example.com", "/") == NULL);
    ok(GET(c, "", "/") == NULL);
    ok(GET(c, "api.example.com:443", "/") == NULL); /* callers pass the host without port */
    ficus_config_release(c);
}

FICUS_TEST(host_wildcard)
{
    ficus_config_t *c = load_routes("  - { name: wild, match: { host: \"*.Example.com\" }, to: app }\n");
    if (c == NULL)
        return;
    ok_str(GET(c, "a.example.com", "/"), "wild");
    ok_str(GET(c, "A.EXAMPLE.COM", "/"), "wild");
    ok_str(GET(c, "a.b.example.com", "/"), "wild");
    ok_str(GET(c, "www.api.Example.Com", "/"), "wild");
    ok(GET(c, "example.com", "/") == NULL); /* not the bare domain */
    ok(GET(c, "EXAMPLE.COM", "/") == NULL);
    ok(GET(c, "aexample.com", "/") == NULL);
    ok(GET(c, "a.example.com.evil", "/") == NULL);
    ok(GET(c, "a.example.co", "/") == NULL);
    ok(GET(c, "a.notexample.com", "/") == NULL);
    ok(GET(c, "xample.com", "/") == NULL);
    ok(GET(c, "", "/") == NULL);
    ficus_config_release(c);
}

FICUS_TEST(methods)
{
    ficus_config_t *c = load_routes("  - { name: read, match: { methods: [GET, HEAD] }, to: app }\n"
                                    "  - { name: write, match: { methods: [POST, PUT, PATCH, DELETE] }, to: app }\n"
                                    "  - { name: custom, match: { methods: [PURGE] }, to: app }\n");
    if (c == NULL)
        return;
    ok_str(find(c, "x", "GET", "/", NULL), "read");
    ok_str(find(c, "x", "HEAD", "/", NULL), "read");
    ok_str(find(c, "x", "POST", "/", NULL), "write");
    ok_str(find(c, "x", "DELETE", "/", NULL), "write");
    ok_str(find(c, "x", "PURGE", "/", NULL), "custom");
    ok(find(c, "x", "get", "/", NULL) == NULL); /* methods are case-sensitive (RFC 9110) */
    ok(find(c, "x", "GE", "/", NULL) == NULL);
    ok(find(c, "x", "GETX", "/", NULL) == NULL);
    ok(find(c, "x", "OPTIONS", "/", NULL) == NULL);
    ok(find(c, "x", "", "/", NULL) == NULL);
    ficus_config_release(c);
}

FICUS_TEST(headers)
{
    ficus_config_t *c = load_routes("  - name: canary\n"
                                    "    match: { headers: [{ name: X-Canary, value: \"On\" }] }\n"
                                    "    to: app\n"
                                    "  - name: debug\n"
                                    "    match: { headers: [{ name: X-Debug }] }\n"
                                    "    to: app\n"
                                    "  - name: both\n"
                                    "    match: { headers: [{ name: X-A, value: \"1\" }, { name: x-b }] }\n"
                                    "    to: app\n"
                                    "  - name: token\n"
                                    "    match: { headers: [{ name: Accept-Encoding, value: gzip }] }\n"
                                    "    to: app\n");
    if (c == NULL)
        return;
    /* exact value: name case-insensitive, value case-sensitive */
    ok_str(find(c, "x", "GET", "/", "x-canary", "On", NULL), "canary");
    ok_str(find(c, "x", "GET", "/", "X-CANARY", "On", NULL), "canary");
    ok_str(find(c, "x", "GET", "/", "X-Canary", "On", NULL), "canary");
    ok(find(c, "x", "GET", "/", "x-canary", "on", NULL) == NULL);
    ok(find(c, "x", "GET", "/", "x-canary", "On ", NULL) == NULL);
    ok(find(c, "x", "GET", "/", "x-canary", "O", NULL) == NULL);
    ok(find(c, "x", "GET", "/", "x-canary", "", NULL) == NULL);
    ok(find(c, "x", "GET", "/", "x-canaryx", "On", NULL) == NULL);
    ok(find(c, "x", "GET", "/", "x-canar", "On", NULL) == NULL);
    /* any of several same-name headers may carry the value */
    ok_str(find(c, "x", "GET", "/", "x-canary", "off", "x-canary", "On", NULL), "canary");
    ok_str(find(c, "x", "GET", "/", "x-other", "1", "X-Canary", "On", NULL), "canary");
    /* presence, whatever the value (even empty) */
    ok_str(find(c, "x", "GET", "/", "x-debug", "1", NULL), "debug");
    ok_str(find(c, "x", "GET", "/", "X-Debug", "", NULL), "debug");
    ok(find(c, "x", "GET", "/", "x-debugx", "1", NULL) == NULL);
    ok(find(c, "x", "GET", "/", NULL) == NULL);
    /* every header condition of a route must hold */
    ok_str(find(c, "x", "GET", "/", "x-a", "1", "x-b", "", NULL), "both");
    ok_str(find(c, "x", "GET", "/", "X-B", "z", "X-A", "1", NULL), "both");
    ok(find(c, "x", "GET", "/", "x-a", "1", NULL) == NULL);
    ok(find(c, "x", "GET", "/", "x-b", "1", NULL) == NULL);
    ok(find(c, "x", "GET", "/", "x-a", "2", "x-b", "1", NULL) == NULL);
    /* a header h2o knows as a token (accept-encoding) matches the same way */
    ok_str(find(c, "x", "GET", "/", "accept-encoding", "gzip", NULL), "token");
    ok(find(c, "x", "GET", "/", "accept-encoding", "gzip, br", NULL) == NULL); /* exact value, not a list member */
    /* earlier routes win when several fit */
    ok_str(find(c, "x", "GET", "/", "x-debug", "1", "x-canary", "On", NULL), "canary");
    ficus_config_release(c);
}

FICUS_TEST(all_conditions_together)
{
    ficus_config_t *c = load_routes("  - name: full\n"
                                    "    match:\n"
                                    "      host: \"*.example.com\"\n"
                                    "      path_prefix: /api\n"
                                    "      methods: [POST]\n"
                                    "      headers: [{ name: x-canary, value: \"1\" }]\n"
                                    "    to: app\n"
                                    "  - { name: fallback, respond: { status: 404 } }\n");
    if (c == NULL)
        return;
    ok_str(find(c, "a.example.com", "POST", "/api/x", "x-canary", "1", NULL), "full");
    ok_str(find(c, "example.com", "POST", "/api/x", "x-canary", "1", NULL), "fallback");
    ok_str(find(c, "a.example.com", "POST", "/apix", "x-canary", "1", NULL), "fallback");
    ok_str(find(c, "a.example.com", "GET", "/api/x", "x-canary", "1", NULL), "fallback");
    ok_str(find(c, "a.example.com", "POST", "/api/x", "x-canary", "0", NULL), "fallback");
    ok_str(find(c, "a.example.com", "POST", "/api/x", NULL), "fallback");
    ficus_config_release(c);
}

FICUS_TEST(match_without_conditions)
{
    ficus_config_t *c = load_routes("  - { name: empty-match, match: {}, respond: {} }\n");
    if (c == NULL)
        return;
    req_headers_t h;
    headers_init(&h);
    headers_add(&h, "x-anything", "1");
    const ficus_route_t *r = c->routes[0];
    ok(ficus_route_matches(r, h2o_iovec_init("", 0), h2o_iovec_init("", 0), h2o_iovec_init("", 0), &h.headers));
    ok(ficus_route_matches(r, h2o_iovec_init(H2O_STRLIT("a.b")), h2o_iovec_init(H2O_STRLIT("DELETE")),
                           h2o_iovec_init(H2O_STRLIT("/x/y?z")), &h.headers));
    headers_clear(&h);
    ficus_config_release(c);
}
