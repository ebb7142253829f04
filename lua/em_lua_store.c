/*
 * em_lua_store.c - emitd.store, the scripts' key/value store and lists,
 * the same on every worker (the state segment's store zone, em_store.c).
 * Values are any JSON value a script can make (tables, strings, numbers,
 * booleans, emitd.null), kept as their JSON text:
 *
 *   emitd.store.set(key, value [, ttl_ms])   -> true | false, error
 *   emitd.store.get(key)                     -> value | nil
 *   emitd.store.incr(key [, by [, ttl_ms]])  -> n | nil, error
 *   emitd.store.del(key)                     -> true if it was there
 *   emitd.store.push(key, value, cap [, ttl_ms]) -> length | nil, error
 *   emitd.store.range(key [, start [, stop]])    -> array (oldest first)
 *   emitd.store.len(key)                     -> n
 *   emitd.store.stats()                      -> { entries, capacity, evicted }
 */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "em_cluster.h"
#include "em_log.h"
#include "em_loop.h"
#include "em_lua.h"
#include "em_lua_int.h"
#include "em_luajson.h"
#include "em_rreq.h"

/* With redis, a write goes to the other hosts' stores too. */
static void
em_lua_store_share(int op, em_str_t key, em_str_t value, int64_t num, int64_t ttl, uint32_t cap,
                   int64_t written)
{
    static int64_t logged;
    int64_t        now = em_state_now();
    em_rstore_op_t o = { op, key, value, num, ttl, cap, written };

    if (em_rreq_store(&o) == EM_ERROR && now - logged >= 1000) {
        em_log(EM_LOG_WARN, 0, "emitd.store: a write of key \"%.*s\" could not go to the other hosts",
               (int) EM_MIN(key.len, 64), key.data);
        logged = now;
    }
}

static em_str_t
em_lua_store_key(lua_State *l, int idx)
{
    em_str_t k;

    k.data = luaL_checklstring(l, idx, &k.len);
    if (k.len == 0 || k.len > EM_ST_KV_KEY_MAX) {
        luaL_error(l, "emitd.store: a key must be 1 to %d bytes", EM_ST_KV_KEY_MAX);
    }
    return k;
}

static int64_t
em_lua_store_ttl(lua_State *l, int idx)
{
    if (lua_isnoneornil(l, idx)) {
        return 0;
    }
    lua_Integer t = luaL_checkinteger(l, idx);
    if (t < 0 || t > (lua_Integer) 365 * 24 * 3600 * 1000) {
        luaL_error(l, "emitd.store: ttl must be 0 (none) to a year in ms");
    }
    return (int64_t) t;
}

/* The JSON text of the value at idx, as a Lua string left on the stack. */
static em_str_t
em_lua_store_text(lua_State *l, int idx)
{
    char     err[160];
    json_t  *j = em_lua_to_json(l, idx, NULL, err, sizeof(err));
    em_str_t v;

    if (j == NULL) {
        luaL_error(l, "emitd.store: the value cannot be JSON: %s", err);
    }
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    if (text == NULL) {
        luaL_error(l, "emitd.store: out of memory");
    }
    lua_pushstring(l, text);
    free(text);
    v.data = lua_tolstring(l, -1, &v.len);
    if (v.len > EM_ST_KV_VALUE_MAX) {
        luaL_error(l, "emitd.store: a value of %d bytes of JSON is over %d", (int) v.len,
                   EM_ST_KV_VALUE_MAX);
    }
    return v;
}

static int
em_lua_store_fail(lua_State *l, int why)
{
    lua_pushnil(l);
    lua_pushstring(l, why == EM_KV_NOT_INT ? "the key holds something other than an integer"
                      : why == EM_KV_NOT_LIST ? "the key holds something other than a list"
                      : why == EM_KV_TOO_LONG ? "key or value too long"
                      : "the store is full");
    return 2;
}

/* Push JSON text as a Lua value (nil when it does not parse). */
static void
em_lua_store_push(lua_State *l, const char *text, size_t len)
{
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

    if (j == NULL || em_lua_push_json(l, j, NULL, 0) != EM_OK) {
        lua_pushnil(l);
    }
    json_decref(j);
}

static int
em_lua_store_get(lua_State *l)
{
    em_str_t k = em_lua_store_key(l, 1);
    char     buf[EM_ST_KV_VALUE_MAX];
    size_t   len;

    if (em_kv_get(&em_cluster, k, em_state_now(), buf, sizeof(buf), &len) != EM_OK) {
        lua_pushnil(l);
        return 1;
    }
    em_lua_store_push(l, buf, len);
    return 1;
}

static int
em_lua_store_set(lua_State *l)
{
    em_str_t k = em_lua_store_key(l, 1);
    int64_t  ttl = em_lua_store_ttl(l, 3);
    int      why = 0;

    luaL_checkany(l, 2);
    em_str_t v = em_lua_store_text(l, 2);
    int64_t  written;
    if (em_kv_set_w(&em_cluster, k, v, ttl, em_state_now(), &written, &why) != EM_OK) {
        em_lua_store_fail(l, why);
        lua_pushboolean(l, 0);
        lua_replace(l, -3);
        return 2;
    }
    em_lua_store_share(EM_RSTORE_SET, k, v, 0, ttl, 0, written);
    lua_pushboolean(l, 1);
    return 1;
}

static int
em_lua_store_incr(lua_State *l)
{
    em_str_t    k = em_lua_store_key(l, 1);
    lua_Integer by = luaL_optinteger(l, 2, 1);
    int64_t     ttl = em_lua_store_ttl(l, 3), out;
    int         why = 0;

    int64_t     now = em_state_now();
    if (em_kv_incr(&em_cluster, k, (int64_t) by, ttl, now, &out, &why) != EM_OK) {
        return em_lua_store_fail(l, why);
    }
    em_lua_store_share(EM_RSTORE_INCR, k, (em_str_t) { "", 0 }, (int64_t) by, ttl, 0, now);
    lua_pushinteger(l, (lua_Integer) out);
    return 1;
}

static int
em_lua_store_del(lua_State *l)
{
    em_str_t k = em_lua_store_key(l, 1);
    int64_t  written;

    lua_pushboolean(l, em_kv_del_w(&em_cluster, k, em_state_now(), &written));
    em_lua_store_share(EM_RSTORE_DEL, k, (em_str_t) { "", 0 }, 0, 0, 0, written);
    return 1;
}

static int
em_lua_store_pushv(lua_State *l)
{
    em_str_t    k = em_lua_store_key(l, 1);
    lua_Integer cap = luaL_checkinteger(l, 3);
    int64_t     ttl = em_lua_store_ttl(l, 4);
    uint32_t    n;
    int         why = 0;

    luaL_checkany(l, 2);
    if (cap < 1 || cap > 100000) {
        return luaL_error(l, "emitd.store.push: cap must be 1 to 100000");
    }
    em_str_t v = em_lua_store_text(l, 2);
    int64_t  now = em_state_now();
    if (em_kv_push(&em_cluster, k, v, (uint32_t) cap, ttl, now, &n, &why) != EM_OK) {
        return em_lua_store_fail(l, why);
    }
    em_lua_store_share(EM_RSTORE_PUSH, k, v, 0, ttl, (uint32_t) cap, now);
    lua_pushinteger(l, n);
    return 1;
}

static void
em_lua_store_item(const char *value, size_t len, void *arg)
{
    lua_State *l = arg;

    if (lua_checkstack(l, 4)) {
        em_lua_store_push(l, value, len);
        lua_rawseti(l, -2, (lua_Integer) lua_rawlen(l, -2) + 1);
    }
}

static int
em_lua_store_range(lua_State *l)
{
    em_str_t    k = em_lua_store_key(l, 1);
    lua_Integer start = luaL_optinteger(l, 2, 0), stop = luaL_optinteger(l, 3, -1);

    em_lua_new_array(l);
    em_kv_range(&em_cluster, k, (int64_t) start, (int64_t) stop, em_state_now(), em_lua_store_item, l);
    return 1;
}

static int
em_lua_store_len(lua_State *l)
{
    em_str_t k = em_lua_store_key(l, 1);

    lua_pushinteger(l, em_kv_len(&em_cluster, k, em_state_now()));
    return 1;
}

static int
em_lua_store_stats(lua_State *l)
{
    em_kv_stats_t s;

    em_kv_stats(&em_cluster, &s);
    lua_createtable(l, 0, 3);
    lua_pushinteger(l, s.entries);
    lua_setfield(l, -2, "entries");
    lua_pushinteger(l, s.capacity);
    lua_setfield(l, -2, "capacity");
    lua_pushinteger(l, (lua_Integer) s.evicted);
    lua_setfield(l, -2, "evicted");
    return 1;
}

static const luaL_Reg em_lua_store_fns[] = {
    { "get", em_lua_store_get },
    { "set", em_lua_store_set },
    { "incr", em_lua_store_incr },
    { "del", em_lua_store_del },
    { "push", em_lua_store_pushv },
    { "range", em_lua_store_range },
    { "len", em_lua_store_len },
    { "stats", em_lua_store_stats },
    { NULL, NULL }
};

/* emitd.store, on the emitd table on top of the stack. */
void
em_lua_store_open(lua_State *l)
{
    luaL_newlib(l, em_lua_store_fns);
    lua_setfield(l, -2, "store");
}
