/*
 * em_luajson.h - converting between jansson values and Lua values.
 *
 * JSON -> Lua: objects become tables, arrays tables with the array
 * metatable, null the emitd.null sentinel, integers Lua integers, other
 * numbers floats; {"_placeholder":true,"num":N} becomes attachment N as a
 * buffer. Lua -> JSON: the reverse; buffers become placeholders and are
 * collected as attachments. Errors are returned, never thrown, so that the
 * caller can free what it holds before raising a Lua error.
 */
#ifndef EM_LUAJSON_H
#define EM_LUAJSON_H

#include <jansson.h>
#include <lua.h>

#include "em_buf.h"
#include "em_core.h"

#define EM_LUA_BUFFER_MT "emitd.buffer"
#define EM_LUA_ARRAY_MT  "emitd.array"
#define EM_LUA_OBJECT_MT "emitd.object"

extern char em_lua_null_sentinel;

/* Attachments collected while converting Lua values to JSON. */
typedef struct {
    em_buf_t **att;
    size_t     n;
    size_t     cap;
} em_lua_bins_t;

void em_lua_bins_free(em_lua_bins_t *b);

/* Push v; atts may be NULL. EM_ERROR (nothing pushed) for a bad placeholder. */
int em_lua_push_json(lua_State *l, json_t *v, const em_str_t *atts, size_t natt);

/* Convert the value at idx; bins NULL refuses buffers. NULL on error with a
 * message in err. */
json_t *em_lua_to_json(lua_State *l, int idx, em_lua_bins_t *bins, char *err, size_t errlen);

/* Push a new buffer holding a copy of data. */
void em_lua_push_buffer(lua_State *l, const char *data, size_t len);

/* The bytes of a buffer at idx, or NULL if it is not one. */
const char *em_lua_to_buffer(lua_State *l, int idx, size_t *len);

/* Push a new empty table that encodes as a JSON array. */
void em_lua_new_array(lua_State *l);

#endif
