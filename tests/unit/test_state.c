/*
 * test_state.c - unit tests of the cluster-wide state segment
 * (state/em_state.h): the shared hash table and its LRU (scripts), rate
 * limits (scripts of hits at explicit times), presence and room counts per
 * worker slot, the sweep of a dead worker's share, other hosts' shares
 * (presence across hosts: the broker's), recovery sessions, the
 * packet log as a byte ring (checked against a model while it wraps),
 * monitoring figures, and processes sharing one segment: a child that maps
 * it, two children racing on it, and a child that dies holding a zone lock.
 */
#include <check.h>

#include "em_check.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "em_state.h"

/* Loops check with this instead of ck_assert*(), which writes a mark point
 * every time even when it holds. */
#define CHECK(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

/* ---- helpers ------------------------------------------------------------ */

static em_state_t st = { .fd = -1 };
static pid_t      kids[2] = { -1, -1 };

static void
small_sizes(em_state_sizes_t *sz)
{
    em_state_default_sizes(sz);
    sz->limits = 16;
    sz->users = 32;
    sz->rooms = 64;
    sz->sessions = 8;
    sz->log_bytes = 4096;
    sz->ips = 8;
}

static void
state_close(void)
{
    for (size_t i = 0; i < EM_NELEMS(kids); i++) {
        if (kids[i] > 0) {
            kill(kids[i], SIGKILL);
            (void) waitpid(kids[i], NULL, 0);
            kids[i] = -1;
        }
    }
    em_state_unmap(&st);
    if (st.fd >= 0) {
        close(st.fd);
    }
    st.fd = -1;
}

static void
state_open(const em_state_sizes_t *sz)
{
    state_close();
    ck_assert_int_eq(em_state_create(&st, 4, sz), EM_OK);
    ck_assert_ptr_nonnull(st.hdr);
    ck_assert_int_ge(st.fd, 0);
}

static void
state_setup(void)
{
    em_state_sizes_t sz;

    small_sizes(&sz);
    state_open(&sz);
}

static em_shtab_t *
tab_at(uint64_t off)
{
    return (em_shtab_t *) ((char *) st.hdr + off);
}

static em_plog_t *
plog(void)
{
    return (em_plog_t *) ((char *) st.hdr + st.hdr->plog_off);
}

/* Wait for a child at most 10 s (then kill it); its status or -1. */
static int
wait_child(pid_t *pid)
{
    int status = -1;

    for (int i = 0; i < 1000; i++) {
        pid_t r = waitpid(*pid, &status, WNOHANG);
        if (r == *pid) {
            *pid = -1;
            return status;
        }
        if (r < 0 && errno != EINTR) {
            *pid = -1;
            return -1;
        }
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    kill(*pid, SIGKILL);
    (void) waitpid(*pid, NULL, 0);
    *pid = -1;
    return -1;
}

#define ck_child_ok(pidp)                                                               \
    do {                                                                                \
        int st_ = wait_child(pidp);                                                     \
        ck_assert_msg(st_ != -1 && WIFEXITED(st_) && WEXITSTATUS(st_) == 0,             \
                      "child: status %#x (exit %d)", st_, WIFEXITED(st_) ? WEXITSTATUS(st_) : -1); \
    } while (0)

/* How many changes of that kind name nsp, room (NULL: none) and user. */
static size_t
chg_count(const em_pchanges_t *c, int what, const char *nsp, const char *room, const char *user)
{
    size_t n = 0;

    for (size_t i = 0; i < c->n; i++) {
        const em_pchange_t *p = &c->v[i];
        if (p->what == what && strcmp(p->nsp, nsp) == 0 && strcmp(p->user, user) == 0
            && (room == NULL ? p->room == NULL : p->room != NULL && strcmp(p->room, room) == 0)) {
            n++;
        }
    }
    return n;
}

/* Names handed to a presence callback. */
typedef struct {
    char   v[64][EM_ST_NAME_MAX];
    int    status[64];
    size_t n;
} names_t;

static void
names_add(const em_presence_t *p, void *arg)
{
    names_t *l = arg;

    if (l->n < EM_NELEMS(l->v)) {
        memcpy(l->v[l->n], p->user, p->user_len);
        l->v[l->n][p->user_len] = '\0';
        l->status[l->n] = p->status;
        l->n++;
    }
}

/* Do the names equal the space-separated set want (any order)? */
static void
names_expect(const names_t *l, const char *want, const char *what)
{
    char   buf[512], *save = NULL;
    size_t n = 0;

    snprintf(buf, sizeof(buf), "%s", want);
    for (char *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        size_t hits = 0;
        for (size_t i = 0; i < l->n; i++) {
            hits += strcmp(l->v[i], tok) == 0;
        }
        ck_assert_msg(hits == 1, "%s: \"%s\" seen %zu times", what, tok, hits);
        n++;
    }
    ck_assert_msg(l->n == n, "%s: %zu names, want %zu (%s)", what, l->n, n, want);
}

static em_st_session_t *
sess(em_st_session_t *s, int kind, unsigned slot, uint32_t pid, int64_t created, int64_t expires,
     const char *sid)
{
    memset(s, 0, sizeof(*s));
    s->kind = (uint8_t) kind;
    s->owner_slot = (uint16_t) slot;
    s->owner_pid = pid;
    s->created = created;
    s->last_activity = created;
    s->expires = expires;
    snprintf(s->sid, sizeof(s->sid), "%s", sid);
    s->nsp[0] = '/';
    s->nsp_len = 1;
    return s;
}

/* NULL-terminated C strings to slices; returns how many. */
static size_t
strs(em_str_t *out, const char *const *in, size_t max)
{
    size_t n = 0;

    while (n < max && in[n] != NULL) {
        out[n] = S(in[n]);
        n++;
    }
    return n;
}

static uint64_t
plog_put(const char *nsp, const char *const *rooms, const char *const *except, em_str_t data,
         const em_str_t *atts, size_t natt, int64_t now)
{
    static const char *const none[] = { NULL };
    em_str_t                 r[8], e[8];
    size_t                   nr = strs(r, rooms ? rooms : none, 8);
    size_t                   ne = strs(e, except ? except : none, 8);
    uint64_t                 off = em_plog_begin(&st);

    em_plog_commit(&st, off, S(nsp), r, nr, e, ne, data, atts, natt, now);
    return off;
}

static size_t
pkts_count(const em_plog_pkt_t *p)
{
    size_t n = 0;

    for (; p != NULL; p = p->next) {
        n++;
    }
    return n;
}

/* Deterministic bytes for record i. */
static void
fill_bytes(unsigned char *p, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char) x;
    }
}

/* ---- em_shtab: scripts --------------------------------------------------- */

typedef struct {
    uint64_t id;        /* derived from the key: proves the value was kept whole */
    uint32_t pinned;    /* keys starting with '!' */
    uint32_t reserved;
} sh_val_t;

static uint64_t
key_id(const char *k, size_t len)
{
    uint64_t h = 5381 + len;

    for (size_t i = 0; i < len; i++) {
        h = h * 33 + (unsigned char) k[i];
    }
    return h;
}

static int
evict_any(const void *v)
{
    (void) v;
    return 1;
}

static int
evict_unpinned(const void *v)
{
    return !((const sh_val_t *) v)->pinned;
}

static em_shtab_t *
tab_new(uint32_t cap, uint32_t key_max, size_t *size)
{
    void *m;

    *size = em_shtab_size(cap, key_max, sizeof(sh_val_t));
    m = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(m, MAP_FAILED);
    em_shtab_init(m, cap, key_max, sizeof(sh_val_t));
    return m;
}

static sh_val_t *
tab_put(em_shtab_t *t, const char *key, int *created, em_shtab_evict_pt ev)
{
    sh_val_t *v = em_shtab_put(t, key, strlen(key), created, ev);

    if (v != NULL && *created) {
        v->id = key_id(key, strlen(key));
        v->pinned = key[0] == '!';
    }
    return v;
}

static em_shent_t *
tab_ent(em_shtab_t *t, uint32_t idx1)
{
    return (em_shent_t *) ((char *) t + t->entries_off + (uint64_t) (idx1 - 1) * t->entry_size);
}

static em_shent_t *
tab_ent_of(em_shtab_t *t, void *v)
{
    return (em_shent_t *) ((char *) v - t->key_max - sizeof(em_shent_t));
}

/* Iteration sees exactly the space-separated keys of want, each value whole. */
static void
tab_expect_live(em_shtab_t *t, const char *want, const char *what)
{
    char      buf[512], *save = NULL, *tok[64];
    int       seen[64] = { 0 };
    size_t    ntok = 0, n = 0;
    uint32_t  it = 0;
    sh_val_t *v;

    snprintf(buf, sizeof(buf), "%s", want);
    for (char *p = strtok_r(buf, " ", &save); p && ntok < 64; p = strtok_r(NULL, " ", &save)) {
        tok[ntok++] = p;
    }
    while ((v = em_shtab_next(t, &it)) != NULL) {
        size_t      klen;
        const char *k = em_shtab_key(t, v, &klen);
        size_t      j;
        for (j = 0; j < ntok; j++) {
            if (strlen(tok[j]) == klen && memcmp(tok[j], k, klen) == 0) {
                break;
            }
        }
        ck_assert_msg(j < ntok, "%s: unexpected live key \"%.*s\"", what, (int) klen, k);
        ck_assert_msg(!seen[j], "%s: key \"%s\" iterated twice", what, tok[j]);
        ck_assert_msg(v->id == key_id(k, klen), "%s: value of \"%s\" damaged", what, tok[j]);
        seen[j] = 1;
        n++;
    }
    ck_assert_msg(n == ntok, "%s: %zu live, want %zu (%s)", what, n, ntok, want);
    ck_assert_msg(t->used == ntok, "%s: used %u, want %zu", what, t->used, ntok);
}

typedef struct {
    char        op;     /* p put, g get, d del (must exist), l live set, e evicted count */
    const char *key;    /* l: the live keys, space-separated */
    int         want;   /* p: 1 created, 0 found, -1 NULL; g: 1 found, 0 absent; e: count */
} sh_op_t;

typedef struct {
    const char *name;
    uint32_t    capacity;
    uint32_t    key_max;
    int         policy;     /* 0: can_evict NULL; 1: anything; 2: keys not starting with '!' */
    sh_op_t     ops[24];
} sh_script_t;

static const sh_script_t sh_scripts[] = {
    { "put get del", 4, 16, 0, {
        { 'p', "a", 1 }, { 'p', "a", 0 }, { 'g', "a", 1 }, { 'g', "b", 0 }, { 'p', "b", 1 },
        { 'd', "a", 0 }, { 'g', "a", 0 }, { 'l', "b", 0 }, { 'p', "a", 1 }, { 'g', "a", 1 },
        { 'l', "a b", 0 }, { 'e', NULL, 0 } } },
    { "key length", 4, 16, 0, {
        { 'p', "0123456789abcdefX", -1 }, { 'g', "0123456789abcdefX", 0 },
        { 'p', "0123456789abcdef", 1 }, { 'g', "0123456789abcdef", 1 },
        { 'g', "0123456789abcde", 0 }, { 'l', "0123456789abcdef", 0 } } },
    { "similar keys are distinct", 8, 16, 0, {
        { 'p', "ab", 1 }, { 'p', "ba", 1 }, { 'p', "abc", 1 }, { 'p', "a", 1 },
        { 'g', "ab", 1 }, { 'g', "abcd", 0 }, { 'd', "ab", 0 }, { 'g', "abc", 1 }, { 'g', "a", 1 },
        { 'g', "ab", 0 }, { 'l', "ba abc a", 0 } } },
    { "full: the least recently used goes", 3, 16, 1, {
        { 'p', "a", 1 }, { 'p', "b", 1 }, { 'p', "c", 1 }, { 'g', "a", 1 },
        { 'p', "d", 1 }, { 'l', "a c d", 0 }, { 'e', NULL, 1 },
        { 'p', "e", 1 }, { 'l', "a d e", 0 }, { 'e', NULL, 2 },
        { 'g', "d", 1 }, { 'p', "f", 1 }, { 'l', "d e f", 0 }, { 'e', NULL, 3 } } },
    { "full: a put of a present key refreshes it", 3, 16, 1, {
        { 'p', "a", 1 }, { 'p', "b", 1 }, { 'p', "c", 1 }, { 'p', "a", 0 },
        { 'p', "d", 1 }, { 'l', "a c d", 0 }, { 'p', "e", 1 }, { 'l', "a d e", 0 },
        { 'e', NULL, 2 } } },
    { "full, no can_evict: a new key is refused", 2, 16, 0, {
        { 'p', "a", 1 }, { 'p', "b", 1 }, { 'p', "c", -1 }, { 'g', "c", 0 },
        { 'l', "a b", 0 }, { 'e', NULL, 0 }, { 'p', "a", 0 }, { 'd', "a", 0 },
        { 'p', "c", 1 }, { 'l', "b c", 0 }, { 'p', "a", -1 }, { 'p', "b", 0 }, { 'e', NULL, 0 } } },
    { "full: only what can_evict allows goes", 3, 16, 2, {
        { 'p', "!a", 1 }, { 'p', "!b", 1 }, { 'p', "c", 1 }, { 'g', "!a", 1 }, { 'g', "!b", 1 },
        { 'p', "d", 1 }, { 'l', "!a !b d", 0 }, { 'p', "!e", 1 }, { 'l', "!a !b !e", 0 },
        { 'p', "f", -1 }, { 'e', NULL, 2 }, { 'd', "!b", 0 }, { 'p', "f", 1 },
        { 'l', "!a !e f", 0 }, { 'p', "g", 1 }, { 'l', "!a !e g", 0 }, { 'e', NULL, 3 } } },
    { "freed entries are reused", 3, 16, 0, {
        { 'p', "a", 1 }, { 'p', "b", 1 }, { 'p', "c", 1 }, { 'd', "b", 0 }, { 'p', "d", 1 },
        { 'l', "a c d", 0 }, { 'd', "a", 0 }, { 'd', "c", 0 }, { 'd', "d", 0 }, { 'l', "", 0 },
        { 'p', "x", 1 }, { 'p', "y", 1 }, { 'p', "z", 1 }, { 'p', "w", -1 }, { 'l', "x y z", 0 } } },
    { "capacity 1", 1, 8, 1, {
        { 'p', "a", 1 }, { 'p', "b", 1 }, { 'g', "a", 0 }, { 'l', "b", 0 }, { 'e', NULL, 1 } } },
};

START_TEST(test_shtab_script)
{
    const sh_script_t *s = &sh_scripts[_i];
    em_shtab_evict_pt  ev = s->policy == 0 ? NULL : s->policy == 1 ? evict_any : evict_unpinned;
    size_t             size;
    em_shtab_t        *t = tab_new(s->capacity, s->key_max, &size);

    for (const sh_op_t *op = s->ops; op->op != 0; op++) {
        int       step = (int) (op - s->ops), created = -1;
        char      what[128];
        sh_val_t *v;

        snprintf(what, sizeof(what), "%s: step %d", s->name, step);
        switch (op->op) {
        case 'p':
            v = tab_put(t, op->key, &created, ev);
            if (op->want < 0) {
                ck_assert_msg(v == NULL, "%s: put \"%s\" not refused", what, op->key);
            } else {
                ck_assert_msg(v != NULL, "%s: put \"%s\" refused", what, op->key);
                ck_assert_msg(created == op->want, "%s: put \"%s\": created %d", what, op->key,
                              created);
                ck_assert_msg(v->id == key_id(op->key, strlen(op->key)), "%s: value damaged", what);
            }
            break;
        case 'g':
            v = em_shtab_get(t, op->key, strlen(op->key));
            ck_assert_msg((v != NULL) == op->want, "%s: get \"%s\" found %d", what, op->key,
                          v != NULL);
            if (v != NULL) {
                ck_assert_msg(v->id == key_id(op->key, strlen(op->key)), "%s: value damaged", what);
            }
            break;
        case 'd':
            v = em_shtab_get(t, op->key, strlen(op->key));
            ck_assert_msg(v != NULL, "%s: \"%s\" absent", what, op->key);
            em_shtab_del(t, v);
            break;
        case 'l':
            tab_expect_live(t, op->key, what);
            break;
        case 'e':
            ck_assert_msg(t->evicted == (uint64_t) op->want, "%s: evicted %llu, want %d", what,
                          (unsigned long long) t->evicted, op->want);
            break;
        }
    }
    munmap(t, size);
}
END_TEST

/* Keys crowd into few buckets: every operation still finds exactly its key. */
START_TEST(test_shtab_collisions)
{
    size_t      size;
    em_shtab_t *t = tab_new(200, 16, &size);
    uint32_t   *b = (uint32_t *) ((char *) t + t->buckets_off);
    char        key[32];
    int         created;
    uint32_t    longest = 0, it = 0, n = 0;

    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        CHECK(tab_put(t, key, &created, NULL) != NULL && created, "put %s", key);
    }
    for (uint32_t i = 0; i < t->nbuckets; i++) {
        uint32_t len = 0;
        for (uint32_t j = b[i]; j != 0; j = tab_ent(t, j)->hnext) {
            len++;
        }
        longest = len > longest ? len : longest;
    }
    ck_assert_uint_ge(longest, 3);      /* 200 keys in 256 buckets: chains are certain */
    snprintf(key, sizeof(key), "key-%d", 200);
    ck_assert_ptr_null(tab_put(t, key, &created, NULL));

    for (int i = 0; i < 200; i += 2) {
        snprintf(key, sizeof(key), "key-%d", i);
        sh_val_t *v = em_shtab_get(t, key, strlen(key));
        CHECK(v != NULL, "get %s", key);
        em_shtab_del(t, v);
    }
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        sh_val_t *v = em_shtab_get(t, key, strlen(key));
        CHECK((v != NULL) == (i % 2 == 1), "after deleting the even keys: %s found %d", key,
              v != NULL);
        CHECK(v == NULL || v->id == key_id(key, strlen(key)), "%s damaged", key);
    }
    for (int i = 200; i < 300; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        CHECK(tab_put(t, key, &created, NULL) != NULL && created, "put %s into a freed entry", key);
    }
    ck_assert_ptr_null(tab_put(t, "one-more", &created, NULL));
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        sh_val_t *v = em_shtab_get(t, key, strlen(key));
        int       live = i >= 200 || i % 2 == 1;
        CHECK((v != NULL) == live, "%s found %d", key, v != NULL);
        CHECK(v == NULL || v->id == key_id(key, strlen(key)), "%s damaged", key);
    }
    while (em_shtab_next(t, &it) != NULL) {
        n++;
    }
    ck_assert_uint_eq(n, 200);
    ck_assert_uint_eq(t->used, 200);
    munmap(t, size);
}
END_TEST

/* Deleting the value just returned while iterating: each entry is seen once. */
START_TEST(test_shtab_iterate_delete)
{
    size_t      size;
    em_shtab_t *t = tab_new(32, 16, &size);
    char        key[32], want[256] = "";
    int         created, seen[30] = { 0 };
    uint32_t    it = 0;
    sh_val_t   *v;

    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_ptr_nonnull(tab_put(t, key, &created, NULL));
    }
    while ((v = em_shtab_next(t, &it)) != NULL) {
        size_t      klen;
        const char *k = em_shtab_key(t, v, &klen);
        int         i = atoi(k + 1);
        ck_assert_int_eq(seen[i], 0);
        seen[i] = 1;
        if (i % 3 == 0) {
            em_shtab_del(t, v);
        }
    }
    for (int i = 0; i < 30; i++) {
        ck_assert_int_eq(seen[i], 1);
        if (i % 3 != 0) {
            snprintf(key, sizeof(key), "k%d ", i);
            strcat(want, key);
        }
    }
    tab_expect_live(t, want, "after deleting while iterating");
    munmap(t, size);
}
END_TEST

/* A crash left the links garbage: rebuild finds every whole entry again. */
START_TEST(test_shtab_rebuild)
{
    size_t      size;
    em_shtab_t *t = tab_new(64, 16, &size);
    uint32_t   *b = (uint32_t *) ((char *) t + t->buckets_off);
    char        key[32];
    int         created, added = 0;
    sh_val_t   *v;

    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_ptr_nonnull(tab_put(t, key, &created, NULL));
    }
    for (int i = 3; i < 50; i += 10) {          /* k3 k13 k23 k33 k43: on the free list */
        snprintf(key, sizeof(key), "k%d", i);
        em_shtab_del(t, em_shtab_get(t, key, strlen(key)));
    }
    ck_assert_ptr_nonnull(em_shtab_get(t, "k10", 3));

    /* Half-written entries: k7's key no longer matches its hash, k8's length is absurd. */
    v = em_shtab_get(t, "k7", 2);
    ck_assert_ptr_nonnull(v);
    {
        size_t klen;
        char  *k = (char *) em_shtab_key(t, v, &klen);
        k[1] = 'X';
    }
    tab_ent_of(t, em_shtab_get(t, "k8", 2))->key_len = 200;

    /* Garbage links everywhere. */
    for (uint32_t i = 0; i < t->nbuckets; i++) {
        b[i] = (i * 7) % 50 + 1;
    }
    for (uint32_t i = 1; i <= 50; i++) {
        em_shent_t *e = tab_ent(t, i);
        e->hnext = 0xdeadbeef;
        e->lprev = 77;
        e->lnext = 3;
    }
    t->free_head = 999;
    t->lru_head = 5;
    t->lru_tail = 6;
    t->used = 3;
    t->high = t->capacity + 10;

    em_shtab_rebuild(t);

    ck_assert_uint_eq(t->used, 43);
    ck_assert_uint_le(t->high, t->capacity);
    for (int i = 0; i < 50; i++) {
        int live = i % 10 != 3 && i != 7 && i != 8;
        snprintf(key, sizeof(key), "k%d", i);
        v = em_shtab_get(t, key, strlen(key));
        CHECK((v != NULL) == live, "after rebuild: %s found %d", key, v != NULL);
        CHECK(v == NULL || v->id == key_id(key, strlen(key)), "%s damaged", key);
    }
    ck_assert_ptr_null(em_shtab_get(t, "kX", 2));
    {
        uint32_t it = 0, n = 0;
        while (em_shtab_next(t, &it) != NULL) {
            n++;
        }
        ck_assert_uint_eq(n, 43);
    }

    /* The free list holds exactly the free entries: the table fills to capacity. */
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "n%d", i);
        if (tab_put(t, key, &created, NULL) == NULL) {
            break;
        }
        ck_assert_int_eq(created, 1);
        added++;
    }
    ck_assert_int_eq(added, 64 - 43);
    for (int i = 0; i < 50; i++) {
        int live = i % 10 != 3 && i != 7 && i != 8;
        snprintf(key, sizeof(key), "k%d", i);
        v = em_shtab_get(t, key, strlen(key));
        CHECK((v != NULL) == live && (v == NULL || v->id == key_id(key, strlen(key))),
              "after refilling: %s", key);
    }
    /* And the LRU list is whole again: a full table evicts. */
    ck_assert_ptr_nonnull(tab_put(t, "evicts", &created, evict_any));
    ck_assert_uint_eq(t->evicted, 1);
    ck_assert_uint_eq(t->used, 64);
    munmap(t, size);
}
END_TEST

/*
 * em_state.h: "when the table is full, drops the least recently used entry
 * can_evict allows". More than EM_SHTAB_EVICT_SCAN (64) entries at the LRU
 * tail that may not go (online users, held sessions) must not hide the
 * evictable ones behind them.
 */
START_TEST(test_shtab_evict_behind_pinned)
{
    size_t      size;
    em_shtab_t *t = tab_new(100, 16, &size);
    char        key[32];
    int         created;

    for (int i = 0; i < 70; i++) {
        snprintf(key, sizeof(key), "!p%d", i);
        ck_assert_ptr_nonnull(tab_put(t, key, &created, evict_unpinned));
    }
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof(key), "u%d", i);
        ck_assert_ptr_nonnull(tab_put(t, key, &created, evict_unpinned));
    }
    ck_assert_uint_eq(t->used, 100);
    ck_assert_msg(tab_put(t, "new", &created, evict_unpinned) != NULL,
                  "a full table with 30 evictable entries refused a new key "
                  "(only the 64 least recently used are looked at)");
    ck_assert_ptr_null(em_shtab_get(t, "u0", 2));      /* the LRU evictable one went */
    ck_assert_uint_eq(t->evicted, 1);
    munmap(t, size);
}
END_TEST

/* ---- the segment ---------------------------------------------------------- */

START_TEST(test_state_create_map)
{
    em_state_sizes_t sz;
    em_state_t       bad, m;
    int              fd;

    small_sizes(&sz);
    ck_assert_int_eq(em_state_create(&bad, 0, &sz), EM_ERROR);
    ck_assert_int_eq(em_state_create(&bad, EM_STATE_SLOTS + 1, &sz), EM_ERROR);
    sz.log_bytes = 4095;
    ck_assert_int_eq(em_state_create(&bad, 2, &sz), EM_ERROR);
    ck_assert_int_eq(bad.fd, -1);

    ck_assert_uint_eq(st.hdr->magic, EM_STATE_MAGIC);
    ck_assert_uint_eq(st.hdr->nworkers, 4);
    ck_assert_uint_eq(st.hdr->size, st.size);
    ck_assert_uint_eq(tab_at(st.hdr->limits_off)->capacity, 16);
    ck_assert_uint_eq(tab_at(st.hdr->users_off)->capacity, 32);
    ck_assert_uint_eq(plog()->size, 4096);
    ck_assert_uint_eq(plog()->next_offset, 1);
    ck_assert_uint_eq(em_plog_next_offset(&st), 1);

    /* A second mapping of the same bytes. */
    ck_assert_int_eq(em_state_map(&m, st.fd), EM_OK);
    ck_assert_ptr_ne(m.hdr, st.hdr);
    em_state_slot_set(&m, 3, 4242);
    ck_assert_uint_eq(em_state_slot_pid(&st, 3), 4242);
    ck_assert_uint_eq(em_state_slot_pid(&st, EM_STATE_SLOTS), 0);
    /* Slot modes for a reload: free, serving, draining, free again. */
    ck_assert_int_eq(em_state_slot_used(&st, 5), EM_SLOT_FREE);
    em_state_slot_mode(&m, 5, EM_SLOT_SERVING);
    em_state_slot_mode(&m, 63, EM_SLOT_SERVING);
    ck_assert_int_eq(em_state_slot_used(&st, 5), EM_SLOT_SERVING);
    ck_assert_int_eq(em_state_slot_used(&st, 63), EM_SLOT_SERVING);
    ck_assert_int_eq(em_state_slot_used(&st, 4), EM_SLOT_FREE);
    em_state_slot_mode(&m, 5, EM_SLOT_DRAINING);
    ck_assert_int_eq(em_state_slot_used(&st, 5), EM_SLOT_DRAINING);
    ck_assert_int_eq(em_state_slot_used(&st, 63), EM_SLOT_SERVING);
    em_state_slot_mode(&m, 5, EM_SLOT_FREE);
    ck_assert_int_eq(em_state_slot_used(&st, 5), EM_SLOT_FREE);
    em_state_slot_mode(&m, 5, EM_SLOT_SERVING);
    ck_assert_int_eq(em_state_slot_used(&st, 5), EM_SLOT_SERVING);
    ck_assert_int_eq(em_state_slot_used(&st, EM_STATE_SLOTS), EM_SLOT_FREE);
    em_state_unmap(&m);
    ck_assert_ptr_null(m.hdr);

    /* Not a state segment: zeros, too small, a header whose size disagrees. */
    fd = memfd_create("not-state", MFD_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 100), 0);
    ck_assert_int_eq(em_state_map(&m, fd), EM_ERROR);
    ck_assert_int_eq(ftruncate(fd, 8192), 0);
    ck_assert_int_eq(em_state_map(&m, fd), EM_ERROR);
    ck_assert_int_eq(pwrite(fd, st.hdr, sizeof(em_state_hdr_t), 0), (ssize_t) sizeof(em_state_hdr_t));
    ck_assert_int_eq(em_state_map(&m, fd), EM_ERROR);
    ck_assert_ptr_null(m.hdr);
    close(fd);
    ck_assert_int_eq(em_state_map(&m, -1), EM_ERROR);
}
END_TEST

/* ---- rate limits ------------------------------------------------------------ */

typedef struct {
    int64_t  now;
    int      allowed;
    uint32_t remaining;
    int64_t  retry_after;
} lim_step_t;

typedef struct {
    const char *name;
    uint32_t    max;
    int64_t     window;
    int64_t     block;
    lim_step_t  steps[16];
} lim_script_t;

static const lim_script_t lim_scripts[] = {
    { "5 per second, then blocked 5 s", 5, 1000, 5000, {
        { 0, 1, 4, 0 }, { 10, 1, 3, 0 }, { 20, 1, 2, 0 }, { 30, 1, 1, 0 }, { 40, 1, 0, 0 },
        { 50, 0, 0, 5000 },         /* 6th: blocked */
        { 60, 0, 0, 4990 },         /* still blocked */
        { 1000, 0, 0, 4050 },       /* a new window does not end the block */
        { 5049, 0, 0, 1 },
        { 5050, 1, 4, 0 },          /* block over: a fresh window */
        { 5051, 1, 3, 0 }, { 5052, 1, 2, 0 } } },
    { "5 per second, no block", 5, 1000, 0, {
        { 0, 1, 4, 0 }, { 100, 1, 3, 0 }, { 200, 1, 2, 0 }, { 300, 1, 1, 0 }, { 400, 1, 0, 0 },
        { 500, 0, 0, 500 }, { 999, 0, 0, 1 },
        { 1000, 1, 4, 0 },          /* the window rolled over */
        { 1500, 1, 3, 0 },
        { 2000, 1, 4, 0 } } },
    { "the window is opened by the first hit", 2, 1000, 0, {
        { 5000, 1, 1, 0 }, { 5999, 1, 0, 0 }, { 6000, 1, 1, 0 }, { 6500, 1, 0, 0 },
        { 6999, 0, 0, 1 }, { 7000, 1, 1, 0 } } },
    { "a block shorter than the window", 1, 10000, 100, {
        { 0, 1, 0, 0 }, { 1, 0, 0, 100 }, { 50, 0, 0, 51 }, { 101, 1, 0, 0 }, { 102, 0, 0, 100 } } },
    { "the clock went back", 2, 1000, 0, {
        { 5000, 1, 1, 0 }, { 5001, 1, 0, 0 }, { 4000, 1, 1, 0 } } },
};

START_TEST(test_limit_script)
{
    const lim_script_t *s = &lim_scripts[_i];

    for (const lim_step_t *p = s->steps; p == s->steps || p->now != 0; p++) {
        em_limit_result_t r;
        int               step = (int) (p - s->steps);

        em_limit_hit(&st, s->name, strlen(s->name), s->max, s->window, s->block, p->now, &r);
        ck_assert_msg(r.allowed == p->allowed, "%s: step %d (t=%lld): allowed %d", s->name, step,
                      (long long) p->now, r.allowed);
        if (r.allowed) {
            ck_assert_msg(r.remaining == p->remaining, "%s: step %d: remaining %u, want %u",
                          s->name, step, r.remaining, p->remaining);
        } else {
            ck_assert_msg(r.retry_after == p->retry_after, "%s: step %d: retry_after %lld, want %lld",
                          s->name, step, (long long) r.retry_after, (long long) p->retry_after);
        }
    }
}
END_TEST

/* Other hosts' hits of a key count while their window lasts; their block
 * holds here too; the local list gives this host's share only. */
typedef struct {
    em_lrec_t v[8];
    char      keys[8][128];
    size_t    n;
} lrecs_t;

static void
collect_limit(const em_lrec_t *r, void *arg)
{
    lrecs_t *l = arg;

    if (l->n < 8) {
        l->v[l->n] = *r;
        memcpy(l->keys[l->n], r->key.data, r->key.len);
        l->v[l->n].key.data = l->keys[l->n];
        l->n++;
    }
}

START_TEST(test_limit_remote)
{
    em_limit_result_t r;
    lrecs_t           l = { 0 };
    em_lrec_t         rem = { EM_STR("msg:u1"), 3, 10000, 0 };

    /* 3 hits elsewhere, window until t=10000: 2 of max 5 left here */
    ck_assert_int_eq(em_limit_remote_set(&st, &rem), EM_OK);
    em_limit_hit(&st, "msg:u1", 6, 5, 60000, 0, 1000, &r);
    ck_assert_int_eq(r.allowed, 1);
    ck_assert_uint_eq(r.remaining, 1);
    em_limit_hit(&st, "msg:u1", 6, 5, 60000, 0, 1100, &r);
    ck_assert_int_eq(r.allowed, 1);
    ck_assert_uint_eq(r.remaining, 0);
    em_limit_hit(&st, "msg:u1", 6, 5, 60000, 0, 1200, &r);
    ck_assert_int_eq(r.allowed, 0);
    ck_assert_int_eq(r.retry_after, 10000 - 1200);   /* when the others' hits stop counting */
    /* the local list: this host's 2 hits, its window's end */
    em_limit_local_each(&st, 1300, collect_limit, &l);
    ck_assert_uint_eq(l.n, 1);
    ck_assert_uint_eq(l.v[0].count, 2);
    ck_assert_int_eq(l.v[0].until, 61000);
    ck_assert_int_eq(l.v[0].blocked, 0);
    /* the other hosts' window is over at 10000: their hits no longer count */
    em_limit_hit(&st, "msg:u1", 6, 5, 60000, 0, 10000, &r);
    ck_assert_int_eq(r.allowed, 1);
    ck_assert_uint_eq(r.remaining, 2);

    /* a block elsewhere holds here, on a key this host never hit */
    em_lrec_t blk = { EM_STR("connect\n0\n10.0.0.1"), 0, 0, 50000 };
    ck_assert_int_eq(em_limit_remote_set(&st, &blk), EM_OK);
    em_limit_hit(&st, blk.key.data, blk.key.len, 5, 60000, 15000, 20000, &r);
    ck_assert_int_eq(r.allowed, 0);
    ck_assert_int_eq(r.retry_after, 30000);
    l.n = 0;
    em_limit_local_each(&st, 20000, collect_limit, &l);
    ck_assert_uint_eq(l.n, 1);          /* msg:u1 only: the refused hit is not this host's */
    em_limit_hit(&st, blk.key.data, blk.key.len, 5, 60000, 15000, 50000, &r);
    ck_assert_int_eq(r.allowed, 1);

    /* this host's own block is listed, with its end */
    for (int i = 0; i < 3; i++) {
        em_limit_hit(&st, "typing:u2", 9, 2, 60000, 15000, 100 + i, &r);
    }
    ck_assert_int_eq(r.allowed, 0);
    l.n = 0;
    em_limit_local_each(&st, 200, collect_limit, &l);
    int found = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (l.v[i].key.len == 9 && memcmp(l.v[i].key.data, "typing:u2", 9) == 0) {
            ck_assert_int_eq(l.v[i].blocked, 102 + 15000);
            found = 1;
        }
    }
    ck_assert_int_eq(found, 1);

    /* cleared: the other hosts' shares go */
    ck_assert_int_eq(em_limit_remote_set(&st, &blk), EM_OK);
    em_limit_remote_clear(&st);
    em_limit_hit(&st, blk.key.data, blk.key.len, 5, 60000, 15000, 50001, &r);
    ck_assert_int_eq(r.allowed, 1);
    /* a key too long for the table cannot be kept */
    char long_key[200];
    memset(long_key, 'k', sizeof(long_key));
    em_lrec_t lk = { { long_key, sizeof(long_key) }, 1, 10000, 0 };
    ck_assert_int_eq(em_limit_remote_set(&st, &lk), EM_ERROR);
}
END_TEST

/* What a broker keeps for its successor: its uid and the stream's last id,
 * refused when cut or malformed. */
START_TEST(test_broker_kept)
{
    char uid[8], id[40];

    ck_assert_uint_eq(em_state_redis_uid_get(&st, uid), 0);           /* a new segment: none */
    ck_assert_uint_eq(em_state_stream_id_get(&st, id), 0);
    em_state_redis_uid_set(&st, "Ab12cD");
    ck_assert_uint_eq(em_state_redis_uid_get(&st, uid), 6);
    ck_assert_str_eq(uid, "Ab12cD");
    em_state_stream_id_set(&st, "1700000000000-12", 16);
    ck_assert_uint_eq(em_state_stream_id_get(&st, id), 16);
    ck_assert_str_eq(id, "1700000000000-12");
    /* cut: the check byte after the NUL does not match */
    st.hdr->stream_id[17] ^= 1;
    ck_assert_uint_eq(em_state_stream_id_get(&st, id), 0);
    ck_assert_str_eq(id, "");
    /* malformed ids and uids are none */
    em_state_stream_id_set(&st, "17-", 3);
    ck_assert_uint_eq(em_state_stream_id_get(&st, id), 0);
    em_state_stream_id_set(&st, "1a-2", 4);
    ck_assert_uint_eq(em_state_stream_id_get(&st, id), 0);
    em_state_stream_id_set(&st, "18446744073709551615-18446744073709551615", 41);  /* too long */
    ck_assert_uint_eq(em_state_stream_id_get(&st, id), 0);
    em_state_redis_uid_set(&st, "Ab1#cD");
    ck_assert_uint_eq(em_state_redis_uid_get(&st, uid), 0);
    em_state_redis_uid_set(&st, "Ab12c");
    ck_assert_uint_eq(em_state_redis_uid_get(&st, uid), 0);
}
END_TEST

START_TEST(test_limit_keys_reset)
{
    em_limit_result_t r;
    char              longkey[200];

    for (int i = 0; i < 5; i++) {
        em_limit_hit(&st, "a", 1, 5, 1000, 5000, 100, &r);
        ck_assert_int_eq(r.allowed, 1);
    }
    em_limit_hit(&st, "a", 1, 5, 1000, 5000, 100, &r);
    ck_assert_int_eq(r.allowed, 0);

    /* Another key counts on its own. */
    em_limit_hit(&st, "b", 1, 5, 1000, 5000, 100, &r);
    ck_assert_int_eq(r.allowed, 1);
    ck_assert_uint_eq(r.remaining, 4);
    em_limit_hit(&st, "ab", 2, 5, 1000, 5000, 100, &r);
    ck_assert_uint_eq(r.remaining, 4);

    /* Reset forgets the block. */
    em_limit_reset(&st, "a", 1);
    em_limit_hit(&st, "a", 1, 5, 1000, 5000, 101, &r);
    ck_assert_int_eq(r.allowed, 1);
    ck_assert_uint_eq(r.remaining, 4);
    em_limit_reset(&st, "nothing", 7);
    em_limit_hit(&st, "b", 1, 5, 1000, 5000, 102, &r);
    ck_assert_uint_eq(r.remaining, 3);

    /* A key too long to keep is allowed, never counted. */
    memset(longkey, 'k', sizeof(longkey));
    for (int i = 0; i < 10; i++) {
        em_limit_hit(&st, longkey, sizeof(longkey), 2, 1000, 5000, 100, &r);
        ck_assert_int_eq(r.allowed, 1);
        ck_assert_uint_eq(r.remaining, 2);
    }
}
END_TEST

/* A full table forgets the least recently hit keys; a hit never fails. */
START_TEST(test_limit_eviction)
{
    em_limit_result_t r;
    em_shtab_t       *t = tab_at(st.hdr->limits_off);
    char              key[32];

    for (int i = 0; i < 5; i++) {
        em_limit_hit(&st, "hot", 3, 5, 1000000, 0, 10, &r);
    }
    em_limit_hit(&st, "hot", 3, 5, 1000000, 0, 10, &r);
    ck_assert_int_eq(r.allowed, 0);

    /* "keep" is hit between every new key: it is never the LRU one. */
    em_limit_hit(&st, "keep", 4, 1000, 1000000, 0, 10, &r);
    ck_assert_uint_eq(r.remaining, 999);
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "n%d", i);
        em_limit_hit(&st, key, strlen(key), 1, 1000000, 0, 20, &r);
        CHECK(r.allowed && r.remaining == 0, "new key %s: allowed %d remaining %u", key, r.allowed,
              r.remaining);
        em_limit_hit(&st, "keep", 4, 1000, 1000000, 0, 20, &r);
        CHECK(r.allowed && r.remaining == (uint32_t) (998 - i), "keep after %s: remaining %u", key,
              r.remaining);
    }
    ck_assert_uint_eq(t->used, 16);
    ck_assert_uint_eq(t->evicted, 100 + 2 - 16);
    /* "hot" was forgotten: a fresh window. */
    em_limit_hit(&st, "hot", 3, 5, 1000000, 0, 30, &r);
    ck_assert_int_eq(r.allowed, 1);
    ck_assert_uint_eq(r.remaining, 4);
    ck_assert_uint_eq(t->evicted, 100 + 3 - 16);
}
END_TEST

/* ---- presence ----------------------------------------------------------------- */

START_TEST(test_presence_two_tabs)
{
    em_pchanges_t chg = { 0 };
    em_presence_t p;

    ck_assert_int_eq(em_presence_connect(&st, 0, EM_STR("/"), EM_STR("u1"), EM_STR("{\"a\":1}"),
                                         1000, &chg), EM_OK);
    ck_assert_uint_eq(chg.n, 1);
    ck_assert_uint_eq(chg_count(&chg, EM_PCHG_ONLINE, "/", NULL, "u1"), 1);
    em_pchanges_free(&chg);
    ck_assert_uint_eq(chg.n, 0);

    ck_assert_int_eq(em_presence_connect(&st, 1, EM_STR("/"), EM_STR("u1"), EM_NULL_STR, 2000, &chg),
                     EM_OK);
    ck_assert_uint_eq(chg.n, 0);
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), EM_STR("u1"), &p), EM_OK);
    ck_assert_str_eq(p.user, "u1");
    ck_assert_uint_eq(p.user_len, 2);
    ck_assert_uint_eq(p.nconn, 2);
    ck_assert_int_eq(p.status, EM_ST_STATUS_ONLINE);
    ck_assert_int_eq(p.connected_at, 1000);
    ck_assert_int_eq(p.last_seen, 2000);
    ck_assert_uint_eq(p.info_len, 7);
    ck_assert_int_eq(memcmp(p.info, "{\"a\":1}", 7), 0);     /* data NULL: kept */

    em_presence_disconnect(&st, 0, EM_STR("/"), EM_STR("u1"), 3000, &chg);
    ck_assert_uint_eq(chg.n, 0);
    em_presence_disconnect(&st, 0, EM_STR("/"), EM_STR("u1"), 3100, &chg);   /* slot 0 has none */
    ck_assert_uint_eq(chg.n, 0);
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), EM_STR("u1"), &p), EM_OK);
    ck_assert_uint_eq(p.nconn, 1);
    ck_assert_int_eq(p.status, EM_ST_STATUS_ONLINE);
    ck_assert_int_eq(p.last_seen, 3000);

    em_presence_disconnect(&st, 1, EM_STR("/"), EM_STR("u1"), 4000, &chg);
    ck_assert_uint_eq(chg.n, 1);
    ck_assert_uint_eq(chg_count(&chg, EM_PCHG_OFFLINE, "/", NULL, "u1"), 1);
    em_pchanges_free(&chg);
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), EM_STR("u1"), &p), EM_OK);
    ck_assert_uint_eq(p.nconn, 0);
    ck_assert_int_eq(p.status, EM_ST_STATUS_OFFLINE);
    ck_assert_int_eq(p.last_seen, 4000);
    ck_assert_int_eq(p.connected_at, 1000);
    em_presence_disconnect(&st, 1, EM_STR("/"), EM_STR("u1"), 4100, &chg);   /* already gone */
    ck_assert_uint_eq(chg.n, 0);

    /* Back online: a new online period; new info replaces the old. */
    ck_assert_int_eq(em_presence_connect(&st, 2, EM_STR("/"), EM_STR("u1"), EM_STR("{}"), 5000,
                                         &chg), EM_OK);
    ck_assert_uint_eq(chg_count(&chg, EM_PCHG_ONLINE, "/", NULL, "u1"), 1);
    em_pchanges_free(&chg);
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), EM_STR("u1"), &p), EM_OK);
    ck_assert_int_eq(p.connected_at, 5000);
    ck_assert_uint_eq(p.nconn, 1);
    ck_assert_uint_eq(p.info_len, 2);

    ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), EM_STR("nobody"), &p), EM_DECLINED);
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/other"), EM_STR("u1"), &p), EM_DECLINED);
}
END_TEST

START_TEST(test_presence_bad_input)
{
    char          name[EM_ST_NAME_MAX + 1];
    em_pchanges_t chg = { 0 };
    em_presence_t p;

    memset(name, 'n', sizeof(name));
    ck_assert_int_eq(em_presence_connect(&st, 0, EM_STR("/"), (em_str_t) { name, EM_ST_NAME_MAX },
                                         EM_NULL_STR, 1, &chg), EM_ERROR);
    ck_assert_int_eq(em_presence_connect(&st, 0, EM_STR("/"), (em_str_t) { name, EM_ST_NAME_MAX - 1 },
                                         EM_NULL_STR, 1, &chg), EM_OK);
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), (em_str_t) { name, EM_ST_NAME_MAX - 1 }, &p),
                     EM_OK);
    ck_assert_uint_eq(p.user_len, EM_ST_NAME_MAX - 1);
    ck_assert_int_eq(em_presence_connect(&st, EM_STATE_SLOTS, EM_STR("/"), EM_STR("u"), EM_NULL_STR,
                                         1, &chg), EM_ERROR);
    ck_assert_int_eq(em_presence_connect(&st, 0, EM_STR("/"), EM_STR("a\0b"), EM_NULL_STR, 1, &chg),
                     EM_ERROR);
    ck_assert_uint_eq(chg_count(&chg, EM_PCHG_ONLINE, "/", NULL, "u"), 0);
    em_pchanges_free(&chg);
}
END_TEST

static const struct {
    const char *user;       /* "" -> the offline user */
    int         status;
    int         rc;
    int         old;
} status_rows[] = {
    { "u", EM_ST_STATUS_AWAY, EM_OK, EM_ST_STATUS_ONLINE },
    { "u", EM_ST_STATUS_BUSY, EM_OK, EM_ST_STATUS_AWAY },
    { "u", EM_ST_STATUS_BUSY, EM_OK, EM_ST_STATUS_BUSY },
    { "u", EM_ST_STATUS_ONLINE, EM_OK, EM_ST_STATUS_BUSY },
    { "u", EM_ST_STATUS_OFFLINE, EM_ERROR, -1 },
    { "u", 4, EM_ERROR, -1 },
    { "gone", EM_ST_STATUS_AWAY, EM_DECLINED, -1 },
    { "nobody", EM_ST_STATUS_AWAY, EM_DECLINED, -1 },
};

START_TEST(test_presence_status)
{
    em_presence_t p;
    int           old = -1, prev;

    em_presence_connect(&st, 0, EM_STR("/"), EM_STR("u"), EM_NULL_STR, 10, NULL);
    em_presence_connect(&st, 0, EM_STR("/"), EM_STR("gone"), EM_NULL_STR, 10, NULL);
    em_presence_disconnect(&st, 0, EM_STR("/"), EM_STR("gone"), 11, NULL);
    for (size_t i = 0; i < EM_NELEMS(status_rows); i++) {
        ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), EM_STR("u"), &p), EM_OK);
        prev = p.status;
        old = -1;
        ck_assert_msg(em_presence_set_status(&st, EM_STR("/"), S(status_rows[i].user),
                                             status_rows[i].status, 100 + (int64_t) i, &old)
                          == status_rows[i].rc,
                      "row %zu: rc", i);
        ck_assert_msg(old == status_rows[i].old, "row %zu: old %d", i, old);
        ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), EM_STR("u"), &p), EM_OK);
        if (status_rows[i].rc == EM_OK) {
            ck_assert_int_eq(p.status, status_rows[i].status);
            ck_assert_int_eq(p.last_seen, 100 + (int64_t) i);
        } else {
            ck_assert_int_eq(p.status, prev);
        }
    }
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), EM_STR("gone"), &p), EM_OK);
    ck_assert_int_eq(p.status, EM_ST_STATUS_OFFLINE);
}
END_TEST

START_TEST(test_presence_stats_each)
{
    static const struct {
        const char *nsp, *user;
        int         status;     /* OFFLINE: connect then disconnect */
    } users[] = {
        { "/chat", "u1", EM_ST_STATUS_ONLINE },  { "/chat", "u2", EM_ST_STATUS_AWAY },
        { "/chat", "u3", EM_ST_STATUS_BUSY },    { "/chat", "u4", EM_ST_STATUS_OFFLINE },
        { "/chat", "u5", EM_ST_STATUS_ONLINE },  { "/other", "u6", EM_ST_STATUS_AWAY },
        { "/chat2", "u7", EM_ST_STATUS_ONLINE }, { "/cha", "u8", EM_ST_STATUS_ONLINE },
        { "/other", "u1", EM_ST_STATUS_OFFLINE },
    };
    uint64_t counts[4];
    names_t  l;
    int      old;

    for (size_t i = 0; i < EM_NELEMS(users); i++) {
        em_str_t nsp = S(users[i].nsp), user = S(users[i].user);
        ck_assert_int_eq(em_presence_connect(&st, (unsigned) i % 3, nsp, user, EM_NULL_STR, 1, NULL),
                         EM_OK);
        if (users[i].status == EM_ST_STATUS_OFFLINE) {
            em_presence_disconnect(&st, (unsigned) i % 3, nsp, user, 2, NULL);
        } else if (users[i].status != EM_ST_STATUS_ONLINE) {
            ck_assert_int_eq(em_presence_set_status(&st, nsp, user, users[i].status, 2, &old), EM_OK);
        }
    }
    em_presence_stats(&st, EM_STR("/chat"), counts);
    ck_assert_uint_eq(counts[EM_ST_STATUS_OFFLINE], 1);
    ck_assert_uint_eq(counts[EM_ST_STATUS_ONLINE], 2);
    ck_assert_uint_eq(counts[EM_ST_STATUS_AWAY], 1);
    ck_assert_uint_eq(counts[EM_ST_STATUS_BUSY], 1);
    em_presence_stats(&st, EM_STR("/other"), counts);
    ck_assert_uint_eq(counts[EM_ST_STATUS_OFFLINE], 1);
    ck_assert_uint_eq(counts[EM_ST_STATUS_ONLINE], 0);
    ck_assert_uint_eq(counts[EM_ST_STATUS_AWAY], 1);
    ck_assert_uint_eq(counts[EM_ST_STATUS_BUSY], 0);
    em_presence_stats(&st, EM_STR("/none"), counts);
    ck_assert_uint_eq(counts[0] + counts[1] + counts[2] + counts[3], 0);

    memset(&l, 0, sizeof(l));
    em_presence_each(&st, EM_STR("/chat"), 1, names_add, &l);
    names_expect(&l, "u1 u2 u3 u5", "/chat online");
    memset(&l, 0, sizeof(l));
    em_presence_each(&st, EM_STR("/chat"), 0, names_add, &l);
    names_expect(&l, "u1 u2 u3 u4 u5", "/chat all");
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.v[i], "u4") == 0) {
            ck_assert_int_eq(l.status[i], EM_ST_STATUS_OFFLINE);
        }
    }
    memset(&l, 0, sizeof(l));
    em_presence_each(&st, EM_STR("/other"), 1, names_add, &l);
    names_expect(&l, "u6", "/other online");
    memset(&l, 0, sizeof(l));
    em_presence_each(&st, EM_STR("/other"), 0, names_add, &l);
    names_expect(&l, "u6 u1", "/other all");
    memset(&l, 0, sizeof(l));
    em_presence_each(&st, EM_STR("/ch"), 0, names_add, &l);
    names_expect(&l, "", "/ch");
}
END_TEST

/* Anonymous sockets count only in the namespace's size. */
START_TEST(test_presence_anonymous)
{
    em_pchanges_t chg = { 0 };
    uint64_t      counts[4];
    names_t       l = { 0 };

    ck_assert_int_eq(em_presence_connect(&st, 0, EM_STR("/"), EM_STR(""), EM_NULL_STR, 1, &chg), EM_OK);
    ck_assert_int_eq(em_presence_connect(&st, 0, EM_STR("/"), EM_STR(""), EM_NULL_STR, 1, &chg), EM_OK);
    ck_assert_int_eq(em_presence_connect(&st, 1, EM_STR("/"), EM_STR(""), EM_NULL_STR, 1, &chg), EM_OK);
    ck_assert_int_eq(em_presence_connect(&st, 1, EM_STR("/x"), EM_STR(""), EM_NULL_STR, 1, &chg), EM_OK);
    ck_assert_uint_eq(chg.n, 0);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("")), 3);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/x"), EM_STR("")), 1);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/y"), EM_STR("")), 0);
    em_presence_stats(&st, EM_STR("/"), counts);
    ck_assert_uint_eq(counts[0] + counts[1] + counts[2] + counts[3], 0);
    em_presence_each(&st, EM_STR("/"), 0, names_add, &l);
    ck_assert_uint_eq(l.n, 0);

    /* A user's connection is not a socket of the namespace by itself. */
    em_presence_connect(&st, 0, EM_STR("/"), EM_STR("u"), EM_NULL_STR, 1, NULL);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("")), 3);

    em_presence_disconnect(&st, 1, EM_STR("/"), EM_STR(""), 2, &chg);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("")), 2);
    em_presence_disconnect(&st, 1, EM_STR("/"), EM_STR(""), 2, &chg);   /* slot 1 has none left */
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("")), 2);
    em_presence_disconnect(&st, 0, EM_STR("/"), EM_STR(""), 2, &chg);
    em_presence_disconnect(&st, 0, EM_STR("/"), EM_STR(""), 2, &chg);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("")), 0);
    ck_assert_uint_eq(chg.n, 0);
}
END_TEST

/* A full users table drops the least recently seen offline user, never an online one. */
START_TEST(test_presence_user_eviction)
{
    em_state_sizes_t sz;
    em_presence_t    p;
    char             u[16];

    small_sizes(&sz);
    sz.users = 8;
    state_open(&sz);
    for (int i = 0; i < 8; i++) {
        snprintf(u, sizeof(u), "u%d", i);
        ck_assert_int_eq(em_presence_connect(&st, 0, EM_STR("/"), S(u), EM_NULL_STR, i, NULL), EM_OK);
    }
    ck_assert_int_eq(em_presence_connect(&st, 0, EM_STR("/"), EM_STR("new"), EM_NULL_STR, 10, NULL),
                     EM_ERROR);
    for (int i = 0; i < 6; i++) {
        snprintf(u, sizeof(u), "u%d", i);
        em_presence_disconnect(&st, 0, EM_STR("/"), S(u), 20 + i, NULL);
    }
    ck_assert_int_eq(em_presence_connect(&st, 0, EM_STR("/"), EM_STR("new"), EM_NULL_STR, 30, NULL),
                     EM_OK);
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), EM_STR("u0"), &p), EM_DECLINED);
    ck_assert_int_eq(em_presence_connect(&st, 0, EM_STR("/"), EM_STR("new2"), EM_NULL_STR, 31, NULL),
                     EM_OK);
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), EM_STR("u1"), &p), EM_DECLINED);
    for (int i = 2; i < 8; i++) {
        snprintf(u, sizeof(u), "u%d", i);
        ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), S(u), &p), EM_OK);
        ck_assert_int_eq(p.status, i < 6 ? EM_ST_STATUS_OFFLINE : EM_ST_STATUS_ONLINE);
    }
}
END_TEST

/*
 * Users who stay connected for long are never touched again and sink to the
 * LRU tail; once 64 of them sit there, the offline users behind them can no
 * longer make room and every new user is refused (see
 * test_shtab_evict_behind_pinned).
 */
START_TEST(test_presence_eviction_behind_online)
{
    em_state_sizes_t sz;
    char             u[16];

    small_sizes(&sz);
    sz.users = 100;
    state_open(&sz);
    for (int i = 0; i < 70; i++) {
        snprintf(u, sizeof(u), "on%d", i);
        ck_assert_int_eq(em_presence_connect(&st, 0, EM_STR("/"), S(u), EM_NULL_STR, i, NULL), EM_OK);
    }
    for (int i = 0; i < 30; i++) {
        snprintf(u, sizeof(u), "off%d", i);
        ck_assert_int_eq(em_presence_connect(&st, 0, EM_STR("/"), S(u), EM_NULL_STR, 100 + i, NULL),
                         EM_OK);
        em_presence_disconnect(&st, 0, EM_STR("/"), S(u), 200 + i, NULL);
    }
    ck_assert_msg(em_presence_connect(&st, 0, EM_STR("/"), EM_STR("newcomer"), EM_NULL_STR, 300,
                                      NULL) == EM_OK,
                  "a new user was refused though 30 offline users could make room");
}
END_TEST

/* ---- rooms ----------------------------------------------------------------------- */

START_TEST(test_room_two_slots)
{
    em_pchanges_t chg = { 0 };

    em_room_add(&st, 0, EM_STR("/"), EM_STR("r1"), EM_STR("u1"), &chg);
    ck_assert_uint_eq(chg.n, 1);
    ck_assert_uint_eq(chg_count(&chg, EM_PCHG_ROOM_IN, "/", "r1", "u1"), 1);
    em_pchanges_free(&chg);
    em_room_add(&st, 1, EM_STR("/"), EM_STR("r1"), EM_STR("u1"), &chg);
    ck_assert_uint_eq(chg.n, 0);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("r1")), 2);
    em_room_add(&st, 0, EM_STR("/"), EM_STR("r1"), EM_STR(""), &chg);         /* anonymous */
    ck_assert_uint_eq(chg.n, 0);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("r1")), 3);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/x"), EM_STR("r1")), 0);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("r")), 0);

    em_room_add(&st, 0, EM_STR("/"), EM_STR(""), EM_STR("u1"), &chg);         /* no room: ignored */
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("")), 0);
    ck_assert_uint_eq(chg.n, 0);

    em_room_del(&st, 0, EM_STR("/"), EM_STR("r1"), EM_STR("u1"), &chg);
    ck_assert_uint_eq(chg.n, 0);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("r1")), 2);
    em_room_del(&st, 1, EM_STR("/"), EM_STR("r1"), EM_STR("u1"), &chg);
    ck_assert_uint_eq(chg.n, 1);
    ck_assert_uint_eq(chg_count(&chg, EM_PCHG_ROOM_OUT, "/", "r1", "u1"), 1);
    em_pchanges_free(&chg);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("r1")), 1);     /* the anonymous one */
    em_room_del(&st, 0, EM_STR("/"), EM_STR("r1"), EM_STR(""), &chg);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("r1")), 0);
    em_room_del(&st, 0, EM_STR("/"), EM_STR("nope"), EM_STR("u1"), &chg);
    ck_assert_uint_eq(chg.n, 0);
    ck_assert_uint_eq(tab_at(st.hdr->rooms_off)->used, 0);
}
END_TEST

/* The online users with a socket in a room: not offline ones, not those of
 * another namespace or of a room whose name starts alike. */
START_TEST(test_room_users)
{
    names_t l = { 0 };

    static const struct {
        const char *nsp, *room, *user;
        int         online;
    } joins[] = {
        { "/", "r", "u1", 1 },   { "/", "r", "u2", 1 },  { "/", "r2", "u3", 1 },
        { "/", "r", "u4", 0 },   { "/x", "r", "u5", 1 }, { "/", "rr", "u6", 1 },
        { "/", "r", "", 1 },
    };
    for (size_t i = 0; i < EM_NELEMS(joins); i++) {
        if (joins[i].user[0] != '\0') {
            em_presence_connect(&st, 0, S(joins[i].nsp), S(joins[i].user), EM_NULL_STR, 1, NULL);
        }
        em_room_add(&st, 0, S(joins[i].nsp), S(joins[i].room), S(joins[i].user), NULL);
        if (!joins[i].online) {
            em_presence_disconnect(&st, 0, S(joins[i].nsp), S(joins[i].user), 2, NULL);
        }
    }
    em_room_add(&st, 1, EM_STR("/"), EM_STR("r"), EM_STR("u1"), NULL);   /* a second tab */

    em_room_users(&st, EM_STR("/"), EM_STR("r"), names_add, &l);
    names_expect(&l, "u1 u2", "/ r");
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("r")), 5);
    memset(&l, 0, sizeof(l));
    em_room_users(&st, EM_STR("/x"), EM_STR("r"), names_add, &l);
    names_expect(&l, "u5", "/x r");
    memset(&l, 0, sizeof(l));
    em_room_users(&st, EM_STR("/"), EM_STR("r2"), names_add, &l);
    names_expect(&l, "u3", "/ r2");
    memset(&l, 0, sizeof(l));
    em_room_users(&st, EM_STR("/"), EM_STR("none"), names_add, &l);
    em_room_users(&st, EM_STR("/"), EM_STR(""), names_add, &l);
    ck_assert_uint_eq(l.n, 0);

    em_room_del(&st, 0, EM_STR("/"), EM_STR("r"), EM_STR("u2"), NULL);
    memset(&l, 0, sizeof(l));
    em_room_users(&st, EM_STR("/"), EM_STR("r"), names_add, &l);
    names_expect(&l, "u1", "/ r after u2 left");
}
END_TEST

/* ---- the sweep of a dead worker ------------------------------------------------------ */

START_TEST(test_sweep_slot)
{
    em_pchanges_t        chg = { 0 };
    em_presence_t        p;
    em_st_session_t      s;
    em_st_event_t        ev;
    em_monitor_figures_t f;
    names_t              l = { 0 };
    uint64_t             next;

    em_state_slot_set(&st, 0, 100);
    em_state_slot_set(&st, 1, 777);     /* slot 1's new worker; the dead one was 4242 */

    em_presence_connect(&st, 0, EM_STR("/"), EM_STR("both"), EM_NULL_STR, 1, NULL);
    em_presence_connect(&st, 1, EM_STR("/"), EM_STR("both"), EM_NULL_STR, 1, NULL);
    em_presence_connect(&st, 1, EM_STR("/"), EM_STR("one"), EM_NULL_STR, 1, NULL);
    em_presence_connect(&st, 1, EM_STR("/"), EM_STR("one"), EM_NULL_STR, 1, NULL);
    em_presence_connect(&st, 0, EM_STR("/"), EM_STR("zero"), EM_NULL_STR, 1, NULL);
    em_presence_connect(&st, 0, EM_STR("/"), EM_STR(""), EM_NULL_STR, 1, NULL);
    em_presence_connect(&st, 1, EM_STR("/"), EM_STR(""), EM_NULL_STR, 1, NULL);
    em_presence_connect(&st, 1, EM_STR("/"), EM_STR(""), EM_NULL_STR, 1, NULL);
    em_room_add(&st, 0, EM_STR("/"), EM_STR("r"), EM_STR("both"), NULL);
    em_room_add(&st, 1, EM_STR("/"), EM_STR("r"), EM_STR("both"), NULL);
    em_room_add(&st, 1, EM_STR("/"), EM_STR("r"), EM_STR("one"), NULL);
    em_room_add(&st, 1, EM_STR("/"), EM_STR("s"), EM_STR("one"), NULL);
    em_room_add(&st, 1, EM_STR("/"), EM_STR("s"), EM_STR(""), NULL);
    em_room_add(&st, 0, EM_STR("/"), EM_STR("t"), EM_STR("zero"), NULL);

    ck_assert_int_eq(em_recovery_save(&st, EM_STR("held1"),
                                      sess(&s, EM_ST_SESSION_PID, 1, 4242, 1, 0, "sid1"), 1), EM_OK);
    ck_assert_int_eq(em_recovery_save(&st, EM_STR("held1new"),
                                      sess(&s, EM_ST_SESSION_PID, 1, 777, 1, 0, "sid2"), 1), EM_OK);
    ck_assert_int_eq(em_recovery_save(&st, EM_STR("held0"),
                                      sess(&s, EM_ST_SESSION_TOKEN, 0, 4242, 1, 0, "sid3"), 1), EM_OK);
    ck_assert_int_eq(em_recovery_save(&st, EM_STR("gone1"),
                                      sess(&s, EM_ST_SESSION_PID, 1, 4242, 1, 500, "sid4"), 1), EM_OK);
    plog_put("/", NULL, NULL, EM_STR("[1]"), NULL, 0, 1);
    plog_put("/", NULL, NULL, EM_STR("[2]"), NULL, 0, 1);
    next = em_plog_next_offset(&st);
    ck_assert_uint_eq(next, 3);

    em_monitor_event_fill(&ev, "connect", EM_STR("s"), EM_STR("/"), EM_NULL_STR, EM_STR("1.2.3.4"),
                          EM_NULL_STR, EM_NULL_STR);
    for (int i = 0; i < 5; i++) {
        em_monitor_connect(&st, i < 2 ? 0 : 1, &ev);
    }

    em_state_sweep_slot(&st, 1, 10000, 60000, &chg);

    ck_assert_uint_eq(chg_count(&chg, EM_PCHG_OFFLINE, "/", NULL, "one"), 1);
    ck_assert_uint_eq(chg_count(&chg, EM_PCHG_ROOM_OUT, "/", "r", "one"), 1);
    ck_assert_uint_eq(chg_count(&chg, EM_PCHG_ROOM_OUT, "/", "s", "one"), 1);
    ck_assert_msg(chg.n == 3, "%zu changes, want 3", chg.n);
    em_pchanges_free(&chg);

    ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), EM_STR("one"), &p), EM_OK);
    ck_assert_int_eq(p.status, EM_ST_STATUS_OFFLINE);
    ck_assert_uint_eq(p.nconn, 0);
    ck_assert_int_eq(p.last_seen, 10000);
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), EM_STR("both"), &p), EM_OK);
    ck_assert_int_eq(p.status, EM_ST_STATUS_ONLINE);
    ck_assert_uint_eq(p.nconn, 1);
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), EM_STR("zero"), &p), EM_OK);
    ck_assert_uint_eq(p.nconn, 1);
    ck_assert_int_eq(p.last_seen, 1);

    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("")), 1);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("r")), 1);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("s")), 0);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("t")), 1);
    em_room_users(&st, EM_STR("/"), EM_STR("r"), names_add, &l);
    names_expect(&l, "both", "room r after the sweep");

    ck_assert_int_eq(em_recovery_get(&st, EM_STR("held1"), &s), EM_OK);
    ck_assert_int_eq(s.expires, 70000);
    ck_assert_uint_eq(s.offset, next);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("held1new"), &s), EM_OK);
    ck_assert_int_eq(s.expires, 0);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("held0"), &s), EM_OK);
    ck_assert_int_eq(s.expires, 0);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("gone1"), &s), EM_OK);
    ck_assert_int_eq(s.expires, 500);

    em_monitor_read(&st, ev.time, &f);
    ck_assert_uint_eq(f.active, 2);
    ck_assert_uint_eq(f.total, 5);
    ck_assert_uint_eq(f.peak, 5);

    /* The dead worker's late messages no longer count; the live ones still do. */
    em_room_del(&st, 1, EM_STR("/"), EM_STR("r"), EM_STR("both"), &chg);
    em_presence_disconnect(&st, 1, EM_STR("/"), EM_STR("both"), 11000, &chg);
    ck_assert_uint_eq(chg.n, 0);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("r")), 1);
    em_room_del(&st, 0, EM_STR("/"), EM_STR("r"), EM_STR("both"), &chg);
    em_presence_disconnect(&st, 0, EM_STR("/"), EM_STR("both"), 12000, &chg);
    ck_assert_uint_eq(chg_count(&chg, EM_PCHG_ROOM_OUT, "/", "r", "both"), 1);
    ck_assert_uint_eq(chg_count(&chg, EM_PCHG_OFFLINE, "/", NULL, "both"), 1);
    ck_assert_uint_eq(chg.n, 2);
    em_pchanges_free(&chg);

    /* Sweeping again finds nothing. */
    em_state_sweep_slot(&st, 1, 20000, 60000, &chg);
    ck_assert_uint_eq(chg.n, 0);
    em_state_sweep_slot(&st, EM_STATE_SLOTS, 20000, 60000, &chg);
    ck_assert_uint_eq(chg.n, 0);
}
END_TEST

/* ---- sessions ---------------------------------------------------------------------------- */

START_TEST(test_session_take_pid)
{
    em_st_session_t s, out;

    em_state_slot_set(&st, 0, 100);
    ck_assert_int_eq(em_recovery_save(&st, EM_STR("p1"), sess(&s, EM_ST_SESSION_PID, 0, 100, 5, 0, "A"),
                                      5), EM_OK);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("p1"), &out), EM_OK);
    ck_assert_str_eq(out.sid, "A");
    ck_assert_int_eq(out.kind, EM_ST_SESSION_PID);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("p"), &out), EM_DECLINED);

    /* Held by a live socket: refused. */
    ck_assert_int_eq(em_recovery_take(&st, EM_STR("p1"), EM_ST_SESSION_PID, 1, 200, 10, &out),
                     EM_DECLINED);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("p1"), &out), EM_OK);
    /* Of another kind: refused. */
    ck_assert_int_eq(em_recovery_take(&st, EM_STR("p1"), EM_ST_SESSION_TOKEN, 1, 200, 10, &out),
                     EM_DECLINED);
    ck_assert_int_eq(em_recovery_take(&st, EM_STR("absent"), EM_ST_SESSION_PID, 1, 200, 10, &out),
                     EM_DECLINED);

    /* Its worker died (the slot now has another process): taken, and gone. */
    plog_put("/", NULL, NULL, EM_STR("[1]"), NULL, 0, 1);
    em_state_slot_set(&st, 0, 101);
    memset(&out, 0, sizeof(out));
    ck_assert_int_eq(em_recovery_take(&st, EM_STR("p1"), EM_ST_SESSION_PID, 1, 200, 10, &out), EM_OK);
    ck_assert_str_eq(out.sid, "A");
    ck_assert_uint_eq(out.offset, 2);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("p1"), &out), EM_DECLINED);
    ck_assert_int_eq(em_recovery_take(&st, EM_STR("p1"), EM_ST_SESSION_PID, 1, 200, 10, &out),
                     EM_DECLINED);

    /* Released: taken until it expires. */
    em_recovery_save(&st, EM_STR("p2"), sess(&s, EM_ST_SESSION_PID, 0, 101, 5, 0, "B"), 5);
    em_recovery_release(&st, EM_STR("p2"), 1000, 500);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("p2"), &out), EM_OK);
    ck_assert_int_eq(out.expires, 1500);
    ck_assert_uint_eq(out.offset, 2);
    ck_assert_int_eq(out.last_activity, 1000);
    em_recovery_release(&st, EM_STR("p2"), 1200, 5000);     /* already released: unchanged */
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("p2"), &out), EM_OK);
    ck_assert_int_eq(out.expires, 1500);
    ck_assert_int_eq(em_recovery_take(&st, EM_STR("p2"), EM_ST_SESSION_PID, 1, 200, 1500, &out), EM_OK);
    ck_assert_str_eq(out.sid, "B");
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("p2"), &out), EM_DECLINED);

    /* Expired: refused, and dropped. */
    em_recovery_save(&st, EM_STR("p3"), sess(&s, EM_ST_SESSION_PID, 0, 101, 5, 0, "C"), 5);
    em_recovery_release(&st, EM_STR("p3"), 1000, 500);
    ck_assert_int_eq(em_recovery_take(&st, EM_STR("p3"), EM_ST_SESSION_PID, 1, 200, 1501, &out),
                     EM_DECLINED);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("p3"), &out), EM_DECLINED);

    em_recovery_save(&st, EM_STR("p4"), sess(&s, EM_ST_SESSION_PID, 0, 101, 5, 0, "D"), 5);
    em_recovery_drop(&st, EM_STR("p4"));
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("p4"), &out), EM_DECLINED);
    em_recovery_drop(&st, EM_STR("p4"));
}
END_TEST

START_TEST(test_session_take_token)
{
    em_st_session_t s, out;

    em_state_slot_set(&st, 0, 100);
    em_state_slot_set(&st, 2, 300);
    em_recovery_save(&st, EM_STR("tok"), sess(&s, EM_ST_SESSION_TOKEN, 0, 100, 5, 0, "A"), 5);
    ck_assert_int_eq(em_recovery_take(&st, EM_STR("tok"), EM_ST_SESSION_TOKEN, 2, 300, 10, &out),
                     EM_DECLINED);
    ck_assert_int_eq(em_recovery_take(&st, EM_STR("tok"), EM_ST_SESSION_PID, 2, 300, 10, &out),
                     EM_DECLINED);
    plog_put("/", NULL, NULL, EM_STR("[1]"), NULL, 0, 1);
    em_recovery_release(&st, EM_STR("tok"), 1000, 5000);
    plog_put("/", NULL, NULL, EM_STR("[2]"), NULL, 0, 1);

    ck_assert_int_eq(em_recovery_take(&st, EM_STR("tok"), EM_ST_SESSION_TOKEN, 2, 300, 2000, &out), EM_OK);
    ck_assert_int_eq(out.expires, 6000);
    ck_assert_uint_eq(out.offset, 2);         /* where the log was when it went */
    ck_assert_str_eq(out.sid, "A");
    /* Still there, now held by the taker. */
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("tok"), &out), EM_OK);
    ck_assert_int_eq(out.expires, 0);
    ck_assert_uint_eq(out.owner_slot, 2);
    ck_assert_uint_eq(out.owner_pid, 300);
    ck_assert_int_eq(out.last_activity, 2000);
    /* Held by a live owner: refused to anyone else. */
    ck_assert_int_eq(em_recovery_take(&st, EM_STR("tok"), EM_ST_SESSION_TOKEN, 3, 400, 2100, &out),
                     EM_DECLINED);
    /* That owner died: taken again, the offset now the log's next. */
    em_state_slot_set(&st, 2, 0);
    ck_assert_int_eq(em_recovery_take(&st, EM_STR("tok"), EM_ST_SESSION_TOKEN, 3, 400, 2200, &out), EM_OK);
    ck_assert_uint_eq(out.offset, 3);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("tok"), &out), EM_OK);
    ck_assert_uint_eq(out.owner_slot, 3);
    ck_assert_uint_eq(out.owner_pid, 400);
}
END_TEST

START_TEST(test_session_rooms)
{
    em_st_session_t s, out;
    char            rooms[EM_ST_ROOMS_MAX + 8];
    size_t          n = 0;

    for (int i = 0; i < 3; i++) {       /* (uint16 len, bytes) pairs */
        char     name[8];
        uint16_t l = (uint16_t) snprintf(name, sizeof(name), "room%d", i);
        memcpy(rooms + n, &l, 2);
        memcpy(rooms + n + 2, name, l);
        n += 2 + l;
    }
    em_recovery_save(&st, EM_STR("p"), sess(&s, EM_ST_SESSION_PID, 0, 1, 5, 0, "A"), 5);
    ck_assert_int_eq(em_recovery_set_rooms(&st, EM_STR("p"), rooms, n, 3, 50), EM_OK);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("p"), &out), EM_OK);
    ck_assert_uint_eq(out.rooms_len, n);
    ck_assert_uint_eq(out.nrooms, 3);
    ck_assert_int_eq(memcmp(out.rooms, rooms, n), 0);
    ck_assert_int_eq(out.overflow, 0);
    ck_assert_int_eq(out.last_activity, 50);

    memset(rooms, 'x', sizeof(rooms));
    ck_assert_int_eq(em_recovery_set_rooms(&st, EM_STR("p"), rooms, EM_ST_ROOMS_MAX + 1, 99, 60), EM_OK);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("p"), &out), EM_OK);
    ck_assert_int_eq(out.overflow, 1);
    ck_assert_uint_eq(out.rooms_len, n);        /* the old list stays, marked unusable */
    ck_assert_int_eq(out.last_activity, 60);

    ck_assert_int_eq(em_recovery_set_rooms(&st, EM_STR("p"), rooms, EM_ST_ROOMS_MAX, 1, 70), EM_OK);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("p"), &out), EM_OK);
    ck_assert_int_eq(out.overflow, 0);
    ck_assert_uint_eq(out.rooms_len, EM_ST_ROOMS_MAX);
    ck_assert_uint_eq(out.nrooms, 1);

    ck_assert_int_eq(em_recovery_set_rooms(&st, EM_STR("q"), rooms, 4, 1, 70), EM_DECLINED);
}
END_TEST

/* A full table makes room only by dropping expired sessions. */
/* An entry another process scribbled over: its lengths are clamped on the
 * way out, so nobody reads past its arrays. */
START_TEST(test_session_bad_lengths)
{
    em_st_session_t s, out;

    sess(&s, EM_ST_SESSION_TOKEN, 0, 1, 5, 100, "X");
    memset(s.sid, 'x', sizeof(s.sid));      /* no NUL */
    s.nsp_len = EM_ST_NAME_MAX + 1;
    s.user_len = 65535;
    s.rooms_len = EM_ST_ROOMS_MAX + 1;
    s.nrooms = 9;
    ck_assert_int_eq(em_recovery_save(&st, EM_STR("bad"), &s, 5), EM_OK);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("bad"), &out), EM_OK);
    ck_assert_uint_eq(strlen(out.sid), sizeof(out.sid) - 1);
    ck_assert_uint_eq(out.nsp_len, 0);
    ck_assert_uint_eq(out.user_len, 0);
    ck_assert_uint_eq(out.rooms_len, 0);
    ck_assert_uint_eq(out.nrooms, 0);
    ck_assert_uint_eq(out.overflow, 1);
    memset(&out, 0, sizeof(out));
    ck_assert_int_eq(em_recovery_take(&st, EM_STR("bad"), EM_ST_SESSION_TOKEN, 1, 2, 50, &out), EM_OK);
    ck_assert_uint_eq(out.nsp_len, 0);
    ck_assert_uint_eq(out.rooms_len, 0);
    ck_assert_uint_eq(out.overflow, 1);

    /* The largest lengths that fit are kept. */
    sess(&s, EM_ST_SESSION_TOKEN, 0, 1, 5, 100, "Y");
    s.nsp_len = EM_ST_NAME_MAX;
    s.user_len = EM_ST_NAME_MAX;
    s.rooms_len = EM_ST_ROOMS_MAX;
    s.nrooms = 3;
    em_recovery_save(&st, EM_STR("full"), &s, 5);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("full"), &out), EM_OK);
    ck_assert_str_eq(out.sid, "Y");
    ck_assert_uint_eq(out.nsp_len, EM_ST_NAME_MAX);
    ck_assert_uint_eq(out.user_len, EM_ST_NAME_MAX);
    ck_assert_uint_eq(out.rooms_len, EM_ST_ROOMS_MAX);
    ck_assert_uint_eq(out.nrooms, 3);
    ck_assert_uint_eq(out.overflow, 0);
}
END_TEST

START_TEST(test_session_eviction)
{
    em_st_session_t s, out;
    char            key[16];

    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "s%d", i);
        ck_assert_int_eq(em_recovery_save(&st, S(key), sess(&s, EM_ST_SESSION_PID, 0, 1, 0, 0, key), 0),
                         EM_OK);
    }
    ck_assert_int_eq(em_recovery_save(&st, EM_STR("x"), sess(&s, EM_ST_SESSION_PID, 0, 1, 0, 0, "x"), 0),
                     EM_ERROR);
    em_recovery_release(&st, EM_STR("s2"), 0, 1000);
    em_recovery_release(&st, EM_STR("s5"), 0, 1000);
    ck_assert_int_eq(em_recovery_save(&st, EM_STR("x"), sess(&s, EM_ST_SESSION_PID, 0, 1, 0, 0, "x"), 500),
                     EM_ERROR);         /* released, not yet expired */
    /* Replacing a present session needs no room. */
    ck_assert_int_eq(em_recovery_save(&st, EM_STR("s0"), sess(&s, EM_ST_SESSION_PID, 0, 1, 0, 0, "new"), 500),
                     EM_OK);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("s0"), &out), EM_OK);
    ck_assert_str_eq(out.sid, "new");

    ck_assert_int_eq(em_recovery_save(&st, EM_STR("x"), sess(&s, EM_ST_SESSION_PID, 0, 1, 0, 0, "x"), 2000),
                     EM_OK);
    ck_assert_int_eq(em_recovery_save(&st, EM_STR("y"), sess(&s, EM_ST_SESSION_PID, 0, 1, 0, 0, "y"), 2000),
                     EM_OK);
    ck_assert_int_eq(em_recovery_save(&st, EM_STR("z"), sess(&s, EM_ST_SESSION_PID, 0, 1, 0, 0, "z"), 2000),
                     EM_ERROR);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("s2"), &out), EM_DECLINED);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("s5"), &out), EM_DECLINED);
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "s%d", i);
        ck_assert_int_eq(em_recovery_get(&st, S(key), &out), i == 2 || i == 5 ? EM_DECLINED : EM_OK);
    }
    ck_assert_uint_eq(tab_at(st.hdr->sessions_off)->evicted, 2);
}
END_TEST

START_TEST(test_session_stats_expire)
{
    em_st_session_t    s, out;
    em_recovery_stats_t ss;

    em_recovery_save(&st, EM_STR("a"), sess(&s, EM_ST_SESSION_PID, 0, 1, 1000, 0, "a"), 1000);
    em_recovery_save(&st, EM_STR("b"), sess(&s, EM_ST_SESSION_PID, 0, 1, 2000, 5000, "b"), 2000);
    em_recovery_save(&st, EM_STR("c"), sess(&s, EM_ST_SESSION_TOKEN, 0, 1, 3000, 0, "c"), 3000);
    em_recovery_save(&st, EM_STR("d"), sess(&s, EM_ST_SESSION_TOKEN, 0, 1, 0, 1500, "d"), 3000);
    em_recovery_save(&st, EM_STR("e"), sess(&s, EM_ST_SESSION_TOKEN, 0, 1, 3500, 9000, "e"), 3500);

    em_recovery_stats(&st, 4000, &ss);
    ck_assert_uint_eq(ss.pid_sessions, 2);
    ck_assert_uint_eq(ss.tokens, 2);        /* d expired */
    ck_assert_uint_eq(ss.held, 2);
    ck_assert_int_eq(ss.age_sum, 3000 + 2000 + 1000 + 500);
    ck_assert_uint_eq(ss.log_records, 0);

    em_recovery_expire(&st, 4000, 60000);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("d"), &out), EM_DECLINED);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("b"), &out), EM_OK);
    em_recovery_expire(&st, 9000, 60000);       /* e expires at 9000: not before */
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("b"), &out), EM_DECLINED);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("e"), &out), EM_OK);
    em_recovery_expire(&st, 1000000, 60000);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("e"), &out), EM_DECLINED);
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("a"), &out), EM_OK);   /* held: never */
    ck_assert_int_eq(em_recovery_get(&st, EM_STR("c"), &out), EM_OK);
    em_recovery_stats(&st, 1000000, &ss);
    ck_assert_uint_eq(ss.pid_sessions + ss.tokens, 2);
    ck_assert_uint_eq(ss.held, 2);
}
END_TEST

/* ---- the packet log: replay --------------------------------------------------------------- */

typedef struct {
    const char *nsp;
    const char *rooms[4];
    const char *except[3];
    const char *data;
} rec_def_t;

static const rec_def_t recs[] = {
    /* 1 */ { "/", { NULL }, { NULL }, "[\"all\",\"1\"]" },
    /* 2 */ { "/", { "r1", NULL }, { NULL }, "[\"r1\",\"2\"]" },
    /* 3 */ { "/", { "r2", NULL }, { NULL }, "[\"r2\",\"3\"]" },
    /* 4 */ { "/x", { NULL }, { NULL }, "[\"x\",\"4\"]" },
    /* 5 */ { "/", { NULL }, { "r1", NULL }, "[\"not r1\",\"5\"]" },
    /* 6 */ { "/", { "r1", "r2", NULL }, { "sid2", NULL }, "[\"r1 r2 not sid2\",\"6\"]" },
    /* 7 */ { "/", { "sidA", NULL }, { NULL }, "[\"to sidA\",\"7\"]" },
    /* 8 */ { "/", { NULL }, { NULL }, "[\"bin\",{\"_placeholder\":true,\"num\":0},\"8\"]" },
};

static const em_str_t rec8_atts[] = { { "\x00\x01\x02\xff", 4 }, { "", 0 }, { "abc\0", 4 } };

static void
plog_put_recs(void)
{
    for (size_t i = 0; i < EM_NELEMS(recs); i++) {
        int      last = i == EM_NELEMS(recs) - 1;
        uint64_t off = plog_put(recs[i].nsp, recs[i].rooms, recs[i].except, S(recs[i].data),
                                last ? rec8_atts : NULL, last ? EM_NELEMS(rec8_atts) : 0,
                                1000 + (int64_t) i);
        ck_assert_uint_eq(off, i + 1);
    }
}

static const struct {
    const char *nsp;
    const char *rooms[4];
    uint64_t    offset;
    int         from;
    int         rc;
    uint64_t    want[8];    /* 0-terminated */
} replays[] = {
    { "/", { "sidA", "r1" }, 1, 0, EM_OK, { 2, 6, 7, 8 } },
    { "/", { "sid2", "r2" }, 1, 0, EM_OK, { 3, 5, 8 } },
    { "/", { "r1", "r2" }, 5, 0, EM_OK, { 6, 8 } },
    { "/", { "r2", "sid2" }, 5, 0, EM_OK, { 8 } },
    { "/", { "sid3" }, 4, 0, EM_OK, { 5, 8 } },
    { "/", { NULL }, 1, 0, EM_OK, { 5, 8 } },
    { "/", { "sid3" }, 7, 0, EM_OK, { 8 } },
    { "/", { "sid3" }, 8, 0, EM_OK, { 0 } },
    { "/", { "sid3" }, 1, 1, EM_OK, { 1, 5, 8 } },
    { "/", { "sid3" }, 5, 1, EM_OK, { 5, 8 } },
    { "/", { "sidA" }, 7, 1, EM_OK, { 7, 8 } },
    { "/", { "sid3" }, 9, 1, EM_OK, { 0 } },
    { "/", { "sid3" }, 9, 0, EM_DECLINED, { 0 } },
    { "/", { "sid3" }, 1000, 0, EM_DECLINED, { 0 } },
    { "/", { "sid3" }, 0, 0, EM_DECLINED, { 0 } },
    { "/x", { "q" }, 1, 0, EM_OK, { 4 } },
    { "/x", { "q" }, 4, 0, EM_OK, { 0 } },
    { "/y", { "q" }, 1, 0, EM_OK, { 0 } },
    { "", { "q" }, 1, 0, EM_OK, { 0 } },
};

static void
pkt_expect(const em_plog_pkt_t *pk, uint64_t off, const char *what)
{
    const rec_def_t *d = &recs[off - 1];

    ck_assert_msg(pk->offset == off, "%s: offset %llu, want %llu", what,
                  (unsigned long long) pk->offset, (unsigned long long) off);
    ck_assert_msg(pk->data.len == strlen(d->data) && memcmp(pk->data.data, d->data, pk->data.len) == 0,
                  "%s: record %llu: data \"%.*s\"", what, (unsigned long long) off,
                  (int) pk->data.len, pk->data.data);
    if (off == 8) {
        ck_assert_uint_eq(pk->natt, EM_NELEMS(rec8_atts));
        for (size_t a = 0; a < pk->natt; a++) {
            ck_assert_uint_eq(pk->atts[a].len, rec8_atts[a].len);
            ck_assert_int_eq(memcmp(pk->atts[a].data, rec8_atts[a].data, rec8_atts[a].len), 0);
        }
    } else {
        ck_assert_uint_eq(pk->natt, 0);
    }
}

START_TEST(test_plog_replay)
{
    em_plog_pkt_t      *pk, *p;
    em_str_t            rooms[4];
    size_t              nrooms = strs(rooms, replays[_i].rooms, 4), n = 0;
    char                what[64];
    em_recovery_stats_t  ss;

    plog_put_recs();
    em_recovery_stats(&st, 0, &ss);
    ck_assert_uint_eq(ss.log_records, 8);
    ck_assert_uint_eq(ss.log_evicted, 0);

    snprintf(what, sizeof(what), "replay row %d", _i);
    pk = (em_plog_pkt_t *) 1;
    ck_assert_int_eq(em_plog_replay(&st, S(replays[_i].nsp), rooms, nrooms, replays[_i].offset,
                                    replays[_i].from, &pk), replays[_i].rc);
    if (replays[_i].rc != EM_OK) {
        ck_assert_ptr_null(pk);
        return;
    }
    for (p = pk; p != NULL; p = p->next, n++) {
        ck_assert_msg(replays[_i].want[n] != 0, "%s: extra record %llu", what,
                      (unsigned long long) p->offset);
        pkt_expect(p, replays[_i].want[n], what);
    }
    ck_assert_msg(replays[_i].want[n] == 0, "%s: %zu records, missing %llu", what, n,
                  (unsigned long long) replays[_i].want[n]);
    em_plog_pkts_free(pk);
}
END_TEST

START_TEST(test_plog_abort_too_big)
{
    em_plog_pkt_t     *pk;
    em_recovery_stats_t ss;
    char               big[1200];
    em_str_t           one = S("s");

    ck_assert_uint_eq(em_plog_begin(&st), 1);
    em_plog_abort(&st);
    ck_assert_uint_eq(em_plog_next_offset(&st), 1);
    ck_assert_uint_eq(plog_put("/", NULL, NULL, EM_STR("[1]"), NULL, 0, 1), 1);

    /* Exactly a quarter of the log (32 + 1 + 991 = 1024): stored. */
    memset(big, 'b', sizeof(big));
    ck_assert_uint_eq(plog_put("/", NULL, NULL, (em_str_t) { big, 991 }, NULL, 0, 1), 2);
    /* 8 bytes more: not stored, but the offset is used. */
    ck_assert_uint_eq(plog_put("/", NULL, NULL, (em_str_t) { big, 999 }, NULL, 0, 1), 3);
    ck_assert_uint_eq(plog()->too_big, 1);
    ck_assert_uint_eq(em_plog_next_offset(&st), 4);
    em_recovery_stats(&st, 0, &ss);
    ck_assert_uint_eq(ss.log_records, 2);
    ck_assert_uint_eq(ss.log_bytes, 32 + 8 + 1024);

    ck_assert_int_eq(em_plog_replay(&st, EM_STR("/"), &one, 1, 1, 0, &pk), EM_OK);
    ck_assert_uint_eq(pkts_count(pk), 1);
    ck_assert_uint_eq(pk->offset, 2);
    ck_assert_uint_eq(pk->data.len, 991);
    em_plog_pkts_free(pk);
    ck_assert_int_eq(em_plog_replay(&st, EM_STR("/"), &one, 1, 3, 0, &pk), EM_DECLINED);
    ck_assert_uint_eq(plog_put("/", NULL, NULL, EM_STR("[4]"), NULL, 0, 1), 4);
    ck_assert_int_eq(em_plog_replay(&st, EM_STR("/"), &one, 1, 2, 0, &pk), EM_OK);
    ck_assert_uint_eq(pkts_count(pk), 1);
    ck_assert_uint_eq(pk->offset, 4);
    em_plog_pkts_free(pk);
    /* The replay says up to which offset the log was read (the one too big
     * to be stored counts: later copies of it are duplicates too). */
    uint64_t upto = 0;
    ck_assert_uint_eq(plog_put("/", NULL, NULL, (em_str_t) { big, 999 }, NULL, 0, 1), 5);
    ck_assert_int_eq(em_plog_replay_upto(&st, EM_STR("/"), &one, 1, 2, 0, &pk, &upto), EM_OK);
    ck_assert_uint_eq(upto, 5);
    ck_assert_uint_eq(pkts_count(pk), 1);
    em_plog_pkts_free(pk);
}
END_TEST

/* Records older than keep go; so do the log's bytes when all are old. */
START_TEST(test_plog_expire)
{
    em_plog_pkt_t     *pk;
    em_recovery_stats_t ss;
    em_str_t           one = S("s");

    for (int i = 1; i <= 4; i++) {
        plog_put("/", NULL, NULL, EM_STR("[0]"), NULL, 0, 1000 * i);
    }
    em_recovery_expire(&st, 5000, 2500);      /* drops the records of 1000 and 2000 */
    em_recovery_stats(&st, 5000, &ss);
    ck_assert_uint_eq(ss.log_records, 2);
    ck_assert_uint_eq(ss.log_evicted, 2);
    ck_assert_int_eq(em_plog_replay(&st, EM_STR("/"), &one, 1, 2, 0, &pk), EM_DECLINED);
    ck_assert_int_eq(em_plog_replay(&st, EM_STR("/"), &one, 1, 3, 0, &pk), EM_OK);
    ck_assert_uint_eq(pkts_count(pk), 1);
    ck_assert_uint_eq(pk->offset, 4);
    em_plog_pkts_free(pk);
    /* From an offset whose record is gone: what is left, and the gap said. */
    ck_assert_int_eq(em_plog_replay(&st, EM_STR("/"), &one, 1, 1, 1, &pk), EM_DECLINED);
    ck_assert_uint_eq(pkts_count(pk), 2);
    ck_assert_uint_eq(pk->offset, 3);
    em_plog_pkts_free(pk);
    ck_assert_int_eq(em_plog_replay(&st, EM_STR("/"), &one, 1, 3, 1, &pk), EM_OK);
    ck_assert_uint_eq(pkts_count(pk), 2);
    em_plog_pkts_free(pk);

    em_recovery_expire(&st, 10000, 1000);
    em_recovery_stats(&st, 10000, &ss);
    ck_assert_uint_eq(ss.log_records, 0);
    ck_assert_uint_eq(ss.log_evicted, 4);
    ck_assert_uint_eq(ss.log_bytes, 0);
    ck_assert_int_eq(em_plog_replay(&st, EM_STR("/"), &one, 1, 4, 0, &pk), EM_DECLINED);

    ck_assert_uint_eq(plog_put("/", NULL, NULL, EM_STR("[5]"), NULL, 0, 11000), 5);
    ck_assert_int_eq(em_plog_replay(&st, EM_STR("/"), &one, 1, 5, 1, &pk), EM_OK);
    ck_assert_uint_eq(pkts_count(pk), 1);
    ck_assert_uint_eq(pk->offset, 5);
    em_plog_pkts_free(pk);
}
END_TEST

/*
 * Fill a 4096-byte log many times over with records of varied sizes (some
 * with rooms, except-rooms and an attachment) and check after every append,
 * against a model, that exactly the newest records are kept, that the
 * counts add up, and that a replay returns them byte-exact.
 */
#define WRAP_N 600

typedef struct {
    uint64_t offset;
    size_t   len, attlen;
    int      room;          /* 0: none, 1: "a", 2: "b" */
    int      except_a;
    int      att;
} wrec_t;

static wrec_t wmodel[WRAP_N];

static void
wrec_data(size_t i, unsigned char *p, size_t len)
{
    fill_bytes(p, len, (uint32_t) i);
}

static int
wrec_to_a(const wrec_t *w)
{
    return (w->room == 0 || w->room == 1) && !w->except_a;
}

START_TEST(test_plog_wrap)
{
    static const char *const ra[] = { "a", NULL }, *const rb[] = { "b", NULL };
    unsigned char            data[512], att[64], want[512];
    em_str_t                 a_rooms[2] = { S("x"), S("a") };
    em_plog_t               *lg = plog();
    size_t                   pads_small = 0, pads_big = 0;
    em_plog_pkt_t           *pk;
    em_recovery_stats_t       ss;

    for (size_t i = 0; i < WRAP_N; i++) {
        wrec_t  *w = &wmodel[i];
        uint64_t need, at;
        em_str_t attv;

        w->len = 1 + (i * 53) % 380;
        w->room = (int) (i % 3);
        w->except_a = i % 5 == 0;
        w->att = i % 4 == 0;
        w->attlen = i % 50;
        wrec_data(i, data, w->len);
        fill_bytes(att, w->attlen, (uint32_t) i + 100000);
        attv = (em_str_t) { (const char *) att, w->attlen };

        need = 32 + 1 + w->len + (w->room ? 3 : 0) + (w->except_a ? 3 : 0) + (w->att ? 4 + w->attlen : 0);
        need = (need + 7) & ~(uint64_t) 7;
        at = lg->head % lg->size;
        if (lg->size - at < need) {
            if (lg->size - at < sizeof(em_plog_rec_t)) {
                pads_small++;
            } else {
                pads_big++;
            }
        }

        w->offset = plog_put("/", w->room == 1 ? ra : w->room == 2 ? rb : NULL,
                             w->except_a ? ra : NULL, (em_str_t) { (const char *) data, w->len },
                             w->att ? &attv : NULL, w->att ? 1 : 0, 1000 + (int64_t) i);
        CHECK(w->offset == i + 1, "record %zu: offset %llu", i, (unsigned long long) w->offset);

        em_recovery_stats(&st, 0, &ss);
        CHECK(ss.log_records >= 1 && ss.log_records <= i + 1, "record %zu: %llu records", i,
              (unsigned long long) ss.log_records);
        CHECK(ss.log_records + ss.log_evicted == i + 1, "record %zu: %llu records + %llu evicted", i,
              (unsigned long long) ss.log_records, (unsigned long long) ss.log_evicted);
        CHECK(ss.log_bytes <= lg->size, "record %zu: %llu bytes in the log", i,
              (unsigned long long) ss.log_bytes);

        /* The newest log_records records are kept: a replay after the oldest gives the rest. */
        size_t first = i + 1 - ss.log_records;
        CHECK(em_plog_replay(&st, EM_STR("/"), a_rooms, 2, wmodel[first].offset, 0, &pk) == EM_OK,
              "record %zu: replay after the oldest kept (%llu) declined", i,
              (unsigned long long) wmodel[first].offset);
        em_plog_pkt_t *p = pk;
        for (size_t j = first + 1; j <= i; j++) {
            if (!wrec_to_a(&wmodel[j])) {
                continue;
            }
            CHECK(p != NULL, "record %zu: replay misses %llu", i, (unsigned long long) wmodel[j].offset);
            CHECK(p->offset == wmodel[j].offset, "record %zu: replay gave %llu, want %llu", i,
                  (unsigned long long) p->offset, (unsigned long long) wmodel[j].offset);
            wrec_data(j, want, wmodel[j].len);
            CHECK(p->data.len == wmodel[j].len && memcmp(p->data.data, want, p->data.len) == 0,
                  "record %zu: data of %llu differs", i, (unsigned long long) p->offset);
            CHECK(p->natt == (size_t) wmodel[j].att, "record %zu: %zu attachments", i, p->natt);
            if (p->natt) {
                fill_bytes(want, wmodel[j].attlen, (uint32_t) j + 100000);
                CHECK(p->atts[0].len == wmodel[j].attlen
                          && memcmp(p->atts[0].data, want, p->atts[0].len) == 0,
                      "record %zu: attachment of %llu differs", i, (unsigned long long) p->offset);
            }
            p = p->next;
        }
        CHECK(p == NULL, "record %zu: replay gave extra record %llu", i,
              (unsigned long long) p->offset);
        em_plog_pkts_free(pk);

        if (first > 0) {
            pk = (em_plog_pkt_t *) 1;
            CHECK(em_plog_replay(&st, EM_STR("/"), a_rooms, 2, wmodel[first - 1].offset, 0, &pk)
                      == EM_DECLINED && pk == NULL,
                  "record %zu: replay after evicted %llu not declined", i,
                  (unsigned long long) wmodel[first - 1].offset);
        }
        /* Inclusive from the oldest kept: it comes first when it is for "a". */
        CHECK(em_plog_replay(&st, EM_STR("/"), a_rooms, 2, wmodel[first].offset, 1, &pk) == EM_OK,
              "record %zu: inclusive replay declined", i);
        CHECK(wrec_to_a(&wmodel[first]) ? pk != NULL && pk->offset == wmodel[first].offset
                                        : pk == NULL || pk->offset != wmodel[first].offset,
              "record %zu: inclusive replay starts wrong", i);
        em_plog_pkts_free(pk);
    }
    em_recovery_stats(&st, 0, &ss);
    ck_assert_uint_gt(ss.log_evicted, WRAP_N / 2);
    ck_assert_uint_gt(lg->head, 10 * lg->size);
    ck_assert_msg(pads_small > 0 && pads_big > 0, "paddings: %zu small, %zu with a header",
                  pads_small, pads_big);

    /* Expiring everything, padding and all, leaves an empty log that works. */
    em_recovery_expire(&st, 1000000, 1000);
    em_recovery_stats(&st, 0, &ss);
    ck_assert_uint_eq(ss.log_records, 0);
    ck_assert_uint_eq(ss.log_bytes, 0);
    ck_assert_uint_eq(ss.log_evicted, WRAP_N);
    ck_assert_uint_eq(plog_put("/", NULL, NULL, EM_STR("[\"again\"]"), NULL, 0, 1000000), WRAP_N + 1);
    ck_assert_int_eq(em_plog_replay(&st, EM_STR("/"), a_rooms, 2, WRAP_N + 1, 1, &pk), EM_OK);
    ck_assert_uint_eq(pkts_count(pk), 1);
    ck_assert_int_eq(memcmp(pk->data.data, "[\"again\"]", 9), 0);
    em_plog_pkts_free(pk);
}
END_TEST

/* ---- monitor ------------------------------------------------------------------------------- */

static em_st_event_t *
mev(em_st_event_t *ev, const char *type, const char *sid, const char *ip, const char *ua, int64_t t)
{
    em_monitor_event_fill(ev, type, S(sid), EM_STR("/"), EM_STR("u"), S(ip), S(ua), EM_STR("{}"));
    ev->time = t;
    return ev;
}

static int
ev_type_is(const em_st_event_t *ev, void *arg)
{
    return strcmp(ev->type, arg) == 0;
}

START_TEST(test_monitor_figures)
{
    em_st_event_t        ev, out[16];
    em_monitor_figures_t f;
    const int64_t        T = 1000000;      /* second 1000 */
    static const char   *order[] = { "failed", "failed", "connect", "disconnect", "disconnect",
                                     "connect", "connect", "connect", "connect", "connect" };

    for (int i = 0; i < 3; i++) {
        em_monitor_connect(&st, 0, mev(&ev, "connect", "s", "1.1.1.1", "ua", T + i));
    }
    em_monitor_connect(&st, 1, mev(&ev, "connect", "s", "1.1.1.1", "ua", T + 1000));
    em_monitor_connect(&st, 1, mev(&ev, "connect", "s", "1.1.1.1", "ua", T + 1001));
    em_monitor_read(&st, T + 2000, &f);
    ck_assert_uint_eq(f.total, 5);
    ck_assert_uint_eq(f.active, 5);
    ck_assert_uint_eq(f.peak, 5);
    ck_assert_uint_eq(f.per_minute, 5);
    ck_assert_uint_eq(f.avg_duration, 0);

    em_monitor_disconnect(&st, 0, 1000, mev(&ev, "disconnect", "s", "", "", T + 1500));
    em_monitor_disconnect(&st, 1, 3000, mev(&ev, "disconnect", "s", "", "", T + 1600));
    em_monitor_connect(&st, 2, mev(&ev, "connect", "s", "1.1.1.1", "ua", T + 30000));
    em_monitor_failed(&st, mev(&ev, "failed", "", "9.9.9.9", "bot", T + 30001));
    em_monitor_failed(&st, mev(&ev, "failed", "", "9.9.9.9", "bot", T + 30002));
    em_monitor_read(&st, T + 30500, &f);
    ck_assert_uint_eq(f.total, 6);
    ck_assert_uint_eq(f.active, 4);
    ck_assert_uint_eq(f.peak, 5);
    ck_assert_uint_eq(f.failed, 2);
    ck_assert_uint_eq(f.closed, 2);
    ck_assert_uint_eq(f.avg_duration, 2000);
    ck_assert_uint_eq(f.per_minute, 6);
    /* The connects of second 1000 leave the minute first. */
    em_monitor_read(&st, T + 60500, &f);
    ck_assert_uint_eq(f.per_minute, 3);
    em_monitor_read(&st, T + 91000, &f);
    ck_assert_uint_eq(f.per_minute, 0);

    /* Newest first; a filter. */
    ck_assert_uint_eq(em_monitor_events(&st, out, 16, NULL, NULL), EM_NELEMS(order));
    for (size_t i = 0; i < EM_NELEMS(order); i++) {
        ck_assert_str_eq(out[i].type, order[i]);
    }
    ck_assert_int_eq(out[0].time, T + 30002);
    ck_assert_int_eq(out[9].time, T);
    ck_assert_uint_eq(em_monitor_events(&st, out, 16, ev_type_is, "disconnect"), 2);
    ck_assert_int_eq(out[0].time, T + 1600);
    ck_assert_int_eq(out[1].time, T + 1500);
    ck_assert_uint_eq(em_monitor_events(&st, out, 3, ev_type_is, "connect"), 3);
    ck_assert_int_eq(out[0].time, T + 30000);
    ck_assert_uint_eq(em_monitor_events(&st, out, 0, NULL, NULL), 0);

    /* A disconnect from a slot with nothing active does not go below zero. */
    em_monitor_disconnect(&st, 3, 10, mev(&ev, "disconnect", "s", "", "", T + 40000));
    em_monitor_read(&st, T + 40000, &f);
    ck_assert_uint_eq(f.active, 4);
    ck_assert_uint_eq(f.closed, 3);

    em_monitor_sweep_slot(&st, 0);            /* slot 0 had 2 */
    em_monitor_read(&st, T + 40000, &f);
    ck_assert_uint_eq(f.active, 2);

    em_monitor_reset(&st, T + 50000);
    em_monitor_read(&st, T + 50000, &f);
    ck_assert_int_eq(f.last_reset, T + 50000);
    ck_assert_uint_eq(f.total, 0);
    ck_assert_uint_eq(f.failed, 0);
    ck_assert_uint_eq(f.closed, 0);
    ck_assert_uint_eq(f.avg_duration, 0);
    ck_assert_uint_eq(f.per_minute, 0);
    ck_assert_uint_eq(f.active, 2);
    ck_assert_uint_eq(f.peak, 2);
}
END_TEST

static int
ev_even(const em_st_event_t *ev, void *arg)
{
    (void) arg;
    return atoi(ev->sid + 1) % 2 == 0;
}

/* The ring keeps the last EM_ST_EVENTS events. */
START_TEST(test_monitor_ring)
{
    em_st_event_t *out = calloc(EM_ST_EVENTS + 10, sizeof(*out));
    em_st_event_t  ev;
    char           sid[16];
    size_t         n;

    ck_assert_ptr_nonnull(out);
    for (int i = 0; i < EM_ST_EVENTS + 5; i++) {
        snprintf(sid, sizeof(sid), "s%d", i);
        em_monitor_record(&st, mev(&ev, "error", sid, "", "", i));
    }
    n = em_monitor_events(&st, out, EM_ST_EVENTS + 10, NULL, NULL);
    ck_assert_uint_eq(n, EM_ST_EVENTS);
    for (size_t i = 0; i < n; i++) {
        snprintf(sid, sizeof(sid), "s%zu", (size_t) EM_ST_EVENTS + 4 - i);
        CHECK(strcmp(out[i].sid, sid) == 0, "event %zu: %s, want %s", i, out[i].sid, sid);
    }
    n = em_monitor_events(&st, out, EM_ST_EVENTS + 10, ev_even, NULL);
    ck_assert_uint_eq(n, EM_ST_EVENTS / 2);
    ck_assert_str_eq(out[0].sid, "s1004");
    ck_assert_str_eq(out[n - 1].sid, "s6");
    ck_assert_uint_eq(em_monitor_events(&st, out, 2, NULL, NULL), 2);
    ck_assert_str_eq(out[1].sid, "s1003");
    free(out);
}
END_TEST

START_TEST(test_monitor_top)
{
    static const struct {
        const char *ip, *ua;
        int         n;
    } rows[] = {
        { "1.1.1.1", "curl", 5 }, { "2.2.2.2", "firefox", 3 }, { "3.3.3.3", "chrome", 7 },
        { "4.4.4.4", "curl", 1 }, { "", "", 4 },
    };
    em_monitor_top_t top[8];
    em_st_event_t    ev;

    for (size_t r = 0; r < EM_NELEMS(rows); r++) {
        for (int i = 0; i < rows[r].n; i++) {
            if (i == 0 && r == 3) {
                em_monitor_failed(&st, mev(&ev, "failed", "", rows[r].ip, rows[r].ua, 1));
            } else {
                em_monitor_connect(&st, 0, mev(&ev, "connect", "s", rows[r].ip, rows[r].ua, 1));
            }
        }
    }
    ck_assert_uint_eq(em_monitor_top(&st, 0, top, 3), 3);
    ck_assert_str_eq(top[0].key, "3.3.3.3");
    ck_assert_uint_eq(top[0].count, 7);
    ck_assert_str_eq(top[1].key, "1.1.1.1");
    ck_assert_uint_eq(top[1].count, 5);
    ck_assert_str_eq(top[2].key, "2.2.2.2");
    ck_assert_uint_eq(top[2].count, 3);
    ck_assert_uint_eq(em_monitor_top(&st, 0, top, 8), 4);     /* empty IPs are not counted */
    ck_assert_str_eq(top[3].key, "4.4.4.4");
    ck_assert_uint_eq(top[3].count, 1);
    ck_assert_uint_eq(em_monitor_top(&st, 1, top, 8), 3);
    ck_assert_str_eq(top[0].key, "chrome");
    ck_assert_uint_eq(top[0].count, 7);
    ck_assert_str_eq(top[1].key, "curl");
    ck_assert_uint_eq(top[1].count, 6);
    ck_assert_str_eq(top[2].key, "firefox");
    ck_assert_uint_eq(em_monitor_top(&st, 1, top, 1), 1);
    ck_assert_str_eq(top[0].key, "chrome");
    ck_assert_uint_eq(em_monitor_top(&st, 1, top, 0), 0);

    /* More IPs than the table holds: the least recently seen go, connects never fail. */
    for (int i = 0; i < 20; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "10.0.0.%d", i);
        em_monitor_connect(&st, 0, mev(&ev, "connect", "s", ip, "ua", 2));
    }
    ck_assert_uint_eq(em_monitor_top(&st, 0, top, 8), 8);
    for (int i = 0; i < 8; i++) {
        ck_assert_uint_eq(top[i].count, 1);
        ck_assert_int_ge(atoi(top[i].key + 7), 12);
    }
}
END_TEST

START_TEST(test_monitor_event_fill)
{
    em_st_event_t ev;
    char          ua[300], det[300];

    memset(ua, 'u', sizeof(ua));
    memset(det, 'd', sizeof(det));
    em_monitor_event_fill(&ev, "a-very-long-event-type", EM_STR("sid"), EM_NULL_STR, EM_STR("u"),
                          EM_STR("1.2.3.4"), (em_str_t) { ua, sizeof(ua) },
                          (em_str_t) { det, sizeof(det) });
    ck_assert_uint_eq(strlen(ev.type), sizeof(ev.type) - 1);
    ck_assert_int_eq(strncmp(ev.type, "a-very-long-event-type", sizeof(ev.type) - 1), 0);
    ck_assert_str_eq(ev.sid, "sid");
    ck_assert_str_eq(ev.nsp, "");
    ck_assert_str_eq(ev.ip, "1.2.3.4");
    ck_assert_uint_eq(strlen(ev.ua), sizeof(ev.ua) - 1);
    ck_assert_str_eq(ev.details, "{}");         /* too long for the field: not cut */
    ck_assert_int_gt(ev.time, 0);
    em_monitor_event_fill(&ev, "x", EM_NULL_STR, EM_NULL_STR, EM_NULL_STR, EM_NULL_STR, EM_NULL_STR,
                          EM_STR("{\"a\":1}"));
    ck_assert_str_eq(ev.details, "{\"a\":1}");
    ck_assert_str_eq(ev.ua, "");
}
END_TEST

/* ---- processes ------------------------------------------------------------------------------ */

static pid_t
spawn(void)
{
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
    }
    return pid;
}

/* A child maps the segment by its descriptor; the parent sees what it did. */
START_TEST(test_xproc_map)
{
    em_presence_t      p;
    em_limit_result_t  r;
    em_plog_pkt_t     *pk;
    em_str_t           one = S("s");

    kids[0] = spawn();
    if (kids[0] == 0) {
        em_state_t    c;
        em_pchanges_t chg = { 0 };
        if (em_state_map(&c, st.fd) != EM_OK || c.hdr == st.hdr) {
            _exit(2);
        }
        if (em_presence_connect(&c, 2, EM_STR("/"), EM_STR("kid"), EM_STR("{\"k\":1}"), 1000, &chg)
                != EM_OK
            || chg.n != 1 || chg.v[0].what != EM_PCHG_ONLINE) {
            _exit(3);
        }
        em_pchanges_free(&chg);
        em_presence_connect(&c, 2, EM_STR("/"), EM_STR(""), EM_NULL_STR, 1000, NULL);
        em_room_add(&c, 2, EM_STR("/"), EM_STR("kids"), EM_STR("kid"), NULL);
        for (int i = 0; i < 3; i++) {
            em_limit_hit(&c, "ck", 2, 5, 60000, 0, 1000, &r);
            if (!r.allowed || r.remaining != (uint32_t) (4 - i)) {
                _exit(4);
            }
        }
        uint64_t off = em_plog_begin(&c);
        em_plog_commit(&c, off, EM_STR("/"), NULL, 0, NULL, 0, EM_STR("[\"from the child\"]"), NULL,
                       0, 1000);
        em_state_slot_set(&c, 2, (uint32_t) getpid());
        em_state_unmap(&c);
        _exit(0);
    }
    ck_child_ok(&kids[0]);

    ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), EM_STR("kid"), &p), EM_OK);
    ck_assert_uint_eq(p.nconn, 1);
    ck_assert_int_eq(p.status, EM_ST_STATUS_ONLINE);
    ck_assert_uint_eq(p.info_len, 7);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("")), 1);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("kids")), 1);
    em_limit_hit(&st, "ck", 2, 5, 60000, 0, 1001, &r);
    ck_assert_int_eq(r.allowed, 1);
    ck_assert_uint_eq(r.remaining, 1);
    ck_assert_uint_ne(em_state_slot_pid(&st, 2), 0);
    ck_assert_int_eq(em_plog_replay(&st, EM_STR("/"), &one, 1, 1, 1, &pk), EM_OK);
    ck_assert_uint_eq(pkts_count(pk), 1);
    ck_assert_int_eq(memcmp(pk->data.data, "[\"from the child\"]", pk->data.len), 0);
    em_plog_pkts_free(pk);

    /* The child's slot is swept by the parent. */
    em_pchanges_t chg = { 0 };
    em_state_slot_set(&st, 2, 0);
    em_state_sweep_slot(&st, 2, 2000, 1000, &chg);
    ck_assert_uint_eq(chg_count(&chg, EM_PCHG_OFFLINE, "/", NULL, "kid"), 1);
    ck_assert_uint_eq(chg_count(&chg, EM_PCHG_ROOM_OUT, "/", "kids", "kid"), 1);
    em_pchanges_free(&chg);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("")), 0);
}
END_TEST

/* Two children race on one key and one user: the zone locks keep the counts exact. */
typedef struct {
    uint64_t allowed[2];
    uint64_t online[2];
} race_t;

START_TEST(test_xproc_race)
{
    race_t       *sh = mmap(NULL, sizeof(race_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                            -1, 0);
    em_presence_t p;
    em_pchanges_t chg = { 0 };

    ck_assert_ptr_ne(sh, MAP_FAILED);
    memset(sh, 0, sizeof(*sh));
    for (int k = 0; k < 2; k++) {
        kids[k] = spawn();
        if (kids[k] == 0) {
            em_state_t c;
            if (em_state_map(&c, st.fd) != EM_OK) {
                _exit(2);
            }
            for (int i = 0; i < 300; i++) {
                em_limit_result_t r;
                em_pchanges_t     ch = { 0 };
                em_limit_hit(&c, "shared", 6, 500, 1000000000, 0, 1000, &r);
                sh->allowed[k] += r.allowed;
                em_presence_connect(&c, (unsigned) k, EM_STR("/"), EM_STR("same"), EM_NULL_STR, 1000,
                                    &ch);
                em_presence_connect(&c, (unsigned) k, EM_STR("/"), EM_STR(""), EM_NULL_STR, 1000, NULL);
                sh->online[k] += ch.n;
                em_pchanges_free(&ch);
            }
            em_state_unmap(&c);
            _exit(0);
        }
    }
    ck_child_ok(&kids[0]);
    ck_child_ok(&kids[1]);
    ck_assert_uint_eq(sh->allowed[0] + sh->allowed[1], 500);
    ck_assert_uint_eq(sh->online[0] + sh->online[1], 1);
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), EM_STR("same"), &p), EM_OK);
    ck_assert_uint_eq(p.nconn, 600);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("")), 600);
    em_state_sweep_slot(&st, 0, 2000, 1000, &chg);
    ck_assert_uint_eq(chg.n, 0);
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), EM_STR("same"), &p), EM_OK);
    ck_assert_uint_eq(p.nconn, 300);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("")), 300);
    munmap(sh, sizeof(*sh));
}
END_TEST

/* Something in every zone, for the zone tests to find again. */
static void
zones_fill(void)
{
    em_limit_result_t r;
    em_st_session_t   s;
    em_st_event_t     ev;

    ck_assert_int_eq(em_presence_connect(&st, 0, EM_STR("/"), EM_STR("alice"), EM_NULL_STR, 10, NULL),
                     EM_OK);
    em_presence_connect(&st, 0, EM_STR("/"), EM_STR(""), EM_NULL_STR, 10, NULL);
    em_room_add(&st, 0, EM_STR("/"), EM_STR("room"), EM_STR("alice"), NULL);
    em_limit_hit(&st, "k", 1, 5, 1000000, 0, 10, &r);
    ck_assert_uint_eq(r.remaining, 4);
    ck_assert_int_eq(em_recovery_save(&st, EM_STR("s1"), sess(&s, EM_ST_SESSION_PID, 0, 1, 1, 0, "S"), 1),
                     EM_OK);
    plog_put("/", NULL, NULL, EM_STR("[\"one\"]"), NULL, 0, 10);
    plog_put("/", NULL, NULL, EM_STR("[\"two\"]"), NULL, 0, 10);
    em_monitor_connect(&st, 0, mev(&ev, "connect", "s", "1.1.1.1", "ua", 10));
    uint32_t n;
    ck_assert_int_eq(em_kv_set(&st, EM_STR("kv"), EM_STR("{\"a\":1}"), 0, 10, NULL), EM_OK);
    ck_assert_int_eq(em_kv_push(&st, EM_STR("list"), EM_STR("\"m1\""), 10, 0, 10, &n, NULL), EM_OK);
}

/* Each zone's tables are whole and usable (round: how many times this ran). */
static void
zones_check(int zone, int round)
{
    em_limit_result_t    r;
    em_presence_t        p;
    em_st_session_t      s;
    em_monitor_figures_t f;
    em_plog_pkt_t       *pk;
    em_str_t             one = S("s");
    em_monitor_top_t     top[2];

    switch (zone) {
    case EM_ZONE_COUNTERS:
        em_limit_hit(&st, "k", 1, 5, 1000000, 0, 20, &r);
        ck_assert_int_eq(r.allowed, 1);
        ck_assert_uint_eq(r.remaining, (uint32_t) (3 - round));
        break;
    case EM_ZONE_PRESENCE:
        ck_assert_int_eq(em_presence_get(&st, EM_STR("/"), EM_STR("alice"), &p), EM_OK);
        ck_assert_uint_eq(p.nconn, 1);
        ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("")), 1);
        ck_assert_uint_eq(em_room_size(&st, EM_STR("/"), EM_STR("room")), 1);
        ck_assert_int_eq(em_presence_connect(&st, 1, EM_STR("/"), EM_STR("bob"), EM_NULL_STR, 20, NULL),
                         EM_OK);
        break;
    case EM_ZONE_SESSIONS:
        ck_assert_int_eq(em_recovery_get(&st, EM_STR("s1"), &s), EM_OK);
        ck_assert_str_eq(s.sid, "S");
        ck_assert_int_eq(em_plog_replay(&st, EM_STR("/"), &one, 1, 1, 0, &pk), EM_OK);
        ck_assert_uint_eq(pkts_count(pk), 1 + (size_t) round);
        ck_assert_int_eq(memcmp(pk->data.data, "[\"two\"]", 7), 0);
        em_plog_pkts_free(pk);
        plog_put("/", NULL, NULL, EM_STR("[\"more\"]"), NULL, 0, 20);
        break;
    case EM_ZONE_MONITOR:
        em_monitor_read(&st, 20, &f);
        ck_assert_uint_eq(f.total, 1);
        ck_assert_uint_eq(f.active, 1);
        ck_assert_uint_eq(em_monitor_top(&st, 0, top, 2), 1);
        ck_assert_str_eq(top[0].key, "1.1.1.1");
        break;
    case EM_ZONE_STORE: {
        char     buf[64];
        size_t   len;
        uint32_t n;
        ck_assert_int_eq(em_kv_get(&st, EM_STR("kv"), 20, buf, sizeof(buf), &len), EM_OK);
        ck_assert_int_eq(len, 7);
        ck_assert_int_eq(memcmp(buf, "{\"a\":1}", 7), 0);
        ck_assert_uint_eq(em_kv_len(&st, EM_STR("list"), 20), 1 + (uint32_t) round);
        ck_assert_int_eq(em_kv_push(&st, EM_STR("list"), EM_STR("\"m\""), 10, 0, 20, &n, NULL), EM_OK);
        ck_assert_uint_eq(n, 2 + (uint32_t) round);
        break;
    }
    }
}

/* ---- the scripts' store ---- */

static void
kv_collect(const char *v, size_t len, void *arg)
{
    char *out = arg;

    strncat(out, v, len);
    strcat(out, ";");
}

/* Another host's writes (redis): the last set or delete by the writers'
 * clocks wins; this host's own writes always go. */
START_TEST(test_kv_remote_writes)
{
    char   buf[64];
    size_t len;
    int    why = 0;

    ck_assert_int_eq(em_kv_set(&st, EM_STR("owner"), EM_STR("\"here\""), 0, 1000, &why), EM_OK);
    ck_assert_int_eq(em_kv_set_at(&st, EM_STR("owner"), EM_STR("\"older\""), 0, 1010, 900, &why),
                     EM_DECLINED);
    ck_assert_int_eq(em_kv_get(&st, EM_STR("owner"), 1020, buf, sizeof(buf), &len), EM_OK);
    ck_assert_int_eq(memcmp(buf, "\"here\"", len), 0);
    ck_assert_int_eq(em_kv_set_at(&st, EM_STR("owner"), EM_STR("\"newer\""), 5000, 1030, 1100, &why),
                     EM_OK);
    ck_assert_int_eq(em_kv_get(&st, EM_STR("owner"), 1040, buf, sizeof(buf), &len), EM_OK);
    ck_assert_int_eq(memcmp(buf, "\"newer\"", len), 0);
    /* its ttl runs from when it is made here */
    ck_assert_int_eq(em_kv_get(&st, EM_STR("owner"), 1030 + 5000, buf, sizeof(buf), &len), EM_DECLINED);
    ck_assert_int_eq(em_kv_set_at(&st, EM_STR("owner"), EM_STR("1"), 0, 7000, 7000, &why), EM_OK);
    /* a delete older than the set is not made; a later one is */
    ck_assert_int_eq(em_kv_del_at(&st, EM_STR("owner"), 7010, 6999), EM_DECLINED);
    ck_assert_int_eq(em_kv_get(&st, EM_STR("owner"), 7020, buf, sizeof(buf), &len), EM_OK);
    ck_assert_int_eq(em_kv_del_at(&st, EM_STR("owner"), 7030, 7001), EM_OK);
    ck_assert_int_eq(em_kv_get(&st, EM_STR("owner"), 7040, buf, sizeof(buf), &len), EM_DECLINED);
    ck_assert_int_eq(em_kv_del_at(&st, EM_STR("absent"), 7050, 1), EM_OK);
    /* this host's set goes even over a later remote one (a clock behind),
     * and is written just after it, so that it wins on the other host too */
    int64_t written = 0;
    ck_assert_int_eq(em_kv_set_at(&st, EM_STR("k"), EM_STR("2"), 0, 8000, 99999, &why), EM_OK);
    ck_assert_int_eq(em_kv_set_w(&st, EM_STR("k"), EM_STR("3"), 0, 8010, &written, &why), EM_OK);
    ck_assert_int_eq(written, 100000);
    ck_assert_int_eq(em_kv_get(&st, EM_STR("k"), 8020, buf, sizeof(buf), &len), EM_OK);
    ck_assert_int_eq(memcmp(buf, "3", len), 0);
    ck_assert_int_eq(em_kv_set_at(&st, EM_STR("k"), EM_STR("4"), 0, 8030, 99999, &why), EM_DECLINED);
    ck_assert_int_eq(em_kv_del_w(&st, EM_STR("k"), 8040, &written), 1);
    ck_assert_int_eq(written, 100001);
    ck_assert_int_eq(em_kv_set_w(&st, EM_STR("new"), EM_STR("5"), 0, 8050, &written, &why), EM_OK);
    ck_assert_int_eq(written, 8050);
}
END_TEST

START_TEST(test_kv_values)
{
    char    buf[EM_ST_KV_VALUE_MAX + 1], big[EM_ST_KV_VALUE_MAX + 2];
    size_t  len;
    int64_t n;
    int     why = 0;

    ck_assert_int_eq(em_kv_get(&st, EM_STR("nope"), 1, buf, sizeof(buf), &len), EM_DECLINED);
    ck_assert_int_eq(em_kv_set(&st, EM_STR("a"), EM_STR("[1,2]"), 0, 1, &why), EM_OK);
    ck_assert_int_eq(em_kv_get(&st, EM_STR("a"), 1, buf, sizeof(buf), &len), EM_OK);
    ck_assert_int_eq(len, 5);
    /* a ttl: gone once it passed */
    ck_assert_int_eq(em_kv_set(&st, EM_STR("t"), EM_STR("1"), 100, 1000, &why), EM_OK);
    ck_assert_int_eq(em_kv_get(&st, EM_STR("t"), 1099, buf, sizeof(buf), &len), EM_OK);
    ck_assert_int_eq(em_kv_get(&st, EM_STR("t"), 1100, buf, sizeof(buf), &len), EM_DECLINED);
    /* incr: from 0, by any step, on integers only */
    ck_assert_int_eq(em_kv_incr(&st, EM_STR("c"), 1, 0, 1, &n, &why), EM_OK);
    ck_assert(n == 1);
    ck_assert_int_eq(em_kv_incr(&st, EM_STR("c"), -5, 0, 1, &n, &why), EM_OK);
    ck_assert(n == -4);
    ck_assert_int_eq(em_kv_get(&st, EM_STR("c"), 1, buf, sizeof(buf), &len), EM_OK);
    ck_assert_int_eq(memcmp(buf, "-4", 2), 0);
    ck_assert_int_eq(em_kv_incr(&st, EM_STR("a"), 1, 0, 1, &n, &why), EM_ERROR);
    ck_assert_int_eq(why, EM_KV_NOT_INT);
    n = INT64_MAX;
    ck_assert_int_eq(em_kv_set(&st, EM_STR("w"), EM_STR("0"), 0, 1, &why), EM_OK);
    ck_assert_int_eq(em_kv_del(&st, EM_STR("w"), 1), 1);
    ck_assert_int_eq(em_kv_del(&st, EM_STR("w"), 1), 0);
    ck_assert_int_eq(em_kv_incr(&st, EM_STR("w"), INT64_MAX, 0, 1, &n, &why), EM_OK);
    ck_assert_int_eq(em_kv_incr(&st, EM_STR("w"), 1, 0, 1, &n, &why), EM_OK);     /* wraps, defined */
    ck_assert(n == INT64_MIN);
    /* bounds */
    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(em_kv_set(&st, (em_str_t) { big, EM_ST_KV_KEY_MAX + 1 }, EM_STR("1"), 0, 1, &why),
                     EM_ERROR);
    ck_assert_int_eq(why, EM_KV_TOO_LONG);
    ck_assert_int_eq(em_kv_set(&st, EM_STR("b"), (em_str_t) { big, EM_ST_KV_VALUE_MAX + 1 }, 0, 1, &why),
                     EM_ERROR);
    ck_assert_int_eq(em_kv_set(&st, (em_str_t) { big, EM_ST_KV_KEY_MAX },
                               (em_str_t) { big, EM_ST_KV_VALUE_MAX }, 0, 1, &why), EM_OK);
    ck_assert_int_eq(em_kv_get(&st, (em_str_t) { big, EM_ST_KV_KEY_MAX }, 1, buf, sizeof(buf), &len),
                     EM_OK);
    ck_assert_uint_eq(len, EM_ST_KV_VALUE_MAX);
}
END_TEST

START_TEST(test_kv_lists)
{
    char     out[256] = "";
    uint32_t n;
    int      why = 0;
    int64_t  x;

    for (int i = 1; i <= 5; i++) {
        char v[8];
        snprintf(v, sizeof(v), "%d", i);
        ck_assert_int_eq(em_kv_push(&st, EM_STR("l"), (em_str_t) { v, strlen(v) }, 3, 0, 1, &n, &why), EM_OK);
        ck_assert_uint_eq(n, (uint32_t) (i < 3 ? i : 3));
    }
    ck_assert_uint_eq(em_kv_range(&st, EM_STR("l"), 0, -1, 1, kv_collect, out), 3);
    ck_assert_str_eq(out, "3;4;5;");        /* the cap drops the oldest */
    out[0] = '\0';
    ck_assert_uint_eq(em_kv_range(&st, EM_STR("l"), -2, -1, 1, kv_collect, out), 2);
    ck_assert_str_eq(out, "4;5;");
    out[0] = '\0';
    ck_assert_uint_eq(em_kv_range(&st, EM_STR("l"), 5, 9, 1, kv_collect, out), 0);
    ck_assert_uint_eq(em_kv_range(&st, EM_STR("l"), -100, 0, 1, kv_collect, out), 1);
    ck_assert_str_eq(out, "3;");
    ck_assert_int_eq(em_kv_incr(&st, EM_STR("l"), 1, 0, 1, &x, &why), EM_ERROR);
    ck_assert_int_eq(why, EM_KV_NOT_INT);
    ck_assert_int_eq(em_kv_set(&st, EM_STR("v"), EM_STR("1"), 0, 1, &why), EM_OK);
    ck_assert_int_eq(em_kv_push(&st, EM_STR("v"), EM_STR("1"), 3, 0, 1, &n, &why), EM_ERROR);
    ck_assert_int_eq(why, EM_KV_NOT_LIST);
    /* deleting a list drops its items: the store is back to what it held */
    em_kv_stats_t before, after;
    em_kv_stats(&st, &before);
    ck_assert_int_eq(em_kv_del(&st, EM_STR("l"), 1), 1);
    em_kv_stats(&st, &after);
    ck_assert_uint_eq(after.entries, before.entries - 4);
    ck_assert_uint_eq(em_kv_len(&st, EM_STR("l"), 1), 0);
    /* a list with a ttl expires whole */
    ck_assert_int_eq(em_kv_push(&st, EM_STR("e"), EM_STR("1"), 3, 50, 100, &n, &why), EM_OK);
    ck_assert_uint_eq(em_kv_len(&st, EM_STR("e"), 149), 1);
    ck_assert_uint_eq(em_kv_len(&st, EM_STR("e"), 150), 0);
    em_kv_stats(&st, &after);
    ck_assert_uint_eq(after.entries, before.entries - 4);
}
END_TEST

/* A full store drops the least recently used entries and counts them. */
START_TEST(test_kv_lru)
{
    em_state_t       small;
    em_state_sizes_t sz;
    char             buf[16], k[16];
    size_t           len;
    em_kv_stats_t    s;

    em_state_default_sizes(&sz);
    sz.store = 8;
    ck_assert_int_eq(em_state_create(&small, 1, &sz), EM_OK);
    for (int i = 0; i < 8; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        ck_assert_int_eq(em_kv_set(&small, (em_str_t) { k, strlen(k) }, EM_STR("1"), 0, 1, NULL), EM_OK);
    }
    ck_assert_int_eq(em_kv_get(&small, EM_STR("k0"), 1, buf, sizeof(buf), &len), EM_OK);   /* used again */
    ck_assert_int_eq(em_kv_set(&small, EM_STR("new"), EM_STR("2"), 0, 1, NULL), EM_OK);
    ck_assert_int_eq(em_kv_get(&small, EM_STR("k0"), 1, buf, sizeof(buf), &len), EM_OK);
    ck_assert_int_eq(em_kv_get(&small, EM_STR("k1"), 1, buf, sizeof(buf), &len), EM_DECLINED);
    em_kv_stats(&small, &s);
    ck_assert_uint_eq(s.entries, 8);
    ck_assert_uint_eq(s.capacity, 8);
    ck_assert_uint_eq(s.evicted, 1);
    em_state_unmap(&small);
    close(small.fd);
}
END_TEST

/* A child dies holding a zone's lock: the next locker repairs it and goes on. */
START_TEST(test_xproc_dead_holder)
{
    int zone = _i;

    zones_fill();
    kids[0] = spawn();
    if (kids[0] == 0) {
        em_state_lock(&st, zone);
        _exit(0);           /* without unlocking */
    }
    ck_child_ok(&kids[0]);
    ck_assert_uint_eq(st.hdr->repairs[zone], 0);
    zones_check(zone, 0);
    for (int z = 0; z < EM_ZONES; z++) {
        ck_assert_msg(st.hdr->repairs[z] == (uint32_t) (z == zone), "zone %d: %u repairs", z, st.hdr->repairs[z]);
    }
    zones_check(zone, 1);   /* the lock is consistent again: no second repair */
    ck_assert_uint_eq(st.hdr->repairs[zone], 1);
    for (int z = 0; z < EM_ZONES; z++) {
        em_state_lock(&st, z);
        em_state_unlock(&st, z);
    }
}
END_TEST

/* A child dies in the middle of an update, with the indexes garbage: the
 * repair rebuilds them from the entries. */
START_TEST(test_xproc_dead_holder_corrupt)
{
    names_t l = { 0 };

    zones_fill();
    kids[0] = spawn();
    if (kids[0] == 0) {
        em_shtab_t *tabs[2] = { tab_at(st.hdr->users_off), tab_at(st.hdr->rooms_off) };
        em_state_lock(&st, EM_ZONE_PRESENCE);
        for (int i = 0; i < 2; i++) {
            memset((char *) tabs[i] + tabs[i]->buckets_off, 0, (size_t) tabs[i]->nbuckets * 4);
            tabs[i]->lru_head = tabs[i]->lru_tail = 12345;
            tabs[i]->free_head = 54321;
            tabs[i]->used = 0;
        }
        em_state_lock(&st, EM_ZONE_SESSIONS);
        {
            em_plog_t     *lg = plog();
            em_plog_rec_t  junk;
            em_shtab_t    *s = tab_at(st.hdr->sessions_off);
            memset(&junk, 0, sizeof(junk));   /* a record half written: len 0 */
            memcpy((char *) (lg + 1) + lg->head % lg->size, &junk, sizeof(junk));
            lg->head += 64;
            lg->records = 99;
            memset((char *) s + s->buckets_off, 0xff, (size_t) s->nbuckets * 4);
        }
        _exit(0);
    }
    ck_child_ok(&kids[0]);

    zones_check(EM_ZONE_PRESENCE, 0);
    ck_assert_uint_eq(st.hdr->repairs[EM_ZONE_PRESENCE], 1);
    em_presence_each(&st, EM_STR("/"), 0, names_add, &l);
    names_expect(&l, "alice bob", "after the repair");
    ck_assert_uint_eq(tab_at(st.hdr->users_off)->used, 2);

    zones_check(EM_ZONE_SESSIONS, 0);
    ck_assert_uint_eq(st.hdr->repairs[EM_ZONE_SESSIONS], 1);
    ck_assert_uint_eq(plog()->records, 3);
    zones_check(EM_ZONE_SESSIONS, 1);
}
END_TEST

/* A child dies holding a zone's lock and a second takes it (EOWNERDEAD) and
 * lets it go without making it consistent, so the lock is unrecoverable
 * for every process (ENOTRECOVERABLE): the next locker makes it anew,
 * repairs the zone once, and everyone goes on locking it. */
START_TEST(test_xproc_unrecoverable)
{
    int           zone = _i;
    em_st_lock_t *l = &st.hdr->locks[zone];

    zones_fill();
    kids[0] = spawn();
    if (kids[0] == 0) {
        em_state_lock(&st, zone);
        _exit(0);
    }
    ck_child_ok(&kids[0]);
    kids[0] = spawn();
    if (kids[0] == 0) {
        int rc = pthread_mutex_lock(&l->mu);
        if (rc != EOWNERDEAD) {
            _exit(2);
        }
        pthread_mutex_unlock(&l->mu);
        _exit(0);
    }
    ck_child_ok(&kids[0]);
    ck_assert_int_eq(pthread_mutex_lock(&l->mu), ENOTRECOVERABLE);

    zones_check(zone, 0);
    ck_assert_uint_eq(st.hdr->repairs[zone], 1);
    ck_assert_uint_eq(l->remaking, 0);
    zones_check(zone, 1);
    ck_assert_uint_eq(st.hdr->repairs[zone], 1);
    kids[0] = spawn();
    if (kids[0] == 0) {
        em_state_lock(&st, zone);       /* another process takes it too */
        em_state_unlock(&st, zone);
        _exit(0);
    }
    ck_child_ok(&kids[0]);
    ck_assert_int_eq(pthread_mutex_trylock(&l->mu), 0);
    pthread_mutex_unlock(&l->mu);
}
END_TEST

/* ---- the suite ------------------------------------------------------------------------------ */

/* ---- presence across hosts (the broker's remote shares) ---- */

typedef struct {
    em_prec_t v[16];
    char      keys[16][400];
    size_t    n;
} locals_t;

static void
collect_local(const em_prec_t *r, void *arg)
{
    locals_t *l = arg;

    if (l->n < 16) {
        l->v[l->n] = *r;
        memcpy(l->keys[l->n], r->key.data, r->key.len);
        l->v[l->n].key.data = l->keys[l->n];
        l->n++;
    }
}

/* The local record of key, or NULL. */
static const em_prec_t *
local_of(const locals_t *l, const char *key, size_t klen)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].key.len == klen && memcmp(l->v[i].key.data, key, klen) == 0) {
            return &l->v[i];
        }
    }
    return NULL;
}

static em_prec_t
remote_user(const char *key, size_t klen, uint32_t count, int status, int64_t seen)
{
    em_prec_t r = { EM_PREC_USER, { key, klen }, count, status, 100, seen, EM_STR("{\"r\":1}"), 0 };
    return r;
}

START_TEST(test_presence_remote)
{
    em_pchanges_t chg = { 0 };
    em_presence_t p;
    locals_t      l = { 0 };
    int           off = -1;
    em_prec_t     r;

    ck_assert_int_eq(em_presence_connect(&st, 0, EM_STR("/c"), EM_STR(""), EM_NULL_STR, 1000, &chg),
                     EM_OK);
    ck_assert_int_eq(em_presence_connect(&st, 0, EM_STR("/c"), EM_STR("alice"), EM_NULL_STR, 1000,
                                         &chg), EM_OK);
    em_pchanges_free(&chg);

    /* bob on another host only: online here, with its record, but not ours */
    r = remote_user("/c\0bob", 6, 2, EM_ST_STATUS_BUSY, 900);
    ck_assert_int_eq(em_presence_remote_apply(&st, &r, 2, 1100, &off), EM_OK);
    ck_assert_int_eq(off, 0);
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/c"), EM_STR("bob"), &p), EM_OK);
    ck_assert_uint_eq(p.nconn, 2);
    ck_assert_int_eq(p.status, EM_ST_STATUS_BUSY);
    ck_assert_int_eq(p.connected_at, 100);
    ck_assert_int_eq(p.last_seen, 900);
    ck_assert_uint_eq(p.info_len, 7);
    uint64_t counts[4];
    em_presence_stats(&st, EM_STR("/c"), counts);
    ck_assert_uint_eq(counts[EM_ST_STATUS_ONLINE] + counts[EM_ST_STATUS_BUSY], 2);
    em_presence_local_each(&st, collect_local, &l);
    ck_assert_uint_eq(l.n, 1);          /* alice: the namespace's own count is not one */
    ck_assert_ptr_null(local_of(&l, "/c\0bob", 6));
    ck_assert_uint_eq(local_of(&l, "/c\0alice", 8)->count, 1);

    /* alice also elsewhere, with a newer status: taken; our share stays 1 */
    r = remote_user("/c\0alice", 8, 1, EM_ST_STATUS_AWAY, 2000);
    ck_assert_int_eq(em_presence_remote_apply(&st, &r, 1, 2000, &off), EM_OK);
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/c"), EM_STR("alice"), &p), EM_OK);
    ck_assert_uint_eq(p.nconn, 2);
    ck_assert_int_eq(p.status, EM_ST_STATUS_AWAY);
    ck_assert_int_eq(p.connected_at, 100);      /* the earlier start */
    /* an older record changes nothing but the count */
    r = remote_user("/c\0alice", 8, 1, EM_ST_STATUS_BUSY, 1500);
    ck_assert_int_eq(em_presence_remote_apply(&st, &r, 0, 2100, &off), EM_OK);
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/c"), EM_STR("alice"), &p), EM_OK);
    ck_assert_int_eq(p.status, EM_ST_STATUS_AWAY);

    /* alice's tab here closes: no offline (the other host has her), and
     * the local list says so with count 0 and pending */
    em_presence_disconnect(&st, 0, EM_STR("/c"), EM_STR("alice"), 3000, &chg);
    ck_assert_uint_eq(chg.n, 0);
    l.n = 0;
    em_presence_local_each(&st, collect_local, &l);
    const em_prec_t *a = local_of(&l, "/c\0alice", 8);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(a->count, 0);
    ck_assert_int_eq(a->pending, 1);
    /* then the other host's goes: offline, ours pending */
    r = remote_user("/c\0alice", 8, 0, EM_ST_STATUS_OFFLINE, 3100);
    ck_assert_int_eq(em_presence_remote_apply(&st, &r, -1, 3200, &off), EM_OK);
    ck_assert_int_eq(off, EM_PREM_OFFLINE_PENDING);
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/c"), EM_STR("alice"), &p), EM_OK);
    ck_assert_uint_eq(p.nconn, 0);
    ck_assert_int_eq(p.status, EM_ST_STATUS_OFFLINE);
    ck_assert_int_eq(p.last_seen, 3200);
    l.n = 0;
    em_presence_local_each(&st, collect_local, &l);
    ck_assert_ptr_null(local_of(&l, "/c\0alice", 8));

    /* a share cannot go below zero; bob offline, not pending here */
    r = remote_user("/c\0bob", 6, 0, EM_ST_STATUS_OFFLINE, 0);
    ck_assert_int_eq(em_presence_remote_apply(&st, &r, -5, 3300, &off), EM_OK);
    ck_assert_int_eq(off, EM_PREM_OFFLINE);
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/c"), EM_STR("bob"), &p), EM_OK);
    ck_assert_uint_eq(p.nconn, 0);

    /* rooms: the other hosts' sockets count in room_size, not in our list */
    em_room_add(&st, 1, EM_STR("/c"), EM_STR("general"), EM_STR(""), &chg);
    em_prec_t room = { EM_PREC_ROOM, { "/c\0general", 10 }, 3, 0, 0, 0, EM_STR(""), 0 };
    ck_assert_int_eq(em_presence_remote_apply(&st, &room, 3, 3400, NULL), EM_OK);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/c"), EM_STR("general")), 4);
    l.n = 0;
    em_presence_local_each(&st, collect_local, &l);
    ck_assert_uint_eq(local_of(&l, "/c\0general", 10)->count, 1);
    em_room_del(&st, 1, EM_STR("/c"), EM_STR("general"), EM_STR(""), &chg);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/c"), EM_STR("general")), 3);
    ck_assert_uint_eq(chg.n, 0);

    /* a broker that starts takes every remote share out, silently */
    r = remote_user("/c\0carol", 8, 1, EM_ST_STATUS_ONLINE, 3500);
    ck_assert_int_eq(em_presence_remote_apply(&st, &r, 1, 3500, NULL), EM_OK);
    em_presence_remote_clear(&st, 4000);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/c"), EM_STR("general")), 0);
    ck_assert_int_eq(em_presence_get(&st, EM_STR("/c"), EM_STR("carol"), &p), EM_OK);
    ck_assert_uint_eq(p.nconn, 0);
    ck_assert_int_eq(p.status, EM_ST_STATUS_OFFLINE);
    ck_assert_int_eq(p.last_seen, 4000);
}
END_TEST

/* Keys from another host are checked before they name an entry. */
START_TEST(test_presence_remote_bad_keys)
{
    static const struct { int type; const char *key; size_t len; } bad[] = {
        { EM_PREC_USER, "/c", 2 },              /* no user */
        { EM_PREC_USER, "/c\0", 3 },            /* an empty user */
        { EM_PREC_USER, "/c\0a\0b", 6 },        /* a room's shape */
        { EM_PREC_ROOM, "/c\0", 3 },            /* the namespace's own count */
        { EM_PREC_ROOM, "/c\0\0u", 5 },         /* an empty room */
        { EM_PREC_ROOM, "/c\0r\0u\0x", 8 },     /* four parts */
        { EM_PREC_ROOM, "/c\0r\0", 5 },         /* an empty user */
        { 7, "/c\0r", 4 },                      /* no such type */
        { EM_PREC_USER, "", 0 },
    };
    char     longkey[3 * EM_ST_NAME_MAX + 2];
    em_prec_t r = { 0 };

    for (size_t i = 0; i < EM_NELEMS(bad); i++) {
        r = (em_prec_t) { bad[i].type, { bad[i].key, bad[i].len }, 1, 1, 0, 0, EM_STR(""), 0 };
        CHECK(em_presence_remote_apply(&st, &r, 1, 1, NULL) == EM_ERROR, "bad key %zu accepted", i);
    }
    /* a user of EM_ST_NAME_MAX bytes, and keys over the tables' */
    memset(longkey, 'u', sizeof(longkey));
    memcpy(longkey, "/c", 3);
    r = (em_prec_t) { EM_PREC_USER, { longkey, 3 + EM_ST_NAME_MAX }, 1, 1, 0, 0, EM_STR(""), 0 };
    ck_assert_int_eq(em_presence_remote_apply(&st, &r, 1, 1, NULL), EM_ERROR);
    r = (em_prec_t) { EM_PREC_ROOM, { longkey, sizeof(longkey) }, 1, 1, 0, 0, EM_STR(""), 0 };
    ck_assert_int_eq(em_presence_remote_apply(&st, &r, 1, 1, NULL), EM_ERROR);
    /* a count that would wrap */
    r = (em_prec_t) { EM_PREC_ROOM, { "/c\0r", 4 }, 1, 1, 0, 0, EM_STR(""), 0 };
    ck_assert_int_eq(em_presence_remote_apply(&st, &r, (int64_t) UINT32_MAX, 1, NULL), EM_ERROR);
    ck_assert_int_eq(em_presence_remote_apply(&st, &r, 1, 1, NULL), EM_OK);
    ck_assert_uint_eq(em_room_size(&st, EM_STR("/c"), EM_STR("r")), 1);
    /* a key with a user's part of a room entry: accepted as that room's user */
    r = (em_prec_t) { EM_PREC_ROOM, { "/c\0r\0u", 6 }, 1, 1, 0, 0, EM_STR(""), 0 };
    ck_assert_int_eq(em_presence_remote_apply(&st, &r, 1, 1, NULL), EM_OK);
}
END_TEST

static Suite *
state_suite(void)
{
    Suite *s = suite_create("state");
    TCase *tc;

    tc = tcase_create("shtab");
    tcase_add_loop_test(tc, test_shtab_script, 0, EM_NELEMS(sh_scripts));
    tcase_add_test(tc, test_shtab_collisions);
    tcase_add_test(tc, test_shtab_iterate_delete);
    tcase_add_test(tc, test_shtab_rebuild);
    tcase_add_test(tc, test_shtab_evict_behind_pinned);
    suite_add_tcase(s, tc);

    tc = tcase_create("segment");
    tcase_add_checked_fixture(tc, state_setup, state_close);
    tcase_add_test(tc, test_state_create_map);
    tcase_add_test(tc, test_broker_kept);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, state_setup, state_close);
    tcase_add_loop_test(tc, test_limit_script, 0, EM_NELEMS(lim_scripts));
    tcase_add_test(tc, test_limit_keys_reset);
    tcase_add_test(tc, test_limit_eviction);
    tcase_add_test(tc, test_limit_remote);
    suite_add_tcase(s, tc);

    tc = tcase_create("presence");
    tcase_add_checked_fixture(tc, state_setup, state_close);
    tcase_add_test(tc, test_presence_two_tabs);
    tcase_add_test(tc, test_presence_bad_input);
    tcase_add_test(tc, test_presence_status);
    tcase_add_test(tc, test_presence_stats_each);
    tcase_add_test(tc, test_presence_anonymous);
    tcase_add_test(tc, test_presence_user_eviction);
    tcase_add_test(tc, test_presence_eviction_behind_online);
    tcase_add_test(tc, test_room_two_slots);
    tcase_add_test(tc, test_room_users);
    tcase_add_test(tc, test_sweep_slot);
    tcase_add_test(tc, test_presence_remote);
    tcase_add_test(tc, test_presence_remote_bad_keys);
    suite_add_tcase(s, tc);

    tc = tcase_create("sessions");
    tcase_add_checked_fixture(tc, state_setup, state_close);
    tcase_add_test(tc, test_session_take_pid);
    tcase_add_test(tc, test_session_take_token);
    tcase_add_test(tc, test_session_rooms);
    tcase_add_test(tc, test_session_bad_lengths);
    tcase_add_test(tc, test_session_eviction);
    tcase_add_test(tc, test_session_stats_expire);
    tcase_add_loop_test(tc, test_plog_replay, 0, EM_NELEMS(replays));
    tcase_add_test(tc, test_plog_abort_too_big);
    tcase_add_test(tc, test_plog_expire);
    tcase_add_test(tc, test_plog_wrap);
    suite_add_tcase(s, tc);

    tc = tcase_create("monitor");
    tcase_add_checked_fixture(tc, state_setup, state_close);
    tcase_add_test(tc, test_monitor_figures);
    tcase_add_test(tc, test_monitor_ring);
    tcase_add_test(tc, test_monitor_top);
    tcase_add_test(tc, test_monitor_event_fill);
    suite_add_tcase(s, tc);

    tc = tcase_create("store");
    tcase_add_checked_fixture(tc, state_setup, state_close);
    tcase_add_test(tc, test_kv_values);
    tcase_add_test(tc, test_kv_remote_writes);
    tcase_add_test(tc, test_kv_lists);
    tcase_add_test(tc, test_kv_lru);
    suite_add_tcase(s, tc);

    tc = tcase_create("processes");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, state_setup, state_close);
    tcase_add_test(tc, test_xproc_map);
    tcase_add_test(tc, test_xproc_race);
    tcase_add_loop_test(tc, test_xproc_dead_holder, 0, EM_ZONES);
    tcase_add_test(tc, test_xproc_dead_holder_corrupt);
    tcase_add_loop_test(tc, test_xproc_unrecoverable, 0, EM_ZONES);
    suite_add_tcase(s, tc);

    return s;
}

EM_CHECK_MAIN(state_suite)
