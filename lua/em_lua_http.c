/*
 * em_lua_http.c - emitd.http(request): a script's call to its backend over
 * HTTP(S), made with em_fetch (libcurl's multi interface on the worker's
 * loop). The handler that calls it waits in its coroutine (every handler
 * runs in one: em_lua_call) while the worker serves everyone else, and goes
 * on with the response:
 *
 *   local res, err = emitd.http{ url = "http://127.0.0.1:8080/hook",
 *                                method = "POST",       -- default: GET, or POST with a body
 *                                headers = { ["X-Key"] = "k" },
 *                                body = { a = 1 },      -- a table goes as JSON, a string as is
 *                                timeout = 5000 }       -- ms (default webhooks.timeout)
 *   -- res = { status = 200, headers = { ["content-type"] = "..." },
 *   --         body = "...", json = <decoded body, when it is JSON> }
 *   -- or res = nil, err = "timeout" / "connection refused" / ...
 */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "em_fetch.h"
#include "em_log.h"
#include "em_loop.h"
#include "em_lua.h"
#include "em_lua_int.h"
#include "em_luajson.h"

#define EM_LUA_HTTP_HEADERS_MAX 64

/* A request waiting: the coroutine's registry ref. */
typedef struct {
    int ref;
} em_lua_http_wait_t;

/* Push the response's header lines as a table of lower-cased names. */
static void
em_lua_http_headers(lua_State *l, const char *h, size_t len)
{
    const char *p = h, *end = h + len;

    lua_newtable(l);
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t) (end - p));
        const char *line_end = eol != NULL ? eol : end;
        const char *colon = memchr(p, ':', (size_t) (line_end - p));
        if (colon != NULL && colon > p) {
            luaL_Buffer b;
            luaL_buffinit(l, &b);
            for (const char *k = p; k < colon; k++) {
                luaL_addchar(&b, (char) (*k >= 'A' && *k <= 'Z' ? *k + 32 : *k));
            }
            luaL_pushresult(&b);
            const char *v = colon + 1, *ve = line_end;
            while (v < ve && (*v == ' ' || *v == '\t')) {
                v++;
            }
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) {
                ve--;
            }
            lua_pushlstring(l, v, (size_t) (ve - v));
            lua_rawset(l, -3);
        }
        p = line_end + 1;
    }
}

static void
em_lua_http_done(const em_fetch_res_t *res, void *arg)
{
    em_lua_http_wait_t *w = arg;
    lua_State          *l = em_lua_state();
    int                 nargs;

    if (l == NULL) {
        free(w);
        return;
    }
    lua_rawgeti(l, LUA_REGISTRYINDEX, w->ref);     /* kept on the stack while it runs */
    luaL_unref(l, LUA_REGISTRYINDEX, w->ref);
    free(w);
    lua_State *co = lua_tothread(l, -1);
    if (co == NULL || lua_status(co) != LUA_YIELD || !lua_checkstack(co, 8)) {
        lua_pop(l, 1);
        return;
    }
    if (res->ok) {
        lua_createtable(co, 0, 4);
        lua_pushinteger(co, res->status);
        lua_setfield(co, -2, "status");
        em_lua_http_headers(co, res->headers, res->headers_len);
        lua_getfield(co, -1, "content-type");
        int is_json = lua_isstring(co, -1) && strncasecmp(lua_tostring(co, -1), "application/json", 16) == 0;
        lua_pop(co, 1);
        lua_setfield(co, -2, "headers");
        lua_pushlstring(co, res->body, res->body_len);
        lua_setfield(co, -2, "body");
        if (is_json) {
            json_t *j = json_loadb(res->body, res->body_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            if (j != NULL && em_lua_push_json(co, j, NULL, 0) == EM_OK) {
                lua_setfield(co, -2, "json");
            }
            json_decref(j);
        }
        nargs = 1;
    } else {
        lua_pushnil(co);
        lua_pushstring(co, res->error);
        nargs = 2;
    }
    em_lua_resume(co, nargs, "a handler resumed after emitd.http", NULL);
    lua_pop(l, 1);
}

/* emitd.http(request) -> response | nil, error (waits in the coroutine) */
int
em_lua_http(lua_State *l)
{
    const char *headers[EM_LUA_HTTP_HEADERS_MAX];
    size_t      nheaders = 0, blen = 0;
    const char *body = NULL, *why;
    char       *json_text = NULL;
    int         top;

    luaL_checktype(l, 1, LUA_TTABLE);
    if (!lua_isyieldable(l)) {
        return luaL_error(l, "emitd.http can wait only in an event handler, a timer or an ack "
                          "callback (not in on_connect, at load or inside a C call)");
    }
    top = lua_gettop(l);
    em_fetch_req_t req = { .timeout_ms = em_loop.conf->webhook_timeout };
    lua_getfield(l, 1, "url");
    req.url = lua_tostring(l, -1);
    if (req.url == NULL) {
        return luaL_error(l, "emitd.http: url is required");
    }
    lua_getfield(l, 1, "timeout");
    if (!lua_isnil(l, -1)) {
        lua_Integer t = luaL_checkinteger(l, -1);
        if (t < 1 || t > 600000) {
            return luaL_error(l, "emitd.http: timeout must be 1 to 600000 ms");
        }
        req.timeout_ms = (unsigned) t;
    }
    lua_getfield(l, 1, "body");
    if (lua_type(l, -1) == LUA_TSTRING) {
        body = lua_tolstring(l, -1, &blen);
    } else if (!lua_isnil(l, -1)) {
        char    err[160];
        json_t *j = em_lua_to_json(l, lua_gettop(l), NULL, err, sizeof(err));
        if (j == NULL) {
            return luaL_error(l, "emitd.http: body: %s", err);
        }
        json_text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(j);
        if (json_text == NULL) {
            return luaL_error(l, "emitd.http: out of memory");
        }
        /* The string keeps it for the call; the C copy goes now. */
        lua_pushstring(l, json_text);
        free(json_text);
        body = lua_tolstring(l, -1, &blen);
        headers[nheaders++] = "Content-Type: application/json";
    }
    lua_getfield(l, 1, "method");
    req.method = lua_isnil(l, -1) ? (body != NULL ? "POST" : "GET") : luaL_checkstring(l, -1);
    if (strlen(req.method) > 16 || strpbrk(req.method, " \r\n") != NULL) {
        return luaL_error(l, "emitd.http: bad method");
    }
    lua_getfield(l, 1, "headers");
    if (lua_istable(l, -1)) {
        int t = lua_gettop(l);
        lua_pushnil(l);
        while (lua_next(l, t) != 0) {
            if (nheaders == EM_LUA_HTTP_HEADERS_MAX) {
                return luaL_error(l, "emitd.http: more than %d headers", EM_LUA_HTTP_HEADERS_MAX);
            }
            const char *k = lua_tostring(l, -2), *v = lua_tostring(l, -1);
            if (lua_type(l, -2) != LUA_TSTRING || v == NULL || strpbrk(k, ":\r\n") != NULL
                || strpbrk(v, "\r\n") != NULL) {
                return luaL_error(l, "emitd.http: headers must be name = value strings");
            }
            lua_pushfstring(l, "%s: %s", k, v);
            headers[nheaders++] = lua_tostring(l, -1);
            lua_insert(l, t);       /* kept below the iteration, alive until the call */
            t++;
            lua_pop(l, 1);
        }
    }
    req.headers = headers;
    req.nheaders = nheaders;
    req.body = body;
    req.body_len = blen;

    em_lua_http_wait_t *w = malloc(sizeof(*w));
    if (w == NULL) {
        return luaL_error(l, "emitd.http: out of memory");
    }
    lua_pushthread(l);
    w->ref = luaL_ref(l, LUA_REGISTRYINDEX);
    int rc = em_fetch_start(&req, em_lua_http_done, w, &why);
    if (rc != EM_OK) {
        luaL_unref(l, LUA_REGISTRYINDEX, w->ref);
        free(w);
        lua_settop(l, top);
        lua_pushnil(l);
        lua_pushstring(l, why);
        return 2;
    }
    lua_settop(l, top);
    return lua_yield(l, 0);
}
