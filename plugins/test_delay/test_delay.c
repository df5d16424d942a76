/* test_delay: a test-only plugin that pauses each request on a timer, then resumes it.
 *
 * It exists to exercise the PAUSE contract end to end (tests/integration/test_pause.py): the pending timer lives in
 * the request pool and its dispose unlinks it, so a client that disconnects mid-pause frees the request without
 * the timer ever firing on freed memory. The timer is the worker's shared timeout of that duration
 * (ficus_worker_timeout). Enabled only when FICUS_TEST_PLUGINS=1.
 *   route:  test_delay: { ms: 300 } */
#include <stdlib.h>
#include <string.h>
#include "ficus/plugin.h"
#include "ficus/worker.h"

typedef struct st_test_delay_conf_t {
    uint64_t ms;
} test_delay_conf_t;

typedef struct st_test_delay_pending_t {
    h2o_timeout_entry_t entry;
    ficus_req_t *req;
} test_delay_pending_t;

static int on_config(ficus_conf_ctx_t *cc, const ficus_node_t *node, void **conf)
{
    ficus_node_t *ms;
    if (ficus_conf_mapping(cc, node, "ms:s", "", &ms) != 0)
        return -1;
    test_delay_conf_t *c = calloc(1, sizeof(*c));
    if (c == NULL || ficus_conf_uint(cc, ms, 1, 60000, &c->ms) != 0) {
        free(c);
        return -1;
    }
    *conf = c;
    return 0;
}

static void dispose(void *conf)
{
    free(conf);
}

static void on_timer(h2o_timeout_entry_t *entry)
{
    test_delay_pending_t *p = H2O_STRUCT_FROM_MEMBER(test_delay_pending_t, entry, entry);
    ficus_req_resume(p->req);
}

static void on_pending_dispose(void *_p)
{
    test_delay_pending_t *p = _p;
    if (h2o_timeout_is_linked(&p->entry))
        h2o_timeout_unlink(&p->entry);
}

static ficus_status_t on_request(void *_conf, ficus_req_t *req)
{
    test_delay_conf_t *conf = _conf;
    test_delay_pending_t *p = h2o_mem_alloc_shared(&req->h2o->pool, sizeof(*p), on_pending_dispose);
    memset(p, 0, sizeof(*p));
    p->req = req;
    p->entry.cb = on_timer;
    h2o_timeout_link(req->worker->loop, ficus_worker_timeout(req->worker, conf->ms), &p->entry);
    return FICUS_PAUSE;
}

const ficus_plugin_t ficus_plugin_test_delay = {
    .name = "test_delay",
    .on_config = on_config,
    .dispose = dispose,
    .on_request = on_request,
    .test_only = 1,
};
