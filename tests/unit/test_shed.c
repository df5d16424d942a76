/* Unit tests of plugins/shed/shed.c's configuration: the `shedding:` section and the route key `priority:` load into
 * the right limits (thresholds x max_inflight, Retry-After, Redis keys), and every validation error names the right
 * "file:line:" and says what is wrong. All loads are dry runs through ficus_config_load_string, i.e. through the
 * plugin table exactly as `ficus -t` does. shed.c is included (its plugin symbol renamed) only to see its private
 * conf types; the loads themselves use the compiled-in plugin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ficus/config.h"
#include "ficus/plugin.h"
#include "conf_helpers.h"
#include "runner.h"

#define ficus_plugin_shed shed_plugin_copy_under_test
#include "shed/shed.c"
#undef ficus_plugin_shed

extern const ficus_plugin_t ficus_plugin_shed;

/* Lines 1-6; the `shedding:` section (or whatever the test adds) starts on line 7, then ROUTE. */
#define BASE                                                                                                                       \
    "server:\n"                                                                                                                    \
    "  listen:\n"                                                                                                                  \
    "    - address: \"127.0.0.1:8080\"\n"                                                                                          \
    "upstreams:\n"                                                                                                                 \
    "  app: { endpoints: [\"http://127.0.0.1:9000\"] }\n"                                                                          \
    "redis: { address: \"127.0.0.1:6379\" }\n"

#define NO_REDIS                                                                                                                   \
    "server:\n"                                                                                                                    \
    "  listen:\n"                                                                                                                  \
    "    - address: \"127.0.0.1:8080\"\n"                                                                                          \
    "upstreams:\n"                                                                                                                 \
    "  app: { endpoints: [\"http://127.0.0.1:9000\"] }\n"                                                                          \
    "# no redis\n"

#define ROUTE                                                                                                                      \
    "routes:\n"                                                                                                                    \
    "  - name: r\n"                                                                                                                \
    "    to: app\n"

static const shed_route_t *route_conf(const ficus_config_t *c, size_t i)
{
    if (i >= c->num_routes)
        return NULL;
    const ficus_route_t *r = c->routes[i];
    for (size_t j = 0; j != r->num_plugins; ++j)
        if (r->plugins[j].plugin == &ficus_plugin_shed)
            return r->plugins[j].conf;
    return NULL;
}

FICUS_TEST(plugin_table_order)
{
    /* first in the table: shedding runs before authentication and everything else */
    ok(ficus_plugins[0] == &ficus_plugin_shed);
    ok(ficus_plugin_find("priority") == &ficus_plugin_shed);
    ok_str(ficus_plugin_shed.global_key, "shedding");
}

FICUS_TEST(good_config)
{
    char err[ERRLEN];
    ficus_config_t *c = load(BASE "shedding:\n"
                                  "  max_inflight: 20\n"
                                  "  thresholds: { low: 40%, normal: 70%, high: 95% }\n"
                                  "  max_loop_lag: 100ms\n"
                                  "  retry_after: 2500ms\n"
                                  "  fleet: { key_prefix: \"edge:eu\", poll_interval: 250ms, max_inflight: 1000 }\n"
                                  "routes:\n"
                                  "  - { name: l, to: app, priority: low }\n"
                                  "  - { name: n, to: app, priority: normal }\n"
                                  "  - { name: h, to: app, priority: high, match: { path_prefix: /h } }\n"
                                  "  - { name: c, to: app, priority: critical }\n"
                                  "  - { name: none, to: app }\n",
                             err);
    if (!ok(c != NULL)) {
        printf("#     error: %s\n", err);
        return;
    }
    const shed_global_t *g = ficus_config_plugin_global(c, &ficus_plugin_shed);
    if (ok(g != NULL)) {
        ok_int(g->max_inflight, 20);
        ok_int(g->limit[PRIO_LOW], 8);
        ok_int(g->limit[PRIO_NORMAL], 14);
        ok_int(g->limit[PRIO_HIGH], 19);
        ok_int(g->limit[PRIO_CRITICAL], 20);
        ok_int(g->max_loop_lag_us, 100000);
        ok_str(g->retry_after, "3"); /* rounded up to whole seconds */
        ok_int(g->retry_after_len, 1);
        ok(g->fleet.enabled);
        ok_str(g->fleet.key_level, "{edge:eu}:level");
        ok_str(g->fleet.key_instances, "{edge:eu}:instances");
        ok_int(g->fleet.poll_interval_ms, 250);
        ok_int(g->fleet.max_inflight, 1000);
    }
    for (int p = 0; p != PRIO__COUNT; ++p) {
        const shed_route_t *rc = route_conf(c, (size_t)p);
        if (ok(rc != NULL)) {
            ok_int(rc->priority, p);
            ok(rc->global == g);
        }
    }
    ok(c->routes[0]->plugins[0].plugin == &ficus_plugin_shed);
    const shed_route_t *none = route_conf(c, 4);
    if (ok(none != NULL))
        ok_int(none->priority, PRIO_NORMAL);
    ficus_config_release(c);
}

FICUS_TEST(defaults)
{
    char err[ERRLEN];
    ficus_config_t *c = load(NO_REDIS "shedding: {}\n" ROUTE "    priority: high\n", err);
    if (!ok(c != NULL)) {
        printf("#     error: %s\n", err);
        return;
    }
    const shed_global_t *g = ficus_config_plugin_global(c, &ficus_plugin_shed);
    if (ok(g != NULL)) {
        ok_int(g->max_inflight, 4096);
        ok_int(g->limit[PRIO_LOW], 2048);
        ok_int(g->limit[PRIO_NORMAL], 3072);
        ok_int(g->limit[PRIO_HIGH], 3686);
        ok_int(g->limit[PRIO_CRITICAL], 4096);
        ok_int(g->max_loop_lag_us, 250000);
        ok_str(g->retry_after, "1");
        ok(!g->fleet.enabled);
        ok_int(g->fleet.max_inflight, 0);
    }
    ficus_config_release(c);

    c = load(BASE "shedding:\n  fleet: {}\n" ROUTE, err);
    if (ok(c != NULL)) {
        g = ficus_config_plugin_global(c, &ficus_plugin_shed);
        if (ok(g != NULL && g->fleet.enabled)) {
            ok_str(g->fleet.key_level, "{ficus:shed}:level");
            ok_int(g->fleet.poll_interval_ms, 500);
            ok_int(g->fleet.max_inflight, 0);
        }
        ficus_config_release(c);
    }

    /* partial thresholds keep the others' defaults; 0 turns loop-lag shedding off */
    c = load(NO_REDIS "shedding: { thresholds: { high: 99% }, max_loop_lag: 0 }\n" ROUTE, err);
    if (ok(c != NULL)) {
        g = ficus_config_plugin_global(c, &ficus_plugin_shed);
        if (ok(g != NULL)) {
            ok_int(g->limit[PRIO_LOW], 2048);
            ok_int(g->limit[PRIO_HIGH], 4055);
            ok_int(g->max_loop_lag_us, 0);
        }
        ficus_config_release(c);
    }

    /* no `shedding:` at all: nothing built */
    c = load(NO_REDIS ROUTE, err);
    if (ok(c != NULL)) {
        ok(ficus_config_plugin_global(c, &ficus_plugin_shed) == NULL);
        ok(route_conf(c, 0) == NULL);
        ficus_config_release(c);
    }
}

FICUS_TEST(section_errors)
{
    fails_at(NO_REDIS "shedding: 4096\n" ROUTE, 7, "expected a mapping");
    fails_at(NO_REDIS "shedding:\n  max_inflight: 10\n  max_inflite: 10\n" ROUTE, 9,
             "unknown key 'max_inflite'; expected one of: max_inflight, thresholds, max_loop_lag, retry_after, fleet");
    fails_at(NO_REDIS "shedding:\n  max_inflight: 10\n  max_inflight: 20\n" ROUTE, 9, "duplicate key 'max_inflight'");
    fails_at(NO_REDIS "shedding:\n  max_inflight: 0\n" ROUTE, 8, "");
    fails_at(NO_REDIS "shedding:\n  max_inflight: lots\n" ROUTE, 8, "");
    fails_at(NO_REDIS "shedding:\n  max_inflight: [1]\n" ROUTE, 8, "'max_inflight' must be a scalar");
    fails_at(NO_REDIS "shedding:\n  max_loop_lag: fast\n" ROUTE, 8, "");
    fails_at(NO_REDIS "shedding:\n  retry_after: 0\n" ROUTE, 8, "");
    fails_at(NO_REDIS "shedding:\n  retry_after: 500ms\n" ROUTE, 8, "");
    fails_at(NO_REDIS "shedding:\n  thresholds: 50%\n" ROUTE, 8, "'thresholds' must be a mapping");
}

FICUS_TEST(threshold_errors)
{
    fails_at(NO_REDIS "shedding:\n  thresholds:\n    low: 50%\n    critical: 100%\n" ROUTE, 10,
             "unknown key 'critical'; expected one of: low, normal, high");
    fails_at(NO_REDIS "shedding:\n  thresholds:\n    low: 50\n" ROUTE, 9,
             "shedding.thresholds.low must be a percentage from 1% to 100% such as 50% (got '50')");
    fails_at(NO_REDIS "shedding:\n  thresholds:\n    low: 0%\n" ROUTE, 9, "shedding.thresholds.low must be a percentage");
    fails_at(NO_REDIS "shedding:\n  thresholds:\n    low: 10%\n    normal: 20%\n    high: 101%\n" ROUTE, 11,
             "shedding.thresholds.high must be a percentage");
    fails_at(NO_REDIS "shedding:\n  thresholds:\n    normal: 7.5%\n" ROUTE, 9, "shedding.thresholds.normal must be a percentage");
    fails_at(NO_REDIS "shedding:\n  thresholds:\n    normal: x%\n" ROUTE, 9, "must be a percentage");
    fails_at(NO_REDIS "shedding:\n  thresholds:\n    high: \"%\"\n" ROUTE, 9, "must be a percentage");
    /* increasing: low < normal < high (the error names the first one out of order) */
    fails_at(NO_REDIS "shedding:\n  thresholds:\n    low: 80%\n    normal: 75%\n    high: 90%\n" ROUTE, 10,
             "shedding.thresholds must increase: low (80%) < normal (75%) < high (90%)");
    fails_at(NO_REDIS "shedding:\n  thresholds:\n    low: 50%\n    normal: 60%\n    high: 60%\n" ROUTE, 11,
             "shedding.thresholds must increase");
    fails_at(NO_REDIS "shedding:\n  thresholds:\n    high: 70%\n" ROUTE, 9, "must increase: low (50%) < normal (75%) < high (70%)");
    fails_at(NO_REDIS "shedding:\n  thresholds:\n    low: 80%\n" ROUTE, 9, "must increase: low (80%) < normal (75%)");
}

FICUS_TEST(fleet_errors)
{
    fails_at(NO_REDIS "shedding:\n  max_inflight: 10\n  fleet: { poll_interval: 1s }\n" ROUTE, 9,
             "shedding.fleet needs a `redis:` section");
    fails_at(BASE "shedding:\n  fleet:\n    key_prefix: ficus\n    intervall: 1s\n" ROUTE, 10,
             "unknown key 'intervall'; expected one of: key_prefix, poll_interval, max_inflight");
    fails_at(BASE "shedding:\n  fleet:\n    key_prefix: \"{ficus}\"\n" ROUTE, 9,
             "may not contain spaces, control characters or braces");
    fails_at(BASE "shedding:\n  fleet:\n    key_prefix: \"a b\"\n" ROUTE, 9, "may not contain spaces");
    fails_at(BASE "shedding:\n  fleet:\n    key_prefix: \"\"\n" ROUTE, 9, "shedding.fleet.key_prefix must be 1 to 128 characters");
    fails_at(BASE "shedding:\n  fleet:\n    poll_interval: 50ms\n" ROUTE, 9, "");
    fails_at(BASE "shedding:\n  fleet:\n    poll_interval: 2m\n" ROUTE, 9, "");
    fails_at(BASE "shedding:\n  fleet:\n    max_inflight: 0\n" ROUTE, 9, "");
    fails_at(BASE "shedding:\n  fleet: [a]\n" ROUTE, 8, "'fleet' must be a mapping");
}

FICUS_TEST(priority_errors)
{
    fails_at(NO_REDIS ROUTE "    priority: high\n", 10, "`priority` needs a top-level `shedding:` section");
    fails_at(NO_REDIS "shedding: {}\n" ROUTE "    priority: urgent\n", 11,
             "priority must be one of: critical, high, normal, low (got 'urgent')");
    fails_at(NO_REDIS "shedding: {}\n" ROUTE "    priority: High\n", 11, "priority must be one of");
    fails_at(NO_REDIS "shedding: {}\n" ROUTE "    priority: [low]\n", 11, "expected a scalar");
    fails_at(NO_REDIS "shedding: {}\n" ROUTE "    priority: low\n    priority: high\n", 12, "duplicate key 'priority'");
    fails_at(NO_REDIS "shedding: {}\n" ROUTE "    priorty: low\n", 11, "unknown key 'priorty' in route; expected one of:");
    fails_at(NO_REDIS "shedd1ng: {}\n" ROUTE, 7, "unknown key 'shedd1ng'; expected one of: server, ");
}
