/* The Redis client: one asynchronous hiredis connection per worker, on that worker's evloop.
 *
 * DESIGN: hiredis 0.14 does the protocol; this file gives it an event adapter on H2O's evloop (a dup() of its fd
 * wrapped as an h2o socket with H2O_SOCKET_FLAG_DONT_READ; addWrite is a one-shot notify_write, tracked so it is
 * never armed twice) and adds what 0.14 lacks:
 *   - a deadline per command (command_timeout): the caller gets "timeout" on time; the late reply is dropped;
 *   - reconnection with exponential backoff (reconnect_min .. reconnect_max); the connect itself is bounded by
 *     connect_timeout;
 *   - a circuit breaker (ficus/breaker.h, the one the upstreams use, in its consecutive-failures mode): after
 *     `breaker_failures` command timeouts in a row the connection is dropped (which also discards a stalled
 *     pipeline) and commands fail at once ("unavailable") for `breaker_open` before one trial is let through;
 *   - scripts by EVALSHA with a transparent EVAL fallback on NOSCRIPT (after a Redis restart or SCRIPT FLUSH);
 *   - a bound on commands in flight (FICUS_REDIS_MAX_PENDING); beyond it: "unavailable".
 * CONTRACT: the callback of a command is called exactly once, never from inside the call that issued it, and never
 * after ficus_redis_cancel(). The reply is borrowed: valid only during the callback (hiredis frees it).
 * Addresses are IP:PORT, HOST:PORT (resolved when the configuration is loaded, never by hiredis on a worker) or unix:/path.
 * THREADING: a client belongs to one worker and is used only on its loop. Counters are per worker (ficus/metrics.h
 * style single-writer slots) and summed by the admin thread. */
#ifndef ficus__redis_h
#define ficus__redis_h

#include <hiredis/hiredis.h>
#include <stdint.h>
#include "h2o.h"
#include "ficus/conf.h"
#include "ficus/metrics.h"

#define FICUS_REDIS_MAX_PENDING 10000
#define FICUS_REDIS_MAX_SENTINELS 16
#define FICUS_REDIS_MAX_CLUSTER_NODES 64 /* masters (and seeds) a worker connects to in cluster mode */

typedef struct st_ficus_redis_conf_t {
    char *address; /* as written; "sentinel:<master>" in sentinel mode */
    char *host;    /* IP, or NULL for unix and sentinel */
    int port;
    char *unix_path; /* or NULL */
    char *password;  /* from password_file, or NULL */
    unsigned db;
    struct {
        char *master; /* NULL: not sentinel mode */
        char **hosts; /* IPs (names are resolved at load) */
        int *ports;
        size_t num_addresses;
        char *password; /* sentinel AUTH, or NULL */
    } sentinel;
    struct {
        char **hosts; /* seed nodes (IPs); NULL: not cluster mode */
        int *ports;
        size_t num_seeds;
    } cluster;
    int is_cluster_node; /* a node's connection inside cluster mode (gateway/redis_cluster.c), not a section's conf */
    uint64_t connect_timeout_ms, command_timeout_ms, reconnect_min_ms, reconnect_max_ms, breaker_open_ms;
    unsigned breaker_failures;
} ficus_redis_conf_t;

typedef struct st_ficus_redis_stats_slot_t {
    uint64_t commands, errors, timeouts, unavailable, reconnects, latency_sum_us, breaker_opens;
    uint64_t replies;      /* answered commands (the count of latency_sum_us) */
    uint64_t failovers;    /* sentinel: switches to another master */
    uint64_t connected;    /* gauge 0/1 */
    uint64_t breaker_open; /* gauge 0/1: failures reached the threshold and no command succeeded since */
    char _pad[64];
} ficus_redis_stats_slot_t;

extern ficus_redis_stats_slot_t ficus_redis_stats[FICUS_MAX_WORKERS];

#define FICUS_REDIS_MAX_NODE_STATS 64 /* servers with series of their own (ficus_redis_node_*{node}) */

typedef struct st_ficus_redis_node_slot_t {
    uint64_t commands, errors, timeouts, latency_sum_us;
    uint64_t replies;   /* answered commands (the count of latency_sum_us) */
    uint64_t connected; /* gauge 0/1 */
    char _pad[16];      /* one 64-byte line per worker */
} ficus_redis_node_slot_t;

typedef struct st_ficus_redis_node_stats_t {
    char name[64]; /* the server's address */
    ficus_redis_node_slot_t slots[FICUS_MAX_WORKERS];
} ficus_redis_node_stats_t;

/** The per-server series of `name` (an address), registered on first use (thread-safe; gateway/redis_metrics.c).
 * NULL when the table is full. */
ficus_redis_node_stats_t *ficus_redis_node_stats(const char *name);

typedef struct st_ficus_redis_t ficus_redis_t;
typedef struct st_ficus_redis_cmd_t ficus_redis_cmd_t;

/** err == NULL: reply is the server's answer (possibly an error reply: check reply->type). Else reply is NULL and err
 * is "timeout", "disconnected" or "unavailable" (not connected, breaker open, too many pending). */
typedef void (*ficus_redis_cb)(void *data, redisReply *reply, const char *err);

typedef struct st_ficus_redis_script_t {
    const char *source;
    char sha1[41]; /* filled by ficus_redis_script_init */
} ficus_redis_script_t;

/** Parses the `redis:` section (gateway/redis_conf.c). Reads password files at load. 0 or -1 with a file:line error. */
int ficus_redis_conf_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_redis_conf_t **out);
void ficus_redis_conf_free(ficus_redis_conf_t *conf);
/** Whether two confs can share connections (address or sentinel set, passwords, db). */
int ficus_redis_conf_same_server(const ficus_redis_conf_t *a, const ficus_redis_conf_t *b);

/** Creates a client and starts connecting. Call on the worker's thread. */
ficus_redis_t *ficus_redis_create(h2o_loop_t *loop, const ficus_redis_conf_t *conf, unsigned worker_index);
/** Applies new timeouts / breaker settings of an equivalent conf (same server). */
void ficus_redis_update(ficus_redis_t *r, const ficus_redis_conf_t *conf);
/** Closes the connection; pending commands get "disconnected" on a later tick. */
void ficus_redis_destroy(ficus_redis_t *r);
/** Whether the connection is up and the breaker closed (a "no" counts in ficus_redis_unavailable_total). */
int ficus_redis_is_available(ficus_redis_t *r);

/** Connected and the breaker closed, without counting anything (for the cluster layer's bookkeeping). */
int ficus_redis_is_connected(ficus_redis_t *r);
/** The breaker is open or half-open (failures reached the threshold, no success since). */
int ficus_redis_breaker_is_open(ficus_redis_t *r);

/** Sends a command. Never returns NULL. */
ficus_redis_cmd_t *ficus_redis_command(ficus_redis_t *r, ficus_redis_cb cb, void *data, int argc, const char **argv,
                                       const size_t *argvlen);
/** Runs a script: EVALSHA sha numkeys args...; on NOSCRIPT, EVAL source numkeys args... (argv holds keys then args). */
ficus_redis_cmd_t *ficus_redis_eval(ficus_redis_t *r, const ficus_redis_script_t *script, int numkeys, int argc, const char **argv,
                                    const size_t *argvlen, ficus_redis_cb cb, void *data);
/** Cancels a pending command: its callback is not called. */
void ficus_redis_cancel(ficus_redis_cmd_t *cmd);

/** Computes script->sha1 from script->source. */
void ficus_redis_script_init(ficus_redis_script_t *script);

/** Prometheus text for the Redis client counters, totals and per node (gateway/redis_metrics.c). */
void ficus_redis_render_metrics(h2o_mem_pool_t *pool, h2o_iovec_t *out, unsigned num_workers);

/** JSON object of the Redis state for /readyz: mode, server or master, workers connected, breakers open. */
void ficus_redis_render_readyz(h2o_mem_pool_t *pool, const ficus_redis_conf_t *conf, unsigned num_workers, h2o_iovec_t *out);

#endif
