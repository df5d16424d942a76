/* The compiled-in request-phase plugins, in phase order: the one list the core knows plugins by
 * (cf. nginx's generated ngx_modules.c). A route runs its plugins in this order, whatever order its YAML lists them.
 * To add a plugin: write plugins/<name>/<name>.c exporting `ficus_plugin_<name>` and add it here. */
#include <stdlib.h>
#include <string.h>
#include "ficus/plugin.h"

extern const ficus_plugin_t ficus_plugin_shed;
extern const ficus_plugin_t ficus_plugin_test_delay;
extern const ficus_plugin_t ficus_plugin_jwt;
extern const ficus_plugin_t ficus_plugin_sso;
extern const ficus_plugin_t ficus_plugin_rate_limit;
extern const ficus_plugin_t ficus_plugin_headers;

const ficus_plugin_t *const ficus_plugins[] = {
    &ficus_plugin_shed,       /* first: load shedding must cost almost nothing, before any other work (route key `priority`) */
    &ficus_plugin_test_delay, /* test only: pauses requests on a timer (FICUS_TEST_PLUGINS=1) */
    &ficus_plugin_jwt,        /* authentication: bearer tokens against a provider's keys */
    &ficus_plugin_sso,        /* authentication: browser sessions (OpenID Connect) */
    &ficus_plugin_rate_limit, /* after authentication: limits may be keyed by claims */
    &ficus_plugin_headers,    /* last: edits the request as it leaves for the upstream, and the response */
    NULL,
};

const ficus_plugin_t *ficus_plugin_find(const char *name)
{
    for (const ficus_plugin_t *const *p = ficus_plugins; *p != NULL; ++p) {
        if (strcmp((*p)->name, name) != 0)
            continue;
        if ((*p)->test_only) {
            const char *env = getenv("FICUS_TEST_PLUGINS");
            if (env == NULL || strcmp(env, "1") != 0)
                return NULL;
        }
        return *p;
    }
    return NULL;
}
