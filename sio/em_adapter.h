/*
 * em_adapter.h - rooms and broadcasts of a namespace.
 *
 * This is the seam the broker-backed, cluster-wide version replaces: callers
 * only join, leave, list and broadcast. This version knows the sockets of
 * this worker.
 */
#ifndef EM_ADAPTER_H
#define EM_ADAPTER_H

#include "em_buf.h"
#include "em_core.h"

typedef struct em_nsp         em_nsp_t;
typedef struct em_sio_socket  em_sio_socket_t;
typedef struct em_room        em_room_t;
typedef struct em_member      em_member_t;

/* Who a broadcast goes to: members of any of `rooms` (every socket of the
 * namespace when nrooms is 0), minus members of `except`, minus `skip`. */
typedef struct {
    const em_str_t         *rooms;
    size_t                  nrooms;
    const em_str_t         *except;
    size_t                  nexcept;
    const em_sio_socket_t  *skip;
    uint64_t                offset;     /* its recovery log offset, from another worker (or 0) */
    int                     vol;        /* volatile: only to sockets that can take it now */
} em_bcast_t;

/* The longest room name (the broker's records carry 16-bit lengths). */
#define EM_ROOM_NAME_MAX 65535

/* Join a room: EM_OK (also when a member already), EM_DECLINED when the
 * socket is in limits.rooms rooms already, EM_ERROR when the name is over
 * EM_ROOM_NAME_MAX bytes or memory ran out. */
int  em_adapter_join(em_sio_socket_t *s, em_str_t room);
void em_adapter_leave(em_sio_socket_t *s, em_str_t room);
void em_adapter_leave_all(em_sio_socket_t *s);

/* Call fn for each room the socket is in (not counting its own id). */
void em_adapter_socket_rooms(const em_sio_socket_t *s,
                             void (*fn)(const char *room, size_t len, void *arg), void *arg);

/* Send the packet once to every matching socket of nsp. */
void em_adapter_broadcast(em_nsp_t *nsp, const em_bcast_t *b, const em_pkt_t *pkt);

/* Call fn once for each socket of nsp that b selects (not CLOSED ones);
 * fn must not join, leave or remove sockets (collect them first). */
void em_adapter_select(em_nsp_t *nsp, const em_bcast_t *b, void (*fn)(em_sio_socket_t *s, void *arg),
                       void *arg);

/* Call fn for each room of nsp with its members in this worker (not the
 * rooms of socket ids). */
void em_adapter_rooms(em_nsp_t *nsp, void (*fn)(em_nsp_t *nsp, const char *room, size_t len,
                                                size_t members, void *arg), void *arg);

/* Free every room of a namespace that is going away. */
void em_adapter_nsp_free(em_nsp_t *nsp);

#endif
