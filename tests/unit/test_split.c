/* Unit tests of gateway/split.c, the bucket mapping of `split:`: sticky (same key, same upstream), shares within
 * ±2 percentage points of the weights over 10,000 distinct keys, monotonic ramps for two upstreams (users only move
 * old → new over 0→1→10→50→100 %) and for three or more (raising one weight only moves users onto it; lowering one
 * only moves users off it; nobody moves between upstreams whose weights stayed), independence from list order, a
 * salt that reshuffles, weight 0. */
#include <stdio.h>
#include <string.h>

#include "ficus/split.h"
#include "runner.h"

#define NKEYS 10000

static void targets_init(ficus_split_target_t *t, const char *const *names, const uint64_t *weights, size_t n)
{
    for (size_t i = 0; i != n; ++i) {
        t[i].name = names[i];
        t[i].weight = weights[i];
        t[i].name_hash = ficus_split_name_hash(names[i], strlen(names[i]));
    }
}

static uint64_t key_bucket(const char *salt, size_t i)
{
    char key[32];
    int n = snprintf(key, sizeof(key), "user-%zu", i);
    return ficus_split_bucket(salt, strlen(salt), key, (size_t)n);
}

/* picks[i] = index of the target of key i */
static void pick_all(const ficus_split_target_t *t, size_t n, const char *salt, size_t *picks)
{
    for (size_t i = 0; i != NKEYS; ++i)
        picks[i] = ficus_split_pick(t, n, key_bucket(salt, i));
}

/* Checks that every target's share over NKEYS keys is within ±2 points of its weight's share. */
static void check_shares(const char *const *names, const uint64_t *weights, size_t n)
{
    ficus_split_target_t t[8];
    static size_t picks[NKEYS];
    size_t counts[8] = {0};
    uint64_t total = 0;
    targets_init(t, names, weights, n);
    pick_all(t, n, "orders", picks);
    for (size_t i = 0; i != NKEYS; ++i) {
        if (!ok(picks[i] < n))
            return;
        ++counts[picks[i]];
    }
    for (size_t j = 0; j != n; ++j)
        total += weights[j];
    for (size_t j = 0; j != n; ++j) {
        double want = 100.0 * weights[j] / total, got = 100.0 * counts[j] / NKEYS;
        if (!ok(got >= want - 2 && got <= want + 2))
            printf("#     target %s weight %llu: %.2f %% (want %.2f %% ± 2)\n", names[j], (unsigned long long)weights[j], got,
                   want);
    }
}

FICUS_TEST(sticky_same_key_same_upstream)
{
    const char *names[] = {"orders", "monolith"};
    uint64_t w[] = {10, 90};
    ficus_split_target_t t[2];
    targets_init(t, names, w, 2);
    for (size_t i = 0; i != 1000; ++i) {
        size_t a = ficus_split_pick(t, 2, key_bucket("s", i));
        for (int k = 0; k != 3; ++k)
            ok_int(ficus_split_pick(t, 2, key_bucket("s", i)), a);
    }
    ok(ficus_split_bucket("s", 1, "ab", 2) == ficus_split_bucket("s", 1, "ab", 2));
    /* salt and key are kept apart: ("sa", "b") is not ("s", "ab") */
    ok(ficus_split_bucket("sa", 2, "b", 1) != ficus_split_bucket("s", 1, "ab", 2));
}

FICUS_TEST(shares_within_two_points)
{
    {
        const char *names[] = {"orders", "monolith"};
        uint64_t cases[][2] = {{10, 90}, {1, 99}, {50, 50}, {99, 1}, {20, 80}, {3, 7}};
        for (size_t c = 0; c != sizeof(cases) / sizeof(cases[0]); ++c)
            check_shares(names, cases[c], 2);
    }
    {
        const char *names[] = {"a", "b", "c"};
        uint64_t cases[][3] = {{1, 1, 1}, {20, 30, 50}, {5, 90, 5}, {1, 0, 1}};
        for (size_t c = 0; c != sizeof(cases) / sizeof(cases[0]); ++c)
            check_shares(names, cases[c], 3);
    }
    {
        const char *names[] = {"v1", "v2", "v3", "v4", "v5"};
        uint64_t w[] = {10, 20, 30, 25, 15};
        check_shares(names, w, 5);
    }
}

FICUS_TEST(two_upstream_ramp_only_moves_old_to_new)
{
    const char *names[] = {"monolith", "orders"};
    static const uint64_t ramp[][2] = {{100, 0}, {99, 1}, {90, 10}, {50, 50}, {0, 100}};
    static size_t prev[NKEYS], cur[NKEYS];
    ficus_split_target_t t[2];
    size_t moved_total = 0;
    for (size_t s = 0; s != sizeof(ramp) / sizeof(ramp[0]); ++s) {
        targets_init(t, names, ramp[s], 2);
        pick_all(t, 2, "orders-2026", cur);
        size_t on_new = 0;
        for (size_t i = 0; i != NKEYS; ++i) {
            on_new += cur[i] == 1;
            if (s != 0 && prev[i] == 1 && !ok(cur[i] == 1)) {
                printf("#     key %zu went back new -> old at step %zu\n", i, s);
                return;
            }
            moved_total += s != 0 && prev[i] != cur[i];
        }
        double share = 100.0 * on_new / NKEYS, want = (double)ramp[s][1];
        if (!ok(share >= want - 2 && share <= want + 2))
            printf("#     step %zu: %.2f %% on new (want %.0f)\n", s, share, want);
        memcpy(prev, cur, sizeof(cur));
    }
    ok_int(moved_total, NKEYS); /* every key moved exactly once over the whole ramp */
}

/* From weights `a` to weights `b` (one weight changed): the users who moved all moved onto the raised target (or
 * off the lowered one); nobody moved between the others. */
static void check_one_change(const char *const *names, const uint64_t *a, const uint64_t *b, size_t n)
{
    ficus_split_target_t ta[8], tb[8];
    static size_t pa[NKEYS], pb[NKEYS];
    size_t changed = SIZE_MAX, moved = 0;
    for (size_t j = 0; j != n; ++j)
        if (a[j] != b[j])
            changed = j;
    targets_init(ta, names, a, n);
    targets_init(tb, names, b, n);
    pick_all(ta, n, "x", pa);
    pick_all(tb, n, "x", pb);
    int raised = b[changed] > a[changed];
    for (size_t i = 0; i != NKEYS; ++i) {
        if (pa[i] == pb[i])
            continue;
        ++moved;
        if (raised ? !ok(pb[i] == changed) : !ok(pa[i] == changed)) {
            printf("#     key %zu moved %s -> %s when only %s changed\n", i, names[pa[i]], names[pb[i]], names[changed]);
            return;
        }
    }
    ok(moved != 0);
}

FICUS_TEST(three_upstreams_monotonic)
{
    const char *names[] = {"monolith", "orders", "billing"};
    uint64_t a[] = {60, 20, 20}, raise_first[] = {80, 20, 20}, raise_mid[] = {60, 50, 20}, raise_last[] = {60, 20, 70},
             lower_mid[] = {60, 5, 20}, zero_first[] = {0, 20, 20};
    check_one_change(names, a, raise_first, 3);
    check_one_change(names, a, raise_mid, 3);
    check_one_change(names, a, raise_last, 3);
    check_one_change(names, a, lower_mid, 3);
    check_one_change(names, a, zero_first, 3);
    check_one_change(names, zero_first, a, 3);
    const char *names4[] = {"a", "b", "c", "d"};
    uint64_t w4[] = {10, 20, 30, 40}, w4b[] = {10, 45, 30, 40};
    check_one_change(names4, w4, w4b, 4);
}

FICUS_TEST(list_order_does_not_matter)
{
    const char *n1[] = {"a", "b", "c"}, *n2[] = {"c", "a", "b"};
    uint64_t w1[] = {10, 20, 70}, w2[] = {70, 10, 20};
    ficus_split_target_t t1[3], t2[3];
    targets_init(t1, n1, w1, 3);
    targets_init(t2, n2, w2, 3);
    for (size_t i = 0; i != NKEYS; ++i) {
        uint64_t b = key_bucket("o", i);
        if (!ok_str(n1[ficus_split_pick(t1, 3, b)], n2[ficus_split_pick(t2, 3, b)]))
            return;
    }
}

FICUS_TEST(new_salt_reshuffles)
{
    const char *names[] = {"a", "b"};
    uint64_t w[] = {50, 50};
    ficus_split_target_t t[2];
    targets_init(t, names, w, 2);
    size_t differ = 0;
    for (size_t i = 0; i != NKEYS; ++i)
        differ += ficus_split_pick(t, 2, key_bucket("exp-1", i)) != ficus_split_pick(t, 2, key_bucket("exp-2", i));
    /* independent experiments: about half of the users change sides */
    ok(differ > NKEYS * 45 / 100 && differ < NKEYS * 55 / 100);
}

FICUS_TEST(weight_zero_never_picked)
{
    const char *names[] = {"a", "b", "c"};
    uint64_t w[] = {0, 1, 0}, none[] = {0, 0, 0};
    ficus_split_target_t t[3];
    targets_init(t, names, w, 3);
    for (size_t i = 0; i != 1000; ++i)
        ok_int(ficus_split_pick(t, 3, key_bucket("z", i)), 1);
    targets_init(t, names, none, 3);
    ok(ficus_split_pick(t, 3, 12345) == SIZE_MAX);
    ok(ficus_split_pick(t, 0, 12345) == SIZE_MAX);
    /* extreme buckets stay finite */
    uint64_t w2[] = {1, 1000000, 1};
    targets_init(t, names, w2, 3);
    ok(ficus_split_pick(t, 3, 0) < 3);
    ok(ficus_split_pick(t, 3, UINT64_MAX) < 3);
}
