/* Binary upgrade: the listening sockets passed from the running ficus to a new one (see ficus/upgrade.h).
 *
 * WHY PASS THEM: workers listen with SO_REUSEPORT, one socket each per listener, and the kernel hashes every new
 * connection to one socket of the group. A socket closed with connections in its accept queue resets them, and a new
 * process binding its own sockets beside the old ones could only take over new connections once the old sockets are
 * closed. Passing the very sockets (HAProxy's `-x`) avoids both: during the overlap both processes accept from the
 * same queues, then the old one stops polling and drops its copies; the sockets stay open in the new process.
 * WIRE: on the control socket (unix stream): "listeners <pid>\n" -> "ok <pid> <count>\n" then <count> descriptors in
 * one-byte messages carrying at most FICUS_UPGRADE_FDS_PER_MSG each (SCM_RIGHTS; one byte per message so a reader
 * never merges two of them); later "drain\n" -> "ok draining\n". Or "error <what>\n".
 * FAILURE: anything unexpected on the new side is an error before it serves (it exits 1, the old one is untouched).
 * BOUNDS: at most FICUS_UPGRADE_MAX_FDS descriptors, lines of at most 256 bytes, 30 s per blocking read. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "ficus/control.h"
#include "ficus/log.h"
#include "ficus/server.h"
#include "ficus/upgrade.h"

#define LINE_MAX_LEN 256
#define READ_TIMEOUT_S 30

extern char **environ;

/* ---- the old process ---- */

static int send_fds(int fd, const int *fds, size_t n)
{
    char byte = 'F';
    struct iovec iov = {&byte, 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * FICUS_UPGRADE_FDS_PER_MSG)];
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
    ssize_t r;
    while ((r = sendmsg(fd, &msg, MSG_NOSIGNAL)) == -1 && errno == EINTR)
        ;
    return r == 1 ? 0 : -1;
}

int ficus_upgrade_send_listeners(ficus_server_t *s, int fd, char *err, size_t errlen)
{
    size_t cap = 2, n = 0;
    for (unsigned i = 0; i != s->num_workers; ++i)
        cap += s->workers[i].num_listeners;
    if (cap > FICUS_UPGRADE_MAX_FDS) {
        snprintf(err, errlen, "too many listening sockets to pass (%zu)", cap);
        return -1;
    }
    int *fds = malloc(sizeof(int) * cap);
    if (fds == NULL)
        ficus_fatal("no memory");
    for (unsigned i = 0; i != s->num_workers; ++i)
        for (size_t j = 0; j != s->workers[i].num_listeners; ++j)
            fds[n++] = s->workers[i].listeners[j].fd;
    if (s->admin_sock != NULL)
        fds[n++] = h2o_socket_get_fd(s->admin_sock);
    if (s->control_sock != NULL)
        fds[n++] = h2o_socket_get_fd(s->control_sock);
    char line[LINE_MAX_LEN];
    int len = snprintf(line, sizeof(line), "ok %d %zu\n", (int)getpid(), n);
    /* the client socket is non-blocking and empty: a few hundred bytes fit in its buffer at once */
    int ret = send(fd, line, (size_t)len, MSG_NOSIGNAL) == len ? 0 : -1;
    for (size_t off = 0; ret == 0 && off < n; off += FICUS_UPGRADE_FDS_PER_MSG)
        ret = send_fds(fd, fds + off, n - off < FICUS_UPGRADE_FDS_PER_MSG ? n - off : FICUS_UPGRADE_FDS_PER_MSG);
    if (ret != 0)
        snprintf(err, errlen, "cannot pass the listening sockets: %s", strerror(errno));
    free(fds);
    return ret;
}

/* ---- the new process ---- */

static int read_line(int fd, char *line, size_t size)
{
    size_t len = 0;
    while (len + 1 < size) {
        ssize_t r = recv(fd, line + len, 1, 0);
        if (r == -1 && errno == EINTR)
            continue;
        if (r != 1)
            return -1;
        if (line[len] == '\n') {
            line[len] = '\0';
            return 0;
        }
        ++len;
    }
    return -1;
}

static int recv_fds(ficus_handoff_t *h, size_t want)
{
    while (h->num_fds < want) {
        char byte;
        struct iovec iov = {&byte, 1};
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(sizeof(int) * FICUS_UPGRADE_FDS_PER_MSG)];
        } u;
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
        ssize_t r = recvmsg(h->conn, &msg, MSG_CMSG_CLOEXEC);
        if (r == -1 && errno == EINTR)
            continue;
        if (r != 1)
            return -1;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                continue;
            size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i != n; ++i) {
                int fd;
                memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                if (h->num_fds < want)
                    h->fds[h->num_fds++] = fd;
                else
                    close(fd);
            }
        }
        if ((msg.msg_flags & MSG_CTRUNC) != 0)
            return -1;
    }
    return 0;
}

void ficus_handoff_dispose(ficus_handoff_t *h)
{
    ficus_handoff_close_rest(h);
    free(h->fds);
    h->fds = NULL;
    if (h->conn != -1)
        close(h->conn);
    h->conn = -1;
}

int ficus_upgrade_receive(const char *path, ficus_handoff_t *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof(*h));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "--upgrade-from: socket path too long: %s", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if ((h->conn = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
        connect(h->conn, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        snprintf(err, errlen, "--upgrade-from: no running ficus answers on %s: %s", path, strerror(errno));
        goto Error;
    }
    struct timeval tv = {READ_TIMEOUT_S, 0};
    setsockopt(h->conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(h->conn, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char line[LINE_MAX_LEN];
    int len = snprintf(line, sizeof(line), "listeners %d\n", (int)getpid());
    if (send(h->conn, line, (size_t)len, MSG_NOSIGNAL) != len || read_line(h->conn, line, sizeof(line)) != 0) {
        snprintf(err, errlen, "--upgrade-from %s: no answer from the running ficus", path);
        goto Error;
    }
    int pid;
    size_t count;
    char end;
    if (sscanf(line, "ok %d %zu%c", &pid, &count, &end) != 2 || pid <= 0 || count > FICUS_UPGRADE_MAX_FDS) {
        snprintf(err, errlen, "--upgrade-from %s: the running ficus refused: %s", path,
                 strncmp(line, "error ", 6) == 0 ? line + 6 : line);
        goto Error;
    }
    h->pid = (pid_t)pid;
    if ((h->fds = malloc(sizeof(int) * (count + 1))) == NULL)
        ficus_fatal("no memory");
    if (recv_fds(h, count) != 0) {
        snprintf(err, errlen, "--upgrade-from %s: received %zu of %zu listening sockets from pid %d", path, h->num_fds, count, pid);
        goto Error;
    }
    return 0;
Error:
    ficus_handoff_dispose(h);
    return -1;
}

static int same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0 &&
               x->sin6_scope_id == y->sin6_scope_id;
    }
    return 0;
}

static int take_at(ficus_handoff_t *h, size_t i)
{
    int fd = h->fds[i];
    h->fds[i] = -1;
    ++h->num_taken;
    return fd;
}

int ficus_handoff_take(ficus_handoff_t *h, const struct sockaddr_storage *addr)
{
    for (size_t i = 0; h->fds != NULL && i != h->num_fds; ++i) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (h->fds[i] != -1 && getsockname(h->fds[i], (struct sockaddr *)&ss, &len) == 0 && same_address(&ss, addr))
            return take_at(h, i);
    }
    return -1;
}

int ficus_handoff_take_unix(ficus_handoff_t *h, const char *path)
{
    for (size_t i = 0; h->fds != NULL && i != h->num_fds; ++i) {
        struct sockaddr_un sa;
        socklen_t len = sizeof(sa);
        if (h->fds[i] == -1 || getsockname(h->fds[i], (struct sockaddr *)&sa, &len) != 0 || sa.sun_family != AF_UNIX ||
            len <= offsetof(struct sockaddr_un, sun_path))
            continue;
        size_t n = len - offsetof(struct sockaddr_un, sun_path);
        if (strnlen(sa.sun_path, n) == strlen(path) && memcmp(sa.sun_path, path, strlen(path)) == 0)
            return take_at(h, i);
    }
    return -1;
}

size_t ficus_handoff_close_rest(ficus_handoff_t *h)
{
    size_t n = 0;
    for (size_t i = 0; h->fds != NULL && i != h->num_fds; ++i) {
        if (h->fds[i] != -1) {
            close(h->fds[i]);
            h->fds[i] = -1;
            ++n;
        }
    }
    return n;
}

int ficus_upgrade_finish(ficus_handoff_t *h, char *err, size_t errlen)
{
    char line[LINE_MAX_LEN];
    int ret = 0;
    if (send(h->conn, "drain\n", 6, MSG_NOSIGNAL) != 6 || read_line(h->conn, line, sizeof(line)) != 0) {
        snprintf(err, errlen, "pid %d did not answer the request to drain: %s", (int)h->pid, strerror(errno));
        ret = -1;
    } else if (strncmp(line, "ok ", 3) != 0) {
        snprintf(err, errlen, "pid %d refused to drain: %s", (int)h->pid, line);
        ret = -1;
    }
    ficus_handoff_dispose(h);
    return ret;
}

/* ---- `ficus -s upgrade`: the old process starts the new one ---- */

static char exe_path[4096];
static char **saved_argv;
static int saved_argc;

void ficus_upgrade_set_argv(int argc, char **argv)
{
    ssize_t n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
    exe_path[n > 0 ? n : 0] = '\0';
    if ((saved_argv = calloc((size_t)argc + 1, sizeof(char *))) == NULL)
        ficus_fatal("no memory");
    /* without a previous upgrade's --upgrade-from: the child gets its own */
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "-x") == 0 || strcmp(argv[i], "--upgrade-from") == 0) {
            ++i;
            continue;
        }
        if (strncmp(argv[i], "-x", 2) == 0 || strncmp(argv[i], "--upgrade-from=", 15) == 0)
            continue;
        if ((saved_argv[saved_argc++] = strdup(argv[i])) == NULL)
            ficus_fatal("no memory");
    }
}

typedef struct st_spawned_t {
    pid_t pid;
    int status;
    void (*on_exit)(pid_t pid, int status);
} spawned_t;

static void on_child_exit(void *arg)
{
    spawned_t *c = arg;
    c->on_exit(c->pid, c->status);
    free(c);
}

static void *wait_child(void *arg)
{
    /* a thread of its own: waitpid blocks, and the control loop must not */
    spawned_t *c = arg;
    while (waitpid(c->pid, &c->status, 0) == -1 && errno == EINTR)
        ;
    ficus_control_post(on_child_exit, c);
    return NULL;
}

pid_t ficus_upgrade_spawn(ficus_server_t *s, void (*on_exit)(pid_t pid, int status), char *err, size_t errlen)
{
    if (exe_path[0] == '\0' || s->control_socket_path == NULL) {
        snprintf(err, errlen, "cannot tell which executable to start");
        return -1;
    }
    char **argv = calloc((size_t)saved_argc + 4, sizeof(char *));
    if (argv == NULL)
        ficus_fatal("no memory");
    size_t n = 0;
    argv[n++] = exe_path;
    for (int i = 0; i != saved_argc; ++i)
        argv[n++] = saved_argv[i];
    argv[n++] = "--upgrade-from";
    argv[n++] = (char *)s->control_socket_path;
    argv[n] = NULL;
    posix_spawnattr_t attr;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3); /* only stdin, stdout and stderr are inherited */
    pid_t pid;
    int r = posix_spawn(&pid, exe_path, &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free(argv);
    if (r != 0) {
        snprintf(err, errlen, "cannot start %s: %s", exe_path, strerror(r));
        return -1;
    }
    spawned_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        ficus_fatal("no memory");
    c->pid = pid;
    c->on_exit = on_exit;
    pthread_t t;
    pthread_attr_t ta;
    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &ta, wait_child, c) != 0)
        ficus_fatal("cannot create thread");
    pthread_attr_destroy(&ta);
    return pid;
}
