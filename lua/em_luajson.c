#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "em_conf.h"
#include "em_luajson.h"

/* Data from clients is checked against limits.json_depth (at most
 * EM_CONF_MAX_JSON_DEPTH) before it gets here; a script's own values against
 * this. */
#define EM_LUA_JSON_MAX_DEPTH EM_CONF_MAX_JSON_DEPTH

char em_lua_null_sentinel;

typedef struct {
    size_t len;
    char   data[];
} em_lua_buffer_t;

void
em_lua_push_buffer(lua_State *l, const char *data, size_t len)
{
    em_lua_buffer_t *b = lua_newuserdatauv(l, sizeof(*b) + len, 0);

    b->len = len;
    if (len) {
        memcpy(b->data, data, len);
    }
    luaL_setmetatable(l, EM_LUA_BUFFER_MT);
}

const char *
em_lua_to_buffer(lua_State *l, int idx, size_t *len)
{
    em_lua_buffer_t *b = luaL_testudata(l, idx, EM_LUA_BUFFER_MT);

    if (b == NULL) {
        return NULL;
    }
    *len = b->len;
    return b->data;
}

void
em_lua_bins_free(em_lua_bins_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        em_buf_unref(b->att[i]);
    }
    free(b->att);
    memset(b, 0, sizeof(*b));
}

static int
em_lua_push_json_depth(lua_State *l, json_t *v, const em_str_t *atts, size_t natt, int depth)
{
    if (depth > EM_LUA_JSON_MAX_DEPTH + 1 || !lua_checkstack(l, 4)) {
        return EM_ERROR;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        json_t     *ph = json_object_get(v, "_placeholder");
        const char *key;
        json_t     *val;
        /* Placeholders mean attachments only in a binary packet, as in
         * Node's socket.io-parser. */
        if (atts != NULL && ph != NULL && json_is_true(ph) && json_object_size(v) == 2) {
            json_t *num = json_object_get(v, "num");
            if (num == NULL || !json_is_integer(num) || json_integer_value(num) < 0
                || (size_t) json_integer_value(num) >= natt) {
                return EM_ERROR;
            }
            const em_str_t *a = &atts[json_integer_value(num)];
            em_lua_push_buffer(l, a->data, a->len);
            return EM_OK;
        }
        lua_createtable(l, 0, (int) json_object_size(v));
        json_object_foreach(v, key, val) {
            if (em_lua_push_json_depth(l, val, atts, natt, depth + 1) != EM_OK) {
                lua_pop(l, 1);
                return EM_ERROR;
            }
            lua_setfield(l, -2, key);
        }
        return EM_OK;
    }
    case JSON_ARRAY: {
        size_t  i;
        json_t *val;
        lua_createtable(l, (int) json_array_size(v), 0);
        json_array_foreach(v, i, val) {
            if (em_lua_push_json_depth(l, val, atts, natt, depth + 1) != EM_OK) {
                lua_pop(l, 1);
                return EM_ERROR;
            }
            lua_rawseti(l, -2, (lua_Integer) i + 1);
        }
        luaL_setmetatable(l, EM_LUA_ARRAY_MT);
        return EM_OK;
    }
    case JSON_STRING:
        lua_pushlstring(l, json_string_value(v), json_string_length(v));
        return EM_OK;
    case JSON_INTEGER:
        lua_pushinteger(l, (lua_Integer) json_integer_value(v));
        return EM_OK;
    case JSON_REAL:
        lua_pushnumber(l, json_real_value(v));
        return EM_OK;
    case JSON_TRUE:
        lua_pushboolean(l, 1);
        return EM_OK;
    case JSON_FALSE:
        lua_pushboolean(l, 0);
        return EM_OK;
    default:
        lua_pushlightuserdata(l, &em_lua_null_sentinel);
        return EM_OK;
    }
}

int
em_lua_push_json(lua_State *l, json_t *v, const em_str_t *atts, size_t natt)
{
    return em_lua_push_json_depth(l, v, atts, natt, 0);
}

static json_t *
em_lua_fail(char *err, size_t errlen, const char *fmt, const char *what)
{
    snprintf(err, errlen, fmt, what);
    return NULL;
}

/* Is the table at idx a sequence 1..n with n >= 1 and nothing else? */
static int
em_lua_is_sequence(lua_State *l, int idx, lua_Integer *n)
{
    lua_Integer len = (lua_Integer) lua_rawlen(l, idx), count = 0;

    if (len == 0) {
        return 0;
    }
    lua_pushnil(l);
    while (lua_next(l, idx) != 0) {
        lua_pop(l, 1);
        if (!lua_isinteger(l, -1)) {
            lua_pop(l, 1);
            return 0;
        }
        lua_Integer k = lua_tointeger(l, -1);
        if (k < 1 || k > len) {
            lua_pop(l, 1);
            return 0;
        }
        count++;
    }
    *n = len;
    return count == len;
}

static json_t *
em_lua_to_json_depth(lua_State *l, int idx, em_lua_bins_t *bins, char *err, size_t errlen,
                     int depth)
{
    idx = lua_absindex(l, idx);
    if (depth > EM_LUA_JSON_MAX_DEPTH) {
        return em_lua_fail(err, errlen, "%s", "value nested too deeply (or a cycle)");
    }
    switch (lua_type(l, idx)) {
    case LUA_TNIL:
        return json_null();
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(l, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(l, idx)) {
            return json_integer((json_int_t) lua_tointeger(l, idx));
        } else {
            double d = lua_tonumber(l, idx);
            return isfinite(d) ? json_real(d) : json_null();
        }
    case LUA_TSTRING: {
        size_t      len;
        const char *s = lua_tolstring(l, idx, &len);
        json_t     *j = json_stringn(s, len);
        if (j == NULL) {
            return em_lua_fail(err, errlen, "%s",
                               "string is not valid UTF-8 (use emitd.buffer() for binary data)");
        }
        return j;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(l, idx) == &em_lua_null_sentinel) {
            return json_null();
        }
        return em_lua_fail(err, errlen, "cannot send a %s", "light userdata");
    case LUA_TUSERDATA: {
        size_t      len;
        const char *data = em_lua_to_buffer(l, idx, &len);
        if (data == NULL || bins == NULL) {
            return em_lua_fail(err, errlen, "cannot send a %s", data ? "buffer here" : "userdata");
        }
        if (bins->n == bins->cap) {
            size_t     cap = bins->cap ? bins->cap * 2 : 4;
            em_buf_t **a = realloc(bins->att, cap * sizeof(*a));
            if (a == NULL) {
                return em_lua_fail(err, errlen, "%s", "out of memory");
            }
            bins->att = a;
            bins->cap = cap;
        }
        em_buf_t *b = em_buf_copy(data, len, 1);
        if (b == NULL) {
            return em_lua_fail(err, errlen, "%s", "out of memory");
        }
        bins->att[bins->n] = b;
        return json_pack("{s:b,s:I}", "_placeholder", 1, "num", (json_int_t) bins->n++);
    }
    case LUA_TTABLE: {
        lua_Integer n = 0;
        int         is_array = 0, is_object = 0;
        if (!lua_checkstack(l, 4)) {
            return em_lua_fail(err, errlen, "%s", "Lua stack overflow");
        }
        if (lua_getmetatable(l, idx)) {
            luaL_getmetatable(l, EM_LUA_ARRAY_MT);
            is_array = lua_rawequal(l, -1, -2);
            lua_pop(l, 1);
            luaL_getmetatable(l, EM_LUA_OBJECT_MT);
            is_object = lua_rawequal(l, -1, -2);
            lua_pop(l, 2);
            if (is_array) {
                n = (lua_Integer) lua_rawlen(l, idx);
            }
        }
        if (is_array || (!is_object && em_lua_is_sequence(l, idx, &n))) {
            json_t *a = json_array();
            for (lua_Integer i = 1; a != NULL && i <= n; i++) {
                lua_rawgeti(l, idx, i);
                json_t *e = em_lua_to_json_depth(l, -1, bins, err, errlen, depth + 1);
                lua_pop(l, 1);
                if (e == NULL || json_array_append_new(a, e) != 0) {
                    json_decref(a);
                    return NULL;
                }
            }
            return a;
        }
        json_t *o = json_object();
        lua_pushnil(l);
        while (o != NULL && lua_next(l, idx) != 0) {
            char        num[32];
            const char *key;
            size_t      klen;
            if (lua_type(l, -2) == LUA_TSTRING) {
                key = lua_tolstring(l, -2, &klen);
            } else if (lua_isinteger(l, -2)) {
                klen = (size_t) snprintf(num, sizeof(num), "%lld", (long long) lua_tointeger(l, -2));
                key = num;
            } else {
                lua_pop(l, 2);
                json_decref(o);
                return em_lua_fail(err, errlen, "%s", "table keys must be strings or integers");
            }
            json_t *e = em_lua_to_json_depth(l, -1, bins, err, errlen, depth + 1);
            lua_pop(l, 1);
            if (e == NULL || json_object_setn_new(o, key, klen, e) != 0) {
                if (e == NULL) {
                    lua_pop(l, 1);
                } else {
                    lua_pop(l, 1);
                    snprintf(err, errlen, "bad table key");
                }
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    default:
        return em_lua_fail(err, errlen, "cannot send a %s", lua_typename(l, lua_type(l, idx)));
    }
}

json_t *
em_lua_to_json(lua_State *l, int idx, em_lua_bins_t *bins, char *err, size_t errlen)
{
    return em_lua_to_json_depth(l, idx, bins, err, errlen, 0);
}

void
em_lua_new_array(lua_State *l)
{
    lua_newtable(l);
    luaL_setmetatable(l, EM_LUA_ARRAY_MT);
}
