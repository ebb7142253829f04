/*
 * em_api.c - the backend HTTP API (doc/API.md) on the admin listener.
 *
 * A call is a list of operations (one, or a batch's), all checked before
 * the first runs, then run in order, each after the one before it has
 * finished on every worker: a plain emit is routed at once (encoded once,
 * logged for recovery like a script's, em_sio_route()) and followed by a
 * SYNC command, so that it has reached every worker's sockets before the
 * call is answered (a backend's calls one after another reach a client in
 * their order, whichever workers serve them); the others are
 * commands on every worker's sockets (em_cmd.h) whose answers the call
 * waits for, holding its request (em_http_conn_hold()). A client that goes
 * away first cancels what is left.
 */
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "em_api.h"
#include "em_bus.h"
#include "em_cluster.h"
#include "em_cmd.h"
#include "em_http_conn.h"
#include "em_log.h"
#include "em_loop.h"
#include "em_socketio.h"

#define EM_API_BATCH_MAX  100       /* operations in one batch */
#define EM_API_LIST_MAX   1000      /* rooms named in one to / except / rooms list */
#define EM_API_LIMIT_DEF  1000      /* sockets a listing returns without "limit" */
#define EM_API_ACK_GRACE  1000      /* ms the other workers' ack parts may come after */

typedef enum {
    EM_API_EMIT = 1,
    EM_API_JOIN,
    EM_API_LEAVE,
    EM_API_DISCONNECT,
    EM_API_SOCKETS,
    EM_API_ROOMS,
    EM_API_PRESENCE
} em_api_kind_t;

/* One operation, checked and ready to run. */
typedef struct {
    em_api_kind_t  kind;
    char          *nsp;         /* the namespace named (a configured name or an instance) */
    long           conf;        /* >= 0: every instance of this configured namespace */
    json_t        *cmd;         /* the command (em_cmd.h), with the selection */
    json_t        *args;        /* EMIT: [event, args...] with placeholders */
    em_buf_t     **atts;        /* EMIT: the binary arguments */
    size_t         natt;
    unsigned       timeout;     /* EMIT: ms to wait for acks, 0: none */
    int            vol;         /* EMIT: volatile */
    size_t         limit;       /* SOCKETS */
    int            online;      /* PRESENCE: online users only */
    char          *room;        /* PRESENCE: the users in this room */
    json_t        *early;       /* a plain EMIT's answer, given after its SYNC */
} em_api_op_t;

typedef struct {
    em_http_conn_t *h;          /* NULL once the client went away */
    em_api_op_t    *ops;
    size_t          nops, next;
    int             batch;
    json_t         *results;
    uint64_t        running;    /* the command under way, or 0 */
    int             held;
} em_api_call_t;

/* ---- answers ---- */

/* A namespace as clients name it (without its endpoint's prefix). */
static const char *
em_api_wire(const char *name)
{
    return em_conf_nsp_wire(name, strlen(name)).data;    /* a suffix: NUL-terminated */
}

static void
em_api_respond_json(em_http_conn_t *h, int status, json_t *doc)
{
    em_stat_add(em_loop.stats->api_calls, 1);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    json_decref(doc);
    if (text == NULL) {
        static const char oom[] = "{\"error\":\"internal\",\"message\":\"out of memory\"}";
        em_http_conn_respond(h, 500, "application/json", oom, sizeof(oom) - 1);
        return;
    }
    em_http_conn_respond(h, status, "application/json", text, strlen(text));
    free(text);
}

static const char *
em_api_code(int status)
{
    switch (status) {
    case 400: return "bad_request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 413: return "too_large";
    case 503: return "unavailable";
    default:  return "internal";
    }
}

/* An error's document: {"error": code, "message": text}. */
static json_t *
em_api_error_doc(int status, const char *message)
{
    return json_pack("{s:s,s:s}", "error", em_api_code(status), "message", message);
}

static void
em_api_error(em_http_conn_t *h, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
em_api_error(em_http_conn_t *h, int status, const char *fmt, ...)
{
    char    msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    em_api_respond_json(h, status, em_api_error_doc(status, msg));
}

/* ---- checking an operation ---- */

static void
em_api_op_free(em_api_op_t *op)
{
    free(op->nsp);
    free(op->room);
    json_decref(op->cmd);
    json_decref(op->args);
    for (size_t i = 0; i < op->natt; i++) {
        em_buf_unref(op->atts[i]);
    }
    free(op->atts);
    json_decref(op->early);
    memset(op, 0, sizeof(*op));
}

/* Why an operation is refused: status and message. */
typedef struct {
    int  status;
    char msg[400];
} em_api_err_t;

static int
em_api_fail(em_api_err_t *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
em_api_fail(em_api_err_t *e, int status, const char *fmt, ...)
{
    va_list ap;

    e->status = status;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return EM_ERROR;
}

/* The namespace an operation names ("/" when none): a configured one, every
 * instance of a parameterised one (its pattern), or one instance. */
static int
em_api_namespace(em_api_op_t *op, const char *given, const json_t *path, em_api_err_t *e)
{
    const em_conf_t *conf = em_loop.conf;
    const char      *prefix = "";
    char             name[1024];
    size_t           len, idx;

    op->conf = -1;
    if (given[0] != '/' || strlen(given) > 512) {
        return em_api_fail(e, 400, "\"namespace\" must be a name beginning with '/'");
    }
    if (path != NULL) {
        /* Another Socket.IO endpoint's namespaces: by its path. */
        const char *p = json_string_value(path);
        size_t      pl = p != NULL ? strlen(p) : 0, k;
        if (pl == 0 || p[0] != '/') {
            return em_api_fail(e, 400, "\"path\" must be a Socket.IO endpoint's path");
        }
        for (k = 0; k < conf->nendpoints; k++) {
            const char *ep = conf->endpoints[k].path;
            if (!conf->endpoints[k].raw
                && (strcmp(ep, p) == 0 || (strlen(ep) == pl + 1 && strncmp(ep, p, pl) == 0))) {
                break;
            }
        }
        if (k == conf->nendpoints) {
            return em_api_fail(e, 404, "no Socket.IO endpoint has the path \"%s\"", p);
        }
        prefix = conf->endpoints[k].prefix;
    }
    snprintf(name, sizeof(name), "%s%s", prefix, given);
    len = strlen(name);
    for (size_t i = 0; i < conf->nnsps; i++) {
        if (conf->nsps[i].dynamic && strcmp(conf->nsps[i].name, name) == 0) {
            op->conf = (long) i;        /* the pattern: every instance */
            break;
        }
    }
    if (op->conf < 0 && em_nsp_conf_index(name, len, &idx) != EM_OK) {
        return em_api_fail(e, 404, "no namespace \"%s\" is configured%s%s", given,
                           path != NULL ? " on " : "", path != NULL ? json_string_value(path) : "");
    }
    op->nsp = strdup(name);
    return op->nsp != NULL ? EM_OK : em_api_fail(e, 500, "out of memory");
}

/* A list of room names from a string or an array of strings, appended to
 * *list (made when NULL). */
static int
em_api_rooms(const json_t *v, const char *field, json_t **list, em_api_err_t *e)
{
    size_t  i;
    json_t *r;

    if (v == NULL) {
        return EM_OK;
    }
    if (*list == NULL && (*list = json_array()) == NULL) {
        return em_api_fail(e, 500, "out of memory");
    }
    if (json_is_string(v)) {
        v = json_pack("[O]", v);
        int rc = em_api_rooms(v, field, list, e);
        json_decref((json_t *) v);
        return rc;
    }
    if (!json_is_array(v) || json_array_size(v) + json_array_size(*list) > EM_API_LIST_MAX) {
        return em_api_fail(e, 400, "\"%s\" must be a room name or a list of at most %d", field,
                           EM_API_LIST_MAX);
    }
    json_array_foreach(v, i, r) {
        if (!json_is_string(r) || json_string_length(r) == 0
            || json_string_length(r) > EM_ROOM_NAME_MAX) {
            return em_api_fail(e, 400, "each of \"%s\" must be a room name of 1 to %d bytes", field,
                               EM_ROOM_NAME_MAX);
        }
        json_array_append(*list, r);
    }
    return EM_OK;
}

/* The selection of an operation: namespace, to / rooms, socket, except. */
static int
em_api_select(em_api_op_t *op, const json_t *o, em_api_err_t *e)
{
    const json_t *nsp = json_object_get(o, "namespace");
    const json_t *sock = json_object_get(o, "socket");
    json_t       *rooms = NULL, *except = NULL;

    if (nsp != NULL && !json_is_string(nsp)) {
        return em_api_fail(e, 400, "\"namespace\" must be a string");
    }
    if (em_api_namespace(op, nsp != NULL ? json_string_value(nsp) : "/", json_object_get(o, "path"),
                         e) != EM_OK) {
        return EM_ERROR;
    }
    if (sock != NULL && (!json_is_string(sock) || json_string_length(sock) == 0
                         || json_string_length(sock) > EM_ROOM_NAME_MAX)) {
        return em_api_fail(e, 400, "\"socket\" must be a socket id");
    }
    if (em_api_rooms(json_object_get(o, "to"), "to", &rooms, e) != EM_OK
        || em_api_rooms(sock, "socket", &rooms, e) != EM_OK
        || em_api_rooms(json_object_get(o, "except"), "except", &except, e) != EM_OK) {
        json_decref(rooms);
        json_decref(except);
        return EM_ERROR;
    }
    op->cmd = json_object();
    if (op->cmd == NULL) {
        json_decref(rooms);
        json_decref(except);
        return em_api_fail(e, 500, "out of memory");
    }
    if (op->conf >= 0) {
        json_object_set_new(op->cmd, "conf", json_integer(op->conf));
    } else {
        json_object_set_new(op->cmd, "nsp", json_string(op->nsp));
    }
    if (rooms != NULL) {
        json_object_set_new(op->cmd, "rooms", rooms);
    }
    if (except != NULL) {
        json_object_set_new(op->cmd, "except", except);
    }
    return EM_OK;
}

/* Socket.IO's reserved event names: a client cannot be sent these. */
static int
em_api_reserved(const char *ev)
{
    static const char *const names[] = { "connect", "connect_error", "disconnect", "disconnecting",
                                         "newListener", "removeListener", NULL };

    for (size_t i = 0; names[i] != NULL; i++) {
        if (strcmp(ev, names[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A copy of an argument with each {"$binary": base64} made an attachment
 * placeholder (the bytes appended to op->atts). depth counts nesting. */
static json_t *
em_api_place(em_api_op_t *op, const json_t *v, unsigned depth, em_api_err_t *e)
{
    const em_conf_limits_t *lim = &em_loop.conf->limits;
    const char             *key;
    json_t                 *x, *out;
    size_t                  i;

    if (depth > lim->json_depth) {
        em_api_fail(e, 400, "arguments nested deeper than %u (limits.json_depth)", lim->json_depth);
        return NULL;
    }
    if (json_is_object(v)) {
        const json_t *b = json_object_get(v, "$binary");
        if (b != NULL && json_object_size(v) == 1) {
            size_t         blen = json_string_length(b), n = 0;
            unsigned char *bin;
            if (!json_is_string(b)) {
                em_api_fail(e, 400, "\"$binary\" must be a base64 string");
                return NULL;
            }
            if (op->natt >= lim->attachments) {
                em_api_fail(e, 400, "more than %u binary arguments (limits.attachments)",
                            lim->attachments);
                return NULL;
            }
            bin = malloc(blen / 4 * 3 + 3);
            if (bin == NULL) {
                em_api_fail(e, 500, "out of memory");
                return NULL;
            }
            if (sodium_base642bin(bin, blen / 4 * 3 + 3, json_string_value(b), blen, " \r\n", &n,
                                  NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
                free(bin);
                em_api_fail(e, 400, "\"$binary\" is not valid base64");
                return NULL;
            }
            em_buf_t  *buf = em_buf_copy(bin, n, 1);
            em_buf_t **atts = realloc(op->atts, (op->natt + 1) * sizeof(*atts));
            free(bin);
            if (buf == NULL || atts == NULL) {
                em_buf_unref(buf);
                if (atts != NULL) {
                    op->atts = atts;
                }
                em_api_fail(e, 500, "out of memory");
                return NULL;
            }
            op->atts = atts;
            op->atts[op->natt] = buf;
            return json_pack("{s:b,s:I}", "_placeholder", 1, "num", (json_int_t) op->natt++);
        }
        out = json_object();
        json_object_foreach((json_t *) v, key, x) {
            json_t *c = em_api_place(op, x, depth + 1, e);
            if (c == NULL || out == NULL || json_object_set_new(out, key, c) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    if (json_is_array(v)) {
        out = json_array();
        json_array_foreach(v, i, x) {
            json_t *c = em_api_place(op, x, depth + 1, e);
            if (c == NULL || out == NULL || json_array_append_new(out, c) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    return json_copy((json_t *) v);
}

static int
em_api_parse_emit(em_api_op_t *op, const json_t *o, em_api_err_t *e)
{
    const em_conf_limits_t *lim = &em_loop.conf->limits;
    const json_t           *ev = json_object_get(o, "event");
    const json_t           *args = json_object_get(o, "args");
    const json_t           *vol = json_object_get(o, "volatile");
    const json_t           *timeout = json_object_get(o, "timeout");
    size_t                  i;
    json_t                 *a;

    if (!json_is_string(ev) || json_string_length(ev) == 0 || json_string_length(ev) > lim->event_name
        || memchr(json_string_value(ev), '\0', json_string_length(ev)) != NULL) {
        return em_api_fail(e, 400, "\"event\" must be an event name of 1 to %u bytes",
                           lim->event_name);
    }
    if (em_api_reserved(json_string_value(ev))) {
        return em_api_fail(e, 400, "\"%s\" is a reserved event name", json_string_value(ev));
    }
    if (args != NULL && !json_is_array(args)) {
        return em_api_fail(e, 400, "\"args\" must be a list of the event's arguments");
    }
    if (args != NULL && json_array_size(args) + 1 > lim->event_args) {
        return em_api_fail(e, 400, "more than %u arguments (limits.event_args)", lim->event_args - 1);
    }
    if (vol != NULL && !json_is_boolean(vol)) {
        return em_api_fail(e, 400, "\"volatile\" must be true or false");
    }
    op->vol = json_is_true(vol);
    if (timeout != NULL) {
        unsigned max = em_loop.conf->admin->max_ack_timeout;
        if (!json_is_integer(timeout) || json_integer_value(timeout) < 1
            || json_integer_value(timeout) > (json_int_t) max) {
            return em_api_fail(e, 400, "\"timeout\" must be 1 to %u ms (admin.max_ack_timeout)", max);
        }
        op->timeout = (unsigned) json_integer_value(timeout);
    }
    if (em_api_select(op, o, e) != EM_OK) {
        return EM_ERROR;
    }
    op->args = json_array();
    if (op->args == NULL || json_array_append(op->args, (json_t *) ev) != 0) {
        return em_api_fail(e, 500, "out of memory");
    }
    json_array_foreach(args, i, a) {
        json_t *c = em_api_place(op, a, 2, e);
        if (c == NULL) {
            return EM_ERROR;
        }
        json_array_append_new(op->args, c);
    }
    if (op->timeout > 0) {
        /* Each worker sends it with an ack id of each socket's own: the
         * event's text goes in the command. */
        char *text = json_dumps(op->args, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text == NULL) {
            return em_api_fail(e, 500, "out of memory");
        }
        json_object_set_new(op->cmd, "data", json_string(text));
        json_object_set_new(op->cmd, "timeout", json_integer(op->timeout));
        size_t len = strlen(text);
        free(text);
        for (size_t k = 0; k < op->natt; k++) {
            len += op->atts[k]->len + 4;
        }
        if (len + 1024 > em_bus_max_record()) {
            return em_api_fail(e, 413, "an event of %zu bytes is too large for the workers' rings",
                               len);
        }
    }
    return EM_OK;
}

static int
em_api_parse_op(em_api_kind_t kind, const json_t *o, em_api_op_t *op, em_api_err_t *e)
{
    const json_t *v;

    memset(op, 0, sizeof(*op));
    op->kind = kind;
    op->conf = -1;
    if (!json_is_object(o)) {
        return em_api_fail(e, 400, "an operation must be a JSON object");
    }
    switch (kind) {
    case EM_API_EMIT:
        return em_api_parse_emit(op, o, e);
    case EM_API_JOIN:
    case EM_API_LEAVE: {
        json_t *rooms = NULL;
        if (em_api_select(op, o, e) != EM_OK) {
            return EM_ERROR;
        }
        if ((v = json_object_get(o, "rooms")) == NULL) {
            return em_api_fail(e, 400, "\"rooms\" (the rooms to %s) is required",
                               kind == EM_API_JOIN ? "join" : "leave");
        }
        if (em_api_rooms(v, "rooms", &rooms, e) != EM_OK) {
            json_decref(rooms);
            return EM_ERROR;
        }
        json_object_set_new(op->cmd, "join", rooms);
        return EM_OK;
    }
    case EM_API_DISCONNECT:
        if (em_api_select(op, o, e) != EM_OK) {
            return EM_ERROR;
        }
        v = json_object_get(o, "close");
        if (v != NULL && !json_is_boolean(v)) {
            return em_api_fail(e, 400, "\"close\" must be true or false");
        }
        json_object_set_new(op->cmd, "close", json_boolean(json_is_true(v)));
        return EM_OK;
    case EM_API_SOCKETS:
        if (em_api_select(op, o, e) != EM_OK) {
            return EM_ERROR;
        }
        op->limit = EM_API_LIMIT_DEF;
        if ((v = json_object_get(o, "limit")) != NULL) {
            if (!json_is_integer(v) || json_integer_value(v) < 0
                || json_integer_value(v) > EM_CMD_SOCKETS_MAX) {
                return em_api_fail(e, 400, "\"limit\" must be 0 to %d", EM_CMD_SOCKETS_MAX);
            }
            op->limit = (size_t) json_integer_value(v);
        }
        json_object_set_new(op->cmd, "limit", json_integer((json_int_t) op->limit));
        return EM_OK;
    case EM_API_ROOMS:
        if ((v = json_object_get(o, "namespace")) != NULL && !json_is_string(v)) {
            return em_api_fail(e, 400, "\"namespace\" must be a string");
        }
        return em_api_select(op, o, e);
    case EM_API_PRESENCE:
        if ((v = json_object_get(o, "namespace")) != NULL && !json_is_string(v)) {
            return em_api_fail(e, 400, "\"namespace\" must be a string");
        }
        if (em_api_namespace(op, v != NULL ? json_string_value(v) : "/", json_object_get(o, "path"),
                             e) != EM_OK) {
            return EM_ERROR;
        }
        if (op->conf >= 0) {
            return em_api_fail(e, 400, "presence is kept per namespace: name one instance of %s",
                               op->nsp);
        }
        if ((v = json_object_get(o, "room")) != NULL) {
            if (!json_is_string(v) || json_string_length(v) > EM_ROOM_NAME_MAX) {
                return em_api_fail(e, 400, "\"room\" must be a room name");
            }
            op->room = strndup(json_string_value(v), json_string_length(v));
        }
        v = json_object_get(o, "online");
        if (v != NULL && !json_is_boolean(v)) {
            return em_api_fail(e, 400, "\"online\" must be true or false");
        }
        op->online = json_is_true(v);
        return EM_OK;
    }
    return em_api_fail(e, 400, "unknown operation");
}

/* ---- running operations ---- */

static void
em_api_presence_cb(const em_presence_t *p, void *arg)
{
    static const char *const status[] = { "offline", "online", "away", "busy" };
    json_t *info = p->info_len ? json_loadb(p->info, p->info_len, JSON_DECODE_ANY, NULL) : NULL;

    json_array_append_new(arg, json_pack("{s:s%,s:s,s:I,s:I,s:I,s:o}",
                                         "userId", p->user, p->user_len,
                                         "status", status[p->status & 3],
                                         "connections", (json_int_t) p->nconn,
                                         "connectedAt", (json_int_t) p->connected_at,
                                         "lastSeen", (json_int_t) p->last_seen,
                                         "info", info != NULL ? info : json_object()));
}

static json_t *
em_api_presence(const em_api_op_t *op)
{
    em_str_t nsp = { op->nsp, strlen(op->nsp) };
    json_t  *users = json_array();
    uint64_t c[4];

    if (op->room != NULL) {
        em_room_users(&em_cluster, nsp, (em_str_t) { op->room, strlen(op->room) },
                      em_api_presence_cb, users);
    } else {
        em_presence_each(&em_cluster, nsp, op->online, em_api_presence_cb, users);
    }
    em_presence_stats(&em_cluster, nsp, c);
    return json_pack("{s:s,s:o,s:{s:I,s:I,s:I,s:I,s:I}}", "namespace", em_api_wire(op->nsp), "users", users,
                     "stats", "totalUsers", (json_int_t) (c[0] + c[1] + c[2] + c[3]),
                     "onlineUsers", (json_int_t) c[EM_ST_STATUS_ONLINE],
                     "awayUsers", (json_int_t) c[EM_ST_STATUS_AWAY],
                     "busyUsers", (json_int_t) c[EM_ST_STATUS_BUSY],
                     "offlineUsers", (json_int_t) c[EM_ST_STATUS_OFFLINE]);
}

/* A plain emit: encoded once, logged for recovery (unless volatile), to
 * this worker's sockets and, through the broker, the others'. */
static json_t *
em_api_emit(em_api_op_t *op)
{
    const json_t *rooms = json_object_get(op->cmd, "rooms");
    const json_t *except = json_object_get(op->cmd, "except");
    size_t        nr = json_array_size(rooms), ne = json_array_size(except);
    em_str_t     *names = calloc(nr + ne + 1, sizeof(em_str_t));
    em_bcast_t    b = { 0 };
    em_pkt_t      pkt;
    em_buf_t    **atts = op->natt ? malloc(op->natt * sizeof(*atts)) : NULL;
    const char   *enc = op->conf >= 0 ? em_loop.conf->nsps[op->conf].name : op->nsp;
    em_str_t      name = { enc, strlen(enc) };
    int           rc;

    if (names == NULL || (op->natt && atts == NULL)) {
        free(names);
        free(atts);
        return em_api_error_doc(500, "out of memory");
    }
    for (size_t i = 0; i < nr + ne; i++) {
        const json_t *r = json_array_get(i < nr ? rooms : except, i < nr ? i : i - nr);
        names[i] = (em_str_t) { json_string_value(r), json_string_length(r) };
    }
    for (size_t i = 0; i < op->natt; i++) {
        atts[i] = em_buf_ref(op->atts[i]);
    }
    b.rooms = names;
    b.nrooms = nr;
    b.except = names + nr;
    b.nexcept = ne;
    b.vol = op->vol;
    rc = op->vol ? em_sio_pkt_build(&pkt, EM_SIO_EVENT, name, EM_SIO_NO_ID, op->args, atts, op->natt)
                 : em_cluster_event_pkt(&pkt, name, op->args, atts, op->natt, &b, NULL);
    if (rc == EM_OK) {
        em_sio_route(name, op->conf, &b, &pkt);
        em_pkt_release(&pkt);
    }
    free(names);
    if (rc != EM_OK) {
        return em_api_error_doc(500, "the event could not be encoded");
    }
    return json_pack("{s:b}", "ok", 1);
}

static int
em_api_room_cmp(const void *a, const void *b)
{
    const json_t *x = *(const json_t *const *) a, *y = *(const json_t *const *) b;
    int           c = strcmp(json_string_value(json_object_get(x, "namespace")),
                             json_string_value(json_object_get(y, "namespace")));

    return c != 0 ? c : strcmp(json_string_value(json_object_get(x, "name")),
                               json_string_value(json_object_get(y, "name")));
}

/* The merged parts of a command as the operation's result. */
static json_t *
em_api_shape(const em_api_op_t *op, json_t *res, int complete)
{
    json_t *out = NULL;

    switch (op->kind) {
    case EM_API_EMIT: {
        json_t    *acks = json_object_get(res, "acks");
        json_int_t n = json_integer_value(json_object_get(res, "sockets"));
        out = json_pack("{s:b,s:I,s:o,s:b}", "ok", 1, "sockets", n,
                        "acks", acks != NULL ? json_incref(acks) : json_array(),
                        "timedOut", (json_int_t) json_array_size(acks) < n || !complete);
        break;
    }
    case EM_API_JOIN:
    case EM_API_LEAVE:
    case EM_API_DISCONNECT:
        out = json_pack("{s:b,s:I}", "ok", 1, "sockets",
                        json_integer_value(json_object_get(res, "sockets")));
        break;
    case EM_API_SOCKETS: {
        json_t *list = json_object_get(res, "sockets");
        if (!json_is_array(list)) {
            list = NULL;
        }
        json_t *trim = json_array();
        for (size_t i = 0; trim != NULL && list != NULL && i < json_array_size(list)
                           && i < op->limit; i++) {
            json_array_append(trim, json_array_get(list, i));
        }
        out = json_pack("{s:s,s:o,s:I}", "namespace", em_api_wire(op->nsp), "sockets",
                        trim != NULL ? trim : json_array(), "total",
                        json_integer_value(json_object_get(res, "total")));
        break;
    }
    case EM_API_ROOMS: {
        /* Each worker's [namespace, room, members]: summed per room. */
        json_t *by = json_object(), *e, *list = json_array();
        size_t  i;
        json_array_foreach(json_object_get(res, "rooms"), i, e) {
            const char *ns = json_string_value(json_array_get(e, 0));
            const char *rn = json_string_value(json_array_get(e, 1));
            json_int_t  c = json_integer_value(json_array_get(e, 2));
            if (ns == NULL || rn == NULL || by == NULL) {
                continue;
            }
            size_t nl = strlen(ns), rl = strlen(rn);
            char  *key = malloc(nl + rl + 2);
            if (key == NULL) {
                continue;
            }
            memcpy(key, ns, nl);
            key[nl] = '\n';
            memcpy(key + nl + 1, rn, rl + 1);
            json_t *have = json_object_get(by, key);
            if (have != NULL) {
                json_object_set_new(have, "sockets", json_integer(
                    json_integer_value(json_object_get(have, "sockets")) + c));
            } else {
                json_object_set_new(by, key, json_pack("{s:s,s:s,s:I}", "name", rn, "namespace", em_api_wire(ns),
                                                       "sockets", c));
            }
            free(key);
        }
        size_t n = json_object_size(by), k = 0;
        json_t **v = calloc(n + 1, sizeof(*v));
        const char *key;
        json_object_foreach(by, key, e) {
            if (v != NULL) {
                v[k++] = e;
            }
        }
        if (v != NULL) {
            qsort(v, k, sizeof(*v), em_api_room_cmp);
            for (size_t j = 0; list != NULL && j < k; j++) {
                json_array_append(list, v[j]);
            }
        }
        free(v);
        json_decref(by);
        out = json_pack("{s:s,s:o}", "namespace", em_api_wire(op->nsp), "rooms", list != NULL ? list : json_array());
        break;
    }
    default:
        break;
    }
    json_decref(res);
    if (out != NULL && op->kind != EM_API_EMIT) {
        json_object_set_new(out, "complete", json_boolean(complete));
    }
    return out != NULL ? out : em_api_error_doc(500, "out of memory");
}

static void em_api_next(em_api_call_t *c);

static void
em_api_call_free(em_api_call_t *c)
{
    for (size_t i = 0; i < c->nops; i++) {
        em_api_op_free(&c->ops[i]);
    }
    free(c->ops);
    json_decref(c->results);
    free(c);
}

static void
em_api_cmd_done(json_t *result, int complete, void *arg)
{
    em_api_call_t *c = arg;
    em_api_op_t   *op = &c->ops[c->next];

    c->running = 0;
    if (op->early != NULL) {
        /* a plain emit's SYNC: every worker had it (or is gone) */
        json_decref(result);
        json_array_append_new(c->results, op->early);
        op->early = NULL;
    } else {
        json_array_append_new(c->results, em_api_shape(op, result, complete));
    }
    c->next++;
    em_api_next(c);
}

/* Run what is left of the call; answer it after the last operation. */
static void
em_api_next(em_api_call_t *c)
{
    static const em_cmd_kind_t kinds[] = {
        [EM_API_EMIT] = EM_CMD_EMIT, [EM_API_JOIN] = EM_CMD_JOIN, [EM_API_LEAVE] = EM_CMD_LEAVE,
        [EM_API_DISCONNECT] = EM_CMD_DISCONNECT, [EM_API_SOCKETS] = EM_CMD_SOCKETS,
        [EM_API_ROOMS] = EM_CMD_ROOMS,
    };

    while (c->next < c->nops) {
        em_api_op_t *op = &c->ops[c->next];
        if (op->kind == EM_API_PRESENCE) {
            json_array_append_new(c->results, em_api_presence(op));
            c->next++;
            continue;
        }
        em_cmd_kind_t kind = kinds[op->kind];
        unsigned      timeout = em_loop.conf->admin->timeout;
        if (op->kind == EM_API_EMIT && op->timeout == 0) {
            json_t *r = em_api_emit(op);
            if (json_object_get(r, "error") != NULL) {
                json_array_append_new(c->results, r);
                c->next++;
                continue;
            }
            op->early = r;
            kind = EM_CMD_SYNC;
        } else if (op->kind == EM_API_EMIT) {
            timeout = op->timeout + EM_API_ACK_GRACE;
        }
        if (kind == EM_CMD_SYNC) {
            json_t *none = json_object();
            c->running = none != NULL ? em_cmd_run(kind, none, NULL, 0, timeout, em_api_cmd_done, c) : 0;
            json_decref(none);
        } else {
            c->running = em_cmd_run(kind, op->cmd, op->atts, op->natt, timeout, em_api_cmd_done, c);
        }
        if (c->running == 0 && op->early != NULL) {
            json_array_append_new(c->results, op->early);   /* it was routed all the same */
            op->early = NULL;
            c->next++;
            continue;
        }
        if (c->running == 0) {
            json_array_append_new(c->results, em_api_error_doc(503, "out of memory"));
            c->next++;
            continue;
        }
        if (!c->held) {
            c->held = 1;
            em_http_conn_hold(c->h, c);
        }
        return;
    }
    if (c->h != NULL) {
        json_t *doc;
        int     status = 200;
        if (c->batch) {
            doc = json_pack("{s:O}", "results", c->results);
        } else {
            doc = json_incref(json_array_get(c->results, 0));
            if (json_object_get(doc, "error") != NULL) {
                status = 500;
            }
        }
        em_api_respond_json(c->h, status, doc);
    }
    em_api_call_free(c);
}

/* The client of a held call went away: cancel what runs, drop the rest. */
static void
em_api_lost(void *upper)
{
    em_api_call_t *c = upper;

    if (c->running != 0) {
        em_cmd_cancel(c->running);
    }
    em_api_call_free(c);
}

/* ---- requests ---- */

static const struct {
    const char    *path;
    em_api_kind_t  kind;        /* 0: a batch */
    int            get;         /* a listing: GET with the query (or POST with a body) */
} em_api_paths[] = {
    { "/v1/emit", EM_API_EMIT, 0 },
    { "/v1/join", EM_API_JOIN, 0 },
    { "/v1/leave", EM_API_LEAVE, 0 },
    { "/v1/disconnect", EM_API_DISCONNECT, 0 },
    { "/v1/batch", 0, 0 },
    { "/v1/sockets", EM_API_SOCKETS, 1 },
    { "/v1/rooms", EM_API_ROOMS, 1 },
    { "/v1/presence", EM_API_PRESENCE, 1 },
};

static const struct {
    const char    *name;
    em_api_kind_t  kind;
} em_api_ops[] = {
    { "emit", EM_API_EMIT }, { "join", EM_API_JOIN }, { "leave", EM_API_LEAVE },
    { "disconnect", EM_API_DISCONNECT }, { "sockets", EM_API_SOCKETS }, { "rooms", EM_API_ROOMS },
    { "presence", EM_API_PRESENCE },
};

/* A bearer key of admin.keys, compared in constant time: 0 admitted, else
 * the status to answer (401: none presented, 403: not one of them). */
static int
em_api_auth(const em_http_req_t *req)
{
    const em_conf_admin_t  *a = em_loop.conf->admin;
    const em_http_header_t *h = em_http_header(req, "authorization");
    int                     ok = 0;

    if (h == NULL || h->value.len < 7 || strncasecmp(h->value.data, "Bearer ", 7) != 0) {
        return 401;
    }
    em_str_t key = { h->value.data + 7, h->value.len - 7 };
    while (key.len > 0 && key.data[0] == ' ') {
        key.data++;
        key.len--;
    }
    if (key.len == 0) {
        return 401;
    }
    for (size_t i = 0; i < a->nkeys; i++) {
        size_t n = strlen(a->keys[i]);
        ok |= n == key.len && sodium_memcmp(a->keys[i], key.data, n) == 0;
    }
    return ok ? 0 : 403;
}

/* The query of a listing as the JSON object its body would be. */
static json_t *
em_api_query_doc(const em_http_req_t *req, em_api_err_t *e)
{
    static const char *const strs[] = { "namespace", "room", "socket", "path", NULL };
    json_t *o = json_object();
    char    buf[EM_HTTP_MAX_HEAD];
    ssize_t n;

    for (size_t i = 0; o != NULL && strs[i] != NULL; i++) {
        if ((n = em_http_query_get(req->query, strs[i], buf, sizeof(buf))) >= 0) {
            /* A listing's "room" is the room to list ("to" of a command). */
            json_object_set_new(o, strcmp(strs[i], "room") == 0 ? "to" : strs[i],
                                json_stringn(buf, (size_t) n));
        } else if (n == -2) {
            em_api_fail(e, 400, "the query parameter \"%s\" is malformed", strs[i]);
            json_decref(o);
            return NULL;
        }
    }
    if (o != NULL && (n = em_http_query_get(req->query, "limit", buf, sizeof(buf) - 1)) >= 0) {
        char *end;
        buf[n] = '\0';
        long v = strtol(buf, &end, 10);
        if (n == 0 || *end != '\0') {
            em_api_fail(e, 400, "\"limit\" must be a number");
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, "limit", json_integer(v));
    }
    if (o != NULL && (n = em_http_query_get(req->query, "online", buf, sizeof(buf))) >= 0) {
        json_object_set_new(o, "online", json_boolean(n > 0 && buf[0] != '0' && buf[0] != 'f'));
    }
    if (o == NULL) {
        em_api_fail(e, 500, "out of memory");
    }
    return o;
}

static void
em_api_serve(em_http_conn_t *h, const em_http_req_t *req, const char *body, size_t len)
{
    em_api_err_t   e = { 0, "" };
    em_api_call_t *c;
    json_t        *doc = NULL;
    size_t         p;
    int            st;

    for (p = 0; p < EM_NELEMS(em_api_paths); p++) {
        if (em_str_eq(req->path, em_api_paths[p].path)) {
            break;
        }
    }
    if (p == EM_NELEMS(em_api_paths)) {
        em_api_error(h, 404, "no such API call: %.*s", (int) EM_MIN(req->path.len, 200),
                     req->path.data);
        return;
    }
    if ((st = em_api_auth(req)) != 0) {
        em_api_error(h, st, st == 401 ? "an admin key is required (Authorization: Bearer <key>)"
                                      : "the admin key is not valid");
        return;
    }
    if (req->method == EM_HTTP_GET && em_api_paths[p].get) {
        doc = em_api_query_doc(req, &e);
    } else if (req->method == EM_HTTP_POST) {
        json_error_t jerr;
        doc = json_loadb(body != NULL ? body : "", len, JSON_ALLOW_NUL, &jerr);
        if (doc == NULL) {
            em_api_error(h, 400, "the body is not JSON: %s (line %d, column %d)", jerr.text,
                         jerr.line, jerr.column);
            return;
        }
        if (!json_is_object(doc)) {
            json_decref(doc);
            em_api_error(h, 400, "the body must be a JSON object");
            return;
        }
    } else {
        h->keep_alive = 0;
        em_api_error(h, 405, "%s takes %s", em_api_paths[p].path,
                     em_api_paths[p].get ? "GET or POST" : "POST");
        return;
    }
    if (doc == NULL) {
        em_api_error(h, e.status, "%s", e.msg);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->results = json_array()) == NULL) {
        free(c);
        json_decref(doc);
        em_api_error(h, 500, "out of memory");
        return;
    }
    c->h = h;
    if (em_api_paths[p].kind != 0) {
        c->ops = calloc(1, sizeof(*c->ops));
        c->nops = c->ops != NULL;
        if (c->ops == NULL) {
            em_api_fail(&e, 500, "out of memory");
        } else if (em_api_parse_op(em_api_paths[p].kind, doc, &c->ops[0], &e) != EM_OK) {
            c->nops = 1;
        } else {
            e.status = 0;
        }
    } else {
        const json_t *list = json_object_get(doc, "operations");
        c->batch = 1;
        if (!json_is_array(list) || json_array_size(list) == 0
            || json_array_size(list) > EM_API_BATCH_MAX) {
            em_api_fail(&e, 400, "\"operations\" must be a list of 1 to %d operations",
                        EM_API_BATCH_MAX);
        } else if ((c->ops = calloc(json_array_size(list), sizeof(*c->ops))) == NULL) {
            em_api_fail(&e, 500, "out of memory");
        }
        for (size_t i = 0; c->ops != NULL && e.status == 0 && i < json_array_size(list); i++) {
            const json_t *o = json_array_get(list, i);
            const char   *name = json_string_value(json_object_get(o, "op"));
            size_t        k;
            c->nops = i + 1;
            for (k = 0; name != NULL && k < EM_NELEMS(em_api_ops); k++) {
                if (strcmp(name, em_api_ops[k].name) == 0) {
                    break;
                }
            }
            if (name == NULL || k == EM_NELEMS(em_api_ops)) {
                em_api_fail(&e, 400, "operation %zu: \"op\" must be emit, join, leave, disconnect, "
                            "sockets, rooms or presence", i);
            } else if (em_api_parse_op(em_api_ops[k].kind, o, &c->ops[i], &e) != EM_OK) {
                char msg[sizeof(e.msg)];
                memcpy(msg, e.msg, sizeof(msg));
                snprintf(e.msg, sizeof(e.msg), "operation %zu: %.340s", i, msg);
            }
        }
    }
    json_decref(doc);
    if (e.status != 0) {
        em_api_error(h, e.status, "%s", e.msg);
        em_api_call_free(c);
        return;
    }
    em_api_next(c);
}

int
em_api_init(void)
{
    if (em_loop.conf->admin == NULL) {
        return EM_OK;
    }
    em_http_conn_route_lost(em_api_lost);
    return em_http_conn_route("/v1/", EM_HTTP_ROUTE_ADMIN | EM_HTTP_ROUTE_PREFIX, em_api_serve);
}
