/*
 * em_lua_cluster.c - the scripts' view of the cluster-wide state:
 * presence (socket:set_user, nsp:presence, nsp:on_presence, ...), recovery
 * tokens (socket:create_session / recover_session), rate limits
 * (emitd.limit) and monitoring figures (emitd.metrics, ...). Every call
 * reads or changes the shared segment, so every worker sees the same.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "em_cluster.h"
#include "em_log.h"
#include "em_lua.h"
#include "em_lua_int.h"
#include "em_luajson.h"

static const char *const em_lua_status_names[] = { "offline", "online", "away", "busy" };

#define EM_LUA_PRESENCE_KEY "emitd.presence"

static int
em_lua_status_parse(const char *s)
{
    for (int i = EM_ST_STATUS_ONLINE; i <= EM_ST_STATUS_BUSY; i++) {
        if (strcmp(s, em_lua_status_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* The namespace of a namespace object (nsp, nsp:to(...)): its configured
 * name, or the socket's for a parameterised instance. */
static em_str_t
em_lua_nsp_name(lua_State *l, int idx, lua_Integer *conf)
{
    em_str_t n = { NULL, 0 };

    luaL_checktype(l, idx, LUA_TTABLE);
    lua_getfield(l, idx, "_nsp");
    n.data = lua_tolstring(l, -1, &n.len);
    lua_pop(l, 1);
    lua_getfield(l, idx, "_conf");
    *conf = lua_isinteger(l, -1) ? lua_tointeger(l, -1) : -1;
    lua_pop(l, 1);
    if (n.data == NULL) {
        lua_getfield(l, idx, "name");
        n.data = lua_tolstring(l, -1, &n.len);
        lua_pop(l, 1);
    }
    if (n.data == NULL) {
        luaL_error(l, "not a namespace object");
    }
    return n;
}

static void
em_lua_push_presence(lua_State *l, const em_presence_t *p)
{
    json_t *info;

    lua_createtable(l, 0, 7);
    lua_pushlstring(l, p->user, p->user_len);
    lua_setfield(l, -2, "userId");
    lua_pushstring(l, em_lua_status_names[p->status & 3]);
    lua_setfield(l, -2, "status");
    lua_pushinteger(l, p->nconn);
    lua_setfield(l, -2, "connections");
    lua_pushinteger(l, p->connected_at);
    lua_setfield(l, -2, "connectedAt");
    lua_pushinteger(l, p->last_seen);
    lua_setfield(l, -2, "lastSeen");
    info = p->info_len ? json_loadb(p->info, p->info_len, JSON_DECODE_ANY, NULL) : NULL;
    if (info == NULL || em_lua_push_json(l, info, NULL, 0) != EM_OK) {
        lua_newtable(l);
    }
    json_decref(info);
    lua_setfield(l, -2, "info");
}

static void
em_lua_presence_collect(const em_presence_t *p, void *arg)
{
    lua_State *l = arg;

    em_lua_push_presence(l, p);
    lua_rawseti(l, -2, (lua_Integer) lua_rawlen(l, -2) + 1);
}

static void
em_lua_new_array(lua_State *l)
{
    lua_newtable(l);
    luaL_setmetatable(l, EM_LUA_ARRAY_MT);
}

/* ---- socket methods ---- */

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
em_lua_fire_status(lua_State *l, lua_Integer conf, em_str_t nsp, em_str_t user, int old);

/* Set a user's status (online, away, busy) and tell the on_presence
 * "status" handlers. */
static int
em_lua_set_status(lua_State *l, lua_Integer conf, em_str_t nsp, em_str_t user, const char *st)
{
    int status = em_lua_status_parse(st), old = 0;

    if (status < 0) {
        lua_pushboolean(l, 0);
        lua_pushliteral(l, "status must be online, away or busy");
        return 2;
    }
    if (em_presence_set_status(&em_cluster, nsp, user, status, em_state_now(), &old) != EM_OK) {
        lua_pushboolean(l, 0);
        lua_pushliteral(l, "user is not online");
        return 2;
    }
    if (old != status) {
        em_lua_fire_status(l, conf, nsp, user, old);
    }
    lua_pushboolean(l, 1);
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

const luaL_Reg em_lua_cluster_socket_methods[] = {
    { "set_user", em_lua_socket_set_user },
    { "set_status", em_lua_socket_set_status },
    { "create_session", em_lua_socket_create_session },
    { "recover_session", em_lua_socket_recover_session },
    { "session_info", em_lua_socket_session_info },
    { NULL, NULL }
};

/* ---- namespace methods ---- */

/* nsp:presence(user) -> record | nil */
static int
em_lua_nsp_presence(lua_State *l)
{
    lua_Integer   conf;
    em_str_t      nsp = em_lua_nsp_name(l, 1, &conf), user;
    em_presence_t p;

    user.data = luaL_checklstring(l, 2, &user.len);
    if (em_presence_get(&em_cluster, nsp, user, &p) != EM_OK) {
        lua_pushnil(l);
        return 1;
    }
    em_lua_push_presence(l, &p);
    return 1;
}

/* nsp:online() -> array of online users; nsp:users() -> every known user */
static int
em_lua_nsp_list(lua_State *l, int online_only)
{
    lua_Integer conf;
    em_str_t    nsp = em_lua_nsp_name(l, 1, &conf);

    em_lua_new_array(l);
    em_presence_each(&em_cluster, nsp, online_only, em_lua_presence_collect, l);
    return 1;
}

static int
em_lua_nsp_online(lua_State *l)
{
    return em_lua_nsp_list(l, 1);
}

static int
em_lua_nsp_users(lua_State *l)
{
    return em_lua_nsp_list(l, 0);
}

/* nsp:presence_stats() -> {totalUsers, onlineUsers, awayUsers, busyUsers, offlineUsers} */
static int
em_lua_nsp_presence_stats(lua_State *l)
{
    lua_Integer conf;
    em_str_t    nsp = em_lua_nsp_name(l, 1, &conf);
    uint64_t    c[4];

    em_presence_stats(&em_cluster, nsp, c);
    lua_createtable(l, 0, 5);
    lua_pushinteger(l, (lua_Integer) (c[0] + c[1] + c[2] + c[3]));
    lua_setfield(l, -2, "totalUsers");
    lua_pushinteger(l, (lua_Integer) c[EM_ST_STATUS_ONLINE]);
    lua_setfield(l, -2, "onlineUsers");
    lua_pushinteger(l, (lua_Integer) c[EM_ST_STATUS_AWAY]);
    lua_setfield(l, -2, "awayUsers");
    lua_pushinteger(l, (lua_Integer) c[EM_ST_STATUS_BUSY]);
    lua_setfield(l, -2, "busyUsers");
    lua_pushinteger(l, (lua_Integer) c[EM_ST_STATUS_OFFLINE]);
    lua_setfield(l, -2, "offlineUsers");
    return 1;
}

/* nsp:set_status(user, status) -> true | false, message */
static int
em_lua_nsp_set_status(lua_State *l)
{
    lua_Integer conf;
    em_str_t    nsp = em_lua_nsp_name(l, 1, &conf), user;

    user.data = luaL_checklstring(l, 2, &user.len);
    return em_lua_set_status(l, conf, nsp, user, luaL_checkstring(l, 3));
}

/* nsp:room_online(room) -> array of the online users with a socket in it */
static int
em_lua_nsp_room_online(lua_State *l)
{
    lua_Integer conf;
    em_str_t    nsp = em_lua_nsp_name(l, 1, &conf), room;

    room.data = luaL_checklstring(l, 2, &room.len);
    em_lua_new_array(l);
    em_room_users(&em_cluster, nsp, room, em_lua_presence_collect, l);
    return 1;
}

/* nsp:room_size(room) -> sockets in it on every worker; nsp:size() -> the
 * namespace's sockets on every worker */
static int
em_lua_nsp_room_size(lua_State *l)
{
    lua_Integer conf;
    em_str_t    nsp = em_lua_nsp_name(l, 1, &conf), room = { "", 0 };

    if (!lua_isnoneornil(l, 2)) {
        room.data = luaL_checklstring(l, 2, &room.len);
    }
    lua_pushinteger(l, em_room_size(&em_cluster, nsp, room));
    return 1;
}

/* nsp:on_presence(event, fn): "online", "offline", "status", "room_online",
 * "room_offline". Each change runs the handlers once, on one worker. */
static int
em_lua_nsp_on_presence(lua_State *l)
{
    lua_Integer conf;
    const char *ev;

    em_lua_nsp_name(l, 1, &conf);
    ev = luaL_checkstring(l, 2);
    luaL_checktype(l, 3, LUA_TFUNCTION);
    if (strcmp(ev, "online") != 0 && strcmp(ev, "offline") != 0 && strcmp(ev, "status") != 0
        && strcmp(ev, "room_online") != 0 && strcmp(ev, "room_offline") != 0) {
        return luaL_error(l, "unknown presence event \"%s\"", ev);
    }
    if (conf < 0) {
        return luaL_error(l, "on_presence needs the script's nsp");
    }
    if (lua_getfield(l, LUA_REGISTRYINDEX, EM_LUA_PRESENCE_KEY) != LUA_TTABLE) {
        lua_pop(l, 1);
        lua_newtable(l);
        lua_pushvalue(l, -1);
        lua_setfield(l, LUA_REGISTRYINDEX, EM_LUA_PRESENCE_KEY);
    }
    if (lua_rawgeti(l, -1, conf) != LUA_TTABLE) {
        lua_pop(l, 1);
        lua_newtable(l);
        lua_pushvalue(l, -1);
        lua_rawseti(l, -3, conf);
    }
    em_lua_handler_add(l, ev, 3);
    lua_settop(l, 1);
    return 1;
}

/* Push the handler list of a configured namespace for ev; 0 if none. */
static int
em_lua_presence_handlers(lua_State *l, lua_Integer conf, const char *ev)
{
    int top = lua_gettop(l);

    if (lua_getfield(l, LUA_REGISTRYINDEX, EM_LUA_PRESENCE_KEY) == LUA_TTABLE
        && lua_rawgeti(l, -1, conf) == LUA_TTABLE && lua_getfield(l, -1, ev) != LUA_TNIL) {
        lua_replace(l, top + 1);
        lua_settop(l, top + 1);
        return 1;
    }
    lua_settop(l, top);
    return 0;
}

/* Run each handler in the list on top with the nargs values below it. */
static void
em_lua_presence_run(lua_State *l, int nargs, const char *what)
{
    int list = lua_gettop(l), first = list - nargs;

    for (lua_Integer i = 1; i <= em_lua_handler_count(l, list); i++) {
        em_lua_handler_push(l, list, i);
        for (int a = 0; a < nargs; a++) {
            lua_pushvalue(l, first + a);
        }
        em_lua_call(nargs, 0, what);
    }
    lua_settop(l, first - 1);
}

static int
em_lua_fire_status(lua_State *l, lua_Integer conf, em_str_t nsp, em_str_t user, int old)
{
    em_presence_t p;
    int           top = lua_gettop(l);

    if (conf < 0 || em_presence_get(&em_cluster, nsp, user, &p) != EM_OK) {
        return 0;
    }
    em_lua_push_presence(l, &p);
    lua_pushstring(l, em_lua_status_names[old & 3]);
    if (em_lua_presence_handlers(l, conf, "status")) {
        em_lua_presence_run(l, 2, "on_presence status");
    }
    lua_settop(l, top);
    return 0;
}

void
em_lua_presence_event(const em_pchange_t *c)
{
    lua_State    *l = em_lua_state();
    size_t        conf;
    em_presence_t p;
    em_str_t      nsp = { c->nsp, strlen(c->nsp) }, user = { c->user, strlen(c->user) };
    const char   *ev;
    int           top;

    if (l == NULL || em_nsp_conf_index(nsp.data, nsp.len, &conf) != EM_OK) {
        return;
    }
    switch (c->what) {
    case EM_PCHG_ONLINE:   ev = "online"; break;
    case EM_PCHG_OFFLINE:  ev = "offline"; break;
    case EM_PCHG_ROOM_IN:  ev = "room_online"; break;
    default:               ev = "room_offline"; break;
    }
    top = lua_gettop(l);
    if (c->room != NULL) {
        lua_pushstring(l, c->room);
    }
    if (em_presence_get(&em_cluster, nsp, user, &p) == EM_OK) {
        em_lua_push_presence(l, &p);
    } else {
        lua_createtable(l, 0, 2);
        lua_pushstring(l, c->user);
        lua_setfield(l, -2, "userId");
        lua_pushstring(l, "offline");
        lua_setfield(l, -2, "status");
    }
    lua_pushstring(l, c->nsp);
    if (em_lua_presence_handlers(l, (lua_Integer) conf, ev)) {
        em_lua_presence_run(l, c->room ? 3 : 2, ev);
    }
    lua_settop(l, top);
}

/* nsp:session_stats() -> {activeSessions, recoveryTokens, queuedMessages,
 * averageSessionAge (ms), evictedMessages} */
static int
em_lua_session_stats(lua_State *l)
{
    em_recovery_stats_t st;
    uint64_t           n;

    em_recovery_stats(&em_cluster, em_state_now(), &st);
    n = st.pid_sessions + st.tokens;
    lua_createtable(l, 0, 5);
    lua_pushinteger(l, (lua_Integer) n);
    lua_setfield(l, -2, "activeSessions");
    lua_pushinteger(l, (lua_Integer) st.tokens);
    lua_setfield(l, -2, "recoveryTokens");
    lua_pushinteger(l, (lua_Integer) st.log_records);
    lua_setfield(l, -2, "queuedMessages");
    lua_pushinteger(l, n ? (lua_Integer) (st.age_sum / (int64_t) n) : 0);
    lua_setfield(l, -2, "averageSessionAge");
    lua_pushinteger(l, (lua_Integer) st.log_evicted);
    lua_setfield(l, -2, "evictedMessages");
    return 1;
}

const luaL_Reg em_lua_cluster_nsp_methods[] = {
    { "presence", em_lua_nsp_presence },
    { "online", em_lua_nsp_online },
    { "users", em_lua_nsp_users },
    { "presence_stats", em_lua_nsp_presence_stats },
    { "set_status", em_lua_nsp_set_status },
    { "room_online", em_lua_nsp_room_online },
    { "room_size", em_lua_nsp_room_size },
    { "size", em_lua_nsp_room_size },
    { "on_presence", em_lua_nsp_on_presence },
    { NULL, NULL }
};

/* ---- emitd.* ---- */

#define EM_LUA_LIMIT_KEY_HASHED (2 + 2 * 16 + 1)

/* A key longer than the shared table keeps is kept as "#\n" and the hex of
 * its 128-bit BLAKE2b hash. */
static const char *
em_lua_limit_key(const char *key, size_t *len, char hashed[EM_LUA_LIMIT_KEY_HASHED])
{
    unsigned char h[16];

    if (*len <= 120) {
        return key;
    }
    crypto_generichash(h, sizeof(h), (const unsigned char *) key, *len, NULL, 0);
    hashed[0] = '#';
    hashed[1] = '\n';
    sodium_bin2hex(hashed + 2, EM_LUA_LIMIT_KEY_HASHED - 2, h, sizeof(h));
    *len = EM_LUA_LIMIT_KEY_HASHED - 1;
    return hashed;
}

/* emitd.limit(key, max, window_ms [, block_ms]) -> allowed, remaining, retry_after_ms */
static int
em_lua_limit(lua_State *l)
{
    size_t            len;
    const char       *key = luaL_checklstring(l, 1, &len);
    lua_Integer       max = luaL_checkinteger(l, 2), window = luaL_checkinteger(l, 3);
    lua_Integer       block = luaL_optinteger(l, 4, 0);
    em_limit_result_t r;

    if (max < 1 || max > UINT32_MAX || window < 1 || block < 0) {
        return luaL_error(l, "emitd.limit: max >= 1, window_ms >= 1, block_ms >= 0");
    }
    char hashed[EM_LUA_LIMIT_KEY_HASHED];
    key = em_lua_limit_key(key, &len, hashed);
    em_limit_hit(&em_cluster, key, len, (uint32_t) max, window, block, em_state_now(), &r);
    lua_pushboolean(l, r.allowed);
    lua_pushinteger(l, r.remaining);
    lua_pushinteger(l, r.retry_after);
    return 3;
}

static int
em_lua_limit_reset(lua_State *l)
{
    size_t      len;
    const char *key = luaL_checklstring(l, 1, &len);
    char        hashed[EM_LUA_LIMIT_KEY_HASHED];

    key = em_lua_limit_key(key, &len, hashed);
    em_limit_reset(&em_cluster, key, len);
    return 0;
}

static void
em_lua_push_metrics(lua_State *l, const em_monitor_figures_t *fp)
{
    em_monitor_figures_t f = *fp;

    lua_createtable(l, 0, 8);
    lua_pushinteger(l, (lua_Integer) f.total);
    lua_setfield(l, -2, "totalConnections");
    lua_pushinteger(l, (lua_Integer) f.active);
    lua_setfield(l, -2, "activeConnections");
    lua_pushinteger(l, (lua_Integer) f.failed);
    lua_setfield(l, -2, "failedConnections");
    lua_pushinteger(l, (lua_Integer) f.avg_duration);
    lua_setfield(l, -2, "averageConnectionDuration");
    lua_pushinteger(l, (lua_Integer) f.peak);
    lua_setfield(l, -2, "peakConnections");
    lua_pushinteger(l, (lua_Integer) f.per_minute);
    lua_setfield(l, -2, "connectionsPerMinute");
    lua_pushinteger(l, (lua_Integer) f.violations);
    lua_setfield(l, -2, "limitViolations");
    lua_pushinteger(l, f.last_reset);
    lua_setfield(l, -2, "lastReset");
}

/* emitd.metrics() */
static int
em_lua_metrics(lua_State *l)
{
    em_monitor_figures_t f;

    em_monitor_read(&em_cluster, em_state_now(), &f);
    em_lua_push_metrics(l, &f);
    return 1;
}

static int
em_lua_metrics_reset(lua_State *l)
{
    em_monitor_reset(&em_cluster, em_state_now());
    (void) l;
    return 0;
}

typedef struct {
    const char *type, *user, *ip;
} em_lua_evfilter_t;

static int
em_lua_event_match(const em_st_event_t *ev, void *arg)
{
    em_lua_evfilter_t *f = arg;

    return (f->type == NULL || strcmp(ev->type, f->type) == 0)
           && (f->user == NULL || strcmp(ev->user, f->user) == 0)
           && (f->ip == NULL || strcmp(ev->ip, f->ip) == 0);
}

static void
em_lua_push_events(lua_State *l, size_t limit, em_lua_evfilter_t *f)
{
    em_st_event_t *evs = calloc(limit ? limit : 1, sizeof(*evs));
    size_t         n = evs ? em_monitor_events(&em_cluster, evs, limit, em_lua_event_match, f) : 0;

    em_lua_new_array(l);
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_loads(evs[i].details, 0, NULL);
        lua_createtable(l, 0, 8);
        lua_pushstring(l, evs[i].type);
        lua_setfield(l, -2, "type");
        lua_pushstring(l, evs[i].sid);
        lua_setfield(l, -2, "socketId");
        lua_pushstring(l, evs[i].nsp);
        lua_setfield(l, -2, "namespace");
        if (evs[i].user[0]) {
            lua_pushstring(l, evs[i].user);
            lua_setfield(l, -2, "userId");
        }
        lua_pushstring(l, evs[i].ip);
        lua_setfield(l, -2, "ipAddress");
        lua_pushstring(l, evs[i].ua);
        lua_setfield(l, -2, "userAgent");
        lua_pushinteger(l, evs[i].time);
        lua_setfield(l, -2, "timestamp");
        if (d == NULL || em_lua_push_json(l, d, NULL, 0) != EM_OK) {
            lua_newtable(l);
        }
        json_decref(d);
        lua_setfield(l, -2, "details");
        lua_rawseti(l, -2, (lua_Integer) i + 1);
    }
    free(evs);
}

/* emitd.connection_events({limit = 50, type = ..., userId = ..., ip = ...}) */
static int
em_lua_connection_events(lua_State *l)
{
    em_lua_evfilter_t f = { NULL, NULL, NULL };
    lua_Integer       limit = 50;

    if (lua_istable(l, 1)) {
        lua_getfield(l, 1, "limit");
        limit = lua_isinteger(l, -1) ? lua_tointeger(l, -1) : 50;
        lua_getfield(l, 1, "type");
        f.type = lua_tostring(l, -1);
        lua_getfield(l, 1, "userId");
        f.user = lua_tostring(l, -1);
        lua_getfield(l, 1, "ip");
        f.ip = lua_tostring(l, -1);
    }
    if (limit < 0) {
        limit = 0;
    } else if (limit > EM_ST_EVENTS) {
        limit = EM_ST_EVENTS;
    }
    em_lua_push_events(l, (size_t) limit, &f);
    return 1;
}

/* emitd.monitor_stats() -> {metrics, recentEvents, topIPs, topUserAgents, errorRate} */
static int
em_lua_monitor_stats(lua_State *l)
{
    em_monitor_top_t     top[10];
    em_monitor_figures_t f;
    em_lua_evfilter_t    none = { NULL, NULL, NULL };

    em_monitor_read(&em_cluster, em_state_now(), &f);
    lua_createtable(l, 0, 5);
    em_lua_push_metrics(l, &f);
    lua_setfield(l, -2, "metrics");
    em_lua_push_events(l, 10, &none);
    lua_setfield(l, -2, "recentEvents");
    for (int which = 0; which < 2; which++) {
        size_t n = em_monitor_top(&em_cluster, which, top, 10);
        em_lua_new_array(l);
        for (size_t i = 0; i < n; i++) {
            lua_createtable(l, 0, 2);
            lua_pushstring(l, top[i].key);
            lua_setfield(l, -2, which ? "userAgent" : "ip");
            lua_pushinteger(l, (lua_Integer) top[i].count);
            lua_setfield(l, -2, "count");
            lua_rawseti(l, -2, (lua_Integer) i + 1);
        }
        lua_setfield(l, -2, which ? "topUserAgents" : "topIPs");
    }
    lua_pushnumber(l, f.total + f.failed ? (double) f.failed / (double) (f.total + f.failed) : 0.0);
    lua_setfield(l, -2, "errorRate");
    return 1;
}

/* emitd.record_event(type, socket | nil, details) */
static int
em_lua_record_event(lua_State *l)
{
    const char      *type = luaL_checkstring(l, 1);
    em_sio_socket_t *s = lua_isnoneornil(l, 2) ? NULL : em_lua_check_socket(l, 2);
    em_st_event_t    ev;
    char             err[160];
    char            *text = NULL;

    if (!lua_isnoneornil(l, 3)) {
        json_t *d = em_lua_to_json(l, 3, NULL, err, sizeof(err));
        if (d == NULL) {
            return luaL_error(l, "record_event details: %s", err);
        }
        text = json_dumps(d, JSON_COMPACT);
        json_decref(d);
    }
    em_str_t none = { "", 0 }, details = { text, text ? strlen(text) : 0 };
    if (s != NULL) {
        em_monitor_event_fill(&ev, type, (em_str_t) { s->id, EM_SID_LEN },
                              (em_str_t) { s->nsp->name, s->nsp->name_len },
                              s->user ? (em_str_t) { s->user, strlen(s->user) } : none,
                              em_cluster_socket_ip(s), em_cluster_socket_ua(s), details);
    } else {
        em_monitor_event_fill(&ev, type, none, none, none, none, none, details);
    }
    em_monitor_record(&em_cluster, &ev);
    free(text);
    return 0;
}

/* emitd.isotime(ms) -> "2025-01-09T21:30:00.000Z" */
static int
em_lua_isotime(lua_State *l)
{
    lua_Integer ms = luaL_optinteger(l, 1, em_state_now());
    time_t      t = (time_t) (ms / 1000);
    struct tm   tm;
    char        buf[40];

    if (gmtime_r(&t, &tm) == NULL) {
        return luaL_error(l, "isotime: time out of range");
    }
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int) (ms % 1000 + 1000) % 1000);
    lua_pushstring(l, buf);
    return 1;
}

const luaL_Reg em_lua_cluster_emitd_fns[] = {
    { "limit", em_lua_limit },
    { "limit_reset", em_lua_limit_reset },
    { "metrics", em_lua_metrics },
    { "metrics_reset", em_lua_metrics_reset },
    { "connection_events", em_lua_connection_events },
    { "monitor_stats", em_lua_monitor_stats },
    { "record_event", em_lua_record_event },
    { "session_stats", em_lua_session_stats },
    { "isotime", em_lua_isotime },
    { NULL, NULL }
};
