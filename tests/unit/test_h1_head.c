/* Unit tests of gateway/h1_head.c: raw HTTP/1.1 request heads with repeated Host, CL+TE, differing Content-Lengths,
 * repeated Transfer-Encoding and obs-fold. */
#include <string.h>

#include "ficus/h1_head.h"
#include "runner.h"

#define CHECK(s) ficus_h1_head_check(s, strlen(s))

FICUS_TEST(ordinary_heads)
{
    ok_int(CHECK("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), FICUS_H1_HEAD_OK);
    ok_int(CHECK("GET / HTTP/1.1\nHost: a\nX: y\n\n"), FICUS_H1_HEAD_OK);
    ok_int(CHECK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"), FICUS_H1_HEAD_OK);
    ok_int(CHECK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length:  5 \r\n\r\n"), FICUS_H1_HEAD_OK);
    ok_int(CHECK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"), FICUS_H1_HEAD_OK);
    ok_int(CHECK("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), FICUS_H1_HEAD_OK);
    /* what follows the head (a pipelined request) is not read */
    ok_int(CHECK("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), FICUS_H1_HEAD_OK);
    ok_int(CHECK("GET / HTTP/1.1\r\nHost: a\r\n"), FICUS_H1_HEAD_INCOMPLETE);
    ok_int(CHECK("GET / HTTP/1.1"), FICUS_H1_HEAD_INCOMPLETE);
    ok_int(CHECK(""), FICUS_H1_HEAD_INCOMPLETE);
}

FICUS_TEST(smuggling_and_host)
{
    ok_int(CHECK("GET / HTTP/1.1\r\nHost: a\r\nHOST: b\r\n\r\n"), FICUS_H1_HEAD_DUPLICATE_HOST);
    ok_int(CHECK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), FICUS_H1_HEAD_CL_AND_TE);
    ok_int(CHECK("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"), FICUS_H1_HEAD_CL_AND_TE);
    ok_int(CHECK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), FICUS_H1_HEAD_CL_CONFLICT);
    ok_int(CHECK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n"), FICUS_H1_HEAD_CL_CONFLICT);
    ok_int(CHECK("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
           FICUS_H1_HEAD_TE_REPEATED);
    ok_int(CHECK("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n"), FICUS_H1_HEAD_OBS_FOLD);
    ok_int(CHECK("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n\tTransfer-Encoding: chunked\r\n\r\n"), FICUS_H1_HEAD_OBS_FOLD);
    ok_str(ficus_h1_head_error_code(FICUS_H1_HEAD_CL_AND_TE), "bad_framing");
    ok_str(ficus_h1_head_error_code(FICUS_H1_HEAD_DUPLICATE_HOST), "duplicate_host");
}
