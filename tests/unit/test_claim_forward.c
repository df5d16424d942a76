/* Unit tests of gateway/claim_forward.c: how a claim value becomes a header value (ficus_claim_value_format: strings,
 * numbers, booleans, joined string arrays, compact JSON, and every reason not to forward), the headers it adds to a
 * request, and the `forward:` loader — through a full (dry-run) configuration with a jwt route (conf_helpers.h), so that
 * each refused header name is reported at the right "file:line:", and the accepted names are registered as identity
 * headers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ficus/claim_forward.h"
#include "conf_helpers.h"

/* ---- ficus_claim_value_format ---- */

static char out[FICUS_CLAIM_VALUE_MAX + 1];

/* Formats the JSON text `json` (any value) and returns the header value, or NULL when it is not forwarded. */
static const char *fmt(const char *json)
{
    json_error_t jerr;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &jerr);
    if (!ok(v != NULL)) {
        printf("#     bad test JSON %s: %s\n", json, jerr.text);
        return "(bad test JSON)";
    }
    memset(out, 'X', sizeof(out));
    size_t n = ficus_claim_value_format(v, out, sizeof(out));
    json_decref(v);
    if (n == 0)
        return NULL;
    ok(n < sizeof(out) && out[n] == '\0' && strlen(out) == n);
    return out;
}

#define forwards(json, want) ok_str(fmt(json), (want))
#define not_forwarded(json) ok(fmt(json) == NULL)

FICUS_TEST(format_scalars)
{
    forwards("\"alice\"", "alice");
    forwards("\"Alice Example <a@b.c>\"", "Alice Example <a@b.c>");
    forwards("\"caf\\u00e9\"", "caf\xc3\xa9"); /* UTF-8 as is */
    forwards("42", "42");
    forwards("-9007199254740993", "-9007199254740993");
    forwards("true", "true");
    forwards("false", "false");
    forwards("1.5", "1.5");
}

FICUS_TEST(format_arrays)
{
    forwards("[\"staff\",\"admins\"]", "staff,admins");
    forwards("[\"one\"]", "one");
    forwards("[\"a b\",\"c\"]", "a b,c");
    /* an element with a comma would be ambiguous once joined: the whole array goes as JSON */
    forwards("[\"a,b\",\"c\"]", "[\"a,b\",\"c\"]");
    /* not only strings: JSON */
    forwards("[\"a\",1]", "[\"a\",1]");
    forwards("[[\"a\"]]", "[[\"a\"]]");
    not_forwarded("[]"); /* nothing to say */
}

FICUS_TEST(format_objects)
{
    forwards("{\"tenant\": \"acme\", \"roles\": [\"r1\", \"r2\"], \"n\": null}",
             "{\"tenant\":\"acme\",\"roles\":[\"r1\",\"r2\"],\"n\":null}");
    forwards("{}", "{}");
    /* inside JSON, control characters are escaped by the encoder: still a safe header value */
    forwards("{\"a\": \"x\\ny\"}", "{\"a\":\"x\\ny\"}");
}

FICUS_TEST(format_refuses)
{
    not_forwarded("null");
    ok(ficus_claim_value_format(NULL, out, sizeof(out)) == 0); /* a missing claim */
    not_forwarded("\"\"");
    not_forwarded("\"alice\\r\\nx-admin: 1\"");
    not_forwarded("\"a\\nb\"");
    not_forwarded("\"a\\tb\"");
    not_forwarded("\"a\\u007fb\"");
    json_t *nul = json_stringn("a\0b", 3); /* a NUL inside a string claim */
    ok(ficus_claim_value_format(nul, out, sizeof(out)) == 0);
    json_decref(nul);
    /* raw strings of a joined array are checked too */
    not_forwarded("[\"staff\",\"x\\r\\nevil: 1\"]");
    not_forwarded("[\"a\\u007f\"]");
    /* DEL is not escaped by the JSON encoder */
    not_forwarded("{\"a\": \"\\u007f\"}");
}

FICUS_TEST(format_length_bound)
{
    size_t max = FICUS_CLAIM_VALUE_MAX;
    char *s = malloc(max + 2);
    memset(s, 'a', max + 1);
    s[max + 1] = '\0';
    json_t *v = json_string(s); /* max + 1 bytes: too long */
    ok(ficus_claim_value_format(v, out, sizeof(out)) == 0);
    json_decref(v);
    s[max] = '\0';
    v = json_string(s); /* exactly max bytes: forwarded */
    ok_int(ficus_claim_value_format(v, out, sizeof(out)), max);
    json_decref(v);
    /* an array whose joined form is one byte too long */
    s[max - 1] = '\0';
    v = json_pack("[s,s]", s, "b");
    ok(ficus_claim_value_format(v, out, sizeof(out)) == 0);
    json_decref(v);
    s[max - 2] = '\0';
    v = json_pack("[s,s]", s, "b");
    ok_int(ficus_claim_value_format(v, out, sizeof(out)), max);
    json_decref(v);
    /* JSON too long for the buffer */
    v = json_pack("{s:s}", "k", s);
    ok(ficus_claim_value_format(v, out, sizeof(out)) == 0);
    json_decref(v);
    /* a small buffer bounds everything */
    char small[4];
    v = json_string("abc");
    ok_int(ficus_claim_value_format(v, small, sizeof(small)), 3);
    json_decref(v);
    v = json_string("abcd");
    ok(ficus_claim_value_format(v, small, sizeof(small)) == 0);
    json_decref(v);
    v = json_integer(12345);
    ok(ficus_claim_value_format(v, small, sizeof(small)) == 0);
    json_decref(v);
    free(s);
}

/* ---- configuration ---- */

/* Lines 1-13; the `forward:` entries of a test start on line 14. */
#define JWT_ROUTE                                                                                                                  \
    "server:\n"                                                                                                                    \
    "  listen:\n"                                                                                                                  \
    "    - address: \"127.0.0.1:8080\"\n"                                                                                          \
    "providers:\n"                                                                                                                 \
    "  corp: { issuer: \"https://idp.test/\", discovery: true }\n"                                                                 \
    "upstreams:\n"                                                                                                                 \
    "  app: { endpoints: [\"http://127.0.0.1:9000\"] }\n"                                                                          \
    "routes:\n"                                                                                                                    \
    "  - name: r\n"                                                                                                                \
    "    to: app\n"                                                                                                                \
    "    jwt:\n"                                                                                                                   \
    "      provider: corp\n"                                                                                                       \
    "      forward:\n"

FICUS_TEST(load_good)
{
    char err[ERRLEN];
    ficus_config_t *c = load(JWT_ROUTE "        sub: X-User-Id\n"
                                       "        email: x-user-email\n"
                                       "        groups: x-groups.v1~\n",
                             err);
    if (!ok(c != NULL)) {
        printf("#     %s\n", err);
        return;
    }
    /* registered as identity headers, lowercase */
    static const char *const want[] = {"x-user-id", "x-user-email", "x-groups.v1~"};
    for (size_t i = 0; i != 3; ++i) {
        int found = 0;
        for (size_t j = 0; j != c->num_identity_headers; ++j)
            found |= h2o_memis(c->identity_headers[j].base, c->identity_headers[j].len, want[i], strlen(want[i]));
        if (!ok(found))
            printf("#     %s is not an identity header\n", want[i]);
    }
    ficus_config_release(c);
}

FICUS_TEST(load_errors)
{
    fails_at(JWT_ROUTE "        sub: \"x user\"\n", 14, "invalid header name 'x user'");
    fails_at(JWT_ROUTE "        sub: X_User_Id\n", 14, "has a '_'");
    fails_at(JWT_ROUTE "        sub: x-real-ip\n", 14, "cannot carry a claim");
    fails_at(JWT_ROUTE "        sub: x-user:id\n", 14, "invalid header name");
    fails_at(JWT_ROUTE "        sub: \"\"\n", 14, "invalid header name");
    fails_at(JWT_ROUTE "        sub: [a]\n", 14, "expected a scalar");
    fails_at(JWT_ROUTE "        sub: x-user-id\n        email: cookie\n", 15, "header 'cookie' cannot carry a claim");
    fails_at(JWT_ROUTE "        sub: Host\n", 14, "header 'Host' cannot carry a claim");
    fails_at(JWT_ROUTE "        sub: AUTHORIZATION\n", 14, "header 'AUTHORIZATION' cannot carry a claim");
    fails_at(JWT_ROUTE "        sub: proxy-authorization\n", 14, "cannot carry a claim");
    fails_at(JWT_ROUTE "        sub: content-length\n", 14, "header 'content-length' cannot carry a claim");
    fails_at(JWT_ROUTE "        sub: transfer-encoding\n", 14, "cannot carry a claim");
    fails_at(JWT_ROUTE "        sub: connection\n", 14, "cannot carry a claim");
    fails_at(JWT_ROUTE "        sub: te\n", 14, "cannot carry a claim");
    fails_at(JWT_ROUTE "        sub: upgrade\n", 14, "cannot carry a claim");
    fails_at(JWT_ROUTE "        sub: keep-alive\n", 14, "cannot carry a claim");
    fails_at(JWT_ROUTE "        sub: proxy-connection\n", 14, "cannot carry a claim");
    fails_at(JWT_ROUTE "        sub: trailer\n", 14, "cannot carry a claim");
    fails_at(JWT_ROUTE "        sub: X-Forwarded-For\n", 14, "cannot carry a claim");
    fails_at(JWT_ROUTE "        sub: x-forwarded-user\n", 14, "cannot carry a claim");
    fails_at(JWT_ROUTE "        sub: x-request-id\n", 14, "cannot carry a claim");
    fails_at(JWT_ROUTE "        sub: x-user\n        email: X-User\n", 15, "already carries claim 'sub'");
    fails_at(JWT_ROUTE "        \"\": x-user\n", 14, "claim name must not be empty");
}

FICUS_TEST(load_allows_lookalikes)
{
    /* prefixes / suffixes of refused names are fine: only exact names (and x-forwarded-*) are refused */
    char err[ERRLEN];
    ficus_config_t *c = load(JWT_ROUTE "        a: x-host\n"
                                       "        b: cookies-seen\n"
                                       "        c: x-forwarded\n"
                                       "        d: tenant\n",
                             err);
    if (!ok(c != NULL))
        printf("#     %s\n", err);
    else
        ficus_config_release(c);
}

/* ---- applying to a request ---- */

FICUS_TEST(apply)
{
    char err[ERRLEN];
    ficus_conf_ctx_t cc = {.filename = "t.yaml"};
    static const char text[] = "sub: X-User\n"
                               "groups: x-groups\n"
                               "email: x-email\n"
                               "evil: x-evil\n"
                               "missing: x-missing\n"
                               "level: x-level\n";
    ficus_node_t *root = ficus_conf_load_string("t.yaml", text, strlen(text), err, sizeof(err));
    if (!ok(root != NULL))
        return;
    ficus_claim_forwards_t f;
    ok(ficus_claim_forwards_load(&cc, root, &f) == 0); /* no config: nothing registered, still loaded */
    ficus_node_free(root);
    ok_int(f.num, 6);

    h2o_req_t *req = calloc(1, sizeof(*req));
    h2o_mem_init_pool(&req->pool);
    ficus_req_t r = {.h2o = req};
    json_t *claims = json_pack("{s:s, s:[s,s], s:n, s:s, s:i}", "sub", "alice", "groups", "staff", "admins", "email", "evil",
                               "a\r\nb", "level", 3);
    ficus_claim_forwards_apply(&f, &r, claims);
    ok_int(req->headers.size, 3);
    static const char *const want[][2] = {{"x-user", "alice"}, {"x-groups", "staff,admins"}, {"x-level", "3"}};
    for (size_t i = 0; i != 3 && i < req->headers.size; ++i) {
        h2o_header_t *h = req->headers.entries + i;
        ok(h2o_memis(h->name->base, h->name->len, want[i][0], strlen(want[i][0])));
        ok(h2o_memis(h->value.base, h->value.len, want[i][1], strlen(want[i][1])));
    }
    /* no claims at all: nothing added */
    ficus_claim_forwards_apply(&f, &r, NULL);
    ok_int(req->headers.size, 3);
    json_decref(claims);
    h2o_mem_clear_pool(&req->pool);
    free(req);
    ficus_claim_forwards_dispose(&f);
    ok(f.rules == NULL && f.num == 0);
}
