/*
 * em_conf.h - emitd's configuration: defaults, the libconfig file format
 * (see emitd.conf(5)) and validation. A loaded em_conf_t is immutable and
 * shared read-only by the master and (after fork) the workers.
 */
#ifndef EM_CONF_H
#define EM_CONF_H

#include <stddef.h>
#include <string.h>

#include "em_core.h"

#define EM_TRANSPORT_POLLING    0x1
#define EM_TRANSPORT_WEBSOCKET  0x2

#define EM_MAX_WORKERS 64

/* A rate limit: at most `max` hits per `window` ms; going over blocks the
 * key for `block` ms (0: until the window ends). max 0: no limit. */
typedef struct {
    unsigned  max;
    unsigned  window;
    unsigned  block;
} em_conf_limit_t;

/* api_key: the keys a client must present to join a namespace. */
#define EM_CONF_API_KEYS_MAX   64
#define EM_CONF_API_KEY_MAX    1024     /* bytes of one key */

typedef struct {
    char          **keys;
    size_t          nkeys;
    char           *query;          /* handshake query parameter, or NULL */
    char           *header;         /* handshake request header, or NULL */
    char           *auth;           /* field of the CONNECT auth object, or NULL */
    char           *missing_message;
    char           *invalid_message;
} em_conf_api_key_t;

/* jwt: the tokens a client must present to join a namespace. */
#define EM_CONF_JWT_HS256 (1u << 0)
#define EM_CONF_JWT_HS384 (1u << 1)
#define EM_CONF_JWT_HS512 (1u << 2)
#define EM_CONF_JWT_RS256 (1u << 3)
#define EM_CONF_JWT_RS384 (1u << 4)
#define EM_CONF_JWT_RS512 (1u << 5)
#define EM_CONF_JWT_ES256 (1u << 6)
#define EM_CONF_JWT_ES384 (1u << 7)
#define EM_CONF_JWT_HS    (EM_CONF_JWT_HS256 | EM_CONF_JWT_HS384 | EM_CONF_JWT_HS512)
#define EM_CONF_JWT_KEY_MAX (64 * 1024)

typedef struct {
    unsigned char  *key;            /* the HS secret, or the PEM text of the public key */
    size_t          key_len;
    unsigned        algs;           /* EM_CONF_JWT_*: what the key verifies */
    char           *issuer;         /* iss required, or NULL */
    char           *audience;       /* aud must hold it, or NULL */
    unsigned        leeway;         /* seconds of clock skew allowed */
    unsigned        optional:1;     /* required = false: no token admits, without claims */
    char           *token_auth;     /* CONNECT auth field, or NULL */
    char           *token_query;    /* handshake query parameter, or NULL */
    char           *token_header;   /* handshake header ("Bearer " stripped), or NULL */
    char           *missing_message;
    char           *invalid_message;
    char           *expired_message;
} em_conf_jwt_t;

/* The name of algorithm bit `alg` ("HS256"), or NULL. */
const char *em_conf_jwt_alg_name(unsigned alg);

/*
 * A namespace of another Socket.IO endpoint than the first is named inside
 * emitd with its endpoint's prefix, "@" + path (no trailing '/') + "#", then
 * its name as clients say it: "/" of path "/realtime/" is "@/realtime#/".
 * Its rooms, presence, recovery and store keys follow from that name, so
 * two endpoints' namespaces never meet; em_conf_nsp_wire() gives the name
 * clients see.
 */
#define EM_CONF_NSP_PREFIX '@'
#define EM_CONF_NSP_SEP    '#'

/* connect_hook: the backend admits or refuses each CONNECT of a namespace. */
typedef struct {
    char     *url;
    unsigned  timeout;          /* ms */
    char     *message;          /* the refusal's message when the backend gives none */
} em_conf_hook_t;

typedef struct {
    char           *name;           /* "/chat", or a pattern with ":param" segments (prefixed) */
    size_t          endpoint;       /* its Socket.IO endpoint (index into conf->endpoints) */
    char           *script;         /* absolute path of the handler script, or NULL */
    unsigned        dynamic:1;      /* name has ":param" segments */
    em_conf_limit_t connect_limit;  /* CONNECT attempts per client IP, all workers */
    char           *shutdown_event; /* sent to every socket when emitd stops, or NULL */
    char           *shutdown_message; /* its {"message": ...} */
    em_conf_api_key_t *api_key;     /* or NULL: no key needed */
    em_conf_jwt_t  *jwt;            /* or NULL: no token needed */
    char          **rooms;          /* room templates joined at connect */
    size_t          nrooms;
    em_conf_hook_t *connect_hook;   /* or NULL */
} em_conf_nsp_t;

#define EM_CONF_ROOM_TEMPLATES_MAX 16
#define EM_CONF_ROOM_TEMPLATE_MAX  1024     /* bytes of one template */

/* CORS of an endpoint ("cors" group). */
typedef struct {
    unsigned  enabled:1;
    unsigned  any:1;
    unsigned  credentials:1;
    char    **origins;
    size_t    norigins;
} em_conf_cors_t;

/* One Engine.IO endpoint: the Socket.IO one, or a raw Engine.IO one. */
typedef struct {
    char     *path;             /* always begins and ends with '/' */
    char     *script;           /* raw endpoints: the script; Socket.IO: NULL */
    unsigned  raw:1;
    char     *prefix;           /* Socket.IO: its namespaces' prefix ("" for the first) */
    em_conf_cors_t *cors;       /* its own "cors" group, or NULL: the top level's */
    unsigned  allow_upgrades:1;
    unsigned  transports;       /* EM_TRANSPORT_* bits */
    unsigned  ping_interval;    /* ms */
    unsigned  ping_timeout;     /* ms */
    unsigned  connect_timeout;  /* ms, Socket.IO only */
    size_t    max_payload;      /* bytes */
} em_conf_endpoint_t;

/*
 * Bounds on what one client may make a worker hold or do (the "limits"
 * group of emitd.conf(5)). Every count or length that arrives from the
 * network is checked against one of these before it sizes an allocation, a
 * copy or a push onto the Lua stack; a client that goes over one is
 * disconnected with a reason, logged and counted (SECURITY.md).
 */
typedef struct {
    unsigned  event_args;       /* arguments of one event or ack */
    unsigned  attachments;      /* binary attachments of one packet */
    unsigned  json_depth;       /* nesting of a packet's JSON data */
    unsigned  event_name;       /* bytes of an event name */
    unsigned  namespaces;       /* namespaces one connection is in at once */
    unsigned  rooms;            /* rooms one socket is in (besides its own id) */
    unsigned  pending_acks;     /* server emits a socket has not answered yet */
    unsigned  request_timeout;  /* ms to send a whole request head and body */
    unsigned  write_timeout;    /* ms a client may take none of its output */
    size_t    output_soft;      /* bytes waiting for one client ... */
    unsigned  output_soft_time; /* ... for longer than this (ms) close it */
    size_t    output_hard;      /* bytes waiting for one client: over it closes it */
    size_t    script_memory;    /* bytes a worker's scripts may hold */
    unsigned  script_time;      /* ms one call into a script may run */
} em_conf_limits_t;

/* Ceilings of the limits above that the code itself relies on. */
#define EM_CONF_MAX_ATTACHMENTS 1000    /* EM_SIO_MAX_ATTACHMENTS */
#define EM_CONF_MAX_JSON_DEPTH  200

typedef struct {
    char    *host;      /* numeric address */
    char    *port;
    char    *text;      /* as written */
} em_conf_listen_t;

/* The admin listener: the backend API, /health and /metrics, on an address
 * of its own ("admin" group). */
#define EM_CONF_ADMIN_KEYS_MAX    64
#define EM_CONF_ADMIN_KEY_MIN     16       /* bytes: a guessable key is refused */
#define EM_CONF_ADMIN_BODY_MAX    (2u * 1024 * 1024)   /* an event must fit the rings */
#define EM_CONF_ADMIN_TIMEOUT_MAX 600000u  /* ms */

typedef struct {
    em_conf_listen_t    listen;
    char              **keys;         /* bearer keys any of which admits a call */
    size_t              nkeys;
    size_t              max_body;     /* bytes of a request body; over: 413 */
    unsigned            timeout;      /* ms the workers have to answer a call */
    unsigned            max_ack_timeout; /* ms an emit may wait for acks */
} em_conf_admin_t;

/* TLS on listeners of their own (the "tls" group): OpenSSL in the workers. */
#define EM_CONF_TLS_1_2 0x0303
#define EM_CONF_TLS_1_3 0x0304

typedef struct {
    em_conf_listen_t   *listen;       /* served with TLS: the same endpoints as "listen" */
    size_t              nlisten;
    char               *certificate;  /* PEM: the certificate, then its chain */
    char               *key;          /* PEM: its private key */
    int                 min_version;  /* EM_CONF_TLS_* */
    int                 line;         /* of the group, for messages */
} em_conf_tls_t;

/* Redis as the bus between hosts (the "redis" group): the broker's. */
typedef struct {
    char               *host;         /* a name or a numeric address */
    unsigned            port;
    char               *user;         /* AUTH's user (Redis 6 ACL), or NULL */
    char               *password;     /* AUTH's password, or NULL: no AUTH */
    unsigned            db;           /* SELECT */
    char               *key;          /* the channels' prefix, as the adapter's "key" */
    char               *text;         /* the URL without its password, for the log */
    size_t              max_message;  /* bytes of a message taken from Redis */
    int                 streams;      /* mode "streams": broadcasts go by a stream, as the
                                       * Redis Streams adapter's do */
    char               *stream;       /* its name */
    unsigned            maxlen;       /* XADD MAXLEN ~ */
} em_conf_redis_t;

/* The @socket.io/admin-ui dashboard's namespace (the "admin_ui" group). */
#define EM_CONF_ADMIN_UI_NAME_MAX 256

typedef struct {
    char               *nsp;          /* "/admin": appended to the namespaces */
    size_t              nsp_index;    /* into conf->nsps */
    char               *username;     /* NULL: no login (auth = false) */
    char               *password;     /* the password's bcrypt hash ("$2b$10$...") */
    char               *server_id;    /* the host's serverId in server_stats */
    unsigned            readonly:1;   /* no emit, join, leave or disconnect */
    unsigned            production:1; /* mode "production": counts only, no socket events */
    unsigned            session_ttl;  /* s a login's session id admits again */
} em_conf_admin_ui_t;

typedef struct {
    char               *file;         /* the file read, or NULL (embedded default) */
    em_conf_listen_t   *listen;
    size_t              nlisten;
    unsigned            workers;
    int                 log_level;
    em_conf_endpoint_t *endpoints;    /* [0] is the Socket.IO endpoint */
    size_t              nendpoints;
    em_conf_nsp_t      *nsps;
    size_t              nnsps;
    char               *health_path;  /* GET answered with the health report, or NULL */
    char               *pid_file;     /* the master's pid, written at start; or NULL */
    char               *error_log;    /* "stderr", "syslog" or a file; NULL: stderr */
    char               *access_log;   /* "off", "stderr", "syslog" or a file; NULL: with error_log */
    char               *user;         /* the workers and the broker run as this user, or NULL */
    char               *group;        /* ... and group (NULL: the user's) */
    unsigned            max_connections;  /* Engine.IO sessions of the cluster; 0: no limit */
    unsigned            shutdown_timeout; /* ms from SIGTERM to SIGKILL of the children; 0: none */
    unsigned            worker_shutdown_timeout; /* ms a reload gives the old workers; 0: none */
    char               *metrics_path; /* GET answered with Prometheus metrics, or NULL */
    em_conf_admin_t    *admin;        /* the admin listener, or NULL */
    em_conf_tls_t      *tls;          /* TLS listeners, or NULL */
    em_conf_admin_ui_t *admin_ui;     /* the admin-ui dashboard's namespace, or NULL */
    em_conf_redis_t    *redis;        /* Redis between hosts, or NULL */

    /* Scripts' HTTP calls to their backends (the "webhooks" group). */
    unsigned            webhook_max_inflight;   /* calls at once, per worker */
    unsigned            webhook_timeout;        /* ms, when a call gives none */
    size_t              webhook_max_response;   /* bytes of a response body */
    unsigned            store_entries;          /* the scripts' store: keys and list items */

    /* Socket.IO connection-state recovery (the "recovery" group). */
    unsigned            recovery:1;
    unsigned            recovery_max_disconnection;   /* ms */
    size_t              recovery_buffer;              /* bytes of the packet log */
    unsigned            recovery_sessions;            /* sessions and tokens kept */

    em_conf_cors_t      cors;         /* the top-level "cors": the endpoints' default */

    struct em_conf_var *vars;         /* the "vars" group, for the scripts; or NULL */

    em_conf_limits_t    limits;
} em_conf_t;

/* A value of the "vars" group: the scripts' own settings (global "vars"). */
typedef enum {
    EM_VAR_STRING = 1,
    EM_VAR_INT,
    EM_VAR_FLOAT,
    EM_VAR_BOOL,
    EM_VAR_GROUP,       /* kids with names */
    EM_VAR_LIST         /* kids without names, in order */
} em_conf_var_type_t;

#define EM_CONF_VARS_MAX    4096    /* values in "vars", nested ones counted */
#define EM_CONF_VARS_DEPTH  8

typedef struct em_conf_var {
    char               *name;       /* NULL in a list */
    em_conf_var_type_t  type;
    char               *s;          /* STRING */
    long long           i;          /* INT, BOOL */
    double              f;          /* FLOAT */
    struct em_conf_var *kids;       /* GROUP, LIST */
    size_t              nkids;
} em_conf_var_t;

/*
 * Load the configuration from `file` (NULL: the embedded default). On error
 * returns NULL and writes a message naming the file and line into err.
 */
em_conf_t *em_conf_load(const char *file, char *err, size_t errlen);

/*
 * The same, with the top-level settings of the libconfig text `over` (NULL:
 * none) replacing the file's settings of the same name (emitd -g).
 */
em_conf_t *em_conf_load_with(const char *file, const char *over, char *err, size_t errlen);

void em_conf_free(em_conf_t *conf);

/* Find the endpoint whose path equals the request path (slices allowed). */
const em_conf_endpoint_t *em_conf_endpoint(const em_conf_t *conf, const char *path, size_t len);

/* The configured namespace of a name ("/device/42" is "/device/:id"'s), a
 * named one first: EM_OK and *index, or EM_DECLINED. */
int em_conf_nsp_index(const em_conf_t *conf, const char *name, size_t len, size_t *index);

/* The name clients use for a namespace's (prefixed) name. */
static inline em_str_t
em_conf_nsp_wire(const char *name, size_t len)
{
    if (len > 0 && name[0] == EM_CONF_NSP_PREFIX) {
        const char *sep = memchr(name, EM_CONF_NSP_SEP, len);
        if (sep != NULL) {
            return (em_str_t) { sep + 1, len - (size_t) (sep + 1 - name) };
        }
    }
    return (em_str_t) { name, len };
}

/* Whether a namespace has a connection limit (the client address is kept). */
int em_conf_has_connect_limits(const em_conf_t *conf);
/* Whether some namespace needs an API key or has room templates (the
 * handshake is kept). */
int em_conf_needs_handshake(const em_conf_t *conf);

/* True when the Origin value is allowed by the CORS settings. */
int em_conf_origin_allowed(const em_conf_cors_t *cors, const char *origin, size_t len);

/* The CORS settings of an endpoint (NULL: the top level's). */
const em_conf_cors_t *em_conf_cors(const em_conf_t *conf, const em_conf_endpoint_t *ep);

#endif
