/*
 * em_brkrec-t.h - the layout of the broadcast record a worker puts on its
 * "up" ring for the broker, which relays it unchanged to the other workers'
 * "down" rings (em_shm-t.h). Written by em_brkrec_encode() only, read by
 * em_brkrec_decode() only (em_brkrec.h), in the byte order of the host: the
 * rings never leave the machine.
 *
 *     em_brk_bcast_t    28 bytes, fields below
 *     nsp               nsp_len bytes
 *     rooms             nrooms  x (uint16 len, len bytes)
 *     except            nexcept x (uint16 len, len bytes)
 *     data              data_len bytes: the EVENT's JSON array
 *     attachments       natt    x (uint32 len, len bytes)
 *
 * Nothing follows the last attachment: the record's length (the ring's) is
 * exactly the sum of its parts. reserved is 0, and conf_index is 0 unless
 * EM_BRK_F_CONF is set; a record that breaks any of these is refused, so a
 * decoded record always re-encodes to the same bytes.
 */
#ifndef EM_BRKREC_T_H
#define EM_BRKREC_T_H

#include <stddef.h>
#include <stdint.h>

/* Ring record types. */
#define EM_BRK_REC_BCAST 1
#define EM_BRK_REC_CMD   2      /* a command for other workers, or its reply */

#define EM_BRK_VERSION   2      /* bump on any change to this file */
#define EM_BRK_F_CONF    0x1    /* every instance of configured namespace conf_index */
#define EM_BRK_F_OFFSET  0x2    /* the data's last element is its recovery log offset */
#define EM_BRK_F_VOLATILE 0x4   /* only to sockets that can take it at once */
#define EM_BRK_F_KNOWN   (EM_BRK_F_CONF | EM_BRK_F_OFFSET | EM_BRK_F_VOLATILE)

/* The 16-bit length and count fields: a namespace, a room or except name of
 * more bytes, or more rooms or excepts than this, has no record. */
#define EM_BRK_NAME_MAX  65535u
#define EM_BRK_LIST_MAX  65535u
/* Attachments per record: as many as a Socket.IO packet may carry
 * (EM_SIO_MAX_ATTACHMENTS, asserted where both are known: sio/em_bus.c). */
#define EM_BRK_ATT_MAX   1000u

/*
 * A broadcast: the Socket.IO EVENT's JSON array once, for the receiving
 * worker to frame for its own sockets (the variable parts above follow it).
 */
typedef struct {
    uint16_t version;       /* EM_BRK_VERSION */
    uint16_t flags;         /* EM_BRK_F_* */
    uint16_t origin;        /* the worker slot it came from */
    uint16_t nsp_len;
    uint32_t conf_index;
    uint16_t nrooms;
    uint16_t nexcept;
    uint32_t natt;          /* at most EM_BRK_ATT_MAX */
    uint32_t data_len;
    uint32_t reserved;      /* 0 */
} em_brk_bcast_t;

_Static_assert(sizeof(em_brk_bcast_t) == 28, "em_brk_bcast_t layout changed");
_Static_assert(offsetof(em_brk_bcast_t, version) == 0, "em_brk_bcast_t layout changed");
_Static_assert(offsetof(em_brk_bcast_t, flags) == 2, "em_brk_bcast_t layout changed");
_Static_assert(offsetof(em_brk_bcast_t, origin) == 4, "em_brk_bcast_t layout changed");
_Static_assert(offsetof(em_brk_bcast_t, nsp_len) == 6, "em_brk_bcast_t layout changed");
_Static_assert(offsetof(em_brk_bcast_t, conf_index) == 8, "em_brk_bcast_t layout changed");
_Static_assert(offsetof(em_brk_bcast_t, nrooms) == 12, "em_brk_bcast_t layout changed");
_Static_assert(offsetof(em_brk_bcast_t, nexcept) == 14, "em_brk_bcast_t layout changed");
_Static_assert(offsetof(em_brk_bcast_t, natt) == 16, "em_brk_bcast_t layout changed");
_Static_assert(offsetof(em_brk_bcast_t, data_len) == 20, "em_brk_bcast_t layout changed");
_Static_assert(offsetof(em_brk_bcast_t, reserved) == 24, "em_brk_bcast_t layout changed");

/*
 * A command (EM_BRK_REC_CMD): something a worker asks the others to do with
 * their sockets (the backend API's join, leave, disconnect, listings, an
 * emit that waits for acks), or a worker's reply to one. The broker relays
 * it to `target` only, or to every worker but the origin (EM_BRK_ALL).
 *
 *     em_brk_cmd_t      24 bytes, fields below
 *     data              data_len bytes: the command's JSON text
 *     attachments       natt x (uint32 len, len bytes)
 */
#define EM_BRK_ALL       0xffffu
/* The origin of a broadcast that came from another host (through Redis). */
#define EM_BRK_ORIGIN_REMOTE 0xfffeu
/* The target of a command for the broker itself. */
#define EM_BRK_BROKER    0xfffdu
/* Commands between the broker and a worker about Redis; data is a name, a
 * NUL, then a message as Redis carries it. */
#define EM_BRK_KIND_REDIS_REQUEST 0x7001u   /* broker -> a worker: namespace, an adapter's request */
#define EM_BRK_KIND_REDIS_PUBLISH 0x7002u   /* a worker -> the broker: channel, what to publish */
#define EM_BRK_KIND_REDIS_SERVER_EMIT 0x7003u /* a worker -> the broker: namespace, JSON [event, ...] */
#define EM_BRK_KIND_PRESENCE_OFFLINE  0x7004u /* broker -> a worker: namespace, the user offline on
                                               * every host, for its scripts' on_presence */
#define EM_BRK_KIND_REDIS_STORE       0x7005u /* a worker -> the broker: "", a store write
                                               * (redis/em_rstore.h, uid "") for the other hosts */
#define EM_BRK_KIND_REDIS_SERVER_ASK  0x7006u /* a worker -> the broker: namespace, requestId NUL
                                               * JSON [event, ...]: a server-side event with an ack */
#define EM_BRK_KIND_REDIS_SERVER_ANSWERS 0x7007u /* broker -> the asking worker: requestId, JSON
                                                  * {"err": null | text, "responses": [...]} */

typedef struct {
    uint16_t version;       /* EM_BRK_VERSION */
    uint16_t kind;          /* what to do: the worker's layer above defines them (not 0) */
    uint16_t origin;        /* the worker slot asking; a reply goes back to it */
    uint16_t target;        /* a worker slot, or EM_BRK_ALL */
    uint32_t data_len;
    uint32_t natt;          /* at most EM_BRK_ATT_MAX */
    uint64_t req;           /* the request's id at its origin */
} em_brk_cmd_t;

_Static_assert(sizeof(em_brk_cmd_t) == 24, "em_brk_cmd_t layout changed");
_Static_assert(offsetof(em_brk_cmd_t, target) == 6, "em_brk_cmd_t layout changed");
_Static_assert(offsetof(em_brk_cmd_t, data_len) == 8, "em_brk_cmd_t layout changed");
_Static_assert(offsetof(em_brk_cmd_t, natt) == 12, "em_brk_cmd_t layout changed");
_Static_assert(offsetof(em_brk_cmd_t, req) == 16, "em_brk_cmd_t layout changed");

#endif
