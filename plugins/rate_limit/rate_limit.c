/* rate_limit: named policies (`rate_limits:`) enforced per route (`rate_limit: [per-user, per-ip]`), one limit for a
 * whole fleet through Redis.
 *
 *   rate_limits:
 *     per-user: { key: "claim:sub", limit: 100, per: 1s, burst: 20, algorithm: gcra, on_store_error: local,
 *                 instances: 2, dry_run: false, headers: true }
 *
 * DECISIONS: each is one atomic server-side script (EVALSHA, NOSCRIPT-safe) on one key whose name carries a Redis
 * Cluster hash tag ("ficus:rl:{policy:key}"), using the Redis server clock (no skew between instances). GCRA (token
 * bucket semantics: `burst` requests at once, `limit` per `per` sustained) or a sliding window (two weighted fixed
 * windows in one hash).
 * LEASES (Redis cost): a worker does not ask Redis for every request. It leases tokens for a key and spends them
 * locally: a cold key leases 1 token at a time (exact); a key whose lease runs out quickly doubles its lease size up to
 * ceil(limit / 8) (at most two thirds of burst, and 1000), so a hot key costs about one round trip per lease-size
 * requests (under 0.1 per admitted request at steady state, far less per request since denials come from the deny
 * cache). A lease larger than what is left gets what is left. REFILL AHEAD: while the bucket last held at least one more
 * lease, the next lease is asked for when half of the current one is left or it is half its lifetime old, so a hot key's
 * requests never wait for Redis.
 * BOUND: tokens are taken from the shared bucket when leased, so the fleet never admits more than the limit (+ burst);
 * unspent leased tokens (at most a lease and a half per worker and key, dropped after min(per, 1s)) can only make it
 * admit less. RateLimit-Remaining of a leased key moves in quarter-lease steps (lease_remaining()).
 * DENY CACHE: a key over its limit is denied locally until its retry time: an abusive client costs no Redis traffic.
 * RESERVATIONS: when a hot key's bucket is empty, the script may reserve a whole lease for the near future
 * (at most 4 leases ahead): the worker denies locally until the reservation starts, then spends it. Workers thus
 * queue for tokens instead of racing for them, and each round trip yields a whole lease.
 * COALESCING: while a worker waits for Redis on a key, other requests for that key wait on the same answer.
 * STORE ERRORS (Redis down, slow beyond command_timeout, circuit open): `on_store_error` decides: open (allow),
 * closed (503), local (default: the embedded store at limit ÷ instances). Without `redis:` at all, every policy runs
 * on the embedded store (per instance) and ficus logs it at start.
 * RESPONSES: 429 + Retry-After + {"error":"rate_limited"}; RateLimit-Limit / -Remaining / -Reset / -Policy headers on
 * limited routes (the most constrained policy; `headers: false` turns them off). `dry_run` counts but never rejects.
 * THREADING: the lease table is per worker (thread-local, no locks); the embedded store is lock-free and shared. */
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/clock.h"
#include "ficus/config.h"
#include "ficus/log.h"
#include "ficus/plugin.h"
#include "ficus/redis.h"
#include "ficus/worker.h"
#include "local_store.h"

#define MAX_POLICIES_PER_ROUTE 8
#define MAX_KEY_PARTS 4
#define TABLE_SLOTS 16384 /* per worker: 4-way sets */
#define MAX_WAITERS_PER_KEY 1024
#define MAX_KEY_BYTES 512

extern const ficus_plugin_t ficus_plugin_rate_limit;

typedef enum { KEY_IP, KEY_ROUTE, KEY_CLAIM, KEY_HEADER } key_part_kind_t;
typedef enum { ALG_GCRA, ALG_SLIDING_WINDOW } algorithm_t;
typedef enum { STORE_ERROR_LOCAL, STORE_ERROR_OPEN, STORE_ERROR_CLOSED } store_error_t;

typedef struct st_key_part_t {
    key_part_kind_t kind;
    char *name; /* claim or header name (header lowercase) */
} key_part_t;

enum {
    RESULT_ALLOWED,
    RESULT_LIMITED,
    RESULT_DRY_RUN_LIMITED,
    RESULT_STORE_ERROR_ALLOWED,
    RESULT_STORE_ERROR_DENIED,
    RESULT__COUNT
};
static const char *const result_names[] = {"allowed", "limited", "dry_run_limited", "store_error_allowed", "store_error_denied"};

typedef struct st_policy_stats_t {
    char *name;
    uint64_t decisions[FICUS_MAX_WORKERS][RESULT__COUNT];
    uint64_t deny_cache_hits[FICUS_MAX_WORKERS];
    uint64_t leases[FICUS_MAX_WORKERS];
    uint64_t waits[FICUS_MAX_WORKERS]; /* requests that waited for a Redis answer */
} policy_stats_t;

typedef struct st_policy_t {
    char *name;
    key_part_t parts[MAX_KEY_PARTS];
    size_t num_parts;
    uint64_t limit;
    uint64_t per_ms;
    uint64_t burst; /* bucket capacity (GCRA) */
    algorithm_t algorithm;
    store_error_t on_store_error;
    uint64_t instances;
    int dry_run;
    int headers;
    uint32_t max_lease;
    h2o_iovec_t policy_header; /* "100;w=1;burst=20" (in policy_header_buf) */
    h2o_iovec_t limit_header;  /* "100" */
    char policy_header_buf[128];
    char limit_header_buf[24];
    char key_prefix[160]; /* "ficus:rl:{per-user:" */
    size_t key_prefix_len;
    policy_stats_t *stats;
} policy_t;

typedef struct st_global_conf_t {
    policy_t **policies;
    size_t num_policies;
    int has_redis;
} global_conf_t;

typedef struct st_route_conf_t {
    policy_t *policies[MAX_POLICIES_PER_ROUTE];
    size_t num_policies;
} route_conf_t;

/* ---- stats (by policy name, persistent across reloads) ---- */

static pthread_mutex_t stats_mutex = PTHREAD_MUTEX_INITIALIZER;
static policy_stats_t **all_stats;
static size_t num_all_stats;

static policy_stats_t *stats_get(const char *name)
{
    pthread_mutex_lock(&stats_mutex);
    for (size_t i = 0; i != num_all_stats; ++i)
        if (strcmp(all_stats[i]->name, name) == 0) {
            pthread_mutex_unlock(&stats_mutex);
            return all_stats[i];
        }
    policy_stats_t *s = calloc(1, sizeof(*s));
    all_stats = realloc(all_stats, sizeof(*all_stats) * (num_all_stats + 1));
    if (s == NULL || all_stats == NULL || (s->name = strdup(name)) == NULL)
        ficus_fatal("no memory");
    all_stats[num_all_stats++] = s;
    pthread_mutex_unlock(&stats_mutex);
    return s;
}

/* ---- configuration ---- */

static void policy_free(policy_t *p)
{
    if (p == NULL)
        return;
    free(p->name);
    for (size_t i = 0; i != p->num_parts; ++i)
        free(p->parts[i].name);
    free(p);
}

static void global_dispose(void *_g)
{
    global_conf_t *g = _g;
    for (size_t i = 0; i != g->num_policies; ++i)
        policy_free(g->policies[i]);
    free(g->policies);
    free(g);
}

static int load_key_part(ficus_conf_ctx_t *cc, const ficus_node_t *node, key_part_t *part)
{
    if (ficus_conf_expect(cc, node, FICUS_NODE_SCALAR) != 0)
        return -1;
    const char *s = node->data.scalar.value;
    if (strcmp(s, "ip") == 0) {
        part->kind = KEY_IP;
    } else if (strcmp(s, "route") == 0) {
        part->kind = KEY_ROUTE;
    } else if (strncmp(s, "claim:", 6) == 0 && s[6] != '\0') {
        part->kind = KEY_CLAIM;
        part->name = strdup(s + 6);
    } else if (strncmp(s, "header:", 7) == 0 && s[7] != '\0') {
        part->kind = KEY_HEADER;
        part->name = strdup(s + 7);
        for (char *c = part->name; *c != '\0'; ++c) {
            if (!(isalnum((unsigned char)*c) || strchr("!#$%&'*+-.^_`|~", *c) != NULL))
                return ficus_conf_error(cc, node, "invalid header name in key '%s'", s);
            *c = tolower((unsigned char)*c);
        }
    } else {
        return ficus_conf_error(cc, node, "invalid key '%s' (use ip, route, claim:NAME or header:NAME, or a list of them)", s);
    }
    return 0;
}

static int load_policy(ficus_conf_ctx_t *cc, const ficus_node_t *name, const ficus_node_t *node, policy_t *p, int has_redis)
{
    ficus_node_t *key, *limit, *per, *burst, *algorithm, *on_store_error, *instances, *dry_run, *headers;
    p->name = strdup(name->data.scalar.value);
    if (ficus_conf_mapping(cc, node, "key:*,limit:s,per:s", "burst:s,algorithm:s,on_store_error:s,instances:s,dry_run:s,headers:s",
                           &key, &limit, &per, &burst, &algorithm, &on_store_error, &instances, &dry_run, &headers) != 0)
        return -1;
    for (const char *c = p->name; *c != '\0'; ++c)
        if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_' || *c == '.'))
            return ficus_conf_error(cc, name, "policy name '%s' may contain only letters, digits and -_.", p->name);
    if (key->type == FICUS_NODE_SEQUENCE) {
        if (key->data.sequence.size == 0 || key->data.sequence.size > MAX_KEY_PARTS)
            return ficus_conf_error(cc, key, "a key has 1 to %d parts", MAX_KEY_PARTS);
        for (size_t i = 0; i != key->data.sequence.size; ++i, ++p->num_parts)
            if (load_key_part(cc, key->data.sequence.elements[i], p->parts + i) != 0)
                return -1;
    } else {
        if (load_key_part(cc, key, p->parts) != 0)
            return -1;
        p->num_parts = 1;
    }
    if (ficus_conf_uint(cc, limit, 1, 1000000000, &p->limit) != 0)
        return -1;
    if (ficus_conf_duration(cc, per, 1, 86400000ULL * 7, &p->per_ms) != 0)
        return -1;
    p->burst = p->limit;
    if (burst != NULL && ficus_conf_uint(cc, burst, 1, 1000000000, &p->burst) != 0)
        return -1;
    if (algorithm != NULL) {
        static const char *const algs[] = {"gcra", "sliding_window", NULL};
        int a;
        if (ficus_conf_enum(cc, algorithm, algs, &a) != 0)
            return -1;
        p->algorithm = a;
        if (a == ALG_SLIDING_WINDOW && burst != NULL)
            return ficus_conf_error(cc, burst, "`burst` applies to the gcra algorithm only");
    }
    if (on_store_error != NULL) {
        static const char *const modes[] = {"local", "open", "closed", NULL};
        int m;
        if (ficus_conf_enum(cc, on_store_error, modes, &m) != 0)
            return -1;
        p->on_store_error = m;
    }
    p->instances = 1;
    if (instances != NULL && ficus_conf_uint(cc, instances, 1, 10000, &p->instances) != 0)
        return -1;
    if (dry_run != NULL && ficus_conf_bool(cc, dry_run, &p->dry_run) != 0)
        return -1;
    p->headers = 1;
    if (headers != NULL && ficus_conf_bool(cc, headers, &p->headers) != 0)
        return -1;
    uint64_t lease = (p->limit + 7) / 8; /* at most 0.125 round trips per admitted request once grown */
    uint64_t cap = p->algorithm == ALG_GCRA ? p->burst * 2 / 3 : p->limit / 8; /* never wait for a full bucket */
    if (lease > cap)
        lease = cap;
    if (lease > 1000)
        lease = 1000;
    p->max_lease = lease < 1 ? 1 : (uint32_t)lease;
    double w = p->per_ms / 1000.0;
    if (p->algorithm == ALG_GCRA)
        p->policy_header.len = (size_t)snprintf(p->policy_header_buf, sizeof(p->policy_header_buf), "%llu;w=%g;burst=%llu",
                                                (unsigned long long)p->limit, w, (unsigned long long)p->burst);
    else
        p->policy_header.len =
            (size_t)snprintf(p->policy_header_buf, sizeof(p->policy_header_buf), "%llu;w=%g", (unsigned long long)p->limit, w);
    p->limit_header.len = (size_t)snprintf(p->limit_header_buf, sizeof(p->limit_header_buf), "%llu", (unsigned long long)p->limit);
    p->policy_header.base = p->policy_header_buf;
    p->limit_header.base = p->limit_header_buf;
    int kp = snprintf(p->key_prefix, sizeof(p->key_prefix), "ficus:rl:{%s:", p->name);
    if (kp < 0 || (size_t)kp >= sizeof(p->key_prefix))
        return ficus_conf_error(cc, name, "policy name too long");
    p->key_prefix_len = (size_t)kp;
    p->stats = stats_get(p->name);
    (void)has_redis;
    return 0;
}

static int on_global_config(ficus_conf_ctx_t *cc, const ficus_node_t *node, void **out)
{
    if (node == NULL)
        return 0;
    if (ficus_conf_expect(cc, node, FICUS_NODE_MAPPING) != 0)
        return -1;
    global_conf_t *g = calloc(1, sizeof(*g));
    if (g == NULL || (g->policies = calloc(node->data.mapping.size + 1, sizeof(*g->policies))) == NULL)
        ficus_fatal("no memory");
    *out = g;
    g->has_redis = cc->config->redis != NULL;
    for (size_t i = 0; i != node->data.mapping.size; ++i) {
        for (size_t j = 0; j != i; ++j)
            if (strcmp(g->policies[j]->name, node->data.mapping.keys[i]->data.scalar.value) == 0)
                return ficus_conf_error(cc, node->data.mapping.keys[i], "duplicate policy '%s'", g->policies[j]->name);
        if ((g->policies[i] = calloc(1, sizeof(policy_t))) == NULL)
            ficus_fatal("no memory");
        g->num_policies = i + 1;
        if (load_policy(cc, node->data.mapping.keys[i], node->data.mapping.values[i], g->policies[i], g->has_redis) != 0)
            return -1;
    }
    if (!g->has_redis && g->num_policies != 0 && !cc->dry_run)
        ficus_info("rate limits: no `redis:` configured, limits are enforced per instance (embedded store)");
    return 0;
}

static void dispose(void *conf)
{
    free(conf);
}

static int on_config(ficus_conf_ctx_t *cc, const ficus_node_t *node, void **out)
{
    global_conf_t *g = ficus_config_plugin_global(cc->config, &ficus_plugin_rate_limit);
    route_conf_t *rc = calloc(1, sizeof(*rc));
    if (rc == NULL)
        ficus_fatal("no memory");
    *out = rc;
    const ficus_node_t *const *names = node->type == FICUS_NODE_SEQUENCE ? (const ficus_node_t *const *)node->data.sequence.elements
                                                                         : (const ficus_node_t *const *)&node;
    size_t n = node->type == FICUS_NODE_SEQUENCE ? node->data.sequence.size : 1;
    if (n == 0 || n > MAX_POLICIES_PER_ROUTE)
        return ficus_conf_error(cc, node, "`rate_limit` names 1 to %d policies", MAX_POLICIES_PER_ROUTE);
    for (size_t i = 0; i != n; ++i) {
        if (ficus_conf_expect(cc, names[i], FICUS_NODE_SCALAR) != 0)
            return -1;
        policy_t *found = NULL;
        for (size_t j = 0; g != NULL && j != g->num_policies; ++j)
            if (strcmp(g->policies[j]->name, names[i]->data.scalar.value) == 0)
                found = g->policies[j];
        if (found == NULL)
            return ficus_conf_error(cc, names[i], "unknown rate limit policy '%s' (define it under `rate_limits:`)",
                                    names[i]->data.scalar.value);
        for (size_t j = 0; j != rc->num_policies; ++j)
            if (rc->policies[j] == found)
                return ficus_conf_error(cc, names[i], "policy '%s' listed twice", found->name);
        rc->policies[rc->num_policies++] = found;
    }
    return 0;
}

/* ---- the Redis scripts (return {granted, remaining, retry_ms, reset_ms}) ---- */

static ficus_redis_script_t gcra_script = {
    .source = "local t = redis.call('TIME')\n"
              "local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000\n"
              "local T = tonumber(ARGV[1])\n"
              "local C = tonumber(ARGV[2])\n"
              "local n = tonumber(ARGV[3])\n"
              "local tat = tonumber(redis.call('GET', KEYS[1])) or now\n"
              "if tat < now then tat = now end\n"
              "local avail = math.floor((C * T - (tat - now)) / T + 1e-6)\n"
              "if avail < 0 then avail = 0 end\n"
              "local g = 0\n"
              "local start = 0\n"
              "if avail >= n or (n == 1 and avail >= 1) then\n"
              "  g = n\n"
              "elseif avail >= 1 then\n"
              "  g = avail\n"
              "elseif n > 1 and (tat - now) + n * T <= C * T + 4 * n * T then\n"
              "  g = n\n"
              "  start = math.ceil((tat - now) + n * T - C * T)\n"
              "end\n"
              "if g > 0 then\n"
              "  tat = tat + g * T\n"
              "  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)\n"
              "end\n"
              "local retry = start\n"
              "if g == 0 and n == 1 then retry = math.ceil((tat - now) - (C - 1) * T) end\n"
              "if g == 0 and n > 1 then retry = math.ceil((tat - now) - (C + 3 * n) * T) end\n"
              "if retry < 1 and g == 0 then retry = 1 end\n"
              "local rem = avail - g\n"
              "if rem < 0 then rem = 0 end\n"
              "return {g, rem, retry, math.ceil(tat - now)}\n"};

static ficus_redis_script_t window_script = {.source = "local t = redis.call('TIME')\n"
                                                       "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
                                                       "local w = tonumber(ARGV[1])\n"
                                                       "local limit = tonumber(ARGV[2])\n"
                                                       "local n = tonumber(ARGV[3])\n"
                                                       "local cur = math.floor(now / w)\n"
                                                       "local c = tonumber(redis.call('HGET', KEYS[1], cur)) or 0\n"
                                                       "local p = tonumber(redis.call('HGET', KEYS[1], cur - 1)) or 0\n"
                                                       "local used = p * (1 - (now - cur * w) / w) + c\n"
                                                       "local avail = math.floor(limit - used + 1e-6)\n"
                                                       "if avail < 0 then avail = 0 end\n"
                                                       "local g = 0\n"
                                                       "if avail >= n then g = n elseif avail >= 1 then g = avail end\n"
                                                       "if g > 0 then redis.call('HINCRBY', KEYS[1], cur, g) end\n"
                                                       "redis.call('HDEL', KEYS[1], cur - 2)\n"
                                                       "redis.call('PEXPIRE', KEYS[1], 2 * w + 1000)\n"
                                                       "local reset = (cur + 1) * w - now\n"
                                                       "local retry = 0\n"
                                                       "if g == 0 then\n"
                                                       "  if p > 0 then retry = math.ceil(w / p) else retry = reset end\n"
                                                       "  if retry > reset then retry = reset end\n"
                                                       "end\n"
                                                       "return {g, avail - g, retry, reset}\n"};

static pthread_once_t scripts_once = PTHREAD_ONCE_INIT;
static void init_scripts(void)
{
    ficus_redis_script_init(&gcra_script);
    ficus_redis_script_init(&window_script);
}

/* ---- the per-worker lease table ---- */

typedef struct st_rl_entry_t rl_entry_t;

typedef struct st_rl_waiter_t {
    h2o_linklist_t link;
    struct st_rl_req_t *rr;
} rl_waiter_t;

struct st_rl_entry_t {
    uint64_t hash;
    char *key;
    size_t keylen;
    uint64_t last_used_ms;
    uint64_t tokens; /* leased, unspent */
    uint64_t lease_expires_ms;
    uint64_t lease_started_ms;
    uint32_t lease_size;
    uint64_t deny_until_ms;
    int64_t remaining;      /* last known remaining in the shared bucket */
    uint64_t reset_ms_at;   /* absolute: when the bucket is full */
    ficus_redis_cmd_t *cmd; /* lease request in flight */
    h2o_linklist_t waiters;
    size_t num_waiters;
};

static __thread rl_entry_t *table;

static uint64_t hash_bytes(const char *s, size_t len)
{
    /* eight bytes a step (per request, over the whole key); a multiply-xorshift mix */
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ len, w;
    for (; len >= 8; s += 8, len -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, s, len);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 29);
}

/* Finds or makes the entry of key; NULL when its set is full of entries with requests in flight. */
static rl_entry_t *entry_get(const char *key, size_t keylen, uint64_t hash, uint64_t now_ms)
{
    if (table == NULL) {
        if ((table = calloc(TABLE_SLOTS, sizeof(*table))) == NULL)
            return NULL;
        for (size_t i = 0; i != TABLE_SLOTS; ++i)
            h2o_linklist_init_anchor(&table[i].waiters);
    }
    rl_entry_t *set = table + (hash % (TABLE_SLOTS / 4)) * 4, *victim = NULL;
    for (size_t i = 0; i != 4; ++i) {
        rl_entry_t *e = set + i;
        if (e->key != NULL && e->hash == hash && e->keylen == keylen && memcmp(e->key, key, keylen) == 0) {
            e->last_used_ms = now_ms;
            return e;
        }
        if (e->cmd == NULL && e->num_waiters == 0 && (victim == NULL || e->last_used_ms < victim->last_used_ms))
            victim = e;
    }
    if (victim == NULL)
        return NULL;
    /* evicting drops its unspent tokens and deny state: both err on the safe side of the shared bucket */
    char *copy = realloc(victim->key, keylen);
    if (copy == NULL)
        return NULL;
    memcpy(copy, key, keylen);
    memset(victim, 0, sizeof(*victim));
    h2o_linklist_init_anchor(&victim->waiters);
    victim->key = copy;
    victim->keylen = keylen;
    victim->hash = hash;
    victim->lease_size = 1;
    victim->last_used_ms = now_ms;
    return victim;
}

/* ---- per request ---- */

typedef struct st_rl_req_t {
    ficus_req_t *req;
    route_conf_t *conf;
    size_t next;         /* policy index */
    rl_waiter_t *waiter; /* allocated (with a dispose that unlinks it) the first time the request waits */
    rl_entry_t *waiting_on;
    /* headers: the most constrained policy so far */
    const policy_t *hdr_policy;
    int64_t hdr_remaining;
    uint64_t hdr_reset_ms;
} rl_req_t;

static uint64_t now_ms_of(ficus_req_t *r)
{
    return h2o_now(r->worker->loop);
}

static void count(const policy_t *p, ficus_req_t *r, int result)
{
    ficus_counter_add(&p->stats->decisions[r->worker->index][result], 1);
}

/* Builds "ficus:rl:{policy:part|part}" into buf; returns its length, 0 if too long. Values that could break the hash
 * tag or the key bound are replaced by their SHA-256. */
static size_t build_key(const policy_t *p, ficus_req_t *r, char *buf, size_t cap)
{
    h2o_req_t *req = r->h2o;
    if (p->key_prefix_len + 2 >= cap)
        return 0;
    memcpy(buf, p->key_prefix, p->key_prefix_len);
    size_t n = p->key_prefix_len;
    for (size_t i = 0; i != p->num_parts; ++i) {
        char tmp[128];
        h2o_iovec_t v = h2o_iovec_init("-", 1);
        switch (p->parts[i].kind) {
        case KEY_IP: {
            struct sockaddr_storage ss;
            if (req->conn->callbacks->get_peername(req->conn, (void *)&ss) != 0) {
                if (ss.ss_family == AF_INET) {
                    const uint8_t *a = (const uint8_t *)&((struct sockaddr_in *)&ss)->sin_addr;
                    size_t o = 0;
                    for (int k = 0; k != 4; ++k) { /* dotted quad without inet_ntop's sprintf (per request) */
                        if (k != 0)
                            tmp[o++] = '.';
                        if (a[k] >= 100)
                            tmp[o++] = (char)('0' + a[k] / 100);
                        if (a[k] >= 10)
                            tmp[o++] = (char)('0' + a[k] / 10 % 10);
                        tmp[o++] = (char)('0' + a[k] % 10);
                    }
                    v = h2o_iovec_init(tmp, o);
                } else {
                    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, tmp, sizeof(tmp));
                    v = h2o_iovec_init(tmp, strlen(tmp));
                }
            }
        } break;
        case KEY_ROUTE:
            v = h2o_iovec_init(r->route->name, strlen(r->route->name));
            break;
        case KEY_CLAIM: {
            json_t *c = r->claims != NULL ? json_object_get(r->claims, p->parts[i].name) : NULL;
            if (json_is_string(c)) {
                v = h2o_iovec_init(json_string_value(c), json_string_length(c));
            } else if (json_is_integer(c)) {
                snprintf(tmp, sizeof(tmp), "%lld", (long long)json_integer_value(c));
                v = h2o_iovec_init(tmp, strlen(tmp));
            }
        } break;
        case KEY_HEADER: {
            ssize_t at = h2o_find_header_by_str(&req->headers, p->parts[i].name, strlen(p->parts[i].name), -1);
            if (at != -1)
                v = req->headers.entries[at].value;
        } break;
        }
        int unsafe = v.len > 64;
        for (size_t j = 0; j != v.len && !unsafe; ++j)
            unsafe = v.base[j] == '{' || v.base[j] == '}' || v.base[j] == '|' || (unsigned char)v.base[j] < 0x20;
        if (unsafe) {
            unsigned char md[32];
            unsigned mdlen = 32;
            EVP_Digest(v.base, v.len, md, &mdlen, EVP_sha256(), NULL);
            for (int k = 0; k != 16; ++k)
                sprintf(tmp + k * 2, "%02x", md[k]);
            v = h2o_iovec_init(tmp, 32);
        }
        if (n + v.len + 3 >= cap)
            return 0;
        if (i != 0)
            buf[n++] = '|';
        memcpy(buf + n, v.base, v.len);
        n += v.len;
    }
    buf[n++] = '}';
    buf[n] = '\0';
    return n;
}

static void note_headers(rl_req_t *rr, const policy_t *p, int64_t remaining, uint64_t reset_ms)
{
    if (!p->headers)
        return;
    /* a leased key's value (shared bucket + unspent lease) passes the bucket's size when the bucket refilled while a
     * lease was out (a slow box): what a client may still send is never more than the bucket holds */
    if (remaining > (int64_t)p->burst)
        remaining = (int64_t)p->burst;
    if (rr->hdr_policy == NULL || remaining < rr->hdr_remaining) {
        rr->hdr_policy = p;
        rr->hdr_remaining = remaining < 0 ? 0 : remaining;
        rr->hdr_reset_ms = reset_ms;
    }
}

/* RateLimit-Remaining of a leased key: the shared bucket at the last Redis answer plus this worker's unspent tokens,
 * rounded down to a quarter lease. Exact while the key leases one token at a time (every cold key); a hot key's value
 * moves in steps of at most limit/32. A value that changed on every response would be a new HPACK table entry per
 * HTTP/2 response (H2O indexes every literal it sends), evicting the connection's other entries. */
static int64_t lease_remaining(const rl_entry_t *e)
{
    int64_t v = e->remaining + (int64_t)e->tokens, step = e->lease_size >= 4 ? e->lease_size / 4 : 1;
    return v - v % step;
}

static size_t u64_to_dec(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    for (size_t i = 0; i != n; ++i)
        buf[i] = tmp[n - 1 - i];
    return n;
}

/* Response header names, not H2O tokens: static, so that adding them costs no allocation per response. */
static h2o_iovec_t header_limit = {H2O_STRLIT("ratelimit-limit")}, header_remaining = {H2O_STRLIT("ratelimit-remaining")},
                   header_reset = {H2O_STRLIT("ratelimit-reset")}, header_policy = {H2O_STRLIT("ratelimit-policy")};

/* Adds the RateLimit-* fields of the most constrained policy decided so far to the response, once the decisions are
 * made (all allowed, or one responds): at decision time the request's state is still in cache, and the route needs no
 * response hook. */
static void add_headers(rl_req_t *rr)
{
    if (rr->hdr_policy == NULL)
        return;
    h2o_req_t *req = rr->req->h2o;
    const policy_t *p = rr->hdr_policy;
    char *buf = h2o_mem_alloc_pool(&req->pool, 48);
    size_t n1 = u64_to_dec(buf, rr->hdr_remaining < 0 ? 0 : (uint64_t)rr->hdr_remaining);
    size_t n2 = u64_to_dec(buf + 24, (rr->hdr_reset_ms + 999) / 1000);
    h2o_vector_reserve(&req->pool, &req->res.headers, req->res.headers.size + 4);
    h2o_header_t *h = req->res.headers.entries + req->res.headers.size;
    req->res.headers.size += 4;
    h[0] = (h2o_header_t){&header_limit, NULL, p->limit_header};
    h[1] = (h2o_header_t){&header_remaining, NULL, h2o_iovec_init(buf, n1)};
    h[2] = (h2o_header_t){&header_reset, NULL, h2o_iovec_init(buf + 24, n2)};
    h[3] = (h2o_header_t){&header_policy, NULL, p->policy_header};
}

static void respond_429(rl_req_t *rr, const policy_t *p, uint64_t retry_ms)
{
    ficus_req_t *r = rr->req;
    add_headers(rr);
    char *v = h2o_mem_alloc_pool(&r->h2o->pool, 24);
    int n = snprintf(v, 24, "%llu", (unsigned long long)((retry_ms + 999) / 1000 == 0 ? 1 : (retry_ms + 999) / 1000));
    h2o_add_header(&r->h2o->pool, &r->h2o->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, v, n);
    char *reason = h2o_mem_alloc_pool(&r->h2o->pool, 160);
    snprintf(reason, 160, "rate_limited:%s", p->name);
    r->error = reason;
    ficus_req_respond_error(r, 429, "rate_limited");
}

/* Applies on_store_error: CONTINUE (allowed) or RESPONDED. */
static ficus_status_t store_error(rl_req_t *rr, const policy_t *p, const char *key, size_t keylen, const char *why)
{
    ficus_req_t *r = rr->req;
    switch (p->on_store_error) {
    case STORE_ERROR_OPEN:
        count(p, r, RESULT_STORE_ERROR_ALLOWED);
        return FICUS_CONTINUE;
    case STORE_ERROR_CLOSED:
        count(p, r, RESULT_STORE_ERROR_DENIED);
        add_headers(rr);
        h2o_add_header(&r->h2o->pool, &r->h2o->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        r->error = "rate_limit_store_unavailable";
        ficus_req_respond_error(r, 503, "rate_limit_unavailable");
        return FICUS_RESPONDED;
    case STORE_ERROR_LOCAL:
    default: {
        ficus_rl_decision_t d;
        uint64_t limit = p->limit / p->instances, burst = p->burst / p->instances;
        if (limit == 0)
            limit = 1;
        if (burst == 0)
            burst = 1;
        ficus_rl_local_decide(hash_bytes(key, keylen), p->per_ms * 1000000 / limit, burst, ficus_mono_ns(), &d);
        note_headers(rr, p, (int64_t)d.remaining, d.reset_us / 1000);
        if (d.allowed || p->dry_run) {
            count(p, r, d.allowed ? RESULT_STORE_ERROR_ALLOWED : RESULT_DRY_RUN_LIMITED);
            return FICUS_CONTINUE;
        }
        count(p, r, RESULT_STORE_ERROR_DENIED);
        respond_429(rr, p, d.retry_after_us / 1000);
        return FICUS_RESPONDED;
    }
    }
}

static void start_lease(rl_entry_t *e, const policy_t *p, ficus_req_t *r);
static ficus_status_t run_policies(rl_req_t *rr);
static void on_waiter_dispose(void *_w);

/* Decides policy p for the request: CONTINUE (allowed), RESPONDED, or PAUSE (waiting for Redis, waiter queued). */
static ficus_status_t decide(rl_req_t *rr, const policy_t *p)
{
    ficus_req_t *r = rr->req;
    char key[MAX_KEY_BYTES];
    size_t keylen = build_key(p, r, key, sizeof(key));
    uint64_t now = now_ms_of(r);
    if (keylen == 0)
        return FICUS_CONTINUE; /* cannot happen with bounded parts; never block a request on it */

    if (r->worker->redis == NULL) {
        /* embedded store: per instance */
        ficus_rl_decision_t d;
        ficus_rl_local_decide(hash_bytes(key, keylen), p->per_ms * 1000000 / p->limit,
                              p->algorithm == ALG_GCRA ? p->burst : p->limit, ficus_mono_ns(), &d);
        note_headers(rr, p, (int64_t)d.remaining, d.reset_us / 1000);
        if (d.allowed) {
            count(p, r, RESULT_ALLOWED);
            return FICUS_CONTINUE;
        }
        if (p->dry_run) {
            count(p, r, RESULT_DRY_RUN_LIMITED);
            return FICUS_CONTINUE;
        }
        count(p, r, RESULT_LIMITED);
        respond_429(rr, p, d.retry_after_us / 1000);
        return FICUS_RESPONDED;
    }

    rl_entry_t *e = entry_get(key, keylen, hash_bytes(key, keylen), now);
    if (e != NULL && e->deny_until_ms > now) {
        ficus_counter_add(&p->stats->deny_cache_hits[r->worker->index], 1);
        note_headers(rr, p, 0, e->reset_ms_at > now ? e->reset_ms_at - now : 0);
        if (p->dry_run) {
            count(p, r, RESULT_DRY_RUN_LIMITED);
            return FICUS_CONTINUE;
        }
        count(p, r, RESULT_LIMITED);
        respond_429(rr, p, e->deny_until_ms - now);
        return FICUS_RESPONDED;
    }
    if (e != NULL && e->tokens != 0 && e->lease_expires_ms > now) {
        --e->tokens;
        note_headers(rr, p, lease_remaining(e), e->reset_ms_at > now ? e->reset_ms_at - now : 0);
        count(p, r, RESULT_ALLOWED);
        /* refill ahead: while the shared bucket last held at least a lease more, the next lease is taken when half of
         * this one is left or when it is half its lifetime old (a lease answer takes a loop iteration or two, a
         * millisecond or more under load; a slow client may not spend a lease within its lifetime, and its leftover
         * would then expire under a request that has to wait), so a hot key's requests never wait for Redis; near the
         * limit they wait as before */
        uint64_t ttl = p->per_ms < 1000 ? p->per_ms : 1000;
        if (e->cmd == NULL && e->lease_size >= 4 && (e->tokens <= e->lease_size / 2 || now >= e->lease_started_ms + ttl / 2) &&
            e->remaining >= (int64_t)e->lease_size && ficus_redis_is_available(r->worker->redis))
            start_lease(e, p, r);
        return FICUS_CONTINUE;
    }
    if (!ficus_redis_is_available(r->worker->redis) || e == NULL)
        return store_error(rr, p, key, keylen, "unavailable");
    if (e->num_waiters >= MAX_WAITERS_PER_KEY)
        return store_error(rr, p, key, keylen, "too many waiters");
    rr->waiting_on = e;
    if (rr->waiter == NULL) {
        rr->waiter = h2o_mem_alloc_shared(&r->h2o->pool, sizeof(*rr->waiter), on_waiter_dispose);
        memset(rr->waiter, 0, sizeof(*rr->waiter));
        rr->waiter->rr = rr;
    }
    h2o_linklist_insert(&e->waiters, &rr->waiter->link);
    ++e->num_waiters;
    ficus_counter_add(&p->stats->waits[r->worker->index], 1);
    if (e->cmd == NULL)
        start_lease(e, p, r);
    return FICUS_PAUSE;
}

/* Runs the remaining policies: CONTINUE when all allowed, RESPONDED, or PAUSE (waiting). */
static ficus_status_t run_policies(rl_req_t *rr)
{
    while (rr->next < rr->conf->num_policies) {
        ficus_status_t st = decide(rr, rr->conf->policies[rr->next]);
        if (st != FICUS_CONTINUE)
            return st;
        ++rr->next;
    }
    add_headers(rr);
    return FICUS_CONTINUE;
}

typedef struct st_lease_ctx_t {
    rl_entry_t *e;
    /* copies: the generation that owns the policy may be gone when the answer arrives */
    uint64_t per_ms;
    uint32_t max_lease;
    policy_stats_t *stats;
    unsigned worker;
} lease_ctx_t;

/* Serves the requests waiting on e after a lease answer (err == NULL) or a store error. Each waiter is decided with
 * its own policy object (waiters may come from different generations). */
static void wake(rl_entry_t *e, const char *err)
{
    while (!h2o_linklist_is_empty(&e->waiters)) {
        rl_waiter_t *w = H2O_STRUCT_FROM_MEMBER(rl_waiter_t, link, e->waiters.next);
        rl_req_t *rr = w->rr;
        ficus_req_t *r = rr->req;
        const policy_t *p = rr->conf->policies[rr->next];
        uint64_t now = now_ms_of(r);
        ficus_status_t st;
        if (err == NULL && e->tokens == 0 && e->deny_until_ms <= now) {
            /* the bucket had tokens but this lease was smaller than the crowd: lease again for those left */
            if (e->cmd == NULL) {
                if (e->lease_size < e->num_waiters)
                    e->lease_size = e->num_waiters < p->max_lease ? (uint32_t)e->num_waiters : p->max_lease;
                start_lease(e, p, r);
            }
            return;
        }
        h2o_linklist_unlink(&w->link);
        --e->num_waiters;
        rr->waiting_on = NULL;
        if (err != NULL) {
            st = store_error(rr, p, e->key, e->keylen, err);
        } else if (e->tokens != 0 && e->deny_until_ms <= now) {
            --e->tokens;
            note_headers(rr, p, lease_remaining(e), e->reset_ms_at > now ? e->reset_ms_at - now : 0);
            count(p, r, RESULT_ALLOWED);
            st = FICUS_CONTINUE;
        } else {
            note_headers(rr, p, 0, e->reset_ms_at > now ? e->reset_ms_at - now : 0);
            if (p->dry_run) {
                count(p, r, RESULT_DRY_RUN_LIMITED);
                st = FICUS_CONTINUE;
            } else {
                count(p, r, RESULT_LIMITED);
                respond_429(rr, p, e->deny_until_ms - now);
                st = FICUS_RESPONDED;
            }
        }
        if (st == FICUS_CONTINUE) {
            ++rr->next;
            st = run_policies(rr);
        }
        if (st == FICUS_CONTINUE)
            ficus_req_resume(r);
        /* RESPONDED: answered; PAUSE: now waiting on another key */
    }
}

static void on_lease_reply(void *data, redisReply *reply, const char *err)
{
    lease_ctx_t *lc = data;
    rl_entry_t *e = lc->e;
    e->cmd = NULL;
    uint64_t now = h2o_now(ficus_current_worker->loop);
    if (err == NULL && (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 || reply->element[0]->type != REDIS_REPLY_INTEGER))
        err = reply->type == REDIS_REPLY_ERROR ? "error reply" : "unexpected reply";
    if (err != NULL) {
        free(lc);
        wake(e, err);
        return;
    }
    long long granted = reply->element[0]->integer, remaining = reply->element[1]->integer, retry = reply->element[2]->integer,
              reset = reply->element[3]->integer;
    ficus_counter_add(&lc->stats->leases[lc->worker], 1);
    /* lease size: grow when the previous lease was (all but its refill-ahead half) spent within half its lifetime,
     * shrink when it expired unspent */
    uint64_t ttl = lc->per_ms < 1000 ? lc->per_ms : 1000;
    if (e->lease_started_ms != 0) {
        if (e->tokens <= e->lease_size / 2 && now - e->lease_started_ms < ttl / 2 && e->lease_size < lc->max_lease)
            e->lease_size = e->lease_size * 2 > lc->max_lease ? lc->max_lease : e->lease_size * 2;
        else if (e->lease_expires_ms <= now && e->lease_size > 1)
            e->lease_size /= 2;
    }
    free(lc);
    /* tokens left of a live lease (a refill ahead) are kept and live as long as the new ones, up to a lease and a half
     * (a slow client refilling at half a lease's lifetime would otherwise pile the bucket up here) */
    e->tokens = (e->lease_expires_ms > now ? e->tokens : 0) + (granted > 0 ? (uint64_t)granted : 0);
    if (e->tokens > e->lease_size + e->lease_size / 2 && granted > 0)
        e->tokens = e->lease_size + e->lease_size / 2 > (uint64_t)granted ? e->lease_size + e->lease_size / 2 : (uint64_t)granted;
    e->lease_started_ms = now;
    e->lease_expires_ms = now + ttl;
    e->remaining = remaining;
    e->reset_ms_at = now + (reset > 0 ? (uint64_t)reset : 0);
    if (granted > 0 && retry > 0) {
        /* a reservation: the tokens are ours from now + retry (the bucket is empty until then for everyone) */
        e->deny_until_ms = now + (uint64_t)retry;
        e->lease_started_ms = e->deny_until_ms;
        e->lease_expires_ms = e->deny_until_ms + ttl;
    } else if (granted <= 0) {
        /* jitter (up to an eighth of the wait) so that workers denied together do not all ask again at the same instant
         * and split a lease between them: each answer then carries a whole lease */
        uint64_t wait = retry > 0 ? (uint64_t)retry : 1;
        e->deny_until_ms = now + wait + (wait >= 8 ? (e->hash ^ now) % (wait / 8) : 0);
    }
    wake(e, NULL);
}

static void start_lease(rl_entry_t *e, const policy_t *p, ficus_req_t *r)
{
    pthread_once(&scripts_once, init_scripts);
    char a1[32], a2[32], a3[16];
    size_t n = e->lease_size;
    if (p->algorithm == ALG_GCRA) {
        snprintf(a1, sizeof(a1), "%.6f", (double)p->per_ms / (double)p->limit);
        snprintf(a2, sizeof(a2), "%llu", (unsigned long long)p->burst);
    } else {
        snprintf(a1, sizeof(a1), "%llu", (unsigned long long)p->per_ms);
        snprintf(a2, sizeof(a2), "%llu", (unsigned long long)p->limit);
    }
    snprintf(a3, sizeof(a3), "%zu", n);
    const char *argv[] = {e->key, a1, a2, a3};
    size_t argvlen[] = {e->keylen, strlen(a1), strlen(a2), strlen(a3)};
    lease_ctx_t *lc = calloc(1, sizeof(*lc));
    if (lc == NULL)
        ficus_fatal("no memory");
    lc->e = e;
    lc->per_ms = p->per_ms;
    lc->max_lease = p->max_lease;
    lc->stats = p->stats;
    lc->worker = r->worker->index;
    e->cmd = ficus_redis_eval(r->worker->redis, p->algorithm == ALG_GCRA ? &gcra_script : &window_script, 1, 4, argv, argvlen,
                              on_lease_reply, lc);
}

static void on_waiter_dispose(void *_w)
{
    rl_waiter_t *w = _w;
    rl_req_t *rr = w->rr; /* in the same request pool, still valid: shared entries are released before its chunks */
    if (rr->waiting_on != NULL && h2o_linklist_is_linked(&w->link)) {
        h2o_linklist_unlink(&w->link);
        --rr->waiting_on->num_waiters;
        /* the lease request stays in flight: its answer serves the other waiters, or is kept as tokens */
    }
}

static ficus_status_t on_request(void *_conf, ficus_req_t *r)
{
    route_conf_t *conf = _conf;
    rl_req_t *rr = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*rr)); /* no dispose unless it has to wait */
    memset(rr, 0, sizeof(*rr));
    rr->req = r;
    rr->conf = conf;
    return run_policies(rr);
}

/* ---- metrics ---- */

/* One counter family with a series per policy: field is the offset of a per-worker array in policy_stats_t. */
static void render_policy_counter(FILE *fp, const char *family, const char *help, size_t field, unsigned num_workers)
{
    fprintf(fp, "# HELP %s %s\n# TYPE %s counter\n", family, help, family);
    for (size_t i = 0; i != num_all_stats; ++i) {
        const uint64_t *per_worker = (const uint64_t *)((const char *)all_stats[i] + field);
        uint64_t sum = 0;
        for (unsigned w = 0; w != num_workers; ++w)
            sum += ficus_counter_get(&per_worker[w]);
        fprintf(fp, "%s{policy=\"%s\"} %llu\n", family, all_stats[i]->name, (unsigned long long)sum);
    }
}

static void render_metrics(h2o_mem_pool_t *pool, h2o_iovec_t *out, unsigned num_workers)
{
    char *buf;
    size_t len;
    FILE *fp = open_memstream(&buf, &len);
    if (fp == NULL)
        ficus_fatal("no memory");
    fprintf(fp, "# HELP ficus_ratelimit_decisions_total Rate-limit decisions, by policy and result.\n"
                "# TYPE ficus_ratelimit_decisions_total counter\n");
    pthread_mutex_lock(&stats_mutex);
    for (size_t i = 0; i != num_all_stats; ++i)
        for (int k = 0; k != RESULT__COUNT; ++k) {
            uint64_t sum = 0;
            for (unsigned w = 0; w != num_workers; ++w)
                sum += ficus_counter_get(&all_stats[i]->decisions[w][k]);
            fprintf(fp, "ficus_ratelimit_decisions_total{policy=\"%s\",result=\"%s\"} %llu\n", all_stats[i]->name, result_names[k],
                    (unsigned long long)sum);
        }
    render_policy_counter(fp, "ficus_ratelimit_deny_cache_hits_total", "Denials answered from the local deny cache (no Redis).",
                          offsetof(policy_stats_t, deny_cache_hits), num_workers);
    render_policy_counter(fp, "ficus_ratelimit_leases_total", "Leases obtained from Redis (round trips), by policy.",
                          offsetof(policy_stats_t, leases), num_workers);
    render_policy_counter(fp, "ficus_ratelimit_redis_waits_total", "Requests that waited for a Redis answer, by policy.",
                          offsetof(policy_stats_t, waits), num_workers);
    pthread_mutex_unlock(&stats_mutex);
    fclose(fp);
    *out = h2o_strdup(pool, buf, len);
    free(buf);
}

const ficus_plugin_t ficus_plugin_rate_limit = {
    .name = "rate_limit",
    .on_config = on_config,
    .dispose = dispose,
    .on_request = on_request,
    .global_key = "rate_limits",
    .on_global_config = on_global_config,
    .global_dispose = global_dispose,
    .render_metrics = render_metrics,
};
