/* The request-phase plugin interface.
 *
 * A plugin owns one key of a route (`headers:`, later `jwt:`, `rate_limit:` ...): it validates that YAML section at
 * load time (all slow or fallible work happens there, never per request) and then runs on each request of routes that
 * use it, in the order of the compiled-in plugin table (gateway/plugins.c), which fixes the phase order.
 *
 * CONTRACT of on_request:
 * - FICUS_CONTINUE: go on with the next plugin, then the route's action.
 * - FICUS_RESPONDED: the plugin already sent a local reply (ficus_req_respond_*); the chain stops.
 * - FICUS_PAUSE: the plugin started asynchronous work and MUST later call exactly once either ficus_req_resume()
 *   or ficus_req_respond_*(). Its async state lives in the request pool (h2o_mem_alloc_shared with a dispose
 *   callback); when the client goes away the pool is cleared and that dispose MUST cancel the pending work, so no
 *   callback ever touches a freed request (Envoy's onDestroy rule).
 * - ficus_req_resume() always continues on a later tick of the loop, never inside the caller.
 * - The status is the only value that says whether a plugin answered: a helper that may send a response returns the
 *   status too (never a private int meaning "responded"); ficus_req_responded() is there for the rare code that must
 *   ask. The core checks the status against what the plugin did after every phase function (on_request and
 *   on_pre_route), and checks resume / respond misuse; a violation is logged, counted
 *   (ficus_plugin_contract_violations_total{plugin}) and answered 500 when nothing was sent (ficus/contract.h),
 *   never an abort.
 * on_response runs just before the response head is sent, for every response of the route (proxied, redirect,
 * direct, or a local error), and may edit req->h2o->res.headers. */
#ifndef ficus__plugin_h
#define ficus__plugin_h

#include "ficus/conf.h"
#include "ficus/req.h"

#define FICUS_MAX_PLUGINS 32

typedef enum enum_ficus_status_t {
    FICUS_CONTINUE = 0,
    FICUS_PAUSE,
    FICUS_RESPONDED,
} ficus_status_t;

struct st_ficus_plugin_t {
    const char *name; /* the route key this plugin owns */
    /** Validates `node` and builds the plugin's immutable per-route conf. 0, or -1 via ficus_conf_error(); on -1 a
     * non-NULL *conf (a partly built conf) is passed to dispose by the core, so leave *conf NULL if you freed it. */
    int (*on_config)(ficus_conf_ctx_t *cc, const ficus_node_t *node, void **conf);
    /** Frees what on_config built. */
    void (*dispose)(void *conf);
    /** Request phase (may be NULL). */
    ficus_status_t (*on_request)(void *conf, ficus_req_t *req);
    /** Response head hook (may be NULL). */
    void (*on_response)(void *conf, ficus_req_t *req);
    /** Nonzero: available only when the environment has FICUS_TEST_PLUGINS=1 (plugins used by the test suite). */
    int test_only;
    /** Nonzero: when the plugin's global conf exists (its top-level section is present), it also runs on routes that
     * do not name its key: on_config is then called with node == NULL (route defaults, e.g. priority: normal). */
    int applies_to_every_route;
    /** A top-level section this plugin owns (e.g. "rate_limits"), or NULL. */
    const char *global_key;
    /** Validates the top-level section (node is NULL when the file has none) into *gconf (may stay NULL). 0 or -1.
     * Runs before any route is loaded, so route sections can refer to it (ficus_config_plugin_global). */
    int (*on_global_config)(ficus_conf_ctx_t *cc, const ficus_node_t *node, void **gconf);
    void (*global_dispose)(void *gconf);
    /** Before routing, for every request of a generation where the plugin has a global conf (gconf != NULL): lets a
     * plugin own paths on every host (an OIDC callback, a logout endpoint). Same contract as on_request; a request
     * it lets CONTINUE is then routed. req->route is NULL here. */
    ficus_status_t (*on_pre_route)(void *gconf, ficus_req_t *req);
    /** Admin thread: appends the plugin's Prometheus series to *out (allocated from pool). May be NULL. */
    void (*render_metrics)(h2o_mem_pool_t *pool, h2o_iovec_t *out, unsigned num_workers);
    /** Worker thread: a generation became this worker's current one (at start and after each reload). */
    void (*on_worker_generation)(void *gconf, ficus_worker_t *w, const ficus_config_t *config);
};

/** The global conf a plugin built for this generation (NULL if none). */
void *ficus_config_plugin_global(const ficus_config_t *config, const ficus_plugin_t *plugin);

/** The compiled-in plugins, NULL-terminated, in phase order (gateway/plugins.c). */
extern const ficus_plugin_t *const ficus_plugins[];
/** Finds an enabled plugin by route key; NULL if none. */
const ficus_plugin_t *ficus_plugin_find(const char *name);

#endif
