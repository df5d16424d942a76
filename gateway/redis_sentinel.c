/* The Sentinel watcher: which server is the master now (see ficus/redis_sentinel.h for the design). */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "ficus/log.h"
#include "ficus/redis_ev.h"
#include "ficus/redis_sentinel.h"

#define REFRESH_MIN_INTERVAL_MS 1000

struct st_ficus_redis_sentinel_t {
    h2o_loop_t *loop;
    unsigned worker;
    char *master;
    char **hosts;
    int *ports;
    size_t num;
    char *password;
    uint64_t connect_timeout_ms, reconnect_min_ms, reconnect_max_ms;
    ficus_redis_sentinel_cb cb;
    void *data;
    redisAsyncContext *ac; /* the connection to hosts[current], or NULL */
    ficus_redis_ev_t ev;
    size_t current;
    size_t tried_without_answer; /* sentinels tried in a row that gave no master address */
    int answered;                /* the current connection named the master */
    uint64_t backoff_ms, connect_at_ms, last_query_ms;
    int destroyed;
    h2o_timeout_t answer_timeout, tick_timeout;
    h2o_timeout_entry_t answer_entry, tick_entry;
};

static void drop(ficus_redis_sentinel_t *s)
{
    if (h2o_timeout_is_linked(&s->answer_entry))
        h2o_timeout_unlink(&s->answer_entry);
    if (s->ac == NULL)
        return;
    redisAsyncContext *ac = s->ac;
    s->ac = NULL; /* on_disconnect ignores a context we drop ourselves */
    redisAsyncFree(ac);
}

/* The current sentinel gave no usable answer: go on with the next one, at once, or after a backoff when every one
 * failed in a row. */
static void next_sentinel(ficus_redis_sentinel_t *s, const char *why)
{
    ficus_warn("redis sentinel %s:%d (master '%s'): %s", s->hosts[s->current], s->ports[s->current], s->master, why);
    drop(s);
    s->current = (s->current + 1) % s->num;
    uint64_t now = h2o_now(s->loop);
    if (++s->tried_without_answer < s->num) {
        s->connect_at_ms = now;
        return;
    }
    s->tried_without_answer = 0;
    s->backoff_ms = s->backoff_ms == 0 ? s->reconnect_min_ms : s->backoff_ms * 2;
    if (s->backoff_ms > s->reconnect_max_ms)
        s->backoff_ms = s->reconnect_max_ms;
    s->connect_at_ms = now + s->backoff_ms;
}

/* "ip" "port" strings → the callback, when the answer is an IP literal and a port. */
static int announce(ficus_redis_sentinel_t *s, const char *ip, size_t iplen, const char *port, size_t portlen)
{
    char ipbuf[INET6_ADDRSTRLEN], portbuf[8];
    unsigned char bin[16];
    if (iplen == 0 || iplen >= sizeof(ipbuf) || portlen == 0 || portlen >= sizeof(portbuf))
        return -1;
    memcpy(ipbuf, ip, iplen);
    ipbuf[iplen] = '\0';
    memcpy(portbuf, port, portlen);
    portbuf[portlen] = '\0';
    if (inet_pton(AF_INET, ipbuf, bin) != 1 && inet_pton(AF_INET6, ipbuf, bin) != 1)
        return -1; /* a host name: resolving it here would block the loop */
    if (strspn(portbuf, "0123456789") != portlen)
        return -1;
    int p = atoi(portbuf);
    if (p <= 0 || p > 65535)
        return -1;
    s->cb(s->data, ipbuf, p);
    return 0;
}

static void on_master_addr(redisAsyncContext *ac, void *_reply, void *privdata)
{
    ficus_redis_sentinel_t *s = ac->data;
    redisReply *reply = _reply;
    if (reply == NULL || s->destroyed || ac != s->ac)
        return; /* the connection is going away */
    if (h2o_timeout_is_linked(&s->answer_entry))
        h2o_timeout_unlink(&s->answer_entry);
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 && reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING) {
        if (announce(s, reply->element[0]->str, reply->element[0]->len, reply->element[1]->str, reply->element[1]->len) == 0) {
            s->answered = 1;
            s->tried_without_answer = 0;
            s->backoff_ms = 0;
            return;
        }
        next_sentinel(s, "answered an address that is not IP and port (set `sentinel resolve-hostnames no`)");
    } else if (reply->type == REDIS_REPLY_ERROR) {
        char why[200];
        snprintf(why, sizeof(why), "refused the query: %.*s", (int)(reply->len < 120 ? reply->len : 120), reply->str);
        next_sentinel(s, why);
    } else {
        next_sentinel(s, "does not know this master");
    }
}

/* +switch-master messages: "<master> <old-ip> <old-port> <new-ip> <new-port>". */
static void on_switch(redisAsyncContext *ac, void *_reply, void *privdata)
{
    ficus_redis_sentinel_t *s = ac->data;
    redisReply *reply = _reply;
    if (reply == NULL || s->destroyed || ac != s->ac || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING || reply->element[2]->type != REDIS_REPLY_STRING ||
        strcmp(reply->element[0]->str, "message") != 0)
        return; /* the subscription's confirmation, or the connection going away */
    const char *p = reply->element[2]->str, *end = p + reply->element[2]->len;
    const char *f[5];
    size_t flen[5], n = 0;
    while (p < end && n < 5) {
        while (p < end && *p == ' ')
            ++p;
        const char *start = p;
        while (p < end && *p != ' ')
            ++p;
        if (p > start) {
            f[n] = start;
            flen[n++] = p - start;
        }
    }
    if (n != 5 || flen[0] != strlen(s->master) || memcmp(f[0], s->master, flen[0]) != 0)
        return; /* another master's switch */
    ficus_info("redis sentinel %s:%d: +switch-master '%s' %.*s:%.*s -> %.*s:%.*s", s->hosts[s->current], s->ports[s->current],
               s->master, (int)flen[1], f[1], (int)flen[2], f[2], (int)flen[3], f[3], (int)flen[4], f[4]);
    if (announce(s, f[3], flen[3], f[4], flen[4]) != 0)
        ficus_warn("redis sentinel: +switch-master names '%.*s', not an IP address: ignored", (int)flen[3], f[3]);
}

static void on_auth(redisAsyncContext *ac, void *_reply, void *privdata)
{
    ficus_redis_sentinel_t *s = ac->data;
    redisReply *reply = _reply;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR && !s->destroyed)
        ficus_error("redis sentinel %s:%d: AUTH refused: %.*s", s->hosts[s->current], s->ports[s->current], (int)reply->len,
                    reply->str);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    ficus_redis_sentinel_t *s = ac->data;
    if (status != REDIS_OK && ac == s->ac) {
        s->ac = NULL; /* hiredis frees the context after this callback */
        if (!s->destroyed)
            next_sentinel(s, ac->errstr[0] != '\0' ? ac->errstr : "connect failed");
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    ficus_redis_sentinel_t *s = ac->data;
    if (ac != s->ac)
        return; /* dropped by us */
    s->ac = NULL;
    if (!s->destroyed)
        next_sentinel(s, "connection lost");
}

static void on_answer_timeout(h2o_timeout_entry_t *entry)
{
    ficus_redis_sentinel_t *s = H2O_STRUCT_FROM_MEMBER(ficus_redis_sentinel_t, answer_entry, entry);
    next_sentinel(s, "no answer in time");
}

static void connect_sentinel(ficus_redis_sentinel_t *s)
{
    s->connect_at_ms = 0;
    s->answered = 0;
    s->last_query_ms = h2o_now(s->loop);
    const char *host = s->hosts[s->current];
    redisAsyncContext *ac = redisAsyncConnect(host, s->ports[s->current]);
    if (ac == NULL || ac->err) {
        if (ac != NULL)
            redisAsyncFree(ac);
        next_sentinel(s, "cannot create a connection");
        return;
    }
    if (ficus_redis_ev_attach(&s->ev, s->loop, ac) != 0) {
        redisAsyncFree(ac);
        next_sentinel(s, "cannot duplicate the socket");
        return;
    }
    s->ac = ac;
    ac->data = s;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (s->password != NULL) {
        const char *argv[] = {"AUTH", s->password};
        size_t argvlen[] = {4, strlen(s->password)};
        redisAsyncCommandArgv(ac, on_auth, NULL, 2, argv, argvlen);
    }
    const char *q[] = {"SENTINEL", "get-master-addr-by-name", s->master};
    size_t ql[] = {8, 23, strlen(s->master)};
    redisAsyncCommandArgv(ac, on_master_addr, NULL, 3, q, ql);
    const char *sub[] = {"SUBSCRIBE", "+switch-master"};
    size_t subl[] = {9, 14};
    redisAsyncCommandArgv(ac, on_switch, NULL, 2, sub, subl);
    s->answer_entry.cb = on_answer_timeout;
    h2o_timeout_link(s->loop, &s->answer_timeout, &s->answer_entry);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    ficus_redis_sentinel_t *s = H2O_STRUCT_FROM_MEMBER(ficus_redis_sentinel_t, tick_entry, entry);
    if (s->ac == NULL && s->connect_at_ms != 0 && h2o_now(s->loop) >= s->connect_at_ms)
        connect_sentinel(s);
    h2o_timeout_link(s->loop, &s->tick_timeout, &s->tick_entry);
}

static char *dup_or_die(const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        ficus_fatal("no memory");
    return d;
}

ficus_redis_sentinel_t *ficus_redis_sentinel_create(h2o_loop_t *loop, const ficus_redis_conf_t *conf, unsigned worker_index,
                                                    ficus_redis_sentinel_cb cb, void *data)
{
    ficus_redis_sentinel_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        ficus_fatal("no memory");
    s->loop = loop;
    s->worker = worker_index;
    s->master = dup_or_die(conf->sentinel.master);
    s->num = conf->sentinel.num_addresses;
    s->hosts = calloc(s->num, sizeof(char *));
    s->ports = calloc(s->num, sizeof(int));
    if (s->hosts == NULL || s->ports == NULL)
        ficus_fatal("no memory");
    for (size_t i = 0; i != s->num; ++i) {
        s->hosts[i] = dup_or_die(conf->sentinel.hosts[i]);
        s->ports[i] = conf->sentinel.ports[i];
    }
    s->password = conf->sentinel.password != NULL ? dup_or_die(conf->sentinel.password) : NULL;
    s->connect_timeout_ms = conf->connect_timeout_ms;
    s->reconnect_min_ms = conf->reconnect_min_ms;
    s->reconnect_max_ms = conf->reconnect_max_ms;
    s->cb = cb;
    s->data = data;
    s->current = worker_index % s->num; /* spread the workers over the sentinels */
    h2o_timeout_init(loop, &s->answer_timeout, conf->connect_timeout_ms);
    h2o_timeout_init(loop, &s->tick_timeout, 50);
    s->tick_entry.cb = on_tick;
    h2o_timeout_link(loop, &s->tick_timeout, &s->tick_entry);
    s->connect_at_ms = h2o_now(loop); /* on the first tick: the callback never runs inside create */
    return s;
}

void ficus_redis_sentinel_refresh(ficus_redis_sentinel_t *s)
{
    uint64_t now = h2o_now(s->loop);
    if (s->ac == NULL || now < s->last_query_ms + REFRESH_MIN_INTERVAL_MS)
        return; /* a query is due or under way anyway, or one was made just now */
    drop(s);
    s->connect_at_ms = now;
}

void ficus_redis_sentinel_destroy(ficus_redis_sentinel_t *s)
{
    s->destroyed = 1;
    if (h2o_timeout_is_linked(&s->tick_entry))
        h2o_timeout_unlink(&s->tick_entry);
    drop(s);
    h2o_timeout_dispose(s->loop, &s->answer_timeout);
    h2o_timeout_dispose(s->loop, &s->tick_timeout);
    free(s->master);
    for (size_t i = 0; i != s->num; ++i)
        free(s->hosts[i]);
    free(s->hosts);
    free(s->ports);
    if (s->password != NULL) {
        OPENSSL_cleanse(s->password, strlen(s->password));
        free(s->password);
    }
    free(s);
}

/* ---- the master last named, for /readyz and /metrics (any worker writes, the admin thread reads) ---- */

static pthread_mutex_t last_master_mutex = PTHREAD_MUTEX_INITIALIZER;
static char last_master[INET6_ADDRSTRLEN + 8];

void ficus_redis_sentinel_note_master(const char *ip, int port)
{
    pthread_mutex_lock(&last_master_mutex);
    snprintf(last_master, sizeof(last_master), "%s:%d", ip, port);
    pthread_mutex_unlock(&last_master_mutex);
}

size_t ficus_redis_sentinel_last_master(char *buf, size_t len)
{
    pthread_mutex_lock(&last_master_mutex);
    size_t n = (size_t)snprintf(buf, len, "%s", last_master);
    pthread_mutex_unlock(&last_master_mutex);
    return n < len ? n : len - 1;
}
