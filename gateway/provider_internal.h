/* What the provider files share among themselves (not an API for anyone else: see ficus/provider.h).
 *
 *   provider_conf.c      `providers:` parsing and validation, file/secret keys read at load
 *   provider_registry.c  runtimes across reloads, the active registry, metrics series, /readyz and /metrics
 *   provider_publish.c   key sets and discovery endpoints handed to every worker
 *   provider_wait.c      worker side: requests waiting for an unknown kid's refetch
 *   provider_fetch.c     control side: the JWKS / discovery fetcher, refresh, forced refetches */
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

/** Publishing (control thread): with has_keys, `keys` (may be NULL = drop) becomes the set of p and every worker
 * (the caller keeps its reference); with refetch_done, every worker wakes its requests waiting on p. */
void ficus__provider_publish(ficus_provider_t *p, ficus_jwks_t *keys, int has_keys, int refetch_done);
/** Publishing (control thread): discovered endpoints (the caller's reference moves in). */
void ficus__provider_publish_meta(ficus_provider_t *p, ficus_provider_meta_t *meta);

/** Worker: wakes w's waiters on p (all providers when p is NULL); with timed_out, only those past their deadline. */
void ficus__provider_wake_waiters(ficus_worker_t *w, ficus_provider_t *p, int timed_out, uint64_t now);

/** Fetcher (control thread): created and started for a provider that fetches its keys, destroyed when it stops. */
ficus_provider_fetcher_t *ficus__provider_fetcher_start(ficus_provider_t *p, const ficus_provider_conf_t *pc);
void ficus__provider_fetcher_destroy(ficus_provider_fetcher_t *f);
/** Fetcher (control thread, posted by a worker with a reference to p, released here): one forced refetch. */
void ficus__provider_on_refetch_request(void *p);

#endif
