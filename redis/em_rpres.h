/*
 * em_rpres.h - presence across hosts: the messages emitd's brokers publish
 * to each other on <key>-presence# (emitd's own format: Socket.IO's
 * adapters have no presence).
 *
 * A message is the MessagePack array
 *
 *     ["emitd-presence", 1, uid, seq, flags, target, [entry, ...]]
 *
 * uid is the sending broker's, seq counts its messages (1, 2, ...), flags
 * are EM_RPRES_*, target is the uid a SYNC asks (or "" for every host).
 * An entry is one of the sender's shares, as a whole (not a change):
 *
 *     [0, key, count, status, connectedAt, lastSeen, info]   a user
 *     [1, key, count]                                        a room
 *     [2, key, count, until, blocked]                        a rate-limit key
 *
 * (a rate-limit key's hits in the sender's window, which ends at until, and
 * its block: ms since the epoch, 0 for none),
 * with key and info as bin; count 0 means the sender has none left, and
 * a user's status 4 (EM_RPRES_UNREPORTED) with count 0 that its last
 * connection on the sender closed while another host had one, so the
 * sender reported no offline.
 */
#ifndef EM_RPRES_H
#define EM_RPRES_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "em_core.h"

#define EM_RPRES_RESET 0x1      /* a full list begins: the sender's shares it does not
                                 * name are gone (at its EM_RPRES_END) */
#define EM_RPRES_SYNC  0x2      /* send me (target) a full list */
#define EM_RPRES_END   0x4      /* the last message of a full list */
#define EM_RPRES_BYE   0x4      /* the sender stops: forget its shares */

#define EM_RPRES_UNREPORTED 4

#define EM_RPRES_USER  0
#define EM_RPRES_ROOM  1
#define EM_RPRES_LIMIT 2

typedef struct {
    int      type;              /* EM_RPRES_USER, _ROOM or _LIMIT */
    em_str_t key;
    uint32_t count;
    int      status;            /* 0 offline .. 3 busy, or EM_RPRES_UNREPORTED */
    int64_t  connected_at;
    int64_t  last_seen;
    em_str_t info;
    int64_t  until;             /* a limit's */
    int64_t  blocked;
} em_rpres_ent_t;

/* Entries packed for one message. */
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer  pk;
    size_t          n;
} em_rpres_out_t;

void   em_rpres_out_init(em_rpres_out_t *o);
void   em_rpres_out_add(em_rpres_out_t *o, const em_rpres_ent_t *e);
/* Bytes packed so far. */
size_t em_rpres_out_size(const em_rpres_out_t *o);
/* The message with the entries added so far (malloc'd, *msg); the entries
 * are emptied for the next one. EM_OK or EM_ERROR (out of memory). */
int    em_rpres_out_finish(em_rpres_out_t *o, em_str_t uid, uint64_t seq, unsigned flags,
                           em_str_t target, char **msg, size_t *len);
void   em_rpres_out_free(em_rpres_out_t *o);

/* A message decoded; the strings are slices of the message's bytes. */
typedef struct {
    em_str_t        uid, target;
    uint64_t        seq;
    unsigned        flags;
    em_rpres_ent_t *v;
    size_t          n;
} em_rpres_t;

/* EM_OK; EM_DECLINED when it has more than max_entries entries, or a key
 * over max_key or an info over max_info bytes; EM_ERROR when it is not
 * such a message. Every count is checked against the message's length
 * before anything is allocated (em_rmsg_scan). */
int  em_rpres_decode(const char *buf, size_t len, size_t max_entries, size_t max_key,
                     size_t max_info, em_rpres_t *m);
void em_rpres_free(em_rpres_t *m);

#endif
