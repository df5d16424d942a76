/* The bucket mapping of a `split:` action: a user's key (with the split's salt) → a 64-bit bucket → one upstream by
 * weighted rendezvous hashing (gateway/split.c). Pure functions: no I/O, no allocation, no global state.
 *
 * WHY RENDEZVOUS: every target gets a score from (bucket, target name) alone, score = weight / -ln(u) with u uniform
 * in (0,1); the highest score wins. A target's share is weight / sum of weights. Raising one target's weight raises
 * only its own scores, so the only users who move are those moving onto it; targets whose weights did not change
 * never swap users between them; and a two-sided ramp (new up, old down) only ever moves users old → new. Cumulative
 * ranges in list order (the obvious implementation) reshuffle users between unchanged targets when a weight in
 * front of them changes. Scores depend on the target's name, not its position, so reordering the list moves nobody.
 * COST: one hash of salt + key per request, then one mix and one log() per target with weight > 0. */
#ifndef ficus__split_h
#define ficus__split_h

#include <stddef.h>
#include <stdint.h>

typedef struct st_ficus_split_target_t {
    const char *name;   /* the upstream's name (its identity in the mapping) */
    uint64_t weight;    /* relative; 0 = receives nobody (but may still be chosen by an override) */
    uint64_t name_hash; /* ficus_split_name_hash(name), computed at load */
} ficus_split_target_t;

/** The per-target seed of a target named `name` (computed once at config load). */
uint64_t ficus_split_name_hash(const char *name, size_t len);
/** The bucket of a user: a 64-bit hash of (salt, key). The same pair always gives the same bucket; another salt
 * gives an unrelated one (a new experiment). */
uint64_t ficus_split_bucket(const char *salt, size_t salt_len, const char *key, size_t key_len);
/** The index of the target that `bucket` maps to (the highest weighted rendezvous score; ties go to the earlier
 * target). Returns SIZE_MAX when no target has a weight > 0 (config validation makes that impossible). */
size_t ficus_split_pick(const ficus_split_target_t *targets, size_t num_targets, uint64_t bucket);

#endif
