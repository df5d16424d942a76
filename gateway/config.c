/* Loading a configuration generation: YAML node tree → validated, immutable ficus_config_t.
 *
 * DESIGN: this file knows the top level (server, upstreams, routes) and a route's core keys (name, match, the
 * action keys). Any other route key is handed to the plugin owning it (gateway/plugins.c), which validates its own
 * section. Every check reports "file:line: what is wrong" through ficus_conf_error(); the first error aborts the
 * load and everything built so far is freed: a generation is applied whole or not at all.
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
#include "ficus/config.h"
#include "ficus/log.h"
#include "ficus/plugin.h"
#include "ficus/provider.h"
#include "ficus/redis.h"
#include "ficus/resolver.h"
#include "ficus/tls.h"
#include "ficus/upstream.h"
#include "ficus/traffic.h"

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n == 0 ? 1 : n, size);
    if (p == NULL)
        ficus_fatal("no memory");
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        ficus_fatal("no memory");
    return p;
}

/* Strings ficus writes onto the wire (request line, Host, Location) must be visible ASCII without spaces. */
static int has_unsafe_char(const char *s)
{
    for (; *s != '\0'; ++s)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return 1;
    return 0;
}

static h2o_iovec_t iov_dup_lower(const char *s, size_t len)
{
    char *p = xcalloc(1, len + 1);
    for (size_t i = 0; i != len; ++i)
        p[i] = tolower((unsigned char)s[i]);
    return h2o_iovec_init(p, len);
}

int ficus_parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[256];
    const char *colon, *port_str;
    memset(ss, 0, sizeof(*ss));
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end == s + 1 || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host))
            return -1;
        memcpy(host, s + 1, end - s - 1);
        host[end - s - 1] = '\0';
        port_str = end + 2;
    } else {
        if ((colon = strrchr(s, ':')) == NULL || (size_t)(colon - s) >= sizeof(host))
            return -1;
        memcpy(host, s, colon - s);
        host[colon - s] = '\0';
        port_str = colon + 1;
    }
    long port = 0;
    if (*port_str == '\0' || strlen(port_str) > 5)
        return -1;
    for (const char *p = port_str; *p != '\0'; ++p) {
        if (*p < '0' || *p > '9')
            return -1; /* digits only: no sign, no spaces */
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535)
        return -1;
    if (host[0] == '\0' || strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0) {
        struct sockaddr_in *sin = (void *)ss;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        sin->sin_port = htons(port);
        *len = sizeof(*sin);
        return 0;
    }
    struct sockaddr_in *sin = (void *)ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        *len = sizeof(*sin);
        return 0;
    }
    struct sockaddr_in6 *sin6 = (void *)ss;
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        *len = sizeof(*sin6);
        return 0;
    }
    return -1;
}

static int parse_cidr(const char *s, ficus_cidr_t *out)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t hostlen = slash != NULL ? (size_t)(slash - s) : strlen(s);
    if (hostlen >= sizeof(buf))
        return -1;
    memcpy(buf, s, hostlen);
    buf[hostlen] = '\0';
    memset(out, 0, sizeof(*out));
    unsigned max;
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    out->prefix = max;
    if (slash != NULL) {
        long p = 0;
        if (slash[1] == '\0' || strlen(slash + 1) > 3)
            return -1;
        for (const char *c = slash + 1; *c != '\0'; ++c) {
            if (*c < '0' || *c > '9')
                return -1;
            p = p * 10 + (*c - '0');
        }
        if (p > (long)max)
            return -1;
        out->prefix = (unsigned)p;
    }
    return 0;
}

int ficus_cidr_contains(const ficus_cidr_t *cidrs, size_t n, const struct sockaddr *addr)
{
    const uint8_t *bytes;
    int family = addr->sa_family;
    uint8_t mapped[4];
    if (family == AF_INET) {
        bytes = (const uint8_t *)&((const struct sockaddr_in *)addr)->sin_addr;
    } else if (family == AF_INET6) {
        bytes = (const uint8_t *)&((const struct sockaddr_in6 *)addr)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)bytes)) {
            memcpy(mapped, bytes + 12, 4);
            bytes = mapped;
            family = AF_INET;
        }
    } else {
        return 0;
    }
    for (size_t i = 0; i != n; ++i) {
        if (cidrs[i].family != family)
            continue;
        unsigned full = cidrs[i].prefix / 8, rest = cidrs[i].prefix % 8;
        if (memcmp(cidrs[i].addr, bytes, full) != 0)
            continue;
        if (rest != 0) {
            uint8_t mask = (uint8_t)(0xff << (8 - rest));
            if ((cidrs[i].addr[full] & mask) != (bytes[full] & mask))
                continue;
        }
        return 1;
    }
    return 0;
}

/* ---- server ---- */

static int load_listener(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_listener_conf_t *l)
{
    ficus_node_t *address, *tls, *redirect;
    if (ficus_conf_mapping(cc, node, "address:s", "tls:m,redirect_https:s", &address, &tls, &redirect) != 0)
        return -1;
    l->address = xstrdup(address->data.scalar.value);
    if (ficus_parse_address(l->address, &l->addr, &l->addrlen) != 0)
        return ficus_conf_error(cc, address, "invalid listen address '%s' (use e.g. \"127.0.0.1:8443\" or \"[::1]:8443\")",
                                l->address);
    if (tls != NULL && redirect != NULL)
        return ficus_conf_error(cc, redirect, "a listener has either `tls` or `redirect_https`, not both");
    if (redirect != NULL) {
        uint64_t port;
        if (ficus_conf_uint(cc, redirect, 1, 65535, &port) != 0)
            return -1;
        l->redirect_https_port = (unsigned)port;
    }
    if (tls != NULL && ficus_tls_conf_load(cc, tls, &l->tls) != 0)
        return -1;
    return 0;
}

/* server.paths: { merge_slashes: true|false, escaped_slashes: reject|decode|keep } (ficus/path.h) */
static int load_paths(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_path_conf_t *out)
{
    static const ficus_path_conf_t defaults = FICUS_PATH_CONF_DEFAULT;
    static const char *const modes[] = {"reject", "decode", "keep", NULL};
    ficus_node_t *merge, *escaped;
    int mode;
    *out = defaults;
    if (node == NULL)
        return 0;
    if (ficus_conf_mapping(cc, node, "", "merge_slashes:s,escaped_slashes:s", &merge, &escaped) != 0)
        return -1;
    if (merge != NULL && ficus_conf_bool(cc, merge, &out->merge_slashes) != 0)
        return -1;
    if (escaped != NULL) {
        if (ficus_conf_enum(cc, escaped, modes, &mode) != 0)
            return -1;
        out->escaped_slashes = (ficus_escaped_slashes_t)mode;
    }
    return 0;
}

static int load_server(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_config_t *config)
{
    ficus_node_t *workers, *listen, *admin, *access_log, *log_level, *limits, *timeouts, *drain, *trusted, *http2, *rid_in_response,
        *expose_upstream, *paths;
    if (ficus_conf_mapping(cc, node, "listen:a",
                           "workers:s,admin:m,access_log:s,log_level:s,limits:m,timeouts:m,drain_timeout:s,trusted_proxies:a,"
                           "http2:m,request_id_in_response:s,expose_upstream:s,paths:m",
                           &listen, &workers, &admin, &access_log, &log_level, &limits, &timeouts, &drain, &trusted, &http2,
                           &rid_in_response, &expose_upstream, &paths) != 0)
        return -1;
    if (load_paths(cc, paths, &config->server.paths) != 0)
        return -1;
    if (rid_in_response != NULL && ficus_conf_bool(cc, rid_in_response, &config->server.request_id_in_response) != 0)
        return -1;
    if (expose_upstream != NULL && ficus_conf_bool(cc, expose_upstream, &config->server.expose_upstream) != 0)
        return -1;

    config->server.workers = 0; /* auto */
    if (workers != NULL && strcmp(workers->data.scalar.value, "auto") != 0) {
        uint64_t n;
        if (ficus_conf_uint(cc, workers, 1, FICUS_MAX_WORKERS, &n) != 0)
            return -1;
        config->server.workers = (unsigned)n;
    }

    if (listen->data.sequence.size == 0)
        return ficus_conf_error(cc, listen, "`listen` needs at least one listener");
    config->server.num_listeners = listen->data.sequence.size;
    config->server.listeners = xcalloc(config->server.num_listeners, sizeof(*config->server.listeners));
    for (size_t i = 0; i != listen->data.sequence.size; ++i) {
        if (load_listener(cc, listen->data.sequence.elements[i], config->server.listeners + i) != 0)
            return -1;
        for (size_t j = 0; j != i; ++j)
            if (config->server.listeners[j].addrlen == config->server.listeners[i].addrlen &&
                memcmp(&config->server.listeners[j].addr, &config->server.listeners[i].addr, config->server.listeners[i].addrlen) ==
                    0)
                return ficus_conf_error(cc, listen->data.sequence.elements[i], "duplicate listen address '%s'",
                                        config->server.listeners[i].address);
    }

    if (admin != NULL) {
        ficus_node_t *address;
        if (ficus_conf_mapping(cc, admin, "address:s", "", &address) != 0)
            return -1;
        config->server.admin_address = xstrdup(address->data.scalar.value);
        if (ficus_parse_address(config->server.admin_address, &config->server.admin_addr, &config->server.admin_addrlen) != 0)
            return ficus_conf_error(cc, address, "invalid admin address '%s' (use e.g. \"127.0.0.1:9901\")",
                                    config->server.admin_address);
    }

    config->server.access_log = FICUS_ACCESS_LOG_STDOUT;
    if (access_log != NULL) {
        const char *v = access_log->data.scalar.value;
        if (strcmp(v, "stdout") == 0) {
            config->server.access_log = FICUS_ACCESS_LOG_STDOUT;
        } else if (strcmp(v, "stderr") == 0) {
            config->server.access_log = FICUS_ACCESS_LOG_STDERR;
        } else if (strcmp(v, "off") == 0 || (!access_log->data.scalar.is_quoted && strcmp(v, "false") == 0)) {
            config->server.access_log = FICUS_ACCESS_LOG_OFF;
        } else if (v[0] == '\0') {
            return ficus_conf_error(cc, access_log, "`access_log` must be stdout, stderr, off or a file path");
        } else {
            config->server.access_log = FICUS_ACCESS_LOG_FILE;
            config->server.access_log_path = xstrdup(v);
        }
    }

    switch (config->server.access_log) {
    case FICUS_ACCESS_LOG_OFF:
        config->server.access_log_fd = -1;
        break;
    case FICUS_ACCESS_LOG_STDOUT:
        config->server.access_log_fd = 1;
        break;
    case FICUS_ACCESS_LOG_STDERR:
        config->server.access_log_fd = 2;
        break;
    case FICUS_ACCESS_LOG_FILE:
        /* opened at load (control thread), so a path that cannot be written is a config error, not a silent loss;
         * `-t` creates nothing */
        if (cc->dry_run)
            break;
        if ((config->server.access_log_fd =
                 open(config->server.access_log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)) == -1)
            return ficus_conf_error(cc, access_log, "cannot open access log '%s': %s", config->server.access_log_path,
                                    strerror(errno));
        break;
    }

    config->server.log_level = FICUS_LOG_INFO;
    if (log_level != NULL) {
        static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
        if (ficus_conf_enum(cc, log_level, levels, &config->server.log_level) != 0)
            return -1;
    }

    config->server.max_header_bytes = 16 * 1024;
    config->server.max_body_bytes = 10 * 1024 * 1024;
    config->server.send_timeout_ms = 30000;
    config->server.header_timeout_ms = 10000;
    config->server.max_upstream_per_connection = 32;
    config->server.max_response_buffer = 256 * 1024;
    if (limits != NULL) {
        ficus_node_t *mh, *mb, *us, *st, *ht, *mu, *rb;
        static const char *const us_modes[] = {"drop", "reject", "allow", NULL};
        int us_mode;
        if (ficus_conf_mapping(cc, limits, "",
                               "max_header_bytes:s,max_body_bytes:s,underscore_headers:s,send_timeout:s,header_timeout:s,"
                               "max_upstream_per_connection:s,max_response_buffer:s",
                               &mh, &mb, &us, &st, &ht, &mu, &rb) != 0)
            return -1;
        if (us != NULL) {
            if (ficus_conf_enum(cc, us, us_modes, &us_mode) != 0)
                return -1;
            config->server.underscore_headers = us_mode;
        }
        if (mh != NULL && ficus_conf_size(cc, mh, 1024, 1024 * 1024, &config->server.max_header_bytes) != 0)
            return -1;
        if (mb != NULL && ficus_conf_size(cc, mb, 0, (uint64_t)1 << 32, &config->server.max_body_bytes) != 0)
            return -1;
        if (st != NULL && ficus_conf_duration(cc, st, 100, 3600000, &config->server.send_timeout_ms) != 0)
            return -1;
        if (ht != NULL && ficus_conf_duration(cc, ht, 100, 3600000, &config->server.header_timeout_ms) != 0)
            return -1;
        if (mu != NULL && ficus_conf_uint(cc, mu, 1, 256, &config->server.max_upstream_per_connection) != 0)
            return -1;
        if (rb != NULL && ficus_conf_size(cc, rb, 16 * 1024, 64 * 1024 * 1024, &config->server.max_response_buffer) != 0)
            return -1;
    }

    config->server.handshake_timeout_ms = 10000;
    config->server.idle_timeout_ms = 60000;
    if (timeouts != NULL) {
        ficus_node_t *hs, *idle;
        if (ficus_conf_mapping(cc, timeouts, "", "handshake:s,idle:s", &hs, &idle) != 0)
            return -1;
        if (hs != NULL && ficus_conf_duration(cc, hs, 100, 3600000, &config->server.handshake_timeout_ms) != 0)
            return -1;
        if (idle != NULL && ficus_conf_duration(cc, idle, 100, 86400000, &config->server.idle_timeout_ms) != 0)
            return -1;
    }

    config->server.drain_timeout_ms = 30000;
    if (drain != NULL && ficus_conf_duration(cc, drain, 0, 3600000, &config->server.drain_timeout_ms) != 0)
        return -1;

    if (trusted != NULL) {
        config->server.num_trusted_proxies = trusted->data.sequence.size;
        config->server.trusted_proxies = xcalloc(trusted->data.sequence.size, sizeof(ficus_cidr_t));
        for (size_t i = 0; i != trusted->data.sequence.size; ++i) {
            ficus_node_t *e = trusted->data.sequence.elements[i];
            if (ficus_conf_expect(cc, e, FICUS_NODE_SCALAR) != 0)
                return -1;
            if (parse_cidr(e->data.scalar.value, config->server.trusted_proxies + i) != 0)
                return ficus_conf_error(cc, e, "invalid CIDR '%s' (use e.g. 10.0.0.0/8 or ::1/128)", e->data.scalar.value);
        }
    }

    config->server.h2_max_resets = 200;
    config->server.h2_reset_window_ms = 10000;
    config->server.h2_max_resets_per_address = 1000;
    config->server.h2_max_resets_total = 20000;
    if (http2 != NULL) {
        ficus_node_t *mr, *rw, *h2c, *mra, *mrt;
        if (ficus_conf_mapping(cc, http2, "", "max_resets:s,reset_window:s,h2c:s,max_resets_per_address:s,max_resets_total:s", &mr,
                               &rw, &h2c, &mra, &mrt) != 0)
            return -1;
        if (mra != NULL && ficus_conf_uint(cc, mra, 1, 100000000, &config->server.h2_max_resets_per_address) != 0)
            return -1;
        if (mrt != NULL && ficus_conf_uint(cc, mrt, 1, 1000000000, &config->server.h2_max_resets_total) != 0)
            return -1;
        if (h2c != NULL && ficus_conf_bool(cc, h2c, &config->server.h2c) != 0)
            return -1;
        if (mr != NULL && ficus_conf_uint(cc, mr, 1, 1000000, &config->server.h2_max_resets) != 0)
            return -1;
        if (rw != NULL && ficus_conf_duration(cc, rw, 100, 3600000, &config->server.h2_reset_window_ms) != 0)
            return -1;
    }
    return 0;
}

void ficus_config_add_identity_header(ficus_config_t *config, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i != config->num_identity_headers; ++i)
        if (h2o_lcstris(config->identity_headers[i].base, config->identity_headers[i].len, name, len))
            return;
    config->identity_headers = realloc(config->identity_headers, sizeof(h2o_iovec_t) * (config->num_identity_headers + 1));
    if (config->identity_headers == NULL)
        ficus_fatal("no memory");
    config->identity_headers[config->num_identity_headers++] = iov_dup_lower(name, len);
}

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
            m->host = iov_dup_lower(h + 1, len - 1);
            m->host_is_suffix = 1;
        } else {
            m->host = iov_dup_lower(h, len);
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
        if (has_unsafe_char(p->data.scalar.value))
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
        m->methods = xcalloc(m->num_methods, sizeof(char *));
        for (size_t i = 0; i != m->num_methods; ++i) {
            ficus_node_t *e = methods->data.sequence.elements[i];
            if (ficus_conf_expect(cc, e, FICUS_NODE_SCALAR) != 0)
                return -1;
            if (e->data.scalar.len == 0 || e->data.scalar.len > 32)
                return ficus_conf_error(cc, e, "invalid method '%s'", e->data.scalar.value);
            for (const char *c = e->data.scalar.value; *c != '\0'; ++c)
                if (!(isupper((unsigned char)*c) || *c == '-' || *c == '_'))
                    return ficus_conf_error(cc, e, "invalid method '%s' (methods are upper case, e.g. GET)", e->data.scalar.value);
            m->methods[i] = xstrdup(e->data.scalar.value);
        }
    }
    if (headers != NULL) {
        m->num_headers = headers->data.sequence.size;
        m->headers = xcalloc(m->num_headers, sizeof(*m->headers));
        for (size_t i = 0; i != m->num_headers; ++i) {
            ficus_node_t *name, *value;
            if (ficus_conf_mapping(cc, headers->data.sequence.elements[i], "name:s", "value:s", &name, &value) != 0)
                return -1;
            if (name->data.scalar.len == 0)
                return ficus_conf_error(cc, name, "header name must not be empty");
            for (size_t j = 0; j != name->data.scalar.len; ++j)
                if (!is_token_char((unsigned char)name->data.scalar.value[j]))
                    return ficus_conf_error(cc, name, "invalid header name '%s'", name->data.scalar.value);
            m->headers[i].name = iov_dup_lower(name->data.scalar.value, name->data.scalar.len);
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
        has_unsafe_char(node->data.scalar.value))
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
    if (has_unsafe_char(to->data.scalar.value))
        return ficus_conf_error(cc, to, "redirect target must not contain spaces or control characters (percent-encode them)");
    route->data.redirect.location_template = xstrdup(to->data.scalar.value);
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
        xstrdup(content_type != NULL ? content_type->data.scalar.value : "text/plain; charset=utf-8");
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
    route->name = xstrdup(name->data.scalar.value);
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
    route->plugins = xcalloc(nplugins, sizeof(*route->plugins));
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

static int load_routes(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_config_t *config)
{
    if (ficus_conf_expect(cc, node, FICUS_NODE_SEQUENCE) != 0)
        return -1;
    if (node->data.sequence.size > 10000)
        return ficus_conf_error(cc, node, "more than 10000 routes");
    _Static_assert(sizeof(((ficus_req_t *)0)->plugin_data) / sizeof(void *) >= FICUS_MAX_PLUGINS / 2, "plugin slots");
    config->routes = xcalloc(node->data.sequence.size, sizeof(*config->routes));
    for (size_t i = 0; i != node->data.sequence.size; ++i) {
        config->routes[i] = xcalloc(1, sizeof(ficus_route_t));
        config->routes[i]->index = i;
        config->num_routes = i + 1;
        if (load_route(cc, node->data.sequence.elements[i], config, config->routes[i]) != 0)
            return -1;
    }
    return 0;
}

/* ---- whole file ---- */

static void route_free(ficus_route_t *r)
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
        route_free(c->routes[i]);
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
    ficus_config_t *config = xcalloc(1, sizeof(*config));
    config->filename = xstrdup(filename);
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
    if (load_server(&cc, server, config) != 0)
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
    if (load_routes(&cc, routes, config) != 0)
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
    ficus_config_t *c = xcalloc(1, sizeof(*c));
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
