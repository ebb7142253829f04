/*
 * em_bench_proto.h - the client side of the wire, as pure functions:
 * target URLs, WebSocket frames (RFC 6455, client role), the upgrade
 * response, HTTP/1.1 response heads for polling, and the few JSON fields
 * emitd-bench reads. No sockets, no libevent, no globals; unit-tested in
 * bench/tests/. Engine.IO and Socket.IO packets themselves are decoded with
 * proto/em_eio.h and proto/em_sio.h.
 */
#ifndef EM_BENCH_PROTO_H
#define EM_BENCH_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

#include "em_core.h"

/* A target: ws://host[:port][/path] or http://host[:port][/path]. */
typedef struct {
    char     host[256];      /* without the [] of an IPv6 literal */
    char     port[8];
    char     path[256];      /* Engine.IO path, always ends with '/' */
} em_bench_url_t;

/*
 * Parse a target URL. The scheme is ws or http (wss/https are refused: the
 * tool speaks plain TCP); the port defaults to 80; a path of "" or "/" means
 * Socket.IO's default "/socket.io/", and any other path gets a trailing '/'.
 * Returns EM_OK or EM_ERROR.
 */
int em_bench_url_parse(const char *url, em_bench_url_t *u);

/* True when a numeric address (IPv4 or IPv6 text) is a loopback address:
 * 127.0.0.0/8, ::1, or ::ffff:127.x.y.z. */
int em_bench_addr_is_loopback(const struct sockaddr *sa);

#define EM_WS_OP_CONT   0x0
#define EM_WS_OP_TEXT   0x1
#define EM_WS_OP_BINARY 0x2
#define EM_WS_OP_CLOSE  0x8
#define EM_WS_OP_PING   0x9
#define EM_WS_OP_PONG   0xa

#define EM_WS_MAX_HEADER 14

typedef struct {
    unsigned  fin:1;
    unsigned  opcode:4;
    size_t    header_len;    /* bytes before the payload */
    uint64_t  payload_len;
} em_bench_ws_frame_t;

/*
 * Parse a frame header sent by a server. Returns EM_OK with *f set,
 * EM_AGAIN when more bytes are needed, EM_ERROR for a protocol error:
 * reserved bits set, an unknown opcode, a masked frame (servers never
 * mask), a fragmented or longer than 125 bytes control frame, a non-minimal
 * or 2^63+ length.
 */
int em_bench_ws_parse_header(const unsigned char *buf, size_t len,
                             em_bench_ws_frame_t *f);

/*
 * Write the header of a masked client frame (FIN set) with the given opcode,
 * payload length and masking key into out (EM_WS_MAX_HEADER bytes).
 * Returns the header length.
 */
size_t em_bench_ws_encode_header(unsigned opcode, uint64_t len,
                                 const unsigned char mask[4], unsigned char *out);

/* XOR n bytes with the masking key, starting at key position off % 4. */
void em_bench_ws_mask(unsigned char *buf, size_t n, const unsigned char mask[4],
                      size_t off);

/* The Sec-WebSocket-Accept value for a key: base64(SHA-1(key + GUID)),
 * 28 characters plus a NUL in out. */
void em_bench_ws_accept(const char *key, char out[29]);

/*
 * Check an HTTP response head (through its blank line) to a WebSocket
 * upgrade: status 101, Upgrade: websocket, Connection: upgrade and the
 * expected Sec-WebSocket-Accept. Returns EM_OK or EM_ERROR.
 */
int em_bench_ws_check_upgrade(const char *head, size_t len, const char *accept);

/* A parsed HTTP/1.1 response head (polling). */
typedef struct {
    int      status;
    int64_t  content_length;  /* -1 when absent */
    unsigned chunked;         /* Transfer-Encoding: chunked */
    unsigned close;           /* Connection: close, or HTTP/1.0 */
} em_bench_http_resp_t;

/*
 * Parse an HTTP/1.x response head of len bytes (through "\r\n\r\n").
 * Returns EM_OK or EM_ERROR.
 */
int em_bench_http_parse_response(const char *head, size_t len,
                                 em_bench_http_resp_t *r);

/*
 * Find "key": followed by an integer in a JSON text, anywhere (the first
 * occurrence). Returns EM_OK with *out set, or EM_DECLINED when absent or
 * not an integer. Good enough for the tool's own payloads, whose other
 * fields never hold the key's text.
 */
int em_bench_json_int(const char *json, size_t len, const char *key, int64_t *out);

/* Like em_bench_json_int() for a string value without escapes; copies it
 * NUL-terminated into out. Returns EM_OK, EM_DECLINED, or EM_ERROR when
 * it does not fit in cap. */
int em_bench_json_str(const char *json, size_t len, const char *key,
                      char *out, size_t cap);

#endif
