/* Unit tests of gateway/upstream/response.c, the pure parser of an upstream's HTTP/1.1 response: the head (status
 * line, fields, bounds, what is refused), the framing decision (RFC 9112 6.3) and the body decoder (Content-Length,
 * chunked with extensions and trailers, until close), fed whole and byte by byte as a socket may deliver them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ficus/upstream/response.h"
#include "runner.h"

typedef struct st_parsed_t {
    char buf[FICUS_UPC_MAX_HEAD_BYTES + 1024];
    ficus_upc_response_t res;
    h2o_header_t headers[FICUS_UPC_MAX_HEADERS];
    h2o_iovec_t names[FICUS_UPC_MAX_HEADERS];
} parsed_t;

/* Parses text (fed in pieces of `step` bytes, like reads from a socket; 0 = at once). Returns the head length. */
static ssize_t parse(parsed_t *p, const char *text, size_t step)
{
    size_t len = strlen(text), scanned = 0, have = step == 0 ? len : 0;
    memcpy(p->buf, text, len);
    while (1) {
        ssize_t r = ficus_upc_parse_head(p->buf, have, &scanned, &p->res, p->headers, p->names);
        if (r != 0 || have == len)
            return r;
        have = have + step > len ? len : have + step;
    }
}

static const char *header(parsed_t *p, const char *name)
{
    for (size_t i = 0; i != p->res.num_headers; ++i)
        if (h2o_memis(p->res.headers[i].name->base, p->res.headers[i].name->len, name, strlen(name))) {
            static char v[1024];
            snprintf(v, sizeof(v), "%.*s", (int)p->res.headers[i].value.len, p->res.headers[i].value.base);
            return v;
        }
    return NULL;
}

FICUS_TEST(head_parses_status_reason_and_fields)
{
    static parsed_t p;
    const char *text = "HTTP/1.1 201 Created Here\r\nContent-Type: text/plain\r\nX-Custom:  a b \t\r\nEmpty:\r\n\r\nBODY";
    ok_int(parse(&p, text, 0), strlen(text) - 4);
    ok_int(p.res.minor_version, 1);
    ok_int(p.res.status, 201);
    ok(h2o_memis(p.res.reason.base, p.res.reason.len, H2O_STRLIT("Created Here")));
    ok_int(p.res.num_headers, 3);
    ok(p.res.headers[0].name == &H2O_TOKEN_CONTENT_TYPE->buf); /* tokens compare by pointer */
    ok_str(header(&p, "x-custom"), "a b");                     /* lowercased name, OWS trimmed */
    ok_str(header(&p, "empty"), "");
    ok_int(p.res.content_length, SIZE_MAX);

    ok_int(parse(&p, "HTTP/1.0 404\r\n\r\n", 0), 16); /* no reason phrase */
    ok_int(p.res.status, 404);
    ok_int(p.res.minor_version, 0);
    ok_int(p.res.reason.len, 0);
}

FICUS_TEST(head_incomplete_and_trickled)
{
    static parsed_t p;
    ok_int(parse(&p, "HTTP/1.1 200 OK\r\nA: b\r\n", 0), 0);
    ok_int(parse(&p, "HTTP/1.1 200 OK\r\nA: b\r\n\r", 0), 0);
    const char *text = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: up\r\n\r\n";
    for (size_t step = 1; step != 8; ++step) {
        ok_int(parse(&p, text, step), strlen(text));
        ok_int(p.res.num_headers, 2);
        ok_str(header(&p, "server"), "up");
    }
}

FICUS_TEST(head_refuses_malformed)
{
    static parsed_t p;
    static const char *const bad[] = {"HTTP/1.1 200 OK\nA: b\r\n\r\n",         /* bare LF in the status line */
                                      "HTTP/1.1 200 OK\r\nA: b\n\r\n\r\n",     /* bare LF ending a field */
                                      "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", /* obs-fold */
                                      "HTTP/2.0 200 OK\r\n\r\n",
                                      "HTTP/1.2 200 OK\r\n\r\n",
                                      "http/1.1 200 OK\r\n\r\n",
                                      "HTTP/1.1 20 OK\r\n\r\n",
                                      "HTTP/1.1 2000 OK\r\n\r\n",
                                      "HTTP/1.1 099 OK\r\n\r\n",
                                      "HTTP/1.1 600 OK\r\n\r\n",
                                      "HTTP/1.1 200OK\r\n\r\n",
                                      "HTTP/1.1 200 O\x01K\r\n\r\n",
                                      "HTTP/1.1 200 OK\r\nA b\r\n\r\n",      /* no colon */
                                      "HTTP/1.1 200 OK\r\nA : b\r\n\r\n",    /* space before the colon */
                                      "HTTP/1.1 200 OK\r\n: b\r\n\r\n",      /* empty name */
                                      "HTTP/1.1 200 OK\r\nA: b\x7f\r\n\r\n", /* DEL in a value */
                                      "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n",  /* bare CR in a value */
                                      NULL};
    for (const char *const *t = bad; *t != NULL; ++t)
        if (!ok(parse(&p, *t, 0) == -1))
            printf("#     accepted: %s\n", *t);
}

FICUS_TEST(head_bounds)
{
    static parsed_t p;
    static char text[FICUS_UPC_MAX_HEAD_BYTES + 512];
    /* exactly FICUS_UPC_MAX_HEADERS fields pass, one more fails */
    for (int extra = 0; extra != 2; ++extra) {
        size_t n = (size_t)snprintf(text, sizeof(text), "HTTP/1.1 200 OK\r\n");
        for (int i = 0; i != FICUS_UPC_MAX_HEADERS + extra; ++i)
            n += (size_t)snprintf(text + n, sizeof(text) - n, "h%d: v\r\n", i);
        snprintf(text + n, sizeof(text) - n, "\r\n");
        ok_int(parse(&p, text, 0) > 0, extra == 0);
    }
    /* a head larger than the bound fails, complete or not */
    size_t n = (size_t)snprintf(text, sizeof(text), "HTTP/1.1 200 OK\r\nbig: ");
    memset(text + n, 'a', FICUS_UPC_MAX_HEAD_BYTES);
    text[n + FICUS_UPC_MAX_HEAD_BYTES] = '\0';
    ok_int(parse(&p, text, 0), -1);
    strcpy(text + n + FICUS_UPC_MAX_HEAD_BYTES - 10, "\r\n\r\n"); /* complete, a few bytes over */
    ok_int(parse(&p, text, 0), -1);
}

/* ---- framing ---- */

static int framing_of(const char *head, int is_head, ficus_upc_decoder_t *d)
{
    static parsed_t p;
    if (parse(&p, head, 0) <= 0)
        return -2;
    return ficus_upc_decoder_init(d, &p.res, is_head);
}

FICUS_TEST(framing_rules)
{
    ficus_upc_decoder_t d;
    ok_int(framing_of("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", 0, &d), 0);
    ok_int(d.framing, FICUS_UPC_FRAMING_LENGTH);
    ok_int(d.remaining, 12);
    ok(d.keepalive);
    ok_int(framing_of("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, &d), 0);
    ok_int(d.framing, FICUS_UPC_FRAMING_NONE);
    ok_int(framing_of("HTTP/1.1 200 OK\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n", 0, &d), 0); /* agreeing duplicates */
    ok_int(framing_of("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n", 0, &d), -1);
    ok_int(framing_of("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, &d), -1);
    ok_int(framing_of("HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n", 0, &d), -1);
    ok_int(framing_of("HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999999\r\n\r\n", 0, &d), -1);
    ok_int(framing_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, &d), 0);
    ok_int(d.framing, FICUS_UPC_FRAMING_CHUNKED);
    ok_int(framing_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", 0, &d), 0);
    ok_int(framing_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0, &d), -1);
    ok_int(framing_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0, &d), -1);
    ok_int(framing_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 0, &d), -1); /* smuggling */
    ok_int(framing_of("HTTP/1.1 200 OK\r\n\r\n", 0, &d), 0);
    ok_int(d.framing, FICUS_UPC_FRAMING_CLOSE);
    ok(!d.keepalive);
    ok_int(framing_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 1, &d), 0); /* response to HEAD */
    ok_int(d.framing, FICUS_UPC_FRAMING_NONE);
    ok_int(framing_of("HTTP/1.1 204 No Content\r\n\r\n", 0, &d), 0);
    ok_int(d.framing, FICUS_UPC_FRAMING_NONE);
    ok_int(framing_of("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", 0, &d), 0);
    ok_int(d.framing, FICUS_UPC_FRAMING_NONE);
    ok_int(framing_of("HTTP/1.1 200 OK\r\nConnection: x, Close\r\nContent-Length: 1\r\n\r\n", 0, &d), 0);
    ok(!d.keepalive);
    ok_int(framing_of("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", 0, &d), 0);
    ok(!d.keepalive);
    ok_int(framing_of("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", 0, &d), 0);
    ok(d.keepalive);
}

/* ---- body ---- */

/* Decodes body (after a head of `head`) in pieces of step bytes, keeping unused bytes for the next piece as the
 * transport does. Returns 1 complete, 0 incomplete, -1 error; the decoded body in out, the bytes left after the end
 * of the body in *extra. */
static int decode(const char *head, const char *body, size_t body_len, size_t step, char *out, size_t *out_len, size_t *extra)
{
    ficus_upc_decoder_t d;
    if (framing_of(head, 0, &d) != 0)
        return -2;
    h2o_buffer_t *buf;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    char *pending = malloc(body_len + 1);
    size_t npending = 0, off = 0;
    int ret = 0;
    *extra = 0;
    while (!ficus_upc_decoder_complete(&d)) {
        if (off == body_len)
            break;
        size_t n = step == 0 || off + step > body_len ? body_len - off : step;
        memcpy(pending + npending, body + off, n);
        npending += n;
        off += n;
        ssize_t used = ficus_upc_decode(&d, pending, npending, &buf);
        if (used < 0) {
            ret = -1;
            break;
        }
        memmove(pending, pending + used, npending - used);
        npending -= used;
    }
    if (ret == 0 && ficus_upc_decoder_complete(&d)) {
        ret = 1;
        *extra = npending + (body_len - off);
    }
    if (buf->size != 0)
        memcpy(out, buf->bytes, buf->size < 256 ? buf->size : 256);
    *out_len = buf->size;
    h2o_buffer_dispose(&buf);
    free(pending);
    return ret;
}

#define CHUNKED_HEAD "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

FICUS_TEST(chunked_body_whole_and_byte_by_byte)
{
    static const char body[] = "5\r\nhello\r\n1;ext=1;x=\"y\"\r\n,\r\nB \r\n 0123456789\r\n0\r\nTrailer-A: 1\r\nB: 2\r\n\r\nNEXT";
    for (size_t step = 0; step != 4; ++step) {
        char out[256];
        size_t out_len, extra;
        ok_int(decode(CHUNKED_HEAD, body, sizeof(body) - 1, step, out, &out_len, &extra), 1);
        ok(out_len == 17 && memcmp(out, "hello, 0123456789", 17) == 0);
        ok_int(extra, 4); /* "NEXT" is not part of this response */
    }
}

FICUS_TEST(chunked_body_refused)
{
    static const char *const bad[] = {"x\r\n",                    /* not hex */
                                      "\r\n",                     /* no size */
                                      "1234567890abcdef\r\n",     /* 16 digits: more than 15 */
                                      "5\nhello\r\n0\r\n\r\n",    /* bare LF */
                                      "5\r\nhelloX\r\n0\r\n\r\n", /* no CRLF after the data */
                                      "5\r\nhello\rX0\r\n\r\n",
                                      "5 x\r\nhello\r\n",     /* junk after the size */
                                      "5;e\x01\r\nhello\r\n", /* control character in an extension */
                                      "0\r\nA: 1\n\r\n",      /* bare LF in a trailer */
                                      NULL};
    for (const char *const *t = bad; *t != NULL; ++t) {
        char out[256];
        size_t out_len, extra;
        if (!ok(decode(CHUNKED_HEAD, *t, strlen(*t), 0, out, &out_len, &extra) == -1))
            printf("#     accepted: %s\n", *t);
    }
    /* a chunk-size line longer than the bound, and trailers beyond their bound */
    static char big[FICUS_UPC_MAX_TRAILER_BYTES + 8192];
    memset(big, '0', FICUS_UPC_MAX_CHUNK_LINE + 10);
    char out[256];
    size_t out_len, extra;
    ok_int(decode(CHUNKED_HEAD, big, FICUS_UPC_MAX_CHUNK_LINE + 10, 0, out, &out_len, &extra), -1);
    size_t n = (size_t)snprintf(big, sizeof(big), "0\r\n");
    while (n < FICUS_UPC_MAX_TRAILER_BYTES + 100)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "t: %0100d\r\n", 1);
    ok_int(decode(CHUNKED_HEAD, big, n, 0, out, &out_len, &extra), -1);
}

FICUS_TEST(length_and_close_bodies)
{
    char out[256];
    size_t out_len, extra;
    ok_int(decode("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "helloEXTRA", 10, 0, out, &out_len, &extra), 1);
    ok(out_len == 5 && memcmp(out, "hello", 5) == 0);
    ok_int(extra, 5);
    ok_int(decode("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "hel", 3, 1, out, &out_len, &extra), 0); /* cut short */
    ok_int(out_len, 3);
    /* until close: everything is body, and it is never "complete" by itself */
    ok_int(decode("HTTP/1.1 200 OK\r\n\r\n", "all of it", 9, 2, out, &out_len, &extra), 0);
    ok(out_len == 9 && memcmp(out, "all of it", 9) == 0);
}
