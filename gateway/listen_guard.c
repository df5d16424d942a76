/* Exclusive listen addresses: nobody else may share ficus's SO_REUSEPORT group (see ficus/listen_guard.h).
 *
 * Workers bind one socket each with SO_REUSEPORT, so the kernel spreads connections over them. The same option lets
 * any other socket of the same user (a second ficus started by mistake, anything with SO_REUSEPORT) bind the same
 * address without error and silently take its share of the connections. NGINX and HAProxy refuse to start then.
 * DESIGN: after binding, the listening sockets of the network namespace (/proc/net/tcp, /proc/net/tcp6) are compared
 * with ficus's own: a LISTEN socket on a listener's port whose address overlaps (equal, or either side a wildcard)
 * and whose inode is not one of ficus's own sockets belongs to someone else, and the caller refuses to start (and a
 * reload refuses, as the sockets are kept across reloads). A socket bound without SO_REUSEPORT makes ficus's own
 * bind fail already (EADDRINUSE). At start-up the check also runs before binding: a second ficus that would be
 * refused must not join the group even briefly (connections the kernel queued on its sockets would be reset when it
 * exits); after a binary upgrade the sockets passed from the previous process are ficus's own. Runs on the control thread only
 * (startup, reload): reading /proc is file I/O. BOUNDS: one pass over each file, lines of at most 512 bytes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "ficus/listen_guard.h"
#include "ficus/log.h"

typedef struct st_ficus_listen_entry_t {
    int family;
    uint8_t addr[16];
    uint16_t port;
    unsigned long inode;
} ficus_listen_entry_t;

/* /proc prints each 32-bit word of the address as the host-order value of its bytes */
static int parse_hex_addr(const char *s, size_t words, uint8_t *out)
{
    for (size_t i = 0; i != words; ++i) {
        char word[9];
        memcpy(word, s + i * 8, 8);
        word[8] = '\0';
        char *end;
        uint32_t v = (uint32_t)strtoul(word, &end, 16);
        if (*end != '\0')
            return -1;
        memcpy(out + i * 4, &v, 4);
    }
    return 0;
}

/* Parses one line of /proc/net/tcp{,6}. Returns 1 for a LISTEN socket, 0 otherwise. */
static int parse_line(const char *line, int family, ficus_listen_entry_t *e)
{
    size_t words = family == AF_INET ? 1 : 4;
    char local[40], state[3];
    unsigned long inode;
    /* sl local rem st tx:rx tr:when retr uid timeout inode */
    if (sscanf(line, " %*s %39s %*s %2s %*s %*s %*s %*s %*s %lu", local, state, &inode) != 3)
        return 0;
    if (strcmp(state, "0A") != 0 || strlen(local) != words * 8 + 5 || local[words * 8] != ':')
        return 0;
    memset(e, 0, sizeof(*e));
    e->family = family;
    if (parse_hex_addr(local, words, e->addr) != 0)
        return 0;
    char *end;
    e->port = (uint16_t)strtoul(local + words * 8 + 1, &end, 16);
    if (*end != '\0')
        return 0;
    e->inode = inode;
    return 1;
}

static void addr_of(const struct sockaddr_storage *ss, int *family, uint8_t *addr, uint16_t *port)
{
    memset(addr, 0, 16);
    *family = ss->ss_family;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const void *)ss;
        memcpy(addr, &sin->sin_addr, 4);
        *port = ntohs(sin->sin_port);
    } else {
        const struct sockaddr_in6 *sin6 = (const void *)ss;
        memcpy(addr, &sin6->sin6_addr, 16);
        *port = ntohs(sin6->sin6_port);
    }
}

static int is_any(const uint8_t *addr, size_t len)
{
    for (size_t i = 0; i != len; ++i)
        if (addr[i] != 0)
            return 0;
    return 1;
}

static int overlaps(const ficus_listen_entry_t *e, const struct sockaddr_storage *ss)
{
    int family;
    uint8_t addr[16];
    uint16_t port;
    addr_of(ss, &family, addr, &port);
    if (family != e->family || port != e->port)
        return 0;
    size_t len = family == AF_INET ? 4 : 16;
    return is_any(addr, len) || is_any(e->addr, len) || memcmp(addr, e->addr, len) == 0;
}

static int is_own(unsigned long inode, const int *fds, size_t num_fds)
{
    for (size_t i = 0; i != num_fds; ++i) {
        struct stat st;
        if (fds[i] != -1 && fstat(fds[i], &st) == 0 && (unsigned long)st.st_ino == inode)
            return 1;
    }
    return 0;
}

int ficus_listen_check_exclusive(const char *address, const struct sockaddr_storage *ss, const int *fds, size_t num_fds, char *err,
                                 size_t errlen)
{
    const char *path = ss->ss_family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6";
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        snprintf(err, errlen, "cannot check who else listens on %s: %s: %s", address, path, strerror(errno));
        return -1;
    }
    char line[512];
    int ret = 0;
    while (fgets(line, sizeof(line), fp) != NULL) {
        ficus_listen_entry_t e;
        if (!parse_line(line, ss->ss_family, &e) || !overlaps(&e, ss) || is_own(e.inode, fds, num_fds))
            continue;
        snprintf(err, errlen,
                 "cannot listen on %s: the address is also bound by another process (socket inode %lu; another ficus, or "
                 "a program using SO_REUSEPORT: `ss -ltnp 'sport = %u'` names it), which would silently take part of the "
                 "connections",
                 address, e.inode, (unsigned)e.port);
        ret = -1;
        break;
    }
    fclose(fp);
    return ret;
}

int ficus_listen_guard_check(const ficus_server_t *s, const ficus_config_t *config, char *err, size_t errlen)
{
    /* ficus's own sockets of each listener: one per worker, more after a binary upgrade (passed from the previous
     * process, which holds the same sockets until it exits: same inodes, so they are not someone else's) */
    size_t cap = 0;
    for (unsigned j = 0; j != s->num_workers; ++j)
        cap += s->workers[j].num_listeners;
    int *fds = malloc(sizeof(int) * (cap + 1));
    if (fds == NULL)
        ficus_fatal("no memory");
    int ret = 0;
    for (size_t i = 0; ret == 0 && i != config->server.num_listeners; ++i) {
        size_t n = 0;
        for (unsigned j = 0; j != s->num_workers; ++j)
            for (size_t k = 0; k != s->workers[j].num_listeners; ++k)
                if (s->workers[j].listeners[k].index == i)
                    fds[n++] = s->workers[j].listeners[k].fd;
        const ficus_listener_conf_t *lc = config->server.listeners + i;
        ret = ficus_listen_check_exclusive(lc->address, &lc->addr, fds, n, err, errlen);
    }
    free(fds);
    return ret;
}

int ficus_listen_guard_precheck(const ficus_config_t *config, const int *fds, size_t num_fds, char *err, size_t errlen)
{
    for (size_t i = 0; i != config->server.num_listeners; ++i) {
        const ficus_listener_conf_t *lc = config->server.listeners + i;
        if (ficus_listen_check_exclusive(lc->address, &lc->addr, fds, num_fds, err, errlen) != 0)
            return -1;
    }
    return 0;
}
