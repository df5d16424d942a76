/* Not klib's khash: declarations only, so that Debian's <h2o/http2_internal.h> (which includes "khash.h" but whose
 * package does not ship it) compiles. ficus reads a few fields of H2O's HTTP/2 connection (gateway/client_conn.c,
 * gateway/h2_stream_error.c) and never touches its stream table, so the table stays an opaque pointer: the struct
 * layout is unchanged. h2o_http2_conn_get_stream() (an inline function of that header, built on the table) would
 * find nothing and must not be called. */
#ifndef ficus__khash_shim_h
#define ficus__khash_shim_h

#include <stddef.h>

typedef unsigned ficus_khint_t;
typedef ficus_khint_t khiter_t;
#define khash_t(name) struct ficus_kh_##name##_s
#define KHASH_MAP_INIT_INT64(name, type) struct ficus_kh_##name##_s;
#define kh_get(name, h, k) ((void)(h), (void)(k), (khiter_t)0)
#define kh_end(h) ((void)(h), (khiter_t)0)
#define kh_val(h, x) ((void)(h), (void)(x), NULL)

#endif
