/*
 * em_lua_nsp.c - the namespace and broadcast operators of the Lua API: tables
 * {_conf|_nsp, _rooms, _except, _skip} with to/in/except/emit/sockets, as
 * Socket.IO's BroadcastOperator; the routing itself is em_sio_route().
 * Presence in the cluster-wide state: presence, online, users,
 * presence_stats, set_status, room_online, room_size/size, on_presence, and
 * the presence changes that run the on_presence handlers.
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
#include "em_jwt.h"
#include "em_log.h"
#include "em_loop.h"
#include "em_lua.h"
#include "em_lua_int.h"
#include "em_luajson.h"
#include "em_rreq.h"
#include "em_socketio.h"

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

int
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

/* ---- presence (the cluster-wide state) ---- */

static const char *const em_lua_status_names[] = { "offline", "online", "away", "busy" };

#define EM_LUA_PRESENCE_KEY "emitd.presence"

static int em_lua_fire_status(lua_State *l, lua_Integer conf, em_str_t nsp, em_str_t user, int old);

static int
em_lua_status_parse(const char *s)
{
    for (int i = EM_ST_STATUS_ONLINE; i <= EM_ST_STATUS_BUSY; i++) {
        if (strcmp(s, em_lua_status_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* The namespace of a namespace object (nsp, nsp:to(...)): its configured
 * name, or the socket's for a parameterised instance. */
static em_str_t
em_lua_nsp_name(lua_State *l, int idx, lua_Integer *conf)
{
    em_str_t n = { NULL, 0 };

    luaL_checktype(l, idx, LUA_TTABLE);
    lua_getfield(l, idx, "_nsp");
    n.data = lua_tolstring(l, -1, &n.len);
    lua_pop(l, 1);
    lua_getfield(l, idx, "_conf");
    *conf = lua_isinteger(l, -1) ? lua_tointeger(l, -1) : -1;
    lua_pop(l, 1);
    if (n.data == NULL && *conf >= 0 && (size_t) *conf < em_loop.conf->nnsps) {
        n.data = em_loop.conf->nsps[*conf].name;      /* its name inside emitd (prefixed) */
        n.len = strlen(n.data);
    }
    if (n.data == NULL) {
        lua_getfield(l, idx, "name");
        n.data = lua_tolstring(l, -1, &n.len);
        lua_pop(l, 1);
    }
    if (n.data == NULL) {
        luaL_error(l, "not a namespace object");
    }
    return n;
}

static void
em_lua_push_presence(lua_State *l, const em_presence_t *p)
{
    json_t *info;

    lua_createtable(l, 0, 7);
    lua_pushlstring(l, p->user, p->user_len);
    lua_setfield(l, -2, "userId");
    lua_pushstring(l, em_lua_status_names[p->status & 3]);
    lua_setfield(l, -2, "status");
    lua_pushinteger(l, p->nconn);
    lua_setfield(l, -2, "connections");
    lua_pushinteger(l, p->connected_at);
    lua_setfield(l, -2, "connectedAt");
    lua_pushinteger(l, p->last_seen);
    lua_setfield(l, -2, "lastSeen");
    info = p->info_len ? json_loadb(p->info, p->info_len, JSON_DECODE_ANY, NULL) : NULL;
    if (info == NULL || em_lua_push_json(l, info, NULL, 0) != EM_OK) {
        lua_newtable(l);
    }
    json_decref(info);
    lua_setfield(l, -2, "info");
}

static void
em_lua_presence_collect(const em_presence_t *p, void *arg)
{
    lua_State *l = arg;

    em_lua_push_presence(l, p);
    lua_rawseti(l, -2, (lua_Integer) lua_rawlen(l, -2) + 1);
}

/* Set a user's status (online, away, busy) and tell the on_presence
 * "status" handlers. */
int
em_lua_set_status(lua_State *l, lua_Integer conf, em_str_t nsp, em_str_t user, const char *st)
{
    int status = em_lua_status_parse(st), old = 0;

    if (status < 0) {
        lua_pushboolean(l, 0);
        lua_pushliteral(l, "status must be online, away or busy");
        return 2;
    }
    if (em_presence_set_status(&em_cluster, nsp, user, status, em_state_now(), &old) != EM_OK) {
        lua_pushboolean(l, 0);
        lua_pushliteral(l, "user is not online");
        return 2;
    }
    if (old != status) {
        em_lua_fire_status(l, conf, nsp, user, old);
    }
    lua_pushboolean(l, 1);
    return 1;
}

/* nsp:presence(user) -> record | nil */
static int
em_lua_nsp_presence(lua_State *l)
{
    lua_Integer   conf;
    em_str_t      nsp = em_lua_nsp_name(l, 1, &conf), user;
    em_presence_t p;

    user.data = luaL_checklstring(l, 2, &user.len);
    if (em_presence_get(&em_cluster, nsp, user, &p) != EM_OK) {
        lua_pushnil(l);
        return 1;
    }
    em_lua_push_presence(l, &p);
    return 1;
}

/* nsp:online() -> array of online users; nsp:users() -> every known user */
static int
em_lua_nsp_list(lua_State *l, int online_only)
{
    lua_Integer conf;
    em_str_t    nsp = em_lua_nsp_name(l, 1, &conf);

    em_lua_new_array(l);
    em_presence_each(&em_cluster, nsp, online_only, em_lua_presence_collect, l);
    return 1;
}

static int
em_lua_nsp_online(lua_State *l)
{
    return em_lua_nsp_list(l, 1);
}

static int
em_lua_nsp_users(lua_State *l)
{
    return em_lua_nsp_list(l, 0);
}

/* nsp:presence_stats() -> {totalUsers, onlineUsers, awayUsers, busyUsers, offlineUsers} */
static int
em_lua_nsp_presence_stats(lua_State *l)
{
    lua_Integer conf;
    em_str_t    nsp = em_lua_nsp_name(l, 1, &conf);
    uint64_t    c[4];

    em_presence_stats(&em_cluster, nsp, c);
    lua_createtable(l, 0, 5);
    lua_pushinteger(l, (lua_Integer) (c[0] + c[1] + c[2] + c[3]));
    lua_setfield(l, -2, "totalUsers");
    lua_pushinteger(l, (lua_Integer) c[EM_ST_STATUS_ONLINE]);
    lua_setfield(l, -2, "onlineUsers");
    lua_pushinteger(l, (lua_Integer) c[EM_ST_STATUS_AWAY]);
    lua_setfield(l, -2, "awayUsers");
    lua_pushinteger(l, (lua_Integer) c[EM_ST_STATUS_BUSY]);
    lua_setfield(l, -2, "busyUsers");
    lua_pushinteger(l, (lua_Integer) c[EM_ST_STATUS_OFFLINE]);
    lua_setfield(l, -2, "offlineUsers");
    return 1;
}

/* nsp:set_status(user, status) -> true | false, message */
static int
em_lua_nsp_set_status(lua_State *l)
{
    lua_Integer conf;
    em_str_t    nsp = em_lua_nsp_name(l, 1, &conf), user;

    user.data = luaL_checklstring(l, 2, &user.len);
    return em_lua_set_status(l, conf, nsp, user, luaL_checkstring(l, 3));
}

/* nsp:room_online(room) -> array of the online users with a socket in it */
static int
em_lua_nsp_room_online(lua_State *l)
{
    lua_Integer conf;
    em_str_t    nsp = em_lua_nsp_name(l, 1, &conf), room;

    room.data = luaL_checklstring(l, 2, &room.len);
    em_lua_new_array(l);
    em_room_users(&em_cluster, nsp, room, em_lua_presence_collect, l);
    return 1;
}

/* nsp:room_size(room) -> sockets in it on every worker; nsp:size() -> the
 * namespace's sockets on every worker */
static int
em_lua_nsp_room_size(lua_State *l)
{
    lua_Integer conf;
    em_str_t    nsp = em_lua_nsp_name(l, 1, &conf), room = { "", 0 };

    if (!lua_isnoneornil(l, 2)) {
        room.data = luaL_checklstring(l, 2, &room.len);
    }
    lua_pushinteger(l, em_room_size(&em_cluster, nsp, room));
    return 1;
}

/* The answers to nsp:server_emit(..., fn): fn(err, responses). */
static void
em_lua_nsp_server_answers(void *arg, const char *err, json_t *responses)
{
    lua_State *l = em_lua_state();
    int        ref = (int) (intptr_t) arg, top;

    if (l == NULL) {
        return;
    }
    top = lua_gettop(l);
    lua_rawgeti(l, LUA_REGISTRYINDEX, ref);
    luaL_unref(l, LUA_REGISTRYINDEX, ref);
    if (err != NULL) {
        lua_pushstring(l, err);
    } else {
        lua_pushnil(l);
    }
    if (em_lua_push_json(l, responses, NULL, 0) != EM_OK) {
        em_lua_new_array(l);
    }
    em_lua_call(2, 0, "the answers to nsp:server_emit");
    lua_settop(l, top);
}

/* nsp:server_emit(event, ... [, fn]) -> true when handed to Redis for the
 * other servers of the namespace (Node servers, other emitd hosts), false
 * without redis: Socket.IO's io.serverSideEmit(); with fn last, its
 * serverSideEmitWithAck: fn(err, responses) once every other server
 * answered (err nil), or after 5 s with what came (err "timeout reached: ..."). */
static int
em_lua_nsp_server_emit(lua_State *l)
{
    lua_Integer conf;
    em_str_t    nsp = em_lua_nsp_name(l, 1, &conf), ev;
    char        err[128];
    json_t     *data, *v;
    int         n = lua_gettop(l), rc, fn = 0;

    ev.data = luaL_checklstring(l, 2, &ev.len);
    if (ev.len > em_loop.conf->limits.event_name) {
        return luaL_error(l, "server_emit: an event name of more than %d bytes",
                          (int) em_loop.conf->limits.event_name);
    }
    if (n > 2 && lua_type(l, n) == LUA_TFUNCTION) {
        fn = n--;
    }
    if (n - 2 > (int) em_loop.conf->limits.event_args) {
        return luaL_error(l, "server_emit: more than %d arguments", (int) em_loop.conf->limits.event_args);
    }
    if ((data = json_array()) == NULL || json_array_append_new(data, json_stringn(ev.data, ev.len)) != 0) {
        json_decref(data);
        return luaL_error(l, "server_emit: out of memory");
    }
    for (int i = 3; i <= n; i++) {
        if ((v = em_lua_to_json(l, i, NULL, err, sizeof(err))) == NULL
            || json_array_append_new(data, v) != 0) {
            json_decref(data);
            return luaL_error(l, "server_emit: argument %d: %s", i - 2,
                              v == NULL ? err : "out of memory");
        }
    }
    if (fn) {
        lua_pushvalue(l, fn);
        int ref = luaL_ref(l, LUA_REGISTRYINDEX);
        rc = em_rreq_server_ask(nsp.data, nsp.len, data, em_lua_nsp_server_answers,
                                (void *) (intptr_t) ref);
        if (rc != EM_OK) {
            luaL_unref(l, LUA_REGISTRYINDEX, ref);
        }
    } else {
        rc = em_rreq_server_emit(nsp.data, nsp.len, data);
    }
    json_decref(data);
    if (rc == EM_ERROR) {
        return luaL_error(l, "server_emit: the event cannot be sent (over redis.max_message?)");
    }
    lua_pushboolean(l, rc == EM_OK);
    return 1;
}

/* nsp:on_presence(event, fn): "online", "offline", "status", "room_online",
 * "room_offline". Each change runs the handlers once, on one worker. */
static int
em_lua_nsp_on_presence(lua_State *l)
{
    lua_Integer conf;
    const char *ev;

    em_lua_nsp_name(l, 1, &conf);
    ev = luaL_checkstring(l, 2);
    luaL_checktype(l, 3, LUA_TFUNCTION);
    if (strcmp(ev, "online") != 0 && strcmp(ev, "offline") != 0 && strcmp(ev, "status") != 0
        && strcmp(ev, "room_online") != 0 && strcmp(ev, "room_offline") != 0) {
        return luaL_error(l, "unknown presence event \"%s\"", ev);
    }
    if (conf < 0) {
        return luaL_error(l, "on_presence needs the script's nsp");
    }
    if (lua_getfield(l, LUA_REGISTRYINDEX, EM_LUA_PRESENCE_KEY) != LUA_TTABLE) {
        lua_pop(l, 1);
        lua_newtable(l);
        lua_pushvalue(l, -1);
        lua_setfield(l, LUA_REGISTRYINDEX, EM_LUA_PRESENCE_KEY);
    }
    if (lua_rawgeti(l, -1, conf) != LUA_TTABLE) {
        lua_pop(l, 1);
        lua_newtable(l);
        lua_pushvalue(l, -1);
        lua_rawseti(l, -3, conf);
    }
    em_lua_handler_add(l, ev, 3);
    lua_settop(l, 1);
    return 1;
}

/* Push the handler list of a configured namespace for ev; 0 if none. */
static int
em_lua_presence_handlers(lua_State *l, lua_Integer conf, const char *ev)
{
    int top = lua_gettop(l);

    if (lua_getfield(l, LUA_REGISTRYINDEX, EM_LUA_PRESENCE_KEY) == LUA_TTABLE
        && lua_rawgeti(l, -1, conf) == LUA_TTABLE && lua_getfield(l, -1, ev) != LUA_TNIL) {
        lua_replace(l, top + 1);
        lua_settop(l, top + 1);
        return 1;
    }
    lua_settop(l, top);
    return 0;
}

/* Run each handler in the list on top with the nargs values below it. */
static void
em_lua_presence_run(lua_State *l, int nargs, const char *what)
{
    int list = lua_gettop(l), first = list - nargs;

    for (lua_Integer i = 1; i <= em_lua_handler_count(l, list); i++) {
        em_lua_handler_push(l, list, i);
        for (int a = 0; a < nargs; a++) {
            lua_pushvalue(l, first + a);
        }
        em_lua_call(nargs, 0, what);
    }
    lua_settop(l, first - 1);
}

static int
em_lua_fire_status(lua_State *l, lua_Integer conf, em_str_t nsp, em_str_t user, int old)
{
    em_presence_t p;
    int           top = lua_gettop(l);

    if (conf < 0 || em_presence_get(&em_cluster, nsp, user, &p) != EM_OK) {
        return 0;
    }
    em_lua_push_presence(l, &p);
    lua_pushstring(l, em_lua_status_names[old & 3]);
    if (em_lua_presence_handlers(l, conf, "status")) {
        em_lua_presence_run(l, 2, "on_presence status");
    }
    lua_settop(l, top);
    return 0;
}

void
em_lua_presence_event(const em_pchange_t *c)
{
    lua_State    *l = em_lua_state();
    size_t        conf;
    em_presence_t p;
    em_str_t      nsp = { c->nsp, strlen(c->nsp) }, user = { c->user, strlen(c->user) };
    const char   *ev;
    int           top;

    if (l == NULL || em_nsp_conf_index(nsp.data, nsp.len, &conf) != EM_OK) {
        return;
    }
    switch (c->what) {
    case EM_PCHG_ONLINE:   ev = "online"; break;
    case EM_PCHG_OFFLINE:  ev = "offline"; break;
    case EM_PCHG_ROOM_IN:  ev = "room_online"; break;
    default:               ev = "room_offline"; break;
    }
    top = lua_gettop(l);
    if (c->room != NULL) {
        lua_pushstring(l, c->room);
    }
    if (em_presence_get(&em_cluster, nsp, user, &p) == EM_OK) {
        em_lua_push_presence(l, &p);
    } else {
        lua_createtable(l, 0, 2);
        lua_pushstring(l, c->user);
        lua_setfield(l, -2, "userId");
        lua_pushstring(l, "offline");
        lua_setfield(l, -2, "status");
    }
    em_str_t wire = em_conf_nsp_wire(c->nsp, strlen(c->nsp));
    lua_pushlstring(l, wire.data, wire.len);
    if (em_lua_presence_handlers(l, (lua_Integer) conf, ev)) {
        em_lua_presence_run(l, c->room ? 3 : 2, ev);
    }
    lua_settop(l, top);
}

/* nsp:verify_token(token) -> claims | nil, message, reason: the token
 * checked as the namespace's jwt settings check a CONNECT's (for a token
 * sent later, in an event: studio.md's "authenticate"). */
static int
em_lua_nsp_verify_token(lua_State *l)
{
    lua_Integer          conf;
    size_t               len;
    const char          *tok;
    const em_conf_jwt_t *j;
    json_t              *claims = NULL;

    em_lua_nsp_name(l, 1, &conf);
    tok = luaL_checklstring(l, 2, &len);
    if (conf < 0 || (size_t) conf >= em_loop.conf->nnsps
        || (j = em_loop.conf->nsps[conf].jwt) == NULL) {
        return luaL_error(l, "verify_token: the namespace has no jwt settings");
    }
    em_jwt_result_t r = em_jwt_verify(j, tok, len, em_state_now() / 1000, &claims);
    if (r != EM_JWT_OK) {
        lua_pushnil(l);
        lua_pushstring(l, r == EM_JWT_EXPIRED ? j->expired_message : j->invalid_message);
        lua_pushstring(l, em_jwt_result_str(r));
        return 3;
    }
    int rc = em_lua_push_json(l, claims, NULL, 0);
    json_decref(claims);
    if (rc != EM_OK) {
        lua_pushnil(l);
        lua_pushstring(l, j->invalid_message);
        lua_pushliteral(l, "claims that cannot be read");
        return 3;
    }
    return 1;
}

static const luaL_Reg em_lua_bcast_methods[] = {
    { "to", em_lua_bcast_to },
    { "in", em_lua_bcast_to },
    { "except", em_lua_bcast_except },
    { "emit", em_lua_bcast_emit },
    { "count", em_lua_bcast_sockets },
    { "presence", em_lua_nsp_presence },
    { "online", em_lua_nsp_online },
    { "users", em_lua_nsp_users },
    { "presence_stats", em_lua_nsp_presence_stats },
    { "set_status", em_lua_nsp_set_status },
    { "room_online", em_lua_nsp_room_online },
    { "room_size", em_lua_nsp_room_size },
    { "size", em_lua_nsp_room_size },
    { "on_presence", em_lua_nsp_on_presence },
    { "server_emit", em_lua_nsp_server_emit },
    { "verify_token", em_lua_nsp_verify_token },
    { NULL, NULL }
};

/* The broadcast operator's metatable. */
void
em_lua_nsp_open(lua_State *l)
{
    luaL_newmetatable(l, EM_LUA_BCAST_MT);
    luaL_newlib(l, em_lua_bcast_methods);
    lua_setfield(l, -2, "__index");
    lua_pop(l, 1);
}
