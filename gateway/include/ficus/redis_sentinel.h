/* Following a Sentinel-managed Redis master, per worker (gateway/redis_sentinel.c).
 *
 * One watcher per worker's Redis client, on the worker's loop. It holds one connection to one sentinel at a time: on
 * it, `SENTINEL get-master-addr-by-name <master>` and then `SUBSCRIBE +switch-master`, so the master's address is
 * known at connect and every switch is heard at once. A sentinel that does not answer within connect_timeout, does
 * not know the master, or drops the connection is left for the next one in the list; after a full round without an
 * answer the watcher backs off (reconnect_min .. reconnect_max). Nothing here blocks: a worker never waits on a
 * sentinel, it keeps using (or failing over from) the master it knows.
 * Sentinels answer with IP addresses (a host name in an answer is refused: resolving it would block the loop). */
#ifndef ficus__redis_sentinel_h
#define ficus__redis_sentinel_h

#include "h2o.h"
#include "ficus/redis.h"

typedef struct st_ficus_redis_sentinel_t ficus_redis_sentinel_t;

/** Called on the worker's loop with the master's address whenever a sentinel names it (at each (re)connection to a
 * sentinel and on every +switch-master for this master). Never called from inside a watcher function. */
typedef void (*ficus_redis_sentinel_cb)(void *data, const char *ip, int port);

/** Starts watching conf->sentinel on loop. conf is copied. */
ficus_redis_sentinel_t *ficus_redis_sentinel_create(h2o_loop_t *loop, const ficus_redis_conf_t *conf, unsigned worker_index,
                                                    ficus_redis_sentinel_cb cb, void *data);
/** The master the client was given looks wrong (ROLE says replica, a -READONLY reply, it cannot be reached): ask a
 * sentinel again soon (at most once a second). */
void ficus_redis_sentinel_refresh(ficus_redis_sentinel_t *s);
/** Stops watching; the callback is not called any more. */
void ficus_redis_sentinel_destroy(ficus_redis_sentinel_t *s);

/** Records the master a worker switched to (thread-safe; for /readyz and /metrics). */
void ficus_redis_sentinel_note_master(const char *ip, int port);
/** Writes "ip:port" of the master last named ("" before any) into buf; returns its length. */
size_t ficus_redis_sentinel_last_master(char *buf, size_t len);

#endif
