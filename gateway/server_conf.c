/* `server:` of a configuration generation (see gateway/config_internal.h): listeners and their TLS, the admin
 * listener, limits, paths, HTTP/2 settings, logging and trusted proxies; and the address and CIDR parsers it uses.
 * Every check reports "file:line: what is wrong" through ficus_conf_error(). */
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
    l->address = ficus__xstrdup(address->data.scalar.value);
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

int ficus__server_conf_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_config_t *config)
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
    config->server.listeners = ficus__xcalloc(config->server.num_listeners, sizeof(*config->server.listeners));
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
        config->server.admin_address = ficus__xstrdup(address->data.scalar.value);
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
            config->server.access_log_path = ficus__xstrdup(v);
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
        config->server.trusted_proxies = ficus__xcalloc(trusted->data.sequence.size, sizeof(ficus_cidr_t));
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
