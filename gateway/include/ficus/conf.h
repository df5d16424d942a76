/* The YAML node tree and the helpers every config section (core or plugin) validates itself with.
 *
 * DESIGN: libyaml events are turned into a small tree where every node remembers file:line:column, so that any
 * later check (in config.c or a plugin's on_config) can report `file:line: what is wrong`. Validation helpers are
 * strict: unknown keys, duplicate keys, wrong node types and malformed scalars are errors, never defaults.
 * BOUNDS: a file is at most FICUS_CONF_MAX_FILE_BYTES, nesting at most FICUS_CONF_MAX_DEPTH, at most
 * FICUS_CONF_MAX_NODES nodes; YAML aliases/anchors and merge keys are refused (they hide where a value came from).
 * OWNERSHIP: a tree is malloc'd by ficus_conf_load_* and freed with ficus_node_free; strings returned by
 * ficus_conf_string are malloc'd copies owned by the caller. */
#ifndef ficus__conf_h
#define ficus__conf_h

#include <stddef.h>
#include <stdint.h>

#define FICUS_CONF_MAX_FILE_BYTES (4 * 1024 * 1024)
#define FICUS_CONF_MAX_DEPTH 64
#define FICUS_CONF_MAX_NODES 1000000

typedef enum enum_ficus_node_type_t {
    FICUS_NODE_SCALAR = 0,
    FICUS_NODE_SEQUENCE,
    FICUS_NODE_MAPPING,
} ficus_node_type_t;

typedef struct st_ficus_node_t ficus_node_t;
struct st_ficus_node_t {
    ficus_node_type_t type;
    const char *filename; /* shared by all nodes of a tree; owned by the root */
    unsigned line;        /* 1-based */
    unsigned column;      /* 1-based */
    union {
        struct {
            char *value; /* NUL-terminated */
            size_t len;
            int is_quoted; /* "..." or '...': never a null / bool / number */
        } scalar;
        struct {
            ficus_node_t **elements;
            size_t size;
        } sequence;
        struct {
            ficus_node_t **keys; /* always scalars */
            ficus_node_t **values;
            size_t size;
        } mapping;
    } data;
};

/* The state of one load/validation pass. The first error is kept (later ones are dropped). */
typedef struct st_ficus_conf_ctx_t {
    const char *filename;
    struct st_ficus_config_t *config; /* the generation being built (NULL outside config loading) */
    int dry_run;                      /* `ficus -t`: plugins must not start anything with side effects */
    char error[1024];                 /* "file:line: message" of the first error, "" when none */
} ficus_conf_ctx_t;

/** Parses a YAML file. Returns the root node, or NULL with "file:line: ..." (or "file: ...") written to err. */
ficus_node_t *ficus_conf_load_file(const char *path, char *err, size_t errlen);
/** Same from memory; `name` is used as the filename in nodes and errors. */
ficus_node_t *ficus_conf_load_string(const char *name, const char *text, size_t len, char *err, size_t errlen);
/** Frees a tree returned by ficus_conf_load_*. NULL is fine. */
void ficus_node_free(ficus_node_t *root);

/** Records "file:line: <fmt...>" as the error of cc (if none yet) and returns -1. */
int ficus_conf_error(ficus_conf_ctx_t *cc, const ficus_node_t *node, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** Returns the value of `key` in a mapping node, or NULL (also when node is not a mapping). */
ficus_node_t *ficus_node_get(const ficus_node_t *mapping, const char *key);
/** A printable name of a node type: "scalar", "sequence", "mapping". */
const char *ficus_node_type_name(ficus_node_type_t type);

/**
 * Validates a mapping in one call, H2O-configurator style. `required` and `optional` are comma-separated lists of
 * `key:T` where T is s (scalar), a (sequence), m (mapping) or * (any). For each key of both lists, in order, one
 * `ficus_node_t **` out-argument follows (set to NULL when an optional key is absent). Errors (returning -1):
 * node not a mapping, unknown key (the message lists the allowed keys), duplicate key, missing required key,
 * wrong type.
 *   ficus_conf_mapping(cc, node, "endpoints:a", "connect_timeout:s,timeout:s", &eps, &ct, &t);
 */
int ficus_conf_mapping(ficus_conf_ctx_t *cc, const ficus_node_t *node, const char *required, const char *optional, ...);

/** Expects a node of `type`; else records "expected a <type>, got a <actual>" and returns -1. */
int ficus_conf_expect(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_node_type_t type);

/* Scalar conversions: each returns 0, or -1 with an error naming the node's line and what was expected. */
/** malloc'd copy of a scalar (empty string allowed). */
int ficus_conf_string(ficus_conf_ctx_t *cc, const ficus_node_t *node, char **out);
/** true/false/yes/no/on/off (case-insensitive, unquoted). */
int ficus_conf_bool(ficus_conf_ctx_t *cc, const ficus_node_t *node, int *out);
/** A decimal unsigned integer within [min, max]. */
int ficus_conf_uint(ficus_conf_ctx_t *cc, const ficus_node_t *node, uint64_t min, uint64_t max, uint64_t *out);
/** A duration ("250ms", "5s", "10m", "1h", "1d", "0"), in milliseconds, within [min_ms, max_ms]. */
int ficus_conf_duration(ficus_conf_ctx_t *cc, const ficus_node_t *node, uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms);
/** A size ("512", "512B", "16KiB", "10MiB", "1GiB"; also KB/MB/GB as powers of 1000), in bytes, within [min, max]. */
int ficus_conf_size(ficus_conf_ctx_t *cc, const ficus_node_t *node, uint64_t min, uint64_t max, uint64_t *out);
/** One of a NULL-terminated list of words (case-sensitive); *out is its index. The error lists the choices. */
int ficus_conf_enum(ficus_conf_ctx_t *cc, const ficus_node_t *node, const char *const *choices, int *out);

/* Files named by a scalar node (gateway/conf_file.c), read while the configuration loads.
 * read_file: the whole file (at most max bytes), NUL-terminated in *out (malloc'd; the caller frees it, wiping it when
 * it may hold a secret). Errors: "cannot open WHAT 'PATH': ...", "WHAT 'PATH' is larger than MAX bytes".
 * read_secret: one line of at most FICUS_CONF_SECRET_MAX bytes, trailing whitespace (the newline) not included;
 * an empty file, more than one line or a NUL byte is an error. */
#define FICUS_CONF_SECRET_MAX 1023
int ficus_conf_read_file(ficus_conf_ctx_t *cc, const ficus_node_t *node, const char *what, size_t max, char **out, size_t *len);
int ficus_conf_read_secret(ficus_conf_ctx_t *cc, const ficus_node_t *node, const char *what, char **out);

/* Pure parsers (no node, no error text) for reuse and unit tests: 0 on success, -1 on malformed/overflow. */
int ficus_parse_duration(const char *s, size_t len, uint64_t *out_ms);
int ficus_parse_size(const char *s, size_t len, uint64_t *out_bytes);

#endif
