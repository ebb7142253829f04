/*
 * em_sio.h - Socket.IO v5 packet codec (pure).
 *
 * Text form: <type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]
 *   e.g. 2["hello",1]   42/chat,7["msg"]   51-["up",{"_placeholder":true,"num":0}]
 * The namespace is written only when it is not "/". The ',' after a namespace
 * may be missing when nothing follows it ("0/admin"). Binary packets are
 * followed by <attachments> Engine.IO binary messages.
 */
#ifndef EM_SIO_H
#define EM_SIO_H

#include "em_core.h"

typedef enum {
    EM_SIO_CONNECT = 0, EM_SIO_DISCONNECT, EM_SIO_EVENT, EM_SIO_ACK,
    EM_SIO_CONNECT_ERROR, EM_SIO_BINARY_EVENT, EM_SIO_BINARY_ACK
} em_sio_type_t;

#define EM_SIO_MAX_ATTACHMENTS 1000
#define EM_SIO_NO_ID (-1)

typedef struct {
    em_sio_type_t type;
    unsigned      nattach;    /* only for BINARY_* */
    em_str_t      nsp;        /* "/" when absent */
    int64_t       id;         /* EM_SIO_NO_ID when absent; 0..2^53-1 */
    em_str_t      data;       /* JSON text (may be empty); not yet validated */
} em_sio_packet_t;

/*
 * Decode the header of a text packet and slice out its JSON data. Checks the
 * rules that need no JSON parser: type 0..6; attachment count "<n>-" present
 * (0..EM_SIO_MAX_ATTACHMENTS) for binary types and only there; namespace
 * starts with '/'; ack id only digits, at most 2^53-1; data, when present,
 * begins with '[' or '{' (or is absent). Per type: EVENT/BINARY_EVENT need
 * data starting with '['; ACK/BINARY_ACK need '[' and an id; DISCONNECT has no
 * data; CONNECT data absent or '{'; CONNECT_ERROR data present; CONNECT,
 * DISCONNECT and CONNECT_ERROR carry no id. The namespace must pass
 * em_sio_valid_nsp(). pkt->nsp points into buf, or to a static "/".
 * Returns EM_OK or EM_ERROR.
 */
int em_sio_decode(const char *buf, size_t len, em_sio_packet_t *pkt);

/*
 * Write the header of a packet (everything before the JSON data) into out:
 * type, "<n>-" for binary types, namespace and ',' when nsp is not "/"
 * (and something follows: id or data), ack id when id >= 0.
 * `has_data` tells whether JSON data will follow. Returns the length written
 * or -1 if it does not fit (cap of 32 + nsp.len always fits).
 */
ssize_t em_sio_encode_header(em_sio_type_t type, unsigned nattach, em_str_t nsp,
                             int64_t id, int has_data, char *out, size_t cap);

/* True when the namespace name is acceptable: starts with '/', no control
 * characters, no ',' and at most 256 bytes. */
int em_sio_valid_nsp(em_str_t nsp);

#endif
