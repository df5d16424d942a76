/* The embedded rate-limit store (see local_store.h). */
#include <stddef.h>
#include "local_store.h"

typedef struct st_slot_t {
    uint64_t key;
    uint64_t tat_us;
} slot_t;

static slot_t slots[FICUS_RL_LOCAL_SLOTS];

static slot_t *find_slot(uint64_t key, uint64_t now_us)
{
    size_t base = (size_t)(key % (FICUS_RL_LOCAL_SLOTS / 4)) * 4;
    slot_t *stalest = &slots[base];
    for (size_t i = 0; i != 4; ++i) {
        slot_t *s = &slots[base + i];
        uint64_t k = __atomic_load_n(&s->key, __ATOMIC_ACQUIRE);
        if (k == key)
            return s;
        if (__atomic_load_n(&s->tat_us, __ATOMIC_RELAXED) < __atomic_load_n(&stalest->tat_us, __ATOMIC_RELAXED))
            stalest = s;
    }
    /* take over the stalest slot: its TAT is reset to "now" only if it is in the past (a full bucket) */
    __atomic_store_n(&stalest->key, key, __ATOMIC_RELEASE);
    uint64_t tat = __atomic_load_n(&stalest->tat_us, __ATOMIC_RELAXED);
    if (tat > now_us)
        __atomic_compare_exchange_n(&stalest->tat_us, &tat, now_us, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return stalest;
}

void ficus_rl_local_decide(uint64_t key, uint64_t t_us, uint64_t capacity, uint64_t now_us, ficus_rl_decision_t *out)
{
    if (key == 0)
        key = 1; /* 0 marks an empty slot */
    if (capacity == 0)
        capacity = 1;
    slot_t *s = find_slot(key, now_us);
    uint64_t tau = (capacity - 1) * t_us; /* capacity requests at once */
    uint64_t tat = __atomic_load_n(&s->tat_us, __ATOMIC_RELAXED);
    for (;;) {
        uint64_t base = tat > now_us ? tat : now_us;
        if (base - now_us > tau) {
            out->allowed = 0;
            out->remaining = 0;
            out->retry_after_us = base - now_us - tau;
            out->reset_us = base - now_us;
            return;
        }
        uint64_t next = base + t_us;
        if (__atomic_compare_exchange_n(&s->tat_us, &tat, next, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
            out->allowed = 1;
            out->remaining = (tau + t_us - (next - now_us)) / t_us;
            out->retry_after_us = 0;
            out->reset_us = next - now_us;
            return;
        }
        /* tat was reloaded by the failed CAS: retry (bounded in practice by the number of concurrent workers) */
    }
}
