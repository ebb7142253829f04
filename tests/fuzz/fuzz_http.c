/*
 * fuzz_http.c - libFuzzer harness for the HTTP request head parser.
 *
 * Besides crashes it checks that every slice lies inside the input, that any
 * shorter prefix of an accepted head is EM_AGAIN, and that the master's
 * em_http_peek_param() agrees with the full parse.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "em_http.h"

#define FUZZ_ASSERT(c) do { if (!(c)) { abort(); } } while (0)

static void
check_inside(em_str_t s, const char *lo, const char *hi)
{
    FUZZ_ASSERT(s.len == 0 || s.data != NULL);
    if (s.data != NULL) {
        FUZZ_ASSERT(s.data >= lo && s.data + s.len <= hi);
    }
}

static void
check_query(em_str_t query)
{
    em_str_t k, v;
    size_t   pos = 0, last = 0, n = 0;
    char     out[256];

    while (em_http_query_next(query, &pos, &k, &v)) {
        ssize_t dec;

        FUZZ_ASSERT(pos > last && pos <= query.len);
        last = pos;
        check_inside(k, query.data, query.data + query.len);
        check_inside(v, query.data, query.data + query.len);
        dec = em_http_pct_decode(v, out, sizeof(out));
        FUZZ_ASSERT(dec >= -1 && (dec < 0 || (size_t) dec <= v.len));
        FUZZ_ASSERT(++n <= query.len);
    }
    FUZZ_ASSERT(em_http_query_get(query, "EIO", out, sizeof(out)) >= -2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char   *buf = (const char *) data;
    em_http_req_t req, again;
    em_str_t      sid;
    const char   *end;
    size_t        i;
    int           rc, prc;

    rc = em_http_parse(buf, size, &req);
    FUZZ_ASSERT(rc == EM_OK || rc == EM_AGAIN || rc == EM_ERROR || rc == EM_DECLINED);
    prc = em_http_peek_param(buf, size, "sid", &sid);
    FUZZ_ASSERT(prc == EM_OK || prc == EM_AGAIN || prc == EM_ERROR || prc == EM_DECLINED);
    if (prc == EM_OK) {
        check_inside(sid, buf, buf + size);
    }
    if (rc == EM_AGAIN) {
        FUZZ_ASSERT(size <= EM_HTTP_MAX_HEAD);
    }
    if (rc != EM_OK) {
        return 0;
    }

    end = buf + req.head_len;
    FUZZ_ASSERT(req.head_len > 0 && req.head_len <= size && req.head_len <= EM_HTTP_MAX_HEAD);
    FUZZ_ASSERT(req.nheaders <= EM_HTTP_MAX_HEADERS);
    FUZZ_ASSERT(req.minor == 0 || req.minor == 1);
    FUZZ_ASSERT(req.content_length >= -1);
    FUZZ_ASSERT(!req.chunked || req.content_length == -1);
    FUZZ_ASSERT(req.method >= EM_HTTP_GET && req.method <= EM_HTTP_OTHER);
    FUZZ_ASSERT(req.method_str.len > 0 && req.target.len > 0);
    check_inside(req.method_str, buf, end);
    check_inside(req.target, buf, end);
    check_inside(req.path, req.target.data, req.target.data + req.target.len);
    check_inside(req.query, req.target.data, req.target.data + req.target.len);
    for (i = 0; i < req.nheaders; i++) {
        em_str_t v = req.headers[i].value;

        FUZZ_ASSERT(req.headers[i].name.len > 0);
        check_inside(req.headers[i].name, buf, end);
        check_inside(v, buf, end);
        FUZZ_ASSERT(v.len == 0 || (v.data[0] != ' ' && v.data[v.len - 1] != ' '
                                   && v.data[0] != '\t' && v.data[v.len - 1] != '\t'));
        FUZZ_ASSERT(em_http_header(&req, "host") == NULL
                    || em_str_caseeq(em_http_header(&req, "host")->name, "host"));
        (void) em_http_has_token(v, "upgrade");
    }
    check_query(req.query);

    /* The bytes after the head do not matter, and any prefix of the head is
     * incomplete (never an error: the head may be split anywhere). */
    FUZZ_ASSERT(em_http_parse(buf, req.head_len, &again) == EM_OK);
    FUZZ_ASSERT(again.head_len == req.head_len && again.nheaders == req.nheaders);
    FUZZ_ASSERT(em_http_parse(buf, req.head_len - 1, &again) == EM_AGAIN);
    FUZZ_ASSERT(em_http_parse(buf, req.head_len / 2, &again) == EM_AGAIN);

    /* The master sees the same request line as the worker. */
    FUZZ_ASSERT(prc == EM_OK || prc == EM_DECLINED);
    if (prc == EM_OK) {
        check_inside(sid, req.query.data, req.query.data + req.query.len);
    }
    return 0;
}
