/*
 * em_state.c - the cluster-wide state segment: layout, mapping and the
 * zone locks.
 *
 * The locks are process-shared robust mutexes. If a worker is killed while
 * it holds one, the next process to lock it gets EOWNERDEAD: the zone's
 * tables are then rebuilt from their entries (an entry half-written at the
 * moment of death is either dropped or kept whole) and the lock made
 * consistent, so one crash never wedges or corrupts the others.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "em_shm.h"
#include "em_log.h"
#include "em_state.h"

#define EM_ALIGN64(x) (((x) + 63) & ~(uint64_t) 63)

void
em_state_default_sizes(em_state_sizes_t *sz)
{
    sz->limits = 65536;
    sz->users = 65536;
    sz->rooms = 131072;
    sz->sessions = 16384;
    sz->log_bytes = 8u * 1024 * 1024;
    sz->ips = 4096;
    sz->store = 16384;
}

int64_t
em_state_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static em_shtab_t *
em_state_tab(em_state_t *st, uint64_t off)
{
    return (em_shtab_t *) ((char *) st->hdr + off);
}

static void
em_state_lock_init(em_st_lock_t *l)
{
    pthread_mutexattr_t a;

    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&l->mu, &a);
    pthread_mutexattr_destroy(&a);
}

int
em_state_create(em_state_t *st, unsigned nworkers, const em_state_sizes_t *sz)
{
    em_state_hdr_t *h;
    uint64_t        off = EM_ALIGN64(sizeof(em_state_hdr_t));
    uint64_t        limits_off, users_off, rooms_off, sessions_off, plog_off, monitor_off;
    uint64_t        ips_off, uas_off, store_off, wstats_off;

    memset(st, 0, sizeof(*st));
    st->fd = -1;
    if (nworkers == 0 || nworkers > EM_STATE_SLOTS || sz->log_bytes < 4096) {
        em_log(EM_LOG_ERR, 0, "bad sizes for the state segment");
        return EM_ERROR;
    }
    limits_off = off;
    off = EM_ALIGN64(off + em_shtab_size(sz->limits, 128, sizeof(em_st_limit_t)));
    users_off = off;
    off = EM_ALIGN64(off + em_shtab_size(sz->users, 2 * EM_ST_NAME_MAX, sizeof(em_st_user_t)));
    rooms_off = off;
    off = EM_ALIGN64(off + em_shtab_size(sz->rooms, 3 * EM_ST_NAME_MAX, sizeof(em_st_room_t)));
    sessions_off = off;
    off = EM_ALIGN64(off + em_shtab_size(sz->sessions, 64, sizeof(em_st_session_t)));
    plog_off = off;
    off = EM_ALIGN64(off + sizeof(em_plog_t) + ((sz->log_bytes + 7) & ~(uint64_t) 7));
    monitor_off = off;
    off = EM_ALIGN64(off + sizeof(em_st_monitor_t));
    ips_off = off;
    off = EM_ALIGN64(off + em_shtab_size(sz->ips, 64, sizeof(uint64_t)));
    uas_off = off;
    off = EM_ALIGN64(off + em_shtab_size(sz->ips, 160, sizeof(uint64_t)));
    store_off = off;
    off = EM_ALIGN64(off + em_shtab_size(sz->store ? sz->store : 1, EM_ST_KV_TABKEY, sizeof(em_st_kv_t)));
    wstats_off = off;
    off = EM_ALIGN64(off + sizeof(em_st_wstats_t) * EM_STATE_SLOTS);

    st->size = off;
    if ((st->hdr = em_shm_segment_new("emitd-state", st->size, &st->fd)) == NULL) {
        return EM_ERROR;
    }
    h = st->hdr;
    h->magic = EM_STATE_MAGIC;
    h->version = EM_STATE_VERSION;
    h->nworkers = (uint16_t) nworkers;
    h->size = st->size;
    h->created = em_state_now();
    h->limits_off = limits_off;
    h->users_off = users_off;
    h->rooms_off = rooms_off;
    h->sessions_off = sessions_off;
    h->plog_off = plog_off;
    h->monitor_off = monitor_off;
    h->ips_off = ips_off;
    h->uas_off = uas_off;
    h->store_off = store_off;
    h->wstats_off = wstats_off;
    for (int z = 0; z < EM_ZONES; z++) {
        em_state_lock_init(&h->locks[z]);
    }
    em_shtab_init(em_state_tab(st, limits_off), sz->limits, 128, sizeof(em_st_limit_t));
    em_shtab_init(em_state_tab(st, users_off), sz->users, 2 * EM_ST_NAME_MAX, sizeof(em_st_user_t));
    em_shtab_init(em_state_tab(st, rooms_off), sz->rooms, 3 * EM_ST_NAME_MAX, sizeof(em_st_room_t));
    em_shtab_init(em_state_tab(st, sessions_off), sz->sessions, 64, sizeof(em_st_session_t));
    em_shtab_init(em_state_tab(st, ips_off), sz->ips, 64, sizeof(uint64_t));
    em_shtab_init(em_state_tab(st, uas_off), sz->ips, 160, sizeof(uint64_t));
    em_shtab_init(em_state_tab(st, store_off), sz->store ? sz->store : 1, EM_ST_KV_TABKEY,
                  sizeof(em_st_kv_t));
    em_plog_t *lg = (em_plog_t *) ((char *) h + plog_off);
    lg->size = (sz->log_bytes + 7) & ~(uint64_t) 7;
    lg->next_offset = 1;
    em_st_monitor_t *m = (em_st_monitor_t *) ((char *) h + monitor_off);
    m->last_reset = h->created;
    return EM_OK;
}

em_st_wstats_t *
em_state_wstats(em_state_t *st, unsigned slot)
{
    return (em_st_wstats_t *) ((char *) st->hdr + st->hdr->wstats_off) + slot;
}

uint64_t
em_state_sessions(em_state_t *st, unsigned nslots)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < nslots; i++) {
        const em_st_wstats_t *w = em_state_wstats(st, i);
        n += __atomic_load_n(&w->sessions_ws, __ATOMIC_RELAXED)
             + __atomic_load_n(&w->sessions_polling, __ATOMIC_RELAXED);
    }
    return n;
}

int
em_state_map(em_state_t *st, int fd)
{
    struct stat st_;

    memset(st, 0, sizeof(*st));
    st->fd = fd;
    if (fstat(fd, &st_) != 0 || (size_t) st_.st_size < sizeof(em_state_hdr_t)) {
        em_log(EM_LOG_ERR, errno, "fstat() of the state segment failed or it is too small");
        return EM_ERROR;
    }
    st->size = (size_t) st_.st_size;
    st->hdr = mmap(NULL, st->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (st->hdr == MAP_FAILED) {
        em_log(EM_LOG_ERR, errno, "mmap() of the state segment failed");
        st->hdr = NULL;
        return EM_ERROR;
    }
    if (st->hdr->magic != EM_STATE_MAGIC || st->hdr->version != EM_STATE_VERSION
        || st->hdr->size != st->size) {
        em_log(EM_LOG_ERR, 0, "the state segment has a bad header (magic %#x version %u)",
               st->hdr->magic, st->hdr->version);
        munmap(st->hdr, st->size);
        st->hdr = NULL;
        return EM_ERROR;
    }
    return EM_OK;
}

void
em_state_unmap(em_state_t *st)
{
    if (st->hdr != NULL) {
        munmap(st->hdr, st->size);
        st->hdr = NULL;
    }
}

/* The packet log after a crash: keep the records that still parse, from
 * the tail, and drop the rest. */
static void
em_plog_repair(em_plog_t *lg)
{
    unsigned char *data = (unsigned char *) (lg + 1);
    uint64_t       pos = lg->tail, n = 0;

    while (pos < lg->head) {
        em_plog_rec_t r;
        uint64_t      at = pos % lg->size;
        if (lg->size - at < sizeof(r)) {
            pos += lg->size - at;       /* too little room for a header: skipped */
            continue;
        }
        memcpy(&r, data + at, sizeof(r));
        if (r.len < sizeof(r) || r.len % 8 != 0 || r.len > lg->size - at || pos + r.len > lg->head) {
            break;
        }
        n += r.offset != 0;
        pos += r.len;
    }
    lg->head = pos;
    lg->records = n;
}

static void
em_state_repair(em_state_t *st, int zone)
{
    em_state_hdr_t *h = st->hdr;

    em_log(EM_LOG_WARN, 0, "a process died holding shared-state zone %d: rebuilding it", zone);
    h->repairs[zone]++;
    switch (zone) {
    case EM_ZONE_COUNTERS:
        em_shtab_rebuild(em_state_tab(st, h->limits_off));
        break;
    case EM_ZONE_PRESENCE:
        em_shtab_rebuild(em_state_tab(st, h->users_off));
        em_shtab_rebuild(em_state_tab(st, h->rooms_off));
        break;
    case EM_ZONE_SESSIONS:
        em_shtab_rebuild(em_state_tab(st, h->sessions_off));
        em_plog_repair((em_plog_t *) ((char *) h + h->plog_off));
        break;
    case EM_ZONE_MONITOR:
        em_shtab_rebuild(em_state_tab(st, h->ips_off));
        em_shtab_rebuild(em_state_tab(st, h->uas_off));
        break;
    case EM_ZONE_STORE:
        em_shtab_rebuild(em_state_tab(st, h->store_off));
        break;
    }
}

/*
 * A lock that is not recoverable (ENOTRECOVERABLE: its holder died and the
 * next one released it without making it consistent) stays so for every
 * process. One process at a time (the CAS on `remaking`) makes it anew and
 * rebuilds the zone; the others wait for it, and take over from one that
 * died at it.
 */
static void
em_state_lock_remake(em_state_t *st, int zone)
{
    em_st_lock_t *l = &st->hdr->locks[zone];
    uint32_t      none = 0, me = (uint32_t) getpid();

    if (__atomic_compare_exchange_n(&l->remaking, &none, me, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        /* Still unrecoverable, or made anew by another process since?
         * pthread_mutex_lock() tells and leaves the lock as it was; glibc's
         * trylock would leave an unrecoverable lock's word holding our
         * thread id, on which a process locking now would sleep forever. */
        int rc = pthread_mutex_lock(&l->mu);
        if (rc == ENOTRECOVERABLE) {
            em_log(EM_LOG_WARN, 0, "shared-state zone %d's lock is not recoverable: making it anew",
                   zone);
            em_state_lock_init(l);
            rc = pthread_mutex_lock(&l->mu);
            if (rc == 0 || rc == EOWNERDEAD) {
                em_state_repair(st, zone);
                if (rc == EOWNERDEAD) {
                    pthread_mutex_consistent(&l->mu);
                }
                pthread_mutex_unlock(&l->mu);
            }
        } else if (rc == 0 || rc == EOWNERDEAD) {
            if (rc == EOWNERDEAD) {
                em_state_repair(st, zone);
                pthread_mutex_consistent(&l->mu);
            }
            pthread_mutex_unlock(&l->mu);   /* made anew by someone else already */
        }
        __atomic_store_n(&l->remaking, 0, __ATOMIC_RELEASE);
        return;
    }
    /* Someone else is at it: wait (bounded), or take over if it died. */
    for (int i = 0; i < 2000; i++) {
        uint32_t who = __atomic_load_n(&l->remaking, __ATOMIC_ACQUIRE);
        if (who == 0) {
            return;
        }
        if (kill((pid_t) who, 0) != 0 && errno == ESRCH) {
            __atomic_compare_exchange_n(&l->remaking, &who, 0, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE);
            return;
        }
        usleep(1000);
    }
}

void
em_state_lock(em_state_t *st, int zone)
{
    em_st_lock_t *l = &st->hdr->locks[zone];

    for (int attempt = 0; attempt < 8; attempt++) {
        if (__atomic_load_n(&l->remaking, __ATOMIC_ACQUIRE) != 0) {
            em_state_lock_remake(st, zone);     /* waits for the one at it */
        }
        int rc = pthread_mutex_lock(&l->mu);
        if (rc == 0) {
            return;
        }
        if (rc == EOWNERDEAD) {
            em_state_repair(st, zone);
            pthread_mutex_consistent(&l->mu);
            return;
        }
        if (rc == ENOTRECOVERABLE) {
            em_state_lock_remake(st, zone);
            continue;
        }
        em_log(EM_LOG_ERR, rc, "pthread_mutex_lock() of shared-state zone %d failed", zone);
        break;
    }
    /* Going on without the lock could corrupt what every process shares:
     * end this process instead (the master restarts it). */
    em_log(EM_LOG_ERR, 0, "cannot lock shared-state zone %d: exiting", zone);
    abort();
}

void
em_state_unlock(em_state_t *st, int zone)
{
    pthread_mutex_unlock(&st->hdr->locks[zone].mu);
}

void
em_state_slot_set(em_state_t *st, unsigned slot, uint32_t pid)
{
    if (slot < EM_STATE_SLOTS) {
        __atomic_store_n(&st->hdr->slot_pid[slot], pid, __ATOMIC_RELEASE);
    }
}

void
em_state_slot_mode(em_state_t *st, unsigned slot, int mode)
{
    uint64_t bit;

    if (slot >= EM_STATE_SLOTS) {
        return;
    }
    bit = 1ULL << slot;
    if (mode == EM_SLOT_DRAINING) {
        __atomic_or_fetch(&st->hdr->slots_draining, bit, __ATOMIC_RELEASE);
    } else {
        __atomic_and_fetch(&st->hdr->slots_draining, ~bit, __ATOMIC_RELEASE);
    }
    if (mode == EM_SLOT_FREE) {
        __atomic_and_fetch(&st->hdr->slots_used, ~bit, __ATOMIC_RELEASE);
    } else {
        __atomic_or_fetch(&st->hdr->slots_used, bit, __ATOMIC_RELEASE);
    }
}

int
em_state_slot_used(em_state_t *st, unsigned slot)
{
    uint64_t bit;

    if (slot >= EM_STATE_SLOTS) {
        return EM_SLOT_FREE;
    }
    bit = 1ULL << slot;
    if ((__atomic_load_n(&st->hdr->slots_used, __ATOMIC_ACQUIRE) & bit) == 0) {
        return EM_SLOT_FREE;
    }
    return (__atomic_load_n(&st->hdr->slots_draining, __ATOMIC_ACQUIRE) & bit) ? EM_SLOT_DRAINING
                                                                               : EM_SLOT_SERVING;
}

void
em_state_broker_set(em_state_t *st, uint32_t pid)
{
    __atomic_store_n(&st->hdr->broker_pid, pid, __ATOMIC_RELEASE);
}

/* A kept value is its bytes, NUL, then its length as a check byte ('A' +
 * length): a copy cut short does not pass for one. */
static size_t
em_state_kept_get(const char *field, size_t cap, char *out, int (*ok)(const char *, size_t))
{
    char   tmp[48];
    size_t n;

    memcpy(tmp, field, cap);
    n = strnlen(tmp, cap);
    if (n == 0 || n + 2 > cap || tmp[n + 1] != (char) ('A' + n) || !ok(tmp, n)) {
        out[0] = '\0';
        return 0;
    }
    memcpy(out, tmp, n + 1);
    return n;
}

static void
em_state_kept_set(char *field, size_t cap, const char *v, size_t n)
{
    char tmp[48] = { 0 };

    if (n + 2 > cap) {
        n = 0;                  /* too long to keep: none */
    }
    memcpy(tmp, v, n);
    tmp[n + 1] = (char) ('A' + n);
    memcpy(field, tmp, cap);
}

static int
em_state_uid_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9'))) {
            return 0;
        }
    }
    return n == 6;
}

/* A stream entry id: digits, '-', digits. */
static int
em_state_id_ok(const char *s, size_t n)
{
    const char *dash = memchr(s, '-', n);

    if (dash == NULL || dash == s || dash == s + n - 1) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (s + i != dash && (s[i] < '0' || s[i] > '9')) {
            return 0;
        }
    }
    return 1;
}

size_t
em_state_redis_uid_get(em_state_t *st, char out[8])
{
    return em_state_kept_get(st->hdr->redis_uid, sizeof(st->hdr->redis_uid), out, em_state_uid_ok);
}

void
em_state_redis_uid_set(em_state_t *st, const char *uid)
{
    em_state_kept_set(st->hdr->redis_uid, sizeof(st->hdr->redis_uid), uid, strlen(uid));
}

size_t
em_state_stream_id_get(em_state_t *st, char out[40])
{
    return em_state_kept_get(st->hdr->stream_id, sizeof(st->hdr->stream_id), out, em_state_id_ok);
}

void
em_state_stream_id_set(em_state_t *st, const char *id, size_t len)
{
    em_state_kept_set(st->hdr->stream_id, sizeof(st->hdr->stream_id), id, len);
}

uint32_t
em_state_broker_pid(em_state_t *st)
{
    return __atomic_load_n(&st->hdr->broker_pid, __ATOMIC_ACQUIRE);
}

uint32_t
em_state_slot_pid(em_state_t *st, unsigned slot)
{
    return slot < EM_STATE_SLOTS ? __atomic_load_n(&st->hdr->slot_pid[slot], __ATOMIC_ACQUIRE) : 0;
}
