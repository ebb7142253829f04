/*
 * test_rmsg.c - Socket.IO Redis adapter broadcasts (redis/em_rmsg.c) against
 * the bytes the pinned npm packages publish (rmsg_vectors.h, made by
 * tests/e2e/lib/rmsg_vectors.js with @socket.io/redis-emitter 5.1.0 and
 * @socket.io/redis-adapter 8.3.0): each decoded field by field, the
 * adapter's re-encoded byte for byte, every truncation refused, and hostile
 * counts, nesting and types refused without an allocation they would size.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "em_check.h"
#include "em_rmsg.h"
#include "unit/rmsg_vectors.h"

#define S(lit) (em_str_t) { (lit), sizeof(lit) - 1 }

static const em_rmsg_limits_t lim = { 16, 100, 100, 1024 };

static int
str_is(em_str_t s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.data, want, s.len) == 0;
}

typedef struct {
    const char *name;
    const char *bytes;
    size_t      len;
    const char *channel;
    const char *uid;
    const char *nsp;
    const char *data;
    const char *rooms[2];
    size_t      nrooms;
    const char *except[2];
    size_t      nexcept;
    int         vol;
    size_t      natt;
} vec_t;

#define V(n) RMSG_##n, sizeof(RMSG_##n) - 1, RMSG_##n##_CHANNEL

static const vec_t vecs[] = {
    { "emitter_emit", V(EMITTER_EMIT), "emitter", "/",
      "[\"news\",{\"a\":1,\"b\":[true,null,1.5,-3,\"x\",300,-200,70000]}]", { 0 }, 0, { 0 }, 0, 0, 0 },
    { "emitter_room", V(EMITTER_ROOM), "emitter", "/chat", "[\"ev\",\"hi\"]", { "r1" }, 1,
      { "r2" }, 1, 1, 0 },
    { "emitter_rooms", V(EMITTER_ROOMS), "emitter", "/", "[\"two\",\"\xc3\xa9\",\"\"]", { "a", "b" }, 2,
      { 0 }, 0, 0, 0 },
    { "emitter_binary", V(EMITTER_BINARY), "emitter", "/",
      "[\"bin\",{\"_placeholder\":true,\"num\":0},{\"nested\":{\"_placeholder\":true,\"num\":1},"
      "\"s\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}]", { 0 }, 0, { 0 }, 0, 0, 2 },
    { "adapter_broadcast", V(ADAPTER_BROADCAST), "Ab12Cd", "/chat",
      "[\"tick\",42,{\"deep\":[[1]]}]", { "room" }, 1, { "sid1" }, 1, 0, 0 },
};

START_TEST(test_decode_vectors)
{
    const vec_t *v = &vecs[_i];
    em_rmsg_t    m;
    char         ch[256];
    size_t       chlen;

    ck_assert_msg(em_rmsg_decode(v->bytes, v->len, &lim, &m) == EM_OK, "%s: decoded", v->name);
    ck_assert_msg(str_is(m.uid, v->uid), "%s: uid", v->name);
    ck_assert_msg(str_is(m.nsp, v->nsp), "%s: nsp", v->name);
    ck_assert_msg(m.data_len == strlen(v->data) && memcmp(m.data, v->data, m.data_len) == 0,
                  "%s: data %.*s", v->name, (int) m.data_len, m.data);
    ck_assert_uint_eq(m.nrooms, v->nrooms);
    for (size_t i = 0; i < v->nrooms; i++) {
        ck_assert(str_is(m.rooms[i], v->rooms[i]));
    }
    ck_assert_uint_eq(m.nexcept, v->nexcept);
    for (size_t i = 0; i < v->nexcept; i++) {
        ck_assert(str_is(m.except[i], v->except[i]));
    }
    ck_assert_int_eq(m.vol, v->vol);
    ck_assert_uint_eq(m.natt, v->natt);
    if (v->natt == 2) {
        ck_assert_uint_eq(m.att[0].len, 3);
        ck_assert_int_eq(memcmp(m.att[0].data, "\x01\x02\x03", 3), 0);
        ck_assert_uint_eq(m.att[1].len, 0);
    }
    /* The channel it came on. */
    ck_assert_int_eq(em_rmsg_channel(S("socket.io"), m.nsp, m.nrooms == 1 ? &m.rooms[0] : NULL, ch,
                                     sizeof(ch), &chlen), EM_OK);
    ck_assert_msg(chlen == strlen(v->channel) && memcmp(ch, v->channel, chlen) == 0, "%s: channel",
                  v->name);

    /* Re-encoded and decoded again: the same broadcast. */
    em_rmsg_out_t o = { m.uid, m.nsp, { m.data, m.data_len }, m.att, m.natt, m.rooms, m.nrooms,
                        m.except, m.nexcept, m.vol, 0 };
    char         *buf;
    size_t        len;
    em_rmsg_t     m2;
    ck_assert_int_eq(em_rmsg_encode(&o, 32, &buf, &len), EM_OK);
    ck_assert_int_eq(em_rmsg_decode(buf, len, &lim, &m2), EM_OK);
    ck_assert(m2.data_len == m.data_len && memcmp(m2.data, m.data, m.data_len) == 0);
    ck_assert_uint_eq(m2.natt, m.natt);
    ck_assert_uint_eq(m2.nrooms, m.nrooms);
    ck_assert_int_eq(m2.vol, m.vol);
    em_rmsg_free(&m2);
    free(buf);
    em_rmsg_free(&m);
}
END_TEST

/* emitd publishes what the adapter publishes, to the byte. */
START_TEST(test_encode_as_adapter)
{
    em_str_t      rooms[] = { S("room") }, except[] = { S("sid1") };
    em_rmsg_out_t o = { S("Ab12Cd"), S("/chat"), S("[\"tick\",42.0,{\"deep\":[[1]]}]"), NULL, 0,
                        rooms, 1, except, 1, 0, 0 };
    char         *buf;
    size_t        len;

    ck_assert_int_eq(em_rmsg_encode(&o, 32, &buf, &len), EM_OK);
    ck_assert_uint_eq(len, sizeof(RMSG_ADAPTER_BROADCAST) - 1);
    ck_assert_int_eq(memcmp(buf, RMSG_ADAPTER_BROADCAST, len), 0);
    free(buf);
    /* With recovery on, emitd's data ends with its log offset, which stays here. */
    o.data = S("[\"tick\",42,{\"deep\":[[1]]},\"1234\"]");
    o.drop_last = 1;
    ck_assert_int_eq(em_rmsg_encode(&o, 32, &buf, &len), EM_OK);
    ck_assert_uint_eq(len, sizeof(RMSG_ADAPTER_BROADCAST) - 1);
    ck_assert_int_eq(memcmp(buf, RMSG_ADAPTER_BROADCAST, len), 0);
    free(buf);

    /* Attachments become bin where their placeholders are; a placeholder
     * for an attachment it does not have is refused. */
    em_str_t      att[] = { S("\x01\x02\x03") };
    em_rmsg_out_t b = { S("u"), S("/"), S("[\"b\",{\"_placeholder\":true,\"num\":0}]"), att, 1,
                        NULL, 0, NULL, 0, 1, 0 };
    em_rmsg_t     m;
    ck_assert_int_eq(em_rmsg_encode(&b, 32, &buf, &len), EM_OK);
    ck_assert_int_eq(em_rmsg_decode(buf, len, &lim, &m), EM_OK);
    ck_assert_uint_eq(m.natt, 1);
    ck_assert_int_eq(memcmp(m.att[0].data, "\x01\x02\x03", 3), 0);
    ck_assert_int_eq(m.vol, 1);
    em_rmsg_free(&m);
    free(buf);
    b.natt = 0;
    ck_assert_int_eq(em_rmsg_encode(&b, 32, &buf, &len), EM_ERROR);
    b.data = S("{\"not\":\"an array\"}");
    ck_assert_int_eq(em_rmsg_encode(&b, 32, &buf, &len), EM_ERROR);
    b.data = S("[[[[[1]]]]]");
    ck_assert_int_eq(em_rmsg_encode(&b, 3, &buf, &len), EM_ERROR);
}
END_TEST

START_TEST(test_truncations)
{
    const vec_t *v = &vecs[_i];
    em_rmsg_t    m;

    for (size_t n = 0; n < v->len; n++) {
        char *copy = malloc(n ? n : 1);
        memcpy(copy, v->bytes, n);
        ck_assert_msg(em_rmsg_decode(copy, n, &lim, &m) == EM_ERROR, "%s cut at %zu", v->name, n);
        free(copy);
    }
    char *more = malloc(v->len + 1);
    memcpy(more, v->bytes, v->len);
    more[v->len] = 0;
    ck_assert_int_eq(em_rmsg_decode(more, v->len + 1, &lim, &m), EM_ERROR);    /* a byte after it */
    free(more);
}
END_TEST

typedef struct {
    const char *what;
    const char *bytes;
    size_t      len;
    int         rc;
} bad_t;

#define BY(s) s, sizeof(s) - 1
/* ["u", {"type": 2, "data": [...], "nsp": "/"}] with the data below */
#define PKT(data) "\x92\xa1u\x83\xa4type\x02\xa4" "data" data "\xa3nsp\xa1/"

static const bad_t bads[] = {
    { "an array of 2^32-1 elements in 5 bytes", BY("\xdd\xff\xff\xff\xff"), EM_ERROR },
    { "a map of 2^32-1 pairs", BY("\xdf\xff\xff\xff\xff\x00"), EM_ERROR },
    { "a string of 2^32-1 bytes", BY("\x91\xdb\xff\xff\xff\xff"), EM_ERROR },
    { "0xc1", BY("\x92\xa1u\xc1"), EM_ERROR },
    { "not an array", BY("\x81\xa1u\x01"), EM_ERROR },
    { "no packet", BY("\x91\xa1u"), EM_ERROR },
    { "a number uid", BY("\x92\x01\x80"), EM_ERROR },
    { "no type", BY("\x92\xa1u\x81\xa4" "data" "\x91\xa1" "e"), EM_ERROR },
    { "an ACK (type 3)", BY("\x92\xa1u\x82\xa4type\x03\xa4" "data" "\x91\xa1" "e"), EM_DECLINED },
    { "empty data", BY(PKT("\x90")), EM_ERROR },
    { "a number event name", BY(PKT("\x91\x01")), EM_ERROR },
    { "a map key that is a number", BY(PKT("\x92\xa1" "e" "\x81\x01\x01")), EM_ERROR },
    { "a map key with a NUL", BY(PKT("\x92\xa1" "e" "\x81\xa2" "a\0" "\x01")), EM_ERROR },
    { "a string that is not UTF-8", BY(PKT("\x92\xa1" "e" "\xa2\xff\xfe")), EM_ERROR },
    { "nesting over the limit", BY(PKT("\x92\xa1" "e" "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91"
      "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x01")), EM_DECLINED },
    { "nesting past what the scan takes", BY(PKT("\x92\xa1" "e" "\x91\x91\x91\x91\x91\x91\x91\x91\x91"
      "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91"
      "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91"
      "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x01")), EM_ERROR },
    { "a namespace without '/'", BY("\x92\xa1u\x83\xa4type\x02\xa4" "data" "\x91\xa1" "e" "\xa3nsp\xa1x"),
      EM_ERROR },
    { "rooms that are not an array", BY("\x93\xa1u\x83\xa4type\x02\xa4" "data" "\x91\xa1" "e"
      "\xa3nsp\xa1/\x81\xa5rooms\x01"), EM_ERROR },
    { "a room that is a number", BY("\x93\xa1u\x83\xa4type\x02\xa4" "data" "\x91\xa1" "e"
      "\xa3nsp\xa1/\x81\xa5rooms\x91\x01"), EM_ERROR },
};

START_TEST(test_bad)
{
    const bad_t *b = &bads[_i];
    em_rmsg_t    m;

    int rc = em_rmsg_decode(b->bytes, b->len, &lim, &m);
    ck_assert_msg(rc == b->rc, "%s: %d", b->what, rc);
}
END_TEST

/* More binary values than max_att: refused, as a limit. */
START_TEST(test_attachment_limit)
{
    em_rmsg_limits_t few = lim;
    em_rmsg_t        m;

    few.max_att = 1;
    ck_assert_int_eq(em_rmsg_decode(RMSG_EMITTER_BINARY, sizeof(RMSG_EMITTER_BINARY) - 1, &few, &m),
                     EM_DECLINED);
    few.max_att = 2;
    ck_assert_int_eq(em_rmsg_decode(RMSG_EMITTER_BINARY, sizeof(RMSG_EMITTER_BINARY) - 1, &few, &m),
                     EM_OK);
    em_rmsg_free(&m);
    few.max_rooms = 1;
    ck_assert_int_eq(em_rmsg_decode(RMSG_EMITTER_ROOMS, sizeof(RMSG_EMITTER_ROOMS) - 1, &few, &m),
                     EM_DECLINED);
}
END_TEST

/* A Node server's broadcast with acks, asked of its peers, and the ack it
 * answers one with. */
START_TEST(test_request_and_ack)
{
    em_rmsg_t m;
    char     *buf;
    size_t    len;

    ck_assert_int_eq(em_rmsg_decode_request(RMSG_ADAPTER_REQUEST_ACK,
                                            sizeof(RMSG_ADAPTER_REQUEST_ACK) - 1, &lim, &m), EM_OK);
    ck_assert(str_is(m.uid, "Ab12Cd"));
    ck_assert_uint_eq(m.request_id.len, 6);         /* the adapter's uid2(6) */
    ck_assert(str_is(m.nsp, "/chat"));
    ck_assert_str_eq(m.data, "[\"ask\",\"q\",{\"_placeholder\":true,\"num\":0}]");
    ck_assert_uint_eq(m.natt, 1);
    ck_assert_uint_eq(m.att[0].len, 1);
    ck_assert_int_eq(m.att[0].data[0], 9);
    ck_assert_uint_eq(m.nrooms, 1);
    ck_assert(str_is(m.rooms[0], "r"));
    ck_assert_int_eq(m.timeout, 1500);
    em_rmsg_free(&m);
    /* Each shape is only what it is. */
    ck_assert_int_eq(em_rmsg_decode(RMSG_ADAPTER_REQUEST_ACK, sizeof(RMSG_ADAPTER_REQUEST_ACK) - 1,
                                    &lim, &m), EM_ERROR);
    ck_assert_int_eq(em_rmsg_decode_request(RMSG_EMITTER_EMIT, sizeof(RMSG_EMITTER_EMIT) - 1, &lim,
                                            &m), EM_ERROR);

    json_t *ack = json_pack("{s:b,s:{s:s}}", "ok", 1, "b", "$binary", "AQI=");
    ck_assert_int_eq(em_rmsg_encode_ack(S("Rq12ab"), ack, &buf, &len), EM_OK);
    ck_assert_uint_eq(len, sizeof(RMSG_ADAPTER_ACK) - 1);
    ck_assert_int_eq(memcmp(buf, RMSG_ADAPTER_ACK, len), 0);
    free(buf);
    json_decref(ack);
    ack = json_pack("{s:s}", "$binary", "not base64!");
    ck_assert_int_eq(em_rmsg_encode_ack(S("x"), ack, &buf, &len), EM_ERROR);
    json_decref(ack);
}
END_TEST

/* A script's server-side event, as @socket.io/redis-adapter 8's
 * serverSideEmit() publishes it (JSON.stringify({uid, type, data})), and
 * this host's own requests told apart from the others'. */
START_TEST(test_server_emit)
{
    static const char data[] = "[\"ev\",{\"a\":1},\"x\"]";
    static const char want[] = "{\"uid\":\"Ab12cD\",\"type\":6,\"data\":[\"ev\",{\"a\":1},\"x\"]}";
    char             *buf;
    size_t            len;

    ck_assert_int_eq(em_rmsg_encode_server_emit(S("Ab12cD"), data, sizeof(data) - 1, &buf, &len), EM_OK);
    ck_assert_uint_eq(len, sizeof(want) - 1);
    ck_assert_int_eq(memcmp(buf, want, len), 0);
    ck_assert_int_eq(em_rmsg_request_is_from(buf, len, S("Ab12cD")), 1);
    ck_assert_int_eq(em_rmsg_request_is_from(buf, len, S("Ab12cE")), 0);
    ck_assert_int_eq(em_rmsg_request_is_from(buf, len, S("Ab12c")), 0);
    ck_assert_int_eq(em_rmsg_request_is_from(buf, len - 1, S("Ab12cD")), 0);
    free(buf);
    /* Not [event, ...]. */
    ck_assert_int_eq(em_rmsg_encode_server_emit(S("Ab12cD"), "{}", 2, &buf, &len), EM_ERROR);
    ck_assert_int_eq(em_rmsg_encode_server_emit(S("Ab12cD"), "[1]", 3, &buf, &len), EM_ERROR);
    ck_assert_int_eq(em_rmsg_encode_server_emit(S("Ab12cD"), "[\"e\"", 4, &buf, &len), EM_ERROR);
    /* An emitter's request (uid "emitter"), MessagePack, nothing. */
    ck_assert_int_eq(em_rmsg_request_is_from("{\"uid\":\"emitter\",\"type\":6}", 26, S("emitte")), 0);
    ck_assert_int_eq(em_rmsg_request_is_from(RMSG_ADAPTER_REQUEST_ACK, sizeof(RMSG_ADAPTER_REQUEST_ACK) - 1,
                                             S("Ab12cD")), 0);
    ck_assert_int_eq(em_rmsg_request_is_from("", 0, S("Ab12cD")), 0);
}
END_TEST

/* With an ack: the request as io.serverSideEmitWithAck() publishes it
 * (JSON.stringify({uid, requestId, type, data})), and the answers of Node
 * servers (JSON.stringify({type, requestId, data: arg})) told from the rest. */
START_TEST(test_server_ask)
{
    static const char data[] = "[\"ev\",1]";
    static const char want[] = "{\"uid\":\"Ab12cD\",\"requestId\":\"Q9w8E7\",\"type\":6,\"data\":[\"ev\",1]}";
    char             *buf;
    size_t            len;
    json_t           *d = NULL;

    ck_assert_int_eq(em_rmsg_encode_server_ask(S("Ab12cD"), S("Q9w8E7"), data, sizeof(data) - 1, &buf,
                                               &len), EM_OK);
    ck_assert_uint_eq(len, sizeof(want) - 1);
    ck_assert_int_eq(memcmp(buf, want, len), 0);
    free(buf);
#define ANSWER(s) em_rmsg_decode_server_answer((s), sizeof(s) - 1, S("Q9w8E7"), &d)
    ck_assert_int_eq(ANSWER("{\"type\":6,\"requestId\":\"Q9w8E7\",\"data\":{\"node\":[1,2]}}"), EM_OK);
    ck_assert(json_is_object(d));
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(d, "node"), 1)), 2);
    json_decref(d);
    ck_assert_int_eq(ANSWER("{\"type\":6,\"requestId\":\"Q9w8E7\"}"), EM_OK);    /* ack() */
    ck_assert(json_is_null(d));
    json_decref(d);
    /* another request's, another type's, a longer id, not JSON, MessagePack */
    ck_assert_int_eq(ANSWER("{\"type\":6,\"requestId\":\"Q9w8E8\",\"data\":1}"), EM_DECLINED);
    ck_assert_int_eq(ANSWER("{\"type\":1,\"requestId\":\"Q9w8E7\",\"rooms\":[]}"), EM_DECLINED);
    ck_assert_int_eq(ANSWER("{\"type\":6,\"requestId\":\"Q9w8E7x\",\"data\":1}"), EM_DECLINED);
    ck_assert_int_eq(ANSWER("{\"type\":\"6\",\"requestId\":\"Q9w8E7\"}"), EM_DECLINED);
    ck_assert_int_eq(ANSWER("{\"type\":6,\"requestId\":\"Q9w8"), EM_DECLINED);
    ck_assert_int_eq(ANSWER("\x83\xa4type\x06"), EM_DECLINED);
    ck_assert_int_eq(ANSWER(""), EM_DECLINED);
    ck_assert_ptr_null(d);
#undef ANSWER
}
END_TEST

/* The Redis Streams adapter's entries: the data field byte for byte as the
 * npm package's JSON.stringify and @msgpack/msgpack 2.8 (its dependency)
 * write it (the vectors were made with them), and read back. */
START_TEST(test_stream)
{
    static const char json_want[] = "{\"packet\":{\"type\":2,\"data\":[\"ev\",{\"a\":1}],\"nsp\":\"/chat\"},"
                                    "\"opts\":{\"rooms\":[\"r1\"],\"except\":[\"x\"],\"flags\":{\"volatile\":true}}}";
    static const char bin_want[] = "gqZwYWNrZXSDpHR5cGUCpGRhdGGSo2JpbsQDAAECo25zcKEvpG9wdHODpXJvb21zkaFy"
                                   "pmV4Y2VwdJClZmxhZ3OA";
    em_str_t  r1 = S("r1"), x = S("x"), r = S("r"), att = { "\x00\x01\x02", 3 };
    char     *buf;
    size_t    len;
    em_rmsg_t m;

    /* an offset emitd logged for recovery is not sent */
    em_rmsg_out_t o = { S("Ab12cD"), S("/chat"), S("[\"ev\",{\"a\":1},\"7\"]"), NULL, 0, &r1, 1, &x, 1, 1, 1 };
    ck_assert_int_eq(em_rmsg_encode_stream(&o, 16, &buf, &len), EM_OK);
    ck_assert_uint_eq(len, sizeof(json_want) - 1);
    ck_assert_int_eq(memcmp(buf, json_want, len), 0);
    ck_assert_int_eq(em_rmsg_decode_stream(S("Zz9"), S("/chat"), S("3"), (em_str_t) { buf, len }, &lim, &m),
                     EM_OK);
    ck_assert(str_is(m.uid, "Zz9") && str_is(m.nsp, "/chat") && m.vol == 1);
    ck_assert(m.nrooms == 1 && str_is(m.rooms[0], "r1") && m.nexcept == 1 && str_is(m.except[0], "x"));
    ck_assert_str_eq(m.data, "[\"ev\",{\"a\":1}]");
    ck_assert_uint_eq(m.natt, 0);
    em_rmsg_free(&m);
    free(buf);

    em_rmsg_out_t b = { S("Ab12cD"), S("/"), S("[\"bin\",{\"_placeholder\":true,\"num\":0}]"), &att, 1, &r, 1,
                        NULL, 0, 0, 0 };
    ck_assert_int_eq(em_rmsg_encode_stream(&b, 16, &buf, &len), EM_OK);
    ck_assert_uint_eq(len, sizeof(bin_want) - 1);
    ck_assert_int_eq(memcmp(buf, bin_want, len), 0);
    ck_assert_int_eq(em_rmsg_decode_stream(S("Zz9"), S("/"), S("3"), (em_str_t) { buf, len }, &lim, &m), EM_OK);
    ck_assert(str_is(m.nsp, "/") && m.nrooms == 1 && str_is(m.rooms[0], "r") && m.vol == 0);
    ck_assert_uint_eq(m.natt, 1);
    ck_assert(m.att[0].len == 3 && memcmp(m.att[0].data, "\x00\x01\x02", 3) == 0);
    ck_assert_str_eq(m.data, "[\"bin\",{\"_placeholder\":true,\"num\":0}]");
    em_rmsg_free(&m);
    /* every cut of the base64 is refused or short of the whole */
    for (size_t n = 4; n < len; n += 4) {
        ck_assert_int_ne(em_rmsg_decode_stream(S("u"), S("/"), S("3"), (em_str_t) { buf, n }, &lim, &m),
                         EM_OK);
    }
    free(buf);

    /* a room name JSON cannot say goes as MessagePack (regress-stream-room-not-utf8) */
    em_str_t      odd = { "\xff\x01", 2 };
    em_rmsg_out_t ob = { S("Ab12cD"), S("/"), S("[\"e\"]"), NULL, 0, &odd, 1, NULL, 0, 0, 0 };
    ck_assert_int_eq(em_rmsg_encode_stream(&ob, 16, &buf, &len), EM_OK);
    ck_assert(len > 0 && buf[0] != '{');
    ck_assert_int_eq(em_rmsg_decode_stream(S("u"), S("/"), S("3"), (em_str_t) { buf, len }, &lim, &m), EM_OK);
    ck_assert(m.nrooms == 1 && m.rooms[0].len == 2 && memcmp(m.rooms[0].data, "\xff\x01", 2) == 0);
    em_rmsg_free(&m);
    free(buf);

#define STREAM(type, text) em_rmsg_decode_stream(S("u"), S("/"), S(type), S(text), &lim, &m)
    ck_assert_int_eq(STREAM("4", "{}"), EM_DECLINED);                     /* SOCKETS_JOIN, ... */
    ck_assert_int_eq(STREAM("3", "{\"packet\":{\"type\":3,\"data\":[1]},\"opts\":{}}"), EM_DECLINED);
    ck_assert_int_eq(STREAM("3", "{\"requestId\":\"q\",\"packet\":{\"type\":2,\"data\":[\"e\"]},\"opts\":{}}"),
                     EM_DECLINED);
    ck_assert_int_eq(STREAM("3", "{\"packet\":{\"type\":2,\"data\":[1]},\"opts\":{}}"), EM_ERROR);
    ck_assert_int_eq(STREAM("3", "{\"packet\":{\"type\":2,\"data\":[\"e\"],\"nsp\":\"x\"}}"), EM_ERROR);
    ck_assert_int_eq(STREAM("3", "{\"packet\":{\"type\":2,\"data\":[\"e\"]},\"opts\":{\"rooms\":[1]}}"), EM_ERROR);
    ck_assert_int_eq(STREAM("3", "{\"packet\":"), EM_ERROR);
    ck_assert_int_eq(STREAM("3", "!!!!"), EM_ERROR);                    /* not base64 */
    ck_assert_int_eq(STREAM("3", "kw=="), EM_ERROR);                    /* [] */
    ck_assert_int_eq(STREAM("3", "{\"packet\":{\"type\":2,\"data\":[\"e\"]}}"), EM_OK);
    ck_assert(str_is(m.nsp, "/"));
    em_rmsg_free(&m);
    /* a NUL in a string, as MessagePack may carry (regress-stream-nul-in-string) */
    ck_assert_int_eq(STREAM("3", "{\"packet\":{\"type\":2,\"data\":[\"e\",\"a\\u0000b\"]}}"), EM_OK);
    ck_assert_str_eq(m.data, "[\"e\",\"a\\u0000b\"]");
    em_rmsg_free(&m);
#undef STREAM
}
END_TEST

static Suite *
rmsg_suite(void)
{
    Suite *s = suite_create("rmsg");
    TCase *tc = tcase_create("codec");

    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_decode_vectors, 0, EM_NELEMS(vecs));
    tcase_add_test(tc, test_encode_as_adapter);
    tcase_add_loop_test(tc, test_truncations, 0, EM_NELEMS(vecs));
    tcase_add_loop_test(tc, test_bad, 0, EM_NELEMS(bads));
    tcase_add_test(tc, test_attachment_limit);
    tcase_add_test(tc, test_request_and_ack);
    tcase_add_test(tc, test_server_emit);
    tcase_add_test(tc, test_server_ask);
    tcase_add_test(tc, test_stream);
    suite_add_tcase(s, tc);
    return s;
}

EM_CHECK_MAIN(rmsg_suite)
