/* headers: add, set and remove request headers (towards the upstream) and response headers (towards the client).
 *
 *   headers:
 *     request:  { set: { x-served-by: ficus }, add: { x-tag: a }, remove: [x-debug] }
 *     response: { set: { cache-control: no-store }, remove: [x-powered-by] }
 *
 * Order within a direction: remove, then set (replaces every existing value), then add (appends). Names are
 * validated as HTTP tokens and lowercased, values must not contain CR, LF or NUL: all at load time, so a request
 * costs only the edits. Headers ficus sets itself (x-forwarded-*, x-request-id, host) are applied after this plugin
 * and cannot be forged through it. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/plugin.h"

typedef struct st_header_pair_t {
    h2o_iovec_t name; /* lowercase */
    h2o_iovec_t value;
} header_pair_t;

typedef struct st_header_edits_t {
    h2o_iovec_t *remove;
    size_t num_remove;
    header_pair_t *set;
    size_t num_set;
    header_pair_t *add;
    size_t num_add;
} header_edits_t;

typedef struct st_headers_conf_t {
    header_edits_t request, response;
} headers_conf_t;

static int check_name(ficus_conf_ctx_t *cc, const ficus_node_t *node, h2o_iovec_t *out)
{
    if (ficus_conf_expect(cc, node, FICUS_NODE_SCALAR) != 0)
        return -1;
    const char *s = node->data.scalar.value;
    size_t len = node->data.scalar.len;
    if (len == 0 || len > 256)
        return ficus_conf_error(cc, node, "header name must be 1 to 256 characters");
    char *lower = malloc(len + 1);
    if (lower == NULL)
        return ficus_conf_error(cc, node, "no memory");
    for (size_t i = 0; i != len; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL)) {
            free(lower);
            return ficus_conf_error(cc, node, "invalid header name '%s'", s);
        }
        lower[i] = tolower(c);
    }
    lower[len] = '\0';
    *out = h2o_iovec_init(lower, len);
    return 0;
}

static int load_pairs(ficus_conf_ctx_t *cc, const ficus_node_t *node, header_pair_t **out, size_t *num)
{
    if (ficus_conf_expect(cc, node, FICUS_NODE_MAPPING) != 0)
        return -1;
    if ((*out = calloc(node->data.mapping.size + 1, sizeof(**out))) == NULL)
        return ficus_conf_error(cc, node, "no memory");
    for (size_t i = 0; i != node->data.mapping.size; ++i) {
        const ficus_node_t *v = node->data.mapping.values[i];
        if (check_name(cc, node->data.mapping.keys[i], &(*out)[i].name) != 0)
            return -1;
        *num = i + 1;
        if (ficus_conf_expect(cc, v, FICUS_NODE_SCALAR) != 0)
            return -1;
        for (size_t j = 0; j != v->data.scalar.len; ++j)
            if (v->data.scalar.value[j] == '\r' || v->data.scalar.value[j] == '\n' || v->data.scalar.value[j] == '\0')
                return ficus_conf_error(cc, v, "header value must not contain CR, LF or NUL");
        (*out)[i].value = h2o_strdup(NULL, v->data.scalar.value, v->data.scalar.len);
    }
    return 0;
}

static int load_edits(ficus_conf_ctx_t *cc, const ficus_node_t *node, header_edits_t *e)
{
    ficus_node_t *set, *add, *remove;
    if (ficus_conf_mapping(cc, node, "", "set:m,add:m,remove:a", &set, &add, &remove) != 0)
        return -1;
    if (remove != NULL) {
        if ((e->remove = calloc(remove->data.sequence.size + 1, sizeof(*e->remove))) == NULL)
            return ficus_conf_error(cc, remove, "no memory");
        for (size_t i = 0; i != remove->data.sequence.size; ++i) {
            if (check_name(cc, remove->data.sequence.elements[i], e->remove + i) != 0)
                return -1;
            e->num_remove = i + 1;
        }
    }
    if (set != NULL && load_pairs(cc, set, &e->set, &e->num_set) != 0)
        return -1;
    if (add != NULL && load_pairs(cc, add, &e->add, &e->num_add) != 0)
        return -1;
    return 0;
}

static void free_edits(header_edits_t *e)
{
    for (size_t i = 0; i != e->num_remove; ++i)
        free(e->remove[i].base);
    free(e->remove);
    for (size_t i = 0; i != e->num_set; ++i)
        free(e->set[i].name.base), free(e->set[i].value.base);
    free(e->set);
    for (size_t i = 0; i != e->num_add; ++i)
        free(e->add[i].name.base), free(e->add[i].value.base);
    free(e->add);
}

static void dispose(void *_conf)
{
    headers_conf_t *conf = _conf;
    free_edits(&conf->request);
    free_edits(&conf->response);
    free(conf);
}

static int on_config(ficus_conf_ctx_t *cc, const ficus_node_t *node, void **out)
{
    ficus_node_t *request, *response;
    if (ficus_conf_mapping(cc, node, "", "request:m,response:m", &request, &response) != 0)
        return -1;
    if (request == NULL && response == NULL)
        return ficus_conf_error(cc, node, "`headers` needs `request` and/or `response`");
    headers_conf_t *conf = calloc(1, sizeof(*conf));
    if (conf == NULL)
        return ficus_conf_error(cc, node, "no memory");
    if ((request != NULL && load_edits(cc, request, &conf->request) != 0) ||
        (response != NULL && load_edits(cc, response, &conf->response) != 0)) {
        dispose(conf);
        return -1;
    }
    *out = conf;
    return 0;
}

static void remove_all(h2o_headers_t *headers, h2o_iovec_t name)
{
    ssize_t i;
    while ((i = h2o_find_header_by_str(headers, name.base, name.len, -1)) != -1)
        h2o_delete_header(headers, i);
}

static void apply(h2o_mem_pool_t *pool, h2o_headers_t *headers, const header_edits_t *e)
{
    for (size_t i = 0; i != e->num_remove; ++i)
        remove_all(headers, e->remove[i]);
    for (size_t i = 0; i != e->num_set; ++i) {
        remove_all(headers, e->set[i].name);
        h2o_add_header_by_str(pool, headers, e->set[i].name.base, e->set[i].name.len, 1, NULL, e->set[i].value.base,
                              e->set[i].value.len);
    }
    for (size_t i = 0; i != e->num_add; ++i)
        h2o_add_header_by_str(pool, headers, e->add[i].name.base, e->add[i].name.len, 1, NULL, e->add[i].value.base,
                              e->add[i].value.len);
}

static ficus_status_t on_request(void *_conf, ficus_req_t *req)
{
    headers_conf_t *conf = _conf;
    apply(&req->h2o->pool, &req->h2o->headers, &conf->request);
    return FICUS_CONTINUE;
}

static void on_response(void *_conf, ficus_req_t *req)
{
    headers_conf_t *conf = _conf;
    apply(&req->h2o->pool, &req->h2o->res.headers, &conf->response);
}

const ficus_plugin_t ficus_plugin_headers = {
    .name = "headers",
    .on_config = on_config,
    .dispose = dispose,
    .on_request = on_request,
    .on_response = on_response,
};
