/* Unit tests of the embedded rate-limit store (plugins/rate_limit/local_store.c). */
#include <stdint.h>
#include "runner.h"
#include "rate_limit/local_store.h"

FICUS_TEST(burst_then_steady_rate)
{
    ficus_rl_decision_t d;
    uint64_t now = 1000000000, t = 100000000; /* 10/s */
    int allowed = 0;
    for (int i = 0; i != 10; ++i) {
        ficus_rl_local_decide(42, t, 5, now, &d);
        allowed += d.allowed;
    }
    ok_int(allowed, 5); /* burst 5 at once */
    ok(d.retry_after_us > 0 && d.retry_after_us <= 100000);
    ficus_rl_local_decide(42, t, 5, now + t, &d); /* one emission interval later: one more */
    ok(d.allowed);
    ficus_rl_local_decide(42, t, 5, now + t, &d);
    ok(!d.allowed);
}

FICUS_TEST(keys_are_independent)
{
    ficus_rl_decision_t d;
    uint64_t now = 5000000000;
    ficus_rl_local_decide(7, 1000000000, 1, now, &d);
    ok(d.allowed);
    ficus_rl_local_decide(7, 1000000000, 1, now, &d);
    ok(!d.allowed);
    ficus_rl_local_decide(8, 1000000000, 1, now, &d);
    ok(d.allowed);
}

FICUS_TEST(huge_rates_never_divide_by_zero)
{
    /* limit 10M per 1 s rounds the emission interval to 0 ns at some configurations: it must not crash (SIGFPE) */
    ficus_rl_decision_t d;
    uint64_t now = 9000000000;
    for (int i = 0; i != 1000; ++i) {
        ficus_rl_local_decide(99, 0, 1000000, now + i, &d);
        if (!ok(d.allowed))
            return;
    }
}
