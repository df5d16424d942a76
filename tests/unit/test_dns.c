/* Unit tests of gateway/dns_msg.c (the DNS query builder and response parser) and gateway/dns_hosts.c (hosts file
 * lookup): the exact bytes of a query, answers with compressed names and CNAME chains, every RCODE, answers to
 * another question, truncated answers, pointer loops, and every prefix and many random mutations of a valid answer
 * (never a crash, never an address that is not in it). */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "runner.h"
#include "ficus/dns.h"

FICUS_TEST(names_valid)
{
    ok(ficus_dns_name_valid("svc.test"));
    ok(ficus_dns_name_valid("Orders-A.internal."));
    ok(ficus_dns_name_valid("localhost"));
    ok(ficus_dns_name_valid("_srv.x"));
    ok(!ficus_dns_name_valid(""));
    ok(!ficus_dns_name_valid("."));
    ok(!ficus_dns_name_valid("a..b"));
    ok(!ficus_dns_name_valid(".a"));
    ok(!ficus_dns_name_valid("10.0.0.1"));
    ok(!ficus_dns_name_valid("a b"));
    ok(!ficus_dns_name_valid("a/b"));
    char long_label[80];
    memset(long_label, 'a', 64);
    long_label[64] = '\0';
    ok(!ficus_dns_name_valid(long_label));
    long_label[63] = '\0';
    ok(ficus_dns_name_valid(long_label));
    char long_name[300];
    for (int i = 0; i != 128; ++i)
        memcpy(long_name + 2 * i, "a.", 2);
    long_name[255] = '\0'; /* 255 bytes: "a.a.....a" too long */
    ok(!ficus_dns_name_valid(long_name));
}

FICUS_TEST(query_bytes)
{
    uint8_t q[FICUS_DNS_MAX_QUERY];
    size_t n = ficus_dns_build_query(q, sizeof(q), 0xbeef, "Svc.TEST.", FICUS_DNS_TYPE_AAAA);
    static const uint8_t expect[] = {0xbe, 0xef, 0x01, 0x00, 0,    1,   0,   0,   0,   0, 0,
                                     1,                                                   /* header: RD, 1 question, 1 additional */
                                     3,    's',  'v',  'c',  4,    't', 'e', 's', 't', 0, /* name, lowercased */
                                     0,    28,   0,    1,                                 /* AAAA IN */
                                     0,    0,    41,   0x04, 0xd0, 0,   0,   0,   0,   0, 0}; /* OPT, 1232 bytes, no options */
    ok_int(n, sizeof(expect));
    ok(memcmp(q, expect, sizeof(expect)) == 0);
    ok_int(ficus_dns_build_query(q, sizeof(q), 1, "bad..name", FICUS_DNS_TYPE_A), 0);
    ok_int(ficus_dns_build_query(q, 20, 1, "svc.test", FICUS_DNS_TYPE_A), 0);
}

/* a response builder for the tests */
typedef struct st_msg_t {
    uint8_t b[2048];
    size_t len;
} msg_t;

static void put(msg_t *m, const void *p, size_t n)
{
    memcpy(m->b + m->len, p, n);
    m->len += n;
}

static void put16(msg_t *m, unsigned v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(m, b, 2);
}

static void put_name(msg_t *m, const char *wire, size_t n)
{
    put(m, wire, n);
}

static void header(msg_t *m, unsigned id, unsigned flags, unsigned an)
{
    m->len = 0;
    put16(m, id);
    put16(m, flags);
    put16(m, 1);
    put16(m, an);
    put16(m, 0);
    put16(m, 0);
    put_name(m, "\3svc\4test", 10);
    put16(m, FICUS_DNS_TYPE_A);
    put16(m, 1);
}

static void rr_a(msg_t *m, const char *owner, size_t owner_len, const char *ip)
{
    put_name(m, owner, owner_len);
    put16(m, FICUS_DNS_TYPE_A);
    put16(m, 1);
    put16(m, 0);
    put16(m, 60); /* TTL (ignored) */
    put16(m, 4);
    uint8_t a[4];
    inet_pton(AF_INET, ip, a);
    put(m, a, 4);
}

static ficus_dns_result_t parse(const msg_t *m, ficus_dns_addr_t *addrs, size_t *n, int *tc)
{
    return ficus_dns_parse_response(m->b, m->len, 0x1234, "svc.test", FICUS_DNS_TYPE_A, addrs, FICUS_DNS_MAX_ADDRS, n, tc);
}

static int has_ip(const ficus_dns_addr_t *addrs, size_t n, const char *ip)
{
    uint8_t a[4];
    inet_pton(AF_INET, ip, a);
    for (size_t i = 0; i != n; ++i)
        if (addrs[i].family == AF_INET && memcmp(addrs[i].addr, a, 4) == 0)
            return 1;
    return 0;
}

/* two A records, the second owner compressed to the question's name (0xc00c) */
static void good_answer(msg_t *m)
{
    header(m, 0x1234, 0x8180, 2);
    rr_a(m, "\3svc\4test", 10, "127.0.0.2");
    rr_a(m, "\xc0\x0c", 2, "127.0.0.3");
}

FICUS_TEST(answer_with_compression)
{
    msg_t m;
    ficus_dns_addr_t addrs[FICUS_DNS_MAX_ADDRS];
    size_t n;
    int tc;
    good_answer(&m);
    ok_int(parse(&m, addrs, &n, &tc), FICUS_DNS_OK);
    ok_int(n, 2);
    ok(!tc);
    ok(has_ip(addrs, n, "127.0.0.2") && has_ip(addrs, n, "127.0.0.3"));
    /* the same address twice is one */
    header(&m, 0x1234, 0x8180, 2);
    rr_a(&m, "\xc0\x0c", 2, "10.0.0.1");
    rr_a(&m, "\xc0\x0c", 2, "10.0.0.1");
    ok_int(parse(&m, addrs, &n, &tc), FICUS_DNS_OK);
    ok_int(n, 1);
    /* a record of another owner does not count */
    header(&m, 0x1234, 0x8180, 2);
    rr_a(&m, "\5other\4test", 12, "10.9.9.9");
    rr_a(&m, "\xc0\x0c", 2, "10.0.0.1");
    ok_int(parse(&m, addrs, &n, &tc), FICUS_DNS_OK);
    ok_int(n, 1);
    ok(has_ip(addrs, n, "10.0.0.1") && !has_ip(addrs, n, "10.9.9.9"));
    /* NODATA: NOERROR without records */
    header(&m, 0x1234, 0x8180, 0);
    ok_int(parse(&m, addrs, &n, &tc), FICUS_DNS_OK);
    ok_int(n, 0);
}

FICUS_TEST(cname_chain)
{
    msg_t m;
    ficus_dns_addr_t addrs[FICUS_DNS_MAX_ADDRS];
    size_t n;
    int tc;
    header(&m, 0x1234, 0x8180, 3);
    /* the A record first: order does not matter */
    rr_a(&m, "\4real\4test", 11, "192.0.2.7");
    /* svc.test CNAME alias.test ; alias.test CNAME real.test */
    put_name(&m, "\xc0\x0c", 2);
    put16(&m, FICUS_DNS_TYPE_CNAME);
    put16(&m, 1);
    put16(&m, 0);
    put16(&m, 60);
    put16(&m, 8);
    put_name(&m, "\5alias\xc0\x10", 8); /* alias + pointer to "test" */
    put_name(&m, "\5alias\xc0\x10", 8);
    put16(&m, FICUS_DNS_TYPE_CNAME);
    put16(&m, 1);
    put16(&m, 0);
    put16(&m, 60);
    put16(&m, 7);
    put_name(&m, "\4real\xc0\x10", 7);
    ok_int(parse(&m, addrs, &n, &tc), FICUS_DNS_OK);
    ok_int(n, 1);
    ok(has_ip(addrs, n, "192.0.2.7"));
}

FICUS_TEST(rcodes_and_mismatches)
{
    msg_t m;
    ficus_dns_addr_t addrs[FICUS_DNS_MAX_ADDRS];
    size_t n;
    int tc;
    header(&m, 0x1234, 0x8183, 0);
    ok_int(parse(&m, addrs, &n, &tc), FICUS_DNS_NXDOMAIN);
    header(&m, 0x1234, 0x8182, 0);
    ok_int(parse(&m, addrs, &n, &tc), FICUS_DNS_SERVFAIL);
    header(&m, 0x1234, 0x8185, 0);
    ok_int(parse(&m, addrs, &n, &tc), FICUS_DNS_REFUSED);
    header(&m, 0x1234, 0x8184, 0);
    ok_int(parse(&m, addrs, &n, &tc), FICUS_DNS_ERROR);
    good_answer(&m);
    m.b[1] ^= 1; /* another ID */
    ok_int(parse(&m, addrs, &n, &tc), FICUS_DNS_MISMATCH);
    good_answer(&m);
    m.b[2] &= 0x7f; /* a query, not a response */
    ok_int(parse(&m, addrs, &n, &tc), FICUS_DNS_MISMATCH);
    good_answer(&m);
    m.b[13] = 'x'; /* another question */
    ok_int(parse(&m, addrs, &n, &tc), FICUS_DNS_MISMATCH);
    good_answer(&m);
    m.b[13] = 'S'; /* the same name in another case */
    ok_int(parse(&m, addrs, &n, &tc), FICUS_DNS_OK);
    ok_int(ficus_dns_parse_response(m.b, m.len, 0x1234, "svc.test", FICUS_DNS_TYPE_AAAA, addrs, 8, &n, &tc), FICUS_DNS_MISMATCH);
    ok_int(ficus_dns_parse_response(m.b, 5, 0x1234, "svc.test", FICUS_DNS_TYPE_A, addrs, 8, &n, &tc), FICUS_DNS_MISMATCH);
}

FICUS_TEST(truncated_and_malformed)
{
    msg_t m;
    ficus_dns_addr_t addrs[FICUS_DNS_MAX_ADDRS];
    size_t n;
    int tc;
    /* TC set and the second record cut off: the first one is used */
    good_answer(&m);
    m.b[2] |= 0x02;
    m.len -= 3;
    ok_int(parse(&m, addrs, &n, &tc), FICUS_DNS_OK);
    ok(tc);
    ok_int(n, 1);
    /* the same cut without TC is malformed */
    m.b[2] &= ~0x02;
    ok_int(parse(&m, addrs, &n, &tc), FICUS_DNS_MALFORMED);
    /* a pointer to itself, and a pointer forward: never followed */
    header(&m, 0x1234, 0x8180, 1);
    size_t at = m.len;
    put_name(&m, "\xc0\x00", 2);
    m.b[at + 1] = (uint8_t)at;
    put16(&m, 1), put16(&m, 1), put16(&m, 0), put16(&m, 0), put16(&m, 4), put(&m, "\1\2\3\4", 4);
    ok_int(parse(&m, addrs, &n, &tc), FICUS_DNS_MALFORMED);
    m.b[at + 1] = (uint8_t)(at + 10);
    ok_int(parse(&m, addrs, &n, &tc), FICUS_DNS_MALFORMED);
    /* an A record of the wrong length is ignored */
    header(&m, 0x1234, 0x8180, 1);
    put_name(&m, "\xc0\x0c", 2);
    put16(&m, 1), put16(&m, 1), put16(&m, 0), put16(&m, 0), put16(&m, 5), put(&m, "\1\2\3\4\5", 5);
    ok_int(parse(&m, addrs, &n, &tc), FICUS_DNS_OK);
    ok_int(n, 0);
}

FICUS_TEST(prefixes_and_mutations_never_crash)
{
    msg_t m;
    ficus_dns_addr_t addrs[FICUS_DNS_MAX_ADDRS];
    size_t n;
    int tc;
    good_answer(&m);
    for (size_t len = 0; len <= m.len; ++len) {
        ficus_dns_result_t r = ficus_dns_parse_response(m.b, len, 0x1234, "svc.test", FICUS_DNS_TYPE_A, addrs, 8, &n, &tc);
        ok(r == FICUS_DNS_OK || r == FICUS_DNS_MISMATCH || r == FICUS_DNS_MALFORMED);
        ok(n <= 2);
    }
    srandom(42);
    for (int round = 0; round != 20000; ++round) {
        msg_t x = m;
        int flips = 1 + (int)(random() % 4);
        for (int f = 0; f != flips; ++f)
            x.b[random() % x.len] = (uint8_t)random();
        if (round % 3 == 0)
            x.len = (size_t)random() % (x.len + 1);
        ficus_dns_parse_response(x.b, x.len, 0x1234, "svc.test", FICUS_DNS_TYPE_A, addrs, 8, &n, &tc);
        ok(n <= 8);
    }
    uint8_t junk[512];
    for (int round = 0; round != 5000; ++round) {
        size_t len = (size_t)random() % sizeof(junk);
        for (size_t i = 0; i != len; ++i)
            junk[i] = (uint8_t)random();
        if (len > 12)
            junk[0] = 0x12, junk[1] = 0x34, junk[2] |= 0x80, junk[4] = 0, junk[5] = 1;
        ficus_dns_parse_response(junk, len, 0x1234, "svc.test", FICUS_DNS_TYPE_A, addrs, 8, &n, &tc);
        ok(n <= 8);
    }
}

FICUS_TEST(hosts_file)
{
    static const char text[] = "# comment line\n"
                               "127.0.0.1\tlocalhost\n"
                               "127.0.0.2   svc.test other # the first address\n"
                               "  127.0.0.3 SVC.test.\n"
                               "127.0.0.2 svc.test\n" /* the same address again: once */
                               "::1 localhost ip6-localhost\n"
                               "fe80::1%eth0 svc.test\n"   /* scoped: skipped */
                               "not-an-address svc.test\n" /* skipped */
                               "#127.0.0.9 svc.test\n"     /* commented out */
                               "10.1.1.1 xsvc.test svc.testx\n"
                               "2001:db8::5 svc.test"; /* no newline at the end */
    ficus_dns_addr_t out[8];
    size_t n = ficus_hosts_lookup(text, strlen(text), "svc.test", 1, out, 8);
    ok_int(n, 3);
    ok(has_ip(out, n, "127.0.0.2") && has_ip(out, n, "127.0.0.3"));
    ok(out[2].family == AF_INET6);
    ok_int(ficus_hosts_lookup(text, strlen(text), "svc.test", 0, out, 8), 2);
    ok_int(ficus_hosts_lookup(text, strlen(text), "localhost", 1, out, 8), 2);
    ok_int(ficus_hosts_lookup(text, strlen(text), "ip6-localhost", 0, out, 8), 0);
    ok_int(ficus_hosts_lookup(text, strlen(text), "nothere.test", 1, out, 8), 0);
    ok_int(ficus_hosts_lookup(text, strlen(text), "svc.test", 1, out, 1), 1); /* bounded */
    ok_int(ficus_hosts_lookup("", 0, "svc.test", 1, out, 8), 0);
}

FICUS_TEST(sort_and_format)
{
    ficus_dns_addr_t a[3] = {{AF_INET6, {0}}, {AF_INET, {10, 0, 0, 2}}, {AF_INET, {10, 0, 0, 1}}};
    a[0].addr[15] = 1;
    ficus_dns_addrs_sort(a, 3);
    char buf[64], ip[48];
    ficus_dns_addr_format(&a[0], 80, buf, sizeof(buf), ip, sizeof(ip));
    ok_str(buf, "10.0.0.1:80");
    ok_str(ip, "10.0.0.1");
    ficus_dns_addr_format(&a[2], 9000, buf, sizeof(buf), NULL, 0);
    ok_str(buf, "[::1]:9000");
}
