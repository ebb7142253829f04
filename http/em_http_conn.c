/*
 * em_http_conn.c - HTTP/1.1 on transport connections: reading request
 * heads and bodies, routing a request for another worker's session back
 * through the master, CORS, writing responses, keep-alive, parked GETs and
 * the WebSocket upgrade. The socket, its buffers and deadlines are the
 * transport's (net/em_conn.c), which calls in here through the handlers
 * em_http_conn_init() registers.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "em_chan-t.h"
#include "em_http_conn.h"
#include "em_tls.h"
#include "em_log.h"
#include "em_loop.h"
#include "em_sid.h"

_Static_assert(sizeof(em_http_conn_t) <= 232, "em_http_conn_t outgrew its 240-byte malloc chunk");

#define EM_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* A chunked request body being decoded (rare: only raw HTTP clients send one). */
typedef struct em_http_chunked_body {
    em_http_chunked_t  st;
    char              *head;        /* copy of the request head */
    size_t             head_len;
    char              *body;        /* decoded, up to the endpoint's max_payload */
    size_t             body_len;
    size_t             body_cap;    /* grows with what arrives, never past max_payload */
} em_http_chunked_body_t;

static em_http_handlers_t em_http_upper;

#define EM_HTTP_ROUTES 16      /* em_http_conn_t.route holds 0..16 */

static struct {
    const char       *path;
    size_t            len;
    unsigned          flags;
    em_http_route_fn  fn;
} em_http_routes[EM_HTTP_ROUTES];
static size_t em_http_nroutes;
static void (*em_http_route_lost)(void *upper);

int
em_http_conn_route(const char *path, unsigned flags, em_http_route_fn fn)
{
    if (em_http_nroutes == EM_HTTP_ROUTES) {
        em_log(EM_LOG_ERR, 0, "too many HTTP routes");
        return EM_ERROR;
    }
    em_http_routes[em_http_nroutes].path = path;
    em_http_routes[em_http_nroutes].len = strlen(path);
    em_http_routes[em_http_nroutes].flags = flags;
    em_http_routes[em_http_nroutes].fn = fn;
    em_http_nroutes++;
    return EM_OK;
}

void
em_http_conn_route_lost(void (*lost)(void *upper))
{
    em_http_route_lost = lost;
}

/* The route for a request on h, or -1. */
static int
em_http_route_find(const em_http_conn_t *h, em_str_t path)
{
    unsigned want = h->admin ? EM_HTTP_ROUTE_ADMIN : EM_HTTP_ROUTE_PUBLIC;

    for (size_t i = 0; i < em_http_nroutes; i++) {
        size_t n = em_http_routes[i].len;
        if ((em_http_routes[i].flags & want)
            && (path.len == n || (path.len > n && (em_http_routes[i].flags & EM_HTTP_ROUTE_PREFIX)))
            && memcmp(path.data, em_http_routes[i].path, n) == 0) {
            return (int) i;
        }
    }
    return -1;
}

/* The largest body the request being read may have. */
static size_t
em_http_body_max(const em_http_conn_t *h)
{
    return h->route ? em_loop.conf->admin->max_body : h->endpoint->max_payload;
}

/* A request with its whole body: to its route or the layer above. */
static void
em_http_serve(em_http_conn_t *h, const em_http_req_t *req, const char *body, size_t len)
{
    if (h->route) {
        em_http_routes[h->route - 1].fn(h, req, body, len);
    } else {
        em_http_upper.request(h, req, body, len);
    }
}

static em_http_conn_t *
em_http_of(em_conn_t *c)
{
    return (em_http_conn_t *) c;     /* the transport is its first member */
}

/* Reading a request head: it must be whole, with its body, within
 * request_timeout, however slowly its bytes trickle in. */
static void
em_http_await_head(em_http_conn_t *h)
{
    h->phase = EM_HTTP_PHASE_HEAD;
    em_conn_read_deadline(&h->conn, em_loop.conf->limits.request_timeout);
}

/* The most input a phase may buffer before reading pauses. */
static size_t
em_http_input_bound(const em_conn_t *c)
{
    const em_http_conn_t *h = (const em_http_conn_t *) c;

    return h->phase == EM_HTTP_PHASE_BODY ? (size_t) h->head_len + h->body_len : EM_CHAN_MAX_DATA;
}

static void
em_http_chunked_free(em_http_conn_t *h)
{
    if (h->chunked != NULL) {
        free(h->chunked->head);
        free(h->chunked->body);
        free(h->chunked);
        h->chunked = NULL;
    }
}

static void
em_http_free(em_conn_t *c)
{
    em_http_conn_t *h = em_http_of(c);

    em_http_chunked_free(h);
    free(h->origin);
}

static int
em_http_open(const em_http_conn_t *h)
{
    return h->conn.state == EM_CONN_OPEN;
}

/* The status line and headers; EM_ERROR (the connection closed) when out
 * of memory. */
static int
em_http_write_head(em_http_conn_t *h, int status, const char *ctype, size_t len)
{
    struct evbuffer *out = em_conn_output(&h->conn);

    if (out == NULL) {
        em_conn_close(&h->conn);
        return EM_ERROR;
    }
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, em_http_reason(status));
    if (ctype != NULL) {
        evbuffer_add_printf(out, "Content-Type: %s\r\n", ctype);
    }
    evbuffer_add_printf(out, "Content-Length: %zu\r\n", len);
    if (h->origin != NULL) {
        evbuffer_add_printf(out, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n", h->origin);
        if (h->cors_cred) {
            evbuffer_add_printf(out, "Access-Control-Allow-Credentials: true\r\n");
        }
    }
    if (evbuffer_add_printf(out, "Connection: %s\r\n\r\n", h->keep_alive ? "keep-alive" : "close")
        < 0) {
        em_log(EM_LOG_ERR, 0, "cannot write a response head: out of memory");
        em_conn_close(&h->conn);
        return EM_ERROR;
    }
    return EM_OK;
}

/* After a response: read the next request, or close. */
static void
em_http_request_done(em_http_conn_t *h)
{
    em_conn_t *c = &h->conn;

    if (c->state == EM_CONN_CLOSED) {
        return;
    }
    if (h->held) {
        h->held = 0;            /* answered: its route hears nothing more */
        c->upper = NULL;
    }
    if (!h->keep_alive) {
        em_conn_drain(c);
        return;
    }
    em_http_await_head(h);
    c->upper = NULL;
    h->reused = 1;
    em_conn_io_update(c);
    if (!h->in_process && c->in != NULL && evbuffer_get_length(c->in) > 0) {
        /* Pipelined requests wait for the end of this loop pass: this may be
         * inside a send (a broadcast, a script) that must not see sessions
         * change under it. */
        em_conn_process_later(c);
    }
}

void
em_http_conn_respond(em_http_conn_t *h, int status, const char *ctype, const char *body,
                     size_t len)
{
    if (!em_http_open(h)) {
        return;
    }
    if (em_http_write_head(h, status, ctype, len) != EM_OK) {
        return;
    }
    if (len > 0 && evbuffer_add(h->conn.out, body, len) != 0) {
        em_log(EM_LOG_ERR, 0, "cannot write a response body of %zu bytes: out of memory", len);
        em_conn_close(&h->conn);
        return;
    }
    em_http_request_done(h);
}

void
em_http_conn_respond_body(em_http_conn_t *h, struct evbuffer *body)
{
    em_http_conn_respond_body_type(h, 200, "text/plain; charset=UTF-8", body);
}

void
em_http_conn_respond_body_type(em_http_conn_t *h, int status, const char *ctype,
                               struct evbuffer *body)
{
    if (!em_http_open(h)) {
        return;
    }
    if (em_http_write_head(h, status, ctype, evbuffer_get_length(body)) != EM_OK) {
        return;
    }
    if (evbuffer_add_buffer(h->conn.out, body) != 0) {
        em_log(EM_LOG_ERR, 0, "cannot write a response body: out of memory");
        em_conn_close(&h->conn);
        return;
    }
    em_http_request_done(h);
}

void
em_http_conn_hold(em_http_conn_t *h, void *upper)
{
    h->held = 1;
    em_http_conn_park(h, upper);
}

void
em_http_conn_park(em_http_conn_t *h, void *upper)
{
    h->conn.upper = upper;
    h->phase = EM_HTTP_PHASE_POLL;
    em_conn_read_untimed(&h->conn);     /* no timeout while parked */
    em_conn_io_update(&h->conn);
}

int
em_http_conn_upgrade(em_http_conn_t *h, const em_http_req_t *req)
{
    const em_http_header_t *key = em_http_header(req, "sec-websocket-key");
    const em_http_header_t *ver = em_http_header(req, "sec-websocket-version");
    unsigned char           digest[EVP_MAX_MD_SIZE];
    unsigned char           accept[64];
    char                    buf[128];

    if (!req->upgrade_ws || req->method != EM_HTTP_GET || key == NULL || key->value.len != 24
        || ver == NULL || !em_str_eq(ver->value, "13")) {
        return EM_ERROR;
    }
    memcpy(buf, key->value.data, 24);
    memcpy(buf + 24, EM_WS_GUID, sizeof(EM_WS_GUID) - 1);
    if (EVP_Digest(buf, 24 + sizeof(EM_WS_GUID) - 1, digest, NULL, EVP_sha1(), NULL) != 1) {
        em_log(EM_LOG_ERR, 0, "EVP_Digest(sha1) failed");
        return EM_ERROR;
    }
    EVP_EncodeBlock(accept, digest, 20);    /* 28 characters and a NUL */

    struct evbuffer *out = em_conn_output(&h->conn);
    if (out == NULL
        || evbuffer_add_printf(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                               (const char *) accept) < 0) {
        em_log(EM_LOG_ERR, 0, "cannot write a WebSocket handshake: out of memory");
        return EM_ERROR;
    }
    h->keep_alive = 0;
    em_ws_start(&h->conn, h->endpoint->max_payload);
    return EM_OK;
}

static void
em_http_fail(em_http_conn_t *h, int status)
{
    h->keep_alive = 0;
    em_http_conn_respond(h, status, "text/plain; charset=UTF-8", em_http_reason(status),
                         strlen(em_http_reason(status)));
}

/* A request broke the protocol or a bound: say so (logged, counted), answer
 * `status` and close. */
static void
em_http_refuse(em_http_conn_t *h, int status, em_limit_t limit, const char *why)
{
    em_loop_violation(h->conn.fd, NULL, limit, "%s: answered %d", why, status);
    em_http_fail(h, status);
}

/* Note the request's Origin if CORS allows it, to echo in the response. */
static void
em_http_cors(em_http_conn_t *h, const em_http_req_t *req, const em_conf_cors_t *cors)
{
    const em_http_header_t *origin;

    free(h->origin);
    h->origin = NULL;
    h->cors_cred = cors->credentials;
    if (!cors->enabled || (origin = em_http_header(req, "origin")) == NULL) {
        return;
    }
    if (em_conf_origin_allowed(cors, origin->value.data, origin->value.len)
        && memchr(origin->value.data, '\r', origin->value.len) == NULL
        && memchr(origin->value.data, '\n', origin->value.len) == NULL) {
        h->origin = strndup(origin->value.data, origin->value.len);
    }
}

static void
em_http_preflight(em_http_conn_t *h, const em_http_req_t *req)
{
    struct evbuffer        *out = em_conn_output(&h->conn);
    const em_http_header_t *acrh = em_http_header(req, "access-control-request-headers");

    if (out == NULL) {
        em_conn_close(&h->conn);
        return;
    }
    evbuffer_add_printf(out, "HTTP/1.1 204 No Content\r\n");
    if (h->origin != NULL) {
        evbuffer_add_printf(out,
                            "Access-Control-Allow-Origin: %s\r\nVary: Origin, Access-Control-Request-Headers\r\n"
                            "Access-Control-Allow-Methods: GET,HEAD,PUT,PATCH,POST,DELETE\r\n",
                            h->origin);
        if (h->cors_cred) {
            evbuffer_add_printf(out, "Access-Control-Allow-Credentials: true\r\n");
        }
        if (acrh != NULL && memchr(acrh->value.data, '\r', acrh->value.len) == NULL
            && memchr(acrh->value.data, '\n', acrh->value.len) == NULL) {
            evbuffer_add_printf(out, "Access-Control-Allow-Headers: %.*s\r\n",
                                (int) acrh->value.len, acrh->value.data);
        }
    }
    if (evbuffer_add_printf(out, "Content-Length: 0\r\nConnection: %s\r\n\r\n",
                            h->keep_alive ? "keep-alive" : "close") < 0) {
        em_conn_close(&h->conn);
        return;
    }
    em_http_request_done(h);
}

/* Give the connection to the worker that owns the session it names. */
static void
em_http_handoff(em_http_conn_t *h, unsigned slot)
{
    struct evbuffer *in = em_conn_input(&h->conn);
    size_t           len = in != NULL ? evbuffer_get_length(in) : 0;
    const char      *data = in != NULL ? (const char *) evbuffer_pullup(in, -1) : NULL;

    if (in == NULL || len > EM_CHAN_MAX_DATA
        || em_loop.handlers.handoff(h->conn.fd, slot, data, len) != EM_OK) {
        em_http_fail(h, 503);
        return;
    }
    evbuffer_drain(in, len);
    em_conn_close(&h->conn);   /* our copy of the fd; the master holds its own */
}

/* Read the request's body, if it has one, or serve it now. Returns what
 * em_http_request() returns. */
static size_t
em_http_body_start(em_http_conn_t *h, const em_http_req_t *req)
{
    size_t max = em_http_body_max(h);

    if (req->chunked) {
        if (req->method != EM_HTTP_POST && !h->route) {
            em_http_refuse(h, 400, EM_LIMIT_PROTOCOL, "a chunked body on a request other than POST");
            return req->head_len;
        }
        /* Keep a copy of the head: the body is decoded as it arrives and
         * the input it came in is dropped. */
        em_http_chunked_body_t *ch = calloc(1, sizeof(*ch));
        if (ch == NULL || (ch->head = malloc(req->head_len)) == NULL) {
            free(ch);
            em_http_fail(h, 503);
            return req->head_len;
        }
        memcpy(ch->head, req->method_str.data, req->head_len);
        ch->head_len = req->head_len;
        h->chunked = ch;
        h->phase = EM_HTTP_PHASE_CHUNKED;
        return req->head_len;
    }
    if ((req->method == EM_HTTP_POST || h->route) && req->content_length > 0) {
        if ((size_t) req->content_length > max) {
            em_loop_violation(h->conn.fd, NULL, EM_LIMIT_REQUEST_SIZE,
                              "a request body of %lld bytes (limit %zu): answered 413",
                              (long long) req->content_length, max);
            h->keep_alive = 0;
            if (h->route) {
                static const char tl[] = "{\"error\":\"too_large\",\"message\":\"the request "
                                         "body is over admin.max_body\"}";
                em_http_conn_respond(h, 413, "application/json", tl, sizeof(tl) - 1);
            } else {
                em_http_conn_respond(h, 413, "text/plain; charset=UTF-8", "Payload Too Large", 17);
            }
            return req->head_len;
        }
        h->phase = EM_HTTP_PHASE_BODY;
        h->head_len = (unsigned) req->head_len;         /* <= EM_HTTP_MAX_HEAD */
        h->body_len = (uint32_t) req->content_length;   /* <= max_payload (1 GiB) */
        return 0;
    }
    em_http_serve(h, req, NULL, 0);
    return req->head_len;
}

/*
 * A request head is complete: route it, then serve it or wait for its body.
 * Returns how many input bytes the caller drops once it is done (the head;
 * 0 while a body is awaited, which keeps head and body together).
 */
static size_t
em_http_request(em_http_conn_t *h, const em_http_req_t *req)
{
    const em_conf_endpoint_t *ep;
    char                      sid[EM_SID_LEN + 8];
    ssize_t                   n;

    h->keep_alive = req->keep_alive && !em_loop.draining;   /* draining: the last request */
    h->route = 0;
    h->endpoint = NULL;
    if (!h->admin) {
        em_http_cors(h, req, &em_loop.conf->cors);
    }

    int r = em_http_route_find(h, req->path);
    if (r >= 0 && !h->admin) {
        h->noroute = 0;
        if (req->content_length > 0 || req->chunked) {
            h->keep_alive = 0;      /* its body is not read */
        }
        em_http_routes[r].fn(h, req, NULL, 0);
        return req->head_len;
    }
    if (h->admin) {
        if (r < 0) {
            if (req->content_length > 0 || req->chunked) {
                h->keep_alive = 0;
            }
            static const char nf[] = "{\"error\":\"not_found\",\"message\":\"no such API call\"}";
            em_http_conn_respond(h, 404, "application/json", nf, sizeof(nf) - 1);
            return req->head_len;
        }
        h->route = (unsigned) r + 1;
        return em_http_body_start(h, req);
    }
    ep = em_conf_endpoint(em_loop.conf, req->path.data, req->path.len);
    if (ep == NULL) {
        if (req->content_length > 0 || req->chunked) {
            h->keep_alive = 0;
        }
        em_http_conn_respond(h, 404, "text/plain; charset=UTF-8", "Not Found", 9);
        return req->head_len;
    }
    if (ep->cors != NULL) {
        em_http_cors(h, req, ep->cors);     /* the endpoint's own */
    }

    n = em_http_query_get(req->query, "sid", sid, sizeof(sid));
    if (n == -1 && em_loop.draining) {
        /* A reload replaced this worker: a new session goes to a new one. */
        em_http_handoff(h, EM_CHAN_SLOT_ANY);
        return 0;
    }
    if (!h->noroute && em_loop.nworkers > 1) {
        if (n > 0) {
            int slot = em_sid_slot(sid, (size_t) n);
            if (slot >= 0 && (unsigned) slot != em_loop.slot && (unsigned) slot < em_loop.nworkers) {
                em_http_handoff(h, (unsigned) slot);
                return 0;
            }
        } else if (n == -1 && h->reused && req->method == EM_HTTP_GET
                   && em_tls_peer(h->conn.fd, sid, sizeof(sid)) != 0) {
            /* A new session on a reused connection: let the master place it
             * (not one whose TLS this worker runs: it knows its address). */
            em_http_handoff(h, EM_CHAN_SLOT_ANY);
            return 0;
        }
    }
    h->noroute = 0;

    if (req->method == EM_HTTP_OPTIONS) {
        em_http_preflight(h, req);
        return req->head_len;
    }
    h->endpoint = ep;
    return em_http_body_start(h, req);
}

/* CHUNKED: decode what arrived. Returns EM_OK when the body was served,
 * EM_AGAIN for more input, EM_ERROR when the request was refused. */
static int
em_http_chunked_input(em_http_conn_t *h, struct evbuffer *in, size_t len)
{
    em_http_chunked_body_t *ch = h->chunked;
    size_t                  max = em_http_body_max(h);
    size_t                  used = 0;
    em_http_req_t           req;

    /* A call decodes at most as many bytes as it reads: the body grows
     * with the input, never to max_payload at once. */
    size_t need = EM_MIN(max, ch->body_len + len);
    if (need > ch->body_cap) {
        size_t cap = EM_MIN(max, EM_MAX(need, ch->body_cap * 2));
        char  *nb = realloc(ch->body, cap);
        if (nb == NULL) {
            em_loop_violation(h->conn.fd, NULL, EM_LIMIT_MEMORY,
                              "no memory for a chunked body of %zu bytes", cap);
            em_http_chunked_free(h);
            em_http_fail(h, 503);
            return EM_ERROR;
        }
        ch->body = nb;
        ch->body_cap = cap;
    }
    const char *buf = (const char *) evbuffer_pullup(in, (ssize_t) len);
    int rc = em_http_chunked_parse(&ch->st, buf, len, &used, ch->body, max, &ch->body_len);
    evbuffer_drain(in, used);
    if (rc == EM_AGAIN) {
        return EM_AGAIN;
    }
    if (rc != EM_OK) {
        em_http_chunked_free(h);
        h->keep_alive = 0;
        if (rc == EM_DECLINED) {
            em_loop_violation(h->conn.fd, NULL, EM_LIMIT_REQUEST_SIZE,
                              "a chunked body over max_payload (%zu): answered 413", max);
            em_http_conn_respond(h, 413, "text/plain; charset=UTF-8", "Payload Too Large", 17);
        } else {
            em_http_refuse(h, 400, EM_LIMIT_PROTOCOL, "a malformed chunked body");
        }
        return EM_ERROR;
    }
    if (em_http_parse(ch->head, ch->head_len, &req) != EM_OK) {
        em_http_chunked_free(h);
        em_http_fail(h, 400);
        return EM_ERROR;
    }
    h->phase = EM_HTTP_PHASE_BODY;    /* the layer above answers as for any POST */
    em_http_serve(h, &req, ch->body, ch->body_len);
    em_http_chunked_free(h);
    return EM_OK;
}

/* Drive the request state machine on whatever input is buffered. */
static void
em_http_input(em_conn_t *c)
{
    em_http_conn_t  *h = em_http_of(c);
    struct evbuffer *in = em_conn_input(c);
    em_http_req_t    req;
    int              rounds;

    if (in == NULL) {
        em_conn_close(c);
        return;
    }
    h->in_process = 1;
    for (rounds = 0; rounds < 64; rounds++) {
        size_t len = evbuffer_get_length(in);
        size_t consumed = 0;

        if (c->state != EM_CONN_OPEN) {
            if (c->state == EM_CONN_WS) {
                em_ws_on_read(c);       /* frames sent right after the upgrade */
            }
            break;
        }
        if (h->phase == EM_HTTP_PHASE_HEAD) {
            if (len == 0) {
                break;
            }
            size_t      want = EM_MIN(len, (size_t) EM_HTTP_MAX_HEAD);
            const char *buf = (const char *) evbuffer_pullup(in, (ssize_t) want);
            int         rc = em_http_parse(buf, want, &req);
            if (rc == EM_AGAIN) {
                if (want >= EM_HTTP_MAX_HEAD) {
                    em_http_refuse(h, 431, EM_LIMIT_REQUEST_SIZE, "a request head over 16 KiB");
                }
                break;
            }
            if (rc != EM_OK) {
                if (rc == EM_DECLINED) {
                    em_http_refuse(h, 431, EM_LIMIT_REQUEST_SIZE,
                                   "a request head over 16 KiB or 64 headers");
                } else {
                    em_http_refuse(h, 400, EM_LIMIT_PROTOCOL, "a malformed request head");
                }
                break;
            }
            consumed = em_http_request(h, &req);
        } else if (h->phase == EM_HTTP_PHASE_BODY) {
            size_t total = (size_t) h->head_len + h->body_len;
            if (len < total) {
                break;
            }
            const char *buf = (const char *) evbuffer_pullup(in, (ssize_t) total);
            if (em_http_parse(buf, h->head_len, &req) != EM_OK) {
                em_http_fail(h, 400);
                break;
            }
            em_http_serve(h, &req, buf + h->head_len, h->body_len);
            consumed = total;
        } else if (h->phase == EM_HTTP_PHASE_CHUNKED) {
            if (len == 0 || em_http_chunked_input(h, in, len) != EM_OK) {
                break;
            }
        } else {
            /* POLL: a parked GET; anything sent now waits for its answer. */
            break;
        }
        if (c->state == EM_CONN_CLOSED) {
            break;
        }
        evbuffer_drain(in, consumed);
    }
    h->in_process = 0;
    if (rounds == 64 && c->state == EM_CONN_OPEN && h->phase == EM_HTTP_PHASE_HEAD
        && evbuffer_get_length(in) > 0) {
        em_conn_process_later(c);   /* more pipelined requests: next pass */
    }
}

/*
 * The client shut its sending side. A request it already sent is still
 * answered: a parked GET waits for its data, a response being written is
 * written out; then the connection closes. A request cut short ends now.
 */
static void
em_http_eof(em_conn_t *c)
{
    em_http_conn_t *h = em_http_of(c);

    h->keep_alive = 0;
    if (h->phase == EM_HTTP_PHASE_POLL) {
        return;         /* em_http_request_done() drains it after the answer */
    }
    if (h->phase == EM_HTTP_PHASE_HEAD && c->out != NULL && evbuffer_get_length(c->out) > 0
        && (c->in == NULL || evbuffer_get_length(c->in) == 0)) {
        em_conn_drain(c);
        return;
    }
    em_conn_close(c);
}

/* request_timeout passed: an idle connection goes quietly, a request not
 * whole by then is answered 408. */
static void
em_http_read_timeout(em_conn_t *c)
{
    em_http_conn_t *h = em_http_of(c);
    int             started = h->phase != EM_HTTP_PHASE_HEAD
                              || (c->in != NULL && evbuffer_get_length(c->in) > 0);

    if (!started) {
        em_conn_close(c);   /* an idle keep-alive connection, or one that sent nothing */
        return;
    }
    em_loop_violation(c->fd, NULL, EM_LIMIT_REQUEST_TIMEOUT, "sent no whole request within %u ms",
                      em_loop.conf->limits.request_timeout);
    h->keep_alive = 0;
    em_http_chunked_free(h);
    h->phase = EM_HTTP_PHASE_HEAD;
    c->upper = NULL;
    em_http_fail(h, 408);
}

void
em_http_conn_accept(int fd, const char *data, size_t len, int noroute, int admin)
{
    em_conn_t *c = em_conn_new(fd, data, len);

    if (c == NULL) {
        return;
    }
    em_http_of(c)->noroute = noroute ? 1 : 0;
    em_http_of(c)->admin = admin && em_loop.conf->admin != NULL;
    em_http_await_head(em_http_of(c));
    em_conn_start(c);
}

/* A connection attached to upper is gone: a route's held request, or the
 * layer above's. */
static void
em_http_lost(void *upper, em_conn_t *c)
{
    em_http_conn_t *h = em_http_of(c);

    if (h->held) {
        h->held = 0;
        if (em_http_route_lost != NULL) {
            em_http_route_lost(upper);
        }
        return;
    }
    em_http_upper.lost(upper, c);
}

int
em_http_conn_init(const em_http_handlers_t *h)
{
    em_conn_handlers_t t = {
        .conn_size = sizeof(em_http_conn_t),
        .input = em_http_input,
        .input_bound = em_http_input_bound,
        .eof = em_http_eof,
        .read_timeout = em_http_read_timeout,
        .free = em_http_free,
        .ws_message = h->ws_message,
        .lost = em_http_lost,
        .upper_id = h->upper_id,
    };

    em_http_upper = *h;
    return em_conn_init(&t);
}
