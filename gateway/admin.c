/* The admin listener: /healthz, /readyz, /metrics (Prometheus text), /upstreams (JSON) and the status page (/ and
 * /status.json, see ficus/status.h), served by the control thread.
 *
 * It listens on loopback by default and is plain HTTP: it is for the machine's own probes and scrapers. Scrapes sum
 * the workers' counters (ficus/metrics.h) without stopping them. */
#include <errno.h>
#include <openssl/opensslv.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "h2o/version.h"
#include "ficus/contract.h"
#include "ficus/log.h"
#include "ficus/metrics.h"
#include "ficus/resolver.h"
#include "ficus/plugin.h"
#include "ficus/provider.h"
#include "ficus/redis.h"
#include "ficus/server.h"
#include "ficus/status.h"
#include "ficus/upgrade.h"
#include "ficus/traffic.h"
#include "ficus/upstream.h"

static void send_text(h2o_req_t *req, int status, const char *reason, const char *content_type, h2o_iovec_t body)
{
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, body.base, body.len);
}

static void render_metrics(h2o_req_t *req, ficus_server_t *s)
{
    h2o_iovec_t body;
    ficus_metrics_render(&req->pool, &body, s->num_workers);
    char extra[1024];
    int n = snprintf(extra, sizeof(extra),
                     "# HELP ficus_config_reloads_total Reload attempts (SIGHUP), by result.\n"
                     "# TYPE ficus_config_reloads_total counter\n"
                     "ficus_config_reloads_total{result=\"success\"} %llu\n"
                     "ficus_config_reloads_total{result=\"failure\"} %llu\n"
                     "# HELP ficus_config_generation Generation number of the configuration in use.\n"
                     "# TYPE ficus_config_generation gauge\nficus_config_generation %llu\n"
                     "# HELP ficus_config_last_reload_successful Whether the last reload succeeded (1 until one fails).\n"
                     "# TYPE ficus_config_last_reload_successful gauge\nficus_config_last_reload_successful %d\n"
                     "# HELP ficus_config_loaded_timestamp_seconds When the configuration in use was loaded.\n"
                     "# TYPE ficus_config_loaded_timestamp_seconds gauge\nficus_config_loaded_timestamp_seconds %.3f\n"
                     "# HELP ficus_build_info Build information.\n# TYPE ficus_build_info gauge\n"
                     "ficus_build_info{version=\"%s\",h2o=\"%s\",openssl=\"%s\"} 1\n",
                     (unsigned long long)ficus_metrics_reloads_success, (unsigned long long)ficus_metrics_reloads_failure,
                     (unsigned long long)s->generation, s->last_reload_ok, s->running->loaded_at, FICUS_VERSION, H2O_VERSION,
                     OpenSSL_version(OPENSSL_VERSION));
    h2o_iovec_t parts[8 + FICUS_MAX_PLUGINS];
    size_t nparts = 0, total = 0;
    parts[nparts++] = body;
    parts[nparts++] = h2o_iovec_init(extra, n);
    ficus_providers_render_metrics(&req->pool, &parts[nparts++], s->num_workers);
    ficus_traffic_render_metrics(&req->pool, &parts[nparts++], s->num_workers);
    ficus_upstreams_render_metrics(&req->pool, &parts[nparts++], s->running, s->num_workers);
    ficus_resolver_render_metrics(&req->pool, &parts[nparts++]);
    if (s->running->redis != NULL)
        ficus_redis_render_metrics(&req->pool, &parts[nparts++], s->num_workers);
    ficus_contract_render_metrics(&req->pool, &parts[nparts++], s->num_workers);
    for (size_t i = 0; ficus_plugins[i] != NULL; ++i)
        if (ficus_plugins[i]->render_metrics != NULL)
            ficus_plugins[i]->render_metrics(&req->pool, &parts[nparts++], s->num_workers);
    for (size_t i = 0; i != nparts; ++i)
        total += parts[i].len;
    char *all = h2o_mem_alloc_pool(&req->pool, total + 1);
    size_t off = 0;
    for (size_t i = 0; i != nparts; ++i) {
        if (parts[i].len != 0)
            memcpy(all + off, parts[i].base, parts[i].len);
        off += parts[i].len;
    }
    send_text(req, 200, "OK", "text/plain; version=0.0.4", h2o_iovec_init(all, total));
}

static int on_admin_req(h2o_handler_t *self, h2o_req_t *req)
{
    ficus_server_t *s = &ficus_server;
    h2o_iovec_t path = req->path_normalized;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        send_text(req, 405, "Method Not Allowed", "application/json",
                  h2o_iovec_init(H2O_STRLIT("{\"error\":\"method_not_allowed\"}\n")));
    } else if (h2o_memis(path.base, path.len, H2O_STRLIT("/healthz"))) {
        send_text(req, 200, "OK", "text/plain", h2o_iovec_init(H2O_STRLIT("ok\n")));
    } else if (h2o_memis(path.base, path.len, H2O_STRLIT("/readyz"))) {
        h2o_iovec_t providers, redis = h2o_iovec_init(H2O_STRLIT("null"));
        ficus_providers_render_readyz(&req->pool, &providers);
        if (s->running->redis != NULL)
            ficus_redis_render_readyz(&req->pool, s->running->redis, s->num_workers, &redis);
        size_t cap = providers.len + redis.len + 128;
        char *buf = h2o_mem_alloc_pool(&req->pool, cap);
        int n = snprintf(buf, cap, "{\"status\":\"%s\",\"generation\":%llu,\"providers\":{%.*s},\"redis\":%.*s}\n",
                         s->draining ? "draining" : "ready", (unsigned long long)s->generation, (int)providers.len, providers.base,
                         (int)redis.len, redis.base);
        send_text(req, s->draining ? 503 : 200, s->draining ? "Service Unavailable" : "OK", "application/json",
                  h2o_iovec_init(buf, n));
    } else if (h2o_memis(path.base, path.len, H2O_STRLIT("/upstreams"))) {
        h2o_iovec_t body;
        ficus_upstreams_render_json(&req->pool, &body, s->running, s->num_workers);
        send_text(req, 200, "OK", "application/json", body);
    } else if (h2o_memis(path.base, path.len, H2O_STRLIT("/metrics"))) {
        render_metrics(req, s);
    } else if (h2o_memis(path.base, path.len, H2O_STRLIT("/"))) {
        send_text(req, 200, "OK", "text/html; charset=utf-8", ficus_status_page());
    } else if (h2o_memis(path.base, path.len, H2O_STRLIT("/status.json"))) {
        send_text(req, 200, "OK", "application/json", ficus_status_json(&req->pool, s));
    } else {
        send_text(req, 404, "Not Found", "application/json", h2o_iovec_init(H2O_STRLIT("{\"error\":\"not_found\"}\n")));
    }
    return 0;
}

static void on_admin_accept(h2o_socket_t *listener, const char *err)
{
    ficus_server_t *s = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i != 16; ++i) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        h2o_accept(&s->admin_accept_ctx, sock);
    }
}

int ficus_admin_start(ficus_server_t *s, char *err, size_t errlen)
{
    const ficus_config_t *c = s->running;
    if (c->server.admin_address == NULL)
        return 0;
    /* a binary upgrade: the running process's admin socket (it stops accepting on it once we serve) */
    int fd = s->handoff != NULL ? ficus_handoff_take(s->handoff, &c->server.admin_addr) : -1, on = 1;
    if (fd == -1 &&
        ((fd = socket(c->server.admin_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1 ||
         setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
         bind(fd, (const struct sockaddr *)&c->server.admin_addr, c->server.admin_addrlen) != 0 || listen(fd, 128) != 0)) {
        snprintf(err, errlen, "cannot listen on admin address %s: %s", c->server.admin_address, strerror(errno));
        if (fd != -1)
            close(fd);
        return -1;
    }
    h2o_config_init(&s->admin_globalconf);
    s->admin_globalconf.server_name = h2o_iovec_init(H2O_STRLIT("ficus-admin"));
    h2o_hostconf_t *host = h2o_config_register_host(&s->admin_globalconf, h2o_iovec_init(H2O_STRLIT("admin")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = on_admin_req;
    h2o_context_init(&s->admin_ctx, s->loop, &s->admin_globalconf);
    s->admin_accept_ctx.ctx = &s->admin_ctx;
    s->admin_accept_ctx.hosts = s->admin_globalconf.hosts;
    s->admin_sock = h2o_evloop_socket_create(s->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    s->admin_sock->data = s;
    h2o_socket_read_start(s->admin_sock, on_admin_accept);
    ficus_info("admin listening on %s", c->server.admin_address);
    return 0;
}

void ficus_admin_stop(ficus_server_t *s)
{
    if (s->admin_sock != NULL) {
        h2o_socket_read_stop(s->admin_sock);
        h2o_socket_close(s->admin_sock);
        s->admin_sock = NULL;
    }
}
