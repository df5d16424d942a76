/* The embedded rate-limit store (see local_store.h). */
#include <stddef.h>
#include "local_store.h"

typedef struct st_slot_t {
    uint64_t key;
    uint64_t tat_ns;
} slot_t;

static slot_t slots[FICUS_RL_LOCAL_SLOTS];

static slot_t *find_slot(uint64_t key, uint64_t now_ns)
{
    size_t base = (size_t)(key % (FICUS_RL_LOCAL_SLOTS / 4)) * 4;
    slot_t *stalest = &slots[base];
    for (size_t i = 0; i != 4; ++i) {
        slot_t *s = &slots[base + i];
        uint64_t k = __atomic_load_n(&s->key, __ATOMIC_ACQUIRE);
        if (k == key)
            return s;
        if (__atomic_load_n(&s->tat_ns, __ATOMIC_RELAXED) < __atomic_load_n(&stalest->tat_ns, __ATOMIC_RELAXED))
            stalest = s;
    }
    /* take over the stalest slot: its TAT is reset to "now" only if it is in the past (a full bucket) */
    __atomic_store_n(&stalest->key, key, __ATOMIC_RELEASE);
    uint64_t tat = __atomic_load_n(&stalest->tat_ns, __ATOMIC_RELAXED);
    if (tat > now_ns)
        __atomic_compare_exchange_n(&stalest->tat_ns, &tat, now_ns, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return stalest;
}

void ficus_rl_local_decide(uint64_t key, uint64_t t_ns, uint64_t capacity, uint64_t now_ns, ficus_rl_decision_t *out)
{
    if (key == 0)
        key = 1; /* 0 marks an empty slot */
    if (capacity == 0)
        capacity = 1;
    if (t_ns == 0)
        t_ns = 1; /* over 1e9 requests per second: as good as unlimited, and never a division by zero */
    slot_t *s = find_slot(key, now_ns);
    uint64_t tau = (capacity - 1) * t_ns; /* capacity requests at once */
    uint64_t tat = __atomic_load_n(&s->tat_ns, __ATOMIC_RELAXED);
    for (;;) {
        uint64_t base = tat > now_ns ? tat : now_ns;
        if (base - now_ns > tau) {
            out->allowed = 0;
            out->remaining = 0;
            out->retry_after_us = (base - now_ns - tau + 999) / 1000;
            out->reset_us = (base - now_ns) / 1000;
            return;
        }
        uint64_t next = base + t_ns;
        if (__atomic_compare_exchange_n(&s->tat_ns, &tat, next, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
            out->allowed = 1;
            out->remaining = (tau + t_ns - (next - now_ns)) / t_ns;
            out->retry_after_us = 0;
            out->reset_us = (next - now_ns) / 1000;
            return;
        }
        /* tat was reloaded by the failed CAS: retry (each failure means another worker's CAS succeeded) */
    }
}
