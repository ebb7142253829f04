/*
 * test_wsframe.c - WebSocket frame-boundary scanning (proto/em_wsframe.c):
 * table-driven cases, and every split of a multi-frame input.
 */
#include <check.h>
#include <string.h>

#include "em_check.h"
#include "em_wsframe.h"

#define MAX 1000

typedef struct {
    const char   *name;
    const char   *bytes;
    size_t        len;
    int           fragmented_in;
    size_t        complete;
    unsigned      frames;
    int           fragmented;
    int           oversized;
    int           control;
} scan_case_t;


/* Client frames are masked: 0x80 bit in byte 1 plus 4 mask bytes. */
static const scan_case_t scan_cases[] = {
    { "empty", B(""), 0, 0, 0, 0, 0, 0 },
    { "one header byte", B("\x81"), 0, 0, 0, 0, 0, 0 },
    { "header without mask key", B("\x81\x85\x01\x02"), 0, 0, 0, 0, 0, 0 },
    { "text frame, payload missing", B("\x81\x85\x01\x02\x03\x04" "ab"), 0, 0, 0, 0, 0, 0 },
    { "text frame whole", B("\x81\x82\x00\x00\x00\x00" "hi"), 0, 8, 1, 0, 0, 0 },
    { "text frame whole plus partial next", B("\x81\x82\x00\x00\x00\x00" "hi" "\x81"), 0, 8, 1, 0, 0, 0 },
    { "two frames", B("\x81\x81\x00\x00\x00\x00" "a" "\x82\x80\x00\x00\x00\x00"), 0, 13, 2, 0, 0, 0 },
    { "zero-length binary", B("\x82\x80\x00\x00\x00\x00"), 0, 6, 1, 0, 0, 0 },
    { "unmasked frame (wslay refuses it)", B("\x81\x01" "a"), 0, 3, 1, 0, 0, 0 },
    { "FIN=0 opens a message", B("\x01\x81\x00\x00\x00\x00" "a"), 0, 7, 1, 1, 0, 0 },
    { "continuation with FIN closes it", B("\x80\x81\x00\x00\x00\x00" "b"), 1, 7, 1, 0, 0, 0 },
    { "continuation without FIN keeps it", B("\x00\x81\x00\x00\x00\x00" "b"), 1, 7, 1, 1, 0, 0 },
    { "ping inside a fragmented message", B("\x89\x80\x00\x00\x00\x00"), 1, 6, 1, 1, 0, 1 },
    { "close frame", B("\x88\x82\x00\x00\x00\x00" "\x03\xe8"), 0, 8, 1, 0, 0, 1 },
    { "16-bit length, header short", B("\x82\xfe\x00"), 0, 0, 0, 0, 0, 0 },
    { "16-bit length 126 bytes, payload short", B("\x82\xfe\x00\x7e\x00\x00\x00\x00" "x"), 0, 0, 0, 0, 0, 0 },
    { "64-bit length, header short", B("\x82\xff\x00\x00\x00\x00\x00\x00\x00"), 0, 0, 0, 0, 0, 0 },
    { "64-bit length over max", B("\x82\xff\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00"), 0, 0, 0, 0, 1, 0 },
    { "64-bit huge length", B("\x82\xff\xff\xff\xff\xff\xff\xff\xff\xff"), 0, 0, 0, 0, 1, 0 },
    { "16-bit length over max after a whole frame",
      B("\x81\x81\x00\x00\x00\x00" "a" "\x82\xfe\x03\xe9"), 0, 7, 1, 0, 1, 0 },
    { "16-bit length exactly max, payload short", B("\x82\xfe\x03\xe8\x00\x00\x00\x00"), 0, 0, 0, 0, 0, 0 },
};

START_TEST(test_scan_table)
{
    const scan_case_t *c = &scan_cases[_i];
    em_wsframe_scan_t  s;

    em_wsframe_scan((const unsigned char *) c->bytes, c->len, MAX, c->fragmented_in, &s);
    ck_assert_msg(s.complete == c->complete, "%s: complete %zu, want %zu", c->name, s.complete,
                  c->complete);
    ck_assert_msg(s.frames == c->frames, "%s: frames %u, want %u", c->name, s.frames, c->frames);
    ck_assert_msg(s.fragmented == (unsigned) c->fragmented, "%s: fragmented", c->name);
    ck_assert_msg(s.oversized == (unsigned) c->oversized, "%s: oversized", c->name);
    ck_assert_msg(s.control == (unsigned) c->control, "%s: control", c->name);
}
END_TEST

/* A frame of exactly max_payload bytes is whole, one byte more is oversized. */
START_TEST(test_scan_max_boundary)
{
    unsigned char     f[8 + MAX + 1];
    em_wsframe_scan_t s;

    memset(f, 'x', sizeof(f));
    f[0] = 0x82;
    f[1] = 0xfe;
    f[2] = MAX >> 8;
    f[3] = MAX & 0xff;
    em_wsframe_scan(f, 8 + MAX, MAX, 0, &s);
    ck_assert_uint_eq(s.complete, 8 + MAX);
    ck_assert(!s.oversized);
    em_wsframe_scan(f, 8 + 10, MAX, 0, &s);     /* header in, payload short */
    ck_assert_uint_eq(s.complete, 0);
    ck_assert_uint_eq(s.need, 8 + MAX);
    em_wsframe_scan(f, 5, MAX, 0, &s);          /* mask key short */
    ck_assert_uint_eq(s.need, 0);
    f[3] = (MAX + 1) & 0xff;
    em_wsframe_scan(f, 8 + MAX + 1, MAX, 0, &s);
    ck_assert_uint_eq(s.complete, 0);
    ck_assert(s.oversized);
}
END_TEST

/* A 64-bit length with the top bit set is flagged (a protocol error, not
 * just too big); 2^63 - 1 is only oversized. */
START_TEST(test_scan_top_bit)
{
    unsigned char     f[14] = { 0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4 };
    em_wsframe_scan_t s;

    em_wsframe_scan(f, sizeof(f), MAX, 0, &s);
    ck_assert(s.oversized && s.badlength);
    memset(f + 2, 0xff, 8);                     /* 2^64 - 1 */
    em_wsframe_scan(f, sizeof(f), MAX, 0, &s);
    ck_assert(s.oversized && s.badlength);
    f[2] = 0x7f;                                /* 2^63 - 1 */
    em_wsframe_scan(f, sizeof(f), MAX, 0, &s);
    ck_assert(s.oversized && !s.badlength);
    ck_assert_uint_eq(s.complete, 0);
}
END_TEST

/* Scanning any prefix finds the whole frames inside it, never more. */
START_TEST(test_scan_every_prefix)
{
    static const unsigned char in[] =
        "\x01\x83\x00\x00\x00\x00" "abc"                  /* FIN=0 text, 9 bytes */
        "\x89\x80\x00\x00\x00\x00"                        /* ping, 6 */
        "\x80\xfe\x00\x7e\x00\x00\x00\x00"                /* continuation FIN, 126 bytes */
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    static const size_t ends[] = { 9, 15, 15 + 8 + 126 };
    size_t len = sizeof(in) - 1;

    ck_assert_uint_eq(len, ends[2]);
    for (size_t n = 0; n <= len; n++) {
        em_wsframe_scan_t s;
        size_t            want = 0;
        unsigned          frames = 0;
        for (size_t k = 0; k < 3; k++) {
            if (ends[k] <= n) {
                want = ends[k];
                frames = (unsigned) k + 1;
            }
        }
        em_wsframe_scan(in, n, MAX, 0, &s);
        ck_assert_msg(s.complete == want && s.frames == frames, "prefix %zu: %zu/%u", n,
                      s.complete, s.frames);
        ck_assert_msg(s.fragmented == (frames >= 1 && frames < 3), "prefix %zu: fragmented", n);
    }
}
END_TEST

static Suite *
wsframe_suite(void)
{
    Suite *s = suite_create("wsframe");
    TCase *tc = tcase_create("scan");

    tcase_add_loop_test(tc, test_scan_table, 0, EM_NELEMS(scan_cases));
    tcase_add_test(tc, test_scan_max_boundary);
    tcase_add_test(tc, test_scan_top_bit);
    tcase_add_test(tc, test_scan_every_prefix);
    suite_add_tcase(s, tc);
    return s;
}

EM_CHECK_MAIN(wsframe_suite)
