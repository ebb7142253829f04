/*
 * em_presence.c - who is online, per namespace, and who is in which room,
 * on every worker.
 *
 * Keys: a user is nsp "\0" user; a room's sockets nsp "\0" room; a user's
 * sockets in a room nsp "\0" room "\0" user; the namespace's sockets the room
 * "". Every count is also kept per worker slot, so the share of a worker
 * that died can be taken out again (em_state_sweep_slot).
 */
#include <stdlib.h>
#include <string.h>

#include "em_state.h"

#define EM_KEY_MAX (3 * EM_ST_NAME_MAX)

static em_shtab_t *
em_users(em_state_t *st)
{
    return (em_shtab_t *) ((char *) st->hdr + st->hdr->users_off);
}

static em_shtab_t *
em_rooms(em_state_t *st)
{
    return (em_shtab_t *) ((char *) st->hdr + st->hdr->rooms_off);
}

/* Join parts with NUL separators; 0 when it does not fit or a part has a NUL. */
static size_t
em_key(char *buf, em_str_t a, const em_str_t *b, const em_str_t *c)
{
    size_t n = 0;

    for (int i = 0; i < 3; i++) {
        const em_str_t *p = i == 0 ? &a : i == 1 ? b : c;
        if (p == NULL) {
            break;
        }
        if (n + p->len + 1 > EM_KEY_MAX || (p->len && memchr(p->data, '\0', p->len) != NULL)) {
            return 0;
        }
        if (i > 0) {
            buf[n++] = '\0';
        }
        memcpy(buf + n, p->data, p->len);
        n += p->len;
    }
    return n;
}

void
em_pchanges_free(em_pchanges_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].nsp);
        free(c->v[i].room);
        free(c->v[i].user);
    }
    free(c->v);
    memset(c, 0, sizeof(*c));
}

static char *
em_strndup0(const char *s, size_t n)
{
    char *d = malloc(n + 1);

    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static void
em_pchange(em_pchanges_t *c, int what, em_str_t nsp, em_str_t room, em_str_t user)
{
    if (c == NULL) {
        return;
    }
    if (c->n == c->cap) {
        size_t        cap = c->cap ? c->cap * 2 : 8;
        em_pchange_t *v = realloc(c->v, cap * sizeof(*v));
        if (v == NULL) {
            c->lost++;
            return;
        }
        c->v = v;
        c->cap = cap;
    }
    em_pchange_t *p = &c->v[c->n];
    p->what = what;
    p->nsp = em_strndup0(nsp.data, nsp.len);
    p->room = room.data ? em_strndup0(room.data, room.len) : NULL;
    p->user = em_strndup0(user.data, user.len);
    if (p->nsp != NULL && p->user != NULL && (room.data == NULL || p->room != NULL)) {
        c->n++;
    } else {
        c->lost++;
        free(p->nsp);
        free(p->room);
        free(p->user);
    }
}

/* An offline user may go when the table is full; an online one never. */
static int
em_user_evictable(const void *v)
{
    return ((const em_st_user_t *) v)->nconn == 0;
}

static void
em_user_copy(em_state_t *st, const em_st_user_t *u, em_presence_t *out)
{
    size_t      klen;
    const char *k = em_shtab_key(em_users(st), u, &klen);
    const char *z = memchr(k, '\0', klen);
    size_t      off = z ? (size_t) (z - k) + 1 : klen;

    out->user_len = klen - off < sizeof(out->user) ? klen - off : sizeof(out->user) - 1;
    memcpy(out->user, k + off, out->user_len);
    out->user[out->user_len] = '\0';
    out->connected_at = u->connected_at;
    out->last_seen = u->last_seen;
    out->nconn = u->nconn;
    out->status = u->status;
    out->info_len = u->info_len <= EM_ST_INFO_MAX ? u->info_len : 0;
    memcpy(out->info, u->info, out->info_len);
}

/* Count a socket in or out of a room entry (key of klen bytes). Returns 1
 * when the entry was created (delta > 0) or removed (delta < 0). */
static int
em_room_count(em_state_t *st, unsigned slot, const char *key, size_t klen, int delta)
{
    em_st_room_t *r;
    int           created;

    if (delta > 0) {
        r = em_shtab_put(em_rooms(st), key, klen, &created, NULL);
        if (r == NULL) {
            return 0;
        }
        r->count++;
        r->slots[slot]++;
        return created;
    }
    r = em_shtab_get(em_rooms(st), key, klen);
    if (r == NULL || r->slots[slot] == 0) {
        return 0;
    }
    r->slots[slot]--;
    if (--r->count == 0) {
        em_shtab_del(em_rooms(st), r);
        return 1;
    }
    return 0;
}

int
em_presence_connect(em_state_t *st, unsigned slot, em_str_t nsp, em_str_t user, em_str_t info,
                    int64_t now, em_pchanges_t *chg)
{
    char          key[EM_KEY_MAX];
    em_str_t      none = { "", 0 };
    size_t        klen;
    int           rc = EM_OK, created;
    em_st_user_t *u;

    if (slot >= EM_STATE_SLOTS) {
        return EM_ERROR;
    }
    em_state_lock(st, EM_ZONE_PRESENCE);
    if (user.len == 0) {
        if ((klen = em_key(key, nsp, &none, NULL)) != 0) {
            em_room_count(st, slot, key, klen, 1);
        }
    } else {
        klen = user.len < EM_ST_NAME_MAX ? em_key(key, nsp, &user, NULL) : 0;
        u = klen ? em_shtab_put(em_users(st), key, klen, &created, em_user_evictable) : NULL;
        if (u == NULL) {
            rc = EM_ERROR;
        } else {
            if (u->nconn == 0) {
                u->connected_at = now;
                u->status = EM_ST_STATUS_ONLINE;
                em_pchange(chg, EM_PCHG_ONLINE, nsp, (em_str_t) { NULL, 0 }, user);
            }
            u->nconn++;
            u->slots[slot]++;
            u->pending = 0;
            u->last_seen = now;
            if (info.data != NULL && info.len <= EM_ST_INFO_MAX) {
                memcpy(u->info, info.data, info.len);
                u->info_len = (uint16_t) info.len;
            }
        }
    }
    em_state_unlock(st, EM_ZONE_PRESENCE);
    return rc;
}

void
em_presence_disconnect(em_state_t *st, unsigned slot, em_str_t nsp, em_str_t user, int64_t now,
                       em_pchanges_t *chg)
{
    char          key[EM_KEY_MAX];
    em_str_t      none = { "", 0 };
    size_t        klen;
    em_st_user_t *u;

    if (slot >= EM_STATE_SLOTS) {
        return;
    }
    em_state_lock(st, EM_ZONE_PRESENCE);
    if (user.len == 0) {
        if ((klen = em_key(key, nsp, &none, NULL)) != 0) {
            em_room_count(st, slot, key, klen, -1);
        }
    } else if ((klen = em_key(key, nsp, &user, NULL)) != 0
        && (u = em_shtab_get(em_users(st), key, klen)) != NULL && u->slots[slot] > 0) {
        u->slots[slot]--;
        u->last_seen = now;
        if (--u->nconn == 0) {
            u->status = EM_ST_STATUS_OFFLINE;
            u->pending = 0;
            em_pchange(chg, EM_PCHG_OFFLINE, nsp, (em_str_t) { NULL, 0 }, user);
        } else if (u->nconn == u->remote) {
            u->pending = 1;     /* online on another host only */
        }
    }
    em_state_unlock(st, EM_ZONE_PRESENCE);
}

int
em_presence_set_status(em_state_t *st, em_str_t nsp, em_str_t user, int status, int64_t now,
                       int *old)
{
    char          key[EM_KEY_MAX];
    size_t        klen = em_key(key, nsp, &user, NULL);
    em_st_user_t *u;
    int           rc = EM_DECLINED;

    if (status < EM_ST_STATUS_ONLINE || status > EM_ST_STATUS_BUSY) {
        return EM_ERROR;
    }
    em_state_lock(st, EM_ZONE_PRESENCE);
    if (klen && (u = em_shtab_get(em_users(st), key, klen)) != NULL && u->nconn > 0) {
        *old = u->status;
        u->status = (uint8_t) status;
        u->last_seen = now;
        rc = EM_OK;
    }
    em_state_unlock(st, EM_ZONE_PRESENCE);
    return rc;
}

int
em_presence_get(em_state_t *st, em_str_t nsp, em_str_t user, em_presence_t *out)
{
    char          key[EM_KEY_MAX];
    size_t        klen = em_key(key, nsp, &user, NULL);
    em_st_user_t *u;
    int           rc = EM_DECLINED;

    em_state_lock(st, EM_ZONE_PRESENCE);
    if (klen && (u = em_shtab_get(em_users(st), key, klen)) != NULL) {
        em_user_copy(st, u, out);
        rc = EM_OK;
    }
    em_state_unlock(st, EM_ZONE_PRESENCE);
    return rc;
}

/* Copies of the matching users, so fn runs without the lock. */
typedef struct {
    em_presence_t *v;
    size_t         n, cap;
} em_plist_t;

static void
em_plist_add(em_plist_t *l, em_state_t *st, const em_st_user_t *u)
{
    if (l->n == l->cap) {
        size_t         cap = l->cap ? l->cap * 2 : 16;
        em_presence_t *v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL) {
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    em_user_copy(st, u, &l->v[l->n++]);
}

static void
em_plist_run(em_plist_t *l, void (*fn)(const em_presence_t *p, void *arg), void *arg)
{
    for (size_t i = 0; i < l->n; i++) {
        fn(&l->v[i], arg);
    }
    free(l->v);
}

static int
em_key_has_prefix(em_shtab_t *t, const void *v, const char *prefix, size_t plen)
{
    size_t      klen;
    const char *k = em_shtab_key(t, v, &klen);

    return klen >= plen && memcmp(k, prefix, plen) == 0;
}

void
em_presence_each(em_state_t *st, em_str_t nsp, int online_only,
                 void (*fn)(const em_presence_t *p, void *arg), void *arg)
{
    char          prefix[EM_KEY_MAX];
    em_str_t      none = { "", 0 };
    size_t        plen = em_key(prefix, nsp, &none, NULL);
    em_plist_t    l = { 0 };
    uint32_t      it = 0;
    em_st_user_t *u;

    if (plen == 0) {
        return;
    }
    em_state_lock(st, EM_ZONE_PRESENCE);
    while ((u = em_shtab_next(em_users(st), &it)) != NULL) {
        if ((!online_only || u->nconn > 0) && em_key_has_prefix(em_users(st), u, prefix, plen)) {
            em_plist_add(&l, st, u);
        }
    }
    em_state_unlock(st, EM_ZONE_PRESENCE);
    em_plist_run(&l, fn, arg);
}

void
em_presence_stats(em_state_t *st, em_str_t nsp, uint64_t counts[4])
{
    char          prefix[EM_KEY_MAX];
    em_str_t      none = { "", 0 };
    size_t        plen = em_key(prefix, nsp, &none, NULL);
    uint32_t      it = 0;
    em_st_user_t *u;

    memset(counts, 0, 4 * sizeof(counts[0]));
    if (plen == 0) {
        return;
    }
    em_state_lock(st, EM_ZONE_PRESENCE);
    while ((u = em_shtab_next(em_users(st), &it)) != NULL) {
        if (u->status <= EM_ST_STATUS_BUSY && em_key_has_prefix(em_users(st), u, prefix, plen)) {
            counts[u->status]++;
        }
    }
    em_state_unlock(st, EM_ZONE_PRESENCE);
}

/* A socket of user joined (delta 1) or left (-1) a room. */
static void
em_room_change(em_state_t *st, unsigned slot, em_str_t nsp, em_str_t room, em_str_t user,
               int delta, em_pchanges_t *chg)
{
    char   key[EM_KEY_MAX];
    size_t klen;

    if (slot >= EM_STATE_SLOTS || room.len == 0) {
        return;
    }
    em_state_lock(st, EM_ZONE_PRESENCE);
    if ((klen = em_key(key, nsp, &room, NULL)) != 0) {
        em_room_count(st, slot, key, klen, delta);
    }
    if (user.len > 0 && (klen = em_key(key, nsp, &room, &user)) != 0
        && em_room_count(st, slot, key, klen, delta)) {
        em_pchange(chg, delta > 0 ? EM_PCHG_ROOM_IN : EM_PCHG_ROOM_OUT, nsp, room, user);
    }
    em_state_unlock(st, EM_ZONE_PRESENCE);
}

void
em_room_add(em_state_t *st, unsigned slot, em_str_t nsp, em_str_t room, em_str_t user,
            em_pchanges_t *chg)
{
    em_room_change(st, slot, nsp, room, user, 1, chg);
}

void
em_room_del(em_state_t *st, unsigned slot, em_str_t nsp, em_str_t room, em_str_t user,
            em_pchanges_t *chg)
{
    em_room_change(st, slot, nsp, room, user, -1, chg);
}

size_t
em_nsp_each(em_state_t *st, size_t max, void (*fn)(em_str_t nsp, uint32_t n, void *arg), void *arg)
{
    em_shtab_t   *t = em_rooms(st);
    em_st_room_t *r;
    uint32_t      iter = 0;
    size_t        n = 0;

    em_state_lock(st, EM_ZONE_PRESENCE);
    while (n < max && (r = em_shtab_next(t, &iter)) != NULL) {
        size_t      klen;
        const char *k = em_shtab_key(t, r, &klen);
        /* A namespace's key is its name and one NUL (an empty room). */
        if (klen > 1 && k[klen - 1] == '\0' && memchr(k, '\0', klen - 1) == NULL && r->count > 0) {
            fn((em_str_t) { k, klen - 1 }, r->count, arg);
            n++;
        }
    }
    em_state_unlock(st, EM_ZONE_PRESENCE);
    return n;
}

uint32_t
em_room_size(em_state_t *st, em_str_t nsp, em_str_t room)
{
    char          key[EM_KEY_MAX];
    size_t        klen = em_key(key, nsp, &room, NULL);
    em_st_room_t *r;
    uint32_t      n = 0;

    em_state_lock(st, EM_ZONE_PRESENCE);
    if (klen && (r = em_shtab_get(em_rooms(st), key, klen)) != NULL) {
        n = r->count;
    }
    em_state_unlock(st, EM_ZONE_PRESENCE);
    return n;
}

static int em_key_split(const char *k, size_t klen, em_str_t parts[3]);

uint32_t
em_rooms_active(em_state_t *st)
{
    uint32_t      it = 0, n = 0;
    em_st_room_t *r;

    em_state_lock(st, EM_ZONE_PRESENCE);
    while ((r = em_shtab_next(em_rooms(st), &it)) != NULL) {
        size_t      klen;
        const char *k = em_shtab_key(em_rooms(st), r, &klen);
        em_str_t    parts[3];
        /* nsp\0room; nsp\0room\0user entries are the room's users */
        if (r->count > 0 && em_key_split(k, klen, parts) == 2 && parts[1].len > 0) {
            n++;
        }
    }
    em_state_unlock(st, EM_ZONE_PRESENCE);
    return n;
}

void
em_room_users(em_state_t *st, em_str_t nsp, em_str_t room,
              void (*fn)(const em_presence_t *p, void *arg), void *arg)
{
    char          prefix[EM_KEY_MAX], ukey[EM_KEY_MAX];
    em_str_t      none = { "", 0 };
    size_t        plen = em_key(prefix, nsp, &room, &none);
    em_plist_t    l = { 0 };
    uint32_t      it = 0;
    em_st_room_t *r;

    if (plen == 0 || room.len == 0) {
        return;
    }
    em_state_lock(st, EM_ZONE_PRESENCE);
    while ((r = em_shtab_next(em_rooms(st), &it)) != NULL) {
        size_t      klen;
        const char *k = em_shtab_key(em_rooms(st), r, &klen);
        if (klen <= plen || memcmp(k, prefix, plen) != 0) {
            continue;
        }
        em_str_t      user = { k + plen, klen - plen };
        size_t        ulen = em_key(ukey, nsp, &user, NULL);
        em_st_user_t *u = ulen ? em_shtab_get(em_users(st), ukey, ulen) : NULL;
        if (u != NULL && u->nconn > 0) {
            em_plist_add(&l, st, u);
        }
    }
    em_state_unlock(st, EM_ZONE_PRESENCE);
    em_plist_run(&l, fn, arg);
}

/* Split a key into its NUL-separated parts; returns how many (<= 3). */
static int
em_key_split(const char *k, size_t klen, em_str_t parts[3])
{
    int    n = 0;
    size_t start = 0;

    for (size_t i = 0; i <= klen && n < 3; i++) {
        if (i == klen || k[i] == '\0') {
            parts[n].data = k + start;
            parts[n].len = i - start;
            n++;
            start = i + 1;
        }
    }
    return n;
}

void
em_state_sweep_slot(em_state_t *st, unsigned slot, int64_t now, int64_t max_disconnection,
                    em_pchanges_t *chg)
{
    uint32_t      it;
    em_st_user_t *u;
    em_st_room_t *r;

    if (slot >= EM_STATE_SLOTS) {
        return;
    }
    em_state_lock(st, EM_ZONE_PRESENCE);
    it = 0;
    while ((r = em_shtab_next(em_rooms(st), &it)) != NULL) {
        if (r->slots[slot] == 0) {
            continue;
        }
        r->count = r->count >= r->slots[slot] ? r->count - r->slots[slot] : 0;
        r->slots[slot] = 0;
        if (r->count == 0) {
            size_t      klen;
            const char *k = em_shtab_key(em_rooms(st), r, &klen);
            em_str_t    p[3];
            if (em_key_split(k, klen, p) == 3) {
                em_pchange(chg, EM_PCHG_ROOM_OUT, p[0], p[1], p[2]);
            }
            em_shtab_del(em_rooms(st), r);
        }
    }
    it = 0;
    while ((u = em_shtab_next(em_users(st), &it)) != NULL) {
        if (u->slots[slot] == 0) {
            continue;
        }
        u->nconn = u->nconn >= u->slots[slot] ? u->nconn - u->slots[slot] : 0;
        u->slots[slot] = 0;
        u->last_seen = now;
        if (u->nconn > 0 && u->nconn == u->remote) {
            u->pending = 1;
        }
        if (u->nconn == 0) {
            size_t      klen;
            const char *k = em_shtab_key(em_users(st), u, &klen);
            em_str_t    p[3];
            u->status = EM_ST_STATUS_OFFLINE;
            u->pending = 0;
            if (em_key_split(k, klen, p) == 2) {
                em_pchange(chg, EM_PCHG_OFFLINE, p[0], (em_str_t) { NULL, 0 }, p[1]);
            }
        }
    }
    em_state_unlock(st, EM_ZONE_PRESENCE);
    em_recovery_sweep_slot(st, slot, now, max_disconnection);
    em_monitor_sweep_slot(st, slot);
}

/* ---- presence across hosts ---- */

void
em_presence_local_each(em_state_t *st, void (*fn)(const em_prec_t *r, void *arg), void *arg)
{
    uint32_t      it;
    em_st_user_t *u;
    em_st_room_t *r;
    em_prec_t     rec;
    em_str_t      p[3];

    em_state_lock(st, EM_ZONE_PRESENCE);
    it = 0;
    while ((u = em_shtab_next(em_users(st), &it)) != NULL) {
        if (u->nconn <= u->remote && !u->pending) {
            continue;
        }
        rec.type = EM_PREC_USER;
        rec.key.data = em_shtab_key(em_users(st), u, &rec.key.len);
        rec.count = u->nconn > u->remote ? u->nconn - u->remote : 0;
        rec.pending = rec.count == 0;
        rec.status = u->status;
        rec.connected_at = u->connected_at;
        rec.last_seen = u->last_seen;
        rec.info = (em_str_t) { u->info, u->info_len <= EM_ST_INFO_MAX ? u->info_len : 0 };
        fn(&rec, arg);
    }
    it = 0;
    while ((r = em_shtab_next(em_rooms(st), &it)) != NULL) {
        if (r->count <= r->remote) {
            continue;
        }
        rec.type = EM_PREC_ROOM;
        rec.key.data = em_shtab_key(em_rooms(st), r, &rec.key.len);
        if (em_key_split(rec.key.data, rec.key.len, p) < 2 || p[1].len == 0) {
            continue;       /* the namespace's own count stays this host's */
        }
        rec.count = r->count - r->remote;
        rec.pending = 0;
        rec.status = 0;
        rec.connected_at = rec.last_seen = 0;
        rec.info = (em_str_t) { "", 0 };
        fn(&rec, arg);
    }
    em_state_unlock(st, EM_ZONE_PRESENCE);
}

/* A remote record's key: a user's is nsp, user; a room's nsp, room (and user). */
static int
em_prec_key_ok(const em_prec_t *r)
{
    em_str_t p[3];
    int      n;
    size_t   total;

    if (r->key.len == 0 || r->key.len > (r->type == EM_PREC_USER ? 2 : 3) * EM_ST_NAME_MAX) {
        return 0;
    }
    n = em_key_split(r->key.data, r->key.len, p);
    total = (size_t) n - 1;
    for (int i = 0; i < n; i++) {
        total += p[i].len;
    }
    if (total != r->key.len || p[n - 1].len == 0) {
        return 0;           /* a fourth part, or an empty last one */
    }
    if (r->type == EM_PREC_USER) {
        return n == 2 && p[1].len < EM_ST_NAME_MAX;
    }
    return r->type == EM_PREC_ROOM && n >= 2 && p[1].len > 0;
}

/* Returns what em_presence_remote_apply() tells in *offline. */
static int
em_user_remote(em_st_user_t *u, const em_prec_t *r, int64_t delta, int64_t now)
{
    uint32_t was = u->nconn;
    int      off;

    if (delta < 0 && (uint64_t) -delta > u->remote) {
        delta = -(int64_t) u->remote;
    }
    u->remote = (uint32_t) ((int64_t) u->remote + delta);
    u->nconn = (uint32_t) ((int64_t) u->nconn + delta);
    if (u->nconn == 0) {
        if (was == 0) {
            return 0;
        }
        off = u->pending ? EM_PREM_OFFLINE_PENDING : EM_PREM_OFFLINE;
        u->status = EM_ST_STATUS_OFFLINE;
        u->pending = 0;
        u->last_seen = now;
        return off;
    }
    if (r == NULL || r->count == 0) {
        return 0;
    }
    if (was == 0 || r->connected_at < u->connected_at) {
        u->connected_at = r->connected_at;
    }
    if (was == 0 || r->last_seen > u->last_seen) {
        u->last_seen = r->last_seen;
        if (r->status >= EM_ST_STATUS_ONLINE && r->status <= EM_ST_STATUS_BUSY) {
            u->status = (uint8_t) r->status;
        }
        if (r->info.len <= EM_ST_INFO_MAX) {
            memcpy(u->info, r->info.data, r->info.len);
            u->info_len = (uint16_t) r->info.len;
        }
    }
    return 0;
}

static void
em_room_remote(em_state_t *st, em_st_room_t *rm, int64_t delta)
{
    if (delta < 0 && (uint64_t) -delta > rm->remote) {
        delta = -(int64_t) rm->remote;
    }
    rm->remote = (uint32_t) ((int64_t) rm->remote + delta);
    rm->count = (uint32_t) ((int64_t) rm->count + delta);
    if (rm->count == 0) {
        em_shtab_del(em_rooms(st), rm);
    }
}

int
em_presence_remote_apply(em_state_t *st, const em_prec_t *r, int64_t delta, int64_t now,
                         int *offline)
{
    int   rc = EM_OK, created, off = 0;
    void *v;

    if (!em_prec_key_ok(r) || delta > (int64_t) UINT32_MAX / 2 || delta < -(int64_t) UINT32_MAX) {
        return EM_ERROR;
    }
    em_state_lock(st, EM_ZONE_PRESENCE);
    if (r->type == EM_PREC_USER) {
        v = delta > 0 ? em_shtab_put(em_users(st), r->key.data, r->key.len, &created,
                                     em_user_evictable)
                      : em_shtab_get(em_users(st), r->key.data, r->key.len);
        if (v != NULL && (uint64_t) ((em_st_user_t *) v)->nconn + (uint64_t) EM_MAX(delta, 0)
                             <= UINT32_MAX / 2) {
            off = em_user_remote(v, r, delta, now);
        } else {
            rc = delta > 0 ? EM_ERROR : EM_OK;
        }
    } else if (delta != 0) {
        v = delta > 0 ? em_shtab_put(em_rooms(st), r->key.data, r->key.len, &created, NULL)
                      : em_shtab_get(em_rooms(st), r->key.data, r->key.len);
        if (v != NULL && (uint64_t) ((em_st_room_t *) v)->count + (uint64_t) EM_MAX(delta, 0)
                             <= UINT32_MAX / 2) {
            em_room_remote(st, v, delta);
        } else {
            rc = delta > 0 ? EM_ERROR : EM_OK;
        }
    }
    em_state_unlock(st, EM_ZONE_PRESENCE);
    if (offline != NULL) {
        *offline = off;
    }
    return rc;
}

void
em_presence_remote_clear(em_state_t *st, int64_t now)
{
    uint32_t      it;
    em_st_user_t *u;
    em_st_room_t *r;

    em_state_lock(st, EM_ZONE_PRESENCE);
    it = 0;
    while ((r = em_shtab_next(em_rooms(st), &it)) != NULL) {
        if (r->remote > 0) {
            em_room_remote(st, r, -(int64_t) r->remote);
        }
    }
    it = 0;
    while ((u = em_shtab_next(em_users(st), &it)) != NULL) {
        if (u->remote > 0) {
            (void) em_user_remote(u, NULL, -(int64_t) u->remote, now);
        }
    }
    em_state_unlock(st, EM_ZONE_PRESENCE);
}
