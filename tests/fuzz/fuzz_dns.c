/* libFuzzer target: DNS answers and hosts files, through the pure parsers gateway/dns_msg.c and gateway/dns_hosts.c.
 *
 * ATTACK SURFACE: whoever answers on a nameserver's address (a broken resolver, a middlebox, an off-path spoofer who
 * guessed the port and ID) sends arbitrary datagrams to ficus's resolver: the header, the question check, name
 * decompression (pointers, loops, label lengths), the answer records and the CNAME chain see them all. The hosts
 * file is local but edited by people and tools: any text must parse.
 * INPUT: byte 0 picks the question (0x01: AAAA, else A; 0x02: the name "svc.test.", else "svc.test"); bytes 1-2 are
 * the expected ID; the rest is the datagram, also parsed as a hosts file looked up for "svc.test".
 * CHECKS besides the sanitizers: at most `max` addresses, each of the asked family and listed once; MISMATCH and the
 * RCODE outcomes give no address; the hosts lookup returns at most `max` distinct addresses. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "ficus/dns.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

static void check_addrs(const ficus_dns_addr_t *a, size_t n, size_t max, int family)
{
    check(n <= max);
    for (size_t i = 0; i != n; ++i) {
        check(family == 0 ? (a[i].family == AF_INET || a[i].family == AF_INET6) : a[i].family == family);
        for (size_t j = 0; j != i; ++j)
            check(!(a[i].family == a[j].family && memcmp(a[i].addr, a[j].addr, 16) == 0));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint16_t qtype = (data[0] & 1) != 0 ? FICUS_DNS_TYPE_AAAA : FICUS_DNS_TYPE_A;
    const char *name = (data[0] & 2) != 0 ? "svc.test." : "svc.test";
    uint16_t id = (uint16_t)(data[1] << 8 | data[2]);
    const uint8_t *msg = data + 3;
    size_t len = size - 3;
    /* a copy of exactly len bytes, so ASan sees any read past the datagram */
    uint8_t *copy = malloc(len == 0 ? 1 : len);
    memcpy(copy, msg, len);

    ficus_dns_addr_t addrs[16];
    size_t n = 99;
    int truncated = -1;
    ficus_dns_result_t r = ficus_dns_parse_response(copy, len, id, name, qtype, addrs, 16, &n, &truncated);
    check(r >= FICUS_DNS_OK && r <= FICUS_DNS_MISMATCH);
    check(truncated == 0 || truncated == 1);
    if (r != FICUS_DNS_OK)
        check(n == 0);
    check_addrs(addrs, n, 16, qtype == FICUS_DNS_TYPE_A ? AF_INET : AF_INET6);

    size_t h = ficus_hosts_lookup((const char *)copy, len, "svc.test", (data[0] & 4) != 0, addrs, 8);
    check_addrs(addrs, h, 8, 0);

    /* a query for the same name always builds, and its own bytes are never taken for an answer */
    uint8_t q[FICUS_DNS_MAX_QUERY];
    size_t qlen = ficus_dns_build_query(q, sizeof(q), id, name, qtype);
    check(qlen != 0 && qlen <= FICUS_DNS_MAX_QUERY);
    check(ficus_dns_parse_response(q, qlen, id, name, qtype, addrs, 16, &n, &truncated) == FICUS_DNS_MISMATCH);
    free(copy);
    return 0;
}
