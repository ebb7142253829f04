/*
 * em_broker_presence.c - presence and room sizes across hosts
 * (em_broker_presence.h).
 *
 * Two tables of the broker's own, em_shtab tables in private memory:
 *   pub  what this host last published, per entry (type byte, key): the
 *        count, and a user's status, times and a hash of its info;
 *   rem  every other host's share, per (host index, type byte, key): the
 *        count this host has added for it to the state segment.
 * An entry's change is published as its new value, never as a difference,
 * so a message lost costs only the entries it held until the next full
 * list; each host's seq tells a receiver it missed one.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "em_broker_presence.h"
#include "em_log.h"
#include "em_rpres.h"

#define EM_BP_HOSTS     64      /* other hosts at most */
#define EM_BP_KEY_MAX   (3 * EM_ST_NAME_MAX)
#define EM_BP_INFO_MAX  EM_ST_INFO_MAX
#define EM_BP_HEAD      128     /* bytes of a message besides its entries, at most */
#define EM_BP_SYNC_WAIT 2000    /* ms between two requests for one host's full list */

typedef struct {
    uint32_t count;
    uint32_t gen;           /* the pass that last saw it */
    uint8_t  status;
    uint8_t  reserved[7];
    int64_t  connected_at;
    int64_t  last_seen;
    uint64_t info_hash;
} em_bp_pub_t;

typedef struct {
    uint32_t count;
    uint32_t gen;           /* the host's full list that last named it */
    int64_t  until;         /* a limit's */
    int64_t  blocked;
} em_bp_rem_t;

/* The type byte of the tables' keys is the wire's. */
_Static_assert(EM_PREC_USER == EM_RPRES_USER && EM_PREC_ROOM == EM_RPRES_ROOM,
               "presence record types differ");

typedef struct {
    char     uid[65];
    size_t   uid_len;
    int      used;
    int64_t  heard;         /* ms */
    uint64_t next_seq;      /* 0: none heard yet */
    uint32_t gen;           /* its full lists begun */
    int64_t  asked;         /* ms: the last SYNC sent to it */
} em_bp_host_t;

static struct {
    struct event_base        *base;
    em_state_t               *st;
    em_broker_presence_conf_t conf;
    struct event             *tick;
    em_shtab_t               *pub, *rem;
    size_t                    pub_size, rem_size;
    em_rpres_out_t            out;
    uint64_t                  seq;
    uint32_t                  gen;
    int                       full;         /* the next pass publishes everything */
    int                       in_full;      /* this pass does */
    int                       send_failed;  /* a message of this pass did not go */
    unsigned                  flags;        /* of the next message of this pass */
    em_bp_host_t              hosts[EM_BP_HOSTS];
    uint64_t                  refused, dropped, dropped_logged;
    int64_t                   refused_logged, dropped_when;
} em_bp;

static uint64_t
em_bp_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char) s[i]) * 1099511628211ULL;
    }
    return h;
}

static em_shtab_t *
em_bp_table(uint32_t capacity, uint32_t key_max, uint32_t value_size, size_t *size)
{
    void *p;

    *size = em_shtab_size(capacity, key_max, value_size);
    /* pages are taken only as entries are used */
    p = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    em_shtab_init(p, capacity, key_max, value_size);
    return p;
}

/* ---- publishing ---- */

static void
em_bp_send(em_str_t target, int always)
{
    char  *msg;
    size_t len;

    if (em_bp.out.n == 0 && !always && !(em_bp.flags & EM_RPRES_RESET)) {
        return;
    }
    if (em_rpres_out_finish(&em_bp.out, em_bp.conf.uid, em_bp.seq + 1, em_bp.flags, target, &msg,
                            &len) != EM_OK) {
        em_bp.send_failed = 1;
        return;
    }
    if (em_bp.conf.send(msg, len) == EM_OK) {
        em_bp.seq++;
        em_bp.flags &= ~(unsigned) EM_RPRES_RESET;
    } else {
        em_bp.send_failed = 1;
    }
    free(msg);
}

static void
em_bp_add(const em_rpres_ent_t *e)
{
    size_t need = e->key.len + e->info.len + 64;

    if (need + EM_BP_HEAD > em_bp.conf.max_message) {
        em_bp.dropped++;        /* cannot go in any message (redis.max_message) */
        return;
    }
    if (em_rpres_out_size(&em_bp.out) + need + EM_BP_HEAD > em_bp.conf.max_message) {
        em_bp_send((em_str_t) { "", 0 }, 0);
    }
    em_rpres_out_add(&em_bp.out, e);
}

/* One entry of this host's workers (under the presence lock). */
static void
em_bp_local(const em_prec_t *r, void *arg)
{
    char           key[1 + EM_BP_KEY_MAX];
    em_bp_pub_t   *p;
    int            created;
    uint64_t       ih = r->type == EM_PREC_USER ? em_bp_hash(r->info.data, r->info.len) : 0;
    em_rpres_ent_t e;

    (void) arg;
    if (r->key.len > EM_BP_KEY_MAX) {
        return;
    }
    key[0] = (char) r->type;
    memcpy(key + 1, r->key.data, r->key.len);
    if ((p = em_shtab_put(em_bp.pub, key, r->key.len + 1, &created, NULL)) == NULL) {
        em_bp.dropped++;
        return;
    }
    p->gen = em_bp.gen;
    int status = r->pending ? EM_RPRES_UNREPORTED : r->status;
    if (!created && p->count == r->count && p->status == status
        && p->connected_at == r->connected_at && p->last_seen == r->last_seen && p->info_hash == ih) {
        return;
    }
    p->count = r->count;
    p->status = (uint8_t) status;
    p->connected_at = r->connected_at;
    p->last_seen = r->last_seen;
    p->info_hash = ih;
    e = (em_rpres_ent_t) { r->type, r->key, r->count, status, r->connected_at, r->last_seen,
                           r->info, 0, 0 };
    em_bp_add(&e);
}

/* One rate-limit key of this host's workers (under the counters lock). */
static void
em_bp_limit_local(const em_lrec_t *r, void *arg)
{
    char         key[1 + EM_BP_KEY_MAX];
    em_bp_pub_t *p;
    int          created;

    (void) arg;
    if (r->key.len > EM_BP_KEY_MAX) {
        return;
    }
    key[0] = (char) EM_RPRES_LIMIT;
    memcpy(key + 1, r->key.data, r->key.len);
    if ((p = em_shtab_put(em_bp.pub, key, r->key.len + 1, &created, NULL)) == NULL) {
        em_bp.dropped++;
        return;
    }
    p->gen = em_bp.gen;
    if (!created && p->count == r->count && p->connected_at == r->until
        && p->last_seen == r->blocked) {
        return;
    }
    p->count = r->count;
    p->connected_at = r->until;
    p->last_seen = r->blocked;
    em_rpres_ent_t e = { EM_RPRES_LIMIT, r->key, r->count, 0, 0, 0, { "", 0 }, r->until,
                         r->blocked };
    em_bp_add(&e);
}

/* Entries this host no longer has: published with count 0, and forgotten. */
static void
em_bp_gone(void)
{
    uint32_t     it = 0;
    em_bp_pub_t *p;

    while ((p = em_shtab_next(em_bp.pub, &it)) != NULL) {
        if (p->gen == em_bp.gen) {
            continue;
        }
        size_t         klen;
        const char    *k = em_shtab_key(em_bp.pub, p, &klen);
        em_rpres_ent_t e = { k[0], { k + 1, klen - 1 }, 0, EM_ST_STATUS_OFFLINE, 0, 0, { "", 0 },
                             0, 0 };
        em_bp_add(&e);
        em_shtab_del(em_bp.pub, p);
    }
}

static void
em_bp_publish(void)
{
    if (em_bp.full) {
        uint32_t     it = 0;
        em_bp_pub_t *p;
        while ((p = em_shtab_next(em_bp.pub, &it)) != NULL) {
            em_shtab_del(em_bp.pub, p);
        }
        em_bp.flags |= EM_RPRES_RESET;
        em_bp.full = 0;
        em_bp.in_full = 1;
    }
    em_bp.gen++;
    em_bp.send_failed = 0;
    em_presence_local_each(em_bp.st, em_bp_local, NULL);
    em_limit_local_each(em_bp.st, em_state_now(), em_bp_limit_local, NULL);
    em_bp_gone();
    /* the last message of the pass, or a heartbeat when nothing changed */
    if (em_bp.in_full) {
        em_bp.flags |= EM_RPRES_END;
    }
    em_bp_send((em_str_t) { "", 0 }, 1);
    em_bp.flags = 0;
    em_bp.in_full = 0;
    if (em_bp.send_failed) {
        em_bp.full = 1;         /* what did not go is sent again, all of it */
    }
}

/* Ask one host (or every host: h NULL) for its full list. Called between
 * passes, when no entry waits to go. */
static void
em_bp_ask(em_bp_host_t *h, int64_t now)
{
    unsigned keep = em_bp.flags;

    if (h != NULL && now - h->asked < EM_BP_SYNC_WAIT) {
        return;
    }
    if (h != NULL) {
        h->asked = now;
    }
    em_bp.flags = EM_RPRES_SYNC;
    em_bp_send(h != NULL ? (em_str_t) { h->uid, h->uid_len } : (em_str_t) { "", 0 }, 1);
    em_bp.flags = keep;
}

/* ---- the other hosts ---- */

/* Tell the others at once that this host's last connection of a user
 * closed unreported (sent at the end of the message being handled). */
static void
em_bp_unreported(em_str_t key)
{
    char           k[1 + EM_BP_KEY_MAX];
    em_bp_pub_t   *p;
    int            created;
    em_rpres_ent_t e = { EM_RPRES_USER, key, 0, EM_RPRES_UNREPORTED, 0, 0, { "", 0 }, 0, 0 };

    k[0] = (char) EM_PREC_USER;
    memcpy(k + 1, key.data, key.len);
    if ((p = em_shtab_put(em_bp.pub, k, key.len + 1, &created, NULL)) != NULL) {
        p->count = 0;       /* the next pass finds it gone, and says so again */
        p->status = EM_RPRES_UNREPORTED;
    }
    em_bp_add(&e);
}

/* A user (key nsp NUL user) went offline: for this host's scripts. */
static void
em_bp_report(em_str_t key)
{
    const char *z = memchr(key.data, '\0', key.len);

    if (z != NULL && em_bp.conf.report != NULL) {
        size_t n = (size_t) (z - key.data);
        em_bp.conf.report(EM_PCHG_OFFLINE, (em_str_t) { key.data, n },
                          (em_str_t) { z + 1, key.len - n - 1 });
    }
}

static int
em_bp_uid_less(em_str_t a, em_str_t b)
{
    int c = memcmp(a.data, b.data, EM_MIN(a.len, b.len));

    return c < 0 || (c == 0 && a.len < b.len);
}

/* Is this host the live one with the smallest uid (but host i)? */
static int
em_bp_smallest(unsigned i)
{
    for (unsigned j = 0; j < EM_BP_HOSTS; j++) {
        em_bp_host_t *h = &em_bp.hosts[j];
        if (j != i && h->used
            && em_bp_uid_less((em_str_t) { h->uid, h->uid_len }, em_bp.conf.uid)) {
            return 0;
        }
    }
    return 1;
}

/* A rate-limit key's shares of every other host, together, to the state. */
static void
em_bp_limit_sum(em_str_t key, int64_t now)
{
    char         k[2 + EM_BP_KEY_MAX];
    em_lrec_t    sum = { key, 0, 0, 0 };
    em_bp_rem_t *r;

    k[1] = (char) EM_RPRES_LIMIT;
    memcpy(k + 2, key.data, key.len);
    for (unsigned j = 0; j < EM_BP_HOSTS; j++) {
        k[0] = (char) j;
        if (!em_bp.hosts[j].used || (r = em_shtab_get(em_bp.rem, k, key.len + 2)) == NULL) {
            continue;
        }
        if (r->until > now && r->count > 0) {
            sum.count = (uint32_t) EM_MIN((uint64_t) sum.count + r->count, UINT32_MAX);
            sum.until = EM_MAX(sum.until, r->until);
        }
        sum.blocked = EM_MAX(sum.blocked, r->blocked > now ? r->blocked : 0);
    }
    if (em_limit_remote_set(em_bp.st, &sum) != EM_OK) {
        em_bp.dropped++;
    }
}

/* Take host i's share out of the state segment (all of it, or with stale
 * the entries its last full list did not name); with report, the users it
 * leaves offline are reported. */
static void
em_bp_drop(unsigned i, int64_t now, int report, int stale)
{
    uint32_t     it = 0;
    em_bp_rem_t *r;

    while ((r = em_shtab_next(em_bp.rem, &it)) != NULL) {
        size_t      klen;
        const char *k = em_shtab_key(em_bp.rem, r, &klen);
        int         off = 0;
        if ((unsigned char) k[0] != i || (stale && r->gen == em_bp.hosts[i].gen)) {
            continue;
        }
        if (k[1] == EM_RPRES_LIMIT) {
            char lkey[EM_BP_KEY_MAX];
            memcpy(lkey, k + 2, klen - 2);
            em_shtab_del(em_bp.rem, r);
            em_bp_limit_sum((em_str_t) { lkey, klen - 2 }, now);
            continue;
        }
        em_prec_t p = { (unsigned char) k[1], { k + 2, klen - 2 }, 0, EM_ST_STATUS_OFFLINE, 0, 0,
                        { "", 0 }, 0 };
        (void) em_presence_remote_apply(em_bp.st, &p, -(int64_t) r->count, now, &off);
        if (report && off != 0) {
            em_bp_report(p.key);
        }
        em_shtab_del(em_bp.rem, r);
    }
}

static em_bp_host_t *
em_bp_host(em_str_t uid, int64_t now)
{
    em_bp_host_t *free_slot = NULL;

    for (unsigned i = 0; i < EM_BP_HOSTS; i++) {
        em_bp_host_t *h = &em_bp.hosts[i];
        if (h->used && h->uid_len == uid.len && memcmp(h->uid, uid.data, uid.len) == 0) {
            return h;
        }
        if (!h->used && free_slot == NULL) {
            free_slot = h;
        }
    }
    if (free_slot == NULL || uid.len >= sizeof(free_slot->uid)) {
        return NULL;
    }
    memset(free_slot, 0, sizeof(*free_slot));
    memcpy(free_slot->uid, uid.data, uid.len);
    free_slot->uid_len = uid.len;
    free_slot->used = 1;
    free_slot->heard = now;
    em_log(EM_LOG_INFO, 0, "redis: presence of host %.*s joined", (int) uid.len, uid.data);
    return free_slot;
}

/* One entry of host i: its new count replaces the one it had. */
static void
em_bp_apply(unsigned i, const em_rpres_ent_t *e, int64_t now)
{
    char         key[2 + EM_BP_KEY_MAX];
    em_bp_rem_t *r;
    int          created, off = 0;
    uint32_t     old;
    em_bp_host_t *h = &em_bp.hosts[i];

    if (e->key.len > EM_BP_KEY_MAX) {
        return;
    }
    key[0] = (char) i;
    key[1] = (char) e->type;
    memcpy(key + 2, e->key.data, e->key.len);
    if (e->type == EM_RPRES_LIMIT) {
        int live = (e->count > 0 && e->until > now) || e->blocked > now;
        r = live ? em_shtab_put(em_bp.rem, key, e->key.len + 2, &created, NULL)
                 : em_shtab_get(em_bp.rem, key, e->key.len + 2);
        if (r != NULL && live) {
            r->count = e->count;
            r->until = e->until;
            r->blocked = e->blocked;
            r->gen = h->gen;
        } else if (r != NULL) {
            em_shtab_del(em_bp.rem, r);
        } else if (live) {
            em_bp.dropped++;
            return;
        }
        em_bp_limit_sum(e->key, now);
        return;
    }
    r = e->count > 0 ? em_shtab_put(em_bp.rem, key, e->key.len + 2, &created, NULL)
                     : em_shtab_get(em_bp.rem, key, e->key.len + 2);
    if (r == NULL) {
        if (e->count > 0) {
            em_bp.dropped++;    /* no room for it */
        }
        return;
    }
    old = r->count;
    em_prec_t p = { key[1], e->key, e->count, e->status, e->connected_at, e->last_seen, e->info,
                    0 };
    if (em_presence_remote_apply(em_bp.st, &p, (int64_t) e->count - old, now, &off) == EM_OK) {
        r->count = e->count;
        r->gen = h->gen;
    } else {
        em_bp.dropped++;
    }
    /* Both hosts' last connections closed before they heard of each other:
     * the smaller uid reports it; the other makes sure it hears that ours
     * was not reported either (our next list may not say so any more). */
    if (off == EM_PREM_OFFLINE_PENDING && e->status == EM_RPRES_UNREPORTED) {
        if (em_bp_uid_less(em_bp.conf.uid, (em_str_t) { h->uid, h->uid_len })) {
            em_bp_report(e->key);
        } else {
            em_bp_unreported(e->key);
        }
    }
    if (r->count == 0) {
        em_shtab_del(em_bp.rem, r);
    }
}

void
em_broker_presence_message(const char *msg, size_t len)
{
    em_rpres_t    m;
    em_bp_host_t *h;
    int64_t       now = em_state_now();
    int           rc;
    unsigned      i;

    if (em_bp.st == NULL) {
        return;
    }
    rc = em_rpres_decode(msg, len, len / 4 + 1, EM_BP_KEY_MAX, EM_BP_INFO_MAX, &m);
    if (rc != EM_OK) {
        em_bp.refused++;
        if (now - em_bp.refused_logged >= 1000) {
            em_log(EM_LOG_WARN, 0, "redis: a presence message of %zu bytes dropped: %s (%llu so far)",
                   len, rc == EM_DECLINED ? "over a limit" : "not one", (unsigned long long) em_bp.refused);
            em_bp.refused_logged = now;
        }
        return;
    }
    if (m.uid.len == em_bp.conf.uid.len && memcmp(m.uid.data, em_bp.conf.uid.data, m.uid.len) == 0) {
        goto done;              /* this host's own, back from Redis */
    }
    if ((h = em_bp_host(m.uid, now)) == NULL) {
        goto done;
    }
    i = (unsigned) (h - em_bp.hosts);
    h->heard = now;
    if (m.flags & EM_RPRES_SYNC) {
        if (m.target.len == 0
            || (m.target.len == em_bp.conf.uid.len
                && memcmp(m.target.data, em_bp.conf.uid.data, m.target.len) == 0)) {
            em_bp.full = 1;     /* in the next pass */
        }
        h->next_seq = m.seq + 1;
        goto done;
    }
    if (m.flags & EM_RPRES_RESET) {
        h->gen++;               /* what the list does not name goes at its end */
    } else if (h->next_seq != m.seq) {
        em_bp_ask(h, now);      /* a message missed, or a host not heard before */
    }
    h->next_seq = m.seq + 1;
    for (size_t j = 0; j < m.n; j++) {
        em_bp_apply(i, &m.v[j], now);
    }
    if (m.flags & EM_RPRES_END) {
        em_bp_drop(i, now, 0, 1);
    }
    em_bp_send((em_str_t) { "", 0 }, 0);    /* what em_bp_unreported() added */
done:
    em_rpres_free(&m);
}

void
em_broker_presence_up(void)
{
    if (em_bp.st == NULL) {
        return;
    }
    em_bp.full = 1;
    em_bp_ask(NULL, em_state_now());
    em_bp_publish();
}

static void
em_bp_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = em_state_now();

    (void) fd;
    (void) what;
    (void) arg;
    em_bp_publish();
    if (em_bp.dropped != em_bp.dropped_logged && now - em_bp.dropped_when >= 10000) {
        em_log(EM_LOG_WARN, 0, "redis: %llu presence, room or rate-limit entries could not be kept "
               "or sent (a table full, or an entry over redis.max_message)",
               (unsigned long long) (em_bp.dropped - em_bp.dropped_logged));
        em_bp.dropped_logged = em_bp.dropped;
        em_bp.dropped_when = now;
    }
    for (unsigned i = 0; i < EM_BP_HOSTS; i++) {
        em_bp_host_t *h = &em_bp.hosts[i];
        if (h->used && now - h->heard > EM_BP_TIMEOUT) {
            em_log(EM_LOG_WARN, 0, "redis: host %.*s not heard for %d ms: its presence is dropped",
                   (int) h->uid_len, h->uid, EM_BP_TIMEOUT);
            em_bp_drop(i, now, em_bp_smallest(i), 0);
            h->used = 0;
        }
    }
}

int
em_broker_presence_start(struct event_base *base, em_state_t *st,
                         const em_broker_presence_conf_t *conf)
{
    em_state_sizes_t sz;
    struct timeval   tv = { EM_BP_PERIOD / 1000, (EM_BP_PERIOD % 1000) * 1000 };

    memset(&em_bp, 0, sizeof(em_bp));
    em_bp.base = base;
    em_bp.conf = *conf;
    em_state_default_sizes(&sz);
    /* every entry this host can have, and four other hosts' */
    em_bp.pub = em_bp_table(sz.users + sz.rooms + sz.limits, 1 + EM_BP_KEY_MAX, sizeof(em_bp_pub_t),
                            &em_bp.pub_size);
    em_bp.rem = em_bp_table(4 * (sz.users + sz.rooms + sz.limits), 2 + EM_BP_KEY_MAX,
                            sizeof(em_bp_rem_t), &em_bp.rem_size);
    em_bp.tick = event_new(base, -1, EV_PERSIST, em_bp_tick_cb, NULL);
    if (em_bp.pub == NULL || em_bp.rem == NULL || em_bp.tick == NULL || event_add(em_bp.tick, &tv) != 0) {
        em_log(EM_LOG_ERR, 0, "redis: cannot set up presence across hosts");
        em_broker_presence_stop();
        return EM_ERROR;
    }
    em_rpres_out_init(&em_bp.out);
    em_bp.st = st;
    /* the shares a broker before this one added: nobody knows them now */
    em_presence_remote_clear(st, em_state_now());
    em_limit_remote_clear(st);
    em_bp.full = 1;
    return EM_OK;
}

void
em_broker_presence_stop(void)
{
    if (em_bp.tick != NULL) {
        event_free(em_bp.tick);
    }
    if (em_bp.pub != NULL) {
        munmap(em_bp.pub, em_bp.pub_size);
    }
    if (em_bp.rem != NULL) {
        munmap(em_bp.rem, em_bp.rem_size);
    }
    if (em_bp.st != NULL) {
        em_rpres_out_free(&em_bp.out);
    }
    memset(&em_bp, 0, sizeof(em_bp));
}
