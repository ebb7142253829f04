/*
 * em_eio_session.c - Engine.IO v4 sessions.
 *
 * A session lives in the worker whose slot its sid encodes. Its transport is
 * either long-polling (a parked GET answered when packets are queued, POSTs
 * carrying client packets) or a WebSocket. A polling session can be upgraded:
 * the client opens a WebSocket with the same sid, sends "2probe", we answer
 * "3probe" and answer any parked GET with a noop "6" so the client can pause
 * polling; its "5" completes the switch and the queue is flushed over the
 * WebSocket. Heartbeats: a ping every ping_interval, and a close if no pong
 * comes within ping_timeout.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "em_eio_session.h"
#include "em_log.h"
#include "em_loop.h"

#define EM_EIO_SESSION_UPGRADE_TIMEOUT 10000          /* ms for "5" after "2probe" */
#define EM_EIO_SESSION_CLOSE_TIMEOUT   30000          /* ms to deliver the last packets */

_Static_assert(sizeof(em_eio_session_t) <= 184, "em_eio_session_t outgrew its 192-byte malloc chunk");

/* The POST whose packets are being handled, so that a limit broken by one
 * of them is reported with that connection's address. */
static em_http_conn_t *em_eio_session_post_conn;

static em_buf_t *em_eio_session_pkt(const char *text);
static void em_eio_session_free_queue(em_eio_session_t *s);
static void em_eio_session_finish(em_eio_session_t *s);
static void em_eio_session_abort(em_eio_session_t *s, const char *reason);

/* ---- the layer above: Socket.IO or a raw Engine.IO script ---- */

static em_eio_upper_t     em_eio_upper[2];       /* [0] Socket.IO, [1] raw endpoints */
static em_eio_session_t *em_eio_sessions;       /* uthash by sid */
static int                em_eio_stopping;       /* close_all ran: no new sessions */

/*
 * Whether the cluster holds max_connections sessions already: the sum of
 * every worker's session gauges in the state segment (workers admitting at
 * the same moment may each take one more). Logged at most once a second.
 */
static int
em_eio_full(void)
{
    static time_t last;
    unsigned      max = em_loop.conf->max_connections;

    if (max == 0) {
        return 0;
    }
    uint64_t n = em_loop.state != NULL ? em_state_sessions(em_loop.state, em_loop.nworkers)
                                       : em_eio_session_count();
    if (n < max) {
        return 0;
    }
    if (time(NULL) != last) {
        last = time(NULL);
        em_log(EM_LOG_WARN, 0, "max_connections (%u) reached: new sessions are refused with 503", max);
    }
    return 1;
}

static uint32_t           em_eio_nsessions;
static em_eio_session_t *em_eio_reap_list;      /* finished, freed by the reaper */

static const em_eio_upper_t *
em_upper(const em_eio_session_t *s)
{
    return &em_eio_upper[s->endpoint->raw ? 1 : 0];
}

/*
 * A session's line in the access log, as it closes: when, the worker, the
 * address, the sid, its transports, what the layer above says (namespaces,
 * user), how long it lasted, the message bytes each way, and why it closed.
 */
static void
em_eio_session_access(em_eio_session_t *s, const char *reason)
{
    const em_eio_extra_t *x = s->extra;
    char                  line[1024], upper[512] = "", iso[40] = "";
    struct timespec       now;
    struct tm             tm;

    if (x == NULL || !em_access_on()) {
        return;
    }
    if (em_upper(s)->describe != NULL) {
        em_upper(s)->describe(s, upper, sizeof(upper));
    }
    clock_gettime(CLOCK_REALTIME, &now);
    if (gmtime_r(&now.tv_sec, &tm) != NULL) {
        size_t n = strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(iso + n, sizeof(iso) - n, ".%03ldZ", now.tv_nsec / 1000000);
    }
    int64_t ms = em_state_now() - x->started;
    int     n = snprintf(line, sizeof(line),
                         "%s access worker=%u addr=%s sid=%s transport=%s%s%s%s duration=%lld.%03lld "
                         "in=%llu out=%llu reason=\"%s\"",
                         iso, em_loop.slot + 1, x->addr[0] ? x->addr : "-", s->sid,
                         (x->transports & (1u << EM_TRANSPORT_POLLING)) ? "polling" : "",
                         (x->transports & (1u << EM_TRANSPORT_POLLING))
                                 && (x->transports & (1u << EM_TRANSPORT_WEBSOCKET)) ? "," : "",
                         (x->transports & (1u << EM_TRANSPORT_WEBSOCKET)) ? "websocket" : "",
                         upper, (long long) (ms / 1000), (long long) (ms % 1000),
                         (unsigned long long) x->bytes_in, (unsigned long long) x->bytes_out,
                         reason != NULL ? reason : "");
    if (n > 0) {
        em_access_write(line, EM_MIN((size_t) n, sizeof(line) - 1));
    }
}

static void
em_upper_close(em_eio_session_t *s, const char *reason)
{
    if (s->upper == NULL) {
        return;
    }
    em_eio_session_access(s, reason);
    em_upper(s)->close(s, reason);
    s->upper = NULL;
}

/* ---- heartbeats ---- */

static void
em_eio_session_arm(em_eio_session_t *s, unsigned ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    evtimer_add(s->timer, &tv);
}

static void
em_eio_session_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    em_eio_session_t *s = arg;
    (void) fd;
    (void) what;

    if (!em_eio_session_open(s)) {
        /* A graceful close whose last packets were never fetched. */
        em_eio_session_finish(s);
        return;
    }
    if (s->overflow) {
        em_eio_session_abort(s, "transport error");
        return;
    }
    if (s->awaiting_pong) {
        em_eio_session_abort(s, "ping timeout");
        return;
    }
    s->awaiting_pong = 1;
    em_buf_t *ping = em_eio_session_pkt("2");
    if (ping != NULL) {
        em_eio_session_send(s, ping);
        em_buf_unref(ping);
    }
    em_eio_session_arm(s, s->endpoint->ping_timeout);
}

static void
em_eio_session_upgrade_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    em_eio_session_t *s = arg;
    (void) fd;
    (void) what;

    if (s->probe != NULL) {
        em_conn_t *p = s->probe;
        s->probe = NULL;
        s->upgrading = 0;
        p->upper = NULL;
        em_ws_close(p, 1000, NULL);
    }
}

/* ---- sending ---- */

/* The descriptor of the connection a session's client is on now, for the
 * client's address (-1: none at the moment). */
static int
em_eio_session_fd(const em_eio_session_t *s)
{
    const em_conn_t *c = s->ws       ? s->ws
                         : s->get    ? &s->get->conn
                         : s->probe  ? s->probe
                         : em_eio_session_post_conn ? &em_eio_session_post_conn->conn
                                     : NULL;

    return c != NULL ? c->fd : -1;
}

static em_buf_t *
em_eio_session_pkt(const char *text)
{
    return em_buf_copy(text, strlen(text), 0);
}

/* Close a polling session that cannot take more output, from its timer:
 * the caller (a broadcast loop, a script) may still use its sockets. */
static void
em_eio_session_overflow(em_eio_session_t *s, em_limit_t why)
{
    s->refused = (uint8_t) why;
    s->overflow = 1;
    event_active(s->timer, EV_TIMEOUT, 0);
}

/* Answer the parked GET with every queued packet (or a noop). */
static void
em_eio_session_flush_get(em_eio_session_t *s, int noop_if_empty)
{
    em_http_conn_t  *c = s->get;
    struct evbuffer *body;

    if (c == NULL || (s->q_head == NULL && !noop_if_empty)) {
        return;
    }
    body = evbuffer_new();
    if (body == NULL) {
        em_log(EM_LOG_ERR, 0, "evbuffer_new() for a polling response failed");
        return;     /* the packets stay queued for the next try */
    }
    if (s->q_head == NULL || s->upgrading) {
        evbuffer_add(body, "6", 1);
    } else {
        for (em_outq_t *q = s->q_head; q != NULL; q = q->next) {
            int ok = q == s->q_head || evbuffer_add(body, "\x1e", 1) == 0;
            if (q->buf->binary) {
                size_t blen = em_eio_b64_encoded_len(q->buf->len);
                struct evbuffer_iovec v;
                ok = ok && evbuffer_add(body, "b", 1) == 0
                     && evbuffer_reserve_space(body, (ev_ssize_t) blen, &v, 1) == 1;
                if (ok) {
                    v.iov_len = em_eio_b64_encode((const unsigned char *) q->buf->data,
                                                  q->buf->len, v.iov_base);
                    ok = evbuffer_commit_space(body, &v, 1) == 0;
                }
            } else {
                ok = ok && evbuffer_add(body, q->buf->data, q->buf->len) == 0;
            }
            if (!ok) {
                /* A payload with a packet missing would be worse than none:
                 * the session closes (from its timer: this may be inside a
                 * send) and the client recovers. */
                evbuffer_free(body);
                em_loop_violation(c->conn.fd, s->sid, EM_LIMIT_MEMORY,
                                  "no memory for a polling response of %zu bytes", s->q_bytes);
                em_eio_session_overflow(s, EM_LIMIT_MEMORY);
                return;
            }
        }
        em_eio_session_free_queue(s);   /* all in the body now */
    }
    s->get = NULL;
    c->conn.upper = NULL;
    em_http_conn_respond_body(c, body);
    evbuffer_free(body);
}

void
em_eio_session_send(em_eio_session_t *s, em_buf_t *buf)
{
    if (!em_eio_session_open(s)) {
        return;
    }
    em_stat_add(em_loop.stats->messages_out, 1);
    if (s->extra != NULL) {
        s->extra->bytes_out += buf->len;
    }
    if (s->transport == EM_TRANSPORT_WEBSOCKET) {
        if (s->ws != NULL) {
            em_ws_send(s->ws, buf);
        }
        return;
    }
    if (s->overflow) {
        return;             /* closing once the sender is done */
    }
    size_t     hard = em_loop.conf->limits.output_hard;
    int        over = s->q_bytes > 0 && s->q_bytes + buf->len > hard;
    em_outq_t *q = over ? NULL : malloc(sizeof(*q));
    if (q == NULL) {
        /* Not now: the caller (a broadcast loop, a script) still uses this
         * session's sockets. The timer callback closes it right after; a
         * packet lost to a full queue or to memory is never silent. */
        if (over) {
            em_loop_violation(em_eio_session_fd(s), s->sid, EM_LIMIT_OUTPUT,
                              "%zu bytes wait for the next poll (output_hard %zu)",
                              s->q_bytes + buf->len, hard);
        } else {
            em_loop_violation(em_eio_session_fd(s), s->sid, EM_LIMIT_MEMORY,
                              "no memory to queue a %zu-byte packet", buf->len);
        }
        em_eio_session_overflow(s, over ? EM_LIMIT_OUTPUT : EM_LIMIT_MEMORY);
        return;
    }
    q->next = NULL;
    q->buf = em_buf_ref(buf);
    if (s->q_tail) {
        s->q_tail->next = q;
    } else {
        s->q_head = q;
    }
    s->q_tail = q;
    s->q_bytes += buf->len;
    if (s->get != NULL && !s->upgrading) {
        em_eio_session_flush_get(s, 0);
    }
}

/* ---- life cycle ---- */

static em_eio_session_t *
em_eio_session_new(em_http_conn_t *c, const em_http_req_t *req, unsigned transport)
{
    em_eio_session_t       *s = calloc(1, sizeof(*s));
    char                    addr[INET6_ADDRSTRLEN] = "";

    if (s == NULL) {
        return NULL;
    }
    do {
        em_sid_new(em_loop.slot, s->sid);
        em_eio_session_t *dup;
        HASH_FIND(hh, em_eio_sessions, s->sid, EM_SID_LEN, dup);
        if (dup == NULL) {
            break;
        }
    } while (1);
    s->endpoint = c->endpoint;
    s->transport = (uint8_t) transport;
    s->timer = evtimer_new(em_loop.base, em_eio_session_timer_cb, s);
    /* Only namespace scripts read socket.handshake (and the monitoring
     * figures with addresses and user agents), and a connection limit needs
     * the address: keep the address and the request head for them, the
     * address and the figures for the access log, and nothing when none
     * of them is on. */
    int keep = em_upper(s)->keeps_handshake(), access = em_access_on();
    if (keep || access) {
        em_loop_peer(c->conn.fd, addr, sizeof(addr));
    }
    size_t head = keep ? req->head_len : 0;
    s->extra = keep || access ? malloc(sizeof(*s->extra) + head) : NULL;
    if (s->timer == NULL || ((keep || access) && s->extra == NULL)) {
        if (s->timer) event_free(s->timer);
        free(s->extra);
        free(s);
        return NULL;
    }
    if (s->extra != NULL) {
        em_eio_extra_t *x = s->extra;
        x->started = em_state_now();
        x->bytes_in = x->bytes_out = 0;
        x->transports = (uint8_t) (1u << transport);
        snprintf(x->addr, sizeof(x->addr), "%s", addr);
        x->head_len = head;
        memcpy(x->head, req->method_str.data, head);
    }
    HASH_ADD(hh, em_eio_sessions, sid, EM_SID_LEN, s);
    em_eio_nsessions++;
    em_stat_add(em_loop.stats->handshakes, 1);
    if (s->transport == EM_TRANSPORT_WEBSOCKET) {
        em_stat_add(em_loop.stats->sessions_ws, 1);
    } else {
        em_stat_add(em_loop.stats->sessions_polling, 1);
    }
    em_loop.handlers.load_changed();
    return s;
}

static void
em_eio_session_free_queue(em_eio_session_t *s)
{
    for (em_outq_t *q = s->q_head, *next; q != NULL; q = next) {
        next = q->next;
        em_buf_unref(q->buf);
        free(q);
    }
    s->q_head = s->q_tail = NULL;
    s->q_bytes = 0;
}

/* Drop the session from the worker; memory goes at the next reap. */
/* The upgrade timer exists only while an upgrade is under way: an idle
 * session does not carry it. */
static void
em_eio_session_upgrade_timer_free(em_eio_session_t *s)
{
    if (s->upgrade_timer != NULL) {
        event_free(s->upgrade_timer);
        s->upgrade_timer = NULL;
    }
}

static void
em_eio_session_finish(em_eio_session_t *s)
{
    if (s->state == EM_EIO_SESSION_FINISHED) {
        return;
    }
    s->state = EM_EIO_SESSION_FINISHED;
    em_upper_close(s, "transport close");
    evtimer_del(s->timer);
    em_eio_session_upgrade_timer_free(s);
    if (s->get != NULL) {
        /* Release a parked GET as Node's engine.io does: a noop when the
         * client itself closed, the close packet when we end the session. */
        em_http_conn_t *c = s->get;
        s->get = NULL;
        c->conn.upper = NULL;
        em_http_conn_respond(c, 200, "text/plain; charset=UTF-8", s->client_closed ? "6" : "1", 1);
    }
    if (s->ws != NULL) {
        em_conn_t *c = s->ws;
        s->ws = NULL;
        c->upper = NULL;
        if (s->refused) {
            em_ws_close(c, s->refused == EM_LIMIT_PROTOCOL ? 1002 : 1008,
                        em_limit_name((em_limit_t) s->refused));
        } else {
            em_ws_close(c, 1000, NULL);
        }
    }
    if (s->probe != NULL) {
        em_conn_t *c = s->probe;
        s->probe = NULL;
        c->upper = NULL;
        em_ws_close(c, 1000, NULL);
    }
    em_eio_session_free_queue(s);
    HASH_DELETE(hh, em_eio_sessions, s);
    em_eio_nsessions--;
    em_stat_add(em_loop.stats->sessions_closed, 1);
    if (s->transport == EM_TRANSPORT_WEBSOCKET) {
        em_stat_sub(em_loop.stats->sessions_ws, 1);
    } else {
        em_stat_sub(em_loop.stats->sessions_polling, 1);
    }
    em_loop.handlers.load_changed();
    s->reap_next = em_eio_reap_list;
    em_eio_reap_list = s;
    em_loop_schedule_reap();
}

static int
em_eio_session_reap(void)
{
    em_eio_session_t *s = em_eio_reap_list;

    em_eio_reap_list = NULL;
    if (s == NULL) {
        return 0;
    }
    while (s != NULL) {
        em_eio_session_t *next = s->reap_next;
        event_free(s->timer);
        em_eio_session_upgrade_timer_free(s);
        free(s->extra);
        free(s);
        s = next;
    }
    return 1;
}

/* The client is gone or broke the protocol: no goodbye. */
static void
em_eio_session_abort(em_eio_session_t *s, const char *reason)
{
    if (s->state == EM_EIO_SESSION_FINISHED) {
        return;
    }
    s->state = EM_EIO_SESSION_CLOSING;
    em_upper_close(s, reason);
    em_eio_session_finish(s);
}

void
em_eio_session_close(em_eio_session_t *s, const char *reason)
{
    if (!em_eio_session_open(s)) {
        return;
    }
    /* Let the layer above say goodbye while the session can still send. */
    em_upper_close(s, reason);
    s->state = EM_EIO_SESSION_CLOSING;
    if (s->transport == EM_TRANSPORT_POLLING && s->q_head != NULL) {
        /*
         * The goodbyes go in one response and the close packet in the next,
         * as Node's engine.io does: a client that saw both in one payload
         * would act on the close before the Socket.IO packets.
         */
        if (s->get != NULL) {
            em_eio_session_flush_get(s, 0);
        }
        evtimer_del(s->timer);
        em_eio_session_arm(s, EM_EIO_SESSION_CLOSE_TIMEOUT);
        return;
    }
    /* Nothing left to deliver: a parked GET gets the close packet now. */
    em_eio_session_finish(s);
}

void
em_eio_session_refuse(em_eio_session_t *s, em_limit_t limit, const char *fmt, ...)
{
    char    why[200];
    va_list ap;

    if (!em_eio_session_open(s)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    em_loop_violation(em_eio_session_fd(s), s->sid, limit, "%s", why);
    s->refused = (uint8_t) limit;
    em_eio_session_close(s, limit == EM_LIMIT_PROTOCOL ? "parse error" : "forced server close");
}

static void
em_eio_session_conn_lost(void *upper, em_conn_t *c)
{
    em_eio_session_t *s = upper;

    if (c == s->probe) {
        s->probe = NULL;
        s->upgrading = 0;
        em_eio_session_upgrade_timer_free(s);
        return;
    }
    if (s->get != NULL && c == &s->get->conn) {
        s->get = NULL;
        em_eio_session_abort(s, "transport close");
        return;
    }
    if (c == s->ws) {
        s->ws = NULL;
        em_eio_session_abort(s, "transport close");
    }
}

/* ---- receiving ---- */

static void
em_eio_session_heartbeat(em_eio_session_t *s)
{
    if (s->awaiting_pong) {
        s->awaiting_pong = 0;
        em_eio_session_arm(s, s->endpoint->ping_interval);
    }
}

static void
em_eio_session_complete_upgrade(em_eio_session_t *s)
{
    em_conn_t *ws = s->probe;

    s->probe = NULL;
    s->upgrading = 0;
    em_eio_session_upgrade_timer_free(s);
    int moved = s->transport != EM_TRANSPORT_WEBSOCKET;
    if (moved) {
        em_stat_sub(em_loop.stats->sessions_polling, 1);
        em_stat_add(em_loop.stats->sessions_ws, 1);
    }
    s->transport = EM_TRANSPORT_WEBSOCKET;
    if (s->extra != NULL) {
        s->extra->transports |= 1u << EM_TRANSPORT_WEBSOCKET;
    }
    s->ws = ws;
    if (s->get != NULL) {
        em_http_conn_t *c = s->get;
        s->get = NULL;
        c->conn.upper = NULL;
        em_http_conn_respond(c, 200, "text/plain; charset=UTF-8", "6", 1);
    }
    for (em_outq_t *q = s->q_head, *next; q != NULL; q = next) {
        next = q->next;
        em_ws_send(ws, q->buf);
        em_buf_unref(q->buf);
        free(q);
    }
    s->q_head = s->q_tail = NULL;
    s->q_bytes = 0;
    if (moved && s->upper != NULL && em_upper(s)->upgrade != NULL) {
        em_upper(s)->upgrade(s);
    }
}

/* One Engine.IO packet from the client, on the session's current transport. */
static void
em_eio_session_packet(em_eio_session_t *s, const em_eio_packet_t *p)
{
    switch (p->type) {
    case EM_EIO_PONG:
        em_eio_session_heartbeat(s);
        break;
    case EM_EIO_MESSAGE:
        em_stat_add(em_loop.stats->messages_in, 1);
        s->heard = 1;
        if (s->extra != NULL) {
            s->extra->bytes_in += p->data.len;
        }
        em_upper(s)->message(s, p->data.data, p->data.len, p->binary);
        break;
    case EM_EIO_CLOSE:
        s->client_closed = 1;
        em_eio_session_abort(s, "transport close");
        break;
    case EM_EIO_NOOP:
    case EM_EIO_PING:
        break;
    default:
        em_loop_violation(em_eio_session_fd(s), s->sid, EM_LIMIT_PROTOCOL,
                          "an Engine.IO packet of type %d from a client", (int) p->type);
        em_eio_session_abort(s, "parse error");
        break;
    }
}

static void
em_eio_session_ws_message(void *upper, em_conn_t *c, const char *data, size_t len, int binary)
{
    em_eio_session_t *s = upper;
    em_eio_packet_t p;

    if (binary) {
        p.type = EM_EIO_MESSAGE;
        p.binary = 1;
        p.base64 = 0;
        p.data.data = data;
        p.data.len = len;
    } else if (em_eio_decode(data, len, &p) != EM_OK) {
        em_loop_violation(c->fd, s->sid, EM_LIMIT_PROTOCOL, "a malformed Engine.IO packet");
        em_eio_session_abort(s, "parse error");
        return;
    }
    if (c == s->probe) {
        if (p.type == EM_EIO_PING && em_str_eq(p.data, "probe")) {
            em_buf_t *pong = em_eio_session_pkt("3probe");
            if (pong != NULL) {
                em_ws_send(c, pong);
                em_buf_unref(pong);
            }
            s->upgrading = 1;
            em_eio_session_flush_get(s, 1);
        } else if (p.type == EM_EIO_UPGRADE && s->upgrading) {
            em_eio_session_complete_upgrade(s);
        } else if (p.type != EM_EIO_NOOP) {
            s->probe = NULL;
            s->upgrading = 0;
            c->upper = NULL;
            em_ws_close(c, 1002, NULL);
        }
        return;
    }
    em_eio_session_packet(s, &p);
}

static void
em_eio_session_post(em_http_conn_t *c, em_eio_session_t *s, const char *body, size_t len)
{
    size_t          pos = 0;
    em_eio_packet_t p;
    unsigned char  *bin = NULL;
    int             rc;

    /* Answer first: the packets may close the session and its connections. */
    em_http_conn_respond(c, 200, "text/html", "ok", 2);
    if (!em_eio_session_open(s)) {
        return;
    }
    em_eio_session_post_conn = c->conn.state != EM_CONN_CLOSED ? c : NULL;
    while ((rc = em_eio_payload_next(body, len, &pos, &p)) == EM_OK && em_eio_session_open(s)) {
        if (p.base64) {
            ssize_t n;
            unsigned char *nb = realloc(bin, p.data.len + 1);
            if (nb == NULL) {
                rc = EM_ERROR;
                break;
            }
            bin = nb;
            if ((n = em_eio_b64_decode(p.data.data, p.data.len, bin, p.data.len + 1)) < 0) {
                rc = EM_ERROR;
                break;
            }
            p.data.data = (const char *) bin;
            p.data.len = (size_t) n;
            p.base64 = 0;
        }
        em_eio_session_packet(s, &p);
    }
    free(bin);
    if (rc == EM_ERROR && em_eio_session_open(s)) {
        em_loop_violation(em_eio_session_fd(s), s->sid, EM_LIMIT_PROTOCOL,
                          "a malformed polling payload");
        em_eio_session_abort(s, "parse error");
    }
    em_eio_session_post_conn = NULL;
}

/* 400 with an Engine.IO JSON error body {"code":N,"message":"..."}. */
static void
em_eio_session_http_error(em_http_conn_t *c, int code, const char *message)
{
    char body[128];
    int  n = snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"}", code, message);

    em_http_conn_respond(c, 400, "application/json", body, (size_t) n);
}

static void
em_eio_session_request(em_http_conn_t *c, const em_http_req_t *req, const char *body, size_t body_len)
{
    const em_conf_endpoint_t *ep = c->endpoint;
    char                      val[EM_SID_LEN + 8];
    char                      transport[16];
    ssize_t                   n;
    unsigned                  tr;
    em_eio_session_t         *s;

    n = em_http_query_get(req->query, "EIO", val, sizeof(val));
    if (n != 1 || val[0] != '4') {
        em_eio_session_http_error(c, 5, "Unsupported protocol version");
        return;
    }
    n = em_http_query_get(req->query, "transport", transport, sizeof(transport) - 1);
    transport[n > 0 ? n : 0] = '\0';
    if (strcmp(transport, "polling") == 0) {
        tr = EM_TRANSPORT_POLLING;
    } else if (strcmp(transport, "websocket") == 0) {
        tr = EM_TRANSPORT_WEBSOCKET;
    } else {
        tr = 0;
    }
    if ((tr & ep->transports) == 0) {
        em_eio_session_http_error(c, 0, "Transport unknown");
        return;
    }

    n = em_http_query_get(req->query, "sid", val, sizeof(val));
    if (n < 0) {
        /* A handshake. */
        if (req->method != EM_HTTP_GET) {
            em_eio_session_http_error(c, 2, "Bad handshake method");
            return;
        }
        if (tr == EM_TRANSPORT_WEBSOCKET && !req->upgrade_ws) {
            em_eio_session_http_error(c, 3, "Bad request");
            return;
        }
        if (em_eio_stopping || em_eio_full()) {
            em_http_conn_respond(c, 503, "text/plain; charset=UTF-8", "Service Unavailable", 19);
            return;
        }
        s = em_eio_session_new(c, req, tr);
        if (s == NULL) {
            em_http_conn_respond(c, 503, "text/plain; charset=UTF-8", "Service Unavailable", 19);
            return;
        }
        char                open_pkt[512];
        em_eio_handshake_t  hs = {
            .sid = s->sid,
            .upgrade_websocket = (tr == EM_TRANSPORT_POLLING && ep->allow_upgrades
                                  && (ep->transports & EM_TRANSPORT_WEBSOCKET)),
            .ping_interval = ep->ping_interval,
            .ping_timeout = ep->ping_timeout,
            .max_payload = ep->max_payload,
        };
        ssize_t olen = em_eio_encode_open(&hs, open_pkt, sizeof(open_pkt));
        if (olen < 0) {
            em_eio_session_abort(s, "server error");
            em_http_conn_respond(c, 500, "text/plain; charset=UTF-8", "Internal Server Error", 21);
            return;
        }
        if (tr == EM_TRANSPORT_WEBSOCKET) {
            if (em_http_conn_upgrade(c, req) != EM_OK) {
                em_eio_session_abort(s, "transport error");
                em_eio_session_http_error(c, 3, "Bad request");
                return;
            }
            s->ws = &c->conn;
            c->conn.upper = s;
            em_buf_t *b = em_buf_copy(open_pkt, (size_t) olen, 0);
            if (b != NULL) {
                em_ws_send(&c->conn, b);
                em_buf_unref(b);
            }
        } else {
            em_http_conn_respond(c, 200, "text/plain; charset=UTF-8", open_pkt, (size_t) olen);
        }
        em_eio_session_arm(s, ep->ping_interval);
        em_upper(s)->open(s);
        return;
    }

    HASH_FIND(hh, em_eio_sessions, val, (size_t) n, s);
    if (s == NULL || s->endpoint != ep) {
        em_eio_session_http_error(c, 1, "Session ID unknown");
        return;
    }
    if (tr == EM_TRANSPORT_WEBSOCKET) {
        if (em_http_conn_upgrade(c, req) != EM_OK) {
            em_eio_session_http_error(c, 3, "Bad request");
            return;
        }
        if (!em_eio_session_open(s) || s->transport != EM_TRANSPORT_POLLING || s->probe != NULL
            || !ep->allow_upgrades) {
            /* Already upgraded or upgrading: complete the handshake, then
             * close that WebSocket at once (what Node's server does). */
            em_ws_close(&c->conn, 1000, NULL);
            return;
        }
        s->probe = &c->conn;
        c->conn.upper = s;
        struct timeval tv = { EM_EIO_SESSION_UPGRADE_TIMEOUT / 1000, 0 };
        if (s->upgrade_timer == NULL) {
            s->upgrade_timer = evtimer_new(em_loop.base, em_eio_session_upgrade_timeout_cb, s);
        }
        if (s->upgrade_timer == NULL || evtimer_add(s->upgrade_timer, &tv) != 0) {
            em_log(EM_LOG_ERR, 0, "cannot arm the upgrade timer of session %s", s->sid);
            s->probe = NULL;
            c->conn.upper = NULL;
            em_ws_close(&c->conn, 1011, NULL);
        }
        return;
    }
    if (s->transport != EM_TRANSPORT_POLLING) {
        em_eio_session_http_error(c, 3, "Bad request");
        return;
    }
    if (req->method == EM_HTTP_GET) {
        if (s->get != NULL) {
            /* Two GETs at once: a broken or hostile client. */
            em_eio_session_http_error(c, 3, "Bad request");
            em_eio_session_abort(s, "transport error");
            return;
        }
        s->get = c;
        em_http_conn_park(c, s);
        if (s->q_head != NULL || s->upgrading) {
            em_eio_session_flush_get(s, 1);
        } else if (!em_eio_session_open(s)) {
            em_eio_session_finish(s);       /* answers this GET with "1" */
        }
        return;
    }
    if (req->method == EM_HTTP_POST) {
        if (!em_eio_session_open(s)) {
            em_http_conn_respond(c, 200, "text/html", "ok", 2);
            return;
        }
        em_eio_session_post(c, s, body, body_len);
        return;
    }
    em_eio_session_http_error(c, 3, "Bad request");
}

static const char *
em_eio_session_id(const void *upper)
{
    return ((const em_eio_session_t *) upper)->sid;
}

int
em_eio_session_init(const em_eio_upper_t *sio, const em_eio_upper_t *raw)
{
    static const em_http_handlers_t h = {
        em_eio_session_request, em_eio_session_ws_message, em_eio_session_conn_lost,
        em_eio_session_id
    };

    em_eio_upper[0] = *sio;
    em_eio_upper[1] = *raw;
    if (em_http_conn_init(&h) != EM_OK) {
        return EM_ERROR;
    }
    return em_loop_reaper_add(em_eio_session_reap);
}

/* Output a WebSocket client may have waiting and still take a volatile send. */
#define EM_EIO_READY_BYTES (64u * 1024)

int
em_eio_session_ready(const em_eio_session_t *s)
{
    if (!em_eio_session_open(s) || s->upgrading) {
        return 0;
    }
    if (s->transport == EM_TRANSPORT_WEBSOCKET) {
        return s->ws != NULL && (s->ws->out == NULL || evbuffer_get_length(s->ws->out) < EM_EIO_READY_BYTES);
    }
    return s->get != NULL && s->q_head == NULL;
}

const char *
em_eio_session_address(const em_eio_session_t *s)
{
    return s->extra != NULL ? s->extra->addr : "";
}

const char *
em_eio_session_head(const em_eio_session_t *s, size_t *len)
{
    if (s->extra == NULL || s->extra->head_len == 0) {
        return NULL;
    }
    *len = s->extra->head_len;
    return s->extra->head;
}

uint32_t
em_eio_session_count(void)
{
    return em_eio_nsessions;
}

void
em_eio_session_close_all(const char *reason)
{
    em_eio_session_t *s, *tmp;

    em_eio_stopping = 1;
    HASH_ITER(hh, em_eio_sessions, s, tmp) {
        em_eio_session_close(s, reason);
    }
}

uint32_t
em_eio_session_close_heard(const char *reason)
{
    em_eio_session_t *s, *tmp;
    uint32_t          left = 0;

    em_eio_stopping = 1;
    HASH_ITER(hh, em_eio_sessions, s, tmp) {
        if (s->heard) {
            em_eio_session_close(s, reason);
        }
        left += em_eio_session_open(s);
    }
    return left;
}
