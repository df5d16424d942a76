/* sso: configuration. The top-level `sso:` section (the relying party: provider, client credentials, paths, session
 * store and its keys, timings) and the route's `sso:` key (`true`, or forward / forward_access_token / groups), both
 * validated at load time with file:line errors; unknown keys are errors. The client secret and the seal keys are
 * read here, never per request, and wiped when the generation is disposed. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/log.h"
#include "sso.h"

void sso_global_dispose(void *_g)
{
    sso_global_t *g = _g;
    free(g->client_id);
    if (g->client_secret != NULL) {
        OPENSSL_cleanse(g->client_secret, strlen(g->client_secret));
        free(g->client_secret);
    }
    free(g->scopes);
    free(g->callback_path);
    free(g->logout_path);
    free(g->backchannel_path);
    free(g->post_logout_redirect);
    free(g->external_url);
    free(g->authorization_endpoint);
    free(g->token_endpoint);
    free(g->end_session_endpoint);
    free(g->cookie_name);
    free(g->flow_cookie_name);
    if (g->ssl_ctx != NULL)
        SSL_CTX_free(g->ssl_ctx);
    OPENSSL_cleanse(&g->keys, sizeof(g->keys));
    free(g);
}

static int check_path(ficus_conf_ctx_t *cc, const ficus_node_t *node, char **out, const char *dflt)
{
    const char *v = node != NULL ? node->data.scalar.value : dflt;
    if (v[0] != '/' || strchr(v, '?') != NULL || strchr(v, ' ') != NULL)
        return ficus_conf_error(cc, node, "path must start with '/' and have no query or spaces (got '%s')", v);
    *out = sso_xstrdup(v);
    return 0;
}

int sso_on_global_config(ficus_conf_ctx_t *cc, const ficus_node_t *node, void **out)
{
    if (node == NULL)
        return 0;
    ficus_node_t *provider, *client_id, *client_secret_file, *client_auth, *scopes, *callback_path, *logout_path, *backchannel,
        *post_logout, *external_url, *session, *refresh_before, *token_timeout, *authz_ep, *token_ep, *end_ep;
    if (ficus_conf_mapping(cc, node, "provider:s,client_id:s,client_secret_file:s,session:m",
                           "client_auth:s,scopes:a,callback_path:s,logout_path:s,backchannel_logout_path:s,post_logout_redirect:s,"
                           "external_url:s,refresh_before:s,token_timeout:s,authorization_endpoint:s,token_endpoint:s,"
                           "end_session_endpoint:s",
                           &provider, &client_id, &client_secret_file, &session, &client_auth, &scopes, &callback_path,
                           &logout_path, &backchannel, &post_logout, &external_url, &refresh_before, &token_timeout, &authz_ep,
                           &token_ep, &end_ep) != 0)
        return -1;
    sso_global_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        ficus_fatal("no memory");
    *out = g;
    if ((g->provider = ficus_config_provider(cc->config, provider->data.scalar.value)) == NULL)
        return ficus_conf_error(cc, provider, "unknown provider '%s' (define it under `providers:`)", provider->data.scalar.value);
    if (g->provider->source != FICUS_KEYS_FROM_DISCOVERY && (authz_ep == NULL || token_ep == NULL))
        return ficus_conf_error(cc, provider,
                                "sso needs provider '%s' with `discovery: true`, or authorization_endpoint and "
                                "token_endpoint here",
                                g->provider->name);
    g->client_id = sso_xstrdup(client_id->data.scalar.value);
    if (ficus_conf_read_secret(cc, client_secret_file, "client secret file", &g->client_secret) != 0)
        return -1;
    if (client_auth != NULL) {
        static const char *const methods[] = {"client_secret_basic", "client_secret_post", NULL};
        if (ficus_conf_enum(cc, client_auth, methods, &g->auth_post) != 0)
            return -1;
    }
    {
        char *buf;
        size_t len;
        FILE *fp = open_memstream(&buf, &len);
        fputs("openid", fp);
        for (size_t i = 0; scopes != NULL && i != scopes->data.sequence.size; ++i) {
            ficus_node_t *s = scopes->data.sequence.elements[i];
            if (ficus_conf_expect(cc, s, FICUS_NODE_SCALAR) != 0) {
                fclose(fp);
                free(buf);
                return -1;
            }
            for (const char *c = s->data.scalar.value; *c != '\0'; ++c)
                if (!isgraph((unsigned char)*c) || *c == '"' || *c == '\\') {
                    fclose(fp);
                    free(buf);
                    return ficus_conf_error(cc, s, "invalid scope '%s'", s->data.scalar.value);
                }
            if (strcmp(s->data.scalar.value, "openid") != 0)
                fprintf(fp, " %s", s->data.scalar.value);
        }
        if (scopes == NULL)
            fputs(" profile email", fp);
        fclose(fp);
        g->scopes = buf;
    }
    if (check_path(cc, callback_path, &g->callback_path, "/_ficus/callback") != 0 ||
        check_path(cc, logout_path, &g->logout_path, "/_ficus/logout") != 0 ||
        check_path(cc, backchannel, &g->backchannel_path, "/_ficus/backchannel-logout") != 0)
        return -1;
    g->post_logout_redirect = post_logout != NULL ? sso_xstrdup(post_logout->data.scalar.value) : NULL;
    if (external_url != NULL) {
        const char *u = external_url->data.scalar.value;
        size_t n = strlen(u);
        if (strncmp(u, "https://", 8) != 0 || n < 9 || u[n - 1] == '/' || strchr(u + 8, '/') != NULL)
            return ficus_conf_error(cc, external_url, "external_url is https://host[:port] without a path");
        g->external_url = sso_xstrdup(u);
    }
    g->authorization_endpoint = authz_ep != NULL ? sso_xstrdup(authz_ep->data.scalar.value) : NULL;
    g->token_endpoint = token_ep != NULL ? sso_xstrdup(token_ep->data.scalar.value) : NULL;
    g->end_session_endpoint = end_ep != NULL ? sso_xstrdup(end_ep->data.scalar.value) : NULL;
    g->refresh_before_ms = 60000;
    g->token_timeout_ms = 5000;
    g->flow_ttl_ms = 600000;
    if (refresh_before != NULL && ficus_conf_duration(cc, refresh_before, 0, 3600000, &g->refresh_before_ms) != 0)
        return -1;
    if (token_timeout != NULL && ficus_conf_duration(cc, token_timeout, 100, 60000, &g->token_timeout_ms) != 0)
        return -1;

    ficus_node_t *store, *ttl, *idle, *cookie_name, *keys_file, *cache_ttl;
    if (ficus_conf_mapping(cc, session, "keys_file:s", "store:s,ttl:s,idle_timeout:s,cookie_name:s,cache_ttl:s", &keys_file, &store,
                           &ttl, &idle, &cookie_name, &cache_ttl) != 0)
        return -1;
    if (ficus_seal_keys_load(cc, keys_file, &g->keys) != 0)
        return -1;
    g->store_redis = cc->config->redis != NULL;
    if (store != NULL) {
        static const char *const stores[] = {"cookie", "redis", NULL};
        if (ficus_conf_enum(cc, store, stores, &g->store_redis) != 0)
            return -1;
        if (g->store_redis && cc->config->redis == NULL)
            return ficus_conf_error(cc, store, "session store redis needs a `redis:` section");
    }
    g->ttl_ms = 8 * 3600000;
    g->idle_ms = 3600000;
    g->cache_ttl_ms = 5000;
    if (ttl != NULL && ficus_conf_duration(cc, ttl, 60000, 30 * 86400000ULL, &g->ttl_ms) != 0)
        return -1;
    if (idle != NULL && ficus_conf_duration(cc, idle, 10000, 30 * 86400000ULL, &g->idle_ms) != 0)
        return -1;
    if (cache_ttl != NULL && ficus_conf_duration(cc, cache_ttl, 0, 60000, &g->cache_ttl_ms) != 0)
        return -1;
    const char *cn = cookie_name != NULL ? cookie_name->data.scalar.value : "__Host-ficus";
    for (const char *c = cn; *c != '\0'; ++c)
        if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_'))
            return ficus_conf_error(cc, cookie_name, "invalid cookie name '%s'", cn);
    g->cookie_name = sso_xstrdup(cn);
    if (asprintf(&g->flow_cookie_name, "%s%s", cn, FLOW_COOKIE_SUFFIX) < 0)
        ficus_fatal("no memory");
    char err[256];
    if ((g->ssl_ctx = ficus_fetch_new_ssl_ctx(g->provider->ca_file, err, sizeof(err))) == NULL)
        return ficus_conf_error(cc, provider, "%s", err);
    return 0;
}

void sso_dispose(void *_rc)
{
    sso_route_t *rc = _rc;
    ficus_claim_forwards_dispose(&rc->forward);
    for (size_t i = 0; i != rc->num_groups; ++i)
        free(rc->groups[i]);
    free(rc->groups);
    free(rc);
}

int sso_on_config(ficus_conf_ctx_t *cc, const ficus_node_t *node, void **out)
{
    sso_route_t *rc = calloc(1, sizeof(*rc));
    if (rc == NULL)
        ficus_fatal("no memory");
    *out = rc;
    if ((rc->g = ficus_config_plugin_global(cc->config, &ficus_plugin_sso)) == NULL)
        return ficus_conf_error(cc, node, "`sso` on a route needs a top-level `sso:` section");
    if (node->type == FICUS_NODE_SCALAR) {
        int on;
        if (ficus_conf_bool(cc, node, &on) != 0)
            return -1;
        if (!on)
            return ficus_conf_error(cc, node, "`sso: false` is the default: remove the key");
        return 0;
    }
    ficus_node_t *forward, *forward_at, *groups;
    if (ficus_conf_mapping(cc, node, "", "forward:m,forward_access_token:s,groups:a", &forward, &forward_at, &groups) != 0)
        return -1;
    if (forward_at != NULL && ficus_conf_bool(cc, forward_at, &rc->forward_access_token) != 0)
        return -1;
    if (rc->forward_access_token && !rc->g->store_redis)
        return ficus_conf_error(cc, forward_at,
                                "forward_access_token needs the redis session store (tokens never go into cookies)");
    if (forward != NULL && ficus_claim_forwards_load(cc, forward, &rc->forward) != 0)
        return -1;
    if (groups != NULL) {
        if ((rc->groups = calloc(groups->data.sequence.size + 1, sizeof(char *))) == NULL)
            ficus_fatal("no memory");
        for (size_t i = 0; i != groups->data.sequence.size; ++i) {
            if (ficus_conf_expect(cc, groups->data.sequence.elements[i], FICUS_NODE_SCALAR) != 0)
                return -1;
            rc->groups[rc->num_groups++] = sso_xstrdup(groups->data.sequence.elements[i]->data.scalar.value);
        }
    }
    return 0;
}
