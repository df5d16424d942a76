/* The YAML of a route's traffic control: `split:` (an action, like `to`), `fallback:` and `mirror:` (see
 * ficus/traffic.h), and the checks `ficus -t` runs on them.
 *
 * CHECKS (each "file:line: what is wrong"): unknown upstreams; a target listed twice; weights that are negative, not
 * integers, or all 0; a key that is not claim:NAME / header:NAME / cookie:NAME / ip; cookie and header names that are
 * not tokens; a fallback on a route that does not proxy, or equal to the route's only target; a mirror on a route
 * that does not proxy, to an upstream the route already sends to, a sample outside 0.01 %–100 %, methods that are
 * not methods.
 * OWNERSHIP: everything is malloc'd (h2o_mem_alloc / h2o_strdup(NULL, ...)) and freed by ficus_traffic_conf_free
 * with the route; a failed load leaves what it built in route->traffic, freed with the route as well. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/traffic.h"

static void *zalloc(size_t n, size_t size)
{
    void *p = h2o_mem_alloc((n == 0 ? 1 : n) * size);
    memset(p, 0, (n == 0 ? 1 : n) * size);
    return p;
}

static int is_token(const char *s, size_t len)
{
    if (len == 0 || len > 128)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if (!(isalnum((unsigned char)s[i]) || strchr("!#$%&'*+-.^_`|~", s[i]) != NULL) || s[i] == '\0')
            return 0;
    return 1;
}

static h2o_iovec_t dup_lower(const char *s, size_t len)
{
    h2o_iovec_t v = h2o_strdup(NULL, s, len);
    for (size_t i = 0; i != len; ++i)
        v.base[i] = tolower((unsigned char)v.base[i]);
    return v;
}

/* ---- split ---- */

static int load_key(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_split_key_t *key)
{
    if (ficus_conf_expect(cc, node, FICUS_NODE_SCALAR) != 0)
        return -1;
    const char *v = node->data.scalar.value, *colon = strchr(v, ':');
    size_t len = node->data.scalar.len;
    if (strcmp(v, "ip") == 0 && len == 2) {
        key->kind = FICUS_SPLIT_KEY_IP;
        return 0;
    }
    static const struct {
        const char *prefix;
        ficus_split_key_kind_t kind;
    } kinds[] = {{"claim", FICUS_SPLIT_KEY_CLAIM}, {"header", FICUS_SPLIT_KEY_HEADER}, {"cookie", FICUS_SPLIT_KEY_COOKIE}};
    for (size_t i = 0; colon != NULL && i != sizeof(kinds) / sizeof(kinds[0]); ++i) {
        if ((size_t)(colon - v) != strlen(kinds[i].prefix) || memcmp(v, kinds[i].prefix, colon - v) != 0)
            continue;
        const char *name = colon + 1;
        size_t nlen = len - (name - v);
        key->kind = kinds[i].kind;
        if (key->kind == FICUS_SPLIT_KEY_CLAIM) {
            if (nlen == 0 || nlen > 128 || memchr(name, '\0', nlen) != NULL)
                return ficus_conf_error(cc, node, "split key '%s': a claim name of 1 to 128 characters is needed", v);
            key->name = h2o_strdup(NULL, name, nlen);
        } else {
            if (!is_token(name, nlen))
                return ficus_conf_error(cc, node, "split key '%s': '%s' is not a valid %s name", v, name, kinds[i].prefix);
            key->name = key->kind == FICUS_SPLIT_KEY_HEADER ? dup_lower(name, nlen) : h2o_strdup(NULL, name, nlen);
        }
        return 0;
    }
    return ficus_conf_error(cc, node, "unknown split key '%s' (use claim:NAME, header:NAME, cookie:NAME or ip)", v);
}

static int load_weight(ficus_conf_ctx_t *cc, const ficus_node_t *node, uint64_t *out)
{
    if (ficus_conf_expect(cc, node, FICUS_NODE_SCALAR) != 0)
        return -1;
    if (node->data.scalar.value[0] == '-')
        return ficus_conf_error(cc, node, "weight must not be negative (got %s)", node->data.scalar.value);
    return ficus_conf_uint(cc, node, 0, 1000000, out);
}

static int load_targets(ficus_conf_ctx_t *cc, const ficus_node_t *to, const ficus_config_t *config, ficus_split_conf_t *s)
{
    size_t n = to->data.sequence.size;
    if (n == 0)
        return ficus_conf_error(cc, to, "split `to` needs at least one { upstream, weight }");
    if (n > FICUS_SPLIT_MAX_TARGETS)
        return ficus_conf_error(cc, to, "split `to` has more than %d targets", FICUS_SPLIT_MAX_TARGETS);
    s->targets = zalloc(n, sizeof(*s->targets));
    s->upstreams = zalloc(n, sizeof(*s->upstreams));
    uint64_t total = 0;
    for (size_t i = 0; i != n; ++i) {
        ficus_node_t *upstream, *weight;
        if (ficus_conf_mapping(cc, to->data.sequence.elements[i], "upstream:s,weight:s", "", &upstream, &weight) != 0)
            return -1;
        ficus_upstream_conf_t *u = ficus_config_upstream(config, upstream->data.scalar.value);
        if (u == NULL)
            return ficus_conf_error(cc, upstream, "split refers to unknown upstream '%s'", upstream->data.scalar.value);
        for (size_t j = 0; j != s->num_targets; ++j)
            if (s->upstreams[j] == u)
                return ficus_conf_error(cc, upstream, "upstream '%s' is listed twice in the split", u->name);
        ficus_split_target_t *t = s->targets + s->num_targets;
        if (load_weight(cc, weight, &t->weight) != 0)
            return -1;
        t->name = u->name;
        t->name_hash = ficus_split_name_hash(u->name, strlen(u->name));
        s->upstreams[s->num_targets++] = u;
        total += t->weight;
    }
    if (total == 0)
        return ficus_conf_error(cc, to, "split weights are all 0: at least one target needs a weight above 0");
    return 0;
}

static int load_override(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_split_conf_t *s)
{
    ficus_node_t *header, *cookie;
    if (ficus_conf_mapping(cc, node, "", "header:s,cookie:s", &header, &cookie) != 0)
        return -1;
    if (header == NULL && cookie == NULL)
        return ficus_conf_error(cc, node, "`override` needs a `header`, a `cookie` or both");
    if (header != NULL) {
        if (!is_token(header->data.scalar.value, header->data.scalar.len))
            return ficus_conf_error(cc, header, "invalid override header name '%s'", header->data.scalar.value);
        s->override_header = dup_lower(header->data.scalar.value, header->data.scalar.len);
    }
    if (cookie != NULL) {
        if (!is_token(cookie->data.scalar.value, cookie->data.scalar.len))
            return ficus_conf_error(cc, cookie, "invalid override cookie name '%s'", cookie->data.scalar.value);
        s->override_cookie = h2o_strdup(NULL, cookie->data.scalar.value, cookie->data.scalar.len);
    }
    return 0;
}

int ficus_split_conf_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, const ficus_config_t *config, const char *route_name,
                          ficus_split_conf_t **out)
{
    ficus_node_t *to, *key, *sticky, *salt, *override;
    ficus_split_conf_t *s = *out = zalloc(1, sizeof(*s));
    if (ficus_conf_mapping(cc, node, "to:a", "key:*,sticky_cookie:s,salt:s,override:m", &to, &key, &sticky, &salt, &override) != 0)
        return -1;
    if (key != NULL) {
        if (key->type == FICUS_NODE_MAPPING)
            return ficus_conf_error(cc, key, "split `key` is a list such as [claim:sub, header:X-User-Id, cookie:sid, ip]");
        size_t n = key->type == FICUS_NODE_SCALAR ? 1 : key->data.sequence.size;
        if (n == 0 || n > FICUS_SPLIT_MAX_KEYS)
            return ficus_conf_error(cc, key, "split `key` needs 1 to %d entries", FICUS_SPLIT_MAX_KEYS);
        s->keys = zalloc(n, sizeof(*s->keys));
        for (size_t i = 0; i != n; ++i) {
            if (load_key(cc, key->type == FICUS_NODE_SCALAR ? key : key->data.sequence.elements[i], s->keys + i) != 0)
                return -1;
            ++s->num_keys;
        }
    }
    if (sticky != NULL) {
        if (!is_token(sticky->data.scalar.value, sticky->data.scalar.len))
            return ficus_conf_error(cc, sticky, "invalid sticky_cookie name '%s'", sticky->data.scalar.value);
        s->sticky_cookie = h2o_strdup(NULL, sticky->data.scalar.value, sticky->data.scalar.len);
    }
    if (salt != NULL) {
        if (salt->data.scalar.len == 0 || salt->data.scalar.len > 256)
            return ficus_conf_error(cc, salt, "split `salt` must be 1 to 256 characters");
        s->salt = h2o_strdup(NULL, salt->data.scalar.value, salt->data.scalar.len);
    } else {
        s->salt = h2o_strdup(NULL, route_name, strlen(route_name));
    }
    if (load_targets(cc, to, config, s) != 0)
        return -1;
    if (override != NULL && load_override(cc, override, s) != 0)
        return -1;
    if (s->override_cookie.base != NULL && s->sticky_cookie.base != NULL &&
        strcmp(s->override_cookie.base, s->sticky_cookie.base) == 0)
        return ficus_conf_error(cc, sticky, "sticky_cookie and the override cookie must have different names");
    return 0;
}

void ficus_split_conf_free(ficus_split_conf_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i != s->num_keys; ++i)
        free(s->keys[i].name.base);
    free(s->keys);
    free(s->sticky_cookie.base);
    free(s->salt.base);
    free(s->targets);
    free(s->upstreams);
    free(s->override_header.base);
    free(s->override_cookie.base);
    free(s);
}

/* ---- mirror ---- */

int ficus_parse_sample(const char *s, size_t len, uint32_t *out)
{
    /* "D[.D[D]]%": hundredths of a percent are the unit */
    size_t i = 0;
    uint64_t whole = 0, frac = 0;
    unsigned frac_digits = 0;
    if (len < 2 || s[len - 1] != '%')
        return -1;
    --len;
    if (len != 0 && s[len - 1] == ' ')
        --len; /* "12.5 %" */
    while (i != len && isdigit((unsigned char)s[i]) && i < 4)
        whole = whole * 10 + (s[i++] - '0');
    if (i == 0)
        return -1;
    if (i != len && s[i] == '.') {
        ++i;
        while (i != len && isdigit((unsigned char)s[i]) && frac_digits < 2) {
            frac = frac * 10 + (s[i++] - '0');
            ++frac_digits;
        }
        if (frac_digits == 0)
            return -1;
        if (frac_digits == 1)
            frac *= 10;
    }
    if (i != len)
        return -1;
    uint64_t v = whole * 100 + frac;
    if (v < 1 || v > 10000)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int load_mirror(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_config_t *config, ficus_route_t *route,
                       ficus_mirror_conf_t *m)
{
    ficus_node_t *upstream, *sample, *methods, *max_body, *timeout, *max_inflight, *compare;
    if (ficus_conf_mapping(cc, node, "upstream:s", "sample:s,methods:a,max_body:s,timeout:s,max_inflight:s,compare:s", &upstream,
                           &sample, &methods, &max_body, &timeout, &max_inflight, &compare) != 0)
        return -1;
    if ((m->upstream = ficus_config_upstream(config, upstream->data.scalar.value)) == NULL)
        return ficus_conf_error(cc, upstream, "mirror refers to unknown upstream '%s'", upstream->data.scalar.value);
    const ficus_traffic_conf_t *t = route->traffic;
    int shadows_itself = t->to == m->upstream || t->fallback == m->upstream;
    for (size_t i = 0; t->split != NULL && i != t->split->num_targets; ++i)
        shadows_itself |= t->split->upstreams[i] == m->upstream;
    if (shadows_itself)
        return ficus_conf_error(cc, upstream, "mirror upstream '%s' already serves route '%s': a mirror is a separate shadow",
                                m->upstream->name, route->name);
    m->sample = 10000;
    if (sample != NULL && ficus_parse_sample(sample->data.scalar.value, sample->data.scalar.len, &m->sample) != 0)
        return ficus_conf_error(cc, sample, "mirror `sample` must be a percentage from 0.01%% to 100%% such as 5%% (got '%s')",
                                sample->data.scalar.value);
    static const char *const default_methods[] = {"GET", "HEAD"};
    size_t nmethods = methods != NULL ? methods->data.sequence.size : 2;
    if (nmethods == 0 || nmethods > 16)
        return ficus_conf_error(cc, methods, "mirror `methods` needs 1 to 16 methods");
    m->methods = zalloc(nmethods, sizeof(char *));
    for (size_t i = 0; i != nmethods; ++i) {
        const char *v = default_methods[i < 2 ? i : 0];
        if (methods != NULL) {
            const ficus_node_t *e = methods->data.sequence.elements[i];
            if (ficus_conf_expect(cc, e, FICUS_NODE_SCALAR) != 0)
                return -1;
            v = e->data.scalar.value;
            int valid = e->data.scalar.len != 0 && e->data.scalar.len <= 32;
            for (const char *c = v; *c != '\0' && valid; ++c)
                valid = isupper((unsigned char)*c) || *c == '-' || *c == '_';
            if (!valid)
                return ficus_conf_error(cc, e, "invalid method '%s' (methods are upper case, e.g. GET)", v);
        }
        m->methods[m->num_methods++] = h2o_strdup(NULL, v, strlen(v)).base;
    }
    m->max_body = 64 * 1024;
    if (max_body != NULL && ficus_conf_size(cc, max_body, 0, 16 * 1024 * 1024, &m->max_body) != 0)
        return -1;
    m->timeout_ms = 2000;
    if (timeout != NULL && ficus_conf_duration(cc, timeout, 1, 600000, &m->timeout_ms) != 0)
        return -1;
    m->max_inflight = 64;
    if (max_inflight != NULL && ficus_conf_uint(cc, max_inflight, 1, 1000000, &m->max_inflight) != 0)
        return -1;
    if (compare != NULL && ficus_conf_bool(cc, compare, &m->compare) != 0)
        return -1;
    m->stats = ficus_mirror_stats_get(route->name);
    return 0;
}

/* ---- the route ---- */

static void add_stats(ficus_traffic_conf_t *t, const ficus_route_t *route, const ficus_upstream_conf_t *u)
{
    if (t->stats[u->index] == NULL)
        t->stats[u->index] = ficus_traffic_stats_get(route->name, u->name);
}

int ficus_traffic_conf_load(ficus_conf_ctx_t *cc, const ficus_node_t *route_node, ficus_config_t *config, ficus_route_t *route)
{
    ficus_node_t *split = ficus_node_get(route_node, "split"), *fallback = ficus_node_get(route_node, "fallback"),
                 *mirror = ficus_node_get(route_node, "mirror");
    if (route->action != FICUS_ACTION_PROXY) {
        if (fallback != NULL || mirror != NULL)
            return ficus_conf_error(cc, fallback != NULL ? fallback : mirror,
                                    "`fallback` and `mirror` apply only to routes with `to` or `split`");
        return 0;
    }
    ficus_traffic_conf_t *t = route->traffic = zalloc(1, sizeof(*t));
    t->stats = zalloc(config->num_upstreams, sizeof(*t->stats));
    t->fallback_stats = zalloc(config->num_upstreams, sizeof(*t->fallback_stats));
    t->to = route->data.proxy.upstream;
    if (split != NULL && ficus_split_conf_load(cc, split, config, route->name, &t->split) != 0)
        return -1;
    if (fallback != NULL) {
        if (ficus_conf_expect(cc, fallback, FICUS_NODE_SCALAR) != 0)
            return -1;
        if ((t->fallback = ficus_config_upstream(config, fallback->data.scalar.value)) == NULL)
            return ficus_conf_error(cc, fallback, "fallback refers to unknown upstream '%s'", fallback->data.scalar.value);
        if (t->fallback == t->to || (t->split != NULL && t->split->num_targets == 1 && t->split->upstreams[0] == t->fallback))
            return ficus_conf_error(cc, fallback, "fallback '%s' is the route's only target: it cannot catch its own failures",
                                    t->fallback->name);
    }
    if (mirror != NULL) {
        t->mirror = zalloc(1, sizeof(*t->mirror));
        if (load_mirror(cc, mirror, config, route, t->mirror) != 0)
            return -1;
    }
    /* the series of every upstream this route can answer from */
    if (t->to != NULL)
        add_stats(t, route, t->to);
    for (size_t i = 0; t->split != NULL && i != t->split->num_targets; ++i)
        add_stats(t, route, t->split->upstreams[i]);
    if (t->fallback != NULL) {
        add_stats(t, route, t->fallback);
        for (size_t i = 0; i != config->num_upstreams; ++i)
            if (t->stats[i] != NULL && config->upstreams[i] != t->fallback)
                t->fallback_stats[i] = ficus_fallback_stats_get(route->name, config->upstreams[i]->name, t->fallback->name);
    }
    return 0;
}

void ficus_traffic_conf_free(ficus_traffic_conf_t *t)
{
    if (t == NULL)
        return;
    ficus_split_conf_free(t->split);
    if (t->mirror != NULL) {
        for (size_t i = 0; i != t->mirror->num_methods; ++i)
            free(t->mirror->methods[i]);
        free(t->mirror->methods);
        free(t->mirror);
    }
    free(t->stats);
    free(t->fallback_stats);
    free(t);
}
