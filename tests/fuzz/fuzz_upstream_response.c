/* libFuzzer target: an upstream's HTTP/1.1 response, through the pure parser gateway/upstream/response.c.
 *
 * ATTACK SURFACE: an upstream (a new service, a compromised or buggy one, or whoever answers on its address) sends
 * arbitrary bytes back: the head parser (status line, fields, bounds), the framing decision (Content-Length,
 * Transfer-Encoding, Connection) and the body decoder (chunk sizes, extensions, trailers) see them all.
 * INPUT: byte 0 chooses the read size the bytes arrive in (1..16, or all at once) and whether the request was HEAD;
 * the rest is the response, fed as the transport does: the head is searched incrementally, 1xx heads are skipped,
 * then body bytes are decoded with unused bytes (an incomplete chunk line) carried into the next read.
 * CHECKS besides the sanitizers: a parsed head points inside the input and has a status in 100..599 and at most
 * FICUS_UPC_MAX_HEADERS fields with lowercase names; the decoder never uses more bytes than it was given, never
 * produces more body than it consumed, and stops at the end of the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/upstream/response.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = data[0] & 0x0f, have, len = size - 1;
    int is_head = (data[0] & 0x10) != 0;
    char *buf = malloc(len + 1);
    memcpy(buf, data + 1, len);
    if (step == 0)
        step = len;

    ficus_upc_response_t res;
    h2o_header_t headers[FICUS_UPC_MAX_HEADERS];
    h2o_iovec_t names[FICUS_UPC_MAX_HEADERS];
    size_t start = 0, scanned = 0;
    ssize_t head_len = 0;
    have = step < len ? step : len;
    while (1) {
        head_len = ficus_upc_parse_head(buf + start, have - start, &scanned, &res, headers, names);
        if (head_len < 0)
            goto Exit;
        if (head_len == 0) {
            if (have == len)
                goto Exit;
            have = have + step < len ? have + step : len;
            continue;
        }
        check(res.status >= 100 && res.status <= 599 && res.num_headers <= FICUS_UPC_MAX_HEADERS);
        check((size_t)head_len <= have - start && head_len <= FICUS_UPC_MAX_HEAD_BYTES);
        for (size_t i = 0; i != res.num_headers; ++i) {
            const h2o_iovec_t *n = res.headers[i].name;
            check(n->len != 0);
            for (size_t j = 0; j != n->len; ++j)
                check(!(n->base[j] >= 'A' && n->base[j] <= 'Z'));
            check(res.headers[i].value.base >= buf && res.headers[i].value.base + res.headers[i].value.len <= buf + len);
        }
        start += head_len;
        if (res.status >= 200)
            break;
    }

    ficus_upc_decoder_t d;
    if (ficus_upc_decoder_init(&d, &res, is_head) != 0)
        goto Exit;
    h2o_buffer_t *out;
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    size_t consumed = 0, from = start; /* bytes [from, have) are read and not used yet */
    while (!ficus_upc_decoder_complete(&d) && from != have) {
        ssize_t used = ficus_upc_decode(&d, buf + from, have - from, &out);
        if (used < 0)
            break;
        check((size_t)used <= have - from);
        from += used;
        consumed += used;
        check(out->size <= consumed);
        if (ficus_upc_decoder_complete(&d) || have == len)
            break;
        have = have + step < len ? have + step : len;
    }
    h2o_buffer_dispose(&out);
Exit:
    free(buf);
    return 0;
}
