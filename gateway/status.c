/* /status.json (see ficus/status.h): the running generation's structure, built with jansson. */
#include <jansson.h>
#include <string.h>
#include "ficus/config.h"
#include "ficus/log.h"
#include "ficus/plugin.h"
#include "ficus/provider.h"
#include "ficus/redis.h"
#include "ficus/server.h"
#include "ficus/split.h"
#include "ficus/status.h"
#include "ficus/traffic.h"
#include "ficus/upstream/types.h"

extern const char ficus_status_page_html[]; /* gateway/status_page.html, embedded by scripts/embed.cmake */
extern const size_t ficus_status_page_html_len;

h2o_iovec_t ficus_status_page(void)
{
    return h2o_iovec_init(ficus_status_page_html, ficus_status_page_html_len);
}

static json_t *upstream_name(const ficus_upstream_conf_t *u)
{
    return u != NULL ? json_string(u->name) : json_null();
}

static json_t *route_json(const ficus_route_t *r)
{
    json_t *o = json_object(), *plugins = json_array();
    json_object_set_new(o, "name", json_string(r->name));
    for (size_t i = 0; i != r->num_plugins; ++i)
        json_array_append_new(plugins, json_string(r->plugins[i].plugin->name));
    json_object_set_new(o, "plugins", plugins);
    switch (r->action) {
    case FICUS_ACTION_PROXY: {
        const ficus_traffic_conf_t *t = r->traffic;
        if (t != NULL && t->split != NULL) {
            json_t *split = json_array();
            json_object_set_new(o, "action", json_string("split"));
            for (size_t i = 0; i != t->split->num_targets; ++i)
                json_array_append_new(split, json_pack("{s:s,s:I}", "upstream", t->split->targets[i].name, "weight",
                                                       (json_int_t)t->split->targets[i].weight));
            json_object_set_new(o, "split", split);
        } else {
            json_object_set_new(o, "action", json_string("proxy"));
            json_object_set_new(o, "to", upstream_name(r->data.proxy.upstream));
        }
        if (t != NULL && t->fallback != NULL)
            json_object_set_new(o, "fallback", upstream_name(t->fallback));
        if (t != NULL && t->mirror != NULL)
            json_object_set_new(o, "mirror",
                                json_pack("{s:o,s:f,s:b}", "upstream", upstream_name(t->mirror->upstream), "sample_percent",
                                          t->mirror->sample / 100.0, "compare", t->mirror->compare));
        break;
    }
    case FICUS_ACTION_REDIRECT:
        json_object_set_new(o, "action", json_string("redirect"));
        json_object_set_new(o, "status", json_integer(r->data.redirect.status));
        json_object_set_new(o, "location", json_string(r->data.redirect.location_template));
        break;
    case FICUS_ACTION_RESPOND:
        json_object_set_new(o, "action", json_string("respond"));
        json_object_set_new(o, "status", json_integer(r->data.respond.status));
        break;
    }
    return o;
}

/* A JSON text made elsewhere (the /readyz fragments), or null when it does not parse. */
static json_t *parse_fragment(const char *prefix, h2o_iovec_t text, const char *suffix)
{
    size_t len = strlen(prefix) + text.len + strlen(suffix);
    char *buf = malloc(len + 1);
    if (buf == NULL)
        ficus_fatal("no memory");
    memcpy(buf, prefix, strlen(prefix));
    memcpy(buf + strlen(prefix), text.base, text.len);
    memcpy(buf + strlen(prefix) + text.len, suffix, strlen(suffix) + 1);
    json_t *j = json_loads(buf, 0, NULL);
    free(buf);
    return j != NULL ? j : json_null();
}

h2o_iovec_t ficus_status_json(h2o_mem_pool_t *pool, const ficus_server_t *s)
{
    const ficus_config_t *c = s->running;
    json_t *root = json_object(), *routes = json_array(), *upstreams = json_array();
    json_object_set_new(root, "version", json_string(FICUS_VERSION));
    json_object_set_new(root, "generation", json_integer((json_int_t)s->generation));
    json_object_set_new(root, "workers", json_integer(s->num_workers));
    json_object_set_new(root, "draining", json_boolean(s->draining));
    json_object_set_new(root, "config", json_string(s->config_path));
    json_object_set_new(root, "loaded_at", json_real(c->loaded_at));
    json_object_set_new(root, "last_reload",
                        json_pack("{s:b,s:o,s:o}", "ok", s->last_reload_ok, "at",
                                  s->last_reload_at != 0 ? json_real(s->last_reload_at) : json_null(), "error",
                                  s->last_reload_ok ? json_null() : json_string(s->last_reload_error)));
    for (size_t i = 0; i != c->num_routes; ++i)
        json_array_append_new(routes, route_json(c->routes[i]));
    json_object_set_new(root, "routes", routes);
    for (size_t i = 0; i != c->num_upstreams; ++i) {
        const ficus_upstream_conf_t *u = c->upstreams[i];
        json_t *eps = json_array();
        for (size_t e = 0; e != u->num_sources; ++e)
            json_array_append_new(eps, json_string(u->sources[e].url)); /* as configured (a name: see /upstreams) */
        json_array_append_new(upstreams, json_pack("{s:s,s:o}", "name", u->name, "endpoints", eps));
    }
    json_object_set_new(root, "upstreams", upstreams);
    h2o_iovec_t providers, redis = h2o_iovec_init(H2O_STRLIT("null"));
    ficus_providers_render_readyz(pool, &providers);
    json_object_set_new(root, "providers", parse_fragment("{", providers, "}"));
    if (c->redis != NULL)
        ficus_redis_render_readyz(pool, c->redis, s->num_workers, &redis);
    json_object_set_new(root, "redis", parse_fragment("", redis, ""));
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (text == NULL)
        ficus_fatal("no memory");
    h2o_iovec_t out = h2o_strdup(pool, text, strlen(text));
    free(text);
    return out;
}
