/*
 * fuzz_wsframe.c - libFuzzer harness for the WebSocket frame-boundary
 * scanner. Checks: it never reports more than the input; a prefix never has
 * more whole frames than the whole; scanning the whole input equals scanning
 * its whole frames and then the rest (frames never span the cut).
 */
#include <stdint.h>
#include <stdlib.h>

#include "em_wsframe.h"

#define FUZZ_ASSERT(c) do { if (!(c)) { abort(); } } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    em_wsframe_scan_t all, head, rest;
    size_t            max = size ? (size_t) data[0] * 97 : 0;

    em_wsframe_scan(data, size, max, 0, &all);
    FUZZ_ASSERT(all.complete <= size);
    FUZZ_ASSERT(all.frames <= size / 2);
    FUZZ_ASSERT(all.complete >= 2u * all.frames);

    for (size_t cut = 0; cut <= size; cut += 1 + cut / 8) {
        em_wsframe_scan(data, cut, max, 0, &head);
        FUZZ_ASSERT(head.complete <= cut && head.frames <= all.frames);
        FUZZ_ASSERT(head.complete <= all.complete || all.oversized);
    }
    em_wsframe_scan(data, all.complete, max, 0, &head);
    FUZZ_ASSERT(head.complete == all.complete && head.frames == all.frames);
    FUZZ_ASSERT(head.fragmented == all.fragmented);
    em_wsframe_scan(data + all.complete, size - all.complete, max, all.fragmented, &rest);
    FUZZ_ASSERT(rest.frames == 0);
    FUZZ_ASSERT(rest.fragmented == all.fragmented);
    return 0;
}
