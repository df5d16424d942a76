/* An upstream's HTTP/1.1 response, parsed without any I/O (gateway/upstream/response.c): the head parser, the body
 * framing decision and the body decoder (Content-Length, chunked, until close).
 *
 * PURE: no sockets, no timers, no globals; input is whatever bytes the transport (gateway/upstream/client.c) has
 * read so far, output is a parsed head or decoded body bytes appended to an h2o_buffer_t. So it is unit-tested
 * (tests/unit/test_upstream_response.c) and fuzzed (tests/fuzz/fuzz_upstream_response.c) on its own.
 * BOUNDS: a head is at most FICUS_UPC_MAX_HEAD_BYTES with at most FICUS_UPC_MAX_HEADERS fields; a chunk-size line at
 * most FICUS_UPC_MAX_CHUNK_LINE bytes; trailers at most FICUS_UPC_MAX_TRAILER_BYTES in all (they are dropped). */
#ifndef ficus__upstream_response_h
#define ficus__upstream_response_h

#include <stdint.h>
#include <sys/types.h>
#include "h2o.h"

#define FICUS_UPC_MAX_HEADERS 100
#define FICUS_UPC_MAX_HEAD_BYTES (64 * 1024)
#define FICUS_UPC_MAX_CHUNK_LINE 4096
#define FICUS_UPC_MAX_TRAILER_BYTES (64 * 1024)

typedef struct st_ficus_upc_response_t {
    int minor_version;
    int status;
    h2o_iovec_t reason;
    h2o_header_t *headers; /* names lowercase; a token's name points to its h2o_token_t buf */
    size_t num_headers;
    size_t content_length; /* SIZE_MAX: none */
} ficus_upc_response_t;

typedef enum enum_ficus_upc_framing_t {
    FICUS_UPC_FRAMING_NONE = 0, /* no body (HEAD, 204, 304, Content-Length: 0) */
    FICUS_UPC_FRAMING_LENGTH,   /* Content-Length */
    FICUS_UPC_FRAMING_CHUNKED,  /* Transfer-Encoding: chunked */
    FICUS_UPC_FRAMING_CLOSE,    /* until the upstream closes (never reusable) */
} ficus_upc_framing_t;

/* The state of one response body's decoding. */
typedef struct st_ficus_upc_decoder_t {
    ficus_upc_framing_t framing;
    int keepalive;      /* the connection may serve another request once the body is complete */
    int chunk_state;    /* private */
    uint64_t remaining; /* Content-Length bytes, or bytes of the current chunk, still to come */
    size_t trailer_bytes;
} ficus_upc_decoder_t;

/**
 * Parses the response head at the start of buf: `HTTP/1.0|1 NNN [reason]` CRLF, header lines `token ":" OWS value
 * OWS` CRLF, an empty line. Refuses obs-fold, bare LF, control characters, more than FICUS_UPC_MAX_HEADERS fields or
 * FICUS_UPC_MAX_HEAD_BYTES bytes. Header names are lowercased in place; res, headers and names point into buf.
 * `*scanned` carries how far a previous call searched for the end of the head (0 for a new head; reset to 0 when a
 * head is returned), so a head trickling in costs linear time. Returns the head's length, 0 when incomplete, or -1
 * when malformed or too large. 1xx heads are returned like any other: the caller skips them.
 */
ssize_t ficus_upc_parse_head(char *buf, size_t len, size_t *scanned, ficus_upc_response_t *res, h2o_header_t *headers,
                             h2o_iovec_t *names);

/**
 * Decides from a final head how the body is delimited (RFC 9112 6.3) and whether the connection may be reused:
 * HEAD requests, 204 and 304 have no body; `Transfer-Encoding: chunked` (any other coding, or together with
 * Content-Length, is an error); one Content-Length (duplicates must agree; sets res->content_length); else the body
 * ends when the upstream closes. Reusable: HTTP/1.1 without `Connection: close`, or HTTP/1.0 with `keep-alive`.
 * Returns 0, or -1 on a framing error.
 */
int ficus_upc_decoder_init(ficus_upc_decoder_t *d, ficus_upc_response_t *res, int is_head_request);

/**
 * Decodes body bytes: appends the body's content in src to *out (chunk framing removed, trailers dropped). Returns
 * the bytes of src used (fewer than n: an incomplete chunk line to be passed again with more bytes, or bytes after
 * the end of the body), or -1 on a framing error or a failed allocation. A chunked body's lines are bounded
 * (FICUS_UPC_MAX_CHUNK_LINE, FICUS_UPC_MAX_TRAILER_BYTES).
 */
ssize_t ficus_upc_decode(ficus_upc_decoder_t *d, const char *src, size_t n, h2o_buffer_t **out);

/** Whether the whole body was decoded (never true for FICUS_UPC_FRAMING_CLOSE: that ends with the connection). */
int ficus_upc_decoder_complete(const ficus_upc_decoder_t *d);

/** Walks the comma-separated tokens of a header value such as Connection's (RFC 9110 5.6.1): stores the next
 * non-empty token in *tok and returns 1, or returns 0 at the end. *p starts at the value's base. */
static inline int ficus_http_list_next(const char **p, const char *end, h2o_iovec_t *tok)
{
    while (*p < end && (**p == ' ' || **p == '\t' || **p == ','))
        ++*p;
    if (*p == end)
        return 0;
    const char *start = *p;
    while (*p < end && **p != ',' && **p != ' ' && **p != '\t')
        ++*p;
    *tok = h2o_iovec_init(start, *p - start);
    return 1;
}

#endif
