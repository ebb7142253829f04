/*
 * em_lua_emitd.c - the emitd table of the Lua API (buffers, JSON shapes, log,
 * json_encode/decode, now, broker counts, isotime; and from the cluster-wide
 * state: limit/limit_reset, metrics/metrics_reset, connection_events,
 * monitor_stats, record_event, session_stats) and print().
 */
#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#include <sodium.h>
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

/* ---- rate limits, monitoring and sessions (the cluster-wide state) ---- */

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

/* emitd.session_stats() -> {activeSessions, recoveryTokens, queuedMessages,
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

/* emitd.after(ms, fn) / emitd.every(ms, fn) -> timer (em_lua_timer.c) */
static int
em_lua_after(lua_State *l)
{
    return em_lua_timer_start(l, 1, 0, 0);
}

static int
em_lua_every(lua_State *l)
{
    return em_lua_timer_start(l, 1, 0, 1);
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
    { "limit", em_lua_limit },
    { "limit_reset", em_lua_limit_reset },
    { "metrics", em_lua_metrics },
    { "metrics_reset", em_lua_metrics_reset },
    { "connection_events", em_lua_connection_events },
    { "monitor_stats", em_lua_monitor_stats },
    { "record_event", em_lua_record_event },
    { "session_stats", em_lua_session_stats },
    { "isotime", em_lua_isotime },
    { "after", em_lua_after },
    { "every", em_lua_every },
    { "http", em_lua_http },
    { NULL, NULL }
};

/* The buffer metatable, the JSON shape markers, print() and the emitd table
 * as the global "emitd". */
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
    lua_pushlightuserdata(l, &em_lua_null_sentinel);
    lua_setfield(l, -2, "null");
    lua_pushinteger(l, em_loop.slot + 1);
    lua_setfield(l, -2, "worker");
    lua_pushstring(l, EM_VERSION);
    lua_setfield(l, -2, "version");
    em_lua_store_open(l);
    lua_setglobal(l, "emitd");
}
