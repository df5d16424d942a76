/* The `resolver:` section: where upstream host names are looked up (ficus/resolver.h).
 *
 *   resolver: { nameservers: ["127.0.0.1:53"], hosts_file: /etc/hosts, timeout: 2s, attempts: 2, hold_nx: 30s, ipv6: true }
 *
 * Every key is optional; without the section (or without `nameservers`) the nameservers are /etc/resolv.conf's
 * `nameserver` lines (at most 3, port 53, read at load; FICUS_RESOLV_CONF names another file, for tests).
 * `nameservers: []` means the hosts file only; `hosts_file: ""` means DNS only. Errors are file:line like every
 * section. Nothing is resolved here: gateway/resolver.c does that on the control loop. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/config.h"
#include "ficus/log.h"
#include "ficus/resolver.h"

/* "IP", "IP:PORT", "[IPv6]:PORT" (port 53 when omitted) → ns. 0 or -1. */
static int parse_nameserver(const char *s, struct st_ficus_nameserver_t *ns)
{
    char buf[60];
    size_t len = strlen(s);
    if (len == 0 || len + 4 >= sizeof(buf))
        return -1;
    struct in6_addr a6;
    struct in_addr a4;
    if (inet_pton(AF_INET, s, &a4) == 1)
        snprintf(buf, sizeof(buf), "%s:53", s);
    else if (inet_pton(AF_INET6, s, &a6) == 1)
        snprintf(buf, sizeof(buf), "[%s]:53", s);
    else
        snprintf(buf, sizeof(buf), "%s", s);
    if (ficus_parse_address(buf, &ns->addr, &ns->addrlen) != 0)
        return -1;
    if (ns->addr.ss_family == AF_INET && ((struct sockaddr_in *)&ns->addr)->sin_addr.s_addr == htonl(INADDR_ANY))
        return -1; /* ficus_parse_address reads "" and "*" as any address: not a server */
    snprintf(ns->label, sizeof(ns->label), "%s", buf);
    return 0;
}

/* resolv.conf(5): `nameserver ADDRESS` lines, the first 3 (MAXNS) that parse. A missing file means none. */
static void read_resolv_conf(ficus_resolver_conf_t *c)
{
    const char *path = getenv("FICUS_RESOLV_CONF");
    FILE *fp = fopen(path != NULL && path[0] != '\0' ? path : "/etc/resolv.conf", "r");
    if (fp == NULL)
        return;
    char line[512];
    while (fgets(line, sizeof(line), fp) != NULL && c->num_nameservers < 3) {
        char word[32], addr[128];
        if (sscanf(line, "%31s %127s", word, addr) != 2 || strcmp(word, "nameserver") != 0)
            continue;
        char *pct = strchr(addr, '%'); /* fe80::1%eth0: the scope is not kept */
        if (pct != NULL)
            continue;
        if (parse_nameserver(addr, &c->nameservers[c->num_nameservers]) == 0)
            ++c->num_nameservers;
    }
    fclose(fp);
}

int ficus_resolver_conf_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_resolver_conf_t **out)
{
    ficus_resolver_conf_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        ficus_fatal("no memory");
    *out = c;
    snprintf(c->hosts_file, sizeof(c->hosts_file), "/etc/hosts");
    c->timeout_ms = 2000;
    c->attempts = 2;
    c->hold_nx_ms = 30000;
    c->ipv6 = 1;
    ficus_node_t *nameservers = NULL, *hosts_file = NULL, *timeout = NULL, *attempts = NULL, *hold_nx = NULL, *ipv6 = NULL;
    if (node != NULL && ficus_conf_mapping(cc, node, "", "nameservers:a,hosts_file:s,timeout:s,attempts:s,hold_nx:s,ipv6:s",
                                           &nameservers, &hosts_file, &timeout, &attempts, &hold_nx, &ipv6) != 0)
        return -1;
    if (nameservers != NULL) {
        if (nameservers->data.sequence.size > FICUS_RESOLVER_MAX_NAMESERVERS)
            return ficus_conf_error(cc, nameservers, "resolver: at most %d nameservers", FICUS_RESOLVER_MAX_NAMESERVERS);
        for (size_t i = 0; i != nameservers->data.sequence.size; ++i) {
            const ficus_node_t *e = nameservers->data.sequence.elements[i];
            if (ficus_conf_expect(cc, e, FICUS_NODE_SCALAR) != 0)
                return -1;
            if (parse_nameserver(e->data.scalar.value, &c->nameservers[i]) != 0)
                return ficus_conf_error(cc, e, "resolver: nameserver '%s' is not IP, IP:PORT or [IPv6]:PORT", e->data.scalar.value);
        }
        c->num_nameservers = nameservers->data.sequence.size;
    } else {
        c->from_resolv_conf = 1;
        read_resolv_conf(c);
    }
    if (hosts_file != NULL) {
        if (hosts_file->data.scalar.len >= sizeof(c->hosts_file))
            return ficus_conf_error(cc, hosts_file, "resolver: hosts_file path too long");
        if (hosts_file->data.scalar.len != 0 && hosts_file->data.scalar.value[0] != '/')
            return ficus_conf_error(cc, hosts_file, "resolver: hosts_file must be an absolute path (or \"\" for none)");
        snprintf(c->hosts_file, sizeof(c->hosts_file), "%s", hosts_file->data.scalar.value);
    }
    if (timeout != NULL && ficus_conf_duration(cc, timeout, 10, 60000, &c->timeout_ms) != 0)
        return -1;
    uint64_t v;
    if (attempts != NULL) {
        if (ficus_conf_uint(cc, attempts, 1, 5, &v) != 0)
            return -1;
        c->attempts = (unsigned)v;
    }
    if (hold_nx != NULL && ficus_conf_duration(cc, hold_nx, 0, 86400000, &c->hold_nx_ms) != 0)
        return -1;
    if (ipv6 != NULL && ficus_conf_bool(cc, ipv6, &c->ipv6) != 0)
        return -1;
    return 0;
}

void ficus_resolver_conf_free(ficus_resolver_conf_t *conf)
{
    free(conf);
}
