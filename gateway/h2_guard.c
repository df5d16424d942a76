/* HTTP/2 rapid-reset guard (CVE-2023-44487), which Debian's H2O 2.2.5 lacks.
 *
 * The attack: open streams and cancel them at once, so the server starts work for each and the client pays nothing.
 * Defence: count, per connection, the requests its client cancelled before their response was complete; a
 * connection cancelling more than server.http2.max_resets within server.http2.reset_window is closed (its socket is
 * shut down, so H2O tears it down through its normal error path: no stream or request is freed behind its back).
 * BOUNDS: a fixed table of FICUS_H2_GUARD_SLOTS entries per worker, indexed by connection id; a collision simply
 * restarts the count of that slot, so memory is constant whatever the number of connections. */
#include <sys/socket.h>
#include <arpa/inet.h>
#include "ficus/log.h"
#include "ficus/metrics.h"
#include "ficus/worker.h"

void ficus_h2_guard_on_abort(ficus_worker_t *w, h2o_req_t *req, const ficus_config_t *config)
{
    uint64_t id = req->conn->id, now = h2o_now(w->loop);
    ficus_h2_guard_entry_t *e = w->h2_guard + (id * 0x9e3779b97f4a7c15ULL >> 54) % FICUS_H2_GUARD_SLOTS;
    if (e->conn_id != id || now - e->window_start > config->server.h2_reset_window_ms) {
        e->conn_id = id;
        e->window_start = now;
        e->count = 0;
        e->closed = 0;
    }
    if (++e->count <= config->server.h2_max_resets || e->closed)
        return;
    e->closed = 1;
    ficus_counter_add(&ficus_worker_stats[w->index].reset_flood_closes, 1);
    struct sockaddr_storage ss;
    char peer[INET6_ADDRSTRLEN] = "?";
    if (req->conn->callbacks->get_peername(req->conn, (void *)&ss) != 0) {
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, peer, sizeof(peer));
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, peer, sizeof(peer));
    }
    ficus_warn("closing HTTP/2 connection from %s: %llu streams cancelled within %llums (rapid reset flood)", peer,
               (unsigned long long)e->count, (unsigned long long)config->server.h2_reset_window_ms);
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock != NULL)
        shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
}
