#include <pthread.h>
#include <sodium.h>
#include <string.h>

#include "em_sid.h"

static const char em_b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/*
 * Random bytes for ids come from libsodium in blocks (one getrandom() per
 * dozen ids instead of one per id). The block belongs to the process that
 * drew it: a forked child forgets it (pthread_atfork) and draws its own, so
 * no two processes hand out the same bytes.
 */
static unsigned char em_sid_pool[16 * EM_SID_LEN];
static size_t        em_sid_pool_left;
static int           em_sid_pool_atfork;

/* In a new child: forget the parent's block. */
static void
em_sid_pool_forget(void)
{
    sodium_memzero(em_sid_pool, sizeof(em_sid_pool));
    em_sid_pool_left = 0;
}

void
em_sid_random(char *out)
{
    const unsigned char *rnd;

    if (!em_sid_pool_atfork) {
        em_sid_pool_atfork = pthread_atfork(NULL, NULL, em_sid_pool_forget) == 0;
    }
    if (em_sid_pool_left < EM_SID_LEN || !em_sid_pool_atfork) {
        randombytes_buf(em_sid_pool, sizeof(em_sid_pool));
        em_sid_pool_left = sizeof(em_sid_pool);
    }
    rnd = em_sid_pool + sizeof(em_sid_pool) - em_sid_pool_left;
    for (size_t i = 0; i < EM_SID_LEN; i++) {
        out[i] = em_b64url[rnd[i] & 63];
    }
    sodium_memzero((void *) rnd, EM_SID_LEN);     /* used bytes do not linger */
    em_sid_pool_left -= EM_SID_LEN;
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
