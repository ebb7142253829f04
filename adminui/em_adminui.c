/*
 * em_adminui.c - the @socket.io/admin-ui dashboard's namespace.
 *
 * The dashboard is a socket.io-client in a browser. It connects to the
 * configured namespace ("/admin") with {username, password}, or with the
 * sessionId a login gave it, and then hears:
 *   config          {supportedFeatures}, once;
 *   server_stats    every 2 s, one per host (its serverId): the host's
 *                   Engine.IO clients, its namespaces' socket counts across
 *                   the workers, and the events of each second since the
 *                   last report (connections, packets and bytes);
 * and in mode "development":
 *   all_sockets     once, every socket of every worker (em_cmd SOCKETS);
 *   socket_connected, socket_updated, socket_disconnected, room_joined,
 *   room_left, event_received: broadcast to the namespace by the worker
 *                   where it happened (em_sio_route), so that every
 *                   dashboard hears every worker's sockets.
 * It may send emit, join, leave and _disconnect, which run on every
 * worker's sockets (em_cmd) unless readonly is set.
 *
 * The password is a bcrypt hash in the configuration, checked with
 * libxcrypt's crypt_rn(). A check takes tens of milliseconds of the worker's
 * loop, so a worker runs at most EM_ADMINUI_CHECKS_PER_S of them a second;
 * the password that passed is remembered (a keyed BLAKE2b of it) so that a
 * dashboard logging in again does not cost another. Session ids live in the
 * shared store for session_ttl, so a login on one worker admits on all.
 */
#include <crypt.h>
#include <event2/event.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "em_adminui.h"
#include "em_cluster.h"
#include "em_cmd.h"
#include "em_conf.h"
#include "em_log.h"
#include "em_loop.h"
#include "em_socketio.h"

#define EM_ADMINUI_CHECKS_PER_S 4       /* bcrypt checks a worker runs in a second */
#define EM_ADMINUI_PASSWORD_MAX 1024    /* bytes (bcrypt reads the first 72) */
#define EM_ADMINUI_ARG_MAX      1024    /* bytes of a namespace, room or filter it names */
#define EM_ADMINUI_CMD_TIMEOUT  5000    /* ms the workers have to run its command */
#define EM_ADMINUI_SAMPLES      4       /* seconds kept between two server_stats */
#define EM_ADMINUI_NSPS_MAX     1000    /* namespaces listed in server_stats */
#define EM_ADMINUI_SESSION_HEX  32      /* a session id: 16 random bytes in hex */

enum { EM_AU_CONN, EM_AU_DISC, EM_AU_PIN, EM_AU_POUT, EM_AU_BIN, EM_AU_BOUT, EM_AU_N };

static const char *const em_adminui_types[EM_AU_N] = {
    "rawConnection", "rawDisconnection", "packetsIn", "packetsOut", "bytesIn", "bytesOut"
};

typedef struct {
    int64_t  ts;                        /* ms, the start of the second */
    uint64_t v[EM_AU_N];
} em_adminui_sample_t;

static const em_conf_admin_ui_t *em_au;
static struct event             *em_adminui_timer;
static unsigned                  em_adminui_ticks;
static int                       em_adminui_watched;    /* a dashboard anywhere, as of the last tick */
static unsigned                  em_adminui_checks;     /* bcrypt checks left this second */
static struct crypt_data        *em_adminui_crypt;
static unsigned char             em_adminui_key[crypto_generichash_KEYBYTES];
static unsigned char             em_adminui_known[crypto_generichash_BYTES];
static int                       em_adminui_known_set;
static uint64_t                  em_adminui_last[EM_AU_N];
static int                       em_adminui_have_last;
static em_adminui_sample_t       em_adminui_samples[EM_ADMINUI_SAMPLES];
static size_t                    em_adminui_nsamples;

static em_str_t
em_adminui_name(void)
{
    return (em_str_t) { em_au->nsp, strlen(em_au->nsp) };
}

static int
em_adminui_own(const em_sio_socket_t *s)
{
    return s->nsp->conf_index == em_au->nsp_index;
}

/* Now as JavaScript's Date serializes in JSON: "2026-12-07T15:41:49.123Z". */
static json_t *
em_adminui_now(void)
{
    struct timespec ts;
    struct tm       tm;
    char            buf[40];
    size_t          n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%03ldZ", ts.tv_nsec / 1000000);
    return json_string(buf);
}

/* Whether a dashboard is connected to some worker (the namespace's count). */
static int
em_adminui_present(void)
{
    return em_room_size(&em_cluster, em_adminui_name(), (em_str_t) { "", 0 }) > 0;
}

/* The event args (a JSON array; the reference is taken) to every socket of
 * the namespace: to one socket when s is given, else on every worker. */
static void
em_adminui_send(em_sio_socket_t *s, json_t *args)
{
    em_bcast_t b = { 0 };
    em_pkt_t   pkt;

    if (args == NULL) {
        return;
    }
    if (em_sio_pkt_build(&pkt, EM_SIO_EVENT, em_adminui_name(), EM_SIO_NO_ID, args, NULL, 0)
        == EM_OK) {
        if (s != NULL) {
            em_sio_socket_send(s, &pkt);
        } else {
            em_sio_route(em_adminui_name(), -1, &b, &pkt);
        }
        em_pkt_release(&pkt);
    }
    json_decref(args);
}

/* ---- sockets as the dashboard shows them ---- */

/* A SerializedSocket of admin-ui from a socket as em_cmd lists it (with its
 * handshake): id, clientId, transport, nsp, data, handshake, rooms. */
static json_t *
em_adminui_serialize(json_t *info)
{
    json_t     *hs = json_object_get(info, "handshake");
    json_t     *headers = json_object_get(hs, "headers");
    json_t     *addr = json_object_get(headers, "cf-connecting-ip");
    json_t     *data = json_object_get(info, "data");
    json_t     *rooms = json_object_get(info, "rooms");
    const char *cid = json_string_value(json_object_get(info, "clientId"));

    if (!json_is_object(hs) || !json_is_array(rooms)) {
        return NULL;
    }
    if (!json_is_string(addr)) {
        addr = json_object_get(headers, "x-forwarded-for");
    }
    if (!json_is_string(addr)) {
        addr = json_object_get(info, "address");
    }
    json_object_set_new(hs, "address", json_is_string(addr) ? json_incref(addr) : json_string(""));
    /* The client id is cut to 12 characters, as admin-ui does: the whole of
     * it would let the dashboard's viewer speak for the client. */
    return json_pack("{s:O,s:s%,s:O,s:O,s:o,s:O,s:O}",
                     "id", json_object_get(info, "id"),
                     "clientId", cid != NULL ? cid : "", cid != NULL ? EM_MIN(strlen(cid), 12) : 0,
                     "transport", json_object_get(info, "transport"),
                     "nsp", json_object_get(info, "namespace"),
                     "data", json_is_object(data) ? json_incref(data) : json_object(),
                     "handshake", hs,
                     "rooms", rooms);
}

static json_t *
em_adminui_socket(em_sio_socket_t *s)
{
    json_t *info = em_cmd_socket_info(s, 1);
    json_t *ser = info != NULL ? em_adminui_serialize(info) : NULL;

    json_decref(info);
    return ser;
}

static json_t *
em_adminui_wire(const em_sio_socket_t *s)
{
    em_str_t w = em_conf_nsp_wire(s->nsp->name, s->nsp->name_len);

    return json_stringn(w.data, w.len);
}

/* ---- what the sockets of every namespace do (mode "development") ---- */

static void
em_adminui_room_event(em_sio_socket_t *s, em_str_t room, const char *what)
{
    em_adminui_send(NULL, json_pack("[s,o,s%,s,o]", what, em_adminui_wire(s), room.data, room.len,
                                    s->id, em_adminui_now()));
}

static void
em_adminui_opened(em_sio_socket_t *s)
{
    int own = em_adminui_own(s);

    if (own) {
        em_adminui_watched = 1;
    }
    if (!em_au->production && (own || em_adminui_present())) {
        json_t *ser = em_adminui_socket(s);
        /* Node's adapter tells of the room of its id first. */
        em_adminui_room_event(s, (em_str_t) { s->id, EM_SID_LEN }, "room_joined");
        if (ser != NULL) {
            em_adminui_send(NULL, json_pack("[s,o,o]", "socket_connected", ser, em_adminui_now()));
        }
    }
}

static void
em_adminui_room_left_cb(const char *room, size_t len, void *arg)
{
    em_adminui_room_event(arg, (em_str_t) { room, len }, "room_left");
}

/* As Node's adapter tells it: the socket is gone, then it left each room,
 * the room of its id first (the dashboard drops a room left empty). */
static void
em_adminui_closed(em_sio_socket_t *s, const char *reason)
{
    if (!em_au->production && em_adminui_present()) {
        em_adminui_send(NULL, json_pack("[s,o,s,s,o]", "socket_disconnected", em_adminui_wire(s),
                                        s->id, reason, em_adminui_now()));
        em_adminui_room_event(s, (em_str_t) { s->id, EM_SID_LEN }, "room_left");
        em_adapter_socket_rooms(s, em_adminui_room_left_cb, s);
    }
}

static void
em_adminui_room(em_sio_socket_t *s, em_str_t room, const char *what)
{
    if (!em_au->production && em_adminui_present()) {
        em_adminui_room_event(s, room, what);
    }
}

static void
em_adminui_joined(em_sio_socket_t *s, em_str_t room)
{
    em_adminui_room(s, room, "room_joined");
}

static void
em_adminui_left(em_sio_socket_t *s, em_str_t room)
{
    em_adminui_room(s, room, "room_left");
}

static void
em_adminui_upgraded(em_sio_socket_t *s)
{
    if (!em_au->production && em_adminui_present()) {
        em_adminui_send(NULL, json_pack("[s,{s:s,s:o,s:s}]", "socket_updated", "id", s->id,
                                        "nsp", em_adminui_wire(s), "transport", "websocket"));
    }
}

/* A client's event in another namespace: traced while a dashboard watches
 * (as of the last second: this runs for every event). */
static void
em_adminui_event_in(em_sio_socket_t *s, json_t *args)
{
    if (!em_au->production && em_adminui_watched) {
        em_adminui_send(NULL, json_pack("[s,o,s,O,o]", "event_received", em_adminui_wire(s), s->id,
                                        args, em_adminui_now()));
    }
}

/* ---- the login ---- */

static void
em_adminui_session_key(char *key, size_t len, const char *id, size_t idlen)
{
    snprintf(key, len, "\x01" "admin_ui session %.*s", (int) idlen, id);
}

static int
em_adminui_session_ok(const json_t *id)
{
    char   key[80], val[16];
    size_t n;

    if (!json_is_string(id) || json_string_length(id) != EM_ADMINUI_SESSION_HEX) {
        return 0;
    }
    em_adminui_session_key(key, sizeof(key), json_string_value(id), json_string_length(id));
    return em_kv_get(&em_cluster, (em_str_t) { key, strlen(key) }, em_state_now(), val,
                     sizeof(val), &n) == EM_OK;
}

/* A new session id for a login, into the store: EM_OK and id, or EM_ERROR. */
static int
em_adminui_session_new(char *id)
{
    unsigned char raw[EM_ADMINUI_SESSION_HEX / 2];
    char          key[80];
    int           why;

    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(id, EM_ADMINUI_SESSION_HEX + 1, raw, sizeof(raw));
    em_adminui_session_key(key, sizeof(key), id, EM_ADMINUI_SESSION_HEX);
    if (em_kv_set(&em_cluster, (em_str_t) { key, strlen(key) }, (em_str_t) { "1", 1 },
                  (int64_t) em_au->session_ttl * 1000, em_state_now(), &why) != EM_OK) {
        em_log(EM_LOG_WARN, 0, "admin_ui: the store is full: the dashboard's session is not kept");
        return EM_ERROR;
    }
    return EM_OK;
}

/* EM_OK when the password matches the configured hash, EM_DECLINED when
 * not, EM_AGAIN when this worker ran its checks for this second. */
static int
em_adminui_password(const json_t *pw)
{
    unsigned char h[crypto_generichash_BYTES];
    const char   *p = json_string_value(pw), *out;
    size_t        len = json_string_length(pw), hlen = strlen(em_au->password);

    if (p == NULL || len > EM_ADMINUI_PASSWORD_MAX || strlen(p) != len) {
        return EM_DECLINED;
    }
    crypto_generichash(h, sizeof(h), (const unsigned char *) p, len, em_adminui_key,
                       sizeof(em_adminui_key));
    if (em_adminui_known_set && sodium_memcmp(h, em_adminui_known, sizeof(h)) == 0) {
        return EM_OK;
    }
    if (em_adminui_checks == 0) {
        return EM_AGAIN;
    }
    em_adminui_checks--;
    /* crypt_rn(), libxcrypt's: NULL on failure, and no sanitizer's
     * interceptor stands in front of it as one does for crypt_r(). */
    out = crypt_rn(p, em_au->password, em_adminui_crypt, (int) sizeof(*em_adminui_crypt));
    if (out == NULL || strlen(out) != hlen || sodium_memcmp(out, em_au->password, hlen) != 0) {
        return EM_DECLINED;
    }
    memcpy(em_adminui_known, h, sizeof(h));
    em_adminui_known_set = 1;
    return EM_OK;
}

static int
em_adminui_connect(em_sio_socket_t *s, json_t *auth, json_t **reject)
{
    const json_t *user = json_object_get(auth, "username");
    char          id[EM_ADMINUI_SESSION_HEX + 1];
    int           rc = EM_DECLINED;

    *reject = NULL;
    if (em_au->username == NULL || em_adminui_session_ok(json_object_get(auth, "sessionId"))) {
        return EM_OK;
    }
    if (json_is_string(user) && json_string_length(user) == strlen(em_au->username)
        && sodium_memcmp(json_string_value(user), em_au->username, strlen(em_au->username)) == 0) {
        rc = em_adminui_password(json_object_get(auth, "password"));
    }
    if (rc == EM_OK) {
        if (em_adminui_session_new(id) == EM_OK) {
            em_adminui_send(s, json_pack("[s,s]", "session", id));      /* held until CONNECT */
        }
        em_log(EM_LOG_INFO, 0, "admin_ui: socket %s logged in from %s", s->id,
               em_eio_session_address(em_sio_socket_session(s)));
        return EM_OK;
    }
    em_log(EM_LOG_WARN, 0, "admin_ui: a login from %s was refused%s",
           em_eio_session_address(em_sio_socket_session(s)),
           rc == EM_AGAIN ? " (too many at once)" : "");
    *reject = json_pack("{s:s}", "message", rc == EM_AGAIN
                        ? "too many login attempts, try again in a second" : "invalid credentials");
    return EM_DECLINED;
}

/* ---- the dashboard's own namespace ---- */

static json_t *
em_adminui_features(void)
{
    json_t *f = em_au->readonly
                ? json_array()
                : json_pack("[s,s,s,s,s,s,s]", "EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN",
                            "MLEAVE", "MDISCONNECT");

    json_array_append_new(f, json_string("AGGREGATED_EVENTS"));
    if (!em_au->production) {
        json_array_append_new(f, json_string("ALL_EVENTS"));
    }
    return f;
}

static void
em_adminui_all_done(json_t *result, int complete, void *arg)
{
    char            *id = arg;
    em_nsp_t        *nsp = em_nsp_find(em_au->nsp, strlen(em_au->nsp));
    em_sio_socket_t *s = nsp != NULL ? em_nsp_socket_find(nsp, id) : NULL;
    json_t          *list, *info;
    size_t           i;

    if (!complete) {
        em_log(EM_LOG_WARN, 0, "admin_ui: a worker did not list its sockets in time");
    }
    if (s != NULL && em_sio_socket_live(s) && (list = json_array()) != NULL) {
        json_array_foreach(json_object_get(result, "sockets"), i, info) {
            json_t *ser = em_adminui_serialize(info);
            if (ser != NULL) {
                json_array_append_new(list, ser);
            }
        }
        em_adminui_send(s, json_pack("[s,o]", "all_sockets", list));
    }
    json_decref(result);
    free(id);
}

static void
em_adminui_own_opened(em_sio_socket_t *s)
{
    json_t *cmd;
    char   *id;

    em_adminui_send(s, json_pack("[s,{s:o}]", "config", "supportedFeatures",
                                 em_adminui_features()));
    if (em_au->production) {
        return;
    }
    cmd = json_pack("{s:b,s:b,s:i}", "all", 1, "handshake", 1, "limit", EM_CMD_SOCKETS_MAX);
    id = strdup(s->id);
    if (cmd == NULL || id == NULL
        || em_cmd_run(EM_CMD_SOCKETS, cmd, NULL, 0, EM_ADMINUI_CMD_TIMEOUT, em_adminui_all_done,
                      id) == 0) {
        free(id);
    }
    json_decref(cmd);
}

static void
em_adminui_on_open(em_sio_socket_t *s)
{
    em_adminui_opened(s);
    if (em_adminui_own(s) && em_sio_socket_live(s)) {
        em_adminui_own_opened(s);
    }
}

static void
em_adminui_cmd_done(json_t *result, int complete, void *arg)
{
    (void) complete;
    (void) arg;
    json_decref(result);
}

/* A string argument the dashboard names (a namespace, a room), or NULL. */
static const char *
em_adminui_arg(const json_t *v, int nsp)
{
    const char *s = json_string_value(v);
    size_t      len = json_string_length(v);

    if (s == NULL || len == 0 || len > EM_ADMINUI_ARG_MAX || strlen(s) != len
        || (nsp && s[0] != '/')) {
        return NULL;
    }
    return s;
}

/* The room filter an action names: EM_OK and *filter (NULL for none:
 * absent, null or ""), or EM_ERROR for anything else. */
static int
em_adminui_filter(const json_t *v, const char **filter)
{
    *filter = em_adminui_arg(v, 0);
    if (*filter == NULL && v != NULL && !json_is_null(v)
        && !(json_is_string(v) && json_string_length(v) == 0)) {
        return EM_ERROR;
    }
    return EM_OK;
}

/* emit(nsp, filter, ev, ...args): to the namespace's sockets (of room
 * filter when given), logged for recovery as a script's broadcast. */
static void
em_adminui_emit(const char *nsp, const char *filter, json_t *args)
{
    const char *ev = em_adminui_arg(json_array_get(args, 3), 0);
    em_str_t    room = { filter, filter != NULL ? strlen(filter) : 0 };
    em_bcast_t  b = { 0 };
    em_pkt_t    pkt;
    json_t     *data;

    if (ev == NULL || strlen(ev) > em_loop.conf->limits.event_name) {
        return;
    }
    if ((data = json_array()) == NULL) {
        return;
    }
    for (size_t i = 3; i < json_array_size(args); i++) {
        json_array_append(data, json_array_get(args, i));
    }
    b.rooms = filter != NULL ? &room : NULL;
    b.nrooms = filter != NULL;
    if (em_cluster_event_pkt(&pkt, (em_str_t) { nsp, strlen(nsp) }, data, NULL, 0, &b, NULL)
        == EM_OK) {
        em_sio_route((em_str_t) { nsp, strlen(nsp) }, -1, &b, &pkt);
        em_pkt_release(&pkt);
    }
    json_decref(data);
}

static void
em_adminui_event(em_sio_socket_t *s, json_t *args)
{
    const char  *what = json_string_value(json_array_get(args, 0));
    const char  *nsp = em_adminui_arg(json_array_get(args, 1), 1);
    json_t      *fv, *cmd;
    const char  *filter, *room = NULL;
    em_cmd_kind_t kind;

    if (em_au->readonly || what == NULL || nsp == NULL) {
        return;
    }
    if (strcmp(what, "emit") == 0) {
        if (em_adminui_filter(json_array_get(args, 2), &filter) != EM_OK) {
            return;
        }
        em_log(EM_LOG_INFO, 0, "admin_ui: socket %s emits to %s%s%s", s->id, nsp,
               filter ? " room " : "", filter ? filter : "");
        em_adminui_emit(nsp, filter, args);
        return;
    }
    if (strcmp(what, "join") == 0 || strcmp(what, "leave") == 0) {
        kind = what[0] == 'j' ? EM_CMD_JOIN : EM_CMD_LEAVE;
        if ((room = em_adminui_arg(json_array_get(args, 2), 0)) == NULL) {
            return;
        }
        fv = json_array_get(args, 3);
    } else if (strcmp(what, "_disconnect") == 0) {
        kind = EM_CMD_DISCONNECT;
        fv = json_array_get(args, 3);
    } else {
        return;
    }
    if (em_adminui_filter(fv, &filter) != EM_OK) {
        return;
    }
    cmd = json_pack("{s:s}", "nsp", nsp);
    if (cmd == NULL) {
        return;
    }
    if (filter != NULL) {
        json_object_set_new(cmd, "rooms", json_pack("[s]", filter));
    }
    if (room != NULL) {
        json_object_set_new(cmd, "join", json_pack("[s]", room));
    } else {
        json_object_set_new(cmd, "close", json_boolean(json_is_true(json_array_get(args, 2))));
    }
    em_log(EM_LOG_INFO, 0, "admin_ui: socket %s: %s %s%s%s%s%s", s->id, what, nsp,
           room ? " room " : "", room ? room : "", filter ? " of room " : "", filter ? filter : "");
    em_cmd_run(kind, cmd, NULL, 0, EM_ADMINUI_CMD_TIMEOUT, em_adminui_cmd_done, NULL);
    json_decref(cmd);
}

/* ---- server_stats ---- */

static void
em_adminui_nsp_cb(em_str_t name, uint32_t n, void *arg)
{
    em_str_t w = em_conf_nsp_wire(name.data, name.len);
    char     key[EM_ADMINUI_ARG_MAX + 1];

    if (w.len > EM_ADMINUI_ARG_MAX) {
        return;
    }
    memcpy(key, w.data, w.len);
    key[w.len] = '\0';
    json_object_set_new(arg, key, json_integer(json_integer_value(json_object_get(arg, key)) + n));
}

/* This host's figures: every worker's, read from the state segment. */
static json_t *
em_adminui_stats(void)
{
    json_t     *counts = json_object(), *nsps = json_array(), *events = json_array(), *v;
    const char *name;
    uint64_t    clients = 0, polling = 0;
    char        host[256];

    for (size_t i = 0; i < em_loop.conf->nnsps; i++) {
        const em_conf_nsp_t *n = &em_loop.conf->nsps[i];
        if (!n->dynamic && n->name[0] != EM_CONF_NSP_PREFIX) {
            json_object_set_new(counts, n->name, json_integer(0));
        }
    }
    em_nsp_each(&em_cluster, EM_ADMINUI_NSPS_MAX, em_adminui_nsp_cb, counts);
    json_object_foreach(counts, name, v) {
        json_array_append_new(nsps, json_pack("{s:s,s:O}", "name", name, "socketsCount", v));
    }
    json_decref(counts);
    for (unsigned i = 0; i < em_loop.nworkers; i++) {
        if (em_state_slot_used(&em_cluster, i) != EM_SLOT_FREE) {
            em_st_wstats_t *w = em_state_wstats(&em_cluster, i);
            uint64_t        p = __atomic_load_n(&w->sessions_polling, __ATOMIC_RELAXED);
            clients += p + __atomic_load_n(&w->sessions_ws, __ATOMIC_RELAXED);
            polling += p;
        }
    }
    for (size_t k = 0; k < em_adminui_nsamples; k++) {
        for (int t = 0; t < EM_AU_N; t++) {
            if (em_adminui_samples[k].v[t] > 0) {
                json_array_append_new(events, json_pack("{s:I,s:s,s:I}", "timestamp",
                                                        (json_int_t) em_adminui_samples[k].ts,
                                                        "type", em_adminui_types[t], "count",
                                                        (json_int_t) em_adminui_samples[k].v[t]));
            }
        }
    }
    if (gethostname(host, sizeof(host)) != 0) {
        host[0] = '\0';
    }
    host[sizeof(host) - 1] = '\0';
    return json_pack("{s:s,s:s,s:i,s:f,s:I,s:I,s:o,s:o}",
                     "serverId", em_au->server_id,
                     "hostname", host,
                     "pid", (int) getppid(),                    /* the master's */
                     "uptime", (double) (em_state_now() - em_cluster.hdr->created) / 1000.0,
                     "clientsCount", (json_int_t) clients,
                     "pollingClientsCount", (json_int_t) polling,
                     "aggregatedEvents", events,
                     "namespaces", nsps);
}

/* Last second's events of the host, from the counters every worker adds to. */
static void
em_adminui_sample(void)
{
    uint64_t now[EM_AU_N] = { 0 };
    int64_t  ms = em_state_now();

    for (unsigned i = 0; i < em_loop.nworkers; i++) {
        em_st_wstats_t *w = em_state_wstats(&em_cluster, i);
        now[EM_AU_CONN] += __atomic_load_n(&w->handshakes, __ATOMIC_RELAXED);
        now[EM_AU_DISC] += __atomic_load_n(&w->sessions_closed, __ATOMIC_RELAXED);
        now[EM_AU_PIN] += __atomic_load_n(&w->messages_in, __ATOMIC_RELAXED);
        now[EM_AU_POUT] += __atomic_load_n(&w->messages_out, __ATOMIC_RELAXED);
        now[EM_AU_BIN] += __atomic_load_n(&w->bytes_in, __ATOMIC_RELAXED);
        now[EM_AU_BOUT] += __atomic_load_n(&w->bytes_out, __ATOMIC_RELAXED);
    }
    if (em_adminui_have_last && em_adminui_nsamples < EM_ADMINUI_SAMPLES) {
        em_adminui_sample_t *s = &em_adminui_samples[em_adminui_nsamples++];
        s->ts = (ms - 1000) - (ms - 1000) % 1000;
        for (int t = 0; t < EM_AU_N; t++) {
            s->v[t] = now[t] >= em_adminui_last[t] ? now[t] - em_adminui_last[t] : 0;
        }
    }
    memcpy(em_adminui_last, now, sizeof(now));
    em_adminui_have_last = 1;
}

/* Whether this worker reports for the host: the first serving slot. */
static int
em_adminui_reporter(void)
{
    for (unsigned i = 0; i < em_loop.nworkers; i++) {
        if (em_state_slot_used(&em_cluster, i) == EM_SLOT_SERVING) {
            return i == em_loop.slot;
        }
    }
    return 0;
}

static void
em_adminui_tick(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    em_adminui_checks = EM_ADMINUI_CHECKS_PER_S;
    em_adminui_sample();
    em_adminui_watched = em_adminui_present();
    if (++em_adminui_ticks % 2 == 0) {
        if (em_adminui_watched && em_adminui_reporter()) {
            em_adminui_send(NULL, json_pack("[s,o]", "server_stats", em_adminui_stats()));
        }
        em_adminui_nsamples = 0;
    }
}

int
em_adminui_init(void)
{
    static const struct timeval second = { 1, 0 };
    em_sio_watch_t              w = {
        .connect = em_adminui_connect,
        .event = em_adminui_event,
        .event_in = em_adminui_event_in,
        .opened = em_adminui_on_open,
        .closed = em_adminui_closed,
        .joined = em_adminui_joined,
        .left = em_adminui_left,
        .upgraded = em_adminui_upgraded,
    };

    em_au = em_loop.conf->admin_ui;
    if (em_au == NULL) {
        return EM_OK;
    }
    w.nsp_conf = (long) em_au->nsp_index;
    em_adminui_crypt = calloc(1, sizeof(*em_adminui_crypt));
    em_adminui_timer = event_new(em_loop.base, -1, EV_PERSIST, em_adminui_tick, NULL);
    if (em_adminui_crypt == NULL || em_adminui_timer == NULL
        || event_add(em_adminui_timer, &second) != 0) {
        em_log(EM_LOG_ERR, 0, "admin_ui: cannot set up its timer");
        em_adminui_shutdown();
        return EM_ERROR;
    }
    crypto_generichash_keygen(em_adminui_key);
    em_adminui_sample();        /* the counters as this worker starts: the first second counts */
    em_adminui_checks = EM_ADMINUI_CHECKS_PER_S;
    em_sio_set_watch(&w);
    return EM_OK;
}

void
em_adminui_shutdown(void)
{
    if (em_adminui_timer != NULL) {
        event_free(em_adminui_timer);
        em_adminui_timer = NULL;
    }
    free(em_adminui_crypt);
    em_adminui_crypt = NULL;
    sodium_memzero(em_adminui_known, sizeof(em_adminui_known));
    em_adminui_known_set = 0;
}
