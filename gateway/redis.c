/* The Redis client (see ficus/redis.h for the design and the contract). */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <hiredis/async.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ficus/breaker.h"
#include "ficus/clock.h"
#include "ficus/config.h"
#include "ficus/log.h"
#include "ficus/redis.h"
#include "ficus/redis_cluster.h"
#include "ficus/redis_ev.h"
#include "ficus/redis_sentinel.h"

struct st_ficus_redis_t {
    h2o_loop_t *loop;
    ficus_redis_conf_t conf; /* a copy of the scalar settings (strings borrowed from nothing: see create) */
    char *host, *unix_path, *password;
    unsigned worker;
    redisAsyncContext *ac;
    ficus_redis_ev_t ev;              /* ac on the loop (gateway/redis_ev.c) */
    char label[200];                  /* the server, for log lines */
    ficus_redis_node_stats_t *node;   /* the server's own series (gateway/redis_metrics.c), or NULL */
    ficus_redis_cluster_t *cluster;   /* cluster mode: commands are routed to the nodes' own clients (nothing else here is used) */
    ficus_redis_sentinel_t *sentinel; /* sentinel mode: tells which server is the master (host is NULL until then) */
    int role_checked;                 /* sentinel mode: the server said ROLE master on this connection */
    int connected;                    /* connected (and, in sentinel mode, role_checked): commands may be sent */
    int destroyed;
    size_t num_cmds; /* commands not yet freed (the client lives until they are) */
    size_t in_flight;
    ficus_breaker_t breaker;           /* consecutive timeouts → commands fail at once for open_for, then one trial */
    ficus_breaker_conf_t breaker_conf; /* from conf.breaker_failures and conf.breaker_open_ms */
    uint64_t reconnect_at_ms, backoff_ms;
    h2o_timeout_t cmd_timeout, connect_timeout, zero_timeout, tick_timeout;
    h2o_timeout_entry_t connect_entry, tick_entry;
    h2o_timeout_entry_t flush_entry;       /* writes the commands issued during this loop iteration at its end */
    h2o_timeout_entry_t lost_master_entry; /* sentinel mode: drop the connection and ask again, outside hiredis */
};

struct st_ficus_redis_cmd_t {
    int is_cluster; /* 0; the first member, as ficus_redis_ccmd_t's (1): tells ficus_redis_cancel which one it has */
    ficus_redis_t *r;
    ficus_redis_cb cb;
    void *data;
    int delivered; /* the user callback ran, or was cancelled */
    int in_hiredis;
    int is_probe;
    h2o_timeout_entry_t timer, defer;
    const char *deferred_err;
    uint64_t sent_at_us;
    /* for the EVAL fallback */
    const ficus_redis_script_t *script;
    int argc;
    char **argv;
    size_t *argvlen;
};

/* ---- commands ---- */

static void maybe_free_client(ficus_redis_t *r);

static void cmd_free(ficus_redis_cmd_t *cmd)
{
    ficus_redis_t *r = cmd->r;
    ficus_breaker_abandon(&r->breaker, cmd->is_probe); /* a trial that ended without an outcome frees its slot */
    if (h2o_timeout_is_linked(&cmd->timer))
        h2o_timeout_unlink(&cmd->timer);
    if (h2o_timeout_is_linked(&cmd->defer))
        h2o_timeout_unlink(&cmd->defer);
    for (int i = 0; i < cmd->argc; ++i)
        free(cmd->argv[i]);
    free(cmd->argv);
    free(cmd->argvlen);
    free(cmd);
    --r->num_cmds;
    maybe_free_client(r);
}

static void on_deferred(h2o_timeout_entry_t *entry)
{
    ficus_redis_cmd_t *cmd = H2O_STRUCT_FROM_MEMBER(ficus_redis_cmd_t, defer, entry);
    if (!cmd->delivered) {
        cmd->delivered = 1;
        cmd->cb(cmd->data, NULL, cmd->deferred_err);
    }
    if (!cmd->in_hiredis)
        cmd_free(cmd);
}

static void defer_error(ficus_redis_cmd_t *cmd, const char *err)
{
    cmd->deferred_err = err;
    cmd->defer.cb = on_deferred;
    h2o_timeout_link(cmd->r->loop, &cmd->r->zero_timeout, &cmd->defer);
}

static void disconnect(ficus_redis_t *r, const char *why);
static void lost_master(ficus_redis_t *r);

/* The per-worker gauges (connected, breaker open) belong to the worker's client; a cluster node's client leaves them
 * to the cluster layer, which sums up its nodes (gateway/redis_cluster.c). */
static void set_gauge(ficus_redis_t *r, uint64_t *gauge, uint64_t v)
{
    if (!r->conf.is_cluster_node)
        __atomic_store_n(gauge, v, __ATOMIC_RELAXED);
}

static void set_connected(ficus_redis_t *r, uint64_t v)
{
    set_gauge(r, &ficus_redis_stats[r->worker].connected, v);
    if (r->node != NULL)
        __atomic_store_n(&r->node->slots[r->worker].connected, v, __ATOMIC_RELAXED);
}

/* Adds to one of the worker's totals and to the same counter of the server's own series. */
#define COUNT(r, field, n)                                                                                                         \
    do {                                                                                                                           \
        ficus_counter_add(&ficus_redis_stats[(r)->worker].field, (n));                                                             \
        if ((r)->node != NULL)                                                                                                     \
            ficus_counter_add(&(r)->node->slots[(r)->worker].field, (n));                                                          \
    } while (0)

static void set_breaker_conf(ficus_redis_t *r)
{
    r->breaker_conf = (ficus_breaker_conf_t){
        .enabled = 1, .consecutive_failures = r->conf.breaker_failures, .open_for_ms = r->conf.breaker_open_ms, .trials = 1};
}

/* An answered command (any reply, error replies included: the server is there) or a failed one (timeout). */
static void record_outcome(ficus_redis_t *r, int is_probe, int failed, const char *what)
{
    uint64_t failures = 0, total = 0;
    int moved = ficus_breaker_record(&r->breaker, &r->breaker_conf, is_probe, failed, ficus_mono_us(), &failures, &total);
    if (moved == FICUS_BREAKER_CLOSED) {
        set_gauge(r, &ficus_redis_stats[r->worker].breaker_open, 0);
        ficus_info("redis %s: circuit closed (a trial command succeeded)", r->label);
    } else if (moved == FICUS_BREAKER_OPEN) {
        ficus_counter_add(&ficus_redis_stats[r->worker].breaker_opens, 1);
        set_gauge(r, &ficus_redis_stats[r->worker].breaker_open, 1);
        if (is_probe)
            ficus_warn("redis %s: the trial command failed (%s): circuit open again for %llums", r->label, what,
                       (unsigned long long)r->conf.breaker_open_ms);
        else
            ficus_warn("redis %s: %llu consecutive failures (last: %s): circuit open for %llums", r->label,
                       (unsigned long long)failures, what, (unsigned long long)r->conf.breaker_open_ms);
        if (r->ac != NULL)
            disconnect(r, "circuit opened"); /* also discards a stalled pipeline */
    }
}

static void on_cmd_timeout(h2o_timeout_entry_t *entry)
{
    ficus_redis_cmd_t *cmd = H2O_STRUCT_FROM_MEMBER(ficus_redis_cmd_t, timer, entry);
    ficus_redis_t *r = cmd->r;
    COUNT(r, timeouts, 1);
    int is_probe = cmd->is_probe;
    cmd->is_probe = 0;
    if (!cmd->delivered) {
        cmd->delivered = 1;
        cmd->cb(cmd->data, NULL, "timeout");
    }
    record_outcome(r, is_probe, 1, "timeout"); /* may disconnect, which answers cmd through hiredis (in_hiredis → freed there) */
}

static int issue(ficus_redis_cmd_t *cmd, int argc, const char **argv, const size_t *argvlen);

static int is_readonly(const redisReply *reply)
{
    return reply != NULL && reply->type == REDIS_REPLY_ERROR && reply->len >= 8 && memcmp(reply->str, "READONLY", 8) == 0;
}

static int is_noscript(const redisReply *reply)
{
    return reply != NULL && reply->type == REDIS_REPLY_ERROR && reply->len >= 8 && memcmp(reply->str, "NOSCRIPT", 8) == 0;
}

static void on_reply(redisAsyncContext *ac, void *_reply, void *privdata)
{
    ficus_redis_cmd_t *cmd = privdata;
    ficus_redis_t *r = cmd->r;
    redisReply *reply = _reply;
    cmd->in_hiredis = 0;
    --r->in_flight;
    if (reply != NULL) {
        record_outcome(r, cmd->is_probe, 0, NULL);
        cmd->is_probe = 0;
        COUNT(r, latency_sum_us, ficus_mono_us() - cmd->sent_at_us);
        COUNT(r, replies, 1);
    }
    if (!cmd->delivered && is_noscript(reply) && cmd->script != NULL && !r->destroyed) {
        /* the script cache was emptied (restart, SCRIPT FLUSH): send the source once, transparently */
        const char **argv = malloc(sizeof(char *) * (cmd->argc + 1));
        size_t *argvlen = malloc(sizeof(size_t) * (cmd->argc + 1));
        if (argv == NULL || argvlen == NULL)
            ficus_fatal("no memory");
        argv[0] = "EVAL";
        argvlen[0] = 4;
        argv[1] = cmd->script->source;
        argvlen[1] = strlen(cmd->script->source);
        for (int i = 2; i < cmd->argc; ++i) {
            argv[i] = cmd->argv[i];
            argvlen[i] = cmd->argvlen[i];
        }
        cmd->script = NULL;
        int rc = issue(cmd, cmd->argc, argv, argvlen);
        free(argv);
        free(argvlen);
        if (rc == 0)
            return;
        reply = NULL;
    }
    if (h2o_timeout_is_linked(&cmd->timer))
        h2o_timeout_unlink(&cmd->timer);
    if (!cmd->delivered) {
        if (reply == NULL) {
            /* the connection went down with the command in flight: deliver on the next tick, never inside hiredis */
            COUNT(r, errors, 1);
            defer_error(cmd, "disconnected");
            return;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            COUNT(r, errors, 1);
            if (is_readonly(reply))
                lost_master(r); /* a replica now (sentinel mode): find the new master */
        }
        cmd->delivered = 1;
        cmd->cb(cmd->data, reply, NULL);
    }
    if (!h2o_timeout_is_linked(&cmd->defer))
        cmd_free(cmd);
}

static void on_flush(h2o_timeout_entry_t *entry)
{
    ficus_redis_t *r = H2O_STRUCT_FROM_MEMBER(ficus_redis_t, flush_entry, entry);
    if (r->ac != NULL && r->connected)
        ficus_redis_ev_flush(&r->ev);
}

static int issue(ficus_redis_cmd_t *cmd, int argc, const char **argv, const size_t *argvlen)
{
    ficus_redis_t *r = cmd->r;
    if (r->ac == NULL || redisAsyncCommandArgv(r->ac, on_reply, cmd, argc, argv, argvlen) != REDIS_OK)
        return -1;
    /* sent at the end of this loop iteration (with whatever else it issues) rather than when the next iteration polls
     * the socket writable: under load an iteration lasts a millisecond or more, and a rate-limit lease is on its way */
    if (r->connected && !h2o_timeout_is_linked(&r->flush_entry)) {
        r->flush_entry.cb = on_flush;
        h2o_timeout_link(r->loop, &r->zero_timeout, &r->flush_entry);
    }
    cmd->in_hiredis = 1;
    ++r->in_flight;
    cmd->sent_at_us = ficus_mono_us();
    if (!h2o_timeout_is_linked(&cmd->timer)) {
        cmd->timer.cb = on_cmd_timeout;
        h2o_timeout_link(r->loop, &r->cmd_timeout, &cmd->timer);
    }
    return 0;
}

static ficus_redis_cmd_t *start(ficus_redis_t *r, ficus_redis_cb cb, void *data, const ficus_redis_script_t *script, int argc,
                                const char **argv, const size_t *argvlen)
{
    ficus_redis_cmd_t *cmd = calloc(1, sizeof(*cmd));
    if (cmd == NULL)
        ficus_fatal("no memory");
    cmd->r = r;
    cmd->cb = cb;
    cmd->data = data;
    ++r->num_cmds;
    COUNT(r, commands, 1);
    int breaker_open = 0;
    if (r->connected && r->in_flight < FICUS_REDIS_MAX_PENDING) {
        /* half-open: one trial at a time until a reply closes the circuit */
        uint64_t retry_after_ms;
        switch (ficus_breaker_admit(&r->breaker, &r->breaker_conf, ficus_mono_us(), &retry_after_ms)) {
        case FICUS_BREAKER_ALLOW:
            break;
        case FICUS_BREAKER_TRIAL:
            cmd->is_probe = 1;
            break;
        case FICUS_BREAKER_REJECT:
            breaker_open = 1;
            break;
        }
    }
    if (!r->connected || breaker_open || r->in_flight >= FICUS_REDIS_MAX_PENDING) {
        ficus_counter_add(&ficus_redis_stats[r->worker].unavailable, 1);
        defer_error(cmd, "unavailable");
        return cmd;
    }
    if (script != NULL) {
        /* keep a copy of the arguments for a possible EVAL retry */
        cmd->script = script;
        cmd->argc = argc;
        cmd->argv = calloc(argc, sizeof(char *));
        cmd->argvlen = calloc(argc, sizeof(size_t));
        if (cmd->argv == NULL || cmd->argvlen == NULL)
            ficus_fatal("no memory");
        for (int i = 2; i < argc; ++i) {
            if ((cmd->argv[i] = malloc(argvlen[i] + 1)) == NULL)
                ficus_fatal("no memory");
            memcpy(cmd->argv[i], argv[i], argvlen[i]);
            cmd->argvlen[i] = argvlen[i];
        }
    }
    if (issue(cmd, argc, argv, argvlen) != 0) {
        ficus_counter_add(&ficus_redis_stats[r->worker].unavailable, 1);
        defer_error(cmd, "unavailable");
    }
    return cmd;
}

ficus_redis_cmd_t *ficus_redis_command(ficus_redis_t *r, ficus_redis_cb cb, void *data, int argc, const char **argv,
                                       const size_t *argvlen)
{
    if (r->cluster != NULL)
        return (ficus_redis_cmd_t *)ficus_redis_cluster_command(r->cluster, NULL, 0, argc, argv, argvlen, cb, data);
    return start(r, cb, data, NULL, argc, argv, argvlen);
}

ficus_redis_cmd_t *ficus_redis_eval(ficus_redis_t *r, const ficus_redis_script_t *script, int numkeys, int argc, const char **argv,
                                    const size_t *argvlen, ficus_redis_cb cb, void *data)
{
    if (r->cluster != NULL)
        return (ficus_redis_cmd_t *)ficus_redis_cluster_command(r->cluster, script, numkeys, argc, argv, argvlen, cb, data);
    /* EVALSHA sha numkeys argv... */
    const char *av[64];
    size_t al[64];
    char nk[16];
    if (argc + 3 > 64)
        ficus_fatal("redis script with too many arguments");
    av[0] = "EVALSHA";
    al[0] = 7;
    av[1] = script->sha1;
    al[1] = 40;
    snprintf(nk, sizeof(nk), "%d", numkeys);
    av[2] = nk;
    al[2] = strlen(nk);
    for (int i = 0; i != argc; ++i) {
        av[i + 3] = argv[i];
        al[i + 3] = argvlen[i];
    }
    return start(r, cb, data, script, argc + 3, av, al);
}

void ficus_redis_cancel(ficus_redis_cmd_t *cmd)
{
    if (cmd->is_cluster) {
        ficus_redis_cluster_cancel((ficus_redis_ccmd_t *)cmd);
        return;
    }
    cmd->delivered = 1;
    if (h2o_timeout_is_linked(&cmd->timer))
        h2o_timeout_unlink(&cmd->timer);
    ficus_breaker_abandon(&cmd->r->breaker, cmd->is_probe); /* no timeout will end this trial now: free its slot */
    cmd->is_probe = 0;
    if (!cmd->in_hiredis)
        cmd_free(cmd); /* only a deferred delivery was pending */
    /* else: freed when hiredis answers or drops it */
}

void ficus_redis_script_init(ficus_redis_script_t *script)
{
    unsigned char md[20];
    unsigned len = 20;
    EVP_Digest(script->source, strlen(script->source), md, &len, EVP_sha1(), NULL);
    for (int i = 0; i != 20; ++i)
        sprintf(script->sha1 + i * 2, "%02x", md[i]);
}

/* ---- connection ---- */

static void schedule_reconnect(ficus_redis_t *r)
{
    r->backoff_ms = r->backoff_ms == 0 ? r->conf.reconnect_min_ms : r->backoff_ms * 2;
    if (r->backoff_ms > r->conf.reconnect_max_ms)
        r->backoff_ms = r->conf.reconnect_max_ms;
    r->reconnect_at_ms = h2o_now(r->loop) + r->backoff_ms;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    ficus_redis_t *r = ac->data;
    if (h2o_timeout_is_linked(&r->connect_entry))
        h2o_timeout_unlink(&r->connect_entry);
    if (status != REDIS_OK) {
        ficus_warn("redis %s: connect failed: %s", r->label, ac->errstr);
        COUNT(r, errors, 1);
        /* hiredis frees the context after this callback */
        r->ac = NULL;
        schedule_reconnect(r);
        if (r->sentinel != NULL)
            ficus_redis_sentinel_refresh(r->sentinel); /* a failover may be under way */
        return;
    }
    r->backoff_ms = 0;
    if (r->sentinel != NULL)
        return; /* usable once ROLE said master (on_role) */
    r->connected = 1;
    set_connected(r, 1);
    ficus_info("redis %s: connected (worker %u)", r->label, r->worker);
}

/* ---- sentinel mode ---- */

static void on_lost_master(h2o_timeout_entry_t *entry)
{
    ficus_redis_t *r = H2O_STRUCT_FROM_MEMBER(ficus_redis_t, lost_master_entry, entry);
    disconnect(r, "the server is not the master any more");
    ficus_redis_sentinel_refresh(r->sentinel);
}

/* A reply or a ROLE answer says this server is not (or no longer) the master: drop it on a later tick (never inside
 * a hiredis callback) and ask the sentinels. */
static void lost_master(ficus_redis_t *r)
{
    if (r->sentinel == NULL || r->destroyed || h2o_timeout_is_linked(&r->lost_master_entry))
        return;
    r->connected = 0;
    set_connected(r, 0);
    r->lost_master_entry.cb = on_lost_master;
    h2o_timeout_link(r->loop, &r->zero_timeout, &r->lost_master_entry);
}

static void on_role(redisAsyncContext *ac, void *_reply, void *privdata)
{
    ficus_redis_t *r = ac->data;
    redisReply *reply = _reply;
    if (reply == NULL || r->destroyed || ac != r->ac)
        return;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 && reply->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(reply->element[0]->str, "master") == 0) {
        r->role_checked = 1;
        r->connected = 1;
        set_connected(r, 1);
        ficus_info("redis %s: connected, ROLE master (worker %u)", r->label, r->worker);
        return;
    }
    ficus_warn("redis %s: ROLE is %.*s, not master: asking the sentinels again", r->label,
               reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 && reply->element[0]->type == REDIS_REPLY_STRING
                   ? (int)reply->element[0]->len
                   : 7,
               reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 && reply->element[0]->type == REDIS_REPLY_STRING
                   ? reply->element[0]->str
                   : "unknown");
    lost_master(r);
}

static void set_label(ficus_redis_t *r)
{
    if (r->sentinel != NULL)
        snprintf(r->label, sizeof(r->label), "%s:%d (master '%s')", r->host != NULL ? r->host : "?", r->conf.port,
                 r->conf.address + sizeof("sentinel:") - 1);
    else
        snprintf(r->label, sizeof(r->label), "%s", r->conf.address);
}

/* The sentinels named the master (at connect, or a +switch-master). */
static void on_master(void *data, const char *ip, int port)
{
    ficus_redis_t *r = data;
    if (r->host != NULL && strcmp(r->host, ip) == 0 && r->conf.port == port) {
        if (r->ac == NULL) /* still the master we know: reconnect now rather than after the backoff */
            r->reconnect_at_ms = h2o_now(r->loop);
        return;
    }
    char old[200];
    snprintf(old, sizeof(old), "%s", r->label);
    int is_switch = r->host != NULL;
    free(r->host);
    if ((r->host = strdup(ip)) == NULL)
        ficus_fatal("no memory");
    r->conf.port = port;
    set_label(r);
    if (r->node != NULL)
        __atomic_store_n(&r->node->slots[r->worker].connected, 0, __ATOMIC_RELAXED);
    char node[INET6_ADDRSTRLEN + 8];
    snprintf(node, sizeof(node), strchr(ip, ':') != NULL ? "[%s]:%d" : "%s:%d", ip, port);
    r->node = ficus_redis_node_stats(node);
    if (is_switch) {
        ficus_counter_add(&ficus_redis_stats[r->worker].failovers, 1);
        ficus_warn("redis failover (worker %u): the master is now %s, was %s", r->worker, r->label, old);
        ficus_redis_sentinel_note_master(ip, port);
    } else {
        ficus_info("redis sentinel (worker %u): the master is %s", r->worker, r->label);
        ficus_redis_sentinel_note_master(ip, port);
    }
    if (h2o_timeout_is_linked(&r->lost_master_entry))
        h2o_timeout_unlink(&r->lost_master_entry);
    disconnect(r, "master switched");
    r->backoff_ms = 0;
    ficus_breaker_reset(&r->breaker);
    set_gauge(r, &ficus_redis_stats[r->worker].breaker_open, 0);
    r->reconnect_at_ms = h2o_now(r->loop); /* on the next tick */
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    ficus_redis_t *r = ac->data;
    if (r->ac == NULL)
        return; /* we dropped it ourselves (disconnect()) */
    if (h2o_timeout_is_linked(&r->connect_entry))
        h2o_timeout_unlink(&r->connect_entry);
    if (r->connected && !r->destroyed)
        ficus_warn("redis %s: disconnected%s%s", r->label, status != REDIS_OK ? ": " : "", status != REDIS_OK ? ac->errstr : "");
    r->connected = 0;
    r->ac = NULL;
    set_connected(r, 0);
    if (!r->destroyed) {
        schedule_reconnect(r);
        if (r->sentinel != NULL)
            ficus_redis_sentinel_refresh(r->sentinel); /* a failover may be under way */
    }
}

static void on_auth_or_select(redisAsyncContext *ac, void *_reply, void *privdata)
{
    redisReply *reply = _reply;
    ficus_redis_t *r = ac->data;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        ficus_error("redis %s: %s refused: %.*s", r->label, (const char *)privdata, (int)reply->len, reply->str);
}

static void on_connect_timeout(h2o_timeout_entry_t *entry)
{
    ficus_redis_t *r = H2O_STRUCT_FROM_MEMBER(ficus_redis_t, connect_entry, entry);
    ficus_warn("redis %s: connect timed out after %llums", r->label, (unsigned long long)r->conf.connect_timeout_ms);
    disconnect(r, "connect timeout");
    if (r->sentinel != NULL)
        ficus_redis_sentinel_refresh(r->sentinel);
}

static void connect_now(ficus_redis_t *r)
{
    r->reconnect_at_ms = 0;
    if (r->host == NULL && r->unix_path == NULL)
        return; /* sentinel mode: no master known yet (on_master schedules the connection) */
    redisAsyncContext *ac = r->unix_path != NULL ? redisAsyncConnectUnix(r->unix_path) : redisAsyncConnect(r->host, r->conf.port);
    if (ac == NULL || ac->err) {
        ficus_warn("redis %s: cannot connect: %s", r->label, ac != NULL ? ac->errstr : "no memory");
        COUNT(r, errors, 1);
        if (ac != NULL)
            redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    if (ficus_redis_ev_attach(&r->ev, r->loop, ac) != 0) {
        redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    ficus_counter_add(&ficus_redis_stats[r->worker].reconnects, 1);
    r->ac = ac;
    ac->data = r;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (r->password != NULL) {
        const char *argv[] = {"AUTH", r->password};
        size_t argvlen[] = {4, strlen(r->password)};
        redisAsyncCommandArgv(ac, on_auth_or_select, "AUTH", 2, argv, argvlen);
    }
    if (r->conf.db != 0)
        redisAsyncCommand(ac, on_auth_or_select, "SELECT", "SELECT %u", r->conf.db);
    if (r->sentinel != NULL) {
        r->role_checked = 0;
        redisAsyncCommand(ac, on_role, NULL, "ROLE");
    }
    r->connect_entry.cb = on_connect_timeout;
    h2o_timeout_link(r->loop, &r->connect_timeout, &r->connect_entry);
}

static void disconnect(ficus_redis_t *r, const char *why)
{
    if (r->ac == NULL)
        return;
    redisAsyncContext *ac = r->ac;
    if (h2o_timeout_is_linked(&r->connect_entry))
        h2o_timeout_unlink(&r->connect_entry);
    if (h2o_timeout_is_linked(&r->flush_entry))
        h2o_timeout_unlink(&r->flush_entry);
    if (r->connected && !r->destroyed)
        ficus_warn("redis %s: dropping the connection: %s", r->label, why);
    r->ac = NULL;
    r->connected = 0;
    set_connected(r, 0);
    /* answers every pending command with NULL (→ "disconnected", delivered on the next tick) */
    redisAsyncFree(ac);
    if (!r->destroyed)
        schedule_reconnect(r);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    ficus_redis_t *r = H2O_STRUCT_FROM_MEMBER(ficus_redis_t, tick_entry, entry);
    if (r->ac == NULL && !r->destroyed && r->reconnect_at_ms != 0 && h2o_now(r->loop) >= r->reconnect_at_ms)
        connect_now(r);
    if (!r->destroyed)
        h2o_timeout_link(r->loop, &r->tick_timeout, &r->tick_entry);
}

ficus_redis_t *ficus_redis_create(h2o_loop_t *loop, const ficus_redis_conf_t *conf, unsigned worker_index)
{
    ficus_redis_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        ficus_fatal("no memory");
    r->loop = loop;
    r->conf = *conf;
    r->conf.address = strdup(conf->address);
    r->host = conf->host != NULL ? strdup(conf->host) : NULL;
    r->unix_path = conf->unix_path != NULL ? strdup(conf->unix_path) : NULL;
    r->password = conf->password != NULL ? strdup(conf->password) : NULL;
    r->conf.host = r->conf.unix_path = r->conf.password = NULL; /* use the copies above */
    memset(&r->conf.sentinel, 0, sizeof(r->conf.sentinel));     /* the watcher keeps its own copy */
    r->worker = worker_index;
    set_breaker_conf(r);
    if (conf->cluster.num_seeds != 0) {
        memset(&r->conf.cluster, 0, sizeof(r->conf.cluster));
        set_label(r);
        r->cluster = ficus_redis_cluster_create(loop, conf, worker_index);
        return r;
    }
    h2o_timeout_init(loop, &r->cmd_timeout, conf->command_timeout_ms);
    h2o_timeout_init(loop, &r->connect_timeout, conf->connect_timeout_ms);
    h2o_timeout_init(loop, &r->zero_timeout, 0);
    h2o_timeout_init(loop, &r->tick_timeout, 50);
    r->tick_entry.cb = on_tick;
    h2o_timeout_link(loop, &r->tick_timeout, &r->tick_entry);
    if (conf->sentinel.master != NULL)
        r->sentinel = ficus_redis_sentinel_create(loop, conf, worker_index, on_master, r);
    else
        r->node = ficus_redis_node_stats(conf->address);
    set_label(r);
    connect_now(r);
    return r;
}

void ficus_redis_update(ficus_redis_t *r, const ficus_redis_conf_t *conf)
{
    if (r->cluster != NULL) {
        ficus_redis_cluster_update(r->cluster, conf);
        return;
    }
    /* same server: only durations and thresholds change; h2o timeouts of one duration keep their order when the
     * duration changes, so updating the field in place is safe */
    r->conf.command_timeout_ms = r->cmd_timeout.timeout = conf->command_timeout_ms;
    r->conf.connect_timeout_ms = r->connect_timeout.timeout = conf->connect_timeout_ms;
    r->conf.reconnect_min_ms = conf->reconnect_min_ms;
    r->conf.reconnect_max_ms = conf->reconnect_max_ms;
    r->conf.breaker_failures = conf->breaker_failures;
    r->conf.breaker_open_ms = conf->breaker_open_ms;
    set_breaker_conf(r);
}

int ficus_redis_is_connected(ficus_redis_t *r)
{
    return r->connected && !ficus_breaker_is_rejecting(&r->breaker, ficus_mono_us());
}

int ficus_redis_breaker_is_open(ficus_redis_t *r)
{
    return ficus_breaker_state(&r->breaker) != FICUS_BREAKER_CLOSED;
}

int ficus_redis_is_available(ficus_redis_t *r)
{
    if (r->cluster != NULL)
        return ficus_redis_cluster_is_available(r->cluster);
    if (r->connected && !ficus_breaker_is_rejecting(&r->breaker, ficus_mono_us()))
        return 1;
    /* the caller will not send: count it as a command refused locally */
    ficus_counter_add(&ficus_redis_stats[r->worker].unavailable, 1);
    return 0;
}

static void maybe_free_client(ficus_redis_t *r)
{
    if (!r->destroyed || r->num_cmds != 0 || r->ac != NULL)
        return;

    if (h2o_timeout_is_linked(&r->tick_entry))
        h2o_timeout_unlink(&r->tick_entry);
    if (h2o_timeout_is_linked(&r->flush_entry))
        h2o_timeout_unlink(&r->flush_entry);
    h2o_timeout_dispose(r->loop, &r->cmd_timeout);
    h2o_timeout_dispose(r->loop, &r->connect_timeout);
    h2o_timeout_dispose(r->loop, &r->zero_timeout);
    h2o_timeout_dispose(r->loop, &r->tick_timeout);
    free(r->conf.address);
    free(r->host);
    free(r->unix_path);
    if (r->password != NULL) {
        OPENSSL_cleanse(r->password, strlen(r->password));
        free(r->password);
    }
    free(r);
}

void ficus_redis_destroy(ficus_redis_t *r)
{
    r->destroyed = 1;
    if (r->cluster != NULL) {
        ficus_redis_cluster_destroy(r->cluster);
        r->cluster = NULL;
        if (r->password != NULL)
            OPENSSL_cleanse(r->password, strlen(r->password));
        free(r->conf.address);
        free(r->password);
        free(r->host);
        free(r);
        return;
    }
    if (h2o_timeout_is_linked(&r->tick_entry))
        h2o_timeout_unlink(&r->tick_entry);
    if (h2o_timeout_is_linked(&r->lost_master_entry))
        h2o_timeout_unlink(&r->lost_master_entry);
    if (r->sentinel != NULL) {
        ficus_redis_sentinel_destroy(r->sentinel);
        r->sentinel = NULL;
    }
    disconnect(r, "client destroyed");
    maybe_free_client(r);
}
