/*
 * em_http_query.c - query strings: iterating key=value pairs, looking one
 * up, and percent-decoding into a bounded buffer.
 */
#include <string.h>

#include "em_http-int.h"
#include "em_http.h"

/* Compare a raw (percent-encoded) query key with a plain name. */
int
em_http_key_eq(em_str_t raw, const char *name)
{
    size_t i = 0;

    for (; *name != '\0'; name++) {
        int c;

        if (i == raw.len) {
            return 0;
        }
        c = (unsigned char) raw.data[i];
        if (c == '%') {
            int hi, lo;

            if (raw.len - i < 3) {
                return 0;
            }
            hi = em_http_hex(raw.data[i + 1]);
            lo = em_http_hex(raw.data[i + 2]);
            if (hi < 0 || lo < 0) {
                return 0;
            }
            c = hi << 4 | lo;
            i += 3;
        } else {
            if (c == '+') {
                c = ' ';
            }
            i++;
        }
        if (c != (unsigned char) *name) {
            return 0;
        }
    }
    return i == raw.len;
}

int
em_http_query_next(em_str_t query, size_t *pos, em_str_t *key, em_str_t *value)
{
    while (*pos < query.len) {
        const char *s = query.data + *pos;
        size_t      n = query.len - *pos;
        const char *amp = memchr(s, '&', n);
        const char *eq;
        size_t      seg = amp != NULL ? (size_t) (amp - s) : n;

        *pos += amp != NULL ? seg + 1 : seg;
        if (seg == 0) {
            continue;       /* "a=1&&b=2": skip the empty pair */
        }
        eq = memchr(s, '=', seg);
        if (eq == NULL) {
            *key = (em_str_t) { s, seg };
            *value = (em_str_t) { s + seg, 0 };
        } else {
            *key = (em_str_t) { s, (size_t) (eq - s) };
            *value = (em_str_t) { eq + 1, seg - (size_t) (eq - s) - 1 };
        }
        return 1;
    }
    return 0;
}

ssize_t
em_http_query_get(em_str_t query, const char *name, char *out, size_t cap)
{
    em_str_t k, v;
    size_t   pos = 0;
    ssize_t  n;

    while (em_http_query_next(query, &pos, &k, &v)) {
        if (em_http_key_eq(k, name)) {
            n = em_http_pct_decode(v, out, cap);
            return n < 0 ? -2 : n;
        }
    }
    return -1;
}

ssize_t
em_http_pct_decode(em_str_t src, char *out, size_t cap)
{
    size_t i, n = 0;

    for (i = 0; i < src.len; i++) {
        char c = src.data[i];

        if (c == '%') {
            int hi, lo;

            if (src.len - i < 3) {
                return -1;
            }
            hi = em_http_hex(src.data[i + 1]);
            lo = em_http_hex(src.data[i + 2]);
            if (hi < 0 || lo < 0) {
                return -1;
            }
            c = (char) (hi << 4 | lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (n == cap) {
            return -1;
        }
        out[n++] = c;
    }
    return (ssize_t) n;
}
