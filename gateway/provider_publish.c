/* Publishing to workers: the control thread hands each new key set (and discovered endpoints) to every worker
 * through its message queue; the worker swaps its own slot's pointer, so the request path reads keys with no
 * atomics and no locks. A set is immutable and refcounted: the control thread, each worker slot and each message in
 * flight hold a reference. A worker's queue is in order, so an answer about an unknown kid sent after a publish
 * finds the new set in the worker's slot (provider_wait.c).
 * THREADING: publish*() on the control thread; on_publish*() on each worker's thread, for its slot only. */
#include <stdlib.h>
#include "ficus/control.h"
#include "ficus/log.h"
#include "ficus/worker.h"
#include "provider_internal.h"

static uint64_t keys_version_counter;

void ficus_provider_meta_release(ficus_provider_meta_t *meta)
{
    if (meta == NULL || __atomic_sub_fetch(&meta->refcnt, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    free(meta->authorization_endpoint);
    free(meta->token_endpoint);
    free(meta->end_session_endpoint);
    free(meta);
}

typedef struct st_meta_msg_t {
    ficus_provider_t *p;
    ficus_provider_meta_t *meta;
} meta_msg_t;

static void on_publish_meta(ficus_worker_t *w, void *arg)
{
    meta_msg_t *msg = arg;
    ficus_provider_slot_t *slot = msg->p->slots + w->index;
    ficus_provider_meta_release(slot->meta);
    slot->meta = msg->meta;
    ficus_provider_release(msg->p);
    free(msg);
}

void ficus__provider_publish_meta(ficus_provider_t *p, ficus_provider_meta_t *meta)
{
    ficus_provider_meta_release(p->meta);
    p->meta = meta; /* the caller's reference moves here */
    for (unsigned i = 0; i != ficus_control_num_workers(); ++i) {
        meta_msg_t *msg = calloc(1, sizeof(*msg));
        if (msg == NULL)
            ficus_fatal("no memory");
        ficus_provider_retain(p);
        __atomic_add_fetch(&meta->refcnt, 1, __ATOMIC_RELAXED);
        msg->p = p;
        msg->meta = meta;
        ficus_worker_post(ficus_control_worker(i), on_publish_meta, msg);
    }
}

typedef struct st_publish_msg_t {
    ficus_provider_t *p;
    ficus_jwks_t *keys; /* the new set (NULL = drop keys) */
} publish_msg_t;

static void on_publish(ficus_worker_t *w, void *arg)
{
    publish_msg_t *msg = arg;
    ficus_provider_slot_t *slot = msg->p->slots + w->index;
    if (slot->keys != NULL)
        ficus_jwks_release(slot->keys);
    slot->keys = msg->keys;
    slot->keys_version = __atomic_add_fetch(&keys_version_counter, 1, __ATOMIC_RELAXED);
    ficus_provider_release(msg->p);
    free(msg);
}

void ficus__provider_publish(ficus_provider_t *p, ficus_jwks_t *keys)
{
    if (keys != NULL)
        ficus_jwks_retain(keys);
    if (p->keys != NULL)
        ficus_jwks_release(p->keys);
    p->keys = keys;
    for (unsigned i = 0; i != ficus_control_num_workers(); ++i) {
        publish_msg_t *msg = calloc(1, sizeof(*msg));
        if (msg == NULL)
            ficus_fatal("no memory");
        ficus_provider_retain(p);
        msg->p = p;
        if (keys != NULL) {
            ficus_jwks_retain(keys);
            msg->keys = keys;
        }
        ficus_worker_post(ficus_control_worker(i), on_publish, msg);
    }
}
