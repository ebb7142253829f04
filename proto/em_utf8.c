/*
 * em_utf8.c - UTF-8 validation.
 *
 * ASCII runs are skipped eight bytes at a time; every other sequence is
 * checked against the table of well-formed byte sequences in RFC 3629
 * section 4 (the second byte's range depends on the first).
 */
#include <string.h>

#include "em_utf8.h"

int
em_utf8_valid(const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *) buf, *end = p + len;

    while (p < end) {
        if ((size_t) (end - p) >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if ((w & UINT64_C(0x8080808080808080)) == 0) {
                p += 8;
                continue;
            }
        }
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        unsigned      n, lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            if (c == 0xe0) {
                lo = 0xa0;      /* no overlong 3-byte forms */
            } else if (c == 0xed) {
                hi = 0x9f;      /* no surrogates */
            }
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            if (c == 0xf0) {
                lo = 0x90;      /* no overlong 4-byte forms */
            } else if (c == 0xf4) {
                hi = 0x8f;      /* nothing above U+10FFFF */
            }
        } else {
            return 0;           /* 0x80..0xc1 or 0xf5..0xff cannot start a sequence */
        }
        if ((size_t) (end - p) <= n || p[1] < lo || p[1] > hi) {
            return 0;
        }
        for (unsigned i = 2; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                return 0;
            }
        }
        p += n + 1;
    }
    return 1;
}
