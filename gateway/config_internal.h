/* What the configuration loader's files share (not an API for anyone else: see ficus/config.h).
 *
 *   config.c       the whole file: top-level keys, sections owned by other modules, lifecycle, derive, reload checks
 *   server_conf.c  `server:` (listeners, admin, limits, logging, trusted proxies), addresses and CIDRs
 *   route_conf.c   `routes:` (match, the action keys, plugin sections of a route), and freeing a route */
#ifndef ficus__config_internal_h
#define ficus__config_internal_h

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/conf.h"
#include "ficus/config.h"
#include "ficus/log.h"

static inline void *ficus__xcalloc(size_t n, size_t size)
{
    void *p = calloc(n == 0 ? 1 : n, size);
    if (p == NULL)
        ficus_fatal("no memory");
    return p;
}

static inline char *ficus__xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        ficus_fatal("no memory");
    return p;
}

/* Strings ficus writes onto the wire (request line, Host, Location) must be visible ASCII without spaces. */
static inline int ficus__has_unsafe_char(const char *s)
{
    for (; *s != '\0'; ++s)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return 1;
    return 0;
}

static inline h2o_iovec_t ficus__iov_dup_lower(const char *s, size_t len)
{
    char *p = ficus__xcalloc(1, len + 1);
    for (size_t i = 0; i != len; ++i)
        p[i] = tolower((unsigned char)s[i]);
    return h2o_iovec_init(p, len);
}

/** `server:` into config->server (server_conf.c). */
int ficus__server_conf_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_config_t *config);
/** `routes:` into config->routes (route_conf.c). */
int ficus__routes_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_config_t *config);
void ficus__route_free(ficus_route_t *r);

#endif
