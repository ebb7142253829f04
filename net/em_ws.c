/*
 * em_ws.c - WebSocket connections with wslay.
 *
 * wslay never touches the socket: its recv callback takes bytes from the
 * connection's input evbuffer and its send callback appends to the output
 * evbuffer; em_ws_on_read() drives wslay until it makes no more progress.
 * wslay parses every incoming frame and answers pings and closes. Outgoing
 * data frames are written here directly — header, then a reference to the
 * shared, already encoded packet — so a broadcast's bytes are never copied
 * per recipient before they reach the socket buffer. That is safe because
 * our send callback always takes whole frames, so wslay never holds a
 * partial frame that ours could interleave with.
 */
#include <event2/buffer.h>
#include <string.h>

#include "em_conn.h"
#include "em_utf8.h"
#include "em_wsframe.h"
#include "em_log.h"
#include "em_loop.h"

/* The bytes wslay may still take in this em_ws_on_read() (the whole
 * frames it measured). Saved and restored around wslay_event_recv(): a
 * message handler may read another connection's frames. */
static uint32_t em_ws_feed;

/* Hands wslay at most the whole frames em_ws_on_read() measured. */
static ssize_t
em_ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    em_conn_t *c = user;
    int        n = 0;
    (void) flags;

    if (em_ws_feed > 0) {
        n = evbuffer_remove(c->in, buf, EM_MIN(len, em_ws_feed));
    }
    if (n > 0) {
        em_ws_feed -= (uint32_t) n;
    }
    if (n <= 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return n;
}

static ssize_t
em_ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
    em_conn_t       *c = user;
    struct evbuffer *out = em_conn_output(c);
    (void) flags;

    if (out == NULL || evbuffer_add(out, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t) len;
}

static void
em_ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    em_conn_t *c = user;
    (void) ctx;

    if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME) {
        return;     /* ping/pong/close: wslay answers them */
    }
    if (c->upper == NULL || c->ws_closing) {
        return;
    }
    if (arg->opcode == WSLAY_TEXT_FRAME && !em_utf8_valid((const char *) arg->msg, arg->msg_length)) {
        /* RFC 6455 8.1: fail the connection (1007), as Node's ws does. */
        em_loop_violation(c->fd, em_conn_upper_id(c), EM_LIMIT_PROTOCOL,
                          "a text message of %zu bytes that is not valid UTF-8", arg->msg_length);
        em_ws_close(c, 1007, "invalid UTF-8");
        return;
    }
    em_conn_ws_message(c, (const char *) arg->msg, arg->msg_length,
                       arg->opcode == WSLAY_BINARY_FRAME);
}

static const struct wslay_event_callbacks em_ws_callbacks = {
    em_ws_recv_cb, em_ws_send_cb, NULL, NULL, NULL, NULL, em_ws_msg_cb
};

void
em_ws_start(em_conn_t *c, size_t max_payload)
{
    c->state = EM_CONN_WS;
    c->ws_max = (uint32_t) max_payload;     /* <= 1 GiB (em_conf) */
    /* Liveness is the layer above's from now on (Engine.IO's ping/pong). */
    c->read_timed = 0;
    em_conn_io_update(c);
}

/* wslay's context is made when a frame arrives and freed when none is in
 * flight: 9 KiB that an idle connection does not need. */
static int
em_ws_ctx(em_conn_t *c)
{
    if (c->ws != NULL) {
        return EM_OK;
    }
    if (wslay_event_context_server_init(&c->ws, &em_ws_callbacks, c) != 0) {
        em_log(EM_LOG_ERR, 0, "wslay_event_context_server_init() failed");
        c->ws = NULL;
        return EM_ERROR;
    }
    wslay_event_config_set_max_recv_msg_length(c->ws, c->ws_max);
    return EM_OK;
}

/* Flush what wslay queued; close the connection once both sides are done. */
static void
em_ws_flush(em_conn_t *c)
{
    if (wslay_event_send(c->ws) != 0) {
        em_conn_close(c);
        return;
    }
    if (!wslay_event_want_read(c->ws) && !wslay_event_want_write(c->ws)) {
        em_conn_drain(c);
    }
}

void
em_ws_on_read(em_conn_t *c)
{
    struct evbuffer  *in = c->in;
    size_t            len = in != NULL ? evbuffer_get_length(in) : 0;
    unsigned char     head[14];
    em_wsframe_scan_t scan;
    int               rc;

    if (len == 0 || c->ws_closing) {
        return;
    }
    /* Until the first frame is whole, look at its header only. */
    em_wsframe_scan(head, (size_t) evbuffer_copyout(in, head, EM_MIN(len, sizeof(head))),
                    c->ws_max, c->ws_fragmented, &scan);
    if (scan.frames == 0 && !scan.oversized && (scan.need == 0 || scan.need > len)) {
        return;
    }
    em_wsframe_scan(evbuffer_pullup(in, (ssize_t) len), len, c->ws_max, c->ws_fragmented, &scan);
    if (scan.badlength) {
        /* wslay would refuse it too, but with a close frame without a code. */
        em_ws_close(c, 1002, "frame length over 2^63");
        return;
    }
    uint32_t feed = (uint32_t) (scan.oversized ? len : scan.complete);   /* <= the input bound */
    if (feed == 0 || em_ws_ctx(c) != EM_OK) {
        return;
    }
    uint32_t outer = em_ws_feed;
    em_ws_feed = feed;
    c->in_ws_recv = 1;
    rc = wslay_event_recv(c->ws);
    c->in_ws_recv = 0;
    em_ws_feed = outer;
    c->ws_fragmented = scan.fragmented;
    if (c->state == EM_CONN_CLOSED) {
        return;
    }
    /* Send what wslay queued (pongs, a close reply, our own close) now that
     * it is not inside its receive loop any more. */
    em_ws_flush(c);
    if (c->state != EM_CONN_CLOSED && (rc != 0 || c->ws_closing)) {
        /* Protocol error, oversized message (wslay queued close 1002/1009),
         * or we are closing: drain what we wrote and go. */
        em_conn_drain(c);
        return;
    }
    if (c->state == EM_CONN_WS && !scan.oversized && !c->ws_fragmented
        && wslay_event_get_queued_msg_count(c->ws) == 0 && !wslay_event_get_close_received(c->ws)
        && !wslay_event_get_close_sent(c->ws)) {
        em_ws_free(c);
    }
}

static void
em_ws_unref_cb(const void *data, size_t len, void *arg)
{
    (void) data;
    (void) len;
    em_buf_unref(arg);
}

int
em_ws_send(em_conn_t *c, em_buf_t *buf)
{
    struct evbuffer *out;
    uint8_t          hdr[10];
    size_t           hlen;

    if (c->state != EM_CONN_WS || c->ws_closing) {
        return EM_ERROR;
    }
    if (c->close_pending) {
        return EM_ERROR;
    }
    /* What waits after a write is bounded by output_hard (em_conn.c); within
     * one loop pass, before any write, twice that. Over it the client is
     * closed at the end of the pass: the caller may be a broadcast that still
     * walks this client's sockets. */
    out = em_conn_output(c);
    if (out == NULL || evbuffer_get_length(out) > 2 * em_loop.conf->limits.output_hard) {
        if (out != NULL) {
            em_loop_violation(c->fd, em_conn_upper_id(c), EM_LIMIT_OUTPUT,
                              "%zu bytes of output in one pass (twice output_hard)",
                              evbuffer_get_length(out));
        }
        em_conn_close_later(c);
        return EM_ERROR;
    }
    hdr[0] = 0x80 | (buf->binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME);
    if (buf->len < 126) {
        hdr[1] = (uint8_t) buf->len;
        hlen = 2;
    } else if (buf->len < 65536) {
        hdr[1] = 126;
        hdr[2] = (uint8_t) (buf->len >> 8);
        hdr[3] = (uint8_t) buf->len;
        hlen = 4;
    } else {
        hdr[1] = 127;
        for (int i = 0; i < 8; i++) {
            hdr[2 + i] = (uint8_t) ((uint64_t) buf->len >> (56 - 8 * i));
        }
        hlen = 10;
    }
    int rc = evbuffer_add(out, hdr, hlen);
    if (rc == 0 && buf->len < 512) {
        rc = evbuffer_add(out, buf->data, buf->len);
    } else if (rc == 0) {
        em_buf_ref(buf);
        rc = evbuffer_add_reference(out, buf->data, buf->len, em_ws_unref_cb, buf);
        if (rc != 0) {
            em_buf_unref(buf);
        }
    }
    if (rc != 0) {
        /* A frame header without its payload would break the stream. */
        em_loop_violation(c->fd, em_conn_upper_id(c), EM_LIMIT_MEMORY,
                          "no memory to queue a %zu-byte message", buf->len);
        em_conn_close_later(c);
        return EM_ERROR;
    }
    return EM_OK;
}

void
em_ws_close(em_conn_t *c, uint16_t code, const char *reason)
{
    size_t rlen = reason ? EM_MIN(strlen(reason), 123u) : 0;

    if (c->state != EM_CONN_WS || c->ws_closing) {
        return;
    }
    c->ws_closing = 1;
    if (c->ws == NULL) {
        /* No wslay context while idle: write the close frame ourselves. */
        uint8_t frame[4 + 123];
        frame[0] = 0x80 | WSLAY_CONNECTION_CLOSE;
        frame[1] = (uint8_t) (2 + rlen);
        frame[2] = (uint8_t) (code >> 8);
        frame[3] = (uint8_t) code;
        if (rlen) {
            memcpy(frame + 4, reason, rlen);
        }
        struct evbuffer *out = em_conn_output(c);
        if (out == NULL || evbuffer_add(out, frame, 4 + rlen) != 0) {
            em_conn_close(c);
            return;
        }
        em_conn_drain(c);
        return;
    }
    wslay_event_queue_close(c->ws, code, (const uint8_t *) reason, rlen);
    if (c->in_ws_recv) {
        return;     /* em_ws_on_read() sends it when wslay returns */
    }
    if (wslay_event_send(c->ws) != 0) {
        em_conn_close(c);
        return;
    }
    /* We do not wait for the peer's close frame: drain what we wrote and go. */
    em_conn_drain(c);
}

void
em_ws_free(em_conn_t *c)
{
    if (c->ws != NULL) {
        wslay_event_context_free(c->ws);
        c->ws = NULL;
    }
}
