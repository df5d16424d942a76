/* libFuzzer target: the configuration loader, bytes -> ficus_config_load_string(dry_run = 1).
 *
 * ATTACK SURFACE: everything a config file reaches before ficus runs it: libyaml's parser, the node tree and its
 * bounds (gateway/conf.c), the scalar converters (durations, sizes, integers, booleans, enums), every check of
 * gateway/config.c (listeners, addresses, CIDRs, upstream endpoint URLs, route matches, redirect templates,
 * respond), the TLS section (gateway/tls.c, up to opening the named certificate files) and each plugin's on_config
 * (plugins/headers, plugins/test_delay, ...), plus freeing a half-built generation on every error path. A config is
 * operator input, but it arrives over reloads (SIGHUP) and from generators/templates, so it must never crash,
 * hang, leak or read out of bounds, and every refusal must say "FILE:LINE: ..." (or "FILE: ..." when no line).
 *
 * Checked besides the sanitizers: a refused input leaves a non-empty "fuzz.yaml:..." message; an accepted one can
 * reload over itself (ficus_config_check_reloadable == 0) and routes a few requests.
 *
 * Files: a dry run still loads TLS certificates by name, so the harness runs in an empty temporary directory and
 * skips inputs whose scalars name an existing non-regular file (a FIFO or a device such as /dev/zero would block
 * or never end) or a regular file over 1 MiB. Build and run: tests/fuzz/README.md. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ficus/config.h"
#include "ficus/route.h"

#define NAME "fuzz.yaml"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("FICUS_TEST_PLUGINS", "1", 1); /* fuzz the test-only plugins' sections too */
    char dir[] = "/tmp/ficus-fuzz-config-XXXXXX";
    if (mkdtemp(dir) == NULL || chdir(dir) != 0) {
        perror("ficus fuzz: temporary directory");
        abort();
    }
    return 0;
}

/* Whether any scalar (key or value) of the tree names a file that reading could block on or take long. */
static int names_unsafe_file(const ficus_node_t *node)
{
    switch (node->type) {
    case FICUS_NODE_SCALAR: {
        struct stat st;
        if (node->data.scalar.len == 0 || memchr(node->data.scalar.value, '\0', node->data.scalar.len) != NULL)
            return 0;
        if (stat(node->data.scalar.value, &st) != 0)
            return 0;
        return !S_ISREG(st.st_mode) || st.st_size > 1024 * 1024;
    }
    case FICUS_NODE_SEQUENCE:
        for (size_t i = 0; i != node->data.sequence.size; ++i)
            if (names_unsafe_file(node->data.sequence.elements[i]))
                return 1;
        return 0;
    case FICUS_NODE_MAPPING:
        for (size_t i = 0; i != node->data.mapping.size; ++i)
            if (names_unsafe_file(node->data.mapping.keys[i]) || names_unsafe_file(node->data.mapping.values[i]))
                return 1;
        return 0;
    }
    return 0;
}

static void route_some(const ficus_config_t *c)
{
    static const char *const reqs[][3] = {
        {"example.com", "GET", "/"}, {"A.Example.COM", "POST", "/api/x"}, {"", "", ""}, {"x", "DELETE", "/ping"}};
    h2o_mem_pool_t pool;
    h2o_headers_t headers = {NULL, 0, 0};
    h2o_mem_init_pool(&pool);
    h2o_add_header_by_str(&pool, &headers, H2O_STRLIT("x-canary"), 1, NULL, H2O_STRLIT("1"));
    for (size_t i = 0; i != sizeof(reqs) / sizeof(reqs[0]); ++i) {
        const ficus_route_t *r =
            ficus_route_find(c, h2o_iovec_init(reqs[i][0], strlen(reqs[i][0])), h2o_iovec_init(reqs[i][1], strlen(reqs[i][1])),
                             h2o_iovec_init(reqs[i][2], strlen(reqs[i][2])), &headers);
        if (r != NULL && (r->index >= c->num_routes || c->routes[r->index] != r))
            abort();
    }
    h2o_mem_clear_pool(&pool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];

    /* the same parse ficus does first, to look at the file names it holds */
    ficus_node_t *root = ficus_conf_load_string(NAME, (const char *)data, size, err, sizeof(err));
    if (root != NULL) {
        int unsafe = names_unsafe_file(root);
        ficus_node_free(root);
        if (unsafe)
            return -1; /* not added to the corpus */
    }

    memset(err, 0, sizeof(err));
    ficus_config_t *c = ficus_config_load_string(NAME, (const char *)data, size, 1, err, sizeof(err));
    if (c == NULL) {
        if (strncmp(err, NAME ":", strlen(NAME ":")) != 0 || strlen(err) <= strlen(NAME ":")) {
            fprintf(stderr, "refused without a \"" NAME ":LINE: what\" message: \"%s\"\n", err);
            abort();
        }
        return 0;
    }
    if (ficus_config_check_reloadable(c, c, err, sizeof(err)) != 0) {
        fprintf(stderr, "a generation cannot reload over itself: %s\n", err);
        abort();
    }
    route_some(c);
    ficus_config_release(c);
    return 0;
}
