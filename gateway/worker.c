/* Worker threads (see ficus/worker.h): sockets, H2O context, accepting, switching generations, draining, shared
 * timeouts by duration.
 *
 * Each worker has its own h2o_globalconf_t with one host per listener (so a request knows which listener it came
 * through), and one h2o_context_t for its whole life. A reload never rebuilds them: the worker swaps its `current`
 * wgen, points its accept contexts at the new TLS contexts (new handshakes get new certificates, established
 * connections keep theirs), and updates the few H2O settings read at run time (body limit, timeouts), all on its own
 * thread, so nothing is shared or locked. */
#include <errno.h>
#include <semaphore.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "ficus/client_conn.h"
#include "ficus/log.h"
#include "ficus/plugin.h"
#include "ficus/redis.h"
#include "ficus/upgrade.h"
#include "ficus/worker.h"

__thread ficus_worker_t *ficus_current_worker;
unsigned ficus_num_workers;

typedef struct st_ficus_worker_msg_t {
    h2o_multithread_message_t super;
    void (*fn)(ficus_worker_t *w, void *arg);
    void *arg;
} ficus_worker_msg_t;

/* ---- generations ---- */

typedef struct st_ficus_wgen_disposer_t {
    h2o_timeout_entry_t entry;
    ficus_wgen_t *wg;
} ficus_wgen_disposer_t;

static void dispose_wgen_now(h2o_timeout_entry_t *entry)
{
    ficus_wgen_disposer_t *d = H2O_STRUCT_FROM_MEMBER(ficus_wgen_disposer_t, entry, entry);
    ficus_wgen_t *wg = d->wg;
    for (size_t i = 0; i != wg->config->num_upstreams; ++i)
        ficus_upstream_rt_dispose(wg->upstreams + i, wg->worker);
    free(wg->upstreams);
    ficus_debug("worker %u: generation %llu retired", wg->worker->index, (unsigned long long)wg->config->generation);
    ficus_config_release(wg->config);
    free(wg);
    free(d);
}

void ficus_wgen_release(ficus_wgen_t *wg)
{
    if (--wg->refcnt != 0)
        return;
    /* dispose on the next tick: the last request may end inside a callback of a client using this wgen's pools */
    ficus_wgen_disposer_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        ficus_fatal("no memory");
    d->wg = wg;
    d->entry.cb = dispose_wgen_now;
    h2o_timeout_link(wg->worker->loop, &wg->worker->ctx.zero_timeout, &d->entry);
}

static ficus_wgen_t *wgen_create(ficus_worker_t *w, ficus_config_t *config)
{
    ficus_wgen_t *wg = calloc(1, sizeof(*wg));
    if (wg == NULL || (wg->upstreams = calloc(config->num_upstreams + 1, sizeof(*wg->upstreams))) == NULL)
        ficus_fatal("no memory");
    wg->config = config; /* the caller's reference moves here */
    wg->worker = w;
    wg->refcnt = 1;
    for (size_t i = 0; i != config->num_upstreams; ++i)
        ficus_upstream_rt_init(wg->upstreams + i, config->upstreams[i], w, ficus_num_workers);
    return wg;
}

/* Settings H2O reads at run time from the worker's own globalconf / context. */
static void apply_runtime_settings(ficus_worker_t *w, const ficus_config_t *config)
{
    w->globalconf.max_request_entity_size = config->server.max_body_bytes;
    w->globalconf.http1.upgrade_to_http2 = config->server.h2c; /* `Upgrade: h2c` and the h2c preface on plain listeners */
    /* H2O queues a connection's further streams until one of these completes (server.limits.max_upstream_per_connection) */
    w->globalconf.http2.max_concurrent_requests_per_connection = (size_t)config->server.max_upstream_per_connection;
    w->ctx.handshake_timeout.timeout = config->server.handshake_timeout_ms;
    w->ctx.http1.req_timeout.timeout = config->server.idle_timeout_ms;
    w->ctx.http2.idle_timeout.timeout = config->server.idle_timeout_ms;
    for (size_t i = 0; i != w->num_listeners; ++i) {
        const ficus_listener_conf_t *lc = config->server.listeners + w->listeners[i].index;
        w->listeners[i].accept_ctx.ssl_ctx = lc->tls != NULL ? lc->tls->ssl_ctx : NULL;
    }
}

/* One Redis connection per worker, kept across reloads unless the server settings change. */
static void apply_redis(ficus_worker_t *w, const ficus_config_t *old, const ficus_config_t *config)
{
    if (w->redis != NULL &&
        (config->redis == NULL || old == NULL || old->redis == NULL || !ficus_redis_conf_same_server(old->redis, config->redis))) {
        ficus_redis_destroy(w->redis);
        w->redis = NULL;
    }
    if (config->redis == NULL)
        return;
    if (w->redis == NULL)
        w->redis = ficus_redis_create(w->loop, config->redis, w->index);
    else
        ficus_redis_update(w->redis, config->redis);
}

static void notify_plugins(ficus_worker_t *w, const ficus_config_t *config)
{
    for (size_t i = 0; ficus_plugins[i] != NULL; ++i)
        if (ficus_plugins[i]->on_worker_generation != NULL)
            ficus_plugins[i]->on_worker_generation(config->plugin_globals[i], w, config);
}

static void switch_config(ficus_worker_t *w, ficus_config_t *config)
{
    ficus_wgen_t *old = w->current;
    apply_redis(w, old->config, config);
    notify_plugins(w, config);
    w->current = wgen_create(w, config);
    ficus_upstream_rts_retire(old->upstreams, old->config->num_upstreams, w->current->upstreams, config->num_upstreams);
    apply_runtime_settings(w, config);
    if (w->access_log.fd != config->server.access_log_fd)
        ficus_access_log_flush(&w->access_log);
    ficus_wgen_release(old);
}

/* ---- accepting ---- */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    ficus_listener_rt_t *l = listener->data;
    if (err != NULL)
        return;
    /* bounded: at most 32 connections per readiness event, so one busy listener cannot starve the loop */
    for (int i = 0; i != 32; ++i) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        ficus_client_conn_accept(ficus_current_worker, &l->accept_ctx, sock);
    }
}

int ficus_worker_bind(ficus_worker_t *w, const ficus_config_t *config, ficus_handoff_t *handoff, char *err, size_t errlen)
{
    w->num_listeners = config->server.num_listeners;
    w->listeners = calloc(w->num_listeners, sizeof(*w->listeners));
    if (w->listeners == NULL)
        ficus_fatal("no memory");
    for (size_t i = 0; i != w->num_listeners; ++i) {
        const ficus_listener_conf_t *lc = config->server.listeners + i;
        ficus_listener_rt_t *l = w->listeners + i;
        l->index = i;
        /* a binary upgrade: the running process's socket for this address, already listening */
        if (handoff != NULL && (l->fd = ficus_handoff_take(handoff, &lc->addr)) != -1)
            continue;
        int fd = socket(lc->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), on = 1;
        if (fd == -1)
            goto Error;
        l->fd = fd;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0)
            goto Error;
        if (lc->addr.ss_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
        if (bind(fd, (const struct sockaddr *)&lc->addr, lc->addrlen) != 0 || listen(fd, 1024) != 0)
            goto Error;
        continue;
    Error:
        snprintf(err, errlen, "cannot listen on %s: %s%s", lc->address, strerror(errno),
                 errno == EADDRINUSE ? " (another process holds the address)" : "");
        return -1;
    }
    return 0;
}

void ficus_worker_add_listener(ficus_worker_t *w, size_t index, int fd)
{
    ficus_listener_rt_t *l = realloc(w->listeners, sizeof(*l) * (w->num_listeners + 1));
    if (l == NULL)
        ficus_fatal("no memory");
    w->listeners = l;
    l += w->num_listeners++;
    memset(l, 0, sizeof(*l));
    l->index = index;
    l->fd = fd;
}

/* ---- draining ---- */

static void on_drain_check(h2o_timeout_entry_t *entry)
{
    ficus_worker_t *w = H2O_STRUCT_FROM_MEMBER(ficus_worker_t, drain_check, entry);
    /* done when no request is in flight and every client connection is closed: HTTP/1.1 ones after a response with
     * `Connection: close` or once idle (ficus_client_conn_drain), HTTP/2 ones by H2O after its GOAWAYs; exiting with a
     * connection open would reset a request the client may be sending on it */
    size_t conns = ficus_client_conn_drain(w);
    if ((w->inflight == 0 && conns == 0) || h2o_now(w->loop) >= w->drain_deadline) {
        if (w->inflight != 0 || conns != 0)
            ficus_warn("worker %u: drain timeout reached with %llu requests in flight, %zu connections open; closing them",
                       w->index, (unsigned long long)w->inflight, conns);
        w->exited = 1;
        return;
    }
    h2o_timeout_link(w->loop, &w->drain_check_timeout, &w->drain_check);
}

static void start_drain(ficus_worker_t *w, uint64_t drain_ms)
{
    if (w->draining)
        return;
    w->draining = 1;
    for (size_t i = 0; i != w->num_listeners; ++i) {
        if (w->listeners[i].sock != NULL) {
            h2o_socket_read_stop(w->listeners[i].sock);
            h2o_socket_close(w->listeners[i].sock);
            w->listeners[i].sock = NULL;
        }
    }
    h2o_context_request_shutdown(&w->ctx); /* GOAWAY on h2, no keep-alive on h1 */
    w->drain_deadline = h2o_now(w->loop) + drain_ms;
    w->drain_check.cb = on_drain_check;
    h2o_timeout_link(w->loop, &w->drain_check_timeout, &w->drain_check);
}

/* ---- timeouts by duration ---- */

h2o_timeout_t *ficus_worker_timeout(ficus_worker_t *w, uint64_t ms)
{
    for (size_t i = 0; i != w->num_timeouts; ++i)
        if (w->timeouts[i].ms == ms)
            return &w->timeouts[i].timeout;
    if (w->num_timeouts != FICUS_WORKER_MAX_TIMEOUTS) {
        ficus_worker_timeout_t *t = w->timeouts + w->num_timeouts++;
        t->ms = ms;
        h2o_timeout_init(w->loop, &t->timeout, ms);
        return &t->timeout;
    }
    /* full: the closest longer duration (fires late), else the longest one (fires early) */
    size_t best = SIZE_MAX, longest = 0;
    for (size_t i = 0; i != w->num_timeouts; ++i) {
        if (w->timeouts[i].ms > ms && (best == SIZE_MAX || w->timeouts[i].ms < w->timeouts[best].ms))
            best = i;
        if (w->timeouts[i].ms > w->timeouts[longest].ms)
            longest = i;
    }
    if (best == SIZE_MAX)
        best = longest;
    if (!w->timeouts_overflow_logged) {
        w->timeouts_overflow_logged = 1;
        ficus_error("worker %u: more than %d distinct timer durations; %llu ms runs as %llu ms (logged once)", w->index,
                    FICUS_WORKER_MAX_TIMEOUTS, (unsigned long long)ms, (unsigned long long)w->timeouts[best].ms);
    }
    return &w->timeouts[best].timeout;
}

/* At thread end. Entries still linked belong to requests left in flight at the drain deadline: the loop no longer
 * runs and the process exits, so they could never fire; they are unlinked so that each timeout is disposed empty. */
static void dispose_timeouts(ficus_worker_t *w)
{
    for (size_t i = 0; i != w->num_timeouts; ++i) {
        h2o_timeout_t *t = &w->timeouts[i].timeout;
        while (!h2o_linklist_is_empty(&t->_entries))
            h2o_timeout_unlink(H2O_STRUCT_FROM_MEMBER(h2o_timeout_entry_t, _link, t->_entries.next));
        h2o_timeout_dispose(w->loop, t);
    }
    w->num_timeouts = 0;
}

/* ---- messages and the thread ---- */

static void on_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    ficus_worker_t *w = H2O_STRUCT_FROM_MEMBER(ficus_worker_t, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        ficus_worker_msg_t *msg = H2O_STRUCT_FROM_MEMBER(ficus_worker_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&msg->super.link);
        msg->fn(w, msg->arg);
        free(msg);
    }
}

void ficus_worker_post(ficus_worker_t *w, void (*fn)(ficus_worker_t *w, void *arg), void *arg)
{
    ficus_worker_msg_t *msg = calloc(1, sizeof(*msg));
    if (msg == NULL)
        ficus_fatal("no memory");
    msg->fn = fn;
    msg->arg = arg;
    h2o_multithread_send_message(&w->receiver, &msg->super);
}

static void on_config_msg(ficus_worker_t *w, void *arg)
{
    switch_config(w, arg);
}

void ficus_worker_send_config(ficus_worker_t *w, ficus_config_t *config)
{
    ficus_config_retain(config);
    ficus_worker_post(w, on_config_msg, config);
}

static void on_drain_msg(ficus_worker_t *w, void *arg)
{
    start_drain(w, (uint64_t)(uintptr_t)arg);
}

void ficus_worker_send_drain(ficus_worker_t *w, uint64_t drain_ms)
{
    ficus_worker_post(w, on_drain_msg, (void *)(uintptr_t)drain_ms);
}

static void setup_globalconf(ficus_worker_t *w, const ficus_config_t *config)
{
    h2o_config_init(&w->globalconf);
    w->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("ficus"));
    w->globalconf.http2.graceful_shutdown_timeout = config->server.drain_timeout_ms;
    for (size_t i = 0; i != w->num_listeners; ++i) {
        char name[32];
        snprintf(name, sizeof(name), "listener-%zu-%zu", w->listeners[i].index, i);
        h2o_hostconf_t *host = h2o_config_register_host(&w->globalconf, h2o_iovec_init(name, strlen(name)), 65535);
        h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
        ficus_handler_t *handler = (void *)h2o_create_handler(path, sizeof(*handler));
        handler->super.on_req = ficus_request_on_req;
        handler->listener_index = w->listeners[i].index;
        w->listeners[i].hosts[0] = host;
        w->listeners[i].hosts[1] = NULL;
    }
}

/* Everything a worker owns is created on its own thread: H2O keeps per-thread allocators (socket buffers, memory
 * pool chunks) and a buffer made on one thread must not be grown or recycled on another. */
static void init_on_thread(ficus_worker_t *w, ficus_config_t *config)
{
    w->loop = h2o_evloop_create();
    setup_globalconf(w, config);
    h2o_context_init(&w->ctx, w->loop, &w->globalconf);
    w->current = wgen_create(w, config);
    h2o_timeout_init(w->loop, &w->drain_check_timeout, 100);
    h2o_timeout_init(w->loop, &w->tick_timeout, 100);
    h2o_linklist_init_anchor(&w->kid_waiters);
    ficus_access_log_init(&w->access_log, w->loop);
    for (size_t i = 0; i != w->num_listeners; ++i) {
        ficus_listener_rt_t *l = w->listeners + i;
        l->accept_ctx.ctx = &w->ctx;
        l->accept_ctx.hosts = l->hosts;
        l->sock = h2o_evloop_socket_create(w->loop, l->fd, H2O_SOCKET_FLAG_DONT_READ);
        l->sock->data = l;
        h2o_socket_read_start(l->sock, on_accept);
    }
    apply_runtime_settings(w, config);
    ficus_client_conn_init_worker(w);
    apply_redis(w, NULL, config);
    w->queue = h2o_multithread_create_queue(w->loop);
    h2o_multithread_register_receiver(w->queue, &w->receiver, on_message);
}

static void *worker_main(void *arg)
{
    ficus_worker_t *w = arg;
    ficus_current_worker = w;
    init_on_thread(w, w->start_config);
    w->start_config = NULL;
    sem_post(&w->ready); /* from here on the control thread may post messages */
    notify_plugins(w, w->current->config);
    while (!w->exited)
        h2o_evloop_run(w->loop, INT32_MAX);
    ficus_access_log_flush(&w->access_log);
    dispose_timeouts(w);
    return NULL;
}

void ficus_worker_start(ficus_worker_t *w, ficus_config_t *config)
{
    ficus_config_retain(config); /* moves into the worker's first wgen */
    w->start_config = config;
    sem_init(&w->ready, 0, 0);
    if ((errno = pthread_create(&w->thread, NULL, worker_main, w)) != 0)
        ficus_fatal("cannot create worker thread: %s", strerror(errno));
    while (sem_wait(&w->ready) != 0)
        ;
}
