/*
 * em_eio_session.h - Engine.IO v4 sessions: handshake, the polling and WebSocket
 * transports, the upgrade from one to the other, heartbeats, and the queue of
 * packets waiting for a polling GET. The layer above (Socket.IO, or a raw
 * Engine.IO script) sees only open / message / close.
 */
#ifndef EM_EIO_SESSION_H
#define EM_EIO_SESSION_H

#include <uthash.h>

#include "em_buf.h"
#include "em_http_conn.h"
#include "em_eio.h"
#include "em_sid.h"

typedef struct em_eio_session em_eio_session_t;

typedef struct em_outq {
    struct em_outq *next;
    em_buf_t       *buf;
} em_outq_t;

/*
 * A session's life: OPEN; CLOSING once a close is asked for (the layer
 * above has said goodbye, sends are dropped, the last packets wait for a
 * polling GET or the close timeout); FINISHED once out of the table, its
 * connections released, waiting for the reaper to free it (never inside a
 * callback).
 */
typedef enum {
    EM_EIO_SESSION_OPEN = 0,
    EM_EIO_SESSION_CLOSING,
    EM_EIO_SESSION_FINISHED
} em_eio_session_state_t;

/*
 * What a session keeps beside it, only when something reads it: the
 * client's address and the handshake's request head for the namespace
 * scripts, the monitoring figures and the connection limits, the figures
 * of its line in the access log.
 */
typedef struct {
    int64_t      started;         /* ms (em_state_now) */
    uint64_t     bytes_in;        /* Engine.IO packets from the client, bytes */
    uint64_t     bytes_out;       /* and to it */
    uint8_t      transports;      /* bit 1 << EM_TRANSPORT_*: the ones it used */
    char         addr[48];        /* numeric, or "" */
    size_t       head_len;        /* the request head's bytes; 0: not kept */
    char         head[];
} em_eio_extra_t;

/* The flags sit in the bytes after the sid: 184 bytes, a 192-byte chunk. */
struct em_eio_session {
    char                       sid[EM_SID_LEN + 1];
    uint8_t                    transport;     /* EM_TRANSPORT_* in use */
    uint8_t                    state:2;       /* em_eio_session_state_t */
    uint8_t                    upgrading:1;   /* a probe WebSocket answered 3probe */
    uint8_t                    awaiting_pong:1;
    uint8_t                    client_closed:1; /* how it ended: the client sent a close packet */
    uint8_t                    overflow:1;    /* output over its bound: closing next */
    uint8_t                    heard:1;       /* a message came from the client */
    uint8_t                    refused;       /* em_limit_t it was closed for, or 0 */
    const em_conf_endpoint_t  *endpoint;
    em_conn_t                 *ws;            /* transport WEBSOCKET */
    em_http_conn_t            *get;           /* a parked polling GET */
    em_conn_t                 *probe;         /* WebSocket being upgraded to */
    em_outq_t                 *q_head, *q_tail;
    size_t                     q_bytes;
    struct event              *timer;         /* ping interval / pong timeout */
    struct event              *upgrade_timer; /* only while an upgrade is under way */
    em_eio_extra_t            *extra;         /* the address and more, when read */
    void                      *upper;         /* Socket.IO client or raw script object */
    em_eio_session_t          *reap_next;
    UT_hash_handle             hh;
};


/*
 * The layer above a session (Socket.IO, or a raw endpoint's script): it
 * hears open, each message and close (once), and says whether it reads the
 * handshake (the client's address and request head are kept for it).
 */
typedef struct {
    void (*open)(em_eio_session_t *s);
    void (*message)(em_eio_session_t *s, const char *data, size_t len, int binary);
    void (*close)(em_eio_session_t *s, const char *reason);
    int  (*keeps_handshake)(void);
    /* For the access log, as the session closes: " nsp=... user=..." into
     * buf (at most len bytes with its NUL); may be NULL. */
    void (*describe)(em_eio_session_t *s, char *buf, size_t len);
    /* The session moved to WebSocket; may be NULL. */
    void (*upgrade)(em_eio_session_t *s);
} em_eio_upper_t;

/* Open: not closing or finished (sends go out). */
static inline int
em_eio_session_open(const em_eio_session_t *s)
{
    return s->state == EM_EIO_SESSION_OPEN;
}

/* The client's address ("" when not kept), and the handshake's request
 * head (NULL when not kept: no namespace script reads it). */
const char *em_eio_session_address(const em_eio_session_t *s);
const char *em_eio_session_head(const em_eio_session_t *s, size_t *len);

/* Whether a message sent now goes out at once (a volatile send is
 * dropped otherwise): a WebSocket with little output waiting, or a polling
 * GET parked with nothing queued before it. */
int  em_eio_session_ready(const em_eio_session_t *s);

/* Register the layers above: Socket.IO endpoints and raw ones (EM_OK). */
int  em_eio_session_init(const em_eio_upper_t *sio, const em_eio_upper_t *raw);

/* Sessions open in this worker. */
uint32_t em_eio_session_count(void);

/*
 * Close every session (the worker is stopping). From then on a handshake is
 * answered 503, while the requests of closing sessions are still served: a
 * polling client's next GET, on a new connection, fetches its goodbyes.
 */
void em_eio_session_close_all(const char *reason);

/*
 * The same for the sessions whose client sent a message (a Socket.IO client
 * its CONNECT): a reload's old worker closes those at once and gives the
 * newest a moment to finish their handshake, so that their clients see a
 * connect and a transport close, not a failed connect. Returns the
 * sessions still open.
 */
uint32_t em_eio_session_close_heard(const char *reason);

/* Queue or send one message (text: "4..." already prefixed; or binary). */
void em_eio_session_send(em_eio_session_t *s, em_buf_t *buf);

/* Close the session: the upper layer hears on_close(reason) once. */
void em_eio_session_close(em_eio_session_t *s, const char *reason);

/*
 * Close the session because its client broke `limit` (or the protocol):
 * logged with the client's address and counted (em_loop_violation), the
 * layer above hears "parse error" (protocol) or "forced server close", and a
 * WebSocket is closed with code 1002 (protocol) or 1008 and the limit's name
 * as the reason. Safe inside a send or a handler: the session is freed
 * later, like any closed one.
 */
void em_eio_session_refuse(em_eio_session_t *s, em_limit_t limit, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));


#endif
