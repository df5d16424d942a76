/* W3C Trace Context (https://www.w3.org/TR/trace-context/): `traceparent` and `tracestate`.
 *
 * A request continues the client's trace only when the peer is one of server.trusted_proxies (the same trust as
 * X-Forwarded-For) and its single traceparent header is valid (version 00: exactly 55 characters; a later version:
 * at least 55, then '-'; lowercase hex; trace-id and parent-id not all zeros; version ff refused). Otherwise ficus
 * starts a new trace (random trace-id, trace-flags 00: not sampled) and drops the client's tracestate. Every request
 * sent upstream (each attempt, each mirror copy) is a new hop with a new span id as its parent-id; tracestate (at most
 * 512 bytes, else dropped) follows a continued trace unchanged. The trace id is in the access log. */
#ifndef ficus__trace_h
#define ficus__trace_h

#include <stdint.h>
#include "h2o.h"

typedef struct st_ficus_req_t ficus_req_t;

typedef struct st_ficus_trace_t {
    char trace_id[33];      /* 32 lowercase hex digits, NUL-terminated */
    char flags[3];          /* 2 hex digits */
    int continued;          /* 1: from a trusted client's traceparent */
    h2o_iovec_t tracestate; /* the trusted client's (joined), or {NULL, 0} */
} ficus_trace_t;

/** Sets req->trace from the request headers and peer (see above). */
void ficus_trace_start(ficus_req_t *req);
/** Appends the upstream hop's "traceparent: 00-TRACE-SPAN-FLAGS\r\n" (a new span id) and "tracestate: ...\r\n" (when
 * kept) to buf, which has room for FICUS_TRACE_HEADERS_MAX bytes; returns the length written. */
size_t ficus_trace_headers(const ficus_trace_t *trace, char *buf);
#define FICUS_TRACE_HEADERS_MAX (70 + 13 + 512 + 2)
/** Whether a request header is one that ficus sets itself for the upstream (traceparent, tracestate). */
int ficus_trace_is_header(const h2o_iovec_t *name);

#endif
