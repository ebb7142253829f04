/*
 * em_lua_timer.c - the timer object of the Lua API: emitd.after(ms, fn),
 * emitd.every(ms, fn), socket:after(ms, fn), socket:every(ms, fn), each
 * returning a timer with :cancel(). Timers run on the worker's libevent
 * loop, as protected calls under limits.script_time like any handler. One
 * tied to a socket never fires once the socket is gone: it stops instead.
 *
 * A pending timer holds a registry reference to itself (so the script need
 * not keep it) and to its function; stopping drops both.
 */
#include <event2/event.h>
#include <event2/event_struct.h>
#include <lauxlib.h>
#include <sys/time.h>

#include "em_log.h"
#include "em_loop.h"
#include "em_lua_int.h"

#define EM_LUA_TIMER_MT     "emitd.timer"
#define EM_LUA_TIMERS_MAX   100000          /* pending per worker */
#define EM_LUA_TIMER_MS_MAX 2147483647      /* about 24.8 days */

typedef struct {
    struct event ev;
    int          self_ref;      /* while pending */
    int          fn_ref;        /* while pending */
    int          sock_ref;      /* the socket object it is tied to, or LUA_NOREF */
    unsigned     pending:1;
    unsigned     repeat:1;
} em_lua_timer_t;

static unsigned em_lua_timers;

static void
em_lua_timer_stop(lua_State *l, em_lua_timer_t *t)
{
    if (!t->pending) {
        return;
    }
    event_del(&t->ev);
    t->pending = 0;
    em_lua_timers--;
    luaL_unref(l, LUA_REGISTRYINDEX, t->fn_ref);
    luaL_unref(l, LUA_REGISTRYINDEX, t->sock_ref);
    luaL_unref(l, LUA_REGISTRYINDEX, t->self_ref);
    t->fn_ref = t->sock_ref = t->self_ref = LUA_NOREF;
}

static void
em_lua_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    em_lua_timer_t *t = arg;
    lua_State      *l = em_lua_vm;
    int             top;
    (void) fd;
    (void) what;

    if (l == NULL || !t->pending) {
        return;
    }
    top = lua_gettop(l);
    /* The timer and its function stay on the stack while it runs, even if
     * it is stopped meanwhile. */
    lua_rawgeti(l, LUA_REGISTRYINDEX, t->self_ref);
    if (t->sock_ref != LUA_NOREF) {
        lua_rawgeti(l, LUA_REGISTRYINDEX, t->sock_ref);
        em_sio_socket_t *s = em_lua_check_socket(l, -1);
        lua_pop(l, 1);
        if (s == NULL || !em_sio_socket_live(s)) {
            em_lua_timer_stop(l, t);        /* its socket is gone: never fires */
            lua_settop(l, top);
            return;
        }
    }
    lua_rawgeti(l, LUA_REGISTRYINDEX, t->fn_ref);
    if (!t->repeat) {
        em_lua_timer_stop(l, t);
    }
    em_lua_call(0, 0, t->repeat ? "a timer of emitd.every" : "a timer of emitd.after");
    lua_settop(l, top);
}

/* timer:cancel() -> true if it was pending */
static int
em_lua_timer_cancel(lua_State *l)
{
    em_lua_timer_t *t = luaL_checkudata(l, 1, EM_LUA_TIMER_MT);
    int             was = t->pending;

    em_lua_timer_stop(l, t);
    lua_pushboolean(l, was);
    return 1;
}

/* timer:pending() -> whether it will still fire */
static int
em_lua_timer_is_pending(lua_State *l)
{
    em_lua_timer_t *t = luaL_checkudata(l, 1, EM_LUA_TIMER_MT);

    lua_pushboolean(l, t->pending);
    return 1;
}

static int
em_lua_timer_gc(lua_State *l)
{
    em_lua_timer_t *t = luaL_checkudata(l, 1, EM_LUA_TIMER_MT);

    /* Only when the state closes can a pending one be collected. */
    if (t->pending) {
        event_del(&t->ev);
        t->pending = 0;
        em_lua_timers--;
    }
    return 0;
}

int
em_lua_timer_start(lua_State *l, int ms_idx, int sock_idx, int repeat)
{
    lua_Integer     ms = luaL_checkinteger(l, ms_idx);
    em_lua_timer_t *t;

    luaL_checktype(l, ms_idx + 1, LUA_TFUNCTION);
    if (ms < (repeat ? 1 : 0) || ms > EM_LUA_TIMER_MS_MAX) {
        return luaL_error(l, "%s: ms must be an integer from %d to %d", repeat ? "every" : "after",
                          repeat ? 1 : 0, EM_LUA_TIMER_MS_MAX);
    }
    if (em_lua_timers >= EM_LUA_TIMERS_MAX) {
        return luaL_error(l, "more than %d timers pending in this worker", EM_LUA_TIMERS_MAX);
    }
    t = lua_newuserdatauv(l, sizeof(*t), 0);
    t->pending = 0;
    t->repeat = repeat ? 1 : 0;
    t->self_ref = t->fn_ref = t->sock_ref = LUA_NOREF;
    luaL_setmetatable(l, EM_LUA_TIMER_MT);
    if (em_loop.base == NULL) {
        return 1;       /* emitd -t: no loop, nothing runs; a timer that never fires */
    }
    event_assign(&t->ev, em_loop.base, -1, repeat ? EV_PERSIST : 0, em_lua_timer_cb, t);
    struct timeval tv = { (time_t) (ms / 1000), (suseconds_t) (ms % 1000) * 1000 };
    if (event_add(&t->ev, &tv) != 0) {
        return luaL_error(l, "cannot add a timer to the event loop");
    }
    t->pending = 1;
    em_lua_timers++;
    lua_pushvalue(l, ms_idx + 1);
    t->fn_ref = luaL_ref(l, LUA_REGISTRYINDEX);
    if (sock_idx > 0) {
        lua_pushvalue(l, sock_idx);
        t->sock_ref = luaL_ref(l, LUA_REGISTRYINDEX);
    }
    lua_pushvalue(l, -1);
    t->self_ref = luaL_ref(l, LUA_REGISTRYINDEX);
    return 1;
}

static const luaL_Reg em_lua_timer_methods[] = {
    { "cancel", em_lua_timer_cancel },
    { "pending", em_lua_timer_is_pending },
    { NULL, NULL }
};

void
em_lua_timer_open(lua_State *l)
{
    luaL_newmetatable(l, EM_LUA_TIMER_MT);
    luaL_newlib(l, em_lua_timer_methods);
    lua_setfield(l, -2, "__index");
    lua_pushcfunction(l, em_lua_timer_gc);
    lua_setfield(l, -2, "__gc");
    lua_pop(l, 1);
}
