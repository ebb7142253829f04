/*
 * em_lua_nsp.c - the namespace and broadcast operators of the Lua API: tables
 * {_conf|_nsp, _rooms, _except, _skip} with to/in/except/emit/sockets, as
 * Socket.IO's BroadcastOperator; the routing itself is em_sio_route().
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

static const luaL_Reg em_lua_bcast_methods[] = {
    { "to", em_lua_bcast_to },
    { "in", em_lua_bcast_to },
    { "except", em_lua_bcast_except },
    { "emit", em_lua_bcast_emit },
    { "count", em_lua_bcast_sockets },
    { NULL, NULL }
};

/* The broadcast operator's metatable (with the methods of em_lua_cluster.c). */
void
em_lua_nsp_open(lua_State *l)
{
    luaL_newmetatable(l, EM_LUA_BCAST_MT);
    luaL_newlib(l, em_lua_bcast_methods);
    luaL_setfuncs(l, em_lua_cluster_nsp_methods, 0);
    lua_setfield(l, -2, "__index");
    lua_pop(l, 1);
}
