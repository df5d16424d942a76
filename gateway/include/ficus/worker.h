/* Worker threads: one H2O evloop each, own listening sockets (SO_REUSEPORT), own H2O context, own upstream pools.
 *
 * GENERATIONS: a worker serves its `current` worker generation (ficus_wgen_t = a config + this worker's runtime for
 * it: upstream pools and timers). A request holds a reference to the wgen it started on; switching to a new config
 * only replaces `current`, and a retired wgen is disposed (pools closed, config released) when its last request
 * ends. wgen refcounts are touched only by the owning worker thread: no atomics on the hot path.
 * MESSAGES: the control thread talks to workers only through their h2o_multithread queue (new config, drain).
 * TIMEOUTS: H2O 2.2.5 timers are h2o_timeout_t objects of one fixed duration on one loop; ficus_worker_timeout()
 * gives plugins the worker's shared one for a duration (see there). */
#ifndef ficus__worker_h
#define ficus__worker_h

#include <pthread.h>
#include <semaphore.h>
#include "h2o.h"
#include "h2o/http1client.h"
#include "ficus/access_log.h"
#include "ficus/config.h"
#include "ficus/req.h"
#include "ficus/upstream.h"

/* The H2O handler of one listener's host: all requests enter ficus through it. */
typedef struct st_ficus_handler_t {
    h2o_handler_t super;
    size_t listener_index;
} ficus_handler_t;

struct st_ficus_wgen_t {
    ficus_config_t *config;
    ficus_worker_t *worker;
    size_t refcnt;                  /* 1 while current + 1 per request; worker thread only */
    ficus_upstream_rt_t *upstreams; /* config->num_upstreams */
};

struct st_ficus_handoff_t;

/* One listening socket of a worker; a worker has one per listener, and after a binary upgrade maybe more. */
typedef struct st_ficus_listener_rt_t {
    size_t index; /* in config->server.listeners (stable across reloads) */
    int fd;
    h2o_socket_t *sock;
    h2o_accept_ctx_t accept_ctx;
    h2o_hostconf_t *hosts[2];
} ficus_listener_rt_t;

typedef struct st_ficus_h2_guard_entry_t {
    uint64_t conn_id;
    uint64_t window_start;
    uint64_t count;
    int closed;
} ficus_h2_guard_entry_t;

#define FICUS_H2_GUARD_SLOTS 1024 /* per worker; bounded memory whatever the number of connections */

#define FICUS_WORKER_MAX_TIMEOUTS 32 /* distinct durations of ficus_worker_timeout() per worker */

typedef struct st_ficus_worker_timeout_t {
    uint64_t ms;
    h2o_timeout_t timeout;
} ficus_worker_timeout_t;

struct st_ficus_worker_t {
    unsigned index;
    pthread_t thread;
    sem_t ready; /* posted once the thread has built its loop, context and queue */
    ficus_config_t *start_config;
    h2o_evloop_t *loop;
    h2o_globalconf_t globalconf;
    h2o_context_t ctx;
    ficus_listener_rt_t *listeners;
    size_t num_listeners;
    ficus_wgen_t *current;
    struct st_ficus_redis_t *redis; /* NULL when the running config has no `redis:` */
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    ficus_access_log_t access_log;
    ficus_h2_guard_entry_t h2_guard[FICUS_H2_GUARD_SLOTS];
    uint64_t inflight;
    int draining;
    uint64_t drain_deadline;
    int exited;
    h2o_linklist_t kid_waiters; /* requests waiting for a forced JWKS refetch (ficus/provider.h) */
    size_t num_kid_waiters;
    h2o_timeout_t tick_timeout; /* 100 ms */
    h2o_timeout_entry_t kid_tick;
    h2o_timeout_t drain_check_timeout;
    h2o_timeout_entry_t drain_check;
    /* ficus_worker_timeout(): created on first use, disposed when the thread ends; worker thread only */
    ficus_worker_timeout_t timeouts[FICUS_WORKER_MAX_TIMEOUTS];
    size_t num_timeouts;
    int timeouts_overflow_logged;
    h2o_linklist_t client_conns; /* ficus_client_conn_t (gateway/client_conn.c) */
    h2o_timeout_entry_t client_sweep;
};

/** Creates a worker's sockets for every listener of config (SO_REUSEPORT), or takes the running process's socket of
 * that address from handoff (a binary upgrade; NULL: none). 0, or -1 with a message in err. */
int ficus_worker_bind(ficus_worker_t *w, const ficus_config_t *config, struct st_ficus_handoff_t *handoff, char *err,
                      size_t errlen);
/** Before the worker starts: one more socket to accept on for config listener `index` (a binary upgrade passed more
 * sockets of that listener than this process has workers: each must be accepted from, or what the kernel queues on
 * it would be lost). */
void ficus_worker_add_listener(ficus_worker_t *w, size_t index, int fd);
/** Starts the worker thread serving `config` (a reference is taken). */
void ficus_worker_start(ficus_worker_t *w, ficus_config_t *config);
/** Runs fn(w, arg) on the worker's thread, soon (any thread may call it). */
void ficus_worker_post(ficus_worker_t *w, void (*fn)(ficus_worker_t *w, void *arg), void *arg);
/** From the control thread: switch the worker to config (takes its own reference). */
void ficus_worker_send_config(ficus_worker_t *w, ficus_config_t *config);
/** From the control thread: stop accepting, finish in-flight requests (up to drain_ms), then end the thread. */
void ficus_worker_send_drain(ficus_worker_t *w, uint64_t drain_ms);

/**
 * The worker's h2o_timeout_t of `ms` milliseconds, for linking entries on w->loop (worker thread only, no locks).
 * Created on the worker's loop on first use and kept for the life of the thread (shared by every caller asking for
 * that duration, across generations), then disposed when the thread ends: never dispose it, and unlink your entries
 * when their owner goes (a request pool's dispose callback), as with any H2O timeout. Never NULL.
 * BOUND: at most FICUS_WORKER_MAX_TIMEOUTS distinct durations per worker (plugins' durations come from configuration,
 * so there are few; each timeout costs a little on every loop iteration). Beyond that no new timeout is created: the
 * closest existing duration longer than `ms` is returned (the timer fires late, never early), and only when every
 * existing one is shorter, the longest one (fires early). The first such fallback of a worker is logged as an error.
 */
h2o_timeout_t *ficus_worker_timeout(ficus_worker_t *w, uint64_t ms);

/** Takes / drops a request's reference to a wgen (worker thread only). */
void ficus_wgen_release(ficus_wgen_t *wg);

/** The h2o handler entry point (gateway/request.c). */
int ficus_request_on_req(h2o_handler_t *self, h2o_req_t *req);

/** Records a stream cancelled by the client; closes the connection when it, its address or all clients together
 * cancel too many (gateway/h2_guard.c). */
void ficus_h2_guard_on_abort(ficus_worker_t *w, h2o_req_t *req, const ficus_config_t *config);
#define FICUS_H2_GUARD_KEY_LEN 9 /* family byte + IPv4 address or IPv6 /64 */
/** The rapid-reset budget key of a client address into key (FICUS_H2_GUARD_KEY_LEN bytes). Returns its length, or 0
 * (key zeroed) for a family without one. */
size_t ficus_h2_guard_key(const struct sockaddr *sa, uint8_t *key);
/** Whether the address of key is over its rapid-reset budget now (its connections are then closed). Any thread. */
int ficus_h2_guard_blocked(const uint8_t *key, uint64_t now);

extern __thread ficus_worker_t *ficus_current_worker;
extern unsigned ficus_num_workers;

#endif
