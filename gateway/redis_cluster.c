/* Redis Cluster routing: slot map, one client per master, MOVED/ASK (see ficus/redis_cluster.h for the design). */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "ficus/log.h"
#include "ficus/metrics.h"
#include "ficus/redis_cluster.h"

#define REFRESH_PERIOD_MS 10000
#define REFRESH_SOON_MS 200     /* after an error: at most one refresh per this */
#define REFRESH_DEGRADED_MS 250 /* while a master of the map is down (a failover under way) */

typedef struct st_cluster_stats_t {
    uint64_t refreshes, moved, ask, masters;
    char _pad[64];
} cluster_stats_t;

static cluster_stats_t stats[FICUS_MAX_WORKERS];

typedef struct st_node_t {
    char host[INET6_ADDRSTRLEN];
    int port;
    ficus_redis_t *client;
    int in_map; /* a master of the current map */
} node_t;

struct st_ficus_redis_cluster_t {
    h2o_loop_t *loop;
    unsigned worker;
    ficus_redis_conf_t conf; /* what each node's client is created with (host/port set per node); strings owned here */
    char **seed_hosts;
    int *seed_ports;
    size_t num_seeds;
    node_t *nodes[FICUS_REDIS_MAX_CLUSTER_NODES]; /* stable indices; NULL = free */
    uint8_t slots[FICUS_REDIS_CLUSTER_SLOTS];     /* node index + 1; 0 = no master known */
    int have_map;
    int refresh_pending;
    uint64_t refresh_at_ms, last_refresh_ms;
    size_t num_cmds; /* commands (and the refresh) not yet delivered: the cluster is freed after the last */
    int destroyed;
    h2o_timeout_t zero_timeout, tick_timeout;
    h2o_timeout_entry_t tick_entry;
};

struct st_ficus_redis_ccmd_t {
    int is_cluster; /* 1; the first member, as ficus_redis_cmd_t's (see ficus_redis_cancel) */
    ficus_redis_cluster_t *c;
    ficus_redis_cb cb;
    void *data;
    int delivered;
    ficus_redis_cmd_t *child; /* the command on a node's client, or NULL */
    const ficus_redis_script_t *script;
    int numkeys, argc;
    char **argv;
    size_t *argvlen;
    unsigned slot;
    int redirects;
    h2o_timeout_entry_t defer;
    const char *deferred_err;
};

/* ---- slots ---- */

static uint16_t crc16_table[256];
static pthread_once_t crc16_once = PTHREAD_ONCE_INIT;

static void crc16_init(void)
{
    for (unsigned i = 0; i != 256; ++i) {
        uint16_t crc = (uint16_t)(i << 8);
        for (int b = 0; b != 8; ++b)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
        crc16_table[i] = crc;
    }
}

unsigned ficus_redis_key_slot(const char *key, size_t len)
{
    pthread_once(&crc16_once, crc16_init);
    const char *open = memchr(key, '{', len);
    if (open != NULL) {
        const char *close = memchr(open + 1, '}', len - (open + 1 - key));
        if (close != NULL && close > open + 1) {
            key = open + 1;
            len = close - key;
        }
    }
    uint16_t crc = 0;
    for (size_t i = 0; i != len; ++i)
        crc = (uint16_t)((crc << 8) ^ crc16_table[((crc >> 8) ^ (unsigned char)key[i]) & 0xff]);
    return crc & (FICUS_REDIS_CLUSTER_SLOTS - 1);
}

/* ---- nodes ---- */

static node_t *find_node(ficus_redis_cluster_t *c, const char *host, int port, size_t *index)
{
    for (size_t i = 0; i != FICUS_REDIS_MAX_CLUSTER_NODES; ++i)
        if (c->nodes[i] != NULL && c->nodes[i]->port == port && strcmp(c->nodes[i]->host, host) == 0) {
            if (index != NULL)
                *index = i;
            return c->nodes[i];
        }
    return NULL;
}

/* The node at host:port (an IP), connecting to it if it is new. NULL when the table is full or host is not an IP. */
static node_t *get_node(ficus_redis_cluster_t *c, const char *host, int port, size_t *index)
{
    node_t *n = find_node(c, host, port, index);
    if (n != NULL)
        return n;
    unsigned char bin[16];
    if (strlen(host) >= INET6_ADDRSTRLEN || (inet_pton(AF_INET, host, bin) != 1 && inet_pton(AF_INET6, host, bin) != 1)) {
        ficus_warn("redis cluster: node '%s' is not an IP address: ignored", host);
        return NULL;
    }
    for (size_t i = 0; i != FICUS_REDIS_MAX_CLUSTER_NODES; ++i) {
        if (c->nodes[i] != NULL)
            continue;
        if ((n = calloc(1, sizeof(*n))) == NULL)
            ficus_fatal("no memory");
        strcpy(n->host, host);
        n->port = port;
        char address[INET6_ADDRSTRLEN + 8];
        snprintf(address, sizeof(address), strchr(host, ':') != NULL ? "[%s]:%d" : "%s:%d", host, port);
        ficus_redis_conf_t nc = c->conf;
        nc.address = address;
        nc.host = n->host;
        nc.port = port;
        n->client = ficus_redis_create(c->loop, &nc, c->worker);
        c->nodes[i] = n;
        if (index != NULL)
            *index = i;
        return n;
    }
    ficus_error("redis cluster: more than %d nodes: '%s:%d' ignored", FICUS_REDIS_MAX_CLUSTER_NODES, host, port);
    return NULL;
}

static void drop_node(ficus_redis_cluster_t *c, size_t i)
{
    node_t *n = c->nodes[i];
    c->nodes[i] = NULL;
    ficus_redis_destroy(n->client); /* its pending commands get "disconnected" on a later tick */
    free(n);
}

/* ---- the slot map ---- */

static void refresh_soon(ficus_redis_cluster_t *c)
{
    uint64_t at = c->last_refresh_ms + REFRESH_SOON_MS, now = h2o_now(c->loop);
    if (at < now)
        at = now;
    if (at < c->refresh_at_ms)
        c->refresh_at_ms = at;
}

static void maybe_free(ficus_redis_cluster_t *c);

static int int_of(const redisReply *r, long long *out)
{
    if (r->type != REDIS_REPLY_INTEGER)
        return -1;
    *out = r->integer;
    return 0;
}

/* CLUSTER SLOTS: [[start, end, [ip, port, id, ...], replicas...], ...] */
static void on_slots(void *data, redisReply *reply, const char *err)
{
    ficus_redis_cluster_t *c = data;
    c->refresh_pending = 0;
    --c->num_cmds;
    if (c->destroyed) {
        maybe_free(c);
        return;
    }
    c->last_refresh_ms = h2o_now(c->loop);
    if (err != NULL || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
        ficus_warn("redis cluster (worker %u): CLUSTER SLOTS failed: %s", c->worker,
                   err != NULL                                         ? err
                   : reply != NULL && reply->type == REDIS_REPLY_ERROR ? reply->str
                                                                       : "no slots");
        c->refresh_at_ms = c->last_refresh_ms + REFRESH_SOON_MS;
        return;
    }
    uint8_t map[FICUS_REDIS_CLUSTER_SLOTS];
    int in_map[FICUS_REDIS_MAX_CLUSTER_NODES] = {0};
    memset(map, 0, sizeof(map));
    for (size_t e = 0; e != reply->elements; ++e) {
        const redisReply *r = reply->element[e];
        long long start, end, port;
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || int_of(r->element[0], &start) != 0 ||
            int_of(r->element[1], &end) != 0 || start < 0 || end >= FICUS_REDIS_CLUSTER_SLOTS || start > end)
            continue;
        const redisReply *m = r->element[2];
        if (m->type != REDIS_REPLY_ARRAY || m->elements < 2 || m->element[0]->type != REDIS_REPLY_STRING ||
            int_of(m->element[1], &port) != 0 || port <= 0 || port > 65535)
            continue;
        size_t idx;
        if (get_node(c, m->element[0]->str, (int)port, &idx) == NULL)
            continue;
        in_map[idx] = 1;
        memset(map + start, (int)idx + 1, (size_t)(end - start + 1));
    }
    size_t moved = 0, masters = 0;
    for (size_t s = 0; s != FICUS_REDIS_CLUSTER_SLOTS; ++s)
        moved += map[s] != c->slots[s];
    for (size_t i = 0; i != FICUS_REDIS_MAX_CLUSTER_NODES; ++i) {
        if (c->nodes[i] == NULL)
            continue;
        c->nodes[i]->in_map = in_map[i];
        masters += in_map[i];
    }
    memcpy(c->slots, map, sizeof(map));
    ficus_counter_add(&stats[c->worker].refreshes, 1);
    __atomic_store_n(&stats[c->worker].masters, masters, __ATOMIC_RELAXED);
    if (!c->have_map || moved != 0)
        ficus_info("redis cluster (worker %u): slot map %s: %zu masters, %zu slots changed owner", c->worker,
                   c->have_map ? "changed" : "loaded", masters, moved);
    c->have_map = 1;
    c->refresh_at_ms = c->last_refresh_ms + REFRESH_PERIOD_MS;
    /* nodes that are no masters any more are closed on the next tick (never inside one of their own replies); a
     * seed is reconnected if the map is lost */
}

static void refresh(ficus_redis_cluster_t *c)
{
    /* ask a connected master of the map, else a connected node, else (re)connect the seeds and wait */
    node_t *best = NULL;
    for (size_t i = 0; i != FICUS_REDIS_MAX_CLUSTER_NODES; ++i) {
        node_t *n = c->nodes[i];
        if (n != NULL && ficus_redis_is_connected(n->client) && (best == NULL || (n->in_map && !best->in_map)))
            best = n;
    }
    if (best == NULL) {
        for (size_t i = 0; i != c->num_seeds; ++i)
            get_node(c, c->seed_hosts[i], c->seed_ports[i], NULL);
        c->refresh_at_ms = h2o_now(c->loop) + REFRESH_SOON_MS;
        return;
    }
    const char *argv[] = {"CLUSTER", "SLOTS"};
    size_t argvlen[] = {7, 5};
    c->refresh_pending = 1;
    ++c->num_cmds;
    ficus_redis_command(best->client, on_slots, c, 2, argv, argvlen);
}

static void publish_gauges(ficus_redis_cluster_t *c)
{
    int all_connected = c->have_map, any_breaker = 0, degraded = 0;
    for (size_t i = 0; i != FICUS_REDIS_MAX_CLUSTER_NODES; ++i) {
        node_t *n = c->nodes[i];
        if (n == NULL || !n->in_map)
            continue;
        if (!ficus_redis_is_connected(n->client))
            all_connected = 0, degraded = 1;
        if (ficus_redis_breaker_is_open(n->client))
            any_breaker = 1;
    }
    __atomic_store_n(&ficus_redis_stats[c->worker].connected, (uint64_t)all_connected, __ATOMIC_RELAXED);
    __atomic_store_n(&ficus_redis_stats[c->worker].breaker_open, (uint64_t)any_breaker, __ATOMIC_RELAXED);
    if (degraded) { /* a master is down: the cluster may be promoting its replica */
        uint64_t at = c->last_refresh_ms + REFRESH_DEGRADED_MS;
        if (at < c->refresh_at_ms)
            c->refresh_at_ms = at;
    }
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    ficus_redis_cluster_t *c = H2O_STRUCT_FROM_MEMBER(ficus_redis_cluster_t, tick_entry, entry);
    if (c->have_map && !c->refresh_pending)
        for (size_t i = 0; i != FICUS_REDIS_MAX_CLUSTER_NODES; ++i)
            if (c->nodes[i] != NULL && !c->nodes[i]->in_map)
                drop_node(c, i);
    publish_gauges(c);
    if (!c->refresh_pending && h2o_now(c->loop) >= c->refresh_at_ms)
        refresh(c);
    h2o_timeout_link(c->loop, &c->tick_timeout, &c->tick_entry);
}

/* ---- commands ---- */

static void ccmd_free(ficus_redis_ccmd_t *cc)
{
    ficus_redis_cluster_t *c = cc->c;
    if (h2o_timeout_is_linked(&cc->defer))
        h2o_timeout_unlink(&cc->defer);
    for (int i = 0; i != cc->argc; ++i)
        free(cc->argv[i]);
    free(cc->argv);
    free(cc->argvlen);
    free(cc);
    --c->num_cmds;
    maybe_free(c);
}

static void deliver(ficus_redis_ccmd_t *cc, redisReply *reply, const char *err)
{
    if (!cc->delivered) {
        cc->delivered = 1;
        cc->cb(cc->data, reply, err);
    }
    ccmd_free(cc);
}

static void on_deferred(h2o_timeout_entry_t *entry)
{
    ficus_redis_ccmd_t *cc = H2O_STRUCT_FROM_MEMBER(ficus_redis_ccmd_t, defer, entry);
    deliver(cc, NULL, cc->deferred_err);
}

static void defer_error(ficus_redis_ccmd_t *cc, const char *err)
{
    cc->deferred_err = err;
    cc->defer.cb = on_deferred;
    h2o_timeout_link(cc->c->loop, &cc->c->zero_timeout, &cc->defer);
}

static void on_child_reply(void *data, redisReply *reply, const char *err);

static void ignore_reply(void *data, redisReply *reply, const char *err)
{
}

static void send_to(ficus_redis_ccmd_t *cc, node_t *n, int asking)
{
    if (!asking && cc->script != NULL) {
        cc->child = ficus_redis_eval(n->client, cc->script, cc->numkeys, cc->argc, (const char **)cc->argv, cc->argvlen,
                                     on_child_reply, cc);
        return;
    }
    if (asking) {
        const char *a[] = {"ASKING"};
        size_t al[] = {6};
        ficus_redis_command(n->client, ignore_reply, NULL, 1, a, al);
    }
    if (cc->script == NULL) {
        cc->child = ficus_redis_command(n->client, on_child_reply, cc, cc->argc, (const char **)cc->argv, cc->argvlen);
        return;
    }
    /* a script on the node a slot is migrating to: EVAL with the source (that node may not have it cached) */
    const char *av[64];
    size_t al[64];
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", cc->numkeys);
    av[0] = "EVAL", al[0] = 4;
    av[1] = cc->script->source, al[1] = strlen(cc->script->source);
    av[2] = nk, al[2] = strlen(nk);
    for (int i = 0; i != cc->argc && i + 3 < 64; ++i)
        av[i + 3] = cc->argv[i], al[i + 3] = cc->argvlen[i];
    cc->child = ficus_redis_command(n->client, on_child_reply, cc, cc->argc + 3, av, al);
}

/* "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381" → the target's host and port. */
static int parse_redirect(const redisReply *reply, size_t skip, char *host, size_t hostcap, int *port)
{
    const char *p = reply->str + skip, *end = reply->str + reply->len;
    while (p < end && *p >= '0' && *p <= '9')
        ++p;
    if (p == end || *p != ' ')
        return -1;
    ++p;
    const char *colon = NULL;
    for (const char *q = p; q < end; ++q)
        if (*q == ':')
            colon = q;
    if (colon == NULL || colon == p || (size_t)(colon - p) >= hostcap || colon + 1 == end)
        return -1;
    memcpy(host, p, colon - p);
    host[colon - p] = '\0';
    int v = 0;
    for (const char *q = colon + 1; q < end; ++q) {
        if (*q < '0' || *q > '9' || v > 65535)
            return -1;
        v = v * 10 + (*q - '0');
    }
    if (v <= 0 || v > 65535)
        return -1;
    *port = v;
    return 0;
}

static int starts_with(const redisReply *reply, const char *prefix)
{
    size_t n = strlen(prefix);
    return reply->type == REDIS_REPLY_ERROR && reply->len >= n && memcmp(reply->str, prefix, n) == 0;
}

static void on_child_reply(void *data, redisReply *reply, const char *err)
{
    ficus_redis_ccmd_t *cc = data;
    ficus_redis_cluster_t *c = cc->c;
    cc->child = NULL;
    if (err != NULL) {
        if (!c->destroyed)
            refresh_soon(c); /* a node lost or refusing: the map may have changed */
        deliver(cc, NULL, err);
        return;
    }
    int is_moved = starts_with(reply, "MOVED "), is_ask = !is_moved && starts_with(reply, "ASK ");
    if ((is_moved || is_ask) && !c->destroyed && cc->redirects < FICUS_REDIS_CLUSTER_MAX_REDIRECTS) {
        char host[INET6_ADDRSTRLEN + 2];
        int port;
        size_t idx;
        node_t *n;
        if (parse_redirect(reply, is_moved ? 6 : 4, host, sizeof(host), &port) == 0 &&
            (n = get_node(c, host, port, &idx)) != NULL) {
            ++cc->redirects;
            ficus_counter_add(is_moved ? &stats[c->worker].moved : &stats[c->worker].ask, 1);
            if (is_moved) {
                c->slots[cc->slot] = (uint8_t)(idx + 1);
                n->in_map = 1;
                refresh_soon(c);
            }
            send_to(cc, n, is_ask);
            return;
        }
    }
    if (starts_with(reply, "CLUSTERDOWN") || starts_with(reply, "TRYAGAIN"))
        refresh_soon(c);
    deliver(cc, reply, NULL);
}

ficus_redis_ccmd_t *ficus_redis_cluster_command(ficus_redis_cluster_t *c, const ficus_redis_script_t *script, int numkeys, int argc,
                                                const char **argv, const size_t *argvlen, ficus_redis_cb cb, void *data)
{
    ficus_redis_ccmd_t *cc = calloc(1, sizeof(*cc));
    if (cc == NULL)
        ficus_fatal("no memory");
    cc->is_cluster = 1;
    cc->c = c;
    cc->cb = cb;
    cc->data = data;
    cc->script = script;
    cc->numkeys = numkeys;
    ++c->num_cmds;
    int key = script != NULL ? 0 : 1; /* EVALSHA's KEYS[1] is argv[0] here; a command's key is argv[1] */
    if (key >= argc || (script != NULL && numkeys < 1)) {
        defer_error(cc, "unavailable");
        return cc;
    }
    cc->slot = ficus_redis_key_slot(argv[key], argvlen[key]);
    cc->argc = argc;
    cc->argv = calloc(argc, sizeof(char *));
    cc->argvlen = calloc(argc, sizeof(size_t));
    if (cc->argv == NULL || cc->argvlen == NULL)
        ficus_fatal("no memory");
    for (int i = 0; i != argc; ++i) {
        if ((cc->argv[i] = malloc(argvlen[i] + 1)) == NULL)
            ficus_fatal("no memory");
        memcpy(cc->argv[i], argv[i], argvlen[i]);
        cc->argv[i][argvlen[i]] = '\0';
        cc->argvlen[i] = argvlen[i];
    }
    unsigned idx = c->slots[cc->slot];
    if (c->destroyed || idx == 0 || c->nodes[idx - 1] == NULL) {
        ficus_counter_add(&ficus_redis_stats[c->worker].unavailable, 1);
        refresh_soon(c);
        defer_error(cc, "unavailable");
        return cc;
    }
    send_to(cc, c->nodes[idx - 1], 0);
    return cc;
}

void ficus_redis_cluster_cancel(ficus_redis_ccmd_t *cc)
{
    cc->delivered = 1;
    if (cc->child != NULL) {
        ficus_redis_cancel(cc->child);
        cc->child = NULL;
    }
    ccmd_free(cc);
}

/* ---- lifetime ---- */

static char *dup_or_die(const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        ficus_fatal("no memory");
    return d;
}

ficus_redis_cluster_t *ficus_redis_cluster_create(h2o_loop_t *loop, const ficus_redis_conf_t *conf, unsigned worker_index)
{
    ficus_redis_cluster_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        ficus_fatal("no memory");
    c->loop = loop;
    c->worker = worker_index;
    c->conf = *conf;
    c->conf.address = NULL;
    c->conf.host = c->conf.unix_path = NULL;
    c->conf.password = conf->password != NULL ? dup_or_die(conf->password) : NULL;
    memset(&c->conf.sentinel, 0, sizeof(c->conf.sentinel));
    memset(&c->conf.cluster, 0, sizeof(c->conf.cluster));
    c->conf.is_cluster_node = 1;
    c->num_seeds = conf->cluster.num_seeds;
    c->seed_hosts = calloc(c->num_seeds, sizeof(char *));
    c->seed_ports = calloc(c->num_seeds, sizeof(int));
    if (c->seed_hosts == NULL || c->seed_ports == NULL)
        ficus_fatal("no memory");
    for (size_t i = 0; i != c->num_seeds; ++i) {
        c->seed_hosts[i] = dup_or_die(conf->cluster.hosts[i]);
        c->seed_ports[i] = conf->cluster.ports[i];
        get_node(c, c->seed_hosts[i], c->seed_ports[i], NULL);
    }
    h2o_timeout_init(loop, &c->zero_timeout, 0);
    h2o_timeout_init(loop, &c->tick_timeout, 50);
    c->tick_entry.cb = on_tick;
    h2o_timeout_link(loop, &c->tick_timeout, &c->tick_entry);
    return c;
}

void ficus_redis_cluster_update(ficus_redis_cluster_t *c, const ficus_redis_conf_t *conf)
{
    c->conf.command_timeout_ms = conf->command_timeout_ms;
    c->conf.connect_timeout_ms = conf->connect_timeout_ms;
    c->conf.reconnect_min_ms = conf->reconnect_min_ms;
    c->conf.reconnect_max_ms = conf->reconnect_max_ms;
    c->conf.breaker_failures = conf->breaker_failures;
    c->conf.breaker_open_ms = conf->breaker_open_ms;
    for (size_t i = 0; i != FICUS_REDIS_MAX_CLUSTER_NODES; ++i)
        if (c->nodes[i] != NULL)
            ficus_redis_update(c->nodes[i]->client, &c->conf);
}

int ficus_redis_cluster_is_available(ficus_redis_cluster_t *c)
{
    if (c->have_map)
        for (size_t i = 0; i != FICUS_REDIS_MAX_CLUSTER_NODES; ++i)
            if (c->nodes[i] != NULL && c->nodes[i]->in_map && ficus_redis_is_connected(c->nodes[i]->client))
                return 1;
    ficus_counter_add(&ficus_redis_stats[c->worker].unavailable, 1);
    return 0;
}

static void maybe_free(ficus_redis_cluster_t *c)
{
    if (!c->destroyed || c->num_cmds != 0)
        return;
    h2o_timeout_dispose(c->loop, &c->zero_timeout);
    h2o_timeout_dispose(c->loop, &c->tick_timeout);
    for (size_t i = 0; i != c->num_seeds; ++i)
        free(c->seed_hosts[i]);
    free(c->seed_hosts);
    free(c->seed_ports);
    if (c->conf.password != NULL) {
        OPENSSL_cleanse(c->conf.password, strlen(c->conf.password));
        free(c->conf.password);
    }
    free(c);
}

void ficus_redis_cluster_destroy(ficus_redis_cluster_t *c)
{
    c->destroyed = 1;
    if (h2o_timeout_is_linked(&c->tick_entry))
        h2o_timeout_unlink(&c->tick_entry);
    for (size_t i = 0; i != FICUS_REDIS_MAX_CLUSTER_NODES; ++i)
        if (c->nodes[i] != NULL)
            drop_node(c, i);
    __atomic_store_n(&ficus_redis_stats[c->worker].connected, 0, __ATOMIC_RELAXED);
    maybe_free(c);
}

/* ---- metrics ---- */

size_t ficus_redis_cluster_num_masters(void)
{
    return (size_t)__atomic_load_n(&stats[0].masters, __ATOMIC_RELAXED);
}

void ficus_redis_cluster_render_metrics(h2o_mem_pool_t *pool, h2o_iovec_t *out, unsigned num_workers)
{
    uint64_t refreshes = 0, moved = 0, ask = 0;
    for (unsigned w = 0; w != num_workers; ++w) {
        refreshes += ficus_counter_get(&stats[w].refreshes);
        moved += ficus_counter_get(&stats[w].moved);
        ask += ficus_counter_get(&stats[w].ask);
    }
    size_t cap = 1024;
    char *buf = h2o_mem_alloc_pool(pool, cap);
    int n = snprintf(buf, cap,
                     "# HELP ficus_redis_cluster_slots_refreshes_total Slot maps read (CLUSTER SLOTS), by all workers.\n"
                     "# TYPE ficus_redis_cluster_slots_refreshes_total counter\nficus_redis_cluster_slots_refreshes_total %llu\n"
                     "# HELP ficus_redis_redirects_total Redirects followed (MOVED: the map was wrong; ASK: a slot migrating).\n"
                     "# TYPE ficus_redis_redirects_total counter\nficus_redis_redirects_total{kind=\"moved\"} %llu\n"
                     "ficus_redis_redirects_total{kind=\"ask\"} %llu\n"
                     "# HELP ficus_redis_cluster_masters Masters in the slot map (worker 0).\n"
                     "# TYPE ficus_redis_cluster_masters gauge\nficus_redis_cluster_masters %zu\n",
                     (unsigned long long)refreshes, (unsigned long long)moved, (unsigned long long)ask,
                     ficus_redis_cluster_num_masters());
    *out = h2o_iovec_init(buf, (size_t)n < cap ? (size_t)n : cap - 1);
}
