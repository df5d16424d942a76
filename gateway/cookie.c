/* Reading request cookies (see ficus/cookie.h). */
#include <string.h>
#include "ficus/cookie.h"

h2o_iovec_t ficus_cookie_get(const h2o_req_t *req, const char *name, size_t name_len)
{
    for (ssize_t j = -1; (j = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, j)) != -1;) {
        h2o_iovec_t v = req->headers.entries[j].value;
        const char *p = v.base, *end = v.base + v.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                ++p;
            const char *pair = p;
            while (p < end && *p != ';')
                ++p;
            if ((size_t)(p - pair) > name_len && memcmp(pair, name, name_len) == 0 && pair[name_len] == '=')
                return h2o_iovec_init(pair + name_len + 1, p - pair - name_len - 1);
        }
    }
    return h2o_iovec_init(NULL, 0);
}
