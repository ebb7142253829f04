/*
 * em_lua.c - the Lua 5.4 handler API.
 *
 * Objects handed to scripts:
 *   socket  full userdata boxing an em_sio_socket_t pointer (NULL once the
 *           socket is gone, so a script that keeps it cannot crash us); its
 *           user value is a table with id, nsp, handshake, data, params and
 *           the script's handlers (_h) and pending ack callbacks (_acks);
 *   conn    the same for a raw Engine.IO session;
 *   nsp and broadcast operators: tables {_conf|_nsp, _rooms, _except, _skip}
 *           with methods to/in/except/emit (Socket.IO's BroadcastOperator);
 *   buffer  binary data (em_luajson.c).
 * Every call into a script goes through em_lua_call(): protected, with a
 * traceback, and with an instruction-count hook that stops a handler that
 * runs away.
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
#include "em_socketio.h"

#define EM_LUA_CONN_MT   "emitd.conn"
#define EM_LUA_BCAST_MT  "emitd.bcast"

/* A socket object: its id and handshake time live here (they outlast the
 * socket), everything else in its user value table. */
typedef struct {
    em_sio_socket_t *s;
    int64_t          issued;            /* ms since the epoch */
    char             id[EM_SID_LEN + 1];
} em_lua_sock_box_t;

typedef struct {
    em_eio_session_t *s;
    int           lref;
} em_lua_conn_box_t;

static lua_State *L;
int              *em_lua_nsp_env;      /* per configured namespace: env ref or LUA_NOREF */
static int       *em_lua_ep_env;       /* per endpoint (raw ones): env ref or LUA_NOREF */
static struct timespec em_lua_deadline;
static int        em_lua_depth;
static int        em_lua_any_nsp;      /* some namespace has a script */
static size_t     em_lua_mem;          /* bytes the state holds */

static const char *const em_lua_reserved[] = {
    "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener", NULL
};

/* ---- calling scripts ---- */

/*
 * The state's allocator. While a script runs (inside em_lua_call), growing
 * past limits.script_memory fails, which Lua turns into a "not enough
 * memory" error of that call after an emergency collection; what C code
 * pushes outside a call (sockets' objects, a packet's arguments, already
 * bounded by the other limits) is never refused, so an unprotected API call
 * cannot fail.
 */
static void *
em_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    size_t old = ptr != NULL ? osize : 0;
    void  *p;
    (void) ud;

    if (nsize == 0) {
        free(ptr);
        em_lua_mem -= old;
        return NULL;
    }
    if (nsize > old && em_lua_depth > 0
        && em_lua_mem - old + nsize > em_loop.conf->limits.script_memory) {
        return NULL;
    }
    p = realloc(ptr, nsize);
    if (p != NULL) {
        em_lua_mem = em_lua_mem - old + nsize;
    }
    return p;
}

static int
em_lua_panic(lua_State *l)
{
    em_log(EM_LOG_ERR, 0, "unprotected error in a Lua call: %s",
           lua_type(l, -1) == LUA_TSTRING ? lua_tostring(l, -1) : "(not a string)");
    return 0;       /* Lua aborts the process */
}

static void
em_lua_hook(lua_State *l, lua_Debug *ar)
{
    struct timespec now;
    (void) ar;

    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > em_lua_deadline.tv_sec
        || (now.tv_sec == em_lua_deadline.tv_sec && now.tv_nsec > em_lua_deadline.tv_nsec)) {
        luaL_error(l, "handler ran longer than %d ms", (int) em_loop.conf->limits.script_time);
    }
}

static int
em_lua_traceback(lua_State *l)
{
    const char *msg = lua_tostring(l, 1);

    if (msg == NULL) {
        msg = lua_pushfstring(l, "(error object is a %s value)", luaL_typename(l, 1));
    }
    luaL_traceback(l, l, msg, 1);
    return 1;
}

static int em_lua_call_named(int nargs, int nres, const char *what, const char *name);

/* Call the function below nargs arguments; keeps nres results on success. */
int
em_lua_call(int nargs, int nres, const char *what)
{
    return em_lua_call_named(nargs, nres, what, NULL);
}

/* The same; an error names `what` followed by `name` in quotes (when given),
 * formatted only if there is an error. */
static int
em_lua_call_named(int nargs, int nres, const char *what, const char *name)
{
    int base = lua_gettop(L) - nargs;
    int rc;

    if (em_lua_depth++ == 0) {
        unsigned ms = em_loop.conf->limits.script_time;
        clock_gettime(CLOCK_MONOTONIC, &em_lua_deadline);
        em_lua_deadline.tv_sec += ms / 1000;
        em_lua_deadline.tv_nsec += (long) (ms % 1000) * 1000000L;
        if (em_lua_deadline.tv_nsec >= 1000000000L) {
            em_lua_deadline.tv_sec++;
            em_lua_deadline.tv_nsec -= 1000000000L;
        }
    }
    lua_pushcfunction(L, em_lua_traceback);
    lua_insert(L, base);
    rc = lua_pcall(L, nargs, nres, base);
    lua_remove(L, base);
    em_lua_depth--;
    if (rc != LUA_OK) {
        if (name != NULL) {
            em_log(EM_LOG_ERR, 0, "script error in %s\"%.100s\": %s", what, name,
                   lua_tostring(L, -1));
        } else {
            em_log(EM_LOG_ERR, 0, "script error in %s: %s", what, lua_tostring(L, -1));
        }
        lua_pop(L, 1);
        return EM_ERROR;
    }
    return EM_OK;
}

/* ---- building packets from Lua arguments ---- */

/* JSON array of stack values [first, last] (plus `event` first if not NULL). */
/* With `log`, an EVENT without ack goes through em_cluster_event_pkt (an
 * offset for connection-state recovery); b / self say who receives it. */
static int
em_lua_args_pkt(em_pkt_t *pkt, em_sio_type_t type, em_str_t nsp, int64_t id, int first, int last,
                int log, const em_bcast_t *b, const em_sio_socket_t *self)
{
    em_lua_bins_t bins = { 0 };
    json_t       *arr = json_array();
    char          err[160];

    if (arr == NULL) {
        return luaL_error(L, "out of memory");
    }
    for (int i = first; i <= last; i++) {
        json_t *v = em_lua_to_json(L, i, &bins, err, sizeof(err));
        if (v == NULL) {
            json_decref(arr);
            em_lua_bins_free(&bins);
            return luaL_error(L, "argument %d: %s", i - first + 1, err);
        }
        json_array_append_new(arr, v);
    }
    if (bins.n > em_loop.conf->limits.attachments) {
        /* Clients refuse them as servers do (socket.io-parser's
         * maxAttachments): say so here rather than have them disconnect. */
        int n = (int) bins.n;
        json_decref(arr);
        em_lua_bins_free(&bins);
        return luaL_error(L, "%d binary arguments in one packet: more than limits.attachments (%d)",
                          n, (int) em_loop.conf->limits.attachments);
    }
    int rc = (log && type == EM_SIO_EVENT && id == EM_SIO_NO_ID)
                 ? em_cluster_event_pkt(pkt, nsp, arr, bins.att, bins.n, b, self)
                 : em_sio_pkt_build(pkt, type, nsp, id, arr, bins.att, bins.n);
    json_decref(arr);
    if (rc != EM_OK) {
        return luaL_error(L, "cannot encode the packet");
    }
    return 0;
}

/* ---- socket objects ---- */

em_sio_socket_t *
em_lua_check_socket(lua_State *l, int idx)
{
    em_lua_sock_box_t *box = luaL_checkudata(l, idx, EM_LUA_SOCKET_MT);

    return box->s;
}

static void
em_lua_push_socket(em_sio_socket_t *s)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->lref);
}

/*
 * Push table `field` of the socket object at index sock's user value (its
 * handler lists "_h", its pending acks "_acks"), made on first use when
 * `create`; 0 with nil pushed when absent. A socket with no handlers or
 * acks carries no empty tables.
 */
static int
em_lua_sock_table(lua_State *l, int sock, const char *field, int create)
{
    lua_getiuservalue(l, sock, 1);
    if (lua_getfield(l, -1, field) == LUA_TTABLE) {
        lua_remove(l, -2);
        return 1;
    }
    lua_pop(l, 1);
    if (!create) {
        lua_pop(l, 1);
        lua_pushnil(l);
        return 0;
    }
    lua_newtable(l);
    lua_pushvalue(l, -1);
    lua_setfield(l, -3, field);
    lua_remove(l, -2);
    return 1;
}

static int
em_lua_socket_on(lua_State *l)
{
    const char *ev = luaL_checkstring(l, 2);

    luaL_checktype(l, 3, LUA_TFUNCTION);
    em_lua_sock_table(l, 1, "_h", 1);
    em_lua_handler_add(l, ev, 3);
    lua_settop(l, 1);
    return 1;
}

/* One handler is kept as the function itself; a second makes a list. */
void
em_lua_handler_add(lua_State *l, const char *ev, int fn)
{
    int t = lua_getfield(l, -1, ev);

    if (t == LUA_TNIL) {
        lua_pop(l, 1);
        lua_pushvalue(l, fn);
        lua_setfield(l, -2, ev);
        return;
    }
    if (t != LUA_TTABLE) {
        lua_createtable(l, 2, 0);
        lua_insert(l, -2);
        lua_rawseti(l, -2, 1);
        lua_pushvalue(l, -1);
        lua_setfield(l, -3, ev);
    }
    lua_pushvalue(l, fn);
    lua_rawseti(l, -2, (lua_Integer) lua_rawlen(l, -2) + 1);
    lua_pop(l, 1);
}

lua_Integer
em_lua_handler_count(lua_State *l, int idx)
{
    return lua_isfunction(l, idx) ? 1 : lua_istable(l, idx) ? (lua_Integer) lua_rawlen(l, idx) : 0;
}

void
em_lua_handler_push(lua_State *l, int idx, lua_Integer i)
{
    if (lua_isfunction(l, idx)) {
        lua_pushvalue(l, idx);
    } else {
        lua_rawgeti(l, idx, i);
    }
}

static int
em_lua_socket_off(lua_State *l)
{
    const char *ev = luaL_checkstring(l, 2);

    if (em_lua_sock_table(l, 1, "_h", 0)) {
        lua_pushnil(l);
        lua_setfield(l, -2, ev);
    }
    lua_settop(l, 1);
    return 1;
}

static int
em_lua_socket_emit(lua_State *l)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);
    int              top = lua_gettop(l);
    int64_t          id = EM_SIO_NO_ID;
    em_pkt_t         pkt;

    luaL_checkstring(l, 2);
    if (s == NULL) {
        lua_pushboolean(l, 0);
        return 1;
    }
    if (lua_type(l, top) == LUA_TFUNCTION && top > 2) {
        if (s->nacks >= em_loop.conf->limits.pending_acks) {
            /* The client does not answer: it is closed, not grown for. */
            em_eio_session_refuse(em_sio_socket_session(s), EM_LIMIT_PENDING_ACKS,
                              "%u acks asked for and not answered (limit %u)", s->nacks,
                              em_loop.conf->limits.pending_acks);
            lua_pushboolean(l, 0);
            return 1;
        }
        s->nacks++;
        id = s->next_ack++;
        em_lua_sock_table(l, 1, "_acks", 1);
        lua_pushvalue(l, top);
        lua_rawseti(l, -2, id);
        lua_pop(l, 1);
        top--;
    }
    em_lua_args_pkt(&pkt, EM_SIO_EVENT, (em_str_t) { s->nsp->name, s->nsp->name_len }, id, 2, top,
                    1, NULL, s);
    em_sio_socket_send(s, &pkt);
    em_pkt_release(&pkt);
    lua_pushboolean(l, 1);
    return 1;
}

/* One room: over limits.rooms the client is closed (what it asked to join
 * is its doing); a name over 65,535 bytes is the script's error. */
static void
em_lua_join_one(lua_State *l, em_sio_socket_t *s, em_str_t room)
{
    int rc = em_adapter_join(s, room);

    if (rc == EM_DECLINED) {
        em_eio_session_refuse(em_sio_socket_session(s), EM_LIMIT_ROOMS,
                          "a join beyond %u rooms", em_loop.conf->limits.rooms);
    } else if (rc != EM_OK) {
        if (room.len > EM_ROOM_NAME_MAX) {
            luaL_error(l, "join: a room name of %d bytes is too long (at most %d)", (int) room.len,
                       EM_ROOM_NAME_MAX);
        }
        luaL_error(l, "join: out of memory");
    }
}

static int
em_lua_socket_join(lua_State *l)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);

    /* A socket being removed joins nothing. A join may run presence
     * handlers that disconnect the socket: look it up again each time. */
    if (s != NULL && !s->closed) {
        if (lua_istable(l, 2)) {
            for (lua_Integer i = 1; i <= (lua_Integer) lua_rawlen(l, 2); i++) {
                size_t len;
                s = em_lua_check_socket(l, 1);
                if (s == NULL || s->closed) {
                    break;
                }
                lua_rawgeti(l, 2, i);
                const char *room = luaL_checklstring(l, -1, &len);
                em_lua_join_one(l, s, (em_str_t) { room, len });
                lua_pop(l, 1);
            }
        } else {
            size_t      len;
            const char *room = luaL_checklstring(l, 2, &len);
            em_lua_join_one(l, s, (em_str_t) { room, len });
        }
    }
    lua_settop(l, 1);
    return 1;
}

static int
em_lua_socket_leave(lua_State *l)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);
    size_t           len;
    const char      *room = luaL_checklstring(l, 2, &len);

    if (s != NULL) {
        em_adapter_leave(s, (em_str_t) { room, len });
    }
    lua_settop(l, 1);
    return 1;
}

static void
em_lua_rooms_cb(const char *room, size_t len, void *arg)
{
    lua_State *l = arg;

    lua_pushlstring(l, room, len);
    lua_rawseti(l, -2, (lua_Integer) lua_rawlen(l, -2) + 1);
}

static int
em_lua_socket_rooms(lua_State *l)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);

    lua_newtable(l);
    if (s != NULL) {
        lua_pushstring(l, s->id);
        lua_rawseti(l, -2, 1);
        em_adapter_socket_rooms(s, em_lua_rooms_cb, l);
    }
    luaL_setmetatable(l, EM_LUA_ARRAY_MT);
    return 1;
}

static int
em_lua_socket_disconnect(lua_State *l)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);
    int              close_conn = lua_toboolean(l, 2);

    lua_settop(l, 1);
    if (s != NULL) {
        em_sio_socket_disconnect(s, close_conn);   /* s is gone after this */
    }
    return 1;
}

/* New broadcast operator: {_nsp = name, _skip = socket, _rooms = {}, _except = {}}. */
static void
em_lua_new_bcast(lua_State *l, int from_socket_idx)
{
    em_sio_socket_t *s = em_lua_check_socket(l, from_socket_idx);

    lua_createtable(l, 0, 4);
    if (s != NULL) {
        lua_pushlstring(l, s->nsp->name, s->nsp->name_len);
        lua_setfield(l, -2, "_nsp");
    }
    lua_pushvalue(l, from_socket_idx);
    lua_setfield(l, -2, "_skip");
    lua_newtable(l);
    lua_setfield(l, -2, "_rooms");
    lua_newtable(l);
    lua_setfield(l, -2, "_except");
    luaL_setmetatable(l, EM_LUA_BCAST_MT);
}

static int em_lua_bcast_add(lua_State *l, const char *field);

static int
em_lua_socket_to(lua_State *l)
{
    em_lua_new_bcast(l, 1);
    lua_replace(l, 1);
    return em_lua_bcast_add(l, "_rooms");
}

static int
em_lua_socket_except(lua_State *l)
{
    em_lua_new_bcast(l, 1);
    lua_replace(l, 1);
    return em_lua_bcast_add(l, "_except");
}

static const luaL_Reg em_lua_socket_methods[] = {
    { "on", em_lua_socket_on },
    { "off", em_lua_socket_off },
    { "emit", em_lua_socket_emit },
    { "join", em_lua_socket_join },
    { "leave", em_lua_socket_leave },
    { "rooms", em_lua_socket_rooms },
    { "to", em_lua_socket_to },
    { "in", em_lua_socket_to },
    { "except", em_lua_socket_except },
    { "disconnect", em_lua_socket_disconnect },
    { NULL, NULL }
};

static void em_lua_socket_lazy(lua_State *l, const char *key);

static int
em_lua_socket_index(lua_State *l)
{
    const char *key = lua_tostring(l, 2);

    if (key != NULL) {
        if (strcmp(key, "broadcast") == 0) {
            em_lua_new_bcast(l, 1);
            return 1;
        }
        if (strcmp(key, "connected") == 0) {
            em_sio_socket_t *s = em_lua_check_socket(l, 1);
            lua_pushboolean(l, s != NULL && !s->closed);
            return 1;
        }
        if (strcmp(key, "id") == 0) {
            em_lua_sock_box_t *box = lua_touserdata(l, 1);
            lua_pushstring(l, box->id);
            return 1;
        }
        if (strcmp(key, "recovered") == 0) {
            em_sio_socket_t *s = em_lua_check_socket(l, 1);
            lua_pushboolean(l, s != NULL && s->recovered);
            return 1;
        }
        if (strcmp(key, "user") == 0) {
            em_sio_socket_t *s = em_lua_check_socket(l, 1);
            if (s != NULL && s->user != NULL) {
                lua_pushstring(l, s->user);
            } else {
                lua_pushnil(l);
            }
            return 1;
        }
        lua_pushvalue(l, lua_upvalueindex(1));   /* methods */
        if (lua_getfield(l, -1, key) != LUA_TNIL) {
            return 1;
        }
        lua_pop(l, 2);
    }
    lua_getiuservalue(l, 1, 1);
    lua_pushvalue(l, 2);
    if (lua_rawget(l, -2) == LUA_TNIL && key != NULL) {
        em_lua_socket_lazy(l, key);
    }
    return 1;
}

static int
em_lua_socket_newindex(lua_State *l)
{
    const char *key = lua_tostring(l, 2);

    if (key != NULL && (strcmp(key, "id") == 0 || strcmp(key, "nsp") == 0
                        || strcmp(key, "handshake") == 0 || strcmp(key, "user") == 0
                        || strcmp(key, "recovered") == 0 || key[0] == '_')) {
        return luaL_error(l, "socket.%s is read-only", key);
    }
    lua_getiuservalue(l, 1, 1);
    lua_pushvalue(l, 2);
    lua_pushvalue(l, 3);
    lua_rawset(l, -3);
    return 0;
}

static int
em_lua_socket_tostring(lua_State *l)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);

    lua_pushfstring(l, "socket(%s)", s ? s->id : "closed");
    return 1;
}

/* ---- broadcast operators ---- */

/* A room name for to() / except(): a string no room can be too long for
 * (the broker's records carry 16-bit lengths; join refuses longer ones). */
static void
em_lua_check_room(lua_State *l, int idx, const char *field)
{
    size_t len;

    luaL_checklstring(l, idx, &len);
    if (len > EM_ROOM_NAME_MAX) {
        luaL_error(l, "%s: a room name of %d bytes is too long (at most %d)",
                   strcmp(field, "_rooms") == 0 ? "to" : "except", (int) EM_MIN(len, (size_t) INT_MAX),
                   EM_ROOM_NAME_MAX);
    }
}

static int
em_lua_bcast_add(lua_State *l, const char *field)
{
    /* Operators are immutable: copy, then add the rooms. */
    luaL_checktype(l, 1, LUA_TTABLE);
    lua_createtable(l, 0, 5);
    lua_pushnil(l);
    while (lua_next(l, 1) != 0) {
        if (lua_type(l, -2) == LUA_TSTRING
            && (strcmp(lua_tostring(l, -2), "_rooms") == 0 || strcmp(lua_tostring(l, -2), "_except") == 0)) {
            lua_newtable(l);
            for (lua_Integer i = 1; i <= (lua_Integer) lua_rawlen(l, -2); i++) {
                lua_rawgeti(l, -2, i);
                lua_rawseti(l, -2, i);
            }
            lua_replace(l, -2);
        }
        lua_pushvalue(l, -2);
        lua_insert(l, -2);
        lua_rawset(l, -4);
    }
    luaL_setmetatable(l, EM_LUA_BCAST_MT);
    int op = lua_gettop(l);
    if (lua_getfield(l, op, field) != LUA_TTABLE) {
        lua_pop(l, 1);
        lua_newtable(l);
        lua_pushvalue(l, -1);
        lua_setfield(l, op, field);
    }
    int top = op - 1;
    for (int i = 2; i <= top; i++) {
        if (lua_istable(l, i)) {
            for (lua_Integer k = 1; k <= (lua_Integer) lua_rawlen(l, i); k++) {
                lua_rawgeti(l, i, k);
                em_lua_check_room(l, -1, field);
                lua_rawseti(l, -2, (lua_Integer) lua_rawlen(l, -2) + 1);
            }
        } else {
            em_lua_check_room(l, i, field);
            lua_pushvalue(l, i);
            lua_rawseti(l, -2, (lua_Integer) lua_rawlen(l, -2) + 1);
        }
    }
    lua_pushvalue(l, op);
    return 1;
}

static int
em_lua_bcast_to(lua_State *l)
{
    return em_lua_bcast_add(l, "_rooms");
}

static int
em_lua_bcast_except(lua_State *l)
{
    return em_lua_bcast_add(l, "_except");
}

/*
 * Read a list field of the operator at idx into an array of slices. The array
 * is a userdata left on the stack (freed by the GC even if an error unwinds);
 * the strings stay alive in the operator's table.
 */
static size_t
em_lua_bcast_list(lua_State *l, int idx, const char *field, const em_str_t **out)
{
    size_t    n = 0, len = 0;
    em_str_t *arr;

    if (lua_getfield(l, idx, field) == LUA_TTABLE) {
        len = lua_rawlen(l, -1);
    }
    arr = lua_newuserdatauv(l, (len ? len : 1) * sizeof(em_str_t), 0);
    for (size_t i = 1; i <= len; i++) {
        lua_rawgeti(l, -2, (lua_Integer) i);
        arr[n].data = lua_tolstring(l, -1, &arr[n].len);
        lua_pop(l, 1);
        n += arr[n].data != NULL;
    }
    lua_remove(l, -2);      /* the field; the userdata stays */
    *out = arr;
    return n;
}

static int
em_lua_bcast_emit(lua_State *l)
{
    em_bcast_t       b = { 0 };
    em_lua_sock_box_t *skip;
    const char      *nspname;
    size_t           nsplen;
    lua_Integer      conf = -1;
    em_pkt_t         pkt;

    luaL_checktype(l, 1, LUA_TTABLE);
    luaL_checkstring(l, 2);
    if (lua_type(l, lua_gettop(l)) == LUA_TFUNCTION) {
        return luaL_error(l, "acknowledgements are not supported when broadcasting");
    }
    int nargs = lua_gettop(l);
    b.nrooms = em_lua_bcast_list(l, 1, "_rooms", &b.rooms);
    b.nexcept = em_lua_bcast_list(l, 1, "_except", &b.except);
    lua_getfield(l, 1, "_skip");
    skip = luaL_testudata(l, -1, EM_LUA_SOCKET_MT);
    lua_pop(l, 1);
    if (skip != NULL) {
        if (skip->s == NULL) {
            return 0;   /* the sender is gone */
        }
        b.skip = skip->s;
    }
    lua_getfield(l, 1, "_nsp");
    nspname = lua_tolstring(l, -1, &nsplen);
    lua_pop(l, 1);
    if (nspname == NULL) {
        lua_getfield(l, 1, "_conf");
        conf = lua_tointeger(l, -1);
        lua_pop(l, 1);
    }

    /* Encode once for the named namespace (or the configured one); the
     * Socket.IO layer delivers it here and publishes it for the others. */
    const char *encname = nspname;
    size_t      enclen = nsplen;
    if (encname == NULL) {
        if (conf < 0 || (size_t) conf >= em_loop.conf->nnsps) {
            return luaL_error(l, "not a namespace operator");
        }
        encname = em_loop.conf->nsps[conf].name;
        enclen = strlen(encname);
    }
    em_lua_args_pkt(&pkt, EM_SIO_EVENT, (em_str_t) { encname, enclen }, EM_SIO_NO_ID, 2, nargs, 1,
                    &b, NULL);
    em_sio_route((em_str_t) { encname, enclen }, nspname != NULL ? -1 : (long) conf, &b, &pkt);
    em_pkt_release(&pkt);
    return 0;
}

static int
em_lua_bcast_sockets(lua_State *l)
{
    /* nsp:sockets() -> number of sockets of this namespace in this worker */
    lua_getfield(l, 1, "_conf");
    lua_Integer conf = lua_tointeger(l, -1);
    lua_pushinteger(l, conf >= 0 ? (lua_Integer) em_sio_conf_sockets((size_t) conf) : 0);
    return 1;
}

static const luaL_Reg em_lua_bcast_methods[] = {
    { "to", em_lua_bcast_to },
    { "in", em_lua_bcast_to },
    { "except", em_lua_bcast_except },
    { "emit", em_lua_bcast_emit },
    { "count", em_lua_bcast_sockets },
    { NULL, NULL }
};

/* ---- raw Engine.IO connections ---- */

static em_lua_conn_box_t *
em_lua_check_conn(lua_State *l)
{
    return luaL_checkudata(l, 1, EM_LUA_CONN_MT);
}

static int
em_lua_conn_on(lua_State *l)
{
    em_lua_check_conn(l);
    const char *ev = luaL_checkstring(l, 2);
    luaL_checktype(l, 3, LUA_TFUNCTION);
    lua_getiuservalue(l, 1, 1);
    lua_getfield(l, -1, "_h");
    lua_pushvalue(l, 3);
    lua_setfield(l, -2, ev);
    lua_settop(l, 1);
    return 1;
}

static int
em_lua_conn_send(lua_State *l)
{
    em_lua_conn_box_t *box = em_lua_check_conn(l);
    size_t             len;
    const char        *data;
    em_buf_t          *b;

    if ((data = em_lua_to_buffer(l, 2, &len)) != NULL) {
        b = em_buf_copy(data, len, 1);
    } else {
        data = luaL_checklstring(l, 2, &len);
        b = em_buf_new(len + 1);
        if (b != NULL) {
            b->data[0] = '4';
            memcpy(b->data + 1, data, len);
            b->len = len + 1;
        }
    }
    if (b == NULL) {
        return luaL_error(l, "out of memory");
    }
    if (box->s != NULL) {
        em_eio_session_send(box->s, b);
    }
    em_buf_unref(b);
    lua_settop(l, 1);
    return 1;
}

static int
em_lua_conn_close(lua_State *l)
{
    em_lua_conn_box_t *box = em_lua_check_conn(l);

    if (box->s != NULL) {
        em_eio_session_close(box->s, "forced close");
    }
    return 0;
}

static int
em_lua_conn_index(lua_State *l)
{
    em_lua_conn_box_t *box = em_lua_check_conn(l);
    const char        *key = lua_tostring(l, 2);

    if (key != NULL) {
        if (strcmp(key, "on") == 0) {
            lua_pushcfunction(l, em_lua_conn_on);
            return 1;
        }
        if (strcmp(key, "send") == 0) {
            lua_pushcfunction(l, em_lua_conn_send);
            return 1;
        }
        if (strcmp(key, "close") == 0) {
            lua_pushcfunction(l, em_lua_conn_close);
            return 1;
        }
        if (strcmp(key, "transport") == 0) {
            lua_pushstring(l, box->s == NULL ? "closed"
                              : box->s->transport == EM_TRANSPORT_WEBSOCKET ? "websocket" : "polling");
            return 1;
        }
    }
    lua_getiuservalue(l, 1, 1);
    lua_pushvalue(l, 2);
    lua_rawget(l, -2);
    return 1;
}

void
em_lua_raw_open(em_eio_session_t *s)
{
    size_t             ep = (size_t) (s->endpoint - em_loop.conf->endpoints);
    em_lua_conn_box_t *box;

    if (L == NULL || em_lua_ep_env[ep] == LUA_NOREF) {
        return;
    }
    box = lua_newuserdatauv(L, sizeof(*box), 1);
    box->s = s;
    luaL_setmetatable(L, EM_LUA_CONN_MT);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, s->sid);
    lua_setfield(L, -2, "id");
    lua_newtable(L);
    lua_setfield(L, -2, "_h");
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    box->lref = luaL_ref(L, LUA_REGISTRYINDEX);
    s->upper = box;

    lua_rawgeti(L, LUA_REGISTRYINDEX, em_lua_ep_env[ep]);
    if (lua_getfield(L, -1, "on_open") != LUA_TFUNCTION) {
        lua_pop(L, 3);
        return;
    }
    lua_remove(L, -2);      /* env */
    lua_insert(L, -2);      /* on_open, conn */
    em_lua_call(1, 0, "on_open");
}

/* Push the handler `ev` of a raw connection; 0 (nothing pushed) if none. */
static int
em_lua_push_conn_handler(em_lua_conn_box_t *box, const char *ev)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, box->lref);
    lua_getiuservalue(L, -1, 1);
    lua_getfield(L, -1, "_h");
    if (lua_getfield(L, -1, ev) != LUA_TFUNCTION) {
        lua_pop(L, 4);
        return 0;
    }
    lua_replace(L, -4);
    lua_pop(L, 2);
    return 1;
}

void
em_lua_raw_message(em_eio_session_t *s, const char *data, size_t len, int binary)
{
    if (s->upper == NULL || !em_lua_push_conn_handler(s->upper, "message")) {
        return;
    }
    if (binary) {
        em_lua_push_buffer(L, data, len);
    } else {
        lua_pushlstring(L, data, len);
    }
    em_lua_call(1, 0, "message handler");
}

void
em_lua_raw_close(em_eio_session_t *s, const char *reason)
{
    em_lua_conn_box_t *box = s->upper;

    if (box == NULL) {
        return;
    }
    if (em_lua_push_conn_handler(box, "close")) {
        lua_pushstring(L, reason);
        em_lua_call(1, 0, "close handler");
    }
    box->s = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, box->lref);
    s->upper = NULL;
}

/* ---- Socket.IO hooks ---- */

/* A raw endpoint's script reads no handshake. */
static int
em_lua_raw_keeps_handshake(void)
{
    return 0;
}

int
em_lua_has_script(size_t conf_index)
{
    return L != NULL && em_lua_nsp_env[conf_index] != LUA_NOREF;
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
    em_eio_session_t  *es = em_sio_socket_session(s);
    const char    *addr = es->handshake ? es->handshake : "";
    size_t         alen = strlen(addr) + 1;
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
    if (es->handshake != NULL
        && em_http_parse(es->handshake + alen, es->handshake_len - alen, &req) == EM_OK) {
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
static void
em_lua_socket_lazy(lua_State *l, const char *key)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);
    int              uv = lua_gettop(l) - 1;

    if (strcmp(key, "handshake") != 0 && strcmp(key, "params") != 0 && strcmp(key, "data") != 0) {
        return;
    }
    if (strcmp(key, "data") != 0 && s == NULL) {
        return;     /* gone: its handshake cannot be read any more */
    }
    lua_pop(l, 1);
    if (key[0] == 'h') {
        em_lua_push_handshake(l, s, uv);
    } else if (key[0] == 'p') {
        em_lua_push_params(l, s);
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
    int                base = lua_gettop(L);
    int                rc = EM_OK;

    *reject = NULL;
    box = lua_newuserdatauv(L, sizeof(*box), 1);
    box->s = s;
    memcpy(box->id, s->id, sizeof(box->id));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    box->issued = (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
    luaL_setmetatable(L, EM_LUA_SOCKET_MT);
    /* handshake, params and data are made when a script first reads them
     * (em_lua_socket_lazy); until then only the auth object is kept. */
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, s->nsp->name, s->nsp->name_len);
    lua_setfield(L, -2, "nsp");
    if (json_object_size(auth) > 0 && em_lua_push_json(L, auth, NULL, 0) == EM_OK) {
        lua_setfield(L, -2, "_auth");
    }
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    s->lref = luaL_ref(L, LUA_REGISTRYINDEX);

    lua_rawgeti(L, LUA_REGISTRYINDEX, env);
    if (lua_getfield(L, -1, "on_connect") != LUA_TFUNCTION) {
        lua_settop(L, base);
        return EM_OK;
    }
    lua_remove(L, -2);          /* env */
    lua_insert(L, -2);          /* on_connect, socket */
    if (em_lua_call(1, 3, "on_connect") != EM_OK) {
        *reject = json_pack("{s:s}", "message", "Internal server error");
        rc = EM_DECLINED;
    } else if (lua_type(L, -3) == LUA_TBOOLEAN && !lua_toboolean(L, -3)) {
        char err[160];
        *reject = json_object();
        json_object_set_new(*reject, "message",
                            json_string(lua_isstring(L, -2) ? lua_tostring(L, -2) : "Not authorized"));
        if (!lua_isnil(L, -1)) {
            json_t *data = em_lua_to_json(L, -1, NULL, err, sizeof(err));
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
    lua_settop(L, base);
    return rc;
}

/* Push the elements [from..] of a JSON array; returns the count or -1. */
static int
em_lua_push_args(json_t *args, size_t from, const em_str_t *atts, size_t natt)
{
    int n = 0;

    /* The arguments, plus the ack function, a handler and the traceback of
     * em_lua_event(); the count is bounded by limits.event_args. */
    if (json_array_size(args) > (size_t) INT_MAX - 16 || !lua_checkstack(L, (int) json_array_size(args) + 8)) {
        return -1;
    }
    for (size_t i = from; i < json_array_size(args); i++, n++) {
        if (em_lua_push_json(L, json_array_get(args, i), atts, natt) != EM_OK) {
            lua_pop(L, n);
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
    int         base = lua_gettop(L);
    int         nargs;

    for (size_t i = 0; em_lua_reserved[i] != NULL; i++) {
        if (strcmp(ev, em_lua_reserved[i]) == 0) {
            return EM_OK;   /* clients may not raise the server's own events */
        }
    }
    em_lua_push_socket(s);
    int sock = lua_gettop(L);
    if (!em_lua_sock_table(L, sock, "_h", 0)) {
        lua_settop(L, base);
        return EM_OK;
    }
    lua_getfield(L, -1, ev);
    int list = lua_gettop(L);
    lua_Integer nh = em_lua_handler_count(L, list);
    if (nh == 0) {
        lua_settop(L, base);
        return EM_OK;
    }
    nargs = em_lua_push_args(args, 1, atts, natt);
    if (nargs < 0) {
        lua_settop(L, base);
        return EM_ERROR;
    }
    int first = list + 1;
    if (id != EM_SIO_NO_ID) {
        lua_pushvalue(L, sock);
        lua_pushinteger(L, id);
        lua_pushboolean(L, 0);
        lua_pushcclosure(L, em_lua_ack_fn, 3);
        nargs++;
    }
    for (lua_Integer h = 1; h <= nh; h++) {
        /* Each handler gets its own copies: room for them, the function
         * and the traceback, every time. */
        if (!lua_checkstack(L, nargs + 4)) {
            lua_settop(L, base);
            return EM_ERROR;
        }
        em_lua_handler_push(L, list, h);
        for (int i = 0; i < nargs; i++) {
            lua_pushvalue(L, first + i);
        }
        em_lua_call_named(nargs, 0, "handler of ", ev);
    }
    lua_settop(L, base);
    return EM_OK;
}

int
em_lua_ack(em_sio_socket_t *s, int64_t id, json_t *args, const em_str_t *atts, size_t natt)
{
    int base = lua_gettop(L);

    em_lua_push_socket(s);
    if (!em_lua_sock_table(L, lua_gettop(L), "_acks", 0)) {
        lua_settop(L, base);
        return EM_OK;   /* it asked for none */
    }
    int acks = lua_gettop(L);
    if (lua_rawgeti(L, acks, id) != LUA_TFUNCTION) {
        lua_settop(L, base);
        return EM_OK;   /* unknown or already answered */
    }
    lua_pushnil(L);
    lua_rawseti(L, acks, id);
    if (s->nacks > 0) {
        s->nacks--;
    }
    int nargs = em_lua_push_args(args, 0, atts, natt);
    if (nargs < 0) {
        lua_settop(L, base);
        return EM_ERROR;
    }
    em_lua_call(nargs, 0, "ack callback");
    lua_settop(L, base);
    return EM_OK;
}

void
em_lua_socket_event(em_sio_socket_t *s, const char *event, const char *reason)
{
    int base = lua_gettop(L);

    em_lua_push_socket(s);
    if (em_lua_sock_table(L, lua_gettop(L), "_h", 0) && lua_getfield(L, -1, event) != LUA_TNIL) {
        int         list = lua_gettop(L);
        lua_Integer nh = em_lua_handler_count(L, list);
        for (lua_Integer h = 1; h <= nh; h++) {
            em_lua_handler_push(L, list, h);
            lua_pushstring(L, reason);
            em_lua_call(1, 0, event);
        }
    }
    lua_settop(L, base);
}

void
em_lua_socket_release(em_sio_socket_t *s)
{
    em_lua_sock_box_t *box;

    em_lua_push_socket(s);
    box = lua_touserdata(L, -1);
    if (box != NULL) {
        box->s = NULL;
    }
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, s->lref);
    s->lref = LUA_NOREF;
}

/* ---- the emitd table ---- */

static int
em_lua_buffer_new(lua_State *l)
{
    size_t      len;
    const char *data = luaL_optlstring(l, 1, "", &len);

    em_lua_push_buffer(l, data, len);
    return 1;
}

static int
em_lua_is_buffer(lua_State *l)
{
    size_t len;

    lua_pushboolean(l, em_lua_to_buffer(l, 1, &len) != NULL);
    return 1;
}

static int
em_lua_buffer_tostring(lua_State *l)
{
    size_t      len;
    const char *data = em_lua_to_buffer(l, 1, &len);

    if (data == NULL) {
        return luaL_argerror(l, 1, "buffer expected");
    }
    lua_pushlstring(l, data, len);
    return 1;
}

static int
em_lua_buffer_len(lua_State *l)
{
    size_t len = 0;

    em_lua_to_buffer(l, 1, &len);
    lua_pushinteger(l, (lua_Integer) len);
    return 1;
}

static int
em_lua_buffer_eq(lua_State *l)
{
    size_t      la, lb;
    const char *a = em_lua_to_buffer(l, 1, &la), *b = em_lua_to_buffer(l, 2, &lb);

    lua_pushboolean(l, a && b && la == lb && memcmp(a, b, la) == 0);
    return 1;
}

static int
em_lua_mark(lua_State *l, const char *mt)
{
    if (lua_isnoneornil(l, 1)) {
        lua_newtable(l);
    }
    luaL_checktype(l, 1, LUA_TTABLE);
    lua_settop(l, 1);
    if (mt != NULL) {
        luaL_setmetatable(l, mt);
    } else {
        lua_pushnil(l);
        lua_setmetatable(l, 1);
    }
    return 1;
}

static int em_lua_array(lua_State *l) { return em_lua_mark(l, EM_LUA_ARRAY_MT); }
static int em_lua_object(lua_State *l) { return em_lua_mark(l, EM_LUA_OBJECT_MT); }

static int
em_lua_log(lua_State *l)
{
    const char *level = luaL_checkstring(l, 1);
    const char *msg = luaL_checkstring(l, 2);
    int         lv = em_log_level_parse(level);

    em_log(lv < 0 ? EM_LOG_INFO : (em_log_level_t) lv, 0, "script: %s", msg);
    return 0;
}

static int
em_lua_print(lua_State *l)
{
    luaL_Buffer b;
    int         n = lua_gettop(l);

    luaL_buffinit(l, &b);
    for (int i = 1; i <= n; i++) {
        luaL_tolstring(l, i, NULL);
        luaL_addvalue(&b);
        if (i < n) {
            luaL_addchar(&b, '\t');
        }
    }
    luaL_pushresult(&b);
    em_log(EM_LOG_INFO, 0, "script: %s", lua_tostring(l, -1));
    return 0;
}

static int
em_lua_json_encode(lua_State *l)
{
    char    err[160];
    json_t *v = em_lua_to_json(l, 1, NULL, err, sizeof(err));
    char   *text;

    if (v == NULL) {
        return luaL_error(l, "json_encode: %s", err);
    }
    text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (text == NULL) {
        return luaL_error(l, "json_encode: cannot encode");
    }
    lua_pushstring(l, text);
    free(text);
    return 1;
}

static int
em_lua_json_decode(lua_State *l)
{
    size_t      len;
    const char *s = luaL_checklstring(l, 1, &len);
    json_t     *v = em_sio_json_parse(s, len);
    int         rc;

    if (v == NULL) {
        lua_pushnil(l);
        lua_pushstring(l, "invalid JSON");
        return 2;
    }
    rc = em_lua_push_json(l, v, NULL, 0);
    json_decref(v);
    if (rc != EM_OK) {
        lua_pushnil(l);
        lua_pushstring(l, "JSON nested too deeply");
        return 2;
    }
    return 1;
}

static int
em_lua_now(lua_State *l)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushinteger(l, (lua_Integer) ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    return 1;
}

/* emitd.broker_counts() -> {received = n, published = n}: this worker's
 * records from and to the broker (for monitoring and tests). */
static int
em_lua_broker_counts(lua_State *l)
{
    uint64_t received, published;

    em_bus_counts(&received, &published);
    lua_createtable(l, 0, 2);
    lua_pushinteger(l, (lua_Integer) received);
    lua_setfield(l, -2, "received");
    lua_pushinteger(l, (lua_Integer) published);
    lua_setfield(l, -2, "published");
    return 1;
}

static const luaL_Reg em_lua_emitd_fns[] = {
    { "broker_counts", em_lua_broker_counts },
    { "buffer", em_lua_buffer_new },
    { "is_buffer", em_lua_is_buffer },
    { "array", em_lua_array },
    { "object", em_lua_object },
    { "log", em_lua_log },
    { "json_encode", em_lua_json_encode },
    { "json_decode", em_lua_json_decode },
    { "now", em_lua_now },
    { NULL, NULL }
};

static void
em_lua_metatables(void)
{
    /* socket */
    luaL_newmetatable(L, EM_LUA_SOCKET_MT);
    luaL_newlib(L, em_lua_socket_methods);
    luaL_setfuncs(L, em_lua_cluster_socket_methods, 0);
    lua_pushcclosure(L, em_lua_socket_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, em_lua_socket_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, em_lua_socket_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    /* raw conn */
    luaL_newmetatable(L, EM_LUA_CONN_MT);
    lua_pushcfunction(L, em_lua_conn_index);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    /* broadcast operator */
    luaL_newmetatable(L, EM_LUA_BCAST_MT);
    luaL_newlib(L, em_lua_bcast_methods);
    luaL_setfuncs(L, em_lua_cluster_nsp_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    /* buffer */
    luaL_newmetatable(L, EM_LUA_BUFFER_MT);
    lua_newtable(L);
    lua_pushcfunction(L, em_lua_buffer_tostring);
    lua_setfield(L, -2, "tostring");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, em_lua_buffer_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, em_lua_buffer_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, em_lua_buffer_eq);
    lua_setfield(L, -2, "__eq");
    lua_pop(L, 1);
    /* JSON shape markers */
    luaL_newmetatable(L, EM_LUA_ARRAY_MT);
    lua_pop(L, 1);
    luaL_newmetatable(L, EM_LUA_OBJECT_MT);
    lua_pop(L, 1);
}

/* Run a script in a fresh environment; returns its env ref or LUA_NOREF. */
static int
em_lua_load(const char *path, const char *nsp_name, lua_Integer conf_index)
{
    lua_newtable(L);                               /* env */
    int env = lua_gettop(L);
    lua_newtable(L);
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, env);
    if (nsp_name != NULL) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, nsp_name);
        lua_setfield(L, -2, "name");
        lua_pushinteger(L, conf_index);
        lua_setfield(L, -2, "_conf");
        luaL_setmetatable(L, EM_LUA_BCAST_MT);
        lua_setfield(L, env, "nsp");
    }
    if (luaL_loadfilex(L, path, "t") != LUA_OK) {
        em_log(EM_LOG_ERR, 0, "cannot load script: %s", lua_tostring(L, -1));
        lua_settop(L, env - 1);
        return LUA_NOREF;
    }
    lua_pushvalue(L, env);
    lua_setupvalue(L, -2, 1);                      /* _ENV */
    if (em_lua_call(0, 0, path) != EM_OK) {
        lua_settop(L, env - 1);
        return LUA_NOREF;
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);        /* pops env */
}

lua_State *
em_lua_state(void)
{
    return L;
}

const em_eio_upper_t em_lua_raw_eio_upper = {
    em_lua_raw_open, em_lua_raw_message, em_lua_raw_close, em_lua_raw_keeps_handshake
};

static const em_sio_app_t em_lua_sio_app = {
    .has_script = em_lua_has_script,
    .nsp_scripts = em_lua_nsp_scripts,
    .connect = em_lua_connect,
    .event = em_lua_event,
    .ack = em_lua_ack,
    .socket_event = em_lua_socket_event,
    .release = em_lua_socket_release,
    .presence = em_lua_presence_event,
};

int
em_lua_init(void)
{
    const em_conf_t *conf = em_loop.conf;
    int              need = 0;

    em_sio_set_app(&em_lua_sio_app);

    for (size_t i = 0; i < conf->nnsps; i++) {
        need |= conf->nsps[i].script != NULL;
    }
    for (size_t i = 0; i < conf->nendpoints; i++) {
        need |= conf->endpoints[i].raw;
    }
    if (!need) {
        return EM_OK;
    }
    em_lua_mem = 0;
    L = lua_newstate(em_lua_alloc, NULL);
    if (L == NULL) {
        em_log(EM_LOG_ERR, 0, "lua_newstate() failed");
        return EM_ERROR;
    }
    lua_atpanic(L, em_lua_panic);
    luaL_openlibs(L);
    /* A script must not end or block its worker: no os.exit, os.execute,
     * io.popen, io.read from stdin. */
    lua_getglobal(L, "os");
    lua_pushnil(L);
    lua_setfield(L, -2, "exit");
    lua_pushnil(L);
    lua_setfield(L, -2, "execute");
    lua_pop(L, 1);
    lua_getglobal(L, "io");
    lua_pushnil(L);
    lua_setfield(L, -2, "popen");
    lua_pushnil(L);
    lua_setfield(L, -2, "read");
    lua_pushnil(L);
    lua_setfield(L, -2, "stdin");
    lua_pop(L, 1);
    lua_sethook(L, em_lua_hook, LUA_MASKCOUNT, 100000);
    em_lua_metatables();

    lua_pushcfunction(L, em_lua_print);
    lua_setglobal(L, "print");
    luaL_newlib(L, em_lua_emitd_fns);
    luaL_setfuncs(L, em_lua_cluster_emitd_fns, 0);
    lua_pushlightuserdata(L, &em_lua_null_sentinel);
    lua_setfield(L, -2, "null");
    lua_pushinteger(L, em_loop.slot + 1);
    lua_setfield(L, -2, "worker");
    lua_pushstring(L, EM_VERSION);
    lua_setfield(L, -2, "version");
    lua_setglobal(L, "emitd");

    em_lua_nsp_env = calloc(conf->nnsps, sizeof(int));
    em_lua_ep_env = calloc(conf->nendpoints, sizeof(int));
    if (em_lua_nsp_env == NULL || em_lua_ep_env == NULL) {
        return EM_ERROR;
    }
    for (size_t i = 0; i < conf->nnsps; i++) {
        em_lua_nsp_env[i] = LUA_NOREF;
        if (conf->nsps[i].script != NULL) {
            em_lua_nsp_env[i] = em_lua_load(conf->nsps[i].script, conf->nsps[i].name, (lua_Integer) i);
            if (em_lua_nsp_env[i] == LUA_NOREF) {
                return EM_ERROR;
            }
            em_lua_any_nsp = 1;
        }
    }
    for (size_t i = 0; i < conf->nendpoints; i++) {
        em_lua_ep_env[i] = LUA_NOREF;
        if (conf->endpoints[i].raw) {
            em_lua_ep_env[i] = em_lua_load(conf->endpoints[i].script, NULL, -1);
            if (em_lua_ep_env[i] == LUA_NOREF) {
                return EM_ERROR;
            }
        }
    }
    return EM_OK;
}

void
em_lua_shutdown(void)
{
    if (L != NULL) {
        lua_close(L);
        L = NULL;
    }
    free(em_lua_nsp_env);
    free(em_lua_ep_env);
    em_lua_nsp_env = em_lua_ep_env = NULL;
    em_lua_any_nsp = 0;
}

int
em_lua_check_scripts(const em_conf_t *conf, int run, char *err, size_t errlen)
{
    lua_State *l;
    int        rc = EM_OK;

    if (run) {
        /* Load them as a worker would, top-level code included, against a
         * private empty state (the emitd.* state functions work). */
        const em_conf_t *saved = em_loop.conf;
        em_loop.conf = conf;
        if (em_cluster_init_private() != EM_OK) {
            em_loop.conf = saved;
            snprintf(err, errlen, "cannot make a state segment to run the scripts in");
            return EM_ERROR;
        }
        rc = em_lua_init();
        em_lua_shutdown();
        em_cluster_shutdown();
        em_loop.conf = saved;
        if (rc != EM_OK) {
            snprintf(err, errlen, "the handler scripts failed to load (see the error above)");
        }
        return rc;
    }
    l = luaL_newstate();

    if (l == NULL) {
        snprintf(err, errlen, "luaL_newstate() failed");
        return EM_ERROR;
    }
    for (size_t i = 0; i < conf->nnsps + conf->nendpoints && rc == EM_OK; i++) {
        const char *path = (i < conf->nnsps) ? conf->nsps[i].script
                                             : conf->endpoints[i - conf->nnsps].script;
        if (path != NULL && luaL_loadfilex(l, path, "t") != LUA_OK) {
            snprintf(err, errlen, "%s", lua_tostring(l, -1));
            rc = EM_ERROR;
        }
        lua_settop(l, 0);
    }
    lua_close(l);
    return rc;
}
