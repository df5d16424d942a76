/* Slow clients toward which a response does not move (gateway/send_guard.c): a send deadline per relayed response
 * and the bound on what one upstream exchange buffers. */
#ifndef ficus__send_guard_h
#define ficus__send_guard_h

#include "h2o.h"
#include "ficus/req.h"

typedef struct st_ficus_send_guard_t ficus_send_guard_t;
/* Releases what the response holds upstream (the exchange, its slots); called once, before the connection closes. */
typedef void (*ficus_send_guard_cb)(ficus_send_guard_t *g);

struct st_ficus_send_guard_t {
    h2o_timeout_entry_t _entry;
    ficus_req_t *r;
    ficus_send_guard_cb on_timeout;
    int timed_out; /* the deadline passed: the client connection is being closed, send nothing more */
};

/** Sets up the guard of one response (in the request's pool); nothing is armed yet. */
void ficus_send_guard_init(ficus_send_guard_t *g, ficus_req_t *r, ficus_send_guard_cb on_timeout);
/** A chunk was handed to H2O: arms the deadline (server.limits.send_timeout) unless it is armed already. */
void ficus_send_guard_sent(ficus_send_guard_t *g);
/** H2O asked for more (the previous chunk left ficus): disarms it. */
void ficus_send_guard_progress(ficus_send_guard_t *g);
/** Disarms it for good (the request's pool is being cleared). */
void ficus_send_guard_dispose(ficus_send_guard_t *g);
/** Bounds what one exchange may buffer: the upstream socket's receive buffer to server.limits.max_response_buffer. */
void ficus_send_guard_bound_upstream(ficus_req_t *r, int fd);
/** Closes the client connection of req: its socket is shut down (so H2O tears it down through its error path) and
 * reset at close (SO_LINGER 0: unsent data toward a client that does not read is dropped, not kept by the kernel). */
void ficus_close_client_connection(h2o_req_t *req);

#endif
