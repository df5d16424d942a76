/* Unit tests of gateway/config.c: a full configuration loads into the right ficus_config_t fields (and defaults),
 * every validation error names the right "file:line:" and says what is wrong, the reload rules
 * (ficus_config_check_reloadable), CIDR matching (ficus_cidr_contains) and listen address parsing.
 * All loads are dry runs (ficus -t): nothing is opened or started; TLS certificates are still loaded, so the
 * positive TLS case is left to the integration suite and only the missing-file error is tested here. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ficus/config.h"
#include "ficus/log.h"
#include "ficus/plugin.h"
#include "conf_helpers.h"
#include "runner.h"

/* Lines 1-7; the routes of error tests start on line 8. */
#define BASE                                                                                                                       \
    "server:\n"                                                                                                                    \
    "  listen:\n"                                                                                                                  \
    "    - address: \"127.0.0.1:8080\"\n"                                                                                          \
    "upstreams:\n"                                                                                                                 \
    "  app:\n"                                                                                                                     \
    "    endpoints: [\"http://127.0.0.1:9000\"]\n"                                                                                 \
    "routes:\n"

/* server: + listen on lines 1-3, then whatever the test adds from line 4 on. */
#define SERVER                                                                                                                     \
    "server:\n"                                                                                                                    \
    "  listen:\n"                                                                                                                  \
    "    - address: \"127.0.0.1:8080\"\n"

static int iov_is(h2o_iovec_t v, const char *s)
{
    return v.base != NULL && v.len == strlen(s) && memcmp(v.base, s, v.len) == 0;
}

static const char good_config[] = "server:\n"
                                  "  workers: 3\n"
                                  "  listen:\n"
                                  "    - address: \"127.0.0.1:8080\"\n"
                                  "    - address: \"[::1]:8081\"\n"
                                  "    - address: \":8082\"\n"
                                  "      redirect_https: 8443\n"
                                  "  admin: { address: \"127.0.0.1:9901\" }\n"
                                  "  access_log: off\n"
                                  "  log_level: debug\n"
                                  "  limits: { max_header_bytes: 32KiB, max_body_bytes: 1MiB }\n"
                                  "  timeouts: { handshake: 5s, idle: 2m }\n"
                                  "  drain_timeout: 250ms\n"
                                  "  trusted_proxies: [\"10.0.0.0/8\", \"::1/128\", \"192.168.1.7\"]\n"
                                  "  http2: { max_resets: 50, reset_window: 30s }\n"
                                  "upstreams:\n"
                                  "  app:\n"
                                  "    endpoints: [\"http://127.0.0.1:9000\", \"http://[::1]:9001/\", \"http://backend.local\"]\n"
                                  "  slow:\n"
                                  "    endpoints: [\"http://10.0.0.1:8000\"]\n"
                                  "    connect_timeout: 250ms\n"
                                  "    timeout: 2m\n"
                                  "    keepalive_timeout: 0\n"
                                  "    max_connections: 100\n"
                                  "routes:\n"
                                  "  - name: api\n" /* line 26 */
                                  "    match:\n"
                                  "      host: \"*.Example.COM\"\n"
                                  "      path_prefix: /api\n"
                                  "      methods: [GET, POST]\n"
                                  "      headers: [{ name: X-Canary, value: \"1\" }, { name: X-Debug }]\n"
                                  "    to: app\n"
                                  "    strip_prefix: /api\n"
                                  "    add_prefix: /v2\n"
                                  "    preserve_host: true\n"
                                  "  - name: exact\n" /* line 36 */
                                  "    match: { host: API.example.com, path: /exact }\n"
                                  "    to: slow\n"
                                  "  - name: moved\n"
                                  "    match: { path_prefix: /old }\n"
                                  "    redirect: { to: \"https://new.example.com{path}{query}\", status: 308 }\n"
                                  "  - name: default-redirect\n"
                                  "    redirect: { to: \"https://{host}/\" }\n"
                                  "  - name: ping\n"
                                  "    match: { path: /ping }\n"
                                  "    respond: { status: 204, body: \"pong\\n\", content_type: text/plain }\n"
                                  "  - name: default-respond\n"
                                  "    respond: {}\n"
                                  "    headers:\n"
                                  "      request: { set: { X-Served-By: ficus }, add: { x-tag: a }, remove: [x-debug] }\n"
                                  "      response: { set: { x-route: r } }\n";

FICUS_TEST(good_config_server)
{
    char err[ERRLEN];
    ficus_config_t *c = load(good_config, err);
    if (!ok(c != NULL)) {
        printf("#     error: %s\n", err);
        return;
    }
    ok_str(c->filename, "t.yaml");
    ok_int(c->refcnt, 1);
    ok_int(c->server.workers, 3);
    if (ok_int(c->server.num_listeners, 3)) {
        const ficus_listener_conf_t *l = c->server.listeners;
        ok_str(l[0].address, "127.0.0.1:8080");
        ok_int(l[0].addr.ss_family, AF_INET);
        ok_int(l[0].addrlen, sizeof(struct sockaddr_in));
        ok_int(ntohs(((struct sockaddr_in *)&l[0].addr)->sin_port), 8080);
        ok_int(ntohl(((struct sockaddr_in *)&l[0].addr)->sin_addr.s_addr), INADDR_LOOPBACK);
        ok(l[0].tls == NULL);
        ok_int(l[0].redirect_https_port, 0);
        ok_str(l[1].address, "[::1]:8081");
        ok_int(l[1].addr.ss_family, AF_INET6);
        ok_int(l[1].addrlen, sizeof(struct sockaddr_in6));
        ok_int(ntohs(((struct sockaddr_in6 *)&l[1].addr)->sin6_port), 8081);
        ok(IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&l[1].addr)->sin6_addr));
        ok_str(l[2].address, ":8082");
        ok_int(l[2].addr.ss_family, AF_INET);
        ok_int(ntohl(((struct sockaddr_in *)&l[2].addr)->sin_addr.s_addr), INADDR_ANY);
        ok_int(ntohs(((struct sockaddr_in *)&l[2].addr)->sin_port), 8082);
        ok_int(l[2].redirect_https_port, 8443);
        ok(l[2].tls == NULL);
    }
    ok_str(c->server.admin_address, "127.0.0.1:9901");
    ok_int(c->server.admin_addr.ss_family, AF_INET);
    ok_int(ntohs(((struct sockaddr_in *)&c->server.admin_addr)->sin_port), 9901);
    ok_int(c->server.access_log, FICUS_ACCESS_LOG_OFF);
    ok_int(c->server.access_log_fd, -1);
    ok(c->server.access_log_path == NULL);
    ok_int(c->server.log_level, FICUS_LOG_DEBUG);
    ok_int(c->server.max_header_bytes, 32 * 1024);
    ok_int(c->server.max_body_bytes, 1024 * 1024);
    ok_int(c->server.handshake_timeout_ms, 5000);
    ok_int(c->server.idle_timeout_ms, 120000);
    ok_int(c->server.drain_timeout_ms, 250);
    if (ok_int(c->server.num_trusted_proxies, 3)) {
        const ficus_cidr_t *t = c->server.trusted_proxies;
        static const uint8_t ten[4] = {10, 0, 0, 0}, host[4] = {192, 168, 1, 7};
        ok_int(t[0].family, AF_INET);
        ok_int(t[0].prefix, 8);
        ok(memcmp(t[0].addr, ten, 4) == 0);
        ok_int(t[1].family, AF_INET6);
        ok_int(t[1].prefix, 128);
        ok(memcmp(t[1].addr, &in6addr_loopback, 16) == 0);
        ok_int(t[2].family, AF_INET);
        ok_int(t[2].prefix, 32); /* a bare address is a /32 */
        ok(memcmp(t[2].addr, host, 4) == 0);
    }
    ok_int(c->server.h2_max_resets, 50);
    ok_int(c->server.h2_reset_window_ms, 30000);
    ficus_config_release(c);
}

FICUS_TEST(good_config_upstreams)
{
    char err[ERRLEN];
    ficus_config_t *c = load(good_config, err);
    if (!ok(c != NULL)) {
        printf("#     error: %s\n", err);
        return;
    }
    if (!ok_int(c->num_upstreams, 2)) {
        ficus_config_release(c);
        return;
    }
    ficus_upstream_conf_t *app = ficus_config_upstream(c, "app"), *slow = ficus_config_upstream(c, "slow");
    ok(ficus_config_upstream(c, "nope") == NULL);
    /* three sources; the host name has no address here (nothing resolved it), so two endpoints */
    if (ok(app != NULL) && ok_int(app->num_sources, 3) && ok_int(app->num_endpoints, 2)) {
        ok_str(app->name, "app");
        ok_int(app->index, 0);
        ok_str(app->endpoints[0].url, "http://127.0.0.1:9000");
        ok_str(app->endpoints[0].host, "127.0.0.1");
        ok_int(app->endpoints[0].port, 9000);
        ok(iov_is(app->endpoints[0].authority, "127.0.0.1:9000"));
        ok_str(app->endpoints[1].url, "http://[::1]:9001/");
        ok_str(app->endpoints[1].host, "::1");
        ok_int(app->endpoints[1].port, 9001);
        ok(iov_is(app->endpoints[1].authority, "[::1]:9001"));
        ok_str(app->endpoints[0].address, "127.0.0.1:9000");
        ok(app->endpoints[0].name == NULL);
        ok_str(app->endpoints[1].address, "[::1]:9001");
        ok(!app->sources[0].is_name && !app->sources[1].is_name && app->sources[2].is_name);
        ok_str(app->sources[2].host, "backend.local");
        ok_int(app->sources[2].port, 80);
        ok(iov_is(app->sources[2].authority, "backend.local:80"));
        /* defaults */
        ok_int(app->connect_timeout_ms, 1000);
        ok_int(app->timeout_ms, 30000);
        ok_int(app->keepalive_timeout_ms, 2000);
        ok_int(app->max_connections, 1024); /* bounded by default */
        ok(app->stats != NULL);
    }
    if (ok(slow != NULL) && ok_int(slow->num_endpoints, 1)) {
        ok_int(slow->index, 1);
        ok_str(slow->endpoints[0].host, "10.0.0.1");
        ok_int(slow->endpoints[0].port, 8000);
        ok_int(slow->connect_timeout_ms, 250);
        ok_int(slow->timeout_ms, 120000);
        ok_int(slow->keepalive_timeout_ms, 0);
        ok_int(slow->max_connections, 100);
    }
    ficus_config_release(c);
}

FICUS_TEST(good_config_routes)
{
    char err[ERRLEN];
    ficus_config_t *c = load(good_config, err);
    if (!ok(c != NULL)) {
        printf("#     error: %s\n", err);
        return;
    }
    if (!ok_int(c->num_routes, 6)) {
        ficus_config_release(c);
        return;
    }
    ficus_route_t *const *r = c->routes;
    for (size_t i = 0; i != c->num_routes; ++i) {
        ok_int(r[i]->index, i);
        ok(r[i]->stats != NULL);
    }

    /* api: proxy with every match kind */
    ok_str(r[0]->name, "api");
    ok_int(r[0]->line, 26);
    ok(iov_is(r[0]->match.host, ".example.com")); /* "*.Example.COM": lowercased, stored as a suffix */
    ok_int(r[0]->match.host_is_suffix, 1);
    ok(iov_is(r[0]->match.path, "/api"));
    ok_int(r[0]->match.path_is_prefix, 1);
    if (ok_int(r[0]->match.num_methods, 2)) {
        ok_str(r[0]->match.methods[0], "GET");
        ok_str(r[0]->match.methods[1], "POST");
    }
    if (ok_int(r[0]->match.num_headers, 2)) {
        ok(iov_is(r[0]->match.headers[0].name, "x-canary")); /* lowercased */
        ok(iov_is(r[0]->match.headers[0].value, "1"));
        ok(iov_is(r[0]->match.headers[1].name, "x-debug"));
        ok(r[0]->match.headers[1].value.base == NULL); /* presence only */
    }
    ok_int(r[0]->action, FICUS_ACTION_PROXY);
    ok(r[0]->data.proxy.upstream == ficus_config_upstream(c, "app"));
    ok(iov_is(r[0]->data.proxy.strip_prefix, "/api"));
    ok(iov_is(r[0]->data.proxy.add_prefix, "/v2"));
    ok_int(r[0]->data.proxy.preserve_host, 1);
    ok_int(r[0]->num_plugins, 0);

    /* exact: exact host (lowercased) and exact path, no prefixes, preserve_host off by default */
    ok_str(r[1]->name, "exact");
    ok_int(r[1]->line, 36);
    ok(iov_is(r[1]->match.host, "api.example.com"));
    ok_int(r[1]->match.host_is_suffix, 0);
    ok(iov_is(r[1]->match.path, "/exact"));
    ok_int(r[1]->match.path_is_prefix, 0);
    ok(r[1]->match.methods == NULL);
    ok_int(r[1]->match.num_headers, 0);
    ok_int(r[1]->action, FICUS_ACTION_PROXY);
    ok(r[1]->data.proxy.upstream == ficus_config_upstream(c, "slow"));
    ok(r[1]->data.proxy.strip_prefix.base == NULL);
    ok(r[1]->data.proxy.add_prefix.base == NULL);
    ok_int(r[1]->data.proxy.preserve_host, 0);

    /* redirects */
    ok_str(r[2]->name, "moved");
    ok_int(r[2]->action, FICUS_ACTION_REDIRECT);
    ok_str(r[2]->data.redirect.location_template, "https://new.example.com{path}{query}");
    ok_int(r[2]->data.redirect.status, 308);
    ok_str(r[3]->name, "default-redirect");
    ok(r[3]->match.host.base == NULL); /* no match block: everything */
    ok(r[3]->match.path.base == NULL);
    ok_int(r[3]->action, FICUS_ACTION_REDIRECT);
    ok_str(r[3]->data.redirect.location_template, "https://{host}/");
    ok_int(r[3]->data.redirect.status, 302);

    /* responds */
    ok_str(r[4]->name, "ping");
    ok_int(r[4]->action, FICUS_ACTION_RESPOND);
    ok_int(r[4]->data.respond.status, 204);
    ok(iov_is(r[4]->data.respond.body, "pong\n"));
    ok_str(r[4]->data.respond.content_type, "text/plain");
    ok_str(r[5]->name, "default-respond");
    ok_int(r[5]->action, FICUS_ACTION_RESPOND);
    ok_int(r[5]->data.respond.status, 200);
    ok(r[5]->data.respond.body.base != NULL && r[5]->data.respond.body.len == 0);
    ok_str(r[5]->data.respond.content_type, "text/plain; charset=utf-8");
    if (ok_int(r[5]->num_plugins, 1)) {
        ok_str(r[5]->plugins[0].plugin->name, "headers");
        ok(r[5]->plugins[0].conf != NULL);
    }
    ficus_config_release(c);
}

FICUS_TEST(request_id_in_response)
{
    char err[ERRLEN];
    ficus_config_t *c = load(SERVER "  request_id_in_response: yes\nroutes:\n  - name: r\n    respond: {}\n", err);
    if (!ok(c != NULL)) {
        printf("#     error: %s\n", err);
        return;
    }
    ok_int(c->server.request_id_in_response, 1);
    ficus_config_release(c);
}

FICUS_TEST(defaults)
{
    char err[ERRLEN];
    ficus_config_t *c = load(SERVER "routes:\n  - name: r\n    respond: {}\n", err);
    if (!ok(c != NULL)) {
        printf("#     error: %s\n", err);
        return;
    }
    ok_int(c->server.workers, 0); /* auto */
    ok(c->server.admin_address == NULL);
    ok_int(c->server.access_log, FICUS_ACCESS_LOG_STDOUT);
    ok_int(c->server.access_log_fd, 1);
    ok_int(c->server.log_level, FICUS_LOG_INFO);
    ok_int(c->server.max_header_bytes, 16 * 1024);
    ok_int(c->server.max_body_bytes, 10 * 1024 * 1024);
    ok_int(c->server.handshake_timeout_ms, 10000);
    ok_int(c->server.idle_timeout_ms, 60000);
    ok_int(c->server.drain_timeout_ms, 30000);
    ok_int(c->server.num_trusted_proxies, 0);
    ok_int(c->server.request_id_in_response, 0);
    ok_int(c->server.h2_max_resets, 200);
    ok_int(c->server.h2_reset_window_ms, 10000);
    ok_int(c->num_upstreams, 0);
    ok_int(c->num_routes, 1);
    ficus_config_release(c);
}

FICUS_TEST(access_log_kinds)
{
    static const struct {
        const char *value;
        int kind, fd;
        const char *path;
    } cases[] = {
        {"off", FICUS_ACCESS_LOG_OFF, -1, NULL},
        {"false", FICUS_ACCESS_LOG_OFF, -1, NULL},
        {"stdout", FICUS_ACCESS_LOG_STDOUT, 1, NULL},
        {"stderr", FICUS_ACCESS_LOG_STDERR, 2, NULL},
        /* a file is not opened (nor created) by a dry run */
        {"/nonexistent-dir/ficus-access.log", FICUS_ACCESS_LOG_FILE, -1, "/nonexistent-dir/ficus-access.log"},
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        char text[512], err[ERRLEN];
        snprintf(text, sizeof(text), SERVER "  access_log: %s\nroutes: []\n", cases[i].value);
        ficus_config_t *c = load(text, err);
        if (!ok(c != NULL)) {
            printf("#     %s: %s\n", cases[i].value, err);
            continue;
        }
        ok_int(c->server.access_log, cases[i].kind);
        ok_int(c->server.access_log_fd, cases[i].fd);
        ok_str(c->server.access_log_path, cases[i].path);
        ficus_config_release(c);
    }
    fails_at(SERVER "  access_log: ''\nroutes: []\n", 4, "`access_log` must be stdout, stderr, off or a file path");
}

FICUS_TEST(demo_config)
{
    /* conf/ficus.yaml minus its TLS listener (certificates are loaded even by a dry run) */
    char err[ERRLEN];
    ficus_config_t *c = load("server:\n"
                             "  workers: auto\n"
                             "  listen:\n"
                             "    - address: \"127.0.0.1:8080\"\n"
                             "      redirect_https: 8443\n"
                             "  trusted_proxies: []\n"
                             "upstreams:\n"
                             "  orders: { endpoints: [\"http://127.0.0.1:9100\"], max_connections: 512 }\n"
                             "routes:\n"
                             "  - name: orders\n"
                             "    match: { path_prefix: /api/orders, methods: [GET, POST] }\n"
                             "    headers:\n"
                             "      request: { set: { x-served-by: ficus }, remove: [x-debug] }\n"
                             "      response: { set: { x-route: orders } }\n"
                             "    to: orders\n",
                             err);
    if (!ok(c != NULL)) {
        printf("#     error: %s\n", err);
        return;
    }
    ok_int(c->server.workers, 0);
    ok_int(c->server.num_trusted_proxies, 0);
    ok_int(c->num_routes, 1);
    ok_int(c->routes[0]->num_plugins, 1);
    ficus_config_release(c);
}

FICUS_TEST(retain_release)
{
    char err[ERRLEN];
    ficus_config_t *c = load(SERVER "routes: []\n", err);
    if (!ok(c != NULL))
        return;
    ficus_config_retain(c);
    ok_int(c->refcnt, 2);
    ficus_config_release(c);
    ok_int(c->refcnt, 1);
    ficus_config_release(c); /* freed: ASan/LSan would report a double free or leak */
}

/* ---- errors: top level and server ---- */

FICUS_TEST(error_unknown_top_level_key)
{
    /* the list names every top-level section (more may be added: only the ones every config knows are checked) */
    fails_at(SERVER "routes: []\nroutez: []\n", 5, "unknown key 'routez'; expected one of: server, ");
    fails_at(SERVER "routes: []\nroutez: []\n", 5, "upstreams");
}

FICUS_TEST(error_unknown_server_key)
{
    fails_at(SERVER "  tmeout: 5s\nroutes: []\n", 4, "unknown key 'tmeout'; expected one of: listen, workers, admin");
}

FICUS_TEST(error_missing_routes)
{
    fails_at(SERVER, 1, "missing required key 'routes'");
}

FICUS_TEST(error_bad_listen_address)
{
    fails_at("server:\n  listen:\n    - address: \"localhost:80\"\nroutes: []\n", 3, "invalid listen address 'localhost:80'");
    fails_at("server:\n  listen:\n    - address: \"127.0.0.1\"\nroutes: []\n", 3, "invalid listen address '127.0.0.1'");
    fails_at("server:\n  listen:\n    - address: \"127.0.0.1:0\"\nroutes: []\n", 3, "invalid listen address");
    fails_at("server:\n  listen: []\nroutes: []\n", 2, "`listen` needs at least one listener");
}

FICUS_TEST(error_duplicate_listen_address)
{
    fails_at(SERVER "    - address: \"127.0.0.1:8080\"\nroutes: []\n", 4, "duplicate listen address '127.0.0.1:8080'");
    /* the same socket address written differently */
    fails_at("server:\n  listen:\n    - address: \"0.0.0.0:80\"\n    - address: \":80\"\nroutes: []\n", 4,
             "duplicate listen address ':80'");
}

FICUS_TEST(error_tls_missing_certificate)
{
    fails_at("server:\n"
             "  listen:\n"
             "    - address: \"127.0.0.1:8443\"\n"
             "      tls:\n"
             "        certificates:\n"
             "          - { cert: /nonexistent/ficus-test.crt, key: /nonexistent/ficus-test.key }\n"
             "routes: []\n",
             6, "cannot load certificate '/nonexistent/ficus-test.crt'");
    fails_at("server:\n"
             "  listen:\n"
             "    - address: \"127.0.0.1:8443\"\n"
             "      tls: { certificates: [] }\n"
             "routes: []\n",
             4, "`certificates` needs at least one {cert, key}");
}

FICUS_TEST(error_tls_and_redirect_https)
{
    fails_at("server:\n"
             "  listen:\n"
             "    - address: \"127.0.0.1:8443\"\n"
             "      tls:\n"
             "        certificates: [{ cert: /nonexistent/a.crt, key: /nonexistent/a.key }]\n"
             "      redirect_https: 8443\n"
             "routes: []\n",
             6, "a listener has either `tls` or `redirect_https`, not both");
    fails_at(SERVER "      redirect_https: 0\nroutes: []\n", 4, "must be between 1 and 65535");
}

FICUS_TEST(error_bad_workers)
{
    fails_at("server:\n  workers: lots\n  listen: [{ address: \":80\" }]\nroutes: []\n", 2, "expected a decimal integer");
    fails_at("server:\n  workers: 0\n  listen: [{ address: \":80\" }]\nroutes: []\n", 2, "must be between 1 and 64 (got 0)");
    fails_at("server:\n  workers: 65\n  listen: [{ address: \":80\" }]\nroutes: []\n", 2, "must be between 1 and 64 (got 65)");
}

FICUS_TEST(error_bad_duration)
{
    fails_at(SERVER "  drain_timeout: 5 sec\nroutes: []\n", 4, "invalid duration '5 sec'");
    fails_at(SERVER "  request_id_in_response: maybe\nroutes: []\n", 4,
             "expected a boolean (true/false, yes/no, on/off), got 'maybe'");
    fails_at(SERVER "  timeouts:\n    idle: 10\nroutes: []\n", 5, "invalid duration '10'");
    fails_at(SERVER "  timeouts: { handshake: 2h }\nroutes: []\n", 4, "duration must be between 100ms and 1h (got 2h)");
    fails_at(SERVER "  http2: { reset_window: 1.5s }\nroutes: []\n", 4, "invalid duration '1.5s'");
}

FICUS_TEST(error_bad_size)
{
    fails_at(SERVER "  limits:\n    max_body_bytes: 10mb\nroutes: []\n", 5, "invalid size '10mb'");
    fails_at(SERVER "  limits: { max_header_bytes: 100 }\nroutes: []\n", 4, "size must be between 1KiB and 1MiB (got 100)");
}

FICUS_TEST(error_bad_cidr)
{
    fails_at(SERVER "  trusted_proxies:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\nroutes: []\n", 6,
             "invalid CIDR '10.0.0.0/33' (use e.g. 10.0.0.0/8 or ::1/128)");
    fails_at(SERVER "  trusted_proxies: [\"::1/129\"]\nroutes: []\n", 4, "invalid CIDR '::1/129'");
    fails_at(SERVER "  trusted_proxies: [\"10.0.0.0/\"]\nroutes: []\n", 4, "invalid CIDR '10.0.0.0/'");
    fails_at(SERVER "  trusted_proxies: [\"10.0.0.0/8x\"]\nroutes: []\n", 4, "invalid CIDR '10.0.0.0/8x'");
    fails_at(SERVER "  trusted_proxies: [\"localhost\"]\nroutes: []\n", 4, "invalid CIDR 'localhost'");
    fails_at(SERVER "  trusted_proxies: [[\"10.0.0.0/8\"]]\nroutes: []\n", 4, "expected a scalar, got a sequence");
}

FICUS_TEST(error_bad_http2_and_log_level)
{
    fails_at(SERVER "  http2: { max_resets: 0 }\nroutes: []\n", 4, "must be between 1 and 1000000 (got 0)");
    fails_at(SERVER "  log_level: verbose\nroutes: []\n", 4, "must be one of: error, warn, info, debug (got 'verbose')");
    fails_at(SERVER "  admin: { address: \"nowhere\" }\nroutes: []\n", 4, "invalid admin address 'nowhere'");
}

/* ---- errors: upstreams ---- */

FICUS_TEST(error_upstream_without_endpoints)
{
    fails_at(SERVER "upstreams:\n  app:\n    endpoints: []\nroutes: []\n", 6, "upstream 'app' needs at least one endpoint");
    fails_at(SERVER "upstreams:\n  app:\n    timeout: 5s\nroutes: []\n", 6, "missing required key 'endpoints'");
}

FICUS_TEST(error_endpoint_https)
{
    fails_at(SERVER "upstreams:\n  app:\n    endpoints:\n      - \"https://127.0.0.1:9443\"\nroutes: []\n", 7,
             "invalid endpoint 'https://127.0.0.1:9443': only http://HOST:PORT upstreams are supported");
}

FICUS_TEST(error_endpoint_with_path)
{
    fails_at(SERVER "upstreams:\n  app:\n    endpoints:\n      - \"http://127.0.0.1:9000/api\"\nroutes: []\n", 7,
             "invalid endpoint 'http://127.0.0.1:9000/api': give scheme, host and port only (no path)");
    fails_at(SERVER "upstreams:\n  app:\n    endpoints:\n      - \"http://127.0.0.1:9000?x=1\"\nroutes: []\n", 7, "(no path)");
    fails_at(SERVER "upstreams:\n  app:\n    endpoints:\n      - \"http://user@127.0.0.1:9000\"\nroutes: []\n", 7, "(no path)");
}

FICUS_TEST(error_endpoint_bad_port)
{
    static const char *const bad[] = {"http://127.0.0.1:99999", "http://127.0.0.1:0", "http://127.0.0.1:",
                                      "http://127.0.0.1:9x",    "http://[::1]9000",   "http://127.0.0.1:-1"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        char text[512], phrase[128];
        snprintf(text, sizeof(text), SERVER "upstreams:\n  app:\n    endpoints:\n      - \"%s\"\nroutes: []\n", bad[i]);
        snprintf(phrase, sizeof(phrase), "invalid endpoint '%s': bad port", bad[i]);
        fails_at(text, 7, phrase);
    }
    fails_at(SERVER "upstreams:\n  app:\n    endpoints: [\"http://:9000\"]\nroutes: []\n", 6, "missing host");
    fails_at(SERVER "upstreams:\n  app:\n    endpoints: [\"http://[::1:9000\"]\nroutes: []\n", 6, "unterminated IPv6 address");
}

FICUS_TEST(error_upstream_misc)
{
    fails_at(SERVER "upstreams:\n  app:\n    endpoints: [\"http://a:1\"]\n    tmeout: 1s\nroutes: []\n", 7,
             "unknown key 'tmeout'; expected one of: endpoints, connect_timeout, timeout, max_connections, keepalive_timeout");
    fails_at(SERVER "upstreams:\n  app:\n    endpoints: [\"http://a:1\"]\n    max_connections: 0\nroutes: []\n", 7,
             "must be between 1 and 10000000 (got 0)");
    fails_at(SERVER "upstreams:\n  app:\n    endpoints: [\"http://a:1\"]\n    connect_timeout: 0\nroutes: []\n", 7,
             "duration must be between 1ms and 10m (got 0)");
    fails_at(SERVER "upstreams: []\nroutes: []\n", 4, "'upstreams' must be a mapping, got a sequence");
}

/* ---- errors: routes ---- */

FICUS_TEST(error_unknown_route_key)
{
    unsetenv("FICUS_TEST_PLUGINS"); /* test-only plugins are not listed */
    /* core keys first, then every enabled plugin's key (the plugin table grows: check the ones named in the contract) */
    fails_at(BASE "  - name: r\n    respond: {}\n    tmeout: 1\n", 10,
             "unknown key 'tmeout' in route; expected one of: name, match, to, redirect, respond, strip_prefix, add_prefix, "
             "preserve_host, ");
    fails_at(BASE "  - name: r\n    respond: {}\n    tmeout: 1\n", 10, ", headers");
    char err[ERRLEN];
    ficus_config_t *c = load(BASE "  - name: r\n    respond: {}\n    test_delay: {}\n", err);
    ok(c == NULL);
    ok(strstr(err, "unknown key 'test_delay' in route") != NULL);
    if (c != NULL)
        ficus_config_release(c);
    fails_at(BASE "  - name: r\n    respond: {}\n    name: s\n", 10, "duplicate key 'name' (first at line 8)");
}

FICUS_TEST(error_route_without_name)
{
    fails_at(BASE "  - match: { path: /x }\n    respond: {}\n", 8, "route needs a `name`");
    fails_at(BASE "  - name: ''\n    respond: {}\n", 8, "route name must be 1 to 128 characters");
    fails_at(BASE "  - name: \"a b\"\n    respond: {}\n", 8, "route name 'a b' may contain only letters, digits and -_./");
    fails_at(BASE "  - name: [r]\n    respond: {}\n", 8, "expected a scalar, got a sequence");
    fails_at(BASE "  - just a string\n", 8, "expected a mapping, got a scalar");
}

FICUS_TEST(error_duplicate_route_name)
{
    fails_at(BASE "  - name: r\n    respond: {}\n  - name: r\n    respond: {}\n", 10, "duplicate route name 'r' (first at line 8)");
}

FICUS_TEST(error_route_actions)
{
    fails_at(BASE "  - name: r\n    to: app\n    respond: {}\n", 8,
             "route 'r' needs exactly one action: `to`, `redirect`, `respond` or `split` (found 2)");
    fails_at(BASE "  - name: r\n    match: { path: /x }\n", 8,
             "route 'r' needs exactly one action: `to`, `redirect`, `respond` or `split` (found 0)");
}

FICUS_TEST(error_route_unknown_upstream)
{
    fails_at(BASE "  - name: r\n    to: nope\n", 9, "route 'r' refers to unknown upstream 'nope'");
    /* routes may only name upstreams; no upstreams section at all */
    fails_at(SERVER "routes:\n  - name: r\n    to: app\n", 6, "route 'r' refers to unknown upstream 'app'");
}

FICUS_TEST(error_strip_prefix)
{
    fails_at(BASE "  - name: r\n    redirect: { to: \"https://x/\" }\n    strip_prefix: /api\n", 10,
             "`strip_prefix`, `add_prefix` and `preserve_host` apply only to `to` and `split` routes");
    fails_at(BASE "  - name: r\n    respond: {}\n    preserve_host: true\n", 10, "apply only to `to` and `split` routes");
    fails_at(BASE "  - name: r\n    match: { path_prefix: /api }\n    to: app\n    strip_prefix: /v1\n", 11,
             "strip_prefix '/v1' is not a prefix of the matched path '/api'");
    fails_at(BASE "  - name: r\n    to: app\n    strip_prefix: api\n", 10, "prefix must start with '/'");
    fails_at(BASE "  - name: r\n    to: app\n    add_prefix: /v2?x\n", 10, "prefix must start with '/'");
    fails_at(BASE "  - name: r\n    to: app\n    preserve_host: maybe\n", 10, "expected a boolean");
}

FICUS_TEST(error_match_path)
{
    fails_at(BASE "  - name: r\n    match:\n      path_prefix: api\n    to: app\n", 10, "path must start with '/' (got 'api')");
    fails_at(BASE "  - name: r\n    match:\n      path: /a\n      path_prefix: /b\n    to: app\n", 10,
             "use either `path` (exact) or `path_prefix`, not both");
    fails_at(BASE "  - name: r\n    match: { path: \"/a?b=1\" }\n    to: app\n", 9, "path must not contain a query string");
}

FICUS_TEST(error_match_host)
{
    fails_at(BASE "  - name: r\n    match: { host: \"api.example.com:443\" }\n    to: app\n", 9,
             "invalid character in host 'api.example.com:443' (no port, no scheme)");
    fails_at(BASE "  - name: r\n    match: { host: \"*example.com\" }\n    to: app\n", 9,
             "wildcard host must look like *.example.com");
    fails_at(BASE "  - name: r\n    match: { host: \"\" }\n    to: app\n", 9, "`host` must be a host name");
}

FICUS_TEST(error_match_methods)
{
    fails_at(BASE "  - name: r\n    match:\n      methods:\n        - GET\n        - get\n    to: app\n", 12,
             "invalid method 'get' (methods are upper case, e.g. GET)");
    fails_at(BASE "  - name: r\n    match: { methods: [] }\n    to: app\n", 9, "`methods` must not be empty");
}

FICUS_TEST(error_match_headers)
{
    fails_at(BASE "  - name: r\n    match:\n      headers:\n        - name: \"X Bad\"\n    to: app\n", 11,
             "invalid header name 'X Bad'");
    fails_at(BASE "  - name: r\n    match:\n      headers:\n        - { name: \"\" }\n    to: app\n", 11,
             "header name must not be empty");
    fails_at(BASE "  - name: r\n    match:\n      headers:\n        - { value: x }\n    to: app\n", 11,
             "missing required key 'name'");
    fails_at(BASE "  - name: r\n    match:\n      hosts: x\n    to: app\n", 10,
             "unknown key 'hosts'; expected one of: host, path, path_prefix, methods, headers");
}

FICUS_TEST(error_redirect)
{
    fails_at(BASE "  - name: r\n    redirect:\n      to: \"https://x{url}\"\n", 10,
             "unknown placeholder in redirect target (use {host}, {path}, {query})");
    fails_at(BASE "  - name: r\n    redirect:\n      to: \"https://x/\"\n      status: 200\n", 11,
             "must be between 300 and 399 (got 200)");
    fails_at(BASE "  - name: r\n    redirect:\n      to: \"https://x/\"\n      status: 304\n", 11,
             "redirect status must be 301, 302, 303, 307 or 308");
    fails_at(BASE "  - name: r\n    redirect: { to: \"\" }\n", 9, "redirect target must not be empty");
    fails_at(BASE "  - name: r\n    redirect: { status: 301 }\n", 9, "missing required key 'to'");
}

FICUS_TEST(error_respond)
{
    fails_at(BASE "  - name: r\n    respond:\n      status: 99\n", 10, "must be between 200 and 599 (got 99)");
    fails_at(BASE "  - name: r\n    respond:\n      status: 600\n", 10, "must be between 200 and 599 (got 600)");
    fails_at(BASE "  - name: r\n    respond:\n      content_type: \"text/plain\\r\\nx-evil: 1\"\n", 10,
             "invalid character in content_type");
    fails_at(BASE "  - name: r\n    respond:\n      bodyy: x\n", 10,
             "unknown key 'bodyy'; expected one of: status, body, content_type");
}

/* ---- errors: the headers plugin ---- */

FICUS_TEST(error_headers_plugin)
{
    fails_at(BASE "  - name: r\n    respond: {}\n    headers:\n      request:\n        set: { \"x bad\": 1 }\n", 12,
             "invalid header name 'x bad'");
    fails_at(BASE "  - name: r\n    respond: {}\n    headers:\n      response:\n        remove: [\"x:y\"]\n", 12,
             "invalid header name 'x:y'");
    fails_at(BASE "  - name: r\n    respond: {}\n    headers:\n      request:\n        add:\n          x-a: \"a\\nb\"\n", 13,
             "header value must not contain CR, LF or NUL");
    fails_at(BASE "  - name: r\n    respond: {}\n    headers:\n      response:\n        set: { x-a: \"a\\rb\" }\n", 12,
             "header value must not contain CR, LF or NUL");
    fails_at(BASE "  - name: r\n    respond: {}\n    headers:\n      requests:\n        set: { x-a: b }\n", 11,
             "unknown key 'requests'; expected one of: request, response");
    fails_at(BASE "  - name: r\n    respond: {}\n    headers:\n      request:\n        replace: { x-a: b }\n", 12,
             "unknown key 'replace'; expected one of: set, add, remove");
    fails_at(BASE "  - name: r\n    respond: {}\n    headers: {}\n", 10, "`headers` needs `request` and/or `response`");
}

/* ---- reload rules ---- */

static ficus_config_t *must_load(const char *text)
{
    char err[ERRLEN];
    ficus_config_t *c = load(text, err);
    if (!ok(c != NULL))
        printf("#     error: %s\n", err);
    return c;
}

/* 0 if next may replace running; the reason is copied into `why`. */
static int reloadable(const char *running_text, const char *next_text, char *why)
{
    ficus_config_t *running = must_load(running_text), *next = must_load(next_text);
    int rc = -2;
    why[0] = '\0';
    if (running != NULL && next != NULL)
        rc = ficus_config_check_reloadable(running, next, why, ERRLEN);
    if (running != NULL)
        ficus_config_release(running);
    if (next != NULL)
        ficus_config_release(next);
    return rc;
}

/* workers, listeners, and more server keys (admin, limits...), then one upstream; routes follow. */
#define RELOAD_BASE(workers, listen, more)                                                                                         \
    "server:\n  workers: " workers "\n  listen:\n" listen more "upstreams:\n  app: { endpoints: [\"http://127.0.0.1:9000\"] }\n"
#define L8080 "    - address: \"127.0.0.1:8080\"\n"
#define ADMIN "  admin: { address: \"127.0.0.1:9901\" }\n"

FICUS_TEST(reload_rules)
{
    char why[ERRLEN];
    const char *running = RELOAD_BASE("2", L8080, ADMIN) "routes:\n  - name: a\n    to: app\n";

    /* routes, upstreams, limits...: applied on reload */
    ok_int(reloadable(running, running, why), 0);
    ok_str(why, "");
    ok_int(
        reloadable(running,
                   RELOAD_BASE(
                       "2", L8080,
                       ADMIN
                       "  limits: { max_body_bytes: 1KiB }\n  log_level: debug\n") "routes:\n  - name: b\n    match: { path: /b "
                                                                                   "}\n    respond: {}\n  - name: a\n    to: app\n",
                   why),
        0);
    ok_str(why, "");
    ok_int(reloadable(running, RELOAD_BASE("2", L8080, ADMIN) "routes: []\n", why), 0);

    /* listen address */
    ok_int(reloadable(running, RELOAD_BASE("2", "    - address: \"127.0.0.1:8081\"\n", ADMIN) "routes: []\n", why), -1);
    ok(starts_with(why, "t.yaml: server.listen changed"));
    ok(strstr(why, "restart ficus") != NULL);
    /* one more listener */
    ok_int(reloadable(running, RELOAD_BASE("2", L8080 "    - address: \"127.0.0.1:8081\"\n", ADMIN) "routes: []\n", why), -1);
    ok(strstr(why, "server.listen") != NULL);
    /* plain -> redirect_https */
    ok_int(reloadable(running, RELOAD_BASE("2", L8080 "      redirect_https: 8443\n", ADMIN) "routes: []\n", why), -1);
    ok(strstr(why, "server.listen") != NULL);

    /* workers */
    ok_int(reloadable(running, RELOAD_BASE("auto", L8080, ADMIN) "routes: []\n", why), -1);
    ok(strstr(why, "server.workers changed (2 -> 0)") != NULL);
    ok_int(reloadable(running, RELOAD_BASE("3", L8080, ADMIN) "routes: []\n", why), -1);
    ok(strstr(why, "server.workers") != NULL);

    /* admin: changed, removed, added */
    ok_int(reloadable(running, RELOAD_BASE("2", L8080, "  admin: { address: \"127.0.0.1:9902\" }\n") "routes: []\n", why), -1);
    ok(strstr(why, "server.admin changed") != NULL);
    ok_int(reloadable(running, RELOAD_BASE("2", L8080, "") "routes: []\n", why), -1);
    ok(strstr(why, "server.admin changed") != NULL);
    ok_int(reloadable(RELOAD_BASE("2", L8080, "") "routes: []\n", running, why), -1);
    ok(strstr(why, "server.admin changed") != NULL);
}

/* ---- CIDRs ---- */

static struct sockaddr_storage sa(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ss.ss_family = AF_INET;
    } else {
        ok(inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1);
        ss.ss_family = AF_INET6;
    }
    return ss;
}

/* Whether `ip` lies in the trusted_proxies list `cidrs` (a YAML flow sequence), loaded through the config. */
static int in_cidrs(const char *cidrs, const char *ip)
{
    char text[1024], err[ERRLEN];
    snprintf(text, sizeof(text), SERVER "  trusted_proxies: %s\nroutes: []\n", cidrs);
    ficus_config_t *c = load(text, err);
    if (!ok(c != NULL)) {
        printf("#     %s: %s\n", cidrs, err);
        return -1;
    }
    struct sockaddr_storage ss = sa(ip);
    int r = ficus_cidr_contains(c->server.trusted_proxies, c->server.num_trusted_proxies, (struct sockaddr *)&ss);
    ficus_config_release(c);
    return r;
}

FICUS_TEST(cidr_contains)
{
    /* v4 */
    ok_int(in_cidrs("[10.0.0.0/8]", "10.255.1.2"), 1);
    ok_int(in_cidrs("[10.0.0.0/8]", "11.0.0.1"), 0);
    ok_int(in_cidrs("[10.1.2.3/8]", "10.9.9.9"), 1); /* host bits in the CIDR are ignored */
    /* /0, /32, /25 */
    ok_int(in_cidrs("[0.0.0.0/0]", "203.0.113.9"), 1);
    ok_int(in_cidrs("[0.0.0.0/0]", "::1"), 0); /* /0 of one family is not the other */
    ok_int(in_cidrs("[192.0.2.1/32]", "192.0.2.1"), 1);
    ok_int(in_cidrs("[192.0.2.1/32]", "192.0.2.0"), 0);
    ok_int(in_cidrs("[192.0.2.1]", "192.0.2.1"), 1);
    ok_int(in_cidrs("[192.0.2.128/25]", "192.0.2.128"), 1);
    ok_int(in_cidrs("[192.0.2.128/25]", "192.0.2.255"), 1);
    ok_int(in_cidrs("[192.0.2.128/25]", "192.0.2.127"), 0);
    ok_int(in_cidrs("[192.0.2.0/25]", "192.0.2.127"), 1);
    ok_int(in_cidrs("[192.0.2.0/25]", "192.0.2.128"), 0);
    ok_int(in_cidrs("[192.0.2.0/31]", "192.0.2.1"), 1);
    ok_int(in_cidrs("[192.0.2.0/31]", "192.0.2.2"), 0);
    /* v6 */
    ok_int(in_cidrs("[\"::1/128\"]", "::1"), 1);
    ok_int(in_cidrs("[\"::1/128\"]", "::2"), 0);
    ok_int(in_cidrs("[\"2001:db8::/32\"]", "2001:db8:ffff::1"), 1);
    ok_int(in_cidrs("[\"2001:db8::/32\"]", "2001:db9::1"), 0);
    ok_int(in_cidrs("[\"2001:db8::/33\"]", "2001:db8:7fff::1"), 1);
    ok_int(in_cidrs("[\"2001:db8::/33\"]", "2001:db8:8000::1"), 0);
    ok_int(in_cidrs("[\"::/0\"]", "2001:db8::1"), 1);
    ok_int(in_cidrs("[\"::/0\"]", "10.0.0.1"), 0);
    ok_int(in_cidrs("[\"2001:db8::/32\"]", "10.0.0.1"), 0);
    /* a v4-mapped peer (dual-stack socket) is matched as the v4 address it carries */
    ok_int(in_cidrs("[10.0.0.0/8]", "::ffff:10.1.2.3"), 1);
    ok_int(in_cidrs("[10.0.0.0/8]", "::ffff:11.1.2.3"), 0);
    ok_int(in_cidrs("[192.0.2.1/32]", "::ffff:192.0.2.1"), 1);
    /* several; empty list */
    ok_int(in_cidrs("[10.0.0.0/8, \"::1/128\", 192.168.0.0/16]", "192.168.3.4"), 1);
    ok_int(in_cidrs("[10.0.0.0/8, \"::1/128\", 192.168.0.0/16]", "::1"), 1);
    ok_int(in_cidrs("[10.0.0.0/8, \"::1/128\", 192.168.0.0/16]", "172.16.0.1"), 0);
    ok_int(in_cidrs("[]", "127.0.0.1"), 0);

    /* a non-IP family never matches */
    ficus_cidr_t any = {.family = AF_INET, .prefix = 0};
    struct sockaddr_storage unix_sa;
    memset(&unix_sa, 0, sizeof(unix_sa));
    unix_sa.ss_family = AF_UNIX;
    ok_int(ficus_cidr_contains(&any, 1, (struct sockaddr *)&unix_sa), 0);
}

/* ---- listen addresses ---- */

FICUS_TEST(parse_address)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;

    ok_int(ficus_parse_address("127.0.0.1:80", &ss, &len), 0);
    ok_int(ss.ss_family, AF_INET);
    ok_int(len, sizeof(struct sockaddr_in));
    ok_int(ntohs(((struct sockaddr_in *)&ss)->sin_port), 80);
    ok_int(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), INADDR_LOOPBACK);

    ok_int(ficus_parse_address("[::1]:8443", &ss, &len), 0);
    ok_int(ss.ss_family, AF_INET6);
    ok_int(len, sizeof(struct sockaddr_in6));
    ok_int(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 8443);
    ok(IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr));

    ok_int(ficus_parse_address("[::]:443", &ss, &len), 0);
    ok_int(ss.ss_family, AF_INET6);
    ok(IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr));

    /* ":PORT", "*:PORT" and "0.0.0.0:PORT" are all IPv4 any */
    static const char *const any[] = {":8080", "*:8080", "0.0.0.0:8080"};
    for (size_t i = 0; i != sizeof(any) / sizeof(any[0]); ++i) {
        ok_int(ficus_parse_address(any[i], &ss, &len), 0);
        ok_int(ss.ss_family, AF_INET);
        ok_int(len, sizeof(struct sockaddr_in));
        ok_int(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), INADDR_ANY);
        ok_int(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8080);
    }

    ok_int(ficus_parse_address("0.0.0.0:1", &ss, &len), 0);
    ok_int(ntohs(((struct sockaddr_in *)&ss)->sin_port), 1);
    ok_int(ficus_parse_address("10.0.0.1:65535", &ss, &len), 0);
    ok_int(ntohs(((struct sockaddr_in *)&ss)->sin_port), 65535);

    static const char *const bad[] = {"x",
                                      "",
                                      ":",
                                      "1.2.3.4",
                                      "1.2.3.4:",
                                      "1.2.3.4:0",
                                      "1.2.3.4:70000",
                                      "1.2.3.4:65536",
                                      "1.2.3.4:-1",
                                      "1.2.3.4:80x",
                                      "1.2.3.4:0x50",
                                      "localhost:80",
                                      "999.1.1.1:80",
                                      "[::1]",
                                      "[::1]:",
                                      "[::1]8443",
                                      "[::1:8443",
                                      "[x]:80",
                                      "1.2.3.4:99999999999999999999"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        int rc = ficus_parse_address(bad[i], &ss, &len);
        if (!ok_int(rc, -1))
            printf("#     accepted: \"%s\"\n", bad[i]);
    }
}

/* Numbers inside addresses and CIDRs are plain decimals like every other number of the config (conf.h: "malformed
 * scalars are errors, never defaults"; ficus_conf_uint refuses "+1"), and "[]" is not an address. */
FICUS_TEST(strict_addresses_and_cidrs)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    static const char *const bad[] = {"1.2.3.4:+80", "1.2.3.4: 80", "[]:80", "[::1]:+443"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        int rc = ficus_parse_address(bad[i], &ss, &len);
        if (!ok_int(rc, -1))
            printf("#     accepted: \"%s\"\n", bad[i]);
    }
    fails_at(SERVER "  trusted_proxies: [\"10.0.0.0/+8\"]\nroutes: []\n", 4, "invalid CIDR '10.0.0.0/+8'");
    fails_at(SERVER "  trusted_proxies: [\"10.0.0.0/ 8\"]\nroutes: []\n", 4, "invalid CIDR '10.0.0.0/ 8'");
    fails_at(SERVER "  trusted_proxies: [\"10.0.0.0/-0\"]\nroutes: []\n", 4, "invalid CIDR '10.0.0.0/-0'");
}

/* Values that ficus writes verbatim onto the wire (the upstream request line and Host, the Location header) must not
 * carry CR/LF or other control characters, as the headers plugin and respond.content_type already require: with them a
 * config line turns into extra upstream request headers or response headers. */
FICUS_TEST(error_control_characters_reaching_the_wire)
{
    fails_at(BASE "  - name: r\n    to: app\n    add_prefix: \"/v2\\r\\nx-evil: 1\"\n", 10, "");
    fails_at(BASE "  - name: r\n    to: app\n    add_prefix: \"/v 2\"\n", 10, "");
    fails_at(BASE "  - name: r\n    match: { path_prefix: \"/a\\r\\nb\" }\n    to: app\n", 9, "");
    fails_at(BASE "  - name: r\n    redirect:\n      to: \"https://x/\\r\\nset-cookie: a=b\"\n", 10, "");
    fails_at(SERVER "upstreams:\n  app:\n    endpoints: [\"http://a\\r\\nb:9000\"]\nroutes: []\n", 6, "");
    fails_at(SERVER "upstreams:\n  app:\n    endpoints: [\"http://a b:9000\"]\nroutes: []\n", 6, "");
}
