/* TLS session ticket keys (gateway/tls_tickets.c): resumption across reloads, and across a fleet.
 *
 * OpenSSL's default gives every SSL_CTX a random ticket key of its own: every reload (new contexts) and every other
 * instance then refuses the tickets clients hold, and each of those clients pays a full handshake. ficus encrypts
 * tickets itself (SSL_CTX_set_tlsext_ticket_key_evp_cb, AES-CBC + HMAC-SHA256 as RFC 5077 suggests):
 *   - with `tls.session_ticket_keys: [FILE, ...]`, the keys of those files, in NGINX's `ssl_session_ticket_key` format
 *     (80 bytes: 16 name, 32 HMAC, 32 AES-256 key; or 48 bytes: 16 + 16 + 16 with AES-128). The first file encrypts,
 *     all of them decrypt. Instances sharing the files resume each other's sessions; rotate by putting a new file first
 *     (the old one second) and reloading. Read at load, never logged.
 *   - without, automatic keys: derived from a random secret made once per process (so they survive reloads), a new
 *     key every hour; tickets of the current and the previous hour are accepted (renewed when old).
 * A ticket whose key is unknown means a full handshake and a new ticket, never an error. `session_tickets: false`
 * turns tickets off (SSL_OP_NO_TICKET). */
#ifndef ficus__tls_tickets_h
#define ficus__tls_tickets_h

#include <openssl/ssl.h>
#include "ficus/conf.h"

#define FICUS_TLS_MAX_TICKET_KEYS 16

typedef struct st_ficus_tls_ticket_key_t {
    unsigned char name[16];
    unsigned char hmac[32];
    unsigned char aes[32];
    size_t hmac_len; /* 16 or 32 */
    int aes_bits;    /* 128 or 256 */
} ficus_tls_ticket_key_t;

typedef struct st_ficus_tls_ticket_keys_t {
    size_t num; /* 0: automatic keys */
    ficus_tls_ticket_key_t keys[FICUS_TLS_MAX_TICKET_KEYS];
} ficus_tls_ticket_keys_t;

/** Reads the key files of a `session_ticket_keys` sequence into *out (malloc'd). 0, or -1 with a file:line error. */
int ficus_tls_tickets_load(ficus_conf_ctx_t *cc, const ficus_node_t *files, ficus_tls_ticket_keys_t **out);
/** Frees (and wipes) what ficus_tls_tickets_load made. NULL is fine. */
void ficus_tls_tickets_free(ficus_tls_ticket_keys_t *keys);
/** Makes ctx encrypt and decrypt tickets with keys (NULL: the process's automatic keys). keys must stay valid until
 * ficus_tls_tickets_detach(ctx). */
void ficus_tls_tickets_attach(SSL_CTX *ctx, const ficus_tls_ticket_keys_t *keys);
/** Before keys are freed: ctx (which handshakes in flight may still hold) issues and accepts no tickets any more. */
void ficus_tls_tickets_detach(SSL_CTX *ctx);

#endif
