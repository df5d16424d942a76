/* libFuzzer target: route matching, request bytes -> ficus_route_find / ficus_route_matches over a fixed config.
 *
 * ATTACK SURFACE: the part of every request that a remote client fully controls before any plugin runs: the Host
 * (authority without port), the method, the normalized path and the request headers, matched against exact and
 * wildcard hosts, exact paths and path prefixes (segment boundaries), method lists and header presence/value
 * conditions (gateway/route.c). A wrong answer here routes a request past the route meant to guard it, so besides
 * the sanitizers each input is checked against an independent reference matcher written from the contract
 * (.work/CONTRACT.md, routes: first match wins; hosts case-insensitive, "*.example.com" never the bare domain;
 * "/api" matches "/api" and "/api/..." but not "/apix"; methods exact; header names case-insensitive, values exact).
 *
 * Input layout: lines separated by '\n': host, method, path, then headers as "name:value" (at most 64; a line
 * without ':' is a name with an empty value). Bytes may be anything, including NUL. Build and run:
 * tests/fuzz/README.md. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ficus/config.h"
#include "ficus/route.h"

static const char config_text[] =
    "server:\n"
    "  listen: [{ address: \"127.0.0.1:8080\" }]\n"
    "upstreams:\n"
    "  app: { endpoints: [\"http://127.0.0.1:9000\"] }\n"
    "routes:\n"
    "  - name: canary\n"
    "    match: { host: \"*.example.com\", path_prefix: /api/, headers: [{ name: X-Canary, value: \"1\" }] }\n"
    "    to: app\n"
    "  - name: api-write\n"
    "    match: { host: api.example.com, path_prefix: /api, methods: [POST, PUT, DELETE] }\n"
    "    to: app\n"
    "  - name: api\n"
    "    match: { host: api.example.com, path_prefix: /api }\n"
    "    to: app\n"
    "  - name: debug\n"
    "    match: { headers: [{ name: x-debug }, { name: Accept, value: text/html }] }\n"
    "    to: app\n"
    "  - name: ping\n"
    "    match: { path: /ping, methods: [GET, HEAD] }\n"
    "    respond: { body: pong }\n"
    "  - name: wild\n"
    "    match: { host: \"*.a.b\", path: / }\n"
    "    redirect: { to: \"https://{host}{path}{query}\" }\n"
    "  - name: static\n"
    "    match: { path_prefix: /static/ }\n"
    "    to: app\n"
    "  - name: root\n"
    "    match: { path_prefix: /, methods: [GET] }\n"
    "    to: app\n";

static ficus_config_t *config;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[1024];
    if ((config = ficus_config_load_string("fuzz_route.yaml", config_text, sizeof(config_text) - 1, 1, err, sizeof(err))) == NULL) {
        fprintf(stderr, "fuzz_route: %s\n", err);
        abort();
    }
    return 0;
}

/* ---- the reference matcher: written from the contract, shares no code with gateway/route.c ---- */

static int lower_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i != alen; ++i)
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
            return 0;
    return 1;
}

static int bytes_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static int ref_matches(const ficus_route_t *route, h2o_iovec_t host, h2o_iovec_t method, h2o_iovec_t path,
                       const h2o_headers_t *headers)
{
    const ficus_route_match_t *m = &route->match;
    if (m->host.base != NULL) {
        if (m->host_is_suffix) {
            /* stored as ".example.com": at least one more label before it */
            if (!(host.len > m->host.len &&
                  lower_equal(host.base + host.len - m->host.len, m->host.len, m->host.base, m->host.len)))
                return 0;
        } else if (!lower_equal(host.base, host.len, m->host.base, m->host.len)) {
            return 0;
        }
    }
    if (m->path.base != NULL) {
        if (!m->path_is_prefix) {
            if (!bytes_equal(path.base, path.len, m->path.base, m->path.len))
                return 0;
        } else {
            if (path.len < m->path.len || !bytes_equal(path.base, m->path.len, m->path.base, m->path.len))
                return 0;
            int at_boundary = path.len == m->path.len || m->path.base[m->path.len - 1] == '/' || path.base[m->path.len] == '/';
            if (!at_boundary)
                return 0;
        }
    }
    if (m->methods != NULL) {
        int found = 0;
        for (size_t i = 0; i != m->num_methods; ++i)
            found |= bytes_equal(method.base, method.len, m->methods[i], strlen(m->methods[i]));
        if (!found)
            return 0;
    }
    for (size_t i = 0; i != m->num_headers; ++i) {
        int found = 0;
        for (size_t j = 0; j != headers->size; ++j) {
            const h2o_header_t *h = headers->entries + j;
            if (lower_equal(h->name->base, h->name->len, m->headers[i].name.base, m->headers[i].name.len) &&
                (m->headers[i].value.base == NULL ||
                 bytes_equal(h->value.base, h->value.len, m->headers[i].value.base, m->headers[i].value.len)))
                found = 1;
        }
        if (!found)
            return 0;
    }
    return 1;
}

/* ---- input → request ---- */

static h2o_iovec_t next_line(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl = memchr(*p, '\n', end - *p);
    const uint8_t *stop = nl != NULL ? nl : end;
    h2o_iovec_t line = h2o_iovec_init((const char *)*p, stop - *p);
    *p = nl != NULL ? nl + 1 : end;
    return line;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return -1;
    /* a private copy: libFuzzer's buffer is exactly `size` bytes, so any read past a line is caught by ASan */
    uint8_t *copy = malloc(size + 1);
    if (copy == NULL)
        abort();
    memcpy(copy, data, size);
    const uint8_t *p = copy, *end = copy + size;
    h2o_iovec_t host = next_line(&p, end), method = next_line(&p, end), path = next_line(&p, end);

    h2o_mem_pool_t pool;
    h2o_headers_t headers = {NULL, 0, 0};
    h2o_mem_init_pool(&pool);
    for (size_t n = 0; p < end && n != 64; ++n) {
        h2o_iovec_t line = next_line(&p, end);
        const char *colon = memchr(line.base, ':', line.len);
        size_t nlen = colon != NULL ? (size_t)(colon - line.base) : line.len;
        h2o_iovec_t value = colon != NULL ? h2o_iovec_init(colon + 1, line.len - nlen - 1) : h2o_iovec_init("", 0);
        /* names as h2o hands them over: lowercase tokens interned, others as received */
        h2o_add_header_by_str(&pool, &headers, line.base, nlen, 1, NULL, value.base, value.len);
    }

    const ficus_route_t *found = ficus_route_find(config, host, method, path, &headers), *expected = NULL;
    for (size_t i = 0; i != config->num_routes; ++i) {
        const ficus_route_t *r = config->routes[i];
        int got = ficus_route_matches(r, host, method, path, &headers), want = ref_matches(r, host, method, path, &headers);
        if (got != want) {
            fprintf(stderr,
                    "route '%s': ficus_route_matches says %d, the reference says %d (host '%.*s' method '%.*s' path '%.*s')\n",
                    r->name, got, want, (int)host.len, host.base, (int)method.len, method.base, (int)path.len, path.base);
            abort();
        }
        if (want && expected == NULL)
            expected = r;
    }
    if (found != expected) {
        fprintf(stderr, "ficus_route_find chose '%s', the first matching route is '%s'\n", found ? found->name : "(none)",
                expected ? expected->name : "(none)");
        abort();
    }
    h2o_mem_clear_pool(&pool);
    free(copy);
    return 0;
}
