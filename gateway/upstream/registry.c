/* The registry of upstream and endpoint state shared by configuration generations (ficus/upstream/registry.h).
 *
 * DESIGN: two small lists walked under a mutex when a generation is loaded or released and when /upstreams or
 * /metrics are rendered; the request path never touches the registry, only the state objects its generation holds.
 * BOUNDS: one state per distinct upstream name and per distinct (upstream, address) ever configured. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/log.h"
#include "ficus/split.h"
#include "ficus/upstream/registry.h"

const char *const ficus_retry_reason_names[FICUS_RETRY__COUNT] = {"connect_failure", "reset", "502", "503", "504"};

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static H2O_VECTOR(ficus_upstream_state_t *) upstreams;
static H2O_VECTOR(ficus_endpoint_state_t *) endpoints;

static void *alloc_zeroed(size_t size)
{
    void *p = calloc(1, size);
    if (p == NULL)
        ficus_fatal("no memory");
    return p;
}

ficus_upstream_state_t *ficus_upstream_state_get(const char *name)
{
    ficus_upstream_state_t *s = NULL;
    pthread_mutex_lock(&mutex);
    for (size_t i = 0; i != upstreams.size && s == NULL; ++i)
        if (strcmp(upstreams.entries[i]->name, name) == 0)
            s = upstreams.entries[i];
    if (s == NULL) {
        s = alloc_zeroed(sizeof(*s));
        s->name = h2o_strdup(NULL, name, SIZE_MAX).base;
        h2o_vector_reserve(NULL, &upstreams, upstreams.size + 1);
        upstreams.entries[upstreams.size++] = s;
    }
    ++s->configured;
    pthread_mutex_unlock(&mutex);
    return s;
}

ficus_endpoint_state_t *ficus_endpoint_state_get(ficus_upstream_state_t *up, const char *authority)
{
    ficus_endpoint_state_t *s = NULL;
    pthread_mutex_lock(&mutex);
    for (size_t i = 0; i != endpoints.size && s == NULL; ++i)
        if (endpoints.entries[i]->up == up && strcmp(endpoints.entries[i]->authority, authority) == 0)
            s = endpoints.entries[i];
    if (s == NULL) {
        s = alloc_zeroed(sizeof(*s));
        s->up = up;
        s->upstream = h2o_strdup(NULL, up->name, SIZE_MAX).base;
        s->authority = h2o_strdup(NULL, authority, SIZE_MAX).base;
        s->name_hash = ficus_split_name_hash(authority, strlen(authority));
        h2o_vector_reserve(NULL, &endpoints, endpoints.size + 1);
        endpoints.entries[endpoints.size++] = s;
    }
    ++s->configured;
    pthread_mutex_unlock(&mutex);
    return s;
}

void ficus_upstream_state_unconfigure(ficus_upstream_state_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&mutex);
    --s->configured;
    pthread_mutex_unlock(&mutex);
}

void ficus_endpoint_state_unconfigure(ficus_endpoint_state_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&mutex);
    --s->configured;
    pthread_mutex_unlock(&mutex);
}

void ficus_registry_foreach_endpoint(ficus_upstream_state_t *up, void (*fn)(ficus_endpoint_state_t *s, void *arg), void *arg)
{
    pthread_mutex_lock(&mutex);
    for (size_t i = 0; i != endpoints.size; ++i)
        if (endpoints.entries[i]->up == up && endpoints.entries[i]->configured != 0)
            fn(endpoints.entries[i], arg);
    pthread_mutex_unlock(&mutex);
}
