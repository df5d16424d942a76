/* sso: types and functions shared by the files of the sso plugin (the .c files of plugins/sso); internal to the plugin.
 *
 * Nothing here is part of ficus's API: the core sees only `ficus_plugin_sso` (gateway/plugins.c), and the sso_*
 * functions below exist only because the plugin is split into one file per concept (sso.c lists them). They are
 * hidden (not exported from a shared object) and never called from outside plugins/sso.
 * OWNERSHIP: sso_global_t and sso_route_t are built at config load (config.c) and immutable afterwards; an
 * sso_pending_t lives in the request pool (store.c) and holds every pending operation of one request. */
#ifndef ficus__sso_h
#define ficus__sso_h

#include <jansson.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include "ficus/claim_forward.h"
#include "ficus/fetch.h"
#include "ficus/plugin.h"
#include "ficus/provider.h"
#include "ficus/redis.h"
#include "seal.h"

#pragma GCC visibility push(hidden)

#define FLOW_COOKIE_SUFFIX "-flow"
#define MAX_COOKIE 4096
#define SESSION_CACHE_SLOTS 4096
#define MAX_TOKEN_RESPONSE (64 * 1024)

/* the top-level `sso:` section: the relying party */
typedef struct st_sso_global_t {
    ficus_provider_conf_t *provider;
    char *client_id;
    char *client_secret;
    int auth_post;
    char *scopes; /* space separated, starts with "openid" */
    char *callback_path, *logout_path, *backchannel_path, *post_logout_redirect, *external_url;
    char *authorization_endpoint, *token_endpoint, *end_session_endpoint; /* overrides of discovery */
    int store_redis;
    uint64_t ttl_ms, idle_ms, cache_ttl_ms, refresh_before_ms, token_timeout_ms, flow_ttl_ms;
    char *cookie_name;
    char *flow_cookie_name;
    ficus_seal_keys_t keys;
    SSL_CTX *ssl_ctx;
} sso_global_t;

/* a route's `sso:` key */
typedef struct st_sso_route_t {
    sso_global_t *g;
    ficus_claim_forwards_t forward;
    int forward_access_token;
    char **groups;
    size_t num_groups;
} sso_route_t;

/* the async state of one request (in its pool; the dispose cancels everything pending) */
typedef struct st_sso_pending_t sso_pending_t;
struct st_sso_pending_t {
    ficus_req_t *r;
    const sso_global_t *g;
    const sso_route_t *rc;
    ficus_redis_cmd_t *cmd;
    ficus_fetch_t *fetch;
    char *session_id;
    char *code; /* callback: the authorization code while the state is being marked used */
    json_t *flow;
    json_t *session;
    int step;
    int redis_tries;  /* polls while another request refreshes */
    int lookup_tries; /* session lookups retried after a Redis error */
    h2o_timeout_entry_t wait;
    h2o_timeout_entry_t renew;  /* renews the refresh lock's lease while the token call runs */
    h2o_linklist_t lookup_link; /* in a session_lookup_t's waiters */
};

extern const ficus_plugin_t ficus_plugin_sso;

/* ---- http.c ---- */
char *sso_xstrdup(const char *s);
double sso_unix_now(void);
/** `bytes` random bytes (at most 64), base64url; malloc'd. NULL (logged) when the random generator fails: answer 500. */
char *sso_random_token(size_t bytes);
/** Percent-encodes everything but unreserved characters (RFC 3986 2.3). */
void sso_url_encode(FILE *fp, const char *s);
/** The decoded value (malloc'd) of param `name` in an x-www-form-urlencoded string, or NULL. */
char *sso_form_param(const char *s, size_t len, const char *name);
h2o_iovec_t sso_get_cookie(h2o_req_t *req, const char *name);
/** Adds a Set-Cookie with ficus's attributes; max_age < 0: a session cookie. */
void sso_add_set_cookie(ficus_req_t *r, const char *name, const char *value, long max_age);
/** The sign-in error page (no-store), `code` as the log reason. */
ficus_status_t sso_respond_html(ficus_req_t *r, int status, const char *code, const char *message);
/** 302 to `location` (no-store). */
ficus_status_t sso_redirect(ficus_req_t *r, const char *location);
/** The provider's endpoint: which 0 = authorization, 1 = token, 2 = end_session; NULL when not known (yet). */
const char *sso_endpoint(const sso_global_t *g, ficus_req_t *r, int which);

/* ---- origin.c ---- */
/** external_url, else "https://host[:port]" of this request when ficus serves that host (a route's match.host, a
 * name of the listener's certificates); malloc'd. NULL for any other host: answer sso_respond_unknown_host(). */
char *sso_origin_of(const sso_global_t *g, ficus_req_t *r);
/** 400 {"error":"unknown_host"} (log reason sso_unknown_host). RESPONDED. */
ficus_status_t sso_respond_unknown_host(ficus_req_t *r);

/* ---- config.c ---- */
void sso_global_dispose(void *_g);
int sso_on_global_config(ficus_conf_ctx_t *cc, const ficus_node_t *node, void **out);
void sso_dispose(void *_rc);
int sso_on_config(ficus_conf_ctx_t *cc, const ficus_node_t *node, void **out);

/* ---- login.c ---- */
/** Answers an unauthenticated request: the 302 to the provider (navigations) or 401 login_required. RESPONDED. */
ficus_status_t sso_start_login(const sso_global_t *g, ficus_req_t *r);

/* ---- store.c ---- */
sso_pending_t *sso_pending_new(ficus_req_t *r, const sso_global_t *g, const sso_route_t *rc);
/** Ends the async step of a paused request with the status of what it did next: CONTINUE resumes the request,
 * RESPONDED (answered) and PAUSE (more async work started) leave it as it is. */
void sso_finish(sso_pending_t *p, ficus_status_t status);
/** "ficus:sso:<prefix>:{<id>}" */
void sso_session_key(char *buf, size_t cap, const char *prefix, const char *id);
ficus_redis_cmd_t *sso_redis_cmd(ficus_req_t *r, ficus_redis_cb cb, void *data, int argc, const char **argv);
/** GET the session record of p->session_id; cb gets the reply. */
void sso_get_session(sso_pending_t *p, ficus_redis_cb cb);
/** A command whose answer nobody waits for (no-op without a Redis client). */
void sso_redis_fire(ficus_worker_t *w, int argc, const char **argv);
void sso_store_session(ficus_worker_t *w, const sso_global_t *g, const char *id, json_t *session, int keep_ttl);
/** Deletes the record and this worker's cache entry. */
void sso_delete_session(ficus_worker_t *w, const char *id);

/* ---- cache.c ---- */
/** The cached session (borrowed) if fetched less than ttl ms ago, else NULL. */
json_t *sso_cache_get(const char *id, uint64_t now, uint64_t ttl);
/** Caches session (a new reference; NULL drops the entry). */
void sso_cache_put(const char *id, json_t *session, uint64_t now);
/** Looks the session up in Redis for p, sharing a lookup already in flight for the same id. PAUSE. */
ficus_status_t sso_lookup_session(sso_pending_t *p);

/* ---- token.c ---- */
/** POSTs `form` (+ client authentication) to the token endpoint; 0 when started (cb is then called), -1 if not. */
int sso_post_token(sso_pending_t *p, const char *form, ficus_fetch_cb cb);

/* ---- refresh.c ---- */
/** Whether the session's access token is due for a refresh at `now`: it expires within min(refresh_before, half its
 * lifetime) and there is a refresh token. */
int sso_refresh_due(const sso_global_t *g, json_t *session, double now);
/** Copies the tokens of a token endpoint answer into the session: access_token, at_exp, at_ttl (its lifetime,
 * expires_in or 300 s), refresh_token when the provider sent one (rotation). */
void sso_take_tokens(json_t *session, json_t *doc, double now);
/** Takes the session's refresh lock and refreshes p->session (see refresh.c). PAUSE. */
ficus_status_t sso_start_refresh(sso_pending_t *p);

/* ---- access.c ---- */
/** Authorizes the session for p's route and forwards the identity: CONTINUE, or RESPONDED (403). */
ficus_status_t sso_session_ok(sso_pending_t *p, json_t *session);
/** What a found session needs: CONTINUE (valid), RESPONDED (expired: a new login, or 403), PAUSE (refresh started). */
ficus_status_t sso_check_session(sso_pending_t *p, json_t *session);
ficus_status_t sso_on_request(void *_rc, ficus_req_t *r);

/* ---- callback.c, logout.c, backchannel.c: pre-route endpoints ---- */
ficus_status_t sso_on_callback(const sso_global_t *g, ficus_req_t *r);
ficus_status_t sso_on_logout(const sso_global_t *g, ficus_req_t *r);
ficus_status_t sso_on_backchannel(const sso_global_t *g, ficus_req_t *r);

#pragma GCC visibility pop

#endif
