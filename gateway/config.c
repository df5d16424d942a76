/* Loading a configuration generation: YAML node tree → validated, immutable ficus_config_t.
 *
 * DESIGN: this file knows the top level and hands each section to its owner: `server:` (server_conf.c), `routes:`
 * (route_conf.c, which hands a route's plugin keys to their plugins), upstreams, providers, redis, resolver and the
 * plugins' top-level sections. Every check reports "file:line: what is wrong" through ficus_conf_error(); the first
 * error aborts the load and everything built so far is freed: a generation is applied whole or not at all.
 * OWNERSHIP: all strings and arrays are malloc'd and freed by config_free(); TLS contexts are refcounted by OpenSSL. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include "config_internal.h"
#include "ficus/config.h"
#include "ficus/log.h"
#include "ficus/plugin.h"
#include "ficus/provider.h"
#include "ficus/redis.h"
#include "ficus/resolver.h"
#include "ficus/tls.h"
#include "ficus/upstream.h"
#include "ficus/traffic.h"

void ficus_config_add_identity_header(ficus_config_t *config, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i != config->num_identity_headers; ++i)
        if (h2o_lcstris(config->identity_headers[i].base, config->identity_headers[i].len, name, len))
            return;
    config->identity_headers = realloc(config->identity_headers, sizeof(h2o_iovec_t) * (config->num_identity_headers + 1));
    if (config->identity_headers == NULL)
        ficus_fatal("no memory");
    config->identity_headers[config->num_identity_headers++] = ficus__iov_dup_lower(name, len);
}

/* ---- whole file ---- */

static void config_free(ficus_config_t *c)
{
    if (c->base != NULL) {
        /* derived (ficus_config_derive): only the upstreams' endpoints are its own */
        ficus_upstreams_free(c);
        ficus_config_release(c->base);
        free(c);
        return;
    }
    for (size_t i = 0; i != c->num_routes; ++i)
        ficus__route_free(c->routes[i]);
    free(c->routes);
    for (size_t i = 0; ficus_plugins[i] != NULL; ++i)
        if (c->plugin_globals[i] != NULL && ficus_plugins[i]->global_dispose != NULL)
            ficus_plugins[i]->global_dispose(c->plugin_globals[i]);
    ficus_upstreams_free(c);
    for (size_t i = 0; i != c->num_providers; ++i)
        ficus_provider_conf_free(c->providers[i]);
    free(c->providers);
    ficus_redis_conf_free(c->redis);
    ficus_resolver_conf_free(c->resolver);
    for (size_t i = 0; i != c->num_identity_headers; ++i)
        free(c->identity_headers[i].base);
    free(c->identity_headers);
    for (size_t i = 0; i != c->server.num_listeners; ++i) {
        free(c->server.listeners[i].address);
        ficus_tls_conf_retire(c->server.listeners[i].tls, c->server.handshake_timeout_ms + 2000);
    }
    free(c->server.listeners);
    free(c->server.admin_address);
    if (c->server.access_log_fd > 2)
        close(c->server.access_log_fd);
    free(c->server.access_log_path);
    free(c->server.trusted_proxies);
    free(c->filename);
    free(c);
}

static const char *const top_level_core_keys[] = {"server", "redis", "resolver", "providers", "upstreams", "routes", NULL};

static int check_top_level_keys(ficus_conf_ctx_t *cc, const ficus_node_t *root)
{
    if (ficus_conf_expect(cc, root, FICUS_NODE_MAPPING) != 0)
        return -1;
    for (size_t i = 0; i != root->data.mapping.size; ++i) {
        const ficus_node_t *k = root->data.mapping.keys[i];
        const char *name = k->data.scalar.value;
        for (size_t j = 0; j != i; ++j)
            if (strcmp(root->data.mapping.keys[j]->data.scalar.value, name) == 0)
                return ficus_conf_error(cc, k, "duplicate key '%s' (first at line %u)", name, root->data.mapping.keys[j]->line);
        int known = 0;
        for (const char *const *c = top_level_core_keys; *c != NULL && !known; ++c)
            known = strcmp(*c, name) == 0;
        for (size_t p = 0; ficus_plugins[p] != NULL && !known; ++p)
            known = ficus_plugins[p]->global_key != NULL && strcmp(ficus_plugins[p]->global_key, name) == 0 &&
                    ficus_plugin_find(ficus_plugins[p]->name) != NULL;
        if (!known) {
            char allowed[512];
            size_t off = 0;
            for (const char *const *c = top_level_core_keys; *c != NULL; ++c)
                off += snprintf(allowed + off, sizeof(allowed) - off, "%s%s", off == 0 ? "" : ", ", *c);
            for (size_t p = 0; ficus_plugins[p] != NULL && off < sizeof(allowed); ++p)
                if (ficus_plugins[p]->global_key != NULL && ficus_plugin_find(ficus_plugins[p]->name) != NULL)
                    off += snprintf(allowed + off, sizeof(allowed) - off, ", %s", ficus_plugins[p]->global_key);
            return ficus_conf_error(cc, k, "unknown key '%s'; expected one of: %s", name, allowed);
        }
    }
    return 0;
}

void *ficus_config_plugin_global(const ficus_config_t *config, const ficus_plugin_t *plugin)
{
    for (size_t i = 0; ficus_plugins[i] != NULL; ++i)
        if (ficus_plugins[i] == plugin)
            return config->plugin_globals[i];
    return NULL;
}

static ficus_config_t *load_tree(ficus_node_t *root, const char *filename, int dry_run, char *err, size_t errlen)
{
    ficus_conf_ctx_t cc = {.filename = filename, .dry_run = dry_run};
    ficus_config_t *config = ficus__xcalloc(1, sizeof(*config));
    config->filename = ficus__xstrdup(filename);
    config->refcnt = 1;
    config->server.access_log_fd = -1;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    config->loaded_at = tv.tv_sec + tv.tv_usec / 1e6;

    cc.config = config;
    if (check_top_level_keys(&cc, root) != 0)
        goto Error;
    ficus_node_t *server = ficus_node_get(root, "server"), *routes = ficus_node_get(root, "routes"),
                 *upstreams = ficus_node_get(root, "upstreams"), *providers = ficus_node_get(root, "providers"),
                 *redis = ficus_node_get(root, "redis"), *resolver = ficus_node_get(root, "resolver");
    if (server == NULL || routes == NULL) {
        ficus_conf_error(&cc, root, "missing required key '%s'", server == NULL ? "server" : "routes");
        goto Error;
    }
    {
        const struct {
            const char *name;
            const ficus_node_t *node;
            ficus_node_type_t type;
        } sections[] = {{"server", server, FICUS_NODE_MAPPING},       {"routes", routes, FICUS_NODE_SEQUENCE},
                        {"upstreams", upstreams, FICUS_NODE_MAPPING}, {"providers", providers, FICUS_NODE_MAPPING},
                        {"redis", redis, FICUS_NODE_MAPPING},         {"resolver", resolver, FICUS_NODE_MAPPING}};
        for (size_t i = 0; i != sizeof(sections) / sizeof(sections[0]); ++i)
            if (sections[i].node != NULL && sections[i].node->type != sections[i].type) {
                ficus_conf_error(&cc, sections[i].node, "'%s' must be a %s, got a %s", sections[i].name,
                                 ficus_node_type_name(sections[i].type), ficus_node_type_name(sections[i].node->type));
                goto Error;
            }
    }
    if (ficus__server_conf_load(&cc, server, config) != 0)
        goto Error;
    if (redis != NULL && ficus_redis_conf_load(&cc, redis, &config->redis) != 0)
        goto Error;
    if (providers != NULL && ficus_providers_load(&cc, providers, config) != 0)
        goto Error;
    if (ficus_resolver_conf_load(&cc, resolver, &config->resolver) != 0)
        goto Error;
    if (upstreams != NULL && ficus_upstreams_load(&cc, upstreams, config) != 0)
        goto Error;
    for (size_t i = 0; ficus_plugins[i] != NULL; ++i) {
        const ficus_plugin_t *p = ficus_plugins[i];
        if (p->global_key == NULL || ficus_plugin_find(p->name) == NULL)
            continue;
        if (p->on_global_config(&cc, ficus_node_get(root, p->global_key), &config->plugin_globals[i]) != 0) {
            if (cc.error[0] == '\0')
                ficus_conf_error(&cc, root, "invalid `%s` section", p->global_key);
            goto Error;
        }
    }
    if (ficus__routes_load(&cc, routes, config) != 0)
        goto Error;
    return config;

Error:
    snprintf(err, errlen, "%s", cc.error[0] != '\0' ? cc.error : "invalid configuration");
    config_free(config);
    return NULL;
}

ficus_config_t *ficus_config_load(const char *filename, int dry_run, char *err, size_t errlen)
{
    ficus_node_t *root = ficus_conf_load_file(filename, err, errlen);
    if (root == NULL)
        return NULL;
    ficus_config_t *config = load_tree(root, filename, dry_run, err, errlen);
    ficus_node_free(root);
    return config;
}

ficus_config_t *ficus_config_load_string(const char *name, const char *text, size_t len, int dry_run, char *err, size_t errlen)
{
    ficus_node_t *root = ficus_conf_load_string(name, text, len, err, errlen);
    if (root == NULL)
        return NULL;
    ficus_config_t *config = load_tree(root, name, dry_run, err, errlen);
    ficus_node_free(root);
    return config;
}

ficus_config_t *ficus_config_derive(ficus_config_t *running)
{
    ficus_config_t *base = running->base != NULL ? running->base : running;
    ficus_config_t *c = ficus__xcalloc(1, sizeof(*c));
    *c = *base;
    c->base = base;
    ficus_config_retain(base);
    c->refcnt = 1;
    c->generation = 0;
    ficus_upstreams_derive(base, c);
    return c;
}

void ficus_config_retain(ficus_config_t *config)
{
    __atomic_add_fetch(&config->refcnt, 1, __ATOMIC_RELAXED);
}

void ficus_config_release(ficus_config_t *config)
{
    if (__atomic_sub_fetch(&config->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
        config_free(config);
}

int ficus_config_check_reloadable(const ficus_config_t *running, const ficus_config_t *next, char *err, size_t errlen)
{
    if (running->server.workers != next->server.workers) {
        snprintf(err, errlen, "%s: server.workers changed (%u -> %u): restart ficus to apply it", next->filename,
                 running->server.workers, next->server.workers);
        return -1;
    }
    if (running->server.num_listeners != next->server.num_listeners)
        goto Listeners;
    for (size_t i = 0; i != next->server.num_listeners; ++i) {
        const ficus_listener_conf_t *a = running->server.listeners + i, *b = next->server.listeners + i;
        if (a->addrlen != b->addrlen || memcmp(&a->addr, &b->addr, a->addrlen) != 0 || (a->tls == NULL) != (b->tls == NULL) ||
            a->redirect_https_port != b->redirect_https_port)
            goto Listeners;
    }
    if ((running->server.admin_address == NULL) != (next->server.admin_address == NULL) ||
        (running->server.admin_address != NULL && strcmp(running->server.admin_address, next->server.admin_address) != 0)) {
        snprintf(err, errlen, "%s: server.admin changed: restart ficus to apply it", next->filename);
        return -1;
    }
    return 0;
Listeners:
    snprintf(err, errlen,
             "%s: server.listen changed (addresses, tls or redirect_https): listeners are kept across reloads; restart ficus "
             "to apply it",
             next->filename);
    return -1;
}
