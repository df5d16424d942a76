/* Unit tests of gateway/resolver_conf.c (the `resolver:` section and /etc/resolv.conf's nameservers) and of
 * ficus_config_derive (gateway/config.c, gateway/upstream/load.c): a derived generation shares its base's settings,
 * has endpoints of its own holding the same registry states, and frees cleanly in either order. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf_helpers.h"
#include "ficus/resolver.h"
#include "ficus/upstream/registry.h"

#define BASE "server:\n  listen: [{ address: \"127.0.0.1:8080\" }]\nroutes:\n  - { name: r, match: { path_prefix: / }, to: u }\n"
#define UPSTREAM "upstreams:\n  u: { endpoints: [\"http://127.0.0.1:9000\", \"http://svc.test:9001\"], dns_refresh: 5s }\n"

static void with_resolv_conf(const char *text)
{
    static char path[] = "/tmp/ficus-test-resolv-XXXXXX";
    int fd = mkstemp(path);
    if (fd == -1)
        return;
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        ok(0);
    close(fd);
    setenv("FICUS_RESOLV_CONF", path, 1);
}

FICUS_TEST(defaults_from_resolv_conf)
{
    with_resolv_conf("# a comment\nsearch example.com\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\n"
                     "nameserver ::1\nnameserver bogus\nnameserver 10.0.0.2\nnameserver 10.0.0.3\noptions ndots:2\n");
    char err[ERRLEN];
    ficus_config_t *c = load(UPSTREAM BASE, err);
    if (!ok(c != NULL)) {
        printf("#     error: %s\n", err);
        return;
    }
    const ficus_resolver_conf_t *r = c->resolver;
    ok_int(r->num_nameservers, 3); /* MAXNS; the scoped and the bogus lines are skipped */
    ok_str(r->nameservers[0].label, "10.0.0.1:53");
    ok_str(r->nameservers[1].label, "[::1]:53");
    ok_str(r->nameservers[2].label, "10.0.0.2:53");
    ok(r->from_resolv_conf);
    ok_str(r->hosts_file, "/etc/hosts");
    ok_int(r->timeout_ms, 2000);
    ok_int(r->attempts, 2);
    ok_int(r->hold_nx_ms, 30000);
    ok(r->ipv6);
    ficus_config_release(c);
    setenv("FICUS_RESOLV_CONF", "/nonexistent/resolv.conf", 1);
    c = load(UPSTREAM BASE, err);
    if (ok(c != NULL)) {
        ok_int(c->resolver->num_nameservers, 0); /* no file: the hosts file only */
        ficus_config_release(c);
    }
}

FICUS_TEST(every_key)
{
    char err[ERRLEN];
    ficus_config_t *c = load("resolver:\n  nameservers: [\"127.0.0.1:5353\", \"[::1]:53\", 192.0.2.1]\n  hosts_file: \"\"\n"
                             "  timeout: 250ms\n  attempts: 3\n  hold_nx: 0s\n  ipv6: false\n" UPSTREAM BASE,
                             err);
    if (!ok(c != NULL)) {
        printf("#     error: %s\n", err);
        return;
    }
    const ficus_resolver_conf_t *r = c->resolver;
    ok_int(r->num_nameservers, 3);
    ok_str(r->nameservers[0].label, "127.0.0.1:5353");
    ok_str(r->nameservers[1].label, "[::1]:53");
    ok_str(r->nameservers[2].label, "192.0.2.1:53");
    ok(!r->from_resolv_conf);
    ok_str(r->hosts_file, "");
    ok_int(r->timeout_ms, 250);
    ok_int(r->attempts, 3);
    ok_int(r->hold_nx_ms, 0);
    ok(!r->ipv6);
    ficus_config_release(c);
}

FICUS_TEST(errors_are_file_line)
{
    fails_at("resolver:\n  nameservers: [\"*:53\"]\n" BASE, 2, "resolver: nameserver '*:53' is not IP");
    fails_at("resolver:\n  nameservers: [\"127.0.0.1:0\"]\n" BASE, 2, "is not IP");
    fails_at("resolver:\n  nameservers: [a, b, c, d, e, f, g, h, i]\n" BASE, 2, "at most 8 nameservers");
    fails_at("resolver:\n  hosts: /etc/hosts\n" BASE, 2, "unknown key 'hosts'");
    fails_at("resolver: []\n" BASE, 1, "'resolver' must be a mapping");
    fails_at("resolver:\n  hold_nx: 2d\n" BASE, 2, "duration must be between");
    fails_at("upstreams:\n  u: { endpoints: [\"http://-bad_.name..:80\"] }\n" BASE, 2, "neither an IP address nor a host name");
    fails_at("upstreams:\n  u: { endpoints: [\"http://[not:v6]:80\"] }\n" BASE, 2, "neither an IP address nor a host name");
}

FICUS_TEST(derive_shares_settings_and_states)
{
    char err[ERRLEN];
    ficus_config_t *base = load(UPSTREAM BASE, err);
    if (!ok(base != NULL)) {
        printf("#     error: %s\n", err);
        return;
    }
    const ficus_upstream_conf_t *bu = base->upstreams[0];
    ok_int(bu->num_sources, 2);
    ok_int(bu->num_endpoints, 1); /* svc.test: nothing resolved it */
    ficus_config_t *d1 = ficus_config_derive(base), *d2 = ficus_config_derive(d1);
    ok(d1->base == base && d2->base == base); /* always from the file's generation */
    ok(d1->routes == base->routes && d1->resolver == base->resolver && d1->server.listeners == base->server.listeners);
    const ficus_upstream_conf_t *u1 = d1->upstreams[0], *u2 = d2->upstreams[0];
    ok(u1 != bu && u1->derived && u1->index == bu->index && u1->state == bu->state && u1->sources == bu->sources);
    ok_int(u1->num_endpoints, 1);
    ok(u1->endpoints != bu->endpoints && u1->endpoints[0].state == bu->endpoints[0].state);
    ok_str(u1->endpoints[0].address, "127.0.0.1:9000");
    ok_int(u1->endpoints[0].state->configured, 3); /* base, d1, d2 */
    ok(ficus_config_upstream(d2, "u") == u2);
    ficus_config_release(base); /* the derived ones keep it alive */
    ficus_config_release(d1);
    ok_int(u2->endpoints[0].state->configured, 2);
    ok_str(d2->routes[0]->name, "r");
    ficus_config_release(d2);
}
