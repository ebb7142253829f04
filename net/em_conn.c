/*
 * em_conn.c - the transport: client connections in a worker, their socket
 * I/O, buffers, deadlines and output budget, and the close/reap life cycle.
 * What the bytes mean is the business of the layer above (HTTP, through
 * em_conn_handlers_t) or of em_ws.c (WebSocket frames).
 *
 * The socket I/O is a single libevent event per connection (read, write and
 * the timeout) and evbuffers that a connection holds only while they hold
 * bytes (empty output buffers wait in a pool for the next connection that
 * writes): an idle WebSocket costs its connection struct and that event,
 * not a bufferevent. Output is written straight to the socket at the end
 * of the loop pass that made it (em_conn_flush_later); what to wait for
 * follows from the state: reading unless draining or the input reached its
 * bound, EV_WRITE only while the socket has not taken all the output, and a
 * timeout while a read deadline is set or output waits.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "em_conn.h"
#include "em_tls.h"
#include "em_log.h"
#include "em_loop.h"

static em_conn_handlers_t em_conn_upper;
static em_conn_t         *em_conn_reap_list;      /* closed, freed by the reaper */

static void em_conn_io_cb(evutil_socket_t fd, short what, void *arg);
static void em_conn_process(em_conn_t *c);
static void em_conn_trim(em_conn_t *c);

/* The most input a state may buffer before reading pauses. */
static size_t
em_conn_input_bound(const em_conn_t *c)
{
    switch (c->state) {
    case EM_CONN_WS:
        /* A frame is fed to wslay only when whole: room for the largest. */
        return (size_t) c->ws_max + 64 * 1024;
    case EM_CONN_OPEN:
        return em_conn_upper.input_bound(c);
    default:
        return 0;
    }
}

uint32_t
em_conn_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint32_t) ((uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000);
}

void
em_conn_read_deadline(em_conn_t *c, unsigned ms)
{
    c->read_until = em_conn_now() + ms;
    c->read_timed = 1;
}

void
em_conn_read_untimed(em_conn_t *c)
{
    c->read_timed = 0;
}

/* Output waits for the socket: the client must take some of it within
 * write_timeout of the last progress. */
static int
em_conn_writing(const em_conn_t *c)
{
    return !c->flush_queued && c->out != NULL && evbuffer_get_length(c->out) > 0;
}

/* ms until the earliest deadline of what the connection waits for (0 when
 * one has passed), or -1 for none. Deadlines are absolute: bytes that
 * trickle in do not move the read deadline, reads do not move the write's. */
static int64_t
em_conn_timeout_ms(const em_conn_t *c, uint32_t now)
{
    int64_t ms = -1;

    if (c->read_timed) {
        ms = (int32_t) (c->read_until - now);
        ms = ms < 0 ? 0 : ms;
    }
    if (em_conn_writing(c)) {
        int64_t w = (int64_t) em_loop.conf->limits.write_timeout
                    - (int64_t) (uint32_t) (now - c->write_since);
        w = w < 0 ? 0 : w;
        ms = (ms < 0 || w < ms) ? w : ms;
    }
    return ms;
}

void
em_conn_io_update(em_conn_t *c)
{
    struct timeval tv;
    short          what = 0;
    int            timed;
    int64_t        ms;

    if (c->state == EM_CONN_CLOSED) {
        return;
    }
    if (c->lingering
        || (c->state != EM_CONN_DRAIN && !c->eof
            && (c->in == NULL || evbuffer_get_length(c->in) < em_conn_input_bound(c)))) {
        what |= EV_READ;
    }
    if (em_conn_writing(c)) {
        what |= EV_WRITE;       /* the socket did not take it all */
    }
    ms = em_conn_timeout_ms(c, em_conn_now());
    timed = ms >= 0;
    tv.tv_sec = timed ? ms / 1000 : 0;
    tv.tv_usec = timed ? (ms % 1000) * 1000 : 0;
    /* event_add() with no timeout keeps a timeout set before: dropping one
     * (an upgraded WebSocket, a parked GET) takes a new registration. */
    if (!c->io_registered || what != c->io_what || (c->io_timed && !timed)) {
        if (c->io_registered) {
            event_del(&c->ev);
        }
        event_assign(&c->ev, em_loop.base, c->fd, (short) (what | EV_PERSIST), em_conn_io_cb, c);
        c->io_what = what;
        c->io_registered = 1;
    } else if (!timed) {
        return;             /* registered as wanted, with no timeout */
    }
    c->io_timed = timed ? 1 : 0;
    if (event_add(&c->ev, timed ? &tv : NULL) != 0) {
        /* Without its event the connection would hang: close it. */
        em_log(EM_LOG_ERR, 0, "event_add() for a connection failed");
        em_conn_close(c);
    }
}

struct evbuffer *
em_conn_input(em_conn_t *c)
{
    if (c->in == NULL) {
        c->in = evbuffer_new();
    }
    return c->in;
}

/*
 * Output is written at the end of the loop iteration that made it, straight
 * to the socket: a reply or a broadcast costs one write() per connection and
 * no epoll change. Only what the socket does not take makes the connection
 * wait for EV_WRITE. em_conn_close() takes a connection off the queue.
 */
static em_conn_t   **em_conn_flushq;
static size_t        em_conn_nflush, em_conn_flushcap;
static struct event *em_conn_flush_ev;

static void em_conn_do_write(em_conn_t *c);

static void
em_conn_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;

    for (size_t i = 0; i < em_conn_nflush; i++) {
        em_conn_t *c = em_conn_flushq[i];
        if (c == NULL) {
            continue;           /* closed since */
        }
        c->flush_queued = 0;
        if (c->close_pending) {
            em_conn_close(c);       /* asked for inside a send: done now */
            continue;
        }
        em_conn_do_write(c);
        if (c->process_pending && c->state != EM_CONN_CLOSED) {
            /* Input that waited behind a send (pipelined requests). */
            c->process_pending = 0;
            em_conn_process(c);
        }
        if (c->state != EM_CONN_CLOSED) {
            em_conn_trim(c);
            em_conn_io_update(c);
        }
    }
    em_conn_nflush = 0;
}

/* Without room in the flush queue (out of memory): run the connection's
 * own callback at the end of this pass, as if the socket were writable; it
 * writes, closes or processes what the flush pass would have. */
static void
em_conn_flush_fallback(em_conn_t *c)
{
    if (c->io_registered) {
        event_active(&c->ev, EV_WRITE, 0);
    } else {
        em_conn_io_update(c);
        if (c->state != EM_CONN_CLOSED && c->io_registered) {
            event_active(&c->ev, EV_WRITE, 0);
        }
    }
}

static void
em_conn_flush_later(em_conn_t *c)
{
    if (c->flush_queued || c->state == EM_CONN_CLOSED) {
        return;
    }
    if (em_conn_nflush == em_conn_flushcap) {
        size_t      cap = em_conn_flushcap ? em_conn_flushcap * 2 : 256;
        em_conn_t **q = realloc(em_conn_flushq, cap * sizeof(*q));
        if (q == NULL) {
            em_conn_flush_fallback(c);
            return;
        }
        em_conn_flushq = q;
        em_conn_flushcap = cap;
    }
    if (em_conn_flush_ev == NULL
        && (em_conn_flush_ev = event_new(em_loop.base, -1, 0, em_conn_flush_cb, NULL)) == NULL) {
        em_conn_flush_fallback(c);
        return;
    }
    c->flush_queued = 1;
    c->flush_idx = (uint32_t) em_conn_nflush;
    em_conn_flushq[em_conn_nflush++] = c;
    if (em_conn_nflush == 1) {
        event_active(em_conn_flush_ev, EV_TIMEOUT, 0);
    }
}

/*
 * Empty output buffers go back to a small per-worker pool: a connection with
 * nothing to send holds none, and a broadcast to thousands of connections
 * takes them from the pool instead of making and freeing one each time.
 */
#define EM_CONN_OUT_POOL 4096

static struct evbuffer *em_conn_out_pool[EM_CONN_OUT_POOL];
static size_t           em_conn_out_pooled;

static void
em_conn_out_release(em_conn_t *c)
{
    if (c->out == NULL) {
        return;
    }
    if (evbuffer_get_length(c->out) == 0 && em_conn_out_pooled < EM_CONN_OUT_POOL) {
        em_conn_out_pool[em_conn_out_pooled++] = c->out;
    } else {
        evbuffer_free(c->out);
    }
    c->out = NULL;
}

struct evbuffer *
em_conn_output(em_conn_t *c)
{
    if (c->out == NULL) {
        c->out = em_conn_out_pooled > 0 ? em_conn_out_pool[--em_conn_out_pooled] : evbuffer_new();
        if (c->out == NULL) {
            em_log(EM_LOG_ERR, 0, "evbuffer_new() for a connection's output failed");
            return NULL;
        }
    }
    if (evbuffer_get_length(c->out) == 0) {
        c->write_since = em_conn_now();     /* the write deadline starts now */
    }
    em_conn_flush_later(c);
    return c->out;
}

void
em_conn_process_later(em_conn_t *c)
{
    c->process_pending = 1;
    em_conn_flush_later(c);
}

void
em_conn_close_later(em_conn_t *c)
{
    c->close_pending = 1;
    em_conn_flush_later(c);
}

/* Buffers go as soon as they are empty (the output one to the pool). */
static void
em_conn_trim(em_conn_t *c)
{
    if (c->in != NULL && evbuffer_get_length(c->in) == 0) {
        evbuffer_free(c->in);
        c->in = NULL;
    }
    if (c->out != NULL && evbuffer_get_length(c->out) == 0) {
        em_conn_out_release(c);
    }
}

em_conn_t *
em_conn_new(int fd, const char *data, size_t len)
{
    em_conn_t *c = calloc(1, em_conn_upper.conn_size);

    if (c == NULL) {
        em_log(EM_LOG_ERR, errno, "calloc() for a connection failed");
        close(fd);
        return NULL;
    }
    /* Already non-blocking: the master's accept4(SOCK_NONBLOCK) set it on
     * the open file description that SCM_RIGHTS hands over. */
    c->fd = fd;
    c->state = EM_CONN_OPEN;
    em_loop.nconns++;
    /* The bytes the master already read go first. */
    em_stat_add(em_loop.stats->bytes_in, len);     /* read by the master (or another worker) */
    if (len > 0 && (em_conn_input(c) == NULL || evbuffer_add(c->in, data, len) != 0)) {
        em_log(EM_LOG_ERR, 0, "evbuffer_add() failed");
        if (c->in != NULL) {
            evbuffer_free(c->in);
        }
        close(fd);
        free(c);
        return NULL;
    }
    return c;
}

void
em_conn_start(em_conn_t *c)
{
    em_conn_io_update(c);
    if (c->in != NULL && evbuffer_get_length(c->in) > 0) {
        em_conn_process(c);
        if (c->state != EM_CONN_CLOSED) {
            em_conn_trim(c);
            em_conn_io_update(c);
        }
    }
}

void
em_conn_close(em_conn_t *c)
{
    if (c->state == EM_CONN_CLOSED) {
        return;
    }
    c->state = EM_CONN_CLOSED;
    if (c->io_registered) {
        event_del(&c->ev);
        c->io_registered = 0;
    }
    if (c->flush_queued) {
        em_conn_flushq[c->flush_idx] = NULL;
        c->flush_queued = 0;
    }
    if (c->upper != NULL) {
        void *upper = c->upper;
        c->upper = NULL;
        em_conn_upper.lost(upper, c);
    }
    c->reap_next = em_conn_reap_list;
    em_conn_reap_list = c;
    em_loop_schedule_reap();
}

static void
em_conn_free(em_conn_t *c)
{
    em_conn_upper.free(c);
    em_ws_free(c);
    if (c->in != NULL) {
        evbuffer_free(c->in);
    }
    em_conn_out_release(c);
    em_tls_forget(c->fd);
    close(c->fd);
    free(c);
    em_loop.nconns--;
}

static int
em_conn_reap(void)
{
    em_conn_t *c = em_conn_reap_list;

    em_conn_reap_list = NULL;
    if (c == NULL) {
        return 0;
    }
    while (c != NULL) {
        em_conn_t *next = c->reap_next;
        em_conn_free(c);
        c = next;
    }
    return 1;
}

int
em_conn_init(const em_conn_handlers_t *h)
{
    if (h->conn_size < sizeof(em_conn_t)) {
        em_log(EM_LOG_ERR, 0, "em_conn_init(): connections of %zu bytes", h->conn_size);
        return EM_ERROR;
    }
    em_conn_upper = *h;
    return em_loop_reaper_add(em_conn_reap);
}

void
em_conn_ws_message(em_conn_t *c, const char *data, size_t len, int binary)
{
    em_conn_upper.ws_message(c->upper, c, data, len, binary);
}

const char *
em_conn_upper_id(const em_conn_t *c)
{
    return c->upper != NULL ? em_conn_upper.upper_id(c->upper) : NULL;
}

/*
 * The last response is written: shut our side and read what the client
 * still sends (dropped) until it closes, for EM_CONN_LINGER_MS or
 * EM_CONN_LINGER_BYTES at most. Closing with its bytes unread would make
 * the kernel reset the connection, and a client still sending (a body or
 * a head past its bound) would lose the answer it is owed, as a 413 or a
 * 431. A client that already shut its side is closed at once.
 */
static int em_conn_retriable(int err);

#define EM_CONN_LINGER_MS    2000
#define EM_CONN_LINGER_BYTES (1024 * 1024)

static void
em_conn_linger(em_conn_t *c)
{
    if (c->eof || shutdown(c->fd, SHUT_WR) != 0) {
        em_conn_close(c);
        return;
    }
    c->lingering = 1;
    c->ws_max = 0;                  /* bytes dropped (no WebSocket now) */
    if (c->in != NULL) {
        evbuffer_drain(c->in, evbuffer_get_length(c->in));
    }
    c->read_timed = 1;
    c->read_until = em_conn_now() + EM_CONN_LINGER_MS;
    em_conn_io_update(c);
}

/* Lingering: read and drop; closed at the client's end, an error, or the bound. */
static void
em_conn_linger_read(em_conn_t *c)
{
    char buf[16384];

    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n < 0 && em_conn_retriable(errno)) {
            return;
        }
        if (n <= 0 || (c->ws_max += (uint32_t) n) >= EM_CONN_LINGER_BYTES) {
            em_conn_close(c);
            return;
        }
    }
}

void
em_conn_drain(em_conn_t *c)
{
    if (c->state == EM_CONN_CLOSED || c->state == EM_CONN_DRAIN) {
        return;
    }
    if (c->upper != NULL) {
        void *upper = c->upper;
        c->upper = NULL;
        em_conn_upper.lost(upper, c);
        if (c->state == EM_CONN_CLOSED) {
            return;
        }
    }
    c->state = EM_CONN_DRAIN;
    c->read_timed = 0;
    if (c->out == NULL || evbuffer_get_length(c->out) == 0) {
        em_conn_linger(c);
        return;
    }
    em_conn_io_update(c);
}

/* Hand the buffered input to whoever reads this state. */
static void
em_conn_process(em_conn_t *c)
{
    if (c->state == EM_CONN_WS) {
        em_ws_on_read(c);
    } else if (c->state == EM_CONN_OPEN) {
        em_conn_upper.input(c);
    }
}

static int
em_conn_retriable(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/* The client shut its sending side: the layer above decides what is still
 * owed to it; a WebSocket ends now. */
static void
em_conn_peer_eof(em_conn_t *c)
{
    c->eof = 1;
    if (c->state == EM_CONN_OPEN) {
        em_conn_upper.eof(c);
        return;
    }
    em_conn_close(c);
}

/* Read what the socket has (bounded by the state's input bound). */
static void
em_conn_do_read(em_conn_t *c)
{
    struct evbuffer *in = em_conn_input(c);
    size_t           have, bound = em_conn_input_bound(c);
    int              n;

    if (in == NULL) {
        em_conn_close(c);
        return;
    }
    have = evbuffer_get_length(in);
    if (have >= bound) {
        return;
    }
    /* Straight into the buffer's free space (evbuffer_read would first ask
     * the kernel how much there is: one more system call per message). */
    struct evbuffer_iovec v;
    size_t                want = EM_MIN(bound - have, (size_t) 16384);
    if (evbuffer_reserve_space(in, (ev_ssize_t) want, &v, 1) < 1) {
        em_conn_close(c);
        return;
    }
    n = (int) read(c->fd, v.iov_base, EM_MIN(v.iov_len, want));
    if (n > 0) {
        v.iov_len = (size_t) n;
        evbuffer_commit_space(in, &v, 1);
        em_stat_add(em_loop.stats->bytes_in, n);
    } else {
        evbuffer_commit_space(in, NULL, 0);
    }
    if (n == 0) {
        em_conn_peer_eof(c);
        return;
    }
    if (n < 0 && !em_conn_retriable(errno)) {
        em_conn_close(c);       /* a reset or another error */
        return;
    }
    if (n > 0) {
        em_conn_process(c);
    }
}

/*
 * What a WebSocket client left unread after a write: over output_hard, or
 * over output_soft for output_soft_time, it is closed (EM_ERROR; logged and
 * counted here). Only what the kernel did not take counts, so a burst that
 * a reading client takes at once never trips it.
 */
static int
em_conn_output_over(em_conn_t *c)
{
    const em_conf_limits_t *lim = &em_loop.conf->limits;
    size_t                  left = evbuffer_get_length(c->out);
    uint32_t                now;

    if (left <= lim->output_soft) {
        c->soft_since = 0;
        return EM_OK;
    }
    if (left > lim->output_hard) {
        em_loop_violation(c->fd, em_conn_upper_id(c), EM_LIMIT_OUTPUT,
                          "%zu bytes of output unread (output_hard %zu)", left, lim->output_hard);
        return EM_ERROR;
    }
    now = em_conn_now();
    if (c->soft_since == 0) {
        c->soft_since = now | 1;        /* 0 means "under the soft limit" */
        return EM_OK;
    }
    if ((uint32_t) (now - c->soft_since) >= lim->output_soft_time) {
        em_loop_violation(c->fd, em_conn_upper_id(c), EM_LIMIT_OUTPUT,
                          "over %zu bytes of output unread for %u ms (output_soft)",
                          lim->output_soft, lim->output_soft_time);
        return EM_ERROR;
    }
    return EM_OK;
}

static void
em_conn_do_write(em_conn_t *c)
{
    if (c->out != NULL && evbuffer_get_length(c->out) > 0) {
        int n = evbuffer_write(c->out, c->fd);
        if (n < 0 && !em_conn_retriable(errno)) {
            em_conn_close(c);
            return;
        }
        if (n > 0) {
            em_stat_add(em_loop.stats->bytes_out, n);
            c->write_since = em_conn_now();     /* progress: the write deadline moves */
        }
        if (c->state == EM_CONN_WS && em_conn_output_over(c) != EM_OK) {
            em_conn_close(c);
            return;
        }
    }
    if (c->state == EM_CONN_DRAIN && !c->lingering
        && (c->out == NULL || evbuffer_get_length(c->out) == 0)) {
        em_conn_linger(c);
    }
}

/* A deadline of em_conn_timeout_ms() passed (or was moved: then wait again). */
static void
em_conn_timed_out(em_conn_t *c)
{
    const em_conf_limits_t *lim = &em_loop.conf->limits;
    uint32_t                now = em_conn_now();

    if (em_conn_writing(c) && (uint32_t) (now - c->write_since) >= lim->write_timeout) {
        em_loop_violation(c->fd, em_conn_upper_id(c), EM_LIMIT_WRITE_TIMEOUT,
                          "took none of its %zu bytes of output for %u ms",
                          evbuffer_get_length(c->out), lim->write_timeout);
        em_conn_close(c);
        return;
    }
    if (c->read_timed && (int32_t) (c->read_until - now) <= 0 && c->lingering) {
        em_conn_close(c);           /* the client kept sending, or kept silent */
        return;
    }
    if (c->read_timed && (int32_t) (c->read_until - now) <= 0) {
        c->read_timed = 0;
        em_conn_upper.read_timeout(c);
        if (c->state != EM_CONN_CLOSED) {
            em_conn_io_update(c);
        }
        return;
    }
    em_conn_io_update(c);
}

static void
em_conn_io_cb(evutil_socket_t fd, short what, void *arg)
{
    em_conn_t *c = arg;
    (void) fd;

    if (c->close_pending) {
        em_conn_close(c);       /* asked for when the flush queue had no room */
        return;
    }
    if (what & EV_TIMEOUT) {
        em_conn_timed_out(c);
        if (c->state != EM_CONN_CLOSED) {
            em_conn_trim(c);
        }
        return;
    }
    if (what & EV_WRITE) {
        em_conn_do_write(c);
        if (c->process_pending && c->state != EM_CONN_CLOSED) {
            c->process_pending = 0;
            em_conn_process(c);
        }
    }
    if ((what & EV_READ) && c->state != EM_CONN_CLOSED && c->state != EM_CONN_DRAIN) {
        em_conn_do_read(c);
    } else if ((what & EV_READ) && c->lingering && c->state == EM_CONN_DRAIN) {
        em_conn_linger_read(c);
    }
    if (c->state != EM_CONN_CLOSED) {
        em_conn_trim(c);
        em_conn_io_update(c);
    }
}
