/* The forwarding headers ficus sets on every upstream request, and how header names are compared for look-alikes.
 *
 * OWN HEADERS: x-forwarded-for, forwarded, x-real-ip, x-forwarded-proto, x-forwarded-host, x-request-id. The client's
 * copies never reach an upstream as sent: X-Forwarded-For and Forwarded are appended to, and X-Real-IP kept, only
 * when the peer is in server.trusted_proxies; otherwise all three say the peer. X-Forwarded-Host is the validated
 * authority, absent when the request had none; X-Forwarded-Proto is the listener's scheme.
 * LOOK-ALIKES: CGI, WSGI, PHP and many frameworks read X_User_Id, x-user-id and X-USER-ID as one variable
 * (HTTP_X_USER_ID); ficus_header_name_variant_eq compares names that way. */
#ifndef ficus__forwarding_h
#define ficus__forwarding_h

#include <stddef.h>
#include "h2o.h"

typedef struct st_ficus_req_t ficus_req_t;

/** Whether names a and b are one variable to a CGI-style reader: equal ignoring case, with '_' equal to '-'. */
int ficus_header_name_variant_eq(const char *a, size_t alen, const char *b, size_t blen);
/** Whether `name` is (a look-alike of) one of the forwarding headers ficus sets itself (list above). */
int ficus_forwarding_is_own(const char *name, size_t len);
/** The forwarding header lines for r's upstream request, each ending in CRLF (allocated from the request's pool). */
h2o_iovec_t ficus_forwarding_headers(ficus_req_t *r);

#endif
