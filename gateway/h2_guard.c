/* HTTP/2 rapid-reset guard (CVE-2023-44487), which Debian's H2O 2.2.5 lacks.
 *
 * The attack: open streams and cancel them at once, so the server starts work for each and the client pays nothing.
 * Defence: count the requests a client cancelled before their response was complete, at three levels, each within
 * server.http2.reset_window:
 *   - per connection: more than server.http2.max_resets closes the connection;
 *   - per client address (IPv4 address, IPv6 /64), over all its connections and all workers: more than
 *     server.http2.max_resets_per_address closes the connection, and until the window ends every other HTTP/2
 *     connection of that address is closed at its next read, before H2O parses it (gateway/client_conn.c asks
 *     ficus_h2_guard_blocked()), so a flood spread over many connections, each under the per-connection guard,
 *     starts no more upstream work;
 *   - process-wide: more than server.http2.max_resets_total closes every connection that cancels within the
 *     window (a flood spread over many addresses).
 * A connection is closed by shutting its socket down, so H2O tears it down through its normal error path (no stream
 * or request is freed behind its back). Every closure is counted in ficus_http2_reset_flood_total.
 * BOUNDS: per worker, a fixed table of FICUS_H2_GUARD_SLOTS connection entries indexed by connection id (a
 * collision restarts that slot's count); process-wide, a fixed table of FICUS_H2_ADDR_SLOTS address entries (open
 * addressing over FICUS_H2_ADDR_PROBE slots; when all are busy the oldest window is taken over). Memory is constant
 * whatever the number of connections or addresses.
 * THREADING: the address table and the global count are shared by the workers under one mutex, taken only when a
 * client cancels a request (not on the request path). */
#include <arpa/inet.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include "ficus/log.h"
#include "ficus/metrics.h"
#include "ficus/send_guard.h"
#include "ficus/worker.h"

#define FICUS_H2_ADDR_SLOTS 4096
#define FICUS_H2_ADDR_PROBE 8

typedef struct st_ficus_h2_addr_entry_t {
    uint8_t key[FICUS_H2_GUARD_KEY_LEN];
    uint64_t window_start;
    uint64_t count;
    uint64_t blocked_until; /* over its budget: its connections are closed at their next read until then */
    int warned;
} ficus_h2_addr_entry_t;

static pthread_mutex_t addr_mutex = PTHREAD_MUTEX_INITIALIZER;
static ficus_h2_addr_entry_t addr_table[FICUS_H2_ADDR_SLOTS];
static uint64_t global_window_start, global_count;
static int global_warned;
static uint64_t any_blocked_until; /* the latest blocked_until of any address (atomic): a cheap "none blocked" test */

size_t ficus_h2_guard_key(const struct sockaddr *sa, uint8_t *key)
{
    memset(key, 0, FICUS_H2_GUARD_KEY_LEN);
    if (sa->sa_family == AF_INET) {
        key[0] = 4;
        memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        key[0] = 6;
        memcpy(key + 1, &((const struct sockaddr_in6 *)sa)->sin6_addr, 8);
    } else {
        return 0;
    }
    return FICUS_H2_GUARD_KEY_LEN;
}

static size_t peer_key(h2o_req_t *req, uint8_t *key, char *peer, size_t peerlen)
{
    struct sockaddr_storage ss;
    strcpy(peer, "?");
    memset(key, 0, FICUS_H2_GUARD_KEY_LEN);
    if (req->conn->callbacks->get_peername(req->conn, (void *)&ss) == 0)
        return 0;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, peer, peerlen);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, peer, peerlen);
    return ficus_h2_guard_key((void *)&ss, key);
}

static ficus_h2_addr_entry_t *addr_find(const uint8_t *key, uint64_t hash, ficus_h2_addr_entry_t **free_slot)
{
    ficus_h2_addr_entry_t *oldest = NULL;
    for (size_t i = 0; i != FICUS_H2_ADDR_PROBE; ++i) {
        ficus_h2_addr_entry_t *e = addr_table + (hash + i) % FICUS_H2_ADDR_SLOTS;
        if (memcmp(e->key, key, FICUS_H2_GUARD_KEY_LEN) == 0)
            return e;
        if (oldest == NULL || e->key[0] == 0 || (oldest->key[0] != 0 && e->window_start < oldest->window_start))
            oldest = e;
    }
    if (free_slot != NULL)
        *free_slot = oldest;
    return NULL;
}

static uint64_t key_hash(const uint8_t *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i != FICUS_H2_GUARD_KEY_LEN; ++i)
        h = (h ^ key[i]) * 1099511628211ULL;
    return h;
}

static ficus_h2_addr_entry_t *addr_entry(const uint8_t *key, uint64_t now)
{
    ficus_h2_addr_entry_t *slot = NULL, *e = addr_find(key, key_hash(key), &slot);
    if (e != NULL)
        return e;
    /* a new address takes an empty slot, else the one whose window started first */
    memset(slot, 0, sizeof(*slot));
    memcpy(slot->key, key, FICUS_H2_GUARD_KEY_LEN);
    slot->window_start = now;
    return slot;
}

int ficus_h2_guard_blocked(const uint8_t *key, uint64_t now)
{
    if (key[0] == 0 || __atomic_load_n(&any_blocked_until, __ATOMIC_RELAXED) <= now)
        return 0; /* the common case: no address is over its budget */
    pthread_mutex_lock(&addr_mutex);
    ficus_h2_addr_entry_t *e = addr_find(key, key_hash(key), NULL);
    int blocked = e != NULL && now < e->blocked_until;
    pthread_mutex_unlock(&addr_mutex);
    return blocked;
}

/* Counts one cancel of the address and of the process. Returns the reason to close the connection, or NULL. */
static const char *count_shared(const uint8_t *key, size_t keylen, uint64_t now, const ficus_config_t *config, int *first)
{
    uint64_t window = config->server.h2_reset_window_ms;
    const char *reason = NULL;
    *first = 0;
    pthread_mutex_lock(&addr_mutex);
    if (now - global_window_start > window) {
        global_window_start = now;
        global_count = 0;
        global_warned = 0;
    }
    if (++global_count > config->server.h2_max_resets_total) {
        reason = "all clients";
        *first = !global_warned;
        global_warned = 1;
    }
    if (keylen != 0) {
        ficus_h2_addr_entry_t *e = addr_entry(key, now);
        if (now - e->window_start > window) {
            e->window_start = now;
            e->count = 0;
            e->warned = 0;
        }
        if (++e->count > config->server.h2_max_resets_per_address) {
            e->blocked_until = e->window_start + window;
            if (__atomic_load_n(&any_blocked_until, __ATOMIC_RELAXED) < e->blocked_until)
                __atomic_store_n(&any_blocked_until, e->blocked_until, __ATOMIC_RELAXED);
            if (reason == NULL) {
                reason = "this address";
                *first = !e->warned;
                e->warned = 1;
            }
        }
    }
    pthread_mutex_unlock(&addr_mutex);
    return reason;
}

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
    if (e->closed)
        return; /* being closed already: what it still cancels is not held against its address */
    uint8_t key[FICUS_H2_GUARD_KEY_LEN];
    char peer[INET6_ADDRSTRLEN];
    size_t keylen = peer_key(req, key, peer, sizeof(peer));
    int first = 0;
    const char *shared = count_shared(key, keylen, now, config, &first);
    if (++e->count <= config->server.h2_max_resets && shared == NULL)
        return;
    e->closed = 1;
    ficus_counter_add(&ficus_worker_stats[w->index].reset_flood_closes, 1);
    if (shared == NULL)
        ficus_warn("closing HTTP/2 connection from %s: %llu streams cancelled within %llums (rapid reset flood)", peer,
                   (unsigned long long)e->count, (unsigned long long)config->server.h2_reset_window_ms);
    else if (first)
        ficus_warn(
            "closing HTTP/2 connections from %s that cancel streams: more than %llu cancelled by %s within %llums "
            "(rapid reset flood)",
            shared[0] == 'a' ? "every client" : peer,
            (unsigned long long)(shared[0] == 'a' ? config->server.h2_max_resets_total : config->server.h2_max_resets_per_address),
            shared, (unsigned long long)config->server.h2_reset_window_ms);
    ficus_close_client_connection(req);
}
