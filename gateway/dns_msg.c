/* DNS messages (RFC 1035 4, RFC 6891 EDNS0): building A/AAAA queries and parsing their answers (ficus/dns.h).
 *
 * WHAT IS CHECKED: a response must echo our ID, have QR set, opcode QUERY, exactly one question equal to ours
 * (name case-insensitively, type, class IN); anything else is MISMATCH and the client keeps waiting (an off-path
 * spoofer must guess the ID and the source port, RFC 5452). Then the RCODE; then the answer section's records.
 * NAMES: decoded label by label into presentation form (lowercase); compression pointers (RFC 1035 4.1.4) must point
 * strictly before the label that uses them, so a name can never loop, and a decoded name is at most 255 bytes.
 * CNAME: the owners accepted are the question's name and, transitively, the targets of CNAME records of accepted
 * owners (at most 8 steps); only A/AAAA records of accepted owners count. TTLs are ignored: names are refreshed
 * every `dns_refresh` (gateway/resolver.c).
 * BOUNDS: at most FICUS_DNS_MAX_RECORDS answer records are looked at; every read is checked against the length. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include "ficus/dns.h"

#define FICUS_DNS_MAX_RECORDS 256
#define MAX_CNAME_STEPS 8

const char *const ficus_dns_result_names[FICUS_DNS__COUNT] = {"ok",        "nxdomain", "servfail", "refused",   "error",
                                                              "malformed", "mismatch", "timeout",  "truncated", "send_error"};

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

int ficus_dns_name_valid(const char *name)
{
    size_t len = strlen(name), label = 0;
    int has_alpha = 0;
    if (len != 0 && name[len - 1] == '.')
        --len;
    if (len == 0 || len > FICUS_DNS_MAX_NAME)
        return 0;
    for (size_t i = 0; i != len; ++i) {
        int c = (unsigned char)name[i];
        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
        if (!(c >= '0' && c <= '9'))
            has_alpha = 1;
        if (++label > 63)
            return 0;
    }
    return label != 0 && has_alpha; /* all digits and dots: an IPv4 literal or garbage, never a name */
}

/* name (valid) in wire form into p; returns the bytes written */
static size_t encode_name(uint8_t *p, const char *name)
{
    size_t len = strlen(name), o = 0;
    if (len != 0 && name[len - 1] == '.')
        --len;
    for (size_t start = 0; start < len;) {
        const char *dot = memchr(name + start, '.', len - start);
        size_t end = dot != NULL ? (size_t)(dot - name) : len;
        p[o++] = (uint8_t)(end - start);
        for (size_t i = start; i != end; ++i)
            p[o++] = (uint8_t)lower((unsigned char)name[i]);
        start = end + 1;
    }
    p[o++] = 0;
    return o;
}

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static unsigned get16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

size_t ficus_dns_build_query(uint8_t *buf, size_t cap, uint16_t id, const char *name, uint16_t qtype)
{
    if (!ficus_dns_name_valid(name) || cap < FICUS_DNS_MAX_QUERY)
        return 0;
    memset(buf, 0, 12);
    put16(buf, id);
    buf[2] = 0x01;      /* RD */
    put16(buf + 4, 1);  /* QDCOUNT */
    put16(buf + 10, 1); /* ARCOUNT: the OPT record */
    size_t o = 12 + encode_name(buf + 12, name);
    put16(buf + o, qtype);
    put16(buf + o + 2, 1); /* IN */
    o += 4;
    /* OPT (RFC 6891 6.1.2): root owner, type 41, class = UDP payload size, TTL 0 (no DO), no options */
    buf[o] = 0;
    put16(buf + o + 1, 41);
    put16(buf + o + 3, FICUS_DNS_UDP_PAYLOAD);
    memset(buf + o + 5, 0, 6);
    return o + 11;
}

/* Decodes the name at *off into out (lowercase, dotted, no trailing dot; "" for the root), at least 256 bytes.
 * Advances *off past the name as it appears at *off (a pointer counts 2 bytes). 0, or -1 when malformed. */
static int decode_name(const uint8_t *msg, size_t len, size_t *off, char *out)
{
    size_t pos = *off, o = 0, end = 0;
    int jumped = 0;
    size_t limit = pos; /* a pointer must point before the label that holds it */
    for (;;) {
        if (pos >= len)
            return -1;
        unsigned c = msg[pos];
        if ((c & 0xc0) == 0xc0) {
            if (pos + 1 >= len)
                return -1;
            size_t target = (c & 0x3f) << 8 | msg[pos + 1];
            if (target >= limit)
                return -1;
            if (!jumped)
                end = pos + 2;
            jumped = 1;
            pos = limit = target;
            continue;
        }
        if ((c & 0xc0) != 0)
            return -1; /* the extended label types (RFC 6891 obsoleted them) */
        if (c == 0) {
            if (!jumped)
                end = pos + 1;
            break;
        }
        if (pos + 1 + c > len || o + c + 1 > 255)
            return -1;
        if (o != 0)
            out[o++] = '.';
        for (unsigned i = 0; i != c; ++i)
            out[o++] = (char)lower(msg[pos + 1 + i]);
        pos += 1 + c;
        if (!jumped)
            limit = pos;
    }
    out[o] = '\0';
    *off = end;
    return 0;
}

/* lowercase, without a trailing dot, into out (256 bytes) */
static void normalize(const char *name, char *out)
{
    size_t len = strlen(name);
    if (len != 0 && name[len - 1] == '.')
        --len;
    if (len > 255)
        len = 255;
    for (size_t i = 0; i != len; ++i)
        out[i] = (char)lower((unsigned char)name[i]);
    out[len] = '\0';
}

typedef struct st_record_t {
    size_t owner; /* offset of the owner name */
    unsigned type, klass;
    size_t rdata, rdlen;
} record_t;

static int add_addr(ficus_dns_addr_t *addrs, size_t max, size_t *n, int family, const uint8_t *bytes, size_t blen)
{
    for (size_t i = 0; i != *n; ++i)
        if (addrs[i].family == family && memcmp(addrs[i].addr, bytes, blen) == 0)
            return 0;
    if (*n == max)
        return 0;
    memset(&addrs[*n], 0, sizeof(addrs[*n]));
    addrs[*n].family = family;
    memcpy(addrs[*n].addr, bytes, blen);
    ++*n;
    return 1;
}

ficus_dns_result_t ficus_dns_parse_response(const uint8_t *msg, size_t len, uint16_t id, const char *name, uint16_t qtype,
                                            ficus_dns_addr_t *addrs, size_t max, size_t *n, int *truncated)
{
    record_t records[FICUS_DNS_MAX_RECORDS]; /* 8 KiB */
    char qname[256], decoded[256];
    *n = 0;
    *truncated = 0;
    if (len < 12)
        return FICUS_DNS_MISMATCH;
    unsigned flags = get16(msg + 2);
    if (get16(msg) != id || (flags & 0x8000) == 0 || ((flags >> 11) & 0xf) != 0 || get16(msg + 4) != 1)
        return FICUS_DNS_MISMATCH;
    normalize(name, qname);
    size_t off = 12;
    if (decode_name(msg, len, &off, decoded) != 0 || off + 4 > len)
        return FICUS_DNS_MISMATCH;
    if (strcmp(decoded, qname) != 0 || get16(msg + off) != qtype || get16(msg + off + 2) != 1)
        return FICUS_DNS_MISMATCH;
    off += 4;
    *truncated = (flags & 0x0200) != 0;
    switch (flags & 0xf) {
    case 0:
        break;
    case 2:
        return FICUS_DNS_SERVFAIL;
    case 3:
        return FICUS_DNS_NXDOMAIN;
    case 5:
        return FICUS_DNS_REFUSED;
    default:
        return FICUS_DNS_ERROR;
    }
    unsigned ancount = get16(msg + 6);
    size_t nrec = 0;
    for (unsigned i = 0; i != ancount && nrec != FICUS_DNS_MAX_RECORDS; ++i) {
        record_t r;
        r.owner = off;
        if (decode_name(msg, len, &off, decoded) != 0 || off + 10 > len) {
            if (*truncated)
                break; /* the last record was cut off: use the complete ones */
            return FICUS_DNS_MALFORMED;
        }
        r.type = get16(msg + off);
        r.klass = get16(msg + off + 2);
        r.rdlen = get16(msg + off + 8);
        r.rdata = off + 10;
        if (r.rdata + r.rdlen > len) {
            if (*truncated)
                break;
            return FICUS_DNS_MALFORMED;
        }
        off = r.rdata + r.rdlen;
        records[nrec++] = r;
    }

    /* the owners whose records answer the question: qname and its CNAME chain */
    char accepted[MAX_CNAME_STEPS + 1][256];
    size_t num_accepted = 1;
    memcpy(accepted[0], qname, sizeof(qname));
    for (size_t step = 0; step != MAX_CNAME_STEPS && num_accepted != MAX_CNAME_STEPS + 1; ++step) {
        size_t before = num_accepted;
        for (size_t i = 0; i != nrec && num_accepted != MAX_CNAME_STEPS + 1; ++i) {
            if (records[i].type != FICUS_DNS_TYPE_CNAME || records[i].klass != 1)
                continue;
            size_t o = records[i].owner, t = records[i].rdata;
            char target[256];
            if (decode_name(msg, len, &o, decoded) != 0 || decode_name(msg, records[i].rdata + records[i].rdlen, &t, target) != 0)
                return FICUS_DNS_MALFORMED; /* no address was added yet */
            int owner_ok = 0, known = 0;
            for (size_t k = 0; k != num_accepted; ++k) {
                owner_ok |= strcmp(accepted[k], decoded) == 0;
                known |= strcmp(accepted[k], target) == 0;
            }
            if (owner_ok && !known)
                memcpy(accepted[num_accepted++], target, sizeof(target));
        }
        if (num_accepted == before)
            break;
    }
    for (size_t i = 0; i != nrec; ++i) {
        const record_t *r = records + i;
        if (r->type != qtype || r->klass != 1 || r->rdlen != (qtype == FICUS_DNS_TYPE_A ? 4u : 16u))
            continue;
        size_t o = r->owner;
        if (decode_name(msg, len, &o, decoded) != 0) {
            *n = 0;
            return FICUS_DNS_MALFORMED;
        }
        int owner_ok = 0;
        for (size_t k = 0; k != num_accepted && !owner_ok; ++k)
            owner_ok = strcmp(accepted[k], decoded) == 0;
        if (owner_ok)
            add_addr(addrs, max, n, qtype == FICUS_DNS_TYPE_A ? AF_INET : AF_INET6, msg + r->rdata, r->rdlen);
    }
    return FICUS_DNS_OK;
}

static int addr_cmp(const ficus_dns_addr_t *a, const ficus_dns_addr_t *b)
{
    if (a->family != b->family)
        return a->family == AF_INET ? -1 : 1;
    return memcmp(a->addr, b->addr, 16);
}

void ficus_dns_addrs_sort(ficus_dns_addr_t *addrs, size_t n)
{
    /* insertion sort: n <= FICUS_DNS_MAX_ADDRS, usually a handful */
    for (size_t i = 1; i < n; ++i) {
        ficus_dns_addr_t t = addrs[i];
        size_t j = i;
        for (; j != 0 && addr_cmp(&addrs[j - 1], &t) > 0; --j)
            addrs[j] = addrs[j - 1];
        addrs[j] = t;
    }
}

void ficus_dns_addr_format(const ficus_dns_addr_t *a, uint16_t port, char *buf, size_t cap, char *ip, size_t ipcap)
{
    char s[INET6_ADDRSTRLEN];
    if (inet_ntop(a->family, a->addr, s, sizeof(s)) == NULL)
        snprintf(s, sizeof(s), "?");
    snprintf(buf, cap, a->family == AF_INET6 ? "[%s]:%u" : "%s:%u", s, (unsigned)port);
    if (ip != NULL)
        snprintf(ip, ipcap, "%s", s);
}
