/* Binary upgrade: handing the listening sockets of a running ficus to a new process (gateway/upgrade.c).
 *
 * The new process (`ficus --upgrade-from SOCKET`, or started by the running one on `ficus -s upgrade`) connects to
 * the running one's control socket and sends "listeners <pid>\n". The running one answers "ok <pid> <count>\n", then
 * passes <count> descriptors with SCM_RIGHTS (every worker's socket of every listener, the admin listener, the
 * control socket itself), at most FICUS_UPGRADE_FDS_PER_MSG per one-byte message, and keeps serving. The new process
 * matches them to its configuration by their own address (getsockname), starts its workers on them, and only then
 * sends "drain\n" on the same connection: the old one answers "ok draining\n", stops accepting (its copies of the
 * sockets are closed; the sockets live on in the new process, so nothing queued in a backlog is lost) and drains.
 * If the connection closes before "drain" (the new process failed), the old one logs it and goes on serving.
 * THREADING: control thread only (the new process's side runs before any loop exists and may block, with timeouts). */
#ifndef ficus__upgrade_h
#define ficus__upgrade_h

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#define FICUS_UPGRADE_FDS_PER_MSG 64
#define FICUS_UPGRADE_MAX_FDS 4096 /* refused beyond: a bound on what a peer can make us accept */

typedef struct st_ficus_server_t ficus_server_t;

/* The sockets received from the old process, until each is taken or closed. */
typedef struct st_ficus_handoff_t {
    int conn;  /* the connection to the old process's control socket */
    pid_t pid; /* the old process */
    int *fds;  /* -1 once taken */
    size_t num_fds;
    size_t num_taken;
} ficus_handoff_t;

/** The new process: connects to path, receives the old process's sockets into h. 0, or -1 with err. Blocking. */
int ficus_upgrade_receive(const char *path, ficus_handoff_t *h, char *err, size_t errlen);
/** Takes (removes from h) a received TCP listening socket bound to addr, or returns -1 if there is none left. */
int ficus_handoff_take(ficus_handoff_t *h, const struct sockaddr_storage *addr);
/** Takes the received unix socket bound to path, or -1. */
int ficus_handoff_take_unix(ficus_handoff_t *h, const char *path);
/** Closes the sockets nobody took (listeners the new configuration does not have); returns how many. */
size_t ficus_handoff_close_rest(ficus_handoff_t *h);
/** Closes whatever h still holds and the connection (a start-up that fails: the old process serves on). */
void ficus_handoff_dispose(ficus_handoff_t *h);
/** Tells the old process to stop accepting and drain (our workers accept on the sockets already), waits for its
 * answer, closes the connection. 0, or -1 with err (the old process went away: we serve anyway). */
int ficus_upgrade_finish(ficus_handoff_t *h, char *err, size_t errlen);

/** The old process: sends the "ok" line and every listening socket on fd (a control socket client). 0, or -1 with
 * err (nothing changed). */
int ficus_upgrade_send_listeners(ficus_server_t *s, int fd, char *err, size_t errlen);

/** Remembers how this process was started (its executable and arguments) for ficus_upgrade_spawn(). */
void ficus_upgrade_set_argv(int argc, char **argv);
/** `ficus -s upgrade`: starts this process's executable file again (the binary on disk now) with its arguments plus
 * `--upgrade-from CONTROL_SOCKET`, with default signal dispositions and an empty mask, stdout/stderr inherited.
 * Returns the child's pid, or -1 with err. on_exit(pid, status) runs later on the control loop when it exits. */
pid_t ficus_upgrade_spawn(ficus_server_t *s, void (*on_exit)(pid_t pid, int status), char *err, size_t errlen);

#endif
