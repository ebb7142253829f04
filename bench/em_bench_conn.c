/*
 * em_bench_conn.c - a client connection: socket from a loopback source,
 * the WebSocket transport (upgrade, masked frames out, frames in), and the
 * Engine.IO layer shared with the polling transport (em_bench_polling.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "em_eio.h"
#include "em_bench_conn.h"
#include "em_bench_polling.h"

#define EM_BENCH_MAX_MESSAGE  (64u << 20)
#define EM_BENCH_MAX_HEAD     8192
#define EM_BENCH_LOGGED       5      /* errors described per worker */

static void em_bench_ws_read_cb(struct bufferevent *bev, void *arg);
static void em_bench_ws_event_cb(struct bufferevent *bev, short what, void *arg);

uint64_t
em_bench_rand(em_bench_worker_t *w)
{
    /* xorshift64* */
    uint64_t x = w->prng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->prng = x;
    return x * UINT64_C(2685821657736338717);
}

/* Count an error, say what it was for the first few, and close. */
void
em_bench_conn_fail(em_bench_conn_t *c, int err, const char *what)
{
    static unsigned logged;

    if (c->w->phase != EM_BENCH_PHASE_DONE) {
        c->w->c.errors++;
        if (logged++ < EM_BENCH_LOGGED) {
            if (err != 0) {
                fprintf(stderr, "emitd-bench: worker %u, connection %u: %s: %s\n",
                        c->w->index, c->gidx, what, strerror(err));
            } else {
                fprintf(stderr, "emitd-bench: worker %u, connection %u: %s\n",
                        c->w->index, c->gidx, what);
            }
        }
    }
    c->failed = 1;
    em_bench_conn_close(c);
}

/* Free everything the connection holds and tell the worker. */
static void
em_bench_conn_reap(em_bench_conn_t *c)
{
    int failed = c->failed;

    if (c->w->opts->transport == EM_BENCH_POLLING && c->state >= EM_CONN_SIO_CONNECT) {
        em_bench_polling_goodbye(c);
    }
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->post != NULL) {
        bufferevent_free(c->post);
        c->post = NULL;
    }
    if (c->frag != NULL) {
        evbuffer_free(c->frag);
        c->frag = NULL;
    }
    if (c->outq != NULL) {
        evbuffer_free(c->outq);
        c->outq = NULL;
    }
    evtimer_del(c->timer);
    if (c->counted) {
        c->w->c.current--;
        c->counted = 0;
    }
    c->state = EM_CONN_IDLE;
    c->closing = 0;
    c->failed = 0;
    c->get_busy = 0;
    c->post_busy = 0;
    c->ack_wait = -1;
    em_bench_on_closed(c, failed);
}

void
em_bench_conn_close(em_bench_conn_t *c)
{
    if (c->in_cb) {
        c->closing = 1;
        return;
    }
    if (c->state != EM_CONN_IDLE || c->bev != NULL) {
        em_bench_conn_reap(c);
    }
}

void
em_bench_conn_enter(em_bench_conn_t *c)
{
    c->in_cb++;
}

void
em_bench_conn_leave(em_bench_conn_t *c)
{
    if (--c->in_cb == 0 && c->closing) {
        em_bench_conn_reap(c);
    }
}

void
em_bench_conn_arm(em_bench_conn_t *c, unsigned ms)
{
    struct timeval tv = { (time_t) (ms / 1000), (suseconds_t) (ms % 1000) * 1000 };

    evtimer_add(c->timer, &tv);
}

/* A socket for a connection, bound to its source address when --sources
 * asks for several (127.0.0.1 + gidx % sources); the port is left to
 * connect() (IP_BIND_ADDRESS_NO_PORT) so that each source address has the
 * whole ephemeral range towards the target. */
int
em_bench_conn_socket(em_bench_conn_t *c)
{
    const em_bench_opts_t *o = c->w->opts;
    int                    fd, one = 1;

    fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (o->sources > 1 && o->addr.ss_family == AF_INET) {
        struct sockaddr_in src;

        (void) setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        memset(&src, 0, sizeof(src));
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7f000001u + c->gidx % o->sources);
        if (bind(fd, (struct sockaddr *) &src, sizeof(src)) != 0) {
            int err = errno;

            close(fd);
            errno = err;
            return -1;
        }
    }
    return fd;
}

/* A bufferevent connecting to the target, or NULL (errno set). */
struct bufferevent *
em_bench_conn_dial(em_bench_conn_t *c, bufferevent_data_cb readcb,
                   bufferevent_event_cb eventcb)
{
    const em_bench_opts_t *o = c->w->opts;
    struct bufferevent    *bev;
    int                    fd, err;

    fd = em_bench_conn_socket(c);
    if (fd < 0) {
        return NULL;
    }
    bev = bufferevent_socket_new(c->w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        err = errno;
        close(fd);
        errno = err;
        return NULL;
    }
    bufferevent_setcb(bev, readcb, NULL, eventcb, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(bev, (const struct sockaddr *) &o->addr,
                                   (int) o->addrlen) != 0)
    {
        err = errno;
        bufferevent_free(bev);
        errno = err != 0 ? err : ECONNREFUSED;
        return NULL;
    }
    return bev;
}

int
em_bench_conn_start(em_bench_conn_t *c)
{
    em_bench_worker_t *w = c->w;

    c->state = EM_CONN_TCP;
    c->t_start = em_bench_now_us();
    c->ack_wait = -1;
    c->closing = 0;
    c->failed = 0;
    if (w->opts->transport == EM_BENCH_POLLING) {
        return em_bench_polling_start(c);
    }
    c->bev = em_bench_conn_dial(c, em_bench_ws_read_cb, em_bench_ws_event_cb);
    if (c->bev == NULL) {
        em_bench_conn_fail(c, errno, "connect() failed");
        return EM_ERROR;
    }
    return EM_OK;
}

/* Send one WebSocket frame: header with a fresh masking key, then the
 * payload masked in the worker's scratch buffer. */
static int
em_bench_ws_send(em_bench_conn_t *c, unsigned opcode, const char *data, size_t len)
{
    em_bench_worker_t *w = c->w;
    unsigned char      hdr[EM_WS_MAX_HEADER], mask[4];
    uint64_t           r = em_bench_rand(w);
    size_t             hl;
    struct evbuffer   *out;

    if (c->bev == NULL || c->closing) {
        return EM_ERROR;
    }
    if (len > w->scratch_cap) {
        unsigned char *p = realloc(w->scratch, len);

        if (p == NULL) {
            return EM_ERROR;
        }
        w->scratch = p;
        w->scratch_cap = len;
    }
    memcpy(mask, &r, 4);
    hl = em_bench_ws_encode_header(opcode, len, mask, hdr);
    if (data != (const char *) w->scratch) {
        memcpy(w->scratch, data, len);
    }
    em_bench_ws_mask(w->scratch, len, mask, 0);
    out = bufferevent_get_output(c->bev);
    if (evbuffer_add(out, hdr, hl) != 0 || evbuffer_add(out, w->scratch, len) != 0) {
        return EM_ERROR;
    }
    w->c.bytes_sent += hl + len;
    return EM_OK;
}

/* Send an Engine.IO packet: type digit then data. */
int
em_bench_conn_send_eio(em_bench_conn_t *c, char type, const char *data, size_t len)
{
    em_bench_worker_t *w = c->w;

    if (c->w->opts->transport == EM_BENCH_POLLING) {
        return em_bench_polling_send(c, type, data, len);
    }
    if (len + 1 > w->scratch_cap) {
        unsigned char *p = realloc(w->scratch, len + 1);

        if (p == NULL) {
            return EM_ERROR;
        }
        w->scratch = p;
        w->scratch_cap = len + 1;
    }
    memmove(w->scratch + 1, data, len);
    w->scratch[0] = (unsigned char) type;
    return em_bench_ws_send(c, EM_WS_OP_TEXT, (const char *) w->scratch, len + 1);
}

int
em_bench_conn_send_sio(em_bench_conn_t *c, const char *pkt, size_t len)
{
    if (c->state < EM_CONN_SIO_CONNECT || c->closing) {
        return EM_ERROR;
    }
    return em_bench_conn_send_eio(c, '4', pkt, len);
}

/* One Engine.IO text packet from either transport. */
void
em_bench_conn_eio_packet(em_bench_conn_t *c, const char *data, size_t len)
{
    em_eio_packet_t pkt;
    em_sio_packet_t sio;
    char            hdr[300];
    ssize_t         n;
    em_str_t        nsp = { c->w->opts->nsp, strlen(c->w->opts->nsp) };

    if (em_eio_decode(data, len, &pkt) != EM_OK) {
        em_bench_conn_fail(c, 0, "bad Engine.IO packet");
        return;
    }
    switch (pkt.type) {
    case EM_EIO_OPEN:
        if (c->state != EM_CONN_EIO_OPEN) {
            em_bench_conn_fail(c, 0, "unexpected Engine.IO open packet");
            return;
        }
        n = em_sio_encode_header(EM_SIO_CONNECT, 0, nsp, EM_SIO_NO_ID, 0, hdr, sizeof(hdr));
        c->state = EM_CONN_SIO_CONNECT;
        if (n < 0 || em_bench_conn_send_eio(c, '4', hdr, (size_t) n) != EM_OK) {
            em_bench_conn_fail(c, 0, "cannot send CONNECT");
        }
        return;
    case EM_EIO_PING:
        (void) em_bench_conn_send_eio(c, '3', pkt.data.data, pkt.data.len);
        return;
    case EM_EIO_CLOSE:
        em_bench_conn_fail(c, 0, "closed by the server (Engine.IO close)");
        c->w->c.closed_by_server++;
        return;
    case EM_EIO_MESSAGE:
        break;
    default:
        return;                               /* pong, upgrade, noop */
    }
    if (em_sio_decode(pkt.data.data, pkt.data.len, &sio) != EM_OK) {
        em_bench_conn_fail(c, 0, "bad Socket.IO packet");
        return;
    }
    if (sio.nsp.len != nsp.len || memcmp(sio.nsp.data, nsp.data, nsp.len) != 0) {
        return;
    }
    switch (sio.type) {
    case EM_SIO_CONNECT:
        if (c->state != EM_CONN_SIO_CONNECT) {
            em_bench_conn_fail(c, 0, "unexpected CONNECT");
            return;
        }
        evtimer_del(c->timer);
        c->state = EM_CONN_READY;
        c->counted = 1;
        c->w->c.current++;
        em_bench_on_connected(c);
        return;
    case EM_SIO_CONNECT_ERROR: {
        char why[160];

        snprintf(why, sizeof(why), "CONNECT_ERROR from the server: %.*s",
                 (int) EM_MIN(sio.data.len, (size_t) 100), sio.data.data);
        em_bench_conn_fail(c, 0, why);
        return;
    }
    case EM_SIO_DISCONNECT:
        c->w->c.closed_by_server++;
        em_bench_conn_fail(c, 0, "disconnected by the server");
        return;
    default:
        em_bench_on_packet(c, &sio);
        return;
    }
}

/* Handle one complete WebSocket message or control frame. */
static void
em_bench_ws_frame(em_bench_conn_t *c, unsigned opcode, const char *data, size_t len)
{
    switch (opcode) {
    case EM_WS_OP_TEXT:
        em_bench_conn_eio_packet(c, data, len);
        break;
    case EM_WS_OP_BINARY:
        break;                                /* attachments: not used */
    case EM_WS_OP_PING:
        (void) em_bench_ws_send(c, EM_WS_OP_PONG, data, len);
        break;
    case EM_WS_OP_CLOSE:
        c->w->c.closed_by_server++;
        em_bench_conn_fail(c, 0, "WebSocket closed by the server");
        break;
    default:
        break;
    }
}

/* The server's 101 response, then frames, until the input runs out or the
 * connection is to close. */
static void
em_bench_ws_read(em_bench_conn_t *c)
{
    struct evbuffer     *in = bufferevent_get_input(c->bev);
    em_bench_ws_frame_t  f;
    size_t               n;
    unsigned char       *p;
    int                  rc;

    while (!c->closing) {
        n = evbuffer_get_length(in);
        if (c->state == EM_CONN_UPGRADE) {
            struct evbuffer_ptr e = evbuffer_search(in, "\r\n\r\n", 4, NULL);

            if (e.pos < 0) {
                if (n > EM_BENCH_MAX_HEAD) {
                    em_bench_conn_fail(c, 0, "upgrade response too long");
                }
                return;
            }
            p = evbuffer_pullup(in, e.pos + 4);
            if (em_bench_ws_check_upgrade((const char *) p, (size_t) e.pos + 4,
                                          c->w->ws_accept) != EM_OK)
            {
                em_bench_conn_fail(c, 0, "WebSocket upgrade refused");
                return;
            }
            c->w->c.bytes_recv += (size_t) e.pos + 4;
            evbuffer_drain(in, (size_t) e.pos + 4);
            c->state = EM_CONN_EIO_OPEN;
            continue;
        }
        if (n < 2) {
            return;
        }
        p = evbuffer_pullup(in, (ssize_t) EM_MIN(n, (size_t) EM_WS_MAX_HEADER));
        rc = em_bench_ws_parse_header(p, EM_MIN(n, (size_t) EM_WS_MAX_HEADER), &f);
        if (rc == EM_AGAIN) {
            return;
        }
        if (rc != EM_OK || f.payload_len > EM_BENCH_MAX_MESSAGE) {
            em_bench_conn_fail(c, 0, "bad WebSocket frame");
            return;
        }
        if (n < f.header_len + f.payload_len) {
            return;
        }
        p = evbuffer_pullup(in, (ssize_t) (f.header_len + f.payload_len));
        p += f.header_len;

        if (f.opcode >= EM_WS_OP_CLOSE) {
            em_bench_ws_frame(c, f.opcode, (const char *) p, (size_t) f.payload_len);
        } else if (f.opcode != EM_WS_OP_CONT && f.fin && c->frag == NULL) {
            em_bench_ws_frame(c, f.opcode, (const char *) p, (size_t) f.payload_len);
        } else {
            /* Fragments: collect them after a one-byte opcode. */
            if (f.opcode != EM_WS_OP_CONT) {
                if (c->frag != NULL) {
                    em_bench_conn_fail(c, 0, "new message inside a fragmented one");
                    return;
                }
                c->frag = evbuffer_new();
                if (c->frag == NULL) {
                    em_bench_conn_fail(c, ENOMEM, "evbuffer_new() failed");
                    return;
                }
                evbuffer_add(c->frag, &(unsigned char) { (unsigned char) f.opcode }, 1);
            } else if (c->frag == NULL) {
                em_bench_conn_fail(c, 0, "continuation frame without a message");
                return;
            }
            evbuffer_add(c->frag, p, (size_t) f.payload_len);
            if (evbuffer_get_length(c->frag) > EM_BENCH_MAX_MESSAGE) {
                em_bench_conn_fail(c, 0, "fragmented message too long");
                return;
            }
            if (f.fin) {
                size_t         fl = evbuffer_get_length(c->frag);
                unsigned char *m = evbuffer_pullup(c->frag, -1);

                em_bench_ws_frame(c, m[0], (const char *) m + 1, fl - 1);
                if (c->frag != NULL) {
                    evbuffer_free(c->frag);
                    c->frag = NULL;
                }
            }
        }
        c->w->c.bytes_recv += f.header_len + f.payload_len;
        if (c->bev != NULL) {
            evbuffer_drain(in, f.header_len + f.payload_len);
        }
    }
}

static void
em_bench_ws_read_cb(struct bufferevent *bev, void *arg)
{
    em_bench_conn_t *c = arg;

    (void) bev;
    em_bench_conn_enter(c);
    em_bench_ws_read(c);
    em_bench_conn_leave(c);
}

static void
em_bench_ws_event_cb(struct bufferevent *bev, short what, void *arg)
{
    em_bench_conn_t *c = arg;
    const char      *req = c->w->request;

    (void) bev;
    em_bench_conn_enter(c);
    if (what & BEV_EVENT_CONNECTED) {
        c->state = EM_CONN_UPGRADE;
        bufferevent_write(c->bev, req, strlen(req));
        c->w->c.bytes_sent += strlen(req);
    } else if (what & BEV_EVENT_EOF) {
        c->w->c.closed_by_server++;
        em_bench_conn_fail(c, 0, c->state == EM_CONN_READY
                                 ? "connection closed by the server"
                                 : "connection closed by the server during the handshake");
    } else if (what & BEV_EVENT_ERROR) {
        int err = EVUTIL_SOCKET_ERROR();

        em_bench_conn_fail(c, err, c->state == EM_CONN_TCP ? "connect() failed"
                                                            : "socket error");
    }
    em_bench_conn_leave(c);
}

/* Timer of a connection: the worker decides (deadline or hold over). */
void
em_bench_conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    em_bench_conn_t *c = arg;

    (void) fd;
    (void) what;
    em_bench_conn_enter(c);
    em_bench_on_timer(c);
    em_bench_conn_leave(c);
}
