/*
 * test_bench.c - Check tests of emitd-bench's pure parts: the latency
 * histogram (bucketing, quantiles, merging) and the client-side wire
 * parsing (URL, WebSocket frames and upgrade, HTTP response heads, JSON
 * fields), plus the loopback guard.
 */
#include <arpa/inet.h>
#include <check.h>

#include "em_check.h"
#include <stdlib.h>
#include <string.h>

#include "em_bench_hist.h"
#include "em_bench_proto.h"

/* ---- histogram ---------------------------------------------------------- */

START_TEST(test_hist_index_bounds)
{
    /* Every value lands in a bucket whose bounds hold it, and a bucket is
     * never wider than 1/128 of its lowest value past the linear range. */
    static const uint64_t values[] = {
        0, 1, 2, 127, 255, 256, 257, 511, 512, 513, 1000, 1023, 1024, 99999,
        1000000, 123456789, (UINT64_C(1) << 40) - 1, UINT64_C(1) << 40,
        (UINT64_C(1) << 41) - 1
    };
    unsigned i;

    for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        unsigned idx = em_bench_hist_index(values[i]);
        uint64_t lo = em_bench_hist_bucket_low(idx), hi = em_bench_hist_bucket_high(idx);

        ck_assert_uint_lt(idx, EM_BENCH_HIST_BUCKETS);
        ck_assert_uint_le(lo, values[i]);
        ck_assert_uint_ge(hi, values[i]);
        if (lo >= 256) {
            ck_assert_uint_le((hi - lo + 1) * 128, lo);
        } else {
            ck_assert_uint_eq(lo, hi);
        }
    }
    ck_assert_uint_eq(em_bench_hist_index(UINT64_MAX), EM_BENCH_HIST_BUCKETS - 1);
}
END_TEST

START_TEST(test_hist_index_monotonic)
{
    /* Buckets are contiguous: bucket i + 1 starts right after bucket i. */
    unsigned i;

    for (i = 0; i + 1 < EM_BENCH_HIST_BUCKETS; i++) {
        ck_assert_uint_eq(em_bench_hist_bucket_high(i) + 1, em_bench_hist_bucket_low(i + 1));
        ck_assert_uint_eq(em_bench_hist_index(em_bench_hist_bucket_low(i)), i);
        ck_assert_uint_eq(em_bench_hist_index(em_bench_hist_bucket_high(i)), i);
    }
}
END_TEST

START_TEST(test_hist_quantiles_uniform)
{
    em_bench_hist_t *h = malloc(sizeof(*h));
    static const struct { double q; uint64_t expect; } rows[] = {
        { 0.5, 5000 }, { 0.9, 9000 }, { 0.99, 9900 }, { 0.999, 9990 }, { 1.0, 10000 },
    };
    uint64_t v;
    unsigned i;

    em_bench_hist_init(h);
    ck_assert_uint_eq(em_bench_hist_quantile(h, 0.5), 0);
    for (v = 1; v <= 10000; v++) {
        em_bench_hist_record(h, v);
    }
    ck_assert_uint_eq(h->count, 10000);
    ck_assert_uint_eq(h->min, 1);
    ck_assert_uint_eq(h->max, 10000);
    ck_assert(em_bench_hist_mean(h) > 5000.4 && em_bench_hist_mean(h) < 5000.6);
    ck_assert(em_bench_hist_stdev(h) > 2870 && em_bench_hist_stdev(h) < 2905);
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint64_t got = em_bench_hist_quantile(h, rows[i].q);

        /* Within a bucket's width (< 1/128) above the exact value. */
        ck_assert_uint_ge(got, rows[i].expect);
        ck_assert_uint_le(got, rows[i].expect + rows[i].expect / 128 + 1);
    }
    free(h);
}
END_TEST

START_TEST(test_hist_small_exact)
{
    em_bench_hist_t *h = malloc(sizeof(*h));

    em_bench_hist_init(h);
    em_bench_hist_record(h, 7);
    em_bench_hist_record(h, 7);
    em_bench_hist_record(h, 200);
    ck_assert_uint_eq(em_bench_hist_quantile(h, 0.5), 7);
    ck_assert_uint_eq(em_bench_hist_quantile(h, 0.67), 200);
    ck_assert_uint_eq(em_bench_hist_quantile(h, 0.999), 200);
    ck_assert_uint_eq(em_bench_hist_quantile(h, 1.0), 200);
    ck_assert_uint_eq(em_bench_hist_quantile(h, 0.0), 7);
    free(h);
}
END_TEST

START_TEST(test_hist_quantile_clamped_to_max)
{
    em_bench_hist_t *h = malloc(sizeof(*h));

    em_bench_hist_init(h);
    em_bench_hist_record(h, 1000001);             /* bucket reaches past it */
    ck_assert_uint_eq(em_bench_hist_quantile(h, 0.5), 1000001);
    em_bench_hist_record(h, UINT64_MAX);          /* clamped, not lost */
    ck_assert_uint_eq(h->count, 2);
    ck_assert_uint_eq(h->max, (UINT64_C(1) << 41) - 1);
    free(h);
}
END_TEST

START_TEST(test_hist_merge)
{
    em_bench_hist_t *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b)), *all = malloc(sizeof(*all));
    uint64_t         v;

    em_bench_hist_init(a);
    em_bench_hist_init(b);
    em_bench_hist_init(all);
    for (v = 0; v < 5000; v++) {
        uint64_t x = (v * 7919) % 100000;

        em_bench_hist_record(v % 2 ? a : b, x);
        em_bench_hist_record(all, x);
    }
    em_bench_hist_merge(a, b);
    ck_assert_uint_eq(a->count, all->count);
    ck_assert_uint_eq(a->sum, all->sum);
    ck_assert_uint_eq(a->min, all->min);
    ck_assert_uint_eq(a->max, all->max);
    ck_assert_int_eq(memcmp(a->buckets, all->buckets, sizeof(a->buckets)), 0);
    ck_assert_uint_eq(em_bench_hist_quantile(a, 0.999), em_bench_hist_quantile(all, 0.999));

    em_bench_hist_init(b);                         /* merging an empty one */
    em_bench_hist_merge(a, b);
    ck_assert_uint_eq(a->count, all->count);
    ck_assert_uint_eq(a->min, all->min);
    free(a);
    free(b);
    free(all);
}
END_TEST

/* ---- URL and loopback guard ---------------------------------------------- */

static const struct {
    const char *url;
    int         rc;
    const char *host, *port, *path;
} url_rows[] = {
    { "ws://127.0.0.1:3000", EM_OK, "127.0.0.1", "3000", "/socket.io/" },
    { "ws://127.0.0.1:3000/", EM_OK, "127.0.0.1", "3000", "/socket.io/" },
    { "http://localhost", EM_OK, "localhost", "80", "/socket.io/" },
    { "ws://[::1]:8080/realtime", EM_OK, "::1", "8080", "/realtime/" },
    { "ws://127.0.0.1:3000/ws/?x=1", EM_OK, "127.0.0.1", "3000", "/ws/" },
    { "wss://127.0.0.1:3000", EM_ERROR, NULL, NULL, NULL },
    { "127.0.0.1:3000", EM_ERROR, NULL, NULL, NULL },
    { "ws://:3000", EM_ERROR, NULL, NULL, NULL },
    { "ws://127.0.0.1:", EM_ERROR, NULL, NULL, NULL },
    { "ws://127.0.0.1:70000", EM_ERROR, NULL, NULL, NULL },
    { "ws://127.0.0.1:30x", EM_ERROR, NULL, NULL, NULL },
    { "ws://[::1:3000", EM_ERROR, NULL, NULL, NULL },
};

START_TEST(test_url_parse)
{
    em_bench_url_t u;
    int            rc = em_bench_url_parse(url_rows[_i].url, &u);

    ck_assert_msg(rc == url_rows[_i].rc, "%s", url_rows[_i].url);
    if (rc == EM_OK) {
        ck_assert_str_eq(u.host, url_rows[_i].host);
        ck_assert_str_eq(u.port, url_rows[_i].port);
        ck_assert_str_eq(u.path, url_rows[_i].path);
    }
}
END_TEST

static const struct {
    int         family;
    const char *addr;
    int         loopback;
} lo_rows[] = {
    { AF_INET, "127.0.0.1", 1 },
    { AF_INET, "127.0.0.42", 1 },
    { AF_INET, "127.255.255.254", 1 },
    { AF_INET, "10.0.0.1", 0 },
    { AF_INET, "128.0.0.1", 0 },
    { AF_INET, "0.0.0.0", 0 },
    { AF_INET6, "::1", 1 },
    { AF_INET6, "::ffff:127.0.0.1", 1 },
    { AF_INET6, "::ffff:10.0.0.1", 0 },
    { AF_INET6, "2001:db8::1", 0 },
    { AF_INET6, "::", 0 },
};

START_TEST(test_loopback)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    ss.ss_family = (sa_family_t) lo_rows[_i].family;
    if (lo_rows[_i].family == AF_INET) {
        ck_assert_int_eq(inet_pton(AF_INET, lo_rows[_i].addr,
                                   &((struct sockaddr_in *) &ss)->sin_addr), 1);
    } else {
        ck_assert_int_eq(inet_pton(AF_INET6, lo_rows[_i].addr,
                                   &((struct sockaddr_in6 *) &ss)->sin6_addr), 1);
    }
    ck_assert_msg(em_bench_addr_is_loopback((struct sockaddr *) &ss) == lo_rows[_i].loopback,
                  "%s", lo_rows[_i].addr);
}
END_TEST

/* ---- WebSocket frames ---------------------------------------------------- */

static const struct {
    const char *bytes;
    size_t      len;
    int         rc;
    unsigned    fin, opcode;
    size_t      header_len;
    uint64_t    payload_len;
} frame_rows[] = {
    { "\x81\x05hello", 7, EM_OK, 1, 0x1, 2, 5 },
    { "\x82\x00", 2, EM_OK, 1, 0x2, 2, 0 },
    { "\x01\x03" "abc", 5, EM_OK, 0, 0x1, 2, 3 },
    { "\x80\x03" "abc", 5, EM_OK, 1, 0x0, 2, 3 },
    { "\x89\x00", 2, EM_OK, 1, 0x9, 2, 0 },
    { "\x81\x7e\x01\x00", 4, EM_OK, 1, 0x1, 4, 256 },
    { "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10, EM_OK, 1, 0x1, 10, 65536 },
    { "\x81", 1, EM_AGAIN, 0, 0, 0, 0 },
    { "\x81\x7e\x01", 3, EM_AGAIN, 0, 0, 0, 0 },
    { "\x81\x7f\x00\x00\x00", 5, EM_AGAIN, 0, 0, 0, 0 },
    { "\x81\x85", 2, EM_ERROR, 0, 0, 0, 0 },                 /* masked */
    { "\xc1\x00", 2, EM_ERROR, 0, 0, 0, 0 },                 /* RSV1 */
    { "\x83\x00", 2, EM_ERROR, 0, 0, 0, 0 },                 /* opcode 3 */
    { "\x8b\x00", 2, EM_ERROR, 0, 0, 0, 0 },                 /* opcode 0xb */
    { "\x09\x00", 2, EM_ERROR, 0, 0, 0, 0 },                 /* fragmented ping */
    { "\x88\x7e\x00\x80", 4, EM_ERROR, 0, 0, 0, 0 },         /* long close */
    { "\x81\x7e\x00\x05", 4, EM_ERROR, 0, 0, 0, 0 },         /* non-minimal */
    { "\x81\x7f\x00\x00\x00\x00\x00\x00\x00\x10", 10, EM_ERROR, 0, 0, 0, 0 },
    { "\x81\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 10, EM_ERROR, 0, 0, 0, 0 },
};

START_TEST(test_ws_parse_header)
{
    em_bench_ws_frame_t f;
    int rc = em_bench_ws_parse_header((const unsigned char *) frame_rows[_i].bytes,
                                      frame_rows[_i].len, &f);

    ck_assert_int_eq(rc, frame_rows[_i].rc);
    if (rc == EM_OK) {
        ck_assert_uint_eq(f.fin, frame_rows[_i].fin);
        ck_assert_uint_eq(f.opcode, frame_rows[_i].opcode);
        ck_assert_uint_eq(f.header_len, frame_rows[_i].header_len);
        ck_assert_uint_eq(f.payload_len, frame_rows[_i].payload_len);
    }
}
END_TEST

START_TEST(test_ws_encode_mask)
{
    static const uint64_t lens[] = { 0, 5, 125, 126, 65535, 65536, 100000 };
    const unsigned char   mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
    unsigned char         hdr[EM_WS_MAX_HEADER];
    unsigned              i;

    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t   hl = em_bench_ws_encode_header(0x1, lens[i], mask, hdr), k;
        uint64_t n = 0;

        ck_assert_uint_eq(hdr[0], 0x81);
        ck_assert(hdr[1] & 0x80);
        if (lens[i] < 126) {
            ck_assert_uint_eq(hl, 6);
            n = hdr[1] & 0x7f;
        } else if (lens[i] <= 0xffff) {
            ck_assert_uint_eq(hl, 8);
            n = ((uint64_t) hdr[2] << 8) | hdr[3];
        } else {
            ck_assert_uint_eq(hl, 14);
            for (k = 2; k < 10; k++) {
                n = (n << 8) | hdr[k];
            }
        }
        ck_assert_uint_eq(n, lens[i]);
        ck_assert_int_eq(memcmp(hdr + hl - 4, mask, 4), 0);
    }

    /* RFC 6455 section 5.7: "Hello" masked with 37 fa 21 3d. */
    {
        unsigned char buf[6] = "Hello";

        em_bench_ws_mask(buf, 5, mask, 0);
        ck_assert_int_eq(memcmp(buf, "\x7f\x9f\x4d\x51\x58", 5), 0);
        em_bench_ws_mask(buf, 2, mask, 0);
        em_bench_ws_mask(buf + 2, 3, mask, 2);   /* in two pieces */
        ck_assert_int_eq(memcmp(buf, "Hello", 5), 0);
    }
}
END_TEST

START_TEST(test_ws_accept)
{
    char out[29];

    /* RFC 6455 section 1.3's example. */
    em_bench_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out);
    ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
END_TEST

static const struct {
    const char *head;
    int         rc;
} upgrade_rows[] = {
    { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzGcZRbK+xOo=\r\n\r\n", EM_OK },
    { "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n"
      "sec-websocket-accept:  s3pPLMBiTxaQ9kYGzGcZRbK+xOo=  \r\n\r\n", EM_OK },
    { "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", EM_ERROR },
    { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n", EM_ERROR },
    { "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzGcZRbK+xOo=\r\n\r\n", EM_ERROR },
    { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzGcZRbK+xOo=\r\n\r\n", EM_ERROR },
    { "garbage\r\n\r\n", EM_ERROR },
};

START_TEST(test_ws_check_upgrade)
{
    const char *h = upgrade_rows[_i].head;

    ck_assert_int_eq(em_bench_ws_check_upgrade(h, strlen(h), "s3pPLMBiTxaQ9kYGzGcZRbK+xOo="),
                     upgrade_rows[_i].rc);
}
END_TEST

/* ---- HTTP response heads (polling) --------------------------------------- */

static const struct {
    const char *head;
    int         rc, status;
    int64_t     length;
    unsigned    chunked, close;
} resp_rows[] = {
    { "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", EM_OK, 200, 2, 0, 0 },
    { "HTTP/1.1 200 OK\r\ncontent-length:  123 \r\nConnection: close\r\n\r\n", EM_OK, 200, 123, 0, 1 },
    { "HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n", EM_OK, 400, -1, 1, 0 },
    { "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", EM_OK, 200, 0, 0, 1 },
    { "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", EM_ERROR, 0, 0, 0, 0 },
    { "HTTP/1.1 2x0 OK\r\n\r\n", EM_ERROR, 0, 0, 0, 0 },
    { "HTTP/2 200\r\n\r\n", EM_ERROR, 0, 0, 0, 0 },
    { "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999\r\n\r\n", EM_ERROR, 0, 0, 0, 0 },
};

START_TEST(test_http_response)
{
    em_bench_http_resp_t r;
    const char          *h = resp_rows[_i].head;
    int                  rc = em_bench_http_parse_response(h, strlen(h), &r);

    ck_assert_msg(rc == resp_rows[_i].rc, "%s", h);
    if (rc == EM_OK) {
        ck_assert_int_eq(r.status, resp_rows[_i].status);
        ck_assert_int_eq(r.content_length, resp_rows[_i].length);
        ck_assert_uint_eq(r.chunked, resp_rows[_i].chunked);
        ck_assert_uint_eq(r.close, resp_rows[_i].close);
    }
}
END_TEST

/* ---- JSON fields --------------------------------------------------------- */

static const struct {
    const char *json, *key;
    int         rc;
    int64_t     value;
} int_rows[] = {
    { "[\"tick\",{\"t\":1234567,\"n\":3,\"p\":\"xx\"}]", "t", EM_OK, 1234567 },
    { "[\"tick\",{\"p\":\"xx\",\"n\":3,\"t\": 42}]", "t", EM_OK, 42 },
    { "[\"tick\",{\"n\":-3}]", "n", EM_OK, -3 },
    { "[\"tick\",{\"n\":3}]", "t", EM_DECLINED, 0 },
    { "[\"tick\",{\"t\":1.5}]", "t", EM_DECLINED, 0 },
    { "[\"tick\",{\"t\":\"5\"}]", "t", EM_DECLINED, 0 },
    { "[\"tick\",{\"t\":1234567890123456789}]", "t", EM_DECLINED, 0 },
    { "{\"t\"}", "t", EM_DECLINED, 0 },
};

START_TEST(test_json_int)
{
    int64_t v = 0;
    int     rc = em_bench_json_int(int_rows[_i].json, strlen(int_rows[_i].json),
                                   int_rows[_i].key, &v);

    ck_assert_msg(rc == int_rows[_i].rc, "%s", int_rows[_i].json);
    if (rc == EM_OK) {
        ck_assert_int_eq(v, int_rows[_i].value);
    }
}
END_TEST

START_TEST(test_json_str)
{
    static const char open[] =
        "{\"sid\":\"AbC-123_x\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000}";
    char out[32], small[4];

    ck_assert_int_eq(em_bench_json_str(open, strlen(open), "sid", out, sizeof(out)), EM_OK);
    ck_assert_str_eq(out, "AbC-123_x");
    ck_assert_int_eq(em_bench_json_str(open, strlen(open), "sid", small, sizeof(small)), EM_ERROR);
    ck_assert_int_eq(em_bench_json_str(open, strlen(open), "pingInterval", out, sizeof(out)),
                     EM_DECLINED);
    ck_assert_int_eq(em_bench_json_str(open, strlen(open), "nope", out, sizeof(out)), EM_DECLINED);
    ck_assert_int_eq(em_bench_json_str("{\"sid\":\"a\\\"b\"}", 13, "sid", out, sizeof(out)),
                     EM_DECLINED);
    ck_assert_int_eq(em_bench_json_str("{\"sid\":\"abc", 11, "sid", out, sizeof(out)),
                     EM_DECLINED);
}
END_TEST

static Suite *
bench_suite(void)
{
    Suite *s = suite_create("bench");
    TCase *tc;

    tc = tcase_create("hist");
    tcase_add_test(tc, test_hist_index_bounds);
    tcase_add_test(tc, test_hist_index_monotonic);
    tcase_add_test(tc, test_hist_quantiles_uniform);
    tcase_add_test(tc, test_hist_small_exact);
    tcase_add_test(tc, test_hist_quantile_clamped_to_max);
    tcase_add_test(tc, test_hist_merge);
    suite_add_tcase(s, tc);

    tc = tcase_create("proto");
    tcase_add_loop_test(tc, test_url_parse, 0, sizeof(url_rows) / sizeof(url_rows[0]));
    tcase_add_loop_test(tc, test_loopback, 0, sizeof(lo_rows) / sizeof(lo_rows[0]));
    tcase_add_loop_test(tc, test_ws_parse_header, 0, sizeof(frame_rows) / sizeof(frame_rows[0]));
    tcase_add_test(tc, test_ws_encode_mask);
    tcase_add_test(tc, test_ws_accept);
    tcase_add_loop_test(tc, test_ws_check_upgrade, 0,
                        sizeof(upgrade_rows) / sizeof(upgrade_rows[0]));
    tcase_add_loop_test(tc, test_http_response, 0, sizeof(resp_rows) / sizeof(resp_rows[0]));
    tcase_add_loop_test(tc, test_json_int, 0, sizeof(int_rows) / sizeof(int_rows[0]));
    tcase_add_test(tc, test_json_str);
    suite_add_tcase(s, tc);
    return s;
}

EM_CHECK_MAIN(bench_suite)
