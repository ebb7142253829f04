/*
 * test_sio.c - unit tests of proto/em_sio.c.
 */
#include <check.h>

#include "em_check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "em_sio.h"

#define NOID EM_SIO_NO_ID

/* ---- em_sio_decode: accepted packets ------------------------------------ */

static const struct {
    const char   *in;
    em_sio_type_t type;
    unsigned      nattach;
    const char   *nsp;
    int64_t       id;
    const char   *data;
} good_cases[] = {
    { "0", EM_SIO_CONNECT, 0, "/", NOID, "" },
    { "0{\"token\":\"abc\"}", EM_SIO_CONNECT, 0, "/", NOID, "{\"token\":\"abc\"}" },
    { "0/admin", EM_SIO_CONNECT, 0, "/admin", NOID, "" },
    { "0/admin,", EM_SIO_CONNECT, 0, "/admin", NOID, "" },
    { "0/admin,{\"token\":\"x\"}", EM_SIO_CONNECT, 0, "/admin", NOID, "{\"token\":\"x\"}" },
    { "0/device/42,{}", EM_SIO_CONNECT, 0, "/device/42", NOID, "{}" },
    { "0/,{}", EM_SIO_CONNECT, 0, "/", NOID, "{}" },
    { "0/caf\xc3\xa9", EM_SIO_CONNECT, 0, "/caf\xc3\xa9", NOID, "" },
    { "1", EM_SIO_DISCONNECT, 0, "/", NOID, "" },
    { "1/admin", EM_SIO_DISCONNECT, 0, "/admin", NOID, "" },
    { "1/admin,", EM_SIO_DISCONNECT, 0, "/admin", NOID, "" },
    { "2[\"hello\",1]", EM_SIO_EVENT, 0, "/", NOID, "[\"hello\",1]" },
    { "2[]", EM_SIO_EVENT, 0, "/", NOID, "[]" },
    { "2[", EM_SIO_EVENT, 0, "/", NOID, "[" },     /* JSON is the caller's job */
    { "25[\"a\"]", EM_SIO_EVENT, 0, "/", 5, "[\"a\"]" },
    { "20[\"a\"]", EM_SIO_EVENT, 0, "/", 0, "[\"a\"]" },
    { "2007[\"a\"]", EM_SIO_EVENT, 0, "/", 7, "[\"a\"]" },
    { "2/chat,[\"a\"]", EM_SIO_EVENT, 0, "/chat", NOID, "[\"a\"]" },
    { "2/chat,5[\"a\"]", EM_SIO_EVENT, 0, "/chat", 5, "[\"a\"]" },
    { "2/chat,9007199254740991[\"a\"]", EM_SIO_EVENT, 0, "/chat", INT64_C(9007199254740991), "[\"a\"]" },
    { "29007199254740991[0]", EM_SIO_EVENT, 0, "/", INT64_C(9007199254740991), "[0]" },
    { "3/chat,5[]", EM_SIO_ACK, 0, "/chat", 5, "[]" },
    { "312[\"ok\",{\"a\":[1,2]}]", EM_SIO_ACK, 0, "/", 12, "[\"ok\",{\"a\":[1,2]}]" },
    { "4{\"message\":\"Not authorized\"}", EM_SIO_CONNECT_ERROR, 0, "/", NOID,
      "{\"message\":\"Not authorized\"}" },
    { "4/admin,{\"message\":\"x\",\"data\":{}}", EM_SIO_CONNECT_ERROR, 0, "/admin", NOID,
      "{\"message\":\"x\",\"data\":{}}" },
    { "51-[\"up\",{\"_placeholder\":true,\"num\":0}]", EM_SIO_BINARY_EVENT, 1, "/", NOID,
      "[\"up\",{\"_placeholder\":true,\"num\":0}]" },
    { "52-/nsp,3[\"a\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
      EM_SIO_BINARY_EVENT, 2, "/nsp", 3,
      "[\"a\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]" },
    { "50-[\"none\"]", EM_SIO_BINARY_EVENT, 0, "/", NOID, "[\"none\"]" },
    { "51000-[0]", EM_SIO_BINARY_EVENT, 1000, "/", NOID, "[0]" },
    { "501-[0]", EM_SIO_BINARY_EVENT, 1, "/", NOID, "[0]" },
    { "61-15[{\"_placeholder\":true,\"num\":0}]", EM_SIO_BINARY_ACK, 1, "/", 15,
      "[{\"_placeholder\":true,\"num\":0}]" },
    { "61-/chat,0[{\"_placeholder\":true,\"num\":0}]", EM_SIO_BINARY_ACK, 1, "/chat", 0,
      "[{\"_placeholder\":true,\"num\":0}]" },
};

START_TEST(test_decode_good)
{
    const char     *in = good_cases[_i].in;
    em_sio_packet_t pkt;

    ck_assert_msg(em_sio_decode(in, strlen(in), &pkt) == EM_OK, "\"%s\" refused", in);
    ck_assert_int_eq(pkt.type, good_cases[_i].type);
    ck_assert_uint_eq(pkt.nattach, good_cases[_i].nattach);
    ck_slice(pkt.nsp, good_cases[_i].nsp, "nsp");
    ck_assert_int_eq(pkt.id, good_cases[_i].id);
    ck_slice(pkt.data, good_cases[_i].data, "data");
    ck_assert_ptr_eq(pkt.data.data + pkt.data.len, in + strlen(in));
}
END_TEST

/* ---- em_sio_decode: refused packets ------------------------------------- */

static const struct {
    const char *why;
    const char *in;
    size_t      len;
} bad_cases[] = {
    { "empty", B("") },
    { "type 7", B("7[]") },
    { "type letter", B("a[]") },
    { "space", B(" 2[]") },
    { "NUL type", B("\0") },
    { "event without data", B("2") },
    { "event with string", B("2\"hello\"") },
    { "event with object", B("2{}") },
    { "event, nsp, no data", B("2/chat,") },
    { "event, id, no data", B("2/chat,5") },
    { "nsp without comma then data", B("2/chat[\"a\"]") },
    { "comma without nsp", B("2,[\"a\"]") },
    { "garbage after nsp", B("2/chat,x[\"a\"]") },
    { "space before data", B("2 [\"a\"]") },
    { "id > 2^53-1", B("29007199254740992[\"a\"]") },
    { "id overflows int64", B("299999999999999999999999[\"a\"]") },
    { "nsp id > 2^53-1", B("2/a,10000000000000000[0]") },
    { "negative id", B("2-1[\"a\"]") },
    { "ack without id", B("3[]") },
    { "ack without data", B("35") },
    { "ack with object", B("35{}") },
    { "disconnect with data", B("1[]") },
    { "disconnect with id", B("15") },
    { "disconnect nsp with data", B("1/admin,{}") },
    { "connect with id", B("05{}") },
    { "connect with array", B("0[]") },
    { "connect with string", B("0\"x\"") },
    { "connect comma", B("0,") },
    { "connect double comma", B("0/admin,,") },
    { "connect_error without data", B("4") },
    { "connect_error nsp without data", B("4/admin,") },
    { "connect_error with id", B("45{}") },
    { "binary without count", B("5[\"a\"]") },
    { "binary without dash", B("51[\"a\"]") },
    { "binary dash only", B("5-[\"a\"]") },
    { "binary count end", B("51") },
    { "binary count over max", B("51001-[0]") },
    { "binary count overflow", B("599999999999-[0]") },
    { "binary without data", B("51-") },
    { "binary with object", B("51-{}") },
    { "binary ack without id", B("61-[0]") },
    { "binary ack without count", B("615[0]") },
    { "count on text event", B("21-[\"a\"]") },
    { "count on connect", B("01-") },
    { "control char in nsp", B("2/ch\x01" "at,[0]") },
    { "DEL in nsp", B("2/ch\x7f,[0]") },
    { "NUL in nsp", B("0/a\0b") },
    { "NUL data on connect", B("0\0") },           /* found by fuzz_sio */
    { "NUL data after nsp", B("0/admin,\0\0dm") },
    { "NUL data on disconnect", B("1\0") },
    { "NUL data on connect_error", B("4\0") },
    { "NUL before event data", B("2\0[0]") },
};

START_TEST(test_decode_bad)
{
    em_sio_packet_t pkt;

    ck_assert_msg(em_sio_decode(bad_cases[_i].in, bad_cases[_i].len, &pkt) == EM_ERROR,
                  "%s: accepted", bad_cases[_i].why);
}
END_TEST

START_TEST(test_decode_long_nsp)
{
    char            buf[300];
    em_sio_packet_t pkt;

    buf[0] = '0';
    buf[1] = '/';
    memset(buf + 2, 'n', sizeof(buf) - 2);
    /* 256 bytes of namespace is the limit. */
    ck_assert_int_eq(em_sio_decode(buf, 1 + 256, &pkt), EM_OK);
    ck_assert_uint_eq(pkt.nsp.len, 256);
    ck_assert_int_eq(em_sio_decode(buf, 1 + 257, &pkt), EM_ERROR);
}
END_TEST

/* ---- em_sio_encode_header ----------------------------------------------- */

static const struct {
    em_sio_type_t type;
    unsigned      nattach;
    const char   *nsp;
    int64_t       id;
    int           has_data;
    const char   *want;
} enc_cases[] = {
    { EM_SIO_CONNECT, 0, "/", NOID, 1, "0" },
    { EM_SIO_CONNECT, 0, "/admin", NOID, 1, "0/admin," },
    { EM_SIO_CONNECT, 0, "/admin", NOID, 0, "0/admin" },
    { EM_SIO_CONNECT, 0, "", NOID, 0, "0" },
    { EM_SIO_DISCONNECT, 0, "/", NOID, 0, "1" },
    { EM_SIO_DISCONNECT, 0, "/admin", NOID, 0, "1/admin" },
    { EM_SIO_EVENT, 0, "/", NOID, 1, "2" },
    { EM_SIO_EVENT, 0, "/", 5, 1, "25" },
    { EM_SIO_EVENT, 0, "/chat", 5, 1, "2/chat,5" },
    { EM_SIO_EVENT, 0, "/chat", 0, 1, "2/chat,0" },
    { EM_SIO_EVENT, 0, "/chat", NOID, 1, "2/chat," },
    { EM_SIO_EVENT, 7, "/", NOID, 1, "2" },     /* nattach only for binary */
    { EM_SIO_ACK, 0, "/", 12, 1, "312" },
    { EM_SIO_ACK, 0, "/x", INT64_C(9007199254740991), 1, "3/x,9007199254740991" },
    { EM_SIO_CONNECT_ERROR, 0, "/admin", NOID, 1, "4/admin," },
    { EM_SIO_BINARY_EVENT, 1, "/", NOID, 1, "51-" },
    { EM_SIO_BINARY_EVENT, 2, "/nsp", 3, 1, "52-/nsp,3" },
    { EM_SIO_BINARY_EVENT, 0, "/", NOID, 1, "50-" },
    { EM_SIO_BINARY_EVENT, 4294967295u, "/", NOID, 1, "54294967295-" },
    { EM_SIO_BINARY_ACK, 1000, "/", 15, 1, "61000-15" },
};

START_TEST(test_encode_header)
{
    char    out[64];
    ssize_t n = em_sio_encode_header(enc_cases[_i].type, enc_cases[_i].nattach,
                                     S(enc_cases[_i].nsp), enc_cases[_i].id,
                                     enc_cases[_i].has_data, out, sizeof(out));
    size_t  want = strlen(enc_cases[_i].want), cap;

    ck_assert_int_eq(n, (ssize_t) want);
    ck_assert_mem_eq(out, enc_cases[_i].want, want);

    /* Exactly enough room is enough; any less is refused. */
    ck_assert_int_eq(em_sio_encode_header(enc_cases[_i].type, enc_cases[_i].nattach,
                                          S(enc_cases[_i].nsp), enc_cases[_i].id,
                                          enc_cases[_i].has_data, out, want), (ssize_t) want);
    for (cap = 0; cap < want; cap++) {
        ck_assert_int_eq(em_sio_encode_header(enc_cases[_i].type, enc_cases[_i].nattach,
                                              S(enc_cases[_i].nsp), enc_cases[_i].id,
                                              enc_cases[_i].has_data, out, cap), -1);
    }
}
END_TEST

START_TEST(test_encode_header_refused)
{
    char out[64];

    ck_assert_int_eq(em_sio_encode_header((em_sio_type_t) 7, 0, S("/"), NOID, 1, out, sizeof(out)), -1);
    ck_assert_int_eq(em_sio_encode_header(EM_SIO_EVENT, 0, S("/"), INT64_C(9007199254740992), 1,
                                          out, sizeof(out)), -1);
}
END_TEST

/* The worst case fits in 32 + nsp.len bytes, as the header promises. */
START_TEST(test_encode_header_bound)
{
    char    out[32 + 5];
    ssize_t n = em_sio_encode_header(EM_SIO_BINARY_ACK, 4294967295u, S("/nsp1"),
                                     INT64_C(9007199254740991), 1, out, sizeof(out));

    ck_assert_int_gt(n, 0);
    ck_assert_int_le(n, (ssize_t) sizeof(out));
}
END_TEST

/* decode(encode_header() + data) gives back what was encoded. */
START_TEST(test_roundtrip)
{
    static const char *const nsps[] = { "/", "/chat", "/device/42" };
    static const int64_t     ids[] = { NOID, 0, 42, INT64_C(9007199254740991) };
    static const char *const datas[] = { "", "{}", "[\"ev\",1]" };
    em_sio_type_t            t;
    size_t                   a, b, c;

    for (t = EM_SIO_CONNECT; t <= EM_SIO_BINARY_ACK; t++) {
        for (a = 0; a < EM_NELEMS(nsps); a++) {
            for (b = 0; b < EM_NELEMS(ids); b++) {
                for (c = 0; c < EM_NELEMS(datas); c++) {
                    char            buf[128];
                    unsigned        nattach = (t == EM_SIO_BINARY_EVENT || t == EM_SIO_BINARY_ACK) ? 3 : 0;
                    size_t          dlen = strlen(datas[c]);
                    ssize_t         n = em_sio_encode_header(t, nattach, S(nsps[a]), ids[b], dlen > 0,
                                                             buf, sizeof(buf));
                    em_sio_packet_t pkt;

                    ck_assert_int_gt(n, 0);
                    memcpy(buf + n, datas[c], dlen);
                    if (em_sio_decode(buf, (size_t) n + dlen, &pkt) != EM_OK) {
                        continue;   /* combination not valid for the type */
                    }
                    ck_assert_int_eq(pkt.type, t);
                    ck_assert_uint_eq(pkt.nattach, nattach);
                    ck_slice(pkt.nsp, nsps[a], "nsp");
                    ck_assert_int_eq(pkt.id, ids[b]);
                    ck_assert_uint_eq(pkt.data.len, dlen);
                }
            }
        }
    }
}
END_TEST

/* ---- em_sio_valid_nsp --------------------------------------------------- */

START_TEST(test_valid_nsp)
{
    char long_nsp[258];

    ck_assert(em_sio_valid_nsp(S("/")));
    ck_assert(em_sio_valid_nsp(S("/chat")));
    ck_assert(em_sio_valid_nsp(S("/device/42")));
    ck_assert(em_sio_valid_nsp(S("/caf\xc3\xa9")));
    ck_assert(!em_sio_valid_nsp(S("")));
    ck_assert(!em_sio_valid_nsp(EM_NULL_STR));
    ck_assert(!em_sio_valid_nsp(S("chat")));
    ck_assert(!em_sio_valid_nsp(S("/a,b")));
    ck_assert(!em_sio_valid_nsp(S("/a\nb")));
    ck_assert(!em_sio_valid_nsp(S("/a\x7f")));
    ck_assert(!em_sio_valid_nsp((em_str_t) { "/a\0b", 4 }));

    long_nsp[0] = '/';
    memset(long_nsp + 1, 'x', sizeof(long_nsp) - 1);
    ck_assert(em_sio_valid_nsp((em_str_t) { long_nsp, 256 }));
    ck_assert(!em_sio_valid_nsp((em_str_t) { long_nsp, 257 }));
}
END_TEST

static Suite *
sio_suite(void)
{
    Suite *s = suite_create("sio");
    TCase *tc;

    tc = tcase_create("decode");
    tcase_add_loop_test(tc, test_decode_good, 0, EM_NELEMS(good_cases));
    tcase_add_loop_test(tc, test_decode_bad, 0, EM_NELEMS(bad_cases));
    tcase_add_test(tc, test_decode_long_nsp);
    suite_add_tcase(s, tc);

    tc = tcase_create("encode");
    tcase_add_loop_test(tc, test_encode_header, 0, EM_NELEMS(enc_cases));
    tcase_add_test(tc, test_encode_header_refused);
    tcase_add_test(tc, test_encode_header_bound);
    tcase_add_test(tc, test_roundtrip);
    suite_add_tcase(s, tc);

    tc = tcase_create("nsp");
    tcase_add_test(tc, test_valid_nsp);
    suite_add_tcase(s, tc);

    return s;
}

EM_CHECK_MAIN(sio_suite)
