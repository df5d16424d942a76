/* TLS cipher policy and OCSP stapling of listeners (see ficus/tls_policy.h).
 *
 * OWNS: the cipher, TLS 1.3 suite and group lists set on each certificate's SSL_CTX, and the stapled OCSP response.
 * Everything is read and checked at config load; a handshake only copies the response bytes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include "ficus/log.h"
#include "ficus/tls_policy.h"

#define FICUS_OCSP_MAX_BYTES (64 * 1024)

static const char *value_of(const ficus_node_t *node, const char *dflt)
{
    return node != NULL ? node->data.scalar.value : dflt;
}

int ficus_tls_policy_apply(ficus_conf_ctx_t *cc, const ficus_tls_policy_t *policy, const ficus_node_t *where, SSL_CTX *ctx)
{
    const char *v;
    ERR_clear_error();
    if (SSL_CTX_set_cipher_list(ctx, v = value_of(policy->ciphers, FICUS_TLS_DEFAULT_CIPHERS)) != 1)
        return ficus_conf_error(cc, policy->ciphers != NULL ? policy->ciphers : where, "no usable TLS 1.2 cipher in '%s'", v);
    if (SSL_CTX_set_ciphersuites(ctx, v = value_of(policy->ciphersuites, FICUS_TLS_DEFAULT_CIPHERSUITES)) != 1)
        return ficus_conf_error(cc, policy->ciphersuites != NULL ? policy->ciphersuites : where,
                                "invalid TLS 1.3 ciphersuites '%s' (e.g. TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256)", v);
    if (SSL_CTX_set1_groups_list(ctx, v = value_of(policy->curves, FICUS_TLS_DEFAULT_CURVES)) != 1)
        return ficus_conf_error(cc, policy->curves != NULL ? policy->curves : where,
                                "invalid curves '%s' (e.g. X25519:prime256v1:secp384r1)", v);
    ERR_clear_error();
    return 0;
}

static int on_status(SSL *ssl, void *arg)
{
    const h2o_iovec_t *der = arg;
    if (der == NULL || der->base == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    unsigned char *copy = OPENSSL_malloc(der->len); /* OpenSSL takes ownership */
    if (copy == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    memcpy(copy, der->base, der->len);
    SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)der->len);
    return SSL_TLSEXT_ERR_OK;
}

int ficus_tls_ocsp_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, SSL_CTX *ctx, h2o_iovec_t *out)
{
    const char *path = node->data.scalar.value;
    char *buf;
    size_t n;
    if (ficus_conf_read_file(cc, node, "OCSP response", FICUS_OCSP_MAX_BYTES, &buf, &n) != 0)
        return -1;
    const unsigned char *p = (const unsigned char *)buf;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)n);
    int status = resp != NULL ? OCSP_response_status(resp) : -1;
    OCSP_BASICRESP *basic = status == OCSP_RESPONSE_STATUS_SUCCESSFUL ? OCSP_response_get1_basic(resp) : NULL;
    int ok = basic != NULL;
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
    ERR_clear_error();
    if (!ok) {
        free(buf);
        if (status == -1)
            return ficus_conf_error(cc, node, "'%s' is not a DER OCSP response (openssl ocsp -respout writes one)", path);
        return ficus_conf_error(cc, node, "OCSP response '%s' is not successful (status %d)", path, status);
    }
    *out = h2o_iovec_init(buf, n);
    SSL_CTX_set_tlsext_status_cb(ctx, on_status);
    SSL_CTX_set_tlsext_status_arg(ctx, out);
    return 0;
}
