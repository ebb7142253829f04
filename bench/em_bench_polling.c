/*
 * em_bench_polling.c - Engine.IO HTTP long-polling for a connection.
 *
 * The GET channel (c->bev) carries the handshake and then one long-poll at
 * a time; the POST channel (c->post) is dialled on the first packet to send
 * and carries one POST at a time, whose body is every packet queued since
 * (joined by 0x1e). Responses need a Content-Length (emitd's always have
 * one); a response with Connection: close makes the channel redial.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "em_eio.h"
#include "em_bench_polling.h"

#define EM_BENCH_MAX_HEAD   8192
#define EM_BENCH_MAX_BODY   (64u << 20)

static void em_bench_get_read_cb(struct bufferevent *bev, void *arg);
static void em_bench_get_event_cb(struct bufferevent *bev, short what, void *arg);
static void em_bench_post_read_cb(struct bufferevent *bev, void *arg);
static void em_bench_post_event_cb(struct bufferevent *bev, short what, void *arg);
static void em_bench_polling_flush(em_bench_conn_t *c);

/* "host:port" for the Host header. */
static void
em_bench_host(const em_bench_url_t *u, char *out, size_t cap)
{
    if (strchr(u->host, ':') != NULL) {
        snprintf(out, cap, "[%s]:%s", u->host, u->port);
    } else {
        snprintf(out, cap, "%s:%s", u->host, u->port);
    }
}

/* Write the GET of the handshake (no sid yet) or of a long-poll. */
static void
em_bench_polling_get(em_bench_conn_t *c)
{
    const em_bench_url_t *u = &c->w->opts->target;
    char                  host[300], req[1024];
    int                   n;

    if (c->bev == NULL) {
        c->bev = em_bench_conn_dial(c, em_bench_get_read_cb, em_bench_get_event_cb);
        if (c->bev == NULL) {
            em_bench_conn_fail(c, errno, "connect() failed");
        }
        return;                                   /* the GET goes on CONNECTED */
    }
    em_bench_host(u, host, sizeof(host));
    n = snprintf(req, sizeof(req),
                 "GET %s?EIO=4&transport=polling%s%s HTTP/1.1\r\nHost: %s\r\n\r\n",
                 u->path, c->sid[0] ? "&sid=" : "", c->sid, host);
    if (n <= 0 || (size_t) n >= sizeof(req)) {
        em_bench_conn_fail(c, 0, "request too long");
        return;
    }
    bufferevent_write(c->bev, req, (size_t) n);
    c->w->c.bytes_sent += (size_t) n;
    c->get_busy = 1;
}

int
em_bench_polling_start(em_bench_conn_t *c)
{
    c->sid[0] = '\0';
    c->outq = evbuffer_new();
    if (c->outq == NULL) {
        em_bench_conn_fail(c, ENOMEM, "evbuffer_new() failed");
        return EM_ERROR;
    }
    em_bench_polling_get(c);
    return c->bev != NULL ? EM_OK : EM_ERROR;
}

int
em_bench_polling_send(em_bench_conn_t *c, char type, const char *data, size_t len)
{
    if (c->outq == NULL || c->closing) {
        return EM_ERROR;
    }
    if (evbuffer_get_length(c->outq) > 0) {
        evbuffer_add(c->outq, &(char) { EM_EIO_SEPARATOR }, 1);
    }
    if (evbuffer_add(c->outq, &type, 1) != 0 || evbuffer_add(c->outq, data, len) != 0) {
        return EM_ERROR;
    }
    em_bench_polling_flush(c);
    return EM_OK;
}

static void
em_bench_polling_flush(em_bench_conn_t *c)
{
    const em_bench_url_t *u = &c->w->opts->target;
    char                  host[300], head[1024];
    size_t                len;
    int                   n;

    if (c->post_busy || c->closing || c->outq == NULL
        || (len = evbuffer_get_length(c->outq)) == 0)
    {
        return;
    }
    if (c->post == NULL) {
        c->post = em_bench_conn_dial(c, em_bench_post_read_cb, em_bench_post_event_cb);
        if (c->post == NULL) {
            em_bench_conn_fail(c, errno, "connect() failed (POST)");
            return;
        }
        c->post_busy = 1;                         /* until CONNECTED */
        return;
    }
    em_bench_host(u, host, sizeof(host));
    n = snprintf(head, sizeof(head),
                 "POST %s?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: %s\r\n"
                 "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: %zu\r\n\r\n",
                 u->path, c->sid, host, len);
    if (n <= 0 || (size_t) n >= sizeof(head)) {
        em_bench_conn_fail(c, 0, "request too long");
        return;
    }
    bufferevent_write(c->post, head, (size_t) n);
    bufferevent_write_buffer(c->post, c->outq);
    c->w->c.bytes_sent += (size_t) n + len;
    c->post_busy = 1;
}

void
em_bench_polling_goodbye(em_bench_conn_t *c)
{
    const em_bench_url_t *u = &c->w->opts->target;
    char                  host[300], req[1024];
    int                   n;

    struct bufferevent   *idle;

    /* Whichever channel has no request in flight; the GET channel is idle
     * when the connection closes while handling a GET's response. */
    idle = c->post != NULL && !c->post_busy ? c->post
           : c->bev != NULL && !c->get_busy && c->state != EM_CONN_TCP ? c->bev : NULL;
    if (idle == NULL || c->sid[0] == '\0') {
        return;
    }
    em_bench_host(u, host, sizeof(host));
    n = snprintf(req, sizeof(req),
                 "POST %s?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: %s\r\n"
                 "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: 1\r\n\r\n1",
                 u->path, c->sid, host);
    if (n > 0 && (size_t) n < sizeof(req)) {
        /* Straight to the socket: the bufferevent is about to be freed. */
        (void) send(bufferevent_getfd(idle), req, (size_t) n, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
}

/*
 * Take one whole response off a channel's input: EM_OK with *body and
 * *used set (drain *used once the body is handled), EM_AGAIN, or EM_ERROR
 * (reported and failed).
 */
static int
em_bench_polling_response(em_bench_conn_t *c, struct evbuffer *in, em_str_t *body,
                          size_t *used, int *close_after)
{
    struct evbuffer_ptr  e = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    em_bench_http_resp_t r;
    unsigned char       *p;
    size_t               hl;

    if (e.pos < 0) {
        if (evbuffer_get_length(in) > EM_BENCH_MAX_HEAD) {
            em_bench_conn_fail(c, 0, "response head too long");
            return EM_ERROR;
        }
        return EM_AGAIN;
    }
    hl = (size_t) e.pos + 4;
    p = evbuffer_pullup(in, (ssize_t) hl);
    if (em_bench_http_parse_response((const char *) p, hl, &r) != EM_OK
        || r.chunked || r.content_length < 0 || r.content_length > EM_BENCH_MAX_BODY)
    {
        em_bench_conn_fail(c, 0, "bad or unsupported HTTP response");
        return EM_ERROR;
    }
    if (r.status != 200) {
        char why[64];

        snprintf(why, sizeof(why), "HTTP status %d", r.status);
        em_bench_conn_fail(c, 0, why);
        return EM_ERROR;
    }
    if (evbuffer_get_length(in) < hl + (size_t) r.content_length) {
        return EM_AGAIN;
    }
    p = evbuffer_pullup(in, (ssize_t) (hl + (size_t) r.content_length));
    *body = (em_str_t) { (const char *) p + hl, (size_t) r.content_length };
    *used = hl + (size_t) r.content_length;
    *close_after = r.close;
    c->w->c.bytes_recv += *used;
    return EM_OK;
}

static void
em_bench_get_read_cb(struct bufferevent *bev, void *arg)
{
    em_bench_conn_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    em_eio_packet_t  pkt;
    em_str_t         body;
    size_t           used, pos;
    int              rc = EM_DECLINED, close_after;

    em_bench_conn_enter(c);
    while (!c->closing && c->get_busy) {
        if (em_bench_polling_response(c, in, &body, &used, &close_after) != EM_OK) {
            break;
        }
        c->get_busy = 0;
        if (c->sid[0] == '\0'
            && em_bench_json_str(body.data, body.len, "sid", c->sid, sizeof(c->sid)) != EM_OK)
        {
            em_bench_conn_fail(c, 0, "no sid in the handshake");
            break;
        }
        pos = 0;
        while (!c->closing
               && (rc = em_eio_payload_next(body.data, body.len, &pos, &pkt)) == EM_OK)
        {
            if (!pkt.binary) {
                em_bench_conn_eio_packet(c, pkt.data.data - 1, pkt.data.len + 1);
            }
        }
        if (!c->closing && rc == EM_ERROR) {
            em_bench_conn_fail(c, 0, "bad polling payload");
        }
        evbuffer_drain(in, used);
        if (c->closing) {
            break;
        }
        if (close_after) {
            bufferevent_free(c->bev);
            c->bev = NULL;
        }
        em_bench_polling_get(c);                  /* the next long-poll */
        if (c->bev != bev) {
            break;
        }
    }
    em_bench_conn_leave(c);
}

static void
em_bench_get_event_cb(struct bufferevent *bev, short what, void *arg)
{
    em_bench_conn_t *c = arg;

    (void) bev;
    em_bench_conn_enter(c);
    if (what & BEV_EVENT_CONNECTED) {
        if (c->state == EM_CONN_TCP) {
            c->state = EM_CONN_EIO_OPEN;
        }
        em_bench_polling_get(c);
    } else if (what & BEV_EVENT_EOF) {
        c->w->c.closed_by_server++;
        em_bench_conn_fail(c, 0, "polling GET connection closed by the server");
    } else if (what & BEV_EVENT_ERROR) {
        em_bench_conn_fail(c, EVUTIL_SOCKET_ERROR(), "polling GET connection failed");
    }
    em_bench_conn_leave(c);
}

static void
em_bench_post_read_cb(struct bufferevent *bev, void *arg)
{
    em_bench_conn_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    em_str_t         body;
    size_t           used;
    int              close_after;

    em_bench_conn_enter(c);
    while (!c->closing && c->post_busy && c->post == bev) {
        if (em_bench_polling_response(c, in, &body, &used, &close_after) != EM_OK) {
            break;
        }
        evbuffer_drain(in, used);
        c->post_busy = 0;
        if (close_after) {
            bufferevent_free(c->post);
            c->post = NULL;
        }
        em_bench_polling_flush(c);
    }
    em_bench_conn_leave(c);
}

static void
em_bench_post_event_cb(struct bufferevent *bev, short what, void *arg)
{
    em_bench_conn_t *c = arg;

    (void) bev;
    em_bench_conn_enter(c);
    if (what & BEV_EVENT_CONNECTED) {
        c->post_busy = 0;
        em_bench_polling_flush(c);
    } else if (what & BEV_EVENT_EOF) {
        c->w->c.closed_by_server++;
        em_bench_conn_fail(c, 0, "polling POST connection closed by the server");
    } else if (what & BEV_EVENT_ERROR) {
        em_bench_conn_fail(c, EVUTIL_SOCKET_ERROR(), "polling POST connection failed");
    }
    em_bench_conn_leave(c);
}
