/* libFuzzer target: the `split:` section and the request-time override / sticky-cookie handling.
 *
 * ATTACK SURFACE: (1) an operator's `split:` YAML (keys, sticky_cookie, salt, targets and weights, override) →
 * ficus_split_conf_load over a fixed set of upstreams: it must accept or refuse with "fuzz_split.yaml:LINE: ...",
 * never crash or leak; an accepted split has 1..64 targets, known upstreams, at least one weight > 0. (2) a client's
 * Cookie header and override values, fully attacker-controlled: ficus_cookie_strip must remove every pair named
 * after the override cookie and keep the others in order; ficus_split_target_by_name must only ever name one of the
 * split's targets; any key maps to a target with a weight > 0 (ficus_split_bucket / ficus_split_pick).
 *
 * Input layout: the YAML of the split section, then a line "%%", then the Cookie header value, then optionally
 * "\n%%\n" and an override value. A missing part is empty. Build and run: tests/fuzz/README.md. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ficus/config.h"
#include "ficus/traffic.h"

static const char config_text[] = "server:\n"
                                  "  listen: [{ address: \"127.0.0.1:8080\" }]\n"
                                  "upstreams:\n"
                                  "  monolith: { endpoints: [\"http://127.0.0.1:9000\"] }\n"
                                  "  orders: { endpoints: [\"http://127.0.0.1:9100\"] }\n"
                                  "  billing: { endpoints: [\"http://127.0.0.1:9200\"] }\n"
                                  "routes:\n"
                                  "  - name: r\n"
                                  "    to: monolith\n";

static ficus_config_t *config;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[1024];
    if ((config = ficus_config_load_string("fuzz_split_base.yaml", config_text, sizeof(config_text) - 1, 1, err, sizeof(err))) ==
        NULL) {
        fprintf(stderr, "fuzz_split: %s\n", err);
        abort();
    }
    return 0;
}

static const uint8_t *find_sep(const uint8_t *p, const uint8_t *end)
{
    for (; p + 4 <= end; ++p)
        if (memcmp(p, "\n%%\n", 4) == 0)
            return p;
    return NULL;
}

static void check_strip(const ficus_split_conf_t *s, h2o_iovec_t cookie)
{
    if (s->override_cookie.base == NULL)
        return;
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    h2o_iovec_t name = s->override_cookie;
    h2o_iovec_t out = ficus_cookie_strip(&pool, cookie, name.base, name.len);
    if (out.len > cookie.len * 2) /* "a=1;b=2" becomes "a=1; b=2" */
        abort();
    /* no pair named `name` is left; every pair left was in the input */
    const char *p = out.base, *end = out.base + out.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
            ++p;
        const char *pair = p;
        while (p < end && *p != ';')
            ++p;
        const char *pe = p;
        while (pe > pair && (pe[-1] == ' ' || pe[-1] == '\t'))
            --pe;
        if ((size_t)(pe - pair) > name.len && memcmp(pair, name.base, name.len) == 0 && pair[name.len] == '=') {
            fprintf(stderr, "fuzz_split: cookie '%s' survived ficus_cookie_strip\n", name.base);
            abort();
        }
        if (pe > pair && memmem(cookie.base, cookie.len, pair, pe - pair) == NULL) {
            fprintf(stderr, "fuzz_split: ficus_cookie_strip made up a pair\n");
            abort();
        }
    }
    h2o_mem_clear_pool(&pool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return -1;
    uint8_t *copy = malloc(size + 1);
    if (copy == NULL)
        abort();
    memcpy(copy, data, size);
    const uint8_t *end = copy + size, *sep = find_sep(copy, end);
    size_t yaml_len = sep != NULL ? (size_t)(sep - copy) : size;
    h2o_iovec_t cookie = {"", 0}, override = {"", 0};
    if (sep != NULL) {
        const uint8_t *c = sep + 4, *sep2 = find_sep(c, end);
        cookie = h2o_iovec_init((const char *)c, (sep2 != NULL ? sep2 : end) - c);
        if (sep2 != NULL)
            override = h2o_iovec_init((const char *)sep2 + 4, end - (sep2 + 4));
    }

    char err[1024];
    ficus_node_t *root = ficus_conf_load_string("fuzz_split.yaml", (const char *)copy, yaml_len, err, sizeof(err));
    if (root != NULL) {
        ficus_conf_ctx_t cc = {.filename = "fuzz_split.yaml", .dry_run = 1, .config = config};
        ficus_split_conf_t *s = NULL;
        int rv = ficus_split_conf_load(&cc, root, config, "r", &s);
        if (rv != 0) {
            if (strncmp(cc.error, "fuzz_split.yaml:", 16) != 0) {
                fprintf(stderr, "fuzz_split: error without file:line: '%s'\n", cc.error);
                abort();
            }
        } else {
            uint64_t total = 0;
            if (s->num_targets == 0 || s->num_targets > FICUS_SPLIT_MAX_TARGETS)
                abort();
            for (size_t i = 0; i != s->num_targets; ++i) {
                if (s->upstreams[i] == NULL || ficus_config_upstream(config, s->upstreams[i]->name) != s->upstreams[i])
                    abort();
                total += s->targets[i].weight;
            }
            if (total == 0)
                abort();
            size_t by_name = ficus_split_target_by_name(s, override.base, override.len);
            if (by_name != SIZE_MAX && (by_name >= s->num_targets || strlen(s->targets[by_name].name) != override.len ||
                                        memcmp(s->targets[by_name].name, override.base, override.len) != 0))
                abort();
            size_t pick = ficus_split_pick(s->targets, s->num_targets,
                                           ficus_split_bucket(s->salt.base, s->salt.len, cookie.base, cookie.len));
            if (pick >= s->num_targets || s->targets[pick].weight == 0)
                abort();
            check_strip(s, cookie);
        }
        ficus_split_conf_free(s);
        ficus_node_free(root);
    }
    /* the strip helper on its own, with a name taken from the input */
    if (override.len != 0 && override.len < 64) {
        ficus_split_conf_t fake = {0};
        char name[64];
        memcpy(name, override.base, override.len);
        name[override.len] = '\0';
        fake.override_cookie = h2o_iovec_init(name, strlen(name));
        if (fake.override_cookie.len != 0)
            check_strip(&fake, cookie);
    }
    uint32_t sample;
    if (ficus_parse_sample(cookie.base, cookie.len, &sample) == 0 && (sample < 1 || sample > 10000))
        abort();
    free(copy);
    return 0;
}
