/* Files a configuration names (JWKS, HS secrets, passwords, client secrets, session ticket keys, OCSP responses):
 * read once while the configuration loads (on the main or control thread, never a worker loop), bounded in size, with
 * FILE:LINE errors that say what the file is for. Buffers that may hold secrets are wiped before they are freed. */
#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/conf.h"
#include "ficus/log.h"

#define FICUS_CONF_STR_(x) #x
#define FICUS_CONF_STR(x) FICUS_CONF_STR_(x)

int ficus_conf_read_file(ficus_conf_ctx_t *cc, const ficus_node_t *node, const char *what, size_t max, char **out, size_t *len)
{
    const char *path = node->data.scalar.value;
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return ficus_conf_error(cc, node, "cannot open %s '%s': %s", what, path, strerror(errno));
    char *buf = malloc(max + 1);
    if (buf == NULL)
        ficus_fatal("no memory");
    size_t n = fread(buf, 1, max + 1, fp);
    int read_error = ferror(fp) ? errno : 0;
    fclose(fp);
    if (read_error != 0 || n > max) {
        OPENSSL_cleanse(buf, n < max + 1 ? n : max + 1);
        free(buf);
        if (read_error != 0)
            return ficus_conf_error(cc, node, "cannot read %s '%s': %s", what, path, strerror(read_error));
        return ficus_conf_error(cc, node, "%s '%s' is larger than %zu bytes", what, path, max);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int ficus_conf_read_secret(ficus_conf_ctx_t *cc, const ficus_node_t *node, const char *what, char **out)
{
    const char *path = node->data.scalar.value;
    char *buf;
    size_t n;
    if (ficus_conf_read_file(cc, node, what, 4096, &buf, &n) != 0)
        return -1;
    size_t end = n;
    while (end != 0 && isspace((unsigned char)buf[end - 1]))
        --end;
    const char *why = NULL;
    if (end == 0)
        why = "is empty";
    else if (memchr(buf, '\n', end) != NULL || memchr(buf, '\r', end) != NULL)
        why = "must hold one line (the secret itself)";
    else if (strlen(buf) < end)
        why = "holds a NUL byte";
    else if (end > FICUS_CONF_SECRET_MAX)
        why = "holds a secret longer than " FICUS_CONF_STR(FICUS_CONF_SECRET_MAX) " bytes";
    if (why != NULL) {
        OPENSSL_cleanse(buf, n);
        free(buf);
        return ficus_conf_error(cc, node, "%s '%s' %s", what, path, why);
    }
    if (end != n)
        OPENSSL_cleanse(buf + end, n - end);
    buf[end] = '\0';
    *out = buf;
    return 0;
}
