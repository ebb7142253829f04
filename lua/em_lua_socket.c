/*
 * em_lua_socket.c - the socket object of the Lua API: a full userdata boxing an
 * em_sio_socket_t pointer (NULL once the socket is gone, so a script that
 * keeps it cannot crash us); its user value is a table with id, nsp,
 * handshake, data, params and the script's handlers (_h) and pending ack
 * callbacks (_acks). Methods on, off, emit, join, leave, rooms, to, except,
 * disconnect, and those that read or change the cluster-wide state: set_user,
 * set_status (presence), create_session, recover_session, session_info
 * (recovery tokens).
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

/* ---- socket objects ---- */

em_sio_socket_t *
em_lua_check_socket(lua_State *l, int idx)
{
    em_lua_sock_box_t *box = luaL_checkudata(l, idx, EM_LUA_SOCKET_MT);

    return box->s;
}

void
em_lua_push_socket(em_sio_socket_t *s)
{
    lua_rawgeti(em_lua_vm, LUA_REGISTRYINDEX, s->lref);
}

/*
 * Push table `field` of the socket object at index sock's user value (its
 * handler lists "_h", its pending acks "_acks"), made on first use when
 * `create`; 0 with nil pushed when absent. A socket with no handlers or
 * acks carries no empty tables.
 */
int
em_lua_sock_table(lua_State *l, int sock, const char *field, int create)
{
    lua_getiuservalue(l, sock, 1);
    if (lua_getfield(l, -1, field) == LUA_TTABLE) {
        lua_remove(l, -2);
        return 1;
    }
    lua_pop(l, 1);
    if (!create) {
        lua_pop(l, 1);
        lua_pushnil(l);
        return 0;
    }
    lua_newtable(l);
    lua_pushvalue(l, -1);
    lua_setfield(l, -3, field);
    lua_remove(l, -2);
    return 1;
}

static int
em_lua_socket_on(lua_State *l)
{
    const char *ev = luaL_checkstring(l, 2);

    luaL_checktype(l, 3, LUA_TFUNCTION);
    em_lua_sock_table(l, 1, "_h", 1);
    em_lua_handler_add(l, ev, 3);
    lua_settop(l, 1);
    return 1;
}

/* One handler is kept as the function itself; a second makes a list. */
void
em_lua_handler_add(lua_State *l, const char *ev, int fn)
{
    int t = lua_getfield(l, -1, ev);

    if (t == LUA_TNIL) {
        lua_pop(l, 1);
        lua_pushvalue(l, fn);
        lua_setfield(l, -2, ev);
        return;
    }
    if (t != LUA_TTABLE) {
        lua_createtable(l, 2, 0);
        lua_insert(l, -2);
        lua_rawseti(l, -2, 1);
        lua_pushvalue(l, -1);
        lua_setfield(l, -3, ev);
    }
    lua_pushvalue(l, fn);
    lua_rawseti(l, -2, (lua_Integer) lua_rawlen(l, -2) + 1);
    lua_pop(l, 1);
}

lua_Integer
em_lua_handler_count(lua_State *l, int idx)
{
    return lua_isfunction(l, idx) ? 1 : lua_istable(l, idx) ? (lua_Integer) lua_rawlen(l, idx) : 0;
}

void
em_lua_handler_push(lua_State *l, int idx, lua_Integer i)
{
    if (lua_isfunction(l, idx)) {
        lua_pushvalue(l, idx);
    } else {
        lua_rawgeti(l, idx, i);
    }
}

static int
em_lua_socket_off(lua_State *l)
{
    const char *ev = luaL_checkstring(l, 2);

    if (em_lua_sock_table(l, 1, "_h", 0)) {
        lua_pushnil(l);
        lua_setfield(l, -2, ev);
    }
    lua_settop(l, 1);
    return 1;
}

static int
em_lua_socket_emit(lua_State *l)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);
    int              top = lua_gettop(l);
    int64_t          id = EM_SIO_NO_ID;
    em_pkt_t         pkt;

    luaL_checkstring(l, 2);
    if (s == NULL) {
        lua_pushboolean(l, 0);
        return 1;
    }
    if (lua_type(l, top) == LUA_TFUNCTION && top > 2) {
        if (s->nacks >= em_loop.conf->limits.pending_acks) {
            /* The client does not answer: it is closed, not grown for. */
            em_eio_session_refuse(em_sio_socket_session(s), EM_LIMIT_PENDING_ACKS,
                                  "%u acks asked for and not answered (limit %u)", s->nacks,
                                  em_loop.conf->limits.pending_acks);
            lua_pushboolean(l, 0);
            return 1;
        }
        s->nacks++;
        id = s->next_ack++;
        em_lua_sock_table(l, 1, "_acks", 1);
        lua_pushvalue(l, top);
        lua_rawseti(l, -2, id);
        lua_pop(l, 1);
        top--;
    }
    em_lua_args_pkt(&pkt, EM_SIO_EVENT, (em_str_t) { s->nsp->name, s->nsp->name_len }, id, 2, top,
                    1, NULL, s);
    em_sio_socket_send(s, &pkt);
    em_pkt_release(&pkt);
    lua_pushboolean(l, 1);
    return 1;
}

/* One room: over limits.rooms the client is closed (what it asked to join
 * is its doing); a name over 65,535 bytes is the script's error. */
static void
em_lua_join_one(lua_State *l, em_sio_socket_t *s, em_str_t room)
{
    int rc = em_adapter_join(s, room);

    if (rc == EM_DECLINED) {
        em_eio_session_refuse(em_sio_socket_session(s), EM_LIMIT_ROOMS,
                              "a join beyond %u rooms", em_loop.conf->limits.rooms);
    } else if (rc != EM_OK) {
        if (room.len > EM_ROOM_NAME_MAX) {
            luaL_error(l, "join: a room name of %d bytes is too long (at most %d)", (int) room.len,
                       EM_ROOM_NAME_MAX);
        }
        luaL_error(l, "join: out of memory");
    }
}

static int
em_lua_socket_join(lua_State *l)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);

    /* A socket being removed joins nothing. A join may run presence
     * handlers that disconnect the socket: look it up again each time. */
    if (s != NULL && em_sio_socket_live(s)) {
        if (lua_istable(l, 2)) {
            for (lua_Integer i = 1; i <= (lua_Integer) lua_rawlen(l, 2); i++) {
                size_t len;
                s = em_lua_check_socket(l, 1);
                if (s == NULL || !em_sio_socket_live(s)) {
                    break;
                }
                lua_rawgeti(l, 2, i);
                const char *room = luaL_checklstring(l, -1, &len);
                em_lua_join_one(l, s, (em_str_t) { room, len });
                lua_pop(l, 1);
            }
        } else {
            size_t      len;
            const char *room = luaL_checklstring(l, 2, &len);
            em_lua_join_one(l, s, (em_str_t) { room, len });
        }
    }
    lua_settop(l, 1);
    return 1;
}

static int
em_lua_socket_leave(lua_State *l)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);
    size_t           len;
    const char      *room = luaL_checklstring(l, 2, &len);

    if (s != NULL) {
        em_adapter_leave(s, (em_str_t) { room, len });
    }
    lua_settop(l, 1);
    return 1;
}

static void
em_lua_rooms_cb(const char *room, size_t len, void *arg)
{
    lua_State *l = arg;

    lua_pushlstring(l, room, len);
    lua_rawseti(l, -2, (lua_Integer) lua_rawlen(l, -2) + 1);
}

static int
em_lua_socket_rooms(lua_State *l)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);

    lua_newtable(l);
    if (s != NULL) {
        lua_pushstring(l, s->id);
        lua_rawseti(l, -2, 1);
        em_adapter_socket_rooms(s, em_lua_rooms_cb, l);
    }
    luaL_setmetatable(l, EM_LUA_ARRAY_MT);
    return 1;
}

static int
em_lua_socket_disconnect(lua_State *l)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);
    int              close_conn = lua_toboolean(l, 2);

    lua_settop(l, 1);
    if (s != NULL) {
        em_sio_socket_disconnect(s, close_conn);   /* s is gone after this */
    }
    return 1;
}

/* New broadcast operator: {_nsp = name, _skip = socket, _rooms = {}, _except = {}}. */
static void
em_lua_new_bcast(lua_State *l, int from_socket_idx)
{
    em_sio_socket_t *s = em_lua_check_socket(l, from_socket_idx);

    lua_createtable(l, 0, 4);
    if (s != NULL) {
        lua_pushlstring(l, s->nsp->name, s->nsp->name_len);
        lua_setfield(l, -2, "_nsp");
    }
    lua_pushvalue(l, from_socket_idx);
    lua_setfield(l, -2, "_skip");
    lua_newtable(l);
    lua_setfield(l, -2, "_rooms");
    lua_newtable(l);
    lua_setfield(l, -2, "_except");
    luaL_setmetatable(l, EM_LUA_BCAST_MT);
}


static int
em_lua_socket_to(lua_State *l)
{
    em_lua_new_bcast(l, 1);
    lua_replace(l, 1);
    return em_lua_bcast_add(l, "_rooms");
}

static int
em_lua_socket_except(lua_State *l)
{
    em_lua_new_bcast(l, 1);
    lua_replace(l, 1);
    return em_lua_bcast_add(l, "_except");
}

/* ---- presence and recovery sessions (the cluster-wide state) ---- */

/* socket:set_user(id [, info]) -> true | false, message */
static int
em_lua_socket_set_user(lua_State *l)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);
    em_str_t         user = { NULL, 0 }, info = { NULL, 0 };
    char            *text = NULL;
    char             err[160];

    user.data = luaL_checklstring(l, 2, &user.len);
    if (s == NULL) {
        lua_pushboolean(l, 0);
        lua_pushliteral(l, "socket is gone");
        return 2;
    }
    if (!lua_isnoneornil(l, 3)) {
        json_t *j = em_lua_to_json(l, 3, NULL, err, sizeof(err));
        if (j == NULL) {
            return luaL_error(l, "set_user info: %s", err);
        }
        text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (text == NULL || strlen(text) > EM_ST_INFO_MAX) {
            free(text);
            return luaL_error(l, "set_user info: more than %d bytes of JSON", EM_ST_INFO_MAX);
        }
        info = (em_str_t) { text, strlen(text) };
    }
    int rc = em_cluster_set_user(s, user, info);
    free(text);
    lua_pushboolean(l, rc == EM_OK);
    if (rc != EM_OK) {
        lua_pushliteral(l, "cannot record the user (name too long or presence table full)");
        return 2;
    }
    return 1;
}

static int
em_lua_socket_set_status(lua_State *l)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);
    const char      *st = luaL_checkstring(l, 2);

    if (s == NULL || s->user == NULL) {
        lua_pushboolean(l, 0);
        lua_pushliteral(l, "socket has no user");
        return 2;
    }
    return em_lua_set_status(l, (lua_Integer) s->nsp->conf_index,
                             (em_str_t) { s->nsp->name, s->nsp->name_len },
                             (em_str_t) { s->user, strlen(s->user) }, st);
}

/* A session (app recovery token) as the script sees it. */
static void
em_lua_push_session(lua_State *l, em_sio_socket_t *s, const em_st_session_t *e,
                    em_plog_pkt_t *queued)
{
    const unsigned char *p = (const unsigned char *) e->rooms, *end = p + e->rooms_len;

    lua_createtable(l, 0, 9);
    lua_pushlstring(l, e->user, e->user_len);
    lua_setfield(l, -2, "userId");
    lua_pushstring(l, s->id);
    lua_setfield(l, -2, "socketId");
    lua_pushstring(l, e->sid);
    lua_setfield(l, -2, "previousSocketId");
    lua_pushinteger(l, e->created);
    lua_setfield(l, -2, "connectedAt");
    lua_pushinteger(l, e->last_activity);
    lua_setfield(l, -2, "lastActivity");
    em_lua_new_array(l);
    while (end - p >= 2) {
        uint16_t rl;
        memcpy(&rl, p, 2);
        p += 2;
        if (end - p < rl) {
            break;
        }
        lua_pushlstring(l, (const char *) p, rl);
        lua_rawseti(l, -2, (lua_Integer) lua_rawlen(l, -2) + 1);
        p += rl;
    }
    lua_setfield(l, -2, "rooms");
    em_lua_new_array(l);
    for (em_plog_pkt_t *q = queued; q != NULL; q = q->next) {
        json_t *arr = em_sio_json_parse(q->data.data, q->data.len);
        if (arr == NULL || !json_is_array(arr) || json_array_size(arr) < 2
            || !json_is_string(json_array_get(arr, 0))) {
            json_decref(arr);
            continue;
        }
        /* {event = name, args = {...}} without the offset the log added. */
        json_array_remove(arr, json_array_size(arr) - 1);
        lua_createtable(l, 0, 2);
        lua_pushstring(l, json_string_value(json_array_get(arr, 0)));
        lua_setfield(l, -2, "event");
        json_array_remove(arr, 0);
        if (em_lua_push_json(l, arr, q->atts, q->natt) != EM_OK) {
            em_lua_new_array(l);
        }
        lua_setfield(l, -2, "args");
        json_decref(arr);
        lua_rawseti(l, -2, (lua_Integer) lua_rawlen(l, -2) + 1);
    }
    lua_setfield(l, -2, "messageQueue");
    if (s->token != NULL) {
        lua_pushstring(l, s->token);
        lua_setfield(l, -2, "recoveryToken");
    }
}

/* socket:create_session() -> token */
static int
em_lua_socket_create_session(lua_State *l)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);
    const char      *t = s ? em_cluster_token(s) : NULL;

    if (t == NULL) {
        lua_pushnil(l);
        lua_pushliteral(l, "cannot create a session (socket gone or session table full)");
        return 2;
    }
    lua_pushstring(l, t);
    return 1;
}

/* socket:recover_session(token) -> session | nil, message. Joins the
 * session's rooms; session.messageQueue holds what was sent to them since,
 * and session.messagesLost is true when some of it had already left the
 * bounded log. */
static int
em_lua_socket_recover_session(lua_State *l)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);
    em_str_t         tok;
    em_st_session_t *e;
    em_plog_pkt_t   *queued = NULL;

    tok.data = luaL_checklstring(l, 2, &tok.len);
    if (s == NULL || !em_sio_socket_live(s) || (e = malloc(sizeof(*e))) == NULL) {
        lua_pushnil(l);
        lua_pushliteral(l, "socket is gone");
        return 2;
    }
    int lost = 0;
    if (em_cluster_redeem(s, tok, e, &queued, &lost) != EM_OK) {
        free(e);
        lua_pushnil(l);
        lua_pushliteral(l, "Invalid or expired recovery token");
        return 2;
    }
    size_t   off = 0;
    em_str_t room;
    while (em_cluster_session_room(e, &off, &room)) {
        em_adapter_join(s, room);
        /* A presence handler run by the join may have disconnected it. */
        if ((s = em_lua_check_socket(l, 1)) == NULL || !em_sio_socket_live(s)) {
            if (s != NULL) {
                em_cluster_redeem_done(s, e);
            }
            em_plog_pkts_free(queued);
            free(e);
            lua_pushnil(l);
            lua_pushliteral(l, "socket is gone");
            return 2;
        }
    }
    em_cluster_redeem_done(s, e);
    em_lua_push_session(l, s, e, queued);
    lua_pushboolean(l, lost);
    lua_setfield(l, -2, "messagesLost");
    em_plog_pkts_free(queued);
    free(e);
    return 1;
}

/* socket:session_info() -> session | nil */
static int
em_lua_socket_session_info(lua_State *l)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);
    em_st_session_t *e;

    if (s == NULL || s->token == NULL || (e = malloc(sizeof(*e))) == NULL) {
        lua_pushnil(l);
        return 1;
    }
    if (em_recovery_get(&em_cluster, (em_str_t) { s->token, strlen(s->token) }, e) != EM_OK) {
        free(e);
        lua_pushnil(l);
        return 1;
    }
    memcpy(e->sid, s->id, EM_SID_LEN + 1);
    em_lua_push_session(l, s, e, NULL);
    free(e);
    return 1;
}

/* socket:after(ms, fn) / socket:every(ms, fn) -> timer that stops, never
 * firing, once the socket is gone */
static int
em_lua_socket_after(lua_State *l)
{
    em_lua_check_socket(l, 1);
    return em_lua_timer_start(l, 2, 1, 0);
}

static int
em_lua_socket_every(lua_State *l)
{
    em_lua_check_socket(l, 1);
    return em_lua_timer_start(l, 2, 1, 1);
}

static const luaL_Reg em_lua_socket_methods[] = {
    { "on", em_lua_socket_on },
    { "off", em_lua_socket_off },
    { "emit", em_lua_socket_emit },
    { "join", em_lua_socket_join },
    { "leave", em_lua_socket_leave },
    { "rooms", em_lua_socket_rooms },
    { "to", em_lua_socket_to },
    { "in", em_lua_socket_to },
    { "except", em_lua_socket_except },
    { "disconnect", em_lua_socket_disconnect },
    { "set_user", em_lua_socket_set_user },
    { "set_status", em_lua_socket_set_status },
    { "create_session", em_lua_socket_create_session },
    { "recover_session", em_lua_socket_recover_session },
    { "session_info", em_lua_socket_session_info },
    { "after", em_lua_socket_after },
    { "every", em_lua_socket_every },
    { NULL, NULL }
};


static int
em_lua_socket_index(lua_State *l)
{
    const char *key = lua_tostring(l, 2);

    if (key != NULL) {
        if (strcmp(key, "broadcast") == 0) {
            em_lua_new_bcast(l, 1);
            return 1;
        }
        if (strcmp(key, "connected") == 0) {
            em_sio_socket_t *s = em_lua_check_socket(l, 1);
            lua_pushboolean(l, s != NULL && em_sio_socket_live(s));
            return 1;
        }
        if (strcmp(key, "id") == 0) {
            em_lua_sock_box_t *box = lua_touserdata(l, 1);
            lua_pushstring(l, box->id);
            return 1;
        }
        if (strcmp(key, "recovered") == 0) {
            em_sio_socket_t *s = em_lua_check_socket(l, 1);
            lua_pushboolean(l, s != NULL && s->recovered);
            return 1;
        }
        if (strcmp(key, "user") == 0) {
            em_sio_socket_t *s = em_lua_check_socket(l, 1);
            if (s != NULL && s->user != NULL) {
                lua_pushstring(l, s->user);
            } else {
                lua_pushnil(l);
            }
            return 1;
        }
        lua_pushvalue(l, lua_upvalueindex(1));   /* methods */
        if (lua_getfield(l, -1, key) != LUA_TNIL) {
            return 1;
        }
        lua_pop(l, 2);
    }
    lua_getiuservalue(l, 1, 1);
    lua_pushvalue(l, 2);
    if (lua_rawget(l, -2) == LUA_TNIL && key != NULL) {
        em_lua_socket_lazy(l, key);
    }
    return 1;
}

static int
em_lua_socket_newindex(lua_State *l)
{
    const char *key = lua_tostring(l, 2);

    if (key != NULL && (strcmp(key, "id") == 0 || strcmp(key, "nsp") == 0
                        || strcmp(key, "handshake") == 0 || strcmp(key, "user") == 0
                        || strcmp(key, "claims") == 0
                        || strcmp(key, "recovered") == 0 || key[0] == '_')) {
        return luaL_error(l, "socket.%s is read-only", key);
    }
    lua_getiuservalue(l, 1, 1);
    lua_pushvalue(l, 2);
    lua_pushvalue(l, 3);
    lua_rawset(l, -3);
    return 0;
}

static int
em_lua_socket_tostring(lua_State *l)
{
    em_sio_socket_t *s = em_lua_check_socket(l, 1);

    lua_pushfstring(l, "socket(%s)", s ? s->id : "closed");
    return 1;
}

/* The socket metatable. */
void
em_lua_socket_open(lua_State *l)
{
    luaL_newmetatable(l, EM_LUA_SOCKET_MT);
    luaL_newlib(l, em_lua_socket_methods);
    lua_pushcclosure(l, em_lua_socket_index, 1);
    lua_setfield(l, -2, "__index");
    lua_pushcfunction(l, em_lua_socket_newindex);
    lua_setfield(l, -2, "__newindex");
    lua_pushcfunction(l, em_lua_socket_tostring);
    lua_setfield(l, -2, "__tostring");
    lua_pop(l, 1);
}
