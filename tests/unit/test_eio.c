/*
 * test_eio.c - unit tests of proto/em_eio.c.
 */
#include <check.h>

#include "em_check.h"
#include <stdlib.h>
#include <string.h>

#include "em_eio.h"

#define SEP "\x1e"

static void
ck_bytes(em_str_t got, const char *want, size_t wlen, const char *what)
{
    ck_assert_msg(got.len == wlen && (wlen == 0 || memcmp(got.data, want, wlen) == 0),
                  "%s: got \"%.*s\" (%zu), want \"%.*s\" (%zu)", what, (int) got.len,
                  got.data ? got.data : "", got.len, (int) wlen, want, wlen);
}

/* ---- em_eio_decode ----------------------------------------------------- */

static const struct {
    const char   *in;
    size_t        len;
    int           rc;
    em_eio_type_t type;
    const char   *data;
    size_t        dlen;
} decode_cases[] = {
    { B("0{\"sid\":\"abc\"}"), EM_OK, EM_EIO_OPEN, B("{\"sid\":\"abc\"}") },
    { B("1"), EM_OK, EM_EIO_CLOSE, B("") },
    { B("2"), EM_OK, EM_EIO_PING, B("") },
    { B("2probe"), EM_OK, EM_EIO_PING, B("probe") },
    { B("3"), EM_OK, EM_EIO_PONG, B("") },
    { B("3probe"), EM_OK, EM_EIO_PONG, B("probe") },
    { B("4hello"), EM_OK, EM_EIO_MESSAGE, B("hello") },
    { B("4"), EM_OK, EM_EIO_MESSAGE, B("") },
    { B("42[\"ev\",{\"a\":1}]"), EM_OK, EM_EIO_MESSAGE, B("2[\"ev\",{\"a\":1}]") },
    { B("4caf\xc3\xa9\0x"), EM_OK, EM_EIO_MESSAGE, B("caf\xc3\xa9\0x") },
    { B("5"), EM_OK, EM_EIO_UPGRADE, B("") },
    { B("6"), EM_OK, EM_EIO_NOOP, B("") },
    { B(""), EM_ERROR, 0, B("") },
    { B("7"), EM_ERROR, 0, B("") },
    { B("9x"), EM_ERROR, 0, B("") },
    { B("/"), EM_ERROR, 0, B("") },
    { B(":"), EM_ERROR, 0, B("") },
    { B("bAQID"), EM_ERROR, 0, B("") },
    { B("x4"), EM_ERROR, 0, B("") },
    { B(" 4a"), EM_ERROR, 0, B("") },
    { B("\0" "4"), EM_ERROR, 0, B("") },
};

START_TEST(test_decode)
{
    em_eio_packet_t pkt;
    int             rc = em_eio_decode(decode_cases[_i].in, decode_cases[_i].len, &pkt);

    ck_assert_int_eq(rc, decode_cases[_i].rc);
    if (rc == EM_OK) {
        ck_assert_int_eq(pkt.type, decode_cases[_i].type);
        ck_assert(!pkt.binary);
        ck_assert(!pkt.base64);
        ck_bytes(pkt.data, decode_cases[_i].data, decode_cases[_i].dlen, "data");
        ck_assert_ptr_eq(pkt.data.data, decode_cases[_i].in + 1);
    }
}
END_TEST

/* ---- em_eio_payload_next ----------------------------------------------- */

/* One expected step of an iteration: rc, and for EM_OK the packet. */
typedef struct {
    int           rc;
    em_eio_type_t type;
    int           binary;
    const char   *data;
} step_t;

#define END  { EM_DECLINED, 0, 0, NULL }
#define FAIL { EM_ERROR, 0, 0, NULL }

static const struct {
    const char *name;
    const char *body;
    size_t      len;
    step_t      steps[5];
} payload_cases[] = {
    { "one message", B("4hello"),
      { { EM_OK, EM_EIO_MESSAGE, 0, "hello" }, END } },
    { "two messages", B("4hello" SEP "4world"),
      { { EM_OK, EM_EIO_MESSAGE, 0, "hello" }, { EM_OK, EM_EIO_MESSAGE, 0, "world" }, END } },
    { "socket.io connect + event", B("40" SEP "42[\"chat\",\"hi\"]"),
      { { EM_OK, EM_EIO_MESSAGE, 0, "0" }, { EM_OK, EM_EIO_MESSAGE, 0, "2[\"chat\",\"hi\"]" }, END } },
    { "text, binary, pong", B("451-[\"up\",{\"_placeholder\":true,\"num\":0}]" SEP "bAQID" SEP "3"),
      { { EM_OK, EM_EIO_MESSAGE, 0, "51-[\"up\",{\"_placeholder\":true,\"num\":0}]" },
        { EM_OK, EM_EIO_MESSAGE, 1, "AQID" }, { EM_OK, EM_EIO_PONG, 0, "" }, END } },
    { "binary only", B("b/w=="), { { EM_OK, EM_EIO_MESSAGE, 1, "/w==" }, END } },
    { "empty binary", B("b"), { { EM_OK, EM_EIO_MESSAGE, 1, "" }, END } },
    { "two binaries", B("bAA==" SEP "bAAE="),
      { { EM_OK, EM_EIO_MESSAGE, 1, "AA==" }, { EM_OK, EM_EIO_MESSAGE, 1, "AAE=" }, END } },
    { "close", B("1"), { { EM_OK, EM_EIO_CLOSE, 0, "" }, END } },
    { "empty body", B(""), { FAIL } },
    { "only separator", B(SEP), { FAIL } },
    { "leading separator", B(SEP "4a"), { FAIL } },
    { "trailing separator", B("4a" SEP), { { EM_OK, EM_EIO_MESSAGE, 0, "a" }, FAIL } },
    { "empty record", B("4a" SEP SEP "4b"), { { EM_OK, EM_EIO_MESSAGE, 0, "a" }, FAIL } },
    { "unknown type", B("4a" SEP "9b"), { { EM_OK, EM_EIO_MESSAGE, 0, "a" }, FAIL } },
    { "bad base64 char", B("b!!!!"), { FAIL } },
    { "base64url", B("b-_8="), { FAIL } },
    { "bad base64 padding", B("bAQ="), { FAIL } },
    { "base64 one char", B("bA"), { FAIL } },
    { "base64 newline", B("bAQID\n"), { FAIL } },
    { "bad binary after text", B("4x" SEP "bA=B="), { { EM_OK, EM_EIO_MESSAGE, 0, "x" }, FAIL } },
};

START_TEST(test_payload)
{
    const char     *body = payload_cases[_i].body;
    size_t          len = payload_cases[_i].len, pos = 0, s;
    em_eio_packet_t pkt;

    for (s = 0; s < EM_NELEMS(payload_cases[_i].steps); s++) {
        const step_t *st = &payload_cases[_i].steps[s];
        int           rc = em_eio_payload_next(body, len, &pos, &pkt);

        ck_assert_msg(rc == st->rc, "%s: step %zu rc %d, want %d", payload_cases[_i].name, s, rc,
                      st->rc);
        if (rc != EM_OK) {
            break;
        }
        ck_assert_int_eq(pkt.type, st->type);
        ck_assert_int_eq(pkt.binary, st->binary);
        ck_assert_int_eq(pkt.base64, st->binary);
        ck_bytes(pkt.data, st->data, strlen(st->data), payload_cases[_i].name);
        ck_assert(pkt.data.data >= body && pkt.data.data + pkt.data.len <= body + len);
        ck_assert_uint_le(pos, len);
    }
    ck_assert_uint_lt(s, EM_NELEMS(payload_cases[_i].steps));
}
END_TEST

START_TEST(test_payload_end_is_sticky)
{
    em_eio_packet_t pkt;
    size_t          pos = 0;

    ck_assert_int_eq(em_eio_payload_next(B("2"), &pos, &pkt), EM_OK);
    ck_assert_int_eq(em_eio_payload_next(B("2"), &pos, &pkt), EM_DECLINED);
    ck_assert_int_eq(em_eio_payload_next(B("2"), &pos, &pkt), EM_DECLINED);
    pos = 99;
    ck_assert_int_eq(em_eio_payload_next(B("2"), &pos, &pkt), EM_DECLINED);
}
END_TEST

/* A binary record's base64 decodes to the bytes that were encoded. */
START_TEST(test_payload_binary_roundtrip)
{
    unsigned char bytes[256], out[256];
    char          body[1 + 344 + 3];
    size_t        i, n, pos = 0;
    em_eio_packet_t pkt;

    for (i = 0; i < sizeof(bytes); i++) {
        bytes[i] = (unsigned char) (255 - i);
    }
    body[0] = 'b';
    n = 1 + em_eio_b64_encode(bytes, sizeof(bytes), body + 1);
    memcpy(body + n, SEP "6", 2);
    n += 2;

    ck_assert_int_eq(em_eio_payload_next(body, n, &pos, &pkt), EM_OK);
    ck_assert(pkt.binary && pkt.base64);
    ck_assert_int_eq(em_eio_b64_decode(pkt.data.data, pkt.data.len, out, sizeof(out)), 256);
    ck_assert_mem_eq(out, bytes, sizeof(bytes));
    ck_assert_int_eq(em_eio_payload_next(body, n, &pos, &pkt), EM_OK);
    ck_assert_int_eq(pkt.type, EM_EIO_NOOP);
    ck_assert_int_eq(em_eio_payload_next(body, n, &pos, &pkt), EM_DECLINED);
}
END_TEST

/* ---- base64 ------------------------------------------------------------- */

/* RFC 4648 section 10 vectors. */
static const struct {
    const char *plain;
    const char *padded;
    const char *unpadded;
} b64_vectors[] = {
    { "", "", "" },
    { "f", "Zg==", "Zg" },
    { "fo", "Zm8=", "Zm8" },
    { "foo", "Zm9v", "Zm9v" },
    { "foob", "Zm9vYg==", "Zm9vYg" },
    { "fooba", "Zm9vYmE=", "Zm9vYmE" },
    { "foobar", "Zm9vYmFy", "Zm9vYmFy" },
};

START_TEST(test_b64_vectors)
{
    const char   *plain = b64_vectors[_i].plain;
    size_t        n = strlen(plain);
    char          enc[16];
    unsigned char dec[16];

    ck_assert_uint_eq(em_eio_b64_encoded_len(n), strlen(b64_vectors[_i].padded));
    ck_assert_uint_eq(em_eio_b64_encode((const unsigned char *) plain, n, enc),
                      strlen(b64_vectors[_i].padded));
    ck_assert_mem_eq(enc, b64_vectors[_i].padded, strlen(b64_vectors[_i].padded));

    ck_assert_int_eq(em_eio_b64_decode(b64_vectors[_i].padded, strlen(b64_vectors[_i].padded),
                                       dec, sizeof(dec)), (ssize_t) n);
    ck_assert_mem_eq(dec, plain, n);
    ck_assert_int_eq(em_eio_b64_decode(b64_vectors[_i].unpadded,
                                       strlen(b64_vectors[_i].unpadded), dec, sizeof(dec)),
                     (ssize_t) n);
    ck_assert_mem_eq(dec, plain, n);

    /* Exactly enough room is enough; one byte less is not. */
    ck_assert_int_eq(em_eio_b64_decode(b64_vectors[_i].padded, strlen(b64_vectors[_i].padded),
                                       dec, n), (ssize_t) n);
    if (n > 0) {
        ck_assert_int_eq(em_eio_b64_decode(b64_vectors[_i].padded,
                                           strlen(b64_vectors[_i].padded), dec, n - 1), -1);
    }
}
END_TEST

static const struct {
    const char *in;
    size_t      len;
} b64_bad[] = {
    { B("Z") },            /* a lone character encodes no byte */
    { B("Zm9vY") },
    { B("Zg=") },          /* padding that does not complete a group */
    { B("Zg===") },
    { B("Z===") },
    { B("=") },
    { B("==") },
    { B("====") },
    { B("Zm9v=") },
    { B("Zm9v====") },
    { B("Z=g=") },         /* padding in the middle */
    { B("Zg==Zg==") },
    { B("=Zg=") },
    { B("Zh==") },         /* non-zero unused bits */
    { B("Zm9=") },
    { B("Zh") },
    { B("Zm9") },
    { B("Zm 9v") },        /* outside the alphabet */
    { B("Zm9v\n") },
    { B("Zm9v\r\n") },
    { B("Zm-v") },
    { B("Zm_v") },
    { B("Zm9v\0") },
    { B("Zm.v") },
    { B("Zm\xc3\xa9") },
};

START_TEST(test_b64_bad)
{
    unsigned char out[16];

    ck_assert_msg(em_eio_b64_decode(b64_bad[_i].in, b64_bad[_i].len, out, sizeof(out)) == -1,
                  "accepted \"%s\"", b64_bad[_i].in);
}
END_TEST

START_TEST(test_b64_roundtrip)
{
    unsigned char in[97], out[97];
    char          enc[132];
    size_t        n, i, e;
    unsigned      seed = 12345;

    for (n = 0; n < sizeof(in); n++) {
        for (i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = (unsigned char) (seed >> 16);
        }
        e = em_eio_b64_encode(in, n, enc);
        ck_assert_uint_eq(e, em_eio_b64_encoded_len(n));
        ck_assert_int_eq(em_eio_b64_decode(enc, e, out, n), (ssize_t) n);
        ck_assert_mem_eq(out, in, n);
        /* Without its padding too. */
        while (e > 0 && enc[e - 1] == '=') {
            e--;
        }
        ck_assert_int_eq(em_eio_b64_decode(enc, e, out, n), (ssize_t) n);
        ck_assert_mem_eq(out, in, n);
    }
}
END_TEST

START_TEST(test_b64_alphabet)
{
    unsigned char in[48], out[48];
    char          enc[64];
    size_t        i;

    /* These bytes encode to the whole alphabet, in order. */
    ck_assert_int_eq(em_eio_b64_decode(B("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"),
                                       in, sizeof(in)), 48);
    ck_assert_uint_eq(em_eio_b64_encode(in, 48, enc), 64);
    ck_assert_mem_eq(enc, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 64);
    ck_assert_int_eq(em_eio_b64_decode(enc, 64, out, sizeof(out)), 48);
    ck_assert_mem_eq(out, in, 48);

    /* Every byte outside the alphabet is refused in every position. */
    for (i = 0; i < 256; i++) {
        char c = (char) i, t[4] = { 'Q', 'U', 'J', 'D' };

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
            || c == '+' || c == '/')
        {
            continue;
        }
        t[1] = c;
        ck_assert_int_eq(em_eio_b64_decode(t, 4, out, sizeof(out)), -1);
        if (c != '=') {
            t[1] = 'U';
            t[3] = c;
            ck_assert_int_eq(em_eio_b64_decode(t, 4, out, sizeof(out)), -1);
        }
    }
}
END_TEST

START_TEST(test_b64_encoded_len)
{
    ck_assert_uint_eq(em_eio_b64_encoded_len(0), 0);
    ck_assert_uint_eq(em_eio_b64_encoded_len(1), 4);
    ck_assert_uint_eq(em_eio_b64_encoded_len(2), 4);
    ck_assert_uint_eq(em_eio_b64_encoded_len(3), 4);
    ck_assert_uint_eq(em_eio_b64_encoded_len(4), 8);
    ck_assert_uint_eq(em_eio_b64_encoded_len(1000000), 1333336);
}
END_TEST

/* ---- handshake ---------------------------------------------------------- */

START_TEST(test_encode_open)
{
    static const char    want[] =
        "0{\"sid\":\"AbCdEfGhIjKlMnOpQrSt\",\"upgrades\":[\"websocket\"],"
        "\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}";
    em_eio_handshake_t hs = { "AbCdEfGhIjKlMnOpQrSt", 1, 25000, 20000, 1000000 };
    char               out[256];

    ck_assert_int_eq(em_eio_encode_open(&hs, out, sizeof(out)), (ssize_t) strlen(want));
    ck_assert_mem_eq(out, want, strlen(want));

    ck_assert_int_eq(em_eio_encode_open(&hs, out, strlen(want)), -1);
    ck_assert_int_eq(em_eio_encode_open(&hs, out, 10), -1);

    hs.upgrade_websocket = 0;
    hs.ping_interval = 300;
    hs.ping_timeout = 200;
    hs.max_payload = 1;
    ck_assert_int_gt(em_eio_encode_open(&hs, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "0{\"sid\":\"AbCdEfGhIjKlMnOpQrSt\",\"upgrades\":[],"
                          "\"pingInterval\":300,\"pingTimeout\":200,\"maxPayload\":1}");

    hs.sid = "bad\"sid";
    ck_assert_int_eq(em_eio_encode_open(&hs, out, sizeof(out)), -1);
    hs.sid = "bad\\sid";
    ck_assert_int_eq(em_eio_encode_open(&hs, out, sizeof(out)), -1);
    hs.sid = NULL;
    ck_assert_int_eq(em_eio_encode_open(&hs, out, sizeof(out)), -1);
}
END_TEST

static Suite *
eio_suite(void)
{
    Suite *s = suite_create("eio");
    TCase *tc;

    tc = tcase_create("decode");
    tcase_add_loop_test(tc, test_decode, 0, EM_NELEMS(decode_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("payload");
    tcase_add_loop_test(tc, test_payload, 0, EM_NELEMS(payload_cases));
    tcase_add_test(tc, test_payload_end_is_sticky);
    tcase_add_test(tc, test_payload_binary_roundtrip);
    suite_add_tcase(s, tc);

    tc = tcase_create("base64");
    tcase_add_loop_test(tc, test_b64_vectors, 0, EM_NELEMS(b64_vectors));
    tcase_add_loop_test(tc, test_b64_bad, 0, EM_NELEMS(b64_bad));
    tcase_add_test(tc, test_b64_roundtrip);
    tcase_add_test(tc, test_b64_alphabet);
    tcase_add_test(tc, test_b64_encoded_len);
    suite_add_tcase(s, tc);

    tc = tcase_create("open");
    tcase_add_test(tc, test_encode_open);
    suite_add_tcase(s, tc);

    return s;
}

EM_CHECK_MAIN(eio_suite)
