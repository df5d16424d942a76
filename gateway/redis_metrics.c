/* What the Redis client shows: its Prometheus series (totals per process, and per server node) and its /readyz
 * state. Counters are per-worker single-writer slots (ficus/metrics.h), summed here by the admin thread.
 *
 * NODES: every server a worker connects to (the one `address`, each master the sentinels name, each cluster master)
 * gets a row in a fixed table of FICUS_REDIS_MAX_NODE_STATS names, registered once under a mutex (connects are rare)
 * and never removed, so a node's label stays bounded and its series monotonic; beyond the table, nodes are counted in
 * the totals only. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "ficus/redis.h"
#include "ficus/redis_cluster.h"
#include "ficus/redis_sentinel.h"

ficus_redis_stats_slot_t ficus_redis_stats[FICUS_MAX_WORKERS];

static ficus_redis_node_stats_t node_stats[FICUS_REDIS_MAX_NODE_STATS];
static size_t num_node_stats; /* written under node_stats_mutex, read with acquire */
static pthread_mutex_t node_stats_mutex = PTHREAD_MUTEX_INITIALIZER;

ficus_redis_node_stats_t *ficus_redis_node_stats(const char *name)
{
    size_t n = __atomic_load_n(&num_node_stats, __ATOMIC_ACQUIRE);
    for (size_t i = 0; i != n; ++i)
        if (strcmp(node_stats[i].name, name) == 0)
            return node_stats + i;
    ficus_redis_node_stats_t *found = NULL;
    pthread_mutex_lock(&node_stats_mutex);
    n = num_node_stats;
    for (size_t i = 0; i != n && found == NULL; ++i)
        if (strcmp(node_stats[i].name, name) == 0)
            found = node_stats + i;
    if (found == NULL && n < FICUS_REDIS_MAX_NODE_STATS && strlen(name) < sizeof(node_stats[n].name)) {
        found = node_stats + n;
        strcpy(found->name, name);
        __atomic_store_n(&num_node_stats, n + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&node_stats_mutex);
    return found;
}

/* A label value: `"` and `\` escaped, anything else printable kept (names are addresses). */
static size_t label_escape(char *out, const char *in)
{
    size_t n = 0;
    for (; *in != '\0'; ++in) {
        if (*in == '"' || *in == '\\')
            out[n++] = '\\';
        out[n++] = (*in >= 0x20 && *in < 0x7f) ? *in : '?';
    }
    out[n] = '\0';
    return n;
}

static void render_nodes(h2o_mem_pool_t *pool, h2o_iovec_t *out, unsigned num_workers)
{
    static const struct {
        const char *name, *type, *help;
    } series[] = {
        {"ficus_redis_node_commands_total", "counter", "Redis commands sent to this server."},
        {"ficus_redis_node_errors_total", "counter", "Error replies and dropped connections of this server."},
        {"ficus_redis_node_timeouts_total", "counter", "Commands to this server past command_timeout."},
        {"ficus_redis_node_latency_seconds", "summary", "Round-trip times of this server's answered commands."},
        {"ficus_redis_node_connected_workers", "gauge", "Workers with a usable connection to this server."},
    };
    size_t nodes = __atomic_load_n(&num_node_stats, __ATOMIC_ACQUIRE), cap = 1024 + nodes * 6 * 256, len = 0;
    char *buf = h2o_mem_alloc_pool(pool, cap);
    for (size_t k = 0; k != sizeof(series) / sizeof(series[0]); ++k) {
        if (nodes == 0)
            break;
        len += snprintf(buf + len, cap - len, "# HELP %s %s\n# TYPE %s %s\n", series[k].name, series[k].help, series[k].name,
                        series[k].type);
        for (size_t i = 0; i != nodes; ++i) {
            uint64_t v = 0;
            for (unsigned w = 0; w != num_workers; ++w) {
                const ficus_redis_node_slot_t *s = &node_stats[i].slots[w];
                v += ficus_counter_get(k == 0   ? &s->commands
                                       : k == 1 ? &s->errors
                                       : k == 2 ? &s->timeouts
                                       : k == 3 ? &s->latency_sum_us
                                                : &s->connected);
            }
            char label[2 * sizeof(node_stats[i].name)];
            label_escape(label, node_stats[i].name);
            if (k == 3) {
                uint64_t count = 0;
                for (unsigned w = 0; w != num_workers; ++w)
                    count += ficus_counter_get(&node_stats[i].slots[w].replies);
                len += snprintf(buf + len, cap - len, "%s_sum{node=\"%s\"} %.6f\n%s_count{node=\"%s\"} %llu\n", series[k].name,
                                label, v / 1e6, series[k].name, label, (unsigned long long)count);
            } else
                len += snprintf(buf + len, cap - len, "%s{node=\"%s\"} %llu\n", series[k].name, label, (unsigned long long)v);
        }
    }
    *out = h2o_iovec_init(buf, len);
}

void ficus_redis_render_metrics(h2o_mem_pool_t *pool, h2o_iovec_t *out, unsigned num_workers)
{
    uint64_t commands = 0, errors = 0, timeouts = 0, unavailable = 0, reconnects = 0, latency = 0, replies = 0, opens = 0,
             connected = 0, breaker_open = 0, failovers = 0;
    for (unsigned w = 0; w != num_workers; ++w) {
        ficus_redis_stats_slot_t *s = ficus_redis_stats + w;
        commands += ficus_counter_get(&s->commands);
        errors += ficus_counter_get(&s->errors);
        timeouts += ficus_counter_get(&s->timeouts);
        unavailable += ficus_counter_get(&s->unavailable);
        reconnects += ficus_counter_get(&s->reconnects);
        latency += ficus_counter_get(&s->latency_sum_us);
        replies += ficus_counter_get(&s->replies);
        opens += ficus_counter_get(&s->breaker_opens);
        breaker_open += ficus_counter_get(&s->breaker_open);
        connected += ficus_counter_get(&s->connected);
        failovers += ficus_counter_get(&s->failovers);
    }
    char master[64];
    size_t master_len = ficus_redis_sentinel_last_master(master, sizeof(master));
    size_t cap = 3800 + 128 /* latency summary: _count */ + master_len;
    char *buf = h2o_mem_alloc_pool(pool, cap);
    int n = snprintf(
        buf, cap,
        "# HELP ficus_redis_commands_total Redis commands (round trips) issued.\n# TYPE ficus_redis_commands_total counter\n"
        "ficus_redis_commands_total %llu\n"
        "# HELP ficus_redis_errors_total Redis error replies and dropped connections.\n# TYPE ficus_redis_errors_total counter\n"
        "ficus_redis_errors_total %llu\n"
        "# HELP ficus_redis_timeouts_total Redis commands past command_timeout.\n# TYPE ficus_redis_timeouts_total counter\n"
        "ficus_redis_timeouts_total %llu\n"
        "# HELP ficus_redis_unavailable_total Commands refused locally (not connected, circuit open, too many pending).\n"
        "# TYPE ficus_redis_unavailable_total counter\nficus_redis_unavailable_total %llu\n"
        "# HELP ficus_redis_connects_total Connection attempts.\n# TYPE ficus_redis_connects_total counter\n"
        "ficus_redis_connects_total %llu\n"
        "# HELP ficus_redis_latency_seconds Redis round-trip times of answered commands.\n"
        "# TYPE ficus_redis_latency_seconds summary\nficus_redis_latency_seconds_sum %.6f\n"
        "ficus_redis_latency_seconds_count %llu\n"
        "# HELP ficus_redis_breaker_opens_total Times the Redis circuit breaker opened.\n"
        "# TYPE ficus_redis_breaker_opens_total counter\nficus_redis_breaker_opens_total %llu\n"
        "# HELP ficus_redis_connected_workers Workers with a live Redis connection.\n"
        "# TYPE ficus_redis_connected_workers gauge\nficus_redis_connected_workers %llu\n"
        "# HELP ficus_redis_breaker_open_workers Workers whose Redis circuit is open (or half-open).\n"
        "# TYPE ficus_redis_breaker_open_workers gauge\nficus_redis_breaker_open_workers %llu\n"
        "# HELP ficus_redis_failovers_total Switches of a worker's connection to a new master named by the sentinels.\n"
        "# TYPE ficus_redis_failovers_total counter\nficus_redis_failovers_total %llu\n",
        (unsigned long long)commands, (unsigned long long)errors, (unsigned long long)timeouts, (unsigned long long)unavailable,
        (unsigned long long)reconnects, latency / 1e6, (unsigned long long)replies, (unsigned long long)opens,
        (unsigned long long)connected, (unsigned long long)breaker_open, (unsigned long long)failovers);
    h2o_iovec_t cl;
    ficus_redis_cluster_render_metrics(pool, &cl, num_workers);
    if ((size_t)n + cl.len < cap) {
        memcpy(buf + n, cl.base, cl.len);
        n += (int)cl.len;
    }
    if (master_len != 0)
        n += snprintf(buf + n, cap - n,
                      "# HELP ficus_redis_master The master the sentinels named last (sentinel mode).\n"
                      "# TYPE ficus_redis_master gauge\nficus_redis_master{node=\"%s\"} 1\n",
                      master);
    h2o_iovec_t nodes;
    render_nodes(pool, &nodes, num_workers);
    char *all = h2o_mem_alloc_pool(pool, n + nodes.len);
    memcpy(all, buf, n);
    memcpy(all + n, nodes.base, nodes.len);
    *out = h2o_iovec_init(all, n + nodes.len);
}

void ficus_redis_render_readyz(h2o_mem_pool_t *pool, const ficus_redis_conf_t *conf, unsigned num_workers, h2o_iovec_t *out)
{
    uint64_t connected = 0, breaker_open = 0;
    for (unsigned w = 0; w != num_workers; ++w) {
        connected += ficus_counter_get(&ficus_redis_stats[w].connected);
        breaker_open += ficus_counter_get(&ficus_redis_stats[w].breaker_open);
    }
    char master[64] = "";
    if (conf->sentinel.master != NULL)
        ficus_redis_sentinel_last_master(master, sizeof(master));
    size_t cap = 256 + strlen(conf->address) + (conf->sentinel.master != NULL ? strlen(conf->sentinel.master) : 0);
    char *buf = h2o_mem_alloc_pool(pool, cap);
    int n;
    if (conf->cluster.num_seeds != 0)
        n = snprintf(buf, cap, "{\"mode\":\"cluster\",\"masters\":%zu,\"connected_workers\":%llu,\"breaker_open_workers\":%llu}",
                     ficus_redis_cluster_num_masters(), (unsigned long long)connected, (unsigned long long)breaker_open);
    else if (conf->sentinel.master != NULL)
        n = snprintf(buf, cap,
                     "{\"mode\":\"sentinel\",\"master_name\":\"%s\",\"master\":\"%s\",\"connected_workers\":%llu,"
                     "\"breaker_open_workers\":%llu}",
                     conf->sentinel.master, master, (unsigned long long)connected, (unsigned long long)breaker_open);
    else
        n = snprintf(buf, cap, "{\"mode\":\"single\",\"address\":\"%s\",\"connected_workers\":%llu,\"breaker_open_workers\":%llu}",
                     conf->address, (unsigned long long)connected, (unsigned long long)breaker_open);
    *out = h2o_iovec_init(buf, (size_t)n < cap ? (size_t)n : cap - 1);
}
