/* Redis Cluster mode of a worker's Redis client (gateway/redis_cluster.c).
 *
 * DESIGN: hiredis 0.14 knows nothing of clusters, so this layer routes on top of one ordinary ficus client
 * (gateway/redis.c) per master node. It reads the slot map (CLUSTER SLOTS) from any node it can reach (the seeds
 * first), keeps one connection per master, and sends every command to its slot's master. Every key ficus uses carries
 * a hash tag, so each command and script touches one slot: the slot is that of the first key (EVAL/EVALSHA: KEYS[1];
 * other commands: argv[1]).
 *   - `-MOVED slot ip:port`: the map entry is corrected at once, the command is sent again there, and a full map refresh
 *     is due (on the next tick, never inside the reply);
 *   - `-ASK slot ip:port` (a slot being migrated): `ASKING` then the command on that node, the map unchanged; scripts are
 *     sent as EVAL there (the target may not have them cached yet, and a NOSCRIPT retry would lose the ASKING);
 *   - at most FICUS_REDIS_CLUSTER_MAX_REDIRECTS per command, then the error reply is the answer;
 *   - the map is refreshed every 10 s, soon after an error (a node lost, a redirect, CLUSTERDOWN), and every 250 ms
 *     while a master of the map is not connected (a failover: the cluster promotes a replica);
 *   - scripts are loaded per node: each node's client has its own NOSCRIPT → EVAL fallback.
 * Commands of a slot whose master is unknown or down fail at once ("unavailable") and take the caller's store-error
 * path. Nothing here blocks; the callback contract is ficus/redis.h's (once, never inside the call, never after cancel).
 * Node addresses must be IPs (a host name in CLUSTER SLOTS or a redirect is refused: resolving it would block). */
#ifndef ficus__redis_cluster_h
#define ficus__redis_cluster_h

#include "h2o.h"
#include "ficus/redis.h"

#define FICUS_REDIS_CLUSTER_SLOTS 16384
#define FICUS_REDIS_CLUSTER_MAX_REDIRECTS 5

typedef struct st_ficus_redis_cluster_t ficus_redis_cluster_t;
typedef struct st_ficus_redis_ccmd_t ficus_redis_ccmd_t;

/** The cluster slot of a key: CRC16 (XMODEM) of its hash tag ({...}, when non-empty) or of the whole key, mod 16384. */
unsigned ficus_redis_key_slot(const char *key, size_t len);

ficus_redis_cluster_t *ficus_redis_cluster_create(h2o_loop_t *loop, const ficus_redis_conf_t *conf, unsigned worker_index);
void ficus_redis_cluster_update(ficus_redis_cluster_t *c, const ficus_redis_conf_t *conf);
/** Closes every node; pending commands get "disconnected" on a later tick; freed once they are delivered. */
void ficus_redis_cluster_destroy(ficus_redis_cluster_t *c);
/** A map is known and at least one of its masters is connected. */
int ficus_redis_cluster_is_available(ficus_redis_cluster_t *c);
/** As ficus_redis_command / ficus_redis_eval (script == NULL: argv is the whole command). Never NULL. The returned
 * object starts with the same `is_cluster` member as ficus_redis_cmd_t (= 1), which is how ficus_redis_cancel tells. */
ficus_redis_ccmd_t *ficus_redis_cluster_command(ficus_redis_cluster_t *c, const ficus_redis_script_t *script, int numkeys, int argc,
                                                const char **argv, const size_t *argvlen, ficus_redis_cb cb, void *data);
void ficus_redis_cluster_cancel(ficus_redis_ccmd_t *cmd);
/** Prometheus text of the cluster counters (slot map refreshes, redirects by kind), summed over workers. */
void ficus_redis_cluster_render_metrics(h2o_mem_pool_t *pool, h2o_iovec_t *out, unsigned num_workers);
/** Masters in the map of worker 0 (for /readyz). */
size_t ficus_redis_cluster_num_masters(void);

#endif
