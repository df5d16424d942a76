/* Reading request cookies (see ficus/cookie.h). */
#include <string.h>
#include "ficus/cookie.h"

int ficus_cookie_next_pair(const char **p, const char *end, h2o_iovec_t *pair)
{
    while (*p < end && (**p == ' ' || **p == ';'))
        ++*p;
    if (*p == end)
        return 0;
    const char *start = *p;
    while (*p < end && **p != ';')
        ++*p;
    *pair = h2o_iovec_init(start, *p - start);
    return 1;
}

int ficus_cookie_pair_is(h2o_iovec_t pair, const char *name, size_t name_len)
{
    return pair.len > name_len && memcmp(pair.base, name, name_len) == 0 && pair.base[name_len] == '=';
}

h2o_iovec_t ficus_cookie_get(const h2o_req_t *req, const char *name, size_t name_len)
{
    for (ssize_t j = -1; (j = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, j)) != -1;) {
        h2o_iovec_t v = req->headers.entries[j].value, pair;
        for (const char *p = v.base, *end = v.base + v.len; ficus_cookie_next_pair(&p, end, &pair);)
            if (ficus_cookie_pair_is(pair, name, name_len))
                return h2o_iovec_init(pair.base + name_len + 1, pair.len - name_len - 1);
    }
    return h2o_iovec_init(NULL, 0);
}
