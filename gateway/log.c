/* The error log (see ficus/log.h): formatting; gateway/log_limit.c dedups and rate-limits what is written. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "ficus/log.h"

volatile int ficus_log_level = FICUS_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int ficus_log_timestamp(char *buf, unsigned long bufsize)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    return snprintf(buf, bufsize, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

static void vlog(ficus_log_level_t level, int direct, const char *fmt, va_list args)
{
    char line[2048];
    int off = ficus_log_timestamp(line, sizeof(line));
    off += snprintf(line + off, sizeof(line) - off, " [%s] ", level_names[level]);
    int n = vsnprintf(line + off, sizeof(line) - off - 1, fmt, args);
    if (n < 0)
        n = 0;
    off += n;
    if ((size_t)off > sizeof(line) - 2)
        off = sizeof(line) - 2;
    line[off++] = '\n';
    if (direct) {
        ssize_t unused = write(2, line, off);
        (void)unused;
    } else {
        ficus_log_limit_write(line, off);
    }
}

void ficus_log(ficus_log_level_t level, const char *fmt, ...)
{
    if ((int)level > ficus_log_level)
        return;
    va_list args;
    va_start(args, fmt);
    vlog(level, 0, fmt, args);
    va_end(args);
}

void ficus_fatal(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vlog(FICUS_LOG_ERROR, 1, fmt, args); /* straight to fd 2: the process is about to abort */
    va_end(args);
    abort();
}
