/* The `redis:` section: one server (`address`) or a Sentinel-managed master (`sentinel`), plus the settings every
 * mode shares (password, db, timeouts, reconnection, breaker).
 *
 * Host names are resolved here, when the configuration is loaded (control thread, never a worker), because hiredis
 * would resolve them synchronously on every reconnect; a reload resolves them again. Password files are read here too
 * and never logged. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/config.h"
#include "ficus/log.h"
#include "ficus/redis.h"

/* "name:port" → a socket address, resolved now. */
static int resolve_at_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, const char *address, struct sockaddr_storage *ss)
{
    const char *colon = strrchr(address, ':');
    char name[256];
    if (colon == NULL || colon == address || (size_t)(colon - address) >= sizeof(name) || colon[1] == '\0' ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return ficus_conf_error(cc, node, "redis address must be HOST:PORT or unix:/path (got '%s')", address);
    memcpy(name, address, colon - address);
    name[colon - address] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res;
    int rc = getaddrinfo(name, colon + 1, &hints, &res); /* at load only */
    if (rc != 0)
        return ficus_conf_error(cc, node, "cannot resolve redis host '%s': %s", name, gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* IP:PORT or HOST:PORT (resolved now) → a malloc'd IP string and a port. */
static int load_host_port(ficus_conf_ctx_t *cc, const ficus_node_t *node, char **host_out, int *port_out)
{
    const char *a = node->data.scalar.value;
    struct sockaddr_storage ss;
    socklen_t len;
    char host[64];
    if (ficus_parse_address(a, &ss, &len) != 0 && resolve_at_load(cc, node, a, &ss) != 0)
        return -1;
    if (ss.ss_family == AF_INET) {
        if (((struct sockaddr_in *)&ss)->sin_addr.s_addr == 0)
            return ficus_conf_error(cc, node, "redis address must name a host (got '%s')", a);
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
        *port_out = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
        *port_out = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    if (*port_out == 0)
        return ficus_conf_error(cc, node, "redis address needs a port (got '%s')", a);
    if ((*host_out = strdup(host)) == NULL)
        ficus_fatal("no memory");
    return 0;
}

static int is_valid_master_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128)
        return 0;
    for (; *s != '\0'; ++s)
        if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

/* A list of IP:PORT / HOST:PORT (resolved now) of at most max entries. *num counts what was filled (for freeing). */
static int load_address_list(ficus_conf_ctx_t *cc, const ficus_node_t *list, const char *what, size_t max, char ***hosts,
                             int **ports, size_t *num)
{
    size_t n = list->data.sequence.size;
    if (n == 0)
        return ficus_conf_error(cc, list, "%s needs at least one IP:PORT", what);
    if (n > max)
        return ficus_conf_error(cc, list, "at most %zu %s", max, what);
    *hosts = calloc(n, sizeof(char *));
    *ports = calloc(n, sizeof(int));
    if (*hosts == NULL || *ports == NULL)
        ficus_fatal("no memory");
    for (size_t i = 0; i != n; ++i) {
        const ficus_node_t *a = list->data.sequence.elements[i];
        if (ficus_conf_expect(cc, a, FICUS_NODE_SCALAR) != 0)
            return -1;
        *num = i + 1;
        if (load_host_port(cc, a, &(*hosts)[i], &(*ports)[i]) != 0)
            return -1;
    }
    return 0;
}

static int load_cluster(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_redis_conf_t *c)
{
    ficus_node_t *addresses;
    if (ficus_conf_mapping(cc, node, "addresses:a", "", &addresses) != 0)
        return -1;
    return load_address_list(cc, addresses, "cluster.addresses", FICUS_REDIS_MAX_CLUSTER_NODES, &c->cluster.hosts,
                             &c->cluster.ports, &c->cluster.num_seeds);
}

static int load_sentinel(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_redis_conf_t *c)
{
    ficus_node_t *master, *addresses, *password_file;
    if (ficus_conf_mapping(cc, node, "master:s,addresses:a", "password_file:s", &master, &addresses, &password_file) != 0)
        return -1;
    if (!is_valid_master_name(master->data.scalar.value))
        return ficus_conf_error(cc, master, "sentinel master name must be 1-128 characters of A-Z a-z 0-9 - _ .");
    c->sentinel.master = strdup(master->data.scalar.value);
    if (load_address_list(cc, addresses, "sentinel.addresses", FICUS_REDIS_MAX_SENTINELS, &c->sentinel.hosts, &c->sentinel.ports,
                          &c->sentinel.num_addresses) != 0)
        return -1;
    if (password_file != NULL && ficus_conf_read_secret(cc, password_file, "Sentinel password file", &c->sentinel.password) != 0)
        return -1;
    return 0;
}

int ficus_redis_conf_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_redis_conf_t **out)
{
    ficus_node_t *address, *sentinel, *cluster, *password_file, *db, *connect_timeout, *command_timeout, *reconnect_min,
        *reconnect_max, *breaker;
    if (ficus_conf_mapping(cc, node, "",
                           "address:s,sentinel:m,cluster:m,password_file:s,db:s,connect_timeout:s,command_timeout:s,"
                           "reconnect_min:s,reconnect_max:s,breaker:m",
                           &address, &sentinel, &cluster, &password_file, &db, &connect_timeout, &command_timeout, &reconnect_min,
                           &reconnect_max, &breaker) != 0)
        return -1;
    ficus_redis_conf_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        ficus_fatal("no memory");
    *out = c;
    if ((address != NULL) + (sentinel != NULL) + (cluster != NULL) != 1)
        return ficus_conf_error(cc, node, "redis needs exactly one of `address` (one server), `sentinel` or `cluster`");
    if (cluster != NULL) {
        if (load_cluster(cc, cluster, c) != 0)
            return -1;
        if (db != NULL)
            return ficus_conf_error(cc, db, "a Redis Cluster has only database 0: remove `db`");
        c->address = strdup("cluster");
    } else if (sentinel != NULL) {
        if (load_sentinel(cc, sentinel, c) != 0)
            return -1;
        char buf[160];
        snprintf(buf, sizeof(buf), "sentinel:%s", c->sentinel.master);
        c->address = strdup(buf);
    } else {
        c->address = strdup(address->data.scalar.value);
        const char *a = c->address;
        if (strncmp(a, "unix:", 5) == 0) {
            if (a[5] != '/')
                return ficus_conf_error(cc, address, "unix socket address must be absolute: unix:/path/to/redis.sock");
            c->unix_path = strdup(a + 5);
        } else if (load_host_port(cc, address, &c->host, &c->port) != 0) {
            return -1;
        }
    }
    if (password_file != NULL && ficus_conf_read_secret(cc, password_file, "Redis password file", &c->password) != 0)
        return -1;
    uint64_t v;
    if (db != NULL) {
        if (ficus_conf_uint(cc, db, 0, 1000, &v) != 0)
            return -1;
        c->db = (unsigned)v;
    }
    c->connect_timeout_ms = 1000;
    c->command_timeout_ms = 5;
    c->reconnect_min_ms = 100;
    c->reconnect_max_ms = 5000;
    c->breaker_failures = 5;
    c->breaker_open_ms = 1000;
    if (connect_timeout != NULL && ficus_conf_duration(cc, connect_timeout, 1, 60000, &c->connect_timeout_ms) != 0)
        return -1;
    if (command_timeout != NULL && ficus_conf_duration(cc, command_timeout, 1, 60000, &c->command_timeout_ms) != 0)
        return -1;
    if (reconnect_min != NULL && ficus_conf_duration(cc, reconnect_min, 10, 600000, &c->reconnect_min_ms) != 0)
        return -1;
    if (reconnect_max != NULL && ficus_conf_duration(cc, reconnect_max, 10, 600000, &c->reconnect_max_ms) != 0)
        return -1;
    if (c->reconnect_min_ms > c->reconnect_max_ms)
        return ficus_conf_error(cc, reconnect_min != NULL ? reconnect_min : reconnect_max,
                                "reconnect_min must not exceed reconnect_max");
    if (breaker != NULL) {
        ficus_node_t *failures, *open_for;
        if (ficus_conf_mapping(cc, breaker, "", "failures:s,open_for:s", &failures, &open_for) != 0)
            return -1;
        if (failures != NULL) {
            if (ficus_conf_uint(cc, failures, 1, 1000, &v) != 0)
                return -1;
            c->breaker_failures = (unsigned)v;
        }
        if (open_for != NULL && ficus_conf_duration(cc, open_for, 10, 600000, &c->breaker_open_ms) != 0)
            return -1;
    }
    return 0;
}

static void free_secret(char *s)
{
    if (s != NULL) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void ficus_redis_conf_free(ficus_redis_conf_t *c)
{
    if (c == NULL)
        return;
    free(c->address);
    free(c->host);
    free(c->unix_path);
    free_secret(c->password);
    free(c->sentinel.master);
    for (size_t i = 0; i != c->sentinel.num_addresses; ++i)
        free(c->sentinel.hosts[i]);
    free(c->sentinel.hosts);
    free(c->sentinel.ports);
    free_secret(c->sentinel.password);
    for (size_t i = 0; i != c->cluster.num_seeds; ++i)
        free(c->cluster.hosts[i]);
    free(c->cluster.hosts);
    free(c->cluster.ports);
    free(c);
}

static int streq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int ficus_redis_conf_same_server(const ficus_redis_conf_t *a, const ficus_redis_conf_t *b)
{
    if (!(streq(a->host, b->host) && a->port == b->port && streq(a->unix_path, b->unix_path) && streq(a->password, b->password) &&
          a->db == b->db && streq(a->sentinel.master, b->sentinel.master) && streq(a->sentinel.password, b->sentinel.password) &&
          a->sentinel.num_addresses == b->sentinel.num_addresses && a->cluster.num_seeds == b->cluster.num_seeds))
        return 0;
    for (size_t i = 0; i != a->cluster.num_seeds; ++i)
        if (!streq(a->cluster.hosts[i], b->cluster.hosts[i]) || a->cluster.ports[i] != b->cluster.ports[i])
            return 0;
    for (size_t i = 0; i != a->sentinel.num_addresses; ++i)
        if (!streq(a->sentinel.hosts[i], b->sentinel.hosts[i]) || a->sentinel.ports[i] != b->sentinel.ports[i])
            return 0;
    return 1;
}
