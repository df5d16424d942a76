/* Plugin contract violations: the log line and the counter (see ficus/contract.h).
 *
 * DESIGN: one counter per (worker, plugin) slot, written only by that worker (ficus_counter_add), summed at scrape;
 * the last slot counts violations outside any plugin ("core": e.g. two responses from the action). The log line names
 * the plugin, what it did, the route and the request id; it is written for the first violation of a kind by a plugin on
 * a worker and then at most once a second (with the number since the last line), so a plugin that breaks the contract on every
 * request cannot flood the log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/contract.h"
#include "ficus/log.h"
#include "ficus/metrics.h"
#include "ficus/worker.h"

#define CORE_SLOT FICUS_MAX_PLUGINS

static const char *const descriptions[FICUS_CONTRACT__COUNT] = {
    "responded but returned CONTINUE",       "responded but returned PAUSE",
    "returned RESPONDED without responding", "returned a status that is not CONTINUE, PAUSE or RESPONDED",
    "resumed a request that is not paused",  "resumed a request already answered",
    "responded after resuming the request",  "sent a second response",
};

typedef struct st_contract_slot_t {
    uint64_t count[FICUS_MAX_PLUGINS + 1];
    /* worker-private: the log limiter, per plugin and kind */
    uint64_t logged_count[FICUS_MAX_PLUGINS + 1][FICUS_CONTRACT__COUNT];
    uint64_t logged_at_ms[FICUS_MAX_PLUGINS + 1][FICUS_CONTRACT__COUNT];
    uint64_t seen[FICUS_MAX_PLUGINS + 1][FICUS_CONTRACT__COUNT];
    char _pad[64];
} contract_slot_t;

static contract_slot_t slots[FICUS_MAX_WORKERS];

static size_t slot_of(const ficus_plugin_t *plugin)
{
    for (size_t i = 0; plugin != NULL && i != FICUS_MAX_PLUGINS && ficus_plugins[i] != NULL; ++i)
        if (ficus_plugins[i] == plugin)
            return i;
    return CORE_SLOT;
}

void ficus_contract_violation(ficus_req_t *r, const ficus_plugin_t *plugin, ficus_contract_violation_t what)
{
    contract_slot_t *s = slots + r->worker->index;
    size_t i = slot_of(plugin);
    ficus_counter_add(&s->count[i], 1);
    uint64_t now = h2o_now(r->worker->loop), n = ++s->seen[i][what];
    if (s->logged_count[i][what] != 0 && now - s->logged_at_ms[i][what] < 1000)
        return;
    ficus_error("plugin contract violation: plugin %s %s (route %s, request %.*s); answered 500 if nothing was sent "
                "(%llu such violation(s) by this plugin on this worker since the last line)",
                i == CORE_SLOT ? "core" : plugin->name, descriptions[what],
                r->route != NULL && r->route->name != NULL ? r->route->name : "-", (int)r->request_id.len, r->request_id.base,
                (unsigned long long)(n - s->logged_count[i][what]));
    s->logged_count[i][what] = n;
    s->logged_at_ms[i][what] = now;
}

void ficus_contract_render_metrics(h2o_mem_pool_t *pool, h2o_iovec_t *out, unsigned num_workers)
{
    char *buf;
    size_t len;
    FILE *fp = open_memstream(&buf, &len);
    if (fp == NULL)
        ficus_fatal("no memory");
    fputs("# HELP ficus_plugin_contract_violations_total Plugin contract violations (answered 500 when nothing was sent), "
          "by plugin.\n# TYPE ficus_plugin_contract_violations_total counter\n",
          fp);
    size_t num_plugins = 0;
    while (num_plugins != FICUS_MAX_PLUGINS && ficus_plugins[num_plugins] != NULL)
        ++num_plugins;
    for (size_t i = 0; i <= CORE_SLOT; ++i) {
        if (i == num_plugins)
            i = CORE_SLOT;
        uint64_t sum = 0;
        for (unsigned w = 0; w != num_workers; ++w)
            sum += ficus_counter_get(&slots[w].count[i]);
        fprintf(fp, "ficus_plugin_contract_violations_total{plugin=\"%s\"} %llu\n",
                i == CORE_SLOT ? "core" : ficus_plugins[i]->name, (unsigned long long)sum);
    }
    fclose(fp);
    *out = h2o_strdup(pool, buf, len);
    free(buf);
}
