/*
 * test_http.c - unit tests of proto/em_http_head.c, em_http_query.c and em_str.c.
 *
 * Table-driven: every row of a table is its own loop test, so each shows up
 * as one TAP line.
 */
#include <check.h>

#include "em_check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "em_http.h"


/* ---- em_str ------------------------------------------------------------ */

static const struct {
    const char *a;
    const char *lit;
    int         eq, caseeq;
} str_cases[] = {
    { "", "", 1, 1 },
    { "abc", "abc", 1, 1 },
    { "abc", "ABC", 0, 1 },
    { "Content-Length", "content-length", 0, 1 },
    { "abc", "abcd", 0, 0 },
    { "abcd", "abc", 0, 0 },
    { "abc", "", 0, 0 },
    { "", "a", 0, 0 },
    { "a[c", "a{c", 0, 0 },     /* '[' | 0x20 == '{': must not fold */
    { "@", "`", 0, 0 },
};

START_TEST(test_str_eq)
{
    em_str_t a = S(str_cases[_i].a);

    ck_assert_int_eq(em_str_eq(a, str_cases[_i].lit), str_cases[_i].eq);
    ck_assert_int_eq(em_str_caseeq(a, str_cases[_i].lit), str_cases[_i].caseeq);
}
END_TEST

START_TEST(test_str_null_slice)
{
    ck_assert(em_str_eq(EM_NULL_STR, ""));
    ck_assert(em_str_caseeq(EM_NULL_STR, ""));
    ck_assert(!em_str_eq(EM_NULL_STR, "x"));
}
END_TEST

/* ---- em_http_parse: status of whole inputs ------------------------------ */

static const struct {
    const char *name;
    const char *in;
    size_t      len;
    int         rc;
} parse_rc_cases[] = {
    { "empty", B(""), EM_AGAIN },
    { "minimal", B("GET / HTTP/1.1\r\n\r\n"), EM_OK },
    { "bare LF", B("GET / HTTP/1.1\nHost: a\n\n"), EM_OK },
    { "mixed line ends", B("GET / HTTP/1.1\r\nHost: a\n\r\n"), EM_OK },
    { "leading empty line", B("\r\nGET / HTTP/1.1\r\n\r\n"), EM_OK },
    { "HTTP/1.0", B("GET / HTTP/1.0\r\n\r\n"), EM_OK },
    { "OPTIONS *", B("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), EM_OK },
    { "absolute-form", B("GET http://a.example/x?y=1 HTTP/1.1\r\n\r\n"), EM_OK },
    { "absolute https", B("GET HTTPS://a.example HTTP/1.1\r\n\r\n"), EM_OK },
    { "unknown method", B("PROPFIND /x HTTP/1.1\r\n\r\n"), EM_OK },
    { "utf-8 in target", B("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n"), EM_OK },
    { "obs-text value", B("GET / HTTP/1.1\r\nX: \xe2\x82\xac\r\n\r\n"), EM_OK },
    { "empty value", B("GET / HTTP/1.1\r\nX:\r\n\r\n"), EM_OK },
    { "tab in value", B("GET / HTTP/1.1\r\nX: a\tb\r\n\r\n"), EM_OK },
    { "same content-length twice",
      B("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"), EM_OK },
    { "chunked", B("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), EM_OK },

    { "lone CR", B("GET / HTTP/1.1\r\n\r"), EM_AGAIN },
    { "no empty line", B("GET / HTTP/1.1\r\nHost: a\r\n"), EM_AGAIN },

    { "space before method", B(" GET / HTTP/1.1\r\n\r\n"), EM_ERROR },
    { "bad method char", B("G(T / HTTP/1.1\r\n\r\n"), EM_ERROR },
    { "tab after method", B("GET\t/ HTTP/1.1\r\n\r\n"), EM_ERROR },
    { "two spaces", B("GET  / HTTP/1.1\r\n\r\n"), EM_ERROR },
    { "space after version", B("GET / HTTP/1.1 \r\n\r\n"), EM_ERROR },
    { "HTTP/0.9", B("GET /\r\n\r\n"), EM_ERROR },
    { "HTTP/2.0", B("GET / HTTP/2.0\r\n\r\n"), EM_ERROR },
    { "HTTP/1.2", B("GET / HTTP/1.2\r\n\r\n"), EM_ERROR },
    { "HTTP/1.10", B("GET / HTTP/1.10\r\n\r\n"), EM_ERROR },
    { "lower-case version", B("GET / http/1.1\r\n\r\n"), EM_ERROR },
    { "relative target", B("GET foo HTTP/1.1\r\n\r\n"), EM_ERROR },
    { "star for GET", B("GET * HTTP/1.1\r\n\r\n"), EM_ERROR },
    { "star with more", B("OPTIONS *x HTTP/1.1\r\n\r\n"), EM_ERROR },
    { "ftp scheme", B("GET ftp://a/ HTTP/1.1\r\n\r\n"), EM_ERROR },
    { "empty authority", B("GET http:///x HTTP/1.1\r\n\r\n"), EM_ERROR },
    { "http word", B("GET hello HTTP/1.1\r\n\r\n"), EM_ERROR },
    { "control in target", B("GET /a\x01 HTTP/1.1\r\n\r\n"), EM_ERROR },
    { "DEL in target", B("GET /a\x7f HTTP/1.1\r\n\r\n"), EM_ERROR },
    { "CR in request line", B("GET / HTTP/1.1\rX\n\r\n"), EM_ERROR },
    { "bad leading CR", B("\rGET / HTTP/1.1\r\n\r\n"), EM_ERROR },
    { "TLS hello", B("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), EM_ERROR },
    { "space before colon", B("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), EM_ERROR },
    { "no colon", B("GET / HTTP/1.1\r\nHost a\r\n\r\n"), EM_ERROR },
    { "empty name", B("GET / HTTP/1.1\r\n: a\r\n\r\n"), EM_ERROR },
    { "obs-fold", B("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"), EM_ERROR },
    { "tab fold", B("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"), EM_ERROR },
    { "space first header", B("GET / HTTP/1.1\r\n X: a\r\n\r\n"), EM_ERROR },
    { "bare CR in value", B("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"), EM_ERROR },
    { "NUL in value", B("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"), EM_ERROR },
    { "NUL in name", B("GET / HTTP/1.1\r\nX\0: a\r\n\r\n"), EM_ERROR },
    { "CR after head", B("GET / HTTP/1.1\r\nX: a\r\n\rx"), EM_ERROR },
    { "content-length differ",
      B("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), EM_ERROR },
    { "content-length negative", B("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), EM_ERROR },
    { "content-length plus", B("POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n"), EM_ERROR },
    { "content-length alpha", B("POST / HTTP/1.1\r\nContent-Length: 1a\r\n\r\n"), EM_ERROR },
    { "content-length empty", B("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n"), EM_ERROR },
    { "content-length list", B("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n"), EM_ERROR },
    { "content-length space", B("POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n"), EM_ERROR },
    { "content-length huge",
      B("POST / HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n"), EM_ERROR },
    { "content-length and chunked",
      B("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), EM_ERROR },
    { "chunked and content-length",
      B("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), EM_ERROR },
    { "unknown coding", B("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"), EM_ERROR },
};

START_TEST(test_parse_rc)
{
    em_http_req_t req;
    int           rc = em_http_parse(parse_rc_cases[_i].in, parse_rc_cases[_i].len, &req);

    ck_assert_msg(rc == parse_rc_cases[_i].rc, "%s: rc %d, want %d",
                  parse_rc_cases[_i].name, rc, parse_rc_cases[_i].rc);
    if (rc == EM_OK) {
        ck_assert_uint_le(req.head_len, parse_rc_cases[_i].len);
    }
}
END_TEST

/* ---- em_http_parse: real heads, split everywhere ------------------------ */

static const char *const real_heads[] = {
    /* socket.io-client 4 (Node) polling handshake */
    "GET /socket.io/?EIO=4&transport=polling&t=OzX1aBc HTTP/1.1\r\n"
    "Accept: */*\r\n"
    "Host: localhost:3000\r\n"
    "Connection: keep-alive\r\n"
    "\r\n",
    /* polling POST from a browser */
    "POST /socket.io/?EIO=4&transport=polling&t=OzX1aBd.0&sid=AbCdEfGhIjKlMnOpQrSt HTTP/1.1\r\n"
    "Host: localhost:3000\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    "Accept: */*\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Content-type: text/plain;charset=UTF-8\r\n"
    "Content-Length: 13\r\n"
    "Origin: http://localhost:8080\r\n"
    "Connection: keep-alive\r\n"
    "Referer: http://localhost:8080/\r\n"
    "Sec-Fetch-Dest: empty\r\n"
    "Sec-Fetch-Mode: cors\r\n"
    "Sec-Fetch-Site: same-site\r\n"
    "\r\n",
    /* websocket upgrade (Firefox lists two Connection tokens) */
    "GET /socket.io/?EIO=4&transport=websocket&sid=AbCdEfGhIjKlMnOpQrSt HTTP/1.1\r\n"
    "Host: localhost:3000\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Upgrade: websocket\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "\r\n",
    /* python-socketio (requests) */
    "GET /socket.io/?transport=polling&EIO=4&t=1700000000.123456 HTTP/1.1\r\n"
    "Host: 127.0.0.1:3000\r\n"
    "User-Agent: python-requests/2.28.1\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "Accept: */*\r\n"
    "Connection: keep-alive\r\n"
    "\r\n",
    /* CORS preflight */
    "OPTIONS /socket.io/?EIO=4&transport=polling&t=P1 HTTP/1.1\r\n"
    "Host: localhost:3000\r\n"
    "Access-Control-Request-Method: POST\r\n"
    "Access-Control-Request-Headers: content-type\r\n"
    "Origin: http://localhost:8080\r\n"
    "\n",
};

START_TEST(test_parse_split)
{
    const char   *head = real_heads[_i];
    size_t        len = strlen(head), k;
    char          buf[4096];
    em_http_req_t req;

    for (k = 0; k < len; k++) {
        ck_assert_msg(em_http_parse(head, k, &req) == EM_AGAIN, "prefix %zu not EM_AGAIN", k);
    }
    ck_assert_int_eq(em_http_parse(head, len, &req), EM_OK);
    ck_assert_uint_eq(req.head_len, len);

    /* Bytes after the head (a body, a pipelined request) are not consumed. */
    ck_assert_uint_lt(len + 13, sizeof(buf));
    memcpy(buf, head, len);
    memcpy(buf + len, "4hello\x1e" "4world", 13);
    ck_assert_int_eq(em_http_parse(buf, len + 13, &req), EM_OK);
    ck_assert_uint_eq(req.head_len, len);
}
END_TEST

START_TEST(test_parse_fields_handshake)
{
    em_http_req_t           req;
    const em_http_header_t *h;

    ck_assert_int_eq(em_http_parse(real_heads[0], strlen(real_heads[0]), &req), EM_OK);
    ck_assert_int_eq(req.method, EM_HTTP_GET);
    ck_slice(req.method_str, "GET", "method");
    ck_slice(req.target, "/socket.io/?EIO=4&transport=polling&t=OzX1aBc", "target");
    ck_slice(req.path, "/socket.io/", "path");
    ck_slice(req.query, "EIO=4&transport=polling&t=OzX1aBc", "query");
    ck_assert_int_eq(req.minor, 1);
    ck_assert_uint_eq(req.nheaders, 3);
    ck_slice(req.headers[1].name, "Host", "name");
    ck_slice(req.headers[1].value, "localhost:3000", "value");
    ck_assert_int_eq(req.content_length, -1);
    ck_assert(req.keep_alive);
    ck_assert(!req.upgrade_ws);
    ck_assert(!req.chunked);

    h = em_http_header(&req, "HOST");
    ck_assert_ptr_nonnull(h);
    ck_slice(h->value, "localhost:3000", "HOST");
    ck_assert_ptr_null(em_http_header(&req, "Hos"));
    ck_assert_ptr_null(em_http_header(&req, "Cookie"));
}
END_TEST

START_TEST(test_parse_fields_post)
{
    em_http_req_t req;

    ck_assert_int_eq(em_http_parse(real_heads[1], strlen(real_heads[1]), &req), EM_OK);
    ck_assert_int_eq(req.method, EM_HTTP_POST);
    ck_assert_int_eq(req.content_length, 13);
    ck_assert_uint_eq(req.nheaders, 13);
    ck_slice(em_http_header(&req, "content-type")->value, "text/plain;charset=UTF-8", "ct");
}
END_TEST

START_TEST(test_parse_fields_upgrade)
{
    em_http_req_t req;

    ck_assert_int_eq(em_http_parse(real_heads[2], strlen(real_heads[2]), &req), EM_OK);
    ck_assert(req.upgrade_ws);
    ck_assert(req.keep_alive);
    ck_slice(em_http_header(&req, "sec-websocket-key")->value, "dGhlIHNhbXBsZSBub25jZQ==", "key");
}
END_TEST

START_TEST(test_parse_fields_misc)
{
    em_http_req_t req;

    ck_assert_int_eq(em_http_parse(B("OPTIONS * HTTP/1.0\r\n\r\n"), &req), EM_OK);
    ck_assert_int_eq(req.method, EM_HTTP_OPTIONS);
    ck_slice(req.path, "*", "path");
    ck_assert_uint_eq(req.query.len, 0);
    ck_assert_int_eq(req.minor, 0);
    ck_assert(!req.keep_alive);

    ck_assert_int_eq(em_http_parse(B("GET http://h:1/a/b?c=d HTTP/1.1\r\n\r\n"), &req), EM_OK);
    ck_slice(req.target, "http://h:1/a/b?c=d", "target");
    ck_slice(req.path, "/a/b", "path");
    ck_slice(req.query, "c=d", "query");

    ck_assert_int_eq(em_http_parse(B("GET http://h?c=d HTTP/1.1\r\n\r\n"), &req), EM_OK);
    ck_slice(req.path, "", "path");
    ck_slice(req.query, "c=d", "query");

    ck_assert_int_eq(em_http_parse(B("GET /x? HTTP/1.1\r\n\r\n"), &req), EM_OK);
    ck_slice(req.path, "/x", "path");
    ck_slice(req.query, "", "query");

    ck_assert_int_eq(em_http_parse(B("GET /x?a?b HTTP/1.1\r\n\r\n"), &req), EM_OK);
    ck_slice(req.query, "a?b", "query");

    ck_assert_int_eq(em_http_parse(B("\n\r\nDELETE /x HTTP/1.1\r\n\r\n"), &req), EM_OK);
    ck_assert_int_eq(req.method, EM_HTTP_DELETE);
    ck_assert_uint_eq(req.head_len, 25);

    ck_assert_int_eq(em_http_parse(B("GET / HTTP/1.1\r\nX: \t a b \t \r\nY:z\r\n\r\n"), &req), EM_OK);
    ck_slice(req.headers[0].value, "a b", "trimmed");
    ck_slice(req.headers[1].value, "z", "no space");

    ck_assert_int_eq(em_http_parse(B("GET / HTTP/1.1\r\nX:   \r\n\r\n"), &req), EM_OK);
    ck_assert_uint_eq(req.headers[0].value.len, 0);

    ck_assert_int_eq(em_http_parse(B("POST / HTTP/1.1\r\nContent-Length: 007\r\n"
                                     "Content-Length: 7\r\n\r\n"), &req), EM_OK);
    ck_assert_int_eq(req.content_length, 7);

    ck_assert_int_eq(em_http_parse(B("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), &req), EM_OK);
    ck_assert_int_eq(req.content_length, 0);

    ck_assert_int_eq(em_http_parse(B("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
                                   &req), EM_OK);
    ck_assert(req.chunked);
    ck_assert_int_eq(req.content_length, -1);
}
END_TEST

static const struct {
    const char      *m;
    em_http_method_t method;
} method_cases[] = {
    { "GET", EM_HTTP_GET },         { "POST", EM_HTTP_POST },
    { "OPTIONS", EM_HTTP_OPTIONS }, { "HEAD", EM_HTTP_HEAD },
    { "PUT", EM_HTTP_PUT },         { "DELETE", EM_HTTP_DELETE },
    { "PATCH", EM_HTTP_PATCH },     { "get", EM_HTTP_OTHER },
    { "GETS", EM_HTTP_OTHER },      { "GE", EM_HTTP_OTHER },
    { "M-SEARCH", EM_HTTP_OTHER },
};

START_TEST(test_parse_method)
{
    char          buf[128];
    em_http_req_t req;
    int           n = snprintf(buf, sizeof(buf), "%s / HTTP/1.1\r\n\r\n", method_cases[_i].m);

    ck_assert_int_eq(em_http_parse(buf, (size_t) n, &req), EM_OK);
    ck_assert_int_eq(req.method, method_cases[_i].method);
    ck_slice(req.method_str, method_cases[_i].m, "method_str");
}
END_TEST

static const struct {
    const char *head;
    int         keep_alive, upgrade_ws;
} conn_cases[] = {
    { "GET / HTTP/1.1\r\n\r\n", 1, 0 },
    { "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 0, 0 },
    { "GET / HTTP/1.1\r\nConnection: CLOSE\r\n\r\n", 0, 0 },
    { "GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n", 0, 0 },
    { "GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", 0, 0 },
    { "GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", 1, 0 },
    { "GET / HTTP/1.0\r\n\r\n", 0, 0 },
    { "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1, 0 },
    { "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1, 0 },
    { "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0, 0 },
    { "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 1, 1 },
    { "GET / HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\r\n", 1, 1 },
    { "GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", 1, 1 },
    { "GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: upgrade\r\n"
      "Upgrade: websocket\r\n\r\n", 1, 1 },
    { "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", 1, 0 },
    { "GET / HTTP/1.1\r\nConnection: Upgrade\r\n\r\n", 1, 0 },
    { "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", 1, 0 },
    { "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websockets\r\n\r\n", 1, 0 },
    { "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c, websocket\r\n\r\n", 1, 1 },
    { "GET / HTTP/1.1\r\nConnection: upgrade, close\r\nUpgrade: websocket\r\n\r\n", 0, 1 },
};

START_TEST(test_parse_connection)
{
    em_http_req_t req;

    ck_assert_int_eq(em_http_parse(conn_cases[_i].head, strlen(conn_cases[_i].head), &req), EM_OK);
    ck_assert_int_eq(req.keep_alive, conn_cases[_i].keep_alive);
    ck_assert_int_eq(req.upgrade_ws, conn_cases[_i].upgrade_ws);
}
END_TEST

/* Append "X<i>: v\r\n" headers to a request line; returns the length. */
static size_t
build_headers(char *buf, size_t cap, size_t nheaders, int terminate)
{
    size_t n = (size_t) snprintf(buf, cap, "GET / HTTP/1.1\r\n"), i;

    for (i = 0; i < nheaders; i++) {
        n += (size_t) snprintf(buf + n, cap - n, "X-%zu: v\r\n", i);
    }
    if (terminate) {
        n += (size_t) snprintf(buf + n, cap - n, "\r\n");
    }
    return n;
}

START_TEST(test_parse_header_limit)
{
    char          buf[4096];
    em_http_req_t req;
    size_t        n;

    n = build_headers(buf, sizeof(buf), EM_HTTP_MAX_HEADERS, 1);
    ck_assert_int_eq(em_http_parse(buf, n, &req), EM_OK);
    ck_assert_uint_eq(req.nheaders, EM_HTTP_MAX_HEADERS);

    n = build_headers(buf, sizeof(buf), EM_HTTP_MAX_HEADERS + 1, 1);
    ck_assert_int_eq(em_http_parse(buf, n, &req), EM_DECLINED);

    /* Refused as soon as the extra header's name is seen. */
    n = build_headers(buf, sizeof(buf), EM_HTTP_MAX_HEADERS + 1, 0);
    ck_assert_int_eq(em_http_parse(buf, n - 4, &req), EM_DECLINED);
}
END_TEST

START_TEST(test_parse_size_limit)
{
    size_t        cap = EM_HTTP_MAX_HEAD + 64, n;
    char         *buf = malloc(cap);
    em_http_req_t req;
    static const char line[] = "GET / HTTP/1.1\r\nX: ";

    ck_assert_ptr_nonnull(buf);

    /* A head of exactly EM_HTTP_MAX_HEAD bytes is accepted. */
    memcpy(buf, line, sizeof(line) - 1);
    n = EM_HTTP_MAX_HEAD - 4;
    memset(buf + sizeof(line) - 1, 'a', n - (sizeof(line) - 1));
    memcpy(buf + n, "\r\n\r\n", 4);
    ck_assert_int_eq(em_http_parse(buf, EM_HTTP_MAX_HEAD, &req), EM_OK);
    ck_assert_uint_eq(req.head_len, EM_HTTP_MAX_HEAD);
    ck_assert_uint_eq(req.headers[0].value.len, EM_HTTP_MAX_HEAD - 4 - (sizeof(line) - 1));

    /* One byte more is too large, whatever follows. */
    memset(buf + sizeof(line) - 1, 'a', n + 1 - (sizeof(line) - 1));
    memcpy(buf + n + 1, "\r\n\r\n", 4);
    ck_assert_int_eq(em_http_parse(buf, EM_HTTP_MAX_HEAD, &req), EM_AGAIN);
    ck_assert_int_eq(em_http_parse(buf, EM_HTTP_MAX_HEAD + 1, &req), EM_DECLINED);
    ck_assert_int_eq(em_http_parse(buf, EM_HTTP_MAX_HEAD + 5, &req), EM_DECLINED);

    /* A request line alone over the limit. */
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'a', cap - 5);
    ck_assert_int_eq(em_http_parse(buf, EM_HTTP_MAX_HEAD, &req), EM_AGAIN);
    ck_assert_int_eq(em_http_parse(buf, cap, &req), EM_DECLINED);

    free(buf);
}
END_TEST

START_TEST(test_parse_does_not_write)
{
    const char   *head = real_heads[2];
    size_t        len = strlen(head);
    char         *copy = malloc(len);
    em_http_req_t req;
    size_t        i;

    ck_assert_ptr_nonnull(copy);
    memcpy(copy, head, len);
    ck_assert_int_eq(em_http_parse(copy, len, &req), EM_OK);
    ck_assert_mem_eq(copy, head, len);
    for (i = 0; i < req.nheaders; i++) {
        ck_assert(req.headers[i].name.data >= copy && req.headers[i].value.data <= copy + len);
    }
    free(copy);
}
END_TEST

/* ---- em_http_peek_param ------------------------------------------------- */

static const struct {
    const char *name;
    const char *in;
    size_t      len;
    const char *param;
    int         rc;
    const char *value;
} peek_cases[] = {
    { "sid", B("GET /socket.io/?EIO=4&transport=polling&sid=Babc HTTP/1.1\r\n"), "sid", EM_OK, "Babc" },
    { "sid first", B("POST /socket.io/?sid=Qxyz&EIO=4 HTTP/1.1\r\nHost"), "sid", EM_OK, "Qxyz" },
    { "empty value", B("GET /?sid=&EIO=4 HTTP/1.1\r\n"), "sid", EM_OK, "" },
    { "no value", B("GET /?sid HTTP/1.1\r\n"), "sid", EM_OK, "" },
    { "first wins", B("GET /?sid=a&sid=b HTTP/1.1\r\n"), "sid", EM_OK, "a" },
    { "suffix key", B("GET /?xsid=a&sid=b HTTP/1.1\r\n"), "sid", EM_OK, "b" },
    { "encoded key", B("GET /?%73id=k HTTP/1.1\r\n"), "sid", EM_OK, "k" },
    { "raw value", B("GET /?sid=a%2Fb HTTP/1.1\r\n"), "sid", EM_OK, "a%2Fb" },
    { "bare LF", B("GET /?sid=z HTTP/1.0\n"), "sid", EM_OK, "z" },
    { "absent", B("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n"), "sid", EM_DECLINED, NULL },
    { "longer key", B("GET /?sids=1 HTTP/1.1\r\n"), "sid", EM_DECLINED, NULL },
    { "no query", B("GET /socket.io/ HTTP/1.1\r\n"), "sid", EM_DECLINED, NULL },
    { "partial", B("GET /socket.io/?EIO=4&sid=Bab"), "sid", EM_AGAIN, NULL },
    { "partial version", B("GET /?sid=a HTTP/1."), "sid", EM_AGAIN, NULL },
    { "no CRLF yet", B("GET /?sid=a HTTP/1.1"), "sid", EM_AGAIN, NULL },
    { "empty", B(""), "sid", EM_AGAIN, NULL },
    { "TLS", B("\x16\x03\x01\x02\x00"), "sid", EM_ERROR, NULL },
    { "garbage", B("hello world"), "sid", EM_ERROR, NULL },
    { "bad version", B("GET /?sid=a HTTP/2\r\n"), "sid", EM_ERROR, NULL },
    { "HTTP/0.9", B("GET /?sid=a\r\n"), "sid", EM_ERROR, NULL },
};

START_TEST(test_peek)
{
    em_str_t v = EM_NULL_STR;
    int      rc = em_http_peek_param(peek_cases[_i].in, peek_cases[_i].len, peek_cases[_i].param, &v);

    ck_assert_msg(rc == peek_cases[_i].rc, "%s: rc %d, want %d", peek_cases[_i].name, rc,
                  peek_cases[_i].rc);
    if (rc == EM_OK) {
        ck_slice(v, peek_cases[_i].value, peek_cases[_i].name);
    }
}
END_TEST

START_TEST(test_peek_split)
{
    const char *line = "GET /socket.io/?EIO=4&transport=polling&t=P&sid=QWERTYUIOPASDFGHJKLZ HTTP/1.1\r\n";
    size_t      len = strlen(line), k;
    em_str_t    v;

    for (k = 0; k < len; k++) {
        ck_assert_msg(em_http_peek_param(line, k, "sid", &v) == EM_AGAIN, "prefix %zu", k);
    }
    ck_assert_int_eq(em_http_peek_param(line, len, "sid", &v), EM_OK);
    ck_slice(v, "QWERTYUIOPASDFGHJKLZ", "sid");
}
END_TEST

START_TEST(test_peek_too_long)
{
    size_t   cap = EM_HTTP_MAX_HEAD + 10;
    char    *buf = malloc(cap);
    em_str_t v;

    ck_assert_ptr_nonnull(buf);
    memcpy(buf, "GET /?sid=", 10);
    memset(buf + 10, 'a', cap - 10);
    ck_assert_int_eq(em_http_peek_param(buf, EM_HTTP_MAX_HEAD, "sid", &v), EM_AGAIN);
    ck_assert_int_eq(em_http_peek_param(buf, cap, "sid", &v), EM_ERROR);
    free(buf);
}
END_TEST

/* ---- query strings and percent-decoding --------------------------------- */

static const struct {
    const char *query;
    const char *name;
    size_t      cap;
    ssize_t     rc;
    const char *value;
} query_cases[] = {
    { "EIO=4&transport=polling", "EIO", 64, 1, "4" },
    { "EIO=4&transport=polling", "transport", 64, 7, "polling" },
    { "EIO=4&transport=polling", "sid", 64, -1, NULL },
    { "EIO=4&transport=polling", "EI", 64, -1, NULL },
    { "EIO=4&transport=polling", "eio", 64, -1, NULL },
    { "", "a", 64, -1, NULL },
    { "a=%41%42", "a", 64, 2, "AB" },
    { "a=%4a%4A", "a", 64, 2, "JJ" },
    { "a=b+c", "a", 64, 3, "b c" },
    { "a=b%2Bc", "a", 64, 3, "b+c" },
    { "a=%E2%82%AC", "a", 64, 3, "\xe2\x82\xac" },
    { "a=%", "a", 64, -2, NULL },
    { "a=%4", "a", 64, -2, NULL },
    { "a=%zz", "a", 64, -2, NULL },
    { "a=%%41", "a", 64, -2, NULL },
    { "a=x%4", "a", 64, -2, NULL },
    { "a=abcd", "a", 4, 4, "abcd" },
    { "a=abcd", "a", 3, -2, NULL },
    { "a=%41%42", "a", 1, -2, NULL },
    { "a", "a", 64, 0, "" },
    { "a=", "a", 0, 0, "" },
    { "a=1&a=2", "a", 64, 1, "1" },
    { "a=1&&b=2", "b", 64, 1, "2" },
    { "&&a=1&", "a", 64, 1, "1" },
    { "=x&a=1", "", 64, 1, "x" },
    { "a=b=c", "a", 64, 3, "b=c" },
    { "my+key=v", "my key", 64, 1, "v" },
    { "my%20key=v", "my key", 64, 1, "v" },
    { "%zz=v&a=1", "a", 64, 1, "1" },
};

START_TEST(test_query_get)
{
    char    out[64];
    ssize_t rc = em_http_query_get(S(query_cases[_i].query), query_cases[_i].name, out,
                                   query_cases[_i].cap);

    ck_assert_int_eq(rc, query_cases[_i].rc);
    if (rc >= 0) {
        ck_assert_mem_eq(out, query_cases[_i].value, (size_t) rc);
    }
}
END_TEST

START_TEST(test_query_next)
{
    static const char *const want[][2] = {
        { "EIO", "4" }, { "flag", "" }, { "", "x" }, { "t", "a=b" }, { "sid", "%41" },
    };
    em_str_t q = S("EIO=4&&flag&=x&t=a=b&sid=%41&");
    em_str_t k, v;
    size_t   pos = 0, i = 0;

    while (em_http_query_next(q, &pos, &k, &v)) {
        ck_assert_uint_lt(i, EM_NELEMS(want));
        ck_slice(k, want[i][0], "key");
        ck_slice(v, want[i][1], "value");
        ck_assert(v.data >= q.data && v.data + v.len <= q.data + q.len);
        i++;
    }
    ck_assert_uint_eq(i, EM_NELEMS(want));
    ck_assert_int_eq(em_http_query_next(q, &pos, &k, &v), 0);
    pos = 0;
    ck_assert_int_eq(em_http_query_next(EM_NULL_STR, &pos, &k, &v), 0);
}
END_TEST

static const struct {
    const char *in;
    size_t      len;
    size_t      cap;
    ssize_t     rc;
    const char *out;
    size_t      outlen;
} pct_cases[] = {
    { B(""), 0, 0, B("") },
    { B("abc"), 3, 3, B("abc") },
    { B("abc"), 2, -1, B("") },
    { B("%41"), 1, 1, B("A") },
    { B("%41"), 0, -1, B("") },
    { B("%7e%7E"), 8, 2, B("~~") },
    { B("%00"), 8, 1, B("\0") },
    { B("%ff"), 8, 1, B("\xff") },
    { B("+"), 8, 1, B(" ") },
    { B("%2B"), 8, 1, B("+") },
    { B("%"), 8, -1, B("") },
    { B("%4"), 8, -1, B("") },
    { B("a%"), 8, -1, B("") },
    { B("%g1"), 8, -1, B("") },
    { B("%1g"), 8, -1, B("") },
    { B("% 1"), 8, -1, B("") },
    { B("%-1"), 8, -1, B("") },
    { B("a\0b"), 8, 3, B("a\0b") },
};

START_TEST(test_pct_decode)
{
    char    out[8];
    ssize_t rc = em_http_pct_decode((em_str_t) { pct_cases[_i].in, pct_cases[_i].len }, out,
                                    pct_cases[_i].cap);

    ck_assert_int_eq(rc, pct_cases[_i].rc);
    if (rc >= 0) {
        ck_assert_uint_eq((size_t) rc, pct_cases[_i].outlen);
        ck_assert_mem_eq(out, pct_cases[_i].out, (size_t) rc);
    }
}
END_TEST

static const struct {
    const char *value;
    const char *token;
    int         has;
} token_cases[] = {
    { "Upgrade", "upgrade", 1 },
    { "keep-alive, Upgrade", "upgrade", 1 },
    { "keep-alive,Upgrade", "upgrade", 1 },
    { "\tUpgrade\t", "upgrade", 1 },
    { " , upgrade ,", "upgrade", 1 },
    { "upgrade2", "upgrade", 0 },
    { "up grade", "upgrade", 0 },
    { "upgrad", "upgrade", 0 },
    { "", "upgrade", 0 },
    { ",,,", "upgrade", 0 },
    { "gzip, chunked", "chunked", 1 },
    { "chunked;q=1", "chunked", 0 },
};

START_TEST(test_has_token)
{
    ck_assert_int_eq(em_http_has_token(S(token_cases[_i].value), token_cases[_i].token),
                     token_cases[_i].has);
}
END_TEST

START_TEST(test_reason)
{
    ck_assert_str_eq(em_http_reason(200), "OK");
    ck_assert_str_eq(em_http_reason(101), "Switching Protocols");
    ck_assert_str_eq(em_http_reason(400), "Bad Request");
    ck_assert_str_eq(em_http_reason(403), "Forbidden");
    ck_assert_str_eq(em_http_reason(404), "Not Found");
    ck_assert_str_eq(em_http_reason(431), "Request Header Fields Too Large");
    ck_assert_str_eq(em_http_reason(503), "Service Unavailable");
    ck_assert_str_eq(em_http_reason(799), "Unknown");
}
END_TEST

static Suite *
http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc;

    tc = tcase_create("str");
    tcase_add_loop_test(tc, test_str_eq, 0, EM_NELEMS(str_cases));
    tcase_add_test(tc, test_str_null_slice);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse");
    tcase_add_loop_test(tc, test_parse_rc, 0, EM_NELEMS(parse_rc_cases));
    tcase_add_loop_test(tc, test_parse_split, 0, EM_NELEMS(real_heads));
    tcase_add_test(tc, test_parse_fields_handshake);
    tcase_add_test(tc, test_parse_fields_post);
    tcase_add_test(tc, test_parse_fields_upgrade);
    tcase_add_test(tc, test_parse_fields_misc);
    tcase_add_loop_test(tc, test_parse_method, 0, EM_NELEMS(method_cases));
    tcase_add_loop_test(tc, test_parse_connection, 0, EM_NELEMS(conn_cases));
    tcase_add_test(tc, test_parse_header_limit);
    tcase_add_test(tc, test_parse_size_limit);
    tcase_add_test(tc, test_parse_does_not_write);
    suite_add_tcase(s, tc);

    tc = tcase_create("peek");
    tcase_add_loop_test(tc, test_peek, 0, EM_NELEMS(peek_cases));
    tcase_add_test(tc, test_peek_split);
    tcase_add_test(tc, test_peek_too_long);
    suite_add_tcase(s, tc);

    tc = tcase_create("query");
    tcase_add_loop_test(tc, test_query_get, 0, EM_NELEMS(query_cases));
    tcase_add_test(tc, test_query_next);
    tcase_add_loop_test(tc, test_pct_decode, 0, EM_NELEMS(pct_cases));
    tcase_add_loop_test(tc, test_has_token, 0, EM_NELEMS(token_cases));
    tcase_add_test(tc, test_reason);
    suite_add_tcase(s, tc);

    return s;
}

EM_CHECK_MAIN(http_suite)
