/* The control thread's view of the process: the running generation, the workers, the admin listener.
 *
 * The control thread (main) owns signals (signalfd on its loop), config load/validate/publish and the admin
 * listener; it reaches workers only through their message queues. Nothing here is touched by workers. */
#ifndef ficus__server_h
#define ficus__server_h

#include "h2o.h"
#include "ficus/config.h"
#include "ficus/control.h"
#include "ficus/worker.h"

typedef struct st_ficus_server_t {
    const char *config_path;
    ficus_config_t *running; /* reference held by the control thread */
    uint64_t generation;
    unsigned num_workers;
    ficus_worker_t *workers;
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    int draining;
    /* the last reload (SIGHUP or `ficus -s reload`): outcome, when, and the error of a failed one */
    int last_reload_ok;    /* 1 until a reload fails */
    double last_reload_at; /* unix time; 0 = none yet */
    char last_reload_error[1024];
    /* control socket (ficus/control_socket.h) */
    const char *control_socket_path; /* NULL: none */
    h2o_socket_t *control_sock;
    /* binary upgrade (ficus/upgrade.h) */
    const char *upgrade_from;           /* --upgrade-from SOCKET: take the listeners of the ficus answering there */
    struct st_ficus_handoff_t *handoff; /* at start-up of such a process: the sockets received, until taken */
    int upgrade_pending;                /* a new process holds our sockets and has not asked us to drain yet */
    void *upgrade_waiter;               /* the `ficus -s upgrade` client waiting for the outcome (control_socket.c) */
    pid_t upgrade_child;                /* the process it started */
    /* admin */
    h2o_globalconf_t admin_globalconf;
    h2o_context_t admin_ctx;
    h2o_accept_ctx_t admin_accept_ctx;
    h2o_socket_t *admin_sock;
} ficus_server_t;

extern ficus_server_t ficus_server;

/** Runs the process with its first generation (the caller's reference moves in). Returns only on start-up failure. */
int ficus_control_run(ficus_server_t *server, ficus_config_t *config);

/** Reloads the configuration file (SIGHUP, `ficus -s reload`): 0 with "generation N loaded ..." in msg, or -1 with
 * "file:line: what" in msg (the running generation is kept). Control thread only. */
int ficus_control_reload(ficus_server_t *server, char *msg, size_t msglen);
/** Graceful stop (SIGTERM, or successor = the pid of a new process that took over the listeners): stop accepting,
 * finish in-flight requests within drain_timeout, exit 0. With a successor, the control socket file is left to it,
 * the admin listener stops at once, and systemd is not told STOPPING (the successor is the main process now). */
void ficus_control_drain(ficus_server_t *server, pid_t successor);
/** Reopens the access log file (SIGUSR1, `ficus -s reopen`): 0 or -1, with what happened in msg. */
int ficus_control_reopen(ficus_server_t *server, char *msg, size_t msglen);

/** Opens the admin listener on the control loop (config->server.admin_address). 0 or -1 with err. */
int ficus_admin_start(ficus_server_t *server, char *err, size_t errlen);
/** Stops accepting admin connections. */
void ficus_admin_stop(ficus_server_t *server);

#endif
