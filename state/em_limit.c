/*
 * em_limit.c - rate limits shared by every worker: a fixed window per key,
 * opened by the key's first hit, and an optional block once it is exceeded;
 * when the block ends the key starts a fresh window.
 * Keys are LRU-evicted when the table is full (a key whose window and block
 * are over first: it has nothing left to remember).
 *
 * With Redis, the broker adds the other hosts' hits and blocks of each key
 * (em_limit_remote_set): a hit counts them while their window lasts.
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

static em_shtab_t *
em_limits(em_state_t *st)
{
    return (em_shtab_t *) ((char *) st->hdr + st->hdr->limits_off);
}

void
em_limit_hit(em_state_t *st, const char *key, size_t len, uint32_t max, int64_t window,
             int64_t block, int64_t now, em_limit_result_t *r)
{
    em_st_limit_t *l;
    int            created;

    memset(r, 0, sizeof(*r));
    em_state_lock(st, EM_ZONE_COUNTERS);
    l = em_shtab_put(em_limits(st), key, len, &created, em_limit_evictable);
    if (l == NULL) {
        /* A key too long to keep: allow, but it cannot be counted. */
        em_state_unlock(st, EM_ZONE_COUNTERS);
        r->allowed = 1;
        r->remaining = max;
        return;
    }
    if (l->blocked_until > now || l->remote_blocked > now) {
        r->retry_after = EM_MAX(l->blocked_until, l->remote_blocked) - now;
        em_state_unlock(st, EM_ZONE_COUNTERS);
        return;
    }
    /* A new key (or one only other hosts hit), a window that ended, or a
     * block that ended: start afresh. */
    if (created || l->count == 0 || now - l->window_start >= window || now < l->window_start
        || l->blocked_until != 0) {
        l->window_start = now;
        l->count = 0;
        l->blocked_until = 0;
    }
    l->window = window;
    uint64_t others = l->remote_until > now ? l->remote : 0;
    if (l->count + others < max) {
        l->count++;
        r->allowed = 1;
        r->remaining = (uint32_t) (max - l->count - others);
    } else if (block > 0) {
        l->blocked_until = now + block;
        r->retry_after = block;
    } else {
        /* the first of this host's window and the others' to end */
        int64_t end = l->window_start + window;
        r->retry_after = (others > 0 && l->remote_until < end ? l->remote_until : end) - now;
    }
    em_state_unlock(st, EM_ZONE_COUNTERS);
}

void
em_limit_reset(em_state_t *st, const char *key, size_t len)
{
    em_shtab_t *t;
    void       *v;

    em_state_lock(st, EM_ZONE_COUNTERS);
    t = em_limits(st);
    if ((v = em_shtab_get(t, key, len)) != NULL) {
        em_shtab_del(t, v);
    }
    em_state_unlock(st, EM_ZONE_COUNTERS);
}

void
em_limit_local_each(em_state_t *st, int64_t now, void (*fn)(const em_lrec_t *r, void *arg),
                    void *arg)
{
    em_shtab_t    *t;
    em_st_limit_t *l;
    uint32_t       it = 0;
    em_lrec_t      r;

    em_state_lock(st, EM_ZONE_COUNTERS);
    t = em_limits(st);
    while ((l = em_shtab_next(t, &it)) != NULL) {
        int open = l->count > 0 && now >= l->window_start && now - l->window_start < l->window;
        if (!open && l->blocked_until <= now) {
            continue;
        }
        r.key.data = em_shtab_key(t, l, &r.key.len);
        r.count = open ? l->count : 0;
        r.until = open ? l->window_start + l->window : 0;
        r.blocked = l->blocked_until > now ? l->blocked_until : 0;
        fn(&r, arg);
    }
    em_state_unlock(st, EM_ZONE_COUNTERS);
}

int
em_limit_remote_set(em_state_t *st, const em_lrec_t *r)
{
    em_st_limit_t *l;
    int            created;

    em_state_lock(st, EM_ZONE_COUNTERS);
    l = r->count > 0 || r->blocked > 0
            ? em_shtab_put(em_limits(st), r->key.data, r->key.len, &created, em_limit_evictable)
            : em_shtab_get(em_limits(st), r->key.data, r->key.len);
    if (l != NULL) {
        l->remote = r->count;
        l->remote_until = r->until;
        l->remote_blocked = r->blocked;
    }
    em_state_unlock(st, EM_ZONE_COUNTERS);
    return l != NULL || (r->count == 0 && r->blocked == 0) ? EM_OK : EM_ERROR;
}

void
em_limit_remote_clear(em_state_t *st)
{
    em_st_limit_t *l;
    uint32_t       it = 0;

    em_state_lock(st, EM_ZONE_COUNTERS);
    while ((l = em_shtab_next(em_limits(st), &it)) != NULL) {
        l->remote = 0;
        l->remote_until = l->remote_blocked = 0;
    }
    em_state_unlock(st, EM_ZONE_COUNTERS);
}
