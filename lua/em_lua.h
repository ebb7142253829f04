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

/* Whether configured namespace conf_index has a script. */
int  em_lua_has_script(size_t conf_index);

/* Whether any configured namespace has one (socket.handshake is needed). */
int  em_lua_nsp_scripts(void);

/*
 * Run on_connect for a new socket. EM_OK: accepted. EM_DECLINED: rejected,
 * *reject is the CONNECT_ERROR data object {"message": ..., "data": ...}.
 */
int  em_lua_connect(em_sio_socket_t *s, json_t *auth, json_t **reject);

/* A client event (args[0] is the name), with attachments, ack id or
 * EM_SIO_NO_ID. EM_ERROR: the packet is malformed (bad attachment reference). */
int  em_lua_event(em_sio_socket_t *s, json_t *args, const em_str_t *atts, size_t natt, int64_t id);

/* The client's answer to a server emit that asked for an ack. */
int  em_lua_ack(em_sio_socket_t *s, int64_t id, json_t *args, const em_str_t *atts, size_t natt);

/* Fire a reserved event ("disconnecting", "disconnect") with a reason. */
void em_lua_socket_event(em_sio_socket_t *s, const char *event, const char *reason);

/* The socket is gone: its script object stops working. */
void em_lua_socket_release(em_sio_socket_t *s);

/* A presence change (em_state.h) for the namespace's on_presence handlers. */
void em_lua_presence_event(const em_pchange_t *change);

/* Raw Engine.IO endpoints: what their sessions tell the scripts. */
void em_lua_raw_open(em_eio_session_t *s);
void em_lua_raw_message(em_eio_session_t *s, const char *data, size_t len, int binary);
void em_lua_raw_close(em_eio_session_t *s, const char *reason);
extern const em_eio_upper_t em_lua_raw_eio_upper;

#endif
