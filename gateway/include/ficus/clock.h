/* The process's monotonic clock: the one place ficus (gateway and plugins) reads CLOCK_MONOTONIC, for precise
 * durations (request, upstream and Redis timings) and for deadlines kept outside any event loop.
 *
 * Each call reads the kernel clock (usually through the vDSO, no system call), from any thread. It is NOT the loop's
 * cached clock: h2o_now(loop) is wall-clock milliseconds (gettimeofday in H2O 2.2.5) read once per event-loop
 * iteration, and is what H2O timeouts are measured with; use h2o_now() for deadlines on a loop, these for precise
 * elapsed times or where no loop is at hand. The two clocks have different origins: never compare a value of one
 * with a value of the other.
 * Milliseconds are ficus_mono_us() / 1000 (the same value as computing them from the timespec directly). */
#ifndef ficus__clock_h
#define ficus__clock_h

#include <stdint.h>
#include <time.h>

/** CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t ficus_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

/** CLOCK_MONOTONIC in microseconds (truncated). */
static inline uint64_t ficus_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

#endif
