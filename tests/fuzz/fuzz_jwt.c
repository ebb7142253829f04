/*
 * fuzz_jwt.c - libFuzzer harness for em_jwt_verify() (auth/em_jwt.c), the
 * token parser a client reaches before it has joined anything: any bytes
 * as a token, against an HS256 configuration and against one that allows
 * every algorithm (so that RS and ES tokens reach libjwt's parser too).
 * Claims come back only for a verified token, and are an object.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "em_jwt.h"

#define FUZZ_ASSERT(c) do { if (!(c)) { abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char key[] = "a fuzzing secret of thirty-two bytes or more";
    em_conf_jwt_t        cfg[2];

    memset(cfg, 0, sizeof(cfg));
    for (int i = 0; i < 2; i++) {
        cfg[i].key = key;
        cfg[i].key_len = sizeof(key) - 1;
        cfg[i].leeway = 5;
    }
    cfg[0].algs = EM_CONF_JWT_HS256;
    cfg[0].issuer = "emitd";
    cfg[0].audience = "chat";
    cfg[1].algs = 0xff;
    for (int i = 0; i < 2; i++) {
        json_t         *claims = NULL;
        em_jwt_result_t r = em_jwt_verify(&cfg[i], (const char *) data, size, 1700000000, &claims);
        FUZZ_ASSERT((r == EM_JWT_OK) == (claims != NULL));
        FUZZ_ASSERT(claims == NULL || json_is_object(claims));
        json_decref(claims);
    }
    return 0;
}
