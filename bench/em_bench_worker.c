/*
 * em_bench_worker.c - one worker process of emitd-bench: its share of the
 * connections and the scenarios' client side.
 *
 *   connect    -c loops of: open, full handshake (EIO open + CONNECT), close
 *   idle       open every connection, hold it, answer pings
 *   echo       every connection: emit "echo" with an ack, on the ack the next
 *   broadcast  every connection joins the room; worker 0 also holds the
 *              publisher, which emits "publish" at --rate (0: on each ack)
 *   reconnect  open every connection; then each holds for a random time
 *              around --hold, drops and reconnects
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "em_eio.h"
#include "em_bench_conn.h"

#define EM_BENCH_SETUP_WINDOW  64      /* handshakes in flight per worker */
#define EM_BENCH_RETRY_MS      10      /* before reopening after an error */
#define EM_BENCH_DRAIN_MAX_MS  10000
#define EM_BENCH_QUIET_US      200000  /* broadcast drain: no tick this long */
#define EM_BENCH_RATE_TICK_MS  5
#define EM_BENCH_RATE_BURST    1000    /* publishes per rate tick at most */

typedef struct {
    em_bench_worker_t  w;
    int                ctl_fd, res_fd;
    struct event      *ctl_ev, *rate_ev, *drain_ev;
    unsigned           setup_next, setup_inflight, setup_left;
    unsigned           pumping:1, ready_sent:1;
    uint64_t           t_go, t_stop, last_tick;
    uint64_t           outstanding;      /* acks awaited */
    uint64_t           rate_acks;        /* publishes acked at a fixed rate */
    em_bench_conn_t   *publisher;
    char              *filler;
    char              *msg;
    size_t             msg_cap;
    em_str_t           nsp;
    int                status;
} em_bench_proc_t;

static em_bench_proc_t P;

uint64_t
em_bench_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* Write one message to the parent, whole (the pipe is ours alone). */
static int
em_bench_msg_send(uint32_t type, const void *body, uint32_t len)
{
    em_bench_msg_t hdr = { type, len };
    const char    *parts[2] = { (const char *) &hdr, body };
    size_t         lens[2] = { sizeof(hdr), len }, off;
    ssize_t        n;
    int            i;

    for (i = 0; i < 2; i++) {
        for (off = 0; off < lens[i]; off += (size_t) n) {
            n = write(P.res_fd, parts[i] + off, lens[i] - off);
            if (n < 0) {
                if (errno == EINTR) {
                    n = 0;
                    continue;
                }
                return EM_ERROR;
            }
        }
    }
    return EM_OK;
}

static void
em_bench_ack_clear(em_bench_conn_t *c)
{
    if (c->ack_wait >= 0) {
        c->ack_wait = -1;
        P.outstanding--;
    }
}

/* Open (or reopen) a connection with a deadline for its handshake. */
static void
em_bench_open(em_bench_conn_t *c)
{
    if (em_bench_conn_start(c) == EM_OK && c->state != EM_CONN_IDLE) {
        em_bench_conn_arm(c, P.w.opts->timeout_ms);
    }
}

static void
em_bench_setup_pump(void)
{
    if (P.pumping || P.w.phase == EM_BENCH_PHASE_DONE) {
        return;
    }
    P.pumping = 1;
    while (P.setup_inflight < EM_BENCH_SETUP_WINDOW && P.setup_next < P.w.nconns) {
        em_bench_conn_t *c = &P.w.conns[P.setup_next++];

        P.setup_inflight++;
        em_bench_open(c);
    }
    P.pumping = 0;
    if (P.setup_left == 0 && !P.ready_sent) {
        P.ready_sent = 1;
        (void) em_bench_msg_send(EM_BENCH_MSG_READY, NULL, 0);
    }
}

/* A connection's set-up is over, successfully or not. */
static void
em_bench_setup_resolve(em_bench_conn_t *c)
{
    if (c->setup_done) {
        return;
    }
    c->setup_done = 1;
    P.setup_inflight--;
    P.setup_left--;
    em_bench_setup_pump();
}

/* Build "<header>[<args>]" for an event with an ack id into P.msg. */
static size_t
em_bench_event(int64_t id, const char *fmt_args, ...)
{
    ssize_t  h;
    int      n;
    va_list  ap;

    h = em_sio_encode_header(EM_SIO_EVENT, 0, P.nsp, id, 1, P.msg, P.msg_cap);
    if (h < 0) {
        return 0;
    }
    va_start(ap, fmt_args);
    n = vsnprintf(P.msg + h, P.msg_cap - (size_t) h, fmt_args, ap);
    va_end(ap);
    if (n < 0 || (size_t) n >= P.msg_cap - (size_t) h) {
        return 0;
    }
    return (size_t) h + (size_t) n;
}

/* Emit with an ack and arm the ack's deadline. */
static void
em_bench_request(em_bench_conn_t *c, size_t len, int64_t id)
{
    if (len == 0 || em_bench_conn_send_sio(c, P.msg, len) != EM_OK) {
        em_bench_conn_fail(c, 0, "cannot send an event");
        return;
    }
    c->ack_wait = id;
    c->t_sent = em_bench_now_us();
    P.outstanding++;
    em_bench_conn_arm(c, P.w.opts->timeout_ms);
}

static void
em_bench_send_echo(em_bench_conn_t *c)
{
    int64_t id = c->next_id++;
    size_t  n = em_bench_event(id, "[\"echo\",{\"t\":%llu,\"p\":\"%s\"}]",
                               (unsigned long long) em_bench_now_us(), P.filler);

    P.w.c.requests++;
    em_bench_request(c, n, id);
}

static void
em_bench_send_join(em_bench_conn_t *c)
{
    int64_t id = c->next_id++;
    size_t  n = em_bench_event(id, "[\"join\",\"%s\"]", EM_BENCH_ROOM);

    c->state = EM_CONN_JOIN;
    em_bench_request(c, n, id);
}

static void
em_bench_publish(em_bench_conn_t *c)
{
    int64_t id = c->next_id++;
    size_t  n = em_bench_event(id, "[\"publish\",\"%s\",{\"t\":%llu,\"n\":%llu,\"p\":\"%s\"}]",
                               EM_BENCH_ROOM, (unsigned long long) em_bench_now_us(),
                               (unsigned long long) P.w.c.publishes, P.filler);

    P.w.c.publishes++;
    if (P.w.opts->rate == 0) {
        em_bench_request(c, n, id);               /* the next one on its ack */
    } else if (n == 0 || em_bench_conn_send_sio(c, P.msg, n) != EM_OK) {
        em_bench_conn_fail(c, 0, "cannot send a publish");
    }
    /* At a fixed rate every publish still asks for an ack (counted in
     * rate_acks), so that the drain knows when the server has sent them
     * all out. */
}

/* Reconnect: a random hold in [0, 2 * --hold] ms, then drop; with --storm
 * exactly --hold ms, so that connections opened together drop together. */
static void
em_bench_hold(em_bench_conn_t *c)
{
    unsigned h = P.w.opts->hold_ms;

    if (P.w.opts->storm) {
        em_bench_conn_arm(c, h);
        return;
    }
    em_bench_conn_arm(c, h ? (unsigned) (em_bench_rand(&P.w) % (2u * h + 1)) : 0);
}

void
em_bench_on_connected(em_bench_conn_t *c)
{
    em_bench_worker_t *w = c->w;
    uint64_t           dt = em_bench_now_us() - c->t_start;
    int                again = c->ever_opened;

    em_bench_hist_record(&w->connect, dt);
    w->c.handshakes++;
    if (!c->ever_opened) {
        c->ever_opened = 1;
        if (!c->publisher) {
            w->c.opened++;
        }
    }

    switch (w->opts->scenario) {
    case EM_BENCH_CONNECT:
        if (w->phase == EM_BENCH_PHASE_RUN) {
            em_bench_hist_record(&w->latency, dt);
        }
        em_bench_conn_close(c);                   /* on_closed reopens it */
        return;
    case EM_BENCH_RECONNECT:
        if (again && w->phase == EM_BENCH_PHASE_RUN) {
            em_bench_hist_record(&w->latency, dt);
            w->c.reconnects++;
        }
        if (w->phase == EM_BENCH_PHASE_RUN) {
            em_bench_hold(c);
        }
        break;
    case EM_BENCH_BROADCAST:
        if (!c->publisher) {
            em_bench_send_join(c);
            return;                               /* resolved on the ack */
        }
        if (w->phase == EM_BENCH_PHASE_RUN && w->opts->rate == 0 && c->ack_wait < 0) {
            em_bench_publish(c);
        }
        break;
    case EM_BENCH_ECHO:
        if (w->phase == EM_BENCH_PHASE_RUN) {
            em_bench_send_echo(c);
        }
        break;
    case EM_BENCH_IDLE:
        break;
    }
    em_bench_setup_resolve(c);
}

void
em_bench_on_packet(em_bench_conn_t *c, const em_sio_packet_t *pkt)
{
    em_bench_worker_t *w = c->w;
    uint64_t           now;
    int64_t            t;

    if (pkt->type == EM_SIO_ACK) {
        if (c->publisher && w->opts->rate > 0) {
            w->c.acks++;
            P.rate_acks++;
            return;
        }
        if (pkt->id != c->ack_wait) {
            return;                               /* late: already timed out */
        }
        em_bench_ack_clear(c);
        evtimer_del(c->timer);
        now = em_bench_now_us();
        if (c->state == EM_CONN_JOIN) {
            if (!em_str_eq(pkt->data, "[true]")) {
                em_bench_conn_fail(c, 0, "join refused");
                return;
            }
            c->state = EM_CONN_READY;
            w->c.joined++;
            em_bench_setup_resolve(c);
            return;
        }
        w->c.acks++;
        if (c->publisher) {
            if (w->phase == EM_BENCH_PHASE_RUN && w->opts->rate == 0) {
                em_bench_publish(c);
            }
            return;
        }
        if (w->phase >= EM_BENCH_PHASE_RUN) {
            em_bench_hist_record(&w->latency, now - c->t_sent);
        }
        if (w->phase == EM_BENCH_PHASE_RUN && w->opts->scenario == EM_BENCH_ECHO) {
            em_bench_send_echo(c);
        }
        return;
    }

    if (pkt->type == EM_SIO_EVENT && pkt->data.len > 8
        && memcmp(pkt->data.data, "[\"tick\",", 8) == 0)
    {
        now = em_bench_now_us();
        w->c.deliveries++;
        P.last_tick = now;
        if (em_bench_json_int(pkt->data.data, pkt->data.len, "t", &t) == EM_OK
            && t > 0 && (uint64_t) t <= now)
        {
            em_bench_hist_record(&w->latency, now - (uint64_t) t);
        }
    }
}

void
em_bench_on_closed(em_bench_conn_t *c, int error)
{
    em_bench_worker_t *w = c->w;

    em_bench_ack_clear(c);
    em_bench_setup_resolve(c);
    if (w->phase != EM_BENCH_PHASE_RUN) {
        return;
    }
    if (w->opts->scenario == EM_BENCH_CONNECT || w->opts->scenario == EM_BENCH_RECONNECT) {
        em_bench_conn_arm(c, error ? EM_BENCH_RETRY_MS : 0);   /* reopen */
    }
}

void
em_bench_on_timer(em_bench_conn_t *c)
{
    em_bench_worker_t *w = c->w;

    if (c->state == EM_CONN_IDLE) {
        if (w->phase == EM_BENCH_PHASE_RUN) {
            em_bench_open(c);
        }
        return;
    }
    if (c->state != EM_CONN_READY) {
        w->c.timeouts++;                          /* handshake or join */
        em_bench_conn_close(c);
        return;
    }
    if (c->ack_wait >= 0) {
        w->c.timeouts++;
        em_bench_ack_clear(c);
        if (w->phase == EM_BENCH_PHASE_RUN) {
            if (c->publisher) {
                em_bench_publish(c);
            } else if (w->opts->scenario == EM_BENCH_ECHO) {
                em_bench_send_echo(c);
            }
        }
        return;
    }
    if (w->opts->scenario == EM_BENCH_RECONNECT && w->phase == EM_BENCH_PHASE_RUN) {
        em_bench_conn_close(c);                   /* the drop; reopened at once */
    }
}

/* Broadcast at a fixed rate: send the publishes that are due. */
static void
em_bench_rate_cb(evutil_socket_t fd, short what, void *arg)
{
    em_bench_conn_t *c = P.publisher;
    uint64_t         due, n = 0;

    (void) fd;
    (void) what;
    (void) arg;
    if (P.w.phase != EM_BENCH_PHASE_RUN || c == NULL || c->state != EM_CONN_READY) {
        return;
    }
    due = (em_bench_now_us() - P.t_go) * P.w.opts->rate / 1000000u;
    em_bench_conn_enter(c);
    while (P.w.c.publishes < due && n++ < EM_BENCH_RATE_BURST && !c->closing) {
        em_bench_publish(c);
    }
    em_bench_conn_leave(c);
}

static void
em_bench_finish(void)
{
    static em_bench_result_t r;

    if (P.w.phase == EM_BENCH_PHASE_DONE) {
        return;
    }
    P.w.phase = EM_BENCH_PHASE_DONE;
    memset(&r, 0, sizeof(r));
    r.version = EM_BENCH_RESULT_VERSION;
    r.worker = P.w.index;
    r.measured_us = P.t_stop > P.t_go ? P.t_stop - P.t_go : 0;
    r.c = P.w.c;
    r.latency = P.w.latency;
    r.connect = P.w.connect;
    if (em_bench_msg_send(EM_BENCH_MSG_RESULT, &r, sizeof(r)) != EM_OK) {
        P.status = 1;
    }
    event_base_loopbreak(P.w.base);
}

static void
em_bench_drain_cb(evutil_socket_t fd, short what, void *arg)
{
    uint64_t now = em_bench_now_us(), limit;

    (void) fd;
    (void) what;
    (void) arg;
    limit = (uint64_t) EM_MIN(P.w.opts->timeout_ms, EM_BENCH_DRAIN_MAX_MS) * 1000u;
    if (now - P.t_stop >= limit) {
        em_bench_finish();
        return;
    }
    switch (P.w.opts->scenario) {
    case EM_BENCH_ECHO:
        if (P.outstanding == 0) {
            em_bench_finish();
        }
        return;
    case EM_BENCH_BROADCAST:
        if (P.outstanding == 0
            && (P.publisher == NULL || P.w.opts->rate == 0
                || P.publisher->state != EM_CONN_READY || P.rate_acks >= P.w.c.publishes)
            && now - EM_MAX(P.last_tick, P.t_stop) >= EM_BENCH_QUIET_US)
        {
            em_bench_finish();
        }
        return;
    default:
        em_bench_finish();
        return;
    }
}

static void
em_bench_go(void)
{
    unsigned i;

    if (P.w.phase != EM_BENCH_PHASE_SETUP) {
        return;
    }
    P.w.phase = EM_BENCH_PHASE_RUN;
    P.t_go = em_bench_now_us();
    for (i = 0; i < P.w.nconns; i++) {
        em_bench_conn_t *c = &P.w.conns[i];

        em_bench_conn_enter(c);
        switch (P.w.opts->scenario) {
        case EM_BENCH_CONNECT:
            if (c->state == EM_CONN_IDLE) {
                em_bench_open(c);
            }
            break;
        case EM_BENCH_RECONNECT:
            if (c->state == EM_CONN_READY) {
                em_bench_hold(c);
            }
            break;
        case EM_BENCH_ECHO:
            if (c->state == EM_CONN_READY && c->ack_wait < 0) {
                em_bench_send_echo(c);
            }
            break;
        case EM_BENCH_BROADCAST:
            if (c->publisher && c->state == EM_CONN_READY && P.w.opts->rate == 0) {
                em_bench_publish(c);
            }
            break;
        case EM_BENCH_IDLE:
            break;
        }
        em_bench_conn_leave(c);
    }
    if (P.publisher != NULL && P.w.opts->rate > 0) {
        struct timeval tv = { 0, EM_BENCH_RATE_TICK_MS * 1000 };

        evtimer_add(P.rate_ev, &tv);
    }
}

static void
em_bench_stop(void)
{
    struct timeval tv = { 0, 20000 };

    if (P.w.phase >= EM_BENCH_PHASE_DRAIN) {
        return;
    }
    if (P.w.phase == EM_BENCH_PHASE_SETUP) {
        P.t_go = em_bench_now_us();
    }
    P.w.phase = EM_BENCH_PHASE_DRAIN;
    P.t_stop = em_bench_now_us();
    evtimer_del(P.rate_ev);
    event_add(P.drain_ev, &tv);
}

static void
em_bench_ctl_cb(evutil_socket_t fd, short what, void *arg)
{
    char    buf[16];
    ssize_t n, i;

    (void) what;
    (void) arg;
    n = read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }
    if (n <= 0) {
        P.status = 1;                             /* the parent is gone */
        P.w.phase = EM_BENCH_PHASE_DONE;
        event_base_loopbreak(P.w.base);
        return;
    }
    for (i = 0; i < n; i++) {
        if (buf[i] == EM_BENCH_CTL_GO) {
            em_bench_go();
        } else if (buf[i] == EM_BENCH_CTL_STOP) {
            em_bench_stop();
        } else if (buf[i] == EM_BENCH_CTL_PROGRESS) {
            (void) em_bench_msg_send(EM_BENCH_MSG_PROGRESS, &P.w.c, sizeof(P.w.c));
        }
    }
}

/* The upgrade request (websocket) or handshake request line (polling). */
static int
em_bench_build_request(em_bench_worker_t *w)
{
    const em_bench_url_t *u = &w->opts->target;
    unsigned char         key[16];
    const char           *lb = strchr(u->host, ':') ? "[" : "";
    const char           *rb = *lb ? "]" : "";
    int                   n;
    unsigned              i;

    for (i = 0; i < sizeof(key); i++) {
        key[i] = (unsigned char) em_bench_rand(w);
    }
    em_eio_b64_encode(key, sizeof(key), w->ws_key);
    w->ws_key[24] = '\0';
    em_bench_ws_accept(w->ws_key, w->ws_accept);
    n = snprintf(w->request, sizeof(w->request),
                 "GET %s?EIO=4&transport=websocket HTTP/1.1\r\n"
                 "Host: %s%s%s:%s\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "\r\n",
                 u->path, lb, u->host, rb, u->port, w->ws_key);
    return n > 0 && (size_t) n < sizeof(w->request) ? EM_OK : EM_ERROR;
}

int
em_bench_worker_run(const em_bench_opts_t *opts, unsigned index, int ctl_fd, int res_fd)
{
    em_bench_worker_t *w = &P.w;
    unsigned           share, i;

    memset(&P, 0, sizeof(P));
    P.ctl_fd = ctl_fd;
    P.res_fd = res_fd;
    P.nsp = (em_str_t) { opts->nsp, strlen(opts->nsp) };
    w->opts = opts;
    w->index = index;
    w->prng = (em_bench_now_us() ^ ((uint64_t) getpid() << 32) ^ index) | 1;
    em_bench_hist_init(&w->latency);
    em_bench_hist_init(&w->connect);

    /* Batch the epoll changes of a loop pass (a connection enables and
     * disables writing several times per handshake): the load generator
     * must not spend its CPU on epoll_ctl(). Its sockets are its own, never
     * dup()ed, which is what the changelist needs. */
    struct event_config *cfg = event_config_new();
    if (cfg != NULL) {
        event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        w->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    if (w->base == NULL) {
        w->base = event_base_new();
    }
    if (w->base == NULL || em_bench_build_request(w) != EM_OK) {
        fprintf(stderr, "emitd-bench: worker %u: event_base_new() failed\n", index);
        return 1;
    }
    P.filler = malloc(opts->payload + 1);
    P.msg_cap = opts->payload + 512;
    P.msg = malloc(P.msg_cap);
    w->scratch_cap = P.msg_cap + 16;
    w->scratch = malloc(w->scratch_cap);
    share = opts->connections / opts->workers
            + (index < opts->connections % opts->workers ? 1 : 0);
    w->nconns = share + (opts->scenario == EM_BENCH_BROADCAST && index == 0 ? 1 : 0);
    w->conns = calloc(w->nconns ? w->nconns : 1, sizeof(em_bench_conn_t));
    if (P.filler == NULL || P.msg == NULL || w->scratch == NULL || w->conns == NULL) {
        fprintf(stderr, "emitd-bench: worker %u: out of memory\n", index);
        return 1;
    }
    memset(P.filler, 'x', opts->payload);
    P.filler[opts->payload] = '\0';

    for (i = 0; i < w->nconns; i++) {
        em_bench_conn_t *c = &w->conns[i];

        c->w = w;
        c->gidx = i < share ? index + i * opts->workers : opts->connections;
        c->ack_wait = -1;
        c->timer = evtimer_new(w->base, em_bench_conn_timer_cb, c);
        if (c->timer == NULL) {
            return 1;
        }
        if (i >= share) {
            c->publisher = 1;
            P.publisher = c;
        }
    }
    P.ctl_ev = event_new(w->base, ctl_fd, EV_READ | EV_PERSIST, em_bench_ctl_cb, NULL);
    P.rate_ev = event_new(w->base, -1, EV_PERSIST, em_bench_rate_cb, NULL);
    P.drain_ev = event_new(w->base, -1, EV_PERSIST, em_bench_drain_cb, NULL);
    if (P.ctl_ev == NULL || P.rate_ev == NULL || P.drain_ev == NULL) {
        return 1;
    }
    event_add(P.ctl_ev, NULL);

    /* Set-up: connect needs none; the others open every connection. */
    if (opts->scenario == EM_BENCH_CONNECT) {
        P.setup_next = w->nconns;
        for (i = 0; i < w->nconns; i++) {
            w->conns[i].setup_done = 1;
        }
    } else {
        P.setup_left = w->nconns;
    }
    em_bench_setup_pump();

    event_base_dispatch(w->base);

    /* Tear down; closes from here on are not errors. */
    w->phase = EM_BENCH_PHASE_DONE;
    for (i = 0; i < w->nconns; i++) {
        em_bench_conn_close(&w->conns[i]);
        event_free(w->conns[i].timer);
    }
    event_free(P.ctl_ev);
    event_free(P.rate_ev);
    event_free(P.drain_ev);
    event_base_free(w->base);
    free(w->conns);
    free(w->scratch);
    free(P.msg);
    free(P.filler);
    return P.status;
}
