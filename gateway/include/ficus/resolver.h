/* ficus's own resolver for upstream service discovery (like nginx's `resolver`, HAProxy's `resolvers`).
 *
 * FILES: gateway/resolver_conf.c the `resolver:` section (and /etc/resolv.conf's nameservers); gateway/dns_client.c
 * one name's lookup (hosts file, then A/AAAA over UDP to the nameservers, with timeout and retries);
 * gateway/resolver.c the names the running generation uses, their refresh every `dns_refresh`, their last good
 * answers, and a new generation when a name's address set changes; gateway/dns_msg.c and dns_hosts.c the pure
 * parsers (ficus/dns.h).
 * THREADING: everything runs on the control thread's loop, never on a worker loop; nothing blocks (the hosts file
 * is a small local file read there, like the configuration's other files). Workers only ever see addresses as part
 * of an immutable configuration generation. */
#ifndef ficus__resolver_h
#define ficus__resolver_h

#include <sys/socket.h>
#include "h2o.h"
#include "ficus/conf.h"
#include "ficus/dns.h"

#define FICUS_RESOLVER_MAX_NAMESERVERS 8
#define FICUS_RESOLVER_MAX_HOSTS_FILE (1024 * 1024) /* a bigger hosts file is not read (an error, the last answer kept) */

typedef struct st_ficus_config_t ficus_config_t;

/* The `resolver:` section. Plain data (no pointers): a lookup copies it, so it never depends on a generation's life. */
typedef struct st_ficus_resolver_conf_t {
    struct st_ficus_nameserver_t {
        struct sockaddr_storage addr;
        socklen_t addrlen;
        char label[64]; /* "127.0.0.1:53", for messages */
    } nameservers[FICUS_RESOLVER_MAX_NAMESERVERS];
    size_t num_nameservers; /* 0: the hosts file only */
    int from_resolv_conf;   /* nameservers came from /etc/resolv.conf (not configured) */
    char hosts_file[1024];  /* "" = none */
    uint64_t timeout_ms;    /* one try: the queries to one nameserver */
    unsigned attempts;      /* rounds over the nameservers */
    uint64_t hold_nx_ms;    /* how long a name that vanished (NXDOMAIN / no address) keeps its last addresses */
    int ipv6;               /* also AAAA (and IPv6 lines of the hosts file) */
} ficus_resolver_conf_t;

/** Loads the `resolver:` section (node NULL: the defaults), reading /etc/resolv.conf (or FICUS_RESOLV_CONF, for
 * tests) when `nameservers` is not given. 0, or -1 with the error recorded in cc (gateway/resolver_conf.c). */
int ficus_resolver_conf_load(ficus_conf_ctx_t *cc, const ficus_node_t *node, ficus_resolver_conf_t **out);
void ficus_resolver_conf_free(ficus_resolver_conf_t *conf);

/* ---- one lookup (gateway/dns_client.c) ---- */

typedef struct st_ficus_dns_lookup_t ficus_dns_lookup_t;
/* result: FICUS_DNS_OK with the addresses (n > 0), NXDOMAIN (the name does not exist, or exists without addresses:
 * n == 0), or the failure of the last try (TIMEOUT, SERVFAIL, ...). source: "hosts" or the nameserver's label. */
typedef void (*ficus_dns_lookup_cb)(ficus_dns_lookup_t *l, ficus_dns_result_t result, const ficus_dns_addr_t *addrs, size_t n,
                                    const char *source);

struct st_ficus_dns_lookup_t {
    void *data;
    /* private */
    h2o_loop_t *_loop;
    ficus_resolver_conf_t _conf; /* copied at start */
    char _name[256];
    ficus_dns_lookup_cb _cb;
    h2o_timeout_t _zero, _timeout;
    h2o_timeout_entry_t _defer, _deadline;
    h2o_socket_t *_sock;
    unsigned _try, _num_tries;
    size_t _num_q;
    struct {
        uint16_t id, qtype;
        int done;
        ficus_dns_result_t result;
    } _q[2];
    ficus_dns_addr_t _addrs[FICUS_DNS_MAX_ADDRS];
    size_t _num_addrs;
    ficus_dns_result_t _final;
    char _source[64];
    int _running;
};

/** Prepares l on loop (control thread). */
void ficus_dns_lookup_init(ficus_dns_lookup_t *l, h2o_loop_t *loop);
/** Starts resolving name (ficus_dns_name_valid) with conf (copied): the hosts file first (re-read now), then DNS.
 * cb is called exactly once, later (never from inside this call), unless cancelled. l must not be running. */
void ficus_dns_lookup_start(ficus_dns_lookup_t *l, const ficus_resolver_conf_t *conf, const char *name, ficus_dns_lookup_cb cb);
/** Stops a running lookup: no callback follows. Fine when not running. */
void ficus_dns_lookup_cancel(ficus_dns_lookup_t *l);
/** Cancels and releases l's timers. */
void ficus_dns_lookup_dispose(ficus_dns_lookup_t *l);
/** Queries sent, by the outcome of each (one per A or AAAA query and try). Control thread. */
extern uint64_t ficus_dns_queries_total[FICUS_DNS__COUNT];

/* ---- the names of the running generation (gateway/resolver.c; control thread only) ---- */

/** The last good addresses of name (sorted), or 0 when it has none (unknown, or never resolved). The pointer is
 * valid until the loop runs again. Used by the upstream loader (gateway/upstream/load.c) to expand a name. */
size_t ficus_resolver_addresses(const char *name, const ficus_dns_addr_t **addrs);
/** Follows the names of config's upstream endpoints: new names are resolved now, names no longer used are
 * forgotten, each is refreshed every `dns_refresh` (the shortest of the upstreams naming it). When a name's address
 * set changes, on_change() is called on the control loop (coalesced: once for the changes of one loop turn). */
void ficus_resolver_apply(h2o_loop_t *loop, const ficus_config_t *config, void (*on_change)(void));
/** At start-up, before the workers: resolves config's names and runs loop until every first lookup ended (bounded by
 * the resolver's timeout × attempts × nameservers); logs a warning for each name that did not resolve. Returns
 * whether any name has addresses (then the caller builds a generation with them: ficus_config_derive). */
int ficus_resolver_prime(h2o_loop_t *loop, const ficus_config_t *config);
/** ficus_dns_queries_total{result}, ficus_dns_refreshes_total{name,result}, ficus_dns_addresses{name}. */
void ficus_resolver_render_metrics(h2o_mem_pool_t *pool, h2o_iovec_t *out);

#endif
