/* HTTP/2 requests that are malformed rather than bad: answered with a stream error, not an HTTP response.
 *
 * RFC 9113 section 8.1.1: a malformed request is a stream error of type PROTOCOL_ERROR. H2O 2.2.5 hands some
 * malformed requests to the handler as ordinary ones, where ficus would answer 400; h2spec (8.1.2.3, an empty
 * `:path`) expects RST_STREAM. H2O offers no handler-side way to reset a stream, so this resets it the way H2O resets
 * a stream itself (RST_STREAM queued on the connection's write buffer, then h2o_http2_stream_reset), from a zero
 * timeout on the next loop turn, never inside H2O's own call into the handler.
 * LIFETIME: the pending reset lives in the request's pool; if the client resets the stream first, the pool's
 * dispose unlinks it. */
#include "h2o.h"
#include "h2o/http2.h"
#include "h2o/http2_internal.h"
#include "ficus/h2_stream_error.h"

typedef struct st_ficus_h2_reset_t {
    h2o_timeout_entry_t entry;
    h2o_req_t *req;
} ficus_h2_reset_t;

static void on_reset(h2o_timeout_entry_t *entry)
{
    ficus_h2_reset_t *r = H2O_STRUCT_FROM_MEMBER(ficus_h2_reset_t, entry, entry);
    h2o_http2_conn_t *conn = (h2o_http2_conn_t *)r->req->conn;
    h2o_http2_stream_t *stream = H2O_STRUCT_FROM_MEMBER(h2o_http2_stream_t, req, r->req);
    if (conn->state < H2O_HTTP2_CONN_STATE_IS_CLOSING) {
        h2o_http2_encode_rst_stream_frame(&conn->_write.buf, stream->stream_id, -H2O_HTTP2_ERROR_PROTOCOL);
        h2o_http2_conn_request_write(conn);
    }
    h2o_http2_stream_reset(conn, stream); /* frees the request, and r with its pool */
}

static void on_dispose(void *_r)
{
    ficus_h2_reset_t *r = _r;
    h2o_timeout_unlink(&r->entry);
}

int ficus_h2_refuse_malformed(h2o_req_t *req)
{
    if (req->version < 0x200 || req->input.path.len != 0)
        return 0;
    ficus_h2_reset_t *r = h2o_mem_alloc_shared(&req->pool, sizeof(*r), on_dispose);
    *r = (ficus_h2_reset_t){{0}};
    r->req = req;
    r->entry.cb = on_reset;
    h2o_timeout_link(req->conn->ctx->loop, &req->conn->ctx->zero_timeout, &r->entry);
    return 1;
}
