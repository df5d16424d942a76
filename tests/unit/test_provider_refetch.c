/* Unit tests of gateway/provider_refetch.c's refetch budget (a sliding window: at most `budget` forced refetches in
 * any window) and its kid lookup in a key set. The file is included to reach its statics; the rest of it (answers
 * to workers, the negative cache) is covered by tests/integration/test_jwks_refetch.py. */
#include <string.h>

#include "runner.h"
#include "provider_refetch.c"

static void init_budget(struct st_ficus_provider_refetch_t *r, uint64_t *ring, uint64_t budget, uint64_t window_ms)
{
    memset(r, 0, sizeof(*r));
    r->budget = budget;
    r->window_ms = window_ms;
    r->spent_at = ring;
}

FICUS_TEST(budget_allows_n_per_window)
{
    uint64_t ring[3], free_in = 0;
    struct st_ficus_provider_refetch_t r;
    init_budget(&r, ring, 3, 60000);
    ok(budget_take(&r, 1000, &free_in));
    ok(budget_take(&r, 1000, &free_in));
    ok(budget_take(&r, 5000, &free_in));
    ok(!budget_take(&r, 5000, &free_in));
    ok_int(free_in, 56000); /* the first two come back at 61000 */
    ok(!budget_take(&r, 60999, &free_in));
    ok_int(free_in, 1);
    ok(budget_take(&r, 61000, &free_in)); /* one window after the first */
    ok(budget_take(&r, 61000, &free_in)); /* and the second */
    ok(!budget_take(&r, 61000, &free_in));
    ok_int(free_in, 4000); /* the third (5000) is the oldest now */
    ok(budget_take(&r, 65000, &free_in));
    ok(!budget_take(&r, 120999, &free_in));
    ok(budget_take(&r, 121000, &free_in));
}

FICUS_TEST(budget_never_more_than_n_in_any_window)
{
    /* a request every 7 ms for 10 windows: every window of 1000 ms holds at most 4 granted refetches */
    uint64_t ring[4], free_in, granted[64];
    size_t n = 0;
    struct st_ficus_provider_refetch_t r;
    init_budget(&r, ring, 4, 1000);
    for (uint64_t t = 0; t < 10000; t += 7)
        if (budget_take(&r, t, &free_in) && n < 64)
            granted[n++] = t;
    ok_int(n, 40);
    for (size_t i = 4; i < n; ++i)
        ok(granted[i] - granted[i - 4] >= 1000);
}

FICUS_TEST(budget_zero_never_refetches)
{
    uint64_t free_in = 0;
    struct st_ficus_provider_refetch_t r;
    init_budget(&r, NULL, 0, 60000);
    ok(!budget_take(&r, 0, &free_in));
    ok(!budget_take(&r, 1000000, &free_in));
    ok_int(free_in, 60000);
}

FICUS_TEST(jwks_has_kid_is_exact)
{
    ficus_jwk_t k[2] = {{.kid = "k1"}, {.kid = NULL}};
    ficus_jwks_t set = {.keys = k, .num_keys = 2};
    ok(ficus__provider_jwks_has_kid(&set, "k1", 2));
    ok(!ficus__provider_jwks_has_kid(&set, "k", 1));
    ok(!ficus__provider_jwks_has_kid(&set, "k10", 3));
    ok(!ficus__provider_jwks_has_kid(&set, "k1\0", 3)); /* a kid with a NUL is not "k1" */
    ok(!ficus__provider_jwks_has_kid(NULL, "k1", 2));
}
