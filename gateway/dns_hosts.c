/* Looking a name up in the text of a hosts file (hosts(5)), for upstream service discovery (ficus/dns.h).
 *
 * FORMAT: per line an IP address, then one or more names separated by blanks; '#' to the end of the line is a comment;
 * names match case-insensitively, a trailing dot ignored. As glibc with `multi on` (Debian's /etc/host.conf), every
 * line naming the host contributes its address, so a name can have several. Lines whose first field is not an IPv4
 * or IPv6 address are skipped; so are scoped IPv6 addresses (fe80::1%eth0: an upstream endpoint has no interface).
 * BOUNDS: one pass over the text; a field longer than 255 bytes is skipped. The file is read by gateway/resolver.c
 * (at most FICUS_RESOLVER_MAX_HOSTS_FILE bytes) on the control thread. */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include "ficus/dns.h"

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static int name_equals(const char *field, size_t flen, const char *name, size_t nlen)
{
    if (flen != 0 && field[flen - 1] == '.')
        --flen;
    return flen == nlen && strncasecmp(field, name, nlen) == 0;
}

size_t ficus_hosts_lookup(const char *text, size_t len, const char *name, int want_ipv6, ficus_dns_addr_t *out, size_t max)
{
    size_t nlen = strlen(name), n = 0;
    if (nlen != 0 && name[nlen - 1] == '.')
        --nlen;
    if (nlen == 0)
        return 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl != NULL ? (size_t)(nl - text) : len;
        const char *hash = memchr(text + pos, '#', end - pos);
        size_t line_end = hash != NULL ? (size_t)(hash - text) : end;
        /* fields of this line */
        ficus_dns_addr_t addr;
        int have_addr = 0, first = 1;
        for (size_t p = pos; p < line_end;) {
            while (p < line_end && is_blank(text[p]))
                ++p;
            size_t start = p;
            while (p < line_end && !is_blank(text[p]))
                ++p;
            size_t flen = p - start;
            if (flen == 0)
                break;
            if (first) {
                first = 0;
                char buf[64];
                if (flen >= sizeof(buf))
                    break;
                memcpy(buf, text + start, flen);
                buf[flen] = '\0';
                memset(&addr, 0, sizeof(addr));
                if (inet_pton(AF_INET, buf, addr.addr) == 1)
                    addr.family = AF_INET;
                else if (want_ipv6 && inet_pton(AF_INET6, buf, addr.addr) == 1)
                    addr.family = AF_INET6;
                else
                    break; /* not an address (or a scoped one, or IPv6 unwanted): skip the line */
                have_addr = 1;
                continue;
            }
            if (have_addr && flen <= 255 && name_equals(text + start, flen, name, nlen)) {
                int dup = 0;
                for (size_t i = 0; i != n && !dup; ++i)
                    dup = out[i].family == addr.family && memcmp(out[i].addr, addr.addr, 16) == 0;
                if (!dup && n != max)
                    out[n++] = addr;
                break; /* one address per line */
            }
        }
        pos = end + 1;
    }
    return n;
}
