/* One asynchronous HTTP(S) request from ficus itself (JWKS and discovery documents, OIDC token endpoint).
 *
 * DESIGN: a thin layer over h2o_http1client for requests ficus originates (not proxied traffic): one connection per
 * request (no pooling: these are rare), TLS verified against the context's SSL_CTX (SSL_VERIFY_PEER + CA file or
 * system CAs; H2O checks the host name), body read into memory up to max_body bytes (more is an error), the whole
 * exchange bounded by the context's timeout. Runs on whichever loop the context names (control thread for JWKS,
 * a worker for token calls).
 * CONTRACT: the callback is called exactly once, never from inside ficus_fetch_start() (errors found while starting
 * are delivered on a later tick), and never after ficus_fetch_cancel(). The body passed to it is valid only during
 * the callback. */
#ifndef ficus__fetch_h
#define ficus__fetch_h

#include <openssl/ssl.h>
#include "h2o.h"
#include "h2o/http1client.h"

typedef struct st_ficus_fetch_ctx_t {
    h2o_loop_t *loop;
    h2o_multithread_receiver_t *getaddr_receiver;
    h2o_timeout_t *io_timeout;   /* connect, and each read/write */
    h2o_timeout_t *zero_timeout; /* for deferring callbacks */
    SSL_CTX *ssl_ctx;            /* client context for https (NULL: https refused) */
} ficus_fetch_ctx_t;

typedef struct st_ficus_fetch_response_t {
    int status;
    h2o_iovec_t body;
    int64_t max_age; /* Cache-Control max-age in seconds, -1 when absent (no-store/no-cache → 0) */
    h2o_iovec_t content_type;
} ficus_fetch_response_t;

typedef struct st_ficus_fetch_t ficus_fetch_t;
/** errstr != NULL: the request failed (connect, TLS, timeout, too large, bad response); res is then NULL. */
typedef void (*ficus_fetch_cb)(void *data, const char *errstr, const ficus_fetch_response_t *res);

/**
 * Starts `method url` with optional extra header lines (each ending in CRLF) and body. Returns a handle, or NULL
 * with *err set when the URL is not http(s)://host[:port]/path (then the callback is never called).
 */
ficus_fetch_t *ficus_fetch_start(ficus_fetch_ctx_t *ctx, const char *method, const char *url, h2o_iovec_t extra_headers,
                                 h2o_iovec_t body, size_t max_body, ficus_fetch_cb cb, void *data, const char **err);
/** Cancels a pending fetch: the callback will not be called. */
void ficus_fetch_cancel(ficus_fetch_t *f);

/** A client SSL_CTX that verifies peers: ca_file, or the system's default CA paths when NULL. NULL on error. */
SSL_CTX *ficus_fetch_new_ssl_ctx(const char *ca_file, char *err, size_t errlen);

#endif
