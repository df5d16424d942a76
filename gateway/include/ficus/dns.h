/* DNS for upstream service discovery: the pure parts (gateway/dns_msg.c, gateway/dns_hosts.c).
 *
 * No I/O here: a query is built into a caller's buffer, a response is parsed from one, a hosts file is parsed from
 * its text. The asynchronous client that sends queries and the service that refreshes names live in
 * gateway/resolver.c (ficus/resolver.h). Every function here accepts any bytes (truncated, garbage, hostile) and
 * never reads outside what it was given: they are fuzzed (tests/fuzz/fuzz_dns.c). */
#ifndef ficus__dns_h
#define ficus__dns_h

#include <stddef.h>
#include <stdint.h>

#define FICUS_DNS_TYPE_A 1
#define FICUS_DNS_TYPE_CNAME 5
#define FICUS_DNS_TYPE_AAAA 28
#define FICUS_DNS_MAX_NAME 253     /* presentation length, without the trailing dot (RFC 1035 2.3.4) */
#define FICUS_DNS_MAX_QUERY 300    /* a query for any valid name, with its EDNS0 OPT record, fits */
#define FICUS_DNS_UDP_PAYLOAD 1232 /* advertised in EDNS0 (the DNS flag day 2020 value): rarely truncated, never fragmented */
#define FICUS_DNS_MAX_ADDRS 256    /* addresses kept from one answer (an upstream has at most 256 endpoints) */

typedef struct st_ficus_dns_addr_t {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
} ficus_dns_addr_t;

/* What a response says; one distinct value per outcome (metric labels: ficus_dns_result_names). */
typedef enum enum_ficus_dns_result_t {
    FICUS_DNS_OK = 0,     /* NOERROR: the addresses (none = NODATA: the name exists without this type) */
    FICUS_DNS_NXDOMAIN,   /* the name does not exist */
    FICUS_DNS_SERVFAIL,   /* the server could not answer */
    FICUS_DNS_REFUSED,    /* the server will not answer */
    FICUS_DNS_ERROR,      /* another RCODE (FORMERR, NOTIMP, ...) */
    FICUS_DNS_MALFORMED,  /* the answer to our question, but not well formed */
    FICUS_DNS_MISMATCH,   /* not an answer to our question (ID, QR, opcode or question differ): ignored, keep waiting */
    FICUS_DNS_TIMEOUT,    /* (client) no answer in time */
    FICUS_DNS_TRUNCATED,  /* (client) TC set: the complete records it holds were used */
    FICUS_DNS_SEND_ERROR, /* (client) the query could not be sent */
    FICUS_DNS__COUNT
} ficus_dns_result_t;
/** "ok", "nxdomain", "servfail", "refused", "error", "malformed", "mismatch", "timeout", "truncated", "send_error" */
extern const char *const ficus_dns_result_names[FICUS_DNS__COUNT];

/** Whether name is a DNS host name ficus resolves: labels of letters, digits, '-' and '_', 1 to 63 bytes each, at
 * most FICUS_DNS_MAX_NAME bytes, an optional trailing dot, not an IP literal and not all digits and dots. */
int ficus_dns_name_valid(const char *name);

/**
 * Builds a recursive query (RD set) for name (ficus_dns_name_valid) of qtype (A or AAAA) with an EDNS0 OPT record
 * advertising FICUS_DNS_UDP_PAYLOAD bytes. Returns its length (<= FICUS_DNS_MAX_QUERY), or 0 when the name is not
 * valid or cap is too small.
 */
size_t ficus_dns_build_query(uint8_t *buf, size_t cap, uint16_t id, const char *name, uint16_t qtype);

/**
 * Parses a response to the query (id, name, qtype). The addresses of type qtype owned by name, or by a name it is an
 * alias of through a chain of CNAME records in the answer (at most 8 steps), class IN, go into addrs (at most max,
 * duplicates dropped), their count into *n. *truncated is set when the TC flag is: the records that are complete are
 * used and a record cut off at the end is not an error. Returns FICUS_DNS_OK, NXDOMAIN, SERVFAIL, REFUSED, ERROR (the
 * RCODE), MALFORMED or MISMATCH. Reads only msg[0..len).
 */
ficus_dns_result_t ficus_dns_parse_response(const uint8_t *msg, size_t len, uint16_t id, const char *name, uint16_t qtype,
                                            ficus_dns_addr_t *addrs, size_t max, size_t *n, int *truncated);

/**
 * Looks name up in the text of a hosts file (hosts(5): an address, then names, per line; '#' starts a comment;
 * case-insensitive; a trailing dot ignored). Every address of every line naming it goes into out (at most max,
 * duplicates dropped, IPv4 and IPv6 unless want_ipv6 is 0; scoped IPv6 addresses are skipped). Returns the count.
 */
size_t ficus_hosts_lookup(const char *text, size_t len, const char *name, int want_ipv6, ficus_dns_addr_t *out, size_t max);

/** Orders addresses (IPv4 first, then by bytes), so sets compare with memcmp. */
void ficus_dns_addrs_sort(ficus_dns_addr_t *addrs, size_t n);
/** "192.0.2.1:80" / "[2001:db8::1]:80" into buf (at least 64 bytes); the IP alone (no brackets) into ip (at least
 * 48 bytes) when not NULL. */
void ficus_dns_addr_format(const ficus_dns_addr_t *a, uint16_t port, char *buf, size_t cap, char *ip, size_t ipcap);

#endif
