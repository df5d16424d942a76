/* Sealed values for cookies: AES-256-GCM with a rotating key ring (keys_file).
 *
 * A sealed value is base64url(key id (1 byte) || nonce (12) || ciphertext || tag (16)), where the key id is the first
 * byte of SHA-256(key). Sealing uses the first key of the ring; opening accepts any key of the ring, so keys rotate by
 * adding a new key at the top and dropping the oldest later. The associated data binds a value to its purpose
 * (a flow cookie cannot be replayed as a session cookie). Nonces are random (RAND_bytes): at 2^32 seals per key the
 * collision risk stays negligible; rotate keys well before that. */
#ifndef ficus__sso_seal_h
#define ficus__sso_seal_h

#include <stddef.h>
#include <stdint.h>
#include "ficus/conf.h"

#define FICUS_SEAL_MAX_KEYS 8

typedef struct st_ficus_seal_keys_t {
    uint8_t keys[FICUS_SEAL_MAX_KEYS][32];
    uint8_t ids[FICUS_SEAL_MAX_KEYS];
    size_t num_keys;
} ficus_seal_keys_t;

/** Reads keys_file: one key per line, 32 bytes as 64 hex digits or 43 base64url characters; '#' comments. */
int ficus_seal_keys_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_seal_keys_t *out);
/** Seals plaintext; returns a malloc'd NUL-terminated string, or NULL. */
char *ficus_seal(const ficus_seal_keys_t *keys, const char *purpose, const uint8_t *plaintext, size_t len);
/** Opens a sealed value; returns malloc'd plaintext (NUL-terminated, *len set) or NULL when forged, truncated or sealed
 * with an unknown key or another purpose. */
uint8_t *ficus_unseal(const ficus_seal_keys_t *keys, const char *purpose, const char *sealed, size_t sealed_len, size_t *len);

#endif
