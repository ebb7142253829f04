/*
 * em_shtab.c - a hash table of fixed-size entries in shared memory.
 *
 * Everything is an index into the table's own memory, so every process maps
 * it at its own address. The caller holds the zone's lock. Entries are kept
 * on an LRU list so that a full table can drop the least recently used entry
 * the caller allows to go (a rate-limit key, an offline user).
 */
#include <string.h>

#include "em_state.h"

static uint32_t
em_shtab_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t             h = 0xcbf29ce484222325ull;     /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return (uint32_t) (h ^ (h >> 32));
}

static uint32_t *
em_shtab_buckets(em_shtab_t *t)
{
    return (uint32_t *) ((char *) t + t->buckets_off);
}

static em_shent_t *
em_shtab_ent(em_shtab_t *t, uint32_t idx1)
{
    return (em_shent_t *) ((char *) t + t->entries_off + (uint64_t) (idx1 - 1) * t->entry_size);
}

static char *
em_shtab_ent_key(em_shent_t *e)
{
    return (char *) (e + 1);
}

static void *
em_shtab_ent_value(em_shtab_t *t, em_shent_t *e)
{
    return (char *) (e + 1) + t->key_max;
}

static uint32_t
em_shtab_idx(em_shtab_t *t, const void *value)
{
    size_t off = (size_t) ((const char *) value - (const char *) t) - t->entries_off - sizeof(em_shent_t)
                 - t->key_max;

    return (uint32_t) (off / t->entry_size) + 1;
}

size_t
em_shtab_size(uint32_t capacity, uint32_t key_max, uint32_t value_size)
{
    uint32_t nbuckets = 1;

    while (nbuckets < capacity) {
        nbuckets <<= 1;
    }
    key_max = (key_max + 7) & ~7u;
    value_size = (value_size + 7) & ~7u;
    return sizeof(em_shtab_t) + (((size_t) nbuckets * 4 + 7) & ~(size_t) 7)
           + (size_t) capacity * (sizeof(em_shent_t) + key_max + value_size);
}

void
em_shtab_init(em_shtab_t *t, uint32_t capacity, uint32_t key_max, uint32_t value_size)
{
    memset(t, 0, sizeof(*t));
    t->nbuckets = 1;
    while (t->nbuckets < capacity) {
        t->nbuckets <<= 1;
    }
    t->capacity = capacity;
    t->key_max = (key_max + 7) & ~7u;
    t->value_size = value_size;
    t->entry_size = (uint32_t) sizeof(em_shent_t) + t->key_max + ((value_size + 7) & ~7u);
    t->buckets_off = sizeof(em_shtab_t);
    t->entries_off = sizeof(em_shtab_t) + (((uint64_t) t->nbuckets * 4 + 7) & ~(uint64_t) 7);
    memset(em_shtab_buckets(t), 0, (size_t) t->nbuckets * 4);
}

static void
em_shtab_lru_unlink(em_shtab_t *t, uint32_t i, em_shent_t *e)
{
    if (e->lprev) {
        em_shtab_ent(t, e->lprev)->lnext = e->lnext;
    } else if (t->lru_head == i) {
        t->lru_head = e->lnext;
    }
    if (e->lnext) {
        em_shtab_ent(t, e->lnext)->lprev = e->lprev;
    } else if (t->lru_tail == i) {
        t->lru_tail = e->lprev;
    }
    e->lprev = e->lnext = 0;
}

static void
em_shtab_lru_front(em_shtab_t *t, uint32_t i, em_shent_t *e)
{
    e->lprev = 0;
    e->lnext = t->lru_head;
    if (t->lru_head) {
        em_shtab_ent(t, t->lru_head)->lprev = i;
    }
    t->lru_head = i;
    if (t->lru_tail == 0) {
        t->lru_tail = i;
    }
}

static uint32_t
em_shtab_lookup(em_shtab_t *t, const void *key, size_t len, uint32_t hash)
{
    for (uint32_t i = em_shtab_buckets(t)[hash & (t->nbuckets - 1)]; i != 0;) {
        em_shent_t *e = em_shtab_ent(t, i);
        if (e->hash == hash && e->key_len == len && memcmp(em_shtab_ent_key(e), key, len) == 0) {
            return i;
        }
        i = e->hnext;
    }
    return 0;
}

void *
em_shtab_get(em_shtab_t *t, const void *key, size_t len)
{
    uint32_t i;

    if (len > t->key_max || (i = em_shtab_lookup(t, key, len, em_shtab_hash(key, len))) == 0) {
        return NULL;
    }
    em_shent_t *e = em_shtab_ent(t, i);
    em_shtab_lru_unlink(t, i, e);
    em_shtab_lru_front(t, i, e);
    return em_shtab_ent_value(t, e);
}

void
em_shtab_del(em_shtab_t *t, void *value)
{
    uint32_t    i = em_shtab_idx(t, value);
    em_shent_t *e = em_shtab_ent(t, i);
    uint32_t   *pp = &em_shtab_buckets(t)[e->hash & (t->nbuckets - 1)];

    while (*pp != 0 && *pp != i) {
        pp = &em_shtab_ent(t, *pp)->hnext;
    }
    if (*pp == i) {
        *pp = e->hnext;
    }
    em_shtab_lru_unlink(t, i, e);
    e->flags = 0;
    e->hnext = t->free_head;
    t->free_head = i;
    t->used--;
}

void *
em_shtab_put(em_shtab_t *t, const void *key, size_t len, int *created, em_shtab_evict_pt can_evict)
{
    uint32_t    hash, i;
    em_shent_t *e;

    *created = 0;
    if (len > t->key_max || len > UINT16_MAX) {
        return NULL;
    }
    hash = em_shtab_hash(key, len);
    if ((i = em_shtab_lookup(t, key, len, hash)) != 0) {
        e = em_shtab_ent(t, i);
        em_shtab_lru_unlink(t, i, e);
        em_shtab_lru_front(t, i, e);
        return em_shtab_ent_value(t, e);
    }
    if (t->free_head == 0 && t->high == t->capacity && can_evict != NULL) {
        /*
         * Full: drop the least recently used entry the caller lets go.
         * Entries it refuses (an online user, a held session) move to the
         * front as they are passed, so they do not pile up at the tail and
         * the next scan starts among the ones that may go.
         */
        uint32_t v = t->lru_tail, live = t->used;
        for (uint32_t n = 0; v != 0 && n < live; n++) {     /* each entry once */
            em_shent_t     *ve = em_shtab_ent(t, v);
            uint32_t        prev = ve->lprev;
            if (can_evict(em_shtab_ent_value(t, ve))) {
                em_shtab_del(t, em_shtab_ent_value(t, ve));
                t->evicted++;
                break;
            }
            em_shtab_lru_unlink(t, v, ve);
            em_shtab_lru_front(t, v, ve);
            v = prev;
        }
    }
    if (t->free_head == 0 && t->high == t->capacity) {
        return NULL;
    }
    if (t->free_head != 0) {
        i = t->free_head;
        e = em_shtab_ent(t, i);
        t->free_head = e->hnext;
    } else {
        i = ++t->high;
        e = em_shtab_ent(t, i);
    }
    memset(e, 0, t->entry_size);
    e->hash = hash;
    e->key_len = (uint16_t) len;
    e->flags = EM_SHENT_USED;
    memcpy(em_shtab_ent_key(e), key, len);
    uint32_t *b = &em_shtab_buckets(t)[hash & (t->nbuckets - 1)];
    e->hnext = *b;
    *b = i;
    em_shtab_lru_front(t, i, e);
    t->used++;
    *created = 1;
    return em_shtab_ent_value(t, e);
}

const char *
em_shtab_key(em_shtab_t *t, const void *value, size_t *len)
{
    em_shent_t *e = em_shtab_ent(t, em_shtab_idx(t, value));

    *len = e->key_len;
    return em_shtab_ent_key(e);
}

void *
em_shtab_next(em_shtab_t *t, uint32_t *iter)
{
    while (*iter < t->high) {
        em_shent_t *e = em_shtab_ent(t, ++*iter);
        if (e->flags & EM_SHENT_USED) {
            return em_shtab_ent_value(t, e);
        }
    }
    return NULL;
}

void
em_shtab_rebuild(em_shtab_t *t)
{
    uint32_t *b = em_shtab_buckets(t);

    if (t->high > t->capacity) {
        t->high = t->capacity;
    }
    memset(b, 0, (size_t) t->nbuckets * 4);
    t->used = t->free_head = t->lru_head = t->lru_tail = 0;
    for (uint32_t i = t->high; i >= 1; i--) {
        em_shent_t *e = em_shtab_ent(t, i);
        if (!(e->flags & EM_SHENT_USED) || e->key_len > t->key_max
            || e->hash != em_shtab_hash(em_shtab_ent_key(e), e->key_len)) {
            e->flags = 0;
            e->hnext = t->free_head;
            t->free_head = i;
            continue;
        }
        e->hnext = b[e->hash & (t->nbuckets - 1)];
        b[e->hash & (t->nbuckets - 1)] = i;
        e->lprev = e->lnext = 0;
        em_shtab_lru_front(t, i, e);
        t->used++;
    }
}
