/* The control socket (see ficus/control_socket.h): the server side on the control loop, and the `ficus -s` client. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "ficus/control_socket.h"
#include "ficus/log.h"
#include "ficus/server.h"
#include "ficus/upgrade.h"

#define MAX_LINE 64
#define CLIENT_TIMEOUT_MS 10000

typedef struct st_control_client_t {
    h2o_socket_t *sock;
    h2o_timeout_entry_t timeout_entry;
    pid_t successor; /* a new process that holds our listening sockets and will send "drain" (ficus/upgrade.h) */
    char answer[1200];
} control_client_t;

static h2o_timeout_t client_timeout;
static size_t num_clients;

static void client_close(control_client_t *c)
{
    if (c->successor != 0) {
        ficus_server.upgrade_pending = 0;
        ficus_warn("upgrade: pid %d went away before taking over; serving on", (int)c->successor);
    }
    if (h2o_timeout_is_linked(&c->timeout_entry))
        h2o_timeout_unlink(&c->timeout_entry);
    h2o_socket_close(c->sock);
    free(c);
    --num_clients;
}

static void on_client_timeout(h2o_timeout_entry_t *entry)
{
    client_close(H2O_STRUCT_FROM_MEMBER(control_client_t, timeout_entry, entry));
}

static void on_written(h2o_socket_t *sock, const char *err)
{
    client_close(sock->data);
}

static void answer(control_client_t *c, int ok, const char *what)
{
    h2o_socket_read_stop(c->sock);
    snprintf(c->answer, sizeof(c->answer), "%s %s\n", ok ? "ok" : "error", what);
    h2o_iovec_t buf = h2o_iovec_init(c->answer, strlen(c->answer));
    h2o_socket_write(c->sock, &buf, 1, on_written);
}

/* `ficus -s upgrade`: the answer waits until the new process took over, or exited */
static void answer_upgrade_waiter(ficus_server_t *s, int ok, const char *what)
{
    if (s->upgrade_waiter == NULL)
        return;
    control_client_t *w = s->upgrade_waiter;
    s->upgrade_waiter = NULL;
    s->upgrade_child = 0;
    answer(w, ok, what);
}

static void on_upgrade_child_exit(pid_t pid, int status)
{
    ficus_server_t *s = &ficus_server;
    char msg[200];
    if (s->upgrade_child != pid)
        return; /* it took over (and was answered for), then exited */
    if (WIFEXITED(status))
        snprintf(msg, sizeof(msg), "the new ficus (pid %d) exited with status %d before taking over (see its log lines)", (int)pid,
                 WEXITSTATUS(status));
    else
        snprintf(msg, sizeof(msg), "the new ficus (pid %d) was killed by signal %d before taking over", (int)pid,
                 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    ficus_error("upgrade failed: %s; serving on", msg);
    answer_upgrade_waiter(s, 0, msg);
}

/* Returns 1 when the client stays connected for more (its answer comes later). */
static int run_upgrade_command(control_client_t *c, const char *cmd, char *msg, size_t msglen, int *ok)
{
    ficus_server_t *s = &ficus_server;
    int pid;
    char end;
    if (c->successor != 0 && strcmp(cmd, "drain") == 0) {
        pid_t successor = c->successor;
        c->successor = 0;
        s->upgrade_pending = 0;
        ficus_control_drain(s, successor);
        char note[200];
        snprintf(note, sizeof(note), "pid %d took over the listeners; pid %d drains", (int)successor, (int)getpid());
        answer_upgrade_waiter(s, 1, note);
        snprintf(msg, msglen, "draining");
        *ok = 1;
        return 0;
    }
    if (sscanf(cmd, "listeners %d%c", &pid, &end) == 1 && pid > 0) {
        *ok = 0;
        if (s->draining || s->upgrade_pending) {
            snprintf(msg, msglen, "%s", s->draining ? "draining: no upgrade" : "an upgrade is already under way");
            return 0;
        }
        ficus_info("upgrade: handing listeners to pid %d", pid);
        if (ficus_upgrade_send_listeners(s, h2o_socket_get_fd(c->sock), msg, msglen) != 0) {
            ficus_error("upgrade: %s", msg);
            return 0;
        }
        /* no deadline now: the connection lasts until the new process serves (or dies, which closes it) */
        c->successor = (pid_t)pid;
        s->upgrade_pending = 1;
        h2o_timeout_unlink(&c->timeout_entry);
        return 1;
    }
    if (strcmp(cmd, "upgrade") == 0) {
        *ok = 0;
        if (s->draining || s->upgrade_pending || s->upgrade_waiter != NULL) {
            snprintf(msg, msglen, "%s", s->draining ? "draining: no upgrade" : "an upgrade is already under way");
            return 0;
        }
        pid_t child = ficus_upgrade_spawn(s, on_upgrade_child_exit, msg, msglen);
        if (child == -1)
            return 0;
        ficus_info("upgrade: started pid %d to take over", (int)child);
        s->upgrade_child = child;
        s->upgrade_waiter = c;
        h2o_socket_read_stop(c->sock);
        h2o_timeout_unlink(&c->timeout_entry);
        return 1;
    }
    return -1;
}

static void run_command(control_client_t *c, const char *cmd)
{
    ficus_server_t *s = &ficus_server;
    char msg[1100];
    int ok, r = run_upgrade_command(c, cmd, msg, sizeof(msg), &ok);
    if (r == 1)
        return; /* answered later */
    if (r == 0) {
        /* an upgrade command, answered now */
    } else if (strcmp(cmd, "reload") == 0) {
        ok = ficus_control_reload(s, msg, sizeof(msg)) == 0;
    } else if (strcmp(cmd, "reopen") == 0) {
        ok = ficus_control_reopen(s, msg, sizeof(msg)) == 0;
    } else if (strcmp(cmd, "status") == 0) {
        ok = 1;
        snprintf(msg, sizeof(msg), "generation %llu, %zu routes, %u workers%s", (unsigned long long)s->generation,
                 s->running->num_routes, s->num_workers, s->draining ? ", draining" : "");
    } else {
        ok = 0;
        snprintf(msg, sizeof(msg), "unknown command (reload, reopen, status, upgrade)");
    }
    answer(c, ok, msg);
}

static void on_client_read(h2o_socket_t *sock, const char *err)
{
    control_client_t *c = sock->data;
    if (err != NULL) {
        client_close(c);
        return;
    }
    char *nl = memchr(sock->input->bytes, '\n', sock->input->size);
    if (nl == NULL) {
        if (sock->input->size > MAX_LINE)
            answer(c, 0, "command line too long");
        return;
    }
    char cmd[MAX_LINE + 1];
    size_t len = (size_t)(nl - sock->input->bytes);
    if (len > MAX_LINE) {
        answer(c, 0, "command line too long");
        return;
    }
    memcpy(cmd, sock->input->bytes, len);
    cmd[len] = '\0';
    if (len != 0 && cmd[len - 1] == '\r')
        cmd[len - 1] = '\0';
    h2o_buffer_consume(&sock->input, len + 1); /* an upgrading process sends a second line later */
    run_command(c, cmd);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    /* bounded: at most FICUS_CONTROL_MAX_CLIENTS connections are served at once; the rest wait in the backlog */
    while (num_clients < FICUS_CONTROL_MAX_CLIENTS) {
        int fd = accept4(h2o_socket_get_fd(listener), NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1)
            return;
        control_client_t *c = calloc(1, sizeof(*c));
        if (c == NULL)
            ficus_fatal("no memory");
        ++num_clients;
        c->sock = h2o_evloop_socket_create(ficus_server.loop, fd, 0);
        c->sock->data = c;
        c->timeout_entry.cb = on_client_timeout;
        h2o_timeout_link(ficus_server.loop, &client_timeout, &c->timeout_entry);
        h2o_socket_read_start(c->sock, on_client_read);
    }
}

static int make_addr(const char *path, struct sockaddr_un *sa, char *err, size_t errlen)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path)) {
        snprintf(err, errlen, "control socket path too long: %s", path);
        return -1;
    }
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return 0;
}

/* A new listening socket on path; -1 with err when another ficus answers there or it cannot be bound. */
static int bind_path(const char *path, const struct sockaddr_un *sa, char *err, size_t errlen)
{
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe != -1 && connect(probe, (const struct sockaddr *)sa, sizeof(*sa)) == 0) {
        close(probe);
        snprintf(err, errlen, "control socket %s: another ficus is running on it", path);
        return -1;
    }
    if (probe != -1)
        close(probe);
    unlink(path); /* stale: nobody answers */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        goto Error;
    mode_t old = umask(0117);
    int r = bind(fd, (const struct sockaddr *)sa, sizeof(*sa));
    umask(old);
    if (r != 0 || listen(fd, 16) != 0)
        goto Error;
    return fd;
Error:
    snprintf(err, errlen, "cannot listen on control socket %s: %s", path, strerror(errno));
    if (fd != -1)
        close(fd);
    return -1;
}

int ficus_control_socket_start(ficus_server_t *s, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    if (s->control_socket_path == NULL)
        return 0;
    if (make_addr(s->control_socket_path, &sa, err, errlen) != 0)
        return -1;
    /* a binary upgrade: the running process's socket, still bound to the path (it stops accepting once we serve) */
    int fd = s->handoff != NULL ? ficus_handoff_take_unix(s->handoff, s->control_socket_path) : -1;
    if (fd == -1 && (fd = bind_path(s->control_socket_path, &sa, err, errlen)) == -1)
        return -1;
    h2o_timeout_init(s->loop, &client_timeout, CLIENT_TIMEOUT_MS);
    s->control_sock = h2o_evloop_socket_create(s->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(s->control_sock, on_accept);
    ficus_info("control socket on %s", s->control_socket_path);
    return 0;
}

void ficus_control_socket_stop(ficus_server_t *s, int unlink_path)
{
    if (s->control_sock == NULL)
        return;
    h2o_socket_read_stop(s->control_sock);
    h2o_socket_close(s->control_sock);
    s->control_sock = NULL;
    if (unlink_path)
        unlink(s->control_socket_path);
}

int ficus_control_socket_command(const char *path, const char *cmd)
{
    struct sockaddr_un sa;
    char err[256];
    if (make_addr(path, &sa, err, sizeof(err)) != 0) {
        fprintf(stderr, "ficus: %s\n", err);
        return 2;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "ficus: no running ficus on control socket %s: %s\n", path, strerror(errno));
        return 2;
    }
    struct timeval tv = {120, 0}; /* a reload builds TLS contexts and reads key files: seconds, not minutes */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char line[MAX_LINE + 2];
    int n = snprintf(line, sizeof(line), "%s\n", cmd);
    if (n < 0 || (size_t)n >= sizeof(line) || write(fd, line, (size_t)n) != n) {
        fprintf(stderr, "ficus: cannot send '%s' to %s\n", cmd, path);
        close(fd);
        return 2;
    }
    char buf[2048];
    size_t len = 0;
    ssize_t r;
    while (len < sizeof(buf) - 1 && (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)r;
    close(fd);
    buf[len] = '\0';
    if (strncmp(buf, "ok ", 3) == 0) {
        printf("ficus: %s: %s", cmd, buf + 3);
        return 0;
    }
    if (strncmp(buf, "error ", 6) == 0) {
        fprintf(stderr, "ficus: %s failed: %s", cmd, buf + 6);
        return 1;
    }
    fprintf(stderr, "ficus: %s: no answer from %s\n", cmd, path);
    return 2;
}
