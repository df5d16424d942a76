/* Unit tests of gateway/path.c: the canonical path (decoding, dot segments, merged slashes, what is refused under each
 * escaped_slashes mode), the query check and authority validation. */
#include <stdio.h>
#include <string.h>

#include "ficus/path.h"
#include "runner.h"

static const ficus_path_conf_t defaults = FICUS_PATH_CONF_DEFAULT;

/* canonical form of `in` under conf, or "!<error code>" */
static const char *canon(const ficus_path_conf_t *conf, const char *in)
{
    static char out[4096];
    char buf[FICUS_PATH_CANONICAL_CAP(1024)];
    size_t n;
    ficus_path_error_t err = ficus_path_canonicalize(conf, in, strlen(in), buf, &n);
    if (err != FICUS_PATH_OK) {
        snprintf(out, sizeof(out), "!%s", ficus_path_error_code(err));
        return out;
    }
    memcpy(out, buf, n);
    out[n] = '\0';
    /* idempotent */
    char again[FICUS_PATH_CANONICAL_CAP(4096)];
    size_t m;
    if (!ok(ficus_path_canonicalize(conf, out, n, again, &m) == FICUS_PATH_OK && m == n && memcmp(again, out, n) == 0))
        printf("#     not idempotent: '%s'\n", out);
    return out;
}

FICUS_TEST(issue_list_refused_or_canonical)
{
    ok_str(canon(&defaults, "//admin"), "/admin");
    ok_str(canon(&defaults, "/%2fadmin"), "!bad_path_escaped_slash");
    ok_str(canon(&defaults, "/admin;x"), "!bad_path_parameter");
    ok_str(canon(&defaults, "/admin#x"), "!bad_path_fragment");
    ok_str(canon(&defaults, "/admin%20"), "!bad_path_character");
    ok_str(canon(&defaults, "/admin%09"), "!bad_path_character");
    ok_str(canon(&defaults, "/admin\t"), "!bad_path_character");
    ok_str(canon(&defaults, "/admin "), "!bad_path_character");
    ok_str(canon(&defaults, "/admin/x/..%2f..%2fpublic"), "!bad_path_escaped_slash");
    ok_str(canon(&defaults, "/admin%00"), "!bad_path_character");
    ok_str(canon(&defaults, "/admin%7f"), "!bad_path_character");
    ok_str(canon(&defaults, "/a\\admin"), "!bad_path_escaped_slash");
    ok_str(canon(&defaults, "/%5cadmin"), "!bad_path_escaped_slash");
}

FICUS_TEST(decoding_unreserved_only)
{
    ok_str(canon(&defaults, "/%61dmin"), "/admin");
    ok_str(canon(&defaults, "/%7Euser/%2D%2e%5f"), "/~user/-._");
    ok_str(canon(&defaults, "/a%3bb"), "/a%3Bb");
    ok_str(canon(&defaults, "/a%3Fb%23c%25d"), "/a%3Fb%23c%25d");
    ok_str(canon(&defaults, "/caf\xc3\xa9"), "/caf%C3%A9");
    ok_str(canon(&defaults, "/a\"<>^`{|}[]"), "/a%22%3C%3E%5E%60%7B%7C%7D%5B%5D");
    ok_str(canon(&defaults, "/a!$&'()*+,=:@b"), "/a!$&'()*+,=:@b");
    ok_str(canon(&defaults, "/a%"), "!bad_path_encoding");
    ok_str(canon(&defaults, "/a%4"), "!bad_path_encoding");
    ok_str(canon(&defaults, "/a%zz"), "!bad_path_encoding");
}

FICUS_TEST(dot_segments)
{
    ok_str(canon(&defaults, "/a/b/../c"), "/a/c");
    ok_str(canon(&defaults, "/a/./b"), "/a/b");
    ok_str(canon(&defaults, "/a/."), "/a/");
    ok_str(canon(&defaults, "/a/.."), "/");
    ok_str(canon(&defaults, "/.."), "/");
    ok_str(canon(&defaults, "/../../admin"), "/admin");
    ok_str(canon(&defaults, "/public/%2e%2e/admin"), "/admin");
    ok_str(canon(&defaults, "/public/.%2E/admin"), "/admin");
    ok_str(canon(&defaults, "/a/...b/..."), "/a/...b/...");
    ok_str(canon(&defaults, "/a/.b"), "/a/.b");
    ok_str(canon(&defaults, "/"), "/");
    ok_str(canon(&defaults, "/a/"), "/a/");
    ok_str(canon(&defaults, ""), "!bad_path");
    ok_str(canon(&defaults, "admin"), "!bad_path");
    ok_str(canon(&defaults, "*"), "!bad_path");
}

FICUS_TEST(merge_slashes)
{
    ficus_path_conf_t keep = defaults;
    keep.merge_slashes = 0;
    ok_str(canon(&defaults, "///a//b///"), "/a/b/");
    ok_str(canon(&defaults, "//"), "/");
    ok_str(canon(&keep, "//admin"), "//admin");
    ok_str(canon(&keep, "/a//../b"), "/a/b");
}

FICUS_TEST(escaped_slashes_modes)
{
    ficus_path_conf_t decode = defaults, keep = defaults;
    decode.escaped_slashes = FICUS_ESCAPED_SLASHES_DECODE;
    keep.escaped_slashes = FICUS_ESCAPED_SLASHES_KEEP;
    ok_str(canon(&decode, "/%2fadmin"), "/admin");
    ok_str(canon(&decode, "/admin/x/..%2f..%2fpublic"), "/public");
    ok_str(canon(&decode, "/a%5cb\\c"), "/a/b/c");
    ok_str(canon(&keep, "/%2fadmin"), "/%2Fadmin");
    ok_str(canon(&keep, "/admin/x/..%2f..%2fpublic"), "/admin/x/..%2F..%2Fpublic");
    ok_str(canon(&keep, "/a\\b"), "/a%5Cb");
    ok_str(canon(&keep, "%2fa"), "!bad_path");
}

FICUS_TEST(query_check)
{
    ok_int(ficus_path_check_query("a=1&b=%20", 9), FICUS_PATH_OK);
    ok_int(ficus_path_check_query("a=1 b", 5), FICUS_PATH_ERR_CHARACTER);
    ok_int(ficus_path_check_query("a=\t", 3), FICUS_PATH_ERR_CHARACTER);
    ok_int(ficus_path_check_query("a#b", 3), FICUS_PATH_ERR_FRAGMENT);
}

FICUS_TEST(authority)
{
#define A(s) ficus_authority_is_valid(s, strlen(s))
    ok(A("localhost"));
    ok(A("localhost:8443"));
    ok(A("api.example.com"));
    ok(A("127.0.0.1:1"));
    ok(A("[::1]:443"));
    ok(A("[2001:db8::1]"));
    ok(A("xn--bcher-kva.example"));
    ok(A("a%41b"));
    ok(!A(""));
    ok(!A(":443"));
    ok(!A("evil@example.com"));
    ok(!A("a b"));
    ok(!A("a/b"));
    ok(!A("a?b"));
    ok(!A("a#b"));
    ok(!A("a\\b"));
    ok(!A("a,b"));
    ok(!A("a;b"));
    ok(!A("a\tb"));
    ok(!A("host:"));
    ok(!A("host:65536"));
    ok(!A("host:123456"));
    ok(!A("host:8x"));
    ok(!A("[::1"));
    ok(!A("[]"));
    ok(!A("[::1]x"));
    ok(!A("a%4"));
#undef A
}
