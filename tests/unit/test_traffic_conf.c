/* Unit tests of gateway/traffic_conf.c (the `split:`, `fallback:`, `mirror:` sections and `server.expose_upstream`):
 * a full configuration loads into the right fields and defaults, and each check `ficus -t` runs reports the right
 * "file:line:" (unknown upstreams, a fallback equal to the only target, negative weights, all weights 0, a sample
 * outside 0.01 %–100 %, malformed keys, two actions). Also ficus_parse_sample, ficus_cookie_strip and
 * ficus_split_target_by_name (gateway/traffic.c), the pure pieces of the request-time decision. */
#include <stdio.h>
#include <string.h>

#include "ficus/traffic.h"
#include "conf_helpers.h"
#include "runner.h"

/* Lines 1-10; routes of error tests start on line 11. */
#define BASE                                                                                                                       \
    "server:\n"                                                                                                                    \
    "  listen:\n"                                                                                                                  \
    "    - address: \"127.0.0.1:8080\"\n"                                                                                          \
    "upstreams:\n"                                                                                                                 \
    "  monolith: { endpoints: [\"http://127.0.0.1:9000\"] }\n"                                                                     \
    "  orders: { endpoints: [\"http://127.0.0.1:9100\"] }\n"                                                                       \
    "  orders-shadow: { endpoints: [\"http://127.0.0.1:9200\"] }\n"                                                                \
    "  billing: { endpoints: [\"http://127.0.0.1:9300\"] }\n"                                                                      \
    "  spare: { endpoints: [\"http://127.0.0.1:9400\"] }\n"                                                                        \
    "routes:\n"

static int iov_is(h2o_iovec_t v, const char *s)
{
    return v.base != NULL && v.len == strlen(s) && memcmp(v.base, s, v.len) == 0;
}

FICUS_TEST(full_split_route)
{
    char err[ERRLEN];
    ficus_config_t *c = load("server:\n"
                             "  listen: [{ address: \"127.0.0.1:8080\" }]\n"
                             "  expose_upstream: true\n"
                             "upstreams:\n"
                             "  monolith: { endpoints: [\"http://127.0.0.1:9000\"] }\n"
                             "  orders: { endpoints: [\"http://127.0.0.1:9100\"] }\n"
                             "  orders-shadow: { endpoints: [\"http://127.0.0.1:9200\"] }\n"
                             "routes:\n"
                             "  - name: orders\n"
                             "    match: { path_prefix: /api/orders }\n"
                             "    split:\n"
                             "      key: [claim:sub, header:X-User-Id, cookie:sid, ip]\n"
                             "      sticky_cookie: ficus-bucket\n"
                             "      salt: orders-2026\n"
                             "      to:\n"
                             "        - { upstream: orders, weight: 10 }\n"
                             "        - { upstream: monolith, weight: 90 }\n"
                             "      override: { header: X-Ficus-Upstream, cookie: ficus-upstream }\n"
                             "    strip_prefix: /api\n"
                             "    fallback: monolith\n"
                             "    mirror:\n"
                             "      upstream: orders-shadow\n"
                             "      sample: 12.5%\n"
                             "      methods: [GET, HEAD, OPTIONS]\n"
                             "      max_body: 16KiB\n"
                             "      timeout: 500ms\n"
                             "      max_inflight: 8\n"
                             "      compare: true\n"
                             "  - name: plain\n"
                             "    match: { path_prefix: /plain }\n"
                             "    to: orders\n"
                             "    fallback: monolith\n"
                             "  - name: defaults\n"
                             "    match: { path_prefix: / }\n"
                             "    split: { to: [{ upstream: orders, weight: 0 }, { upstream: monolith, weight: 1 }] }\n"
                             "    mirror: { upstream: orders-shadow }\n",
                             err);
    if (!ok(c != NULL)) {
        printf("#     error: %s\n", err);
        return;
    }
    ok(c->server.expose_upstream);
    const ficus_route_t *r = c->routes[0];
    ok_int(r->action, FICUS_ACTION_PROXY);
    ok(r->data.proxy.upstream == NULL);
    ok(iov_is(r->data.proxy.strip_prefix, "/api"));
    const ficus_traffic_conf_t *t = r->traffic;
    const ficus_split_conf_t *s = t->split;
    if (!ok(s != NULL))
        return;
    ok_int(s->num_keys, 4);
    ok_int(s->keys[0].kind, FICUS_SPLIT_KEY_CLAIM);
    ok(iov_is(s->keys[0].name, "sub"));
    ok_int(s->keys[1].kind, FICUS_SPLIT_KEY_HEADER);
    ok(iov_is(s->keys[1].name, "x-user-id"));
    ok_int(s->keys[2].kind, FICUS_SPLIT_KEY_COOKIE);
    ok(iov_is(s->keys[2].name, "sid"));
    ok_int(s->keys[3].kind, FICUS_SPLIT_KEY_IP);
    ok(iov_is(s->sticky_cookie, "ficus-bucket"));
    ok(iov_is(s->salt, "orders-2026"));
    ok_int(s->num_targets, 2);
    ok(s->upstreams[0] == ficus_config_upstream(c, "orders"));
    ok_int(s->targets[0].weight, 10);
    ok_str(s->targets[1].name, "monolith");
    ok_int(s->targets[1].weight, 90);
    ok(iov_is(s->override_header, "x-ficus-upstream"));
    ok(iov_is(s->override_cookie, "ficus-upstream"));
    ok(t->fallback == ficus_config_upstream(c, "monolith"));
    ok(t->mirror != NULL && t->mirror->upstream == ficus_config_upstream(c, "orders-shadow"));
    ok_int(t->mirror->sample, 1250);
    ok_int(t->mirror->num_methods, 3);
    ok_str(t->mirror->methods[2], "OPTIONS");
    ok_int(t->mirror->max_body, 16384);
    ok_int(t->mirror->timeout_ms, 500);
    ok_int(t->mirror->max_inflight, 8);
    ok(t->mirror->compare);
    /* series for every upstream the route answers from, a fallback series from each non-fallback one */
    ok(t->stats[ficus_config_upstream(c, "orders")->index] != NULL);
    ok(t->stats[ficus_config_upstream(c, "monolith")->index] != NULL);
    ok(t->stats[ficus_config_upstream(c, "orders-shadow")->index] == NULL);
    ok(t->fallback_stats[ficus_config_upstream(c, "orders")->index] != NULL);
    ok(t->fallback_stats[ficus_config_upstream(c, "monolith")->index] == NULL);

    t = c->routes[1]->traffic;
    ok(t->split == NULL && t->to == ficus_config_upstream(c, "orders") && t->fallback == ficus_config_upstream(c, "monolith"));

    t = c->routes[2]->traffic;
    ok(iov_is(t->split->salt, "defaults")); /* default salt: the route name */
    ok_int(t->split->num_keys, 0);
    ok(t->split->sticky_cookie.base == NULL && t->split->override_header.base == NULL);
    ok(t->fallback == NULL);
    ok_int(t->mirror->sample, 10000);
    ok_int(t->mirror->num_methods, 2);
    ok_str(t->mirror->methods[0], "GET");
    ok_str(t->mirror->methods[1], "HEAD");
    ok_int(t->mirror->max_body, 65536);
    ok_int(t->mirror->timeout_ms, 2000);
    ok_int(t->mirror->max_inflight, 64);
    ok(!t->mirror->compare);
    ficus_config_release(c);
}

FICUS_TEST(split_errors)
{
    fails_at(BASE "  - name: r\n    split:\n      to: [{ upstream: nope, weight: 1 }]\n", 13,
             "split refers to unknown upstream 'nope'");
    fails_at(BASE "  - name: r\n    split:\n      to:\n        - { upstream: orders, weight: 1 }\n"
                  "        - { upstream: monolith, weight: -5 }\n",
             15, "weight must not be negative");
    fails_at(BASE "  - name: r\n    split:\n      to:\n        - { upstream: orders, weight: 0 }\n"
                  "        - { upstream: monolith, weight: 0 }\n",
             14, "split weights are all 0");
    fails_at(BASE "  - name: r\n    split:\n      to: [{ upstream: orders, weight: 1.5 }]\n", 13, "");
    fails_at(BASE "  - name: r\n    split:\n      to: [{ upstream: orders }]\n", 13, "weight");
    fails_at(BASE "  - name: r\n    split:\n      to: [{ upstream: orders, weight: 1 }, { upstream: orders, weight: 2 }]\n", 13,
             "listed twice");
    fails_at(BASE "  - name: r\n    split:\n      to: []\n", 13, "at least one");
    fails_at(BASE "  - name: r\n    split:\n      key: [claim:sub, user]\n      to: [{ upstream: orders, weight: 1 }]\n", 13,
             "unknown split key 'user'");
    fails_at(BASE "  - name: r\n    split:\n      key: [\"header:X User\"]\n      to: [{ upstream: orders, weight: 1 }]\n", 13,
             "not a valid header name");
    fails_at(BASE "  - name: r\n    split:\n      key: [\"cookie:\"]\n      to: [{ upstream: orders, weight: 1 }]\n", 13,
             "not a valid cookie name");
    fails_at(BASE "  - name: r\n    split:\n      key: [\"claim:\"]\n      to: [{ upstream: orders, weight: 1 }]\n", 13,
             "claim name");
    fails_at(BASE "  - name: r\n    split:\n      to: [{ upstream: orders, weight: 1 }]\n      override: {}\n", 14,
             "`override` needs");
    fails_at(BASE "  - name: r\n    split:\n      to: [{ upstream: orders, weight: 1 }]\n      override: { head: x }\n", 14,
             "unknown key 'head'");
    fails_at(BASE "  - name: r\n    split:\n      to: [{ upstream: orders, weight: 1 }]\n      stick: c\n", 14,
             "unknown key 'stick'");
    fails_at(BASE "  - name: r\n    split:\n      to: [{ upstream: orders, weight: 1 }]\n      sticky_cookie: \"a;b\"\n", 14,
             "invalid sticky_cookie name");
    fails_at(BASE "  - name: r\n    to: orders\n    split: { to: [{ upstream: orders, weight: 1 }] }\n", 11,
             "exactly one action: `to`, `redirect`, `respond` or `split` (found 2)");
}

FICUS_TEST(fallback_errors)
{
    fails_at(BASE "  - name: r\n    to: orders\n    fallback: nope\n", 13, "fallback refers to unknown upstream 'nope'");
    fails_at(BASE "  - name: r\n    to: orders\n    fallback: orders\n", 13, "fallback 'orders' is the route's only target");
    fails_at(BASE "  - name: r\n    split: { to: [{ upstream: orders, weight: 1 }] }\n    fallback: orders\n", 13, "only target");
    fails_at(BASE "  - name: r\n    respond: {}\n    fallback: monolith\n", 13, "apply only to routes with `to` or `split`");
    fails_at(BASE "  - name: r\n    to: orders\n    fallback: [monolith]\n", 13, "expected a scalar");
    /* a fallback that is also one of several targets is fine (the ramp's monolith side) */
    char err[ERRLEN];
    ficus_config_t *c =
        load(BASE "  - name: r\n    split:\n      to: [{ upstream: orders, weight: 0 }, { upstream: monolith, weight: 1 }]\n"
                  "    fallback: monolith\n",
             err);
    if (!ok(c != NULL))
        printf("#     error: %s\n", err);
    else
        ficus_config_release(c);
}

FICUS_TEST(mirror_errors)
{
    fails_at(BASE "  - name: r\n    to: orders\n    mirror: { upstream: nope }\n", 13, "mirror refers to unknown upstream");
    fails_at(BASE "  - name: r\n    to: orders\n    mirror: { upstream: orders }\n", 13, "already serves route 'r'");
    fails_at(BASE "  - name: r\n    to: orders\n    fallback: monolith\n    mirror: { upstream: monolith }\n", 14,
             "already serves");
    fails_at(BASE "  - name: r\n    to: orders\n    mirror:\n      upstream: spare\n      sample: 0.001%\n", 15,
             "from 0.01% to 100%");
    fails_at(BASE "  - name: r\n    to: orders\n    mirror:\n      upstream: spare\n      sample: 0%\n", 15, "from 0.01% to 100%");
    fails_at(BASE "  - name: r\n    to: orders\n    mirror:\n      upstream: spare\n      sample: 100.01%\n", 15,
             "from 0.01% to 100%");
    fails_at(BASE "  - name: r\n    to: orders\n    mirror:\n      upstream: spare\n      sample: 50\n", 15, "from 0.01% to 100%");
    fails_at(BASE "  - name: r\n    to: orders\n    mirror:\n      upstream: spare\n      methods: [get]\n", 15, "invalid method");
    fails_at(BASE "  - name: r\n    to: orders\n    mirror:\n      upstream: spare\n      max_inflight: 0\n", 15, "");
    fails_at(BASE "  - name: r\n    to: orders\n    mirror:\n      upstream: spare\n      compare: maybe\n", 15, "");
    fails_at(BASE "  - name: r\n    to: orders\n    mirror:\n      upstream: spare\n      extra: 1\n", 15, "unknown key 'extra'");
    fails_at(BASE "  - name: r\n    redirect: { to: /x }\n    mirror: { upstream: spare }\n", 13, "apply only to routes with");
    fails_at("server:\n  listen: [{ address: \"127.0.0.1:8080\" }]\n  expose_upstream: sometimes\nroutes: []\n", 3, "");
}

FICUS_TEST(parse_sample)
{
    uint32_t v = 0;
    ok(ficus_parse_sample(H2O_STRLIT("100%"), &v) == 0 && v == 10000);
    ok(ficus_parse_sample(H2O_STRLIT("0.01%"), &v) == 0 && v == 1);
    ok(ficus_parse_sample(H2O_STRLIT("1%"), &v) == 0 && v == 100);
    ok(ficus_parse_sample(H2O_STRLIT("12.5%"), &v) == 0 && v == 1250);
    ok(ficus_parse_sample(H2O_STRLIT("12.5 %"), &v) == 0 && v == 1250);
    ok(ficus_parse_sample(H2O_STRLIT("99.99%"), &v) == 0 && v == 9999);
    const char *bad[] = {"0%", "0.00%", "0.001%", "100.01%", "101%", "%", "1", ".5%", "5.%", "-1%", "1e2%", "10000%", "5%%", ""};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        if (!ok(ficus_parse_sample(bad[i], strlen(bad[i]), &v) != 0))
            printf("#     accepted '%s'\n", bad[i]);
}

static void strip_is(const char *in, const char *name, const char *want)
{
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    h2o_iovec_t v = ficus_cookie_strip(&pool, h2o_iovec_init(in, strlen(in)), name, strlen(name));
    char got[256];
    snprintf(got, sizeof(got), "%.*s", (int)v.len, v.base);
    ok_str(got, want);
    h2o_mem_clear_pool(&pool);
}

FICUS_TEST(cookie_strip)
{
    strip_is("a=1; ficus-upstream=orders; b=2", "ficus-upstream", "a=1; b=2");
    strip_is("ficus-upstream=orders", "ficus-upstream", "");
    strip_is("ficus-upstream=orders;a=1", "ficus-upstream", "a=1");
    strip_is("a=1;  ficus-upstream=x ;b=2; ficus-upstream=y", "ficus-upstream", "a=1; b=2");
    strip_is("a=1; b=2", "ficus-upstream", "a=1; b=2"); /* untouched */
    strip_is("xficus-upstream=1; ficus-upstreamx=2", "ficus-upstream", "xficus-upstream=1; ficus-upstreamx=2");
    strip_is("ficus-upstream", "ficus-upstream", "ficus-upstream"); /* no '=': not that cookie */
    strip_is("a=1;;; ficus-upstream=; b", "ficus-upstream", "a=1; b");
    strip_is("a=1;ficus-upstream=x;b=2;c=3", "ficus-upstream", "a=1; b=2; c=3"); /* longer than the input */
}

FICUS_TEST(target_by_name)
{
    char err[ERRLEN];
    ficus_config_t *c =
        load(BASE "  - name: r\n    split:\n      to: [{ upstream: orders, weight: 0 }, { upstream: monolith, weight: 1 }]\n", err);
    if (!ok(c != NULL))
        return;
    const ficus_split_conf_t *s = c->routes[0]->traffic->split;
    ok_int(ficus_split_target_by_name(s, H2O_STRLIT("orders")), 0);
    ok_int(ficus_split_target_by_name(s, H2O_STRLIT("monolith")), 1);
    ok(ficus_split_target_by_name(s, H2O_STRLIT("billing")) == SIZE_MAX); /* an upstream outside the split */
    ok(ficus_split_target_by_name(s, H2O_STRLIT("Orders")) == SIZE_MAX);
    ok(ficus_split_target_by_name(s, H2O_STRLIT("order")) == SIZE_MAX);
    ficus_config_release(c);
}
