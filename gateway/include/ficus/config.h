/* A configuration generation: the whole validated YAML file as one immutable, refcounted object.
 *
 * DESIGN: ficus_config_load() reads and validates everything (core sections, then each route's plugin sections
 * through the plugin's on_config) and builds TLS contexts; any error leaves nothing behind and reports
 * "file:line: what is wrong". A loaded generation never changes. Workers and requests hold references; the last
 * ficus_config_release() frees it (on whichever thread drops it: everything in it is plain heap memory or
 * refcounted OpenSSL objects).
 * OWNERSHIP: malloc'd, freed by ficus_config_release(). */
#ifndef ficus__config_h
#define ficus__config_h

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <sys/socket.h>
#include "ficus/conf.h"
#include "ficus/metrics.h"
#include "ficus/path.h"
#include "ficus/upstream/types.h"
#include "h2o.h"

typedef struct st_ficus_plugin_t ficus_plugin_t;

typedef struct st_ficus_tls_conf_t {
    SSL_CTX *ssl_ctx; /* default context; SNI switches to one of ctxs */
    size_t num_certs;
    struct st_ficus_tls_cert_t {
        SSL_CTX *ssl_ctx;
        char **names; /* DNS names (lowercase) from the certificate's SAN (or CN when no SAN) */
        size_t num_names;
        h2o_iovec_t ocsp; /* stapled OCSP response (DER, malloc'd), base NULL: none */
    } * certs;
    uint64_t hsts_max_age_s;                        /* 0 = no HSTS header */
    h2o_iovec_t hsts_value;                         /* "max-age=N", formatted at load (base NULL when none) */
    int session_tickets;                            /* 0: no tickets (session_tickets: false) */
    struct st_ficus_tls_ticket_keys_t *ticket_keys; /* from session_ticket_keys files; NULL: automatic keys */
} ficus_tls_conf_t;

typedef struct st_ficus_listener_conf_t {
    char *address; /* as written, e.g. "127.0.0.1:8443" */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    ficus_tls_conf_t *tls;        /* NULL = plain */
    unsigned redirect_https_port; /* != 0: plain listener that only redirects */
} ficus_listener_conf_t;

typedef struct st_ficus_cidr_t {
    int family; /* AF_INET / AF_INET6 */
    uint8_t addr[16];
    unsigned prefix;
} ficus_cidr_t;

typedef struct st_ficus_header_match_t {
    h2o_iovec_t name;  /* lowercase */
    h2o_iovec_t value; /* base == NULL: presence only */
} ficus_header_match_t;

typedef struct st_ficus_route_match_t {
    h2o_iovec_t host;   /* lowercase; base == NULL: any host */
    int host_is_suffix; /* "*.example.com" stored as ".example.com" */
    h2o_iovec_t path;   /* base == NULL: any path */
    int path_is_prefix;
    char **methods; /* NULL = any method */
    size_t num_methods;
    ficus_header_match_t *headers;
    size_t num_headers;
} ficus_route_match_t;

typedef enum enum_ficus_action_t {
    FICUS_ACTION_PROXY = 0,
    FICUS_ACTION_REDIRECT,
    FICUS_ACTION_RESPOND,
} ficus_action_t;

typedef struct st_ficus_plugin_instance_t {
    const ficus_plugin_t *plugin;
    void *conf;
} ficus_plugin_instance_t;

typedef struct st_ficus_route_t {
    char *name;
    size_t index;
    unsigned line; /* where it was defined, for messages */
    ficus_route_match_t match;
    ficus_action_t action;
    union {
        struct {
            ficus_upstream_conf_t *upstream; /* `to`; NULL for `split` (traffic->split chooses) */
            h2o_iovec_t strip_prefix;        /* base == NULL: none */
            h2o_iovec_t add_prefix;
            int preserve_host;
        } proxy;
        struct {
            char *location_template; /* with {path} {query} {host} */
            int status;
        } redirect;
        struct {
            int status;
            h2o_iovec_t body;
            char *content_type;
        } respond;
    } data;
    struct st_ficus_traffic_conf_t *traffic; /* proxied routes: split, fallback, mirror, series (ficus/traffic.h) */
    ficus_plugin_instance_t *plugins;        /* in the order of the plugin table, which fixes the phase order */
    size_t num_plugins;
    ficus_route_stats_t *stats;
} ficus_route_t;

typedef enum enum_ficus_access_log_t {
    FICUS_ACCESS_LOG_OFF = 0,
    FICUS_ACCESS_LOG_STDOUT,
    FICUS_ACCESS_LOG_STDERR,
    FICUS_ACCESS_LOG_FILE,
} ficus_access_log_kind_t;

typedef struct st_ficus_config_t {
    char *filename;
    /* NULL for a generation loaded from the file. A generation derived from one by a DNS change
     * (ficus_config_derive) shares everything of `base` (it holds a reference) but its upstreams' endpoints. */
    struct st_ficus_config_t *base;
    uint64_t generation; /* set when published */
    double loaded_at;    /* unix time */
    int refcnt;          /* atomic */
    struct {
        unsigned workers;
        ficus_listener_conf_t *listeners;
        size_t num_listeners;
        char *admin_address; /* NULL = no admin listener */
        struct sockaddr_storage admin_addr;
        socklen_t admin_addrlen;
        ficus_access_log_kind_t access_log;
        char *access_log_path;
        int access_log_fd; /* 1, 2, an opened file, or -1 (off) */
        int log_level;
        uint64_t max_header_bytes;
        uint64_t max_body_bytes;
        uint64_t send_timeout_ms;             /* nothing written to the client for this long: connection closed */
        uint64_t header_timeout_ms;           /* a request's header block must be complete this long after it began */
        uint64_t max_upstream_per_connection; /* HTTP/2 requests of one connection processed at once (others wait) */
        uint64_t max_response_buffer;         /* per exchange: the upstream socket's receive buffer */
        uint64_t handshake_timeout_ms;
        uint64_t idle_timeout_ms;
        uint64_t drain_timeout_ms;
        ficus_cidr_t *trusted_proxies;
        size_t num_trusted_proxies;
        uint64_t h2_max_resets;
        uint64_t h2_reset_window_ms;
        uint64_t h2_max_resets_per_address; /* over all connections of one address (IPv6: /64) */
        uint64_t h2_max_resets_total;       /* over all clients */
        int expose_upstream;                /* add x-ficus-upstream (the upstream that answered) to responses */
        enum { FICUS_UNDERSCORE_DROP = 0, FICUS_UNDERSCORE_REJECT, FICUS_UNDERSCORE_ALLOW } underscore_headers;
        int h2c;                    /* server.http2.h2c: cleartext HTTP/2 (Upgrade: h2c, prior knowledge) on plain listeners */
        ficus_path_conf_t paths;    /* server.paths: how request paths are canonicalized (ficus/path.h) */
        int request_id_in_response; /* echo X-Request-Id to the client (off by default: on HTTP/2 a unique value per
                                       response is an HPACK table insertion in H2O, ~5 % CPU per request) */
    } server;
    struct st_ficus_redis_conf_t *redis;       /* NULL: no Redis (state stays in process) */
    struct st_ficus_resolver_conf_t *resolver; /* the `resolver:` section (its defaults when absent); never NULL */
    struct st_ficus_provider_conf_t **providers;
    size_t num_providers;
    ficus_upstream_conf_t **upstreams;
    size_t num_upstreams;
    ficus_route_t **routes;
    size_t num_routes;
    void *plugin_globals[32];      /* FICUS_MAX_PLUGINS, by index in ficus_plugins */
    h2o_iovec_t *identity_headers; /* set by ficus from verified identities: client copies are removed on every request */
    size_t num_identity_headers;
} ficus_config_t;

/**
 * Loads and validates `filename`. Returns a generation with refcnt 1, or NULL with "file:line: what" in err.
 * dry_run (ficus -t): validate everything including certificates and plugin sections, start nothing.
 */
ficus_config_t *ficus_config_load(const char *filename, int dry_run, char *err, size_t errlen);
/** Same from a string (tests, fuzzing): `name` is the filename used in messages. */
ficus_config_t *ficus_config_load_string(const char *name, const char *text, size_t len, int dry_run, char *err, size_t errlen);
/**
 * A new generation (refcnt 1) equal to `running` but for the addresses of its upstreams' host names, which are the
 * resolver's current answers (ficus_resolver_addresses): what a DNS change publishes. Built from memory, never from
 * the file (an edited, not yet reloaded file does not take effect). It shares everything else with the generation
 * loaded from the file, which it keeps alive. Control thread.
 */
ficus_config_t *ficus_config_derive(ficus_config_t *running);
void ficus_config_retain(ficus_config_t *config);
void ficus_config_release(ficus_config_t *config);

/**
 * Checks whether `next` may replace `running` on reload. Returns 0, or -1 with the reason in err (settings that
 * need a restart: listener addresses and kinds, workers, admin address).
 */
int ficus_config_check_reloadable(const ficus_config_t *running, const ficus_config_t *next, char *err, size_t errlen);

/** Declares a header that ficus sets from a verified identity (lowercase name): every request of this generation,
 * on every route, has client-sent copies removed. Called by plugins from on_config. */
void ficus_config_add_identity_header(ficus_config_t *config, const char *name);

/** Looks up an upstream by name (NULL if none). */
ficus_upstream_conf_t *ficus_config_upstream(const ficus_config_t *config, const char *name);

/** Parses "IP:PORT" / "[IPv6]:PORT" / ":PORT" (all addresses). Returns 0 or -1. */
int ficus_parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *len);
/** Whether addr (AF_INET/AF_INET6 sockaddr) lies in one of the CIDRs. */
int ficus_cidr_contains(const ficus_cidr_t *cidrs, size_t n, const struct sockaddr *addr);

#endif
