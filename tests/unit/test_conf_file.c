/* Unit tests of gateway/conf_file.c: the bounded reader of the files a configuration names, and the one-line secret
 * reader (Redis and Sentinel passwords, the SSO client secret): what is accepted, and the FILE:LINE error of each
 * refusal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ficus/conf.h"
#include "runner.h"

static char dir[] = "/tmp/ficus_test_conf_file_XXXXXX";

/* writes len bytes to DIR/name; returns the path (static buffer) */
static const char *file(const char *name, const char *bytes, size_t len)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (fp != NULL) {
        fwrite(bytes, 1, len, fp);
        fclose(fp);
    }
    return path;
}

/* a scalar node on line 3 naming the path */
static ficus_node_t node_for(const char *path)
{
    ficus_node_t n;
    memset(&n, 0, sizeof(n));
    n.type = FICUS_NODE_SCALAR;
    n.filename = "t.yaml";
    n.line = 3;
    n.data.scalar.value = (char *)path;
    n.data.scalar.len = strlen(path);
    return n;
}

static int secret(const char *bytes, size_t len, char **out, char *err)
{
    ficus_node_t n = node_for(file("s", bytes, len));
    ficus_conf_ctx_t cc = {.filename = "t.yaml"};
    *out = NULL;
    int rc = ficus_conf_read_secret(&cc, &n, "Redis password file", out);
    strcpy(err, cc.error);
    return rc;
}

FICUS_TEST(read_file_whole_bounded_and_named)
{
    if (!ok(mkdtemp(dir) != NULL))
        return;
    ficus_node_t n = node_for(file("k", "0123456789", 10));
    ficus_conf_ctx_t cc = {.filename = "t.yaml"};
    char *buf;
    size_t len;
    ok_int(ficus_conf_read_file(&cc, &n, "JWKS file", 10, &buf, &len), 0);
    ok_int(len, 10);
    ok_str(buf, "0123456789");
    free(buf);
    ok_int(ficus_conf_read_file(&cc, &n, "JWKS file", 9, &buf, &len), -1);
    ok(strstr(cc.error, "t.yaml:3: JWKS file '") == cc.error);
    ok(strstr(cc.error, "' is larger than 9 bytes") != NULL);

    ficus_node_t missing = node_for("/nonexistent/jwks.json");
    ficus_conf_ctx_t cc2 = {.filename = "t.yaml"};
    ok_int(ficus_conf_read_file(&cc2, &missing, "JWKS file", 10, &buf, &len), -1);
    ok_str(cc2.error, "t.yaml:3: cannot open JWKS file '/nonexistent/jwks.json': No such file or directory");

    ficus_node_t directory = node_for(dir);
    ficus_conf_ctx_t cc3 = {.filename = "t.yaml"};
    ok_int(ficus_conf_read_file(&cc3, &directory, "JWKS file", 10, &buf, &len), -1);
    ok(strstr(cc3.error, "cannot read JWKS file") != NULL); /* fopen succeeds on a directory, reading fails */
}

FICUS_TEST(secret_is_one_line_without_its_newline)
{
    if (!ok(mkdtemp(dir) != NULL))
        return;
    char *s, err[1024];
    ok_int(secret("hunter2\n", 8, &s, err), 0);
    ok_str(s, "hunter2");
    free(s);
    ok_int(secret("hunter2\r\n", 9, &s, err), 0);
    ok_str(s, "hunter2");
    free(s);
    ok_int(secret("pass with spaces", 16, &s, err), 0); /* no newline at the end: fine */
    ok_str(s, "pass with spaces");
    free(s);
}

FICUS_TEST(secret_refusals_say_why)
{
    if (!ok(mkdtemp(dir) != NULL))
        return;
    char *s, err[1024];
    ok_int(secret("", 0, &s, err), -1);
    ok(strstr(err, "t.yaml:3: Redis password file '") == err && strstr(err, "' is empty") != NULL);
    ok_int(secret("\n\n", 2, &s, err), -1);
    ok(strstr(err, "is empty") != NULL);
    ok_int(secret("user\npassword\n", 14, &s, err), -1);
    ok(strstr(err, "must hold one line") != NULL);
    ok_int(secret("ab\0cd\n", 6, &s, err), -1);
    ok(strstr(err, "holds a NUL byte") != NULL);
    char big[1100];
    memset(big, 'x', sizeof(big));
    ok_int(secret(big, FICUS_CONF_SECRET_MAX, &s, err), 0); /* the longest secret */
    free(s);
    ok_int(secret(big, FICUS_CONF_SECRET_MAX + 1, &s, err), -1);
    ok(strstr(err, "holds a secret longer than 1023 bytes") != NULL);
    ok(s == NULL);
}
