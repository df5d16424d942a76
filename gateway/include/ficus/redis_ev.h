/* hiredis's async context on an H2O evloop: the event adapter shared by the Redis client (gateway/redis.c) and the
 * Sentinel watcher (gateway/redis_sentinel.c).
 *
 * A dup() of the context's fd is wrapped as an h2o socket with H2O_SOCKET_FLAG_DONT_READ; hiredis's addRead/delRead
 * start and stop reading it, addWrite arms h2o's one-shot write notification (tracked: arming it twice asserts) and
 * delWrite only clears the wish (an armed notification fires once and does nothing). The socket is closed when
 * hiredis cleans the context up (it frees the context itself after a disconnect, or in redisAsyncFree). */
#ifndef ficus__redis_ev_h
#define ficus__redis_ev_h

#include <hiredis/async.h>
#include "h2o.h"

typedef struct st_ficus_redis_ev_t {
    redisAsyncContext *ac; /* NULL once hiredis cleaned the context up */
    h2o_socket_t *sock;
    int write_armed;
    int want_write;
} ficus_redis_ev_t;

/** Attaches ac to loop through ev (which must outlive ac). 0, or -1 when the fd cannot be duplicated (ac untouched:
 * the caller frees it). Asks for writability at once, so a non-blocking connect completes. */
int ficus_redis_ev_attach(ficus_redis_ev_t *ev, h2o_loop_t *loop, redisAsyncContext *ac);
/** Writes hiredis's pending output now if it asked to write (e.g. at the end of a loop iteration). */
void ficus_redis_ev_flush(ficus_redis_ev_t *ev);

#endif
