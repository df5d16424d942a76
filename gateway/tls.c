/* TLS contexts of listeners (see ficus/tls.h).
 *
 * One SSL_CTX per certificate, all with the same protocol settings and ALPN (h2, http/1.1). The first certificate's
 * context is the listener's default; its servername callback moves a handshake to the context whose SAN names match
 * the SNI name. Names are matched exactly, then as a single-label wildcard ("*.example.com" covers
 * "a.example.com", not "a.b.example.com"). Contexts are built at config load; a handshake only compares strings. */
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include "h2o.h"
#include "h2o/http2.h"
#include "ficus/clock.h"
#include "ficus/log.h"
#include "ficus/tls.h"
#include "ficus/tls_policy.h"
#include "ficus/tls_tickets.h"

/* retired TLS confs waiting for the sockets accepted with them to start (or time out) their handshakes */
static pthread_mutex_t graveyard_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct st_grave_t {
    ficus_tls_conf_t *tls;
    uint64_t free_at_ms;
} * graveyard;
static size_t graveyard_size, graveyard_cap;

static int ex_data_index = -1; /* SSL_CTX ex data slot holding the listener's ficus_tls_conf_t */
static pthread_once_t ex_data_once = PTHREAD_ONCE_INIT;

static void init_ex_data(void)
{
    ex_data_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static int name_matches(const char *pattern, const char *name)
{
    if (strcasecmp(pattern, name) == 0)
        return 1;
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(name, '.');
        return dot != NULL && dot != name && strcasecmp(pattern + 1, dot) == 0;
    }
    return 0;
}

static int on_servername(SSL *ssl, int *ad, void *arg)
{
    ficus_tls_conf_t *tls = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_data_index);
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (tls == NULL || name == NULL || tls->num_certs < 2)
        return SSL_TLSEXT_ERR_OK;
    /* exact names first, then wildcards, so a specific certificate wins over a wildcard one */
    for (int pass = 0; pass != 2; ++pass) {
        for (size_t i = 0; i != tls->num_certs; ++i) {
            for (size_t j = 0; j != tls->certs[i].num_names; ++j) {
                const char *pat = tls->certs[i].names[j];
                int is_wild = pat[0] == '*';
                if (is_wild != pass)
                    continue;
                if (name_matches(pat, name)) {
                    if (SSL_get_SSL_CTX(ssl) != tls->certs[i].ssl_ctx)
                        SSL_set_SSL_CTX(ssl, tls->certs[i].ssl_ctx);
                    return SSL_TLSEXT_ERR_OK;
                }
            }
        }
    }
    return SSL_TLSEXT_ERR_OK; /* unknown name: default certificate */
}

static void add_name(struct st_ficus_tls_cert_t *cert, const char *name, size_t len)
{
    if (len == 0 || len > 253 || memchr(name, '\0', len) != NULL)
        return;
    cert->names = realloc(cert->names, sizeof(char *) * (cert->num_names + 1));
    if (cert->names == NULL)
        ficus_fatal("no memory");
    char *copy = strndup(name, len);
    for (char *p = copy; *p != '\0'; ++p)
        *p = tolower((unsigned char)*p);
    cert->names[cert->num_names++] = copy;
}

static void collect_names(struct st_ficus_tls_cert_t *cert, X509 *x509)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(x509, NID_subject_alt_name, NULL, NULL);
    if (sans != NULL) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
            GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
            if (gn->type == GEN_DNS)
                add_name(cert, (const char *)ASN1_STRING_get0_data(gn->d.dNSName), ASN1_STRING_length(gn->d.dNSName));
        }
        GENERAL_NAMES_free(sans);
    }
    if (cert->num_names == 0) {
        char cn[256];
        int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x509), NID_commonName, cn, sizeof(cn));
        if (n > 0)
            add_name(cert, cn, (size_t)n);
    }
}

static const char *ssl_error_string(void)
{
    static __thread char buf[256];
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0)
        return "unknown error";
    ERR_error_string_n(e, buf, sizeof(buf));
    return buf;
}

static SSL_CTX *new_ctx(ficus_conf_ctx_t *cc, const ficus_node_t *cert_node, const ficus_node_t *key_node, int min_version,
                        struct st_ficus_tls_cert_t *cert)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ficus_conf_error(cc, cert_node, "cannot create TLS context: %s", ssl_error_string());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, min_version);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"ficus", 5);
    /* an idle connection keeps no OpenSSL record buffers (~34 KB each otherwise), as NGINX does */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* resumption is by tickets (gateway/tls_tickets.c): no server-side cache of every session (OpenSSL's default keeps
     * up to 20,480 of them, ~0.7 KB each, per context) */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_node->data.scalar.value) != 1) {
        ficus_conf_error(cc, cert_node, "cannot load certificate '%s': %s", cert_node->data.scalar.value, ssl_error_string());
        goto Error;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_node->data.scalar.value, SSL_FILETYPE_PEM) != 1) {
        ficus_conf_error(cc, key_node, "cannot load private key '%s': %s", key_node->data.scalar.value, ssl_error_string());
        goto Error;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ficus_conf_error(cc, key_node, "private key '%s' does not match certificate '%s'", key_node->data.scalar.value,
                         cert_node->data.scalar.value);
        goto Error;
    }
    collect_names(cert, SSL_CTX_get0_certificate(ctx));
    h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols); /* h2, then http/1.1 */
    return ctx;
Error:
    SSL_CTX_free(ctx);
    return NULL;
}

int ficus_tls_conf_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_tls_conf_t **out)
{
    ficus_node_t *certificates, *min_version, *hsts, *session_tickets, *ticket_keys;
    ficus_tls_policy_t policy;
    pthread_once(&ex_data_once, init_ex_data);
    if (ficus_conf_mapping(cc, node, "certificates:a",
                           "min_version:s,hsts:s,session_tickets:s,session_ticket_keys:a,ciphers:s,ciphersuites:s,curves:s",
                           &certificates, &min_version, &hsts, &session_tickets, &ticket_keys, &policy.ciphers,
                           &policy.ciphersuites, &policy.curves) != 0)
        return -1;
    if (certificates->data.sequence.size == 0)
        return ficus_conf_error(cc, certificates, "`certificates` needs at least one {cert, key}");
    if (certificates->data.sequence.size > 1000)
        return ficus_conf_error(cc, certificates, "too many certificates (max 1000)");
    int version = TLS1_2_VERSION;
    if (min_version != NULL) {
        static const char *const versions[] = {"TLSv1.2", "TLSv1.3", NULL};
        int idx;
        if (ficus_conf_enum(cc, min_version, versions, &idx) != 0)
            return -1;
        version = idx == 0 ? TLS1_2_VERSION : TLS1_3_VERSION;
    }

    ficus_tls_conf_t *tls = calloc(1, sizeof(*tls));
    if (tls == NULL || (tls->certs = calloc(certificates->data.sequence.size, sizeof(*tls->certs))) == NULL)
        ficus_fatal("no memory");
    *out = tls;
    tls->session_tickets = 1;
    if (session_tickets != NULL && ficus_conf_bool(cc, session_tickets, &tls->session_tickets) != 0)
        return -1;
    if (ticket_keys != NULL) {
        if (!tls->session_tickets)
            return ficus_conf_error(cc, ticket_keys, "`session_ticket_keys` with `session_tickets: false`");
        if (ficus_tls_tickets_load(cc, ticket_keys, &tls->ticket_keys) != 0)
            return -1;
    }
    if (hsts != NULL) {
        uint64_t ms;
        if (ficus_conf_duration(cc, hsts, 0, (uint64_t)2 * 365 * 86400 * 1000, &ms) != 0)
            return -1;
        tls->hsts_max_age_s = ms / 1000;
        char v[32];
        int n = snprintf(v, sizeof(v), "max-age=%llu", (unsigned long long)tls->hsts_max_age_s);
        if (tls->hsts_max_age_s != 0)
            tls->hsts_value = h2o_strdup(NULL, v, n);
    }
    for (size_t i = 0; i != certificates->data.sequence.size; ++i) {
        ficus_node_t *cert, *key, *ocsp;
        if (ficus_conf_mapping(cc, certificates->data.sequence.elements[i], "cert:s,key:s", "ocsp_file:s", &cert, &key, &ocsp) != 0)
            return -1;
        if ((tls->certs[i].ssl_ctx = new_ctx(cc, cert, key, version, tls->certs + i)) == NULL)
            return -1;
        tls->num_certs = i + 1;
        if (ficus_tls_policy_apply(cc, &policy, node, tls->certs[i].ssl_ctx) != 0)
            return -1;
        if (ocsp != NULL && ficus_tls_ocsp_load(cc, ocsp, tls->certs[i].ssl_ctx, &tls->certs[i].ocsp) != 0)
            return -1;
        SSL_CTX_set_ex_data(tls->certs[i].ssl_ctx, ex_data_index, tls);
        if (tls->session_tickets) {
            ficus_tls_tickets_attach(tls->certs[i].ssl_ctx, tls->ticket_keys);
        } else {
            SSL_CTX_set_options(tls->certs[i].ssl_ctx, SSL_OP_NO_TICKET);
            SSL_CTX_set_num_tickets(tls->certs[i].ssl_ctx, 0);
        }
        SSL_CTX_set_tlsext_servername_callback(tls->certs[i].ssl_ctx, on_servername);
    }
    tls->ssl_ctx = tls->certs[0].ssl_ctx;
    return 0;
}

static void tls_conf_free(ficus_tls_conf_t *tls)
{
    for (size_t i = 0; i != tls->num_certs; ++i) {
        /* handshakes in flight hold their own reference to the context; the ex data pointer must not outlive tls */
        SSL_CTX_set_ex_data(tls->certs[i].ssl_ctx, ex_data_index, NULL);
        ficus_tls_tickets_detach(tls->certs[i].ssl_ctx);
        SSL_CTX_free(tls->certs[i].ssl_ctx);
        for (size_t j = 0; j != tls->certs[i].num_names; ++j)
            free(tls->certs[i].names[j]);
        free(tls->certs[i].names);
        free(tls->certs[i].ocsp.base);
    }
    free(tls->certs);
    ficus_tls_tickets_free(tls->ticket_keys);
    free(tls->hsts_value.base);
    free(tls);
}

void ficus_tls_conf_retire(ficus_tls_conf_t *tls, uint64_t delay_ms)
{
    if (tls == NULL)
        return;
    pthread_mutex_lock(&graveyard_mutex);
    if (graveyard_size == graveyard_cap) {
        graveyard_cap = graveyard_cap == 0 ? 16 : graveyard_cap * 2;
        if ((graveyard = realloc(graveyard, sizeof(*graveyard) * graveyard_cap)) == NULL)
            ficus_fatal("no memory");
    }
    graveyard[graveyard_size].tls = tls;
    graveyard[graveyard_size++].free_at_ms = ficus_mono_us() / 1000 + delay_ms;
    pthread_mutex_unlock(&graveyard_mutex);
}

void ficus_tls_collect(int all)
{
    uint64_t now = ficus_mono_us() / 1000;
    pthread_mutex_lock(&graveyard_mutex);
    for (size_t i = 0; i < graveyard_size;) {
        if (all || graveyard[i].free_at_ms <= now) {
            tls_conf_free(graveyard[i].tls);
            graveyard[i] = graveyard[--graveyard_size];
        } else {
            ++i;
        }
    }
    pthread_mutex_unlock(&graveyard_mutex);
}
