/*
 * em_bench_proto.c - URL, WebSocket client framing, HTTP response heads and
 * the tool's JSON fields.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <openssl/sha.h>

#include "em_eio.h"
#include "em_bench_proto.h"

#define EM_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

int
em_bench_url_parse(const char *url, em_bench_url_t *u)
{
    const char *p, *host, *host_end, *port = NULL, *port_end = NULL, *path;
    size_t      n;

    memset(u, 0, sizeof(*u));
    if (strncmp(url, "ws://", 5) == 0) {
        p = url + 5;
    } else if (strncmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else {
        return EM_ERROR;
    }

    if (*p == '[') {
        host = p + 1;
        host_end = strchr(host, ']');
        if (host_end == NULL) {
            return EM_ERROR;
        }
        p = host_end + 1;
    } else {
        host = p;
        while (*p != '\0' && *p != ':' && *p != '/' && *p != '?') {
            p++;
        }
        host_end = p;
    }
    if (host_end == host || (size_t) (host_end - host) >= sizeof(u->host)) {
        return EM_ERROR;
    }
    memcpy(u->host, host, (size_t) (host_end - host));

    if (*p == ':') {
        port = ++p;
        while (*p >= '0' && *p <= '9') {
            p++;
        }
        port_end = p;
        n = (size_t) (port_end - port);
        if (n == 0 || n > 5) {
            return EM_ERROR;
        }
        memcpy(u->port, port, n);
        if (strtol(u->port, NULL, 10) < 1 || strtol(u->port, NULL, 10) > 65535) {
            return EM_ERROR;
        }
    } else {
        strcpy(u->port, "80");
    }
    if (*p != '\0' && *p != '/') {
        return EM_ERROR;
    }

    path = p;
    n = strcspn(path, "?#");
    if (n <= 1) {
        strcpy(u->path, "/socket.io/");
        return EM_OK;
    }
    if (n + 2 > sizeof(u->path)) {
        return EM_ERROR;
    }
    memcpy(u->path, path, n);
    if (u->path[n - 1] != '/') {
        u->path[n] = '/';
    }
    return EM_OK;
}

int
em_bench_addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *) (const void *) sa;

        return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *) (const void *) sa;
        const unsigned char       *a = s6->sin6_addr.s6_addr;
        static const unsigned char v4mapped[12] = { 0,0,0,0, 0,0,0,0, 0,0,0xff,0xff };

        if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr)) {
            return 1;
        }
        return memcmp(a, v4mapped, 12) == 0 && a[12] == 127;
    }
    return 0;
}

int
em_bench_ws_parse_header(const unsigned char *buf, size_t len, em_bench_ws_frame_t *f)
{
    unsigned op;
    uint64_t n;
    size_t   hl = 2, i;

    if (len < 2) {
        return EM_AGAIN;
    }
    if (buf[0] & 0x70) {
        return EM_ERROR;                          /* RSV1-3: no extensions */
    }
    if (buf[1] & 0x80) {
        return EM_ERROR;                          /* servers never mask */
    }
    op = buf[0] & 0x0f;
    if (!(op <= EM_WS_OP_BINARY || (op >= EM_WS_OP_CLOSE && op <= EM_WS_OP_PONG))) {
        return EM_ERROR;
    }
    f->fin = (buf[0] & 0x80) != 0;
    f->opcode = op & 0x0f;
    n = buf[1] & 0x7f;
    if (op >= EM_WS_OP_CLOSE && (!f->fin || n > 125)) {
        return EM_ERROR;
    }
    if (n == 126) {
        if (len < 4) {
            return EM_AGAIN;
        }
        n = ((uint64_t) buf[2] << 8) | buf[3];
        if (n < 126) {
            return EM_ERROR;
        }
        hl = 4;
    } else if (n == 127) {
        if (len < 10) {
            return EM_AGAIN;
        }
        n = 0;
        for (i = 2; i < 10; i++) {
            n = (n << 8) | buf[i];
        }
        if (n <= 0xffff || (n >> 63) != 0) {
            return EM_ERROR;
        }
        hl = 10;
    }
    f->header_len = hl;
    f->payload_len = n;
    return EM_OK;
}

size_t
em_bench_ws_encode_header(unsigned opcode, uint64_t len, const unsigned char mask[4],
                          unsigned char *out)
{
    size_t hl, i;

    out[0] = (unsigned char) (0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (unsigned char) (0x80 | len);
        hl = 2;
    } else if (len <= 0xffff) {
        out[1] = 0x80 | 126;
        out[2] = (unsigned char) (len >> 8);
        out[3] = (unsigned char) len;
        hl = 4;
    } else {
        out[1] = 0x80 | 127;
        for (i = 0; i < 8; i++) {
            out[2 + i] = (unsigned char) (len >> (56 - 8 * i));
        }
        hl = 10;
    }
    memcpy(out + hl, mask, 4);
    return hl + 4;
}

void
em_bench_ws_mask(unsigned char *buf, size_t n, const unsigned char mask[4], size_t off)
{
    size_t i;

    for (i = 0; i < n; i++) {
        buf[i] ^= mask[(off + i) & 3];
    }
}

void
em_bench_ws_accept(const char *key, char out[29])
{
    unsigned char digest[SHA_DIGEST_LENGTH];
    char          buf[128];
    size_t        n;

    n = (size_t) snprintf(buf, sizeof(buf), "%s%s", key, EM_WS_GUID);
    if (n >= sizeof(buf)) {
        n = sizeof(buf) - 1;
    }
    SHA1((const unsigned char *) buf, n, digest);
    n = em_eio_b64_encode(digest, sizeof(digest), out);
    out[n] = '\0';
}

/* Find a header by name (case-insensitive) in a response head and return
 * its value with surrounding blanks trimmed, or an empty slice. */
static em_str_t
em_bench_http_header(const char *head, size_t len, const char *name)
{
    const char *p = memchr(head, '\n', len), *end = head + len, *eol, *v;
    size_t      nl = strlen(name);

    while (p != NULL && p + 1 < end) {
        p++;
        eol = memchr(p, '\n', (size_t) (end - p));
        if (eol == NULL) {
            break;
        }
        if ((size_t) (eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) {
                v++;
            }
            while (eol > v && (eol[-1] == '\r' || eol[-1] == ' ' || eol[-1] == '\t')) {
                eol--;
            }
            return (em_str_t) { v, (size_t) (eol - v) };
        }
        p = eol;
    }
    return EM_NULL_STR;
}

/* True when a comma-separated header value holds the token (any case). */
static int
em_bench_has_token(em_str_t v, const char *token)
{
    size_t i = 0, start, end;

    while (i < v.len) {
        while (i < v.len && (v.data[i] == ' ' || v.data[i] == ',' || v.data[i] == '\t')) {
            i++;
        }
        start = i;
        while (i < v.len && v.data[i] != ',') {
            i++;
        }
        end = i;
        while (end > start && (v.data[end - 1] == ' ' || v.data[end - 1] == '\t')) {
            end--;
        }
        if (end > start && em_str_caseeq((em_str_t) { v.data + start, end - start }, token)) {
            return 1;
        }
    }
    return 0;
}

int
em_bench_http_parse_response(const char *head, size_t len, em_bench_http_resp_t *r)
{
    em_str_t v;
    int      status = 0, i;

    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    if (len < 12 || strncmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ') {
        return EM_ERROR;
    }
    for (i = 9; i < 12; i++) {
        if (head[i] < '0' || head[i] > '9') {
            return EM_ERROR;
        }
        status = status * 10 + (head[i] - '0');
    }
    r->status = status;

    v = em_bench_http_header(head, len, "content-length");
    if (v.len > 0) {
        int64_t n = 0;
        size_t  k;

        if (v.len > 15) {
            return EM_ERROR;
        }
        for (k = 0; k < v.len; k++) {
            if (v.data[k] < '0' || v.data[k] > '9') {
                return EM_ERROR;
            }
            n = n * 10 + (v.data[k] - '0');
        }
        r->content_length = n;
    }
    v = em_bench_http_header(head, len, "transfer-encoding");
    r->chunked = em_bench_has_token(v, "chunked") ? 1u : 0u;
    v = em_bench_http_header(head, len, "connection");
    r->close = em_bench_has_token(v, "close") || head[7] == '0' ? 1u : 0u;
    return EM_OK;
}

int
em_bench_ws_check_upgrade(const char *head, size_t len, const char *accept)
{
    em_bench_http_resp_t r;
    em_str_t             v;

    if (em_bench_http_parse_response(head, len, &r) != EM_OK || r.status != 101) {
        return EM_ERROR;
    }
    v = em_bench_http_header(head, len, "upgrade");
    if (!em_bench_has_token(v, "websocket")) {
        return EM_ERROR;
    }
    v = em_bench_http_header(head, len, "connection");
    if (!em_bench_has_token(v, "upgrade")) {
        return EM_ERROR;
    }
    v = em_bench_http_header(head, len, "sec-websocket-accept");
    if (!em_str_eq(v, accept)) {
        return EM_ERROR;
    }
    return EM_OK;
}

/* Position just after "key": (and blanks), or NULL. */
static const char *
em_bench_json_find(const char *json, size_t len, const char *key)
{
    char        pat[64];
    size_t      pl;
    const char *p, *end = json + len;

    pl = (size_t) snprintf(pat, sizeof(pat), "\"%s\"", key);
    if (pl >= sizeof(pat)) {
        return NULL;
    }
    p = memmem(json, len, pat, pl);
    if (p == NULL) {
        return NULL;
    }
    p += pl;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    if (p == end || *p != ':') {
        return NULL;
    }
    p++;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    return p;
}

int
em_bench_json_int(const char *json, size_t len, const char *key, int64_t *out)
{
    const char *p = em_bench_json_find(json, len, key), *end = json + len;
    int         neg = 0, digits = 0;
    uint64_t    v = 0;

    if (p == NULL) {
        return EM_DECLINED;
    }
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    while (p < end && *p >= '0' && *p <= '9') {
        if (++digits > 18) {
            return EM_DECLINED;
        }
        v = v * 10 + (uint64_t) (*p - '0');
        p++;
    }
    if (digits == 0 || (p < end && (*p == '.' || *p == 'e' || *p == 'E'))) {
        return EM_DECLINED;
    }
    *out = neg ? -(int64_t) v : (int64_t) v;
    return EM_OK;
}

int
em_bench_json_str(const char *json, size_t len, const char *key, char *out, size_t cap)
{
    const char *p = em_bench_json_find(json, len, key), *end = json + len, *q;

    if (p == NULL || p == end || *p != '"') {
        return EM_DECLINED;
    }
    p++;
    for (q = p; q < end && *q != '"'; q++) {
        if (*q == '\\') {
            return EM_DECLINED;
        }
    }
    if (q == end) {
        return EM_DECLINED;
    }
    if ((size_t) (q - p) + 1 > cap) {
        return EM_ERROR;
    }
    memcpy(out, p, (size_t) (q - p));
    out[q - p] = '\0';
    return EM_OK;
}
