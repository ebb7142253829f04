#include <sodium.h>
#include <string.h>

#include "em_sid.h"

static const char em_b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void
em_sid_random(char *out)
{
    unsigned char rnd[EM_SID_LEN];

    randombytes_buf(rnd, sizeof(rnd));
    for (size_t i = 0; i < EM_SID_LEN; i++) {
        out[i] = em_b64url[rnd[i] & 63];
    }
    out[EM_SID_LEN] = '\0';
}

void
em_sid_new(unsigned slot, char *out)
{
    em_sid_random(out);
    out[0] = em_b64url[slot & 63];
}

int
em_sid_slot(const char *sid, size_t len)
{
    const char *p;

    if (len != EM_SID_LEN || sid[0] == '\0') {
        return -1;
    }
    p = memchr(em_b64url, sid[0], 64);
    return p ? (int) (p - em_b64url) : -1;
}
