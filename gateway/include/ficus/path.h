/* The canonical request target: one path for route matching, every plugin, redirects and the upstream request.
 *
 * CONTRACT (ficus_path_canonicalize, on the path without its query):
 *   - it must start with '/';
 *   - a percent-encoded unreserved character (ALPHA DIGIT - . _ ~) is decoded ("%7e" → "~", "%2E" → "."); every other
 *     escape is kept with uppercase hex ("%3b" → "%3B"); a '%' not followed by two hex digits is refused;
 *   - bytes that may not appear raw in a path (non-ASCII, " < > [ ] ^ ` { | }) are percent-encoded;
 *   - refused: whitespace and control characters, raw or encoded (SP, HTAB, CR, LF, NUL, %20, %09, %00, DEL ...); a
 *     '#' (a fragment is never sent); a ';' (path parameters, which servlet containers and others strip);
 *   - encoded slashes %2F and backslashes %5C, and a raw '\': per `escaped_slashes`: reject (default), decode (become
 *     a real '/' before the steps below) or keep (forwarded as "%2F" / "%5C", never a separator);
 *   - slashes are merged ("//a///b" → "/a/b") when `merge_slashes` (default);
 *   - dot segments ("." and "..", also encoded) are resolved as RFC 3986 5.2.4 does, never above the root.
 * The result is idempotent: canonicalizing it again changes nothing. The query (after '?') is not rewritten, but it
 * is refused when it holds whitespace, a control character or a '#'.
 * PURE: no allocation, no global state; unit-tested and fuzzed (tests/fuzz/fuzz_path.c). */
#ifndef ficus__path_h
#define ficus__path_h

#include <stddef.h>

typedef enum enum_ficus_escaped_slashes_t {
    FICUS_ESCAPED_SLASHES_REJECT = 0,
    FICUS_ESCAPED_SLASHES_DECODE,
    FICUS_ESCAPED_SLASHES_KEEP,
} ficus_escaped_slashes_t;

typedef struct st_ficus_path_conf_t {
    int merge_slashes;                       /* default 1 */
    ficus_escaped_slashes_t escaped_slashes; /* default reject */
} ficus_path_conf_t;

#define FICUS_PATH_CONF_DEFAULT                                                                                                    \
    {                                                                                                                              \
        1, FICUS_ESCAPED_SLASHES_REJECT                                                                                            \
    }

typedef enum enum_ficus_path_error_t {
    FICUS_PATH_OK = 0,
    FICUS_PATH_ERR_NOT_ABSOLUTE,  /* empty, or not starting with '/' */
    FICUS_PATH_ERR_BAD_ESCAPE,    /* '%' without two hex digits */
    FICUS_PATH_ERR_ESCAPED_SLASH, /* %2F, %5C or '\' with escaped_slashes: reject */
    FICUS_PATH_ERR_CHARACTER,     /* whitespace or a control character, raw or encoded */
    FICUS_PATH_ERR_FRAGMENT,      /* '#' */
    FICUS_PATH_ERR_PARAMETER,     /* ';' */
} ficus_path_error_t;

/** The output buffer ficus_path_canonicalize needs for an input of `len` bytes. */
#define FICUS_PATH_CANONICAL_CAP(len) (3 * (len) + 2)

/**
 * Canonicalizes `path` (`len` bytes, no query) into out (at least FICUS_PATH_CANONICAL_CAP(len) bytes, not
 * NUL-terminated) and sets *outlen. Returns FICUS_PATH_OK, or the reason the path is refused (out is then undefined).
 */
ficus_path_error_t ficus_path_canonicalize(const ficus_path_conf_t *conf, const char *path, size_t len, char *out, size_t *outlen);
/** Checks a query string (the bytes after '?'): FICUS_PATH_OK, FICUS_PATH_ERR_CHARACTER or FICUS_PATH_ERR_FRAGMENT. */
ficus_path_error_t ficus_path_check_query(const char *query, size_t len);
/** The JSON error code of a refusal ("bad_path", "bad_path_escaped_slash", ...). */
const char *ficus_path_error_code(ficus_path_error_t err);

/**
 * Whether `authority` (a Host header or :authority) is a valid RFC 3986 authority ficus accepts: host [":" port],
 * host an IP-literal ("[v6]"), an IPv4 address or a reg-name of unreserved characters, pct-encodings and the
 * sub-delims except ',' and ';' (they would split list-valued headers such as X-Forwarded-Host); port 1-5 digits
 * up to 65535. Refused: empty, userinfo ('@'), whitespace, controls, '/', '?', '#', '\', more than 255 bytes.
 */
int ficus_authority_is_valid(const char *authority, size_t len);

#endif
