/*
 * em_lua.c - the Lua 5.4 handler API.
 *
 * Objects handed to scripts:
 *   socket  full userdata boxing an em_sio_socket_t pointer (NULL once the
 *           socket is gone, so a script that keeps it cannot crash us); its
 *           user value is a table with id, nsp, handshake, data, params and
 *           the script's handlers (_h) and pending ack callbacks (_acks);
 *   conn    the same for a raw Engine.IO session;
 *   nsp and broadcast operators: tables {_conf|_nsp, _rooms, _except, _skip}
 *           with methods to/in/except/emit (Socket.IO's BroadcastOperator);
 *   buffer  binary data (em_luajson.c).
 * Every call into a script goes through em_lua_call(): protected, with a
 * traceback, and with an instruction-count hook that stops a handler that
 * runs away.
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

lua_State        *em_lua_vm;          /* the thread running now (the main one between calls) */
static lua_State *em_lua_main;        /* the state's main thread */
int              *em_lua_nsp_env;      /* per configured namespace: env ref or LUA_NOREF */
int              *em_lua_ep_env;       /* per endpoint (raw ones): env ref or LUA_NOREF */
static struct timespec em_lua_deadline;
static int        em_lua_depth;
int               em_lua_any_nsp;      /* some namespace has a script */
static size_t     em_lua_mem;          /* bytes the state holds */

const char *const em_lua_reserved[] = {
    "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener", NULL
};

/* ---- calling scripts ---- */

/*
 * The state's allocator. While a script runs (inside em_lua_call), growing
 * past limits.script_memory fails, which Lua turns into a "not enough
 * memory" error of that call after an emergency collection; what C code
 * pushes outside a call (sockets' objects, a packet's arguments, already
 * bounded by the other limits) is never refused, so an unprotected API call
 * cannot fail.
 */
static void *
em_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    size_t old = ptr != NULL ? osize : 0;
    void  *p;
    (void) ud;

    if (nsize == 0) {
        free(ptr);
        em_lua_mem -= old;
        return NULL;
    }
    if (nsize > old && em_lua_depth > 0
        && em_lua_mem - old + nsize > em_loop.conf->limits.script_memory) {
        return NULL;
    }
    p = realloc(ptr, nsize);
    if (p != NULL) {
        em_lua_mem = em_lua_mem - old + nsize;
    }
    return p;
}

static int
em_lua_panic(lua_State *l)
{
    em_log(EM_LOG_ERR, 0, "unprotected error in a Lua call: %s",
           lua_type(l, -1) == LUA_TSTRING ? lua_tostring(l, -1) : "(not a string)");
    return 0;       /* Lua aborts the process */
}

static void
em_lua_hook(lua_State *l, lua_Debug *ar)
{
    struct timespec now;
    (void) ar;

    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > em_lua_deadline.tv_sec
        || (now.tv_sec == em_lua_deadline.tv_sec && now.tv_nsec > em_lua_deadline.tv_nsec)) {
        luaL_error(l, "handler ran longer than %d ms", (int) em_loop.conf->limits.script_time);
    }
}

static int
em_lua_traceback(lua_State *l)
{
    const char *msg = lua_tostring(l, 1);

    if (msg == NULL) {
        msg = lua_pushfstring(l, "(error object is a %s value)", luaL_typename(l, 1));
    }
    luaL_traceback(l, l, msg, 1);
    return 1;
}


/* A call into a script starts: the runaway deadline is set by the
 * outermost one. */
static void
em_lua_enter(void)
{
    if (em_lua_depth++ == 0) {
        unsigned ms = em_loop.conf->limits.script_time;
        clock_gettime(CLOCK_MONOTONIC, &em_lua_deadline);
        em_lua_deadline.tv_sec += ms / 1000;
        em_lua_deadline.tv_nsec += (long) (ms % 1000) * 1000000L;
        if (em_lua_deadline.tv_nsec >= 1000000000L) {
            em_lua_deadline.tv_sec++;
            em_lua_deadline.tv_nsec -= 1000000000L;
        }
    }
}

static uint64_t em_lua_errors;

static void
em_lua_log_error(const char *what, const char *name, const char *msg)
{
    em_lua_errors++;
    em_stat_add(em_loop.stats->script_errors, 1);
    if (name != NULL) {
        em_log(EM_LOG_ERR, 0, "script error in %s\"%.100s\": %s", what, name, msg);
    } else {
        em_log(EM_LOG_ERR, 0, "script error in %s: %s", what, msg);
    }
}

uint64_t
em_lua_error_count(void)
{
    return em_lua_errors;
}

/* Threads that ran a handler to its end, kept for the next ones. */
#define EM_LUA_POOL 32
static int em_lua_pool[EM_LUA_POOL];
static int em_lua_npool;

/* Push a thread to run a handler in (from the pool, or a new one). */
static lua_State *
em_lua_thread(void)
{
    if (em_lua_npool > 0) {
        int ref = em_lua_pool[--em_lua_npool];
        lua_rawgeti(em_lua_vm, LUA_REGISTRYINDEX, ref);
        luaL_unref(em_lua_vm, LUA_REGISTRYINDEX, ref);
        return lua_tothread(em_lua_vm, -1);
    }
    return lua_newthread(em_lua_vm);
}

int
em_lua_resume(lua_State *co, int nargs, const char *what, const char *name)
{
    lua_State *prev = em_lua_vm;
    int        nres, rc;

    em_lua_enter();
    em_lua_vm = co;     /* what the C functions it calls push onto */
    rc = lua_resume(co, prev, nargs, &nres);
    em_lua_vm = prev;
    em_lua_depth--;
    if (rc == LUA_OK || rc == LUA_YIELD) {
        lua_pop(co, nres);
        return rc == LUA_OK ? EM_OK : EM_AGAIN;
    }
    const char *msg = lua_tostring(co, -1);
    luaL_traceback(prev, co, msg != NULL ? msg : "(error object is not a string)", 0);
    em_lua_log_error(what, name, lua_tostring(prev, -1));
    lua_pop(prev, 1);
    return EM_ERROR;
}

/* Call the function below nargs arguments; keeps nres results on success. */
int
em_lua_call(int nargs, int nres, const char *what)
{
    return em_lua_call_named(nargs, nres, what, NULL);
}

/* The same; an error names `what` followed by `name` in quotes (when given),
 * formatted only if there is an error. A call that keeps no results runs
 * in a coroutine of its own, so that what it calls may wait (emitd.http):
 * it then goes on later, and this returns EM_OK at once. */
int
em_lua_call_named(int nargs, int nres, const char *what, const char *name)
{
    int base = lua_gettop(em_lua_vm) - nargs;
    int rc;

    if (nres == 0) {
        lua_State *co = em_lua_thread();
        lua_insert(em_lua_vm, base);            /* the thread below the function */
        if (co == NULL || !lua_checkstack(co, nargs + 1 + LUA_MINSTACK)) {
            lua_settop(em_lua_vm, base - 1);
            em_lua_log_error(what, name, "no memory for the handler's stack");
            return EM_ERROR;
        }
        lua_xmove(em_lua_vm, co, nargs + 1);
        rc = em_lua_resume(co, nargs, what, name);
        if (rc == EM_OK && em_lua_npool < EM_LUA_POOL && lua_gettop(co) == 0) {
            em_lua_pool[em_lua_npool++] = luaL_ref(em_lua_vm, LUA_REGISTRYINDEX);
        } else {
            lua_pop(em_lua_vm, 1);              /* a waiting one is kept by what it waits for */
        }
        return rc == EM_ERROR ? EM_ERROR : EM_OK;
    }
    em_lua_enter();
    lua_pushcfunction(em_lua_vm, em_lua_traceback);
    lua_insert(em_lua_vm, base);
    rc = lua_pcall(em_lua_vm, nargs, nres, base);
    lua_remove(em_lua_vm, base);
    em_lua_depth--;
    if (rc != LUA_OK) {
        em_lua_log_error(what, name, lua_tostring(em_lua_vm, -1));
        lua_pop(em_lua_vm, 1);
        return EM_ERROR;
    }
    return EM_OK;
}

/* ---- building packets from Lua arguments ---- */

/* JSON array of stack values [first, last] (plus `event` first if not NULL). */
/* With `log`, an EVENT without ack goes through em_cluster_event_pkt (an
 * offset for connection-state recovery); b / self say who receives it. */
int
em_lua_args_pkt(em_pkt_t *pkt, em_sio_type_t type, em_str_t nsp, int64_t id, int first, int last,
                int log, const em_bcast_t *b, const em_sio_socket_t *self)
{
    em_lua_bins_t bins = { 0 };
    json_t       *arr = json_array();
    char          err[160];

    if (arr == NULL) {
        return luaL_error(em_lua_vm, "out of memory");
    }
    for (int i = first; i <= last; i++) {
        json_t *v = em_lua_to_json(em_lua_vm, i, &bins, err, sizeof(err));
        if (v == NULL) {
            json_decref(arr);
            em_lua_bins_free(&bins);
            return luaL_error(em_lua_vm, "argument %d: %s", i - first + 1, err);
        }
        json_array_append_new(arr, v);
    }
    if (bins.n > em_loop.conf->limits.attachments) {
        /* Clients refuse them as servers do (socket.io-parser's
         * maxAttachments): say so here rather than have them disconnect. */
        int n = (int) bins.n;
        json_decref(arr);
        em_lua_bins_free(&bins);
        return luaL_error(em_lua_vm, "%d binary arguments in one packet: more than limits.attachments (%d)",
                          n, (int) em_loop.conf->limits.attachments);
    }
    int rc = (log && type == EM_SIO_EVENT && id == EM_SIO_NO_ID)
                 ? em_cluster_event_pkt(pkt, nsp, arr, bins.att, bins.n, b, self)
                 : em_sio_pkt_build(pkt, type, nsp, id, arr, bins.att, bins.n);
    json_decref(arr);
    if (rc != EM_OK) {
        return luaL_error(em_lua_vm, "cannot encode the packet");
    }
    return 0;
}


/* Push a value of the configuration's "vars" (a table for a group or list). */
static void
em_lua_push_var(const em_conf_var_t *v)
{
    switch (v->type) {
    case EM_VAR_STRING:
        lua_pushstring(em_lua_vm, v->s);
        return;
    case EM_VAR_INT:
        lua_pushinteger(em_lua_vm, (lua_Integer) v->i);
        return;
    case EM_VAR_FLOAT:
        lua_pushnumber(em_lua_vm, v->f);
        return;
    case EM_VAR_BOOL:
        lua_pushboolean(em_lua_vm, (int) v->i);
        return;
    default:
        break;
    }
    luaL_checkstack(em_lua_vm, 4, "vars");       /* nested at most EM_CONF_VARS_DEPTH */
    lua_createtable(em_lua_vm, v->type == EM_VAR_LIST ? (int) v->nkids : 0,
                    v->type == EM_VAR_GROUP ? (int) v->nkids : 0);
    for (size_t i = 0; i < v->nkids; i++) {
        em_lua_push_var(&v->kids[i]);
        if (v->type == EM_VAR_GROUP) {
            lua_setfield(em_lua_vm, -2, v->kids[i].name);
        } else {
            lua_rawseti(em_lua_vm, -2, (lua_Integer) i + 1);
        }
    }
}

/* Run a script in a fresh environment; returns its env ref or LUA_NOREF. */
static int
em_lua_load(const char *path, const char *nsp_name, lua_Integer conf_index)
{
    lua_newtable(em_lua_vm);                               /* env */
    int env = lua_gettop(em_lua_vm);
    lua_newtable(em_lua_vm);
    lua_pushglobaltable(em_lua_vm);
    lua_setfield(em_lua_vm, -2, "__index");
    lua_setmetatable(em_lua_vm, env);
    /* The configuration's "vars", a copy of its own for each script. */
    if (em_loop.conf->vars != NULL) {
        em_lua_push_var(em_loop.conf->vars);
    } else {
        lua_newtable(em_lua_vm);
    }
    lua_setfield(em_lua_vm, env, "vars");
    if (nsp_name != NULL) {
        lua_createtable(em_lua_vm, 0, 2);
        em_str_t wire = em_conf_nsp_wire(nsp_name, strlen(nsp_name));
        lua_pushlstring(em_lua_vm, wire.data, wire.len);
        lua_setfield(em_lua_vm, -2, "name");
        lua_pushinteger(em_lua_vm, conf_index);
        lua_setfield(em_lua_vm, -2, "_conf");
        luaL_setmetatable(em_lua_vm, EM_LUA_BCAST_MT);
        lua_setfield(em_lua_vm, env, "nsp");
    }
    if (luaL_loadfilex(em_lua_vm, path, "t") != LUA_OK) {
        em_log(EM_LOG_ERR, 0, "cannot load script: %s", lua_tostring(em_lua_vm, -1));
        lua_settop(em_lua_vm, env - 1);
        return LUA_NOREF;
    }
    lua_pushvalue(em_lua_vm, env);
    lua_setupvalue(em_lua_vm, -2, 1);                      /* _ENV */
    if (em_lua_call(0, 0, path) != EM_OK) {
        lua_settop(em_lua_vm, env - 1);
        return LUA_NOREF;
    }
    return luaL_ref(em_lua_vm, LUA_REGISTRYINDEX);        /* pops env */
}

lua_State *
em_lua_state(void)
{
    return em_lua_vm;
}

int
em_lua_init(void)
{
    const em_conf_t *conf = em_loop.conf;
    int              need = 0;

    em_lua_sio_open();

    for (size_t i = 0; i < conf->nnsps; i++) {
        need |= conf->nsps[i].script != NULL;
    }
    for (size_t i = 0; i < conf->nendpoints; i++) {
        need |= conf->endpoints[i].raw;
    }
    if (!need) {
        return EM_OK;
    }
    em_lua_mem = 0;
    em_lua_vm = lua_newstate(em_lua_alloc, NULL);
    if (em_lua_vm == NULL) {
        em_log(EM_LOG_ERR, 0, "lua_newstate() failed");
        return EM_ERROR;
    }
    em_lua_main = em_lua_vm;
    em_lua_npool = 0;
    lua_atpanic(em_lua_vm, em_lua_panic);
    luaL_openlibs(em_lua_vm);
    /* A script must not end or block its worker: no os.exit, os.execute,
     * io.popen, io.read from stdin. */
    lua_getglobal(em_lua_vm, "os");
    lua_pushnil(em_lua_vm);
    lua_setfield(em_lua_vm, -2, "exit");
    lua_pushnil(em_lua_vm);
    lua_setfield(em_lua_vm, -2, "execute");
    lua_pop(em_lua_vm, 1);
    lua_getglobal(em_lua_vm, "io");
    lua_pushnil(em_lua_vm);
    lua_setfield(em_lua_vm, -2, "popen");
    lua_pushnil(em_lua_vm);
    lua_setfield(em_lua_vm, -2, "read");
    lua_pushnil(em_lua_vm);
    lua_setfield(em_lua_vm, -2, "stdin");
    lua_pop(em_lua_vm, 1);
    lua_sethook(em_lua_vm, em_lua_hook, LUA_MASKCOUNT, 100000);
    em_lua_socket_open(em_lua_vm);
    em_lua_nsp_open(em_lua_vm);
    em_lua_timer_open(em_lua_vm);
    em_lua_raw_types(em_lua_vm);
    em_lua_emitd_open(em_lua_vm);

    em_lua_nsp_env = calloc(conf->nnsps, sizeof(int));
    em_lua_ep_env = calloc(conf->nendpoints, sizeof(int));
    if (em_lua_nsp_env == NULL || em_lua_ep_env == NULL) {
        return EM_ERROR;
    }
    for (size_t i = 0; i < conf->nnsps; i++) {
        em_lua_nsp_env[i] = LUA_NOREF;
        if (conf->nsps[i].script != NULL) {
            em_lua_nsp_env[i] = em_lua_load(conf->nsps[i].script, conf->nsps[i].name, (lua_Integer) i);
            if (em_lua_nsp_env[i] == LUA_NOREF) {
                return EM_ERROR;
            }
            em_lua_any_nsp = 1;
        }
    }
    for (size_t i = 0; i < conf->nendpoints; i++) {
        em_lua_ep_env[i] = LUA_NOREF;
        if (conf->endpoints[i].raw) {
            em_lua_ep_env[i] = em_lua_load(conf->endpoints[i].script, NULL, -1);
            if (em_lua_ep_env[i] == LUA_NOREF) {
                return EM_ERROR;
            }
        }
    }
    return EM_OK;
}

void
em_lua_shutdown(void)
{
    if (em_lua_vm != NULL) {
        lua_close(em_lua_main);
        em_lua_vm = em_lua_main = NULL;
        em_lua_npool = 0;
    }
    free(em_lua_nsp_env);
    free(em_lua_ep_env);
    em_lua_nsp_env = em_lua_ep_env = NULL;
    em_lua_any_nsp = 0;
}

int
em_lua_check_scripts(const em_conf_t *conf, int run, char *err, size_t errlen)
{
    lua_State *l;
    int        rc = EM_OK;

    if (run) {
        /* Load them as a worker would, top-level code included, against a
         * private empty state (the emitd.* state functions work). */
        const em_conf_t *saved = em_loop.conf;
        em_loop.conf = conf;
        if (em_cluster_init_private() != EM_OK) {
            em_loop.conf = saved;
            snprintf(err, errlen, "cannot make a state segment to run the scripts in");
            return EM_ERROR;
        }
        rc = em_lua_init();
        em_lua_shutdown();
        em_cluster_shutdown();
        em_loop.conf = saved;
        if (rc != EM_OK) {
            snprintf(err, errlen, "the handler scripts failed to load (see the error above)");
        }
        return rc;
    }
    l = luaL_newstate();

    if (l == NULL) {
        snprintf(err, errlen, "luaL_newstate() failed");
        return EM_ERROR;
    }
    for (size_t i = 0; i < conf->nnsps + conf->nendpoints && rc == EM_OK; i++) {
        const char *path = (i < conf->nnsps) ? conf->nsps[i].script
                                             : conf->endpoints[i - conf->nnsps].script;
        if (path != NULL && luaL_loadfilex(l, path, "t") != LUA_OK) {
            snprintf(err, errlen, "%s", lua_tostring(l, -1));
            rc = EM_ERROR;
        }
        lua_settop(l, 0);
    }
    lua_close(l);
    return rc;
}
