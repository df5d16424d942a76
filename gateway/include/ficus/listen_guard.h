/* Exclusive listen addresses (gateway/listen_guard.c): refuse to share a listener's SO_REUSEPORT group with
 * another process. Control thread only (reads /proc). */
#ifndef ficus__listen_guard_h
#define ficus__listen_guard_h

#include <stddef.h>
#include <sys/socket.h>
#include "ficus/server.h"

/**
 * Checks that no socket other than fds (ficus's own, bound to `ss`) listens on an overlapping address (same port;
 * equal address, or either side a wildcard). Returns 0, or -1 with "cannot listen on ADDRESS: ..." in err.
 */
int ficus_listen_check_exclusive(const char *address, const struct sockaddr_storage *ss, const int *fds, size_t num_fds, char *err,
                                 size_t errlen);
/** The same for every listener of config, with the sockets of every worker of s. 0 or -1 with err. */
int ficus_listen_guard_check(const ficus_server_t *s, const ficus_config_t *config, char *err, size_t errlen);
/** Before binding at start-up: the same for every listener of config, fds being the sockets we hold already (passed
 * by the previous process in a binary upgrade; none otherwise). 0 or -1 with err. */
int ficus_listen_guard_precheck(const ficus_config_t *config, const int *fds, size_t num_fds, char *err, size_t errlen);

#endif
