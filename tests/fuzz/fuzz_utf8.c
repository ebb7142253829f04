/*
 * fuzz_utf8.c - libFuzzer harness for em_utf8_valid() (proto/em_utf8.c).
 * Checks it against a reference decoder written the other way round (each
 * sequence decoded to its code point, which is then held against the
 * shortest form, the surrogates and U+10FFFF), from every offset of the
 * input so that the 8-byte ASCII skip meets every alignment and tail
 * length; and that a valid input cut at a code point boundary gives two
 * valid halves.
 */
#include <stdint.h>
#include <stdlib.h>

#include "em_utf8.h"

#define FUZZ_ASSERT(c) do { if (!(c)) { abort(); } } while (0)

/* The length of the well-formed sequence at p, or 0. */
static size_t
ref_seq(const uint8_t *p, size_t left)
{
    uint32_t cp;
    size_t   n;

    if (p[0] < 0x80) {
        return 1;
    }
    if ((p[0] & 0xe0) == 0xc0) {
        n = 2;
        cp = p[0] & 0x1f;
    } else if ((p[0] & 0xf0) == 0xe0) {
        n = 3;
        cp = p[0] & 0x0f;
    } else if ((p[0] & 0xf8) == 0xf0) {
        n = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (left < n) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

static int
ref_valid(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = ref_seq(p + i, len - i);
        if (n == 0) {
            return 0;
        }
        i += n;
    }
    return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t off = 0; off <= size && off < 16; off++) {
        FUZZ_ASSERT(em_utf8_valid((const char *) data + off, size - off)
                    == ref_valid(data + off, size - off));
    }
    if (ref_valid(data, size)) {
        /* Cut at the boundary nearest the middle. */
        size_t cut = 0;
        while (cut < size / 2) {
            cut += ref_seq(data + cut, size - cut);
        }
        FUZZ_ASSERT(em_utf8_valid((const char *) data, cut));
        FUZZ_ASSERT(em_utf8_valid((const char *) data + cut, size - cut));
    }
    return 0;
}
