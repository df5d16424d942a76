/* Helpers shared by the unit tests that load YAML configuration text through ficus_config_load_string (the dry run
 * of `ficus -t`): test_config.c, test_shed.c.
 *
 * USAGE:
 *   char err[ERRLEN]; ficus_config_t *c = load("server: ...", err);   NULL and err set on failure
 *   fails_at(text, 8, "unknown key");   loading must fail with an error starting "t.yaml:8: " containing the phrase
 * fails_at is a macro, so a failed check reports the test's own file:line. */
#ifndef ficus__test_conf_helpers_h
#define ficus__test_conf_helpers_h

#include <stdio.h>
#include <string.h>

#include "ficus/config.h"
#include "runner.h"

#define ERRLEN 1024

static inline ficus_config_t *load(const char *text, char *err)
{
    err[0] = '\0';
    return ficus_config_load_string("t.yaml", text, strlen(text), 1, err, ERRLEN);
}

static inline int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Loading `text` must fail with an error starting "t.yaml:LINE:" and containing `phrase`. */
#define fails_at(text, line, phrase)                                                                                               \
    do {                                                                                                                           \
        char err_[ERRLEN], prefix_[32];                                                                                            \
        ficus_config_t *c_ = load((text), err_);                                                                                   \
        ok(c_ == NULL);                                                                                                            \
        if (c_ != NULL)                                                                                                            \
            ficus_config_release(c_);                                                                                              \
        snprintf(prefix_, sizeof(prefix_), "t.yaml:%d: ", (line));                                                                 \
        if (!ok(starts_with(err_, prefix_)) | !ok(strstr(err_, (phrase)) != NULL))                                                 \
            printf("#     error: %s\n#     expected: %s...%s\n", err_, prefix_, (phrase));                                         \
    } while (0)

#endif
