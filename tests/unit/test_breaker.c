/* Unit tests of the circuit breaker (gateway/breaker.c) in both of its uses: the failure ratio over a sliding window
 * (upstreams.NAME.breaker) and consecutive failures with one trial (redis.breaker). Time is passed in, so every
 * transition is checked at exact instants, with no clock. */

#include "ficus/breaker.h"
#include "runner.h"

#define MS 1000ull /* now_us per millisecond */

static const ficus_breaker_conf_t ratio_conf = {
    .enabled = 1, .failure_ratio_percent = 50, .min_requests = 10, .window_ms = 10000, .open_for_ms = 5000};
static const ficus_breaker_conf_t consecutive_conf = {.enabled = 1, .consecutive_failures = 5, .open_for_ms = 1000, .trials = 1};

static int record(ficus_breaker_t *b, const ficus_breaker_conf_t *c, int is_trial, int failed, uint64_t now_us)
{
    uint64_t failures = 0, total = 0;
    return ficus_breaker_record(b, c, is_trial, failed, now_us, &failures, &total);
}

/* n failures of admitted, non-trial requests at now_us (the steps a test does not check one by one) */
static void fail_n(ficus_breaker_t *b, const ficus_breaker_conf_t *c, int n, uint64_t now_us)
{
    for (int i = 0; i != n; ++i)
        record(b, c, 0, 1, now_us);
}

static ficus_breaker_admit_t admit(ficus_breaker_t *b, const ficus_breaker_conf_t *c, uint64_t now_us)
{
    uint64_t retry_after_ms = 0;
    return ficus_breaker_admit(b, c, now_us, &retry_after_ms);
}

FICUS_TEST(ratio_opens_at_the_share_with_enough_requests)
{
    ficus_breaker_t b = {0};
    uint64_t now = 1000000 * MS;
    for (int i = 0; i != 5; ++i)
        ok_int(record(&b, &ratio_conf, 0, 0, now), -1);
    for (int i = 0; i != 4; ++i) /* 4 of 9 failed, below min_requests anyway */
        ok_int(record(&b, &ratio_conf, 0, 1, now), -1);
    ok_int(ficus_breaker_state(&b), FICUS_BREAKER_CLOSED);
    uint64_t failures = 0, total = 0;
    ok_int(ficus_breaker_record(&b, &ratio_conf, 0, 1, now, &failures, &total), FICUS_BREAKER_OPEN); /* 5 of 10 */
    ok_int(failures, 5);
    ok_int(total, 10);
    uint64_t retry_after_ms = 0;
    ok_int(ficus_breaker_admit(&b, &ratio_conf, now + 1000 * MS, &retry_after_ms), FICUS_BREAKER_REJECT);
    ok_int(retry_after_ms, 4000);
    ok(ficus_breaker_is_rejecting(&b, now + 4999 * MS));
    ok(!ficus_breaker_is_rejecting(&b, now + 5000 * MS));
}

FICUS_TEST(ratio_forgets_what_left_the_window)
{
    ficus_breaker_t b = {0};
    uint64_t now = 1000000 * MS;
    for (int i = 0; i != 9; ++i)
        ok_int(record(&b, &ratio_conf, 0, 1, now), -1); /* 9 failures, below min_requests */
    now += 11000 * MS;                                  /* the window (10 s) has moved past them */
    ok_int(record(&b, &ratio_conf, 0, 1, now), -1);
    ok_int(ficus_breaker_state(&b), FICUS_BREAKER_CLOSED);
}

FICUS_TEST(half_open_admits_a_few_trials_and_closes_on_their_success)
{
    ficus_breaker_t b = {0};
    uint64_t now = 1000000 * MS;
    fail_n(&b, &ratio_conf, 10, now);
    ok_int(ficus_breaker_state(&b), FICUS_BREAKER_OPEN);
    now += 5000 * MS;
    for (int i = 0; i != FICUS_BREAKER_TRIALS; ++i)
        ok_int(admit(&b, &ratio_conf, now), FICUS_BREAKER_TRIAL);
    ok_int(admit(&b, &ratio_conf, now), FICUS_BREAKER_REJECT); /* the trials are in flight */
    ok_int(ficus_breaker_state(&b), FICUS_BREAKER_HALF_OPEN);
    for (int i = 0; i != FICUS_BREAKER_TRIALS - 1; ++i)
        ok_int(record(&b, &ratio_conf, 1, 0, now), -1);
    ok_int(record(&b, &ratio_conf, 1, 0, now), FICUS_BREAKER_CLOSED);
    ok_int(admit(&b, &ratio_conf, now), FICUS_BREAKER_ALLOW);
    /* the window starts empty: one failure does not reopen it */
    ok_int(record(&b, &ratio_conf, 0, 1, now), -1);
}

FICUS_TEST(a_failed_trial_opens_again)
{
    ficus_breaker_t b = {0};
    uint64_t now = 1000000 * MS;
    fail_n(&b, &ratio_conf, 10, now);
    now += 5000 * MS;
    ok_int(admit(&b, &ratio_conf, now), FICUS_BREAKER_TRIAL);
    ok_int(record(&b, &ratio_conf, 1, 1, now), FICUS_BREAKER_OPEN);
    ok(ficus_breaker_is_rejecting(&b, now + 4999 * MS));
    ok_int(admit(&b, &ratio_conf, now + 5000 * MS), FICUS_BREAKER_TRIAL);
}

FICUS_TEST(an_abandoned_trial_frees_its_slot)
{
    ficus_breaker_t b = {0};
    uint64_t now = 1000000 * MS;
    fail_n(&b, &consecutive_conf, 5, now);
    now += 1000 * MS;
    ok_int(admit(&b, &consecutive_conf, now), FICUS_BREAKER_TRIAL);
    ok_int(admit(&b, &consecutive_conf, now), FICUS_BREAKER_REJECT); /* one trial at a time */
    ficus_breaker_abandon(&b, 1);
    ok_int(admit(&b, &consecutive_conf, now), FICUS_BREAKER_TRIAL);
}

FICUS_TEST(consecutive_failures_open_and_a_success_resets_the_count)
{
    ficus_breaker_t b = {0};
    uint64_t now = 1000000 * MS;
    for (int i = 0; i != 4; ++i)
        ok_int(record(&b, &consecutive_conf, 0, 1, now), -1);
    ok_int(record(&b, &consecutive_conf, 0, 0, now), -1); /* a reply: the count starts again */
    for (int i = 0; i != 4; ++i)
        ok_int(record(&b, &consecutive_conf, 0, 1, now), -1);
    ok_int(ficus_breaker_state(&b), FICUS_BREAKER_CLOSED);
    uint64_t failures = 0, total = 0;
    ok_int(ficus_breaker_record(&b, &consecutive_conf, 0, 1, now, &failures, &total), FICUS_BREAKER_OPEN);
    ok_int(failures, 5);
    ok(ficus_breaker_is_rejecting(&b, now + 999 * MS));
    /* late failures of commands sent before it opened do not move it */
    ok_int(record(&b, &consecutive_conf, 0, 1, now + 10 * MS), -1);
    ok_int(admit(&b, &consecutive_conf, now + 1000 * MS), FICUS_BREAKER_TRIAL);
    ok_int(record(&b, &consecutive_conf, 1, 0, now + 1000 * MS), FICUS_BREAKER_CLOSED); /* trials: 1 */
    for (int i = 0; i != 4; ++i)                                                        /* the count started again when it closed */
        ok_int(record(&b, &consecutive_conf, 0, 1, now + 1001 * MS), -1);
}

FICUS_TEST(no_rule_no_opening)
{
    static const ficus_breaker_conf_t none = {.enabled = 1, .open_for_ms = 1000};
    ficus_breaker_t b = {0};
    for (int i = 0; i != 1000; ++i)
        ok_int(record(&b, &none, 0, 1, 1000000 * MS), -1);
    ok_int(ficus_breaker_state(&b), FICUS_BREAKER_CLOSED);
}

FICUS_TEST(reset_closes_with_an_empty_count)
{
    ficus_breaker_t b = {0};
    uint64_t now = 1000000 * MS;
    fail_n(&b, &consecutive_conf, 5, now);
    ok_int(ficus_breaker_state(&b), FICUS_BREAKER_OPEN);
    ficus_breaker_reset(&b);
    ok_int(ficus_breaker_state(&b), FICUS_BREAKER_CLOSED);
    ok_int(admit(&b, &consecutive_conf, now), FICUS_BREAKER_ALLOW);
    for (int i = 0; i != 4; ++i)
        ok_int(record(&b, &consecutive_conf, 0, 1, now), -1);
}
