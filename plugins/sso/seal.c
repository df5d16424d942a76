/* Sealed cookie values (see seal.h). */
#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/jwk.h"
#include "seal.h"

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
}

int ficus_seal_keys_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_seal_keys_t *out)
{
    memset(out, 0, sizeof(*out));
    FILE *fp = fopen(node->data.scalar.value, "r");
    if (fp == NULL)
        return ficus_conf_error(cc, node, "cannot open keys file '%s': %s", node->data.scalar.value, strerror(errno));
    char line[256];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), fp) != NULL) {
        ++lineno;
        size_t len = strlen(line);
        while (len != 0 && isspace((unsigned char)line[len - 1]))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        if (out->num_keys == FICUS_SEAL_MAX_KEYS) {
            rc = ficus_conf_error(cc, node, "keys file '%s' has more than %d keys", node->data.scalar.value, FICUS_SEAL_MAX_KEYS);
            break;
        }
        uint8_t *key = out->keys[out->num_keys];
        size_t klen = 32;
        if (len == 64) {
            for (size_t i = 0; i != 32 && rc == 0; ++i) {
                int hi = hexval(line[i * 2]), lo = hexval(line[i * 2 + 1]);
                if (hi < 0 || lo < 0)
                    rc = ficus_conf_error(cc, node, "%s:%d: invalid hex key", node->data.scalar.value, lineno);
                key[i] = (uint8_t)(hi << 4 | lo);
            }
        } else if (ficus_base64url_decode(line, len, key, &klen) != 0 || klen != 32) {
            rc = ficus_conf_error(cc, node, "%s:%d: a key is 32 bytes: 64 hex digits or 43 base64url characters",
                                  node->data.scalar.value, lineno);
        }
        if (rc == 0) {
            uint8_t md[32];
            unsigned mdlen = 32;
            EVP_Digest(key, 32, md, &mdlen, EVP_sha256(), NULL);
            out->ids[out->num_keys++] = md[0];
        }
    }
    fclose(fp);
    if (rc == 0 && out->num_keys == 0)
        rc = ficus_conf_error(cc, node, "keys file '%s' has no key (generate one: openssl rand -hex 32)", node->data.scalar.value);
    return rc;
}

char *ficus_seal(const ficus_seal_keys_t *keys, const char *purpose, const uint8_t *plaintext, size_t len)
{
    size_t raw_len = 1 + 12 + len + 16;
    uint8_t *raw = malloc(raw_len);
    char *out = malloc((raw_len + 2) / 3 * 4 + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n, ok = raw != NULL && out != NULL && ctx != NULL;
    if (ok) {
        raw[0] = keys->ids[0];
        ok = RAND_bytes(raw + 1, 12) == 1 && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, keys->keys[0], raw + 1) == 1 &&
             EVP_EncryptUpdate(ctx, NULL, &n, (const uint8_t *)purpose, (int)strlen(purpose)) == 1 &&
             EVP_EncryptUpdate(ctx, raw + 13, &n, plaintext, (int)len) == 1 && EVP_EncryptFinal_ex(ctx, raw + 13 + n, &n) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, raw + 13 + len) == 1;
    }
    if (ok)
        out[ficus_base64url_encode(raw, raw_len, out)] = '\0';
    EVP_CIPHER_CTX_free(ctx);
    free(raw);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

uint8_t *ficus_unseal(const ficus_seal_keys_t *keys, const char *purpose, const char *sealed, size_t sealed_len, size_t *len)
{
    if (sealed_len > 8192)
        return NULL;
    uint8_t raw[6144];
    size_t raw_len = sizeof(raw);
    if (ficus_base64url_decode(sealed, sealed_len, raw, &raw_len) != 0 || raw_len < 1 + 12 + 16)
        return NULL;
    size_t ct_len = raw_len - 1 - 12 - 16;
    uint8_t *out = malloc(ct_len + 1);
    if (out == NULL)
        return NULL;
    for (size_t k = 0; k != keys->num_keys; ++k) {
        if (keys->ids[k] != raw[0])
            continue;
        EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
        int n, ok = ctx != NULL && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, keys->keys[k], raw + 1) == 1 &&
                    EVP_DecryptUpdate(ctx, NULL, &n, (const uint8_t *)purpose, (int)strlen(purpose)) == 1 &&
                    EVP_DecryptUpdate(ctx, out, &n, raw + 13, (int)ct_len) == 1 &&
                    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, raw + 13 + ct_len) == 1 &&
                    EVP_DecryptFinal_ex(ctx, out + n, &n) == 1;
        EVP_CIPHER_CTX_free(ctx);
        if (ok) {
            out[ct_len] = '\0';
            *len = ct_len;
            return out;
        }
    }
    free(out);
    return NULL;
}
