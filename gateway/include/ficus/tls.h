/* TLS contexts for listeners: certificates chosen by SNI, ALPN h2 / http/1.1, minimum version.
 *
 * Built at config load (reading key files is slow and fallible: never per request). Each certificate gets its own
 * SSL_CTX; the listener's default context carries a servername callback that switches to the certificate whose SAN
 * names match the SNI name (exact, then "*.suffix" wildcard), else keeps the first certificate. */
#ifndef ficus__tls_h
#define ficus__tls_h

#include "ficus/conf.h"
#include "ficus/config.h"

/** Builds the TLS conf of a listener from its `tls:` node. 0, or -1 with a file:line error in cc. */
int ficus_tls_conf_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_tls_conf_t **out);
/**
 * Retires a listener's TLS conf: it is freed only `delay_ms` later (by ficus_tls_collect). H2O keeps a raw SSL_CTX
 * pointer for a socket it accepted and calls SSL_new on it only when the first bytes arrive, so contexts of a
 * replaced generation must outlive the handshake timeout of the sockets accepted with them.
 */
void ficus_tls_conf_retire(ficus_tls_conf_t *tls, uint64_t delay_ms);
/** Frees retired TLS confs whose delay has passed (control thread, periodically); all of them when `all`. */
void ficus_tls_collect(int all);

#endif
