/*
 * em_lua_raw.c - raw Engine.IO endpoints of the Lua API: the conn object
 * (a userdata boxing an em_eio_session_t) with on, send, close, and the
 * session events it hears.
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

    if (em_lua_vm == NULL || em_lua_ep_env[ep] == LUA_NOREF) {
        return;
    }
    box = lua_newuserdatauv(em_lua_vm, sizeof(*box), 1);
    box->s = s;
    luaL_setmetatable(em_lua_vm, EM_LUA_CONN_MT);
    lua_createtable(em_lua_vm, 0, 3);
    lua_pushstring(em_lua_vm, s->sid);
    lua_setfield(em_lua_vm, -2, "id");
    lua_newtable(em_lua_vm);
    lua_setfield(em_lua_vm, -2, "_h");
    lua_setiuservalue(em_lua_vm, -2, 1);
    lua_pushvalue(em_lua_vm, -1);
    box->lref = luaL_ref(em_lua_vm, LUA_REGISTRYINDEX);
    s->upper = box;

    lua_rawgeti(em_lua_vm, LUA_REGISTRYINDEX, em_lua_ep_env[ep]);
    if (lua_getfield(em_lua_vm, -1, "on_open") != LUA_TFUNCTION) {
        lua_pop(em_lua_vm, 3);
        return;
    }
    lua_remove(em_lua_vm, -2);      /* env */
    lua_insert(em_lua_vm, -2);      /* on_open, conn */
    em_lua_call(1, 0, "on_open");
}

/* Push the handler `ev` of a raw connection; 0 (nothing pushed) if none. */
static int
em_lua_push_conn_handler(em_lua_conn_box_t *box, const char *ev)
{
    lua_rawgeti(em_lua_vm, LUA_REGISTRYINDEX, box->lref);
    lua_getiuservalue(em_lua_vm, -1, 1);
    lua_getfield(em_lua_vm, -1, "_h");
    if (lua_getfield(em_lua_vm, -1, ev) != LUA_TFUNCTION) {
        lua_pop(em_lua_vm, 4);
        return 0;
    }
    lua_replace(em_lua_vm, -4);
    lua_pop(em_lua_vm, 2);
    return 1;
}

void
em_lua_raw_message(em_eio_session_t *s, const char *data, size_t len, int binary)
{
    if (s->upper == NULL || !em_lua_push_conn_handler(s->upper, "message")) {
        return;
    }
    if (binary) {
        em_lua_push_buffer(em_lua_vm, data, len);
    } else {
        lua_pushlstring(em_lua_vm, data, len);
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
        lua_pushstring(em_lua_vm, reason);
        em_lua_call(1, 0, "close handler");
    }
    box->s = NULL;
    luaL_unref(em_lua_vm, LUA_REGISTRYINDEX, box->lref);
    s->upper = NULL;
}

/* A raw endpoint's script reads no handshake. */
static int
em_lua_raw_keeps_handshake(void)
{
    return 0;
}

const em_eio_upper_t em_lua_raw_eio_upper = {
    em_lua_raw_open, em_lua_raw_message, em_lua_raw_close, em_lua_raw_keeps_handshake, NULL, NULL
};

/* The conn metatable. */
void
em_lua_raw_types(lua_State *l)
{
    luaL_newmetatable(l, EM_LUA_CONN_MT);
    lua_pushcfunction(l, em_lua_conn_index);
    lua_setfield(l, -2, "__index");
    lua_pop(l, 1);
}
