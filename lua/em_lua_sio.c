/*
 * em_lua_sio.c - the Socket.IO application of the Lua API: what the Socket.IO
 * layer tells the scripts (em_sio_app_t: connect, events, acks, reserved
 * events, release), the socket's handshake and params as scripts see them.
 */
#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "em_bus.h"
#include "em_cluster.h"
#include "em_http.h"
#include "em_log.h"
#include "em_loop.h"
#include "em_lua.h"
#include "em_lua_int.h"
#include "em_luajson.h"
#include "em_rreq.h"
#include "em_socketio.h"

/* ---- Socket.IO hooks ---- */

int
em_lua_has_script(size_t conf_index)
{
    return em_lua_vm != NULL && em_lua_nsp_env[conf_index] != LUA_NOREF;
}

int
em_lua_nsp_scripts(void)
{
    return em_lua_any_nsp;
}

static void
em_lua_push_str_map(lua_State *l, em_str_t query)
{
    size_t   pos = 0;
    em_str_t k, v;
    char     key[256], val[4096];

    lua_newtable(l);
    while (em_http_query_next(query, &pos, &k, &v)) {
        ssize_t kl = em_http_pct_decode(k, key, sizeof(key));
        ssize_t vl = em_http_pct_decode(v, val, sizeof(val));
        if (kl > 0 && vl >= 0) {
            lua_pushlstring(l, key, (size_t) kl);
            lua_pushlstring(l, val, (size_t) vl);
            lua_rawset(l, -3);
        }
    }
}

/* socket.handshake from the head saved at the Engine.IO handshake, for the
 * socket object at index 1 (called from its __index); uv is the index of
 * its user value (the auth object). */
static void
em_lua_push_handshake(lua_State *l, em_sio_socket_t *s, int uv)
{
    em_eio_session_t *es = em_sio_socket_session(s);
    const char    *addr = em_eio_session_address(es);
    size_t         hlen = 0;
    const char    *head = em_eio_session_head(es, &hlen);
    em_http_req_t  req;

    lua_createtable(l, 0, 8);
    if (lua_getfield(l, uv, "_auth") != LUA_TTABLE) {
        lua_pop(l, 1);
        lua_newtable(l);
    }
    lua_setfield(l, -2, "auth");
    lua_pushstring(l, addr);
    lua_setfield(l, -2, "address");
    lua_pushinteger(l, ((em_lua_sock_box_t *) lua_touserdata(l, 1))->issued);
    lua_setfield(l, -2, "issued");
    lua_pushboolean(l, 0);
    lua_setfield(l, -2, "secure");
    if (head != NULL && em_http_parse(head, hlen, &req) == EM_OK) {
        lua_pushlstring(l, req.target.data, req.target.len);
        lua_setfield(l, -2, "url");
        em_lua_push_str_map(l, req.query);
        lua_setfield(l, -2, "query");
        lua_createtable(l, 0, (int) req.nheaders);
        for (size_t i = 0; i < req.nheaders; i++) {
            luaL_Buffer b;
            luaL_buffinit(l, &b);
            for (size_t k = 0; k < req.headers[i].name.len; k++) {
                char ch = req.headers[i].name.data[k];
                luaL_addchar(&b, (ch >= 'A' && ch <= 'Z') ? (char) (ch + 32) : ch);
            }
            luaL_pushresult(&b);
            lua_pushlstring(l, req.headers[i].value.data, req.headers[i].value.len);
            lua_rawset(l, -3);
        }
        lua_setfield(l, -2, "headers");
    }
}

/* socket.params for a parameterised namespace ("/device/:id" -> {id = "42"}). */
static void
em_lua_push_params(lua_State *l, em_sio_socket_t *s)
{
    const char *p = em_loop.conf->nsps[s->nsp->conf_index].name;
    const char *n = s->nsp->name, *end = n + s->nsp->name_len;

    lua_newtable(l);
    while (*p != '\0' && n < end) {
        if (p[0] == ':' && p[-1] == '/') {
            const char *k = ++p, *v = n;
            while (*p != '\0' && *p != '/') p++;
            while (n < end && *n != '/') n++;
            lua_pushlstring(l, k, (size_t) (p - k));
            lua_pushlstring(l, v, (size_t) (n - v));
            lua_rawset(l, -3);
            continue;
        }
        p++;
        n++;
    }
}

/*
 * socket.handshake, socket.params and socket.data, made on first read:
 * stack [socket, key, user value, nil] -> the value replaces the nil.
 */
void
em_lua_socket_lazy(lua_State *l, const char *key)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);
    int              uv = lua_gettop(l) - 1;

    if (strcmp(key, "handshake") != 0 && strcmp(key, "params") != 0 && strcmp(key, "data") != 0
        && strcmp(key, "claims") != 0) {
        return;
    }
    if (strcmp(key, "data") != 0 && s == NULL) {
        return;     /* gone: its handshake cannot be read any more */
    }
    if (key[0] == 'c' && s->claims == NULL) {
        return;     /* no token was verified: nil */
    }
    lua_pop(l, 1);
    if (key[0] == 'c') {
        if (em_lua_push_json(l, s->claims, NULL, 0) != EM_OK) {
            lua_pushnil(l);
            return;
        }
    } else if (key[0] == 'h') {
        em_lua_push_handshake(l, s, uv);
    } else if (key[0] == 'p') {
        em_lua_push_params(l, s);
    } else if (s != NULL && s->data != NULL && em_lua_push_json(l, s->data, NULL, 0) == EM_OK) {
        /* what the connect_hook gave */
    } else {
        lua_newtable(l);
    }
    lua_pushvalue(l, -1);
    lua_setfield(l, uv, key);
}

int
em_lua_connect(em_sio_socket_t *s, json_t *auth, json_t **reject)
{
    em_lua_sock_box_t *box;
    int                env = em_lua_nsp_env[s->nsp->conf_index];
    int                base = lua_gettop(em_lua_vm);
    int                rc = EM_OK;

    *reject = NULL;
    box = lua_newuserdatauv(em_lua_vm, sizeof(*box), 1);
    box->s = s;
    memcpy(box->id, s->id, sizeof(box->id));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    box->issued = (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
    luaL_setmetatable(em_lua_vm, EM_LUA_SOCKET_MT);
    /* handshake, params and data are made when a script first reads them
     * (em_lua_socket_lazy); until then only the auth object is kept. */
    lua_createtable(em_lua_vm, 0, 2);
    em_str_t wire = em_conf_nsp_wire(s->nsp->name, s->nsp->name_len);
    lua_pushlstring(em_lua_vm, wire.data, wire.len);
    lua_setfield(em_lua_vm, -2, "nsp");
    if (json_object_size(auth) > 0 && em_lua_push_json(em_lua_vm, auth, NULL, 0) == EM_OK) {
        lua_setfield(em_lua_vm, -2, "_auth");
    }
    lua_setiuservalue(em_lua_vm, -2, 1);
    lua_pushvalue(em_lua_vm, -1);
    s->lref = luaL_ref(em_lua_vm, LUA_REGISTRYINDEX);

    lua_rawgeti(em_lua_vm, LUA_REGISTRYINDEX, env);
    if (lua_getfield(em_lua_vm, -1, "on_connect") != LUA_TFUNCTION) {
        lua_settop(em_lua_vm, base);
        return EM_OK;
    }
    lua_remove(em_lua_vm, -2);          /* env */
    lua_insert(em_lua_vm, -2);          /* on_connect, socket */
    if (em_lua_call(1, 3, "on_connect") != EM_OK) {
        *reject = json_pack("{s:s}", "message", "Internal server error");
        rc = EM_DECLINED;
    } else if (lua_type(em_lua_vm, -3) == LUA_TBOOLEAN && !lua_toboolean(em_lua_vm, -3)) {
        char err[160];
        *reject = json_object();
        json_object_set_new(*reject, "message",
                            json_string(lua_isstring(em_lua_vm, -2) ? lua_tostring(em_lua_vm, -2) : "Not authorized"));
        if (!lua_isnil(em_lua_vm, -1)) {
            json_t *data = em_lua_to_json(em_lua_vm, -1, NULL, err, sizeof(err));
            if (data != NULL) {
                json_object_set_new(*reject, "data", data);
            } else {
                em_log(EM_LOG_ERR, 0, "on_connect rejection data: %s", err);
            }
        }
        if (json_object_get(*reject, "message") == NULL || json_is_null(json_object_get(*reject, "message"))) {
            json_object_set_new(*reject, "message", json_string("Not authorized"));
        }
        rc = EM_DECLINED;
    }
    lua_settop(em_lua_vm, base);
    return rc;
}

/* Push the elements [from..] of a JSON array; returns the count or -1. */
static int
em_lua_push_args(json_t *args, size_t from, const em_str_t *atts, size_t natt)
{
    int n = 0;

    /* The arguments, plus the ack function, a handler and the traceback of
     * em_lua_event(); the count is bounded by limits.event_args. */
    if (json_array_size(args) > (size_t) INT_MAX - 16 || !lua_checkstack(em_lua_vm, (int) json_array_size(args) + 8)) {
        return -1;
    }
    for (size_t i = from; i < json_array_size(args); i++, n++) {
        if (em_lua_push_json(em_lua_vm, json_array_get(args, i), atts, natt) != EM_OK) {
            lua_pop(em_lua_vm, n);
            return -1;
        }
    }
    return n;
}

static int
em_lua_ack_fn(lua_State *l)
{
    em_lua_sock_box_t *box = luaL_checkudata(l, lua_upvalueindex(1), EM_LUA_SOCKET_MT);
    int64_t            id = (int64_t) lua_tointeger(l, lua_upvalueindex(2));
    em_sio_socket_t   *s = box->s;
    em_pkt_t           pkt;

    if (lua_toboolean(l, lua_upvalueindex(3)) || s == NULL) {
        return 0;     /* answered already, or the socket is gone */
    }
    lua_pushboolean(l, 1);
    lua_replace(l, lua_upvalueindex(3));
    em_lua_args_pkt(&pkt, EM_SIO_ACK, (em_str_t) { s->nsp->name, s->nsp->name_len }, id, 1,
                    lua_gettop(l), 0, NULL, NULL);
    em_sio_socket_send(s, &pkt);
    em_pkt_release(&pkt);
    return 0;
}

int
em_lua_event(em_sio_socket_t *s, json_t *args, const em_str_t *atts, size_t natt, int64_t id)
{
    const char *ev = json_string_value(json_array_get(args, 0));
    int         base = lua_gettop(em_lua_vm);
    int         nargs;

    for (size_t i = 0; em_lua_reserved[i] != NULL; i++) {
        if (strcmp(ev, em_lua_reserved[i]) == 0) {
            return EM_OK;   /* clients may not raise the server's own events */
        }
    }
    em_lua_push_socket(s);
    int sock = lua_gettop(em_lua_vm);
    if (!em_lua_sock_table(em_lua_vm, sock, "_h", 0)) {
        lua_settop(em_lua_vm, base);
        return EM_OK;
    }
    lua_getfield(em_lua_vm, -1, ev);
    int list = lua_gettop(em_lua_vm);
    lua_Integer nh = em_lua_handler_count(em_lua_vm, list);
    if (nh == 0) {
        lua_settop(em_lua_vm, base);
        return EM_OK;
    }
    nargs = em_lua_push_args(args, 1, atts, natt);
    if (nargs < 0) {
        lua_settop(em_lua_vm, base);
        return EM_ERROR;
    }
    int first = list + 1;
    if (id != EM_SIO_NO_ID) {
        lua_pushvalue(em_lua_vm, sock);
        lua_pushinteger(em_lua_vm, id);
        lua_pushboolean(em_lua_vm, 0);
        lua_pushcclosure(em_lua_vm, em_lua_ack_fn, 3);
        nargs++;
    }
    for (lua_Integer h = 1; h <= nh; h++) {
        /* Each handler gets its own copies: room for them, the function
         * and the traceback, every time. */
        if (!lua_checkstack(em_lua_vm, nargs + 4)) {
            lua_settop(em_lua_vm, base);
            return EM_ERROR;
        }
        em_lua_handler_push(em_lua_vm, list, h);
        for (int i = 0; i < nargs; i++) {
            lua_pushvalue(em_lua_vm, first + i);
        }
        em_lua_call_named(nargs, 0, "handler of ", ev);
    }
    lua_settop(em_lua_vm, base);
    return EM_OK;
}

int
em_lua_ack(em_sio_socket_t *s, int64_t id, json_t *args, const em_str_t *atts, size_t natt)
{
    int base = lua_gettop(em_lua_vm);

    em_lua_push_socket(s);
    if (!em_lua_sock_table(em_lua_vm, lua_gettop(em_lua_vm), "_acks", 0)) {
        lua_settop(em_lua_vm, base);
        return EM_OK;   /* it asked for none */
    }
    int acks = lua_gettop(em_lua_vm);
    if (lua_rawgeti(em_lua_vm, acks, id) != LUA_TFUNCTION) {
        lua_settop(em_lua_vm, base);
        return EM_OK;   /* unknown or already answered */
    }
    lua_pushnil(em_lua_vm);
    lua_rawseti(em_lua_vm, acks, id);
    if (s->nacks > 0) {
        s->nacks--;
    }
    int nargs = em_lua_push_args(args, 0, atts, natt);
    if (nargs < 0) {
        lua_settop(em_lua_vm, base);
        return EM_ERROR;
    }
    em_lua_call(nargs, 0, "ack callback");
    lua_settop(em_lua_vm, base);
    return EM_OK;
}

void
em_lua_socket_event(em_sio_socket_t *s, const char *event, const char *reason)
{
    int base = lua_gettop(em_lua_vm);

    em_lua_push_socket(s);
    if (em_lua_sock_table(em_lua_vm, lua_gettop(em_lua_vm), "_h", 0) && lua_getfield(em_lua_vm, -1, event) != LUA_TNIL) {
        int         list = lua_gettop(em_lua_vm);
        lua_Integer nh = em_lua_handler_count(em_lua_vm, list);
        for (lua_Integer h = 1; h <= nh; h++) {
            em_lua_handler_push(em_lua_vm, list, h);
            lua_pushstring(em_lua_vm, reason);
            em_lua_call(1, 0, event);
        }
    }
    lua_settop(em_lua_vm, base);
}

void
em_lua_socket_release(em_sio_socket_t *s)
{
    em_lua_sock_box_t *box;

    em_lua_push_socket(s);
    box = lua_touserdata(em_lua_vm, -1);
    if (box != NULL) {
        box->s = NULL;
    }
    lua_pop(em_lua_vm, 1);
    luaL_unref(em_lua_vm, LUA_REGISTRYINDEX, s->lref);
    s->lref = LUA_NOREF;
}

/* emitd is stopping: each namespace script's on_shutdown(nsp), once per
 * worker, before its sockets are disconnected (what it broadcasts reaches
 * this worker's sockets: every worker runs it for its own). */
static void
em_lua_on_shutdown(void)
{
    if (em_lua_vm == NULL) {
        return;
    }
    for (size_t i = 0; i < em_loop.conf->nnsps; i++) {
        int top = lua_gettop(em_lua_vm);
        if (em_lua_nsp_env[i] == LUA_NOREF) {
            continue;
        }
        lua_rawgeti(em_lua_vm, LUA_REGISTRYINDEX, em_lua_nsp_env[i]);
        if (lua_getfield(em_lua_vm, -1, "on_shutdown") == LUA_TFUNCTION) {
            lua_getfield(em_lua_vm, -2, "nsp");
            em_lua_call_named(1, 0, "on_shutdown of ", em_loop.conf->nsps[i].name);
        }
        lua_settop(em_lua_vm, top);
    }
}

/* The ack of on_server_emit: once, with its first argument. */
static int
em_lua_server_ack(lua_State *l)
{
    char    err[128];
    json_t *arg;

    if (lua_toboolean(l, lua_upvalueindex(3))) {
        return 0;
    }
    lua_pushboolean(l, 1);
    lua_replace(l, lua_upvalueindex(3));
    arg = lua_gettop(l) >= 1 ? em_lua_to_json(l, 1, NULL, err, sizeof(err)) : NULL;
    em_rreq_server_ack(lua_tostring(l, lua_upvalueindex(1)), lua_tostring(l, lua_upvalueindex(2)), arg);
    json_decref(arg);
    return 0;
}

/* A server-side event from another server (Redis): the namespace script's
 * on_server_emit(event, ...), with an ack function last when the sender
 * waits for an answer. */
static void
em_lua_server_emit(size_t conf_index, json_t *args, const char *nsp, const char *request_id)
{
    size_t n = json_array_size(args), i;
    int    top, pushed = 0;

    if (em_lua_vm == NULL || em_lua_nsp_env[conf_index] == LUA_NOREF
        || !lua_checkstack(em_lua_vm, (int) n + 4)) {
        return;
    }
    top = lua_gettop(em_lua_vm);
    lua_rawgeti(em_lua_vm, LUA_REGISTRYINDEX, em_lua_nsp_env[conf_index]);
    if (lua_getfield(em_lua_vm, -1, "on_server_emit") != LUA_TFUNCTION) {
        lua_settop(em_lua_vm, top);
        return;
    }
    lua_remove(em_lua_vm, -2);
    for (i = 0; i < n; i++, pushed++) {
        if (em_lua_push_json(em_lua_vm, json_array_get(args, i), NULL, 0) != EM_OK) {
            lua_settop(em_lua_vm, top);
            return;
        }
    }
    if (request_id != NULL) {
        lua_pushstring(em_lua_vm, nsp);
        lua_pushstring(em_lua_vm, request_id);
        lua_pushboolean(em_lua_vm, 0);
        lua_pushcclosure(em_lua_vm, em_lua_server_ack, 3);
        pushed++;
    }
    em_lua_call_named(pushed, 0, "on_server_emit of ", em_loop.conf->nsps[conf_index].name);
    lua_settop(em_lua_vm, top);
}

/* socket.data as JSON, for the backend API's listings (null when the
 * script set none, or set something JSON cannot say). */
static json_t *
em_lua_socket_data(em_sio_socket_t *s)
{
    lua_State *l = em_lua_state();
    json_t    *j = NULL;
    char       err[128];

    if (l == NULL || s->lref == EM_SIO_NOREF || !lua_checkstack(l, 4)) {
        return NULL;
    }
    int top = lua_gettop(l);
    em_lua_push_socket(s);
    if (lua_type(l, -1) == LUA_TUSERDATA && lua_getiuservalue(l, -1, 1) == LUA_TTABLE
        && lua_getfield(l, -1, "data") != LUA_TNIL) {
        j = em_lua_to_json(l, lua_gettop(l), NULL, err, sizeof(err));
    }
    lua_settop(l, top);
    return j;
}

static const em_sio_app_t em_lua_sio_app = {
    .has_script = em_lua_has_script,
    .nsp_scripts = em_lua_nsp_scripts,
    .connect = em_lua_connect,
    .event = em_lua_event,
    .ack = em_lua_ack,
    .socket_event = em_lua_socket_event,
    .release = em_lua_socket_release,
    .presence = em_lua_presence_event,
    .shutdown = em_lua_on_shutdown,
    .socket_data = em_lua_socket_data,
    .server_emit = em_lua_server_emit,
};

/* Register the scripts as the Socket.IO layer's application. */
void
em_lua_sio_open(void)
{
    em_sio_set_app(&em_lua_sio_app);
}
