/* The error log's limiter: every line bound for stderr, libh2o's own output included, is deduplicated and
 * rate-limited (see ficus/log.h).
 *
 * Why: libh2o 2.2.5 prints to stderr from inside its protocol code (one line per skipped unknown HTTP/2 frame type:
 * 7 million lines, 177 MB in 12 s from one client), and a client must not be able to fill a disk or drown the
 * operator's log.
 * DESIGN: ficus's own lines (ficus_log) come here directly. The C library's `stderr` stream, which libh2o (and any
 * library) writes through, is replaced by a line-buffered stream whose writes come here too (glibc's stdin/stdout/
 * stderr are assignable variables; fopencookie gives the stream). fd 2 itself is untouched, so what bypasses stdio
 * (sanitizer reports, a fatal message before abort()) still reaches it at once.
 *   - dedup: of consecutive equal lines (ignoring ficus's timestamp) the first FICUS_LOG_REPEAT_SHOWN are written
 *     (an event that really happens a few times in a row stays visible), the rest counted; the count is written
 *     as "... last message repeated N times" when another line comes or at the next flush (the control thread
 *     calls ficus_log_limit_flush() every second);
 *   - rate: a token bucket of FICUS_LOG_BURST lines refilled at FICUS_LOG_RATE lines per second; lines beyond it
 *     are counted and reported as "... N lines suppressed (log rate limit)" once tokens are back.
 * THREADING: one mutex; a log line is never on a request's fast path, and floods are cut short here.
 * BOUNDS: lines longer than FICUS_LOG_LINE_MAX are cut; one write(2) per line. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "ficus/log.h"

#define FICUS_LOG_RATE 200.0 /* lines per second */
#define FICUS_LOG_BURST 1000.0
#define FICUS_LOG_LINE_MAX 2048
#define FICUS_LOG_REPEAT_SHOWN 5

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static char last[FICUS_LOG_LINE_MAX];
static size_t last_len;
static unsigned long long shown, repeats, suppressed; /* shown: consecutive writes of `last` */
static double tokens = FICUS_LOG_BURST, refilled_at;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void put(const char *s, size_t n)
{
    ssize_t unused = write(2, s, n);
    (void)unused;
}

static void put_note(const char *fmt, unsigned long long n)
{
    char line[160], ts[40];
    ficus_log_timestamp(ts, sizeof(ts));
    int len = snprintf(line, sizeof(line), fmt, ts, n);
    put(line, (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1);
}

static void flush_locked(void)
{
    if (repeats != 0)
        put_note("%s [warn] ... last message repeated %llu times\n", repeats);
    repeats = 0;
}

/* the message without ficus's "TIMESTAMP " prefix (lines from other sources have none) */
static const char *message_of(const char *s, size_t n, size_t *mlen)
{
    if (n > 25 && s[4] == '-' && s[10] == 'T' && s[23] == 'Z' && s[24] == ' ') {
        *mlen = n - 25;
        return s + 25;
    }
    *mlen = n;
    return s;
}

void ficus_log_limit_write(const char *s, size_t n)
{
    if (n > FICUS_LOG_LINE_MAX - 1) {
        n = FICUS_LOG_LINE_MAX - 1;
    }
    size_t mlen;
    const char *m = message_of(s, n, &mlen);
    pthread_mutex_lock(&mutex);
    int same = mlen == last_len && memcmp(m, last, mlen) == 0;
    if (same && shown >= FICUS_LOG_REPEAT_SHOWN) {
        ++repeats;
        goto Exit;
    }
    double now = now_s();
    tokens += (now - refilled_at) * FICUS_LOG_RATE;
    refilled_at = now;
    if (tokens > FICUS_LOG_BURST)
        tokens = FICUS_LOG_BURST;
    if (tokens < 1) {
        ++suppressed;
        goto Exit;
    }
    tokens -= 1;
    if (!same) {
        flush_locked();
        shown = 0;
    }
    ++shown;
    if (suppressed != 0) {
        put_note("%s [warn] ... %llu lines suppressed (log rate limit)\n", suppressed);
        suppressed = 0;
    }
    memcpy(last, m, mlen);
    last_len = mlen;
    if (n != 0 && s[n - 1] != '\n') {
        put(s, n);
        put("\n", 1);
    } else {
        put(s, n);
    }
Exit:
    pthread_mutex_unlock(&mutex);
}

void ficus_log_limit_flush(void)
{
    pthread_mutex_lock(&mutex);
    flush_locked();
    pthread_mutex_unlock(&mutex);
}

/* the replacement stderr stream: stdio hands over what it buffered (a line, or several, or a piece of a long one) */
static ssize_t stream_write(void *cookie, const char *buf, size_t size)
{
    (void)cookie;
    size_t off = 0;
    while (off != size) {
        const char *nl = memchr(buf + off, '\n', size - off);
        size_t n = nl != NULL ? (size_t)(nl - (buf + off)) + 1 : size - off;
        ficus_log_limit_write(buf + off, n);
        off += n;
    }
    return (ssize_t)size;
}

void ficus_log_limit_install(void)
{
    static const cookie_io_functions_t funcs = {NULL, stream_write, NULL, NULL};
    FILE *fp = fopencookie(NULL, "w", funcs);
    if (fp == NULL)
        return; /* stderr stays as it was: unlimited, but nothing is lost */
    setvbuf(fp, NULL, _IOLBF, FICUS_LOG_LINE_MAX);
    fflush(stderr);
    stderr = fp;
}
