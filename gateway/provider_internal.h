/* What the provider files share among themselves (not an API for anyone else: see ficus/provider.h).
 *
 *   provider_conf.c      `providers:` parsing and validation, file/secret keys read at load
 *   provider_registry.c  runtimes across reloads, the active registry, metrics series, /readyz and /metrics
 *   provider_publish.c   key sets and discovery endpoints handed to every worker
 *   provider_wait.c      worker side: requests waiting for the answer about an unknown kid
 *   provider_refetch.c   control side: unknown kids answered (negative cache, refetch budget, single flight)
 *   provider_fetch.c     control side: the JWKS / discovery fetcher, refresh */
#ifndef ficus__provider_internal_h
#define ficus__provider_internal_h

#include "ficus/conf.h"
#include "ficus/provider.h"

/* small helpers (provider_conf.c) */
char *ficus__provider_strdup(const char *s);
double ficus__provider_unix_now(void);
/** Whether url's host is 127.0.0.1, localhost or ::1 (where plain http:// is allowed). */
int ficus__provider_is_loopback_url(const char *url);

/** Registry: the runtime for these settings (identity, moved in): the running one when unchanged (not in a dry
 * run), else a new one. Returns a reference. */
ficus_provider_t *ficus__provider_for(ficus_conf_ctx_t *cc, const char *name, char *identity);

/** Publishing (control thread): `keys` (may be NULL = drop) becomes the set of p and of every worker (the caller
 * keeps its reference). Messages to a worker arrive in order: an answer about a kid sent after this finds the
 * worker's slot holding this set. */
void ficus__provider_publish(ficus_provider_t *p, ficus_jwks_t *keys);
/** Publishing (control thread): discovered endpoints (the caller's reference moves in). */
void ficus__provider_publish_meta(ficus_provider_t *p, ficus_provider_meta_t *meta);

/** Worker: wakes w's waiters on p (all providers when p is NULL); with timed_out, only those past their deadline. */
void ficus__provider_wake_waiters(ficus_worker_t *w, ficus_provider_t *p, int timed_out, uint64_t now);

/** Fetcher (control thread): created and started for a provider that fetches its keys, destroyed when it stops. */
ficus_provider_fetcher_t *ficus__provider_fetcher_start(ficus_provider_t *p, const ficus_provider_conf_t *pc);
void ficus__provider_fetcher_destroy(ficus_provider_fetcher_t *f);
/** Fetcher: whether a fetch (discovery or JWKS, scheduled or forced) is under way. */
int ficus__provider_fetcher_busy(const ficus_provider_fetcher_t *f);
/** Fetcher: starts a fetch now (the caller checked it is not busy); its end calls ficus__provider_refetch_on_fetched. */
void ficus__provider_fetcher_force(ficus_provider_fetcher_t *f);

/* An unknown kid crossing threads: a worker's question to the control thread, or the control thread's answer to a
 * worker (then blocked_until_ms says until when the refetch budget is spent, 0 when it is not). */
typedef struct st_ficus_provider_kid_msg_t {
    ficus_provider_t *p; /* a reference, dropped by ficus__provider_kid_msg_free() */
    unsigned worker;
    uint64_t blocked_until_ms;
    size_t kid_len;
    char kid[]; /* kid_len bytes (at most FICUS_PROVIDER_MAX_KID_BYTES) */
} ficus_provider_kid_msg_t;

ficus_provider_kid_msg_t *ficus__provider_kid_msg_new(ficus_provider_t *p, unsigned worker, const char *kid, size_t kid_len);
void ficus__provider_kid_msg_free(ficus_provider_kid_msg_t *msg);

/** Unknown kids, control thread (provider_refetch.c): state created with the fetcher and destroyed with it (kids
 * still waiting are answered then); a worker's question (msg, ownership moves in); the end of every fetch (keys:
 * the new current set, NULL when the fetch failed; before: the set it replaced, may be NULL). */
void ficus__provider_refetch_create(ficus_provider_t *p, const ficus_provider_conf_t *pc);
void ficus__provider_refetch_destroy(ficus_provider_t *p);
void ficus__provider_on_kid_question(void *msg);
void ficus__provider_refetch_on_fetched(ficus_provider_t *p, const ficus_jwks_t *before, const ficus_jwks_t *keys);
/** Whether set has a key with this kid. */
int ficus__provider_jwks_has_kid(const ficus_jwks_t *set, const char *kid, size_t kid_len);

/** Unknown kids, worker (provider_wait.c): the control thread's answer (msg, ownership moves in). */
void ficus__provider_on_kid_answer(ficus_worker_t *w, void *msg);

#endif
