/* `routes:` of a configuration generation (see gateway/config_internal.h): a route's name, match and action keys
 * (to, split, redirect, respond, prefixes); any other key is handed to the plugin owning it (gateway/plugins.c),
 * which validates its own section. And freeing a route with what its plugins hold. */
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

/* ---- routes ---- */

static int is_token_char(int c)
{
    return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int load_match(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_route_match_t *m)
{
    ficus_node_t *host, *path, *path_prefix, *methods, *headers;
    if (ficus_conf_mapping(cc, node, "", "host:s,path:s,path_prefix:s,methods:a,headers:a", &host, &path, &path_prefix, &methods,
                           &headers) != 0)
        return -1;
    if (host != NULL) {
        const char *h = host->data.scalar.value;
        size_t len = host->data.scalar.len;
        if (len == 0 || len > 253)
            return ficus_conf_error(cc, host, "`host` must be a host name such as api.example.com or *.example.com");
        if (h[0] == '*') {
            if (len < 3 || h[1] != '.')
                return ficus_conf_error(cc, host, "wildcard host must look like *.example.com");
            m->host = ficus__iov_dup_lower(h + 1, len - 1);
            m->host_is_suffix = 1;
        } else {
            m->host = ficus__iov_dup_lower(h, len);
        }
        for (size_t i = m->host_is_suffix; i != m->host.len; ++i)
            if (!(isalnum((unsigned char)m->host.base[i]) || m->host.base[i] == '-' || m->host.base[i] == '.' ||
                  m->host.base[i] == '_'))
                return ficus_conf_error(cc, host, "invalid character in host '%s' (no port, no scheme)", h);
    }
    if (path != NULL && path_prefix != NULL)
        return ficus_conf_error(cc, path, "use either `path` (exact) or `path_prefix`, not both");
    const ficus_node_t *p = path != NULL ? path : path_prefix;
    if (p != NULL) {
        if (ficus__has_unsafe_char(p->data.scalar.value))
            return ficus_conf_error(cc, p, "path must not contain spaces or control characters (percent-encode them)");
        if (p->data.scalar.value[0] != '/')
            return ficus_conf_error(cc, p, "path must start with '/' (got '%s')", p->data.scalar.value);
        if (strchr(p->data.scalar.value, '?') != NULL)
            return ficus_conf_error(cc, p, "path must not contain a query string");
        /* requests are matched on their canonical path (ficus/path.h): a route path in any other form never matches */
        char canon[FICUS_PATH_CANONICAL_CAP(4096)];
        size_t clen;
        ficus_path_error_t perr;
        if (p->data.scalar.len > 4096)
            return ficus_conf_error(cc, p, "path too long (max 4096 bytes)");
        if ((perr = ficus_path_canonicalize(&cc->config->server.paths, p->data.scalar.value, p->data.scalar.len, canon, &clen)) !=
            FICUS_PATH_OK)
            return ficus_conf_error(cc, p, "path '%s' can never match: requests with it are refused (%s)", p->data.scalar.value,
                                    ficus_path_error_code(perr));
        if (!h2o_memis(canon, clen, p->data.scalar.value, p->data.scalar.len))
            return ficus_conf_error(cc, p, "path '%s' is not in canonical form (write '%.*s': see server.paths)",
                                    p->data.scalar.value, (int)clen, canon);
        m->path = h2o_strdup(NULL, p->data.scalar.value, p->data.scalar.len);
        m->path_is_prefix = p == path_prefix;
    }
    if (methods != NULL) {
        if (methods->data.sequence.size == 0)
            return ficus_conf_error(cc, methods, "`methods` must not be empty (omit it to match any method)");
        m->num_methods = methods->data.sequence.size;
        m->methods = ficus__xcalloc(m->num_methods, sizeof(char *));
        for (size_t i = 0; i != m->num_methods; ++i) {
            ficus_node_t *e = methods->data.sequence.elements[i];
            if (ficus_conf_expect(cc, e, FICUS_NODE_SCALAR) != 0)
                return -1;
            if (e->data.scalar.len == 0 || e->data.scalar.len > 32)
                return ficus_conf_error(cc, e, "invalid method '%s'", e->data.scalar.value);
            for (const char *c = e->data.scalar.value; *c != '\0'; ++c)
                if (!(isupper((unsigned char)*c) || *c == '-' || *c == '_'))
                    return ficus_conf_error(cc, e, "invalid method '%s' (methods are upper case, e.g. GET)", e->data.scalar.value);
            m->methods[i] = ficus__xstrdup(e->data.scalar.value);
        }
    }
    if (headers != NULL) {
        m->num_headers = headers->data.sequence.size;
        m->headers = ficus__xcalloc(m->num_headers, sizeof(*m->headers));
        for (size_t i = 0; i != m->num_headers; ++i) {
            ficus_node_t *name, *value;
            if (ficus_conf_mapping(cc, headers->data.sequence.elements[i], "name:s", "value:s", &name, &value) != 0)
                return -1;
            if (name->data.scalar.len == 0)
                return ficus_conf_error(cc, name, "header name must not be empty");
            for (size_t j = 0; j != name->data.scalar.len; ++j)
                if (!is_token_char((unsigned char)name->data.scalar.value[j]))
                    return ficus_conf_error(cc, name, "invalid header name '%s'", name->data.scalar.value);
            m->headers[i].name = ficus__iov_dup_lower(name->data.scalar.value, name->data.scalar.len);
            if (value != NULL)
                m->headers[i].value = h2o_strdup(NULL, value->data.scalar.value, value->data.scalar.len);
        }
    }
    return 0;
}

static int load_prefix(ficus_conf_ctx_t *cc, const ficus_node_t *node, h2o_iovec_t *out)
{
    if (ficus_conf_expect(cc, node, FICUS_NODE_SCALAR) != 0)
        return -1;
    if (node->data.scalar.value[0] != '/' || strchr(node->data.scalar.value, '?') != NULL ||
        ficus__has_unsafe_char(node->data.scalar.value))
        return ficus_conf_error(cc, node,
                                "prefix must start with '/', have no query string, spaces or control characters (got '%s')",
                                node->data.scalar.value);
    *out = h2o_strdup(NULL, node->data.scalar.value, node->data.scalar.len);
    return 0;
}

static int load_redirect(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_route_t *route)
{
    ficus_node_t *to, *status;
    if (ficus_conf_mapping(cc, node, "to:s", "status:s", &to, &status) != 0)
        return -1;
    /* only the documented placeholders; anything else between braces is a typo */
    for (const char *p = to->data.scalar.value; (p = strchr(p, '{')) != NULL; ++p) {
        if (strncmp(p, "{path}", 6) != 0 && strncmp(p, "{query}", 7) != 0 && strncmp(p, "{host}", 6) != 0)
            return ficus_conf_error(cc, to, "unknown placeholder in redirect target (use {host}, {path}, {query})");
    }
    if (to->data.scalar.len == 0)
        return ficus_conf_error(cc, to, "redirect target must not be empty");
    if (ficus__has_unsafe_char(to->data.scalar.value))
        return ficus_conf_error(cc, to, "redirect target must not contain spaces or control characters (percent-encode them)");
    route->data.redirect.location_template = ficus__xstrdup(to->data.scalar.value);
    route->data.redirect.status = 302;
    if (status != NULL) {
        uint64_t s;
        if (ficus_conf_uint(cc, status, 300, 399, &s) != 0)
            return -1;
        if (s != 301 && s != 302 && s != 303 && s != 307 && s != 308)
            return ficus_conf_error(cc, status, "redirect status must be 301, 302, 303, 307 or 308");
        route->data.redirect.status = (int)s;
    }
    return 0;
}

static int load_respond(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_route_t *route)
{
    ficus_node_t *status, *body, *content_type;
    if (ficus_conf_mapping(cc, node, "", "status:s,body:s,content_type:s", &status, &body, &content_type) != 0)
        return -1;
    uint64_t s = 200;
    if (status != NULL && ficus_conf_uint(cc, status, 200, 599, &s) != 0)
        return -1;
    route->data.respond.status = (int)s;
    route->data.respond.body =
        body != NULL ? h2o_strdup(NULL, body->data.scalar.value, body->data.scalar.len) : h2o_strdup(NULL, "", 0);
    route->data.respond.content_type =
        ficus__xstrdup(content_type != NULL ? content_type->data.scalar.value : "text/plain; charset=utf-8");
    for (const char *c = route->data.respond.content_type; *c != '\0'; ++c)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return ficus_conf_error(cc, content_type, "invalid character in content_type");
    return 0;
}

static const char *const route_core_keys[] = {"name",       "match",         "to",    "redirect", "respond", "strip_prefix",
                                              "add_prefix", "preserve_host", "split", "fallback", "mirror",  NULL};

static int is_core_route_key(const char *k)
{
    for (const char *const *p = route_core_keys; *p != NULL; ++p)
        if (strcmp(*p, k) == 0)
            return 1;
    return 0;
}

/* A plugin that runs on every route of a generation where its top-level section is present (its on_config gets a NULL
 * node on routes that do not name its key). */
static int plugin_applies_by_default(const ficus_config_t *config, const ficus_plugin_t *p)
{
    return p->applies_to_every_route && ficus_config_plugin_global(config, p) != NULL;
}

static int load_route(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_config_t *config, ficus_route_t *route)
{
    if (ficus_conf_expect(cc, node, FICUS_NODE_MAPPING) != 0)
        return -1;
    route->line = node->line;
    ficus_node_t *name = ficus_node_get(node, "name"), *match = ficus_node_get(node, "match"), *to = ficus_node_get(node, "to"),
                 *redirect = ficus_node_get(node, "redirect"), *respond = ficus_node_get(node, "respond"),
                 *strip = ficus_node_get(node, "strip_prefix"), *add = ficus_node_get(node, "add_prefix"),
                 *preserve = ficus_node_get(node, "preserve_host"), *split = ficus_node_get(node, "split");

    /* duplicate keys and unknown keys (neither core nor a plugin) */
    for (size_t i = 0; i != node->data.mapping.size; ++i) {
        const ficus_node_t *k = node->data.mapping.keys[i];
        for (size_t j = 0; j != i; ++j)
            if (strcmp(node->data.mapping.keys[j]->data.scalar.value, k->data.scalar.value) == 0)
                return ficus_conf_error(cc, k, "duplicate key '%s' (first at line %u)", k->data.scalar.value,
                                        node->data.mapping.keys[j]->line);
        if (!is_core_route_key(k->data.scalar.value) && ficus_plugin_find(k->data.scalar.value) == NULL) {
            char allowed[512] = "";
            size_t off = 0;
            for (const char *const *p = route_core_keys; *p != NULL; ++p)
                off += snprintf(allowed + off, sizeof(allowed) - off, "%s%s", off == 0 ? "" : ", ", *p);
            for (const ficus_plugin_t *const *p = ficus_plugins; *p != NULL && off < sizeof(allowed); ++p)
                if (ficus_plugin_find((*p)->name) != NULL)
                    off += snprintf(allowed + off, sizeof(allowed) - off, ", %s", (*p)->name);
            return ficus_conf_error(cc, k, "unknown key '%s' in route; expected one of: %s", k->data.scalar.value, allowed);
        }
    }

    if (name == NULL)
        return ficus_conf_error(cc, node, "route needs a `name`");
    if (ficus_conf_expect(cc, name, FICUS_NODE_SCALAR) != 0)
        return -1;
    if (name->data.scalar.len == 0 || name->data.scalar.len > 128)
        return ficus_conf_error(cc, name, "route name must be 1 to 128 characters");
    for (const char *c = name->data.scalar.value; *c != '\0'; ++c)
        if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_' || *c == '.' || *c == '/'))
            return ficus_conf_error(cc, name, "route name '%s' may contain only letters, digits and -_./", name->data.scalar.value);
    route->name = ficus__xstrdup(name->data.scalar.value);
    for (size_t i = 0; i != route->index; ++i)
        if (strcmp(config->routes[i]->name, route->name) == 0)
            return ficus_conf_error(cc, name, "duplicate route name '%s' (first at line %u)", route->name, config->routes[i]->line);

    if (match != NULL && load_match(cc, match, &route->match) != 0)
        return -1;

    int nactions = (to != NULL) + (redirect != NULL) + (respond != NULL) + (split != NULL);
    if (nactions != 1)
        return ficus_conf_error(cc, node, "route '%s' needs exactly one action: `to`, `redirect`, `respond` or `split` (found %d)",
                                route->name, nactions);
    if ((strip != NULL || add != NULL || preserve != NULL) && to == NULL && split == NULL) {
        const ficus_node_t *k = strip != NULL ? strip : add != NULL ? add : preserve;
        return ficus_conf_error(cc, k, "`strip_prefix`, `add_prefix` and `preserve_host` apply only to `to` and `split` routes");
    }
    if (to != NULL || split != NULL) {
        route->action = FICUS_ACTION_PROXY;
        if (to != NULL && ficus_conf_expect(cc, to, FICUS_NODE_SCALAR) != 0)
            return -1;
        if (to != NULL && (route->data.proxy.upstream = ficus_config_upstream(config, to->data.scalar.value)) == NULL)
            return ficus_conf_error(cc, to, "route '%s' refers to unknown upstream '%s'", route->name, to->data.scalar.value);
        if (strip != NULL) {
            if (load_prefix(cc, strip, &route->data.proxy.strip_prefix) != 0)
                return -1;
            if (route->match.path.base != NULL &&
                !(route->match.path.len >= route->data.proxy.strip_prefix.len &&
                  memcmp(route->match.path.base, route->data.proxy.strip_prefix.base, route->data.proxy.strip_prefix.len) == 0))
                return ficus_conf_error(cc, strip, "strip_prefix '%s' is not a prefix of the matched path '%s'",
                                        route->data.proxy.strip_prefix.base, route->match.path.base);
        }
        if (add != NULL && load_prefix(cc, add, &route->data.proxy.add_prefix) != 0)
            return -1;
        if (preserve != NULL && ficus_conf_bool(cc, preserve, &route->data.proxy.preserve_host) != 0)
            return -1;
    } else if (redirect != NULL) {
        route->action = FICUS_ACTION_REDIRECT;
        if (load_redirect(cc, redirect, route) != 0)
            return -1;
    } else {
        route->action = FICUS_ACTION_RESPOND;
        if (load_respond(cc, respond, route) != 0)
            return -1;
    }
    if (ficus_traffic_conf_load(cc, node, config, route) != 0) /* split, fallback, mirror (gateway/traffic_conf.c) */
        return -1;

    /* plugin sections, in the order of the plugin table (= phase order), not the order written */
    size_t nplugins = 0;
    for (const ficus_plugin_t *const *p = ficus_plugins; *p != NULL; ++p)
        if ((ficus_node_get(node, (*p)->name) != NULL || plugin_applies_by_default(config, *p)) &&
            ficus_plugin_find((*p)->name) != NULL)
            ++nplugins;
    route->plugins = ficus__xcalloc(nplugins, sizeof(*route->plugins));
    for (const ficus_plugin_t *const *p = ficus_plugins; *p != NULL; ++p) {
        ficus_node_t *section = ficus_node_get(node, (*p)->name);
        if ((section == NULL && !plugin_applies_by_default(config, *p)) || ficus_plugin_find((*p)->name) == NULL)
            continue;
        ficus_plugin_instance_t *inst = route->plugins + route->num_plugins++;
        inst->plugin = *p;
        if ((*p)->on_config(cc, section, &inst->conf) != 0) {
            if (cc->error[0] == '\0')
                ficus_conf_error(cc, section, "invalid `%s` section", (*p)->name);
            /* what the plugin left in *conf (a partly built conf) is disposed with the route; NULL when it freed it */
            if (inst->conf == NULL)
                inst->plugin = NULL;
            return -1;
        }
    }
    route->stats = ficus_metrics_route_get(route->name);
    return 0;
}

int ficus__routes_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_config_t *config)
{
    if (ficus_conf_expect(cc, node, FICUS_NODE_SEQUENCE) != 0)
        return -1;
    if (node->data.sequence.size > 10000)
        return ficus_conf_error(cc, node, "more than 10000 routes");
    _Static_assert(sizeof(((ficus_req_t *)0)->plugin_data) / sizeof(void *) >= FICUS_MAX_PLUGINS / 2, "plugin slots");
    config->routes = ficus__xcalloc(node->data.sequence.size, sizeof(*config->routes));
    for (size_t i = 0; i != node->data.sequence.size; ++i) {
        config->routes[i] = ficus__xcalloc(1, sizeof(ficus_route_t));
        config->routes[i]->index = i;
        config->num_routes = i + 1;
        if (load_route(cc, node->data.sequence.elements[i], config, config->routes[i]) != 0)
            return -1;
    }
    return 0;
}

void ficus__route_free(ficus_route_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i != r->num_plugins; ++i)
        if (r->plugins[i].plugin != NULL && r->plugins[i].plugin->dispose != NULL)
            r->plugins[i].plugin->dispose(r->plugins[i].conf);
    free(r->plugins);
    ficus_traffic_conf_free(r->traffic);
    free(r->name);
    free(r->match.host.base);
    free(r->match.path.base);
    for (size_t i = 0; i != r->match.num_methods; ++i)
        free(r->match.methods[i]);
    free(r->match.methods);
    for (size_t i = 0; i != r->match.num_headers; ++i) {
        free(r->match.headers[i].name.base);
        free(r->match.headers[i].value.base);
    }
    free(r->match.headers);
    switch (r->action) {
    case FICUS_ACTION_PROXY:
        free(r->data.proxy.strip_prefix.base);
        free(r->data.proxy.add_prefix.base);
        break;
    case FICUS_ACTION_REDIRECT:
        free(r->data.redirect.location_template);
        break;
    case FICUS_ACTION_RESPOND:
        free(r->data.respond.body.base);
        free(r->data.respond.content_type);
        break;
    }
    free(r);
}
