/*
 * em_bus.c - the worker's end of its two rings to the broker.
 *
 * Publishing encodes a broadcast record (em_brkrec.h) and writes it to the
 * "up" ring; if the ring is full the record waits in a local queue (kept in
 * order, flushed when the broker rings our bell) so the event loop never
 * blocks. Records arriving on the "down" ring are delivered to this worker's
 * sockets with the same adapter code as local broadcasts.
 */
#include <stdlib.h>
#include <string.h>

#include "em_brkrec.h"
#include "em_shm.h"
#include "em_bus.h"
#include "em_rreq.h"
#include "em_cluster.h"
#include "em_cmd.h"
#include "em_log.h"
#include "em_loop.h"
#include "em_sio.h"
#include "em_socketio.h"

_Static_assert(EM_BRK_ATT_MAX >= EM_SIO_MAX_ATTACHMENTS,
               "a broadcast record must carry every attachment a packet may have");

/* Broadcasts waiting for room on the ring, at most (then dropped, logged). */
#define EM_BUS_QUEUE_LIMIT (64u * 1024 * 1024)

typedef struct em_bus_pending {
    struct em_bus_pending *next;
    size_t                 len;
    uint16_t               type;        /* EM_BRK_REC_* */
    unsigned char          data[];
} em_bus_pending_t;

static struct {
    int                active;
    em_shm_t           shm;
    em_ring_t          up, down;
    uint16_t          *filter;
    int                bell, broker_bell;
    struct event      *bell_ev;
    em_bus_pending_t  *q_head, *q_tail;
    size_t             q_bytes;
    uint64_t           dropped;
    unsigned char     *rec;
    size_t             rec_cap;
    int                starting;    /* reading through what a dead worker left */
} em_bus;

/* Write queued records, oldest first; stop at the first that does not fit. */
static void
em_bus_flush(void)
{
    int wrote = 0;

    while (em_bus.q_head != NULL) {
        em_bus_pending_t *p = em_bus.q_head;
        if (em_ring_write(&em_bus.up, p->type, p->data, p->len) != EM_OK) {
            if (em_ring_space_wait_prepare(&em_bus.up, p->len) == EM_AGAIN) {
                continue;   /* room appeared meanwhile */
            }
            break;
        }
        wrote = 1;
        em_bus.q_head = p->next;
        if (em_bus.q_head == NULL) {
            em_bus.q_tail = NULL;
        }
        em_bus.q_bytes -= p->len;
        free(p);
    }
    if (wrote && em_ring_notify_needed(&em_bus.up)) {
        em_ring_bell_ring(em_bus.broker_bell);
    }
}

/* Say why a broadcast has no record for the other workers. */
static void
em_bus_log_fault(const em_brk_fault_t *f)
{
    switch (f->what) {
    case EM_BRK_BAD_NSP:
        em_log(EM_LOG_ERR, 0, "namespace name of %zu bytes is too long for the other workers",
               f->value);
        break;
    case EM_BRK_BAD_NROOMS:
        em_log(EM_LOG_ERR, 0, "a broadcast to %zu rooms names too many for the other workers",
               f->value);
        break;
    case EM_BRK_BAD_ROOM:
        em_log(EM_LOG_ERR, 0, "room name of %zu bytes is too long for the other workers", f->value);
        break;
    case EM_BRK_BAD_NEXCEPT:
        em_log(EM_LOG_ERR, 0, "a broadcast excepting %zu rooms names too many for the other workers",
               f->value);
        break;
    case EM_BRK_BAD_EXCEPT:
        em_log(EM_LOG_ERR, 0, "except-room name of %zu bytes is too long for the other workers",
               f->value);
        break;
    case EM_BRK_BAD_NATT:
        em_log(EM_LOG_ERR, 0, "a broadcast with %zu attachments has too many for the other workers",
               f->value);
        break;
    default:
        em_log(EM_LOG_ERR, 0, "a broadcast is too large for the other workers (%zu bytes in part %d)",
               f->value, f->what);
        break;
    }
}

/* A queue entry for a record of len bytes, or NULL (logged) when the queue
 * is over its bound or memory ran out. */
static em_bus_pending_t *
em_bus_slot(size_t len)
{
    em_bus_pending_t *p;

    if (em_bus.q_bytes + len > EM_BUS_QUEUE_LIMIT) {
        /* The broker has not taken anything for a long while: say so, once
         * per thousand, rather than grow without bound. */
        if (em_bus.dropped++ % 1000 == 0) {
            em_log(EM_LOG_ERR, 0, "the broker is not keeping up: %llu records for other workers "
                   "dropped so far (%zu bytes waiting)", (unsigned long long) em_bus.dropped,
                   em_bus.q_bytes);
        }
        return NULL;
    }
    p = malloc(sizeof(*p) + len);
    if (p == NULL) {
        em_log(EM_LOG_ERR, 0, "malloc() of a %zu-byte record failed", len);
    }
    return p;
}

/* Queue an encoded record after the others and write what fits. */
static void
em_bus_enqueue(em_bus_pending_t *p, uint16_t type)
{
    p->next = NULL;
    p->type = type;
    if (em_bus.q_tail) {
        em_bus.q_tail->next = p;
    } else {
        em_bus.q_head = p;
    }
    em_bus.q_tail = p;
    em_bus.q_bytes += p->len;
    em_bus_flush();
}

void
em_bus_publish(em_str_t nsp, long conf_index, const em_bcast_t *b, em_str_t data, int logged,
               em_buf_t *const *att, size_t natt)
{
    em_str_t          small[8], *atts = small;
    em_brk_msg_t      m;
    em_brk_fault_t    fault;
    em_bus_pending_t *p;
    size_t            len;

    if (!em_bus.active) {
        return;
    }
    if (natt > EM_SIO_MAX_ATTACHMENTS) {
        em_log(EM_LOG_ERR, 0, "a broadcast with %zu attachments has too many for the other workers",
               natt);
        return;
    }
    if (natt > EM_NELEMS(small) && (atts = malloc(natt * sizeof(*atts))) == NULL) {
        em_log(EM_LOG_ERR, 0, "malloc() of %zu attachment slices failed", natt);
        return;
    }
    for (size_t i = 0; i < natt; i++) {
        atts[i] = (em_str_t) { att[i]->data, att[i]->len };
    }
    m = (em_brk_msg_t) {
        .origin = (uint16_t) em_loop.slot,
        .flags = (uint16_t) ((conf_index >= 0 ? EM_BRK_F_CONF : 0) | (logged ? EM_BRK_F_OFFSET : 0)
                             | (b->vol ? EM_BRK_F_VOLATILE : 0)),
        .conf_index = conf_index >= 0 ? (uint32_t) conf_index : 0,
        .nsp = nsp,
        .rooms = b->rooms,
        .nrooms = b->nrooms,
        .except = b->except,
        .nexcept = b->nexcept,
        .data = data,
        .att = atts,
        .natt = natt,
    };
    if (em_brkrec_size(&m, &len, &fault) != EM_OK) {
        em_bus_log_fault(&fault);
        goto done;
    }
    if (len > em_ring_max_payload(&em_bus.up)) {
        em_log(EM_LOG_ERR, 0, "a broadcast of %zu bytes is too large for the other workers", len);
        goto done;
    }
    if ((p = em_bus_slot(len)) == NULL) {
        goto done;
    }
    if (em_brkrec_encode(&m, p->data, len, &p->len) != EM_OK || p->len != len) {
        em_log(EM_LOG_ERR, 0, "em_brkrec_encode() of a %zu-byte broadcast failed", len);
        free(p);
        goto done;
    }
    em_bus_enqueue(p, EM_BRK_REC_BCAST);
done:
    if (atts != small) {
        free(atts);
    }
}

/*
 * The recovery log offset an event carries as its last argument, `,"N"]`
 * (em_cluster_event_pkt() appends it), or 0.
 */
static uint64_t
em_bus_offset(em_str_t data)
{
    size_t   i, end;
    uint64_t o = 0;

    if (data.len < 5 || data.data[data.len - 1] != ']' || data.data[data.len - 2] != '"') {
        return 0;
    }
    end = data.len - 2;
    for (i = end; i > 0 && end - i < 20 && data.data[i - 1] >= '0' && data.data[i - 1] <= '9'; i--) {
    }
    if (i == end || i < 2 || data.data[i - 1] != '"' || data.data[i - 2] != ',') {
        return 0;
    }
    for (size_t k = i; k < end; k++) {
        unsigned d = (unsigned) (data.data[k] - '0');
        if (o > (UINT64_MAX - d) / 10) {
            return 0;
        }
        o = o * 10 + d;
    }
    return o;
}

/* Deliver one broadcast record from another worker to our sockets. */
static void
em_bus_deliver(const unsigned char *rec, size_t len)
{
    em_brk_view_t v;
    em_bcast_t    b = { 0 };
    em_str_t     *rooms = NULL, a;
    em_buf_t    **att = NULL;
    size_t        nrooms, nexcept, natt = 0, n = 0;
    int           ok = 0;

    if (em_brkrec_decode(rec, len, &v) != EM_OK
        || ((v.flags & EM_BRK_F_CONF) && v.conf_index >= em_loop.conf->nnsps)) {
        goto bad;
    }
    nrooms = v.rooms.n;
    nexcept = v.except.n;
    rooms = calloc(nrooms + nexcept + 1, sizeof(em_str_t));
    att = calloc(v.att.n + 1, sizeof(em_buf_t *));
    if (rooms == NULL || att == NULL) {
        goto bad;
    }
    while (n < nrooms && em_brk_list_next(&v.rooms, &rooms[n])) {
        n++;
    }
    while (n < nrooms + nexcept && em_brk_list_next(&v.except, &rooms[n])) {
        n++;
    }
    while (em_brk_list_next(&v.att, &a)) {
        if ((att[natt] = em_buf_copy(a.data, a.len, 1)) == NULL) {
            goto bad;
        }
        natt++;
    }
    b.rooms = rooms;
    b.nrooms = nrooms;
    b.except = rooms + nrooms;
    b.nexcept = nexcept;
    b.offset = (v.flags & EM_BRK_F_OFFSET) ? em_bus_offset(v.data) : 0;
    b.vol = (v.flags & EM_BRK_F_VOLATILE) != 0;
    ok = 1;
    /* A named namespace is one lookup; "every instance" walks the worker's. */
    em_nsp_t *named = (v.flags & EM_BRK_F_CONF) ? NULL : em_nsp_find(v.nsp.data, v.nsp.len);
    for (em_nsp_t *ns = (v.flags & EM_BRK_F_CONF) ? em_nsp_first() : named, *next; ns != NULL;
         ns = next) {
        next = named ? NULL : ns->hh.next;
        if (!named && ns->conf_index != v.conf_index) {
            continue;
        }
        em_sio_broadcast_raw(ns, &b, v.data, att, natt);
    }
bad:
    if (!ok) {
        em_log(EM_LOG_ERR, 0, "a malformed broadcast record (%zu bytes) from the broker was dropped", len);
    }
    for (size_t i = 0; i < natt; i++) {
        em_buf_unref(att[i]);
    }
    free(att);
    free(rooms);
}

static void
em_bus_consume(void)
{
    for (int pass = 0; pass < 64; pass++) {
        uint16_t type;
        size_t   len;
        int      n = 0;
        while (n < 1024 && em_ring_read(&em_bus.down, &type, em_bus.rec, em_bus.rec_cap, &len) == EM_OK) {
            n++;
            if (type == EM_BRK_REC_BCAST) {
                em_bus_deliver(em_bus.rec, len);
            } else if (type == EM_BRK_REC_CMD) {
                /* Starting: a command queued before we ran is answered all
                 * the same (we have no sockets yet), so that its asker does
                 * not wait for us; a reply is to a process gone. */
                em_brk_cmd_msg_t m;
                if (em_brkcmd_decode(em_bus.rec, len, &m) == EM_OK
                    && (m.target == EM_BRK_ALL || m.target == em_loop.slot)) {
                    if (m.origin == EM_BRK_ORIGIN_REMOTE && m.kind == EM_BRK_KIND_REDIS_REQUEST) {
                        em_rreq_receive(&m);
                    } else if (m.origin == EM_BRK_ORIGIN_REMOTE
                               && m.kind == EM_BRK_KIND_PRESENCE_OFFLINE) {
                        em_cluster_receive(&m);
                    } else if (m.origin == EM_BRK_ORIGIN_REMOTE
                               && m.kind == EM_BRK_KIND_REDIS_SERVER_ANSWERS) {
                        em_rreq_answers(&m);
                    } else if (!em_bus.starting || m.kind != EM_CMD_REPLY) {
                        em_cmd_receive(&m);
                    }
                } else {
                    em_log(EM_LOG_ERR, 0, "a malformed command record (%zu bytes) from the broker "
                           "was dropped", len);
                }
            }
        }
        if (em_ring_space_notify_needed(&em_bus.down)) {
            em_ring_bell_ring(em_bus.broker_bell);
        }
        if (em_ring_wait_prepare(&em_bus.down) == EM_OK) {
            return;
        }
    }
    em_ring_bell_ring(em_bus.bell);     /* still more: come back after other events */
}

static void
em_bus_bell_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    em_ring_bell_drain(em_bus.bell);
    em_ring_wait_done(&em_bus.down);
    em_ring_space_wait_done(&em_bus.up);
    em_bus_flush();
    em_bus_consume();
}

int
em_bus_init(int shm_fd, int bell, int broker_bell)
{
    if (shm_fd < 0) {
        return EM_OK;
    }
    if (em_shm_map(&em_bus.shm, shm_fd) != EM_OK
        || em_shm_ring(&em_bus.shm, em_loop.slot, EM_SHM_UP, &em_bus.up) != EM_OK
        || em_shm_ring(&em_bus.shm, em_loop.slot, EM_SHM_DOWN, &em_bus.down) != EM_OK) {
        em_log(EM_LOG_ERR, 0, "cannot attach to the broker's rings");
        return EM_ERROR;
    }
    em_bus.bell = bell;
    em_bus.broker_bell = broker_bell;
    em_bus.rec_cap = em_ring_max_payload(&em_bus.down);
    em_bus.rec = malloc(em_bus.rec_cap);
    em_bus.bell_ev = event_new(em_loop.base, bell, EV_READ | EV_PERSIST, em_bus_bell_cb, NULL);
    if (em_bus.rec == NULL || em_bus.bell_ev == NULL || event_add(em_bus.bell_ev, NULL) != 0) {
        em_log(EM_LOG_ERR, 0, "cannot set up the broker bell");
        return EM_ERROR;
    }
    /* Our sockets died with the previous worker in this slot, if any. */
    em_bus.filter = em_shm_filter(&em_bus.shm, em_loop.slot);
    for (unsigned i = 0; i < EM_SHM_FILTER_SLOTS; i++) {
        __atomic_store_n(&em_bus.filter[i], 0, __ATOMIC_RELEASE);
    }
    em_bus.active = 1;
    /* Whatever the broker queued for this slot before we ran is for
     * sockets that are gone: read it through (a command gets our empty
     * part, so that its asker need not wait for its timeout). */
    em_bus.starting = 1;
    em_bus_consume();
    em_bus.starting = 0;
    return EM_OK;
}

void
em_bus_key_add(const char *nsp, size_t nsp_len, const char *room, size_t room_len)
{
    if (em_bus.active) {
        uint16_t *c = &em_bus.filter[em_brk_key_hash(nsp, nsp_len, room, room_len)];
        uint16_t  v = __atomic_load_n(c, __ATOMIC_RELAXED);
        if (v != UINT16_MAX) {
            /* Published before the join is acknowledged to anyone. */
            __atomic_store_n(c, (uint16_t) (v + 1), __ATOMIC_RELEASE);
        }
    }
}

void
em_bus_key_del(const char *nsp, size_t nsp_len, const char *room, size_t room_len)
{
    if (em_bus.active) {
        uint16_t *c = &em_bus.filter[em_brk_key_hash(nsp, nsp_len, room, room_len)];
        uint16_t  v = __atomic_load_n(c, __ATOMIC_RELAXED);
        if (v != 0 && v != UINT16_MAX) {
            __atomic_store_n(c, (uint16_t) (v - 1), __ATOMIC_RELEASE);
        }
    }
}

int
em_bus_ring_stats(unsigned slot, int up, em_ring_stats_t *out)
{
    em_ring_t r;

    if (!em_bus.active || slot >= em_loop.nworkers
        || em_shm_ring(&em_bus.shm, slot, up ? EM_SHM_UP : EM_SHM_DOWN, &r) != EM_OK) {
        return EM_ERROR;
    }
    em_ring_stats(&r, out);
    return EM_OK;
}

int
em_bus_active(void)
{
    return em_bus.active;
}

size_t
em_bus_max_record(void)
{
    return em_bus.active ? em_ring_max_payload(&em_bus.up) : SIZE_MAX;
}

int
em_bus_send_cmd(const em_brk_cmd_msg_t *m)
{
    em_bus_pending_t *p;
    size_t            len;

    if (!em_bus.active) {
        return EM_ERROR;
    }
    if (em_brkcmd_size(m, &len) != EM_OK || len > em_ring_max_payload(&em_bus.up)) {
        em_log(EM_LOG_ERR, 0, "a command of %zu bytes is too large for the other workers",
               m->data.len);
        return EM_ERROR;
    }
    if ((p = em_bus_slot(len)) == NULL) {
        return EM_ERROR;
    }
    if (em_brkcmd_encode(m, p->data, len, &p->len) != EM_OK) {
        free(p);
        return EM_ERROR;
    }
    em_bus_enqueue(p, EM_BRK_REC_CMD);
    return EM_OK;
}

void
em_bus_counts(uint64_t *received, uint64_t *published)
{
    em_ring_stats_t up, down;

    *received = *published = 0;
    if (em_bus.active) {
        em_ring_stats(&em_bus.down, &down);
        em_ring_stats(&em_bus.up, &up);
        *received = down.read;
        *published = up.written;
    }
}
