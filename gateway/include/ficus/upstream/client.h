/* The upstream transport: ficus's HTTP/1.1 client with a per-worker, per-endpoint keep-alive pool
 * (gateway/upstream/client.c; the response is parsed by gateway/upstream/response.c).
 *
 * One ficus_upc_pool_t per endpoint and worker generation; one ficus_upc_t per exchange (embedded in the caller's
 * per-request state). Everything runs on the worker's loop: no locks, nothing shared between workers.
 *
 * USAGE (callbacks may run synchronously, from inside the call that triggers them):
 *   ficus_upc_init(x, data);
 *   ficus_upc_connect(x, pool, on_connect);           -> on_connect(x, err): err NULL = connected
 *   ficus_upc_send(x, bufs, n, is_head, on_head);     -> on_head(x, err, res): err NULL = final head parsed
 *   while (!x->done) ficus_upc_read_body(x, on_body); -> on_body(x, err): NULL = more in x->body, ficus_upc_eos =
 *                                                        complete, else an error (connection closed)
 *   ficus_upc_dispose(x);                              (cancels whatever is running; always call it)
 * The response body arrives in x->body (the caller takes it, e.g. with h2o_doublebuffer_prepare, which swaps it).
 * The client reads the upstream only between ficus_upc_read_body and the next on_body: that is the backpressure.
 * After an error the exchange may connect again (a retry). */
#ifndef ficus__upstream_client_h
#define ficus__upstream_client_h

#include <sys/socket.h>
#include "h2o.h"
#include "h2o/hostinfo.h"
#include "ficus/upstream/response.h"

/* errors (compare by pointer) */
extern const char ficus_upc_err_connect_refused[];
extern const char ficus_upc_err_connect_failed[]; /* name resolution or socket creation failed */
extern const char ficus_upc_err_connect_timeout[];
extern const char ficus_upc_err_reset[];    /* I/O error, or EOF where the response was not complete */
extern const char ficus_upc_err_timeout[];  /* no final head, or no body bytes, within the pool's io timeout */
extern const char ficus_upc_err_protocol[]; /* malformed head or body framing */
extern const char ficus_upc_eos[];          /* on_body: the response is complete */

typedef struct st_ficus_upc_t ficus_upc_t;
typedef struct st_ficus_upc_conn_t ficus_upc_conn_t;

typedef struct st_ficus_upc_pool_t {
    h2o_loop_t *loop;
    h2o_multithread_receiver_t *getaddr_receiver;
    h2o_timeout_t *connect_timeout, *io_timeout;
    h2o_timeout_t *idle_timeout; /* NULL: no keep-alive */
    struct sockaddr_storage addr;
    socklen_t addrlen; /* 0: `host` is a name, resolved (h2o_hostinfo_getaddr) for every new connection */
    h2o_iovec_t host;  /* owned */
    char serv[sizeof("65535")];
    size_t max_idle;
    h2o_linklist_t idle; /* ficus_upc_conn_t, most recently used first */
    size_t num_idle;
    size_t num_busy; /* connections held by exchanges (connecting ones included) */
} ficus_upc_pool_t;

typedef void (*ficus_upc_connect_cb)(ficus_upc_t *x, const char *err);
/* res, its headers and strings are valid only during the call */
typedef void (*ficus_upc_head_cb)(ficus_upc_t *x, const char *err, const ficus_upc_response_t *res);
typedef void (*ficus_upc_body_cb)(ficus_upc_t *x, const char *err);

struct st_ficus_upc_t {
    void *data;
    h2o_buffer_t *body; /* decoded response body not taken yet */
    int reused;         /* the current connection came from the idle list */
    int done;           /* the response is complete (the connection was released) */
    /* private */
    ficus_upc_pool_t *_pool;
    ficus_upc_conn_t *_conn;
    h2o_hostinfo_getaddr_req_t *_getaddr;
    h2o_timeout_entry_t _timer;
    int _state;
    int _is_head;
    size_t _scanned; /* head bytes already searched for the end of the head */
    ficus_upc_decoder_t _dec;
    union {
        ficus_upc_connect_cb connect;
        ficus_upc_head_cb head;
        ficus_upc_body_cb body;
    } _cb;
};

/** Sets up a pool for host:port (an IP literal is parsed once; a name is resolved per new connection). The timeouts
 * belong to the caller and must outlive the pool. */
void ficus_upc_pool_init(ficus_upc_pool_t *pool, h2o_loop_t *loop, h2o_multithread_receiver_t *getaddr_receiver, const char *host,
                         uint16_t port, h2o_timeout_t *connect_timeout, h2o_timeout_t *io_timeout, h2o_timeout_t *idle_timeout,
                         size_t max_idle);
/** Closes the idle connections now (exchanges using the pool go on). */
void ficus_upc_pool_close_idle(ficus_upc_pool_t *pool);
/** Closes the idle connections. No exchange may be using the pool any more. */
void ficus_upc_pool_dispose(ficus_upc_pool_t *pool);

void ficus_upc_init(ficus_upc_t *x, void *data);
/** Takes an idle connection (reused = 1) or opens a new one. */
void ficus_upc_connect(ficus_upc_t *x, ficus_upc_pool_t *pool, ficus_upc_connect_cb cb);
/** Writes the request (bufs must stay valid until the head arrives) and waits for the final response head. */
void ficus_upc_send(ficus_upc_t *x, h2o_iovec_t *bufs, size_t bufcnt, int is_head, ficus_upc_head_cb cb);
/** Reads more of the body: on_body is called once. */
void ficus_upc_read_body(ficus_upc_t *x, ficus_upc_body_cb cb);
/** Stops the exchange: a connection still held is closed, never returned to the pool. No callback follows. */
void ficus_upc_cancel(ficus_upc_t *x);
/** ficus_upc_cancel + frees x->body. */
void ficus_upc_dispose(ficus_upc_t *x);
/** The socket of the exchange's current connection (NULL when none), e.g. to set socket options. */
h2o_socket_t *ficus_upc_socket(const ficus_upc_t *x);

#endif
