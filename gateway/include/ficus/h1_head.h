/* A second look at an HTTP/1.1 request head as the client sent it, for what H2O 2.2.5's parser accepts silently.
 *
 * H2O moves Host, Content-Length, Transfer-Encoding, Expect and Upgrade out of the header list (the last Host wins,
 * Transfer-Encoding beats Content-Length, the first Content-Length wins), so ficus cannot tell from req->headers
 * that there were two. The raw head is still at the start of the connection's input buffer while the handler runs;
 * this pure scanner reads it (RFC 9112 6.3: CL with TE, or differing CLs, are a smuggling vector → 400 and close).
 * PURE: no allocation; unit-tested (tests/unit/test_h1_head.c). */
#ifndef ficus__h1_head_h
#define ficus__h1_head_h

#include <stddef.h>

typedef enum enum_ficus_h1_head_result_t {
    FICUS_H1_HEAD_OK = 0,
    FICUS_H1_HEAD_INCOMPLETE,     /* no end of head within the bytes given: nothing can be said */
    FICUS_H1_HEAD_DUPLICATE_HOST, /* two Host fields */
    FICUS_H1_HEAD_CL_AND_TE,      /* Content-Length and Transfer-Encoding */
    FICUS_H1_HEAD_CL_CONFLICT,    /* Content-Length fields (or list members) that differ */
    FICUS_H1_HEAD_TE_REPEATED,    /* more than one Transfer-Encoding field */
    FICUS_H1_HEAD_OBS_FOLD,       /* a line folded onto the previous one (RFC 9112 5.2) */
} ficus_h1_head_result_t;

/** Scans the head at the start of buf (request line, fields, empty line); bytes after the head are not read. */
ficus_h1_head_result_t ficus_h1_head_check(const char *buf, size_t len);
/** The JSON error code for a result other than OK / INCOMPLETE. */
const char *ficus_h1_head_error_code(ficus_h1_head_result_t result);

#endif
