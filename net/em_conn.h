/*
 * em_conn.h - one client TCP connection in a worker: an explicit state
 * machine from HTTP/1.1 request heads through request bodies and parked
 * long-polling GETs to WebSocket framing.
 *
 * A connection is never freed inside its own callback: em_conn_close() marks
 * it and the worker's reaper frees it after the callback returns.
 *
 * The layer above (Engine.IO sessions) registers what it must hear
 * (em_conn_handlers_t): a complete request for one of its endpoints, a
 * WebSocket message, and that a connection it was attached to (c->upper) is
 * gone. This layer never names the one above.
 */
#ifndef EM_CONN_H
#define EM_CONN_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <wslay/wslay.h>

#include "em_buf.h"
#include "em_http.h"
#include "em_loop.h"

typedef struct em_conn em_conn_t;

typedef enum {
    EM_CONN_HEAD = 0,   /* reading a request head */
    EM_CONN_BODY,       /* reading a request body (POST) */
    EM_CONN_CHUNKED,    /* reading a chunked request body */
    EM_CONN_POLL,       /* a long-polling GET parked until there is data */
    EM_CONN_WS,         /* WebSocket */
    EM_CONN_DRAIN,      /* writing the last bytes, then close */
    EM_CONN_CLOSED
} em_conn_state_t;

/* Field order and widths keep the struct at 232 bytes at most (a 240-byte
 * malloc chunk, not 256): it is the largest per-connection object. */
struct em_conn {
    int                        fd;
    em_conn_state_t            state;
    struct event               ev;            /* read / write / timeout (em_conn.c) */
    struct evbuffer           *in;            /* input, NULL while empty */
    struct evbuffer           *out;           /* output, NULL while empty */
    short                      io_what;       /* EV_READ / EV_WRITE registered */
    unsigned                   io_registered:1;
    unsigned                   io_timed:1;     /* registered with the 30 s timeout */
    unsigned                   process_pending:1; /* buffered requests wait for the flush pass */
    unsigned                   close_pending:1;   /* close at the flush pass */
    unsigned                   flush_queued:1; /* output to write at the end of this loop pass */
    unsigned                   noroute:1;     /* serve the next request here */
    unsigned                   keep_alive:1;
    unsigned                   ws_closing:1;
    unsigned                   in_process:1;  /* inside em_conn_process() */
    unsigned                   in_ws_recv:1;  /* inside wslay_event_recv() */
    unsigned                   ws_fragmented:1; /* a fragmented message is open */
    unsigned                   eof:1;         /* the client shut its side: read no more */
    uint32_t                   flush_idx;     /* its place in that queue */
    uint32_t                   served;        /* requests answered on this connection */
    uint32_t                   req_since;     /* em_conn_now(): the request head began (HEAD..) */
    uint32_t                   write_since;   /* em_conn_now(): output waits, or last progress */
    union {
        struct {                              /* BODY */
            uint32_t           head_len;      /* head bytes still in input */
            uint32_t           body_len;      /* Content-Length (<= max_payload) */
        };
        struct {                              /* WS */
            uint32_t           ws_feed;       /* bytes wslay may still take */
            uint32_t           soft_since;    /* em_conn_now() + 1: output over output_soft, or 0 */
        };
    };
    void                      *upper;         /* POLL, BODY (POST) or WS: its session */
    const em_conf_endpoint_t  *endpoint;
    char                      *origin;        /* allowed CORS origin to echo, or NULL */
    struct em_conn_chunked    *chunked;       /* CHUNKED: head copy, state, body */
    wslay_event_context_ptr    ws;            /* only while a frame is in flight */
    em_conn_t                 *reap_next;
};

/* What the layer above hears. */
typedef struct {
    /* A complete request for endpoint c->endpoint (the body of a POST). */
    void        (*request)(em_conn_t *c, const em_http_req_t *req, const char *body, size_t len);
    /* A WebSocket message on c, attached to upper. */
    void        (*ws_message)(void *upper, em_conn_t *c, const char *data, size_t len, int binary);
    /* c, attached to upper, closed or is draining (c->upper is already NULL). */
    void        (*lost)(void *upper, em_conn_t *c);
    /* The id that logs name upper by (an Engine.IO sid). */
    const char *(*upper_id)(const void *upper);
} em_conn_handlers_t;

/* Register the layer above (once, before the first connection) and the
 * connections' reaper. */
int em_conn_init(const em_conn_handlers_t *h);

/* The id of what c is attached to, for logs, or NULL. */
const char *em_conn_upper_id(const em_conn_t *c);

/* Take a connection from the master: fd plus bytes it already read. */
void em_conn_accept(int fd, const char *data, size_t len, int noroute);

/* The connection's input and output buffers (made when missing; output
 * also makes the connection wait for the socket to take what is added).
 * NULL only when out of memory: the caller closes the connection. */
struct evbuffer *em_conn_input(em_conn_t *c);
struct evbuffer *em_conn_output(em_conn_t *c);

/* Milliseconds of a coarse monotonic clock, wrapping at 2^32: compare two
 * readings by their difference only. */
uint32_t em_conn_now(void);

/* Handle buffered input, or close, at the end of this loop pass (from
 * code that may run inside a send, which must not see sessions go). */
void em_conn_process_later(em_conn_t *c);
void em_conn_close_later(em_conn_t *c);

/* Close now (no more output); the memory goes at the next reap. */
void em_conn_close(em_conn_t *c);

/* Write what is queued, then close. */
void em_conn_drain(em_conn_t *c);

/* Send an HTTP response. Completes the request: the connection goes back to
 * reading heads (keep-alive) or drains and closes. */
void em_conn_respond(em_conn_t *c, int status, const char *ctype, const char *body, size_t len);

/* Answer a parked polling GET with a payload built from the given parts. */
void em_conn_respond_parts(em_conn_t *c, struct evbuffer *body);

/* 400 with an Engine.IO JSON error body {"code":N,"message":"..."}. */
void em_conn_eio_error(em_conn_t *c, int code, const char *message);

/* WebSocket (em_ws.c). */
int  em_ws_accept(em_conn_t *c, const em_http_req_t *req);
void em_ws_on_read(em_conn_t *c);
int  em_ws_send(em_conn_t *c, em_buf_t *buf);
void em_ws_close(em_conn_t *c, uint16_t code, const char *reason);
void em_ws_free(em_conn_t *c);
/* A whole message arrived on c's WebSocket: hand it to c->upper. */
void em_conn_ws_message(em_conn_t *c, const char *data, size_t len, int binary);

#endif
