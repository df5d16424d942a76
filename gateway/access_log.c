/* The access log (see ficus/access_log.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ficus/access_log.h"
#include "ficus/clock.h"
#include "ficus/config.h"
#include "ficus/log.h"
#include "ficus/req.h"
#include "ficus/traffic.h"

#define FLUSH_AT (32 * 1024)
#define LINE_MAX_BYTES (24 * 1024) /* a line never grows beyond this: long fields are cut */

static void on_flush_timeout(h2o_timeout_entry_t *entry)
{
    ficus_access_log_t *log = H2O_STRUCT_FROM_MEMBER(ficus_access_log_t, flush_entry, entry);
    ficus_access_log_flush(log);
}

void ficus_access_log_init(ficus_access_log_t *log, h2o_loop_t *loop)
{
    memset(log, 0, sizeof(*log));
    log->cap = FLUSH_AT + LINE_MAX_BYTES;
    if ((log->buf = malloc(log->cap)) == NULL)
        ficus_fatal("no memory");
    log->fd = -1;
    log->loop = loop;
    h2o_timeout_init(loop, &log->flush_timeout, 200);
    log->flush_entry.cb = on_flush_timeout;
}

void ficus_access_log_dispose(ficus_access_log_t *log)
{
    ficus_access_log_flush(log);
    h2o_timeout_dispose(log->loop, &log->flush_timeout);
    free(log->buf);
}

void ficus_access_log_flush(ficus_access_log_t *log)
{
    if (h2o_timeout_is_linked(&log->flush_entry))
        h2o_timeout_unlink(&log->flush_entry);
    size_t off = 0;
    while (off < log->len && log->fd >= 0) {
        ssize_t n = write(log->fd, log->buf + off, log->len - off);
        if (n <= 0)
            break; /* a full disk or closed pipe must not stop serving: the lines are dropped */
        off += (size_t)n;
    }
    log->len = 0;
}

/* Appends a JSON string (quoted, escaped, at most max bytes of input). */
static size_t json_str(char *out, const char *s, size_t len, size_t max)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (len > max)
        len = max;
    out[o++] = '"';
    for (size_t i = 0; i != len; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = c;
        } else if (c < 0x20 || c >= 0x7f) {
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hex[c >> 4];
            out[o + 5] = hex[c & 15];
            o += 6;
        } else {
            out[o++] = c;
        }
    }
    out[o++] = '"';
    return o;
}

void ficus_access_log_write(ficus_access_log_t *log, int fd, ficus_req_t *r)
{
    h2o_req_t *req = r->h2o;
    if (fd < 0)
        return;
    if (log->fd != fd) {
        ficus_access_log_flush(log);
        log->fd = fd;
    }
    char *out = log->buf + log->len;
    size_t o = 0;
    char ts[40], peer[INET6_ADDRSTRLEN] = "";
    ficus_log_timestamp(ts, sizeof(ts));
    struct sockaddr_storage ss;
    if (req->conn->callbacks->get_peername(req->conn, (void *)&ss) != 0) {
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, peer, sizeof(peer));
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, peer, sizeof(peer));
    }
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    uint64_t now_us = ficus_mono_us();

    /* each field is bounded (method 32, host 256, path 2048, ids 128), so a line stays below LINE_MAX_BYTES */
    o += sprintf(out + o, "{\"time\":\"%s\",\"request_id\":", ts);
    o += json_str(out + o, r->request_id.base, r->request_id.len, 128);
    o += sprintf(out + o, ",\"trace_id\":\"%s\"", r->trace.trace_id);
    o += sprintf(out + o, ",\"client\":\"%s\",\"protocol\":\"%s\",\"method\":", peer,
                 req->version >= 0x200   ? "HTTP/2"
                 : req->version == 0x100 ? "HTTP/1.0"
                                         : "HTTP/1.1");
    o += json_str(out + o, req->method.base, req->method.len, 32);
    o += sprintf(out + o, ",\"host\":");
    o += json_str(out + o, req->authority.base, req->authority.len, 256);
    o += sprintf(out + o, ",\"path\":");
    o += json_str(out + o, req->path.base, path_len, 2048);
    o += sprintf(out + o, ",\"status\":%d,\"bytes\":%zu,\"duration_ms\":%.3f,\"route\":", r->_responded ? req->res.status : 499,
                 req->bytes_sent, (now_us - r->started_at_us) / 1000.0);
    if (r->route != NULL)
        o += json_str(out + o, r->route->name, strlen(r->route->name), 128);
    else
        o += sprintf(out + o, "null");
    if (r->upstream.endpoint != NULL) {
        o += sprintf(out + o, ",\"upstream\":");
        o += json_str(out + o, r->upstream.endpoint, strlen(r->upstream.endpoint), 256);
    } else {
        o += sprintf(out + o, ",\"upstream\":null");
    }
    if (r->traffic.upstream != NULL) {
        o += sprintf(out + o, ",\"upstream_name\":");
        o += json_str(out + o, r->traffic.upstream->name, strlen(r->traffic.upstream->name), 256);
        o += sprintf(out + o, ",\"decision\":\"%s\"", ficus_decision_names[r->traffic.decision]);
    } else {
        o += sprintf(out + o, ",\"upstream_name\":null,\"decision\":null");
    }
    if (r->upstream.status != 0)
        o += sprintf(out + o, ",\"upstream_status\":%d,\"upstream_ms\":%.3f", r->upstream.status,
                     (r->upstream.head_at_us - r->upstream.started_at_us) / 1000.0);
    else
        o += sprintf(out + o, ",\"upstream_status\":null,\"upstream_ms\":null");
    if (r->error != NULL) {
        o += sprintf(out + o, ",\"error\":");
        o += json_str(out + o, r->error, strlen(r->error), 160);
        o += sprintf(out + o, "}\n");
    } else
        o += sprintf(out + o, ",\"error\":null}\n");
    log->len += o;
    if (log->len >= FLUSH_AT)
        ficus_access_log_flush(log);
    else if (!h2o_timeout_is_linked(&log->flush_entry))
        h2o_timeout_link(log->loop, &log->flush_timeout, &log->flush_entry);
}

int ficus_access_log_reopen(const ficus_config_t *config, char *err, size_t errlen)
{
    if (config->server.access_log != FICUS_ACCESS_LOG_FILE || config->server.access_log_fd < 0)
        return 0;
    int fd = open(config->server.access_log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd == -1) {
        snprintf(err, errlen, "cannot reopen access log '%s': %s", config->server.access_log_path, strerror(errno));
        return -1;
    }
    /* dup2 swaps the open file behind the descriptor number atomically: a worker's write(2) lands whole in the old file
     * or whole in the new one, never nowhere; lines still buffered in a worker go to the new file at its next flush */
    int ok = dup2(fd, config->server.access_log_fd) != -1;
    if (!ok)
        snprintf(err, errlen, "cannot reopen access log '%s': dup2: %s", config->server.access_log_path, strerror(errno));
    close(fd);
    return ok ? 0 : -1;
}
