/*
 * em_rmsg.h - the broadcasts of Socket.IO's Redis adapter on the wire
 * (@socket.io/redis-adapter 8, @socket.io/redis-emitter 5), mapped to and
 * from emitd's broadcasts.
 *
 * A broadcast is published on channel <key>#<nsp># (or <key>#<nsp>#<room>#
 * when it names exactly one room) as the MessagePack (notepack.io) array
 *
 *     [uid, {type: 2, data: [event, ...args], nsp}, {rooms, except, flags}]
 *
 * where the arguments are MessagePack values, binary ones as bin, and flags
 * may hold volatile. emitd keeps an event as its Socket.IO JSON array with
 * each binary argument replaced by {"_placeholder": true, "num": n} and
 * the buffers beside it: em_rmsg_decode() and em_rmsg_encode() convert one
 * into the other, with msgpack-c and jansson. Everything decoded is checked
 * first (em_rmsg_scan()): no count from the message sizes an allocation
 * before it is known to fit in the message's own bytes.
 */
#ifndef EM_RMSG_H
#define EM_RMSG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "em_core.h"

/* Nesting of a message: msgpack-c's unpacker stack (MSGPACK_EMBED_STACK_SIZE).
 * The outer array, the packet and its data count, so an event's arguments
 * may nest EM_RMSG_DEPTH_MAX - 3 deep. */
#define EM_RMSG_DEPTH_MAX 32

typedef struct {
    unsigned  max_depth;        /* nesting of the event's data (<= EM_RMSG_DEPTH_MAX - 3) */
    size_t    max_att;          /* binary values in the data */
    size_t    max_rooms;        /* rooms, and except-rooms */
    size_t    max_name;         /* bytes of a namespace, room or uid */
} em_rmsg_limits_t;

/* A broadcast decoded. The strings and attachments are slices of the
 * message given to em_rmsg_decode() (keep it while they are used); data,
 * att, rooms and except are the decoder's (em_rmsg_free()). */
typedef struct {
    em_str_t   uid;
    em_str_t   nsp;             /* "/" when the packet has none */
    char      *data;            /* the EVENT's JSON array, placeholders for binaries */
    size_t     data_len;
    em_str_t  *att;
    size_t     natt;
    em_str_t  *rooms;
    size_t     nrooms;
    em_str_t  *except;
    size_t     nexcept;
    int        vol;             /* flags.volatile */
    em_str_t   request_id;      /* em_rmsg_decode_request(): its requestId */
    int64_t    timeout;         /* ... and flags.timeout (ms, 0: none) */
    char      *own;             /* em_rmsg_decode_stream(): bytes the slices may point into */
    json_t    *own_json;        /* ... or the JSON they point into */
} em_rmsg_t;

/*
 * The end of the one MessagePack value at buf: EM_OK and *end, EM_AGAIN
 * when it runs past len, EM_ERROR for a byte that begins no value (0xc1)
 * or nesting past max_depth. Each array or map count is checked against
 * the bytes left, so a decoder's allocation is bounded by len.
 */
int  em_rmsg_scan(const char *buf, size_t len, unsigned max_depth, size_t *end);

/*
 * Decode a broadcast: EM_OK, EM_DECLINED when it is well-formed but over
 * a limit (or not an EVENT: another packet type), EM_ERROR when it is not
 * a broadcast of this shape (bytes after it, a map key that is not a
 * string, a string that is not UTF-8, ...). *m is only set on EM_OK.
 */
int  em_rmsg_decode(const char *buf, size_t len, const em_rmsg_limits_t *lim, em_rmsg_t *m);
/* The same for a broadcast that waits for acks, as the adapter requests it
 * of its peers: {uid, requestId, type: 7, packet, opts: {rooms, except,
 * flags: {timeout}}} (EM_DECLINED for another request type). */
int  em_rmsg_decode_request(const char *buf, size_t len, const em_rmsg_limits_t *lim, em_rmsg_t *m);
void em_rmsg_free(em_rmsg_t *m);

/* A client's ack to such a broadcast, as the adapter answers it:
 * {type: 9, requestId, packet: arg}, arg's {"$binary": base64} as bin.
 * EM_OK and a malloc'd *buf, or EM_ERROR. */
int  em_rmsg_encode_ack(em_str_t request_id, const json_t *arg, char **buf, size_t *len);

/* A server-side event to the other servers, as a Node server's
 * io.serverSideEmit() publishes it: {"uid", "type": 6, "data": data}, where
 * data is the JSON text of [event, ...args]. EM_OK and a malloc'd *buf, or
 * EM_ERROR (data not such an array, out of memory). */
int  em_rmsg_encode_server_emit(em_str_t uid, const char *data, size_t dlen, char **buf, size_t *len);
/* The same with an ack: {uid, requestId, type: 6, data}, as
 * io.serverSideEmitWithAck() publishes it. */
int  em_rmsg_encode_server_ask(em_str_t uid, em_str_t request_id, const char *data, size_t dlen,
                               char **buf, size_t *len);
/* An answer to it on the response channel, {type: 6, requestId, data}:
 * EM_OK and *data (a reference) when it is one for request_id, else
 * EM_DECLINED (any other response, or not JSON). */
int  em_rmsg_decode_server_answer(const char *buf, size_t len, em_str_t request_id, json_t **data);

/* 1 when buf is a JSON request whose "uid" is uid (this server's own, come
 * back on the request channel), else 0. */
int  em_rmsg_request_is_from(const char *buf, size_t len, em_str_t uid);

/* A broadcast to encode: slices the caller owns. */
typedef struct {
    em_str_t        uid;
    em_str_t        nsp;
    em_str_t        data;       /* the EVENT's JSON array */
    const em_str_t *att;
    size_t          natt;
    const em_str_t *rooms;
    size_t          nrooms;
    const em_str_t *except;
    size_t          nexcept;
    int             vol;
    int             drop_last;  /* the data's last element (emitd's recovery offset) stays here */
} em_rmsg_out_t;

/*
 * Encode m as the adapter does: EM_OK and a malloc'd *buf of *len bytes,
 * or EM_ERROR (data that is not a JSON array nested at most max_depth
 * deep, a placeholder for an attachment m does not have, out of memory).
 * An integral number is packed as an integer, as JavaScript's are.
 */
int  em_rmsg_encode(const em_rmsg_out_t *m, unsigned max_depth, char **buf, size_t *len);

/*
 * Socket.IO's Redis Streams adapter (@socket.io/redis-streams-adapter
 * 0.3): a broadcast is an entry of the stream with the fields uid, nsp,
 * type "3" and data, the JSON text of {packet, opts}, or when it holds
 * binary values the base64 (standard alphabet) of its MessagePack.
 * em_rmsg_encode_stream() gives that data field (malloc'd *buf);
 * em_rmsg_decode_stream() reads an entry's fields into *m as
 * em_rmsg_decode() does (EM_DECLINED for another type than "3", a
 * broadcast with acks among them, or over a limit).
 */
int  em_rmsg_encode_stream(const em_rmsg_out_t *m, unsigned max_depth, char **buf, size_t *len);
int  em_rmsg_decode_stream(em_str_t uid, em_str_t nsp, em_str_t type, em_str_t data,
                           const em_rmsg_limits_t *lim, em_rmsg_t *m);

/* The channel of a broadcast: "<key>#<nsp>#", and "<room>#" after it when
 * it names one room. EM_OK and *len, EM_ERROR when cap is too small. */
int  em_rmsg_channel(em_str_t key, em_str_t nsp, const em_str_t *room, char *out, size_t cap,
                     size_t *len);

#endif
