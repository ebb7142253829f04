/*
 * em_jwt.c - verify a JSON Web Token with libjwt, then its claims.
 *
 * libjwt checks the signature with the algorithm the token names, so the
 * algorithm is checked against the configured ones before a token is
 * trusted: a token naming "none", or HS256 when the key is an RSA or EC
 * public key (whose text an attacker knows), is refused whatever libjwt
 * says about it. The header is read here first (libjwt does not say a
 * token's algorithm without verifying it) to refuse such tokens before the
 * key is used; the decoded token's algorithm is checked again after it.
 */
#include <jwt.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "em_core.h"
#include "em_jwt.h"

static const struct {
    unsigned  bit;
    jwt_alg_t alg;
} em_jwt_algs[] = {
    { EM_CONF_JWT_HS256, JWT_ALG_HS256 }, { EM_CONF_JWT_HS384, JWT_ALG_HS384 },
    { EM_CONF_JWT_HS512, JWT_ALG_HS512 }, { EM_CONF_JWT_RS256, JWT_ALG_RS256 },
    { EM_CONF_JWT_RS384, JWT_ALG_RS384 }, { EM_CONF_JWT_RS512, JWT_ALG_RS512 },
    { EM_CONF_JWT_ES256, JWT_ALG_ES256 }, { EM_CONF_JWT_ES384, JWT_ALG_ES384 },
};

const char *
em_jwt_result_str(em_jwt_result_t r)
{
    switch (r) {
    case EM_JWT_OK:        return "valid";
    case EM_JWT_MALFORMED: return "malformed";
    case EM_JWT_ALG:       return "an algorithm the key is not configured for";
    case EM_JWT_SIGNATURE: return "bad signature";
    case EM_JWT_EXPIRED:   return "expired";
    case EM_JWT_NOT_YET:   return "not valid yet";
    case EM_JWT_CLAIM:     return "wrong or malformed claims";
    }
    return "?";
}

/* Whether alg is one of the configured ones. */
static int
em_jwt_alg_ok(const em_conf_jwt_t *cfg, jwt_alg_t alg)
{
    for (size_t i = 0; i < sizeof(em_jwt_algs) / sizeof(em_jwt_algs[0]); i++) {
        if (em_jwt_algs[i].alg == alg) {
            return (cfg->algs & em_jwt_algs[i].bit) != 0;
        }
    }
    return 0;
}

/* A NumericDate claim: absent (EM_DECLINED), a number (EM_OK, in *out), or
 * anything else (EM_ERROR). */
static int
em_jwt_time(json_t *claims, const char *name, int64_t *out)
{
    json_t *v = json_object_get(claims, name);

    if (v == NULL) {
        return EM_DECLINED;
    }
    if (json_is_integer(v)) {
        *out = (int64_t) json_integer_value(v);
        return EM_OK;
    }
    if (json_is_real(v) && json_real_value(v) > -9e15 && json_real_value(v) < 9e15) {
        *out = (int64_t) json_real_value(v);
        return EM_OK;
    }
    return EM_ERROR;
}

static em_jwt_result_t
em_jwt_check_claims(const em_conf_jwt_t *cfg, json_t *claims, int64_t now)
{
    int64_t t;
    int     rc;
    json_t *v;

    if (!json_is_object(claims)) {
        return EM_JWT_MALFORMED;
    }
    if ((rc = em_jwt_time(claims, "exp", &t)) == EM_ERROR) {
        return EM_JWT_CLAIM;
    }
    if (rc == EM_OK && now >= t + (int64_t) cfg->leeway) {
        return EM_JWT_EXPIRED;
    }
    if ((rc = em_jwt_time(claims, "nbf", &t)) == EM_ERROR) {
        return EM_JWT_CLAIM;
    }
    if (rc == EM_OK && now + (int64_t) cfg->leeway < t) {
        return EM_JWT_NOT_YET;
    }
    if ((rc = em_jwt_time(claims, "iat", &t)) == EM_ERROR) {
        return EM_JWT_CLAIM;
    }
    if (rc == EM_OK && now + (int64_t) cfg->leeway < t) {
        return EM_JWT_NOT_YET;
    }
    if (cfg->issuer != NULL) {
        v = json_object_get(claims, "iss");
        if (!json_is_string(v) || strcmp(json_string_value(v), cfg->issuer) != 0) {
            return EM_JWT_CLAIM;
        }
    }
    if (cfg->audience != NULL) {
        int found = 0;
        v = json_object_get(claims, "aud");
        if (json_is_string(v)) {
            found = strcmp(json_string_value(v), cfg->audience) == 0;
        } else if (json_is_array(v)) {
            size_t  i;
            json_t *e;
            json_array_foreach(v, i, e) {
                found |= json_is_string(e) && strcmp(json_string_value(e), cfg->audience) == 0;
            }
        }
        if (!found) {
            return EM_JWT_CLAIM;
        }
    }
    return EM_JWT_OK;
}

/* The "alg" of the header (the first len bytes of the token, base64url):
 * JWT_ALG_INVAL when it is not a JSON object naming a known one. */
static jwt_alg_t
em_jwt_header_alg(const char *b64, size_t len)
{
    unsigned char buf[1024];
    size_t        n = 0;
    json_t       *h, *alg;
    jwt_alg_t     a = JWT_ALG_INVAL;

    if (len == 0 || len > 4 * sizeof(buf) / 3
        || sodium_base642bin(buf, sizeof(buf), b64, len, NULL, &n, NULL,
                             sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
        return JWT_ALG_INVAL;
    }
    h = json_loadb((const char *) buf, n, JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(h) && json_is_string(alg = json_object_get(h, "alg"))) {
        a = jwt_str_alg(json_string_value(alg));
    }
    json_decref(h);
    return a;
}

em_jwt_result_t
em_jwt_verify(const em_conf_jwt_t *cfg, const char *token, size_t len, int64_t now,
              json_t **claims)
{
    char           *text;
    jwt_t          *jwt = NULL;
    em_jwt_result_t r;
    int             dots = 0;

    *claims = NULL;
    if (len == 0 || len > EM_JWT_MAX || memchr(token, '\0', len) != NULL) {
        return EM_JWT_MALFORMED;
    }
    for (size_t i = 0; i < len; i++) {
        char c = token[i];
        if (c == '.') {
            dots++;
        } else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                     || c == '-' || c == '_')) {
            return EM_JWT_MALFORMED;        /* base64url only (no '=', no spaces) */
        }
    }
    if (dots != 2 || token[len - 1] == '.') {
        return EM_JWT_MALFORMED;            /* a signed JWS: three parts, a signature */
    }
    /* The header first: its algorithm must be one the configured key
     * verifies before the key is used at all. */
    jwt_alg_t alg = em_jwt_header_alg(token, (size_t) ((const char *) memchr(token, '.', len) - token));
    if (alg == JWT_ALG_INVAL) {
        return EM_JWT_MALFORMED;
    }
    if (!em_jwt_alg_ok(cfg, alg)) {
        return EM_JWT_ALG;
    }
    if ((text = malloc(len + 1)) == NULL) {
        return EM_JWT_MALFORMED;
    }
    memcpy(text, token, len);
    text[len] = '\0';
    int rc = jwt_decode(&jwt, text, cfg->key, (int) cfg->key_len);
    free(text);
    if (rc != 0 || jwt == NULL) {
        jwt_free(jwt);
        return EM_JWT_SIGNATURE;       /* the parts parsed above: the key refused it */
    }
    if (!em_jwt_alg_ok(cfg, jwt_get_alg(jwt))) {
        jwt_free(jwt);
        return EM_JWT_ALG;
    }
    char *grants = jwt_get_grants_json(jwt, NULL);
    jwt_free(jwt);
    json_t *c = grants != NULL ? json_loads(grants, JSON_REJECT_DUPLICATES, NULL) : NULL;
    free(grants);
    if (c == NULL) {
        return EM_JWT_MALFORMED;
    }
    r = em_jwt_check_claims(cfg, c, now);
    if (r != EM_JWT_OK) {
        json_decref(c);
        return r;
    }
    *claims = c;
    return EM_JWT_OK;
}
