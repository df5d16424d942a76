/* The systemd notify protocol (sd_notify from libsystemd): READY, RELOADING, STOPPING and a STATUS line.
 *
 * Without $NOTIFY_SOCKET (not started by systemd with Type=notify) every call is a no-op. Control thread only: a
 * datagram send on a local socket, never blocking for long. */
#ifndef ficus__notify_h
#define ficus__notify_h

typedef struct st_ficus_server_t ficus_server_t;

/** READY=1 with the status line "generation N, R routes, W workers[; note]" (after start and after each reload,
 * note = what failed, or NULL). */
void ficus_notify_ready(const ficus_server_t *server, const char *note);
/** RELOADING=1 (a reload starts: systemctl shows "reloading" until the next ficus_notify_ready). */
void ficus_notify_reloading(void);
/** STOPPING=1 with a status line saying the gateway drains. */
void ficus_notify_stopping(void);
/** MAINPID=<our pid>: after a binary upgrade the new process is the service's main process (the unit needs
 * NotifyAccess=all: the message comes from a process that is not the main one yet). */
void ficus_notify_mainpid(void);

#endif
