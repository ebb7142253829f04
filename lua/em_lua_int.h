/*
 * em_lua_int.h - what the Lua modules of a worker share: the state, the
 * protected call with the runaway limit, the socket objects, and what the
 * files of the binding call in each other.
 */
#ifndef EM_LUA_INT_H
#define EM_LUA_INT_H

#include <lauxlib.h>
#include <lua.h>

#include "em_socketio.h"
#include "em_state.h"

#define EM_LUA_SOCKET_MT "emitd.socket"
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


/* The worker's one Lua state (NULL when no script is configured). */
extern lua_State *em_lua_vm;

/* Per configured namespace, and per endpoint (raw ones): the script's
 * environment ref, or LUA_NOREF; whether some namespace has a script. */
extern int *em_lua_nsp_env;
extern int *em_lua_ep_env;
extern int  em_lua_any_nsp;

/* Socket events a script may not emit ("connect", ...; NULL-terminated). */
extern const char *const em_lua_reserved[];

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

/* em_lua_call() naming the handler (`what` `name`) in its errors. */
int              em_lua_call_named(int nargs, int nres, const char *what, const char *name);

/* Resume coroutine co with the nargs values on its stack (a handler that
 * waited, given what it waited for): EM_OK when it ended, EM_AGAIN when it
 * waits again, EM_ERROR (logged with `what` `name` and a traceback). */
int              em_lua_resume(lua_State *co, int nargs, const char *what, const char *name);

/* emitd.store (em_lua_store.c), set on the emitd table on top of the stack. */
void             em_lua_store_open(lua_State *l);

/* emitd.http(request) (em_lua_http.c). */
int              em_lua_http(lua_State *l);

/* Script errors logged since the worker started. */
uint64_t         em_lua_error_count(void);

/*
 * Encode the stack values [first, last] as a packet's JSON array. With
 * `log`, an EVENT without ack goes through em_cluster_event_pkt (an offset
 * for connection-state recovery); b / self say who receives it. Raises a
 * Lua error when they cannot be encoded.
 */
int              em_lua_args_pkt(em_pkt_t *pkt, em_sio_type_t type, em_str_t nsp, int64_t id,
                                 int first, int last, int log, const em_bcast_t *b,
                                 const em_sio_socket_t *self);

/* Push the script's object of socket s (made on first use). */
void             em_lua_push_socket(em_sio_socket_t *s);

/* Push table `field` of the user value of the socket object at `sock`
 * ("_h" handlers, "_acks" pending acks), made when `create`; 0 with nil
 * pushed when absent. */
int              em_lua_sock_table(lua_State *l, int sock, const char *field, int create);

/* socket.handshake, socket.params and socket.data, made on first read:
 * stack [socket, key, user value, nil] -> the value replaces the nil. */
void             em_lua_socket_lazy(lua_State *l, const char *key);

/* The to()/except() of a broadcast operator: add the rooms of the
 * arguments to its list `field`; returns the operator. */
int              em_lua_bcast_add(lua_State *l, const char *field);

/* The socket of the socket object at idx (NULL once it is gone). */
em_sio_socket_t *em_lua_check_socket(lua_State *l, int idx);

/* What each file of the binding adds to a new state: its object's
 * metatable (socket, broadcast operator, raw conn), the buffer and JSON
 * metatables with print() and the emitd table, and (without a state) the
 * scripts as the Socket.IO layer's application. */
void             em_lua_socket_open(lua_State *l);
void             em_lua_nsp_open(lua_State *l);
void             em_lua_raw_types(lua_State *l);
void             em_lua_emitd_open(lua_State *l);
void             em_lua_sio_open(void);
void             em_lua_timer_open(lua_State *l);

/* A timer running the function at ms_idx + 1 after the milliseconds at
 * ms_idx (then every as many with `repeat`), tied to the socket object at
 * sock_idx when > 0; pushes the timer object (em_lua_timer.c). */
int              em_lua_timer_start(lua_State *l, int ms_idx, int sock_idx, int repeat);

/* The Socket.IO layer's application (em_sio_app_t, em_lua_sio.c). */
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

/* Raw Engine.IO sessions (em_lua_raw.c). */
void em_lua_raw_open(em_eio_session_t *s);
void em_lua_raw_message(em_eio_session_t *s, const char *data, size_t len, int binary);
void em_lua_raw_close(em_eio_session_t *s, const char *reason);

/* Set a user's status ("online", "away", "busy") in namespace nsp (conf:
 * its configured index, or -1) and tell its on_presence "status" handlers;
 * pushes true, or false and a message (em_lua_nsp.c). */
int  em_lua_set_status(lua_State *l, lua_Integer conf, em_str_t nsp, em_str_t user,
                       const char *st);

#endif
