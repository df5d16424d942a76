/* shed: load shedding by route priority, on local signals (in-flight requests, event loop lag) and on fleet state
 * kept in Redis (an operator-set shed level, an optional fleet-wide in-flight budget).
 *
 *   shedding:
 *     max_inflight: 4096                                  # per instance (all workers)
 *     thresholds: { low: 50%, normal: 75%, high: 90% }    # critical: only at 100 %
 *     max_loop_lag: 250ms                                 # 0 = off; a lagging worker sheds low and normal
 *     retry_after: 1s
 *     fleet: { key_prefix: "ficus:shed", poll_interval: 500ms, max_inflight: 20000 }   # optional; needs `redis:`
 *   routes:
 *     - { name: x, priority: low | normal | high | critical, ... }                   # default normal
 *
 * DECISION (on_request, first plugin of the table, before authentication): a request whose priority is not critical
 * is shed when, in this order of reasons: the instance in-flight count (this request included; the sum of
 * ficus_worker_stats[w].inflight over workers, relaxed loads) exceeds threshold[priority] x max_inflight
 * ("inflight"); the fleet level covers its priority: level 1 sheds low, 2 low+normal, 3 low+normal+high
 * ("fleet_level"); the instance in-flight exceeds this instance's share of the fleet budget, fleet max_inflight /
 * live instances ("fleet_budget"); it is low or normal and its worker's loop lag exceeds max_loop_lag ("loop_lag").
 * A critical request is shed only when in-flight exceeds max_inflight (100 %). A shed request costs a few loads and
 * one local reply: 503, `Retry-After`, {"error":"overloaded"}, access-log error "shed_<reason>", no upstream work.
 * An admitted request is counted in its worker's in-flight-by-priority slot until its pool is disposed.
 *
 * LOOP LAG: every worker runs a 100 ms h2o_timeout (H2O 2.2.5 timeouts have a fixed duration and belong to one loop:
 * initialised on the worker's loop from its own thread, in on_worker_generation) and records how late it fired
 * against CLOCK_MONOTONIC (last value; read by its own requests and by /metrics). A request also sees the tick
 * overdue by the loop's own clock: after a stall the loop runs the requests it reads before its timers.
 *
 * FLEET: worker 0 alone, on that same tick, every poll_interval, runs one Lua script on its Redis connection. Keys
 * share the hash tag {<key_prefix>} so one script touches one cluster slot:
 *   {<key_prefix>}:level      string 0..3, set by operators (`redis-cli SET '{ficus:shed}:level' 2`); absent,
 *                              unparsable or negative = 0, above 3 = 3
 *   {<key_prefix>}:instances  hash: "hostname:pid" -> "<inflight> <requests/s> <redis TIME in ms>"; entries older
 *                              than 3 poll intervals are dropped by the script, the key expires after 3 intervals
 * The script records this instance, drops stale ones, reads the level and returns {level, total inflight, live
 * instances}; worker 0 stores that in process-global atomics every worker reads (relaxed). When Redis is down, slow
 * or answers garbage, the last state is kept for at most FLEET_STALE_MS after the last good answer, then the level
 * and the budget are dropped (level 0): local shedding never depends on Redis. One warning per outage.
 *
 * THREADING: nothing on the request path takes a lock or writes shared state: counters are per-worker single-writer
 * slots (ficus/metrics.h style), the fleet state has one writer (worker 0). Per-worker runtime state lives in a static
 * array indexed by worker (not thread-local storage: the loop keeps pointers to the timeout after the thread ends).
 * Config lifetime: a route conf points to its generation's global conf (same lifetime); a worker keeps the global conf
 * of its current generation, replaced in on_worker_generation before the old generation can go away.
 * EXPORTS: ficus_plugin_shed only (its metrics reach /metrics through the plugin's render_metrics hook). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ficus/clock.h"
#include "ficus/config.h"
#include "ficus/log.h"
#include "ficus/metrics.h"
#include "ficus/plugin.h"
#include "ficus/redis.h"
#include "ficus/worker.h"

#define TICK_MS 100
#define FLEET_STALE_MS 5000
#define MAX_KEY_PREFIX 128

enum { PRIO_LOW, PRIO_NORMAL, PRIO_HIGH, PRIO_CRITICAL, PRIO__COUNT };
enum { REASON_INFLIGHT, REASON_LOOP_LAG, REASON_FLEET_LEVEL, REASON_FLEET_BUDGET, REASON__COUNT };

static const char *const prio_names[PRIO__COUNT] = {"low", "normal", "high", "critical"};
static const char *const reason_names[REASON__COUNT] = {"inflight", "loop_lag", "fleet_level", "fleet_budget"};
static const char *const reason_log[REASON__COUNT] = {"shed_inflight", "shed_loop_lag", "shed_fleet_level", "shed_fleet_budget"};

typedef struct st_shed_global_t {
    uint64_t max_inflight;
    unsigned percent[PRIO_CRITICAL]; /* low, normal, high */
    uint64_t limit[PRIO__COUNT];     /* a request of priority p is admitted while instance in-flight <= limit[p] */
    uint64_t max_loop_lag_us;        /* 0 = off */
    char retry_after[24];            /* seconds, as sent */
    size_t retry_after_len;
    struct {
        int enabled;
        char *key_prefix;
        char *key_instances, *key_level;
        uint64_t poll_interval_ms;
        uint64_t max_inflight; /* 0 = no fleet budget */
    } fleet;
} shed_global_t;

typedef struct st_shed_route_t {
    const shed_global_t *global;
    int priority;
} shed_route_t;

/* per-worker counters: written by their worker only, read by /metrics */
typedef struct st_shed_stats_slot_t {
    uint64_t shed[PRIO__COUNT][REASON__COUNT];
    uint64_t inflight[PRIO__COUNT];
    uint64_t requests; /* seen by the plugin, admitted or shed (for requests/s) */
    uint64_t loop_lag_us;
    char _pad[64];
} shed_stats_slot_t;

static shed_stats_slot_t shed_stats[FICUS_MAX_WORKERS];

/* fleet state: written by worker 0 only, read by every worker and /metrics (relaxed) */
static struct {
    uint64_t level;
    uint64_t budget_share; /* 0 = no budget in force */
    uint64_t inflight, instances;
} fleet_state;

/* per-worker runtime (touched by its worker thread only) */
typedef struct st_shed_worker_t {
    int initialized;
    ficus_worker_t *w;
    const shed_global_t *global; /* of the worker's current generation, or NULL */
    h2o_timeout_t tick;
    h2o_timeout_entry_t tick_entry;
    uint64_t expected_us;      /* when the tick should fire (CLOCK_MONOTONIC) */
    uint64_t expected_loop_ms; /* the same in loop time (h2o_now), for requests seeing the tick overdue */
    /* worker 0: fleet polling */
    uint64_t next_poll_ms;
    ficus_redis_cmd_t *pending;
    uint64_t last_ok_ms; /* 0 = no good answer in force */
    int in_outage;
    uint64_t rate_requests, rate_at_ms;
    uint64_t rps;
} shed_worker_t;

static shed_worker_t shed_workers[FICUS_MAX_WORKERS];

static const ficus_plugin_t *self_plugin(void);

static void gauge_set(uint64_t *g, uint64_t v)
{
    __atomic_store_n(g, v, __ATOMIC_RELAXED);
}

/* ---- configuration ---- */

static int parse_percent(ficus_conf_ctx_t *cc, const ficus_node_t *node, const char *name, unsigned *out)
{
    const char *s = node->data.scalar.value;
    size_t len = node->data.scalar.len;
    unsigned v = 0;
    if (len < 2 || len > 4 || s[len - 1] != '%')
        goto Bad;
    for (size_t i = 0; i != len - 1; ++i) {
        if (s[i] < '0' || s[i] > '9')
            goto Bad;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v < 1 || v > 100)
        goto Bad;
    *out = v;
    return 0;
Bad:
    return ficus_conf_error(cc, node, "shedding.thresholds.%s must be a percentage from 1%% to 100%% such as 50%% (got '%.32s')",
                            name, s);
}

static int load_thresholds(ficus_conf_ctx_t *cc, const ficus_node_t *node, shed_global_t *g)
{
    ficus_node_t *nodes[PRIO_CRITICAL];
    if (ficus_conf_mapping(cc, node, "", "low:s,normal:s,high:s", &nodes[0], &nodes[1], &nodes[2]) != 0)
        return -1;
    for (int p = 0; p != PRIO_CRITICAL; ++p)
        if (nodes[p] != NULL && parse_percent(cc, nodes[p], prio_names[p], &g->percent[p]) != 0)
            return -1;
    for (int p = 1; p != PRIO_CRITICAL; ++p)
        if (g->percent[p] <= g->percent[p - 1]) {
            const ficus_node_t *at = nodes[p] != NULL ? nodes[p] : nodes[p - 1] != NULL ? nodes[p - 1] : node;
            return ficus_conf_error(cc, at, "shedding.thresholds must increase: low (%u%%) < normal (%u%%) < high (%u%%)",
                                    g->percent[0], g->percent[1], g->percent[2]);
        }
    return 0;
}

static int load_key_prefix(ficus_conf_ctx_t *cc, const ficus_node_t *node, char **out)
{
    if (ficus_conf_expect(cc, node, FICUS_NODE_SCALAR) != 0)
        return -1;
    const char *s = node->data.scalar.value;
    if (node->data.scalar.len == 0 || node->data.scalar.len > MAX_KEY_PREFIX)
        return ficus_conf_error(cc, node, "shedding.fleet.key_prefix must be 1 to %d characters", MAX_KEY_PREFIX);
    for (size_t i = 0; i != node->data.scalar.len; ++i)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f || s[i] == '{' || s[i] == '}')
            return ficus_conf_error(cc, node,
                                    "shedding.fleet.key_prefix may not contain spaces, control characters or braces "
                                    "(ficus adds the {hash tag} itself)");
    *out = strdup(s);
    if (*out == NULL)
        ficus_fatal("no memory");
    return 0;
}

static int load_fleet(ficus_conf_ctx_t *cc, const ficus_node_t *node, shed_global_t *g)
{
    ficus_node_t *prefix, *interval, *max;
    if (ficus_conf_mapping(cc, node, "", "key_prefix:s,poll_interval:s,max_inflight:s", &prefix, &interval, &max) != 0)
        return -1;
    if (cc->config == NULL || cc->config->redis == NULL)
        return ficus_conf_error(cc, node, "shedding.fleet needs a `redis:` section");
    g->fleet.enabled = 1;
    g->fleet.poll_interval_ms = 500;
    if (prefix != NULL) {
        if (load_key_prefix(cc, prefix, &g->fleet.key_prefix) != 0)
            return -1;
    } else if ((g->fleet.key_prefix = strdup("ficus:shed")) == NULL) {
        ficus_fatal("no memory");
    }
    if (interval != NULL && ficus_conf_duration(cc, interval, TICK_MS, 60000, &g->fleet.poll_interval_ms) != 0)
        return -1;
    if (max != NULL && ficus_conf_uint(cc, max, 1, 1000000000, &g->fleet.max_inflight) != 0)
        return -1;
    size_t len = strlen(g->fleet.key_prefix) + 16;
    g->fleet.key_instances = malloc(len);
    g->fleet.key_level = malloc(len);
    if (g->fleet.key_instances == NULL || g->fleet.key_level == NULL)
        ficus_fatal("no memory");
    snprintf(g->fleet.key_instances, len, "{%s}:instances", g->fleet.key_prefix);
    snprintf(g->fleet.key_level, len, "{%s}:level", g->fleet.key_prefix);
    return 0;
}

static void global_dispose(void *_g)
{
    shed_global_t *g = _g;
    if (g == NULL)
        return;
    free(g->fleet.key_prefix);
    free(g->fleet.key_instances);
    free(g->fleet.key_level);
    free(g);
}

static int on_global_config(ficus_conf_ctx_t *cc, const ficus_node_t *node, void **gconf)
{
    if (node == NULL)
        return 0; /* no shedding; a route's `priority:` is then an error */
    ficus_node_t *max, *thresholds, *lag, *retry, *fleet;
    if (ficus_conf_mapping(cc, node, "", "max_inflight:s,thresholds:m,max_loop_lag:s,retry_after:s,fleet:m", &max, &thresholds,
                           &lag, &retry, &fleet) != 0)
        return -1;
    shed_global_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        ficus_fatal("no memory");
    g->max_inflight = 4096;
    g->percent[PRIO_LOW] = 50, g->percent[PRIO_NORMAL] = 75, g->percent[PRIO_HIGH] = 90;
    uint64_t lag_ms = 250, retry_ms = 1000;
    if ((max != NULL && ficus_conf_uint(cc, max, 1, 10000000, &g->max_inflight) != 0) ||
        (thresholds != NULL && load_thresholds(cc, thresholds, g) != 0) ||
        (lag != NULL && ficus_conf_duration(cc, lag, 0, 60000, &lag_ms) != 0) ||
        (retry != NULL && ficus_conf_duration(cc, retry, 1000, 3600000, &retry_ms) != 0) ||
        (fleet != NULL && load_fleet(cc, fleet, g) != 0)) {
        global_dispose(g);
        return -1;
    }
    for (int p = 0; p != PRIO_CRITICAL; ++p)
        g->limit[p] = g->max_inflight * g->percent[p] / 100;
    g->limit[PRIO_CRITICAL] = g->max_inflight;
    g->max_loop_lag_us = lag_ms * 1000;
    g->retry_after_len =
        (size_t)snprintf(g->retry_after, sizeof(g->retry_after), "%llu", (unsigned long long)((retry_ms + 999) / 1000));
    *gconf = g;
    return 0;
}

static int on_config(ficus_conf_ctx_t *cc, const ficus_node_t *node, void **conf)
{
    const shed_global_t *g = cc->config != NULL ? ficus_config_plugin_global(cc->config, self_plugin()) : NULL;
    if (g == NULL)
        return ficus_conf_error(cc, node, "`priority` needs a top-level `shedding:` section (max_inflight, thresholds)");
    int priority = PRIO_NORMAL;
    if (node != NULL) { /* NULL: a route without `priority:` */
        if (ficus_conf_expect(cc, node, FICUS_NODE_SCALAR) != 0)
            return -1;
        for (priority = 0; priority != PRIO__COUNT; ++priority)
            if (strcmp(node->data.scalar.value, prio_names[priority]) == 0)
                break;
        if (priority == PRIO__COUNT)
            return ficus_conf_error(cc, node, "priority must be one of: critical, high, normal, low (got '%.32s')",
                                    node->data.scalar.value);
    }
    shed_route_t *rc = calloc(1, sizeof(*rc));
    if (rc == NULL)
        ficus_fatal("no memory");
    rc->global = g;
    rc->priority = priority;
    *conf = rc;
    return 0;
}

static void dispose(void *conf)
{
    free(conf);
}

/* ---- the request path ---- */

typedef struct st_shed_admitted_t {
    unsigned worker;
    int priority;
} shed_admitted_t;

static void on_admitted_dispose(void *_a)
{
    shed_admitted_t *a = _a;
    ficus_counter_add(&shed_stats[a->worker].inflight[a->priority], (uint64_t)-1);
}

static uint64_t instance_inflight(void)
{
    uint64_t n = 0;
    for (unsigned i = 0; i != ficus_num_workers; ++i)
        n += ficus_counter_get(&ficus_worker_stats[i].inflight);
    return n;
}

/* The worker's loop lag: the last measured one, or more if the tick is overdue right now (a loop that was stuck runs
 * the requests it then reads before its timers: they must see the lag). h2o_now() is the loop's cached clock. */
static uint64_t loop_lag_us(unsigned wi, h2o_loop_t *loop)
{
    uint64_t lag = ficus_counter_get(&shed_stats[wi].loop_lag_us), now = h2o_now(loop),
             expected = shed_workers[wi].expected_loop_ms;
    if (expected != 0 && now > expected && (now - expected) * 1000 > lag)
        lag = (now - expected) * 1000;
    return lag;
}

static ficus_status_t on_request(void *_conf, ficus_req_t *req)
{
    const shed_route_t *rc = _conf;
    const shed_global_t *g = rc->global;
    const int p = rc->priority;
    const unsigned wi = req->worker->index;
    shed_stats_slot_t *slot = shed_stats + wi;
    ficus_counter_add(&slot->requests, 1);

    const uint64_t inflight = instance_inflight(); /* includes this request */
    int reason = -1;
    if (inflight > g->limit[p]) {
        reason = REASON_INFLIGHT;
    } else if (p != PRIO_CRITICAL) {
        uint64_t level = ficus_counter_get(&fleet_state.level), share = ficus_counter_get(&fleet_state.budget_share);
        if ((uint64_t)p < level)
            reason = REASON_FLEET_LEVEL;
        else if (share != 0 && inflight > share)
            reason = REASON_FLEET_BUDGET;
        else if (p <= PRIO_NORMAL && g->max_loop_lag_us != 0 && loop_lag_us(wi, req->worker->loop) > g->max_loop_lag_us)
            reason = REASON_LOOP_LAG;
    }
    if (reason >= 0) {
        ficus_counter_add(&slot->shed[p][reason], 1);
        h2o_req_t *h = req->h2o;
        h2o_add_header(&h->pool, &h->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, g->retry_after, g->retry_after_len);
        if (req->error == NULL)
            req->error = reason_log[reason];
        ficus_req_respond_error(req, 503, "overloaded");
        return FICUS_RESPONDED;
    }

    ficus_counter_add(&slot->inflight[p], 1);
    shed_admitted_t *a = h2o_mem_alloc_shared(&req->h2o->pool, sizeof(*a), on_admitted_dispose);
    a->worker = wi;
    a->priority = p;
    return FICUS_CONTINUE;
}

/* ---- fleet state (worker 0) ---- */

/* KEYS[1] instances hash, KEYS[2] level; ARGV: instance id, in-flight, requests/s, stale after (ms).
 * Replies are bounded: always three integers. */
static const char fleet_lua[] = "if redis.replicate_commands then redis.replicate_commands() end\n"
                                "local t = redis.call('TIME')\n"
                                "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
                                "local stale = tonumber(ARGV[4])\n"
                                "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. now)\n"
                                "local all = redis.call('HGETALL', KEYS[1])\n"
                                "local total, live = 0, 0\n"
                                "for i = 1, #all, 2 do\n"
                                "  local n, r, ts = string.match(all[i + 1], '^(%d+) (%d+) (%d+)$')\n"
                                "  if ts == nil or now - tonumber(ts) > stale then\n"
                                "    redis.call('HDEL', KEYS[1], all[i])\n"
                                "  else\n"
                                "    total = total + tonumber(n)\n"
                                "    live = live + 1\n"
                                "  end\n"
                                "end\n"
                                "redis.call('PEXPIRE', KEYS[1], stale)\n"
                                "local level = tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n"
                                "level = math.floor(level)\n"
                                "if level < 0 then level = 0 end\n"
                                "if level > 3 then level = 3 end\n"
                                "return {level, total, live}\n";

static ficus_redis_script_t fleet_script = {fleet_lua};
static pthread_once_t fleet_script_once = PTHREAD_ONCE_INIT;
static char instance_id[300];

static void init_fleet_script(void)
{
    ficus_redis_script_init(&fleet_script);
    char host[256];
    if (gethostname(host, sizeof(host)) != 0)
        strcpy(host, "unknown");
    host[sizeof(host) - 1] = '\0';
    snprintf(instance_id, sizeof(instance_id), "%s:%d", host, (int)getpid());
}

static void fleet_clear(void)
{
    gauge_set(&fleet_state.level, 0);
    gauge_set(&fleet_state.budget_share, 0);
    gauge_set(&fleet_state.inflight, 0);
    gauge_set(&fleet_state.instances, 0);
}

static void fleet_failed(shed_worker_t *sw, const char *why)
{
    if (sw->in_outage)
        return;
    sw->in_outage = 1;
    ficus_warn("shedding: fleet state unavailable from Redis (%s); keeping shed level %llu for at most %ds, then 0; local "
               "shedding goes on",
               why, (unsigned long long)ficus_counter_get(&fleet_state.level), FLEET_STALE_MS / 1000);
}

static void on_fleet_reply(void *data, redisReply *reply, const char *err)
{
    shed_worker_t *sw = data;
    sw->pending = NULL;
    const shed_global_t *g = sw->global;
    if (g == NULL || !g->fleet.enabled)
        return; /* reconfigured meanwhile */
    if (err != NULL) {
        fleet_failed(sw, err);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 || reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_INTEGER || reply->element[2]->type != REDIS_REPLY_INTEGER) {
        fleet_failed(sw, reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        return;
    }
    long long level = reply->element[0]->integer, total = reply->element[1]->integer, live = reply->element[2]->integer;
    if (level < 0)
        level = 0;
    if (level > 3)
        level = 3;
    if (total < 0)
        total = 0;
    if (live < 1)
        live = 1; /* this instance has just written itself */
    gauge_set(&fleet_state.level, (uint64_t)level);
    gauge_set(&fleet_state.inflight, (uint64_t)total);
    gauge_set(&fleet_state.instances, (uint64_t)live);
    gauge_set(&fleet_state.budget_share,
              g->fleet.max_inflight != 0 ? (g->fleet.max_inflight + (uint64_t)live - 1) / (uint64_t)live : 0);
    sw->last_ok_ms = ficus_mono_us() / 1000;
    if (sw->in_outage) {
        sw->in_outage = 0;
        ficus_info("shedding: fleet state from Redis is back (level %lld, %lld instances)", level, live);
    }
}

static void fleet_tick(shed_worker_t *sw, uint64_t now_ms)
{
    const shed_global_t *g = sw->global;
    if (sw->last_ok_ms != 0 && now_ms - sw->last_ok_ms > FLEET_STALE_MS) {
        sw->last_ok_ms = 0;
        fleet_clear();
        fleet_failed(sw, "no answer");
    }
    if (sw->pending != NULL || now_ms < sw->next_poll_ms)
        return;
    sw->next_poll_ms = now_ms + g->fleet.poll_interval_ms;
    if (sw->w->redis == NULL)
        return;
    /* requests per second since the previous poll, over all workers */
    uint64_t requests = 0;
    for (unsigned i = 0; i != ficus_num_workers; ++i)
        requests += ficus_counter_get(&shed_stats[i].requests);
    if (sw->rate_at_ms != 0 && now_ms > sw->rate_at_ms)
        sw->rps = (requests - sw->rate_requests) * 1000 / (now_ms - sw->rate_at_ms);
    sw->rate_requests = requests;
    sw->rate_at_ms = now_ms;

    char inflight[24], rps[24], stale[24];
    snprintf(inflight, sizeof(inflight), "%llu", (unsigned long long)instance_inflight());
    snprintf(rps, sizeof(rps), "%llu", (unsigned long long)sw->rps);
    snprintf(stale, sizeof(stale), "%llu", (unsigned long long)(3 * g->fleet.poll_interval_ms));
    const char *argv[] = {g->fleet.key_instances, g->fleet.key_level, instance_id, inflight, rps, stale};
    size_t argvlen[6];
    for (size_t i = 0; i != 6; ++i)
        argvlen[i] = strlen(argv[i]);
    sw->pending = ficus_redis_eval(sw->w->redis, &fleet_script, 2, 6, argv, argvlen, on_fleet_reply, sw);
}

/* ---- per-worker tick: loop lag, and the fleet poll on worker 0 ---- */

static void on_tick(h2o_timeout_entry_t *entry)
{
    shed_worker_t *sw = H2O_STRUCT_FROM_MEMBER(shed_worker_t, tick_entry, entry);
    uint64_t now = ficus_mono_us();
    gauge_set(&shed_stats[sw->w->index].loop_lag_us, now > sw->expected_us ? now - sw->expected_us : 0);
    if (sw->w->index == 0 && sw->global != NULL && sw->global->fleet.enabled)
        fleet_tick(sw, now / 1000);
    sw->expected_us = ficus_mono_us() + TICK_MS * 1000;
    sw->expected_loop_ms = h2o_now(sw->w->loop) + TICK_MS;
    h2o_timeout_link(sw->w->loop, &sw->tick, &sw->tick_entry);
}

static void on_worker_generation(void *gconf, ficus_worker_t *w, const ficus_config_t *config)
{
    shed_worker_t *sw = shed_workers + w->index;
    const shed_global_t *g = gconf;
    if (!sw->initialized) {
        sw->initialized = 1;
        sw->w = w;
        h2o_timeout_init(w->loop, &sw->tick, TICK_MS);
        sw->tick_entry.cb = on_tick;
    }
    sw->global = g;
    if (g != NULL && !h2o_timeout_is_linked(&sw->tick_entry)) {
        sw->expected_us = ficus_mono_us() + TICK_MS * 1000;
        sw->expected_loop_ms = h2o_now(w->loop) + TICK_MS;
        h2o_timeout_link(w->loop, &sw->tick, &sw->tick_entry);
    } else if (g == NULL && h2o_timeout_is_linked(&sw->tick_entry)) {
        h2o_timeout_unlink(&sw->tick_entry);
        sw->expected_loop_ms = 0;
        gauge_set(&shed_stats[w->index].loop_lag_us, 0);
    }
    if (w->index != 0)
        return;
    if (g == NULL || !g->fleet.enabled) {
        /* the pending command (if any) completes into on_fleet_reply, which ignores it */
        sw->last_ok_ms = 0;
        sw->in_outage = 0;
        fleet_clear();
        return;
    }
    pthread_once(&fleet_script_once, init_fleet_script);
    sw->next_poll_ms = 0; /* poll on the next tick: the key prefix or the budget may have changed */
}

/* ---- metrics ---- */

static void render_metrics(h2o_mem_pool_t *pool, h2o_iovec_t *out, unsigned num_workers)
{
    size_t cap = 8192 + (size_t)num_workers * 96, n = 0;
    char *buf = h2o_mem_alloc_pool(pool, cap);
#define APPEND(...) n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__)
    APPEND("# HELP ficus_shed_total Requests shed (503 overloaded), by route priority and reason.\n"
           "# TYPE ficus_shed_total counter\n");
    for (int p = 0; p != PRIO__COUNT; ++p) {
        for (int r = 0; r != REASON__COUNT; ++r) {
            uint64_t v = 0;
            for (unsigned w = 0; w != num_workers; ++w)
                v += ficus_counter_get(&shed_stats[w].shed[p][r]);
            APPEND("ficus_shed_total{priority=\"%s\",reason=\"%s\"} %llu\n", prio_names[p], reason_names[r], (unsigned long long)v);
        }
    }
    APPEND("# HELP ficus_shed_level Fleet shed level in force (0 none, 1 low, 2 low+normal, 3 all but critical).\n"
           "# TYPE ficus_shed_level gauge\nficus_shed_level %llu\n"
           "# HELP ficus_fleet_inflight In-flight requests of the whole fleet, as last read from Redis.\n"
           "# TYPE ficus_fleet_inflight gauge\nficus_fleet_inflight %llu\n"
           "# HELP ficus_fleet_instances Live ficus instances publishing their load to Redis.\n"
           "# TYPE ficus_fleet_instances gauge\nficus_fleet_instances %llu\n"
           "# HELP ficus_inflight_by_priority Admitted requests in flight, by route priority.\n"
           "# TYPE ficus_inflight_by_priority gauge\n",
           (unsigned long long)ficus_counter_get(&fleet_state.level), (unsigned long long)ficus_counter_get(&fleet_state.inflight),
           (unsigned long long)ficus_counter_get(&fleet_state.instances));
    for (int p = 0; p != PRIO__COUNT; ++p) {
        uint64_t v = 0;
        for (unsigned w = 0; w != num_workers; ++w)
            v += ficus_counter_get(&shed_stats[w].inflight[p]);
        APPEND("ficus_inflight_by_priority{priority=\"%s\"} %llu\n", prio_names[p], (unsigned long long)v);
    }
    APPEND("# HELP ficus_loop_lag_seconds How late the worker's 100 ms timer last fired.\n# TYPE ficus_loop_lag_seconds gauge\n");
    for (unsigned w = 0; w != num_workers; ++w)
        APPEND("ficus_loop_lag_seconds{worker=\"%u\"} %.6f\n", w, ficus_counter_get(&shed_stats[w].loop_lag_us) / 1e6);
#undef APPEND
    *out = h2o_iovec_init(buf, n < cap ? n : cap - 1);
}

const ficus_plugin_t ficus_plugin_shed = {
    .name = "priority",
    .on_config = on_config,
    .dispose = dispose,
    .on_request = on_request,
    .applies_to_every_route = 1, /* with a `shedding:` section, a route without `priority:` is normal */
    .global_key = "shedding",
    .on_global_config = on_global_config,
    .global_dispose = global_dispose,
    .render_metrics = render_metrics,
    .on_worker_generation = on_worker_generation,
};

static const ficus_plugin_t *self_plugin(void)
{
    return &ficus_plugin_shed;
}
