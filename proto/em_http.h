/*
 * em_http.h - HTTP/1.1 request head parser (pure: no I/O, no allocation).
 *
 * em_http_parse() looks at the bytes received so far on a connection and, once
 * the request head (request line + headers + empty line) is complete, fills an
 * em_http_req_t whose slices point into the caller's buffer. It tolerates a
 * head split over any number of reads: call it again with the longer buffer.
 *
 * em_http_chunked_parse() decodes a chunked request body that follows such a
 * head. Unlike the head parser it is resumable: the caller keeps a small
 * state between calls and drops the bytes each call consumed.
 */
#ifndef EM_HTTP_H
#define EM_HTTP_H

#include "em_core.h"

#define EM_HTTP_MAX_HEADERS 64
#define EM_HTTP_MAX_HEAD    16384   /* longest request head accepted */

typedef enum {
    EM_HTTP_GET = 1, EM_HTTP_POST, EM_HTTP_OPTIONS, EM_HTTP_HEAD,
    EM_HTTP_PUT, EM_HTTP_DELETE, EM_HTTP_PATCH, EM_HTTP_OTHER
} em_http_method_t;

typedef struct {
    em_str_t name;
    em_str_t value;     /* leading/trailing spaces and tabs trimmed */
} em_http_header_t;

typedef struct {
    em_http_method_t method;
    em_str_t         method_str;
    em_str_t         target;      /* raw request target: path + '?' + query */
    em_str_t         path;        /* target up to '?' (not decoded) */
    em_str_t         query;       /* after '?', without it; len 0 if none */
    int              minor;       /* HTTP/1.<minor>: 0 or 1 */
    size_t           head_len;    /* bytes of the head, including CRLFCRLF */
    size_t           nheaders;
    em_http_header_t headers[EM_HTTP_MAX_HEADERS];

    /* Derived from the headers while parsing. */
    int64_t          content_length;   /* -1 if absent */
    unsigned         chunked:1;        /* Transfer-Encoding: chunked */
    unsigned         keep_alive:1;     /* from version and Connection */
    unsigned         upgrade_ws:1;     /* Upgrade: websocket and Connection: upgrade */
} em_http_req_t;

/*
 * Status of em_http_parse():
 *   EM_OK      head complete, *req filled, req->head_len bytes consumed;
 *   EM_AGAIN   head incomplete, call again with more bytes;
 *   EM_ERROR   malformed (answer 400 and close);
 *   EM_DECLINED head longer than EM_HTTP_MAX_HEAD or too many headers
 *              (answer 431 and close).
 * A request line alone (no headers yet) longer than EM_HTTP_MAX_HEAD is
 * EM_DECLINED too. Bad Content-Length (negative, non-digit, two different
 * values) is EM_ERROR.
 */
int em_http_parse(const char *buf, size_t len, em_http_req_t *req);

/*
 * Find the end of the request line (the first CRLF) and extract the raw value
 * of query parameter `name` from its target. Used by the master to route a
 * request before its head is complete. Returns EM_OK (found, *value set; may be
 * empty), EM_DECLINED (line complete, no such parameter), EM_AGAIN (no CRLF yet),
 * EM_ERROR (line over EM_HTTP_MAX_HEAD or not a request line; reported as
 * soon as the bytes seen so far cannot start one). The value is raw (not
 * percent-decoded) and points into buf; keys match as in em_http_query_get().
 */
int em_http_peek_param(const char *buf, size_t len, const char *name, em_str_t *value);

/* Case-insensitive header lookup; returns the first match or NULL. */
const em_http_header_t *em_http_header(const em_http_req_t *req, const char *name);

/* True when the comma-separated header value lists `token` (case-insensitive). */
int em_http_has_token(em_str_t value, const char *token);

/*
 * Look up `name` in a query string (a=b&c=d) and percent-decode its value
 * ('+' becomes space) into out[0..cap), not NUL-terminated. Keys are compared
 * after percent-decoding; the first match wins. Returns the decoded length,
 * -1 if the parameter is absent, -2 if the value is malformed or does not fit.
 */
ssize_t em_http_query_get(em_str_t query, const char *name, char *out, size_t cap);

/*
 * Iterate the query string: *pos starts at 0. Returns 1 and sets raw (not
 * decoded) key and value slices, or 0 at the end.
 */
int em_http_query_next(em_str_t query, size_t *pos, em_str_t *key, em_str_t *value);

/* Percent-decode src into out (cap bytes); '+' -> ' '. Returns length or -1. */
ssize_t em_http_pct_decode(em_str_t src, char *out, size_t cap);

#define EM_HTTP_CHUNK_LINE_MAX   4096  /* chunk size line: size, extensions, BWS */
#define EM_HTTP_TRAILER_LINE_MAX 8192  /* one trailer field line */
#define EM_HTTP_MAX_TRAILERS     64    /* trailer field lines */

/* State of a chunked body being decoded; zero it before the first call. */
typedef struct {
    unsigned  state;        /* private */
    uint64_t  remaining;    /* private: bytes left in the current chunk */
    unsigned  digits;       /* private */
} em_http_chunked_t;

/*
 * Decode the next bytes of a chunked body. Reads buf[0..len), appends chunk
 * data to out (out[*outlen .. cap)), advancing *outlen, and sets *used to the
 * bytes of buf consumed (the caller drops them and calls again with more).
 * Returns EM_OK when the last chunk and the trailer section (ignored) are
 * complete (*used stops right after the final CRLF, so pipelined bytes that
 * follow are not consumed); EM_AGAIN when all of buf was consumed and more is
 * needed; EM_ERROR for malformed framing (non-hex size, size over 2^62, a
 * chunk not followed by CRLF, bad chunk extension characters, a trailer line
 * over 8 KiB, more than 64 trailer lines); EM_DECLINED when the data would
 * exceed cap (answer 413).
 *
 * Line ends are CRLF or a bare LF, as in em_http_parse(); a CR not followed
 * by LF is EM_ERROR. A size line (size, extensions and BWS, without its line
 * end) longer than EM_HTTP_CHUNK_LINE_MAX is EM_ERROR. EM_DECLINED is given
 * as soon as a size line announces a chunk that does not fit, before its data
 * arrives. On EM_ERROR and EM_DECLINED, *used counts the byte at which the
 * problem was found. The result, the output and the total of *used do not
 * depend on how the body is split between calls. Once a call has returned
 * EM_OK, EM_ERROR or EM_DECLINED, later calls return the same and consume
 * nothing.
 */
int em_http_chunked_parse(em_http_chunked_t *st, const char *buf, size_t len, size_t *used,
                          char *out, size_t cap, size_t *outlen);

/* The reason phrase for a status code ("OK", "Bad Request", ...). */
const char *em_http_reason(int status);

#endif
