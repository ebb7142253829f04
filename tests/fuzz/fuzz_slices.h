/*
 * fuzz_slices.h - what the harnesses of the Redis messages (fuzz_rmsg,
 * fuzz_rpres, fuzz_rstore) share: an assertion that stops the fuzzer, and
 * checks of the slices a decoder gives back.
 */
#ifndef FUZZ_SLICES_H
#define FUZZ_SLICES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "em_core.h"

#define FUZZ_ASSERT(c) do { if (!(c)) { abort(); } } while (0)

/* s lies inside buf[0..len). */
static inline int
fuzz_inside(em_str_t s, const uint8_t *buf, size_t len)
{
    const char *b = (const char *) buf;

    return s.len == 0 || (s.data >= b && s.len <= len && (size_t) (s.data - b) <= len - s.len);
}

static inline int
fuzz_same(em_str_t a, em_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

#endif
