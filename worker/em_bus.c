/*
 * em_bus.c - the worker's end of its two rings to the broker.
 *
 * Publishing serialises an em_brk_bcast_t record and writes it to the "up"
 * ring; if the ring is full the record waits in a local queue (kept in
 * order, flushed when the broker rings our bell) so the event loop never
 * blocks. Records arriving on the "down" ring are delivered to this worker's
 * sockets with the same adapter code as local broadcasts.
 */
#include <stdlib.h>
#include <string.h>

#include "em_broker.h"
#include "em_bus.h"
#include "em_log.h"
#include "em_socketio.h"
#include "em_worker.h"

/* Broadcasts waiting for room on the ring, at most (then dropped, logged). */
#define EM_BUS_QUEUE_LIMIT (64u * 1024 * 1024)

typedef struct em_bus_pending {
    struct em_bus_pending *next;
    size_t                 len;
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
} em_bus;

/* Write queued records, oldest first; stop at the first that does not fit. */
static void
em_bus_flush(void)
{
    int wrote = 0;

    while (em_bus.q_head != NULL) {
        em_bus_pending_t *p = em_bus.q_head;
        if (em_ring_write(&em_bus.up, EM_BRK_REC_BCAST, p->data, p->len) != EM_OK) {
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

static void
em_bus_put16(unsigned char **p, size_t v)
{
    uint16_t x = (uint16_t) v;
    memcpy(*p, &x, 2);
    *p += 2;
}

void
em_bus_publish(em_str_t nsp, long conf_index, const em_bcast_t *b, em_str_t data,
               em_buf_t *const *att, size_t natt)
{
    em_brk_bcast_t    h;
    size_t            len = sizeof(h) + nsp.len + data.len;
    em_bus_pending_t *p;
    unsigned char    *w;

    if (!em_bus.active) {
        return;
    }
    for (size_t i = 0; i < b->nrooms; i++) {
        len += 2 + EM_MIN(b->rooms[i].len, 65535u);
    }
    for (size_t i = 0; i < b->nexcept; i++) {
        len += 2 + EM_MIN(b->except[i].len, 65535u);
    }
    for (size_t i = 0; i < natt; i++) {
        len += 4 + att[i]->len;
    }
    if (len > em_ring_max_payload(&em_bus.up) || b->nrooms > 65535 || b->nexcept > 65535
        || nsp.len > 65535) {
        em_log(EM_LOG_ERR, 0, "a broadcast of %zu bytes is too large for the other workers", len);
        return;
    }
    if (em_bus.q_bytes + len > EM_BUS_QUEUE_LIMIT) {
        /* The broker has not taken anything for a long while: say so, once
         * per thousand, rather than grow without bound. */
        if (em_bus.dropped++ % 1000 == 0) {
            em_log(EM_LOG_ERR, 0, "the broker is not keeping up: %llu broadcasts for other workers "
                   "dropped so far (%zu bytes waiting)", (unsigned long long) em_bus.dropped,
                   em_bus.q_bytes);
        }
        return;
    }
    p = malloc(sizeof(*p) + len);
    if (p == NULL) {
        em_log(EM_LOG_ERR, 0, "malloc() of a %zu-byte broadcast failed", len);
        return;
    }
    memset(&h, 0, sizeof(h));
    h.version = EM_BRK_VERSION;
    h.flags = conf_index >= 0 ? EM_BRK_F_CONF : 0;
    h.origin = (uint16_t) em_w.slot;
    h.nsp_len = (uint16_t) nsp.len;
    h.conf_index = conf_index >= 0 ? (uint32_t) conf_index : 0;
    h.nrooms = (uint16_t) b->nrooms;
    h.nexcept = (uint16_t) b->nexcept;
    h.natt = (uint32_t) natt;
    h.data_len = (uint32_t) data.len;
    w = p->data;
    memcpy(w, &h, sizeof(h));
    w += sizeof(h);
    memcpy(w, nsp.data, nsp.len);
    w += nsp.len;
    for (size_t i = 0; i < b->nrooms; i++) {
        size_t l = EM_MIN(b->rooms[i].len, 65535u);
        em_bus_put16(&w, l);
        memcpy(w, b->rooms[i].data, l);
        w += l;
    }
    for (size_t i = 0; i < b->nexcept; i++) {
        size_t l = EM_MIN(b->except[i].len, 65535u);
        em_bus_put16(&w, l);
        memcpy(w, b->except[i].data, l);
        w += l;
    }
    memcpy(w, data.data, data.len);
    w += data.len;
    for (size_t i = 0; i < natt; i++) {
        uint32_t l = (uint32_t) att[i]->len;
        memcpy(w, &l, 4);
        memcpy(w + 4, att[i]->data, l);
        w += 4 + l;
    }
    p->len = len;
    p->next = NULL;
    if (em_bus.q_tail) {
        em_bus.q_tail->next = p;
    } else {
        em_bus.q_head = p;
    }
    em_bus.q_tail = p;
    em_bus.q_bytes += len;
    em_bus_flush();
}

/* Read n bytes of a record; NULL if it is shorter than it claims. */
static const unsigned char *
em_bus_take(const unsigned char **p, const unsigned char *end, size_t n)
{
    const unsigned char *r = *p;

    if ((size_t) (end - r) < n) {
        return NULL;
    }
    *p = r + n;
    return r;
}

static int
em_bus_take_list(const unsigned char **p, const unsigned char *end, em_str_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const unsigned char *l = em_bus_take(p, end, 2);
        uint16_t             len;
        if (l == NULL) {
            return EM_ERROR;
        }
        memcpy(&len, l, 2);
        out[i].data = (const char *) em_bus_take(p, end, len);
        out[i].len = len;
        if (out[i].data == NULL) {
            return EM_ERROR;
        }
    }
    return EM_OK;
}

/* Deliver one broadcast record from another worker to our sockets. */
static void
em_bus_deliver(const unsigned char *rec, size_t len)
{
    const unsigned char *p = rec, *end = rec + len;
    em_brk_bcast_t       h;
    em_bcast_t           b = { 0 };
    em_str_t             nsp, data;
    em_str_t            *rooms = NULL;
    em_buf_t           **att = NULL;
    int                  ok = 0;

    if (len < sizeof(h)) {
        goto bad;
    }
    memcpy(&h, p, sizeof(h));
    p += sizeof(h);
    if (h.version != EM_BRK_VERSION || h.natt > EM_SIO_MAX_ATTACHMENTS
        || ((h.flags & EM_BRK_F_CONF) && h.conf_index >= em_w.conf->nnsps)) {
        goto bad;
    }
    rooms = calloc((size_t) h.nrooms + h.nexcept + 1, sizeof(em_str_t));
    att = calloc((size_t) h.natt + 1, sizeof(em_buf_t *));
    if (rooms == NULL || att == NULL) {
        goto bad;
    }
    nsp.data = (const char *) em_bus_take(&p, end, h.nsp_len);
    nsp.len = h.nsp_len;
    if (nsp.data == NULL || em_bus_take_list(&p, end, rooms, h.nrooms) != EM_OK
        || em_bus_take_list(&p, end, rooms + h.nrooms, h.nexcept) != EM_OK
        || (data.data = (const char *) em_bus_take(&p, end, h.data_len)) == NULL) {
        goto bad;
    }
    data.len = h.data_len;
    for (uint32_t i = 0; i < h.natt; i++) {
        const unsigned char *l = em_bus_take(&p, end, 4);
        uint32_t             alen;
        if (l == NULL) {
            goto bad;
        }
        memcpy(&alen, l, 4);
        const unsigned char *a = em_bus_take(&p, end, alen);
        if (a == NULL || (att[i] = em_buf_copy(a, alen, 1)) == NULL) {
            goto bad;
        }
    }
    b.rooms = rooms;
    b.nrooms = h.nrooms;
    b.except = rooms + h.nrooms;
    b.nexcept = h.nexcept;
    ok = 1;
    /* A named namespace is one lookup; "every instance" walks the worker's. */
    em_nsp_t *named = (h.flags & EM_BRK_F_CONF) ? NULL : em_nsp_find(nsp.data, nsp.len);
    for (em_nsp_t *n = (h.flags & EM_BRK_F_CONF) ? em_nsp_first() : named, *next; n != NULL;
         n = next) {
        next = named ? NULL : n->hh.next;
        if (!named && n->conf_index != h.conf_index) {
            continue;
        }
        em_sio_broadcast_raw(n, &b, data, att, h.natt);
    }
bad:
    if (!ok) {
        em_log(EM_LOG_ERR, 0, "a malformed broadcast record (%zu bytes) from the broker was dropped", len);
    }
    for (uint32_t i = 0; att != NULL && i < h.natt; i++) {
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
        || em_shm_ring(&em_bus.shm, em_w.slot, EM_SHM_UP, &em_bus.up) != EM_OK
        || em_shm_ring(&em_bus.shm, em_w.slot, EM_SHM_DOWN, &em_bus.down) != EM_OK) {
        em_log(EM_LOG_ERR, 0, "cannot attach to the broker's rings");
        return EM_ERROR;
    }
    em_bus.bell = bell;
    em_bus.broker_bell = broker_bell;
    em_bus.rec_cap = em_ring_max_payload(&em_bus.down);
    em_bus.rec = malloc(em_bus.rec_cap);
    em_bus.bell_ev = event_new(em_w.base, bell, EV_READ | EV_PERSIST, em_bus_bell_cb, NULL);
    if (em_bus.rec == NULL || em_bus.bell_ev == NULL || event_add(em_bus.bell_ev, NULL) != 0) {
        em_log(EM_LOG_ERR, 0, "cannot set up the broker bell");
        return EM_ERROR;
    }
    /* Our sockets died with the previous worker in this slot, if any. */
    em_bus.filter = em_shm_filter(&em_bus.shm, em_w.slot);
    for (unsigned i = 0; i < EM_SHM_FILTER_SLOTS; i++) {
        __atomic_store_n(&em_bus.filter[i], 0, __ATOMIC_RELEASE);
    }
    em_bus.active = 1;
    /* Whatever the broker queued for this slot while we were not running
     * is for sockets that are gone: read it through. */
    em_bus_consume();
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
