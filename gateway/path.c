/* The canonical request path and authority checks (see ficus/path.h for the contract).
 *
 * OWNS: turning the path a client sent into the one path ficus routes, hands to plugins and forwards, and deciding
 * what cannot be made unambiguous (refused with 400). Two passes over at most 3x the input: (1) validate and
 * normalise escapes into `out` — afterwards every '/' in `out` is a real separator (a kept %2F stays three bytes);
 * (2) merge slashes and resolve dot segments in place (the result is never longer than pass 1's). */
#include <string.h>
#include "ficus/path.h"

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

/* may appear raw in a canonical path besides unreserved characters and '/': sub-delims (';' is refused earlier),
 * ':' and '@' (RFC 3986 pchar) */
static int is_pchar_extra(unsigned char c)
{
    return c != '\0' && strchr("!$&'()*+,=:@", c) != NULL;
}

static int is_ctl_or_space(unsigned char c)
{
    return c <= 0x20 || c == 0x7f;
}

static size_t put_escape(char *out, size_t n, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    out[n++] = '%';
    out[n++] = hex[c >> 4];
    out[n++] = hex[c & 15];
    return n;
}

/* pass 1: escapes and characters; returns FICUS_PATH_OK with *outlen set */
static ficus_path_error_t normalise_chars(const ficus_path_conf_t *conf, const unsigned char *in, size_t len, char *out,
                                          size_t *outlen)
{
    size_t n = 0;
    for (size_t i = 0; i != len; ++i) {
        unsigned char c = in[i];
        int slash_like = 0; /* an encoded '/' or '\', or a raw '\' */
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= len || (hi = hexval(in[i + 1])) < 0 || (lo = hexval(in[i + 2])) < 0)
                return FICUS_PATH_ERR_BAD_ESCAPE;
            i += 2;
            unsigned char v = (unsigned char)(hi << 4 | lo);
            if (is_unreserved(v)) {
                out[n++] = (char)v;
                continue;
            }
            if (is_ctl_or_space(v))
                return FICUS_PATH_ERR_CHARACTER;
            if (v != '/' && v != '\\') {
                n = put_escape(out, n, v);
                continue;
            }
            c = v;
            slash_like = 1;
        } else if (c == '\\') {
            slash_like = 1;
        } else if (is_ctl_or_space(c)) {
            return FICUS_PATH_ERR_CHARACTER;
        } else if (c == '#') {
            return FICUS_PATH_ERR_FRAGMENT;
        } else if (c == ';') {
            return FICUS_PATH_ERR_PARAMETER;
        }
        if (slash_like) {
            switch (conf->escaped_slashes) {
            case FICUS_ESCAPED_SLASHES_REJECT:
                return FICUS_PATH_ERR_ESCAPED_SLASH;
            case FICUS_ESCAPED_SLASHES_DECODE:
                out[n++] = '/';
                break;
            case FICUS_ESCAPED_SLASHES_KEEP:
                n = put_escape(out, n, c);
                break;
            }
            continue;
        }
        if (c == '/' || is_unreserved(c) || is_pchar_extra(c))
            out[n++] = (char)c;
        else
            n = put_escape(out, n, c); /* non-ASCII, " < > [ ] ^ ` { | } and the like */
    }
    *outlen = n;
    return FICUS_PATH_OK;
}

/* pass 2, in place: buf[0] == '/'; every '/' is a separator */
static size_t resolve_segments(int merge_slashes, char *buf, size_t len)
{
    size_t w = 0, r = 1; /* output length; read position (after a '/') */
    for (;;) {
        const char *slash = memchr(buf + r, '/', len - r);
        size_t end = slash != NULL ? (size_t)(slash - buf) : len, seglen = end - r;
        int last = slash == NULL;
        if (seglen == 1 && buf[r] == '.') {
            if (last)
                buf[w++] = '/';
        } else if (seglen == 2 && buf[r] == '.' && buf[r + 1] == '.') {
            while (w != 0 && buf[--w] != '/') /* drop the last "/segment"; never above the root */
                ;
            if (last)
                buf[w++] = '/';
        } else if (seglen == 0 && merge_slashes && !last) {
            /* an empty segment from "//": merged */
        } else {
            buf[w++] = '/';
            memmove(buf + w, buf + r, seglen);
            w += seglen;
        }
        if (last)
            break;
        r = end + 1;
    }
    if (w == 0)
        buf[w++] = '/';
    return w;
}

ficus_path_error_t ficus_path_canonicalize(const ficus_path_conf_t *conf, const char *path, size_t len, char *out, size_t *outlen)
{
    if (len == 0 || path[0] != '/')
        return FICUS_PATH_ERR_NOT_ABSOLUTE;
    size_t n;
    ficus_path_error_t err = normalise_chars(conf, (const unsigned char *)path, len, out, &n);
    if (err != FICUS_PATH_OK)
        return err;
    if (n == 0 || out[0] != '/') /* "%2F..." kept: not a separator, so not absolute */
        return FICUS_PATH_ERR_NOT_ABSOLUTE;
    *outlen = resolve_segments(conf->merge_slashes, out, n);
    return FICUS_PATH_OK;
}

ficus_path_error_t ficus_path_check_query(const char *query, size_t len)
{
    for (size_t i = 0; i != len; ++i) {
        unsigned char c = (unsigned char)query[i];
        if (is_ctl_or_space(c))
            return FICUS_PATH_ERR_CHARACTER;
        if (c == '#')
            return FICUS_PATH_ERR_FRAGMENT;
    }
    return FICUS_PATH_OK;
}

const char *ficus_path_error_code(ficus_path_error_t err)
{
    switch (err) {
    case FICUS_PATH_OK:
        return "ok";
    case FICUS_PATH_ERR_NOT_ABSOLUTE:
        return "bad_path";
    case FICUS_PATH_ERR_BAD_ESCAPE:
        return "bad_path_encoding";
    case FICUS_PATH_ERR_ESCAPED_SLASH:
        return "bad_path_escaped_slash";
    case FICUS_PATH_ERR_CHARACTER:
        return "bad_path_character";
    case FICUS_PATH_ERR_FRAGMENT:
        return "bad_path_fragment";
    case FICUS_PATH_ERR_PARAMETER:
        return "bad_path_parameter";
    }
    return "bad_path";
}

/* ---- authority ---- */

static int is_host_char(unsigned char c)
{
    return is_unreserved(c) || (c != '\0' && strchr("!$&'()*+=", c) != NULL);
}

int ficus_authority_is_valid(const char *authority, size_t len)
{
    const unsigned char *s = (const unsigned char *)authority;
    size_t i = 0;
    if (len == 0 || len > 255)
        return 0;
    if (s[0] == '[') {
        for (i = 1; i != len && s[i] != ']'; ++i)
            if (!(hexval(s[i]) >= 0 || s[i] == ':' || s[i] == '.' || (s[i] | 0x20) == 'v'))
                return 0;
        if (i == len || i == 1)
            return 0;
        ++i; /* ']' */
    } else {
        for (; i != len && s[i] != ':'; ++i) {
            if (s[i] == '%') {
                if (i + 2 >= len || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
                    return 0;
                i += 2;
            } else if (!is_host_char(s[i])) {
                return 0;
            }
        }
        if (i == 0)
            return 0;
    }
    if (i == len)
        return 1;
    if (s[i] != ':' || i + 1 == len || len - i - 1 > 5)
        return 0;
    unsigned long port = 0;
    for (++i; i != len; ++i) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        port = port * 10 + (s[i] - '0');
    }
    return port <= 65535;
}
