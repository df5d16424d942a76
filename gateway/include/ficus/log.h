/* The error log: leveled lines on stderr, safe from any thread.
 *
 * Format: "2026-11-21T23:59:00.123Z [info] message". One write(2) per line so lines of different threads never
 * interleave. Callers must never pass secrets (tokens, cookies, passwords): log reasons and names, not values. */
#ifndef ficus__log_h
#define ficus__log_h

#include <stddef.h>

typedef enum enum_ficus_log_level_t {
    FICUS_LOG_ERROR = 0,
    FICUS_LOG_WARN,
    FICUS_LOG_INFO,
    FICUS_LOG_DEBUG,
} ficus_log_level_t;

extern volatile int ficus_log_level; /* lines above this level are dropped */

/** Writes one line to stderr at `level` (dropped when above ficus_log_level). */
void ficus_log(ficus_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Logs at error level and aborts the process: for broken invariants and out-of-memory only. */
void ficus_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/** Writes one line (n bytes, normally ending in a newline) to stderr through the limiter: a repetition of the
 * previous line is counted ("... last message repeated N times"), lines over the rate limit are counted and
 * reported (gateway/log_limit.c). Any thread. */
void ficus_log_limit_write(const char *s, size_t n);
/** Writes the pending "repeated N times" note, if any (the control thread calls it every second). */
void ficus_log_limit_flush(void);
/** Makes the C library's `stderr` stream (libh2o's output, any library's) go through the limiter. Call once at
 * start, before threads exist. fd 2 itself is unchanged. */
void ficus_log_limit_install(void);
/** Formats the current UTC time as RFC 3339 with milliseconds into buf (at least 32 bytes). Returns length. */
int ficus_log_timestamp(char *buf, unsigned long bufsize);

#define ficus_error(...) ficus_log(FICUS_LOG_ERROR, __VA_ARGS__)
#define ficus_warn(...) ficus_log(FICUS_LOG_WARN, __VA_ARGS__)
#define ficus_info(...) ficus_log(FICUS_LOG_INFO, __VA_ARGS__)
#define ficus_debug(...)                                                                                                           \
    do {                                                                                                                           \
        if (ficus_log_level >= FICUS_LOG_DEBUG)                                                                                    \
            ficus_log(FICUS_LOG_DEBUG, __VA_ARGS__);                                                                               \
    } while (0)

#endif
