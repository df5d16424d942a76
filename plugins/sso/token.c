/* sso: the token endpoint client. POSTs a grant (authorization_code or refresh_token) asynchronously over verified
 * TLS with the client's authentication (client_secret_basic: RFC 6749 2.3.1, or client_secret_post), within
 * token_timeout, answers bounded to MAX_TOKEN_RESPONSE. Secrets are wiped from the buffers once sent. */
#include <stdlib.h>
#include <string.h>
#include "ficus/log.h"
#include "ficus/worker.h"
#include "sso.h"

static void fetch_ctx(const sso_global_t *g, ficus_req_t *r, ficus_fetch_ctx_t *ctx)
{
    ctx->loop = r->worker->loop;
    ctx->getaddr_receiver = &r->worker->ctx.receivers.hostinfo_getaddr;
    ctx->io_timeout = ficus_worker_timeout(r->worker, g->token_timeout_ms);
    ctx->zero_timeout = &r->worker->ctx.zero_timeout;
    ctx->ssl_ctx = g->ssl_ctx;
}

static void add_client_auth(const sso_global_t *g, FILE *headers, FILE *body)
{
    if (g->auth_post) {
        fputs("&client_id=", body);
        sso_url_encode(body, g->client_id);
        fputs("&client_secret=", body);
        sso_url_encode(body, g->client_secret);
    } else {
        /* RFC 6749 2.3.1: form-urlencode id and secret, then base64 */
        char *cred;
        size_t len;
        FILE *fp = open_memstream(&cred, &len);
        sso_url_encode(fp, g->client_id);
        fputc(':', fp);
        sso_url_encode(fp, g->client_secret);
        fclose(fp);
        char *b64 = malloc(len * 4 / 3 + 8);
        if (b64 == NULL)
            ficus_fatal("no memory");
        int n = EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)cred, (int)len);
        fprintf(headers, "authorization: Basic %.*s\r\n", n, b64);
        OPENSSL_cleanse(cred, len);
        free(cred);
        free(b64);
    }
}

int sso_post_token(sso_pending_t *p, const char *form, ficus_fetch_cb cb)
{
    const sso_global_t *g = p->g;
    const char *token_ep = sso_endpoint(g, p->r, 1);
    if (token_ep == NULL)
        return -1;
    char *hdrs, *body;
    size_t hlen, blen;
    FILE *hf = open_memstream(&hdrs, &hlen), *bf = open_memstream(&body, &blen);
    fputs("content-type: application/x-www-form-urlencoded\r\naccept: application/json\r\n", hf);
    fputs(form, bf);
    add_client_auth(g, hf, bf);
    fclose(hf);
    fclose(bf);
    ficus_fetch_ctx_t *ctx = h2o_mem_alloc_pool(&p->r->h2o->pool, sizeof(*ctx));
    fetch_ctx(g, p->r, ctx);
    const char *err = NULL;
    p->fetch = ficus_fetch_start(ctx, "POST", token_ep, h2o_iovec_init(hdrs, hlen), h2o_iovec_init(body, blen), MAX_TOKEN_RESPONSE,
                                 cb, p, &err);
    OPENSSL_cleanse(hdrs, hlen);
    OPENSSL_cleanse(body, blen);
    free(hdrs);
    free(body);
    return p->fetch != NULL ? 0 : -1;
}
