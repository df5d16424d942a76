/* Slow clients: a send deadline per relayed response, and a bound on what one upstream exchange buffers.
 *
 * A client that stops reading (an HTTP/1.1 reader with a full receive window, an HTTP/2 client advertising a zero
 * window) keeps H2O from asking for the next chunk, and so keeps ficus's upstream exchange (an upstream connection
 * and one of the upstream's max_connections slots) for as long as it likes: H2O 2.2.5 has no send timeout, and its
 * HTTP/2 idle timeout does not run while streams are open.
 * DESIGN: the relay arms a deadline (server.limits.send_timeout) whenever it hands a chunk to H2O and disarms it when
 * H2O asks for more. When it passes, the upstream exchange is released at once (the relay's callback) and the client
 * connection is closed by shutting its socket down, so H2O tears it down through its normal error path (no stream or
 * request is freed behind its back), as NGINX's send_timeout does. The timer is the worker's shared h2o_timeout_t of
 * that duration: arming and disarming are list operations, no allocation.
 * BUFFERING: H2O's evloop reads a readable socket until EAGAIN, growing the buffer: one read event of an upstream
 * whose client is slow pulls the whole kernel receive buffer (several MB with autotuning) into ficus. The upstream
 * socket's SO_RCVBUF is therefore set to server.limits.max_response_buffer (the kernel doubles it for bookkeeping),
 * which bounds each exchange's buffered response and makes the upstream feel the backpressure instead. */
#include <sys/socket.h>
#include "ficus/log.h"
#include "ficus/send_guard.h"
#include "ficus/worker.h"

static void on_deadline(h2o_timeout_entry_t *entry)
{
    ficus_send_guard_t *g = H2O_STRUCT_FROM_MEMBER(ficus_send_guard_t, _entry, entry);
    g->timed_out = 1;
    ficus_counter_add(&ficus_worker_stats[g->r->worker->index].send_timeouts, 1);
    ficus_debug("client did not read for %llums: closing its connection (request %.*s)",
                (unsigned long long)g->r->config->server.send_timeout_ms, (int)g->r->request_id.len, g->r->request_id.base);
    if (g->r->error == NULL)
        g->r->error = "client_send_timeout";
    g->on_timeout(g);
    ficus_close_client_connection(g->r->h2o);
}

void ficus_send_guard_init(ficus_send_guard_t *g, ficus_req_t *r, ficus_send_guard_cb on_timeout)
{
    memset(g, 0, sizeof(*g));
    g->r = r;
    g->on_timeout = on_timeout;
    g->_entry.cb = on_deadline;
}

void ficus_send_guard_sent(ficus_send_guard_t *g)
{
    if (!h2o_timeout_is_linked(&g->_entry))
        h2o_timeout_link(g->r->worker->loop, ficus_worker_timeout(g->r->worker, g->r->config->server.send_timeout_ms), &g->_entry);
}

void ficus_send_guard_progress(ficus_send_guard_t *g)
{
    h2o_timeout_unlink(&g->_entry);
}

void ficus_send_guard_dispose(ficus_send_guard_t *g)
{
    h2o_timeout_unlink(&g->_entry);
}

void ficus_send_guard_bound_upstream(ficus_req_t *r, int fd)
{
    int size = (int)(r->config->server.max_response_buffer / 2);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

void ficus_close_client_connection(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock == NULL)
        return;
    /* a reset, not a FIN queued behind what the client never read: the kernel lets go of that data at close */
    struct linger lg = {1, 0};
    setsockopt(h2o_socket_get_fd(sock), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
}
