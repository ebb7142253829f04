/*
 * em_store.c - the scripts' key/value store and lists, in the state
 * segment's store zone (em_st_kv_t in em_state-t.h): the same for every
 * worker, bounded by its entries, the least recently used dropped first to
 * make room (counted), and rebuilt from its entries if a process dies
 * holding the zone's lock. Expired keys are dropped when met.
 */
#include <stdio.h>
#include <string.h>

#include "em_state.h"

static em_shtab_t *
em_kv_tab(em_state_t *st)
{
    return (em_shtab_t *) ((char *) st->hdr + st->hdr->store_off);
}

static int
em_kv_any(const void *value)
{
    (void) value;
    return 1;               /* every entry may go when the store is full */
}

/* The table key of a script's key ('k' + key). */
static size_t
em_kv_key(char *buf, em_str_t key)
{
    buf[0] = 'k';
    memcpy(buf + 1, key.data, key.len);
    return key.len + 1;
}

/* The table key of item n of the list under key ('i' + key + NUL + n). */
static size_t
em_kv_item_key(char *buf, em_str_t key, int64_t n)
{
    buf[0] = 'i';
    memcpy(buf + 1, key.data, key.len);
    buf[key.len + 1] = '\0';
    memcpy(buf + key.len + 2, &n, 8);
    return key.len + 10;
}

_Static_assert(EM_ST_KV_KEY_MAX + 10 <= EM_ST_KV_TABKEY, "item keys fit the table's keys");

/* Drop a list's items (lock held). */
static void
em_kv_drop_items(em_shtab_t *t, em_str_t key, const em_st_kv_t *head)
{
    char k[EM_ST_KV_TABKEY];

    for (uint32_t i = 0; i < head->count; i++) {
        em_st_kv_t *it = em_shtab_get(t, k, em_kv_item_key(k, key, head->num + i));
        if (it != NULL) {
            em_shtab_del(t, it);
        }
    }
}

/* The live entry of a script's key, or NULL (an expired one is dropped). */
static em_st_kv_t *
em_kv_find(em_shtab_t *t, em_str_t key, int64_t now)
{
    char        k[EM_ST_KV_TABKEY];
    em_st_kv_t *v = em_shtab_get(t, k, em_kv_key(k, key));

    if (v != NULL && v->expires != 0 && v->expires <= now) {
        if (v->kind == EM_ST_KV_LIST) {
            em_st_kv_t head = *v;
            em_shtab_del(t, v);
            em_kv_drop_items(t, key, &head);
        } else {
            em_shtab_del(t, v);
        }
        return NULL;
    }
    return v;
}

static int
em_kv_fail(int *why, int what)
{
    if (why != NULL) {
        *why = what;
    }
    return EM_ERROR;
}

int
em_kv_get(em_state_t *st, em_str_t key, int64_t now, char *out, size_t cap, size_t *len)
{
    em_st_kv_t *v;
    int         rc = EM_DECLINED;

    if (key.len > EM_ST_KV_KEY_MAX) {
        return EM_DECLINED;
    }
    em_state_lock(st, EM_ZONE_STORE);
    v = em_kv_find(em_kv_tab(st), key, now);
    if (v != NULL && v->kind == EM_ST_KV_INT) {
        int n = snprintf(out, cap, "%lld", (long long) v->num);
        *len = (size_t) n < cap ? (size_t) n : 0;
        rc = EM_OK;
    } else if (v != NULL && v->kind == EM_ST_KV_VALUE && v->len <= EM_ST_KV_VALUE_MAX && v->len <= cap) {
        memcpy(out, v->data, v->len);
        *len = v->len;
        rc = EM_OK;
    }
    em_state_unlock(st, EM_ZONE_STORE);
    return rc;
}

/* A set; unless force, not over a value set after *written. A forced one
 * (this host's) is written after the value it replaces, whatever the
 * clocks say: *written is set to the time it holds. */
static int
em_kv_write(em_state_t *st, em_str_t key, em_str_t value, int64_t ttl, int64_t now,
            int64_t *written, int force, int *why)
{
    char        k[EM_ST_KV_TABKEY];
    em_shtab_t *t;
    em_st_kv_t *v;
    int         created;

    if (key.len > EM_ST_KV_KEY_MAX || value.len > EM_ST_KV_VALUE_MAX) {
        return em_kv_fail(why, EM_KV_TOO_LONG);
    }
    em_state_lock(st, EM_ZONE_STORE);
    t = em_kv_tab(st);
    v = em_kv_find(t, key, now);
    if (!force && v != NULL && v->kind == EM_ST_KV_VALUE && v->written > *written) {
        em_state_unlock(st, EM_ZONE_STORE);
        return EM_DECLINED;
    }
    if (force && v != NULL && v->kind == EM_ST_KV_VALUE && v->written >= *written) {
        *written = v->written + 1;
    }
    if (v != NULL && v->kind == EM_ST_KV_LIST) {
        em_st_kv_t head = *v;
        em_shtab_del(t, v);
        em_kv_drop_items(t, key, &head);        /* a value replaces a list */
    }
    v = em_shtab_put(t, k, em_kv_key(k, key), &created, em_kv_any);
    if (v == NULL) {
        em_state_unlock(st, EM_ZONE_STORE);
        return em_kv_fail(why, EM_KV_FULL);
    }
    v->kind = EM_ST_KV_VALUE;
    v->expires = ttl > 0 ? now + ttl : 0;
    v->written = *written;
    v->len = (uint32_t) value.len;
    memcpy(v->data, value.data, value.len);
    em_state_unlock(st, EM_ZONE_STORE);
    return EM_OK;
}

int
em_kv_set(em_state_t *st, em_str_t key, em_str_t value, int64_t ttl, int64_t now, int *why)
{
    int64_t written = now;

    return em_kv_write(st, key, value, ttl, now, &written, 1, why);
}

int
em_kv_set_w(em_state_t *st, em_str_t key, em_str_t value, int64_t ttl, int64_t now,
            int64_t *written, int *why)
{
    *written = now;
    return em_kv_write(st, key, value, ttl, now, written, 1, why);
}

int
em_kv_set_at(em_state_t *st, em_str_t key, em_str_t value, int64_t ttl, int64_t now,
             int64_t written, int *why)
{
    return em_kv_write(st, key, value, ttl, now, &written, 0, why);
}

int
em_kv_incr(em_state_t *st, em_str_t key, int64_t by, int64_t ttl, int64_t now, int64_t *out, int *why)
{
    char        k[EM_ST_KV_TABKEY];
    em_shtab_t *t;
    em_st_kv_t *v;
    int         created;

    if (key.len > EM_ST_KV_KEY_MAX) {
        return em_kv_fail(why, EM_KV_TOO_LONG);
    }
    em_state_lock(st, EM_ZONE_STORE);
    t = em_kv_tab(st);
    v = em_kv_find(t, key, now);
    if (v != NULL && v->kind != EM_ST_KV_INT) {
        em_state_unlock(st, EM_ZONE_STORE);
        return em_kv_fail(why, EM_KV_NOT_INT);
    }
    v = em_shtab_put(t, k, em_kv_key(k, key), &created, em_kv_any);
    if (v == NULL) {
        em_state_unlock(st, EM_ZONE_STORE);
        return em_kv_fail(why, EM_KV_FULL);
    }
    if (created) {
        v->kind = EM_ST_KV_INT;
    }
    /* Wraps like two's complement rather than overflow (undefined). */
    v->num = (int64_t) ((uint64_t) v->num + (uint64_t) by);
    if (ttl > 0) {
        v->expires = now + ttl;
    }
    *out = v->num;
    em_state_unlock(st, EM_ZONE_STORE);
    return EM_OK;
}

/* A delete; unless force, not of a value set after *written (a forced one
 * is after it: *written says when). 1 if it was there, 0 if not, -1 if it
 * was kept. */
static int
em_kv_remove(em_state_t *st, em_str_t key, int64_t now, int64_t *written, int force)
{
    em_shtab_t *t;
    em_st_kv_t *v;
    int         had = 0;

    if (key.len > EM_ST_KV_KEY_MAX) {
        return 0;
    }
    em_state_lock(st, EM_ZONE_STORE);
    t = em_kv_tab(st);
    v = em_kv_find(t, key, now);
    if (!force && v != NULL && v->kind == EM_ST_KV_VALUE && v->written > *written) {
        had = -1;
    } else if (v != NULL) {
        if (force && v->kind == EM_ST_KV_VALUE && v->written >= *written) {
            *written = v->written + 1;
        }
        em_st_kv_t head = *v;
        em_shtab_del(t, v);
        if (head.kind == EM_ST_KV_LIST) {
            em_kv_drop_items(t, key, &head);
        }
        had = 1;
    }
    em_state_unlock(st, EM_ZONE_STORE);
    return had;
}

int
em_kv_del(em_state_t *st, em_str_t key, int64_t now)
{
    int64_t written = now;

    return em_kv_remove(st, key, now, &written, 1);
}

int
em_kv_del_w(em_state_t *st, em_str_t key, int64_t now, int64_t *written)
{
    *written = now;
    return em_kv_remove(st, key, now, written, 1);
}

int
em_kv_del_at(em_state_t *st, em_str_t key, int64_t now, int64_t written)
{
    return em_kv_remove(st, key, now, &written, 0) < 0 ? EM_DECLINED : EM_OK;
}

int
em_kv_push(em_state_t *st, em_str_t key, em_str_t value, uint32_t cap, int64_t ttl, int64_t now,
           uint32_t *count, int *why)
{
    char        k[EM_ST_KV_TABKEY];
    em_shtab_t *t;
    em_st_kv_t *head, *it;
    int         created;

    if (key.len > EM_ST_KV_KEY_MAX || value.len > EM_ST_KV_VALUE_MAX) {
        return em_kv_fail(why, EM_KV_TOO_LONG);
    }
    if (cap == 0) {
        cap = 1;
    }
    em_state_lock(st, EM_ZONE_STORE);
    t = em_kv_tab(st);
    head = em_kv_find(t, key, now);
    if (head != NULL && head->kind != EM_ST_KV_LIST) {
        em_state_unlock(st, EM_ZONE_STORE);
        return em_kv_fail(why, EM_KV_NOT_LIST);
    }
    head = em_shtab_put(t, k, em_kv_key(k, key), &created, em_kv_any);
    if (head == NULL) {
        em_state_unlock(st, EM_ZONE_STORE);
        return em_kv_fail(why, EM_KV_FULL);
    }
    if (created) {
        head->kind = EM_ST_KV_LIST;
        head->num = 0;
        head->count = 0;
    }
    head->cap = cap;
    if (ttl > 0) {
        head->expires = now + ttl;
    }
    /* Copy what the head says: making the item may evict the head itself
     * (a store of very few entries), which then leaves the list empty. */
    int64_t  first = head->num;
    uint32_t n = head->count;
    it = em_shtab_put(t, k, em_kv_item_key(k, key, first + n), &created, em_kv_any);
    if (it == NULL) {
        em_state_unlock(st, EM_ZONE_STORE);
        return em_kv_fail(why, EM_KV_FULL);
    }
    it->kind = EM_ST_KV_ITEM;
    it->len = (uint32_t) value.len;
    memcpy(it->data, value.data, value.len);
    head = em_shtab_get(t, k, em_kv_key(k, key));
    if (head == NULL || head->kind != EM_ST_KV_LIST) {
        em_shtab_del(t, it);            /* its list was dropped to make room for it */
        em_state_unlock(st, EM_ZONE_STORE);
        return em_kv_fail(why, EM_KV_FULL);
    }
    head->count = n + 1;
    while (head->count > head->cap) {
        em_st_kv_t *old = em_shtab_get(t, k, em_kv_item_key(k, key, head->num));
        if (old != NULL) {
            em_shtab_del(t, old);       /* entries never move: head stays valid */
        }
        head->num++;
        head->count--;
    }
    *count = head->count;
    em_state_unlock(st, EM_ZONE_STORE);
    return EM_OK;
}

size_t
em_kv_range(em_state_t *st, em_str_t key, int64_t start, int64_t stop, int64_t now,
            void (*fn)(const char *value, size_t len, void *arg), void *arg)
{
    char        k[EM_ST_KV_TABKEY];
    char        buf[EM_ST_KV_VALUE_MAX];
    em_shtab_t *t;
    em_st_kv_t *head;
    size_t      n = 0;

    if (key.len > EM_ST_KV_KEY_MAX) {
        return 0;
    }
    em_state_lock(st, EM_ZONE_STORE);
    t = em_kv_tab(st);
    head = em_kv_find(t, key, now);
    if (head == NULL || head->kind != EM_ST_KV_LIST || head->count == 0) {
        em_state_unlock(st, EM_ZONE_STORE);
        return 0;
    }
    int64_t count = head->count, first = head->num;
    if (start < 0) {
        start += count;
    }
    if (stop < 0) {
        stop += count;
    }
    start = start < 0 ? 0 : start;
    stop = stop >= count ? count - 1 : stop;
    /* The items are copied out one at a time and fn runs without the lock:
     * it may call back into the store. */
    for (int64_t i = start; i <= stop; i++) {
        em_st_kv_t *it = em_shtab_get(t, k, em_kv_item_key(k, key, first + i));
        if (it == NULL || it->kind != EM_ST_KV_ITEM || it->len > sizeof(buf)) {
            continue;
        }
        size_t len = it->len;
        memcpy(buf, it->data, len);
        em_state_unlock(st, EM_ZONE_STORE);
        fn(buf, len, arg);
        n++;
        em_state_lock(st, EM_ZONE_STORE);
        t = em_kv_tab(st);
    }
    em_state_unlock(st, EM_ZONE_STORE);
    return n;
}

uint32_t
em_kv_len(em_state_t *st, em_str_t key, int64_t now)
{
    em_st_kv_t *head;
    uint32_t    n = 0;

    if (key.len > EM_ST_KV_KEY_MAX) {
        return 0;
    }
    em_state_lock(st, EM_ZONE_STORE);
    head = em_kv_find(em_kv_tab(st), key, now);
    if (head != NULL && head->kind == EM_ST_KV_LIST) {
        n = head->count;
    }
    em_state_unlock(st, EM_ZONE_STORE);
    return n;
}

void
em_kv_stats(em_state_t *st, em_kv_stats_t *out)
{
    em_shtab_t *t;

    em_state_lock(st, EM_ZONE_STORE);
    t = em_kv_tab(st);
    out->entries = t->used;
    out->capacity = t->capacity;
    out->evicted = t->evicted;
    em_state_unlock(st, EM_ZONE_STORE);
}
