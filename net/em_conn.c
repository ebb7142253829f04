/*
 * em_conn.c - client connections in a worker: reading HTTP/1.1 request heads
 * and bodies, routing a request for another worker's session back through the
 * master, CORS, writing responses, keep-alive, and the close/reap life cycle.
 *
 * The socket I/O is a single libevent event per connection (read, write and
 * the timeout) and evbuffers that a connection holds only while they hold
 * bytes (empty output buffers wait in a pool for the next connection that
 * writes): an idle WebSocket costs its em_conn_t and that event, not a
 * bufferevent. Output is written straight to the socket at the end
 * of the loop pass that made it (em_conn_flush_later); what to wait for
 * follows from the state: reading unless draining or the input reached its
 * bound, EV_WRITE only while the socket has not taken all the output, and a
 * 30 s timeout while a request is being read or output waits.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "em_chan-t.h"
#include "em_conn.h"
#include "em_log.h"
#include "em_loop.h"
#include "em_sid.h"

_Static_assert(sizeof(em_conn_t) <= 232, "em_conn_t outgrew its 240-byte malloc chunk");

/* A chunked request body being decoded (rare: only raw HTTP clients send one). */
typedef struct em_conn_chunked {
    em_http_chunked_t  st;
    char              *head;        /* copy of the request head */
    size_t             head_len;
    char              *body;        /* decoded, up to the endpoint's max_payload */
    size_t             body_len;
    size_t             body_cap;    /* grows with what arrives, never past max_payload */
} em_conn_chunked_t;

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
    case EM_CONN_BODY:
        return (size_t) c->head_len + c->body_len;
    case EM_CONN_WS:
        return c->endpoint->max_payload + 64 * 1024;
    default:
        return EM_CHAN_MAX_DATA;
    }
}

uint32_t
em_conn_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint32_t) ((uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000);
}

/* Reading a request (head or body): it must be whole within request_timeout
 * of its start, however slowly its bytes trickle in. */
static int
em_conn_reading_request(const em_conn_t *c)
{
    return c->state == EM_CONN_HEAD || c->state == EM_CONN_BODY || c->state == EM_CONN_CHUNKED;
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
 * trickle in do not move the request's, reads do not move the write's. */
static int64_t
em_conn_timeout_ms(const em_conn_t *c, uint32_t now)
{
    const em_conf_limits_t *lim = &em_loop.conf->limits;
    int64_t                 ms = -1;

    if (em_conn_reading_request(c)) {
        ms = (int64_t) lim->request_timeout - (int64_t) (uint32_t) (now - c->req_since);
    }
    if (em_conn_writing(c)) {
        int64_t w = (int64_t) lim->write_timeout - (int64_t) (uint32_t) (now - c->write_since);
        ms = (ms < 0 || w < ms) ? w : ms;
    }
    return ms < 0 && (em_conn_reading_request(c) || em_conn_writing(c)) ? 0 : ms;
}

/* Register what the connection waits for now, with the time left to its
 * earliest deadline. */
static void
em_conn_io_update(em_conn_t *c)
{
    struct timeval tv;
    short          what = 0;
    int            timed;
    int64_t        ms;

    if (c->state == EM_CONN_CLOSED) {
        return;
    }
    if (c->state != EM_CONN_DRAIN && !c->eof
        && (c->in == NULL || evbuffer_get_length(c->in) < em_conn_input_bound(c))) {
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
            /* Requests pipelined behind one answered from a send. */
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

void
em_conn_accept(int fd, const char *data, size_t len, int noroute)
{
    em_conn_t *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        em_log(EM_LOG_ERR, errno, "calloc() for a connection failed");
        close(fd);
        return;
    }
    /* Already non-blocking: the master's accept4(SOCK_NONBLOCK) set it on
     * the open file description that SCM_RIGHTS hands over. */
    c->fd = fd;
    c->state = EM_CONN_HEAD;
    c->req_since = em_conn_now();
    c->noroute = noroute ? 1 : 0;
    /* The bytes the master already read go first. */
    if (len > 0 && (em_conn_input(c) == NULL || evbuffer_add(c->in, data, len) != 0)) {
        em_log(EM_LOG_ERR, 0, "evbuffer_add() failed");
        if (c->in != NULL) {
            evbuffer_free(c->in);
        }
        close(fd);
        free(c);
        return;
    }
    em_conn_io_update(c);
    if (len > 0) {
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
em_conn_chunked_free(em_conn_t *c)
{
    if (c->chunked != NULL) {
        free(c->chunked->head);
        free(c->chunked->body);
        free(c->chunked);
        c->chunked = NULL;
    }
}

static void
em_conn_free(em_conn_t *c)
{
    em_conn_chunked_free(c);
    em_ws_free(c);
    if (c->in != NULL) {
        evbuffer_free(c->in);
    }
    em_conn_out_release(c);
    close(c->fd);
    free(c->origin);
    free(c);
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
    if (c->out == NULL || evbuffer_get_length(c->out) == 0) {
        em_conn_close(c);
        return;
    }
    em_conn_io_update(c);
}

/* The status line and headers; EM_ERROR (the connection closed) when out
 * of memory. */
static int
em_conn_write_head(em_conn_t *c, int status, const char *ctype, size_t len)
{
    struct evbuffer *out = em_conn_output(c);
    const em_conf_t *conf = em_loop.conf;

    if (out == NULL) {
        em_conn_close(c);
        return EM_ERROR;
    }
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, em_http_reason(status));
    if (ctype != NULL) {
        evbuffer_add_printf(out, "Content-Type: %s\r\n", ctype);
    }
    evbuffer_add_printf(out, "Content-Length: %zu\r\n", len);
    if (c->origin != NULL) {
        evbuffer_add_printf(out, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n", c->origin);
        if (conf->cors_credentials) {
            evbuffer_add_printf(out, "Access-Control-Allow-Credentials: true\r\n");
        }
    }
    if (evbuffer_add_printf(out, "Connection: %s\r\n\r\n", c->keep_alive ? "keep-alive" : "close")
        < 0) {
        em_log(EM_LOG_ERR, 0, "cannot write a response head: out of memory");
        em_conn_close(c);
        return EM_ERROR;
    }
    return EM_OK;
}

/* After a response: read the next request, or close. */
static void
em_conn_request_done(em_conn_t *c)
{
    if (c->state == EM_CONN_CLOSED) {
        return;
    }
    if (!c->keep_alive) {
        em_conn_drain(c);
        return;
    }
    c->state = EM_CONN_HEAD;
    c->req_since = em_conn_now();
    c->upper = NULL;
    c->served++;
    em_conn_io_update(c);
    if (!c->in_process && c->in != NULL && evbuffer_get_length(c->in) > 0) {
        /* Pipelined requests wait for the end of this loop pass: this may be
         * inside a send (a broadcast, a script) that must not see sessions
         * change under it. */
        em_conn_process_later(c);
    }
}

void
em_conn_respond(em_conn_t *c, int status, const char *ctype, const char *body, size_t len)
{
    if (c->state == EM_CONN_CLOSED || c->state == EM_CONN_DRAIN) {
        return;
    }
    if (em_conn_write_head(c, status, ctype, len) != EM_OK) {
        return;
    }
    if (len > 0 && evbuffer_add(c->out, body, len) != 0) {
        em_log(EM_LOG_ERR, 0, "cannot write a response body of %zu bytes: out of memory", len);
        em_conn_close(c);
        return;
    }
    em_conn_request_done(c);
}

void
em_conn_respond_parts(em_conn_t *c, struct evbuffer *body)
{
    if (c->state == EM_CONN_CLOSED || c->state == EM_CONN_DRAIN) {
        return;
    }
    if (em_conn_write_head(c, 200, "text/plain; charset=UTF-8", evbuffer_get_length(body)) != EM_OK) {
        return;
    }
    if (evbuffer_add_buffer(c->out, body) != 0) {
        em_log(EM_LOG_ERR, 0, "cannot write a polling response: out of memory");
        em_conn_close(c);
        return;
    }
    em_conn_request_done(c);
}

void
em_conn_eio_error(em_conn_t *c, int code, const char *message)
{
    char body[128];
    int  n = snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"}", code, message);

    em_conn_respond(c, 400, "application/json", body, (size_t) n);
}

static void
em_conn_fail(em_conn_t *c, int status)
{
    c->keep_alive = 0;
    em_conn_respond(c, status, "text/plain; charset=UTF-8", em_http_reason(status),
                    strlen(em_http_reason(status)));
}

/* A request broke the protocol or a bound: say so (logged, counted), answer
 * `status` and close. */
static void
em_conn_refuse(em_conn_t *c, int status, em_limit_t limit, const char *why)
{
    em_loop_violation(c->fd, NULL, limit, "%s: answered %d", why, status);
    em_conn_fail(c, status);
}

/* Note the request's Origin if CORS allows it, to echo in the response. */
static void
em_conn_cors(em_conn_t *c, const em_http_req_t *req)
{
    const em_http_header_t *origin;

    free(c->origin);
    c->origin = NULL;
    if (!em_loop.conf->cors_enabled || (origin = em_http_header(req, "origin")) == NULL) {
        return;
    }
    if (em_conf_origin_allowed(em_loop.conf, origin->value.data, origin->value.len)
        && memchr(origin->value.data, '\r', origin->value.len) == NULL
        && memchr(origin->value.data, '\n', origin->value.len) == NULL) {
        c->origin = strndup(origin->value.data, origin->value.len);
    }
}

static void
em_conn_preflight(em_conn_t *c, const em_http_req_t *req)
{
    struct evbuffer        *out = em_conn_output(c);
    const em_http_header_t *h = em_http_header(req, "access-control-request-headers");

    if (out == NULL) {
        em_conn_close(c);
        return;
    }
    evbuffer_add_printf(out, "HTTP/1.1 204 No Content\r\n");
    if (c->origin != NULL) {
        evbuffer_add_printf(out,
                            "Access-Control-Allow-Origin: %s\r\nVary: Origin, Access-Control-Request-Headers\r\n"
                            "Access-Control-Allow-Methods: GET,HEAD,PUT,PATCH,POST,DELETE\r\n",
                            c->origin);
        if (em_loop.conf->cors_credentials) {
            evbuffer_add_printf(out, "Access-Control-Allow-Credentials: true\r\n");
        }
        if (h != NULL && memchr(h->value.data, '\r', h->value.len) == NULL
            && memchr(h->value.data, '\n', h->value.len) == NULL) {
            evbuffer_add_printf(out, "Access-Control-Allow-Headers: %.*s\r\n", (int) h->value.len,
                                h->value.data);
        }
    }
    if (evbuffer_add_printf(out, "Content-Length: 0\r\nConnection: %s\r\n\r\n",
                            c->keep_alive ? "keep-alive" : "close") < 0) {
        em_conn_close(c);
        return;
    }
    em_conn_request_done(c);
}

/* Give the connection to the worker that owns the session it names. */
static void
em_conn_handoff(em_conn_t *c, unsigned slot)
{
    struct evbuffer *in = em_conn_input(c);
    size_t           len = evbuffer_get_length(in);
    const char      *data = (const char *) evbuffer_pullup(in, -1);
    int              fd = c->fd;

    if (len > EM_CHAN_MAX_DATA || em_loop.handlers.handoff(fd, slot, data, len) != EM_OK) {
        em_conn_fail(c, 503);
        return;
    }
    evbuffer_drain(in, len);
    em_conn_close(c);   /* our copy of the fd; the master holds its own */
}

/*
 * A request head is complete: route it, then serve it or wait for its body.
 * Returns how many input bytes the caller drops once it is done (the head;
 * 0 while a body is awaited, which keeps head and body together).
 */
static size_t
em_conn_request(em_conn_t *c, const em_http_req_t *req)
{
    const em_conf_endpoint_t *ep;
    char                      sid[EM_SID_LEN + 8];
    ssize_t                   n;

    c->keep_alive = req->keep_alive;
    em_conn_cors(c, req);

    ep = em_conf_endpoint(em_loop.conf, req->path.data, req->path.len);
    if (ep == NULL) {
        if (req->content_length > 0 || req->chunked) {
            c->keep_alive = 0;
        }
        em_conn_respond(c, 404, "text/plain; charset=UTF-8", "Not Found", 9);
        return req->head_len;
    }

    n = em_http_query_get(req->query, "sid", sid, sizeof(sid));
    if (!c->noroute && em_loop.nworkers > 1) {
        if (n > 0) {
            int slot = em_sid_slot(sid, (size_t) n);
            if (slot >= 0 && (unsigned) slot != em_loop.slot && (unsigned) slot < em_loop.nworkers) {
                em_conn_handoff(c, slot);
                return 0;
            }
        } else if (n == -1 && c->served > 0 && req->method == EM_HTTP_GET) {
            /* A new session on a reused connection: let the master place it. */
            em_conn_handoff(c, EM_CHAN_SLOT_ANY);
            return 0;
        }
    }
    c->noroute = 0;

    if (req->method == EM_HTTP_OPTIONS) {
        em_conn_preflight(c, req);
        return req->head_len;
    }
    c->endpoint = ep;
    if (req->chunked) {
        if (req->method != EM_HTTP_POST) {
            em_conn_refuse(c, 400, EM_LIMIT_PROTOCOL, "a chunked body on a request other than POST");
            return req->head_len;
        }
        /* Keep a copy of the head: the body is decoded as it arrives and
         * the input it came in is dropped. */
        em_conn_chunked_t *ch = calloc(1, sizeof(*ch));
        if (ch == NULL || (ch->head = malloc(req->head_len)) == NULL) {
            free(ch);
            em_conn_fail(c, 503);
            return req->head_len;
        }
        memcpy(ch->head, req->method_str.data, req->head_len);
        ch->head_len = req->head_len;
        c->chunked = ch;
        c->state = EM_CONN_CHUNKED;
        return req->head_len;
    }
    if (req->method == EM_HTTP_POST && req->content_length > 0) {
        if ((size_t) req->content_length > ep->max_payload) {
            em_loop_violation(c->fd, NULL, EM_LIMIT_REQUEST_SIZE,
                              "a request body of %lld bytes (max_payload %zu): answered 413",
                              (long long) req->content_length, ep->max_payload);
            c->keep_alive = 0;
            em_conn_respond(c, 413, "text/plain; charset=UTF-8", "Payload Too Large", 17);
            return req->head_len;
        }
        c->state = EM_CONN_BODY;
        c->head_len = (uint32_t) req->head_len;
        c->body_len = (uint32_t) req->content_length;   /* <= max_payload (1 GiB) */
        return 0;
    }
    em_conn_upper.request(c, req, NULL, 0);
    return req->head_len;
}

/* Drive the state machine on whatever input is buffered. */
static void
em_conn_process(em_conn_t *c)
{
    struct evbuffer *in = em_conn_input(c);
    em_http_req_t    req;

    if (in == NULL) {
        em_conn_close(c);
        return;
    }
    c->in_process = 1;
    int rounds;
    for (rounds = 0; rounds < 64 && c->state != EM_CONN_CLOSED; rounds++) {
        size_t len = evbuffer_get_length(in);
        size_t consumed;

        if (c->state == EM_CONN_HEAD) {
            if (len == 0) {
                break;
            }
            size_t      want = EM_MIN(len, (size_t) EM_HTTP_MAX_HEAD);
            const char *buf = (const char *) evbuffer_pullup(in, (ssize_t) want);
            int         rc = em_http_parse(buf, want, &req);
            if (rc == EM_AGAIN) {
                if (want >= EM_HTTP_MAX_HEAD) {
                    em_conn_refuse(c, 431, EM_LIMIT_REQUEST_SIZE, "a request head over 16 KiB");
                }
                break;
            }
            if (rc != EM_OK) {
                if (rc == EM_DECLINED) {
                    em_conn_refuse(c, 431, EM_LIMIT_REQUEST_SIZE,
                                   "a request head over 16 KiB or 64 headers");
                } else {
                    em_conn_refuse(c, 400, EM_LIMIT_PROTOCOL, "a malformed request head");
                }
                break;
            }
            consumed = em_conn_request(c, &req);
        } else if (c->state == EM_CONN_BODY) {
            size_t total = (size_t) c->head_len + c->body_len;
            if (len < total) {
                break;
            }
            const char *buf = (const char *) evbuffer_pullup(in, (ssize_t) total);
            if (em_http_parse(buf, c->head_len, &req) != EM_OK) {
                em_conn_fail(c, 400);
                break;
            }
            em_conn_upper.request(c, &req, buf + c->head_len, c->body_len);
            consumed = total;
        } else if (c->state == EM_CONN_CHUNKED) {
            em_conn_chunked_t *ch = c->chunked;
            size_t             used = 0;
            if (len == 0) {
                break;
            }
            /* A call decodes at most as many bytes as it reads: the body
             * grows with the input, never to max_payload at once. */
            size_t need = EM_MIN(c->endpoint->max_payload, ch->body_len + len);
            if (need > ch->body_cap) {
                size_t cap = EM_MIN(c->endpoint->max_payload, EM_MAX(need, ch->body_cap * 2));
                char  *nb = realloc(ch->body, cap);
                if (nb == NULL) {
                    em_loop_violation(c->fd, NULL, EM_LIMIT_MEMORY,
                                      "no memory for a chunked body of %zu bytes", cap);
                    em_conn_chunked_free(c);
                    em_conn_fail(c, 503);
                    break;
                }
                ch->body = nb;
                ch->body_cap = cap;
            }
            const char *buf = (const char *) evbuffer_pullup(in, (ssize_t) len);
            int rc = em_http_chunked_parse(&ch->st, buf, len, &used, ch->body,
                                           c->endpoint->max_payload, &ch->body_len);
            evbuffer_drain(in, used);
            if (rc == EM_AGAIN) {
                break;
            }
            if (rc != EM_OK) {
                em_conn_chunked_free(c);
                c->keep_alive = 0;
                if (rc == EM_DECLINED) {
                    em_loop_violation(c->fd, NULL, EM_LIMIT_REQUEST_SIZE,
                                      "a chunked body over max_payload (%zu): answered 413",
                                      c->endpoint->max_payload);
                    em_conn_respond(c, 413, "text/plain; charset=UTF-8", "Payload Too Large", 17);
                } else {
                    em_conn_refuse(c, 400, EM_LIMIT_PROTOCOL, "a malformed chunked body");
                }
                break;
            }
            if (em_http_parse(ch->head, ch->head_len, &req) != EM_OK) {
                em_conn_chunked_free(c);
                em_conn_fail(c, 400);
                break;
            }
            c->state = EM_CONN_BODY;    /* the engine answers as for any POST */
            em_conn_upper.request(c, &req, ch->body, ch->body_len);
            em_conn_chunked_free(c);
            consumed = 0;
        } else if (c->state == EM_CONN_WS) {
            em_ws_on_read(c);
            break;
        } else {
            /* POLL: a parked GET; anything sent now waits for its answer. */
            break;
        }
        if (c->state == EM_CONN_CLOSED) {
            break;
        }
        evbuffer_drain(in, consumed);
    }
    c->in_process = 0;
    if (rounds == 64 && c->state == EM_CONN_HEAD && evbuffer_get_length(in) > 0) {
        em_conn_process_later(c);   /* more pipelined requests: next pass */
    }
}

static int
em_conn_retriable(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/*
 * The client shut its sending side. A request it already sent is still
 * answered: a parked GET waits for its data, a response being written is
 * written out; then the connection closes. A request cut short, or a
 * WebSocket, ends now.
 */
static void
em_conn_peer_eof(em_conn_t *c)
{
    c->eof = 1;
    c->keep_alive = 0;
    if (c->state == EM_CONN_POLL) {
        return;         /* em_conn_request_done() drains it after the answer */
    }
    if (c->state == EM_CONN_HEAD && c->out != NULL && evbuffer_get_length(c->out) > 0
        && (c->in == NULL || evbuffer_get_length(c->in) == 0)) {
        em_conn_drain(c);
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
            c->write_since = em_conn_now();     /* progress: the write deadline moves */
        }
        if (c->state == EM_CONN_WS && em_conn_output_over(c) != EM_OK) {
            em_conn_close(c);
            return;
        }
    }
    if (c->state == EM_CONN_DRAIN && (c->out == NULL || evbuffer_get_length(c->out) == 0)) {
        em_conn_close(c);
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
    if (em_conn_reading_request(c) && (uint32_t) (now - c->req_since) >= lim->request_timeout) {
        int started = c->state != EM_CONN_HEAD || (c->in != NULL && evbuffer_get_length(c->in) > 0);
        if (!started) {
            em_conn_close(c);   /* an idle keep-alive connection, or one that sent nothing */
            return;
        }
        em_loop_violation(c->fd, NULL, EM_LIMIT_REQUEST_TIMEOUT,
                          "sent no whole request within %u ms", lim->request_timeout);
        c->keep_alive = 0;
        em_conn_chunked_free(c);
        c->state = EM_CONN_HEAD;
        c->upper = NULL;
        em_conn_fail(c, 408);
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
    }
    if (c->state != EM_CONN_CLOSED) {
        em_conn_trim(c);
        em_conn_io_update(c);
    }
}
