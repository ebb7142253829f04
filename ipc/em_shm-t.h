/*
 * em_shm-t.h - layouts shared by the master, the broker and the workers.
 *
 * The shared segment (a memfd the master creates before it forks anyone, so
 * a restarted broker or worker maps the same bytes again) holds a header and
 * then, for every worker slot, two rings (em_ring-t.h): "up" (worker ->
 * broker) and "down" (broker -> worker). Records on the rings are
 * versioned structs (em_brkrec-t.h), each followed by variable parts whose
 * lengths the struct gives; every field is validated on receipt.
 */
#ifndef EM_SHM_T_H
#define EM_SHM_T_H

#include <stddef.h>
#include <stdint.h>

#include "em_brkrec-t.h"

#define EM_SHM_MAGIC         0x454d5348u      /* "EMSH" */
#define EM_SHM_VERSION       3
#define EM_SHM_HDR_SIZE      64
#define EM_SHM_RING_CAPACITY (4u * 1024 * 1024)

/*
 * The record the broker is relaying, written only by the broker (each field
 * with a release store, in the order below) so that one killed in the middle
 * neither loses the record nor gives it twice to a worker. The record stays
 * on its up ring until every down ring has it; the broker then consumes it
 * and clears `active`. For each destination j in turn it stores cur = NONE,
 * cur_tail = down[j]'s tail, cur = j, writes, then done = j + 1. A restarted
 * broker that finds `active` with the same record at the front of up[origin]
 * resumes at `done`, or after `cur` if down[cur]'s tail has moved from
 * cur_tail (that write committed), or at `cur` if it has not.
 */
#define EM_SHM_FAN_NONE UINT32_MAX
typedef struct {
    uint32_t active;        /* 1 while a record is being relayed */
    uint32_t origin;        /* the worker slot whose up ring holds it */
    uint64_t up_head;       /* its position in that ring */
    uint32_t done;          /* destinations below this have it, or did not want it */
    uint32_t cur;           /* the destination being written, or EM_SHM_FAN_NONE */
    uint64_t cur_tail;      /* that destination's down ring tail before the write */
} em_shm_fan_t;

typedef struct {
    uint32_t     magic;     /* EM_SHM_MAGIC */
    uint16_t     version;   /* EM_SHM_VERSION */
    uint16_t     nworkers;
    uint64_t     ring_size; /* bytes of one ring mapping (header + data) */
    em_shm_fan_t fan;
    uint8_t      pad[EM_SHM_HDR_SIZE - 16 - sizeof(em_shm_fan_t)];
} em_shm_hdr_t;

_Static_assert(sizeof(em_shm_fan_t) == 32, "em_shm_fan_t layout changed");
_Static_assert(sizeof(em_shm_hdr_t) == EM_SHM_HDR_SIZE, "em_shm_hdr_t layout changed");
_Static_assert(offsetof(em_shm_hdr_t, ring_size) == 8, "em_shm_hdr_t layout changed");
_Static_assert(offsetof(em_shm_hdr_t, fan) == 16, "em_shm_hdr_t layout changed");

#define EM_SHM_UP   0
#define EM_SHM_DOWN 1

/* Offset of ring `dir` of worker `slot` in a segment with rings of ring_size. */
#define EM_SHM_RING_OFFSET(slot, dir, ring_size) \
    (EM_SHM_HDR_SIZE + ((uint64_t) (slot) * 2 + (dir)) * (ring_size))

/*
 * Membership filters, after the rings: per worker, EM_SHM_FILTER_SLOTS
 * counters. Slot em_brk_key_hash(nsp, room) counts the rooms of that worker
 * (a socket's own id counts as a room) that hash there, and slot
 * em_brk_key_hash(nsp, NULL) the namespaces with sockets (a parameterised
 * namespace's instances also count under its pattern, "/device/:id", which
 * is how a broadcast to every instance is routed). Only the worker
 * writes its filter (it zeroes it when it starts); the broker reads them to
 * forward a broadcast only to workers that may have members. A collision
 * only forwards a record that the worker then drops; a counter that reaches
 * its maximum stays there.
 */
#define EM_SHM_FILTER_SLOTS 65536u
typedef uint16_t em_shm_filter_t[EM_SHM_FILTER_SLOTS];

#define EM_SHM_FILTER_OFFSET(slot, nworkers, ring_size) \
    (EM_SHM_RING_OFFSET(0, 0, ring_size) + (uint64_t) (nworkers) * 2 * (ring_size) \
     + (uint64_t) (slot) * sizeof(em_shm_filter_t))

_Static_assert(sizeof(em_shm_filter_t) == 2 * EM_SHM_FILTER_SLOTS, "filter layout changed");

/* Ring records: the broadcast record (EM_BRK_REC_BCAST, em_brk_bcast_t and
 * what follows it) is laid out in em_brkrec-t.h and read and written only by
 * the codec of em_brkrec.h. */

#endif
