/*
 * em_lua_int.h - what the Lua modules of a worker share: the state, the
 * protected call with the runaway limit, the socket objects, and the
 * functions em_lua_cluster.c adds to the socket, namespace and emitd tables.
 */
#ifndef EM_LUA_INT_H
#define EM_LUA_INT_H

#include <lauxlib.h>
#include <lua.h>

#include "em_socketio.h"

#define EM_LUA_SOCKET_MT "emitd.socket"

/* Per configured namespace: the script's environment ref, or LUA_NOREF. */
extern int *em_lua_nsp_env;

lua_State       *em_lua_state(void);

/* Call the function below nargs arguments (2 s limit, errors logged with
 * `what`); keeps nres results on success. */
int              em_lua_call(int nargs, int nres, const char *what);

/* Add the function at index fn to the handlers under key ev of the table on
 * top of the stack (one handler is stored as the function itself, more as
 * a list); the stack is left as it was. em_lua_handler_count() and
 * em_lua_handler_push() read such an entry (at idx) back, 1-based. */
void             em_lua_handler_add(lua_State *l, const char *ev, int fn);
lua_Integer      em_lua_handler_count(lua_State *l, int idx);
void             em_lua_handler_push(lua_State *l, int idx, lua_Integer i);

/* The socket of the socket object at idx (NULL once it is gone). */
em_sio_socket_t *em_lua_check_socket(lua_State *l, int idx);

extern const luaL_Reg em_lua_cluster_socket_methods[];
extern const luaL_Reg em_lua_cluster_nsp_methods[];
extern const luaL_Reg em_lua_cluster_emitd_fns[];

#endif
