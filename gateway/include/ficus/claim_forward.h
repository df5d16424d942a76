/* Verified identity claims → request headers for the upstream: the `forward: { claim: header }` mapping shared by the
 * jwt and sso plugins (one validation of the header names, one formatting of the values).
 *
 * NAMES: a header is an RFC 9110 token (tchar), stored lowercase. Refused, because a claim there would be a credential,
 * change routing or framing, or be overwritten / dropped by ficus's proxy: authorization, proxy-authorization, cookie,
 * host, connection, keep-alive, proxy-connection, te, trailer, transfer-encoding, upgrade, http2-settings,
 * content-length, expect, forwarded, x-real-ip, x-request-id and every x-forwarded-*; and any name with a '_' (CGI-style
 * readers take it for '-': a look-alike). One header per claim at most once per
 * mapping. Each name is registered with ficus_config_add_identity_header(), so client copies, and every '_'/'-'/case
 * variant of them, are stripped on every route of the generation, authenticated or not (gateway/req_hygiene.c).
 * VALUES (ficus_claim_value_format): a string as is; an array of strings none of which contains ',' joined with ","
 * (["a","b"] → a,b); anything else (number, bool, object, other arrays) as compact JSON. Not forwarded at all: a
 * missing or null claim, an empty result, a result longer than FICUS_CLAIM_VALUE_MAX bytes, and any result holding a
 * control character (< 0x20) or DEL — never a CR/LF into a header.
 * MEMORY: rules are malloc'd by ficus_claim_forwards_load and freed by ficus_claim_forwards_dispose; applying them
 * formats into a stack buffer and copies each value into the request's pool (strings, string arrays, integers and
 * booleans without any heap allocation; other JSON goes through json_dumpb). */
#ifndef ficus__claim_forward_h
#define ficus__claim_forward_h

#include <jansson.h>
#include <stddef.h>
#include "h2o.h"
#include "ficus/conf.h"
#include "ficus/req.h"

#define FICUS_CLAIM_VALUE_MAX 4096

typedef struct st_ficus_claim_forward_t {
    char *claim;
    h2o_iovec_t header; /* lowercase, NUL-terminated */
} ficus_claim_forward_t;

typedef struct st_ficus_claim_forwards_t {
    ficus_claim_forward_t *rules;
    size_t num;
} ficus_claim_forwards_t;

/**
 * Loads a `forward:` mapping (claim → header) into *out (zeroed first). Returns 0, or -1 with "file:line: ..." recorded
 * in cc for the offending node; on error *out holds what was loaded so far (ficus_claim_forwards_dispose frees it).
 * Registers every header as an identity header of cc->config.
 */
int ficus_claim_forwards_load(ficus_conf_ctx_t *cc, const ficus_node_t *mapping, ficus_claim_forwards_t *out);
/** Frees the rules (not `f` itself); `f` is left empty. */
void ficus_claim_forwards_dispose(ficus_claim_forwards_t *f);

/**
 * Formats one claim value for a header into buf (NUL-terminated). Returns its length, or 0 when it must not be
 * forwarded: v NULL or null, an empty result, a result that does not fit in cap - 1 bytes, a control character or DEL.
 */
size_t ficus_claim_value_format(const json_t *v, char *buf, size_t cap);
/** Adds one request header per rule whose claim formats to a value (values allocated from the request's pool). */
void ficus_claim_forwards_apply(const ficus_claim_forwards_t *f, ficus_req_t *r, const json_t *claims);

#endif
