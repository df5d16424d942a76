/* A listener's TLS cipher policy and OCSP stapling.
 *
 * CIPHERS: by default only forward-secret AEAD suites, Mozilla's "intermediate" profile without the DHE ones (ficus
 * configures no DH parameters): TLS 1.2 ECDHE-{ECDSA,RSA} with AES-GCM or ChaCha20-Poly1305, TLS 1.3's three
 * suites, groups X25519, P-256, P-384. `tls.ciphers` (TLS 1.2, OpenSSL cipher-list syntax), `tls.ciphersuites`
 * (TLS 1.3) and `tls.curves` (groups) replace them per listener; a value OpenSSL cannot use at all is a config error.
 * OCSP: `ocsp_file` of a certificate entry is a DER OCSP response (as `openssl ocsp -respout` writes), read at load
 * and stapled to every handshake that asks for it; it must be a successful response. Renew the file and reload. */
#ifndef ficus__tls_policy_h
#define ficus__tls_policy_h

#include <openssl/ssl.h>
#include "ficus/conf.h"
#include "h2o.h"

#define FICUS_TLS_DEFAULT_CIPHERS                                                                                                  \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"         \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define FICUS_TLS_DEFAULT_CIPHERSUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define FICUS_TLS_DEFAULT_CURVES "X25519:prime256v1:secp384r1"

typedef struct st_ficus_tls_policy_t {
    const ficus_node_t *ciphers, *ciphersuites, *curves; /* NULL: defaults (nodes of the file being loaded) */
} ficus_tls_policy_t;

/** Applies the policy to ctx. Returns 0, or -1 with "file:line: ..." in cc (the node of the value OpenSSL refused). */
int ficus_tls_policy_apply(ficus_conf_ctx_t *cc, const ficus_tls_policy_t *policy, const ficus_node_t *where, SSL_CTX *ctx);
/**
 * Reads the OCSP response file `node` into *out (malloc'd DER) and staples it on ctx's handshakes. Returns 0, or -1
 * with a file:line error (unreadable, not an OCSP response, not successful). *out stays owned by the caller, who frees
 * it after ctx can no longer handshake (with the TLS conf).
 */
int ficus_tls_ocsp_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, SSL_CTX *ctx, h2o_iovec_t *out);

#endif
