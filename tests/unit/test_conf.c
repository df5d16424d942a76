/* Unit tests of gateway/conf.c: YAML loading (tree shape, positions, refusals, bounds) and the validation helpers
 * (mapping shape, scalar conversions) including the exact "file:line: message" of every error path. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ficus/conf.h"
#include "runner.h"

#define ERRLEN 1024

static ficus_node_t *load(const char *text, char *err)
{
    return ficus_conf_load_string("t.yaml", text, strlen(text), err, ERRLEN);
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Loading `text` must fail with exactly `expected`. */
#define load_fails(text, expected)                                                                                                 \
    do {                                                                                                                           \
        char err_[ERRLEN];                                                                                                         \
        ficus_node_t *r_ = load((text), err_);                                                                                     \
        ok(r_ == NULL);                                                                                                            \
        ok_str(err_, (expected));                                                                                                  \
        ficus_node_free(r_);                                                                                                       \
    } while (0)

/* A fixture: "first: 1\nv: <value>" is loaded so that `v` sits on line 2. */
typedef struct st_fx_t {
    ficus_node_t *root;
    ficus_node_t *v;
    ficus_conf_ctx_t cc;
} fx_t;

static int fx_open(fx_t *fx, const char *value)
{
    char text[512], err[ERRLEN];
    snprintf(text, sizeof(text), "first: 1\nv: %s\n", value);
    memset(fx, 0, sizeof(*fx));
    fx->cc.filename = "t.yaml";
    if (!ok((fx->root = load(text, err)) != NULL)) {
        printf("#     load error: %s\n", err);
        return 0;
    }
    fx->v = ficus_node_get(fx->root, "v");
    return ok(fx->v != NULL);
}

static void fx_close(fx_t *fx)
{
    ficus_node_free(fx->root);
}

/* Each of these converts `value` and returns the error text ("" on success) in a static buffer. */
static char last_error[ERRLEN];

static const char *uint_of(const char *value, uint64_t min, uint64_t max, uint64_t *out)
{
    fx_t fx;
    last_error[0] = '\0';
    if (fx_open(&fx, value)) {
        ficus_conf_uint(&fx.cc, fx.v, min, max, out);
        snprintf(last_error, sizeof(last_error), "%s", fx.cc.error);
    }
    fx_close(&fx);
    return last_error;
}

static const char *duration_of(const char *value, uint64_t min, uint64_t max, uint64_t *out)
{
    fx_t fx;
    last_error[0] = '\0';
    if (fx_open(&fx, value)) {
        ficus_conf_duration(&fx.cc, fx.v, min, max, out);
        snprintf(last_error, sizeof(last_error), "%s", fx.cc.error);
    }
    fx_close(&fx);
    return last_error;
}

static const char *size_of(const char *value, uint64_t min, uint64_t max, uint64_t *out)
{
    fx_t fx;
    last_error[0] = '\0';
    if (fx_open(&fx, value)) {
        ficus_conf_size(&fx.cc, fx.v, min, max, out);
        snprintf(last_error, sizeof(last_error), "%s", fx.cc.error);
    }
    fx_close(&fx);
    return last_error;
}

static const char *bool_of(const char *value, int *out)
{
    fx_t fx;
    last_error[0] = '\0';
    if (fx_open(&fx, value)) {
        ficus_conf_bool(&fx.cc, fx.v, out);
        snprintf(last_error, sizeof(last_error), "%s", fx.cc.error);
    }
    fx_close(&fx);
    return last_error;
}

/* ------------------------------------------------------------------------------------------------------------ */

FICUS_TEST(nested_parse_with_positions)
{
    char err[ERRLEN];
    const char *text = "# comment\n"
                       "listen:\n"
                       "  - port: 8080\n"
                       "    host: \"0.0.0.0\"\n"
                       "  - port: 8443\n"
                       "routes: {a: [1, 2], b: 'x'}\n"
                       "empty:\n";
    ficus_node_t *root = load(text, err);
    if (!ok(root != NULL))
        return;
    ok_str(err, "");
    ok_int(root->type, FICUS_NODE_MAPPING);
    ok_str(root->filename, "t.yaml");
    ok_int(root->line, 2);
    ok_int(root->column, 1);
    ok_int(root->data.mapping.size, 3);
    ok_str(root->data.mapping.keys[0]->data.scalar.value, "listen");
    ok_int(root->data.mapping.keys[0]->line, 2);

    ficus_node_t *listen = ficus_node_get(root, "listen");
    if (ok(listen != NULL && listen->type == FICUS_NODE_SEQUENCE)) {
        ok_int(listen->line, 3);
        ok_int(listen->column, 3);
        ok_int(listen->data.sequence.size, 2);
        ficus_node_t *l0 = listen->data.sequence.elements[0], *l1 = listen->data.sequence.elements[1];
        ok_int(l0->type, FICUS_NODE_MAPPING);
        ok_int(l0->line, 3);
        ok_int(l0->column, 5);
        ficus_node_t *port = ficus_node_get(l0, "port"), *host = ficus_node_get(l0, "host");
        if (ok(port != NULL && host != NULL)) {
            ok_str(port->data.scalar.value, "8080");
            ok_int(port->data.scalar.len, 4);
            ok_int(port->line, 3);
            ok_int(port->column, 11);
            ok_str(host->data.scalar.value, "0.0.0.0");
            ok_int(host->line, 4);
            ok_int(host->column, 11);
            ok(host->filename == root->filename);
        }
        ok_int(l1->line, 5);
        ok_str(ficus_node_get(l1, "port")->data.scalar.value, "8443");
        ok(ficus_node_get(l1, "host") == NULL);
    }
    ficus_node_t *routes = ficus_node_get(root, "routes");
    if (ok(routes != NULL && routes->type == FICUS_NODE_MAPPING)) {
        ok_int(routes->line, 6);
        ok_int(routes->column, 9);
        ficus_node_t *a = ficus_node_get(routes, "a");
        if (ok(a != NULL && a->type == FICUS_NODE_SEQUENCE && a->data.sequence.size == 2)) {
            ok_str(a->data.sequence.elements[1]->data.scalar.value, "2");
            ok_int(a->data.sequence.elements[1]->line, 6);
            ok_int(a->data.sequence.elements[1]->column, 17);
        }
    }
    ficus_node_t *empty = ficus_node_get(root, "empty");
    if (ok(empty != NULL)) {
        ok_int(empty->type, FICUS_NODE_SCALAR);
        ok_str(empty->data.scalar.value, "");
        ok_int(empty->data.scalar.is_quoted, 0);
    }
    ok(ficus_node_get(root, "missing") == NULL);
    ok(ficus_node_get(listen, "port") == NULL); /* not a mapping */
    ok(ficus_node_get(NULL, "x") == NULL);
    ficus_node_free(root);
    ficus_node_free(NULL);
}

FICUS_TEST(is_quoted)
{
    char err[ERRLEN];
    ficus_node_t *root = load("a: plain\nb: 'single'\nc: \"double\"\nd: |\n  block\ne: \"\"\n", err);
    if (!ok(root != NULL))
        return;
    ok_int(ficus_node_get(root, "a")->data.scalar.is_quoted, 0);
    ok_int(ficus_node_get(root, "b")->data.scalar.is_quoted, 1);
    ok_str(ficus_node_get(root, "b")->data.scalar.value, "single");
    ok_int(ficus_node_get(root, "c")->data.scalar.is_quoted, 1);
    ok_int(ficus_node_get(root, "d")->data.scalar.is_quoted, 0);
    ok_str(ficus_node_get(root, "d")->data.scalar.value, "block\n");
    ok_int(ficus_node_get(root, "e")->data.scalar.is_quoted, 1);
    ok_int(ficus_node_get(root, "e")->data.scalar.len, 0);
    ficus_node_free(root);
}

FICUS_TEST(syntax_errors_name_their_line)
{
    char err[ERRLEN];
    ficus_node_t *root = load("a: 1\nb: [1, 2\nc: 3\n", err);
    ok(root == NULL);
    ok(starts_with(err, "t.yaml:3: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence at line 2)"));

    root = load("a: 1\n  b: 2\n", err);
    ok(root == NULL);
    ok(starts_with(err, "t.yaml:2: YAML syntax error: mapping values are not allowed in this context"));

    root = load("a: 1\nb:\n\t- x\n", err);
    ok(root == NULL);
    ok(starts_with(err, "t.yaml:3: YAML syntax error: "));

    root = load("a: \"unterminated\n", err);
    ok(root == NULL);
    ok(starts_with(err, "t.yaml:"));
    ok(strstr(err, "YAML syntax error: ") != NULL);

    /* invalid UTF-8 is a reader error (a byte offset, not a mark): the line is still named */
    root = load("a: 1\nb: 2\nc: \xff\n", err);
    ok(root == NULL);
    ok(starts_with(err, "t.yaml:3: YAML syntax error: "));
}

FICUS_TEST(aliases_anchors_merge_keys_tags_refused)
{
    load_fails("base: &b {x: 1}\nother: *b\n", "t.yaml:1: YAML aliases/anchors are not supported");
    load_fails("a: 1\nlist: &l [1]\n", "t.yaml:2: YAML aliases/anchors are not supported");
    load_fails("a: 1\nb: 2\nc: &s scalar\n", "t.yaml:3: YAML aliases/anchors are not supported");
    load_fails("a: 1\nb: *nothing\n", "t.yaml:2: YAML aliases/anchors are not supported");
    load_fails("a: 1\nb:\n  <<: {x: 1}\n", "t.yaml:3: YAML merge keys ('<<') are not supported");
    load_fails("a: 1\nb: !!str 5\n", "t.yaml:2: YAML tags are not supported (got 'tag:yaml.org,2002:str')");

    /* a quoted "<<" is an ordinary key */
    char err[ERRLEN];
    ficus_node_t *root = load("\"<<\": 1\n", err);
    ok(root != NULL);
    ok(ficus_node_get(root, "<<") != NULL);
    ficus_node_free(root);
}

FICUS_TEST(structure_refusals)
{
    load_fails("", "t.yaml: empty configuration");
    load_fails("# only a comment\n\n", "t.yaml: empty configuration");
    load_fails("---\n", "t.yaml: empty configuration");
    load_fails("a: 1\n---\nb: 2\n", "t.yaml:2: multiple YAML documents are not supported");
    load_fails("a: 1\n? [x, y]\n: 2\n", "t.yaml:2: mapping keys must be scalars, got a sequence");
    load_fails("a: 1\nb: {{x: 1}: 2}\n", "t.yaml:2: mapping keys must be scalars, got a mapping");

    /* a scalar root is accepted (callers check the root type) */
    char err[ERRLEN];
    ficus_node_t *root = load("just text\n", err);
    if (ok(root != NULL))
        ok_int(root->type, FICUS_NODE_SCALAR);
    ficus_node_free(root);

    /* a string that is not NUL-terminated: only `len` bytes are read */
    root = ficus_conf_load_string("s.yaml", "a: 1XXXX", 4, err, sizeof(err));
    if (ok(root != NULL)) {
        ok_str(ficus_node_get(root, "a")->data.scalar.value, "1");
        ok_str(root->filename, "s.yaml");
    }
    ficus_node_free(root);

    /* the size bound also applies to strings */
    root = ficus_conf_load_string("big.yaml", "", (size_t)FICUS_CONF_MAX_FILE_BYTES + 1, err, sizeof(err));
    ok(root == NULL);
    ok_str(err, "big.yaml: configuration is too large (4194305 bytes, at most 4194304)");
}

FICUS_TEST(depth_bounds)
{
    char text[512], err[ERRLEN];
    /* 100 nested flow sequences */
    memset(text, '[', 100);
    memset(text + 100, ']', 100);
    text[200] = '\0';
    ficus_node_t *root = load(text, err);
    ok(root == NULL);
    ok_str(err, "t.yaml:1: YAML nesting is deeper than 64 levels");

    /* unterminated bomb: the depth error comes first, before the syntax error at the end */
    memset(text, '[', 300);
    text[300] = '\0';
    root = load(text, err);
    ok(root == NULL);
    ok_str(err, "t.yaml:1: YAML nesting is deeper than 64 levels");

    /* exactly 64 levels are fine, 65 are not */
    memset(text, '[', 64);
    memset(text + 64, ']', 64);
    text[128] = '\0';
    root = load(text, err);
    ok(root != NULL);
    size_t depth = 0;
    for (ficus_node_t *n = root; n != NULL && n->type == FICUS_NODE_SEQUENCE;
         n = n->data.sequence.size != 0 ? n->data.sequence.elements[0] : NULL)
        ++depth;
    ok_int(depth, 64);
    ficus_node_free(root);
    memset(text, '[', 65);
    memset(text + 65, ']', 65);
    text[130] = '\0';
    ok(load(text, err) == NULL);

    /* block-style nesting names the line where the limit is crossed */
    char *deep = malloc(70 * 80);
    size_t o = 0;
    for (int i = 0; i < 70; ++i)
        o += (size_t)sprintf(deep + o, "%*sk:\n", i, "");
    root = load(deep, err);
    ok(root == NULL);
    ok_str(err, "t.yaml:65: YAML nesting is deeper than 64 levels"); /* the mapping on line N is at depth N */
    free(deep);
}

FICUS_TEST(many_nodes_and_large_sequences)
{
    /* the arrays grow; 10000 elements in one sequence and 10000 keys in one mapping */
    size_t cap = 200000, o = 0;
    char *text = malloc(cap), err[ERRLEN];
    o += (size_t)snprintf(text + o, cap - o, "seq: [");
    for (int i = 0; i < 10000; ++i)
        o += (size_t)snprintf(text + o, cap - o, "%d,", i);
    o += (size_t)snprintf(text + o, cap - o, "]\nmap:\n");
    for (int i = 0; i < 10000; ++i)
        o += (size_t)snprintf(text + o, cap - o, "  k%d: %d\n", i, i);
    ficus_node_t *root = ficus_conf_load_string("t.yaml", text, o, err, sizeof(err));
    if (ok(root != NULL)) {
        ficus_node_t *seq = ficus_node_get(root, "seq"), *map = ficus_node_get(root, "map");
        ok_int(seq->data.sequence.size, 10000);
        ok_str(seq->data.sequence.elements[9999]->data.scalar.value, "9999");
        ok_int(map->data.mapping.size, 10000);
        ok_str(ficus_node_get(map, "k9999")->data.scalar.value, "9999");
        ok_int(ficus_node_get(map, "k9999")->line, 10002);
    }
    ficus_node_free(root);
    free(text);
}

FICUS_TEST(load_file)
{
    char err[ERRLEN];
    ficus_node_t *root = ficus_conf_load_file("/nonexistent/ficus.yaml", err, sizeof(err));
    ok(root == NULL);
    ok_str(err, "/nonexistent/ficus.yaml: cannot open: No such file or directory");

    root = ficus_conf_load_file("/tmp", err, sizeof(err));
    ok(root == NULL);
    ok_str(err, "/tmp: not a regular file");

    char path[] = "/tmp/ficus_test_conf_XXXXXX";
    int fd = mkstemp(path);
    if (!ok(fd >= 0))
        return;
    const char *text = "a: 1\nb:\n  c: [x]\n";
    ok_int(write(fd, text, strlen(text)), (long long)strlen(text));
    root = ficus_conf_load_file(path, err, sizeof(err));
    if (ok(root != NULL)) {
        ficus_node_t *c = ficus_node_get(ficus_node_get(root, "b"), "c");
        ok_str(c->filename, path);
        ok_int(c->line, 3);
    }
    ficus_node_free(root);

    /* an error inside the file names the file */
    ok_int(write(fd, "d: *x\n", 6), 6);
    root = ficus_conf_load_file(path, err, sizeof(err));
    ok(root == NULL);
    char expected[256];
    snprintf(expected, sizeof(expected), "%s:4: YAML aliases/anchors are not supported", path);
    ok_str(err, expected);

    /* too large (sparse file, nothing is read) */
    ok_int(ftruncate(fd, (off_t)FICUS_CONF_MAX_FILE_BYTES + 1), 0);
    root = ficus_conf_load_file(path, err, sizeof(err));
    ok(root == NULL);
    snprintf(expected, sizeof(expected), "%s: file is too large (4194305 bytes, at most 4194304)", path);
    ok_str(err, expected);
    close(fd);
    unlink(path);
}

FICUS_TEST(conf_error_keeps_first)
{
    char err[ERRLEN];
    ficus_node_t *root = load("a: 1\nb: 2\n", err);
    if (!ok(root != NULL))
        return;
    ficus_conf_ctx_t cc = {.filename = "t.yaml"};
    ok_int(ficus_conf_error(&cc, ficus_node_get(root, "b"), "bad %s %d", "thing", 42), -1);
    ok_str(cc.error, "t.yaml:2: bad thing 42");
    ok_int(ficus_conf_error(&cc, ficus_node_get(root, "a"), "second"), -1);
    ok_str(cc.error, "t.yaml:2: bad thing 42");

    ficus_conf_ctx_t cc2 = {.filename = "main.yaml"};
    ficus_conf_error(&cc2, NULL, "no node");
    ok_str(cc2.error, "main.yaml: no node");

    ok_str(ficus_node_type_name(FICUS_NODE_SCALAR), "scalar");
    ok_str(ficus_node_type_name(FICUS_NODE_SEQUENCE), "sequence");
    ok_str(ficus_node_type_name(FICUS_NODE_MAPPING), "mapping");

    ficus_conf_ctx_t cc3 = {.filename = "t.yaml"};
    ok_int(ficus_conf_expect(&cc3, root, FICUS_NODE_MAPPING), 0);
    ok_int(ficus_conf_expect(&cc3, ficus_node_get(root, "a"), FICUS_NODE_SEQUENCE), -1);
    ok_str(cc3.error, "t.yaml:1: expected a sequence, got a scalar");
    ficus_node_free(root);
}

FICUS_TEST(mapping_ok)
{
    char err[ERRLEN];
    ficus_node_t *root = load("endpoints: [a, b]\ntimeout: 5s\nextra: {x: 1}\n", err);
    if (!ok(root != NULL))
        return;
    ficus_conf_ctx_t cc = {.filename = "t.yaml"};
    ficus_node_t *eps = (void *)1, *ct = (void *)1, *t = (void *)1, *extra = (void *)1;
    ok_int(ficus_conf_mapping(&cc, root, "endpoints:a", "connect_timeout:s,timeout:s,extra:*", &eps, &ct, &t, &extra), 0);
    ok_str(cc.error, "");
    ok(eps == ficus_node_get(root, "endpoints"));
    ok(ct == NULL);
    ok(t == ficus_node_get(root, "timeout"));
    ok(extra == ficus_node_get(root, "extra"));

    /* no required keys; NULL lists */
    ok_int(ficus_conf_mapping(&cc, ficus_node_get(root, "extra"), NULL, "x:s,y:m", &t, &ct), 0);
    ok_str(t->data.scalar.value, "1");
    ok(ct == NULL);
    ok_int(ficus_conf_mapping(&cc, ficus_node_get(root, "extra"), "x:s", "", &t), 0);
    ok_str(cc.error, "");
    ficus_node_free(root);
}

/* Runs ficus_conf_mapping(required, optional) on the root of `text`, with up to 4 out-args; returns the error. */
static const char *mapping_error(const char *text, const char *required, const char *optional)
{
    char err[ERRLEN];
    ficus_node_t *root = load(text, err), *o1 = NULL, *o2 = NULL, *o3 = NULL, *o4 = NULL;
    last_error[0] = '\0';
    if (!ok(root != NULL)) {
        printf("#     load error: %s\n", err);
        return last_error;
    }
    ficus_conf_ctx_t cc = {.filename = "t.yaml"};
    int rc = ficus_conf_mapping(&cc, root, required, optional, &o1, &o2, &o3, &o4);
    if (rc != 0)
        ok(o1 == NULL && o2 == NULL && o3 == NULL && o4 == NULL); /* nothing half-set on error */
    snprintf(last_error, sizeof(last_error), "%s", cc.error);
    ficus_node_free(root);
    return last_error;
}

FICUS_TEST(mapping_errors)
{
    ok_str(mapping_error("a: 1\nb: 2\nc: 3\n", "a:s", "b:s,d:s"), "t.yaml:3: unknown key 'c'; expected one of: a, b, d");
    ok_str(mapping_error("a: 1\nb: 2\n\na: 3\n", "a:s", "b:s"), "t.yaml:4: duplicate key 'a' (first at line 1)");
    ok_str(mapping_error("b: 2\n", "a:s", "b:s"), "t.yaml:1: missing required key 'a'");
    ok_str(mapping_error("x: 0\nsub:\n  b: 2\n", "x:s,sub:m", ""), "");
    ok_str(mapping_error("x: 0\nsub:\n  - 2\n", "x:s,sub:m", ""), "t.yaml:3: 'sub' must be a mapping, got a sequence");
    ok_str(mapping_error("x: 0\nsub: 1\n", "x:s", "sub:a"), "t.yaml:2: 'sub' must be a sequence, got a scalar");
    ok_str(mapping_error("x: 0\nsub: {}\n", "x:s", "sub:s"), "t.yaml:2: 'sub' must be a scalar, got a mapping");
    ok_str(mapping_error("- 1\n", "a:s", ""), "t.yaml:1: expected a mapping, got a sequence");
    ok_str(mapping_error("a: 1\nzz: 1\n", "", ""), "t.yaml:1: unknown key 'a'; no keys are allowed here");
    /* keys are shown printable and bounded */
    ok_str(mapping_error("a: 1\n\"b\\tc\": 1\n", "a:s", ""), "t.yaml:2: unknown key 'b?c'; expected one of: a");
    /* a malformed key list is a programming error, still reported */
    ok(starts_with(mapping_error("a: 1\n", "a", ""), "t.yaml:1: internal error: malformed key list"));
    ok(starts_with(mapping_error("a: 1\n", "a:q", ""), "t.yaml:1: internal error: malformed key list"));
}

FICUS_TEST(string_conversion)
{
    fx_t fx;
    char *s = NULL;
    if (fx_open(&fx, "'hello world'")) {
        ok_int(ficus_conf_string(&fx.cc, fx.v, &s), 0);
        ok_str(s, "hello world");
        free(s);
    }
    fx_close(&fx);
    if (fx_open(&fx, "")) {
        ok_int(ficus_conf_string(&fx.cc, fx.v, &s), 0);
        ok_str(s, "");
        free(s);
    }
    fx_close(&fx);
    if (fx_open(&fx, "[1]")) {
        ok_int(ficus_conf_string(&fx.cc, fx.v, &s), -1);
        ok_str(fx.cc.error, "t.yaml:2: expected a scalar, got a sequence");
    }
    fx_close(&fx);
    if (fx_open(&fx, "\"a\\0b\"")) {
        ok_int(fx.v->data.scalar.len, 3);
        ok_int(ficus_conf_string(&fx.cc, fx.v, &s), -1);
        ok_str(fx.cc.error, "t.yaml:2: value must not contain NUL characters");
    }
    fx_close(&fx);
}

FICUS_TEST(bool_conversion)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "on", "ON"};
    static const char *const no[] = {"false", "False", "no", "NO", "off", "Off"};
    int v;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); ++i) {
        v = -1;
        ok_str(bool_of(yes[i], &v), "");
        ok_int(v, 1);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); ++i) {
        v = -1;
        ok_str(bool_of(no[i], &v), "");
        ok_int(v, 0);
    }
    ok_str(bool_of("1", &v), "t.yaml:2: expected a boolean (true/false, yes/no, on/off), got '1'");
    ok_str(bool_of("truee", &v), "t.yaml:2: expected a boolean (true/false, yes/no, on/off), got 'truee'");
    ok_str(bool_of("", &v), "t.yaml:2: expected a boolean (true/false, yes/no, on/off), got ''");
    ok_str(bool_of("\"true\"", &v), "t.yaml:2: expected an unquoted boolean (true/false, yes/no, on/off), got quoted 'true'");
    ok_str(bool_of("{}", &v), "t.yaml:2: expected a scalar, got a mapping");
}

FICUS_TEST(uint_conversion)
{
    uint64_t v = 0;
    ok_str(uint_of("8080", 1, 65535, &v), "");
    ok_int(v, 8080);
    ok_str(uint_of("0", 0, 10, &v), "");
    ok_int(v, 0);
    ok_str(uint_of("18446744073709551615", 0, UINT64_MAX, &v), "");
    ok(v == UINT64_MAX);
    ok_str(uint_of("0", 1, 65535, &v), "t.yaml:2: must be between 1 and 65535 (got 0)");
    ok_str(uint_of("65536", 1, 65535, &v), "t.yaml:2: must be between 1 and 65535 (got 65536)");
    ok_str(uint_of("18446744073709551616", 0, UINT64_MAX, &v),
           "t.yaml:2: must be between 0 and 18446744073709551615 (got 18446744073709551616)");
    ok_str(uint_of("99999999999999999999999", 1, 10, &v), "t.yaml:2: must be between 1 and 10 (got 99999999999999999999999)");
    ok_str(uint_of("-1", 0, 10, &v), "t.yaml:2: expected a decimal integer between 0 and 10, got '-1'");
    ok_str(uint_of("+1", 0, 10, &v), "t.yaml:2: expected a decimal integer between 0 and 10, got '+1'");
    ok_str(uint_of("0x10", 0, 100, &v), "t.yaml:2: expected a decimal integer between 0 and 100, got '0x10'");
    ok_str(uint_of("010", 0, 100, &v), "t.yaml:2: expected a decimal integer between 0 and 100, got '010'");
    ok_str(uint_of("1.0", 0, 100, &v), "t.yaml:2: expected a decimal integer between 0 and 100, got '1.0'");
    ok_str(uint_of("", 0, 100, &v), "t.yaml:2: expected a decimal integer between 0 and 100, got ''");
    ok_str(uint_of("'5'", 0, 100, &v), "t.yaml:2: expected an unquoted decimal integer, got quoted '5'");
    ok_str(uint_of("[5]", 0, 100, &v), "t.yaml:2: expected a scalar, got a sequence");
}

FICUS_TEST(duration_conversion)
{
    static const struct {
        const char *text;
        uint64_t ms;
    } good[] = {{"250ms", 250},   {"5s", 5000},
                {"10m", 600000},  {"1h", 3600000},
                {"1d", 86400000}, {"0", 0},
                {"0s", 0},        {"0ms", 0},
                {"'5s'", 5000},   {"18446744073709551615ms", UINT64_MAX},
                {"007s", 7000},   {"213503982334d", 213503982334ull * 86400000ull}};
    uint64_t v;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); ++i) {
        v = 1;
        ok_str(duration_of(good[i].text, 0, UINT64_MAX, &v), "");
        if (v != good[i].ms)
            printf("#     for '%s'\n", good[i].text);
        ok(v == good[i].ms);
    }
    static const char *const bad[] = {"1.5s", "5 s", "-5s", "5", "5sec", "5S", "ms", "s5", "1h30m", "+5s", "1e3ms"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        char expected[256];
        snprintf(expected, sizeof(expected), "t.yaml:2: invalid duration '%s' (use e.g. 250ms, 5s, 10m, 1h)", bad[i]);
        ok_str(duration_of(bad[i], 0, UINT64_MAX, &v), expected);
    }
    ok_str(duration_of("", 0, UINT64_MAX, &v), "t.yaml:2: invalid duration '' (use e.g. 250ms, 5s, 10m, 1h)");
    ok_str(duration_of("'5 s'", 0, UINT64_MAX, &v), "t.yaml:2: invalid duration '5 s' (use e.g. 250ms, 5s, 10m, 1h)");
    /* overflow: in the number itself, and in the unit multiplication */
    ok_str(duration_of("99999999999999999999999s", 0, UINT64_MAX, &v),
           "t.yaml:2: duration must be between 0 and 18446744073709551615ms (got 99999999999999999999999s)");
    ok_str(duration_of("213503982335d", 0, UINT64_MAX, &v),
           "t.yaml:2: duration must be between 0 and 18446744073709551615ms (got 213503982335d)");
    /* range, shown in the largest exact unit */
    ok_str(duration_of("2h", 1000, 3600000, &v), "t.yaml:2: duration must be between 1s and 1h (got 2h)");
    ok_str(duration_of("999ms", 1000, 90000, &v), "t.yaml:2: duration must be between 1s and 90s (got 999ms)");
    ok_str(duration_of("0", 1, 86400000, &v), "t.yaml:2: duration must be between 1ms and 1d (got 0)");
    ok_str(duration_of("{a: 1}", 0, 10, &v), "t.yaml:2: expected a scalar, got a mapping");

    /* the pure parser */
    ok_int(ficus_parse_duration("90s", 3, &v), 0);
    ok_int(v, 90000);
    ok_int(ficus_parse_duration("90sXX", 3, &v), 0); /* only len bytes */
    ok_int(ficus_parse_duration("", 0, &v), -1);
    ok_int(ficus_parse_duration("1.5s", 4, &v), -1);
    ok_int(ficus_parse_duration("99999999999999999999999s", 24, &v), -1);
    ok_int(ficus_parse_duration("5\0s", 3, &v), -1);
}

FICUS_TEST(size_conversion)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {{"512", 512},
                {"512B", 512},
                {"16KiB", 16384},
                {"10MiB", 10485760},
                {"1GiB", 1073741824},
                {"1KB", 1000},
                {"2MB", 2000000},
                {"3GB", 3000000000ull},
                {"0", 0},
                {"'64KiB'", 65536},
                {"18446744073709551615", UINT64_MAX},
                {"17179869183GiB", 17179869183ull << 30}};
    uint64_t v;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); ++i) {
        v = 1;
        ok_str(size_of(good[i].text, 0, UINT64_MAX, &v), "");
        if (v != good[i].bytes)
            printf("#     for '%s'\n", good[i].text);
        ok(v == good[i].bytes);
    }
    static const char *const bad[] = {"10Mb", "10mib", "1.5MiB", "-1", "KiB", "10 MiB", "1TiB", "10k", "0x10"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        char expected[256];
        snprintf(expected, sizeof(expected), "t.yaml:2: invalid size '%s' (use e.g. 512, 16KiB, 10MiB)", bad[i]);
        ok_str(size_of(bad[i], 0, UINT64_MAX, &v), expected);
    }
    ok_str(size_of("", 0, UINT64_MAX, &v), "t.yaml:2: invalid size '' (use e.g. 512, 16KiB, 10MiB)");
    ok_str(size_of("17179869184GiB", 0, UINT64_MAX, &v),
           "t.yaml:2: size must be between 0 and 18446744073709551615 (got 17179869184GiB)");
    ok_str(size_of("18446744073709551616", 0, UINT64_MAX, &v),
           "t.yaml:2: size must be between 0 and 18446744073709551615 (got 18446744073709551616)");
    ok_str(size_of("2MiB", 1024, 1048576, &v), "t.yaml:2: size must be between 1KiB and 1MiB (got 2MiB)");
    ok_str(size_of("100", 512, 1000, &v), "t.yaml:2: size must be between 512 and 1000 (got 100)");
    ok_str(size_of("[]", 0, 10, &v), "t.yaml:2: expected a scalar, got a sequence");

    ok_int(ficus_parse_size("16KiB", 5, &v), 0);
    ok_int(v, 16384);
    ok_int(ficus_parse_size("16KiB", 4, &v), -1); /* "16Ki" */
    ok_int(ficus_parse_size("", 0, &v), -1);
    ok_int(ficus_parse_size("17179869184GiB", 14, &v), -1);
}

FICUS_TEST(enum_conversion)
{
    static const char *const choices[] = {"round_robin", "least_conn", "random", NULL};
    fx_t fx;
    int idx = -1;
    if (fx_open(&fx, "least_conn")) {
        ok_int(ficus_conf_enum(&fx.cc, fx.v, choices, &idx), 0);
        ok_int(idx, 1);
    }
    fx_close(&fx);
    if (fx_open(&fx, "'random'")) {
        ok_int(ficus_conf_enum(&fx.cc, fx.v, choices, &idx), 0);
        ok_int(idx, 2);
    }
    fx_close(&fx);
    if (fx_open(&fx, "Random")) {
        ok_int(ficus_conf_enum(&fx.cc, fx.v, choices, &idx), -1);
        ok_str(fx.cc.error, "t.yaml:2: must be one of: round_robin, least_conn, random (got 'Random')");
    }
    fx_close(&fx);
    if (fx_open(&fx, "[x]")) {
        ok_int(ficus_conf_enum(&fx.cc, fx.v, choices, &idx), -1);
        ok_str(fx.cc.error, "t.yaml:2: expected a scalar, got a sequence");
    }
    fx_close(&fx);
    /* a long value is shown bounded */
    char longval[300];
    memset(longval, 'x', 200);
    longval[200] = '\0';
    if (fx_open(&fx, longval)) {
        ok_int(ficus_conf_enum(&fx.cc, fx.v, choices, &idx), -1);
        ok(strstr(fx.cc.error, "(got 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...')") != NULL);
    }
    fx_close(&fx);
}
