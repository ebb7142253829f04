/*
 * em_bench_conn.h - one client connection of a worker process: TCP from a
 * chosen loopback source, the transport (WebSocket, or HTTP long-polling),
 * Engine.IO (open, ping/pong, close) and the Socket.IO CONNECT. The
 * scenario logic in em_bench_worker.c sees only whole Socket.IO packets.
 */
#ifndef EM_BENCH_CONN_H
#define EM_BENCH_CONN_H

#include <event2/event.h>
#include <event2/bufferevent.h>
#include <event2/buffer.h>

#include "em_bench.h"
#include "em_sio.h"

typedef enum {
    EM_CONN_IDLE = 0,       /* no socket: not started yet, or closed */
    EM_CONN_TCP,            /* TCP connect in progress */
    EM_CONN_UPGRADE,        /* WebSocket: upgrade request sent */
    EM_CONN_EIO_OPEN,       /* waiting for the Engine.IO open packet */
    EM_CONN_SIO_CONNECT,    /* CONNECT sent, waiting for its reply */
    EM_CONN_JOIN,           /* broadcast subscriber: join sent */
    EM_CONN_READY           /* established */
} em_bench_conn_state_t;

typedef struct em_bench_worker_s em_bench_worker_t;

/* Phases of a worker process. */
enum {
    EM_BENCH_PHASE_SETUP = 0,   /* opening connections, joining rooms */
    EM_BENCH_PHASE_RUN,         /* GO received: measuring */
    EM_BENCH_PHASE_DRAIN,       /* STOP received: waiting for the last replies */
    EM_BENCH_PHASE_DONE         /* result sent; closes are not errors */
};

typedef struct em_bench_conn_s {
    em_bench_worker_t     *w;
    struct bufferevent    *bev;        /* websocket, or polling GET channel */
    struct bufferevent    *post;       /* polling: POST channel */
    struct event          *timer;      /* deadlines and reconnect holds */
    unsigned               gidx;       /* index over all workers */
    em_bench_conn_state_t  state;
    unsigned               publisher:1;
    unsigned               ever_opened:1;
    unsigned               closing:1;  /* close once the callback returns */
    unsigned               failed:1;   /* the close is an error */
    unsigned               setup_done:1;/* its set-up is resolved */
    unsigned               counted:1;  /* counted in `current` */
    unsigned               get_busy:1; /* polling: a GET is in flight */
    unsigned               post_busy:1;/* polling: a POST is in flight */
    uint64_t               t_start;    /* handshake start, us */
    uint64_t               t_sent;     /* outstanding request sent, us */
    int64_t                ack_wait;   /* id of the outstanding ack, or -1 */
    int64_t                next_id;
    unsigned               in_cb;      /* depth of its own callbacks */
    struct evbuffer       *frag;       /* websocket continuation frames */
    struct evbuffer       *outq;       /* polling: packets not yet POSTed */
    char                   sid[64];    /* polling: Engine.IO sid */
} em_bench_conn_t;

/*
 * Start the connection: socket, bind to its source address, connect and
 * begin the transport's handshake. Returns EM_OK, or EM_ERROR (counted as
 * an error; the connection stays IDLE).
 */
int em_bench_conn_start(em_bench_conn_t *c);

/*
 * Send one Socket.IO packet (its text form, without the Engine.IO '4').
 * Returns EM_OK or EM_ERROR.
 */
int em_bench_conn_send_sio(em_bench_conn_t *c, const char *pkt, size_t len);

/* Close the connection now (socket freed, timer stopped) or, inside one of
 * its own callbacks, as soon as the callback returns. */
void em_bench_conn_close(em_bench_conn_t *c);

/* Arm the connection's timer to fire after ms milliseconds. */
void em_bench_conn_arm(em_bench_conn_t *c, unsigned ms);

/* Count an error (reported for the first few with the reason) and close. */
void em_bench_conn_fail(em_bench_conn_t *c, int err, const char *what);

/* Bracket a callback of the connection: a close requested inside is done
 * when the outermost callback leaves (a connection is never freed inside
 * its own I/O callback). */
void em_bench_conn_enter(em_bench_conn_t *c);
void em_bench_conn_leave(em_bench_conn_t *c);

/* A non-blocking socket bound to the connection's source address, and a
 * bufferevent connecting it to the target; NULL with errno on failure. */
int em_bench_conn_socket(em_bench_conn_t *c);
struct bufferevent *em_bench_conn_dial(em_bench_conn_t *c, bufferevent_data_cb readcb,
                                       bufferevent_event_cb eventcb);

/* Send an Engine.IO packet over the connection's transport. */
int em_bench_conn_send_eio(em_bench_conn_t *c, char type, const char *data, size_t len);

/* Handle one Engine.IO text packet received on either transport. */
void em_bench_conn_eio_packet(em_bench_conn_t *c, const char *data, size_t len);

/* libevent callback of a connection's timer (calls em_bench_on_timer). */
void em_bench_conn_timer_cb(evutil_socket_t fd, short what, void *arg);

/* Handlers implemented by the worker (em_bench_worker.c). */
void em_bench_on_connected(em_bench_conn_t *c);
void em_bench_on_packet(em_bench_conn_t *c, const em_sio_packet_t *pkt);
void em_bench_on_closed(em_bench_conn_t *c, int error);
void em_bench_on_timer(em_bench_conn_t *c);

/* Worker state the connection layer needs. */
struct em_bench_worker_s {
    const em_bench_opts_t *opts;
    struct event_base     *base;
    unsigned               index;
    em_bench_conn_t       *conns;
    unsigned               nconns;
    em_bench_counters_t    c;
    em_bench_hist_t        latency;
    em_bench_hist_t        connect;
    unsigned char         *scratch;      /* outgoing frame assembly */
    size_t                 scratch_cap;
    char                   ws_key[25];
    char                   ws_accept[29];
    char                   request[1024];  /* the upgrade / polling request head */
    uint64_t               prng;
    int                    phase;          /* EM_PHASE_* of em_bench_worker.c */
};

/* A fast PRNG for masking keys and reconnect holds (not for secrets). */
uint64_t em_bench_rand(em_bench_worker_t *w);

#endif
