/* The upstream transport: ficus's HTTP/1.1 client, with a per-worker, per-endpoint keep-alive pool
 * (ficus/upstream/client.h).
 *
 * WHY: H2O 2.2.5's h2o_http1client + h2o_socketpool cost ~5 syscalls per request on reuse (recv(MSG_PEEK) to test
 * the pooled fd, h2o_socket_export/import = epoll_ctl DEL/ADD + fcntl + a new h2o_socket_t) plus a mutex, and the
 * pool is shared by all threads (DESIGN.md section 3). Here a pool belongs to one worker generation and one endpoint.
 *
 * IDLE CONNECTIONS stay h2o_socket_t's attached to the worker's loop, reading with on_idle_readable: any byte or EOF
 * from the upstream while idle closes the connection at once, so a pooled connection is known alive without a
 * syscall. Reuse = h2o_socket_read_stop + hand over; the exchange then writes the request and reads again, all within
 * one loop iteration, so epoll's interest set never changes (H2O only calls epoll_ctl when the state at the next poll
 * differs). The idle list is LIFO (warm connections first) and bounded by max_idle; each idle connection has a timer
 * on the caller's keepalive h2o_timeout_t (fixed duration). A connection goes back to the list only when its response
 * was complete, framed (Content-Length or chunked), reusable (HTTP/1.1 without `Connection: close`, or HTTP/1.0 with
 * `keep-alive`), with nothing left in its input buffer; the request was fully written before any response byte is
 * read, so it is never half-sent. Anything else closes it.
 *
 * NEW CONNECTIONS: h2o_socket_connect (non-blocking; H2O sets TCP_NODELAY on connecting sockets) with our own connect
 * timer. IP literals are parsed once per pool. Upstream endpoints are always IP literals (host names are resolved
 * by ficus's resolver on the control thread, gateway/resolver.c, into one endpoint per address); a pool for a name
 * (the health checker's, never in practice) resolves it through H2O's getaddrinfo thread for every new connection.
 *
 * RESPONSE: parsed by the pure unit gateway/upstream/response.c (strict head parser, RFC 9112 framing, chunked
 * decoder; its header says what is refused); here 1xx heads (100-continue, 103) are skipped and 101 is an error (we
 * never ask for an upgrade). A chunked or Content-Length body cut short is an error, never a silent truncation.
 *
 * BODY: decoded into x->body. Backpressure is a pull: the client reads the upstream only between
 * ficus_upc_read_body() and the next on_body callback, so nothing is read while the caller has a chunk in flight.
 * When the socket buffer holds only body bytes and x->body is empty, the two buffers are swapped instead of copied.
 *
 * LIFETIME: an exchange that is cancelled (the client went away) closes the connection it holds. A pool is disposed
 * with its worker generation, after the last request using it ended (ficus_wgen_t refcount): it closes the idle
 * connections and unlinks their timers, so no callback can fire afterwards. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/upstream/client.h"

const char ficus_upc_err_connect_refused[] = "connection refused";
const char ficus_upc_err_connect_failed[] = "connection failed";
const char ficus_upc_err_connect_timeout[] = "connection timeout";
const char ficus_upc_err_reset[] = "connection reset";
const char ficus_upc_err_timeout[] = "I/O timeout";
const char ficus_upc_err_protocol[] = "protocol error";
const char ficus_upc_eos[] = "end of stream";

struct st_ficus_upc_conn_t {
    h2o_socket_t *sock;
    ficus_upc_pool_t *pool;
    ficus_upc_t *x; /* NULL while idle */
    h2o_linklist_t idle_link;
    h2o_timeout_entry_t idle_timer;
};

enum { ST_INIT, ST_RESOLVING, ST_CONNECTING, ST_CONNECTED, ST_SENDING, ST_HEAD, ST_BODY_PAUSED, ST_BODY_READING, ST_DONE };

/* ---- pool ---- */

void ficus_upc_pool_init(ficus_upc_pool_t *pool, h2o_loop_t *loop, h2o_multithread_receiver_t *getaddr_receiver, const char *host,
                         uint16_t port, h2o_timeout_t *connect_timeout, h2o_timeout_t *io_timeout, h2o_timeout_t *idle_timeout,
                         size_t max_idle)
{
    memset(pool, 0, sizeof(*pool));
    pool->loop = loop;
    pool->getaddr_receiver = getaddr_receiver;
    pool->connect_timeout = connect_timeout;
    pool->io_timeout = io_timeout;
    pool->idle_timeout = idle_timeout;
    pool->max_idle = max_idle;
    pool->host = h2o_strdup(NULL, host, strlen(host));
    snprintf(pool->serv, sizeof(pool->serv), "%u", (unsigned)port);
    h2o_linklist_init_anchor(&pool->idle);
    struct sockaddr_in *sin = (void *)&pool->addr;
    struct sockaddr_in6 *sin6 = (void *)&pool->addr;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        pool->addrlen = sizeof(*sin);
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        pool->addrlen = sizeof(*sin6);
    }
}

static void conn_close(ficus_upc_conn_t *conn)
{
    h2o_socket_close(conn->sock);
    free(conn);
}

static void idle_close(ficus_upc_conn_t *conn)
{
    h2o_linklist_unlink(&conn->idle_link);
    --conn->pool->num_idle;
    h2o_timeout_unlink(&conn->idle_timer);
    conn_close(conn);
}

void ficus_upc_pool_close_idle(ficus_upc_pool_t *pool)
{
    while (!h2o_linklist_is_empty(&pool->idle))
        idle_close(H2O_STRUCT_FROM_MEMBER(ficus_upc_conn_t, idle_link, pool->idle.next));
}

void ficus_upc_pool_dispose(ficus_upc_pool_t *pool)
{
    assert(pool->num_busy == 0);
    ficus_upc_pool_close_idle(pool);
    free(pool->host.base);
    pool->host = h2o_iovec_init(NULL, 0);
}

static void on_idle_readable(h2o_socket_t *sock, const char *err)
{
    if (err == NULL && sock->input->size == 0)
        return; /* a wake-up without data */
    /* the upstream closed (typically its keep-alive timeout) or sent bytes nobody asked for: unusable either way */
    idle_close(sock->data);
}

static void on_idle_timeout(h2o_timeout_entry_t *entry)
{
    idle_close(H2O_STRUCT_FROM_MEMBER(ficus_upc_conn_t, idle_timer, entry));
}

static void attach(ficus_upc_t *x, ficus_upc_conn_t *conn)
{
    conn->x = x;
    x->_conn = conn;
    ++conn->pool->num_busy;
}

/* Closes the exchange's connection. */
static void drop_conn(ficus_upc_t *x)
{
    ficus_upc_conn_t *conn = x->_conn;
    x->_conn = NULL;
    --conn->pool->num_busy;
    conn_close(conn);
}

/* Detaches the connection from the exchange: back to the idle list when it can serve another request. */
static void release_conn(ficus_upc_t *x, int reusable)
{
    ficus_upc_conn_t *conn = x->_conn;
    ficus_upc_pool_t *pool = conn->pool;
    if (!(reusable && pool->idle_timeout != NULL && pool->num_idle < pool->max_idle && conn->sock->input->size == 0 &&
          !h2o_socket_is_writing(conn->sock))) {
        drop_conn(x);
        return;
    }
    x->_conn = NULL;
    --pool->num_busy;
    conn->x = NULL;
    h2o_linklist_insert(pool->idle.next, &conn->idle_link);
    ++pool->num_idle;
    h2o_socket_read_start(conn->sock, on_idle_readable);
    conn->idle_timer.cb = on_idle_timeout;
    h2o_timeout_link(pool->loop, pool->idle_timeout, &conn->idle_timer);
}

/* ---- exchange: connecting ---- */

static void on_timer(h2o_timeout_entry_t *entry);

void ficus_upc_init(ficus_upc_t *x, void *data)
{
    memset(x, 0, sizeof(*x));
    x->data = data;
    h2o_buffer_init(&x->body, &h2o_socket_buffer_prototype);
    x->_timer.cb = on_timer;
}

static void connect_failed(ficus_upc_t *x, const char *err)
{
    if (x->_getaddr != NULL) {
        h2o_hostinfo_getaddr_cancel(x->_getaddr);
        x->_getaddr = NULL;
    }
    h2o_timeout_unlink(&x->_timer);
    if (x->_conn != NULL)
        drop_conn(x);
    x->_state = ST_INIT;
    x->_cb.connect(x, err);
}

static void on_connected(h2o_socket_t *sock, const char *err)
{
    ficus_upc_conn_t *conn = sock->data;
    ficus_upc_t *x = conn->x;
    if (err != NULL) {
        connect_failed(x, ficus_upc_err_connect_refused); /* H2O reports any SO_ERROR as h2o_socket_error_conn_fail */
        return;
    }
    h2o_timeout_unlink(&x->_timer);
    x->_state = ST_CONNECTED;
    x->_cb.connect(x, NULL);
}

static void start_connect(ficus_upc_t *x, struct sockaddr *sa, socklen_t salen)
{
    ficus_upc_pool_t *pool = x->_pool;
    x->_state = ST_CONNECTING;
    h2o_socket_t *sock = h2o_socket_connect(pool->loop, sa, salen, on_connected);
    if (sock == NULL) {
        connect_failed(x, errno == ECONNREFUSED ? ficus_upc_err_connect_refused : ficus_upc_err_connect_failed);
        return;
    }
    ficus_upc_conn_t *conn = h2o_mem_alloc(sizeof(*conn));
    memset(conn, 0, sizeof(*conn));
    conn->sock = sock;
    conn->pool = pool;
    sock->data = conn;
    attach(x, conn);
}

static void on_getaddr(h2o_hostinfo_getaddr_req_t *req, const char *errstr, struct addrinfo *res, void *data)
{
    ficus_upc_t *x = data;
    x->_getaddr = NULL;
    if (errstr != NULL) {
        connect_failed(x, ficus_upc_err_connect_failed);
        return;
    }
    struct addrinfo *selected = h2o_hostinfo_select_one(res);
    start_connect(x, selected->ai_addr, selected->ai_addrlen);
}

void ficus_upc_connect(ficus_upc_t *x, ficus_upc_pool_t *pool, ficus_upc_connect_cb cb)
{
    assert(x->_conn == NULL && x->_getaddr == NULL && !h2o_timeout_is_linked(&x->_timer));
    x->_pool = pool;
    x->_cb.connect = cb;
    x->reused = 0;
    x->done = 0;
    x->_scanned = 0;
    if (!h2o_linklist_is_empty(&pool->idle)) {
        ficus_upc_conn_t *conn = H2O_STRUCT_FROM_MEMBER(ficus_upc_conn_t, idle_link, pool->idle.next);
        h2o_linklist_unlink(&conn->idle_link);
        --pool->num_idle;
        h2o_timeout_unlink(&conn->idle_timer);
        h2o_socket_read_stop(conn->sock);
        attach(x, conn);
        x->reused = 1;
        x->_state = ST_CONNECTED;
        cb(x, NULL);
        return;
    }
    h2o_timeout_link(pool->loop, pool->connect_timeout, &x->_timer);
    if (pool->addrlen != 0) {
        start_connect(x, (void *)&pool->addr, pool->addrlen);
        return;
    }
    x->_state = ST_RESOLVING;
    x->_getaddr = h2o_hostinfo_getaddr(pool->getaddr_receiver, pool->host, h2o_iovec_init(pool->serv, strlen(pool->serv)),
                                       AF_UNSPEC, SOCK_STREAM, IPPROTO_TCP, AI_ADDRCONFIG | AI_NUMERICSERV, on_getaddr, x);
}

/* ---- response ---- */

/* Decodes the socket's input. 1 = body complete, 0 = more to come, -1 = framing error. */
static int decode_input(ficus_upc_t *x)
{
    h2o_buffer_t **in = &x->_conn->sock->input;
    size_t n = (*in)->size;
    if (n != 0 && x->body->size == 0 &&
        (x->_dec.framing == FICUS_UPC_FRAMING_CLOSE || (x->_dec.framing == FICUS_UPC_FRAMING_LENGTH && n <= x->_dec.remaining))) {
        /* only body bytes: hand the buffer over instead of copying */
        h2o_buffer_t *t = x->body;
        x->body = *in;
        *in = t;
        if (x->_dec.framing == FICUS_UPC_FRAMING_LENGTH)
            x->_dec.remaining -= n;
        return ficus_upc_decoder_complete(&x->_dec);
    }
    ssize_t used = n != 0 ? ficus_upc_decode(&x->_dec, (*in)->bytes, n, &x->body) : 0;
    if (used < 0)
        return -1;
    int complete = ficus_upc_decoder_complete(&x->_dec);
    if (complete && (size_t)used != n) {
        x->_dec.keepalive = 0; /* bytes after the end of the response */
        used = n;
    }
    h2o_buffer_consume(in, used);
    return complete;
}

static void head_failed(ficus_upc_t *x, const char *err)
{
    h2o_timeout_unlink(&x->_timer);
    if (x->_conn != NULL)
        drop_conn(x);
    h2o_buffer_consume(&x->body, x->body->size);
    x->_state = ST_INIT;
    x->_cb.head(x, err, NULL);
}

static void body_ended(ficus_upc_t *x, const char *err)
{
    h2o_timeout_unlink(&x->_timer);
    if (err == ficus_upc_eos)
        release_conn(x, x->_dec.keepalive);
    else
        drop_conn(x);
    x->done = 1;
    x->_state = ST_DONE;
    x->_cb.body(x, err);
}

static void on_body_readable(h2o_socket_t *sock, const char *err)
{
    ficus_upc_conn_t *conn = sock->data;
    ficus_upc_t *x = conn->x;
    h2o_timeout_unlink(&x->_timer);
    if (err != NULL) {
        body_ended(x, x->_dec.framing == FICUS_UPC_FRAMING_CLOSE && err == h2o_socket_error_closed ? ficus_upc_eos
                                                                                                   : ficus_upc_err_reset);
        return;
    }
    int ret = decode_input(x);
    if (ret != 0) {
        body_ended(x, ret > 0 ? ficus_upc_eos : ficus_upc_err_protocol);
        return;
    }
    if (x->body->size != 0) {
        h2o_socket_read_stop(sock);
        x->_state = ST_BODY_PAUSED;
        x->_cb.body(x, NULL);
        return;
    }
    h2o_timeout_link(x->_pool->loop, x->_pool->io_timeout, &x->_timer);
}

void ficus_upc_read_body(ficus_upc_t *x, ficus_upc_body_cb cb)
{
    assert(x->_state == ST_BODY_PAUSED);
    x->_cb.body = cb;
    x->_state = ST_BODY_READING;
    h2o_timeout_link(x->_pool->loop, x->_pool->io_timeout, &x->_timer);
    h2o_socket_read_start(x->_conn->sock, on_body_readable);
}

static void on_head_readable(h2o_socket_t *sock, const char *err)
{
    ficus_upc_conn_t *conn = sock->data;
    ficus_upc_t *x = conn->x;
    if (err != NULL) {
        head_failed(x, ficus_upc_err_reset);
        return;
    }

    ficus_upc_response_t res;
    h2o_header_t headers[FICUS_UPC_MAX_HEADERS];
    h2o_iovec_t names[FICUS_UPC_MAX_HEADERS];
    ssize_t head_len;
    while (1) {
        if ((head_len = ficus_upc_parse_head(sock->input->bytes, sock->input->size, &x->_scanned, &res, headers, names)) <= 0) {
            if (head_len < 0)
                head_failed(x, ficus_upc_err_protocol);
            return; /* incomplete: the head timer keeps running */
        }
        if (res.status >= 200)
            break;
        if (res.status == 101) {
            head_failed(x, ficus_upc_err_protocol);
            return;
        }
        h2o_buffer_consume(&sock->input, head_len); /* informational: skip it */
        if (sock->input->size == 0)
            return;
    }
    if (ficus_upc_decoder_init(&x->_dec, &res, x->_is_head) != 0) {
        head_failed(x, ficus_upc_err_protocol);
        return;
    }
    h2o_timeout_unlink(&x->_timer);

    /* the head's strings live in this buffer until the callback returns; the socket reads into a new one */
    h2o_buffer_t *headbuf = sock->input;
    h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
    size_t rest = headbuf->size - head_len;
    int complete = ficus_upc_decoder_complete(&x->_dec);
    if (!complete && rest != 0) {
        const char *src = headbuf->bytes + head_len;
        ssize_t used = ficus_upc_decode(&x->_dec, src, rest, &x->body);
        if (used < 0) {
            h2o_buffer_dispose(&headbuf);
            head_failed(x, ficus_upc_err_protocol);
            return;
        }
        complete = ficus_upc_decoder_complete(&x->_dec);
        if (!complete && (size_t)used != rest) {
            h2o_iovec_t buf = h2o_buffer_reserve(&sock->input, rest - used); /* an incomplete chunk line */
            if (buf.base == NULL) {
                h2o_buffer_dispose(&headbuf);
                head_failed(x, ficus_upc_err_reset);
                return;
            }
            memcpy(buf.base, src + used, rest - used);
            sock->input->size += rest - used;
        } else if (complete && (size_t)used != rest) {
            x->_dec.keepalive = 0;
        }
    } else if (complete && rest != 0) {
        x->_dec.keepalive = 0; /* a body where none may be */
    }
    if (complete) {
        release_conn(x, x->_dec.keepalive);
        x->done = 1;
        x->_state = ST_DONE;
    } else {
        h2o_socket_read_stop(sock);
        x->_state = ST_BODY_PAUSED;
    }
    x->_cb.head(x, NULL, &res);
    h2o_buffer_dispose(&headbuf);
}

static void on_written(h2o_socket_t *sock, const char *err)
{
    ficus_upc_conn_t *conn = sock->data;
    ficus_upc_t *x = conn->x;
    if (err != NULL) {
        head_failed(x, ficus_upc_err_reset);
        return;
    }
    x->_state = ST_HEAD;
    h2o_timeout_unlink(&x->_timer);
    h2o_timeout_link(x->_pool->loop, x->_pool->io_timeout, &x->_timer);
    h2o_socket_read_start(sock, on_head_readable);
}

void ficus_upc_send(ficus_upc_t *x, h2o_iovec_t *bufs, size_t bufcnt, int is_head, ficus_upc_head_cb cb)
{
    assert(x->_state == ST_CONNECTED);
    x->_is_head = is_head;
    x->_cb.head = cb;
    x->_state = ST_SENDING;
    h2o_timeout_link(x->_pool->loop, x->_pool->io_timeout, &x->_timer);
    h2o_socket_write(x->_conn->sock, bufs, bufcnt, on_written);
}

/* ---- timers, cancellation ---- */

static void on_timer(h2o_timeout_entry_t *entry)
{
    ficus_upc_t *x = H2O_STRUCT_FROM_MEMBER(ficus_upc_t, _timer, entry);
    switch (x->_state) {
    case ST_RESOLVING:
    case ST_CONNECTING:
        connect_failed(x, ficus_upc_err_connect_timeout);
        break;
    case ST_SENDING:
    case ST_HEAD:
        head_failed(x, ficus_upc_err_timeout);
        break;
    case ST_BODY_READING:
        body_ended(x, ficus_upc_err_timeout);
        break;
    default:
        assert(!"unexpected timer");
        break;
    }
}

void ficus_upc_cancel(ficus_upc_t *x)
{
    if (x->_getaddr != NULL) {
        h2o_hostinfo_getaddr_cancel(x->_getaddr);
        x->_getaddr = NULL;
    }
    h2o_timeout_unlink(&x->_timer);
    if (x->_conn != NULL)
        drop_conn(x); /* never back to the pool: the response may be half read */
    x->_state = ST_DONE;
}

void ficus_upc_dispose(ficus_upc_t *x)
{
    ficus_upc_cancel(x);
    h2o_buffer_dispose(&x->body);
}

h2o_socket_t *ficus_upc_socket(const ficus_upc_t *x)
{
    return x->_conn != NULL ? x->_conn->sock : NULL;
}
