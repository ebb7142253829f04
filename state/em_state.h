/*
 * em_state.h - the cluster-wide state: rate-limit counters, presence, room
 * membership, recovery sessions with their packet log, and monitoring
 * figures, in a shared segment (em_state-t.h) every process maps.
 *
 * Every function takes the zone's lock itself and copies results out, so a
 * caller never holds a lock while a script runs. Functions that change
 * presence say what changed (a user came online, a room gained a user) so
 * that the caller can tell its scripts afterwards; exactly one process sees
 * each change, so each is told once.
 */
#ifndef EM_STATE_H
#define EM_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "em_core.h"
#include "em_state-t.h"

/* ---- em_shtab.c: the generic table (caller holds the zone's lock) ---- */

typedef int (*em_shtab_evict_pt)(const void *value);

size_t      em_shtab_size(uint32_t capacity, uint32_t key_max, uint32_t value_size);
void        em_shtab_init(em_shtab_t *t, uint32_t capacity, uint32_t key_max, uint32_t value_size);
/* The value under key, or NULL; marks it recently used. */
void       *em_shtab_get(em_shtab_t *t, const void *key, size_t len);
/* The value under key, made (zeroed, *created = 1) if absent; when the table
 * is full, drops the least recently used entry can_evict allows (NULL: none).
 * NULL when the key is too long or nothing could be dropped. */
void       *em_shtab_put(em_shtab_t *t, const void *key, size_t len, int *created,
                         em_shtab_evict_pt can_evict);
void        em_shtab_del(em_shtab_t *t, void *value);
const char *em_shtab_key(em_shtab_t *t, const void *value, size_t *len);
/* Iterate the live values: *iter = 0 first. em_shtab_del of the value just
 * returned is allowed while iterating. */
void       *em_shtab_next(em_shtab_t *t, uint32_t *iter);
/* Rebuild buckets, LRU and free list from the entries (after a crash). */
void        em_shtab_rebuild(em_shtab_t *t);

/* ---- em_state.c: the segment ---- */

typedef struct {
    int             fd;
    em_state_hdr_t *hdr;
    size_t          size;
} em_state_t;

/* Capacities, fixed when the master creates the segment. */
typedef struct {
    uint32_t limits;        /* rate-limit keys */
    uint32_t users;         /* presence users, all namespaces */
    uint32_t rooms;         /* room and room-user entries */
    uint32_t sessions;      /* recovery sessions and tokens */
    uint64_t log_bytes;     /* packet log */
    uint32_t ips;           /* monitored IPs and user agents (each) */
    uint32_t store;         /* the scripts' store: keys and list items */
} em_state_sizes_t;

void em_state_default_sizes(em_state_sizes_t *sz);

/* Master: make and format the segment. */
int  em_state_create(em_state_t *st, unsigned nworkers, const em_state_sizes_t *sz);
/* Anyone else: map it from the descriptor and check the header. */
int  em_state_map(em_state_t *st, int fd);
void em_state_unmap(em_state_t *st);

/* A worker slot's figures (slot < EM_STATE_SLOTS). */
em_st_wstats_t *em_state_wstats(em_state_t *st, unsigned slot);

/* Engine.IO sessions open now on the first nslots workers (their gauges). */
uint64_t em_state_sessions(em_state_t *st, unsigned nslots);

/* Add to a figure only its own worker writes: a plain add that other
 * processes read whole (aligned 64-bit stores). */
#define em_stat_add(field, n) \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (uint64_t) (n), \
                     __ATOMIC_RELAXED)
#define em_stat_sub(field, n) \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) - (uint64_t) (n), \
                     __ATOMIC_RELAXED)

void em_state_lock(em_state_t *st, int zone);
void em_state_unlock(em_state_t *st, int zone);

/* A worker slot's live process (0: none): the master clears it when it
 * reaps the worker, the worker sets it when it starts. */
void     em_state_slot_set(em_state_t *st, unsigned slot, uint32_t pid);
uint32_t em_state_slot_pid(em_state_t *st, unsigned slot);
/*
 * Which slots belong to a worker, live or being restarted (the master
 * sets them; a reload runs the new workers in other slots beside the old,
 * draining, ones), and which of those drain.
 */
#define EM_SLOT_FREE     0
#define EM_SLOT_SERVING  1
#define EM_SLOT_DRAINING 2
void     em_state_slot_mode(em_state_t *st, unsigned slot, int mode);
int      em_state_slot_used(em_state_t *st, unsigned slot);      /* an EM_SLOT_* */
/* The same for the broker (the master sets it; 0 while it is not running). */
/* What a broker leaves its successor (with Redis): its uid (6 letters and
 * digits) and, in streams mode, the last entry it read. *_get copies it
 * into out (NUL-terminated) and returns its length, 0 when none is kept.
 * Only the broker writes them; a copy cut by its death reads as none. */
size_t   em_state_redis_uid_get(em_state_t *st, char out[8]);
void     em_state_redis_uid_set(em_state_t *st, const char *uid);
size_t   em_state_stream_id_get(em_state_t *st, char out[40]);
void     em_state_stream_id_set(em_state_t *st, const char *id, size_t len);
void     em_state_broker_set(em_state_t *st, uint32_t pid);
uint32_t em_state_broker_pid(em_state_t *st);

int64_t  em_state_now(void);     /* wall clock, ms */

/* ---- em_limit.c: rate limits ---- */

typedef struct {
    int      allowed;
    uint32_t remaining;     /* hits left in the window */
    int64_t  retry_after;   /* ms until a hit can succeed (when refused) */
} em_limit_result_t;

/* Count a hit on key: at most max per window ms; going over blocks the key
 * for block ms (0: until the window ends), after which it starts afresh. */
void em_limit_hit(em_state_t *st, const char *key, size_t len, uint32_t max, int64_t window,
                  int64_t block, int64_t now, em_limit_result_t *r);
void em_limit_reset(em_state_t *st, const char *key, size_t len);

/* Across hosts (the broker's, with Redis). One host's share of a key: its
 * hits in its window (ending at until) and its block. */
typedef struct {
    em_str_t key;
    uint32_t count;
    int64_t  until;         /* ms: the end of the window */
    int64_t  blocked;       /* ms: blocked until, or 0 */
} em_lrec_t;

/* Call fn for every key this host's workers hit in a window still open or
 * blocked now, with this host's share. Under the lock: fn must not call in
 * here, nor block. */
void em_limit_local_each(em_state_t *st, int64_t now, void (*fn)(const em_lrec_t *r, void *arg),
                         void *arg);
/* Set what the other hosts have of a key, all of them together: r->count
 * hits counting until r->until, blocked until r->blocked. EM_ERROR for a
 * key that cannot be kept. */
int  em_limit_remote_set(em_state_t *st, const em_lrec_t *r);
/* Forget every other host's share. */
void em_limit_remote_clear(em_state_t *st);

/* ---- em_presence.c: users and rooms ---- */

typedef struct {
    char     user[EM_ST_NAME_MAX];
    size_t   user_len;
    int64_t  connected_at;
    int64_t  last_seen;
    uint32_t nconn;
    int      status;        /* EM_ST_STATUS_* */
    char     info[EM_ST_INFO_MAX];
    size_t   info_len;
} em_presence_t;

/* A change the caller reports to scripts after the call. */
#define EM_PCHG_ONLINE   1   /* user came online */
#define EM_PCHG_OFFLINE  2   /* user went offline */
#define EM_PCHG_ROOM_IN  3   /* user's first socket joined room */
#define EM_PCHG_ROOM_OUT 4   /* user's last socket left room */

typedef struct {
    int      what;          /* EM_PCHG_* */
    char    *nsp;           /* malloc'd, NUL-terminated */
    char    *room;          /* ROOM_*: the room */
    char    *user;
} em_pchange_t;

typedef struct {
    em_pchange_t *v;
    size_t        n, cap;
    size_t        lost;     /* changes that could not be kept (out of memory) */
} em_pchanges_t;

void em_pchanges_free(em_pchanges_t *c);

/* On worker slot: with an empty user, a socket connected to nsp (the
 * namespace's cluster-wide count, em_room_size(nsp, ""), grows); with a
 * user, that user has one more connection (and is online). A socket with a
 * user is counted by both calls. info (JSON object text, data NULL: keep)
 * replaces the user's info. em_presence_disconnect() undoes either. */
int  em_presence_connect(em_state_t *st, unsigned slot, em_str_t nsp, em_str_t user,
                         em_str_t info, int64_t now, em_pchanges_t *chg);
void em_presence_disconnect(em_state_t *st, unsigned slot, em_str_t nsp, em_str_t user,
                            int64_t now, em_pchanges_t *chg);
/* EM_DECLINED when the user is not online. *old receives the old status. */
int  em_presence_set_status(em_state_t *st, em_str_t nsp, em_str_t user, int status, int64_t now,
                            int *old);
int  em_presence_get(em_state_t *st, em_str_t nsp, em_str_t user, em_presence_t *out);
/* Call fn for each user of nsp (online ones only if online_only). */
void em_presence_each(em_state_t *st, em_str_t nsp, int online_only,
                      void (*fn)(const em_presence_t *p, void *arg), void *arg);
/* counts[EM_ST_STATUS_*] over the users of nsp. */
void em_presence_stats(em_state_t *st, em_str_t nsp, uint64_t counts[4]);

/* A socket (of user, which may be empty) joined / left a room. */
void em_room_add(em_state_t *st, unsigned slot, em_str_t nsp, em_str_t room, em_str_t user,
                 em_pchanges_t *chg);
void em_room_del(em_state_t *st, unsigned slot, em_str_t nsp, em_str_t room, em_str_t user,
                 em_pchanges_t *chg);
/* Sockets in a room on every worker (room "" = the namespace). */
uint32_t em_room_size(em_state_t *st, em_str_t nsp, em_str_t room);
/* Call fn for each namespace with a socket in it on some worker, with its
 * count, at most max of them (under the lock: fn must not call in here);
 * returns how many. */
size_t em_nsp_each(em_state_t *st, size_t max, void (*fn)(em_str_t nsp, uint32_t n, void *arg),
                   void *arg);
/* Rooms with a socket in them on some worker, every namespace (a socket's
 * own id is not a room here). */
uint32_t em_rooms_active(em_state_t *st);
/* Call fn for each online user with a socket in room. */
void em_room_users(em_state_t *st, em_str_t nsp, em_str_t room,
                   void (*fn)(const em_presence_t *p, void *arg), void *arg);

/* ---- presence across hosts: the broker's, with Redis ---- */

#define EM_PREC_USER 0      /* key nsp "\0" user */
#define EM_PREC_ROOM 1      /* key nsp "\0" room, or nsp "\0" room "\0" user */

/* One host's share of a user or a room entry. */
typedef struct {
    int      type;          /* EM_PREC_* */
    em_str_t key;
    uint32_t count;         /* the host's connections (user) or sockets (room) */
    int      status;        /* users: EM_ST_STATUS_* */
    int64_t  connected_at;  /* users */
    int64_t  last_seen;     /* users */
    em_str_t info;          /* users: JSON object text, or empty */
    int      pending;       /* users, count 0: the last connection here closed
                             * while another host had one (no offline reported) */
} em_prec_t;

/* Call fn for every user and room with a connection or socket on this
 * host's workers, with this host's share (a namespace's own count, room "",
 * is not one), and for every user whose last connection here closed
 * pending (count 0). Under the lock: fn must not call in here, nor block. */
void em_presence_local_each(em_state_t *st, void (*fn)(const em_prec_t *r, void *arg), void *arg);
/* Another host's share of an entry grew or shrank by delta; r is its
 * record (a user's status, connectedAt, lastSeen and info are taken when
 * they are newer than this host's). Nothing is reported to scripts here;
 * *offline (may be NULL) is EM_PREM_OFFLINE when it took the user's last
 * connection anywhere, EM_PREM_OFFLINE_PENDING when this host's last one
 * had closed pending, else 0. EM_ERROR for a key that is not one (or a
 * full table). */
#define EM_PREM_OFFLINE         1
#define EM_PREM_OFFLINE_PENDING 2
int  em_presence_remote_apply(em_state_t *st, const em_prec_t *r, int64_t delta, int64_t now,
                              int *offline);
/* Take every other host's share out, silently. */
void em_presence_remote_clear(em_state_t *st, int64_t now);

/* Take a dead worker's share out of presence, rooms, sessions and the
 * connection figures; the changes it makes are appended to chg. */
void em_state_sweep_slot(em_state_t *st, unsigned slot, int64_t now, int64_t max_disconnection,
                         em_pchanges_t *chg);

/* ---- em_recovery.c: recovery sessions and the packet log ---- */

/* Sessions held by a dead worker's sockets start their expiry now. */
void em_recovery_sweep_slot(em_state_t *st, unsigned slot, int64_t now, int64_t keep);
/* Drop expired sessions and log records older than keep ms. */
void em_recovery_expire(em_state_t *st, int64_t now, int64_t keep);

/* Store (insert or replace) a session under key. Expired sessions make room
 * when the table is full; EM_ERROR when it stays full. */
int  em_recovery_save(em_state_t *st, em_str_t key, const em_st_session_t *s, int64_t now);
/* Copy a session out; EM_DECLINED if absent. */
int  em_recovery_get(em_state_t *st, em_str_t key, em_st_session_t *out);
/* Take a session to restore it: present, of that kind, not expired and not
 * held by a live socket (a socket whose worker died does not hold it). The
 * pid kind is removed; a token stays, now held by the caller. */
int  em_recovery_take(em_state_t *st, em_str_t key, int kind, unsigned slot, uint32_t pid,
                      int64_t now, em_st_session_t *out);
/* Replace the rooms of a held session. */
int  em_recovery_set_rooms(em_state_t *st, em_str_t key, const char *rooms, size_t len,
                           uint16_t nrooms, int64_t now);
/* Its socket went: keep it until now + keep ms (the log's next offset noted). */
void em_recovery_release(em_state_t *st, em_str_t key, int64_t now, int64_t keep);
void em_recovery_drop(em_state_t *st, em_str_t key);

typedef struct {
    uint64_t pid_sessions;      /* connected + disconnected */
    uint64_t tokens;
    uint64_t held;              /* with a connected socket */
    int64_t  age_sum;           /* ms, over all */
    uint64_t log_records;
    uint64_t log_evicted;
    uint64_t log_bytes;
} em_recovery_stats_t;

void em_recovery_stats(em_state_t *st, int64_t now, em_recovery_stats_t *out);

/* Append to the packet log: em_plog_begin() locks and returns the offset the
 * record will get; the caller puts it into the data, then em_plog_commit()
 * (or em_plog_abort()) unlocks. rooms/except as em_str_t lists. */
uint64_t em_plog_begin(em_state_t *st);
void     em_plog_commit(em_state_t *st, uint64_t offset, em_str_t nsp, const em_str_t *rooms,
                        size_t nrooms, const em_str_t *except, size_t nexcept, em_str_t data,
                        const em_str_t *atts, size_t natt, int64_t now);
void     em_plog_abort(em_state_t *st);
uint64_t em_plog_next_offset(em_state_t *st);

/* One replayed packet (malloc'd as one block). */
typedef struct em_plog_pkt {
    struct em_plog_pkt *next;
    uint64_t            offset;
    em_str_t            data;
    size_t              natt;
    em_str_t           *atts;
} em_plog_pkt_t;

/*
 * The packets of nsp a socket in `rooms` (its own id among them) would have
 * received after `offset` (exclusive: the record with that offset must still
 * be in the log, else EM_DECLINED) or from `offset` (inclusive: from_offset
 * set), oldest first, as a list to free with em_plog_pkts_free(). In the
 * inclusive mode the list is always given, and EM_DECLINED says that records
 * from `offset` on were dropped already (some may be missing).
 */
int  em_plog_replay(em_state_t *st, em_str_t nsp, const em_str_t *rooms, size_t nrooms,
                    uint64_t offset, int from_offset, em_plog_pkt_t **out);
/* The same; *upto is set to the last offset given out when the log was read
 * (every record up to it was in the log then: one for these rooms is in the
 * list, one delivered later, from another worker, is a duplicate). */
int  em_plog_replay_upto(em_state_t *st, em_str_t nsp, const em_str_t *rooms, size_t nrooms,
                         uint64_t offset, int from_offset, em_plog_pkt_t **out, uint64_t *upto);
void em_plog_pkts_free(em_plog_pkt_t *p);

/* ---- em_monitor.c: connection figures ---- */

/* A dead worker's sockets are no longer active. */
void em_monitor_sweep_slot(em_state_t *st, unsigned slot);

typedef struct {
    int64_t  last_reset;
    uint64_t total;
    uint64_t active;
    uint64_t failed;
    uint64_t peak;
    uint64_t per_minute;    /* connects in the last 60 s */
    uint64_t avg_duration;  /* ms */
    uint64_t closed;
    uint64_t violations;    /* clients closed for breaking a limit or the protocol */
} em_monitor_figures_t;

/* Fill an event's text fields (each truncated to fit). */
void em_monitor_event_fill(em_st_event_t *ev, const char *type, em_str_t sid, em_str_t nsp,
                           em_str_t user, em_str_t ip, em_str_t ua, em_str_t details);

void em_monitor_connect(em_state_t *st, unsigned slot, const em_st_event_t *ev);
void em_monitor_disconnect(em_state_t *st, unsigned slot, int64_t duration,
                           const em_st_event_t *ev);
void em_monitor_failed(em_state_t *st, const em_st_event_t *ev);
void em_monitor_record(em_state_t *st, const em_st_event_t *ev);
/* A client was closed for breaking a limit or the protocol: counted, and
 * the event (type "limit") goes into the ring. */
void em_monitor_violation(em_state_t *st, const em_st_event_t *ev);
void em_monitor_read(em_state_t *st, int64_t now, em_monitor_figures_t *out);
void em_monitor_reset(em_state_t *st, int64_t now);
/* Up to max events, newest first, that pass fn (NULL: all); returns how many. */
size_t em_monitor_events(em_state_t *st, em_st_event_t *out, size_t max,
                         int (*fn)(const em_st_event_t *ev, void *arg), void *arg);

typedef struct {
    char     key[160];
    uint64_t count;
} em_monitor_top_t;

/* The n most frequent IPs (which 0) or user agents (which 1). */
size_t em_monitor_top(em_state_t *st, int which, em_monitor_top_t *out, size_t n);

/* ---- em_store.c: the scripts' key/value store and lists ---- */

/* Why a store call did nothing. */
#define EM_KV_TOO_LONG  1   /* a key over EM_ST_KV_KEY_MAX or a value over EM_ST_KV_VALUE_MAX */
#define EM_KV_FULL      2   /* no entry could be made (a store of 0 entries) */
#define EM_KV_NOT_INT   3   /* incr of a key that holds something else */
#define EM_KV_NOT_LIST  4   /* a list call on a key that holds something else, or the reverse */

/* The value under key (its JSON text, or an integer's digits) into
 * out[0..cap) with *len: EM_OK, or EM_DECLINED when there is none (or it
 * expired, or it is a list). now and ttl are in ms; ttl 0: no expiry. */
int em_kv_get(em_state_t *st, em_str_t key, int64_t now, char *out, size_t cap, size_t *len);
/* Set key to the JSON text value: EM_OK or EM_ERROR (*why, EM_KV_*). */
int em_kv_set(em_state_t *st, em_str_t key, em_str_t value, int64_t ttl, int64_t now, int *why);
/* Add by to the integer under key (0 when absent): EM_OK and *out. A ttl
 * given (> 0) is set anew; 0 keeps the key's own. */
int em_kv_incr(em_state_t *st, em_str_t key, int64_t by, int64_t ttl, int64_t now, int64_t *out,
               int *why);
/* Delete key (a list with its items): 1 if it was there. */
int em_kv_del(em_state_t *st, em_str_t key, int64_t now);
/* em_kv_set / em_kv_del, with *written the time the write holds: now, or
 * just after the write it replaces when that one is later (so that it wins
 * on every host whatever their clocks). */
int em_kv_set_w(em_state_t *st, em_str_t key, em_str_t value, int64_t ttl, int64_t now,
                int64_t *written, int *why);
int em_kv_del_w(em_state_t *st, em_str_t key, int64_t now, int64_t *written);
/* Another host's set (written at its time `written`) or delete: done
 * unless the key holds a value set later (the last writer wins); EM_OK,
 * EM_DECLINED (a later one is kept) or EM_ERROR (*why). */
int em_kv_set_at(em_state_t *st, em_str_t key, em_str_t value, int64_t ttl, int64_t now,
                 int64_t written, int *why);
int em_kv_del_at(em_state_t *st, em_str_t key, int64_t now, int64_t written);
/* Append value to the list under key (made if absent), dropping the oldest
 * items past cap: EM_OK and its *count. ttl as for incr. */
int em_kv_push(em_state_t *st, em_str_t key, em_str_t value, uint32_t cap, int64_t ttl, int64_t now,
               uint32_t *count, int *why);
/* Call fn with items start..stop (0-based, negative from the end, as
 * Redis's LRANGE) of the list under key, oldest first: how many; items
 * the store evicted are skipped. */
size_t em_kv_range(em_state_t *st, em_str_t key, int64_t start, int64_t stop, int64_t now,
                   void (*fn)(const char *value, size_t len, void *arg), void *arg);
/* Items of the list under key (0 when none). */
uint32_t em_kv_len(em_state_t *st, em_str_t key, int64_t now);

typedef struct {
    uint32_t entries;       /* keys and list items held */
    uint32_t capacity;
    uint64_t evicted;       /* dropped to make room (least recently used first) */
} em_kv_stats_t;

void em_kv_stats(em_state_t *st, em_kv_stats_t *out);

#endif
