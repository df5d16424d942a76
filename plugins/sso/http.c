/* sso: the HTTP pieces every flow of the plugin shares: form and URL encoding (RFC 3986), reading and setting ficus's
 * cookies (Secure; HttpOnly; SameSite=Lax; Path=/), the no-store redirects and the sign-in error page, random tokens,
 * and the provider's endpoints (configured overrides, else the worker's copy of the discovery document). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>
#include "ficus/cookie.h"
#include "ficus/log.h"
#include "ficus/worker.h"
#include "sso.h"

char *sso_xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        ficus_fatal("no memory");
    return p;
}

double sso_unix_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec / 1e6;
}

char *sso_random_token(size_t bytes)
{
    uint8_t raw[64];
    if (bytes > sizeof(raw) || RAND_bytes(raw, (int)bytes) != 1) {
        /* the caller answers 500 sso_internal_error (counted in ficus_requests_total as a 5xx) */
        ficus_error("sso: the system's random generator gave no %zu bytes (RAND_bytes failed); this sign-in gets a 500", bytes);
        return NULL;
    }
    char *out = malloc(bytes * 4 / 3 + 4);
    if (out == NULL)
        ficus_fatal("no memory");
    out[ficus_base64url_encode(raw, bytes, out)] = '\0';
    return out;
}

/* percent-encodes everything but unreserved characters (RFC 3986 2.3) */
void sso_url_encode(FILE *fp, const char *s)
{
    for (; *s != '\0'; ++s) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
            fputc(c, fp);
        else
            fprintf(fp, "%%%02X", c);
    }
}

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
}

/* Finds param `name` in an x-www-form-urlencoded string and returns its decoded value (malloc'd) or NULL. */
char *sso_form_param(const char *s, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = s, *end = s + len;
    while (p < end) {
        const char *amp = memchr(p, '&', end - p), *stop = amp != NULL ? amp : end;
        if ((size_t)(stop - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
            const char *v = p + nlen + 1;
            char *out = malloc(stop - v + 1);
            size_t o = 0;
            if (out == NULL)
                return NULL;
            for (; v < stop; ++v) {
                if (*v == '+') {
                    out[o++] = ' ';
                } else if (*v == '%' && v + 2 < stop && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                    out[o++] = (char)(hexval(v[1]) << 4 | hexval(v[2]));
                    v += 2;
                } else {
                    out[o++] = *v;
                }
            }
            out[o] = '\0';
            return out;
        }
        p = stop + 1;
    }
    return NULL;
}

h2o_iovec_t sso_get_cookie(h2o_req_t *req, const char *name)
{
    return ficus_cookie_get(req, name, strlen(name));
}

void sso_add_set_cookie(ficus_req_t *r, const char *name, const char *value, long max_age)
{
    h2o_req_t *req = r->h2o;
    char *buf;
    size_t len;
    FILE *fp = open_memstream(&buf, &len);
    fprintf(fp, "%s=%s; Path=/; Secure; HttpOnly; SameSite=Lax", name, value);
    if (max_age >= 0)
        fprintf(fp, "; Max-Age=%ld", max_age);
    fclose(fp);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, h2o_strdup(&req->pool, buf, len).base, len);
    free(buf);
}

ficus_status_t sso_respond_html(ficus_req_t *r, int status, const char *code, const char *message)
{
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign-in</title></head>"
                     "<body><h1>Sign-in</h1><p>%s</p><p><a href=\"/\">Try again</a></p></body></html>\n",
                     message);
    h2o_add_header(&r->h2o->pool, &r->h2o->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    if (r->error == NULL)
        r->error = code;
    ficus_req_respond(r, status, "text/html; charset=utf-8", h2o_iovec_init(body, n));
    return FICUS_RESPONDED;
}

ficus_status_t sso_redirect(ficus_req_t *r, const char *location)
{
    h2o_req_t *req = r->h2o;
    size_t len = strlen(location);
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, h2o_strdup(&req->pool, location, len).base, len, 1);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    ficus_req_respond(r, 302, NULL, h2o_iovec_init("", 0));
    return FICUS_RESPONDED;
}

const char *sso_endpoint(const sso_global_t *g, ficus_req_t *r, int which)
{
    const char *override = which == 0 ? g->authorization_endpoint : which == 1 ? g->token_endpoint : g->end_session_endpoint;
    if (override != NULL)
        return override;
    ficus_provider_meta_t *meta = g->provider->rt->slots[r->worker->index].meta;
    if (meta == NULL)
        return NULL;
    return which == 0 ? meta->authorization_endpoint : which == 1 ? meta->token_endpoint : meta->end_session_endpoint;
}
