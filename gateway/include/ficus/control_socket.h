/* The control socket: a unix stream socket on which `ficus -s reload|reopen|status` asks the running process to act
 * and waits for the outcome (what systemd's ExecReload needs to fail visibly, as `nginx -s reload` cannot).
 *
 * Protocol: the client sends one command line ("reload\n", "reopen\n", "status\n", "upgrade\n"); the server answers
 * one line, "ok <what>\n" or "error <what>\n", and closes ("upgrade" answers once the process it started took over
 * the listeners, or exited; the hand-over itself, "listeners <pid>", is in ficus/upgrade.h). At most FICUS_CONTROL_MAX_CLIENTS at
 * once, each with a 10 s deadline; a command line longer than 64 bytes is refused. The socket is created mode 0660 (the service's
 * user and group). */
#ifndef ficus__control_socket_h
#define ficus__control_socket_h

#include <stddef.h>

#define FICUS_CONTROL_SOCKET_DEFAULT "/run/ficus/ficus.sock"
#define FICUS_CONTROL_MAX_CLIENTS 8

typedef struct st_ficus_server_t ficus_server_t;

/** Listens on server->control_socket_path (NULL: nothing). A stale socket file nobody answers on is replaced; one a
 * running ficus answers on is an error. 0, or -1 with err. */
int ficus_control_socket_start(ficus_server_t *server, char *err, size_t errlen);
/** Closes the listener and, with unlink_path, removes the socket file (at exit; after a binary upgrade the file is
 * the new process's: it listens on the same socket). */
void ficus_control_socket_stop(ficus_server_t *server, int unlink_path);
/** The client (`ficus -s CMD`): connects to path, sends cmd, prints the answer (stdout on ok, stderr on error) and
 * returns the exit code: 0 ok, 1 error answer, 2 no running ficus on that socket. Blocking (command line only). */
int ficus_control_socket_command(const char *path, const char *cmd);

#endif
