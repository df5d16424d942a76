/* The hiredis ↔ H2O evloop event adapter (see ficus/redis_ev.h). */
#include <unistd.h>
#include "ficus/redis_ev.h"

static void on_readable(h2o_socket_t *sock, const char *err)
{
    ficus_redis_ev_t *ev = sock->data;
    if (ev->ac != NULL)
        redisAsyncHandleRead(ev->ac);
}

static void on_writable(h2o_socket_t *sock, const char *err)
{
    ficus_redis_ev_t *ev = sock->data;
    ev->write_armed = 0;
    if (ev->ac != NULL && ev->want_write)
        redisAsyncHandleWrite(ev->ac);
}

static void ev_add_read(void *privdata)
{
    ficus_redis_ev_t *ev = privdata;
    h2o_socket_read_start(ev->sock, on_readable);
}

static void ev_del_read(void *privdata)
{
    ficus_redis_ev_t *ev = privdata;
    h2o_socket_read_stop(ev->sock);
}

static void ev_add_write(void *privdata)
{
    ficus_redis_ev_t *ev = privdata;
    ev->want_write = 1;
    if (!ev->write_armed) {
        ev->write_armed = 1;
        h2o_socket_notify_write(ev->sock, on_writable);
    }
}

static void ev_del_write(void *privdata)
{
    ficus_redis_ev_t *ev = privdata;
    ev->want_write = 0;
}

static void ev_cleanup(void *privdata)
{
    ficus_redis_ev_t *ev = privdata;
    if (ev->sock != NULL) {
        h2o_socket_read_stop(ev->sock);
        h2o_socket_close(ev->sock);
        ev->sock = NULL;
    }
    ev->ac = NULL;
    ev->write_armed = 0;
    ev->want_write = 0;
}

int ficus_redis_ev_attach(ficus_redis_ev_t *ev, h2o_loop_t *loop, redisAsyncContext *ac)
{
    int fd = dup(ac->c.fd);
    if (fd == -1)
        return -1;
    ev->ac = ac;
    ev->write_armed = 0;
    ev->want_write = 0;
    ev->sock = h2o_evloop_socket_create(loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    ev->sock->data = ev;
    ac->ev.data = ev;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    /* a non-blocking connect completes when the socket becomes writable: hiredis asks on the first command; ask now */
    ev_add_write(ev);
    return 0;
}

void ficus_redis_ev_flush(ficus_redis_ev_t *ev)
{
    if (ev->ac != NULL && ev->want_write)
        redisAsyncHandleWrite(ev->ac);
}
