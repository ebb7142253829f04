/*
 * test_rpres.c - emitd's messages between hosts on the wire: presence
 * (redis/em_rpres.c: the exact bytes of a heartbeat and of a message with
 * every kind of entry, what is decoded from them, every truncation refused,
 * and hostile messages: counts past the message, wrong types, values out
 * of range, keys and infos over the limits, refused before anything they
 * would size is allocated) and the scripts' store writes
 * (redis/em_rstore.c: the same checks).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "em_check.h"
#include "em_rpres.h"
#include "em_rstore.h"

#define KEY_MAX  384
#define INFO_MAX 512

static const char heartbeat[] =
    "\x97\xae" "emitd-presence" "\x01\xa6" "Ab12cD" "\x07\x00\xa0\x90";

static char *
build(unsigned flags, em_str_t target, size_t *len)
{
    em_rpres_out_t o;
    char          *msg = NULL;

    em_rpres_out_init(&o);
    em_rpres_ent_t u = { EM_RPRES_USER, { "/chat\0alice", 11 }, 2, 2, 1000, -5,
                         { "{\"a\":1}", 7 }, 0, 0 };
    em_rpres_ent_t r = { EM_RPRES_ROOM, { "/chat\0general\0alice", 19 }, 1, 0, 0, 0, { "", 0 },
                         0, 0 };
    em_rpres_ent_t g = { EM_RPRES_USER, { "/chat\0bob", 9 }, 0, EM_RPRES_UNREPORTED, 0, 0,
                         { "", 0 }, 0, 0 };
    em_rpres_ent_t k = { EM_RPRES_LIMIT, { "connect\n1\n127.0.0.1", 19 }, 5, 0, 0, 0,
                         { "", 0 }, 1700000060000, 1700000900000 };
    em_rpres_out_add(&o, &u);
    em_rpres_out_add(&o, &r);
    em_rpres_out_add(&o, &g);
    em_rpres_out_add(&o, &k);
    ck_assert_uint_eq(o.n, 4);
    ck_assert_uint_gt(em_rpres_out_size(&o), 11 + 19 + 9);
    ck_assert_int_eq(em_rpres_out_finish(&o, S("Ab12cD"), 8, flags, target, &msg, len), EM_OK);
    ck_assert_uint_eq(o.n, 0);
    ck_assert_uint_eq(em_rpres_out_size(&o), 0);
    em_rpres_out_free(&o);
    return msg;
}

START_TEST(test_heartbeat_bytes)
{
    em_rpres_out_t o;
    char          *msg;
    size_t         len;
    em_rpres_t     m;

    em_rpres_out_init(&o);
    ck_assert_int_eq(em_rpres_out_finish(&o, S("Ab12cD"), 7, 0, S(""), &msg, &len), EM_OK);
    ck_assert_uint_eq(len, sizeof(heartbeat) - 1);
    ck_assert_int_eq(memcmp(msg, heartbeat, len), 0);
    free(msg);
    em_rpres_out_free(&o);
    ck_assert_int_eq(em_rpres_decode(heartbeat, sizeof(heartbeat) - 1, 10, KEY_MAX, INFO_MAX, &m),
                     EM_OK);
    ck_slice(m.uid, "Ab12cD", "uid");
    ck_assert_uint_eq(m.seq, 7);
    ck_assert_uint_eq(m.flags, 0);
    ck_assert_uint_eq(m.target.len, 0);
    ck_assert_uint_eq(m.n, 0);
    em_rpres_free(&m);
}
END_TEST

START_TEST(test_entries_round_trip)
{
    /* the head, then the user entry's first bytes: [0, bin8 11 "/chat\0alice", 2, 2, ...] */
    static const char head[] = "\x97\xae" "emitd-presence" "\x01\xa6" "Ab12cD" "\x08\x06\xa6"
                               "Zz99yY" "\x94" "\x97\x00\xc4\x0b" "/chat\0alice" "\x02\x02";
    size_t     len;
    char      *msg = build(EM_RPRES_SYNC | EM_RPRES_END, S("Zz99yY"), &len);
    em_rpres_t m;

    ck_assert_uint_gt(len, sizeof(head) - 1);
    ck_assert_int_eq(memcmp(msg, head, sizeof(head) - 1), 0);
    ck_assert_int_eq(em_rpres_decode(msg, len, 10, KEY_MAX, INFO_MAX, &m), EM_OK);
    ck_assert_uint_eq(m.seq, 8);
    ck_assert_uint_eq(m.flags, EM_RPRES_SYNC | EM_RPRES_END);
    ck_slice(m.target, "Zz99yY", "target");
    ck_assert_uint_eq(m.n, 4);
    ck_assert_int_eq(m.v[0].type, EM_RPRES_USER);
    ck_assert_uint_eq(m.v[0].key.len, 11);
    ck_assert_int_eq(memcmp(m.v[0].key.data, "/chat\0alice", 11), 0);
    ck_assert_uint_eq(m.v[0].count, 2);
    ck_assert_int_eq(m.v[0].status, 2);
    ck_assert_int_eq(m.v[0].connected_at, 1000);
    ck_assert_int_eq(m.v[0].last_seen, -5);
    ck_slice(m.v[0].info, "{\"a\":1}", "info");
    ck_assert_int_eq(m.v[1].type, EM_RPRES_ROOM);
    ck_assert_uint_eq(m.v[1].key.len, 19);
    ck_assert_uint_eq(m.v[1].count, 1);
    ck_assert_uint_eq(m.v[1].info.len, 0);
    ck_assert_uint_eq(m.v[2].count, 0);
    ck_assert_int_eq(m.v[2].status, EM_RPRES_UNREPORTED);
    ck_assert_int_eq(m.v[3].type, EM_RPRES_LIMIT);
    ck_assert_uint_eq(m.v[3].count, 5);
    ck_assert_int_eq(m.v[3].until, 1700000060000);
    ck_assert_int_eq(m.v[3].blocked, 1700000900000);
    /* every slice lies in the message */
    for (size_t i = 0; i < m.n; i++) {
        ck_assert(m.v[i].key.data >= msg && m.v[i].key.data + m.v[i].key.len <= msg + len);
    }
    em_rpres_free(&m);

    /* the limits: entries, key, info */
    ck_assert_int_eq(em_rpres_decode(msg, len, 3, KEY_MAX, INFO_MAX, &m), EM_DECLINED);
    ck_assert_int_eq(em_rpres_decode(msg, len, 10, 18, INFO_MAX, &m), EM_DECLINED);
    ck_assert_int_eq(em_rpres_decode(msg, len, 10, KEY_MAX, 6, &m), EM_DECLINED);
    ck_assert_ptr_null(m.v);
    /* every proper prefix is refused, and a byte more */
    for (size_t n = 0; n < len; n++) {
        ck_assert_int_eq(em_rpres_decode(msg, n, 10, KEY_MAX, INFO_MAX, &m), EM_ERROR);
    }
    char *more = malloc(len + 1);
    memcpy(more, msg, len);
    more[len] = '\0';
    ck_assert_int_eq(em_rpres_decode(more, len + 1, 10, KEY_MAX, INFO_MAX, &m), EM_ERROR);
    free(more);
    free(msg);
}
END_TEST

static const struct {
    const char *name;
    const char *bytes;
    size_t      len;
} bads[] = {
    { "not an array", B("\xa3" "abc") },
    { "six elements", B("\x96\xae" "emitd-presence" "\x01\xa6" "Ab12cD" "\x07\x00\xa0") },
    { "another magic", B("\x97\xae" "emitd-presencX" "\x01\xa6" "Ab12cD" "\x07\x00\xa0\x90") },
    { "version 2", B("\x97\xae" "emitd-presence" "\x02\xa6" "Ab12cD" "\x07\x00\xa0\x90") },
    { "uid as bin", B("\x97\xae" "emitd-presence" "\x01\xc4\x06" "Ab12cD" "\x07\x00\xa0\x90") },
    { "negative seq", B("\x97\xae" "emitd-presence" "\x01\xa6" "Ab12cD" "\xff\x00\xa0\x90") },
    { "flags over a byte", B("\x97\xae" "emitd-presence" "\x01\xa6" "Ab12cD" "\x07\xcd\x01\x00\xa0\x90") },
    { "entries a map", B("\x97\xae" "emitd-presence" "\x01\xa6" "Ab12cD" "\x07\x00\xa0\x80") },
    { "entries past the end", B("\x97\xae" "emitd-presence" "\x01\xa6" "Ab12cD" "\x07\x00\xa0\xdd\xff\xff\xff\xff") },
    { "a key past the end", B("\x97\xae" "emitd-presence" "\x01\xa6" "Ab12cD" "\x07\x00\xa0\x91\x93\x01\xc6\xff\xff\xff\xff") },
    { "a room of seven", B("\x97\xae" "emitd-presence" "\x01\xa6" "Ab12cD" "\x07\x00\xa0\x91\x97\x01\xc4\x01" "k" "\x01\x01\x00\x00\xc4\x00") },
    { "a limit of three", B("\x97\xae" "emitd-presence" "\x01\xa6" "Ab12cD" "\x07\x00\xa0\x91\x93\x02\xc4\x01" "k" "\x01") },
    { "a limit's until a string", B("\x97\xae" "emitd-presence" "\x01\xa6" "Ab12cD" "\x07\x00\xa0\x91\x95\x02\xc4\x01" "k" "\x01\xa1" "x" "\x00") },
    { "type 3", B("\x97\xae" "emitd-presence" "\x01\xa6" "Ab12cD" "\x07\x00\xa0\x91\x93\x03\xc4\x01" "k" "\x01") },
    { "a user of three", B("\x97\xae" "emitd-presence" "\x01\xa6" "Ab12cD" "\x07\x00\xa0\x91\x93\x00\xc4\x01" "k" "\x01") },
    { "status 5", B("\x97\xae" "emitd-presence" "\x01\xa6" "Ab12cD" "\x07\x00\xa0\x91\x97\x00\xc4\x01" "k" "\x01\x05\x00\x00\xc4\x00") },
    { "count over 32 bits", B("\x97\xae" "emitd-presence" "\x01\xa6" "Ab12cD" "\x07\x00\xa0\x91\x93\x01\xc4\x01" "k" "\xcf\x00\x00\x00\x01\x00\x00\x00\x00") },
    { "a key as a number", B("\x97\xae" "emitd-presence" "\x01\xa6" "Ab12cD" "\x07\x00\xa0\x91\x93\x01\x05\x01") },
    { "connectedAt a float", B("\x97\xae" "emitd-presence" "\x01\xa6" "Ab12cD" "\x07\x00\xa0\x91\x97\x00\xc4\x01" "k" "\x01\x01\xca\x00\x00\x00\x00\x00\xc4\x00") },
    { "nested too deep", B("\x97\xae" "emitd-presence" "\x01\xa6" "Ab12cD" "\x07\x00\xa0\x91\x93\x01\x91\x91\x00\x01") },
};

START_TEST(test_bad)
{
    em_rpres_t m;

    ck_assert_msg(em_rpres_decode(bads[_i].bytes, bads[_i].len, 1000, KEY_MAX, INFO_MAX, &m) == EM_ERROR,
                  "%s: accepted", bads[_i].name);
    ck_assert_ptr_null(m.v);
}
END_TEST

static const char store_push[] =
    "\x9a\xab" "emitd-store" "\x01\xa6" "Ab12cD" "\x04\xc4\x03" "log" "\xc4\x04" "\"a1\"" "\x00"
    "\xcd\xea\x60" "\x0a" "\xcf\x00\x00\x01\x8b\xcf\xe5\x68\x00";

START_TEST(test_store_bytes)
{
    em_rstore_op_t op = { EM_RSTORE_PUSH, S("log"), S("\"a1\""), 0, 60000, 10, 1700000000000 }, got;
    em_str_t       uid;
    char          *msg;
    size_t         len;

    ck_assert_int_eq(em_rstore_encode(S("Ab12cD"), &op, &msg, &len), EM_OK);
    ck_assert_uint_eq(len, sizeof(store_push) - 1);
    ck_assert_int_eq(memcmp(msg, store_push, len), 0);
    ck_assert_int_eq(em_rstore_decode(msg, len, 200, 2048, &uid, &got), EM_OK);
    ck_slice(uid, "Ab12cD", "uid");
    ck_assert_int_eq(got.op, EM_RSTORE_PUSH);
    ck_slice(got.key, "log", "key");
    ck_slice(got.value, "\"a1\"", "value");
    ck_assert_int_eq(got.ttl, 60000);
    ck_assert_uint_eq(got.cap, 10);
    ck_assert_int_eq(got.written, 1700000000000);
    ck_assert(got.key.data >= msg && got.key.data + got.key.len <= msg + len);
    ck_assert_int_eq(em_rstore_decode(msg, len, 2, 2048, &uid, &got), EM_DECLINED);
    ck_assert_int_eq(em_rstore_decode(msg, len, 200, 3, &uid, &got), EM_DECLINED);
    for (size_t n = 0; n < len; n++) {
        ck_assert_int_eq(em_rstore_decode(msg, n, 200, 2048, &uid, &got), EM_ERROR);
    }
    free(msg);
    /* an incr of -3, with no value, and a negative written time */
    em_rstore_op_t inc = { EM_RSTORE_INCR, S("hits"), S(""), -3, 0, 0, -1 };
    ck_assert_int_eq(em_rstore_encode(S(""), &inc, &msg, &len), EM_OK);
    ck_assert_int_eq(em_rstore_decode(msg, len, 200, 2048, &uid, &got), EM_OK);
    ck_assert_uint_eq(uid.len, 0);
    ck_assert_int_eq(got.num, -3);
    ck_assert_int_eq(got.written, -1);
    ck_assert_uint_eq(got.value.len, 0);
    free(msg);
}
END_TEST

#define STORE_HEAD "\x9a\xab" "emitd-store" "\x01\xa6" "Ab12cD"
static const struct {
    const char *name;
    const char *bytes;
    size_t      len;
} store_bads[] = {
    { "nine elements", B("\x99\xab" "emitd-store" "\x01\xa6" "Ab12cD" "\x01\xc4\x01" "k" "\xc4\x00\x00\x00\x00") },
    { "op 0", B(STORE_HEAD "\x00\xc4\x01" "k" "\xc4\x00\x00\x00\x00\x00") },
    { "op 5", B(STORE_HEAD "\x05\xc4\x01" "k" "\xc4\x00\x00\x00\x00\x00") },
    { "an empty key", B(STORE_HEAD "\x01\xc4\x00" "\xc4\x00\x00\x00\x00\x00") },
    { "a key as str", B(STORE_HEAD "\x01\xa1" "k" "\xc4\x00\x00\x00\x00\x00") },
    { "a negative ttl", B(STORE_HEAD "\x01\xc4\x01" "k" "\xc4\x00\x00\xff\x00\x00") },
    { "a push with cap 0", B(STORE_HEAD "\x04\xc4\x01" "k" "\xc4\x01" "1" "\x00\x00\x00\x00") },
    { "a cap over 32 bits", B(STORE_HEAD "\x04\xc4\x01" "k" "\xc4\x01" "1" "\x00\x00\xcf\x00\x00\x00\x01\x00\x00\x00\x00\x00") },
    { "a value past the end", B(STORE_HEAD "\x01\xc4\x01" "k" "\xc6\xff\xff\xff\xff") },
    { "a nested value", B(STORE_HEAD "\x01\xc4\x01" "k" "\x91\x00\x00\x00\x00\x00") },
    { "another magic", B("\x9a\xab" "emitd-storX" "\x01\xa6" "Ab12cD" "\x01\xc4\x01" "k" "\xc4\x00\x00\x00\x00\x00") },
    { "version 2", B("\x9a\xab" "emitd-store" "\x02\xa6" "Ab12cD" "\x01\xc4\x01" "k" "\xc4\x00\x00\x00\x00\x00") },
};

START_TEST(test_store_bad)
{
    em_rstore_op_t op;
    em_str_t       uid;

    ck_assert_msg(em_rstore_decode(store_bads[_i].bytes, store_bads[_i].len, 200, 2048, &uid, &op)
                      == EM_ERROR, "%s: accepted", store_bads[_i].name);
}
END_TEST

static Suite *
rpres_suite(void)
{
    Suite *s = suite_create("rpres");
    TCase *tc = tcase_create("codec");

    tcase_add_test(tc, test_heartbeat_bytes);
    tcase_add_test(tc, test_entries_round_trip);
    tcase_add_loop_test(tc, test_bad, 0, EM_NELEMS(bads));
    tcase_add_test(tc, test_store_bytes);
    tcase_add_loop_test(tc, test_store_bad, 0, EM_NELEMS(store_bads));
    suite_add_tcase(s, tc);
    return s;
}

EM_CHECK_MAIN(rpres_suite)
