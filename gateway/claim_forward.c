/* Identity claims → upstream request headers (see ficus/claim_forward.h).
 *
 * OWNS: the `forward: { claim: header }` mapping of the jwt and sso plugins — validating and registering the header
 * names at config load (which names may carry a claim at all), formatting a claim value for a header, and adding the
 * headers to a request. What else a plugin does with the request (Authorization, tokens, cookies) stays in the plugin.
 * THREADS: loading runs on the control thread; formatting and applying only read the immutable rules and the claims,
 * from any worker. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/claim_forward.h"
#include "ficus/config.h"
#include "ficus/log.h"

/* ---- configuration ---- */

/* Names that must not carry a claim: lowercase; a trailing '*' matches any suffix. */
static const struct {
    const char *name;
    const char *why;
} refused_headers[] = {
    {"authorization", "a credential"},
    {"proxy-authorization", "a credential"},
    {"cookie", "a credential"},
    {"host", "routing"},
    {"connection", "hop-by-hop"},
    {"keep-alive", "hop-by-hop"},
    {"proxy-connection", "hop-by-hop"},
    {"te", "hop-by-hop"},
    {"trailer", "hop-by-hop"},
    {"transfer-encoding", "message framing"},
    {"upgrade", "hop-by-hop"},
    {"http2-settings", "hop-by-hop"},
    {"content-length", "message framing"},
    {"expect", "message framing"},
    {"forwarded", "proxy information"},
    {"x-real-ip", "set by ficus's proxy"},
    {"x-forwarded-*", "set by ficus's proxy"},
    {"x-request-id", "set by ficus's proxy"},
};

static const char *refused_reason(const char *lc, size_t len)
{
    for (size_t i = 0; i != sizeof(refused_headers) / sizeof(refused_headers[0]); ++i) {
        const char *n = refused_headers[i].name;
        size_t nlen = strlen(n);
        if (n[nlen - 1] == '*' ? len >= nlen - 1 && memcmp(lc, n, nlen - 1) == 0 : len == nlen && memcmp(lc, n, nlen) == 0)
            return refused_headers[i].why;
    }
    return NULL;
}

static int is_tchar(unsigned char c)
{
    return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int ficus_claim_forwards_load(ficus_conf_ctx_t *cc, const ficus_node_t *mapping, ficus_claim_forwards_t *out)
{
    memset(out, 0, sizeof(*out));
    if (ficus_conf_expect(cc, mapping, FICUS_NODE_MAPPING) != 0)
        return -1;
    if ((out->rules = calloc(mapping->data.mapping.size + 1, sizeof(*out->rules))) == NULL)
        ficus_fatal("no memory");
    for (size_t i = 0; i != mapping->data.mapping.size; ++i) {
        const ficus_node_t *k = mapping->data.mapping.keys[i], *v = mapping->data.mapping.values[i];
        if (k->data.scalar.len == 0)
            return ficus_conf_error(cc, k, "a claim name must not be empty");
        if (ficus_conf_expect(cc, v, FICUS_NODE_SCALAR) != 0)
            return -1;
        const char *name = v->data.scalar.value;
        size_t len = v->data.scalar.len;
        if (len == 0 || strlen(name) != len)
            return ficus_conf_error(cc, v, "invalid header name '%s'", name);
        for (size_t j = 0; j != len; ++j)
            if (!is_tchar((unsigned char)name[j]))
                return ficus_conf_error(cc, v, "invalid header name '%s' (letters, digits and !#$%%&'*+-.^_`|~ only)", name);
        if (memchr(name, '_', len) != NULL)
            return ficus_conf_error(cc, v, "header '%s' has a '_': CGI, WSGI and PHP read it as '-' (a look-alike); use '-'", name);
        h2o_iovec_t lc = h2o_strdup(NULL, name, len);
        for (size_t j = 0; j != len; ++j)
            lc.base[j] = tolower((unsigned char)lc.base[j]);
        const char *why;
        if ((why = refused_reason(lc.base, lc.len)) != NULL) {
            free(lc.base);
            return ficus_conf_error(cc, v, "header '%s' cannot carry a claim (%s)", name, why);
        }
        for (size_t j = 0; j != out->num; ++j) {
            if (h2o_memis(out->rules[j].header.base, out->rules[j].header.len, lc.base, lc.len)) {
                free(lc.base);
                return ficus_conf_error(cc, v, "header '%s' already carries claim '%s'", name, out->rules[j].claim);
            }
        }
        ficus_claim_forward_t *rule = out->rules + out->num++;
        rule->header = lc;
        if ((rule->claim = strdup(k->data.scalar.value)) == NULL)
            ficus_fatal("no memory");
        /* every route strips client-sent copies of this header, authenticated or not */
        if (cc->config != NULL)
            ficus_config_add_identity_header(cc->config, rule->header.base);
    }
    return 0;
}

void ficus_claim_forwards_dispose(ficus_claim_forwards_t *f)
{
    for (size_t i = 0; i != f->num; ++i) {
        free(f->rules[i].claim);
        free(f->rules[i].header.base);
    }
    free(f->rules);
    f->rules = NULL;
    f->num = 0;
}

/* ---- values ---- */

static int is_header_safe(const char *s, size_t len)
{
    for (size_t i = 0; i != len; ++i)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

/* An array of strings none of which contains ',' (an empty array too) is joined with ","; else JSON. */
static int is_joinable(const json_t *v)
{
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e) || memchr(json_string_value(e), ',', json_string_length(e)) != NULL)
            return 0;
    }
    return 1;
}

size_t ficus_claim_value_format(const json_t *v, char *buf, size_t cap)
{
    size_t len = 0;
    if (v == NULL || json_is_null(v) || cap == 0)
        return 0;
    if (json_is_string(v)) {
        if ((len = json_string_length(v)) >= cap)
            return 0;
        memcpy(buf, json_string_value(v), len);
    } else if (json_is_array(v) && is_joinable(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            size_t elen = json_string_length(e);
            if (len + (i != 0) + elen >= cap)
                return 0;
            if (i != 0)
                buf[len++] = ',';
            memcpy(buf + len, json_string_value(e), elen);
            len += elen;
        }
    } else if (json_is_integer(v)) {
        int n = snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        if (n < 0 || (size_t)n >= cap)
            return 0;
        len = n;
    } else if (json_is_boolean(v)) {
        const char *s = json_is_true(v) ? "true" : "false";
        if ((len = strlen(s)) >= cap)
            return 0;
        memcpy(buf, s, len);
    } else {
        /* reals, objects, arrays of anything else: compact JSON (escapes control characters; DEL is checked below) */
        if ((len = json_dumpb(v, buf, cap, JSON_COMPACT | JSON_ENCODE_ANY)) == 0 || len >= cap)
            return 0;
    }
    if (!is_header_safe(buf, len)) /* never a CR/LF into a header; raw strings (also joined ones) are checked here */
        return 0;
    buf[len] = '\0';
    return len;
}

void ficus_claim_forwards_apply(const ficus_claim_forwards_t *f, ficus_req_t *r, const json_t *claims)
{
    h2o_req_t *req = r->h2o;
    char buf[FICUS_CLAIM_VALUE_MAX + 1];
    for (size_t i = 0; i != f->num; ++i) {
        size_t len = ficus_claim_value_format(json_object_get(claims, f->rules[i].claim), buf, sizeof(buf));
        if (len == 0)
            continue;
        h2o_add_header_by_str(&req->pool, &req->headers, f->rules[i].header.base, f->rules[i].header.len, 1, NULL,
                              h2o_strdup(&req->pool, buf, len).base, len);
    }
}
