/*
 * em_eio.h - Engine.IO v4 packet and polling-payload codec (pure).
 *
 * A text packet is one type digit followed by its data ("4hello"). Over
 * WebSocket a binary frame is a message packet whose data is the raw bytes.
 * Over HTTP long-polling packets are joined with the record separator 0x1e and
 * a binary packet is written as 'b' followed by the base64 of its bytes.
 */
#ifndef EM_EIO_H
#define EM_EIO_H

#include "em_core.h"

#define EM_EIO_SEPARATOR '\x1e'

typedef enum {
    EM_EIO_OPEN = 0, EM_EIO_CLOSE, EM_EIO_PING, EM_EIO_PONG,
    EM_EIO_MESSAGE, EM_EIO_UPGRADE, EM_EIO_NOOP
} em_eio_type_t;

typedef struct {
    em_eio_type_t type;
    unsigned      binary:1;   /* message with binary data */
    unsigned      base64:1;   /* binary data still base64 (from polling 'b') */
    em_str_t      data;       /* slice into the input */
} em_eio_packet_t;

/*
 * Decode one text packet (a WebSocket text frame, or one record of a polling
 * payload that does not start with 'b'). Returns EM_OK or EM_ERROR for an
 * empty string or an unknown type.
 */
int em_eio_decode(const char *buf, size_t len, em_eio_packet_t *pkt);

/*
 * Iterate the records of a polling POST body. *pos starts at 0. Returns EM_OK
 * with *pkt set (for a 'b' record: type MESSAGE, binary=1, base64=1, data = the
 * base64 text), EM_DECLINED at the end, EM_ERROR for a bad record (empty
 * record, unknown type, bad base64). An empty body, a leading or a trailing
 * separator count as empty records. The body itself is never changed.
 */
int em_eio_payload_next(const char *body, size_t len, size_t *pos, em_eio_packet_t *pkt);

/* Length of the base64 encoding of n bytes (standard alphabet, padded). */
size_t em_eio_b64_encoded_len(size_t n);

/* Encode n bytes as standard padded base64 into out (em_eio_b64_encoded_len(n)
 * bytes). Returns the length written. */
size_t em_eio_b64_encode(const unsigned char *in, size_t n, char *out);

/* Decode standard base64 (padding optional, but if present it must complete
 * the last 4-character group; no whitespace; the unused low bits of the last
 * character must be zero). Returns the decoded length, or -1 if the input is
 * malformed or the result would exceed cap. */
ssize_t em_eio_b64_decode(const char *in, size_t n, unsigned char *out, size_t cap);

/* Handshake parameters, sent as the OPEN packet's JSON. */
typedef struct {
    const char *sid;
    int         upgrade_websocket;  /* advertise ["websocket"] */
    unsigned    ping_interval;      /* ms */
    unsigned    ping_timeout;       /* ms */
    size_t      max_payload;        /* bytes */
} em_eio_handshake_t;

/*
 * Write the OPEN packet, e.g.
 * 0{"sid":"..","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}
 * into out, NUL-terminated. Returns the length (without the NUL), or -1 if it
 * and its NUL do not fit in cap, or if sid is NULL or holds '"', '\\' or a
 * control character.
 */
ssize_t em_eio_encode_open(const em_eio_handshake_t *hs, char *out, size_t cap);

#endif
