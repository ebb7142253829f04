/*
 * test_jwt.c - token verification (auth/em_jwt.c): the RFC 7515 A.1 HS256
 * example (its key, its token, its exp), RFC 7519's claims checks with a
 * leeway, a tampered signature, "alg": "none", algorithm confusion (an HS
 * token against a public-key configuration, a token naming an algorithm the
 * key was not configured for), iss and aud, and truncated and garbage
 * tokens. RS and ES tokens made by another implementation (npm
 * jsonwebtoken) are checked end to end (tests/e2e/jwt.test.js).
 */
#include <sodium.h>

#include "em_check.h"
#include "em_jwt.h"

/* RFC 7515, Appendix A.1: the JWS, and the JWK "k" of its HMAC key. */
static const char *const rfc_token =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char *const rfc_k =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
#define RFC_EXP 1300819380

static unsigned char key[64];
static em_conf_jwt_t cfg;

static void
setup(void)
{
    size_t n = 0;

    ck_assert_int_eq(sodium_init() >= 0, 1);
    ck_assert_int_eq(sodium_base642bin(key, sizeof(key), rfc_k, strlen(rfc_k), NULL, &n, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
    ck_assert_uint_eq(n, 64);
    memset(&cfg, 0, sizeof(cfg));
    cfg.key = key;
    cfg.key_len = n;
    cfg.algs = EM_CONF_JWT_HS256;
}

static em_jwt_result_t
verify(const char *tok, int64_t now, json_t **claims)
{
    json_t *c = NULL;
    em_jwt_result_t r = em_jwt_verify(&cfg, tok, strlen(tok), now, &c);

    if (claims != NULL) {
        *claims = c;
    } else {
        json_decref(c);
    }
    ck_assert_msg((r == EM_JWT_OK) == (c != NULL), "claims given with %s", em_jwt_result_str(r));
    return r;
}

START_TEST(test_rfc7515_a1)
{
    json_t *c;

    setup();
    ck_assert_int_eq(verify(rfc_token, RFC_EXP - 1, &c), EM_JWT_OK);
    ck_assert_str_eq(json_string_value(json_object_get(c, "iss")), "joe");
    ck_assert(json_is_true(json_object_get(c, "http://example.com/is_root")));
    json_decref(c);
    /* exp: the token is not accepted on or after it ... */
    ck_assert_int_eq(verify(rfc_token, RFC_EXP, NULL), EM_JWT_EXPIRED);
    /* ... unless within the leeway */
    cfg.leeway = 10;
    ck_assert_int_eq(verify(rfc_token, RFC_EXP + 9, NULL), EM_JWT_OK);
    ck_assert_int_eq(verify(rfc_token, RFC_EXP + 10, NULL), EM_JWT_EXPIRED);
}
END_TEST

START_TEST(test_issuer_and_audience)
{
    setup();
    cfg.issuer = "joe";
    ck_assert_int_eq(verify(rfc_token, RFC_EXP - 1, NULL), EM_JWT_OK);
    cfg.issuer = "jo";
    ck_assert_int_eq(verify(rfc_token, RFC_EXP - 1, NULL), EM_JWT_CLAIM);
    cfg.issuer = NULL;
    cfg.audience = "emitd";            /* the token has no aud */
    ck_assert_int_eq(verify(rfc_token, RFC_EXP - 1, NULL), EM_JWT_CLAIM);
}
END_TEST

START_TEST(test_tampered)
{
    char tok[512];

    setup();
    /* one byte of the signature, of the claims, of the header */
    const size_t at[] = { strlen(rfc_token) - 3, 60, 5 };
    for (size_t i = 0; i < 3; i++) {
        snprintf(tok, sizeof(tok), "%s", rfc_token);
        tok[at[i]] = tok[at[i]] == 'A' ? 'B' : 'A';
        em_jwt_result_t r = verify(tok, RFC_EXP - 1, NULL);
        ck_assert_msg(r == EM_JWT_SIGNATURE || r == EM_JWT_MALFORMED, "byte %zu: %s", at[i],
                      em_jwt_result_str(r));
    }
    /* the wrong key */
    key[0] ^= 1;
    ck_assert_int_eq(verify(rfc_token, RFC_EXP - 1, NULL), EM_JWT_SIGNATURE);
}
END_TEST

START_TEST(test_alg_none_and_confusion)
{
    setup();
    /* {"alg":"none"}.{"iss":"joe"}. with and without a "signature" */
    ck_assert_int_eq(verify("eyJhbGciOiJub25lIn0.eyJpc3MiOiJqb2UifQ.", 0, NULL), EM_JWT_MALFORMED);
    ck_assert_int_eq(verify("eyJhbGciOiJub25lIn0.eyJpc3MiOiJqb2UifQ.c2ln", 0, NULL), EM_JWT_ALG);
    /* the HS256 token against a configuration for RS256 with the same key
     * bytes (as an attacker who signs with the public key's text would) */
    cfg.algs = EM_CONF_JWT_RS256;
    ck_assert_int_eq(verify(rfc_token, RFC_EXP - 1, NULL), EM_JWT_ALG);
    /* an HS algorithm the key was not configured for */
    cfg.algs = EM_CONF_JWT_HS512;
    ck_assert_int_eq(verify(rfc_token, RFC_EXP - 1, NULL), EM_JWT_ALG);
}
END_TEST

START_TEST(test_garbage)
{
    static const char *const bad[] = {
        "", ".", "..", "a.b", "a.b.c.d", "abc", "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9",
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEz",
        "eyJ0eXAi OiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.e30.c2ln", "e30=.e30.c2ln", "e30.e30.c2ln",
        "bm90IGpzb24.e30.c2ln", "W10.e30.c2ln", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln",
    };
    char big[EM_JWT_MAX + 2];

    setup();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        em_jwt_result_t r = verify(bad[i], RFC_EXP - 1, NULL);
        ck_assert_msg(r != EM_JWT_OK, "\"%s\" accepted", bad[i]);
    }
    /* the token cut at every length */
    for (size_t n = 0; n < strlen(rfc_token); n++) {
        json_t *c = NULL;
        ck_assert_int_ne(em_jwt_verify(&cfg, rfc_token, n, RFC_EXP - 1, &c), EM_JWT_OK);
        ck_assert_ptr_null(c);
    }
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[10] = big[20] = '.';
    ck_assert_int_eq(verify(big, 0, NULL), EM_JWT_MALFORMED);
}
END_TEST

static Suite *
jwt_suite(void)
{
    Suite *s = suite_create("jwt");
    TCase *tc = tcase_create("jwt");

    tcase_add_test(tc, test_rfc7515_a1);
    tcase_add_test(tc, test_issuer_and_audience);
    tcase_add_test(tc, test_tampered);
    tcase_add_test(tc, test_alg_none_and_confusion);
    tcase_add_test(tc, test_garbage);
    suite_add_tcase(s, tc);
    return s;
}

EM_CHECK_MAIN(jwt_suite)
