/*
 * em_lua_emitd.c - the emitd table of the Lua API (buffers, JSON shapes, log,
 * json_encode/decode, now, broker counts; the state functions are in
 * em_lua_cluster.c) and print().
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

/* The buffer metatable, the JSON shape markers, print() and the emitd table
 * (with the state functions of em_lua_cluster.c) as the global "emitd". */
void
em_lua_emitd_open(lua_State *l)
{
    luaL_newmetatable(l, EM_LUA_BUFFER_MT);
    lua_newtable(l);
    lua_pushcfunction(l, em_lua_buffer_tostring);
    lua_setfield(l, -2, "tostring");
    lua_setfield(l, -2, "__index");
    lua_pushcfunction(l, em_lua_buffer_len);
    lua_setfield(l, -2, "__len");
    lua_pushcfunction(l, em_lua_buffer_tostring);
    lua_setfield(l, -2, "__tostring");
    lua_pushcfunction(l, em_lua_buffer_eq);
    lua_setfield(l, -2, "__eq");
    lua_pop(l, 1);
    luaL_newmetatable(l, EM_LUA_ARRAY_MT);
    lua_pop(l, 1);
    luaL_newmetatable(l, EM_LUA_OBJECT_MT);
    lua_pop(l, 1);

    lua_pushcfunction(l, em_lua_print);
    lua_setglobal(l, "print");
    luaL_newlib(l, em_lua_emitd_fns);
    luaL_setfuncs(l, em_lua_cluster_emitd_fns, 0);
    lua_pushlightuserdata(l, &em_lua_null_sentinel);
    lua_setfield(l, -2, "null");
    lua_pushinteger(l, em_loop.slot + 1);
    lua_setfield(l, -2, "worker");
    lua_pushstring(l, EM_VERSION);
    lua_setfield(l, -2, "version");
    lua_setglobal(l, "emitd");
}
