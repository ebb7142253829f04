/*
 * test_chunked.c - unit tests of em_http_chunked_parse() (proto/em_http_chunked.c).
 *
 * Table-driven: every row is its own loop test, so each shows up as one TAP
 * line. Every row is decoded whole, one byte per call, and split in two at
 * every offset; all must give the same status, output and bytes consumed.
 * Each piece is copied into a heap block of its exact size and the output
 * buffer is exactly cap bytes, so the sanitizer build catches any read or
 * write past either end.
 */
#include <check.h>

#include "em_check.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "em_http.h"


/* `used` of a row: the whole input. */
#define ALL SIZE_MAX

/* Rows with a larger cap (to reach the 2^62 size limit) never produce this
 * much data, so their output buffer is cut to this size. */
#define OUT_MAX 65536

/* What decoding one body gave. */
typedef struct {
    int    rc;
    size_t used;        /* total of *used over the calls */
    size_t outlen;
    char  *out;         /* malloc'ed, exactly cap bytes (at least 1, at most OUT_MAX) */
} result_t;

/*
 * Decode in[0..len) fed as the pieces that end at cuts[0..ncuts) (the last
 * cut must be len), stopping at the first status other than EM_AGAIN. Every
 * EM_AGAIN must have consumed its whole piece.
 */
static result_t
feed(const char *in, size_t len, const size_t *cuts, size_t ncuts, size_t cap)
{
    em_http_chunked_t st;
    result_t          r = { EM_AGAIN, 0, 0, malloc(EM_MAX(EM_MIN(cap, OUT_MAX), 1)) };
    size_t            i, from = 0;

    ck_assert_ptr_nonnull(r.out);
    ck_assert(ncuts > 0 && cuts[ncuts - 1] == len);
    memset(&st, 0, sizeof(st));
    for (i = 0; i < ncuts; i++) {
        size_t n = cuts[i] - from, used = SIZE_MAX;
        char  *piece = malloc(n > 0 ? n : 1);

        ck_assert_ptr_nonnull(piece);
        if (n > 0) {
            memcpy(piece, in + from, n);
        }
        r.rc = em_http_chunked_parse(&st, piece, n, &used, r.out, cap, &r.outlen);
        free(piece);
        ck_assert_uint_le(used, n);
        ck_assert_uint_le(r.outlen, cap);
        r.used += used;
        from = cuts[i];
        if (r.rc != EM_AGAIN) {
            break;
        }
        ck_assert_uint_eq(used, n);
    }
    return r;
}

static result_t
feed_whole(const char *in, size_t len, size_t cap)
{
    return feed(in, len, &len, 1, cap);
}

static result_t
feed_bytes(const char *in, size_t len, size_t cap)
{
    size_t  *cuts = malloc((len > 0 ? len : 1) * sizeof(*cuts));
    size_t   i;
    result_t r;

    ck_assert_ptr_nonnull(cuts);
    cuts[0] = 0;            /* an empty body is one empty call */
    for (i = 0; i < len; i++) {
        cuts[i] = i + 1;
    }
    r = feed(in, len, cuts, len > 0 ? len : 1, cap);
    free(cuts);
    return r;
}

static result_t
feed_two(const char *in, size_t len, size_t k, size_t cap)
{
    size_t cuts[2] = { k, len };

    return feed(in, len, cuts, 2, cap);
}

static void
ck_same(result_t got, result_t want, const char *name, const char *how, size_t k)
{
    ck_assert_msg(got.rc == want.rc, "%s (%s %zu): rc %d, want %d", name, how, k, got.rc, want.rc);
    ck_assert_msg(got.used == want.used, "%s (%s %zu): used %zu, want %zu", name, how, k,
                  got.used, want.used);
    ck_assert_msg(got.outlen == want.outlen, "%s (%s %zu): outlen %zu, want %zu", name, how, k,
                  got.outlen, want.outlen);
    ck_assert_msg(memcmp(got.out, want.out, got.outlen) == 0, "%s (%s %zu): output differs",
                  name, how, k);
}

/*
 * Decode in[0..len) whole, byte by byte and split in two everywhere; every
 * way must give the same result, which is returned (caller frees .out).
 */
static result_t
decode_every_way(const char *name, const char *in, size_t len, size_t cap)
{
    result_t whole = feed_whole(in, len, cap), r;
    size_t   k;

    r = feed_bytes(in, len, cap);
    ck_same(r, whole, name, "bytes", 0);
    free(r.out);
    for (k = 0; k <= len; k++) {
        r = feed_two(in, len, k, cap);
        ck_same(r, whole, name, "split at", k);
        free(r.out);
    }
    return whole;
}

/* ---- whole bodies -------------------------------------------------------- */

static const struct {
    const char *name;
    const char *in;
    size_t      len;
    size_t      cap;
    int         rc;
    const char *out;
    size_t      outlen;
    size_t      used;       /* ALL: the whole input */
} chunked_cases[] = {
    /* Valid bodies. */
    { "empty body", B("0\r\n\r\n"), 64, EM_OK, B(""), ALL },
    { "single chunk", B("5\r\nhello\r\n0\r\n\r\n"), 64, EM_OK, B("hello"), ALL },
    { "many chunks", B("1\r\na\r\n2\r\nbc\r\n3\r\ndef\r\n4\r\nghij\r\n1\r\nk\r\n0\r\n\r\n"), 64,
      EM_OK, B("abcdefghijk"), ALL },
    { "upper-case hex", B("A\r\n0123456789\r\nF\r\nABCDEFGHIJKLMNO\r\n0\r\n\r\n"), 64, EM_OK,
      B("0123456789ABCDEFGHIJKLMNO"), ALL },
    { "lower-case hex", B("a\r\n0123456789\r\nf\r\nabcdefghijklmno\r\n0\r\n\r\n"), 64, EM_OK,
      B("0123456789abcdefghijklmno"), ALL },
    { "two-digit size", B("1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n"), 64, EM_OK,
      B("abcdefghijklmnopqrstuvwxyz"), ALL },
    { "leading zeros", B("0005\r\nhello\r\n0000\r\n\r\n"), 64, EM_OK, B("hello"), ALL },
    { "binary data", B("6\r\n\r\n\0\n\r\xff\r\n0\r\n\r\n"), 64, EM_OK, B("\r\n\0\n\r\xff"), ALL },
    { "extension", B("5;foo=bar\r\nhello\r\n0\r\n\r\n"), 64, EM_OK, B("hello"), ALL },
    { "extension no value", B("5;foo\r\nhello\r\n0;last\r\n\r\n"), 64, EM_OK, B("hello"), ALL },
    { "extensions", B("5;a=1;b;c=x-y\r\nhello\r\n0\r\n\r\n"), 64, EM_OK, B("hello"), ALL },
    { "extension BWS", B("5 ;\ta = b ; c\t=\td\r\nhello\r\n0\r\n\r\n"), 64, EM_OK, B("hello"),
      ALL },
    { "quoted extension", B("5;a=\"x; y=\\\"z\\\"\\\\\"\r\nhello\r\n0\r\n\r\n"), 64, EM_OK,
      B("hello"), ALL },
    { "quoted empty", B("5;a=\"\";b=\"\xc3\xa9\t\" ;c\r\nhello\r\n0\r\n\r\n"), 64, EM_OK,
      B("hello"), ALL },
    { "trailer", B("5\r\nhello\r\n0\r\nX-Sum: abc\r\n\r\n"), 64, EM_OK, B("hello"), ALL },
    { "trailers", B("0\r\nA: 1\r\nb:\r\nC: x \t\xe2\x82\xac\r\n\r\n"), 64, EM_OK, B(""), ALL },
    { "bare LF", B("5\nhello\n0\n\n"), 64, EM_OK, B("hello"), ALL },
    { "bare LF trailer", B("0;a=b\nX: 1\n\n"), 64, EM_OK, B(""), ALL },
    { "mixed line ends", B("5\nhello\r\n2;x\r\nab\n0\r\nT: v\n\r\n"), 64, EM_OK, B("helloab"),
      ALL },

    /* Incomplete: everything consumed, the data so far delivered. */
    { "nothing", B(""), 64, EM_AGAIN, B(""), ALL },
    { "size only", B("5"), 64, EM_AGAIN, B(""), ALL },
    { "size line", B("5\r\n"), 64, EM_AGAIN, B(""), ALL },
    { "part data", B("5\r\nhel"), 64, EM_AGAIN, B("hel"), ALL },
    { "data CR", B("5\r\nhello\r"), 64, EM_AGAIN, B("hello"), ALL },
    { "in extension", B("5;a=\"x"), 64, EM_AGAIN, B(""), ALL },
    { "last chunk", B("5\r\nhello\r\n0\r\n"), 64, EM_AGAIN, B("hello"), ALL },
    { "final CR", B("0\r\n\r"), 64, EM_AGAIN, B(""), ALL },
    { "in trailer", B("0\r\nX: y\r\n"), 64, EM_AGAIN, B(""), ALL },
    { "size 2^62", B("4000000000000000\r\n"), SIZE_MAX, EM_AGAIN, B(""), ALL },

    /* Pipelined bytes after the body are not consumed. */
    { "pipelined request", B("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n"), 64, EM_OK,
      B("hello"), 15 },
    { "pipelined body", B("0\r\n\r\n0\r\n\r\n"), 64, EM_OK, B(""), 5 },
    { "pipelined after trailer", B("0\r\nT: 1\r\n\r\nPOST"), 64, EM_OK, B(""), 11 },
    { "pipelined after LF", B("0\n\n\n"), 64, EM_OK, B(""), 3 },

    /* Non-hex size; *used counts the offending byte. */
    { "empty size", B("\r\n"), 64, EM_ERROR, B(""), 1 },
    { "bare LF size", B("\n"), 64, EM_ERROR, B(""), 1 },
    { "letter size", B("g\r\n"), 64, EM_ERROR, B(""), 1 },
    { "leading space", B(" 5\r\nhello\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 1 },
    { "negative size", B("-1\r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 1 },
    { "plus size", B("+1\r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 1 },
    { "0x prefix", B("0x5\r\nhello\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 2 },
    { "hex then junk", B("5g\r\nhello\r\n"), 64, EM_ERROR, B(""), 2 },
    { "NUL in size", B("5\0\r\nhello"), 64, EM_ERROR, B(""), 2 },
    { "no next size", B("5\r\nhello\r\n\r\n"), 64, EM_ERROR, B("hello"), 11 },
    { "CR in size line", B("5\rhello\r\n"), 64, EM_ERROR, B(""), 3 },
    { "space before line end", B("5 \r\nhello\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 3 },

    /* Size over 2^62 (at most 16 significant digits). */
    { "size 2^62+1", B("4000000000000001\r\n"), SIZE_MAX, EM_ERROR, B(""), 16 },
    { "size 2^64-1", B("ffffffffffffffff\r\n"), SIZE_MAX, EM_ERROR, B(""), 16 },
    { "size 17 digits", B("10000000000000000\r\n"), SIZE_MAX, EM_ERROR, B(""), 17 },
    { "size 2^63 zeros", B("00008000000000000000\r\n"), SIZE_MAX, EM_ERROR, B(""), 20 },

    /* Chunk data not followed by a line end. */
    { "chunk too long", B("3\r\nabcd\r\n0\r\n\r\n"), 64, EM_ERROR, B("abc"), 7 },
    { "chunk CR junk", B("3\r\nabc\rd\r\n0\r\n\r\n"), 64, EM_ERROR, B("abc"), 8 },
    { "chunk no CRLF", B("3\r\nabc0\r\n\r\n"), 64, EM_ERROR, B("abc"), 7 },
    { "chunk short", B("5\r\nabc\r\n0\r\n\r\n"), 64, EM_ERROR, B("abc\r\n"), 9 },

    /* Bad chunk extensions. */
    { "empty ext name", B("1;\r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 3 },
    { "ext value no name", B("1;=v\r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 3 },
    { "empty ext value", B("1;a=\r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 5 },
    { "ext double ;", B("1;a;;b\r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 5 },
    { "ext space in value", B("1;a=b c\r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 7 },
    { "ext space in name", B("1;a b\r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 5 },
    { "ext trailing BWS", B("1;a \r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 5 },
    { "ext bad name char", B("1;a@b\r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 4 },
    { "ext control", B("1;a\x01\r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 4 },
    { "ext NUL value", B("1;a=\0\r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 5 },
    { "ext DEL quoted", B("1;a=\"\x7f\"\r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 6 },
    { "ext CR quoted", B("1;a=\"x\r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 7 },
    { "ext LF quoted", B("1;a=\"x\nx\n0\n\n"), 64, EM_ERROR, B(""), 7 },
    { "ext bad escape", B("1;a=\"\\\x01\"\r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 7 },
    { "ext after quote", B("1;a=\"x\"y\r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 8 },
    { "ext two values", B("1;a=b=c\r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 6 },
    { "ext without ;", B("1 a\r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 3 },
    { "ext CR junk", B("1;a\rb\r\nx\r\n0\r\n\r\n"), 64, EM_ERROR, B(""), 5 },

    /* Bad trailers. */
    { "trailer no colon", B("0\r\nX\r\n\r\n"), 64, EM_ERROR, B(""), 5 },
    { "trailer empty name", B("0\r\n: v\r\n\r\n"), 64, EM_ERROR, B(""), 4 },
    { "trailer obs-fold", B("0\r\n v\r\n\r\n"), 64, EM_ERROR, B(""), 4 },
    { "trailer space name", B("0\r\nX : v\r\n\r\n"), 64, EM_ERROR, B(""), 5 },
    { "trailer NUL", B("0\r\nX: a\0b\r\n\r\n"), 64, EM_ERROR, B(""), 8 },
    { "trailer CR junk", B("0\r\nX: a\rb\r\n\r\n"), 64, EM_ERROR, B(""), 9 },
    { "final CR junk", B("0\r\n\rX"), 64, EM_ERROR, B(""), 5 },

    /* The cap: EM_DECLINED exactly when the data exceeds it, as soon as a
     * size line announces too much. */
    { "cap exact", B("5\r\nhello\r\n0\r\n\r\n"), 5, EM_OK, B("hello"), ALL },
    { "cap one short", B("5\r\nhello\r\n0\r\n\r\n"), 4, EM_DECLINED, B(""), 3 },
    { "cap zero empty body", B("0\r\n\r\n"), 0, EM_OK, B(""), ALL },
    { "cap zero", B("1\r\nx\r\n0\r\n\r\n"), 0, EM_DECLINED, B(""), 3 },
    { "cap exact two chunks", B("3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"), 6, EM_OK, B("abcdef"), ALL },
    { "cap second chunk", B("3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"), 5, EM_DECLINED, B("abc"), 11 },
    { "cap with extension", B("3;a=b\r\nabc\r\n0\r\n\r\n"), 2, EM_DECLINED, B(""), 7 },
    { "cap size 2^62", B("4000000000000000\r\n"), 1 << 20, EM_DECLINED, B(""), 18 },
    { "cap before bad ext", B("9;\x01\r\n"), 1, EM_ERROR, B(""), 3 },
};

START_TEST(test_chunked)
{
    const char *name = chunked_cases[_i].name;
    size_t      len = chunked_cases[_i].len;
    size_t      want_used = chunked_cases[_i].used == ALL ? len : chunked_cases[_i].used;
    result_t    r;

    r = decode_every_way(name, chunked_cases[_i].in, len, chunked_cases[_i].cap);
    ck_assert_msg(r.rc == chunked_cases[_i].rc, "%s: rc %d, want %d", name, r.rc,
                  chunked_cases[_i].rc);
    ck_assert_msg(r.used == want_used, "%s: used %zu, want %zu", name, r.used, want_used);
    ck_assert_msg(r.outlen == chunked_cases[_i].outlen
                  && memcmp(r.out, chunked_cases[_i].out, r.outlen) == 0,
                  "%s: out \"%.*s\" (%zu), want \"%s\"", name, (int) r.outlen, r.out, r.outlen,
                  chunked_cases[_i].out);
    free(r.out);

    /* A completed body needs exactly as much room as its data. */
    if (r.rc == EM_OK) {
        r = feed_whole(chunked_cases[_i].in, len, chunked_cases[_i].outlen);
        ck_assert_msg(r.rc == EM_OK && r.used == want_used, "%s: not OK with cap == data", name);
        free(r.out);
        if (chunked_cases[_i].outlen > 0) {
            r = feed_bytes(chunked_cases[_i].in, len, chunked_cases[_i].outlen - 1);
            ck_assert_msg(r.rc == EM_DECLINED, "%s: rc %d with cap < data", name, r.rc);
            free(r.out);
        }
    }
}
END_TEST

/* ---- generated bodies and limits ---------------------------------------- */

enum { GEN_ZEROS, GEN_SIZE_LINE, GEN_TRAILER_LINE, GEN_TRAILERS, GEN_CHUNKS };

static const struct {
    const char *name;
    int         kind;
    size_t      n;
    int         rc;
} limit_cases[] = {
    { "100 leading zeros", GEN_ZEROS, 100, EM_OK },
    { "4095 leading zeros", GEN_ZEROS, 4095, EM_OK },           /* line of 4096 */
    { "4096 leading zeros", GEN_ZEROS, 4096, EM_ERROR },
    { "size line 4096", GEN_SIZE_LINE, EM_HTTP_CHUNK_LINE_MAX, EM_OK },
    { "size line 4097", GEN_SIZE_LINE, EM_HTTP_CHUNK_LINE_MAX + 1, EM_ERROR },
    { "trailer line 8192", GEN_TRAILER_LINE, EM_HTTP_TRAILER_LINE_MAX, EM_OK },
    { "trailer line 8193", GEN_TRAILER_LINE, EM_HTTP_TRAILER_LINE_MAX + 1, EM_ERROR },
    { "trailer name 8193", GEN_TRAILER_LINE, 0, EM_ERROR },
    { "64 trailers", GEN_TRAILERS, EM_HTTP_MAX_TRAILERS, EM_OK },
    { "65 trailers", GEN_TRAILERS, EM_HTTP_MAX_TRAILERS + 1, EM_ERROR },
    { "300 chunks", GEN_CHUNKS, 300, EM_OK },
};

/* Append to a growing body; the buffers are sized for the largest row. */
#define GEN_CAP 20000

static size_t
gen_put(char *buf, size_t n, const char *s, size_t len)
{
    ck_assert_uint_le(n + len, GEN_CAP);
    memcpy(buf + n, s, len);
    return n + len;
}

static size_t
gen_fill(char *buf, size_t n, char c, size_t count)
{
    ck_assert_uint_le(n + count, GEN_CAP);
    memset(buf + n, c, count);
    return n + count;
}

/* Build the body of limit_cases[i] into buf and its data into data. */
static size_t
gen_body(size_t i, char *buf, char *data, size_t *datalen)
{
    size_t n = 0, k, count = limit_cases[i].n;
    char   line[64];

    *datalen = 0;
    switch (limit_cases[i].kind) {
    case GEN_ZEROS:
        n = gen_fill(buf, n, '0', count);
        n = gen_put(buf, n, B("2\r\nok\r\n0\r\n\r\n"));
        memcpy(data, "ok", 2);
        *datalen = 2;
        break;
    case GEN_SIZE_LINE:     /* "1;x=yyy...": a line of `count` bytes */
        n = gen_put(buf, n, B("1;x="));
        n = gen_fill(buf, n, 'y', count - 4);
        n = gen_put(buf, n, B("\r\nZ\r\n0\r\n\r\n"));
        data[0] = 'Z';
        *datalen = 1;
        break;
    case GEN_TRAILER_LINE:  /* "X:vvv..." of `count` bytes, or a long name */
        n = gen_put(buf, n, B("0\r\n"));
        if (count == 0) {
            n = gen_fill(buf, n, 'N', EM_HTTP_TRAILER_LINE_MAX + 1);
            n = gen_put(buf, n, B(":\r\n\r\n"));
            break;
        }
        n = gen_put(buf, n, B("X:"));
        n = gen_fill(buf, n, 'v', count - 2);
        n = gen_put(buf, n, B("\r\n\r\n"));
        break;
    case GEN_TRAILERS:
        n = gen_put(buf, n, B("0\r\n"));
        for (k = 0; k < count; k++) {
            int w = snprintf(line, sizeof(line), "T-%zu: %zu\r\n", k, k);

            n = gen_put(buf, n, line, (size_t) w);
        }
        n = gen_put(buf, n, B("\r\n"));
        break;
    case GEN_CHUNKS:        /* sizes 1, 2, ... in alternating hex case */
        for (k = 1; k <= count; k++) {
            size_t len = k % 23 + 1, j;
            int    w = snprintf(line, sizeof(line), k % 2 ? "%zx\r\n" : "%zX\r\n", len);

            n = gen_put(buf, n, line, (size_t) w);
            for (j = 0; j < len; j++) {
                data[*datalen + j] = (char) ('a' + (k + j) % 26);
            }
            n = gen_put(buf, n, data + *datalen, len);
            *datalen += len;
            n = gen_put(buf, n, B("\r\n"));
        }
        n = gen_put(buf, n, B("0\r\n\r\n"));
        break;
    default:
        ck_abort_msg("unknown kind");
    }
    return n;
}

START_TEST(test_chunked_limits)
{
    char    *buf = malloc(GEN_CAP), *data = malloc(GEN_CAP);
    size_t   n, datalen;
    result_t r;

    ck_assert_ptr_nonnull(buf);
    ck_assert_ptr_nonnull(data);
    n = gen_body((size_t) _i, buf, data, &datalen);

    r = decode_every_way(limit_cases[_i].name, buf, n, GEN_CAP);
    ck_assert_msg(r.rc == limit_cases[_i].rc, "%s: rc %d, want %d", limit_cases[_i].name, r.rc,
                  limit_cases[_i].rc);
    if (r.rc == EM_OK) {
        ck_assert_uint_eq(r.used, n);
        ck_assert_uint_eq(r.outlen, datalen);
        ck_assert_mem_eq(r.out, data, datalen);
    }
    free(r.out);
    free(buf);
    free(data);
}
END_TEST

/* ---- calling conventions ------------------------------------------------- */

START_TEST(test_chunked_append)
{
    em_http_chunked_t st;
    char              out[16] = "pre";
    size_t            used, outlen = 3;

    /* Data goes after what out already holds; the cap counts it. */
    memset(&st, 0, sizeof(st));
    ck_assert_int_eq(em_http_chunked_parse(&st, B("5\r\nhello\r\n0\r\n\r\n"), &used, out, 8,
                                           &outlen), EM_OK);
    ck_assert_uint_eq(outlen, 8);
    ck_assert_mem_eq(out, "prehello", 8);

    memset(&st, 0, sizeof(st));
    outlen = 4;
    ck_assert_int_eq(em_http_chunked_parse(&st, B("5\r\nhello\r\n0\r\n\r\n"), &used, out, 8,
                                           &outlen), EM_DECLINED);
    ck_assert_uint_eq(outlen, 4);

    /* An *outlen already past cap leaves no room, without wrapping. */
    memset(&st, 0, sizeof(st));
    outlen = 9;
    ck_assert_int_eq(em_http_chunked_parse(&st, B("1\r\nx\r\n"), &used, out, 8, &outlen),
                     EM_DECLINED);
    ck_assert_uint_eq(outlen, 9);
}
END_TEST

START_TEST(test_chunked_sticky)
{
    em_http_chunked_t st;
    char              out[16];
    size_t            used, outlen = 0;

    /* Once finished, a call consumes nothing and repeats the status. */
    memset(&st, 0, sizeof(st));
    ck_assert_int_eq(em_http_chunked_parse(&st, B("0\r\n\r\n"), &used, out, 16, &outlen), EM_OK);
    ck_assert_int_eq(em_http_chunked_parse(&st, B("5\r\nhello"), &used, out, 16, &outlen), EM_OK);
    ck_assert_uint_eq(used, 0);
    ck_assert_uint_eq(outlen, 0);

    memset(&st, 0, sizeof(st));
    ck_assert_int_eq(em_http_chunked_parse(&st, B("z"), &used, out, 16, &outlen), EM_ERROR);
    ck_assert_int_eq(em_http_chunked_parse(&st, B("0\r\n\r\n"), &used, out, 16, &outlen),
                     EM_ERROR);
    ck_assert_uint_eq(used, 0);

    memset(&st, 0, sizeof(st));
    ck_assert_int_eq(em_http_chunked_parse(&st, B("ff\r\n"), &used, out, 16, &outlen),
                     EM_DECLINED);
    ck_assert_int_eq(em_http_chunked_parse(&st, B("0\r\n\r\n"), &used, out, 16, &outlen),
                     EM_DECLINED);
    ck_assert_uint_eq(used, 0);

    /* An empty buffer is simply more needed. */
    memset(&st, 0, sizeof(st));
    ck_assert_int_eq(em_http_chunked_parse(&st, "", 0, &used, out, 16, &outlen), EM_AGAIN);
    ck_assert_uint_eq(used, 0);
}
END_TEST

START_TEST(test_chunked_does_not_write)
{
    static const char body[] = "3;a=\"b\"\r\nabc\r\n0\r\nT: 1\r\n\r\n";
    char              copy[sizeof(body)], out[8];
    em_http_chunked_t st;
    size_t            used, outlen = 0;

    memcpy(copy, body, sizeof(body));
    memset(out, '#', sizeof(out));
    memset(&st, 0, sizeof(st));
    ck_assert_int_eq(em_http_chunked_parse(&st, copy, sizeof(body) - 1, &used, out, 3, &outlen),
                     EM_OK);
    ck_assert_mem_eq(copy, body, sizeof(body));
    ck_assert_mem_eq(out, "abc#####", 8);
}
END_TEST

static Suite *
chunked_suite(void)
{
    Suite *s = suite_create("chunked");
    TCase *tc;

    tc = tcase_create("decode");
    tcase_add_loop_test(tc, test_chunked, 0, EM_NELEMS(chunked_cases));
    tcase_add_loop_test(tc, test_chunked_limits, 0, EM_NELEMS(limit_cases));
    tcase_add_test(tc, test_chunked_append);
    tcase_add_test(tc, test_chunked_sticky);
    tcase_add_test(tc, test_chunked_does_not_write);
    suite_add_tcase(s, tc);

    return s;
}

EM_CHECK_MAIN(chunked_suite)
