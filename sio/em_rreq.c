/*
 * em_rreq.c - the requests of Socket.IO's Redis adapter, from Node servers
 * (@socket.io/redis-adapter 8) and emitters (@socket.io/redis-emitter 5) on
 * other hosts, run on this host's sockets.
 *
 * The broker is subscribed to <key>-request#<nsp># of each namespace and
 * hands each request to one worker (EM_BRK_KIND_REDIS_REQUEST). That worker
 * runs it as a command on every worker of this host (em_cmd.h) and, for a
 * request that waits for an answer, publishes it through the broker
 * (EM_BRK_KIND_REDIS_PUBLISH) on <key>-response#<nsp>#, as the adapter
 * does:
 *   0 SOCKETS        {requestId, rooms}     -> {requestId, sockets: [ids]}
 *   1 ALL_ROOMS      {requestId}            -> {requestId, rooms: [names]}
 *   2 REMOTE_JOIN    {opts, rooms}          (an emitter's socketsJoin)
 *                    {requestId, sid, room} -> {requestId}, by the host with sid
 *   3 REMOTE_LEAVE   the same
 *   4 REMOTE_DISCONNECT {opts, close} / {requestId, sid, close}
 *   5 REMOTE_FETCH   {requestId, opts}      -> {requestId, sockets: [{id,
 *                                              handshake, rooms, data}]}
 *   7 BROADCAST      MessagePack {requestId, packet, opts: {flags: {timeout}}}
 *                                           -> {type: 8, requestId, clientCount},
 *                                              then {type: 9, requestId, packet: ack}
 *                                              for each client's ack (MessagePack)
 *   6 SERVER_SIDE_EMIT {uid, data, requestId?} -> the namespace script's
 *                                           on_server_emit(event, ..., ack?);
 *                                           its ack: {type: 6, requestId, data}
 * and a script's nsp:server_emit() sends type 6 to the others; with an ack
 * the broker counts them (PUBSUB NUMSUB), collects their answers on the
 * response channel and hands them to the asking worker
 * (EM_BRK_KIND_REDIS_SERVER_ANSWERS), as io.serverSideEmitWithAck() does.
 */
#include <event2/event.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "em_bus.h"
#include "em_cmd.h"
#include "em_conf.h"
#include "em_log.h"
#include "em_loop.h"
#include "em_rmsg.h"
#include "em_rreq.h"
#include "em_socketio.h"

#define EM_RREQ_TIMEOUT 4000        /* ms: under the adapter's requestsTimeout (5 s) */

enum {
    EM_RREQ_SOCKETS = 0,
    EM_RREQ_ALL_ROOMS,
    EM_RREQ_REMOTE_JOIN,
    EM_RREQ_REMOTE_LEAVE,
    EM_RREQ_REMOTE_DISCONNECT,
    EM_RREQ_REMOTE_FETCH,
    EM_RREQ_SERVER_SIDE_EMIT,
    EM_RREQ_BROADCAST
};

typedef struct {
    int     type;
    char   *nsp;
    char   *request_id;     /* NULL: nothing to answer */
} em_rreq_t;

static void
em_rreq_free(em_rreq_t *r)
{
    free(r->nsp);
    free(r->request_id);
    free(r);
}

/* A command for the broker (kind): a name, a NUL, then len bytes. */
static int
em_rreq_to_broker(uint16_t kind, const char *name, size_t nlen, const char *bytes, size_t len)
{
    em_brk_cmd_msg_t m;
    char            *data;
    int              rc;

    if ((data = malloc(nlen + 1 + len)) == NULL) {
        return EM_ERROR;
    }
    memcpy(data, name, nlen);
    data[nlen] = '\0';
    memcpy(data + nlen + 1, bytes, len);
    memset(&m, 0, sizeof(m));
    m.kind = kind;
    m.origin = (uint16_t) em_loop.slot;
    m.target = EM_BRK_BROKER;
    m.data = (em_str_t) { data, nlen + 1 + len };
    rc = em_bus_send_cmd(&m);
    free(data);
    return rc;
}

/* Publish a response (bytes) on the namespace's response channel, through the broker. */
static void
em_rreq_publish(const char *nsp, const char *text, size_t tlen)
{
    const char *key = em_loop.conf->redis->key;
    size_t      clen = strlen(key) + strlen("-response#") + strlen(nsp) + 1;
    char       *channel = malloc(clen + 1);

    if (channel != NULL) {
        snprintf(channel, clen + 1, "%s-response#%s#", key, nsp);
        (void) em_rreq_to_broker(EM_BRK_KIND_REDIS_PUBLISH, channel, clen, text, tlen);
        free(channel);
    }
}

/* The same for a JSON response (the reference is taken). */
static void
em_rreq_respond(const char *nsp, json_t *resp)
{
    char *text = resp != NULL ? json_dumps(resp, JSON_COMPACT) : NULL;

    json_decref(resp);
    if (text != NULL) {
        em_rreq_publish(nsp, text, strlen(text));
        free(text);
    }
}

static json_t *
em_rreq_ids(json_t *result)
{
    json_t *ids = json_array(), *s;
    size_t  i;

    json_array_foreach(json_object_get(result, "sockets"), i, s) {
        json_array_append(ids, json_object_get(s, "id"));
    }
    return ids;
}

static void
em_rreq_done(json_t *result, int complete, void *arg)
{
    em_rreq_t *r = arg;
    json_t    *resp = NULL, *list, *s, *e;
    size_t     i;

    if (!complete) {
        em_log(EM_LOG_WARN, 0, "redis: a worker did not answer a request of type %d in time", r->type);
    }
    switch (r->type) {
    case EM_RREQ_SOCKETS:
        resp = json_pack("{s:s,s:o}", "requestId", r->request_id, "sockets", em_rreq_ids(result));
        break;
    case EM_RREQ_ALL_ROOMS:
        list = json_array();
        json_array_foreach(json_object_get(result, "rooms"), i, e) {
            /* [namespace, room, members]: this namespace's */
            if (json_is_string(json_array_get(e, 0))
                && strcmp(json_string_value(json_array_get(e, 0)), r->nsp) == 0) {
                json_array_append(list, json_array_get(e, 1));
            }
        }
        resp = json_pack("{s:s,s:o}", "requestId", r->request_id, "rooms", list);
        break;
    case EM_RREQ_REMOTE_FETCH:
        list = json_array();
        json_array_foreach(json_object_get(result, "sockets"), i, s) {
            json_t *data = json_object_get(s, "data");
            json_array_append_new(list, json_pack("{s:O,s:O,s:O,s:O}", "id", json_object_get(s, "id"),
                                                  "handshake", json_object_get(s, "handshake"),
                                                  "rooms", json_object_get(s, "rooms"),
                                                  "data", data != NULL ? data : json_null()));
        }
        resp = json_pack("{s:s,s:o}", "requestId", r->request_id, "sockets", list);
        break;
    case EM_RREQ_BROADCAST: {
        /* How many sockets it reached here, then each one's ack. */
        json_t *ack;
        em_rreq_respond(r->nsp, json_pack("{s:i,s:s,s:I}", "type", 8, "requestId", r->request_id,
                                          "clientCount",
                                          json_integer_value(json_object_get(result, "sockets"))));
        json_array_foreach(json_object_get(result, "acks"), i, ack) {
            char  *buf;
            size_t len;
            if (em_rmsg_encode_ack((em_str_t) { r->request_id, strlen(r->request_id) }, ack, &buf,
                                   &len) == EM_OK) {
                em_rreq_publish(r->nsp, buf, len);
                free(buf);
            }
        }
        break;
    }
    default:
        /* A join, leave or disconnect of one socket: the host that has it answers. */
        if (json_integer_value(json_object_get(result, "sockets")) > 0) {
            resp = json_pack("{s:s}", "requestId", r->request_id);
        }
        break;
    }
    if (r->request_id != NULL && resp != NULL) {
        em_rreq_respond(r->nsp, resp);
    } else {
        json_decref(resp);
    }
    json_decref(result);
    em_rreq_free(r);
}

static void
em_rreq_drop_result(json_t *result, int complete, void *arg)
{
    (void) complete;
    (void) arg;
    json_decref(result);
}

/* Run one JSON request (parsed) of namespace nsp. */
static void
em_rreq_run(const char *nsp, json_t *req)
{
    json_t       *opts = json_object_get(req, "opts"), *cmd;
    json_t       *rid = json_object_get(req, "requestId");
    const char   *sid = json_string_value(json_object_get(req, "sid"));
    int           type = (int) json_integer_value(json_object_get(req, "type"));
    em_cmd_kind_t kind;
    em_rreq_t    *r;

    if (!json_is_integer(json_object_get(req, "type"))) {
        return;
    }
    switch (type) {
    case EM_RREQ_SOCKETS:
    case EM_RREQ_REMOTE_FETCH:
        kind = EM_CMD_SOCKETS;
        break;
    case EM_RREQ_ALL_ROOMS:
        kind = EM_CMD_ROOMS;
        break;
    case EM_RREQ_REMOTE_JOIN:
        kind = EM_CMD_JOIN;
        break;
    case EM_RREQ_REMOTE_LEAVE:
        kind = EM_CMD_LEAVE;
        break;
    case EM_RREQ_REMOTE_DISCONNECT:
        kind = EM_CMD_DISCONNECT;
        break;
    case EM_RREQ_SERVER_SIDE_EMIT: {
        json_t *data = json_object_get(req, "data");
        size_t  conf;
        if (!json_is_array(data) || json_array_size(data) == 0 || !json_is_string(json_array_get(data, 0))
            || json_array_size(data) > em_loop.conf->limits.event_args + 1
            || em_nsp_conf_index(nsp, strlen(nsp), &conf) != EM_OK || em_sio_app.server_emit == NULL) {
            return;
        }
        em_sio_app.server_emit(conf, data, nsp,
                               json_is_string(rid) && json_string_length(rid) <= 64
                               ? json_string_value(rid) : NULL);
        return;
    }
    default:
        em_log(EM_LOG_DEBUG, 0, "redis: a request of type %d is not answered", type);
        return;
    }
    if ((cmd = json_pack("{s:s}", "nsp", nsp)) == NULL) {
        return;
    }
    if (type == EM_RREQ_SOCKETS) {
        json_object_set(cmd, "rooms", json_object_get(req, "rooms"));
    } else if (sid != NULL) {
        json_object_set_new(cmd, "rooms", json_pack("[s]", sid));  /* a socket is its room */
    } else if (json_is_object(opts)) {
        json_object_set(cmd, "rooms", json_object_get(opts, "rooms"));
        json_object_set(cmd, "except", json_object_get(opts, "except"));
    }
    if (json_object_get(cmd, "rooms") != NULL && !json_is_array(json_object_get(cmd, "rooms"))) {
        json_object_del(cmd, "rooms");
    }
    if (json_object_get(cmd, "except") != NULL && !json_is_array(json_object_get(cmd, "except"))) {
        json_object_del(cmd, "except");
    }
    if (kind == EM_CMD_JOIN || kind == EM_CMD_LEAVE) {
        json_t *rooms = sid != NULL ? json_pack("[O]", json_object_get(req, "room"))
                                    : json_incref(json_object_get(req, "rooms"));
        if (!json_is_array(rooms)) {
            json_decref(rooms);
            json_decref(cmd);
            return;
        }
        json_object_set_new(cmd, "join", rooms);
    } else if (kind == EM_CMD_DISCONNECT) {
        json_object_set_new(cmd, "close", json_boolean(json_is_true(json_object_get(req, "close"))));
    } else if (kind == EM_CMD_SOCKETS) {
        json_object_set_new(cmd, "limit", json_integer(EM_CMD_SOCKETS_MAX));
        json_object_set_new(cmd, "handshake", json_boolean(type == EM_RREQ_REMOTE_FETCH));
    }
    if (!json_is_string(rid) || json_string_length(rid) > 64) {
        /* Nothing to answer: an emitter's socketsJoin, ... */
        if (kind == EM_CMD_SOCKETS || kind == EM_CMD_ROOMS) {
            json_decref(cmd);
            return;
        }
        em_cmd_run(kind, cmd, NULL, 0, EM_RREQ_TIMEOUT, em_rreq_drop_result, NULL);
        json_decref(cmd);
        return;
    }
    if ((r = calloc(1, sizeof(*r))) == NULL || (r->nsp = strdup(nsp)) == NULL
        || (r->request_id = strdup(json_string_value(rid))) == NULL) {
        if (r != NULL) {
            em_rreq_free(r);
        }
        json_decref(cmd);
        return;
    }
    r->type = type;
    if (em_cmd_run(kind, cmd, NULL, 0, EM_RREQ_TIMEOUT, em_rreq_done, r) == 0) {
        em_rreq_free(r);
    }
    json_decref(cmd);
}

/* A broadcast that waits for the clients' acks (MessagePack, binary kept):
 * an EMIT command on this host's sockets, then the count and the acks. */
static void
em_rreq_broadcast(const char *nsp, const char *msg, size_t len)
{
    em_rmsg_limits_t lim = {
        EM_MIN(em_loop.conf->limits.json_depth, EM_RMSG_DEPTH_MAX - 3),
        EM_MIN(em_loop.conf->limits.attachments, EM_BRK_ATT_MAX), EM_BRK_LIST_MAX, 64
    };
    em_rmsg_t  m;
    em_rreq_t *r;
    json_t    *cmd, *rooms, *except;
    em_buf_t **atts;
    size_t     natt = 0;

    if (em_rmsg_decode_request(msg, len, &lim, &m) != EM_OK) {
        em_log(EM_LOG_DEBUG, 0, "redis: a request in MessagePack that is not a broadcast is not answered");
        return;
    }
    rooms = json_array();
    except = json_array();
    for (size_t i = 0; i < m.nrooms; i++) {
        json_array_append_new(rooms, json_stringn(m.rooms[i].data, m.rooms[i].len));
    }
    for (size_t i = 0; i < m.nexcept; i++) {
        json_array_append_new(except, json_stringn(m.except[i].data, m.except[i].len));
    }
    /* The asker counts its peers' answers until its own timeout: answer
     * before it, with the acks that came, when some client is slow. */
    int64_t timeout = m.timeout > 0 ? EM_MIN(m.timeout, 600000) : 5000;
    timeout = EM_MAX(timeout * 3 / 4, 1);
    cmd = json_pack("{s:s,s:o,s:o,s:s%,s:I}", "nsp", nsp, "rooms", rooms, "except", except, "data",
                    m.data, m.data_len, "timeout", (json_int_t) timeout);
    atts = calloc(m.natt + 1, sizeof(*atts));
    while (atts != NULL && natt < m.natt && (atts[natt] = em_buf_copy(m.att[natt].data, m.att[natt].len, 1)) != NULL) {
        natt++;
    }
    r = calloc(1, sizeof(*r));
    if (cmd != NULL && atts != NULL && natt == m.natt && r != NULL && (r->nsp = strdup(nsp)) != NULL
        && (r->request_id = strndup(m.request_id.data, m.request_id.len)) != NULL) {
        r->type = EM_RREQ_BROADCAST;
        if (em_cmd_run(EM_CMD_EMIT, cmd, atts, natt, (unsigned) timeout + 2000, em_rreq_done, r) == 0) {
            em_rreq_free(r);
        }
    } else if (r != NULL) {
        em_rreq_free(r);
    }
    for (size_t i = 0; i < natt; i++) {
        em_buf_unref(atts[i]);
    }
    free(atts);
    json_decref(cmd);
    em_rmsg_free(&m);
}

void
em_rreq_server_ack(const char *nsp, const char *request_id, json_t *arg)
{
    if (em_loop.conf->redis == NULL) {
        return;
    }
    em_rreq_respond(nsp, json_pack("{s:i,s:s,s:O}", "type", EM_RREQ_SERVER_SIDE_EMIT, "requestId",
                                   request_id, "data", arg != NULL ? arg : json_null()));
}

/* A server-side event's text (malloc'd), for a namespace with a name:
 * EM_OK, EM_DECLINED without redis, or EM_ERROR. */
static int
em_rreq_event_text(const char *nsp, size_t nsplen, json_t *data, char **text)
{
    if (em_loop.conf->redis == NULL) {
        return EM_DECLINED;
    }
    if (nsplen == 0 || nsplen > EM_BRK_NAME_MAX || nsp[0] != '/' || memchr(nsp, '\0', nsplen) != NULL
        || (*text = json_dumps(data, JSON_COMPACT)) == NULL) {
        return EM_ERROR;
    }
    return EM_OK;
}

int
em_rreq_server_emit(const char *nsp, size_t nsplen, json_t *data)
{
    char *text;
    int   rc;

    if ((rc = em_rreq_event_text(nsp, nsplen, data, &text)) != EM_OK) {
        return rc;
    }
    rc = strlen(text) + nsplen + 64 > em_loop.conf->redis->max_message
         ? EM_ERROR
         : em_rreq_to_broker(EM_BRK_KIND_REDIS_SERVER_EMIT, nsp, nsplen, text, strlen(text));
    free(text);
    return rc;
}

/* ---- server-side events with an ack: this worker's, waiting ---- */

#define EM_RREQ_ASK_WAIT 7000       /* ms: the broker answers by 5 s */

typedef struct em_rreq_ask_s em_rreq_ask_t;
struct em_rreq_ask_s {
    em_rreq_ask_t  *next;
    char            id[7];
    em_rreq_done_pt done;
    void           *arg;
    struct event   *timer;
};

static em_rreq_ask_t *em_rreq_asks;

static em_rreq_ask_t *
em_rreq_ask_take(const char *id, size_t len)
{
    for (em_rreq_ask_t **pp = &em_rreq_asks; *pp != NULL; pp = &(*pp)->next) {
        if (len == 6 && memcmp((*pp)->id, id, 6) == 0) {
            em_rreq_ask_t *a = *pp;
            *pp = a->next;
            return a;
        }
    }
    return NULL;
}

static void
em_rreq_ask_end(em_rreq_ask_t *a, const char *err, json_t *responses)
{
    json_t *none = responses == NULL ? json_array() : NULL;

    if (a->timer != NULL) {
        event_free(a->timer);
    }
    a->done(a->arg, err, responses != NULL ? responses : none);
    json_decref(none);
    free(a);
}

/* The broker did not answer (it died, say): the ask ends all the same. */
static void
em_rreq_ask_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    em_rreq_ask_t *a = arg;

    (void) fd;
    (void) what;
    if (em_rreq_ask_take(a->id, 6) == a) {
        em_rreq_ask_end(a, "no answer from the broker", NULL);
    }
}

int
em_rreq_server_ask(const char *nsp, size_t nsplen, json_t *data, em_rreq_done_pt done, void *arg)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char     r[6];
    char             *text, *body = NULL;
    size_t            tlen;
    em_rreq_ask_t    *a = NULL;
    struct timeval    tv = { EM_RREQ_ASK_WAIT / 1000, (EM_RREQ_ASK_WAIT % 1000) * 1000 };
    int               rc;

    if ((rc = em_rreq_event_text(nsp, nsplen, data, &text)) != EM_OK) {
        return rc;
    }
    tlen = strlen(text);
    if (tlen + nsplen + 96 > em_loop.conf->redis->max_message || (a = calloc(1, sizeof(*a))) == NULL
        || (body = malloc(7 + tlen)) == NULL) {
        free(a);
        free(text);
        return EM_ERROR;
    }
    randombytes_buf(r, sizeof(r));
    for (size_t i = 0; i < 6; i++) {
        a->id[i] = abc[r[i] % (sizeof(abc) - 1)];
    }
    memcpy(body, a->id, 6);
    body[6] = '\0';
    memcpy(body + 7, text, tlen);
    free(text);
    a->done = done;
    a->arg = arg;
    a->timer = evtimer_new(em_loop.base, em_rreq_ask_timeout_cb, a);
    rc = a->timer == NULL || evtimer_add(a->timer, &tv) != 0
         ? EM_ERROR
         : em_rreq_to_broker(EM_BRK_KIND_REDIS_SERVER_ASK, nsp, nsplen, body, 7 + tlen);
    free(body);
    if (rc != EM_OK) {
        if (a->timer != NULL) {
            event_free(a->timer);
        }
        free(a);
        return EM_ERROR;
    }
    a->next = em_rreq_asks;
    em_rreq_asks = a;
    return EM_OK;
}

void
em_rreq_answers(const em_brk_cmd_msg_t *m)
{
    const char    *sep = memchr(m->data.data, '\0', m->data.len);
    em_rreq_ask_t *a;
    json_t        *j, *err, *resp;

    if (sep == NULL || (a = em_rreq_ask_take(m->data.data, (size_t) (sep - m->data.data))) == NULL) {
        return;             /* an ask that already ended */
    }
    j = json_loadb(sep + 1, m->data.len - (size_t) (sep - m->data.data) - 1, JSON_ALLOW_NUL, NULL);
    err = json_object_get(j, "err");
    resp = json_object_get(j, "responses");
    em_rreq_ask_end(a, j == NULL ? "a malformed answer from the broker"
                       : json_is_string(err) ? json_string_value(err) : NULL,
                    json_is_array(resp) ? resp : NULL);
    json_decref(j);
}

int
em_rreq_store(const em_rstore_op_t *op)
{
    char  *msg;
    size_t len;
    int    rc;

    if (em_loop.conf->redis == NULL) {
        return EM_DECLINED;
    }
    if (em_rstore_encode((em_str_t) { "", 0 }, op, &msg, &len) != EM_OK) {
        return EM_ERROR;
    }
    rc = len + 64 > em_loop.conf->redis->max_message
         ? EM_ERROR
         : em_rreq_to_broker(EM_BRK_KIND_REDIS_STORE, "", 0, msg, len);
    free(msg);
    return rc;
}

void
em_rreq_receive(const em_brk_cmd_msg_t *m)
{
    const char *sep = memchr(m->data.data, '\0', m->data.len);
    char        nsp[EM_BRK_NAME_MAX + 1];
    size_t      nlen;
    json_t     *req;

    if (sep == NULL || em_loop.conf->redis == NULL) {
        return;
    }
    nlen = (size_t) (sep - m->data.data);
    if (nlen == 0 || nlen > EM_BRK_NAME_MAX || m->data.data[0] != '/') {
        return;
    }
    memcpy(nsp, m->data.data, nlen);
    nsp[nlen] = '\0';
    if (m->data.len > nlen + 1 && sep[1] != '{') {
        em_rreq_broadcast(nsp, sep + 1, m->data.len - nlen - 1);
        return;
    }
    req = json_loadb(sep + 1, m->data.len - nlen - 1, 0, NULL);
    if (!json_is_object(req)) {
        em_log(EM_LOG_DEBUG, 0, "redis: a request that is not a JSON object is not answered");
        json_decref(req);
        return;
    }
    em_rreq_run(nsp, req);
    json_decref(req);
}
