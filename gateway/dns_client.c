/* One name's lookup on the control loop: the hosts file, then DNS over UDP (ficus/resolver.h).
 *
 * HOSTS FILE: read whole at the start of every lookup (at most FICUS_RESOLVER_MAX_HOSTS_FILE bytes): a name it lists
 * is answered from it and DNS is not asked (nsswitch's `hosts: files dns`).
 * DNS: one try = an A query (and an AAAA query with `ipv6`) to one nameserver on a fresh UDP socket connect()ed to it
 * (so only its datagrams are read, from a kernel-chosen random source port), each with a random ID, answered within
 * `timeout`. Tries go round the nameservers `attempts` times. A try ends when every query got an answer (a datagram
 * the parser does not count as a MISMATCH) or at its timeout. SERVFAIL, REFUSED, another RCODE, a malformed answer,
 * a send error or a timeout moves on to the next try; after the last one the lookup fails with that outcome, and the
 * caller keeps its last good answer. NOERROR and NXDOMAIN are final: the addresses of every query together, or
 * NXDOMAIN when there are none (the name does not exist, or has no address of the wanted families).
 * TRUNCATION: queries advertise a 1232-byte EDNS0 payload, so an answer is truncated only beyond ~70 addresses; a
 * truncated answer's complete records are used (as musl does) and counted as `truncated`; there is no TCP fallback.
 * TTLs are ignored: the caller refreshes every `dns_refresh`.
 * BOUNDS: one socket per running lookup; at most 16 datagrams read per readiness event; callbacks are always
 * deferred (a zero timeout), never called from inside ficus_dns_lookup_start. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include "ficus/log.h"
#include "ficus/resolver.h"

uint64_t ficus_dns_queries_total[FICUS_DNS__COUNT];

static uint16_t random_id(void)
{
    uint16_t id;
    if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != sizeof(id))
        id = (uint16_t)(random() & 0xffff);
    return id;
}

void ficus_dns_lookup_init(ficus_dns_lookup_t *l, h2o_loop_t *loop)
{
    memset(l, 0, sizeof(*l));
    l->_loop = loop;
    h2o_timeout_init(loop, &l->_zero, 0);
    h2o_timeout_init(loop, &l->_timeout, 2000);
}

static void close_socket(ficus_dns_lookup_t *l)
{
    if (l->_sock != NULL) {
        h2o_socket_read_stop(l->_sock);
        h2o_socket_close(l->_sock);
        l->_sock = NULL;
    }
    if (h2o_timeout_is_linked(&l->_deadline))
        h2o_timeout_unlink(&l->_deadline);
}

void ficus_dns_lookup_cancel(ficus_dns_lookup_t *l)
{
    close_socket(l);
    if (h2o_timeout_is_linked(&l->_defer))
        h2o_timeout_unlink(&l->_defer);
    l->_running = 0;
}

void ficus_dns_lookup_dispose(ficus_dns_lookup_t *l)
{
    ficus_dns_lookup_cancel(l);
    h2o_timeout_dispose(l->_loop, &l->_zero);
    h2o_timeout_dispose(l->_loop, &l->_timeout);
}

static void on_deliver(h2o_timeout_entry_t *entry)
{
    ficus_dns_lookup_t *l = H2O_STRUCT_FROM_MEMBER(ficus_dns_lookup_t, _defer, entry);
    l->_running = 0;
    l->_cb(l, l->_final, l->_addrs, l->_num_addrs, l->_source);
}

/* ends the lookup: the callback runs on the next turn of the loop */
static void finish(ficus_dns_lookup_t *l, ficus_dns_result_t result, const char *source)
{
    close_socket(l);
    l->_final = result;
    snprintf(l->_source, sizeof(l->_source), "%s", source);
    if (result != FICUS_DNS_OK)
        l->_num_addrs = 0;
    l->_defer.cb = on_deliver;
    h2o_timeout_link(l->_loop, &l->_zero, &l->_defer);
}

/* 1 when the hosts file answered (finish() called) */
static int try_hosts_file(ficus_dns_lookup_t *l)
{
    if (l->_conf.hosts_file[0] == '\0')
        return 0;
    int fd = open(l->_conf.hosts_file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd == -1)
        return 0; /* no hosts file: DNS only */
    struct stat st;
    char *text = NULL;
    size_t len = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= FICUS_RESOLVER_MAX_HOSTS_FILE &&
        (text = malloc((size_t)st.st_size + 1)) != NULL) {
        ssize_t r;
        while (len < (size_t)st.st_size && (r = read(fd, text + len, (size_t)st.st_size - len)) > 0)
            len += (size_t)r;
    }
    close(fd);
    size_t n = text != NULL ? ficus_hosts_lookup(text, len, l->_name, l->_conf.ipv6, l->_addrs, FICUS_DNS_MAX_ADDRS) : 0;
    free(text);
    if (n == 0)
        return 0;
    l->_num_addrs = n;
    finish(l, FICUS_DNS_OK, "hosts");
    return 1;
}

static void start_try(ficus_dns_lookup_t *l);

static int is_final(ficus_dns_result_t r)
{
    return r == FICUS_DNS_OK || r == FICUS_DNS_TRUNCATED || r == FICUS_DNS_NXDOMAIN;
}

/* the current try ended with outcome `r` for its queries not final: next try, or the lookup's end */
static void next_try(ficus_dns_lookup_t *l, ficus_dns_result_t r)
{
    const char *label = l->_conf.nameservers[l->_try % l->_conf.num_nameservers].label;
    close_socket(l);
    if (++l->_try >= l->_num_tries) {
        l->_num_addrs = 0;
        finish(l, r, label);
        return;
    }
    start_try(l);
}

/* every query of the try was answered */
static void try_answered(ficus_dns_lookup_t *l)
{
    const char *label = l->_conf.nameservers[l->_try % l->_conf.num_nameservers].label;
    for (size_t i = 0; i != l->_num_q; ++i)
        if (!is_final(l->_q[i].result)) {
            next_try(l, l->_q[i].result);
            return;
        }
    finish(l, l->_num_addrs != 0 ? FICUS_DNS_OK : FICUS_DNS_NXDOMAIN, label);
}

static void on_readable(h2o_socket_t *sock, const char *err)
{
    ficus_dns_lookup_t *l = sock->data;
    uint8_t buf[4096];
    for (int i = 0; i != 16 && l->_sock != NULL; ++i) {
        ssize_t r = recv(h2o_socket_get_fd(sock), buf, sizeof(buf), 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            /* ICMP port unreachable and the like: this nameserver will not answer */
            for (size_t k = 0; k != l->_num_q; ++k)
                if (!l->_q[k].done)
                    ++ficus_dns_queries_total[FICUS_DNS_SEND_ERROR];
            next_try(l, FICUS_DNS_SEND_ERROR);
            return;
        }
        for (size_t k = 0; k != l->_num_q; ++k) {
            if (l->_q[k].done)
                continue;
            ficus_dns_addr_t addrs[FICUS_DNS_MAX_ADDRS];
            size_t n;
            int truncated;
            ficus_dns_result_t res = ficus_dns_parse_response(buf, (size_t)r, l->_q[k].id, l->_name, l->_q[k].qtype, addrs,
                                                              FICUS_DNS_MAX_ADDRS, &n, &truncated);
            if (res == FICUS_DNS_MISMATCH)
                continue;
            if (res == FICUS_DNS_OK && truncated)
                res = FICUS_DNS_TRUNCATED;
            ++ficus_dns_queries_total[res];
            l->_q[k].done = 1;
            l->_q[k].result = res;
            for (size_t j = 0; j != n && l->_num_addrs != FICUS_DNS_MAX_ADDRS; ++j)
                l->_addrs[l->_num_addrs++] = addrs[j];
            break;
        }
        int all = 1;
        for (size_t k = 0; k != l->_num_q; ++k)
            all &= l->_q[k].done;
        if (all) {
            try_answered(l);
            return;
        }
    }
}

static void on_timeout(h2o_timeout_entry_t *entry)
{
    ficus_dns_lookup_t *l = H2O_STRUCT_FROM_MEMBER(ficus_dns_lookup_t, _deadline, entry);
    for (size_t k = 0; k != l->_num_q; ++k)
        if (!l->_q[k].done)
            ++ficus_dns_queries_total[FICUS_DNS_TIMEOUT];
    next_try(l, FICUS_DNS_TIMEOUT);
}

static void start_try(ficus_dns_lookup_t *l)
{
    const struct st_ficus_nameserver_t *ns = l->_conf.nameservers + l->_try % l->_conf.num_nameservers;
    /* the addresses of an earlier try that failed are not kept: a try answers whole or not at all */
    l->_num_addrs = 0;
    int fd = socket(ns->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1 || connect(fd, (const struct sockaddr *)&ns->addr, ns->addrlen) != 0) {
        if (fd != -1)
            close(fd);
        ficus_dns_queries_total[FICUS_DNS_SEND_ERROR] += l->_num_q;
        next_try(l, FICUS_DNS_SEND_ERROR);
        return;
    }
    l->_sock = h2o_evloop_socket_create(l->_loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    l->_sock->data = l;
    for (size_t k = 0; k != l->_num_q; ++k) {
        uint8_t q[FICUS_DNS_MAX_QUERY];
        l->_q[k].id = random_id();
        if (k != 0 && l->_q[k].id == l->_q[0].id)
            l->_q[k].id ^= 0x5a5a;
        l->_q[k].done = 0;
        size_t qlen = ficus_dns_build_query(q, sizeof(q), l->_q[k].id, l->_name, l->_q[k].qtype);
        if (qlen == 0 || send(fd, q, qlen, 0) != (ssize_t)qlen) {
            ficus_dns_queries_total[FICUS_DNS_SEND_ERROR] += l->_num_q - k;
            next_try(l, FICUS_DNS_SEND_ERROR);
            return;
        }
    }
    l->_timeout.timeout = l->_conf.timeout_ms; /* nothing is linked on it between tries */
    l->_deadline.cb = on_timeout;
    h2o_timeout_link(l->_loop, &l->_timeout, &l->_deadline);
    h2o_socket_read_start(l->_sock, on_readable);
}

void ficus_dns_lookup_start(ficus_dns_lookup_t *l, const ficus_resolver_conf_t *conf, const char *name, ficus_dns_lookup_cb cb)
{
    assert(!l->_running);
    l->_running = 1;
    l->_conf = *conf;
    snprintf(l->_name, sizeof(l->_name), "%s", name);
    l->_cb = cb;
    l->_num_addrs = 0;
    l->_try = 0;
    l->_num_tries = l->_conf.attempts * (unsigned)l->_conf.num_nameservers;
    l->_num_q = 0;
    l->_q[l->_num_q++].qtype = FICUS_DNS_TYPE_A;
    if (l->_conf.ipv6)
        l->_q[l->_num_q++].qtype = FICUS_DNS_TYPE_AAAA;
    if (try_hosts_file(l))
        return;
    if (l->_num_tries == 0) {
        finish(l, FICUS_DNS_NXDOMAIN, l->_conf.hosts_file[0] != '\0' ? "hosts" : "none");
        return;
    }
    start_try(l);
}
