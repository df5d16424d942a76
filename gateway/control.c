/* The control thread: signals, reload, publishing generations, draining, and work posted by workers.
 *
 * The main thread becomes the control thread: it blocks all signals before any thread exists and reads them from a
 * signalfd on its own evloop, so signal handling is ordinary loop work (no async-signal-safety traps).
 *   SIGHUP (or `ficus -s reload` on the control socket, which waits for the outcome): load + validate the whole file; on success
 * publish the new generation to every worker; on failure log "file:line: what" and keep the running generation
 * (ficus_config_reloads_total{result}). SIGTERM/SIGINT: readyz turns 503, workers stop accepting, GOAWAY, finish in-flight requests
 * up to drain_timeout, exit 0. SIGUSR1: reopen the access log file (NGINX's convention, for logrotate); no line is lost
 * (access_log.c). SIGUSR2: ignored with a warning (NGINX's binary upgrade signal: it must never terminate the gateway). Other
 * modules reach it only through ficus/control.h (work posted to its multithread queue, its loop). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
#include "ficus/access_log.h"
#include "ficus/config.h"
#include "ficus/control_socket.h"
#include "ficus/listen_guard.h"
#include "ficus/log.h"
#include "ficus/mem_trim.h"
#include "ficus/metrics.h"
#include "ficus/notify.h"
#include "ficus/provider.h"
#include "ficus/resolver.h"
#include "ficus/server.h"
#include "ficus/tls.h"
#include "ficus/upgrade.h"
#include "ficus/worker.h"

ficus_server_t ficus_server;

typedef struct st_ficus_control_msg_t {
    h2o_multithread_message_t super;
    void (*fn)(void *arg);
    void *arg;
} ficus_control_msg_t;

static void on_control_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        ficus_control_msg_t *msg = H2O_STRUCT_FROM_MEMBER(ficus_control_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&msg->super.link);
        msg->fn(msg->arg);
        free(msg);
    }
}

void ficus_control_post(void (*fn)(void *arg), void *arg)
{
    ficus_control_msg_t *msg = calloc(1, sizeof(*msg));
    if (msg == NULL)
        ficus_fatal("no memory");
    msg->fn = fn;
    msg->arg = arg;
    h2o_multithread_send_message(&ficus_server.receiver, &msg->super);
}

h2o_evloop_t *ficus_control_loop(void)
{
    return ficus_server.loop;
}

h2o_multithread_receiver_t *ficus_control_getaddr_receiver(void)
{
    static h2o_multithread_receiver_t receiver;
    static int registered;
    if (!registered) {
        registered = 1;
        h2o_multithread_register_receiver(ficus_server.queue, &receiver, h2o_hostinfo_getaddr_receiver);
    }
    return &receiver;
}

unsigned ficus_control_num_workers(void)
{
    return ficus_server.num_workers;
}

ficus_worker_t *ficus_control_worker(unsigned i)
{
    return ficus_server.workers + i;
}

static unsigned num_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > FICUS_MAX_WORKERS ? FICUS_MAX_WORKERS : (unsigned)n;
}

/* A binary upgrade passed more sockets of a listener than we have workers (the old process ran more): each one still
 * gets new connections from the kernel, so each is accepted from, spread over the workers. */
static void adopt_remaining_listeners(ficus_server_t *s, const ficus_config_t *config)
{
    unsigned next = 0;
    for (size_t i = 0; i != config->server.num_listeners; ++i) {
        int fd;
        while ((fd = ficus_handoff_take(s->handoff, &config->server.listeners[i].addr)) != -1) {
            ficus_worker_add_listener(s->workers + next, i, fd);
            next = (next + 1) % s->num_workers;
        }
    }
}

static void on_dns_change(void);

static void publish(ficus_server_t *s, ficus_config_t *config)
{
    config->generation = ++s->generation;
    ficus_log_level = config->server.log_level;
    for (unsigned i = 0; i != s->num_workers; ++i)
        ficus_worker_send_config(s->workers + i, config);
    ficus_config_t *old = s->running;
    s->running = config;
    if (config->base == NULL) /* a derived generation has its base's providers, already active */
        ficus_providers_activate(config);
    ficus_health_apply(s->loop, s->queue, config);
    ficus_resolver_apply(s->loop, config, on_dns_change);
    if (old != NULL)
        ficus_config_release(old);
}

/* A name's addresses changed (gateway/resolver.c): the running generation again, with the new addresses, built from
 * memory (an edited file that was not reloaded does not take effect), published as a reload is. */
static void on_dns_change(void)
{
    ficus_server_t *s = &ficus_server;
    if (s->draining)
        return;
    publish(s, ficus_config_derive(s->running));
    ficus_info("dns: generation %llu published (upstream addresses changed)", (unsigned long long)s->generation);
}

int ficus_control_reload(ficus_server_t *s, char *msg, size_t msglen)
{
    char err[1024];
    if (s->draining) {
        snprintf(msg, msglen, "draining: no reload");
        return -1;
    }
    ficus_notify_reloading();
    ficus_config_t *next = ficus_config_load(s->config_path, 0, err, sizeof(err));
    if (next != NULL && (ficus_config_check_reloadable(s->running, next, err, sizeof(err)) != 0 ||
                         ficus_listen_guard_check(s, next, err, sizeof(err)) != 0)) {
        ficus_config_release(next);
        next = NULL;
    }
    s->last_reload_at = (double)time(NULL);
    if (next == NULL) {
        ++ficus_metrics_reloads_failure;
        s->last_reload_ok = 0;
        snprintf(s->last_reload_error, sizeof(s->last_reload_error), "%s", err);
        ficus_error("reload failed: %s; keeping generation %llu", err, (unsigned long long)s->generation);
        snprintf(msg, msglen, "%s; keeping generation %llu", err, (unsigned long long)s->generation);
        char note[1100];
        snprintf(note, sizeof(note), "last reload failed: %s", err);
        ficus_notify_ready(s, note);
        return -1;
    }
    publish(s, next);
    ++ficus_metrics_reloads_success;
    s->last_reload_ok = 1;
    s->last_reload_error[0] = '\0';
    ficus_info("reload: generation %llu loaded from %s", (unsigned long long)s->generation, s->config_path);
    snprintf(msg, msglen, "generation %llu loaded from %s", (unsigned long long)s->generation, s->config_path);
    ficus_notify_ready(s, NULL);
    return 0;
}

void ficus_control_drain(ficus_server_t *s, pid_t successor)
{
    if (s->draining)
        return;
    s->draining = 1;
    if (successor == 0) {
        ficus_notify_stopping();
        ficus_control_socket_stop(s, !s->upgrade_pending); /* a process taking over holds that socket file's socket */
        ficus_info("draining: finishing in-flight requests (at most %llums), then exiting",
                   (unsigned long long)s->running->server.drain_timeout_ms);
    } else {
        /* the sockets live on in the successor: ours are only closed (nothing queued on them is lost) */
        ficus_control_socket_stop(s, 0);
        ficus_admin_stop(s);
        ficus_info("draining: pid %d took over the listeners; finishing in-flight requests (at most %llums), then exiting",
                   (int)successor, (unsigned long long)s->running->server.drain_timeout_ms);
    }
    for (unsigned i = 0; i != s->num_workers; ++i)
        ficus_worker_send_drain(s->workers + i, s->running->server.drain_timeout_ms);
}

int ficus_control_reopen(ficus_server_t *s, char *msg, size_t msglen)
{
    char err[1024];
    if (ficus_access_log_reopen(s->running, err, sizeof(err)) != 0) {
        ficus_error("%s; lines keep going to the old file", err);
        snprintf(msg, msglen, "%s; lines keep going to the old file", err);
        return -1;
    }
    if (s->running->server.access_log == FICUS_ACCESS_LOG_FILE) {
        ficus_info("reopen: access log %s reopened", s->running->server.access_log_path);
        snprintf(msg, msglen, "access log %s reopened", s->running->server.access_log_path);
    } else {
        snprintf(msg, msglen, "no access log file to reopen");
    }
    return 0;
}

static void on_signal(h2o_socket_t *sock, const char *err)
{
    ficus_server_t *s = sock->data;
    struct signalfd_siginfo si;
    char msg[1200];
    /* bounded: a signalfd holds at most one pending instance of each standard signal */
    while (read(h2o_socket_get_fd(sock), &si, sizeof(si)) == sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGHUP:
            if (!s->draining)
                ficus_control_reload(s, msg, sizeof(msg));
            break;
        case SIGTERM:
        case SIGINT:
            ficus_control_drain(s, 0);
            break;
        case SIGUSR1:
            ficus_control_reopen(s, msg, sizeof(msg));
            break;
        case SIGUSR2:
            ficus_warn("SIGUSR2 ignored (binary upgrade is not signal-driven in ficus)");
            break;
        }
    }
}

static h2o_timeout_t housekeeping_timeout;
static h2o_timeout_entry_t housekeeping_entry;

static void on_housekeeping(h2o_timeout_entry_t *entry)
{
    ficus_tls_collect(0);
    ficus_mem_trim_tick();
    ficus_log_limit_flush();
    h2o_timeout_link(ficus_server.loop, &housekeeping_timeout, &housekeeping_entry);
}

static void *join_workers(void *arg)
{
    /* joined off the control loop so admin keeps answering (readyz 503) while workers drain */
    ficus_server_t *s = arg;
    for (unsigned i = 0; i != s->num_workers; ++i)
        pthread_join(s->workers[i].thread, NULL);
    ficus_info("all workers stopped; exiting");
    fflush(stdout);
    _exit(0);
}

/* Start-up failed before serving: say why, and let go of what is ours (a leak report under ASan otherwise). */
static int start_failed(ficus_server_t *s, ficus_config_t *config, const char *err)
{
    ficus_error("%s", err);
    if (config != NULL)
        ficus_config_release(config); /* not published yet: ours alone */
    if (s->handoff != NULL) {
        ficus_handoff_dispose(s->handoff); /* the old process sees the connection close and serves on */
        s->handoff = NULL;
    }
    return 1;
}

int ficus_control_run(ficus_server_t *s, ficus_config_t *config)
{
    char err[1024];
    ficus_log_limit_install(); /* before any thread: libh2o's stderr output is limited like ficus's own */
    s->num_workers = config->server.workers != 0 ? config->server.workers : num_cpus();
    ficus_num_workers = s->num_workers;
    if ((s->workers = calloc(s->num_workers, sizeof(*s->workers))) == NULL)
        ficus_fatal("no memory");
    ficus_handoff_t handoff;
    if (s->upgrade_from != NULL) {
        if (ficus_upgrade_receive(s->upgrade_from, &handoff, err, sizeof(err)) != 0) {
            ficus_error("%s", err);
            ficus_config_release(config);
            return 1;
        }
        s->handoff = &handoff;
    }
    if (ficus_listen_guard_precheck(config, s->handoff != NULL ? s->handoff->fds : NULL,
                                    s->handoff != NULL ? s->handoff->num_fds : 0, err, sizeof(err)) != 0)
        return start_failed(s, config, err);
    for (unsigned i = 0; i != s->num_workers; ++i) {
        s->workers[i].index = i;
        if (ficus_worker_bind(s->workers + i, config, s->handoff, err, sizeof(err)) != 0)
            return start_failed(s, config, err);
    }
    if (s->handoff != NULL)
        adopt_remaining_listeners(s, config);
    if (ficus_listen_guard_check(s, config, err, sizeof(err)) != 0)
        return start_failed(s, config, err);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread: they inherit the mask */
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd == -1)
        ficus_fatal("signalfd: %s", strerror(errno));

    s->loop = h2o_evloop_create();
    s->queue = h2o_multithread_create_queue(s->loop);
    h2o_multithread_register_receiver(s->queue, &s->receiver, on_control_message);
    /* upstream host names resolved before anything serves: nothing else runs on the loop yet, so waiting for the
     * answers (bounded by the resolver's timeouts) stalls nobody */
    if (ficus_resolver_prime(s->loop, config)) {
        ficus_config_t *resolved = ficus_config_derive(config);
        ficus_config_release(config);
        config = resolved;
    }
    s->running = config;
    config->generation = s->generation = 1;
    ficus_log_level = config->server.log_level;
    s->last_reload_ok = 1;
    if (ficus_admin_start(s, err, sizeof(err)) != 0 || ficus_control_socket_start(s, err, sizeof(err)) != 0)
        return start_failed(s, NULL, err);
    size_t num_taken = 0;
    if (s->handoff != NULL) {
        num_taken = s->handoff->num_taken;
        size_t unused = ficus_handoff_close_rest(s->handoff);
        if (unused != 0)
            ficus_info("upgrade: closed %zu passed sockets the configuration has no listener for", unused);
    }
    for (unsigned i = 0; i != s->num_workers; ++i)
        ficus_worker_start(s->workers + i, config);
    if (s->handoff != NULL) {
        /* our workers accept on the sockets now: the old process may stop. systemd learns the new main pid first */
        ficus_notify_mainpid();
        pid_t old = s->handoff->pid;
        if (ficus_upgrade_finish(s->handoff, err, sizeof(err)) != 0)
            ficus_warn("upgrade: %s; serving anyway", err);
        s->handoff = NULL;
        ficus_info("upgrade: took over %zu listeners from pid %d", num_taken, (int)old);
    }
    ficus_providers_activate(config);
    ficus_health_apply(s->loop, s->queue, config);
    ficus_resolver_apply(s->loop, config, on_dns_change);
    for (size_t i = 0; i != config->server.num_listeners; ++i) {
        const ficus_listener_conf_t *l = config->server.listeners + i;
        ficus_info("listening on %s (%s)", l->address,
                   l->tls != NULL                ? "tls"
                   : l->redirect_https_port != 0 ? "redirect to https"
                                                 : "plain");
    }
    ficus_info("ficus %s started: %u workers, generation 1 from %s", FICUS_VERSION, s->num_workers, s->config_path);
    ficus_notify_ready(s, NULL);

    h2o_timeout_init(s->loop, &housekeeping_timeout, 1000);
    housekeeping_entry.cb = on_housekeeping;
    h2o_timeout_link(s->loop, &housekeeping_timeout, &housekeeping_entry);

    h2o_socket_t *sigsock = h2o_evloop_socket_create(s->loop, sfd, H2O_SOCKET_FLAG_DONT_READ);
    sigsock->data = s;
    h2o_socket_read_start(sigsock, on_signal);

    int joiner_started = 0;
    for (;;) {
        h2o_evloop_run(s->loop, 1000);
        if (s->draining && !joiner_started) {
            pthread_t t;
            if (pthread_create(&t, NULL, join_workers, s) != 0)
                ficus_fatal("cannot create thread");
            joiner_started = 1;
        }
    }
}
