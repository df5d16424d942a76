/* Client connections: the accept path and the per-connection deadlines libh2o 2.2.5 lacks (see ficus/client_conn.h).
 *
 * ACCEPT: ficus accepts itself instead of h2o_accept(), to see every connection from its first byte:
 *   - TLS: the handshake (bounded by server.timeouts.handshake), then HTTP/2 or HTTP/1.1 by ALPN, as h2o_accept does;
 *   - plain, with server.http2.h2c on (else HTTP/1.1 only): the first line decides. The HTTP/2 connection preface
 *     ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") -> HTTP/2; a request line ending in "HTTP/1.x" -> HTTP/1.1; anything
 *     else cannot be answered in HTTP/1.1 and is an invalid HTTP/2 connection preface: GOAWAY(PROTOCOL_ERROR) and
 *     close (RFC 9113 section 3.4), where H2O would have fallen back to an HTTP/1.1 400.
 * HEADER DEADLINE (server.limits.header_timeout, as NGINX's client_header_timeout): H2O 2.2.5 restarts its HTTP/2
 * idle timeout on every read, so a client dripping a header block (HEADERS + CONTINUATION, up to ~470 KB held)
 * stays forever; its HTTP/1.1 request timeout is the long idle one. A sweep every FICUS_CONN_SWEEP_MS looks at
 * each connection: one whose header block is unfinished (HTTP/1.1: unread input with no complete head and no request
 * being processed; HTTP/2: a HEADERS block waiting for CONTINUATION, or a partial HEADERS/CONTINUATION frame, and no
 * new stream opened since) for header_timeout is closed (ficus_client_header_timeouts_total). The sweep is O(open
 * connections) per tick; a head is searched for its end once, when its deadline passes.
 * FRAME FLOOD: H2O 2.2.5 skips unknown frame types with a stderr line each and no limit. The connection's read
 * callback is wrapped: before H2O parses the input (which starts at a frame boundary), the complete frames in it are
 * walked; more than FICUS_CONN_MAX_UNKNOWN_FRAMES unknown frames within FICUS_CONN_FLOOD_WINDOW_MS closes the
 * connection (ficus_http2_frame_flood_total) before H2O sees them.
 * CLOSING: always by shutting the socket down, so H2O tears the connection down through its own error path.
 * OWNERSHIP: a record per connection (malloc), on its worker's list, freed from the socket's on_close callback. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "h2o.h"
#include "h2o/http1.h"
#include "h2o/http2.h"
#include "h2o/http2_internal.h"
#include "ficus/client_conn.h"
#include "ficus/log.h"
#include "ficus/worker.h"

#define FICUS_CONN_SWEEP_MS 250
#define FICUS_CONN_DRAIN_IDLE_MS 1000
#define FICUS_CONN_MAX_UNKNOWN_FRAMES 1000
#define FICUS_CONN_FLOOD_WINDOW_MS 10000
#define FICUS_SNIFF_MAX 16384 /* a first line longer than this is left to the HTTP/1.1 parser */

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN (sizeof(h2_preface) - 1)

enum { CONN_TLS_HANDSHAKE, CONN_SNIFF, CONN_H1, CONN_H2, CONN_CLOSING };

struct st_ficus_client_conn_t {
    h2o_linklist_t link; /* in the worker's client_conns */
    ficus_worker_t *w;
    h2o_socket_t *sock;
    h2o_accept_ctx_t accept_ctx; /* copied at accept: the listener's may be repointed by a reload */
    struct timeval connected_at;
    int state;
    h2o_timeout_entry_t handshake_timer;
    uint64_t accepted_at;
    uint64_t head_since; /* 0: no unfinished header block seen at the last sweep */
    int head_complete;   /* HTTP/1.1: the unread input was found to hold a complete head (a body is arriving) */
    uint32_t max_stream_seen;
    h2o_socket_cb h2_on_read; /* H2O's read callback, which ours wraps */
    int preface_skipped;
    uint64_t flood_window_start;
    uint64_t unknown_frames;
    uint8_t peer_key[FICUS_H2_GUARD_KEY_LEN]; /* for the rapid-reset budget of its address */
    size_t drain_bytes_read;                  /* HTTP/1.1 while draining: bytes read when last seen busy */
    uint64_t drain_idle_since;                /* ... and since when it has been idle (0: not idle) */
};

static void close_socket(ficus_client_conn_t *c)
{
    c->state = CONN_CLOSING;
    shutdown(h2o_socket_get_fd(c->sock), SHUT_RDWR);
}

static void on_socket_close(void *data)
{
    ficus_client_conn_t *c = data;
    h2o_timeout_unlink(&c->handshake_timer);
    h2o_linklist_unlink(&c->link);
    free(c);
}

/* ---- HTTP/2 frame accounting ---- */

static void count_frames(ficus_client_conn_t *c)
{
    h2o_buffer_t *in = c->sock->input;
    const uint8_t *p = (const uint8_t *)in->bytes, *end = p + in->size;
    if (!c->preface_skipped) {
        if (in->size < H2_PREFACE_LEN)
            return;
        p += H2_PREFACE_LEN; /* H2O consumes the preface with the frames that follow it */
        c->preface_skipped = 1;
    }
    uint64_t now = h2o_now(c->w->loop), unknown = 0;
    /* bounded by the input H2O holds: 9 bytes of header per frame at least */
    while (end - p >= 9) {
        size_t len = (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2];
        if ((size_t)(end - p) < 9 + len)
            break; /* partial: counted when complete, in the read that hands it to H2O */
        if (p[3] > H2O_HTTP2_FRAME_TYPE_CONTINUATION)
            ++unknown;
        p += 9 + len;
    }
    if (unknown == 0)
        return;
    if (now - c->flood_window_start > FICUS_CONN_FLOOD_WINDOW_MS) {
        c->flood_window_start = now;
        c->unknown_frames = 0;
    }
    if ((c->unknown_frames += unknown) > FICUS_CONN_MAX_UNKNOWN_FRAMES && c->state != CONN_CLOSING) {
        ficus_counter_add(&ficus_worker_stats[c->w->index].frame_flood_closes, 1);
        ficus_warn("closing HTTP/2 connection: %llu frames of unknown types within %ums (frame flood)",
                   (unsigned long long)c->unknown_frames, FICUS_CONN_FLOOD_WINDOW_MS);
        close_socket(c);
    }
}

static void on_h2_read(h2o_socket_t *sock, const char *err)
{
    ficus_client_conn_t *c = sock->on_close.data;
    if (err == NULL && c->state != CONN_CLOSING && ficus_h2_guard_blocked(c->peer_key, h2o_now(c->w->loop))) {
        /* its address is over its rapid-reset budget: nothing more of it is parsed */
        ficus_counter_add(&ficus_worker_stats[c->w->index].reset_flood_closes, 1);
        close_socket(c);
    }
    if (err == NULL)
        count_frames(c);
    if (c->state == CONN_CLOSING) {
        /* H2O must not parse (and log) the flood: drop it; the shutdown makes the next read fail */
        h2o_buffer_consume(&sock->input, sock->input->size);
        if (err == NULL)
            return;
    }
    c->h2_on_read(sock, err);
}

static void start_h2(ficus_client_conn_t *c)
{
    h2o_socket_t *sock = c->sock;
    c->state = CONN_H2;
    struct sockaddr_storage ss;
    if (h2o_socket_getpeername(sock, (void *)&ss) != 0)
        ficus_h2_guard_key((void *)&ss, c->peer_key);
    /* H2O parses buffered input inside h2o_http2_accept (and may close the connection there): hide it until the
     * read callback is wrapped, then hand it over through the wrapper */
    h2o_buffer_t *buffered = sock->input;
    h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
    h2o_http2_accept(&c->accept_ctx, sock, c->connected_at);
    h2o_buffer_dispose(&sock->input);
    sock->input = buffered;
    c->h2_on_read = sock->_cb.read;
    sock->_cb.read = on_h2_read;
    if (sock->input->size != 0)
        on_h2_read(sock, NULL); /* c may be gone after this */
}

static void start_h1(ficus_client_conn_t *c)
{
    c->state = CONN_H1;
    h2o_http1_accept(&c->accept_ctx, c->sock, c->connected_at);
}

/* ---- plain listeners: HTTP/1.1, HTTP/2 with prior knowledge, or an invalid preface ---- */

static void on_goaway_sent(h2o_socket_t *sock, const char *err)
{
    h2o_socket_close(sock);
}

static void refuse_preface(ficus_client_conn_t *c)
{
    static const uint8_t goaway[] = {0, 0, 8, H2O_HTTP2_FRAME_TYPE_GOAWAY,
                                     0, 0, 0, 0,
                                     0,           /* stream 0 */
                                     0, 0, 0, 0,  /* last stream id 0 */
                                     0, 0, 0, 1}; /* PROTOCOL_ERROR */
    h2o_iovec_t buf = h2o_iovec_init(goaway, sizeof(goaway));
    c->state = CONN_CLOSING;
    h2o_socket_read_stop(c->sock);
    h2o_socket_write(c->sock, &buf, 1, on_goaway_sent);
}

/* Which protocol the bytes so far announce: 1 = HTTP/2 preface, 0 = HTTP/1.x, -1 = neither, -2 = not known yet */
int ficus_client_conn_sniff(const char *s, size_t n)
{
    size_t m = n < H2_PREFACE_LEN ? n : H2_PREFACE_LEN;
    if (memcmp(s, h2_preface, m) == 0)
        return n >= H2_PREFACE_LEN ? 1 : -2;
    const char *lf = memchr(s, '\n', n);
    if (lf == NULL)
        return n >= FICUS_SNIFF_MAX ? 0 : -2;
    size_t len = lf - s;
    if (len != 0 && s[len - 1] == '\r')
        --len;
    if (len == 0)
        return 0; /* leading empty lines: HTTP/1.1's to handle (RFC 9112 section 2.2) */
    return len >= 9 && memcmp(s + len - 9, " HTTP/1.", 8) == 0 && s[len - 1] >= '0' && s[len - 1] <= '9' ? 0 : -1;
}

static void on_sniff_read(h2o_socket_t *sock, const char *err)
{
    ficus_client_conn_t *c = sock->on_close.data;
    if (err != NULL) {
        h2o_socket_close(sock);
        return;
    }
    switch (ficus_client_conn_sniff(sock->input->bytes, sock->input->size)) {
    case 1:
        start_h2(c);
        break;
    case 0:
        start_h1(c);
        break;
    case -1:
        refuse_preface(c);
        break;
    default:
        break; /* wait for more (the header deadline bounds how long) */
    }
}

/* ---- TLS ---- */

static void on_handshake_timeout(h2o_timeout_entry_t *entry)
{
    ficus_client_conn_t *c = H2O_STRUCT_FROM_MEMBER(ficus_client_conn_t, handshake_timer, entry);
    h2o_socket_close(c->sock);
}

static void on_handshake_complete(h2o_socket_t *sock, const char *err)
{
    ficus_client_conn_t *c = sock->on_close.data;
    h2o_timeout_unlink(&c->handshake_timer);
    if (err != NULL) {
        h2o_socket_close(sock);
        return;
    }
    h2o_iovec_t proto = h2o_socket_ssl_get_selected_protocol(sock);
    for (const h2o_iovec_t *ident = h2o_http2_alpn_protocols; ident->len != 0; ++ident) {
        if (proto.len == ident->len && memcmp(proto.base, ident->base, proto.len) == 0) {
            start_h2(c);
            return;
        }
    }
    start_h1(c);
}

void ficus_client_conn_accept(ficus_worker_t *w, h2o_accept_ctx_t *accept_ctx, h2o_socket_t *sock)
{
    ficus_client_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        ficus_fatal("no memory");
    c->w = w;
    c->sock = sock;
    c->accept_ctx = *accept_ctx;
    c->connected_at = *h2o_get_timestamp(accept_ctx->ctx, NULL, NULL);
    c->accepted_at = h2o_now(w->loop);
    c->handshake_timer.cb = on_handshake_timeout;
    h2o_linklist_insert(&w->client_conns, &c->link);
    sock->on_close.cb = on_socket_close;
    sock->on_close.data = c;
    if (accept_ctx->ssl_ctx != NULL) {
        c->state = CONN_TLS_HANDSHAKE;
        h2o_timeout_link(w->loop, &accept_ctx->ctx->handshake_timeout, &c->handshake_timer);
        h2o_socket_ssl_handshake(sock, accept_ctx->ssl_ctx, NULL, on_handshake_complete);
    } else if (!w->current->config->server.h2c) {
        start_h1(c); /* HTTP/1.1 only (server.http2.h2c off): a preface is a bad request there */
    } else {
        c->state = CONN_SNIFF;
        h2o_socket_read_start(sock, on_sniff_read);
    }
}

/* ---- the header deadline ---- */

static int h2_in_header_block(ficus_client_conn_t *c)
{
    h2o_http2_conn_t *conn = c->sock->data;
    if (conn->_headers_unparsed != NULL)
        return 1;
    h2o_buffer_t *in = c->sock->input;
    if (in->size == 0)
        return 0;
    if (!c->preface_skipped || in->size < 9)
        return 1; /* a partial preface or frame header */
    uint8_t type = (uint8_t)in->bytes[3];
    return type == H2O_HTTP2_FRAME_TYPE_HEADERS || type == H2O_HTTP2_FRAME_TYPE_CONTINUATION;
}

static int h1_in_head(ficus_client_conn_t *c)
{
    /* H2O stops reading while a request is processed and its response sent */
    if (!h2o_socket_is_reading(c->sock) || c->sock->input->size == 0) {
        c->head_complete = 0;
        return 0;
    }
    return !c->head_complete;
}

static int head_is_complete(h2o_socket_t *sock)
{
    size_t n = sock->input->size < H2O_MAX_REQLEN ? sock->input->size : H2O_MAX_REQLEN;
    for (size_t i = 0; i + 1 < n; ++i)
        if (sock->input->bytes[i] == '\n' &&
            (sock->input->bytes[i + 1] == '\n' ||
             (i + 2 < n && sock->input->bytes[i + 1] == '\r' && sock->input->bytes[i + 2] == '\n')))
            return 1;
    return 0;
}

static void sweep_one(ficus_client_conn_t *c, uint64_t now, uint64_t timeout_ms)
{
    int in_head;
    switch (c->state) {
    case CONN_SNIFF:
        in_head = 1;
        if (c->head_since == 0)
            c->head_since = c->accepted_at;
        break;
    case CONN_H1:
        in_head = h1_in_head(c);
        break;
    case CONN_H2: {
        h2o_http2_conn_t *conn = c->sock->data;
        in_head = h2_in_header_block(c);
        if (conn->pull_stream_ids.max_open != c->max_stream_seen) {
            c->max_stream_seen = conn->pull_stream_ids.max_open; /* a header block completed meanwhile */
            c->head_since = 0;
        }
    } break;
    default:
        return;
    }
    if (!in_head) {
        c->head_since = 0;
        return;
    }
    if (c->head_since == 0) {
        c->head_since = now;
        return;
    }
    if (now - c->head_since < timeout_ms)
        return;
    if (c->state == CONN_H1 && head_is_complete(c->sock)) {
        c->head_complete = 1; /* a body is arriving: H2O's request timeout bounds it */
        c->head_since = 0;
        return;
    }
    ficus_counter_add(&ficus_worker_stats[c->w->index].header_timeouts, 1);
    ficus_debug("closing a client connection: request header block not complete within %llums", (unsigned long long)timeout_ms);
    close_socket(c);
}

static void on_sweep(h2o_timeout_entry_t *entry)
{
    ficus_worker_t *w = H2O_STRUCT_FROM_MEMBER(ficus_worker_t, client_sweep, entry);
    uint64_t now = h2o_now(w->loop), timeout_ms = w->current->config->server.header_timeout_ms;
    for (h2o_linklist_t *l = w->client_conns.next; l != &w->client_conns; l = l->next)
        sweep_one(H2O_STRUCT_FROM_MEMBER(ficus_client_conn_t, link, l), now, timeout_ms);
    h2o_timeout_link(w->loop, ficus_worker_timeout(w, FICUS_CONN_SWEEP_MS), &w->client_sweep);
}

/* Draining: an HTTP/1.1 connection between requests gets no `Connection: close` (there is no response to carry it),
 * so it is closed here once it has been idle (H2O reading, nothing buffered, not a byte read) for
 * FICUS_CONN_DRAIN_IDLE_MS: a client that keeps sending requests is never closed under a request it is sending (its
 * next response says `Connection: close`), one that sent nothing for that long sees a plain FIN, as at a keep-alive
 * timeout. HTTP/2 connections are left to H2O's GOAWAY sequence, TLS handshakes and sniffing to their deadlines. */
size_t ficus_client_conn_drain(ficus_worker_t *w)
{
    size_t n = 0;
    for (h2o_linklist_t *l = w->client_conns.next; l != &w->client_conns; l = l->next, ++n) {
        ficus_client_conn_t *c = H2O_STRUCT_FROM_MEMBER(ficus_client_conn_t, link, l);
        if (c->state != CONN_H1)
            continue;
        uint64_t now = h2o_now(w->loop);
        if (!h2o_socket_is_reading(c->sock) || c->sock->input->size != 0 || c->sock->bytes_read != c->drain_bytes_read) {
            c->drain_bytes_read = c->sock->bytes_read;
            c->drain_idle_since = 0;
        } else if (c->drain_idle_since == 0) {
            c->drain_idle_since = now;
        } else if (now - c->drain_idle_since >= FICUS_CONN_DRAIN_IDLE_MS) {
            close_socket(c);
        }
    }
    return n;
}

void ficus_client_conn_init_worker(ficus_worker_t *w)
{
    h2o_linklist_init_anchor(&w->client_conns);
    w->client_sweep.cb = on_sweep;
    h2o_timeout_link(w->loop, ficus_worker_timeout(w, FICUS_CONN_SWEEP_MS), &w->client_sweep);
}
