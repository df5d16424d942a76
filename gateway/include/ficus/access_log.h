/* The access log: one JSON line per request, buffered per worker.
 *
 * Lines are built in a per-worker buffer and written with one write(2) when the buffer passes 32 KiB or at the
 * latest 200 ms later (a timer), so logging costs no syscall per request and a quiet worker still flushes promptly.
 * Fields never include header values that may hold secrets (Authorization, Cookie) nor the query string. */
#ifndef ficus__access_log_h
#define ficus__access_log_h

#include "h2o.h"

typedef struct st_ficus_req_t ficus_req_t;
typedef struct st_ficus_config_t ficus_config_t;

typedef struct st_ficus_access_log_t {
    char *buf;
    size_t len, cap;
    int fd; /* where buf goes; a config switch to another fd flushes first */
    h2o_loop_t *loop;
    h2o_timeout_t flush_timeout;
    h2o_timeout_entry_t flush_entry;
} ficus_access_log_t;

void ficus_access_log_init(ficus_access_log_t *log, h2o_loop_t *loop);
void ficus_access_log_dispose(ficus_access_log_t *log);
/** Appends the line of a finished request (fd < 0: nothing). */
void ficus_access_log_write(ficus_access_log_t *log, int fd, ficus_req_t *req);
void ficus_access_log_flush(ficus_access_log_t *log);
/** SIGUSR1 (control thread): reopens config's access log file by its path onto the same descriptor, so that after a
 * rotation (`mv access.log access.log.1`) new lines go to a fresh file and none is lost. Not a file: nothing, 0.
 * -1 with err when the path cannot be opened (the old file keeps receiving lines). */
int ficus_access_log_reopen(const ficus_config_t *config, char *err, size_t errlen);

#endif
