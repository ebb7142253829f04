/*
 * em_limit.c - rate limits shared by every worker: a fixed window per key,
 * opened by the key's first hit, and an optional block once it is exceeded;
 * when the block ends the key starts a fresh window.
 * Keys are LRU-evicted when the table is full (a key whose window and block
 * are over first: it has nothing left to remember).
 */
#include <string.h>

#include "em_state.h"

/* Any key may go when the table is full: a forgotten key only starts a
 * fresh window, and the LRU order offers the idle ones first. */
static int
em_limit_evictable(const void *v)
{
    (void) v;
    return 1;
}

void
em_limit_hit(em_state_t *st, const char *key, size_t len, uint32_t max, int64_t window,
             int64_t block, int64_t now, em_limit_result_t *r)
{
    em_st_limit_t *l;
    int            created;

    memset(r, 0, sizeof(*r));
    em_state_lock(st, EM_ZONE_COUNTERS);
    l = em_shtab_put((em_shtab_t *) ((char *) st->hdr + st->hdr->limits_off), key, len, &created,
                     em_limit_evictable);
    if (l == NULL) {
        /* A key too long to keep: allow, but it cannot be counted. */
        em_state_unlock(st, EM_ZONE_COUNTERS);
        r->allowed = 1;
        r->remaining = max;
        return;
    }
    if (l->blocked_until > now) {
        r->retry_after = l->blocked_until - now;
        em_state_unlock(st, EM_ZONE_COUNTERS);
        return;
    }
    /* A new key, a window that ended, or a block that ended: start afresh. */
    if (created || now - l->window_start >= window || now < l->window_start
        || l->blocked_until != 0) {
        l->window_start = now;
        l->count = 0;
        l->blocked_until = 0;
    }
    if (l->count < max) {
        l->count++;
        r->allowed = 1;
        r->remaining = max - l->count;
    } else if (block > 0) {
        l->blocked_until = now + block;
        r->retry_after = block;
    } else {
        r->retry_after = l->window_start + window - now;
    }
    em_state_unlock(st, EM_ZONE_COUNTERS);
}

void
em_limit_reset(em_state_t *st, const char *key, size_t len)
{
    em_shtab_t *t;
    void       *v;

    em_state_lock(st, EM_ZONE_COUNTERS);
    t = (em_shtab_t *) ((char *) st->hdr + st->hdr->limits_off);
    if ((v = em_shtab_get(t, key, len)) != NULL) {
        em_shtab_del(t, v);
    }
    em_state_unlock(st, EM_ZONE_COUNTERS);
}
