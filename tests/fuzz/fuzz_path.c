/* libFuzzer target: the canonical path and the authority check (gateway/path.c), fed raw request-target bytes.
 *
 * ATTACK SURFACE: the path and Host a remote client fully controls, before route matching: what ficus routes on,
 * what plugins see and what the upstream receives are this function's output, so besides the sanitizers every
 * accepted path is checked against the contract (ficus/path.h): it starts with '/', holds no whitespace, control
 * character, '#', ';', '\' or raw non-ASCII byte, no "." or ".." segment, no "//" when merging, no %2F/%5C unless
 * kept, only uppercase escapes of reserved characters, and canonicalizing it again changes nothing.
 *
 * Input layout: the first byte selects the mode (bit 0: merge_slashes, bits 1-2: escaped_slashes mod 3), the rest
 * is the path (and, split at the first '?', its query). Build and run: tests/fuzz/README.md. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ficus/path.h"

static void fail(const char *what, const char *p, size_t n)
{
    fprintf(stderr, "fuzz_path: %s: '%.*s'\n", what, (int)n, p);
    abort();
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

static void check_canonical(const ficus_path_conf_t *conf, const char *p, size_t n)
{
    if (n == 0 || p[0] != '/')
        fail("not absolute", p, n);
    for (size_t i = 0; i != n; ++i) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c >= 0x7f || c == '#' || c == ';' || c == '\\' || c == '?')
            fail("forbidden byte in output", p, n);
        if (c == '%') {
            if (i + 2 >= n)
                fail("truncated escape", p, n);
            unsigned char h = (unsigned char)p[i + 1], l = (unsigned char)p[i + 2];
            if (!((h >= '0' && h <= '9') || (h >= 'A' && h <= 'F')) || !((l >= '0' && l <= '9') || (l >= 'A' && l <= 'F')))
                fail("escape not uppercase hex", p, n);
            unsigned v = (unsigned)((h <= '9' ? h - '0' : h - 'A' + 10) << 4 | (l <= '9' ? l - '0' : l - 'A' + 10));
            if (is_unreserved((unsigned char)v) || v <= 0x20 || v == 0x7f)
                fail("escape that should have been decoded or refused", p, n);
            if ((v == '/' || v == '\\') && conf->escaped_slashes != FICUS_ESCAPED_SLASHES_KEEP)
                fail("escaped slash left in output", p, n);
            i += 2;
        }
        if (c == '/') {
            size_t j = i + 1, k = j;
            while (k != n && p[k] != '/')
                ++k;
            if ((k - j == 1 && p[j] == '.') || (k - j == 2 && p[j] == '.' && p[j + 1] == '.'))
                fail("dot segment left", p, n);
            if (conf->merge_slashes && k == j && k != n)
                fail("double slash left", p, n);
        }
    }
    char again[FICUS_PATH_CANONICAL_CAP(16384)];
    size_t m;
    if (ficus_path_canonicalize(conf, p, n, again, &m) != FICUS_PATH_OK || m != n || memcmp(again, p, n) != 0)
        fail("not idempotent", p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return -1;
    ficus_path_conf_t conf = {data[0] & 1, (ficus_escaped_slashes_t)((data[0] >> 1) % 3)};
    /* a private copy of exactly the input, so that reads past it are caught by ASan */
    size_t len = size - 1;
    char *in = malloc(len == 0 ? 1 : len);
    if (in == NULL)
        abort();
    memcpy(in, data + 1, len);
    const char *q = memchr(in, '?', len);
    size_t plen = q != NULL ? (size_t)(q - in) : len;

    char *out = malloc(FICUS_PATH_CANONICAL_CAP(plen));
    size_t n;
    if (out == NULL)
        abort();
    if (ficus_path_canonicalize(&conf, in, plen, out, &n) == FICUS_PATH_OK) {
        if (n > FICUS_PATH_CANONICAL_CAP(plen))
            fail("output overflows its bound", out, n);
        check_canonical(&conf, out, n);
    }
    if (q != NULL)
        (void)ficus_path_check_query(q + 1, len - plen - 1);
    (void)ficus_authority_is_valid(in, len);
    free(out);
    free(in);
    return 0;
}
