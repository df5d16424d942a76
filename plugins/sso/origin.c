/* sso: ficus's own origin ("https://host[:port]"), from which the redirect_uri of a login and the default
 * post_logout_redirect_uri of a logout are built: external_url when configured, else the request's authority. */
#include <stdlib.h>
#include <string.h>
#include "ficus/log.h"
#include "sso.h"

/* "https://host[:port]" of this request, or external_url */
char *sso_origin_of(const sso_global_t *g, ficus_req_t *r)
{
    if (g->external_url != NULL)
        return sso_xstrdup(g->external_url);
    char *out;
    if (asprintf(&out, "https://%.*s", (int)r->h2o->authority.len, r->h2o->authority.base) < 0)
        ficus_fatal("no memory");
    return out;
}
