/* Raw HTTP/1.1 request head checks (see ficus/h1_head.h).
 *
 * OWNS: counting Host / Content-Length / Transfer-Encoding fields and spotting obs-fold in the bytes the client sent.
 * BOUNDS: one pass over at most `len` bytes; stops at the empty line that ends the head. */
#include <string.h>
#include "ficus/h1_head.h"

static int name_is(const char *s, size_t len, const char *lc)
{
    size_t n = strlen(lc);
    if (len != n)
        return 0;
    for (size_t i = 0; i != n; ++i)
        if ((s[i] >= 'A' && s[i] <= 'Z' ? s[i] | 0x20 : s[i]) != lc[i])
            return 0;
    return 1;
}

static void trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t'))
        ++*s;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
        --*e;
}

/* every comma-separated member of a Content-Length value must equal `first` (set from the first member seen) */
static int cl_consistent(const char *s, const char *e, const char **first, size_t *first_len)
{
    while (s <= e) {
        const char *comma = memchr(s, ',', e - s), *me = comma != NULL ? comma : e, *ms = s;
        trim(&ms, &me);
        if (*first == NULL) {
            *first = ms;
            *first_len = me - ms;
        } else if ((size_t)(me - ms) != *first_len || memcmp(ms, *first, *first_len) != 0) {
            return 0;
        }
        if (comma == NULL)
            break;
        s = comma + 1;
    }
    return 1;
}

ficus_h1_head_result_t ficus_h1_head_check(const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len, *nl;
    if ((nl = memchr(p, '\n', end - p)) == NULL)
        return FICUS_H1_HEAD_INCOMPLETE;
    p = nl + 1; /* the request line */
    size_t hosts = 0, cls = 0, tes = 0, first_len = 0;
    const char *first = NULL;
    int conflict = 0;
    for (;;) {
        if ((nl = memchr(p, '\n', end - p)) == NULL)
            return FICUS_H1_HEAD_INCOMPLETE;
        const char *le = nl;
        if (le > p && le[-1] == '\r')
            --le;
        if (le == p)
            break; /* the empty line: end of the head */
        if (*p == ' ' || *p == '\t')
            return FICUS_H1_HEAD_OBS_FOLD;
        const char *colon = memchr(p, ':', le - p);
        if (colon != NULL) {
            const char *v = colon + 1, *ve = le;
            trim(&v, &ve);
            if (name_is(p, colon - p, "host"))
                ++hosts;
            else if (name_is(p, colon - p, "transfer-encoding"))
                ++tes;
            else if (name_is(p, colon - p, "content-length") && (++cls, !cl_consistent(v, ve, &first, &first_len)))
                conflict = 1;
        }
        p = nl + 1;
    }
    if (hosts > 1)
        return FICUS_H1_HEAD_DUPLICATE_HOST;
    if (tes != 0 && cls != 0)
        return FICUS_H1_HEAD_CL_AND_TE;
    if (conflict)
        return FICUS_H1_HEAD_CL_CONFLICT;
    if (tes > 1)
        return FICUS_H1_HEAD_TE_REPEATED;
    return FICUS_H1_HEAD_OK;
}

const char *ficus_h1_head_error_code(ficus_h1_head_result_t result)
{
    switch (result) {
    case FICUS_H1_HEAD_DUPLICATE_HOST:
        return "duplicate_host";
    case FICUS_H1_HEAD_OBS_FOLD:
        return "bad_header_obs_fold";
    case FICUS_H1_HEAD_CL_AND_TE:
    case FICUS_H1_HEAD_CL_CONFLICT:
    case FICUS_H1_HEAD_TE_REPEATED:
        return "bad_framing";
    case FICUS_H1_HEAD_OK:
    case FICUS_H1_HEAD_INCOMPLETE:
        break;
    }
    return "bad_request";
}
