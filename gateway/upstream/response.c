/* An upstream's HTTP/1.1 response parsed without I/O: head, framing, body decoder (ficus/upstream/response.h).
 *
 * HEAD: our own strict parser (the grammar and bounds are in the header). The end of the head is searched first,
 * incrementally (memmem from where the previous call stopped, minus 3 bytes for a CRLFCRLF split across reads);
 * only a complete head is parsed, in one pass, with names lowercased in place and looked up as H2O tokens so the
 * transport and relay compare names by pointer.
 * FRAMING (RFC 9112 6.3) and CHUNKED decoding: chunk-size lines and trailer lines are bounded, chunk extensions and
 * trailer fields dropped; a chunk size is at most 15 hex digits (no overflow). A body cut short is the caller's to
 * detect (ficus_upc_decoder_complete() is false): never a silent truncation. */
#include <stdint.h>
#include <string.h>
#include "ficus/upstream/response.h"

enum { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER, CH_DONE };

static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-value / reason-phrase / chunk-ext characters: HTAB, SP, VCHAR, obs-text */
static int is_text(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* The CR ending the line that starts at p (the head ends with CRLF CRLF before `end`), or NULL on a bare LF. */
static char *line_end(char *p, char *end)
{
    char *lf = memchr(p, '\n', end - p);
    if (lf == NULL || lf == p || lf[-1] != '\r')
        return NULL;
    return lf - 1;
}

ssize_t ficus_upc_parse_head(char *buf, size_t len, size_t *scanned, ficus_upc_response_t *res, h2o_header_t *headers,
                             h2o_iovec_t *names)
{
    /* find the end of the head first, resuming where the previous read left off */
    size_t from = *scanned > 3 ? *scanned - 3 : 0;
    const char *end = len > from ? memmem(buf + from, len - from, "\r\n\r\n", 4) : NULL;
    if (end == NULL) {
        *scanned = len;
        return len >= FICUS_UPC_MAX_HEAD_BYTES ? -1 : 0;
    }
    size_t head_len = end + 4 - buf;
    if (head_len > FICUS_UPC_MAX_HEAD_BYTES)
        return -1;
    *scanned = 0;
    char *last = buf + head_len - 2; /* the empty line */

    /* status line */
    char *p = buf, *eol = line_end(p, buf + head_len);
    if (eol == NULL || eol - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return -1;
    res->minor_version = p[7] - '0';
    res->status = 0;
    for (size_t i = 9; i != 12; ++i) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        res->status = res->status * 10 + (p[i] - '0');
    }
    if (res->status < 100 || res->status > 599)
        return -1;
    if (eol - p == 12) {
        res->reason = h2o_iovec_init(p + 12, 0);
    } else {
        if (p[12] != ' ')
            return -1;
        for (char *q = p + 13; q != eol; ++q)
            if (!is_text(*q))
                return -1;
        res->reason = h2o_iovec_init(p + 13, eol - (p + 13));
    }

    /* header fields */
    res->headers = headers;
    res->num_headers = 0;
    res->content_length = SIZE_MAX;
    for (p = eol + 2; p != last; p = eol + 2) {
        if ((eol = line_end(p, buf + head_len)) == NULL || *p == ' ' || *p == '\t') /* bare LF; obs-fold */
            return -1;
        char *colon = p;
        while (colon != eol && is_tchar(*colon))
            ++colon;
        if (colon == p || colon == eol || *colon != ':')
            return -1;
        char *v = colon + 1, *ve = eol;
        while (v != ve && (*v == ' ' || *v == '\t'))
            ++v;
        while (ve != v && (ve[-1] == ' ' || ve[-1] == '\t'))
            --ve;
        for (char *q = v; q != ve; ++q)
            if (!is_text(*q))
                return -1;
        if (res->num_headers == FICUS_UPC_MAX_HEADERS)
            return -1;
        size_t nlen = colon - p;
        h2o_strtolower(p, nlen);
        h2o_header_t *h = headers + res->num_headers;
        const h2o_token_t *token = h2o_lookup_token(p, nlen);
        if (token != NULL) {
            h->name = (h2o_iovec_t *)&token->buf;
        } else {
            names[res->num_headers] = h2o_iovec_init(p, nlen);
            h->name = names + res->num_headers;
        }
        h->orig_name = NULL;
        h->value = h2o_iovec_init(v, ve - v);
        ++res->num_headers;
    }
    return head_len;
}

static size_t parse_content_length(h2o_iovec_t v)
{
    if (v.len == 0 || v.len > 18)
        return SIZE_MAX;
    size_t n = 0;
    for (size_t i = 0; i != v.len; ++i) {
        if (v.base[i] < '0' || v.base[i] > '9')
            return SIZE_MAX;
        n = n * 10 + (v.base[i] - '0');
    }
    return n;
}

int ficus_upc_decoder_init(ficus_upc_decoder_t *d, ficus_upc_response_t *res, int is_head_request)
{
    int chunked = 0, has_te = 0, conn_close = 0, conn_keepalive = 0;
    for (size_t i = 0; i != res->num_headers; ++i) {
        const h2o_header_t *h = res->headers + i;
        if (h->name == &H2O_TOKEN_CONTENT_LENGTH->buf) {
            size_t cl = parse_content_length(h->value);
            if (cl == SIZE_MAX || (res->content_length != SIZE_MAX && res->content_length != cl))
                return -1;
            res->content_length = cl;
        } else if (h->name == &H2O_TOKEN_TRANSFER_ENCODING->buf) {
            if (has_te || !h2o_lcstris(h->value.base, h->value.len, H2O_STRLIT("chunked")))
                return -1;
            has_te = chunked = 1;
        } else if (h->name == &H2O_TOKEN_CONNECTION->buf) {
            const char *p = h->value.base;
            h2o_iovec_t tok;
            while (ficus_http_list_next(&p, h->value.base + h->value.len, &tok)) {
                if (h2o_lcstris(tok.base, tok.len, H2O_STRLIT("close")))
                    conn_close = 1;
                else if (h2o_lcstris(tok.base, tok.len, H2O_STRLIT("keep-alive")))
                    conn_keepalive = 1;
            }
        }
    }
    if (chunked && res->content_length != SIZE_MAX)
        return -1; /* RFC 9112 6.3: a smuggling signal */
    d->keepalive = !conn_close && (res->minor_version >= 1 || conn_keepalive);
    if (is_head_request || res->status == 204 || res->status == 304) {
        d->framing = FICUS_UPC_FRAMING_NONE;
    } else if (chunked) {
        d->framing = FICUS_UPC_FRAMING_CHUNKED;
        d->chunk_state = CH_SIZE;
        d->trailer_bytes = 0;
    } else if (res->content_length != SIZE_MAX) {
        d->framing = res->content_length == 0 ? FICUS_UPC_FRAMING_NONE : FICUS_UPC_FRAMING_LENGTH;
        d->remaining = res->content_length;
    } else {
        d->framing = FICUS_UPC_FRAMING_CLOSE;
        d->keepalive = 0;
    }
    return 0;
}

static int append_body(h2o_buffer_t **out, const char *src, size_t n)
{
    if (n == 0)
        return 0;
    h2o_iovec_t buf = h2o_buffer_reserve(out, n);
    if (buf.base == NULL)
        return -1;
    memcpy(buf.base, src, n);
    (*out)->size += n;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static ssize_t decode_chunked(ficus_upc_decoder_t *d, const char *src, size_t n, h2o_buffer_t **out)
{
    size_t off = 0;
    while (off != n && d->chunk_state != CH_DONE) {
        size_t avail = n - off;
        switch (d->chunk_state) {
        case CH_SIZE:
        case CH_TRAILER: {
            const char *p = src + off, *lf = memchr(p, '\n', avail < FICUS_UPC_MAX_CHUNK_LINE ? avail : FICUS_UPC_MAX_CHUNK_LINE);
            if (lf == NULL)
                return avail >= FICUS_UPC_MAX_CHUNK_LINE ? -1 : (ssize_t)off;
            if (lf == p || lf[-1] != '\r')
                return -1;
            const char *eol = lf - 1;
            off = lf + 1 - src;
            if (d->chunk_state == CH_TRAILER) {
                if ((d->trailer_bytes += eol - p + 2) > FICUS_UPC_MAX_TRAILER_BYTES)
                    return -1;
                if (eol == p)
                    d->chunk_state = CH_DONE;
                break; /* trailer fields are dropped */
            }
            uint64_t size = 0;
            size_t digits = 0;
            for (int d; p != eol && (d = hexval(*p)) >= 0; ++p) {
                if (++digits > 15)
                    return -1;
                size = size * 16 + d;
            }
            if (digits == 0)
                return -1;
            while (p != eol && (*p == ' ' || *p == '\t'))
                ++p;
            if (p != eol) { /* chunk extensions: ignored */
                if (*p != ';')
                    return -1;
                for (; p != eol; ++p)
                    if (!is_text(*p))
                        return -1;
            }
            if (size == 0) {
                d->chunk_state = CH_TRAILER;
            } else {
                d->remaining = size;
                d->chunk_state = CH_DATA;
            }
        } break;
        case CH_DATA: {
            size_t take = avail < d->remaining ? avail : (size_t)d->remaining;
            if (append_body(out, src + off, take) != 0)
                return -1;
            off += take;
            if ((d->remaining -= take) == 0)
                d->chunk_state = CH_DATA_END;
        } break;
        case CH_DATA_END:
            if (src[off] != '\r' || (avail >= 2 && src[off + 1] != '\n'))
                return -1;
            if (avail < 2)
                return off;
            off += 2;
            d->chunk_state = CH_SIZE;
            break;
        }
    }
    return off;
}

ssize_t ficus_upc_decode(ficus_upc_decoder_t *d, const char *src, size_t n, h2o_buffer_t **out)
{
    size_t take;
    switch (d->framing) {
    case FICUS_UPC_FRAMING_LENGTH:
        take = n < d->remaining ? n : (size_t)d->remaining;
        d->remaining -= take;
        break;
    case FICUS_UPC_FRAMING_CLOSE:
        take = n;
        break;
    case FICUS_UPC_FRAMING_CHUNKED:
        return decode_chunked(d, src, n, out);
    default:
        return 0;
    }
    return append_body(out, src, take) == 0 ? (ssize_t)take : -1;
}

int ficus_upc_decoder_complete(const ficus_upc_decoder_t *d)
{
    switch (d->framing) {
    case FICUS_UPC_FRAMING_NONE:
        return 1;
    case FICUS_UPC_FRAMING_LENGTH:
        return d->remaining == 0;
    case FICUS_UPC_FRAMING_CHUNKED:
        return d->chunk_state == CH_DONE;
    default:
        return 0;
    }
}
