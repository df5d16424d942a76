/* TLS session ticket keys: from NGINX-format files, or automatic (see ficus/tls_tickets.h for the design). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "ficus/log.h"
#include "ficus/tls_tickets.h"

#define AUTO_KEY_PERIOD_S 3600 /* a new automatic key every hour; the previous one still decrypts */

static int ex_index = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;
static const ficus_tls_ticket_keys_t automatic = {0};

static void init_ex_index(void)
{
    ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* ---- key files ---- */

static int load_file(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_tls_ticket_key_t *key)
{
    char *buf;
    size_t n;
    if (ficus_conf_read_file(cc, node, "session ticket key file", 80, &buf, &n) != 0)
        return -1;
    int rc = 0;
    if (n == 80) {
        memcpy(key->name, buf, 16);
        memcpy(key->hmac, buf + 16, 32);
        memcpy(key->aes, buf + 48, 32);
        key->hmac_len = 32, key->aes_bits = 256;
    } else if (n == 48) {
        memcpy(key->name, buf, 16);
        memcpy(key->hmac, buf + 16, 16);
        memcpy(key->aes, buf + 32, 16);
        key->hmac_len = 16, key->aes_bits = 128;
    } else {
        rc = ficus_conf_error(cc, node,
                              "session ticket key file '%s' must hold 80 bytes (or 48), as NGINX's: `openssl rand 80 > FILE`",
                              node->data.scalar.value);
    }
    OPENSSL_cleanse(buf, n);
    free(buf);
    return rc;
}

int ficus_tls_tickets_load(ficus_conf_ctx_t *cc, const ficus_node_t *files, ficus_tls_ticket_keys_t **out)
{
    size_t n = files->data.sequence.size;
    if (n == 0)
        return ficus_conf_error(cc, files, "`session_ticket_keys` needs at least one file (or leave it out: automatic keys)");
    if (n > FICUS_TLS_MAX_TICKET_KEYS)
        return ficus_conf_error(cc, files, "at most %d session ticket key files", FICUS_TLS_MAX_TICKET_KEYS);
    ficus_tls_ticket_keys_t *keys = OPENSSL_zalloc(sizeof(*keys));
    if (keys == NULL)
        ficus_fatal("no memory");
    *out = keys;
    for (size_t i = 0; i != n; ++i) {
        const ficus_node_t *f = files->data.sequence.elements[i];
        if (ficus_conf_expect(cc, f, FICUS_NODE_SCALAR) != 0 || load_file(cc, f, keys->keys + i) != 0)
            return -1;
        for (size_t j = 0; j != i; ++j)
            if (memcmp(keys->keys[j].name, keys->keys[i].name, 16) == 0)
                return ficus_conf_error(cc, f, "session ticket key file '%s' has the same key name as an earlier one",
                                        f->data.scalar.value);
        keys->num = i + 1;
    }
    return 0;
}

void ficus_tls_tickets_free(ficus_tls_ticket_keys_t *keys)
{
    OPENSSL_clear_free(keys, sizeof(*keys));
}

/* ---- automatic keys ---- */

static unsigned char auto_secret[32];
static pthread_once_t auto_once = PTHREAD_ONCE_INIT;

static void init_auto_secret(void)
{
    if (RAND_bytes(auto_secret, sizeof(auto_secret)) != 1 && getrandom(auto_secret, sizeof(auto_secret), 0) != sizeof(auto_secret))
        ficus_fatal("no randomness for the session ticket secret");
}

static void derive(uint64_t epoch, const char *label, unsigned char out[32])
{
    unsigned char msg[32];
    size_t llen = strlen(label), outlen = 0;
    memcpy(msg, label, llen);
    for (int i = 0; i != 8; ++i)
        msg[llen + i] = (unsigned char)(epoch >> (56 - 8 * i));
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, auto_secret, sizeof(auto_secret), msg, llen + 8, out, 32, &outlen) == NULL ||
        outlen != 32)
        ficus_fatal("HMAC-SHA256 failed");
}

/* The automatic key of an epoch (hour): name = epoch (8 bytes) + 8 bytes tied to this process's secret. Cached per
 * thread: a handshake derives nothing while the hour lasts. */
static const ficus_tls_ticket_key_t *auto_key(uint64_t epoch)
{
    static __thread struct {
        uint64_t epoch;
        ficus_tls_ticket_key_t key;
    } cache[2];
    for (int i = 0; i != 2; ++i)
        if (cache[i].epoch == epoch && epoch != 0)
            return &cache[i].key;
    pthread_once(&auto_once, init_auto_secret);
    int slot = (int)(epoch & 1);
    ficus_tls_ticket_key_t *k = &cache[slot].key;
    unsigned char tag[32];
    derive(epoch, "ficus ticket name", tag);
    for (int i = 0; i != 8; ++i)
        k->name[i] = (unsigned char)(epoch >> (56 - 8 * i));
    memcpy(k->name + 8, tag, 8);
    derive(epoch, "ficus ticket hmac", k->hmac);
    derive(epoch, "ficus ticket aes", k->aes);
    k->hmac_len = 32, k->aes_bits = 256;
    cache[slot].epoch = epoch;
    OPENSSL_cleanse(tag, sizeof(tag));
    return k;
}

static uint64_t auto_epoch(void)
{
    return (uint64_t)time(NULL) / AUTO_KEY_PERIOD_S;
}

/* ---- the OpenSSL callback ---- */

static int init_ciphers(const ficus_tls_ticket_key_t *k, const unsigned char *iv, EVP_CIPHER_CTX *ctx, EVP_MAC_CTX *hctx, int enc)
{
    OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, k->hmac_len),
                           OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0), OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    const EVP_CIPHER *cipher = k->aes_bits == 256 ? EVP_aes_256_cbc() : EVP_aes_128_cbc();
    int rc = enc ? EVP_EncryptInit_ex(ctx, cipher, NULL, k->aes, iv) : EVP_DecryptInit_ex(ctx, cipher, NULL, k->aes, iv);
    return rc == 1 ? 0 : -1;
}

/* enc: 1 = ticket made, 0 = no ticket, -1 = error. dec: 1 = accepted, 2 = accepted and to be renewed, 0 = unknown key
 * (full handshake), -1 = error. */
static int on_ticket(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH], EVP_CIPHER_CTX *ctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    const ficus_tls_ticket_keys_t *keys = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_index);
    if (keys == NULL)
        return 0; /* the listener's configuration was retired */
    if (enc) {
        const ficus_tls_ticket_key_t *k = keys->num != 0 ? &keys->keys[0] : auto_key(auto_epoch());
        if (RAND_bytes(iv, 16) != 1)
            return -1;
        memcpy(key_name, k->name, 16);
        return init_ciphers(k, iv, ctx, hctx, 1) == 0 ? 1 : -1;
    }
    const ficus_tls_ticket_key_t *k = NULL;
    int renew = 0;
    if (keys->num != 0) {
        for (size_t i = 0; i != keys->num && k == NULL; ++i)
            if (CRYPTO_memcmp(keys->keys[i].name, key_name, 16) == 0)
                k = &keys->keys[i], renew = i != 0;
    } else {
        uint64_t now = auto_epoch(), epoch = 0;
        for (int i = 0; i != 8; ++i)
            epoch = epoch << 8 | key_name[i];
        if (epoch == now || epoch + 1 == now) {
            const ficus_tls_ticket_key_t *cand = auto_key(epoch);
            if (CRYPTO_memcmp(cand->name, key_name, 16) == 0)
                k = cand, renew = epoch != now;
        }
    }
    if (k == NULL)
        return 0;
    if (init_ciphers(k, iv, ctx, hctx, 0) != 0)
        return -1;
    return renew ? 2 : 1;
}

void ficus_tls_tickets_attach(SSL_CTX *ctx, const ficus_tls_ticket_keys_t *keys)
{
    pthread_once(&ex_once, init_ex_index);
    SSL_CTX_set_ex_data(ctx, ex_index, (void *)(keys != NULL ? keys : &automatic));
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket);
}

void ficus_tls_tickets_detach(SSL_CTX *ctx)
{
    pthread_once(&ex_once, init_ex_index);
    SSL_CTX_set_ex_data(ctx, ex_index, NULL);
}
