/* The YAML node tree and the config validation helpers declared in ficus/conf.h.
 *
 * OWNS: turning a YAML file (or string) into a ficus_node_t tree via libyaml's event API, freeing that tree, and
 * the helpers that check a node (mapping shape, scalar conversions) and record "file:line: message" errors.
 * BOUNDS: input size, nesting depth and node count are checked while building (see conf.h); the only recursion
 * (freeing) is therefore bounded by FICUS_CONF_MAX_DEPTH. Anchors, aliases, merge keys and tags are refused.
 * THREADS: none of this is used outside the control thread; nothing here keeps global state. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "ficus/conf.h"

/* ------------------------------------------------------------------------------------------------------------ */
/* Tree building                                                                                                 */

typedef struct st_frame_t {
    ficus_node_t *node; /* an open sequence or mapping */
    size_t capacity;    /* of its element (or key/value) arrays */
    int have_key;       /* mapping only: the last key still waits for its value */
} frame_t;

typedef struct st_builder_t {
    const char *filename; /* owned by the root once there is one */
    const unsigned char *text;
    size_t len;
    char *err;
    size_t errlen;
    ficus_node_t *root;
    frame_t stack[FICUS_CONF_MAX_DEPTH];
    size_t depth;
    size_t nodes;
    int documents;
} builder_t;

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void free_tree(ficus_node_t *node)
{
    if (node == NULL)
        return;
    size_t i;
    switch (node->type) {
    case FICUS_NODE_SCALAR:
        free(node->data.scalar.value);
        break;
    case FICUS_NODE_SEQUENCE:
        for (i = 0; i != node->data.sequence.size; ++i)
            free_tree(node->data.sequence.elements[i]);
        free(node->data.sequence.elements);
        break;
    case FICUS_NODE_MAPPING:
        for (i = 0; i != node->data.mapping.size; ++i) {
            free_tree(node->data.mapping.keys[i]);
            free_tree(node->data.mapping.values[i]); /* NULL while a key waits for its value */
        }
        free(node->data.mapping.keys);
        free(node->data.mapping.values);
        break;
    }
    free(node);
}

void ficus_node_free(ficus_node_t *root)
{
    if (root == NULL)
        return;
    char *filename = (char *)root->filename;
    free_tree(root);
    free(filename);
}

static int grow(void **array, size_t *capacity, size_t size, size_t elem)
{
    if (size < *capacity)
        return 0;
    size_t newcap = *capacity == 0 ? 4 : *capacity * 2;
    void *p = realloc(*array, newcap * elem);
    if (p == NULL)
        return -1;
    *array = p;
    *capacity = newcap;
    return 0;
}

/* Creates a node at `mark` and counts it; NULL (with err set) at the node limit or when out of memory. */
static ficus_node_t *new_node(builder_t *b, ficus_node_type_t type, yaml_mark_t mark)
{
    if (b->nodes >= FICUS_CONF_MAX_NODES) {
        set_err(b->err, b->errlen, "%s:%zu: too many YAML nodes (at most %d)", b->filename, mark.line + 1, FICUS_CONF_MAX_NODES);
        return NULL;
    }
    ficus_node_t *node = calloc(1, sizeof(*node));
    if (node == NULL) {
        set_err(b->err, b->errlen, "%s: out of memory", b->filename);
        return NULL;
    }
    ++b->nodes;
    node->type = type;
    node->filename = b->filename;
    node->line = mark.line >= UINT_MAX ? UINT_MAX : (unsigned)mark.line + 1;
    node->column = mark.column >= UINT_MAX ? UINT_MAX : (unsigned)mark.column + 1;
    return node;
}

/* Attaches `node` to the open container (or makes it the root). On failure the node is freed and err is set. */
static int attach(builder_t *b, ficus_node_t *node)
{
    if (b->depth == 0) {
        if (b->root != NULL) { /* cannot happen within one document; be safe */
            set_err(b->err, b->errlen, "%s:%u: unexpected second root node", b->filename, node->line);
            free_tree(node);
            return -1;
        }
        b->root = node;
        return 0;
    }
    frame_t *f = &b->stack[b->depth - 1];
    ficus_node_t *parent = f->node;
    if (parent->type == FICUS_NODE_SEQUENCE) {
        if (grow((void **)&parent->data.sequence.elements, &f->capacity, parent->data.sequence.size, sizeof(ficus_node_t *)) != 0)
            goto NoMemory;
        parent->data.sequence.elements[parent->data.sequence.size++] = node;
        return 0;
    }
    /* mapping */
    if (f->have_key) {
        parent->data.mapping.values[parent->data.mapping.size - 1] = node;
        f->have_key = 0;
        return 0;
    }
    if (node->type != FICUS_NODE_SCALAR) {
        set_err(b->err, b->errlen, "%s:%u: mapping keys must be scalars, got a %s", b->filename, node->line,
                ficus_node_type_name(node->type));
        free_tree(node);
        return -1;
    }
    if (!node->data.scalar.is_quoted && strcmp(node->data.scalar.value, "<<") == 0) {
        set_err(b->err, b->errlen, "%s:%u: YAML merge keys ('<<') are not supported", b->filename, node->line);
        free_tree(node);
        return -1;
    }
    size_t cap = f->capacity;
    if (grow((void **)&parent->data.mapping.keys, &cap, parent->data.mapping.size, sizeof(ficus_node_t *)) != 0)
        goto NoMemory;
    cap = f->capacity;
    if (grow((void **)&parent->data.mapping.values, &cap, parent->data.mapping.size, sizeof(ficus_node_t *)) != 0)
        goto NoMemory;
    f->capacity = cap;
    parent->data.mapping.keys[parent->data.mapping.size] = node;
    parent->data.mapping.values[parent->data.mapping.size] = NULL;
    ++parent->data.mapping.size;
    f->have_key = 1;
    return 0;

NoMemory:
    set_err(b->err, b->errlen, "%s: out of memory", b->filename);
    free_tree(node);
    return -1;
}

static int refuse_anchor(builder_t *b, const yaml_char_t *anchor, yaml_mark_t mark)
{
    if (anchor == NULL)
        return 0;
    set_err(b->err, b->errlen, "%s:%zu: YAML aliases/anchors are not supported", b->filename, mark.line + 1);
    return -1;
}

static int refuse_tag(builder_t *b, const yaml_char_t *tag, yaml_mark_t mark)
{
    if (tag == NULL)
        return 0;
    set_err(b->err, b->errlen, "%s:%zu: YAML tags are not supported (got '%.64s')", b->filename, mark.line + 1, (const char *)tag);
    return -1;
}

static void syntax_error(builder_t *b, yaml_parser_t *parser)
{
    const char *problem = parser->problem != NULL ? parser->problem : "unknown error";
    if (parser->error == YAML_MEMORY_ERROR) {
        set_err(b->err, b->errlen, "%s: out of memory while parsing YAML", b->filename);
    } else if (parser->error == YAML_READER_ERROR) {
        /* the reader reports a byte offset, not a mark */
        size_t line = 1, i, end = parser->problem_offset < b->len ? parser->problem_offset : b->len;
        for (i = 0; i != end; ++i)
            if (b->text[i] == '\n')
                ++line;
        set_err(b->err, b->errlen, "%s:%zu: YAML syntax error: %s", b->filename, line, problem);
    } else if (parser->context == NULL) {
        set_err(b->err, b->errlen, "%s:%zu: YAML syntax error: %s", b->filename, parser->problem_mark.line + 1, problem);
    } else if (parser->context_mark.line != parser->problem_mark.line) {
        set_err(b->err, b->errlen, "%s:%zu: YAML syntax error: %s (%s at line %zu)", b->filename, parser->problem_mark.line + 1,
                problem, parser->context, parser->context_mark.line + 1);
    } else {
        set_err(b->err, b->errlen, "%s:%zu: YAML syntax error: %s (%s)", b->filename, parser->problem_mark.line + 1, problem,
                parser->context);
    }
}

/* Handles one event; returns 1 at the end of the stream, 0 to continue, -1 on error (err set). */
static int on_event(builder_t *b, yaml_event_t *ev)
{
    ficus_node_t *node;
    switch (ev->type) {
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
    case YAML_NO_EVENT:
        return 0;
    case YAML_STREAM_END_EVENT:
        return 1;
    case YAML_DOCUMENT_START_EVENT:
        if (b->documents++ != 0) {
            set_err(b->err, b->errlen, "%s:%zu: multiple YAML documents are not supported", b->filename, ev->start_mark.line + 1);
            return -1;
        }
        return 0;
    case YAML_ALIAS_EVENT:
        set_err(b->err, b->errlen, "%s:%zu: YAML aliases/anchors are not supported", b->filename, ev->start_mark.line + 1);
        return -1;
    case YAML_SCALAR_EVENT:
        if (refuse_anchor(b, ev->data.scalar.anchor, ev->start_mark) != 0 ||
            refuse_tag(b, ev->data.scalar.tag, ev->start_mark) != 0)
            return -1;
        if ((node = new_node(b, FICUS_NODE_SCALAR, ev->start_mark)) == NULL)
            return -1;
        if ((node->data.scalar.value = malloc(ev->data.scalar.length + 1)) == NULL) {
            free_tree(node);
            set_err(b->err, b->errlen, "%s: out of memory", b->filename);
            return -1;
        }
        memcpy(node->data.scalar.value, ev->data.scalar.value, ev->data.scalar.length);
        node->data.scalar.value[ev->data.scalar.length] = '\0';
        node->data.scalar.len = ev->data.scalar.length;
        node->data.scalar.is_quoted =
            ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE || ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        return attach(b, node);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int is_seq = ev->type == YAML_SEQUENCE_START_EVENT;
        if (refuse_anchor(b, is_seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor, ev->start_mark) != 0 ||
            refuse_tag(b, is_seq ? ev->data.sequence_start.tag : ev->data.mapping_start.tag, ev->start_mark) != 0)
            return -1;
        if (b->depth >= FICUS_CONF_MAX_DEPTH) {
            set_err(b->err, b->errlen, "%s:%zu: YAML nesting is deeper than %d levels", b->filename, ev->start_mark.line + 1,
                    FICUS_CONF_MAX_DEPTH);
            return -1;
        }
        if ((node = new_node(b, is_seq ? FICUS_NODE_SEQUENCE : FICUS_NODE_MAPPING, ev->start_mark)) == NULL)
            return -1;
        if (attach(b, node) != 0)
            return -1;
        b->stack[b->depth++] = (frame_t){node, 0, 0};
        return 0;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (b->depth == 0) { /* libyaml guarantees balance; be safe */
            set_err(b->err, b->errlen, "%s:%zu: unbalanced YAML collection", b->filename, ev->start_mark.line + 1);
            return -1;
        }
        --b->depth;
        return 0;
    }
    return 0;
}

ficus_node_t *ficus_conf_load_string(const char *name, const char *text, size_t len, char *err, size_t errlen)
{
    if (name == NULL)
        name = "(string)";
    set_err(err, errlen, "%s", "");
    if (len > FICUS_CONF_MAX_FILE_BYTES) {
        set_err(err, errlen, "%s: configuration is too large (%zu bytes, at most %d)", name, len, FICUS_CONF_MAX_FILE_BYTES);
        return NULL;
    }
    builder_t b = {.text = (const unsigned char *)text, .len = len, .err = err, .errlen = errlen};
    char *filename = strdup(name);
    if (filename == NULL) {
        set_err(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    b.filename = filename;

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        set_err(err, errlen, "%s: out of memory", name);
        free(filename);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text != NULL ? text : ""), text != NULL ? len : 0);

    int rc;
    do {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            syntax_error(&b, &parser);
            rc = -1;
            break;
        }
        rc = on_event(&b, &ev);
        yaml_event_delete(&ev);
    } while (rc == 0);
    yaml_parser_delete(&parser);

    if (rc == 1) {
        if (b.root == NULL ||
            (b.root->type == FICUS_NODE_SCALAR && !b.root->data.scalar.is_quoted && b.root->data.scalar.len == 0)) {
            set_err(err, errlen, "%s: empty configuration", name);
            rc = -1;
        }
    }
    if (rc != 1) {
        free_tree(b.root);
        free(filename);
        return NULL;
    }
    return b.root; /* now owns filename */
}

ficus_node_t *ficus_conf_load_file(const char *path, char *err, size_t errlen)
{
    set_err(err, errlen, "%s", "");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        set_err(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st.st_size > FICUS_CONF_MAX_FILE_BYTES) {
        set_err(err, errlen, "%s: file is too large (%lld bytes, at most %d)", path, (long long)st.st_size,
                FICUS_CONF_MAX_FILE_BYTES);
        close(fd);
        return NULL;
    }
    /* read at most MAX+1 bytes: the file may grow between fstat and read */
    char *buf = malloc((size_t)FICUS_CONF_MAX_FILE_BYTES + 1);
    if (buf == NULL) {
        set_err(err, errlen, "%s: out of memory", path);
        close(fd);
        return NULL;
    }
    size_t len = 0;
    while (len <= FICUS_CONF_MAX_FILE_BYTES) {
        ssize_t r = read(fd, buf + len, (size_t)FICUS_CONF_MAX_FILE_BYTES + 1 - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            set_err(err, errlen, "%s: read error: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return NULL;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (len > FICUS_CONF_MAX_FILE_BYTES) {
        set_err(err, errlen, "%s: file is too large (at most %d bytes)", path, FICUS_CONF_MAX_FILE_BYTES);
        free(buf);
        return NULL;
    }
    ficus_node_t *root = ficus_conf_load_string(path, buf, len, err, errlen);
    free(buf);
    return root;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Errors and lookups                                                                                            */

int ficus_conf_error(ficus_conf_ctx_t *cc, const ficus_node_t *node, const char *fmt, ...)
{
    if (cc->error[0] != '\0')
        return -1;
    int n;
    if (node != NULL)
        n = snprintf(cc->error, sizeof(cc->error), "%s:%u: ", node->filename, node->line);
    else
        n = snprintf(cc->error, sizeof(cc->error), "%s: ", cc->filename != NULL ? cc->filename : "(config)");
    if (n < 0)
        n = 0;
    if ((size_t)n < sizeof(cc->error)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cc->error + n, sizeof(cc->error) - (size_t)n, fmt, ap);
        va_end(ap);
    }
    if (cc->error[0] == '\0') /* keep "an error happened" even if formatting produced nothing */
        snprintf(cc->error, sizeof(cc->error), "%s", "configuration error");
    return -1;
}

ficus_node_t *ficus_node_get(const ficus_node_t *mapping, const char *key)
{
    if (mapping == NULL || mapping->type != FICUS_NODE_MAPPING)
        return NULL;
    size_t keylen = strlen(key), i;
    for (i = 0; i != mapping->data.mapping.size; ++i) {
        const ficus_node_t *k = mapping->data.mapping.keys[i];
        if (k->data.scalar.len == keylen && memcmp(k->data.scalar.value, key, keylen) == 0)
            return mapping->data.mapping.values[i];
    }
    return NULL;
}

const char *ficus_node_type_name(ficus_node_type_t type)
{
    switch (type) {
    case FICUS_NODE_SCALAR:
        return "scalar";
    case FICUS_NODE_SEQUENCE:
        return "sequence";
    case FICUS_NODE_MAPPING:
        return "mapping";
    }
    return "unknown node";
}

/* A printable, bounded rendering of a scalar for error messages (control characters become '?'). */
#define SHOW_MAX 64
static const char *show(const char *s, size_t len, char *buf, size_t size)
{
    size_t n = len, i, o = 0;
    int truncated = 0;
    if (n > SHOW_MAX) {
        n = SHOW_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) /* do not split a UTF-8 sequence */
            --n;
        truncated = 1;
    }
    for (i = 0; i != n && o + 4 < size; ++i) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (truncated && o + 4 <= size) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

int ficus_conf_expect(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_node_type_t type)
{
    if (node == NULL)
        return ficus_conf_error(cc, NULL, "expected a %s, got nothing", ficus_node_type_name(type));
    if (node->type != type)
        return ficus_conf_error(cc, node, "expected a %s, got a %s", ficus_node_type_name(type), ficus_node_type_name(node->type));
    return 0;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* ficus_conf_mapping                                                                                            */

#define MAPPING_MAX_KEYS 64

typedef struct st_key_spec_t {
    const char *name;
    size_t len;
    char type; /* 's', 'a', 'm' or '*' */
    int required;
    const ficus_node_t *key; /* the key node once seen */
    ficus_node_t **out;
} key_spec_t;

/* Parses "name:T,name:T" into specs; -1 when malformed or too many keys. */
static int parse_key_specs(const char *list, int required, key_spec_t *specs, size_t *n)
{
    if (list == NULL)
        return 0;
    const char *p = list;
    while (*p != '\0') {
        const char *comma = strchr(p, ','), *end = comma != NULL ? comma : p + strlen(p);
        const char *colon = memchr(p, ':', (size_t)(end - p));
        if (colon == NULL || colon == p || end - colon != 2 || *n >= MAPPING_MAX_KEYS)
            return -1;
        char t = colon[1];
        if (t != 's' && t != 'a' && t != 'm' && t != '*')
            return -1;
        specs[(*n)++] = (key_spec_t){p, (size_t)(colon - p), t, required, NULL, NULL};
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return 0;
}

static const char *spec_type_name(char t)
{
    switch (t) {
    case 's':
        return "scalar";
    case 'a':
        return "sequence";
    case 'm':
        return "mapping";
    }
    return "anything";
}

static int spec_type_matches(char t, ficus_node_type_t type)
{
    return t == '*' || (t == 's' && type == FICUS_NODE_SCALAR) || (t == 'a' && type == FICUS_NODE_SEQUENCE) ||
           (t == 'm' && type == FICUS_NODE_MAPPING);
}

int ficus_conf_mapping(ficus_conf_ctx_t *cc, const ficus_node_t *node, const char *required, const char *optional, ...)
{
    key_spec_t specs[MAPPING_MAX_KEYS];
    size_t nspecs = 0, i, j;

    if (parse_key_specs(required, 1, specs, &nspecs) != 0 || parse_key_specs(optional, 0, specs, &nspecs) != 0)
        return ficus_conf_error(cc, node, "internal error: malformed key list '%s' / '%s'", required ? required : "",
                                optional ? optional : "");
    va_list ap;
    va_start(ap, optional);
    for (i = 0; i != nspecs; ++i) {
        specs[i].out = va_arg(ap, ficus_node_t **);
        if (specs[i].out != NULL)
            *specs[i].out = NULL;
    }
    va_end(ap);

    if (ficus_conf_expect(cc, node, FICUS_NODE_MAPPING) != 0)
        return -1;

    char shown[SHOW_MAX + 8];
    for (i = 0; i != node->data.mapping.size; ++i) {
        const ficus_node_t *k = node->data.mapping.keys[i], *v = node->data.mapping.values[i];
        key_spec_t *spec = NULL;
        for (j = 0; j != nspecs; ++j) {
            if (specs[j].len == k->data.scalar.len && memcmp(specs[j].name, k->data.scalar.value, specs[j].len) == 0) {
                spec = &specs[j];
                break;
            }
        }
        if (spec == NULL) {
            char allowed[768];
            size_t o = 0;
            allowed[0] = '\0';
            for (j = 0; j != nspecs && o < sizeof(allowed); ++j) {
                int w = snprintf(allowed + o, sizeof(allowed) - o, "%s%.*s", j == 0 ? "" : ", ", (int)specs[j].len, specs[j].name);
                if (w < 0)
                    break;
                o += (size_t)w;
            }
            if (nspecs == 0)
                ficus_conf_error(cc, k, "unknown key '%s'; no keys are allowed here",
                                 show(k->data.scalar.value, k->data.scalar.len, shown, sizeof(shown)));
            else
                ficus_conf_error(cc, k, "unknown key '%s'; expected one of: %s",
                                 show(k->data.scalar.value, k->data.scalar.len, shown, sizeof(shown)), allowed);
            goto Error;
        }
        if (spec->key != NULL) {
            ficus_conf_error(cc, k, "duplicate key '%.*s' (first at line %u)", (int)spec->len, spec->name, spec->key->line);
            goto Error;
        }
        spec->key = k;
        if (!spec_type_matches(spec->type, v->type)) {
            ficus_conf_error(cc, v, "'%.*s' must be a %s, got a %s", (int)spec->len, spec->name, spec_type_name(spec->type),
                             ficus_node_type_name(v->type));
            goto Error;
        }
        if (spec->out != NULL)
            *spec->out = (ficus_node_t *)v;
    }
    for (i = 0; i != nspecs; ++i) {
        if (specs[i].required && specs[i].key == NULL) {
            ficus_conf_error(cc, node, "missing required key '%.*s'", (int)specs[i].len, specs[i].name);
            goto Error;
        }
    }
    return 0;

Error:
    for (i = 0; i != nspecs; ++i)
        if (specs[i].out != NULL)
            *specs[i].out = NULL;
    return -1;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Scalars                                                                                                       */

/* Expects a scalar without embedded NULs. */
static int get_scalar(ficus_conf_ctx_t *cc, const ficus_node_t *node)
{
    if (ficus_conf_expect(cc, node, FICUS_NODE_SCALAR) != 0)
        return -1;
    if (strlen(node->data.scalar.value) != node->data.scalar.len)
        return ficus_conf_error(cc, node, "value must not contain NUL characters");
    return 0;
}

#define SHOW(node, buf) show((node)->data.scalar.value, (node)->data.scalar.len, (buf), sizeof(buf))

int ficus_conf_string(ficus_conf_ctx_t *cc, const ficus_node_t *node, char **out)
{
    if (get_scalar(cc, node) != 0)
        return -1;
    char *s = malloc(node->data.scalar.len + 1);
    if (s == NULL)
        return ficus_conf_error(cc, node, "out of memory");
    memcpy(s, node->data.scalar.value, node->data.scalar.len + 1);
    *out = s;
    return 0;
}

int ficus_conf_bool(ficus_conf_ctx_t *cc, const ficus_node_t *node, int *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    char shown[SHOW_MAX + 8];
    size_t i;
    if (get_scalar(cc, node) != 0)
        return -1;
    if (!node->data.scalar.is_quoted) {
        for (i = 0; i != sizeof(yes) / sizeof(yes[0]); ++i) {
            if (strcasecmp(node->data.scalar.value, yes[i]) == 0) {
                *out = 1;
                return 0;
            }
            if (strcasecmp(node->data.scalar.value, no[i]) == 0) {
                *out = 0;
                return 0;
            }
        }
        return ficus_conf_error(cc, node, "expected a boolean (true/false, yes/no, on/off), got '%s'", SHOW(node, shown));
    }
    return ficus_conf_error(cc, node, "expected an unquoted boolean (true/false, yes/no, on/off), got quoted '%s'",
                            SHOW(node, shown));
}

/* Decimal digits [s, s+len) to *out: 0, -1 when not all digits (or empty), -2 on overflow. */
static int parse_digits(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;
    if (len == 0)
        return -1;
    for (i = 0; i != len; ++i)
        if (s[i] < '0' || s[i] > '9')
            return -1;
    for (i = 0; i != len; ++i) {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
            return -2;
    }
    *out = v;
    return 0;
}

int ficus_conf_uint(ficus_conf_ctx_t *cc, const ficus_node_t *node, uint64_t min, uint64_t max, uint64_t *out)
{
    char shown[SHOW_MAX + 8];
    uint64_t v = 0;
    if (get_scalar(cc, node) != 0)
        return -1;
    const char *s = node->data.scalar.value;
    size_t len = node->data.scalar.len;
    if (node->data.scalar.is_quoted)
        return ficus_conf_error(cc, node, "expected an unquoted decimal integer, got quoted '%s'", SHOW(node, shown));
    /* leading zeros are refused: YAML 1.1 reads them as octal, so "010" is ambiguous */
    int rc = len > 1 && s[0] == '0' ? -1 : parse_digits(s, len, &v);
    if (rc == -1)
        return ficus_conf_error(cc, node, "expected a decimal integer between %llu and %llu, got '%s'", (unsigned long long)min,
                                (unsigned long long)max, SHOW(node, shown));
    if (rc == -2 || v < min || v > max)
        return ficus_conf_error(cc, node, "must be between %llu and %llu (got %s)", (unsigned long long)min,
                                (unsigned long long)max, SHOW(node, shown));
    *out = v;
    return 0;
}

typedef struct st_unit_t {
    const char *name;
    uint64_t mult;
} unit_t;

static const unit_t duration_units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}, {NULL, 0}};
static const unit_t size_units[] = {{"", 1},
                                    {"B", 1},
                                    {"KiB", 1024},
                                    {"MiB", 1024 * 1024},
                                    {"GiB", 1024 * 1024 * 1024},
                                    {"KB", 1000},
                                    {"MB", 1000 * 1000},
                                    {"GB", 1000 * 1000 * 1000},
                                    {NULL, 0}};

/* "<digits><unit>": 0, -1 malformed, -2 overflow. A bare number is allowed only when the table has a "" unit, or
 * when `bare_zero` and the number is 0. */
static int parse_with_unit(const char *s, size_t len, const unit_t *units, int bare_zero, uint64_t *out)
{
    size_t ndigits = 0;
    while (ndigits != len && s[ndigits] >= '0' && s[ndigits] <= '9')
        ++ndigits;
    if (ndigits == 0)
        return -1;
    const char *unit = s + ndigits;
    size_t unitlen = len - ndigits;
    const unit_t *u;
    for (u = units; u->name != NULL; ++u)
        if (strlen(u->name) == unitlen && memcmp(u->name, unit, unitlen) == 0)
            break;
    int bare = unitlen == 0 && u->name == NULL;
    if (u->name == NULL && !(bare && bare_zero))
        return -1;
    uint64_t v;
    int rc = parse_digits(s, ndigits, &v);
    if (rc != 0)
        return rc;
    if (bare) {
        if (v != 0)
            return -1;
        *out = 0;
        return 0;
    }
    if (__builtin_mul_overflow(v, u->mult, &v))
        return -2;
    *out = v;
    return 0;
}

int ficus_parse_duration(const char *s, size_t len, uint64_t *out_ms)
{
    return parse_with_unit(s, len, duration_units, 1, out_ms) == 0 ? 0 : -1;
}

int ficus_parse_size(const char *s, size_t len, uint64_t *out_bytes)
{
    return parse_with_unit(s, len, size_units, 0, out_bytes) == 0 ? 0 : -1;
}

/* Renders v with the largest unit of `units` that divides it exactly (units ordered small to large). */
static const char *format_with_unit(uint64_t v, const unit_t *units, char *buf, size_t size)
{
    const unit_t *best = NULL, *u;
    for (u = units; u->name != NULL; ++u)
        if (u->mult != 0 && v % u->mult == 0 && (best == NULL || u->mult > best->mult))
            best = u;
    if (v == 0 || best == NULL)
        snprintf(buf, size, "%llu", (unsigned long long)v);
    else
        snprintf(buf, size, "%llu%s", (unsigned long long)(v / best->mult), best->name);
    return buf;
}

static const unit_t size_display_units[] = {{"", 1}, {"KiB", 1024}, {"MiB", 1024 * 1024}, {"GiB", 1024 * 1024 * 1024}, {NULL, 0}};

int ficus_conf_duration(ficus_conf_ctx_t *cc, const ficus_node_t *node, uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms)
{
    char shown[SHOW_MAX + 8], lo[32], hi[32];
    uint64_t v;
    if (get_scalar(cc, node) != 0)
        return -1;
    int rc = parse_with_unit(node->data.scalar.value, node->data.scalar.len, duration_units, 1, &v);
    if (rc == -1)
        return ficus_conf_error(cc, node, "invalid duration '%s' (use e.g. 250ms, 5s, 10m, 1h)", SHOW(node, shown));
    if (rc == -2 || v < min_ms || v > max_ms)
        return ficus_conf_error(cc, node, "duration must be between %s and %s (got %s)",
                                format_with_unit(min_ms, duration_units, lo, sizeof(lo)),
                                format_with_unit(max_ms, duration_units, hi, sizeof(hi)), SHOW(node, shown));
    *out_ms = v;
    return 0;
}

int ficus_conf_size(ficus_conf_ctx_t *cc, const ficus_node_t *node, uint64_t min, uint64_t max, uint64_t *out)
{
    char shown[SHOW_MAX + 8], lo[32], hi[32];
    uint64_t v;
    if (get_scalar(cc, node) != 0)
        return -1;
    int rc = parse_with_unit(node->data.scalar.value, node->data.scalar.len, size_units, 0, &v);
    if (rc == -1)
        return ficus_conf_error(cc, node, "invalid size '%s' (use e.g. 512, 16KiB, 10MiB)", SHOW(node, shown));
    if (rc == -2 || v < min || v > max)
        return ficus_conf_error(cc, node, "size must be between %s and %s (got %s)",
                                format_with_unit(min, size_display_units, lo, sizeof(lo)),
                                format_with_unit(max, size_display_units, hi, sizeof(hi)), SHOW(node, shown));
    *out = v;
    return 0;
}

int ficus_conf_enum(ficus_conf_ctx_t *cc, const ficus_node_t *node, const char *const *choices, int *out)
{
    char shown[SHOW_MAX + 8], list[768];
    size_t o = 0;
    int i;
    if (get_scalar(cc, node) != 0)
        return -1;
    for (i = 0; choices[i] != NULL; ++i) {
        if (strcmp(node->data.scalar.value, choices[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    list[0] = '\0';
    for (i = 0; choices[i] != NULL && o < sizeof(list); ++i) {
        int w = snprintf(list + o, sizeof(list) - o, "%s%s", i == 0 ? "" : ", ", choices[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    return ficus_conf_error(cc, node, "must be one of: %s (got '%s')", list, SHOW(node, shown));
}
