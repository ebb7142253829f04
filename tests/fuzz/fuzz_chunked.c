/*
 * fuzz_chunked.c - libFuzzer harness for the chunked request body decoder.
 *
 * The input is a chunked body. It is decoded whole, one byte per call, and
 * in pieces whose lengths come from the input's own bytes (some of them
 * empty); every way must give the same status, output and bytes consumed.
 * Each piece is copied to the end of a heap block and the output buffer is
 * exactly cap bytes, so ASan reports any read or write past either. Also
 * checked: *used <= len, *outlen <= cap, a call never outputs more than it
 * consumed, EM_AGAIN consumes everything, a finished decoder stays finished,
 * and an accepted body is accepted alone, is EM_AGAIN when cut short, fits a
 * cap equal to its data and is EM_DECLINED with one byte less.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "em_http.h"

#define FUZZ_ASSERT(c) do { if (!(c)) { abort(); } } while (0)

typedef enum { FEED_WHOLE, FEED_BYTES, FEED_PIECES } feed_t;

typedef struct {
    int    rc;
    size_t used;        /* total of *used over the calls */
    size_t outlen;
    char  *out;         /* malloc'ed, cap bytes (at least 1) */
} result_t;

/* Length of the next piece: taken from the input, 0 to 32 bytes, never two
 * empty pieces in a row so that feeding always ends. */
static size_t
piece_len(const uint8_t *data, size_t size, size_t k, size_t left, int last_empty)
{
    size_t n = size > 0 ? data[k % size] % 33 : 0;

    if (n == 0 && last_empty) {
        n = 1;
    }
    return EM_MIN(n, left);
}

static result_t
decode(const uint8_t *data, size_t size, feed_t how, size_t cap)
{
    em_http_chunked_t st;
    result_t          r = { EM_AGAIN, 0, 0, malloc(cap > 0 ? cap : 1) };
    char             *block = malloc(size > 0 ? size : 1);
    size_t            from = 0, k = 0, calls = 0;
    int               last_empty = 0;

    FUZZ_ASSERT(r.out != NULL && block != NULL);
    memset(&st, 0, sizeof(st));
    for (;;) {
        size_t n, used = SIZE_MAX, before = r.outlen;
        char  *piece;

        switch (how) {
        case FEED_WHOLE:
            n = size - from;
            break;
        case FEED_BYTES:
            n = EM_MIN((size_t) 1, size - from);
            break;
        default:
            n = piece_len(data, size, k++, size - from, last_empty);
            break;
        }
        last_empty = n == 0;
        piece = block + (size - n);
        if (n > 0) {
            memcpy(piece, data + from, n);
        }

        r.rc = em_http_chunked_parse(&st, piece, n, &used, r.out, cap, &r.outlen);
        FUZZ_ASSERT(r.rc == EM_OK || r.rc == EM_AGAIN || r.rc == EM_ERROR
                    || r.rc == EM_DECLINED);
        FUZZ_ASSERT(used <= n);
        FUZZ_ASSERT(r.outlen <= cap && r.outlen >= before && r.outlen - before <= used);
        r.used += used;
        from += used;
        FUZZ_ASSERT(++calls <= 2 * size + 2);
        if (r.rc != EM_AGAIN) {
            break;
        }
        FUZZ_ASSERT(used == n);
        if (from == size) {
            break;
        }
    }

    /* A finished decoder consumes nothing more and repeats its status. */
    if (r.rc != EM_AGAIN) {
        size_t used = SIZE_MAX, outlen = r.outlen;

        FUZZ_ASSERT(em_http_chunked_parse(&st, (const char *) data, size, &used, r.out, cap,
                                          &outlen) == r.rc);
        FUZZ_ASSERT(used == 0 && outlen == r.outlen);
    }
    free(block);
    return r;
}

static void
check_same(result_t a, result_t b)
{
    FUZZ_ASSERT(a.rc == b.rc);
    FUZZ_ASSERT(a.used == b.used);
    FUZZ_ASSERT(a.outlen == b.outlen);
    FUZZ_ASSERT(memcmp(a.out, b.out, a.outlen) == 0);
}

/* Decode every way with this cap; returns the whole decode (caller frees). */
static result_t
decode_every_way(const uint8_t *data, size_t size, size_t cap)
{
    result_t whole = decode(data, size, FEED_WHOLE, cap), r;

    r = decode(data, size, FEED_BYTES, cap);
    check_same(r, whole);
    free(r.out);
    r = decode(data, size, FEED_PIECES, cap);
    check_same(r, whole);
    free(r.out);
    return whole;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    result_t whole, r;

    /* Output is never longer than the input, so cap == size always fits. */
    whole = decode_every_way(data, size, size);
    FUZZ_ASSERT(whole.rc != EM_AGAIN || whole.used == size);
    FUZZ_ASSERT(whole.outlen <= whole.used);

    /* A smaller cap gives the same result, or EM_DECLINED no later than
     * the first decode stopped, with a prefix of its output. */
    r = decode_every_way(data, size, size / 4);
    if (r.rc == EM_DECLINED) {
        FUZZ_ASSERT(r.used <= whole.used && r.outlen <= whole.outlen);
        FUZZ_ASSERT(memcmp(r.out, whole.out, r.outlen) == 0);
    } else {
        check_same(r, whole);
    }
    free(r.out);

    if (whole.rc == EM_OK) {
        /* The body alone is accepted the same; cut short it wants more. */
        r = decode(data, whole.used, FEED_WHOLE, size);
        check_same(r, whole);
        free(r.out);
        r = decode(data, whole.used - 1, FEED_WHOLE, size);
        FUZZ_ASSERT(r.rc == EM_AGAIN && r.used == whole.used - 1);
        free(r.out);

        /* It fits a cap of exactly its data, and not one byte less. */
        r = decode(data, size, FEED_WHOLE, whole.outlen);
        check_same(r, whole);
        free(r.out);
        if (whole.outlen > 0) {
            r = decode(data, size, FEED_WHOLE, whole.outlen - 1);
            FUZZ_ASSERT(r.rc == EM_DECLINED);
            free(r.out);
        }
    }
    free(whole.out);
    return 0;
}
