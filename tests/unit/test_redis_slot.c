/* Unit tests of gateway/redis_cluster.c's key → slot function (Redis Cluster's CRC16/XMODEM of the hash tag, mod 16384).
 * The vectors are Redis's own answers: "foo" → 12182 and "123456789" → 12739 are the examples of the cluster
 * specification; the others were checked with CLUSTER KEYSLOT (tests/integration/test_redis_cluster.py checks the same
 * function against a live cluster). */
#include <string.h>

#include "ficus/redis_cluster.h"
#include "runner.h"

static const struct {
    const char *key;
    unsigned slot;
} vectors[] = {
    {"foo", 12182},
    {"123456789", 12739},
    {"ficus:rl:{cls:bg}", 10699}, /* rate limit: the hash tag is the policy and the key */
    {"ficus:sso:s:{abc}", 7638},  /* an SSO session record */
    {"{ficus:shed}:level", 2296}, /* the fleet shedding keys share one slot */
    {"{ficus:shed}:instances", 2296},
    {"a{}b", 13694}, /* an empty tag: the whole key */
    {"{}", 15257},
    {"x{y}z{w}", 12222}, /* only the first tag counts */
    {"{user1000}.following", 3443},
    {"{user1000}.followers", 3443},
    {"", 0},
    {"{", 4092}, /* no closing brace: the whole key */
    {"}{x}", 16287},
};

FICUS_TEST(key_slots_match_redis)
{
    for (size_t i = 0; i != sizeof(vectors) / sizeof(vectors[0]); ++i)
        ok_int(ficus_redis_key_slot(vectors[i].key, strlen(vectors[i].key)), vectors[i].slot);
}

FICUS_TEST(slot_ignores_bytes_after_the_length)
{
    ok_int(ficus_redis_key_slot("foobar", 3), 12182);
    ok_int(ficus_redis_key_slot("{ab}", 3), ficus_redis_key_slot("{ab", 3)); /* the brace is past the length */
}
