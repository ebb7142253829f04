/*
 * em_chan-t.h - the message that crosses the master <-> worker channel
 * (a SOCK_SEQPACKET socketpair per worker). Fixed layout, versioned; a file
 * descriptor travels only as SCM_RIGHTS ancillary data; `len` bytes of
 * connection data that were already read from that descriptor follow the
 * header in the same datagram. Every field is validated on receipt.
 */
#ifndef EM_CHAN_T_H
#define EM_CHAN_T_H

#include <stddef.h>
#include <stdint.h>

#define EM_CHAN_MAGIC    0x454d4348u   /* "EMCH" */
#define EM_CHAN_VERSION  1
#define EM_CHAN_MAX_DATA (80 * 1024)   /* bytes of a connection's prefix */

typedef enum {
    EM_CHAN_CONN = 1,    /* master -> worker: a connection (fd + prefix) */
    EM_CHAN_HANDOFF,     /* worker -> master: this connection belongs to worker `slot` */
    EM_CHAN_LOAD,        /* worker -> master: `arg` = placed connections received << 32
                          * | Engine.IO sessions */
    EM_CHAN_DRAIN,       /* master -> worker: a reload replaced you; close your
                          * sessions (their clients reconnect to the new
                          * workers) and exit */
} em_chan_type_t;

#define EM_CHAN_SLOT_ANY  0xffff  /* HANDOFF: let the master place it */
#define EM_CHAN_F_NOROUTE 0x1   /* serve the first request here, never hand it back */
#define EM_CHAN_F_PLACED  0x2   /* the master chose this worker by load */
#define EM_CHAN_F_ADMIN   0x4   /* from the admin listener: the backend API only */
#define EM_CHAN_F_TLS     0x8   /* from a TLS listener: the worker runs the handshake */

typedef struct {
    uint32_t magic;
    uint16_t version;
    uint16_t type;       /* em_chan_type_t */
    uint16_t slot;       /* target worker slot (HANDOFF) / sender (LOAD) */
    uint16_t flags;      /* EM_CHAN_F_* */
    uint32_t len;        /* bytes following the header */
    uint64_t arg;
} em_chan_msg_t;

_Static_assert(sizeof(em_chan_msg_t) == 24, "em_chan_msg_t layout changed");
_Static_assert(offsetof(em_chan_msg_t, len) == 12, "em_chan_msg_t layout changed");
_Static_assert(offsetof(em_chan_msg_t, arg) == 16, "em_chan_msg_t layout changed");

#endif
