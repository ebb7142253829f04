/*
 * test_brkrec.c - the broker's broadcast record codec (ipc/em_brkrec.c):
 * round trips with none, one and many rooms, except-rooms and attachments
 * (zero-length ones too) and binary data; the bytes of one record pinned;
 * every truncation of every round-trip record refused, and so is a byte
 * more; damaged headers and lengths (past the end, overflowing) refused;
 * broadcasts the encoder must refuse rather than truncate.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "em_brkrec.h"
#include "em_check.h"

#define CHECK(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

#define MAXN 8

typedef struct {
    const char *data;
    size_t      len;
} bytes_t;

#define BY(s) { (s), sizeof(s) - 1 }

typedef struct {
    const char *name;
    uint16_t    origin;
    uint16_t    flags;
    uint32_t    conf_index;
    bytes_t     nsp;
    bytes_t     rooms[MAXN];
    size_t      nrooms;
    bytes_t     except[MAXN];
    size_t      nexcept;
    bytes_t     data;
    bytes_t     att[MAXN];
    size_t      natt;
} rt_case_t;

static const rt_case_t rt_cases[] = {
    { "namespace only", 0, 0, 0, BY("/"), { { 0 } }, 0, { { 0 } }, 0, BY("[\"e\"]"), { { 0 } }, 0 },
    { "empty everything", 3, 0, 0, BY(""), { { 0 } }, 0, { { 0 } }, 0, BY(""), { { 0 } }, 0 },
    { "one room", 1, 0, 0, BY("/chat"), { BY("lobby") }, 1, { { 0 } }, 0, BY("[\"m\",1]"),
      { { 0 } }, 0 },
    { "one except", 2, 0, 0, BY("/"), { { 0 } }, 0, { BY("sidX") }, 1, BY("[\"m\"]"), { { 0 } }, 0 },
    { "many rooms and excepts", 63, 0, 0, BY("/a/b"),
      { BY("r1"), BY(""), BY("room three"), BY("\x00\x01\xff"), BY("r5"), BY("r6"), BY("r7"),
        BY("r8") }, 8,
      { BY("x"), BY("yy"), BY("") }, 3, BY("[\"ev\",{\"k\":[1,2,3]}]"), { { 0 } }, 0 },
    { "one attachment", 0, 0, 0, BY("/"), { BY("r") }, 1, { { 0 } }, 0,
      BY("[\"b\",{\"_placeholder\":true,\"num\":0}]"), { BY("\x00\x01\x02\x03") }, 1 },
    { "zero-length attachments", 0, 0, 0, BY("/"), { { 0 } }, 0, { { 0 } }, 0, BY("[\"b\"]"),
      { BY(""), BY("z"), BY("") }, 3 },
    { "many attachments", 5, 0, 0, BY("/bin"), { BY("a"), BY("b") }, 2, { BY("c") }, 1,
      BY("[\"b\"]"),
      { BY("1"), BY("22"), BY("333"), BY("\xff\xfe"), BY(""), BY("\x00"), BY("seven"), BY("8") }, 8 },
    { "binary data", 0, 0, 0, BY("/"), { { 0 } }, 0, { { 0 } }, 0, BY("\x00\xff\x80\x01[]\x00"),
      { { 0 } }, 0 },
    { "every instance of a configured namespace", 9, EM_BRK_F_CONF, 4, BY("/device/:id"),
      { BY("r") }, 1, { { 0 } }, 0, BY("[\"e\"]"), { { 0 } }, 0 },
    { "configured namespace 0", 9, EM_BRK_F_CONF, 0, BY("/"), { { 0 } }, 0, { { 0 } }, 0,
      BY("[1]"), { { 0 } }, 0 },
};

/* The message of a table row; the slices point into the row (and v). */
static void
rt_msg(const rt_case_t *c, em_brk_msg_t *m, em_str_t *rooms, em_str_t *except, em_str_t *att)
{
    for (size_t i = 0; i < c->nrooms; i++) {
        rooms[i] = (em_str_t) { c->rooms[i].data, c->rooms[i].len };
    }
    for (size_t i = 0; i < c->nexcept; i++) {
        except[i] = (em_str_t) { c->except[i].data, c->except[i].len };
    }
    for (size_t i = 0; i < c->natt; i++) {
        att[i] = (em_str_t) { c->att[i].data, c->att[i].len };
    }
    *m = (em_brk_msg_t) {
        .origin = c->origin, .flags = c->flags, .conf_index = c->conf_index,
        .nsp = { c->nsp.data, c->nsp.len },
        .rooms = rooms, .nrooms = c->nrooms, .except = except, .nexcept = c->nexcept,
        .data = { c->data.data, c->data.len }, .att = att, .natt = c->natt,
    };
}

/* Encode row c into a new buffer; its length in *len. */
static char *
rt_encode(const rt_case_t *c, size_t *len)
{
    em_str_t     rooms[MAXN], except[MAXN], att[MAXN];
    em_brk_msg_t m;
    size_t       size;
    char        *buf;

    rt_msg(c, &m, rooms, except, att);
    ck_assert_msg(em_brkrec_size(&m, &size, NULL) == EM_OK, "%s: size refused", c->name);
    buf = malloc(size + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_msg(em_brkrec_encode(&m, buf, size, len) == EM_OK, "%s: encode refused", c->name);
    ck_assert_msg(*len == size, "%s: encoded %zu bytes, size said %zu", c->name, *len, size);
    return buf;
}

static int
in_buf(em_str_t s, const char *buf, size_t len)
{
    return s.data >= buf && s.len <= len && s.data - buf <= (ptrdiff_t) (len - s.len);
}

/* A list holds exactly the n entries want, each inside buf. */
static void
list_expect(em_brk_list_t l, const bytes_t *want, size_t n, const char *buf, size_t len,
            const char *what, const char *name)
{
    em_str_t s;
    size_t   i = 0;

    ck_assert_msg(l.n == n, "%s: %s: %zu entries, want %zu", name, what, l.n, n);
    while (em_brk_list_next(&l, &s)) {
        CHECK(i < n, "%s: %s: more than %zu entries", name, what, n);
        CHECK(in_buf(s, buf, len), "%s: %s[%zu] outside the record", name, what, i);
        CHECK(s.len == want[i].len && memcmp(s.data, want[i].data, s.len) == 0,
              "%s: %s[%zu] differs", name, what, i);
        i++;
    }
    ck_assert_msg(i == n, "%s: %s: %zu entries walked, want %zu", name, what, i, n);
    ck_assert_msg(!em_brk_list_next(&l, &s), "%s: %s: an entry after the end", name, what);
}

START_TEST(test_round_trip)
{
    const rt_case_t *c = &rt_cases[_i];
    em_brk_view_t    v;
    size_t           len, len2;
    char            *buf = rt_encode(c, &len), *again;
    em_str_t         rooms[MAXN], except[MAXN], att[MAXN];
    em_brk_msg_t     m;

    ck_assert_msg(em_brkrec_decode(buf, len, &v) == EM_OK, "%s: decode refused", c->name);
    ck_assert_int_eq(em_brkrec_validate(buf, len), EM_OK);
    ck_assert_uint_eq(v.origin, c->origin);
    ck_assert_uint_eq(v.flags, c->flags);
    ck_assert_uint_eq(v.conf_index, c->conf_index);
    ck_assert_msg(in_buf(v.nsp, buf, len) && v.nsp.len == c->nsp.len
                      && memcmp(v.nsp.data, c->nsp.data, c->nsp.len) == 0,
                  "%s: namespace differs", c->name);
    ck_assert_msg(in_buf(v.data, buf, len) && v.data.len == c->data.len
                      && memcmp(v.data.data, c->data.data, c->data.len) == 0,
                  "%s: data differs", c->name);
    list_expect(v.rooms, c->rooms, c->nrooms, buf, len, "rooms", c->name);
    list_expect(v.except, c->except, c->nexcept, buf, len, "except", c->name);
    list_expect(v.att, c->att, c->natt, buf, len, "attachments", c->name);

    /* The view encodes to the same bytes. */
    rt_msg(c, &m, rooms, except, att);
    again = malloc(len);
    ck_assert_ptr_nonnull(again);
    ck_assert_int_eq(em_brkrec_encode(&m, again, len, &len2), EM_OK);
    ck_assert_uint_eq(len2, len);
    ck_assert_int_eq(memcmp(again, buf, len), 0);
    /* One byte short of room: refused, nothing written. */
    memset(again, 0x5a, len);
    ck_assert_int_eq(em_brkrec_encode(&m, again, len - 1, &len2), EM_ERROR);
    for (size_t i = 0; i < len; i++) {
        CHECK((unsigned char) again[i] == 0x5a, "%s: byte %zu written on refusal", c->name, i);
    }
    free(again);
    free(buf);
}
END_TEST

/* Every prefix of a valid record, and the record with a byte more, is refused. */
START_TEST(test_truncations)
{
    const rt_case_t *c = &rt_cases[_i];
    em_brk_view_t    v;
    size_t           len;
    char            *buf = rt_encode(c, &len);

    for (size_t n = 0; n < len; n++) {
        /* A copy of exactly n bytes, so a read past it is a sanitizer report. */
        char *cut = malloc(n ? n : 1);
        ck_assert_ptr_nonnull(cut);
        memcpy(cut, buf, n);
        CHECK(em_brkrec_decode(cut, n, &v) == EM_ERROR, "%s: cut to %zu of %zu bytes accepted",
              c->name, n, len);
        free(cut);
    }
    buf[len] = 'x';
    ck_assert_msg(em_brkrec_decode(buf, len + 1, &v) == EM_ERROR, "%s: a byte more accepted",
                  c->name);
    ck_assert_int_eq(em_brkrec_validate(buf, len), EM_OK);
    free(buf);
}
END_TEST

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* The bytes the worker wrote before the codec existed, field by field. */
START_TEST(test_layout_pinned)
{
    static const char want[] =
        "\x02\x00" "\x01\x00" "\x07\x00" "\x02\x00"     /* version, flags, origin, nsp_len */
        "\x03\x00\x00\x00"                              /* conf_index */
        "\x01\x00" "\x01\x00"                           /* nrooms, nexcept */
        "\x01\x00\x00\x00" "\x03\x00\x00\x00"           /* natt, data_len */
        "\x00\x00\x00\x00"                              /* reserved */
        "/x"
        "\x02\x00" "ab"
        "\x01\x00" "c"
        "[1]"
        "\x02\x00\x00\x00" "\x00\xff";
    em_str_t     room = EM_STR("ab"), ex = EM_STR("c"), att = { "\x00\xff", 2 };
    em_brk_msg_t m = { .origin = 7, .flags = EM_BRK_F_CONF, .conf_index = 3, .nsp = EM_STR("/x"),
                       .rooms = &room, .nrooms = 1, .except = &ex, .nexcept = 1,
                       .data = EM_STR("[1]"), .att = &att, .natt = 1 };
    char         buf[sizeof(want)];
    size_t       len;

    ck_assert_int_eq(em_brkrec_encode(&m, buf, sizeof(buf), &len), EM_OK);
    ck_assert_uint_eq(len, sizeof(want) - 1);
    ck_assert_int_eq(memcmp(buf, want, len), 0);
}
END_TEST
#endif

/* ---- damaged records ---------------------------------------------------- */

/* The record "/", rooms {"ab"}, except {"c"}, data "[1]", attachments
 * {"xyz"} with one header field or length overwritten. */
typedef struct {
    const char *name;
    size_t      at;         /* offset of the field */
    unsigned    width;      /* 2 or 4 */
    uint32_t    value;
} bad_case_t;

/* Offsets in the base record: header 0..27, nsp 28, room len 29, "ab" 31,
 * except len 33, "c" 35, data 36..38, attachment len 39, "xyz" 43..45. */
static const bad_case_t bad_cases[] = {
    { "version 0", 0, 2, 0 },
    { "version 3", 0, 2, 3 },
    { "version 0xffff", 0, 2, 0xffff },
    { "unknown flag 0x8", 2, 2, 0x8 },
    { "unknown flag 0x8000 with F_CONF", 2, 2, 0x8001 },
    { "nsp_len one past the end", 6, 2, 19 },
    { "nsp_len 0xffff", 6, 2, 0xffff },
    { "conf_index without F_CONF", 8, 4, 1 },
    { "nrooms one more than present", 12, 2, 2 },
    { "nrooms 0xffff", 12, 2, 0xffff },
    { "nexcept 0xffff", 14, 2, 0xffff },
    { "natt 0 with an attachment after the data", 16, 4, 0 },
    { "natt 2 with one present", 16, 4, 2 },
    { "natt EM_BRK_ATT_MAX + 1", 16, 4, EM_BRK_ATT_MAX + 1 },
    { "natt 0xffffffff", 16, 4, 0xffffffff },
    { "data_len one past the end", 20, 4, 11 },
    { "data_len 0xffffffff (overflows a 32-bit sum)", 20, 4, 0xffffffff },
    { "data_len 0xfffffff0", 20, 4, 0xfffffff0 },
    { "data_len short: bytes left over", 20, 4, 2 },
    { "reserved not 0", 24, 4, 1 },
    { "room length past the end", 29, 2, 0xffff },
    { "room length 15: swallows the rest", 29, 2, 15 },
    { "except length 0xffff", 33, 2, 0xffff },
    { "attachment length one past the end", 39, 4, 4 },
    { "attachment length 0xffffffff", 39, 4, 0xffffffff },
    { "attachment length 0xfffffffc (wraps a pointer sum)", 39, 4, 0xfffffffc },
    { "attachment length short: bytes left over", 39, 4, 2 },
};

#define BASE_LEN 46

static void
base_record(char *buf)
{
    em_str_t     room = EM_STR("ab"), ex = EM_STR("c"), att = EM_STR("xyz");
    em_brk_msg_t m = { .nsp = EM_STR("/"), .rooms = &room, .nrooms = 1, .except = &ex,
                       .nexcept = 1, .data = EM_STR("[1]"), .att = &att, .natt = 1 };
    size_t       len;

    ck_assert_int_eq(em_brkrec_encode(&m, buf, BASE_LEN, &len), EM_OK);
    ck_assert_uint_eq(len, BASE_LEN);
}

START_TEST(test_base_valid)
{
    char          buf[BASE_LEN];
    em_brk_view_t v;
    em_str_t      s;

    base_record(buf);
    ck_assert_int_eq(em_brkrec_decode(buf, BASE_LEN, &v), EM_OK);
    ck_assert(em_brk_list_next(&v.att, &s));
    ck_assert_uint_eq((size_t) (s.data - buf), 43);
    ck_assert_uint_eq(s.len, 3);
}
END_TEST

START_TEST(test_bad_record)
{
    const bad_case_t *c = &bad_cases[_i];
    char             *buf = malloc(BASE_LEN);
    em_brk_view_t     v;

    ck_assert_ptr_nonnull(buf);
    base_record(buf);
    if (c->width == 2) {
        uint16_t x = (uint16_t) c->value;
        memcpy(buf + c->at, &x, 2);
    } else {
        memcpy(buf + c->at, &c->value, 4);
    }
    ck_assert_msg(em_brkrec_decode(buf, BASE_LEN, &v) == EM_ERROR, "%s: accepted", c->name);
    ck_assert_int_eq(em_brkrec_validate(buf, BASE_LEN), EM_ERROR);
    free(buf);
}
END_TEST

/* A list that is not one decode gave ends rather than reads past its end. */
START_TEST(test_list_broken)
{
    static const char bytes[] = "\x05\x00" "ab";
    em_brk_list_t     l = { bytes, bytes + 4, 1, 2 };
    em_str_t          s;

    ck_assert(!em_brk_list_next(&l, &s));
    ck_assert_uint_eq(l.n, 0);
    l = (em_brk_list_t) { bytes, bytes + 1, 1, 2 };
    ck_assert(!em_brk_list_next(&l, &s));
    l = (em_brk_list_t) { bytes, bytes + 4, 1, 3 };
    ck_assert(!em_brk_list_next(&l, &s));
    l = (em_brk_list_t) { bytes + 2, bytes + 4, 1, 2 };     /* "ab" = length 0x6261 */
    ck_assert(!em_brk_list_next(&l, &s));
    l = (em_brk_list_t) { "\x02\x00" "ab", bytes + 4, 0, 2 };
    ck_assert(!em_brk_list_next(&l, &s));
}
END_TEST

/* ---- what the encoder refuses ------------------------------------------- */

#define BIG (EM_BRK_NAME_MAX + 1)

static char big[BIG];

typedef struct {
    const char *name;
    int         part;       /* which part is oversized, see encode_refused */
    size_t      n;          /* its length or count */
    int         what;       /* EM_BRK_BAD_*, 0: accepted */
    size_t      index;
} enc_case_t;

enum { P_NSP, P_ROOM, P_EXCEPT, P_NROOMS, P_NEXCEPT, P_NATT, P_ATT, P_DATA, P_FLAGS, P_CONF };

static const enc_case_t enc_cases[] = {
    { "namespace of 65,535 bytes", P_NSP, EM_BRK_NAME_MAX, 0, 0 },
    { "namespace of 65,536 bytes", P_NSP, BIG, EM_BRK_BAD_NSP, 0 },
    { "room name of 65,535 bytes", P_ROOM, EM_BRK_NAME_MAX, 0, 0 },
    { "room name of 65,536 bytes", P_ROOM, BIG, EM_BRK_BAD_ROOM, 2 },
    { "except name of 65,535 bytes", P_EXCEPT, EM_BRK_NAME_MAX, 0, 0 },
    { "except name of 65,536 bytes", P_EXCEPT, BIG, EM_BRK_BAD_EXCEPT, 2 },
    { "65,535 rooms", P_NROOMS, EM_BRK_LIST_MAX, 0, 0 },
    { "65,536 rooms", P_NROOMS, EM_BRK_LIST_MAX + 1, EM_BRK_BAD_NROOMS, 0 },
    { "65,535 excepts", P_NEXCEPT, EM_BRK_LIST_MAX, 0, 0 },
    { "65,536 excepts", P_NEXCEPT, EM_BRK_LIST_MAX + 1, EM_BRK_BAD_NEXCEPT, 0 },
    { "EM_BRK_ATT_MAX attachments", P_NATT, EM_BRK_ATT_MAX, 0, 0 },
    { "EM_BRK_ATT_MAX + 1 attachments", P_NATT, EM_BRK_ATT_MAX + 1,
      EM_BRK_BAD_NATT, 0 },
    { "an attachment of 2^32 bytes", P_ATT, (size_t) UINT32_MAX + 1, EM_BRK_BAD_ATT, 1 },
    { "data of 2^32 bytes", P_DATA, (size_t) UINT32_MAX + 1, EM_BRK_BAD_DATA, 0 },
    { "unknown flag", P_FLAGS, 0x8, EM_BRK_BAD_FLAGS, 0 },
    { "conf_index without F_CONF", P_CONF, 1, EM_BRK_BAD_FLAGS, 0 },
};

START_TEST(test_encode_refused)
{
    const enc_case_t *c = &enc_cases[_i];
    em_str_t          three[3] = { EM_STR("a"), EM_STR("b"), EM_STR("c") };
    em_str_t          atts[2] = { EM_STR("a"), EM_STR("b") };
    em_str_t         *list = NULL;
    em_brk_msg_t      m = { .nsp = EM_STR("/"), .data = EM_STR("[1]") };
    em_brk_fault_t    f = { 0, 0, 0 };
    em_brk_view_t     v;
    size_t            size = 0, len, n = 0;
    char             *buf;

    memset(big, 'r', sizeof(big));
    switch (c->part) {
    case P_NSP:
        m.nsp = (em_str_t) { big, c->n };
        break;
    case P_ROOM:
    case P_EXCEPT:
        three[2] = (em_str_t) { big, c->n };
        *(c->part == P_ROOM ? &m.rooms : &m.except) = three;
        *(c->part == P_ROOM ? &m.nrooms : &m.nexcept) = 3;
        break;
    case P_NROOMS:
    case P_NEXCEPT:
    case P_NATT:
        list = calloc(c->n, sizeof(em_str_t));
        ck_assert_ptr_nonnull(list);
        for (size_t i = 0; i < c->n; i++) {
            list[i] = EM_STR("r");
        }
        *(c->part == P_NROOMS ? &m.rooms : c->part == P_NEXCEPT ? &m.except : &m.att) = list;
        *(c->part == P_NROOMS ? &m.nrooms : c->part == P_NEXCEPT ? &m.nexcept : &m.natt) = c->n;
        break;
    case P_ATT:
        atts[1].len = c->n;     /* never read: refused on its length */
        m.att = atts;
        m.natt = 2;
        break;
    case P_DATA:
        m.data = (em_str_t) { big, c->n };
        break;
    case P_FLAGS:
        m.flags = (uint16_t) c->n;
        break;
    case P_CONF:
        m.conf_index = (uint32_t) c->n;
        break;
    }
    if (c->what != 0) {
        char canary[32];
        memset(canary, 0x5a, sizeof(canary));
        ck_assert_msg(em_brkrec_size(&m, &size, &f) == EM_ERROR, "%s: accepted", c->name);
        ck_assert_msg(f.what == c->what, "%s: fault %d, want %d", c->name, f.what, c->what);
        ck_assert_msg(f.index == c->index, "%s: index %zu, want %zu", c->name, f.index, c->index);
        if (c->part != P_FLAGS && c->part != P_CONF) {
            ck_assert_msg(f.value == c->n, "%s: value %zu, want %zu", c->name, f.value, c->n);
        }
        ck_assert_int_eq(em_brkrec_size(&m, &size, NULL), EM_ERROR);
        ck_assert_int_eq(em_brkrec_encode(&m, canary, SIZE_MAX, &len), EM_ERROR);
        for (size_t i = 0; i < sizeof(canary); i++) {
            ck_assert_uint_eq((unsigned char) canary[i], 0x5a);
        }
        free(list);
        return;
    }
    /* At the limit: encoded whole, never truncated, and decoded back. */
    ck_assert_msg(em_brkrec_size(&m, &size, &f) == EM_OK, "%s: refused (%d)", c->name, f.what);
    buf = malloc(size);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(em_brkrec_encode(&m, buf, size, &len), EM_OK);
    ck_assert_uint_eq(len, size);
    ck_assert_int_eq(em_brkrec_decode(buf, len, &v), EM_OK);
    ck_assert_uint_eq(v.nsp.len, m.nsp.len);
    ck_assert_uint_eq(v.rooms.n, m.nrooms);
    ck_assert_uint_eq(v.except.n, m.nexcept);
    ck_assert_uint_eq(v.att.n, m.natt);
    em_brk_list_t *l = c->part == P_ROOM ? &v.rooms : c->part == P_EXCEPT ? &v.except : NULL;
    em_str_t       s = { NULL, 0 };
    while (l != NULL && em_brk_list_next(l, &s)) {
        n++;
    }
    if (l != NULL) {
        ck_assert_uint_eq(n, 3);
        ck_assert_uint_eq(s.len, c->n);
    }
    free(buf);
    free(list);
}
END_TEST

/* ---- command records ---- */

START_TEST(test_cmd_round_trip)
{
    em_str_t         att[2] = { { "ab", 2 }, { "", 0 } };
    em_brk_cmd_msg_t m = { .kind = 3, .origin = 1, .target = EM_BRK_ALL, .req = 0x0102030405060708ull,
                           .data = { "{\"nsp\":\"/\"}", 11 }, .att = att, .natt = 2 };
    em_brk_cmd_msg_t d;
    char             buf[128];
    size_t           need, len;
    em_str_t         a;

    ck_assert_int_eq(em_brkcmd_size(&m, &need), EM_OK);
    ck_assert_uint_eq(need, sizeof(em_brk_cmd_t) + 11 + 4 + 2 + 4);
    ck_assert_int_eq(em_brkcmd_encode(&m, buf, need - 1, &len), EM_ERROR);
    ck_assert_int_eq(em_brkcmd_encode(&m, buf, sizeof(buf), &len), EM_OK);
    ck_assert_uint_eq(len, need);
    ck_assert_uint_eq(em_brkcmd_target(buf, len), EM_BRK_ALL);
    ck_assert_int_eq(em_brkcmd_decode(buf, len, &d), EM_OK);
    ck_assert_uint_eq(d.kind, 3);
    ck_assert_uint_eq(d.origin, 1);
    ck_assert_uint_eq(d.target, EM_BRK_ALL);
    ck_assert(d.req == m.req);
    ck_assert_uint_eq(d.data.len, 11);
    ck_assert(memcmp(d.data.data, m.data.data, 11) == 0);
    ck_assert_uint_eq(d.natt, 2);
    ck_assert(em_brk_list_next(&d.atts, &a) && a.len == 2 && memcmp(a.data, "ab", 2) == 0);
    ck_assert(em_brk_list_next(&d.atts, &a) && a.len == 0);
    ck_assert(!em_brk_list_next(&d.atts, &a));
    /* every proper prefix, and one byte more, are refused */
    for (size_t n = 0; n < len; n++) {
        ck_assert_int_eq(em_brkcmd_decode(buf, n, &d), EM_ERROR);
    }
    ck_assert_int_eq(em_brkcmd_decode(buf, len + 1, &d), EM_ERROR);
    /* a target slot is read without decoding */
    m.target = 5;
    ck_assert_int_eq(em_brkcmd_encode(&m, buf, sizeof(buf), &len), EM_OK);
    ck_assert_uint_eq(em_brkcmd_target(buf, len), 5);
    ck_assert_uint_eq(em_brkcmd_target(buf, 3), EM_BRK_ALL);
}
END_TEST

START_TEST(test_cmd_refused)
{
    em_brk_cmd_msg_t m = { .kind = 1, .data = { "{}", 2 } };
    em_brk_cmd_msg_t d;
    em_brk_cmd_t     h;
    char             buf[64];
    size_t           len;

    ck_assert_int_eq(em_brkcmd_encode(&m, buf, sizeof(buf), &len), EM_OK);
    memcpy(&h, buf, sizeof(h));
    h.version = EM_BRK_VERSION + 1;                 /* another version */
    memcpy(buf, &h, sizeof(h));
    ck_assert_int_eq(em_brkcmd_decode(buf, len, &d), EM_ERROR);
    h.version = EM_BRK_VERSION;
    h.kind = 0;                                     /* no kind */
    memcpy(buf, &h, sizeof(h));
    ck_assert_int_eq(em_brkcmd_decode(buf, len, &d), EM_ERROR);
    h.kind = 1;
    h.natt = EM_BRK_ATT_MAX + 1;                    /* too many attachments */
    memcpy(buf, &h, sizeof(h));
    ck_assert_int_eq(em_brkcmd_decode(buf, len, &d), EM_ERROR);
    h.natt = 1;                                     /* one that is not there */
    memcpy(buf, &h, sizeof(h));
    ck_assert_int_eq(em_brkcmd_decode(buf, len, &d), EM_ERROR);
    h.natt = 0;
    h.data_len = 0xffffffffu;                       /* data past the end */
    memcpy(buf, &h, sizeof(h));
    ck_assert_int_eq(em_brkcmd_decode(buf, len, &d), EM_ERROR);
    m.kind = 0;
    ck_assert_int_eq(em_brkcmd_size(&m, &len), EM_ERROR);
    m.kind = 1;
    m.natt = EM_BRK_ATT_MAX + 1;
    ck_assert_int_eq(em_brkcmd_size(&m, &len), EM_ERROR);
}
END_TEST

static Suite *
brkrec_suite(void)
{
    Suite *s = suite_create("brkrec");
    TCase *tc = tcase_create("codec");

    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_round_trip, 0, EM_NELEMS(rt_cases));
    tcase_add_loop_test(tc, test_truncations, 0, EM_NELEMS(rt_cases));
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    tcase_add_test(tc, test_layout_pinned);
#endif
    tcase_add_test(tc, test_base_valid);
    tcase_add_loop_test(tc, test_bad_record, 0, EM_NELEMS(bad_cases));
    tcase_add_test(tc, test_list_broken);
    tcase_add_loop_test(tc, test_encode_refused, 0, EM_NELEMS(enc_cases));
    tcase_add_test(tc, test_cmd_round_trip);
    tcase_add_test(tc, test_cmd_refused);
    suite_add_tcase(s, tc);
    return s;
}

EM_CHECK_MAIN(brkrec_suite)
