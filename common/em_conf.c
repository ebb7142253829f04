/*
 * em_conf.c - reading emitd.conf with libconfig, applying defaults and
 * validating every value, so that the master and the workers never see a
 * half-checked configuration.
 */
#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "em_conf.h"
#include "em_log.h"

#define EM_CONF_DEFAULT_LISTEN "127.0.0.1:3000"
#define EM_MIN_U(a, b) ((unsigned long) (a) < (unsigned long) (b) ? (unsigned long) (a) : (unsigned long) (b))

static char *
em_conf_strdup(const char *s)
{
    char *d = strdup(s);

    if (d == NULL) {
        abort();    /* out of memory while configuring: nothing sensible to do */
    }
    return d;
}

static void *
em_conf_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);

    if (p == NULL) {
        abort();
    }
    return p;
}

static int
em_conf_fail(char *err, size_t errlen, const char *file, const config_setting_t *s,
             const char *fmt, ...)
{
    va_list ap;
    int     n;

    if (s != NULL && config_setting_source_line(s) > 0) {
        n = snprintf(err, errlen, "%s:%d: ", file ? file : "(default)",
                     config_setting_source_line(s));
    } else {
        n = snprintf(err, errlen, "%s: ", file ? file : "(default)");
    }
    if (n < 0 || (size_t) n >= errlen) {
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t) n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Split "host:port", "[v6]:port" or "port" into numeric host and port. */
static int
em_conf_parse_listen(const char *text, em_conf_listen_t *l)
{
    const char *colon;
    char        host[256];
    const char *port;
    char       *end;
    long        p;

    if (text[0] == '[') {
        const char *rb = strchr(text, ']');
        if (rb == NULL || rb[1] != ':' || (size_t) (rb - text - 1) >= sizeof(host)) {
            return -1;
        }
        memcpy(host, text + 1, (size_t) (rb - text - 1));
        host[rb - text - 1] = '\0';
        port = rb + 2;
    } else if ((colon = strrchr(text, ':')) != NULL) {
        if ((size_t) (colon - text) >= sizeof(host) || colon == text) {
            return -1;
        }
        memcpy(host, text, (size_t) (colon - text));
        host[colon - text] = '\0';
        port = colon + 1;
    } else {
        snprintf(host, sizeof(host), "0.0.0.0");
        port = text;
    }
    errno = 0;
    p = strtol(port, &end, 10);
    if (errno != 0 || *end != '\0' || end == port || p < 1 || p > 65535) {
        return -1;
    }
    l->host = em_conf_strdup(host);
    l->port = em_conf_strdup(port);
    l->text = em_conf_strdup(text);
    return 0;
}

static int
em_conf_get_uint(const config_setting_t *group, const char *name, unsigned lo, unsigned hi,
                 unsigned *out, const char *file, char *err, size_t errlen)
{
    config_setting_t *s = group ? config_setting_get_member(group, name) : NULL;
    long long         v;

    if (s == NULL) {
        return 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64) {
        return em_conf_fail(err, errlen, file, s, "\"%s\" must be an integer", name);
    }
    v = config_setting_get_int64(s);
    if (v < (long long) lo || v > (long long) hi) {
        return em_conf_fail(err, errlen, file, s, "\"%s\" must be between %u and %u", name, lo, hi);
    }
    *out = (unsigned) v;
    return 0;
}

static int
em_conf_get_bool(const config_setting_t *group, const char *name, int *out,
                 const char *file, char *err, size_t errlen)
{
    config_setting_t *s = group ? config_setting_get_member(group, name) : NULL;

    if (s == NULL) {
        return 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        return em_conf_fail(err, errlen, file, s, "\"%s\" must be true or false", name);
    }
    *out = config_setting_get_bool(s);
    return 0;
}

static int
em_conf_get_string(const config_setting_t *group, const char *name, const char **out,
                   const char *file, char *err, size_t errlen)
{
    config_setting_t *s = group ? config_setting_get_member(group, name) : NULL;

    if (s == NULL) {
        return 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        return em_conf_fail(err, errlen, file, s, "\"%s\" must be a string", name);
    }
    *out = config_setting_get_string(s);
    return 0;
}

/* Resolve a script path against the directory of the configuration file. */
static char *
em_conf_script_path(const char *file, const char *script)
{
    char   *path;
    size_t  dirlen;

    if (script[0] == '/' || file == NULL) {
        return em_conf_strdup(script);
    }
    const char *slash = strrchr(file, '/');
    dirlen = slash ? (size_t) (slash - file) : 0;
    path = em_conf_calloc(1, dirlen + strlen(script) + 3);
    if (slash) {
        memcpy(path, file, dirlen);
        path[dirlen] = '/';
        strcpy(path + dirlen + 1, script);
    } else {
        strcpy(path, script);
    }
    return path;
}

/* Read the Engine.IO settings of `group` over the values already in *ep. */
static int
em_conf_read_endpoint(const config_setting_t *group, em_conf_endpoint_t *ep,
                      const char *file, char *err, size_t errlen)
{
    const char       *path = NULL;
    int               b;
    unsigned          mp;
    config_setting_t *tr;

    if (em_conf_get_string(group, "path", &path, file, err, errlen) != 0) {
        return -1;
    }
    if (path != NULL) {
        size_t len = strlen(path);
        if (len == 0 || path[0] != '/' || len > 200 || strpbrk(path, "?# \t\r\n") != NULL
            || strstr(path, "//") != NULL) {
            /* "//": "/x//" would also answer for "/x/", another endpoint's path */
            return em_conf_fail(err, errlen, file, config_setting_get_member(group, "path"),
                                "\"path\" must begin with '/' and hold no '?', '#', spaces or \"//\"");
        }
        free(ep->path);
        ep->path = em_conf_calloc(1, len + 2);
        memcpy(ep->path, path, len);
        if (path[len - 1] != '/') {
            ep->path[len] = '/';
        }
    }
    if (em_conf_get_uint(group, "ping_interval", 1, 3600000, &ep->ping_interval, file, err, errlen)
        || em_conf_get_uint(group, "ping_timeout", 1, 3600000, &ep->ping_timeout, file, err, errlen)
        || em_conf_get_uint(group, "connect_timeout", 1, 3600000, &ep->connect_timeout, file, err,
                            errlen)) {
        return -1;
    }
    mp = (unsigned) ep->max_payload;
    if (em_conf_get_uint(group, "max_payload", 16, 1U << 30, &mp, file, err, errlen) != 0) {
        return -1;
    }
    ep->max_payload = mp;
    b = ep->allow_upgrades;
    if (em_conf_get_bool(group, "allow_upgrades", &b, file, err, errlen) != 0) {
        return -1;
    }
    ep->allow_upgrades = b ? 1 : 0;

    tr = group ? config_setting_get_member(group, "transports") : NULL;
    if (tr != NULL) {
        unsigned bits = 0;
        if (!config_setting_is_array(tr) && !config_setting_is_list(tr)) {
            return em_conf_fail(err, errlen, file, tr, "\"transports\" must be a list of strings");
        }
        for (int i = 0; i < config_setting_length(tr); i++) {
            const char *t = config_setting_get_string_elem(tr, i);
            if (t != NULL && strcmp(t, "polling") == 0) {
                bits |= EM_TRANSPORT_POLLING;
            } else if (t != NULL && strcmp(t, "websocket") == 0) {
                bits |= EM_TRANSPORT_WEBSOCKET;
            } else {
                return em_conf_fail(err, errlen, file, tr,
                                    "unknown transport (use \"polling\" and/or \"websocket\")");
            }
        }
        if (bits == 0) {
            return em_conf_fail(err, errlen, file, tr, "\"transports\" is empty");
        }
        ep->transports = bits;
    }
    return 0;
}

/* Refuse settings a group does not know: a misspelt "script" must not leave
 * a namespace open with no handler. */
static int
em_conf_check_keys(const config_setting_t *g, const char *const *known, const char *what,
                   const char *file, char *err, size_t errlen)
{
    for (int i = 0; i < config_setting_length(g); i++) {
        config_setting_t *e = config_setting_get_elem(g, (unsigned) i);
        const char       *name = config_setting_name(e);
        int               ok = 0;
        for (size_t k = 0; name != NULL && known[k] != NULL; k++) {
            ok |= strcmp(name, known[k]) == 0;
        }
        if (!ok) {
            return em_conf_fail(err, errlen, file, e, "unknown setting \"%s\" in %s",
                                name ? name : "?", what);
        }
    }
    return 0;
}

static const char *const em_conf_nsp_keys[] = { "name", "script", "connect_limit",
                                                "shutdown_event", "api_key", "rooms", "jwt",
                                                "connect_hook", NULL };
static const char *const em_conf_hook_keys[] = { "url", "timeout", "message", NULL };

/* connect_hook = { url = "http://127.0.0.1:8080/connect"; timeout = 3000;
 *                  message = "Unauthorized"; } */
static int
em_conf_read_hook(config_setting_t *g, em_conf_nsp_t *nsp, const char *file, char *err,
                  size_t errlen)
{
    const char *url = NULL, *msg = "Unauthorized";
    unsigned    timeout = 5000;

    if (!config_setting_is_group(g)) {
        return em_conf_fail(err, errlen, file, g, "\"connect_hook\" must be a group { url = \"...\"; }");
    }
    if (em_conf_check_keys(g, em_conf_hook_keys, "connect_hook", file, err, errlen) != 0
        || em_conf_get_string(g, "url", &url, file, err, errlen) != 0
        || em_conf_get_string(g, "message", &msg, file, err, errlen) != 0
        || em_conf_get_uint(g, "timeout", 1, 600000, &timeout, file, err, errlen) != 0) {
        return -1;
    }
    if (url == NULL || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
        return em_conf_fail(err, errlen, file, g, "connect_hook needs a \"url\" beginning with "
                            "http:// or https://");
    }
    nsp->connect_hook = em_conf_calloc(1, sizeof(*nsp->connect_hook));
    nsp->connect_hook->url = em_conf_strdup(url);
    nsp->connect_hook->timeout = timeout;
    nsp->connect_hook->message = em_conf_strdup(msg);
    return 0;
}
static const char *const em_conf_jwt_keys[] = { "secret", "public_key", "algorithms", "issuer",
                                                "audience", "leeway", "token_auth", "token_query",
                                                "token_header", "missing_message",
                                                "invalid_message", "expired_message", "required",
                                                NULL };
static const char *const em_conf_jwt_algs[] = { "HS256", "HS384", "HS512", "RS256", "RS384",
                                                "RS512", "ES256", "ES384", NULL };

const char *
em_conf_jwt_alg_name(unsigned alg)
{
    for (unsigned i = 0; em_conf_jwt_algs[i] != NULL; i++) {
        if (alg == 1u << i) {
            return em_conf_jwt_algs[i];
        }
    }
    return NULL;
}
static const char *const em_conf_api_key_keys[] = { "keys", "query", "header", "auth",
                                                    "missing_message", "invalid_message", NULL };
static const char *const em_conf_shutdown_keys[] = { "name", "message", NULL };
static const char *const em_conf_limit_keys[] = { "max", "window", "block", NULL };
static const char *const em_conf_recovery_keys[] = {
    "max_disconnection", "buffer", "sessions", NULL
};
static const char *const em_conf_limits_keys[] = {
    "event_args", "attachments", "json_depth", "event_name", "namespaces", "rooms",
    "pending_acks", "request_timeout", "write_timeout", "output_soft", "output_soft_time",
    "output_hard", "script_memory", "script_time", NULL
};
static const char *const em_conf_cors_keys[] = { "origins", "credentials", NULL };
static const char *const em_conf_engineio_keys[] = {
    "path", "script", "ping_interval", "ping_timeout", "max_payload", "transports",
    "allow_upgrades", NULL
};

static int
em_conf_nsp_name_ok(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > 256 || name[0] != '/') {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char) name[i] < 0x20 || name[i] == ',' || name[i] == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* connect_limit = { max = 5; window = 300000; block = 900000; } (ms) */
static int
em_conf_read_limit(config_setting_t *g, em_conf_limit_t *l, const char *file, char *err,
                   size_t errlen)
{
    if (!config_setting_is_group(g)) {
        return em_conf_fail(err, errlen, file, g,
                            "a limit must be a group { max = 5; window = 300000; block = 900000; }");
    }
    l->window = 60000;
    if (em_conf_check_keys(g, em_conf_limit_keys, "a limit", file, err, errlen) != 0
        || em_conf_get_uint(g, "max", 1, 1000000000, &l->max, file, err, errlen) != 0
        || em_conf_get_uint(g, "window", 1, 86400000, &l->window, file, err, errlen) != 0
        || em_conf_get_uint(g, "block", 0, 86400000, &l->block, file, err, errlen) != 0) {
        return -1;
    }
    if (l->max == 0) {
        return em_conf_fail(err, errlen, file, g, "a limit needs \"max\" (hits per window)");
    }
    return 0;
}

/* shutdown_event = { name = "system.maintenance"; message = "..."; } */
static int
em_conf_read_shutdown(config_setting_t *g, em_conf_nsp_t *nsp, const char *file, char *err,
                      size_t errlen)
{
    const char *name = NULL, *message = NULL;

    if (!config_setting_is_group(g)) {
        return em_conf_fail(err, errlen, file, g,
                            "\"shutdown_event\" must be a group { name = \"system.maintenance\"; "
                            "message = \"...\"; }");
    }
    if (em_conf_check_keys(g, em_conf_shutdown_keys, "shutdown_event", file, err, errlen) != 0
        || em_conf_get_string(g, "name", &name, file, err, errlen) != 0
        || em_conf_get_string(g, "message", &message, file, err, errlen) != 0) {
        return -1;
    }
    if (name == NULL || name[0] == '\0' || strlen(name) > 255) {
        return em_conf_fail(err, errlen, file, g,
                            "\"shutdown_event\" needs a \"name\" of 1 to 255 bytes");
    }
    nsp->shutdown_event = em_conf_strdup(name);
    nsp->shutdown_message = em_conf_strdup(message != NULL ? message
                                                           : "Server is shutting down for maintenance");
    return 0;
}

/* api_key = { keys = [ "..." ]; query = "apiKey"; header = "apiKey"; auth = "apiKey";
 *             missing_message = "API key is required"; invalid_message = "Invalid API key"; } */
static int
em_conf_read_api_key(config_setting_t *g, em_conf_nsp_t *nsp, const char *file, char *err,
                     size_t errlen)
{
    static const char *const where[] = { "query", "header", "auth" };
    const char         *v[3] = { "apiKey", "apiKey", "apiKey" };
    const char         *missing = "API key is required", *invalid = "Invalid API key";
    config_setting_t   *keys;
    em_conf_api_key_t  *ak;
    int                 n;

    if (!config_setting_is_group(g)) {
        return em_conf_fail(err, errlen, file, g,
                            "\"api_key\" must be a group { keys = [ \"...\" ]; }");
    }
    if (em_conf_check_keys(g, em_conf_api_key_keys, "api_key", file, err, errlen) != 0
        || em_conf_get_string(g, "query", &v[0], file, err, errlen) != 0
        || em_conf_get_string(g, "header", &v[1], file, err, errlen) != 0
        || em_conf_get_string(g, "auth", &v[2], file, err, errlen) != 0
        || em_conf_get_string(g, "missing_message", &missing, file, err, errlen) != 0
        || em_conf_get_string(g, "invalid_message", &invalid, file, err, errlen) != 0) {
        return -1;
    }
    keys = config_setting_get_member(g, "keys");
    n = keys != NULL && (config_setting_is_list(keys) || config_setting_is_array(keys))
        ? config_setting_length(keys) : 0;
    if (n < 1 || n > EM_CONF_API_KEYS_MAX) {
        return em_conf_fail(err, errlen, file, keys != NULL ? keys : g,
                            "\"api_key\" needs \"keys\": a list of 1 to %d strings",
                            EM_CONF_API_KEYS_MAX);
    }
    ak = nsp->api_key = em_conf_calloc(1, sizeof(*ak));
    ak->keys = em_conf_calloc((size_t) n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        const char *k = config_setting_get_string_elem(keys, i);
        if (k == NULL || k[0] == '\0' || strlen(k) > EM_CONF_API_KEY_MAX) {
            return em_conf_fail(err, errlen, file, keys,
                                "each API key must be a string of 1 to %d bytes",
                                EM_CONF_API_KEY_MAX);
        }
        ak->keys[ak->nkeys++] = em_conf_strdup(k);
    }
    for (int i = 0; i < 3; i++) {
        if (v[i][0] == '\0') {
            continue;       /* "": not looked for there */
        }
        if (strlen(v[i]) > 255 || strpbrk(v[i], "\r\n:") != NULL) {
            return em_conf_fail(err, errlen, file, g, "\"%s\" of api_key must be a name of 1 to 255 bytes",
                                where[i]);
        }
    }
    ak->query = v[0][0] ? em_conf_strdup(v[0]) : NULL;
    ak->header = v[1][0] ? em_conf_strdup(v[1]) : NULL;
    ak->auth = v[2][0] ? em_conf_strdup(v[2]) : NULL;
    if (ak->query == NULL && ak->header == NULL && ak->auth == NULL) {
        return em_conf_fail(err, errlen, file, g, "api_key must be looked for somewhere "
                            "(query, header or auth)");
    }
    ak->missing_message = em_conf_strdup(missing);
    ak->invalid_message = em_conf_strdup(invalid);
    return 0;
}

/* The bytes of a key file (at most EM_CONF_JWT_KEY_MAX), or NULL. */
static unsigned char *
em_conf_read_key_file(const char *path, size_t *len)
{
    FILE          *f = fopen(path, "rb");
    unsigned char *buf;

    if (f == NULL) {
        return NULL;
    }
    buf = em_conf_calloc(1, EM_CONF_JWT_KEY_MAX + 1);
    *len = fread(buf, 1, EM_CONF_JWT_KEY_MAX + 1, f);
    fclose(f);
    if (*len == 0 || *len > EM_CONF_JWT_KEY_MAX) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* jwt = { secret = "..." | public_key = "key.pem"; algorithms = [ "RS256" ];
 *         issuer = "..."; audience = "..."; leeway = 30; ... } */
static int
em_conf_read_jwt(config_setting_t *g, em_conf_nsp_t *nsp, const char *file, char *err,
                 size_t errlen)
{
    const char       *secret = NULL, *pem = NULL, *iss = NULL, *aud = NULL;
    const char       *where[3] = { "token", "token", "authorization" };
    const char       *msgs[3] = { "Authentication required", "Invalid token", "Token expired" };
    unsigned          leeway = 0;
    int               required = 1;
    config_setting_t *algs;
    em_conf_jwt_t    *j;

    if (!config_setting_is_group(g)) {
        return em_conf_fail(err, errlen, file, g, "\"jwt\" must be a group { secret = \"...\"; }");
    }
    if (em_conf_check_keys(g, em_conf_jwt_keys, "jwt", file, err, errlen) != 0
        || em_conf_get_string(g, "secret", &secret, file, err, errlen) != 0
        || em_conf_get_string(g, "public_key", &pem, file, err, errlen) != 0
        || em_conf_get_string(g, "issuer", &iss, file, err, errlen) != 0
        || em_conf_get_string(g, "audience", &aud, file, err, errlen) != 0
        || em_conf_get_uint(g, "leeway", 0, 86400, &leeway, file, err, errlen) != 0
        || em_conf_get_bool(g, "required", &required, file, err, errlen) != 0
        || em_conf_get_string(g, "token_auth", &where[0], file, err, errlen) != 0
        || em_conf_get_string(g, "token_query", &where[1], file, err, errlen) != 0
        || em_conf_get_string(g, "token_header", &where[2], file, err, errlen) != 0
        || em_conf_get_string(g, "missing_message", &msgs[0], file, err, errlen) != 0
        || em_conf_get_string(g, "invalid_message", &msgs[1], file, err, errlen) != 0
        || em_conf_get_string(g, "expired_message", &msgs[2], file, err, errlen) != 0) {
        return -1;
    }
    if ((secret == NULL) == (pem == NULL)) {
        return em_conf_fail(err, errlen, file, g,
                            "\"jwt\" needs one of \"secret\" (HS256, HS384, HS512) and "
                            "\"public_key\" (a PEM file: RS256 ... ES384)");
    }
    j = nsp->jwt = em_conf_calloc(1, sizeof(*j));
    algs = config_setting_get_member(g, "algorithms");
    if (algs == NULL) {
        if (pem != NULL) {
            return em_conf_fail(err, errlen, file, g,
                                "\"jwt\" with a public_key needs \"algorithms\" (RS256, ES256, ...)");
        }
        j->algs = EM_CONF_JWT_HS256;
    } else {
        int n = config_setting_is_list(algs) || config_setting_is_array(algs)
                ? config_setting_length(algs) : 0;
        for (int i = 0; i < n; i++) {
            const char *a = config_setting_get_string_elem(algs, i);
            unsigned    k = 0;
            while (a != NULL && em_conf_jwt_algs[k] != NULL && strcmp(a, em_conf_jwt_algs[k]) != 0) {
                k++;
            }
            if (a == NULL || em_conf_jwt_algs[k] == NULL) {
                return em_conf_fail(err, errlen, file, algs, "unknown JWT algorithm \"%s\" (HS256, "
                                    "HS384, HS512, RS256, RS384, RS512, ES256 or ES384)",
                                    a ? a : "?");
            }
            j->algs |= 1u << k;
        }
        if (j->algs == 0) {
            return em_conf_fail(err, errlen, file, algs, "\"algorithms\" must list at least one");
        }
    }
    /* The key pins the algorithms: a secret verifies HS only, a public key
     * never HS (its text is public: an HS token "signed" with it proves nothing). */
    if (secret != NULL ? (j->algs & ~EM_CONF_JWT_HS) != 0 : (j->algs & EM_CONF_JWT_HS) != 0) {
        return em_conf_fail(err, errlen, file, algs != NULL ? algs : g,
                            secret != NULL ? "a \"secret\" verifies HS256, HS384 and HS512 only"
                                           : "a \"public_key\" verifies RS and ES algorithms only");
    }
    if (secret != NULL) {
        if (strlen(secret) < 16) {
            return em_conf_fail(err, errlen, file, g, "a JWT \"secret\" must be 16 bytes or more");
        }
        j->key = (unsigned char *) em_conf_strdup(secret);
        j->key_len = strlen(secret);
    } else {
        char *path = em_conf_script_path(file, pem);
        j->key = em_conf_read_key_file(path, &j->key_len);
        if (j->key == NULL || strstr((const char *) j->key, "-----BEGIN PUBLIC KEY-----") == NULL) {
            int e = errno;
            em_conf_fail(err, errlen, file, g, "cannot read the PEM public key \"%s\"%s%s", path,
                         j->key == NULL ? ": " : " (no \"BEGIN PUBLIC KEY\")",
                         j->key == NULL ? (e ? strerror(e) : "empty or over 64 KiB") : "");
            free(path);
            return -1;
        }
        free(path);
    }
    j->issuer = iss ? em_conf_strdup(iss) : NULL;
    j->audience = aud ? em_conf_strdup(aud) : NULL;
    j->leeway = leeway;
    j->optional = required ? 0 : 1;
    j->token_auth = where[0][0] ? em_conf_strdup(where[0]) : NULL;
    j->token_query = where[1][0] ? em_conf_strdup(where[1]) : NULL;
    j->token_header = where[2][0] ? em_conf_strdup(where[2]) : NULL;
    /* Nowhere to look is fine only when tokens come later, through the
     * script's nsp:verify_token (studio.md's "authenticate" event). */
    if (j->token_auth == NULL && j->token_query == NULL && j->token_header == NULL && required) {
        return em_conf_fail(err, errlen, file, g, "jwt must be looked for somewhere "
                            "(token_auth, token_query or token_header), or be required = false");
    }
    j->missing_message = em_conf_strdup(msgs[0]);
    j->invalid_message = em_conf_strdup(msgs[1]);
    j->expired_message = em_conf_strdup(msgs[2]);
    return 0;
}

/* Whether t is a room template: text with {auth.x}, {query.x} or
 * {headers.x} fields (x: 1 to 255 bytes, no braces). */
static int
em_conf_room_template_ok(const char *t)
{
    static const char *const src[] = { "auth.", "query.", "headers.", "claims.", NULL };

    for (const char *p = t; *p != '\0'; p++) {
        if (*p == '}') {
            return 0;
        }
        if (*p != '{') {
            continue;
        }
        const char *end = strchr(p, '}');
        size_t      k = 0;
        if (end == NULL) {
            return 0;
        }
        while (src[k] != NULL && strncmp(p + 1, src[k], strlen(src[k])) != 0) {
            k++;
        }
        if (src[k] == NULL) {
            return 0;
        }
        const char *name = p + 1 + strlen(src[k]);
        if (end - name < 1 || end - name > 255 || memchr(name, '{', (size_t) (end - name)) != NULL) {
            return 0;
        }
        p = end;
    }
    return 1;
}

/* rooms = [ "user:{auth.userId}", "client:{query.clientId}", "lobby" ] */
static int
em_conf_read_rooms(config_setting_t *g, em_conf_nsp_t *nsp, const char *file, char *err,
                   size_t errlen)
{
    int n = config_setting_is_list(g) || config_setting_is_array(g) ? config_setting_length(g) : -1;

    if (n < 0 || n > EM_CONF_ROOM_TEMPLATES_MAX) {
        return em_conf_fail(err, errlen, file, g, "\"rooms\" must be a list of at most %d strings",
                            EM_CONF_ROOM_TEMPLATES_MAX);
    }
    nsp->rooms = em_conf_calloc((size_t) n + 1, sizeof(char *));
    for (int i = 0; i < n; i++) {
        const char *t = config_setting_get_string_elem(g, i);
        if (t == NULL || t[0] == '\0' || strlen(t) > EM_CONF_ROOM_TEMPLATE_MAX
            || !em_conf_room_template_ok(t)) {
            return em_conf_fail(err, errlen, file, g,
                                "room template %d must be text of 1 to %d bytes with fields "
                                "{auth.x}, {claims.x}, {query.x} or {headers.x}", i + 1,
                                EM_CONF_ROOM_TEMPLATE_MAX);
        }
        nsp->rooms[nsp->nrooms++] = em_conf_strdup(t);
    }
    return 0;
}

/* recovery = { max_disconnection = 120000; buffer = 8388608; sessions = 16384; } */
static int
em_conf_read_recovery(config_setting_t *g, em_conf_t *conf, const char *file, char *err,
                      size_t errlen)
{
    unsigned buffer = (unsigned) conf->recovery_buffer;

    if (!config_setting_is_group(g)) {
        return em_conf_fail(err, errlen, file, g,
                            "\"recovery\" must be a group { max_disconnection = 120000; }");
    }
    if (em_conf_check_keys(g, em_conf_recovery_keys, "recovery", file, err, errlen) != 0
        || em_conf_get_uint(g, "max_disconnection", 1000, 86400000,
                            &conf->recovery_max_disconnection, file, err, errlen) != 0
        || em_conf_get_uint(g, "buffer", 65536, 1U << 30, &buffer, file, err, errlen) != 0
        || em_conf_get_uint(g, "sessions", 16, 4194304, &conf->recovery_sessions, file, err,
                            errlen) != 0) {
        return -1;
    }
    conf->recovery_buffer = buffer;
    conf->recovery = 1;
    return 0;
}

/* limits = { event_args = 1024; ... } (see em_conf_limits_t) */
static int
em_conf_read_limits(config_setting_t *g, em_conf_limits_t *l, const char *file, char *err,
                    size_t errlen)
{
    unsigned soft = (unsigned) l->output_soft, hard = (unsigned) l->output_hard;
    unsigned mem = (unsigned) l->script_memory;

    if (!config_setting_is_group(g)) {
        return em_conf_fail(err, errlen, file, g, "\"limits\" must be a group { event_args = 1024; }");
    }
    if (em_conf_check_keys(g, em_conf_limits_keys, "limits", file, err, errlen) != 0
        || em_conf_get_uint(g, "event_args", 1, 100000, &l->event_args, file, err, errlen)
        || em_conf_get_uint(g, "attachments", 0, EM_CONF_MAX_ATTACHMENTS, &l->attachments, file,
                            err, errlen)
        || em_conf_get_uint(g, "json_depth", 1, EM_CONF_MAX_JSON_DEPTH, &l->json_depth, file, err,
                            errlen)
        || em_conf_get_uint(g, "event_name", 1, 1U << 20, &l->event_name, file, err, errlen)
        || em_conf_get_uint(g, "namespaces", 1, 100000, &l->namespaces, file, err, errlen)
        || em_conf_get_uint(g, "rooms", 1, 10000000, &l->rooms, file, err, errlen)
        || em_conf_get_uint(g, "pending_acks", 1, 10000000, &l->pending_acks, file, err, errlen)
        || em_conf_get_uint(g, "request_timeout", 100, 3600000, &l->request_timeout, file, err,
                            errlen)
        || em_conf_get_uint(g, "write_timeout", 100, 3600000, &l->write_timeout, file, err, errlen)
        || em_conf_get_uint(g, "output_soft", 4096, 1U << 31, &soft, file, err, errlen)
        || em_conf_get_uint(g, "output_soft_time", 0, 3600000, &l->output_soft_time, file, err,
                            errlen)
        || em_conf_get_uint(g, "output_hard", 4096, 1U << 31, &hard, file, err, errlen)
        || em_conf_get_uint(g, "script_memory", 1U << 20, UINT_MAX, &mem, file, err, errlen)
        || em_conf_get_uint(g, "script_time", 10, 600000, &l->script_time, file, err, errlen)) {
        return -1;
    }
    if (soft > hard) {
        return em_conf_fail(err, errlen, file, g, "\"output_soft\" must not exceed \"output_hard\"");
    }
    l->output_soft = soft;
    l->output_hard = hard;
    l->script_memory = mem;
    return 0;
}

/* The namespaces of endpoint ep, appended to conf->nsps with its prefix. */
static int
em_conf_read_namespaces(config_setting_t *list, em_conf_t *conf, size_t ep, const char *file,
                        char *err, size_t errlen)
{
    int         n = config_setting_length(list);
    const char *prefix = conf->endpoints[ep].prefix;
    char        full[512];

    if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
        return em_conf_fail(err, errlen, file, list,
                            "\"namespaces\" must be a list: ( { name = \"/\"; script = \"x.lua\"; } )");
    }
    em_conf_nsp_t *grown = realloc(conf->nsps, (conf->nnsps + (size_t) n + 1) * sizeof(em_conf_nsp_t));
    if (grown == NULL) {
        return em_conf_fail(err, errlen, file, list, "out of memory");
    }
    conf->nsps = grown;
    memset(conf->nsps + conf->nnsps, 0, ((size_t) n + 1) * sizeof(em_conf_nsp_t));
    for (int i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(list, (unsigned) i);
        const char       *name = NULL, *script = NULL;

        if (!config_setting_is_group(g)) {
            return em_conf_fail(err, errlen, file, g, "each namespace must be a group { ... }");
        }
        if (em_conf_check_keys(g, em_conf_nsp_keys, "a namespace", file, err, errlen) != 0) {
            return -1;
        }
        if (em_conf_get_string(g, "name", &name, file, err, errlen)
            || em_conf_get_string(g, "script", &script, file, err, errlen)) {
            return -1;
        }
        if (name == NULL || !em_conf_nsp_name_ok(name)) {
            return em_conf_fail(err, errlen, file, g,
                                "a namespace needs a \"name\" beginning with '/' (no ',' or control characters)");
        }
        if (strlen(prefix) + strlen(name) >= 256) {
            return em_conf_fail(err, errlen, file, g, "namespace \"%s\" is too long with its path", name);
        }
        snprintf(full, sizeof(full), "%s%s", prefix, name);
        for (size_t j = 0; j < conf->nnsps; j++) {
            if (strcmp(conf->nsps[j].name, full) == 0) {
                return em_conf_fail(err, errlen, file, g, "namespace \"%s\" is defined twice", name);
            }
        }
        em_conf_nsp_t *nsp = &conf->nsps[conf->nnsps++];
        config_setting_t *lim = config_setting_get_member(g, "connect_limit");
        if (lim != NULL && em_conf_read_limit(lim, &nsp->connect_limit, file, err, errlen) != 0) {
            return -1;
        }
        config_setting_t *sd = config_setting_get_member(g, "shutdown_event");
        if (sd != NULL && em_conf_read_shutdown(sd, nsp, file, err, errlen) != 0) {
            return -1;
        }
        config_setting_t *ak = config_setting_get_member(g, "api_key");
        if (ak != NULL && em_conf_read_api_key(ak, nsp, file, err, errlen) != 0) {
            return -1;
        }
        config_setting_t *jw = config_setting_get_member(g, "jwt");
        if (jw != NULL && em_conf_read_jwt(jw, nsp, file, err, errlen) != 0) {
            return -1;
        }
        config_setting_t *hk = config_setting_get_member(g, "connect_hook");
        if (hk != NULL && em_conf_read_hook(hk, nsp, file, err, errlen) != 0) {
            return -1;
        }
        config_setting_t *rt = config_setting_get_member(g, "rooms");
        if (rt != NULL && em_conf_read_rooms(rt, nsp, file, err, errlen) != 0) {
            return -1;
        }
        nsp->name = em_conf_strdup(full);
        nsp->endpoint = ep;
        nsp->dynamic = strstr(name, "/:") != NULL;
        if (script != NULL) {
            nsp->script = em_conf_script_path(file, script);
            if (access(nsp->script, R_OK) != 0) {
                return em_conf_fail(err, errlen, file, g, "cannot read script \"%s\": %s",
                                    nsp->script, strerror(errno));
            }
        }
    }
    return 0;
}

static void
em_conf_cors_free(em_conf_cors_t *cors)
{
    for (size_t i = 0; i < cors->norigins; i++) {
        free(cors->origins[i]);
    }
    free(cors->origins);
}

static int
em_conf_read_cors(config_setting_t *g, em_conf_cors_t *cors, const char *file, char *err, size_t errlen)
{
    config_setting_t *o;
    int               cred = 0;

    if (!config_setting_is_group(g)) {
        return em_conf_fail(err, errlen, file, g, "\"cors\" must be a group { origins = [...]; }");
    }
    cors->enabled = 1;
    if (em_conf_check_keys(g, em_conf_cors_keys, "cors", file, err, errlen) != 0
        || em_conf_get_bool(g, "credentials", &cred, file, err, errlen) != 0) {
        return -1;
    }
    cors->credentials = cred ? 1 : 0;
    o = config_setting_get_member(g, "origins");
    if (o == NULL) {
        cors->any = 1;
        return 0;
    }
    if (config_setting_type(o) == CONFIG_TYPE_STRING) {
        const char *s = config_setting_get_string(o);
        cors->origins = em_conf_calloc(1, sizeof(char *));
        cors->origins[cors->norigins++] = em_conf_strdup(s);
        cors->any = strcmp(s, "*") == 0;
        return 0;
    }
    if (!config_setting_is_array(o) && !config_setting_is_list(o)) {
        return em_conf_fail(err, errlen, file, o, "\"origins\" must be a string or a list of strings");
    }
    cors->origins = em_conf_calloc((size_t) config_setting_length(o), sizeof(char *));
    for (int i = 0; i < config_setting_length(o); i++) {
        const char *s = config_setting_get_string_elem(o, i);
        if (s == NULL) {
            return em_conf_fail(err, errlen, file, o, "\"origins\" must hold strings");
        }
        if (strcmp(s, "*") == 0) {
            cors->any = 1;
        }
        cors->origins[cors->norigins++] = em_conf_strdup(s);
    }
    return 0;
}

static int
em_conf_read_listen(config_setting_t *s, em_conf_listen_t **out, size_t *nout, const char *file,
                    char *err, size_t errlen)
{
    char buf[32];
    int  n = 1;

    if (config_setting_is_group(s)) {
        return em_conf_fail(err, errlen, file, s, "\"listen\" must be \"host:port\" or a list of them");
    }
    if (config_setting_is_array(s) || config_setting_is_list(s)) {
        n = config_setting_length(s);
        if (n == 0) {
            return em_conf_fail(err, errlen, file, s, "\"listen\" is empty");
        }
    }
    *out = em_conf_calloc((size_t) n, sizeof(em_conf_listen_t));
    for (int i = 0; i < n; i++) {
        config_setting_t *e = (config_setting_is_aggregate(s)) ? config_setting_get_elem(s, (unsigned) i) : s;
        const char       *text;

        if (e == NULL) {
            return em_conf_fail(err, errlen, file, s, "\"listen\" must be \"host:port\" or a list of them");
        }
        if (config_setting_type(e) == CONFIG_TYPE_INT) {
            snprintf(buf, sizeof(buf), "%d", config_setting_get_int(e));
            text = buf;
        } else if (config_setting_type(e) == CONFIG_TYPE_STRING) {
            text = config_setting_get_string(e);
        } else {
            return em_conf_fail(err, errlen, file, e, "\"listen\" must be \"host:port\" or a list of them");
        }
        if (em_conf_parse_listen(text, &(*out)[*nout]) != 0) {
            return em_conf_fail(err, errlen, file, e,
                                "bad listen address \"%s\" (use \"127.0.0.1:3000\" or \"[::1]:3000\")", text);
        }
        (*nout)++;
    }
    return 0;
}

/* error_log, access_log: a destination, 1 to 1000 bytes, into *out. */
static int
em_conf_get_log(config_setting_t *root, const char *name, const char *what, char **out,
                const char *file, char *err, size_t errlen)
{
    const char *v = NULL;

    if (em_conf_get_string(root, name, &v, file, err, errlen) != 0) {
        return -1;
    }
    if (v != NULL) {
        if (v[0] == '\0' || strlen(v) > 1000) {
            return em_conf_fail(err, errlen, file, config_setting_get_member(root, name),
                                "\"%s\" must be %s", name, what);
        }
        *out = em_conf_strdup(v);
    }
    return 0;
}

static const char *const em_conf_tls_keys[] = { "listen", "certificate", "key", "min_version",
                                                NULL };

/* tls = { listen = [ "0.0.0.0:3443" ]; certificate = "chain.pem"; key = "key.pem";
 *         min_version = "TLSv1.2"; } (the files are read by the master: emitd -t too) */
static int
em_conf_read_tls(config_setting_t *g, em_conf_t *conf, const char *file, char *err, size_t errlen)
{
    em_conf_tls_t    *t;
    config_setting_t *l;
    const char       *cert = NULL, *key = NULL, *minv = NULL;

    if (!config_setting_is_group(g)) {
        return em_conf_fail(err, errlen, file, g, "\"tls\" must be a group { listen = [ ... ]; "
                            "certificate = \"...\"; key = \"...\"; }");
    }
    t = conf->tls = em_conf_calloc(1, sizeof(*t));
    t->line = config_setting_source_line(g);
    t->min_version = EM_CONF_TLS_1_2;
    if (em_conf_check_keys(g, em_conf_tls_keys, "tls", file, err, errlen) != 0
        || em_conf_get_string(g, "certificate", &cert, file, err, errlen) != 0
        || em_conf_get_string(g, "key", &key, file, err, errlen) != 0
        || em_conf_get_string(g, "min_version", &minv, file, err, errlen) != 0) {
        return -1;
    }
    if ((l = config_setting_get_member(g, "listen")) == NULL) {
        return em_conf_fail(err, errlen, file, g, "tls needs \"listen\": the addresses served with TLS");
    }
    if (em_conf_read_listen(l, &t->listen, &t->nlisten, file, err, errlen) != 0) {
        return -1;
    }
    if (cert == NULL || key == NULL || cert[0] == '\0' || key[0] == '\0') {
        return em_conf_fail(err, errlen, file, g, "tls needs \"certificate\" and \"key\": PEM files");
    }
    t->certificate = em_conf_script_path(file, cert);
    t->key = em_conf_script_path(file, key);
    if (minv != NULL) {
        if (strcmp(minv, "TLSv1.2") == 0) {
            t->min_version = EM_CONF_TLS_1_2;
        } else if (strcmp(minv, "TLSv1.3") == 0) {
            t->min_version = EM_CONF_TLS_1_3;
        } else {
            return em_conf_fail(err, errlen, file, config_setting_get_member(g, "min_version"),
                                "tls.min_version must be \"TLSv1.2\" or \"TLSv1.3\"");
        }
    }
    return 0;
}

static const char *const em_conf_admin_keys[] = { "listen", "keys", "max_body", "timeout",
                                                  "max_ack_timeout", NULL };

/* admin = { listen = "127.0.0.1:3001"; keys = [ "..." ]; max_body = 1048576;
 *           timeout = 5000; max_ack_timeout = 60000; } */
static int
em_conf_read_admin(config_setting_t *g, em_conf_t *conf, const char *file, char *err,
                   size_t errlen)
{
    em_conf_admin_t  *a;
    config_setting_t *keys, *l;
    const char       *text = NULL;
    unsigned          body = 1024 * 1024;
    int               n;

    if (!config_setting_is_group(g)) {
        return em_conf_fail(err, errlen, file, g, "\"admin\" must be a group "
                            "{ listen = \"127.0.0.1:3001\"; keys = [ \"...\" ]; }");
    }
    a = conf->admin = em_conf_calloc(1, sizeof(*a));
    a->timeout = 5000;
    a->max_ack_timeout = 60000;
    if (em_conf_check_keys(g, em_conf_admin_keys, "admin", file, err, errlen) != 0
        || em_conf_get_uint(g, "max_body", 1024, EM_CONF_ADMIN_BODY_MAX, &body, file, err, errlen) != 0
        || em_conf_get_uint(g, "timeout", 100, EM_CONF_ADMIN_TIMEOUT_MAX, &a->timeout, file, err,
                            errlen) != 0
        || em_conf_get_uint(g, "max_ack_timeout", 1, EM_CONF_ADMIN_TIMEOUT_MAX, &a->max_ack_timeout,
                            file, err, errlen) != 0) {
        return -1;
    }
    a->max_body = body;
    l = config_setting_get_member(g, "listen");
    if (l != NULL && config_setting_type(l) == CONFIG_TYPE_STRING) {
        text = config_setting_get_string(l);
    }
    if (text == NULL || em_conf_parse_listen(text, &a->listen) != 0) {
        return em_conf_fail(err, errlen, file, l != NULL ? l : g,
                            "admin needs \"listen\": an address such as \"127.0.0.1:3001\"");
    }
    keys = config_setting_get_member(g, "keys");
    n = keys != NULL && (config_setting_is_list(keys) || config_setting_is_array(keys))
        ? config_setting_length(keys) : 0;
    if (n < 1 || n > EM_CONF_ADMIN_KEYS_MAX) {
        return em_conf_fail(err, errlen, file, keys != NULL ? keys : g,
                            "admin needs \"keys\": a list of 1 to %d strings",
                            EM_CONF_ADMIN_KEYS_MAX);
    }
    a->keys = em_conf_calloc((size_t) n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        const char *k = config_setting_get_string_elem(keys, i);
        if (k == NULL || strlen(k) < EM_CONF_ADMIN_KEY_MIN || strlen(k) > EM_CONF_API_KEY_MAX
            || strpbrk(k, " \t\r\n") != NULL) {
            return em_conf_fail(err, errlen, file, keys, "each admin key must be a string of "
                                "%d to %d bytes without blanks", EM_CONF_ADMIN_KEY_MIN,
                                EM_CONF_API_KEY_MAX);
        }
        a->keys[a->nkeys++] = em_conf_strdup(k);
    }
    return 0;
}

static const char *const em_conf_webhook_keys[] = { "max_inflight", "timeout", "max_response",
                                                    NULL };

/* webhooks = { max_inflight = 64; timeout = 10000; max_response = 1048576; } */
static int
em_conf_read_webhooks(config_setting_t *g, em_conf_t *conf, const char *file, char *err,
                      size_t errlen)
{
    unsigned resp = (unsigned) conf->webhook_max_response;

    if (!config_setting_is_group(g)) {
        return em_conf_fail(err, errlen, file, g, "\"webhooks\" must be a group");
    }
    if (em_conf_check_keys(g, em_conf_webhook_keys, "webhooks", file, err, errlen) != 0
        || em_conf_get_uint(g, "max_inflight", 1, 100000, &conf->webhook_max_inflight, file, err,
                            errlen) != 0
        || em_conf_get_uint(g, "timeout", 1, 600000, &conf->webhook_timeout, file, err, errlen) != 0
        || em_conf_get_uint(g, "max_response", 1024, 64u * 1024 * 1024, &resp, file, err,
                            errlen) != 0) {
        return -1;
    }
    conf->webhook_max_response = resp;
    return 0;
}

static const char *const em_conf_store_keys[] = { "entries", NULL };

/* Namespace "/" for endpoint ep, which was given none. */
static void
em_conf_default_nsp(em_conf_t *conf, size_t ep)
{
    em_conf_nsp_t *grown = realloc(conf->nsps, (conf->nnsps + 1) * sizeof(em_conf_nsp_t));
    char           name[300];

    if (grown == NULL) {
        abort();        /* em_conf_calloc's policy: the configuration cannot be half read */
    }
    conf->nsps = grown;
    memset(&conf->nsps[conf->nnsps], 0, sizeof(em_conf_nsp_t));
    snprintf(name, sizeof(name), "%s/", conf->endpoints[ep].prefix);
    conf->nsps[conf->nnsps].name = em_conf_strdup(name);
    conf->nsps[conf->nnsps].endpoint = ep;
    conf->nnsps++;
}

static const char *const em_conf_socketio_keys[] = {
    "path", "ping_interval", "ping_timeout", "connect_timeout", "max_payload", "transports",
    "allow_upgrades", "namespaces", "cors", NULL
};

/* socketio = ( { path = "/realtime"; namespaces = ( ... ); ping_interval = ...; } ): more
 * Socket.IO endpoints, each with its own path, namespaces and settings
 * (the top-level ones are their defaults). */
static int
em_conf_read_socketio(config_setting_t *list, em_conf_t *conf, const char *file, char *err,
                      size_t errlen)
{
    int n = config_setting_length(list);

    if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
        return em_conf_fail(err, errlen, file, list,
                            "\"socketio\" must be a list: ( { path = \"/realtime\"; namespaces = ( ... ); } )");
    }
    for (int i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(list, (unsigned) i);
        if (!config_setting_is_group(g)) {
            return em_conf_fail(err, errlen, file, g, "each socketio endpoint must be a group");
        }
        if (em_conf_check_keys(g, em_conf_socketio_keys, "a socketio endpoint", file, err, errlen) != 0) {
            return -1;
        }
        em_conf_endpoint_t *eps = realloc(conf->endpoints, (conf->nendpoints + 1) * sizeof(*eps));
        if (eps == NULL) {
            return em_conf_fail(err, errlen, file, g, "out of memory");
        }
        conf->endpoints = eps;
        size_t              k = conf->nendpoints++;
        em_conf_endpoint_t *ep = &conf->endpoints[k];
        *ep = conf->endpoints[0];
        ep->path = NULL;
        ep->prefix = NULL;
        ep->cors = NULL;
        if (em_conf_read_endpoint(g, ep, file, err, errlen) != 0) {
            return -1;
        }
        if (ep->path == NULL) {
            return em_conf_fail(err, errlen, file, g, "a socketio endpoint needs a \"path\"");
        }
        config_setting_t *cg = config_setting_get_member(g, "cors");
        if (cg != NULL) {
            ep->cors = em_conf_calloc(1, sizeof(*ep->cors));
            if (em_conf_read_cors(cg, ep->cors, file, err, errlen) != 0) {
                return -1;
            }
        }
        size_t plen = strlen(ep->path);
        ep->prefix = em_conf_calloc(1, plen + 2);
        ep->prefix[0] = EM_CONF_NSP_PREFIX;
        memcpy(ep->prefix + 1, ep->path, plen - 1);     /* without the trailing '/' */
        ep->prefix[plen] = EM_CONF_NSP_SEP;
        size_t before = conf->nnsps;
        config_setting_t *ns = config_setting_get_member(g, "namespaces");
        if (ns != NULL && em_conf_read_namespaces(ns, conf, k, file, err, errlen) != 0) {
            return -1;
        }
        if (conf->nnsps == before) {
            em_conf_default_nsp(conf, k);
        }
    }
    return 0;
}

/* ---- vars: the scripts' own settings, kept as a tree ---- */

static void
em_conf_var_free(em_conf_var_t *v)
{
    for (size_t i = 0; i < v->nkids; i++) {
        em_conf_var_free(&v->kids[i]);
    }
    free(v->kids);
    free(v->name);
    free(v->s);
}

static int
em_conf_read_var(const config_setting_t *from, em_conf_var_t *v, int depth, size_t *count,
                 const char *file, char *err, size_t errlen)
{
    const char *name = config_setting_name(from);

    if (++*count > EM_CONF_VARS_MAX) {
        return em_conf_fail(err, errlen, file, from, "\"vars\" holds more than %d values",
                            EM_CONF_VARS_MAX);
    }
    if (depth > EM_CONF_VARS_DEPTH) {
        return em_conf_fail(err, errlen, file, from, "\"vars\" nests deeper than %d levels",
                            EM_CONF_VARS_DEPTH);
    }
    v->name = name != NULL ? em_conf_strdup(name) : NULL;
    switch (config_setting_type(from)) {
    case CONFIG_TYPE_STRING:
        v->type = EM_VAR_STRING;
        v->s = em_conf_strdup(config_setting_get_string(from));
        return 0;
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        v->type = EM_VAR_INT;
        v->i = config_setting_get_int64(from);
        return 0;
    case CONFIG_TYPE_FLOAT:
        v->type = EM_VAR_FLOAT;
        v->f = config_setting_get_float(from);
        return 0;
    case CONFIG_TYPE_BOOL:
        v->type = EM_VAR_BOOL;
        v->i = config_setting_get_bool(from);
        return 0;
    default:
        break;
    }
    v->type = config_setting_is_group(from) ? EM_VAR_GROUP : EM_VAR_LIST;
    v->nkids = (size_t) config_setting_length(from);
    v->kids = v->nkids ? em_conf_calloc(v->nkids, sizeof(*v->kids)) : NULL;
    for (size_t i = 0; i < v->nkids; i++) {
        if (em_conf_read_var(config_setting_get_elem(from, (unsigned) i), &v->kids[i], depth + 1,
                             count, file, err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}

static const char *const em_conf_known[] = {
    "listen", "workers", "log_level", "path", "ping_interval", "ping_timeout", "max_payload",
    "connect_timeout", "transports", "allow_upgrades", "cors", "namespaces", "engineio",
    "recovery", "limits", "health_path", "metrics_path", "admin", "webhooks", "store", "socketio", "vars", "pid_file", "max_connections", "error_log", "user", "group", "shutdown_timeout", "worker_shutdown_timeout", "access_log", "tls", "admin_ui", "redis", NULL
};

static const char *const em_conf_admin_ui_keys[] = { "namespace", "auth", "username", "password",
                                                     "readonly", "mode", "server_id",
                                                     "session_ttl", NULL };

/* Whether text is a bcrypt hash: $2a$, $2b$ or $2y$, a cost of 04 to 31,
 * then 53 characters of bcrypt's base64. */
static int
em_conf_bcrypt_ok(const char *h)
{
    static const char b64[] = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    int               cost;

    if (strlen(h) != 60 || h[0] != '$' || h[1] != '2' || strchr("aby", h[2]) == NULL
        || h[3] != '$' || h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9' || h[6] != '$') {
        return 0;
    }
    cost = (h[4] - '0') * 10 + (h[5] - '0');
    return cost >= 4 && cost <= 31 && strspn(h + 7, b64) == 53;
}

/* admin_ui = { namespace = "/admin"; username = "admin"; password = "$2b$10$...";
 *              readonly = false; mode = "development"; server_id = "..."; }
 * (or auth = false instead of username and password): the namespace is
 * appended to the first endpoint's. */
static int
em_conf_read_admin_ui(config_setting_t *g, em_conf_t *conf, const char *file, char *err,
                      size_t errlen)
{
    em_conf_admin_ui_t *a;
    const char         *nsp = "/admin", *user = NULL, *pass = NULL, *mode = NULL, *id = NULL;
    int                 auth = 1, ro = 0;
    char                host[256];

    if (!config_setting_is_group(g)) {
        return em_conf_fail(err, errlen, file, g, "\"admin_ui\" must be a group { username = "
                            "\"admin\"; password = \"<bcrypt hash>\"; }");
    }
    a = conf->admin_ui = em_conf_calloc(1, sizeof(*a));
    a->session_ttl = 86400;
    if (em_conf_check_keys(g, em_conf_admin_ui_keys, "admin_ui", file, err, errlen) != 0
        || em_conf_get_string(g, "namespace", &nsp, file, err, errlen) != 0
        || em_conf_get_string(g, "username", &user, file, err, errlen) != 0
        || em_conf_get_string(g, "password", &pass, file, err, errlen) != 0
        || em_conf_get_string(g, "mode", &mode, file, err, errlen) != 0
        || em_conf_get_string(g, "server_id", &id, file, err, errlen) != 0
        || em_conf_get_bool(g, "auth", &auth, file, err, errlen) != 0
        || em_conf_get_bool(g, "readonly", &ro, file, err, errlen) != 0
        || em_conf_get_uint(g, "session_ttl", 60, 30u * 86400, &a->session_ttl, file, err,
                            errlen) != 0) {
        return -1;
    }
    if (!em_conf_nsp_name_ok(nsp) || strchr(nsp, ':') != NULL
        || strlen(nsp) >= EM_CONF_ADMIN_UI_NAME_MAX) {
        return em_conf_fail(err, errlen, file, g, "admin_ui.namespace must begin with '/' and "
                            "have no ':', ',' or control characters");
    }
    for (size_t j = 0; j < conf->nnsps; j++) {
        if (strcmp(conf->nsps[j].name, nsp) == 0) {
            return em_conf_fail(err, errlen, file, g, "admin_ui.namespace \"%s\" is also in "
                                "\"namespaces\": the dashboard's namespace is its own", nsp);
        }
    }
    if (auth) {
        if (user == NULL || user[0] == '\0' || strlen(user) >= EM_CONF_ADMIN_UI_NAME_MAX
            || pass == NULL) {
            return em_conf_fail(err, errlen, file, g, "admin_ui needs \"username\" and "
                                "\"password\" (or auth = false, which lets anyone in)");
        }
        if (!em_conf_bcrypt_ok(pass)) {
            return em_conf_fail(err, errlen, file, config_setting_get_member(g, "password"),
                                "admin_ui.password must be a bcrypt hash (\"$2b$10$\" and 53 "
                                "characters), not the password itself");
        }
        a->username = em_conf_strdup(user);
        a->password = em_conf_strdup(pass);
    } else if (user != NULL || pass != NULL) {
        return em_conf_fail(err, errlen, file, g, "admin_ui: auth = false takes no username or "
                            "password");
    }
    if (mode != NULL && strcmp(mode, "development") != 0 && strcmp(mode, "production") != 0) {
        return em_conf_fail(err, errlen, file, config_setting_get_member(g, "mode"),
                            "admin_ui.mode must be \"development\" or \"production\"");
    }
    a->production = mode != NULL && strcmp(mode, "production") == 0;
    a->readonly = ro != 0;
    if (id == NULL) {
        if (gethostname(host, sizeof(host)) != 0) {
            snprintf(host, sizeof(host), "emitd");
        }
        host[sizeof(host) - 1] = '\0';
        id = host;
    }
    if (id[0] == '\0' || strlen(id) >= EM_CONF_ADMIN_UI_NAME_MAX) {
        return em_conf_fail(err, errlen, file, g, "admin_ui.server_id must be 1 to %d bytes",
                            EM_CONF_ADMIN_UI_NAME_MAX - 1);
    }
    a->server_id = em_conf_strdup(id);
    a->nsp = em_conf_strdup(nsp);

    em_conf_nsp_t *grown = realloc(conf->nsps, (conf->nnsps + 1) * sizeof(em_conf_nsp_t));
    if (grown == NULL) {
        abort();
    }
    conf->nsps = grown;
    memset(&conf->nsps[conf->nnsps], 0, sizeof(em_conf_nsp_t));
    conf->nsps[conf->nnsps].name = em_conf_strdup(nsp);
    a->nsp_index = conf->nnsps++;
    return 0;
}

static const char *const em_conf_redis_keys[] = { "url", "key", "max_message", "mode", "stream",
                                                   "maxlen", NULL };

/* %XX-decode src into a new string (NULL when it holds a bad escape or NUL). */
static char *
em_conf_url_part(const char *src, size_t len)
{
    char  *out = em_conf_calloc(len + 1, 1);
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        if (src[i] == '%') {
            static const char hex[] = "0123456789abcdef";
            const char       *hi, *lo;
            if (len - i < 3 || src[i + 1] == '\0' || src[i + 2] == '\0'
                || (hi = strchr(hex, tolower((unsigned char) src[i + 1]))) == NULL
                || (lo = strchr(hex, tolower((unsigned char) src[i + 2]))) == NULL
                || (hi == hex && lo == hex)) {
                free(out);
                return NULL;
            }
            out[n++] = (char) ((hi - hex) * 16 + (lo - hex));
            i += 2;
        } else {
            out[n++] = src[i];
        }
    }
    out[n] = '\0';
    return out;
}

/* redis = { url = "redis://[[user]:password@]host[:port][/db]"; key = "socket.io";
 *           max_message = 4194304; } */
static int
em_conf_read_redis(config_setting_t *g, em_conf_t *conf, const char *file, char *err,
                   size_t errlen)
{
    em_conf_redis_t *r;
    const char      *url = NULL, *key = "socket.io", *p, *at, *slash, *colon, *hend;
    const char      *mode = "pubsub", *stream = "socket.io";
    unsigned         max = 4u * 1024 * 1024, maxlen = 10000;
    char             text[600];

    if (!config_setting_is_group(g)) {
        return em_conf_fail(err, errlen, file, g, "\"redis\" must be a group { url = "
                            "\"redis://127.0.0.1:6379/0\"; }");
    }
    r = conf->redis = em_conf_calloc(1, sizeof(*r));
    if (em_conf_check_keys(g, em_conf_redis_keys, "redis", file, err, errlen) != 0
        || em_conf_get_string(g, "url", &url, file, err, errlen) != 0
        || em_conf_get_string(g, "key", &key, file, err, errlen) != 0
        || em_conf_get_uint(g, "max_message", 1024, 64u * 1024 * 1024, &max, file, err, errlen) != 0
        || em_conf_get_string(g, "mode", &mode, file, err, errlen) != 0
        || em_conf_get_string(g, "stream", &stream, file, err, errlen) != 0
        || em_conf_get_uint(g, "maxlen", 1, 100000000, &maxlen, file, err, errlen) != 0) {
        return -1;
    }
    r->max_message = max;
    r->maxlen = maxlen;
    if (strcmp(mode, "pubsub") != 0 && strcmp(mode, "streams") != 0) {
        return em_conf_fail(err, errlen, file, g, "redis.mode must be \"pubsub\" (the Redis adapter's) "
                            "or \"streams\" (the Redis Streams adapter's)");
    }
    r->streams = strcmp(mode, "streams") == 0;
    if (stream[0] == '\0' || strlen(stream) > 200 || strpbrk(stream, " \t\r\n") != NULL) {
        return em_conf_fail(err, errlen, file, g, "redis.stream must be 1 to 200 bytes without blanks");
    }
    r->stream = em_conf_strdup(stream);
    if (url == NULL) {
        return em_conf_fail(err, errlen, file, g, "redis needs \"url\": \"redis://host:port/db\"");
    }
    if (strncmp(url, "rediss://", 9) == 0) {
        return em_conf_fail(err, errlen, file, g, "redis: TLS (rediss://) needs hiredis 1.0 with "
                            "SSL; Debian 12's hiredis 0.14 has none: use a TLS tunnel to Redis");
    }
    if (strncmp(url, "redis://", 8) != 0 || strlen(url) > 512) {
        return em_conf_fail(err, errlen, file, g, "redis.url must be \"redis://[[user]:password@]"
                            "host[:port][/db]\"");
    }
    p = url + 8;
    slash = strchr(p, '/');
    at = memchr(p, '@', slash ? (size_t) (slash - p) : strlen(p));
    if (at != NULL) {
        colon = memchr(p, ':', (size_t) (at - p));
        if (colon == NULL) {
            return em_conf_fail(err, errlen, file, g, "redis.url: the part before '@' must be "
                                "\"[user]:password\"");
        }
        if (colon > p && (r->user = em_conf_url_part(p, (size_t) (colon - p))) == NULL) {
            return em_conf_fail(err, errlen, file, g, "redis.url: a bad %%-escape in the user");
        }
        if ((r->password = em_conf_url_part(colon + 1, (size_t) (at - colon - 1))) == NULL) {
            return em_conf_fail(err, errlen, file, g, "redis.url: a bad %%-escape in the password");
        }
        p = at + 1;
    }
    hend = slash ? slash : p + strlen(p);
    colon = NULL;
    for (const char *q = p; q < hend; q++) {
        if (*q == ':') {
            colon = q;
        }
    }
    if (*p == '[') {        /* [v6]:port */
        const char *close = memchr(p, ']', (size_t) (hend - p));
        if (close == NULL) {
            return em_conf_fail(err, errlen, file, g, "redis.url: an IPv6 address needs its ']'");
        }
        r->host = em_conf_calloc((size_t) (close - p), 1);
        memcpy(r->host, p + 1, (size_t) (close - p - 1));
        colon = close + 1 < hend && close[1] == ':' ? close + 1 : NULL;
    } else {
        const char *e = colon ? colon : hend;
        r->host = em_conf_calloc((size_t) (e - p) + 1, 1);
        memcpy(r->host, p, (size_t) (e - p));
    }
    r->port = 6379;
    if (colon != NULL) {
        char *end;
        long  port = strtol(colon + 1, &end, 10);
        if (end != hend || port < 1 || port > 65535) {
            return em_conf_fail(err, errlen, file, g, "redis.url: the port must be 1 to 65535");
        }
        r->port = (unsigned) port;
    }
    if (r->host[0] == '\0') {
        return em_conf_fail(err, errlen, file, g, "redis.url needs a host");
    }
    if (slash != NULL && slash[1] != '\0') {
        char *end;
        long  db = strtol(slash + 1, &end, 10);
        if (*end != '\0' || db < 0 || db > 1000000) {
            return em_conf_fail(err, errlen, file, g, "redis.url: the database must be a number");
        }
        r->db = (unsigned) db;
    }
    if (key[0] == '\0' || strlen(key) > 200 || strpbrk(key, "#*?[] \t\r\n") != NULL) {
        return em_conf_fail(err, errlen, file, g, "redis.key must be 1 to 200 bytes without '#', "
                            "'*', '?', '[', ']' or blanks");
    }
    r->key = em_conf_strdup(key);
    snprintf(text, sizeof(text), strchr(r->host, ':') ? "redis://%s[%s]:%u/%u" : "redis://%s%s:%u/%u",
             r->password ? "***@" : "", r->host, r->port, r->db);
    r->text = em_conf_strdup(text);
    return 0;
}

static int
em_conf_read(config_t *cfg, em_conf_t *conf, const char *file, char *err, size_t errlen)
{
    config_setting_t *root = config_root_setting(cfg);
    config_setting_t *s;
    const char       *level = NULL;
    unsigned          workers = 0;

    for (int i = 0; i < config_setting_length(root); i++) {
        config_setting_t *e = config_setting_get_elem(root, (unsigned) i);
        const char       *name = config_setting_name(e);
        int               known = 0;
        for (size_t k = 0; em_conf_known[k] != NULL; k++) {
            known |= strcmp(name, em_conf_known[k]) == 0;
        }
        if (!known) {
            return em_conf_fail(err, errlen, file, e, "unknown setting \"%s\"", name);
        }
    }

    if ((s = config_setting_get_member(root, "listen")) != NULL) {
        if (em_conf_read_listen(s, &conf->listen, &conf->nlisten, file, err, errlen) != 0) {
            return -1;
        }
    }
    if ((s = config_setting_get_member(root, "tls")) != NULL
        && em_conf_read_tls(s, conf, file, err, errlen) != 0) {
        return -1;
    }
    if (em_conf_get_uint(root, "max_connections", 0, 10000000, &conf->max_connections, file, err,
                         errlen) != 0
        || em_conf_get_uint(root, "shutdown_timeout", 0, 3600000, &conf->shutdown_timeout, file,
                            err, errlen) != 0
        || em_conf_get_uint(root, "worker_shutdown_timeout", 0, 3600000,
                            &conf->worker_shutdown_timeout, file, err, errlen) != 0) {
        return -1;
    }
    if (em_conf_get_uint(root, "workers", 0, EM_MAX_WORKERS, &workers, file, err, errlen) != 0) {
        return -1;
    }
    if (workers != 0) {
        conf->workers = workers;
    }
    if (em_conf_get_string(root, "log_level", &level, file, err, errlen) != 0) {
        return -1;
    }
    if (level != NULL) {
        conf->log_level = em_log_level_parse(level);
        if (conf->log_level < 0) {
            return em_conf_fail(err, errlen, file, config_setting_get_member(root, "log_level"),
                                "\"log_level\" must be error, warn, info or debug");
        }
    }
    static const char *const paths[] = { "health_path", "metrics_path" };
    for (int i = 0; i < 2; i++) {
        const char *v = NULL;
        if (em_conf_get_string(root, paths[i], &v, file, err, errlen) != 0) {
            return -1;
        }
        if (v == NULL) {
            continue;
        }
        if (v[0] != '/' || strlen(v) > 255 || strpbrk(v, "?# \t\r\n") != NULL) {
            return em_conf_fail(err, errlen, file, config_setting_get_member(root, paths[i]),
                                "\"%s\" must be a path beginning with '/' (no query)", paths[i]);
        }
        *(i == 0 ? &conf->health_path : &conf->metrics_path) = em_conf_strdup(v);
    }
    if (conf->health_path != NULL && conf->metrics_path != NULL
        && strcmp(conf->health_path, conf->metrics_path) == 0) {
        return em_conf_fail(err, errlen, file, config_setting_get_member(root, "metrics_path"),
                            "\"metrics_path\" and \"health_path\" must differ");
    }
    static const char *const ids[] = { "user", "group" };
    for (int i = 0; i < 2; i++) {
        const char *v = NULL;
        if (em_conf_get_string(root, ids[i], &v, file, err, errlen) != 0) {
            return -1;
        }
        if (v != NULL && (v[0] == '\0' || strlen(v) > 64)) {
            return em_conf_fail(err, errlen, file, config_setting_get_member(root, ids[i]),
                                "\"%s\" must be a name of 1 to 64 bytes", ids[i]);
        }
        if (v != NULL) {
            *(i == 0 ? &conf->user : &conf->group) = em_conf_strdup(v);
        }
    }
    if (conf->group != NULL && conf->user == NULL) {
        return em_conf_fail(err, errlen, file, config_setting_get_member(root, "group"),
                            "\"group\" needs \"user\"");
    }
    if (em_conf_get_log(root, "error_log", "\"stderr\", \"syslog\" or a file name",
                        &conf->error_log, file, err, errlen) != 0
        || em_conf_get_log(root, "access_log", "\"off\", \"stderr\", \"syslog\" or a file name",
                           &conf->access_log, file, err, errlen) != 0) {
        return -1;
    }
    const char *pid = NULL;
    if (em_conf_get_string(root, "pid_file", &pid, file, err, errlen) != 0) {
        return -1;
    }
    if (pid != NULL) {
        if (pid[0] == '\0' || strlen(pid) > 1000 || pid[strlen(pid) - 1] == '/') {
            return em_conf_fail(err, errlen, file, config_setting_get_member(root, "pid_file"),
                                "\"pid_file\" must name a file (1 to 1000 bytes)");
        }
        conf->pid_file = em_conf_strdup(pid);
    }
    if (em_conf_read_endpoint(root, &conf->endpoints[0], file, err, errlen) != 0) {
        return -1;
    }
    if ((s = config_setting_get_member(root, "vars")) != NULL) {
        size_t count = 0;
        if (!config_setting_is_group(s)) {
            return em_conf_fail(err, errlen, file, s, "\"vars\" must be a group { name = value; ... }");
        }
        conf->vars = em_conf_calloc(1, sizeof(*conf->vars));
        if (em_conf_read_var(s, conf->vars, 0, &count, file, err, errlen) != 0) {
            return -1;
        }
    }
    if ((s = config_setting_get_member(root, "store")) != NULL) {
        if (!config_setting_is_group(s)) {
            return em_conf_fail(err, errlen, file, s, "\"store\" must be a group { entries = 16384; }");
        }
        if (em_conf_check_keys(s, em_conf_store_keys, "store", file, err, errlen) != 0
            || em_conf_get_uint(s, "entries", 1, 16u * 1024 * 1024, &conf->store_entries, file, err,
                                errlen) != 0) {
            return -1;
        }
    }
    if ((s = config_setting_get_member(root, "webhooks")) != NULL) {
        if (em_conf_read_webhooks(s, conf, file, err, errlen) != 0) {
            return -1;
        }
    }
    if ((s = config_setting_get_member(root, "admin")) != NULL) {
        if (em_conf_read_admin(s, conf, file, err, errlen) != 0) {
            return -1;
        }
    }
    if ((s = config_setting_get_member(root, "cors")) != NULL) {
        if (em_conf_read_cors(s, &conf->cors, file, err, errlen) != 0) {
            return -1;
        }
    }
    if ((s = config_setting_get_member(root, "recovery")) != NULL) {
        if (em_conf_read_recovery(s, conf, file, err, errlen) != 0) {
            return -1;
        }
    }
    if ((s = config_setting_get_member(root, "limits")) != NULL) {
        if (em_conf_read_limits(s, &conf->limits, file, err, errlen) != 0) {
            return -1;
        }
    }
    if ((s = config_setting_get_member(root, "namespaces")) != NULL) {
        if (em_conf_read_namespaces(s, conf, 0, file, err, errlen) != 0) {
            return -1;
        }
    }
    if (conf->nnsps == 0) {
        em_conf_default_nsp(conf, 0);   /* none given (or "( )"): "/" */
    }
    if ((s = config_setting_get_member(root, "admin_ui")) != NULL
        && em_conf_read_admin_ui(s, conf, file, err, errlen) != 0) {
        return -1;
    }
    if ((s = config_setting_get_member(root, "redis")) != NULL
        && em_conf_read_redis(s, conf, file, err, errlen) != 0) {
        return -1;
    }
    if ((s = config_setting_get_member(root, "engineio")) != NULL) {
        int n = config_setting_length(s);
        if (!config_setting_is_list(s) && !config_setting_is_array(s)) {
            return em_conf_fail(err, errlen, file, s,
                                "\"engineio\" must be a list: ( { path = \"/engine.io/\"; script = \"x.lua\"; } )");
        }
        em_conf_endpoint_t *eps = em_conf_calloc((size_t) n + 1, sizeof(*eps));
        eps[0] = conf->endpoints[0];
        free(conf->endpoints);
        conf->endpoints = eps;
        for (int i = 0; i < n; i++) {
            config_setting_t   *g = config_setting_get_elem(s, (unsigned) i);
            em_conf_endpoint_t *ep = &conf->endpoints[conf->nendpoints];
            const char         *script = NULL;

            if (!config_setting_is_group(g)) {
                return em_conf_fail(err, errlen, file, g, "each engineio endpoint must be a group");
            }
            if (em_conf_check_keys(g, em_conf_engineio_keys, "an engineio endpoint", file, err,
                                   errlen) != 0) {
                return -1;
            }
            *ep = conf->endpoints[0];
            ep->path = NULL;
            ep->prefix = NULL;
            ep->raw = 1;
            conf->nendpoints++;
            if (em_conf_read_endpoint(g, ep, file, err, errlen) != 0
                || em_conf_get_string(g, "script", &script, file, err, errlen) != 0) {
                return -1;
            }
            if (ep->path == NULL || script == NULL) {
                return em_conf_fail(err, errlen, file, g, "an engineio endpoint needs \"path\" and \"script\"");
            }
            ep->script = em_conf_script_path(file, script);
            if (access(ep->script, R_OK) != 0) {
                return em_conf_fail(err, errlen, file, g, "cannot read script \"%s\": %s",
                                    ep->script, strerror(errno));
            }
        }
    }
    if ((s = config_setting_get_member(root, "socketio")) != NULL
        && em_conf_read_socketio(s, conf, file, err, errlen) != 0) {
        return -1;
    }
    for (size_t i = 0; i < conf->nendpoints; i++) {
        for (size_t j = i + 1; j < conf->nendpoints; j++) {
            if (strcmp(conf->endpoints[i].path, conf->endpoints[j].path) == 0) {
                return em_conf_fail(err, errlen, file, NULL, "two endpoints use the path \"%s\"",
                                    conf->endpoints[i].path);
            }
        }
    }
    return 0;
}

/*
 * Copy the setting `from` (of another config_t) into the group or list
 * `into`, under its name; groups, arrays and lists recursively. Returns 0,
 * or -1 when libconfig refuses an element (an array of mixed types).
 */
static int
em_conf_copy_setting(const config_setting_t *from, config_setting_t *into, int depth)
{
    int               type = config_setting_type(from);
    config_setting_t *to;

    if (depth > 64) {
        return -1;
    }
    to = config_setting_add(into, config_setting_is_group(into) ? config_setting_name(from) : NULL,
                            type);
    if (to == NULL) {
        return -1;
    }
    switch (type) {
    case CONFIG_TYPE_INT:
        return config_setting_set_int(to, config_setting_get_int(from)) == CONFIG_TRUE ? 0 : -1;
    case CONFIG_TYPE_INT64:
        return config_setting_set_int64(to, config_setting_get_int64(from)) == CONFIG_TRUE ? 0 : -1;
    case CONFIG_TYPE_FLOAT:
        return config_setting_set_float(to, config_setting_get_float(from)) == CONFIG_TRUE ? 0 : -1;
    case CONFIG_TYPE_BOOL:
        return config_setting_set_bool(to, config_setting_get_bool(from)) == CONFIG_TRUE ? 0 : -1;
    case CONFIG_TYPE_STRING:
        return config_setting_set_string(to, config_setting_get_string(from)) == CONFIG_TRUE ? 0 : -1;
    default:
        for (int i = 0; i < config_setting_length(from); i++) {
            if (em_conf_copy_setting(config_setting_get_elem(from, (unsigned) i), to, depth + 1) != 0) {
                return -1;
            }
        }
        return 0;
    }
}

/*
 * Replace the top-level settings of cfg with those of the text `over`
 * (the command line's -g). Returns 0, or -1 with a message in err.
 */
static int
em_conf_override(config_t *cfg, const char *over, char *err, size_t errlen)
{
    config_t          ov;
    config_setting_t *root = config_root_setting(cfg);
    config_setting_t *oroot;
    int               rc = 0;

    config_init(&ov);
    if (config_read_string(&ov, over) != CONFIG_TRUE) {
        snprintf(err, errlen, "-g:%d: %s", config_error_line(&ov), config_error_text(&ov));
        config_destroy(&ov);
        return -1;
    }
    oroot = config_root_setting(&ov);
    for (int i = 0; rc == 0 && i < config_setting_length(oroot); i++) {
        const config_setting_t *e = config_setting_get_elem(oroot, (unsigned) i);
        const char             *name = config_setting_name(e);

        if (config_setting_get_member(root, name) != NULL) {
            config_setting_remove(root, name);
        }
        if (em_conf_copy_setting(e, root, 0) != 0) {
            snprintf(err, errlen, "-g: cannot use the setting \"%s\"", name);
            rc = -1;
        }
    }
    config_destroy(&ov);
    return rc;
}

em_conf_t *
em_conf_load(const char *file, char *err, size_t errlen)
{
    return em_conf_load_with(file, NULL, err, errlen);
}

em_conf_t *
em_conf_load_with(const char *file, const char *over, char *err, size_t errlen)
{
    em_conf_t *conf = em_conf_calloc(1, sizeof(*conf));
    long       ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    config_t   cfg;
    int        rc = 0;

    conf->workers = (ncpu > 0) ? (unsigned) EM_MIN_U(ncpu, EM_MAX_WORKERS) : 1;
    conf->log_level = EM_LOG_INFO;
    conf->shutdown_timeout = 10000;
    conf->worker_shutdown_timeout = 10000;
    conf->recovery_max_disconnection = 120000;
    conf->recovery_buffer = 8u * 1024 * 1024;
    conf->recovery_sessions = 16384;
    conf->webhook_max_inflight = 64;
    conf->webhook_timeout = 10000;
    conf->webhook_max_response = 1024 * 1024;
    conf->store_entries = 16384;
    conf->limits = (em_conf_limits_t) {
        .event_args = 1024,
        .attachments = 10,          /* socket.io-parser's maxAttachments */
        .json_depth = 64,
        .event_name = 1024,
        .namespaces = 64,
        .rooms = 4096,
        .pending_acks = 1024,
        .request_timeout = 30000,
        .write_timeout = 30000,
        .output_soft = 4u * 1024 * 1024,
        .output_soft_time = 10000,
        .output_hard = 16u * 1024 * 1024,
        .script_memory = 1024u * 1024 * 1024,
        .script_time = 2000,
    };
    conf->endpoints = em_conf_calloc(1, sizeof(em_conf_endpoint_t));
    conf->nendpoints = 1;
    conf->endpoints[0] = (em_conf_endpoint_t) {
        .path = em_conf_strdup("/socket.io/"),
        .prefix = em_conf_strdup(""),
        .allow_upgrades = 1,
        .transports = EM_TRANSPORT_POLLING | EM_TRANSPORT_WEBSOCKET,
        .ping_interval = 25000,
        .ping_timeout = 20000,
        .connect_timeout = 45000,
        .max_payload = 1000000,
    };

    if (file != NULL || over != NULL) {
        conf->file = file != NULL ? em_conf_strdup(file) : NULL;
        config_init(&cfg);
        if (file == NULL) {
            rc = em_conf_override(&cfg, over, err, errlen);
            if (rc == 0) {
                rc = em_conf_read(&cfg, conf, "-g", err, errlen);
            }
        } else if (config_read_file(&cfg, file) != CONFIG_TRUE) {
            if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO) {
                snprintf(err, errlen, "%s: cannot read the file: %s", file, strerror(errno));
            } else {
                snprintf(err, errlen, "%s:%d: %s", config_error_file(&cfg) ? config_error_file(&cfg) : file,
                         config_error_line(&cfg), config_error_text(&cfg));
            }
            rc = -1;
        } else {
            rc = over != NULL ? em_conf_override(&cfg, over, err, errlen) : 0;
            if (rc == 0) {
                rc = em_conf_read(&cfg, conf, file, err, errlen);
            }
        }
        config_destroy(&cfg);
    }
    if (rc == 0 && conf->nlisten == 0) {
        conf->listen = em_conf_calloc(1, sizeof(em_conf_listen_t));
        em_conf_parse_listen(EM_CONF_DEFAULT_LISTEN, &conf->listen[0]);
        conf->nlisten = 1;
    }
    for (size_t i = 0; rc == 0 && conf->admin != NULL && i < conf->nlisten; i++) {
        if (strcmp(conf->listen[i].host, conf->admin->listen.host) == 0
            && strcmp(conf->listen[i].port, conf->admin->listen.port) == 0) {
            snprintf(err, errlen, "%s: the admin listener must have an address of its own "
                     "(%s is a public listener)", file ? file : "(default)",
                     conf->admin->listen.text);
            rc = -1;
        }
    }
    if (rc == 0 && conf->nnsps == 0) {
        em_conf_default_nsp(conf, 0);   /* the embedded default */
    }
    if (rc != 0) {
        em_conf_free(conf);
        return NULL;
    }
    return conf;
}

void
em_conf_free(em_conf_t *conf)
{
    if (conf == NULL) {
        return;
    }
    for (size_t i = 0; i < conf->nlisten; i++) {
        free(conf->listen[i].host);
        free(conf->listen[i].port);
        free(conf->listen[i].text);
    }
    if (conf->tls != NULL) {
        for (size_t i = 0; i < conf->tls->nlisten; i++) {
            free(conf->tls->listen[i].host);
            free(conf->tls->listen[i].port);
            free(conf->tls->listen[i].text);
        }
        free(conf->tls->listen);
        free(conf->tls->certificate);
        free(conf->tls->key);
        free(conf->tls);
    }
    if (conf->redis != NULL) {
        free(conf->redis->host);
        free(conf->redis->user);
        free(conf->redis->password);
        free(conf->redis->key);
        free(conf->redis->stream);
        free(conf->redis->text);
        free(conf->redis);
    }
    if (conf->admin_ui != NULL) {
        free(conf->admin_ui->nsp);
        free(conf->admin_ui->username);
        free(conf->admin_ui->password);
        free(conf->admin_ui->server_id);
        free(conf->admin_ui);
    }
    if (conf->admin != NULL) {
        free(conf->admin->listen.host);
        free(conf->admin->listen.port);
        free(conf->admin->listen.text);
        for (size_t i = 0; i < conf->admin->nkeys; i++) {
            free(conf->admin->keys[i]);
        }
        free(conf->admin->keys);
        free(conf->admin);
    }
    for (size_t i = 0; i < conf->nendpoints; i++) {
        free(conf->endpoints[i].path);
        free(conf->endpoints[i].script);
        free(conf->endpoints[i].prefix);
        if (conf->endpoints[i].cors != NULL) {
            em_conf_cors_free(conf->endpoints[i].cors);
            free(conf->endpoints[i].cors);
        }
    }
    for (size_t i = 0; i < conf->nnsps; i++) {
        free(conf->nsps[i].name);
        free(conf->nsps[i].script);
        free(conf->nsps[i].shutdown_event);
        free(conf->nsps[i].shutdown_message);
        for (size_t k = 0; k < conf->nsps[i].nrooms; k++) {
            free(conf->nsps[i].rooms[k]);
        }
        if (conf->nsps[i].connect_hook != NULL) {
            free(conf->nsps[i].connect_hook->url);
            free(conf->nsps[i].connect_hook->message);
            free(conf->nsps[i].connect_hook);
        }
        free(conf->nsps[i].rooms);
        em_conf_jwt_t *jw = conf->nsps[i].jwt;
        if (jw != NULL) {
            free(jw->key);
            free(jw->issuer);
            free(jw->audience);
            free(jw->token_auth);
            free(jw->token_query);
            free(jw->token_header);
            free(jw->missing_message);
            free(jw->invalid_message);
            free(jw->expired_message);
            free(jw);
        }
        em_conf_api_key_t *ak = conf->nsps[i].api_key;
        if (ak != NULL) {
            for (size_t k = 0; k < ak->nkeys; k++) {
                free(ak->keys[k]);
            }
            free(ak->keys);
            free(ak->query);
            free(ak->header);
            free(ak->auth);
            free(ak->missing_message);
            free(ak->invalid_message);
            free(ak);
        }
    }
    em_conf_cors_free(&conf->cors);
    if (conf->vars != NULL) {
        em_conf_var_free(conf->vars);
        free(conf->vars);
    }
    free(conf->health_path);
    free(conf->metrics_path);
    free(conf->listen);
    free(conf->endpoints);
    free(conf->nsps);
    free(conf->file);
    free(conf->pid_file);
    free(conf->error_log);
    free(conf->access_log);
    free(conf->user);
    free(conf->group);
    free(conf);
}

const em_conf_endpoint_t *
em_conf_endpoint(const em_conf_t *conf, const char *path, size_t len)
{
    for (size_t i = 0; i < conf->nendpoints; i++) {
        const char *p = conf->endpoints[i].path;
        size_t      plen = strlen(p);
        /* "/socket.io/" also matches "/socket.io" as Node's engine.io does. */
        if ((len == plen && memcmp(p, path, len) == 0)
            || (len == plen - 1 && memcmp(p, path, len) == 0)) {
            return &conf->endpoints[i];
        }
    }
    return NULL;
}

int
em_conf_needs_handshake(const em_conf_t *conf)
{
    for (size_t i = 0; i < conf->nnsps; i++) {
        if (conf->nsps[i].api_key != NULL || conf->nsps[i].jwt != NULL
            || conf->nsps[i].nrooms > 0 || conf->nsps[i].connect_hook != NULL) {
            return 1;
        }
    }
    return conf->admin_ui != NULL;      /* the dashboard lists each socket's handshake */
}

int
em_conf_has_connect_limits(const em_conf_t *conf)
{
    for (size_t i = 0; i < conf->nnsps; i++) {
        if (conf->nsps[i].connect_limit.max != 0) {
            return 1;
        }
    }
    return 0;
}

int
em_conf_origin_allowed(const em_conf_cors_t *cors, const char *origin, size_t len)
{
    if (cors->any) {
        return 1;
    }
    for (size_t i = 0; i < cors->norigins; i++) {
        if (strlen(cors->origins[i]) == len && memcmp(cors->origins[i], origin, len) == 0) {
            return 1;
        }
    }
    return 0;
}

const em_conf_cors_t *
em_conf_cors(const em_conf_t *conf, const em_conf_endpoint_t *ep)
{
    return ep != NULL && ep->cors != NULL ? ep->cors : &conf->cors;
}

/* Does "/device/42" match the pattern "/device/:id"? */
static int
em_conf_nsp_match(const char *pattern, const char *name, size_t len)
{
    const char *p = pattern, *n = name, *end = name + len;

    while (*p != '\0' && n < end) {
        if (p[0] == ':' && p > pattern && p[-1] == '/') {
            const char *seg = n;
            while (n < end && *n != '/') {
                n++;
            }
            if (n == seg) {
                return 0;
            }
            while (*p != '\0' && *p != '/') {
                p++;
            }
            continue;
        }
        if (*p != *n) {
            return 0;
        }
        p++;
        n++;
    }
    return *p == '\0' && n == end;
}

int
em_conf_nsp_index(const em_conf_t *conf, const char *name, size_t len, size_t *index)
{
    for (size_t i = 0; i < conf->nnsps; i++) {
        if (!conf->nsps[i].dynamic && strlen(conf->nsps[i].name) == len
            && memcmp(conf->nsps[i].name, name, len) == 0) {
            *index = i;
            return EM_OK;
        }
    }
    for (size_t i = 0; i < conf->nnsps; i++) {
        if (conf->nsps[i].dynamic && em_conf_nsp_match(conf->nsps[i].name, name, len)) {
            *index = i;
            return EM_OK;
        }
    }
    return EM_DECLINED;
}
