/*
 * em_http-int.h - what the HTTP codec's files share: the character classes
 * of RFC 9110 and hex digits.
 */
#ifndef EM_HTTP_INT_H
#define EM_HTTP_INT_H

#include "em_core.h"

/* tchar of RFC 9110 5.6.2: the characters of a method or header name. */
static const unsigned char em_http_tchar[256] = {
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1,
};

static inline int
em_http_is_tchar(char c)
{
    return em_http_tchar[(unsigned char) c];
}

static inline int
em_http_hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* Whether a raw (percent-encoded) query key equals the plain name. */
int em_http_key_eq(em_str_t raw, const char *name);

#endif
