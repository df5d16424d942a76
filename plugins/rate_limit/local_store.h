/* The embedded rate-limit store: GCRA buckets in process memory, shared by all workers without locks.
 *
 * Used when the config has no `redis:` (limits are then per instance, and ficus says so at start) and as the
 * `on_store_error: local` fallback while Redis is unreachable (at limit ÷ instances).
 * DESIGN: a fixed table of FICUS_RL_LOCAL_SLOTS slots, each {key hash, TAT in ns}; a decision is one compare-and-swap
 * loop on the TAT (GCRA: allow when TAT - now <= tau, then TAT = max(TAT, now) + T). Keys are found by 64-bit hash
 * with 4-way probing; a full probe set reuses the stalest slot (a stale bucket is a full bucket, so reuse never
 * admits more than a fresh bucket would). Memory is constant whatever the number of keys. */
#ifndef ficus__rl_local_store_h
#define ficus__rl_local_store_h

#include <stdint.h>

#define FICUS_RL_LOCAL_SLOTS 65536

typedef struct st_ficus_rl_decision_t {
    int allowed;
    uint64_t remaining;      /* tokens left in the bucket after this decision */
    uint64_t retry_after_us; /* when denied: until one token is available */
    uint64_t reset_us;       /* until the bucket is full again */
} ficus_rl_decision_t;

/** One GCRA decision for key_hash: emission interval t_ns (per / limit, in ns; 0 is taken as 1), capacity (burst) tokens,
 * now_ns a monotonic clock. */
void ficus_rl_local_decide(uint64_t key_hash, uint64_t t_ns, uint64_t capacity, uint64_t now_ns, ficus_rl_decision_t *out);

#endif
