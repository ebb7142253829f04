/*
 * em_jwt.h - JSON Web Tokens (RFC 7519) verified with libjwt: the signature
 * with the configured key, the algorithm pinned by that key (the token's
 * "alg" must be one the key was configured for: no "none", no HS token
 * checked against an RSA or EC public key), then exp, nbf and iat with a
 * leeway, iss and aud when configured. No libevent: a service under the
 * Socket.IO layer.
 */
#ifndef EM_JWT_H
#define EM_JWT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "em_conf.h"

#define EM_JWT_MAX 8192         /* bytes of a token accepted */

typedef enum {
    EM_JWT_OK = 0,
    EM_JWT_MALFORMED,           /* not three base64url parts of JSON, or too long */
    EM_JWT_ALG,                 /* an algorithm the key is not configured for */
    EM_JWT_SIGNATURE,           /* the signature does not verify */
    EM_JWT_EXPIRED,             /* exp (plus leeway) has passed */
    EM_JWT_NOT_YET,             /* nbf or iat is in the future (beyond the leeway) */
    EM_JWT_CLAIM                /* iss or aud is not the configured one, or a time claim
                                 * is not a number */
} em_jwt_result_t;

/* What is wrong, for logs ("expired", "bad signature", ...). */
const char *em_jwt_result_str(em_jwt_result_t r);

/*
 * Verify token (len bytes, not NUL-terminated) against the namespace's jwt
 * settings at time `now` (seconds since the epoch). On EM_JWT_OK *claims is
 * the token's claims object (a new reference), else NULL.
 */
em_jwt_result_t em_jwt_verify(const em_conf_jwt_t *cfg, const char *token, size_t len,
                              int64_t now, json_t **claims);

#endif
