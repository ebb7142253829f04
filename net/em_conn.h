/*
 * em_conn.h - the transport: one client TCP connection in a worker, its
 * socket I/O, input and output buffers, read and write deadlines, the output
 * budget, WebSocket framing (em_ws.c), and the close/reap life cycle. TLS
 * will come in here, under the same interface.
 *
 * A connection is never freed inside its own callback: em_conn_close() marks
 * it and the worker's reaper frees it after the callback returns.
 *
 * The layer above (HTTP) registers what it must hear (em_conn_handlers_t):
 * buffered input to handle, the peer's end of input, a read deadline that
 * passed, and the connection's memory going; and passes through from its
 * own upper layer (Engine.IO sessions) a WebSocket message and that a
 * connection attached to c->upper is gone. It may make each connection
 * larger than em_conn_t (conn_size), its own state after this struct, which
 * must come first. This layer never names the ones above.
 */
#ifndef EM_CONN_H
#define EM_CONN_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <wslay/wslay.h>

#include "em_buf.h"
#include "em_loop.h"

typedef struct em_conn em_conn_t;

typedef enum {
    EM_CONN_OPEN = 0,   /* bytes for the layer above (HTTP) */
    EM_CONN_WS,         /* WebSocket frames */
    EM_CONN_DRAIN,      /* writing the last bytes, then close */
    EM_CONN_CLOSED
} em_conn_state_t;

/* Field order and widths keep the struct small: the layer above adds its
 * own after it, and the whole must fit a 240-byte malloc chunk. */
struct em_conn {
    int                        fd;
    unsigned                   state:2;        /* em_conn_state_t */
    unsigned                   io_registered:1;
    unsigned                   io_timed:1;     /* registered with a timeout */
    unsigned                   process_pending:1; /* buffered input waits for the flush pass */
    unsigned                   close_pending:1;   /* close at the flush pass */
    unsigned                   flush_queued:1; /* output to write at the end of this loop pass */
    unsigned                   read_timed:1;   /* read_until is a deadline */
    unsigned                   eof:1;          /* the client shut its side: read no more */
    unsigned                   ws_closing:1;
    unsigned                   in_ws_recv:1;   /* inside wslay_event_recv() */
    unsigned                   ws_fragmented:1; /* a fragmented message is open */
    unsigned                   lingering:1;    /* DRAIN, all written: our side shut, the
                                                * client's last bytes read and dropped */
    struct event               ev;             /* read / write / timeout */
    struct evbuffer           *in;             /* input, NULL while empty */
    struct evbuffer           *out;            /* output, NULL while empty */
    uint32_t                   flush_idx;      /* its place in that queue */
    uint32_t                   read_until;     /* em_conn_now() deadline, when read_timed */
    uint32_t                   write_since;    /* em_conn_now(): output waits, or last progress */
    uint32_t                   soft_since;     /* WS: em_conn_now() + 1 over output_soft, or 0 */
    uint32_t                   ws_max;         /* WS: the largest message taken */
    short                      io_what;        /* EV_READ / EV_WRITE registered */
    void                      *upper;          /* what the layers above attached */
    wslay_event_context_ptr    ws;             /* only while a frame is in flight */
    em_conn_t                 *reap_next;
};

/* What the layer above hears. */
typedef struct {
    size_t        conn_size;                        /* >= sizeof(em_conn_t) */
    /* OPEN: buffered input to handle (c->in). */
    void        (*input)(em_conn_t *c);
    /* OPEN: the most input to buffer before reading pauses. */
    size_t      (*input_bound)(const em_conn_t *c);
    /* OPEN: the client shut its sending side (c->eof is set). */
    void        (*eof)(em_conn_t *c);
    /* The read deadline passed (c->read_timed is cleared). */
    void        (*read_timeout)(em_conn_t *c);
    /* The connection's memory goes: free what the layer above added. */
    void        (*free)(em_conn_t *c);
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

/* A connection on fd (taken: closed on failure) with bytes already read
 * first in its input; conn_size bytes, zeroed but for the transport's.
 * The caller sets up its part, then calls em_conn_start(). NULL when out
 * of memory. */
em_conn_t *em_conn_new(int fd, const char *data, size_t len);
void       em_conn_start(em_conn_t *c);

/* The connection's input and output buffers (made when missing; output
 * also makes the connection wait for the socket to take what is added).
 * NULL only when out of memory: the caller closes the connection. */
struct evbuffer *em_conn_input(em_conn_t *c);
struct evbuffer *em_conn_output(em_conn_t *c);

/* Milliseconds of a coarse monotonic clock, wrapping at 2^32: compare two
 * readings by their difference only. */
uint32_t em_conn_now(void);

/* Call the read_timeout handler ms from now, however slowly bytes come
 * (the deadline does not move with reads); or no more. */
void em_conn_read_deadline(em_conn_t *c, unsigned ms);
void em_conn_read_untimed(em_conn_t *c);

/* Register what the connection waits for now (after its state, bound or
 * deadline changed outside an I/O callback). */
void em_conn_io_update(em_conn_t *c);

/* Handle buffered input, or close, at the end of this loop pass (from
 * code that may run inside a send, which must not see sessions go). */
void em_conn_process_later(em_conn_t *c);
void em_conn_close_later(em_conn_t *c);

/* Close now (no more output); the memory goes at the next reap. */
void em_conn_close(em_conn_t *c);

/* Write what is queued, then close. */
void em_conn_drain(em_conn_t *c);

/* WebSocket (em_ws.c). */
/* From now on c's bytes are WebSocket frames of messages up to max_payload;
 * no read deadline (liveness is the layer above's). */
void em_ws_start(em_conn_t *c, size_t max_payload);
void em_ws_on_read(em_conn_t *c);
int  em_ws_send(em_conn_t *c, em_buf_t *buf);
void em_ws_close(em_conn_t *c, uint16_t code, const char *reason);
void em_ws_free(em_conn_t *c);
/* A whole message arrived on c's WebSocket: hand it to c->upper. */
void em_conn_ws_message(em_conn_t *c, const char *data, size_t len, int binary);

#endif
