/* Request hygiene at entry (see ficus/req_hygiene.h).
 *
 * OWNS: the canonical path applied to the H2O request, the authority check. Runs synchronously inside the H2O
 * handler call, before anything else of ficus reads the request. */
#include <string.h>
#include "ficus/path.h"
#include "ficus/req_hygiene.h"

static const char *canonical_path(ficus_req_t *r)
{
    h2o_req_t *req = r->h2o;
    h2o_iovec_t raw = req->path;
    size_t plen = req->query_at != SIZE_MAX && req->query_at <= raw.len ? req->query_at : raw.len, qlen = raw.len - plen;
    ficus_path_error_t err;
    if (qlen != 0 && (err = ficus_path_check_query(raw.base + plen + 1, qlen - 1)) != FICUS_PATH_OK)
        return ficus_path_error_code(err);
    char *buf = h2o_mem_alloc_pool(&req->pool, FICUS_PATH_CANONICAL_CAP(plen) + qlen);
    size_t n;
    if ((err = ficus_path_canonicalize(&r->config->server.paths, raw.base, plen, buf, &n)) != FICUS_PATH_OK)
        return ficus_path_error_code(err);
    memcpy(buf + n, raw.base + plen, qlen);
    req->path = h2o_iovec_init(buf, n + qlen);
    req->path_normalized = h2o_iovec_init(buf, n);
    req->query_at = qlen != 0 ? n : SIZE_MAX;
    return NULL;
}

static const char *authority(ficus_req_t *r)
{
    h2o_req_t *req = r->h2o;
    /* without a Host, H2O fills in its host entry's name ("listener-N"): recognised by identity, never used */
    int missing = req->input.authority.len == 0 || req->input.authority.base == req->conn->hosts[0]->authority.hostport.base;
    if (missing) {
        if (req->version == 0x101)
            return "missing_host";
        req->authority = h2o_iovec_init("", 0); /* not the name of H2O's host entry ("listener-N") */
        return NULL;
    }
    if (!ficus_authority_is_valid(req->input.authority.base, req->input.authority.len))
        return "bad_host";
    req->authority = req->input.authority;
    return NULL;
}

const char *ficus_req_hygiene(ficus_req_t *r)
{
    const char *err;
    if ((err = canonical_path(r)) != NULL || (err = authority(r)) != NULL)
        return err;
    return NULL;
}
