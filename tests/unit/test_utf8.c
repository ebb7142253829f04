/*
 * test_utf8.c - em_utf8_valid() (proto/em_utf8.c) against the table of
 * well-formed sequences of RFC 3629 section 4: every boundary of every row,
 * and each sequence at every offset of the 8-byte ASCII skip.
 */
#include <check.h>
#include <string.h>

#include "em_check.h"
#include "em_utf8.h"

typedef struct {
    const char *name;
    const char *bytes;
    size_t      len;
    int         valid;
} utf8_case_t;

#define U(name, s, v) { name, s, sizeof(s) - 1, v }

static const utf8_case_t cases[] = {
    U("empty", "", 1),
    U("ascii", "hello", 1),
    U("nul", "a\0b", 1),
    U("U+0080", "\xc2\x80", 1),
    U("U+07FF", "\xdf\xbf", 1),
    U("U+0800", "\xe0\xa0\x80", 1),
    U("U+D7FF", "\xed\x9f\xbf", 1),
    U("U+E000", "\xee\x80\x80", 1),
    U("U+FFFF", "\xef\xbf\xbf", 1),
    U("U+10000", "\xf0\x90\x80\x80", 1),
    U("U+10FFFF", "\xf4\x8f\xbf\xbf", 1),
    U("emoji in text", "caf\xc3\xa9 \xf0\x9f\x98\x80!", 1),
    U("lone continuation", "\x80", 0),
    U("continuation 0xbf", "\xbf", 0),
    U("overlong 2 (C0)", "\xc0\xaf", 0),
    U("overlong 2 (C1)", "\xc1\xbf", 0),
    U("overlong 3", "\xe0\x9f\xbf", 0),
    U("overlong 4", "\xf0\x8f\xbf\xbf", 0),
    U("high surrogate", "\xed\xa0\x80", 0),
    U("low surrogate", "\xed\xbf\xbf", 0),
    U("surrogate pair as CESU-8", "\xed\xa0\xbd\xed\xb8\x80", 0),
    U("above U+10FFFF", "\xf4\x90\x80\x80", 0),
    U("F5 lead", "\xf5\x80\x80\x80", 0),
    U("FF", "\xff", 0),
    U("FE", "\xfe", 0),
    U("5-byte form", "\xf8\x88\x80\x80\x80", 0),
    U("cut 2 of 3", "\xe2\x82", 0),
    U("cut 3 of 4", "\xf0\x9f\x98", 0),
    U("cut 1 of 2", "\xc3", 0),
    U("ASCII where a continuation goes", "\xe2\x41\x82", 0),
    U("lead where a continuation goes", "\xc3\xc3\xa9", 0),
};

START_TEST(test_utf8_table)
{
    const utf8_case_t *c = &cases[_i];
    char               buf[64];

    ck_assert_msg(em_utf8_valid(c->bytes, c->len) == c->valid, "%s", c->name);
    /* After 0..15 ASCII bytes and before 0..9 (the 8-byte skip and its tail). */
    for (size_t pre = 0; pre < 16; pre++) {
        for (size_t post = 0; post < 10; post++) {
            ck_assert_uint_le(pre + c->len + post, sizeof(buf));
            memset(buf, 'a', sizeof(buf));
            memcpy(buf + pre, c->bytes, c->len);
            ck_assert_msg(em_utf8_valid(buf, pre + c->len + post) == c->valid, "%s at %zu+%zu",
                          c->name, pre, post);
        }
    }
    /* A valid sequence cut anywhere inside is invalid. */
    if (c->valid && c->len > 0 && (unsigned char) c->bytes[c->len - 1] >= 0x80) {
        ck_assert_msg(!em_utf8_valid(c->bytes, c->len - 1), "%s cut", c->name);
    }
}
END_TEST

static Suite *
utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("table");

    tcase_add_loop_test(tc, test_utf8_table, 0, sizeof(cases) / sizeof(cases[0]));
    suite_add_tcase(s, tc);
    return s;
}

EM_CHECK_MAIN(utf8_suite)
