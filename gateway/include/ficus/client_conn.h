/* Client connections (gateway/client_conn.c): ficus's accept path (TLS handshake and ALPN, the plain listener's
 * HTTP/1.1 / HTTP/2 decision), the request-header deadline and the HTTP/2 frame-flood guard. Worker thread only. */
#ifndef ficus__client_conn_h
#define ficus__client_conn_h

#include "h2o.h"

typedef struct st_ficus_worker_t ficus_worker_t;
typedef struct st_ficus_client_conn_t ficus_client_conn_t;

/** Takes an accepted client socket of a listener (accept_ctx: its context, hosts and TLS context). */
void ficus_client_conn_accept(ficus_worker_t *w, h2o_accept_ctx_t *accept_ctx, h2o_socket_t *sock);
/** Sets up the worker's connection list and starts its sweep (on the worker's thread, after its loop exists). */
void ficus_client_conn_init_worker(ficus_worker_t *w);
/** While the worker drains (every check): closes HTTP/1.1 connections idle since the previous call and returns how
 * many client connections are still open. */
size_t ficus_client_conn_drain(ficus_worker_t *w);
/**
 * What the first bytes of a plain connection announce: 1 = the HTTP/2 connection preface, 0 = HTTP/1.x (a request
 * line ending in "HTTP/1.<digit>", leading empty lines, or a first line too long to judge), -1 = neither (an invalid
 * HTTP/2 preface), -2 = not known yet.
 */
int ficus_client_conn_sniff(const char *s, size_t n);

#endif
