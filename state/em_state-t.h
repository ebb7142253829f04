/*
 * em_state-t.h - layouts of the cluster-wide state segment.
 *
 * The master creates this segment (a memfd) before it forks anyone and maps
 * it into the broker and every worker; a process that restarts maps the same
 * bytes again, so nothing here is lost when one of them dies. The segment
 * holds zones, each guarded by a process-shared robust mutex: when a process
 * dies holding one, the next locker rebuilds that zone's indexes from its
 * entries (em_state.c) before going on.
 *
 * Zones:
 *   counters  rate-limit keys (em_st_limit_t), LRU-evicted
 *   presence  users per namespace (em_st_user_t) and cluster-wide room
 *             membership counts (em_st_room_t), per worker slot so that a
 *             dead worker's share can be taken away
 *   sessions  recovery sessions (em_st_session_t) and the packet log of
 *             events a disconnected socket may have missed (em_plog_t)
 *   monitor   connection figures, a ring of recent connection events and
 *             the per-IP / per-user-agent counts (em_st_monitor_t)
 *   store     the scripts' key/value store and lists (em_st_kv_t), LRU-evicted
 *
 * Every struct below is fixed-layout; the version changes with any of them.
 */
#ifndef EM_STATE_T_H
#define EM_STATE_T_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define EM_STATE_MAGIC    0x454d5354u    /* "EMST" */
#define EM_STATE_VERSION  6
#define EM_STATE_SLOTS    64             /* = EM_MAX_WORKERS */

/* ---- generic table: a hash of fixed-size entries with an LRU list ---- */

/*
 * Entries live in an array after the bucket array; links are indexes + 1
 * (0 = none). Entries are handed out from `high` first (so untouched pages of
 * the memfd stay unallocated), then from the free list.
 */
typedef struct {
    uint32_t capacity;      /* entries */
    uint32_t nbuckets;      /* power of two */
    uint32_t entry_size;    /* em_shent_t + key_max + value, 8-aligned */
    uint32_t key_max;       /* bytes, 8-aligned */
    uint32_t value_size;
    uint32_t used;          /* live entries */
    uint32_t high;          /* entries ever handed out */
    uint32_t free_head;
    uint32_t lru_head;      /* most recently used */
    uint32_t lru_tail;
    uint64_t evicted;       /* live entries dropped to make room */
    uint64_t buckets_off;   /* from this header */
    uint64_t entries_off;
} em_shtab_t;

_Static_assert(sizeof(em_shtab_t) == 64, "em_shtab_t layout changed");

typedef struct {
    uint32_t hnext;
    uint32_t lprev;
    uint32_t lnext;
    uint32_t hash;
    uint16_t key_len;
    uint16_t flags;         /* EM_SHENT_USED */
    uint32_t reserved;
} em_shent_t;

#define EM_SHENT_USED 0x1

_Static_assert(sizeof(em_shent_t) == 24, "em_shent_t layout changed");

/* ---- values ---- */

/* One rate-limit key: a fixed window opened by its first hit. The remote
 * fields are the other hosts' hits, as the broker last heard them (Redis):
 * they count until remote_until, and their block until remote_blocked. */
typedef struct {
    int64_t  window_start;  /* ms */
    int64_t  blocked_until; /* ms; 0 when not blocked */
    uint32_t count;         /* hits in the window, on this host */
    uint32_t remote;        /* hits on other hosts */
    int64_t  window;        /* ms: the window of the last hit */
    int64_t  remote_until;  /* ms: the end of the other hosts' windows */
    int64_t  remote_blocked; /* ms: the other hosts' block of the key */
} em_st_limit_t;

_Static_assert(sizeof(em_st_limit_t) == 48, "em_st_limit_t layout changed");

/*
 * A key of the scripts' store: a JSON value's text (kind VALUE), an integer
 * (INT, for incr), or a list's head (LIST: items first .. first+count-1
 * are entries of kind ITEM under the item keys, at most cap of them). The
 * store's keys carry a prefix byte: 'k' before a script's key, 'i' before
 * an item's (the list's key, a NUL and the item's 8-byte number).
 */
#define EM_ST_KV_KEY_MAX   200     /* bytes of a script's key */
#define EM_ST_KV_VALUE_MAX 2048    /* bytes of one value or list item */
#define EM_ST_KV_TABKEY    224     /* the table's key_max: prefix + key + NUL + 8, aligned */
#define EM_ST_KV_VALUE     1
#define EM_ST_KV_INT       2
#define EM_ST_KV_LIST      3
#define EM_ST_KV_ITEM      4

typedef struct {
    int64_t  expires;       /* ms; 0: never */
    int64_t  num;           /* INT: the value; LIST: the first item's number */
    uint32_t kind;
    uint32_t len;           /* bytes of data */
    uint32_t count;         /* LIST: items */
    uint32_t cap;           /* LIST: items kept at most (older ones drop) */
    int64_t  written;       /* ms: the set it holds (a host's clock, with redis) */
    char     data[EM_ST_KV_VALUE_MAX];
} em_st_kv_t;

_Static_assert(offsetof(em_st_kv_t, data) == 40, "em_st_kv_t layout changed");

#define EM_ST_STATUS_OFFLINE 0
#define EM_ST_STATUS_ONLINE  1
#define EM_ST_STATUS_AWAY    2
#define EM_ST_STATUS_BUSY    3

#define EM_ST_INFO_MAX 512

/* A user of a namespace (key: nsp "\0" user). Kept after the last
 * connection closes, as "offline" with its lastSeen, until evicted. */
typedef struct {
    int64_t  connected_at;  /* ms: start of the current online period */
    int64_t  last_seen;     /* ms: last connect, disconnect or status change */
    uint32_t nconn;         /* connections on every worker, and on other hosts */
    uint8_t  status;        /* EM_ST_STATUS_* */
    uint8_t  pending;       /* this host's last connection closed while another
                             * host had one: no offline was reported here */
    uint16_t info_len;
    uint32_t remote;        /* connections on other hosts (the broker's, from Redis) */
    uint32_t reserved2;
    uint32_t slots[EM_STATE_SLOTS];   /* connections per worker slot */
    char     info[EM_ST_INFO_MAX];    /* JSON object the script attached */
} em_st_user_t;

_Static_assert(offsetof(em_st_user_t, slots) == 32, "em_st_user_t layout changed");
_Static_assert(sizeof(em_st_user_t) == 32 + 4 * EM_STATE_SLOTS + EM_ST_INFO_MAX,
               "em_st_user_t layout changed");

/* Sockets of a room (key: nsp "\0" room) or a user's sockets in a room
 * (key: nsp "\0" room "\0" user), cluster-wide; the namespace itself is the
 * room "" (key: nsp "\0"). */
typedef struct {
    uint32_t count;         /* sockets on every worker, and on other hosts */
    uint32_t remote;        /* sockets on other hosts (the broker's, from Redis) */
    uint32_t slots[EM_STATE_SLOTS];
} em_st_room_t;

_Static_assert(sizeof(em_st_room_t) == 8 + 4 * EM_STATE_SLOTS, "em_st_room_t layout changed");

#define EM_ST_SESSION_PID   1   /* Socket.IO connection-state recovery */
#define EM_ST_SESSION_TOKEN 2   /* an application's recovery token */

#define EM_ST_NAME_MAX   128
#define EM_ST_ROOMS_MAX  1024

/*
 * A recovery session (key: the pid or the token). While its socket is
 * connected `expires` is 0 and owner_pid names the worker process holding
 * it; when the socket goes, expires = now + recovery.max_disconnection.
 * rooms: the socket's rooms as (uint16 length, bytes) pairs.
 */
typedef struct {
    int64_t  created;
    int64_t  last_activity;
    int64_t  expires;
    uint64_t offset;        /* tokens: the log's next offset when it went */
    uint32_t owner_pid;
    uint16_t owner_slot;
    uint8_t  kind;          /* EM_ST_SESSION_* */
    uint8_t  overflow;      /* rooms did not fit: cannot be restored */
    char     sid[24];       /* socket id, NUL-terminated */
    uint16_t nsp_len;
    uint16_t user_len;
    uint16_t rooms_len;
    uint16_t nrooms;
    char     nsp[EM_ST_NAME_MAX];
    char     user[EM_ST_NAME_MAX];
    char     rooms[EM_ST_ROOMS_MAX];
} em_st_session_t;

_Static_assert(offsetof(em_st_session_t, sid) == 40, "em_st_session_t layout changed");
_Static_assert(sizeof(em_st_session_t) == 72 + 2 * EM_ST_NAME_MAX + EM_ST_ROOMS_MAX,
               "em_st_session_t layout changed");

/*
 * The packet log: records [tail, head) of a byte ring (positions grow
 * without bound; the byte is at position % size). Each record starts
 * 8-aligned with em_plog_rec_t; a record that would cross the end is
 * preceded by padding (a header with offset 0) up to the end.
 */
typedef struct {
    uint64_t size;          /* data bytes after this header */
    uint64_t head;
    uint64_t tail;
    uint64_t next_offset;   /* the offset the next record gets; the first is 1 */
    uint64_t records;       /* live records */
    uint64_t evicted;       /* records dropped to make room or too old */
    uint64_t evicted_bytes;
    uint64_t too_big;       /* records never stored: larger than a quarter of the log */
} em_plog_t;

_Static_assert(sizeof(em_plog_t) == 64, "em_plog_t layout changed");

/* Followed by nsp, nrooms x (uint16 len, bytes), nexcept x (uint16 len,
 * bytes), data (the EVENT's JSON array with the offset last), natt x
 * (uint32 len, bytes); then padding to 8. */
typedef struct {
    uint32_t len;           /* the whole record with padding */
    uint16_t nsp_len;
    uint16_t nrooms;
    uint64_t offset;        /* 0: padding up to the end of the ring */
    int64_t  time;          /* ms */
    uint16_t nexcept;
    uint16_t natt;
    uint32_t data_len;
} em_plog_rec_t;

_Static_assert(sizeof(em_plog_rec_t) == 32, "em_plog_rec_t layout changed");

#define EM_ST_EVENTS 1000

/* One entry of the ring of recent connection events. */
typedef struct {
    int64_t  time;          /* ms */
    char     type[16];      /* connect, disconnect, error, rate_limit, auth_failure, ... */
    char     sid[24];
    char     nsp[64];
    char     user[64];
    char     ip[48];
    char     ua[160];
    char     details[248];  /* JSON object */
} em_st_event_t;

_Static_assert(sizeof(em_st_event_t) == 632, "em_st_event_t layout changed");

/* Connection figures (Socket.IO sockets, every namespace, every worker). */
typedef struct {
    int64_t  last_reset;    /* ms */
    uint64_t total;         /* sockets connected */
    uint64_t failed;        /* connection attempts refused */
    uint64_t closed;        /* sockets that went */
    uint64_t duration_sum;  /* ms, over the closed ones */
    uint64_t peak;          /* most at once */
    uint64_t events_next;   /* events written so far */
    uint64_t violations;    /* clients closed for breaking a limit or the protocol */
    uint32_t active[EM_STATE_SLOTS];   /* per worker slot */
    uint32_t second_count[64];        /* connects in the second second_at[i] */
    int64_t  second_at[64];
    em_st_event_t events[EM_ST_EVENTS];
} em_st_monitor_t;

_Static_assert(offsetof(em_st_monitor_t, active) == 64, "em_st_monitor_t layout changed");

/*
 * One worker slot's own figures for /metrics: written by that worker only
 * (a plain add, no lock: em_stat_add()), read by any; kept across the
 * worker's restarts so that the counters only grow. The two gauges are set
 * back to 0 by a worker starting in the slot.
 */
#define EM_ST_LAT_BUCKETS 8

typedef struct {
    uint64_t handshakes;            /* Engine.IO sessions opened */
    uint64_t sessions_ws;           /* gauge: sessions on WebSocket now */
    uint64_t sessions_polling;      /* gauge: sessions on long-polling now */
    uint64_t messages_in;           /* Engine.IO messages from clients */
    uint64_t messages_out;          /* ... to clients */
    uint64_t bytes_in;              /* bytes read from clients */
    uint64_t bytes_out;             /* bytes written to clients */
    uint64_t broadcasts;            /* broadcasts published from this worker */
    uint64_t deliveries;            /* packets delivered by a broadcast to this worker's sockets */
    uint64_t recovery_hits;         /* CONNECTs with {pid, offset} recovered */
    uint64_t recovery_misses;       /* ... that had to start anew */
    uint64_t refusals_auth;         /* CONNECTs refused by api_key or jwt */
    uint64_t refusals_rate;         /* CONNECTs refused by connect_limit */
    uint64_t script_errors;
    uint64_t webhook_class[6];      /* responses by status class ([0]: other) */
    uint64_t webhook_failed;        /* no response */
    uint64_t webhook_declined;      /* over webhooks.max_inflight */
    uint64_t webhook_le[EM_ST_LAT_BUCKETS];   /* responses within em_fetch_buckets */
    uint64_t webhook_count;
    uint64_t webhook_sum_us;
    uint64_t api_calls;             /* backend API calls answered */
    uint64_t sessions_closed;       /* Engine.IO sessions closed */
    uint64_t reserved[6];
} em_st_wstats_t;

_Static_assert(sizeof(em_st_wstats_t) == 320, "em_st_wstats_t layout changed");

/* A zone's lock: a process-shared robust mutex, and the pid of the one
 * process remaking it after it became unrecoverable (0: nobody), in a
 * cache line. */
typedef struct {
    union {
        pthread_mutex_t mu;
        uint8_t         mu_space[48];
    };
    uint32_t            remaking;
    uint8_t             pad[12];
} em_st_lock_t;

_Static_assert(sizeof(pthread_mutex_t) <= 48, "pthread_mutex_t does not fit its slot");
_Static_assert(sizeof(em_st_lock_t) == 64, "em_st_lock_t layout changed");

#define EM_ZONE_COUNTERS 0
#define EM_ZONE_PRESENCE 1
#define EM_ZONE_SESSIONS 2
#define EM_ZONE_MONITOR  3
#define EM_ZONE_STORE    4
#define EM_ZONES         5

/* The segment's header; offsets are from the segment's start. */
typedef struct {
    uint32_t     magic;
    uint16_t     version;
    uint16_t     nworkers;
    uint64_t     size;
    int64_t      created;                   /* ms */
    uint64_t     limits_off;                /* em_shtab_t */
    uint64_t     users_off;                 /* em_shtab_t */
    uint64_t     rooms_off;                 /* em_shtab_t */
    uint64_t     sessions_off;              /* em_shtab_t */
    uint64_t     plog_off;                  /* em_plog_t */
    uint64_t     monitor_off;               /* em_st_monitor_t */
    uint64_t     ips_off;                   /* em_shtab_t of uint64 counts */
    uint64_t     uas_off;                   /* em_shtab_t of uint64 counts */
    uint32_t     repairs[EM_ZONES];         /* zones rebuilt after a holder died */
    uint32_t     broker_pid;                /* the live broker process, or 0 */
    uint64_t     store_off;                 /* em_shtab_t of em_st_kv_t */
    uint64_t     wstats_off;                /* em_st_wstats_t[EM_STATE_SLOTS] */
    uint32_t     slot_pid[EM_STATE_SLOTS];  /* the live process of each worker slot, or 0 */
    uint64_t     slots_used;                /* bit i: slot i belongs to a worker (live or not) */
    uint64_t     slots_draining;            /* bit i: that worker drains for a reload */
    char         redis_uid[8];              /* the broker's uid on Redis, kept for its successor */
    char         stream_id[40];             /* streams mode: the last entry it read, or "" */
    em_st_lock_t locks[EM_ZONES];
} em_state_hdr_t;

_Static_assert(offsetof(em_state_hdr_t, store_off) == 112, "em_state_hdr_t layout changed");
_Static_assert(offsetof(em_state_hdr_t, slot_pid) == 128, "em_state_hdr_t layout changed");
_Static_assert(offsetof(em_state_hdr_t, slots_used) == 384, "em_state_hdr_t layout changed");
_Static_assert(offsetof(em_state_hdr_t, locks) == 448, "em_state_hdr_t layout changed");
_Static_assert(sizeof(em_state_hdr_t) == 448 + 64 * EM_ZONES, "em_state_hdr_t layout changed");

#endif
