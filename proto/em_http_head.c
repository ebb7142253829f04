/*
 * em_http_head.c - the HTTP/1.x request head parser, header lookups, and
 * the reason phrases of response status codes.
 *
 * The parser is stateless: every call rescans the buffer from its start, so
 * a head split over several reads needs no saved state, and the scan is cheap
 * because a head is at most EM_HTTP_MAX_HEAD bytes. It never allocates and
 * never writes to the input; every slice it returns points into the input.
 */
#include <string.h>

#include "em_http-int.h"
#include "em_http.h"

/* The request line, as parsed before the headers. */
typedef struct {
    em_http_method_t method;
    em_str_t         method_str;
    em_str_t         target;
    em_str_t         path;
    em_str_t         query;
    int              minor;
} em_http_line_t;


/* Bytes allowed in a request target: visible ASCII, and obs-text (>= 0x80),
 * which some clients send unescaped and which costs us nothing to carry. */
static inline int
em_http_is_target_char(char c)
{
    unsigned char u = (unsigned char) c;

    return u > 0x20 && u != 0x7f;
}


static em_http_method_t
em_http_method(em_str_t m)
{
    static const struct {
        const char      *name;
        em_http_method_t method;
    } methods[] = {
        { "GET", EM_HTTP_GET },         { "POST", EM_HTTP_POST },
        { "OPTIONS", EM_HTTP_OPTIONS }, { "HEAD", EM_HTTP_HEAD },
        { "PUT", EM_HTTP_PUT },         { "DELETE", EM_HTTP_DELETE },
        { "PATCH", EM_HTTP_PATCH },
    };
    size_t i;

    for (i = 0; i < EM_NELEMS(methods); i++) {
        if (em_str_eq(m, methods[i].name)) {
            return methods[i].method;
        }
    }
    return EM_HTTP_OTHER;
}

/*
 * Split a complete request target into path and query. Accepts origin-form
 * ("/p?q"), "*" for OPTIONS and absolute-form ("http://host/p?q"), whose path
 * is what follows the authority (possibly empty).
 */
static int
em_http_split_target(em_http_line_t *line)
{
    const char *t = line->target.data;
    size_t      n = line->target.len, p = 0;
    const char *q;

    if (t[0] == '*') {
        if (n != 1 || line->method != EM_HTTP_OPTIONS) {
            return EM_ERROR;
        }
        line->path = line->target;
        line->query = (em_str_t) { t + n, 0 };
        return EM_OK;
    }

    if (t[0] != '/') {
        size_t s;

        if (n > 7 && em_str_caseeq((em_str_t) { t, 7 }, "http://")) {
            s = 7;
        } else if (n > 8 && em_str_caseeq((em_str_t) { t, 8 }, "https://")) {
            s = 8;
        } else {
            return EM_ERROR;
        }
        for (p = s; p < n && t[p] != '/' && t[p] != '?'; p++) {
            /* authority */
        }
        if (p == s) {
            return EM_ERROR;
        }
    }

    q = memchr(t + p, '?', n - p);
    if (q == NULL) {
        line->path = (em_str_t) { t + p, n - p };
        line->query = (em_str_t) { t + n, 0 };
    } else {
        line->path = (em_str_t) { t + p, (size_t) (q - (t + p)) };
        line->query = (em_str_t) { q + 1, (size_t) (t + n - (q + 1)) };
    }
    return EM_OK;
}

/*
 * Parse the request line in buf[0..lim). Empty lines before it are skipped
 * (RFC 9112 2.2). Returns EM_OK with *end just past its line ending, EM_AGAIN
 * when lim cuts it short (everything seen so far being valid), or EM_ERROR.
 */
static int
em_http_parse_line(const char *buf, size_t lim, em_http_line_t *line, size_t *end)
{
    static const char version[] = "HTTP/1.";
    size_t            p = 0, start, i;

    for (;;) {
        if (p == lim) {
            return EM_AGAIN;
        }
        if (buf[p] == '\n') {
            p++;
        } else if (buf[p] == '\r') {
            if (p + 1 == lim) {
                return EM_AGAIN;
            }
            if (buf[p + 1] != '\n') {
                return EM_ERROR;
            }
            p += 2;
        } else {
            break;
        }
    }

    start = p;
    while (p < lim && em_http_is_tchar(buf[p])) {
        p++;
    }
    if (p == lim) {
        return EM_AGAIN;
    }
    if (p == start || buf[p] != ' ') {
        return EM_ERROR;
    }
    line->method_str = (em_str_t) { buf + start, p - start };
    line->method = em_http_method(line->method_str);
    p++;

    start = p;
    if (p < lim && buf[p] != '/' && buf[p] != '*' && buf[p] != 'h' && buf[p] != 'H') {
        return EM_ERROR;
    }
    while (p < lim && em_http_is_target_char(buf[p])) {
        p++;
    }
    if (p == lim) {
        return EM_AGAIN;
    }
    if (p == start || buf[p] != ' ') {
        return EM_ERROR;
    }
    line->target = (em_str_t) { buf + start, p - start };
    if (em_http_split_target(line) != EM_OK) {
        return EM_ERROR;
    }
    p++;

    for (i = 0; i < sizeof(version) - 1; i++, p++) {
        if (p == lim) {
            return EM_AGAIN;
        }
        if (buf[p] != version[i]) {
            return EM_ERROR;
        }
    }
    if (p == lim) {
        return EM_AGAIN;
    }
    if (buf[p] != '0' && buf[p] != '1') {
        return EM_ERROR;
    }
    line->minor = buf[p] - '0';
    p++;

    if (p == lim) {
        return EM_AGAIN;
    }
    if (buf[p] == '\r') {
        if (++p == lim) {
            return EM_AGAIN;
        }
    }
    if (buf[p] != '\n') {
        return EM_ERROR;
    }
    *end = p + 1;
    return EM_OK;
}

/* Parse a Content-Length value: 1 to 18 digits, nothing else. */
static int64_t
em_http_parse_length(em_str_t v)
{
    int64_t n = 0;
    size_t  i;

    if (v.len == 0 || v.len > 18) {
        return -1;
    }
    for (i = 0; i < v.len; i++) {
        if (v.data[i] < '0' || v.data[i] > '9') {
            return -1;
        }
        n = n * 10 + (v.data[i] - '0');
    }
    return n;
}

/* Derive content_length, chunked, keep_alive and upgrade_ws from the headers
 * and reject the framing combinations that allow request smuggling. */
static int
em_http_derive(em_http_req_t *req)
{
    unsigned conn_close = 0, conn_keep = 0, conn_upgrade = 0, upgrade_ws = 0;
    unsigned te_seen = 0, chunked = 0;
    size_t   i;

    req->content_length = -1;

    for (i = 0; i < req->nheaders; i++) {
        const em_http_header_t *h = &req->headers[i];

        switch (h->name.len) {
        case 14:
            if (em_str_caseeq(h->name, "content-length")) {
                int64_t n = em_http_parse_length(h->value);

                if (n < 0 || (req->content_length >= 0 && req->content_length != n)) {
                    return EM_ERROR;
                }
                req->content_length = n;
            }
            break;
        case 17:
            if (em_str_caseeq(h->name, "transfer-encoding")) {
                te_seen = 1;
                chunked |= (unsigned) em_http_has_token(h->value, "chunked");
            }
            break;
        case 10:
            if (em_str_caseeq(h->name, "connection")) {
                conn_close |= (unsigned) em_http_has_token(h->value, "close");
                conn_keep |= (unsigned) em_http_has_token(h->value, "keep-alive");
                conn_upgrade |= (unsigned) em_http_has_token(h->value, "upgrade");
            }
            break;
        case 7:
            if (em_str_caseeq(h->name, "upgrade")) {
                upgrade_ws |= (unsigned) em_http_has_token(h->value, "websocket");
            }
            break;
        default:
            break;
        }
    }

    /* Transfer-Encoding with Content-Length, or a coding we cannot frame. */
    if (te_seen && (req->content_length >= 0 || !chunked)) {
        return EM_ERROR;
    }

    req->chunked = chunked;
    req->keep_alive = req->minor == 1 ? !conn_close : (conn_keep && !conn_close);
    req->upgrade_ws = upgrade_ws && conn_upgrade;
    return EM_OK;
}

int
em_http_parse(const char *buf, size_t len, em_http_req_t *req)
{
    size_t         lim = EM_MIN(len, (size_t) EM_HTTP_MAX_HEAD);
    int            more = len > EM_HTTP_MAX_HEAD ? EM_DECLINED : EM_AGAIN;
    em_http_line_t line;
    size_t         p;
    int            rc;

    rc = em_http_parse_line(buf, lim, &line, &p);
    if (rc != EM_OK) {
        return rc == EM_AGAIN ? more : rc;
    }

    req->method = line.method;
    req->method_str = line.method_str;
    req->target = line.target;
    req->path = line.path;
    req->query = line.query;
    req->minor = line.minor;
    req->nheaders = 0;
    req->chunked = 0;
    req->keep_alive = 0;
    req->upgrade_ws = 0;
    req->content_length = -1;

    for (;;) {
        size_t start, name_end, vstart, vend;

        if (p == lim) {
            return more;
        }
        if (buf[p] == '\r') {
            if (p + 1 == lim) {
                return more;
            }
            if (buf[p + 1] != '\n') {
                return EM_ERROR;
            }
            p += 2;
            break;
        }
        if (buf[p] == '\n') {
            p++;
            break;
        }

        /* A line starting with SP/HT is obs-fold; a name ends at ':' with
         * no whitespace before it (RFC 9112 5.1). */
        start = p;
        while (p < lim && em_http_is_tchar(buf[p])) {
            p++;
        }
        if (p == lim) {
            return more;
        }
        if (p == start || buf[p] != ':') {
            return EM_ERROR;
        }
        if (req->nheaders == EM_HTTP_MAX_HEADERS) {
            return EM_DECLINED;
        }
        name_end = p++;

        while (p < lim && (buf[p] == ' ' || buf[p] == '\t')) {
            p++;
        }
        vstart = p;
        for (; p < lim; p++) {
            unsigned char c = (unsigned char) buf[p];

            if (c == '\r' || c == '\n') {
                break;
            }
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                return EM_ERROR;
            }
        }
        if (p == lim) {
            return more;
        }
        vend = p;
        while (vend > vstart && (buf[vend - 1] == ' ' || buf[vend - 1] == '\t')) {
            vend--;
        }
        if (buf[p] == '\r') {
            if (p + 1 == lim) {
                return more;
            }
            if (buf[p + 1] != '\n') {
                return EM_ERROR;
            }
            p++;
        }
        p++;

        req->headers[req->nheaders].name = (em_str_t) { buf + start, name_end - start };
        req->headers[req->nheaders].value = (em_str_t) { buf + vstart, vend - vstart };
        req->nheaders++;
    }

    req->head_len = p;
    return em_http_derive(req);
}

int
em_http_peek_param(const char *buf, size_t len, const char *name, em_str_t *value)
{
    size_t         lim = EM_MIN(len, (size_t) EM_HTTP_MAX_HEAD);
    em_http_line_t line;
    em_str_t       k, v;
    size_t         end, pos = 0;
    int            rc;

    rc = em_http_parse_line(buf, lim, &line, &end);
    if (rc == EM_AGAIN) {
        return len > EM_HTTP_MAX_HEAD ? EM_ERROR : EM_AGAIN;
    }
    if (rc != EM_OK) {
        return EM_ERROR;
    }
    while (em_http_query_next(line.query, &pos, &k, &v)) {
        if (em_http_key_eq(k, name)) {
            *value = v;
            return EM_OK;
        }
    }
    return EM_DECLINED;
}

const em_http_header_t *
em_http_header(const em_http_req_t *req, const char *name)
{
    size_t i;

    for (i = 0; i < req->nheaders; i++) {
        if (em_str_caseeq(req->headers[i].name, name)) {
            return &req->headers[i];
        }
    }
    return NULL;
}

int
em_http_has_token(em_str_t value, const char *token)
{
    size_t i = 0;

    while (i < value.len) {
        size_t s, e;

        while (i < value.len && (value.data[i] == ' ' || value.data[i] == '\t')) {
            i++;
        }
        s = i;
        while (i < value.len && value.data[i] != ',') {
            i++;
        }
        e = i;
        while (e > s && (value.data[e - 1] == ' ' || value.data[e - 1] == '\t')) {
            e--;
        }
        if (e > s && em_str_caseeq((em_str_t) { value.data + s, e - s }, token)) {
            return 1;
        }
        i++;    /* past the ',' */
    }
    return 0;
}

const char *
em_http_reason(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default:  return "Unknown";
    }
}
