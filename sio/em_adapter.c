/*
 * em_adapter.c - rooms of this worker's namespaces.
 *
 * A room is a hash of members keyed by socket; each socket also chains its
 * memberships so leaving everything costs what it holds. A broadcast stamps
 * each socket it reaches with a per-worker counter, so a socket in two of the
 * target rooms gets the packet once, and except-rooms are stamped first.
 */
#include <stdlib.h>
#include <string.h>

#include "em_adapter.h"
#include "em_bus.h"
#include "em_cluster.h"
#include "em_log.h"
#include "em_loop.h"
#include "em_socketio.h"

struct em_room {
    char            *name;
    size_t           len;
    em_member_t     *members;   /* uthash by socket pointer */
    size_t           nmembers;
    UT_hash_handle   hh;
};

struct em_member {
    em_sio_socket_t *sock;      /* hash key */
    em_room_t       *room;
    em_member_t     *next;      /* in the socket's chain */
    UT_hash_handle   hh;
};

static uint32_t em_adapter_stamp;

static em_room_t *
em_room_find(em_nsp_t *nsp, em_str_t name)
{
    em_room_t *r;

    HASH_FIND(hh, nsp->rooms, name.data, name.len, r);
    return r;
}

int
em_adapter_join(em_sio_socket_t *s, em_str_t name)
{
    em_nsp_t    *nsp = s->nsp;
    em_room_t   *r;
    em_member_t *m;

    if (name.len > EM_ROOM_NAME_MAX) {
        return EM_ERROR;
    }
    r = em_room_find(nsp, name);
    if (r != NULL) {
        HASH_FIND_PTR(r->members, &s, m);
        if (m != NULL) {
            return EM_OK;
        }
    }
    if (s->nrooms >= em_loop.conf->limits.rooms) {
        return EM_DECLINED;
    }
    if (r == NULL) {
        r = calloc(1, sizeof(*r));
        if (r == NULL || (r->name = malloc(name.len + 1)) == NULL) {
            free(r);
            return EM_ERROR;
        }
        memcpy(r->name, name.data, name.len);
        r->name[name.len] = '\0';
        r->len = name.len;
        HASH_ADD_KEYPTR(hh, nsp->rooms, r->name, r->len, r);
        em_bus_key_add(nsp->name, nsp->name_len, r->name, r->len);
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        if (r->nmembers == 0) {
            em_bus_key_del(nsp->name, nsp->name_len, r->name, r->len);
            HASH_DELETE(hh, nsp->rooms, r);
            free(r->name);
            free(r);
        }
        return EM_ERROR;
    }
    m->sock = s;
    m->room = r;
    m->next = s->rooms;
    s->rooms = m;
    HASH_ADD_PTR(r->members, sock, m);
    r->nmembers++;
    s->nrooms++;
    em_cluster_room_joined(s, (em_str_t) { r->name, r->len });
    if (em_sio_watch.joined != NULL && s->state == EM_SIO_S_OPEN) {
        em_sio_watch.joined(s, (em_str_t) { r->name, r->len });
    }
    return EM_OK;
}

static void
em_member_remove(em_nsp_t *nsp, em_member_t *m)
{
    em_room_t *r = m->room;

    em_cluster_room_left(m->sock, (em_str_t) { r->name, r->len });
    if (em_sio_watch.left != NULL && m->sock->state == EM_SIO_S_OPEN) {
        em_sio_watch.left(m->sock, (em_str_t) { r->name, r->len });
    }
    m->sock->nrooms--;
    HASH_DELETE(hh, r->members, m);
    free(m);
    if (--r->nmembers == 0) {
        em_bus_key_del(nsp->name, nsp->name_len, r->name, r->len);
        HASH_DELETE(hh, nsp->rooms, r);
        free(r->name);
        free(r);
    }
}

void
em_adapter_leave(em_sio_socket_t *s, em_str_t name)
{
    for (em_member_t **pm = &s->rooms; *pm != NULL; pm = &(*pm)->next) {
        em_member_t *m = *pm;
        if (m->room->len == name.len && memcmp(m->room->name, name.data, name.len) == 0) {
            *pm = m->next;
            em_member_remove(s->nsp, m);
            return;
        }
    }
}

void
em_adapter_leave_all(em_sio_socket_t *s)
{
    while (s->rooms != NULL) {
        em_member_t *m = s->rooms;
        s->rooms = m->next;
        em_member_remove(s->nsp, m);
    }
}

void
em_adapter_socket_rooms(const em_sio_socket_t *s,
                        void (*fn)(const char *room, size_t len, void *arg), void *arg)
{
    for (const em_member_t *m = s->rooms; m != NULL; m = m->next) {
        fn(m->room->name, m->room->len, arg);
    }
}

static inline void
em_adapter_deliver(em_sio_socket_t *s, uint32_t stamp, const em_bcast_t *b, const em_pkt_t *pkt)
{
    if (s->stamp == stamp || s->state == EM_SIO_S_CLOSED) {
        return;
    }
    if (b->vol && !em_sio_socket_ready(s)) {
        s->stamp = stamp;       /* volatile: not for a client that cannot take it now */
        return;
    }
    if (b->offset != 0 && b->offset <= s->replayed) {
        /* Logged before the socket recovered here: it was in the replay. */
        s->stamp = stamp;
        return;
    }
    s->stamp = stamp;
    em_stat_add(em_loop.stats->deliveries, 1);
    em_sio_socket_send(s, pkt);
}

/*
 * Call fn once for each socket of nsp that b selects (the walk of a
 * broadcast). Inlined into both callers, so a broadcast's delivery is a
 * direct call.
 */
static inline void
em_adapter_walk(em_nsp_t *nsp, const em_bcast_t *b,
                void (*fn)(em_sio_socket_t *s, uint32_t stamp, const em_bcast_t *b, void *arg),
                void *arg)
{
    uint32_t stamp = ++em_adapter_stamp;

    if (stamp == 0) {
        stamp = ++em_adapter_stamp;    /* 0 is every new socket's stamp */
    }
    /* Stamping the excluded sockets first makes the loops below skip them. */
    if (b->skip != NULL) {
        ((em_sio_socket_t *) b->skip)->stamp = stamp;
    }
    for (size_t i = 0; i < b->nexcept; i++) {
        em_room_t       *r = em_room_find(nsp, b->except[i]);
        em_sio_socket_t *s;
        if (r != NULL) {
            for (em_member_t *m = r->members; m != NULL; m = m->hh.next) {
                m->sock->stamp = stamp;
            }
        }
        HASH_FIND(hh, nsp->sockets, b->except[i].data, b->except[i].len, s);
        if (s != NULL) {
            s->stamp = stamp;
        }
    }
    if (b->nrooms == 0) {
        for (em_sio_socket_t *s = nsp->sockets, *next; s != NULL; s = next) {
            next = s->hh.next;
            fn(s, stamp, b, arg);
        }
        return;
    }
    for (size_t i = 0; i < b->nrooms; i++) {
        em_room_t       *r = em_room_find(nsp, b->rooms[i]);
        em_sio_socket_t *s;
        if (r != NULL) {
            for (em_member_t *m = r->members, *next; m != NULL; m = next) {
                next = m->hh.next;
                fn(m->sock, stamp, b, arg);
            }
        }
        /* Every socket is also in the room named by its own id. */
        HASH_FIND(hh, nsp->sockets, b->rooms[i].data, b->rooms[i].len, s);
        if (s != NULL) {
            fn(s, stamp, b, arg);
        }
    }
}

static void
em_adapter_deliver_cb(em_sio_socket_t *s, uint32_t stamp, const em_bcast_t *b, void *arg)
{
    em_adapter_deliver(s, stamp, b, arg);
}

void
em_adapter_broadcast(em_nsp_t *nsp, const em_bcast_t *b, const em_pkt_t *pkt)
{
    em_adapter_walk(nsp, b, em_adapter_deliver_cb, (void *) pkt);
}

typedef struct {
    void (*fn)(em_sio_socket_t *s, void *arg);
    void  *arg;
} em_adapter_sel_t;

static void
em_adapter_select_cb(em_sio_socket_t *s, uint32_t stamp, const em_bcast_t *b, void *arg)
{
    em_adapter_sel_t *sel = arg;

    (void) b;
    if (s->stamp != stamp && s->state != EM_SIO_S_CLOSED) {
        s->stamp = stamp;
        sel->fn(s, sel->arg);
    }
}

void
em_adapter_select(em_nsp_t *nsp, const em_bcast_t *b, void (*fn)(em_sio_socket_t *s, void *arg),
                  void *arg)
{
    em_adapter_sel_t sel = { fn, arg };

    em_adapter_walk(nsp, b, em_adapter_select_cb, &sel);
}

void
em_adapter_rooms(em_nsp_t *nsp, void (*fn)(em_nsp_t *nsp, const char *room, size_t len,
                                           size_t members, void *arg), void *arg)
{
    for (em_room_t *r = nsp->rooms; r != NULL; r = r->hh.next) {
        fn(nsp, r->name, r->len, r->nmembers, arg);
    }
}

void
em_adapter_nsp_free(em_nsp_t *nsp)
{
    em_room_t *r, *tmp;

    HASH_ITER(hh, nsp->rooms, r, tmp) {
        em_member_t *m, *mt;
        HASH_ITER(hh, r->members, m, mt) {
            HASH_DELETE(hh, r->members, m);
            free(m);
        }
        em_bus_key_del(nsp->name, nsp->name_len, r->name, r->len);
        HASH_DELETE(hh, nsp->rooms, r);
        free(r->name);
        free(r);
    }
}
