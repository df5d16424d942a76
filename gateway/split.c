/* The bucket mapping of a `split:` action: weighted rendezvous hashing (see ficus/split.h for why).
 *
 * DESIGN: bucket = fmix64(FNV-1a-64(salt ‖ 0x00 ‖ key)); per target, u = fmix64(bucket ^ name_hash) mapped to the open
 * interval (0,1) with 53 bits; score = weight / -ln(u). FNV-1a alone has weak low bits, murmur3's 64-bit finaliser
 * (fmix64) spreads them; the 0x00 separator keeps ("ab","c") and ("a","bc") apart.
 * BOUNDS: O(num_targets) per request, no allocation. Keys are bounded by the caller (header sizes). */
#include <math.h>
#include "ficus/split.h"

static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static uint64_t fnv1a(uint64_t h, const char *s, size_t len)
{
    for (size_t i = 0; i != len; ++i) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL

uint64_t ficus_split_name_hash(const char *name, size_t len)
{
    return fmix64(fnv1a(FNV_OFFSET ^ 0x6669637573ULL /* "ficus" */, name, len));
}

uint64_t ficus_split_bucket(const char *salt, size_t salt_len, const char *key, size_t key_len)
{
    uint64_t h = fnv1a(FNV_OFFSET, salt, salt_len);
    h = fnv1a(h, "", 1);
    return fmix64(fnv1a(h, key, key_len));
}

size_t ficus_split_pick(const ficus_split_target_t *targets, size_t num_targets, uint64_t bucket)
{
    size_t best = SIZE_MAX;
    double best_score = 0;
    for (size_t i = 0; i != num_targets; ++i) {
        if (targets[i].weight == 0)
            continue;
        /* 53 random bits + 0.5 → u in (0, 1): -ln(u) is finite and > 0 */
        double u = ((double)(fmix64(bucket ^ targets[i].name_hash) >> 11) + 0.5) / 9007199254740992.0;
        double score = (double)targets[i].weight / -log(u);
        if (best == SIZE_MAX || score > best_score) {
            best = i;
            best_score = score;
        }
    }
    return best;
}
