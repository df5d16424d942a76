/* The error log: leveled lines on stderr, safe from any thread.
 *
 * Format: "2026-11-21T23:59:00.123Z [info] message". One write(2) per line so lines of different threads never
 * interleave. Callers must never pass secrets (tokens, cookies, passwords): log reasons and names, not values. */
#ifndef ficus__log_h
#define ficus__log_h

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
