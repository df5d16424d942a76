/* The registry of endpoint state shared by configuration generations (ficus/upstream/registry.h).
 *
 * DESIGN: a small list of states keyed by (upstream name, address), looked up when a generation is loaded and
 * released when it is freed. Generations are few (the running one, plus those still finishing requests), so a list
 * walked under a mutex at load time is enough; the request path never touches the registry, only the state objects
 * the generation already holds.
 * BOUNDS: one state per configured endpoint of the live generations. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "ficus/log.h"
#include "ficus/upstream/registry.h"

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static H2O_VECTOR(ficus_endpoint_state_t *) states;

ficus_endpoint_state_t *ficus_endpoint_state_get(const char *name, const char *authority)
{
    ficus_endpoint_state_t *s = NULL;
    pthread_mutex_lock(&mutex);
    for (size_t i = 0; i != states.size; ++i) {
        if (strcmp(states.entries[i]->upstream, name) == 0 && strcmp(states.entries[i]->authority, authority) == 0) {
            s = states.entries[i];
            break;
        }
    }
    if (s == NULL) {
        if ((s = calloc(1, sizeof(*s))) == NULL)
            ficus_fatal("no memory");
        s->upstream = h2o_strdup(NULL, name, SIZE_MAX).base;
        s->authority = h2o_strdup(NULL, authority, SIZE_MAX).base;
        h2o_vector_reserve(NULL, &states, states.size + 1);
        states.entries[states.size++] = s;
    }
    ++s->_refcnt;
    pthread_mutex_unlock(&mutex);
    return s;
}

void ficus_endpoint_state_release(ficus_endpoint_state_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&mutex);
    int last = --s->_refcnt == 0;
    if (last) {
        for (size_t i = 0; i != states.size; ++i) {
            if (states.entries[i] == s) {
                states.entries[i] = states.entries[--states.size];
                break;
            }
        }
    }
    pthread_mutex_unlock(&mutex);
    if (last) {
        free(s->upstream);
        free(s->authority);
        free(s);
    }
}
