/* The plugin contract (ficus/plugin.h), checked at run time by the pipeline (gateway/request.c).
 *
 * A plugin that breaks it (returns CONTINUE after responding, RESPONDED without a response, PAUSE after responding,
 * a status that is none of the three, resumes a request that is not paused or already answered, responds twice) is a
 * bug in that plugin, not a reason to stop the process: in every build a violation costs one error log line
 * (rate-limited per plugin, kind and worker), one count in ficus_plugin_contract_violations_total{plugin}, and a 500 for
 * that request when nothing was sent yet (the caller's part). Never an abort: the other requests in flight go on. */
#ifndef ficus__contract_h
#define ficus__contract_h

#include "h2o/memory.h"
#include "ficus/plugin.h"

typedef enum enum_ficus_contract_violation_t {
    FICUS_CONTRACT_CONTINUE_AFTER_RESPONSE = 0, /* responded but returned CONTINUE */
    FICUS_CONTRACT_PAUSE_AFTER_RESPONSE,        /* responded but returned PAUSE */
    FICUS_CONTRACT_RESPONDED_WITHOUT_RESPONSE,  /* returned RESPONDED without responding */
    FICUS_CONTRACT_UNKNOWN_STATUS,              /* returned none of the three */
    FICUS_CONTRACT_RESUME_NOT_PAUSED,           /* ficus_req_resume() on a request that is not paused */
    FICUS_CONTRACT_RESUME_AFTER_RESPONSE,       /* ficus_req_resume() on a request already answered */
    FICUS_CONTRACT_RESPONSE_AFTER_RESUME,       /* answered after ficus_req_resume() (the resume is dropped) */
    FICUS_CONTRACT_SECOND_RESPONSE,             /* a second response (dropped) */
    FICUS_CONTRACT__COUNT
} ficus_contract_violation_t;

/** Records a violation by `plugin` (NULL: ficus's own code) on request r: log line + counter. Worker thread only. */
void ficus_contract_violation(ficus_req_t *r, const ficus_plugin_t *plugin, ficus_contract_violation_t what);
/** Admin thread: the ficus_plugin_contract_violations_total family, one series per compiled-in plugin (+ "core"). */
void ficus_contract_render_metrics(h2o_mem_pool_t *pool, h2o_iovec_t *out, unsigned num_workers);

#endif
