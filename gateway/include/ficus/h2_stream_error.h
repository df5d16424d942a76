/* HTTP/2 stream errors for malformed requests (gateway/h2_stream_error.c). */
#ifndef ficus__h2_stream_error_h
#define ficus__h2_stream_error_h

#include "h2o.h"

/**
 * For an HTTP/2 request that RFC 9113 calls malformed and H2O 2.2.5 lets through (an empty `:path`): schedules
 * RST_STREAM(PROTOCOL_ERROR) and returns 1 (the handler then returns 0 and does nothing else with req). Returns 0
 * for any other request.
 */
int ficus_h2_refuse_malformed(h2o_req_t *req);

#endif
