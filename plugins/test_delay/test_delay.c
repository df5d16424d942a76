/* test_delay: a test-only plugin that pauses each request on a timer, then resumes it.
 *
 * It exists to exercise the PAUSE contract end to end (tests/integration/test_pause.py): the pending timer lives in
 * the request pool and its dispose unlinks it, so a client that disconnects mid-pause frees the request without
 * the timer ever firing on freed memory. The timer is the worker's shared timeout of that duration
 * (ficus_worker_timeout); a pause lasts at least `ms` of real time from the request's arrival, whatever the loop's
 * cached clock says. Enabled only when FICUS_TEST_PLUGINS=1.
 * `misbehave` breaks the plugin contract on purpose, so that tests/integration/test_plugin_contract.py can check that
 * the core turns each violation into a log line + counter + 500 (when nothing was sent) instead of a dead process:
 *   sync (in on_request):  continue_after_respond, pause_after_respond, responded_without_response, bad_status
 *   after the timer:       resume_twice, respond_then_resume, resume_then_respond, respond_twice
 * (a response sent by the plugin is 418 {"error":"test_delay"}).
 *   route:  test_delay: { ms: 300 }      or   test_delay: { ms: 10, misbehave: respond_twice }
 *   top level (the pre-route phase, requests whose path starts with `path`, on every host):
 *           test_delay: { path: /_pre, ms: 10, misbehave: responded_without_response } */
#include <stdlib.h>
#include <string.h>
#include "ficus/clock.h"
#include "ficus/plugin.h"
#include "ficus/worker.h"

enum {
    OK,
    CONTINUE_AFTER_RESPOND,
    PAUSE_AFTER_RESPOND,
    RESPONDED_WITHOUT_RESPONSE,
    BAD_STATUS,
    RESUME_TWICE,
    RESPOND_THEN_RESUME,
    RESUME_THEN_RESPOND,
    RESPOND_TWICE,
};
static const char *const misbehaviours[] = {"none",
                                            "continue_after_respond",
                                            "pause_after_respond",
                                            "responded_without_response",
                                            "bad_status",
                                            "resume_twice",
                                            "respond_then_resume",
                                            "resume_then_respond",
                                            "respond_twice",
                                            NULL};

typedef struct st_test_delay_conf_t {
    uint64_t ms;
    int misbehave;
    char *path; /* the top-level section: pre-route requests under this path */
} test_delay_conf_t;

typedef struct st_test_delay_pending_t {
    h2o_timeout_entry_t entry;
    ficus_req_t *req;
    int misbehave;
    uint64_t until_us; /* monotonic: the pause lasts at least `ms` of real time from the request's arrival */
} test_delay_pending_t;

static int load(ficus_conf_ctx_t *cc, const ficus_node_t *node, int pre_route, void **conf)
{
    ficus_node_t *ms, *misbehave, *path = NULL;
    if ((pre_route ? ficus_conf_mapping(cc, node, "path:s,ms:s", "misbehave:s", &path, &ms, &misbehave)
                   : ficus_conf_mapping(cc, node, "ms:s", "misbehave:s", &ms, &misbehave)) != 0)
        return -1;
    test_delay_conf_t *c = calloc(1, sizeof(*c));
    if (c == NULL || ficus_conf_uint(cc, ms, 1, 60000, &c->ms) != 0 ||
        (misbehave != NULL && ficus_conf_enum(cc, misbehave, misbehaviours, &c->misbehave) != 0) ||
        (path != NULL && (c->path = strdup(path->data.scalar.value)) == NULL)) {
        free(c);
        return -1;
    }
    *conf = c;
    return 0;
}

static int on_config(ficus_conf_ctx_t *cc, const ficus_node_t *node, void **conf)
{
    return load(cc, node, 0, conf);
}

static int on_global_config(ficus_conf_ctx_t *cc, const ficus_node_t *node, void **gconf)
{
    return node != NULL ? load(cc, node, 1, gconf) : 0;
}

static void dispose(void *_conf)
{
    test_delay_conf_t *conf = _conf;
    free(conf->path);
    free(conf);
}

static void respond(ficus_req_t *req)
{
    ficus_req_respond_error(req, 418, "test_delay");
}

static void on_timer(h2o_timeout_entry_t *entry)
{
    test_delay_pending_t *p = H2O_STRUCT_FROM_MEMBER(test_delay_pending_t, entry, entry);
    if (ficus_mono_us() < p->until_us) {
        /* H2O's timers count from the loop's clock, cached when the loop iteration began: the timer was linked up to
         * that iteration's length before the request's arrival. Wait out the rest in 1 ms steps (bounded by that lag). */
        h2o_timeout_link(p->req->worker->loop, ficus_worker_timeout(p->req->worker, 1), &p->entry);
        return;
    }
    switch (p->misbehave) {
    case RESUME_TWICE:
        ficus_req_resume(p->req);
        ficus_req_resume(p->req);
        break;
    case RESPOND_THEN_RESUME:
        respond(p->req);
        ficus_req_resume(p->req);
        break;
    case RESUME_THEN_RESPOND:
        ficus_req_resume(p->req);
        respond(p->req);
        break;
    case RESPOND_TWICE:
        respond(p->req);
        respond(p->req);
        break;
    default:
        ficus_req_resume(p->req);
        break;
    }
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
    switch (conf->misbehave) {
    case CONTINUE_AFTER_RESPOND:
        respond(req);
        return FICUS_CONTINUE;
    case PAUSE_AFTER_RESPOND:
        respond(req);
        return FICUS_PAUSE;
    case RESPONDED_WITHOUT_RESPONSE:
        return FICUS_RESPONDED;
    case BAD_STATUS:
        return (ficus_status_t)42;
    default:
        break;
    }
    test_delay_pending_t *p = h2o_mem_alloc_shared(&req->h2o->pool, sizeof(*p), on_pending_dispose);
    memset(p, 0, sizeof(*p));
    p->req = req;
    p->misbehave = conf->misbehave;
    p->entry.cb = on_timer;
    p->until_us = ficus_mono_us() + conf->ms * 1000;
    h2o_timeout_link(req->worker->loop, ficus_worker_timeout(req->worker, conf->ms), &p->entry);
    return FICUS_PAUSE;
}

static ficus_status_t on_pre_route(void *_conf, ficus_req_t *req)
{
    test_delay_conf_t *conf = _conf;
    size_t n = strlen(conf->path);
    if (req->h2o->path.len < n || memcmp(req->h2o->path.base, conf->path, n) != 0)
        return FICUS_CONTINUE;
    return on_request(conf, req);
}

const ficus_plugin_t ficus_plugin_test_delay = {
    .name = "test_delay",
    .on_config = on_config,
    .dispose = dispose,
    .on_request = on_request,
    .global_key = "test_delay",
    .on_global_config = on_global_config,
    .global_dispose = dispose,
    .on_pre_route = on_pre_route,
    .test_only = 1,
};
