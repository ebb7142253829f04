/*
 * em_lua.h - per-namespace handler scripts in Lua 5.4.
 *
 * One Lua state per worker; each configured script runs in its own
 * environment whose globals are `nsp` (its namespace) and `emitd`. The API is
 * shaped like Socket.IO's server API; see emitd.conf(5) and doc/DESIGN.md.
 * A script error is logged with file and line and never kills the worker.
 */
#ifndef EM_LUA_H
#define EM_LUA_H

#include <jansson.h>

#include "em_core.h"
#include "em_eio_session.h"
#include "em_state.h"

typedef struct em_sio_socket em_sio_socket_t;

/* Compile every configured script (syntax errors with file and line go to
 * err), and with `run` also run them in a throwaway state as a worker would
 * (emitd -t). The master compiles them before it forks. */
int  em_lua_check_scripts(const em_conf_t *conf, int run, char *err, size_t errlen);

/* Create the state and run every configured script. EM_ERROR if one fails. */
int  em_lua_init(void);
void em_lua_shutdown(void);

/* What the sessions of raw Engine.IO endpoints tell the scripts. */
extern const em_eio_upper_t em_lua_raw_eio_upper;

#endif
