/* The control thread as other modules reach it: the narrow interface of what they need from it.
 *
 * The control thread (gateway/control.c, ficus/server.h) owns signals, reloads and the admin listener. Modules that
 * do work on its loop (the providers' JWKS/discovery fetcher) or ask it for work from a worker (an unknown kid's
 * refetch) use only this header, never the server's internals; control.c in turn calls them through their own API
 * (ficus_providers_activate()), so no include cycle. */
#ifndef ficus__control_h
#define ficus__control_h

#include "h2o.h"

typedef struct st_ficus_worker_t ficus_worker_t;

/** Runs fn(arg) on the control thread, soon (any thread may call it). */
void ficus_control_post(void (*fn)(void *arg), void *arg);
/** The control thread's event loop (for timers and fetches run on it; control thread only). */
h2o_evloop_t *ficus_control_loop(void);
/** The receiver for h2o_hostinfo_getaddr() answers on the control loop (registered on first use; control thread only). */
h2o_multithread_receiver_t *ficus_control_getaddr_receiver(void);
/** The number of worker threads, and the i-th of them (to ficus_worker_post() to each; control thread only). */
unsigned ficus_control_num_workers(void);
ficus_worker_t *ficus_control_worker(unsigned i);

#endif
