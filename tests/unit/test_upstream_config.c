/* Unit tests of gateway/upstream/load.c: the defaults of an upstream (issue 11: attempts 2 on connect_failure and
 * reset, no outlier, no health check, no breaker, round robin, no request_timeout), every key parsed, and a
 * file:line error for every key given a bad value. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_helpers.h"
#include "ficus/upstream/registry.h"

#define HEAD "server:\n  listen: [{ address: \"127.0.0.1:8080\" }]\nupstreams:\n  u:\n    endpoints: [\"http://127.0.0.1:9000\"]\n"
#define ROUTES "routes:\n  - { name: r, match: { path_prefix: / }, to: u }\n"

static ficus_config_t *load_upstream(const char *keys)
{
    char text[4096], err[ERRLEN];
    snprintf(text, sizeof(text), HEAD "%s" ROUTES, keys);
    ficus_config_t *c = load(text, err);
    if (!ok(c != NULL))
        printf("#     error: %s\n", err);
    return c;
}

/* the key at line 6 (the first after endpoints) must fail with `phrase` */
static void bad(const char *keys, int line, const char *phrase)
{
    char text[4096];
    snprintf(text, sizeof(text), HEAD "%s" ROUTES, keys);
    fails_at(text, line, phrase);
}

FICUS_TEST(defaults_are_safe)
{
    ficus_config_t *c = load_upstream("");
    if (c == NULL)
        return;
    const ficus_upstream_conf_t *u = c->upstreams[0];
    ok_int(u->retry.attempts, 2);
    ok_int(u->retry.on, (1 << FICUS_RETRY_CONNECT_FAILURE) | (1 << FICUS_RETRY_RESET));
    ok_int(u->retry.backoff_base_ms, 25);
    ok_int(u->retry.backoff_max_ms, 250);
    ok_int(u->retry.budget_percent, 20);
    ok_int(u->request_timeout_ms, 0);
    ok_int(u->balance.kind, FICUS_BALANCE_ROUND_ROBIN);
    ok(!u->outlier.enabled && !u->health.enabled && !u->breaker.enabled);
    ok(u->state != NULL && u->endpoints[0].state != NULL && u->endpoints[0].state->up == u->state);
    ficus_config_release(c);
}

FICUS_TEST(every_key_parses)
{
    ficus_config_t *c =
        load_upstream("    request_timeout: 60s\n"
                      "    balance: { hash: \"header:X-Tenant\" }\n"
                      "    dns_refresh: 30s\n"
                      "    retry: { attempts: 3, on: [connect_failure, reset, 502, 503, 504], backoff: { base: 10ms, "
                      "max: 1s }, budget: 30% }\n"
                      "    outlier: { consecutive_failures: 7, ejection: 2s, max_ejection: 1m, max_ejected: 40% }\n"
                      "    health_check: { path: /hz, interval: 3s, timeout: 2s, healthy: 4, unhealthy: 5, "
                      "expect: [200, 300-399] }\n"
                      "    breaker: { failure_ratio: 60%, min_requests: 30, window: 20s, open_for: 7s }\n");
    if (c == NULL)
        return;
    const ficus_upstream_conf_t *u = c->upstreams[0];
    ok_int(u->request_timeout_ms, 60000);
    ok_int(u->balance.kind, FICUS_BALANCE_HASH);
    ok_int(u->balance.key, FICUS_HASH_HEADER);
    ok(h2o_memis(u->balance.name.base, u->balance.name.len, H2O_STRLIT("x-tenant")));
    ok_int(u->retry.attempts, 3);
    ok_int(u->retry.on, 0x1f);
    ok_int(u->retry.backoff_max_ms, 1000);
    ok_int(u->retry.budget_percent, 30);
    ok(u->outlier.enabled);
    ok_int(u->outlier.consecutive_failures, 7);
    ok_int(u->outlier.max_ejection_ms, 60000);
    ok_int(u->outlier.max_ejected_percent, 40);
    ok(u->health.enabled);
    ok_str(u->health.path, "/hz");
    ok_int(u->health.num_expect, 2);
    ok_int(u->health.expect[1].lo, 300);
    ok_int(u->health.expect[1].hi, 399);
    ok(u->breaker.enabled);
    ok_int(u->breaker.failure_ratio_percent, 60);
    ok_int(u->breaker.open_for_ms, 7000);
    ficus_config_release(c);

    /* outlier / health_check / breaker with their own defaults; least_request; the other hash keys */
    c = load_upstream("    balance: least_request\n    outlier: {}\n    health_check: { path: / }\n    breaker: {}\n");
    if (c == NULL)
        return;
    u = c->upstreams[0];
    ok_int(u->balance.kind, FICUS_BALANCE_LEAST_REQUEST);
    ok_int(u->outlier.consecutive_failures, 5);
    ok_int(u->outlier.ejection_ms, 10000);
    ok_int(u->outlier.max_ejection_ms, 300000);
    ok_int(u->outlier.max_ejected_percent, 50);
    ok_int(u->health.interval_ms, 2000);
    ok_int(u->health.healthy, 2);
    ok_int(u->health.unhealthy, 3);
    ok_int(u->health.expect[0].lo, 200);
    ok_int(u->health.expect[0].hi, 399);
    ok_int(u->breaker.failure_ratio_percent, 50);
    ok_int(u->breaker.min_requests, 20);
    ok_int(u->breaker.window_ms, 10000);
    ok_int(u->breaker.open_for_ms, 5000);
    ficus_config_release(c);
    static const char *const keys[] = {"balance: { hash: \"claim:sub\" }\n", "balance: { hash: \"cookie:sid\" }\n",
                                       "balance: { hash: ip }\n", NULL};
    for (const char *const *k = keys; *k != NULL; ++k) {
        char line[128];
        snprintf(line, sizeof(line), "    %s", *k);
        if ((c = load_upstream(line)) != NULL)
            ficus_config_release(c);
    }
}

FICUS_TEST(every_key_fails_with_its_line)
{
    bad("    tmeout: 1s\n", 6, "unknown key 'tmeout'");
    bad("    request_timeout: soon\n", 6, "invalid duration");
    bad("    balance: random\n", 6, "round_robin");
    bad("    balance: { hash: \"query:x\" }\n", 6, "header:NAME");
    bad("    balance: { hash: \"header:\" }\n", 6, "header:NAME");
    bad("    balance: { hsh: ip }\n", 6, "unknown key 'hsh'");
    bad("    dns_refresh: 1ms\n", 6, "");
    bad("    retry: { attempts: 0 }\n", 6, "");
    bad("    retry: { attempts: 11 }\n", 6, "");
    bad("    retry: { on: [timeout] }\n", 6, "connect_failure");
    bad("    retry: { on: reset }\n", 6, "sequence");
    bad("    retry: { backoff: { base: 100ms, max: 10ms } }\n", 6, "max must not be less than base");
    bad("    retry: { backoff: { bse: 1ms } }\n", 6, "unknown key 'bse'");
    bad("    retry: { budget: 20 }\n", 6, "percentage");
    bad("    retry: { budget: 120% }\n", 6, "percentage");
    bad("    retry: { tries: 2 }\n", 6, "unknown key 'tries'");
    bad("    outlier: { consecutive_failures: 0 }\n", 6, "");
    bad("    outlier: { ejection: 10s, max_ejection: 1s }\n", 6, "max_ejection must not be less than ejection");
    bad("    outlier: { max_ejected: half }\n", 6, "percentage");
    bad("    outlier: { ejections: 1 }\n", 6, "unknown key 'ejections'");
    bad("    health_check: { interval: 1s }\n", 6, "path");
    bad("    health_check: { path: healthz }\n", 6, "must start with '/'");
    bad("    health_check: { path: /h, interval: 1s, timeout: 2s }\n", 6, "timeout must not exceed interval");
    bad("    health_check: { path: /h, healthy: 0 }\n", 6, "");
    bad("    health_check: { path: /h, unhealthy: many }\n", 6, "");
    bad("    health_check: { path: /h, expect: [2xx] }\n", 6, "not a status");
    bad("    health_check: { path: /h, expect: [399-200] }\n", 6, "within 100-599");
    bad("    health_check: { path: /h, expect: [] }\n", 6, "1 to 16");
    bad("    breaker: { failure_ratio: 0% }\n", 6, "percentage");
    bad("    breaker: { min_requests: 0 }\n", 6, "");
    bad("    breaker: { window: 1ms }\n", 6, "");
    bad("    breaker: { open_for: never }\n", 6, "");
    bad("    breaker: { ratio: 50% }\n", 6, "unknown key 'ratio'");
    /* multi-line: the error names the line of the offending value */
    bad("    retry:\n      attempts: 2\n      on: [reset, 501]\n", 8, "connect_failure");
    char text[512];
    snprintf(text, sizeof(text),
             "server:\n  listen: [{ address: \"127.0.0.1:8080\" }]\nupstreams:\n  u:\n    endpoints: [\"http://127.0.0.1:9000\", "
             "\"http://127.0.0.1:9000\"]\n" ROUTES);
    fails_at(text, 5, "lists endpoint '127.0.0.1:9000' twice");
}

FICUS_TEST(state_is_shared_by_generations)
{
    ficus_config_t *a = load_upstream(""), *b = load_upstream("    timeout: 5s\n");
    if (a == NULL || b == NULL)
        return;
    ok(a->upstreams[0]->state == b->upstreams[0]->state);
    ok(a->upstreams[0]->endpoints[0].state == b->upstreams[0]->endpoints[0].state);
    ok_int(a->upstreams[0]->endpoints[0].state->configured, 2);
    ficus_config_release(a);
    ok_int(b->upstreams[0]->endpoints[0].state->configured, 1);
    ficus_config_release(b);
}
