/*
 * test_conf.c - the configuration reader (common/em_conf.c): the embedded
 * default, every setting read into em_conf_t, the lookups the workers use,
 * and a table of invalid files, each refused with its file, line and why.
 */
#include <stdio.h>
#include <unistd.h>

#include "em_check.h"
#include "em_conf.h"
#include "em_log.h"     /* EM_LOG_DEBUG */

static char em_t_dir[] = "/tmp/emitd-test-conf-XXXXXX";
static char em_t_err[512];

/* Write text to a file of the test directory and load it. */
static em_conf_t *
load_text(const char *name, const char *text)
{
    char  path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", em_t_dir, name);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    em_t_err[0] = '\0';
    return em_conf_load(path, em_t_err, sizeof(em_t_err));
}

static void
setup(void)
{
    char path[256];
    FILE *f;

    ck_assert_ptr_nonnull(mkdtemp(em_t_dir));
    snprintf(path, sizeof(path), "%s/chat.lua", em_t_dir);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("-- a script\n", f);
    fclose(f);
}

static void
teardown(void)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", em_t_dir);
    ck_assert_int_eq(system(cmd), 0);
    memcpy(em_t_dir + strlen(em_t_dir) - 6, "XXXXXX", 6);
}

START_TEST(test_default)
{
    em_conf_t *c = em_conf_load(NULL, em_t_err, sizeof(em_t_err));

    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_null(c->file);
    ck_assert_ptr_null(c->health_path);
    ck_assert_uint_eq(c->nlisten, 1);
    ck_assert_str_eq(c->listen[0].host, "127.0.0.1");
    ck_assert_str_eq(c->listen[0].port, "3000");
    ck_assert_uint_ge(c->workers, 1);
    ck_assert_uint_le(c->workers, EM_MAX_WORKERS);
    ck_assert_uint_eq(c->nendpoints, 1);
    ck_assert_str_eq(c->endpoints[0].path, "/socket.io/");
    ck_assert_uint_eq(c->endpoints[0].transports, EM_TRANSPORT_POLLING | EM_TRANSPORT_WEBSOCKET);
    ck_assert_uint_eq(c->endpoints[0].ping_interval, 25000);
    ck_assert_uint_eq(c->endpoints[0].ping_timeout, 20000);
    ck_assert_uint_eq(c->endpoints[0].max_payload, 1000000);
    ck_assert_uint_eq(c->nnsps, 1);
    ck_assert_str_eq(c->nsps[0].name, "/");
    ck_assert_ptr_null(c->nsps[0].script);
    ck_assert_uint_eq(c->recovery, 0);
    ck_assert_uint_eq(c->cors.enabled, 0);
    ck_assert_uint_eq(c->limits.event_args, 1024);
    ck_assert_uint_eq(c->limits.attachments, 10);
    ck_assert_uint_eq(c->limits.output_hard, 16u * 1024 * 1024);
    ck_assert_int_eq(em_conf_has_connect_limits(c), 0);
    em_conf_free(c);
}
END_TEST

START_TEST(test_everything)
{
    em_conf_t *c = load_text("all.conf",
        "listen = [ \"127.0.0.1:4000\", \"[::1]:4001\" ];\n"
        "workers = 3;\n"
        "log_level = \"debug\";\n"
        "health_path = \"/health\"; metrics_path = \"/metrics\";\n"
        "admin = { listen = \"127.0.0.1:4002\"; keys = [ \"0123456789abcdef\", \"fedcba9876543210x\" ];\n"
        "          max_body = 2048; timeout = 700; max_ack_timeout = 9000; };\n"
        "path = \"/sio\";\n"
        "ping_interval = 1500; ping_timeout = 700; max_payload = 4096;\n"
        "transports = [ \"websocket\" ];\n"
        "cors = { origins = [ \"https://app.example.com\" ]; credentials = true; };\n"
        "recovery = { max_disconnection = 60000; buffer = 1048576; sessions = 100; };\n"
        "limits = { event_args = 50; rooms = 7; output_soft = 8192; output_hard = 65536; };\n"
        "namespaces = (\n"
        "  { name = \"/chat\"; script = \"chat.lua\";\n"
        "    api_key = { keys = [ \"k1\", \"k2\" ]; header = \"\"; invalid_message = \"no\"; };\n"
        "    jwt = { secret = \"0123456789abcdef0123\"; algorithms = [ \"HS256\", \"HS512\" ];\n"
        "            issuer = \"me\"; leeway = 30; token_query = \"\"; required = false; };\n"
        "    connect_limit = { max = 5; window = 300000; block = 900000; }; },\n"
        "  { name = \"/device/:id\"; rooms = [ \"device:{auth.id}\", \"{query.a}-{headers.b}\" ];\n"
        "    shutdown_event = { name = \"system.maintenance\"; message = \"bye\"; }; }\n"
        ");\n"
        "engineio = ( { path = \"/raw\"; script = \"chat.lua\"; max_payload = 16; } );\n"
        "socketio = ( { path = \"/realtime\"; transports = [ \"websocket\" ]; ping_interval = 7000;\n"
        "               cors = { origins = \"https://rt.example\"; };\n"
        "               namespaces = ( { name = \"/\"; script = \"chat.lua\"; },\n"
        "                              { name = \"/chat\"; connect_hook = { url = \"http://127.0.0.1:9/hook\"; }; } ); },\n"
        "             { path = \"/ws/\"; } );\n");

    ck_assert_msg(c != NULL, "refused: %s", em_t_err);
    ck_assert_uint_eq(c->nlisten, 2);
    ck_assert_str_eq(c->listen[0].port, "4000");
    ck_assert_str_eq(c->listen[1].host, "::1");
    ck_assert_str_eq(c->listen[1].port, "4001");
    ck_assert_uint_eq(c->workers, 3);
    ck_assert_int_eq(c->log_level, EM_LOG_DEBUG);
    ck_assert_str_eq(c->health_path, "/health");
    ck_assert_str_eq(c->metrics_path, "/metrics");
    ck_assert_ptr_nonnull(c->admin);
    ck_assert_str_eq(c->admin->listen.host, "127.0.0.1");
    ck_assert_str_eq(c->admin->listen.port, "4002");
    ck_assert_uint_eq(c->admin->nkeys, 2);
    ck_assert_str_eq(c->admin->keys[1], "fedcba9876543210x");
    /* more Socket.IO endpoints: their settings, and their namespaces named
     * with their prefix */
    ck_assert_uint_eq(c->nendpoints, 4);
    ck_assert_str_eq(c->endpoints[2].path, "/realtime/");
    ck_assert_str_eq(c->endpoints[2].prefix, "@/realtime#");
    ck_assert_uint_eq(c->endpoints[2].ping_interval, 7000);
    ck_assert_uint_eq(c->endpoints[2].transports, EM_TRANSPORT_WEBSOCKET);
    ck_assert_uint_eq(c->endpoints[2].max_payload, 4096);    /* the top level's */
    ck_assert_str_eq(c->endpoints[3].prefix, "@/ws#");
    /* its own cors; the others take the top level's */
    ck_assert_ptr_nonnull(c->endpoints[2].cors);
    ck_assert_uint_eq(c->endpoints[2].cors->credentials, 0);
    ck_assert_int_eq(em_conf_origin_allowed(em_conf_cors(c, &c->endpoints[2]), B("https://rt.example")), 1);
    ck_assert_int_eq(em_conf_origin_allowed(em_conf_cors(c, &c->endpoints[2]), B("https://app.example.com")), 0);
    ck_assert_ptr_eq(em_conf_cors(c, &c->endpoints[3]), &c->cors);
    ck_assert_uint_eq(c->nnsps, 5);
    ck_assert_str_eq(c->nsps[2].name, "@/realtime#/");
    ck_assert_uint_eq(c->nsps[2].endpoint, 2);
    ck_assert_ptr_nonnull(c->nsps[2].script);
    ck_assert_str_eq(c->nsps[3].name, "@/realtime#/chat");
    ck_assert_str_eq(c->nsps[4].name, "@/ws#/");          /* none given: "/" */
    ck_assert_uint_eq(c->nsps[4].endpoint, 3);
    em_str_t w = em_conf_nsp_wire(c->nsps[3].name, strlen(c->nsps[3].name));
    ck_assert_uint_eq(w.len, 5);
    ck_assert(memcmp(w.data, "/chat", 5) == 0);
    ck_assert_uint_eq(c->nsps[0].endpoint, 0);
    ck_assert_ptr_nonnull(c->nsps[3].connect_hook);
    ck_assert_str_eq(c->nsps[3].connect_hook->url, "http://127.0.0.1:9/hook");
    ck_assert_uint_eq(c->nsps[3].connect_hook->timeout, 5000);
    ck_assert_str_eq(c->nsps[3].connect_hook->message, "Unauthorized");
    ck_assert_uint_eq(c->admin->max_body, 2048);
    ck_assert_uint_eq(c->admin->timeout, 700);
    ck_assert_uint_eq(c->admin->max_ack_timeout, 9000);
    /* The path is normalised to begin and end with '/'. */
    ck_assert_str_eq(c->endpoints[0].path, "/sio/");
    ck_assert_uint_eq(c->endpoints[0].ping_interval, 1500);
    ck_assert_uint_eq(c->endpoints[0].ping_timeout, 700);
    ck_assert_uint_eq(c->endpoints[0].max_payload, 4096);
    ck_assert_uint_eq(c->endpoints[0].transports, EM_TRANSPORT_WEBSOCKET);
    ck_assert_uint_eq(c->cors.enabled, 1);
    ck_assert_uint_eq(c->cors.credentials, 1);
    ck_assert_int_eq(em_conf_origin_allowed(&c->cors, B("https://app.example.com")), 1);
    ck_assert_int_eq(em_conf_origin_allowed(&c->cors, B("https://app.example.co")), 0);
    ck_assert_int_eq(em_conf_origin_allowed(&c->cors, B("https://evil.example.com")), 0);
    ck_assert_uint_eq(c->recovery, 1);
    ck_assert_uint_eq(c->recovery_max_disconnection, 60000);
    ck_assert_uint_eq(c->recovery_buffer, 1048576);
    ck_assert_uint_eq(c->recovery_sessions, 100);
    ck_assert_uint_eq(c->limits.event_args, 50);
    ck_assert_uint_eq(c->limits.rooms, 7);
    ck_assert_uint_eq(c->limits.attachments, 10);       /* not set: the default */
    ck_assert_uint_eq(c->nnsps, 5);
    ck_assert_str_eq(c->nsps[0].name, "/chat");
    /* A script path is taken relative to the configuration file. */
    ck_assert_ptr_nonnull(strstr(c->nsps[0].script, em_t_dir));
    ck_assert_ptr_nonnull(strstr(c->nsps[0].script, "/chat.lua"));
    ck_assert_uint_eq(c->nsps[0].connect_limit.max, 5);
    ck_assert_uint_eq(c->nsps[0].connect_limit.block, 900000);
    ck_assert_uint_eq(c->nsps[1].dynamic, 1);
    ck_assert_ptr_null(c->nsps[0].shutdown_event);
    ck_assert_ptr_nonnull(c->nsps[0].api_key);
    ck_assert_uint_eq(c->nsps[0].api_key->nkeys, 2);
    ck_assert_str_eq(c->nsps[0].api_key->keys[1], "k2");
    ck_assert_str_eq(c->nsps[0].api_key->query, "apiKey");     /* the defaults */
    ck_assert_str_eq(c->nsps[0].api_key->auth, "apiKey");
    ck_assert_ptr_null(c->nsps[0].api_key->header);             /* "": not looked at */
    ck_assert_str_eq(c->nsps[0].api_key->missing_message, "API key is required");
    ck_assert_str_eq(c->nsps[0].api_key->invalid_message, "no");
    ck_assert_ptr_null(c->nsps[1].api_key);
    ck_assert_uint_eq(c->nsps[1].nrooms, 2);
    ck_assert_str_eq(c->nsps[1].rooms[1], "{query.a}-{headers.b}");
    ck_assert_uint_eq(c->nsps[0].nrooms, 0);
    ck_assert_int_eq(em_conf_needs_handshake(c), 1);
    const em_conf_jwt_t *j = c->nsps[0].jwt;
    ck_assert_ptr_nonnull(j);
    ck_assert_uint_eq(j->algs, EM_CONF_JWT_HS256 | EM_CONF_JWT_HS512);
    ck_assert_uint_eq(j->key_len, 20);
    ck_assert_str_eq(j->issuer, "me");
    ck_assert_ptr_null(j->audience);
    ck_assert_uint_eq(j->leeway, 30);
    ck_assert_uint_eq(j->optional, 1);
    ck_assert_str_eq(j->token_auth, "token");
    ck_assert_ptr_null(j->token_query);
    ck_assert_str_eq(j->token_header, "authorization");
    ck_assert_str_eq(j->expired_message, "Token expired");
    ck_assert_ptr_null(c->nsps[1].jwt);
    ck_assert_str_eq(c->nsps[1].shutdown_event, "system.maintenance");
    ck_assert_str_eq(c->nsps[1].shutdown_message, "bye");
    ck_assert_uint_eq(c->nsps[0].dynamic, 0);
    ck_assert_int_eq(em_conf_has_connect_limits(c), 1);
    /* The raw endpoint inherits the top-level settings it does not set. */
    ck_assert_uint_eq(c->nendpoints, 4);
    ck_assert_uint_eq(c->endpoints[1].raw, 1);
    ck_assert_str_eq(c->endpoints[1].path, "/raw/");
    ck_assert_uint_eq(c->endpoints[1].max_payload, 16);
    ck_assert_uint_eq(c->endpoints[1].ping_interval, 1500);
    em_conf_free(c);
}
END_TEST

START_TEST(test_endpoint_lookup)
{
    em_conf_t *c = load_text("ep.conf",
        "engineio = ( { path = \"/engine.io/\"; script = \"chat.lua\"; } );\n");
    const em_conf_endpoint_t *ep;

    ck_assert_msg(c != NULL, "refused: %s", em_t_err);
    ep = em_conf_endpoint(c, B("/socket.io/"));
    ck_assert_ptr_eq(ep, &c->endpoints[0]);
    /* Without the trailing slash too, as Node's engine.io matches it. */
    ck_assert_ptr_eq(em_conf_endpoint(c, B("/socket.io")), &c->endpoints[0]);
    ck_assert_ptr_eq(em_conf_endpoint(c, B("/engine.io/")), &c->endpoints[1]);
    ck_assert_ptr_null(em_conf_endpoint(c, B("/socket.io/x")));
    ck_assert_ptr_null(em_conf_endpoint(c, B("/socket.i")));
    ck_assert_ptr_null(em_conf_endpoint(c, B("/")));
    ck_assert_ptr_null(em_conf_endpoint(c, B("")));
    em_conf_free(c);
}
END_TEST

/* Each invalid file: refused, and the error names the file, the line of
 * the offending setting and what is wrong. */
static const struct {
    const char *text;
    int         line;
    const char *why;
} em_bad[] = {
    { "workers = 2;\nlog_level = = \"info\";\n", 2, "syntax error" },
    { "workers = 2;\ncolour = \"blue\";\n", 2, "unknown setting \"colour\"" },
    { "\nworkers = 65;\n", 2, "workers" },
    { "log_level = \"loud\";\n", 1, "log_level" },
    { "listen = \"127.0.0.1:notaport\";\n", 1, "listen" },
    { "workers = 2;\nlisten = { };\n", 2, "\"listen\" must be" },
    { "\n\nlimits = { output_soft = 9000; output_hard = 8192; };\n", 3, "output_soft" },
    { "limits = { bogus = 1; };\n", 1, "bogus" },
    { "namespaces = ( { name = \"/a\"; }, { name = \"/a\"; } );\n", 1, "/a" },
    { "namespaces = ( { name = \"nosl\"; } );\n", 1, "beginning with '/'" },
    { "namespaces = ( { name = \"/a\"; script = \"missing.lua\"; } );\n", 1, "missing.lua" },
    { "transports = [ \"carrier-pigeon\" ];\n", 1, "unknown transport" },
    { "engineio = ( { path = \"/socket.io/\"; script = \"chat.lua\"; } );\n", 0, "two endpoints" },
    { "engineio = ( { path = \"/raw\"; } );\n", 1, "script" },
    { "workers = 2;\nhealth_path = \"health\";\n", 2, "health_path" },
    { "health_path = \"/health?x=1\";\n", 1, "no query" },
    { "health_path = \"/h\";\nmetrics_path = \"/h\";\n", 2, "must differ" },
    { "\nadmin = { keys = [ \"0123456789abcdef\" ]; };\n", 2, "needs \"listen\"" },
    { "socketio = ( { namespaces = ( ); } );\n", 1, "needs a \"path\"" },
    { "path = \"/x//\"; engineio = ( { path = \"/x\"; script = \"chat.lua\"; } );\n", 1, "\"//\"" },
    { "namespaces = ( { name = \"/a\"; connect_hook = { url = \"ftp://x\"; }; } );\n", 1, "http://" },
    { "namespaces = ( { name = \"/a\"; connect_hook = { url = \"http://x\"; tries = 2; }; } );\n", 1,
      "tries" },
    { "socketio = ( { path = \"/socket.io\"; } );\n", 0, "two endpoints" },
    { "socketio = ( { path = \"/r\"; script = \"chat.lua\"; } );\n", 1, "script" },
    { "socketio = { path = \"/r\"; };\n", 1, "must be a list" },
    { "socketio = ( { path = \"/r\";\n namespaces = ( { name = \"/a\"; }, { name = \"/a\"; } ); } );\n", 2,
      "defined twice" },
    { "admin = \"127.0.0.1:3001\";\n", 1, "must be a group" },
    { "admin = { listen = \"127.0.0.1:3001\"; };\n", 1, "needs \"keys\"" },
    { "admin = { listen = \"127.0.0.1:3001\"; keys = [ \"short\" ]; };\n", 1, "16 to 1024 bytes" },
    { "admin = { listen = \"127.0.0.1:3001\"; keys = [ \"0123456789 abcdef\" ]; };\n", 1,
      "without blanks" },
    { "admin = { listen = \"127.0.0.1:3001\"; keys = [ \"0123456789abcdef\" ]; max_body = 99999999; };\n",
      1, "max_body" },
    { "admin = { listen = \"127.0.0.1:3001\"; keys = [ \"0123456789abcdef\" ]; port = 1; };\n", 1,
      "port" },
    { "listen = \"127.0.0.1:3001\";\nadmin = { listen = \"127.0.0.1:3001\"; keys = [ \"0123456789abcdef\" ]; };\n",
      0, "address of its own" },
    { "namespaces = ( { name = \"/a\";\n api_key = { keys = [ ]; }; } );\n", 2, "needs \"keys\"" },
    { "namespaces = ( { name = \"/a\"; rooms = [ \"u:{cookie.sub}\" ]; } );\n", 1, "room template 1" },
    { "namespaces = ( { name = \"/a\"; rooms = [ \"ok\", \"u:{auth.x\" ]; } );\n", 1, "room template 2" },
    { "namespaces = ( { name = \"/a\"; rooms = [ \"u:}\" ]; } );\n", 1, "room template 1" },
    { "namespaces = ( { name = \"/a\"; rooms = [ \"u:{auth.}\" ]; } );\n", 1, "room template 1" },
    { "namespaces = ( { name = \"/a\"; rooms = \"lobby\"; } );\n", 1, "must be a list" },
    { "namespaces = ( { name = \"/a\";\n jwt = { }; } );\n", 2, "needs one of" },
    { "namespaces = ( { name = \"/a\"; jwt = { secret = \"short\"; }; } );\n", 1, "16 bytes" },
    { "namespaces = ( { name = \"/a\"; jwt = { secret = \"0123456789abcdef\";"
      " algorithms = [ \"RS256\" ]; }; } );\n", 1, "HS256, HS384 and HS512 only" },
    { "namespaces = ( { name = \"/a\"; jwt = { secret = \"0123456789abcdef\";"
      " algorithms = [ \"none\" ]; }; } );\n", 1, "unknown JWT algorithm \"none\"" },
    { "namespaces = ( { name = \"/a\"; jwt = { public_key = \"chat.lua\"; } ; } );\n", 1,
      "needs \"algorithms\"" },
    { "namespaces = ( { name = \"/a\"; jwt = { public_key = \"chat.lua\";"
      " algorithms = [ \"RS256\" ]; }; } );\n", 1, "BEGIN PUBLIC KEY" },
    { "namespaces = ( { name = \"/a\"; jwt = { public_key = \"missing.pem\";"
      " algorithms = [ \"ES256\" ]; }; } );\n", 1, "missing.pem" },
    { "namespaces = ( { name = \"/a\"; api_key = { keys = [ \"\" ]; }; } );\n", 1, "1 to 1024 bytes" },
    { "namespaces = ( { name = \"/a\"; api_key = { keys = [ \"k\" ]; query = \"\"; header = \"\";"
      " auth = \"\"; }; } );\n", 1, "looked for somewhere" },
    { "pid_file = \"\";\n", 1, "\"pid_file\" must name a file" },
    { "max_connections = 10000001;\n", 1, "max_connections" },
    { "error_log = \"\";\n", 1, "\"error_log\" must be" },
    { "access_log = \"\";\n", 1, "\"access_log\" must be" },
    { "tls = { listen = [ \"127.0.0.1:3443\" ];\n certificate = \"c.pem\"; };\n", 1, "tls needs \"certificate\" and \"key\"" },
    { "tls = { certificate = \"c.pem\"; key = \"k.pem\"; };\n", 1, "tls needs \"listen\"" },
    { "tls = { listen = \"127.0.0.1:1\"; certificate = \"c\"; key = \"k\";\n min_version = \"TLSv1.1\"; };\n", 2, "tls.min_version must be" },
    { "admin_ui = { username = \"a\";\n password = \"secret\"; };\n", 2, "admin_ui.password must be a bcrypt hash" },
    { "admin_ui = { username = \"a\";\n password = \"$2b$04$k/WMd9UO56PqMiizv/r/iu6pjthT2cDXFyVqTOfXFFsAu7r678gC\"; };\n", 2, "must be a bcrypt hash" },
    { "admin_ui = { username = \"a\";\n password = \"$2b$03$k/WMd9UO56PqMiizv/r/iu6pjthT2cDXFyVqTOfXFFsAu7r678gC2\"; };\n", 2, "must be a bcrypt hash" },
    { "admin_ui = { password = \"$2b$04$k/WMd9UO56PqMiizv/r/iu6pjthT2cDXFyVqTOfXFFsAu7r678gC2\"; };\n", 1, "admin_ui needs \"username\" and \"password\"" },
    { "namespaces = ( { name = \"/admin\"; } );\nadmin_ui = { auth = false; };\n", 2, "is also in \"namespaces\"" },
    { "admin_ui = { auth = false; namespace = \"admin\"; };\n", 1, "admin_ui.namespace must begin" },
    { "admin_ui = { auth = false;\n mode = \"debug\"; };\n", 2, "admin_ui.mode must be" },
    { "admin_ui = { auth = false; server_id = \"\"; };\n", 1, "admin_ui.server_id must be" },
    { "admin_ui = { auth = false; session_ttl = 5; };\n", 1, "session_ttl" },
    { "admin_ui = { auth = false; colour = 1; };\n", 1, "colour" },
    { "redis = { url = \"rediss://h:1\"; };\n", 1, "rediss://" },
    { "redis = { url = \"http://h:1\"; };\n", 1, "redis.url must be" },
    { "redis = { url = \"redis://h:0\"; };\n", 1, "the port must be" },
    { "redis = { url = \"redis://h:6379/x\"; };\n", 1, "the database must be a number" },
    { "redis = { url = \"redis://:%zz@h\"; };\n", 1, "a bad %-escape in the password" },
    { "redis = { url = \"redis://h\";\n key = \"a#b\"; };\n", 1, "redis.key must be" },
    { "redis = { key = \"k\"; };\n", 1, "redis needs \"url\"" },
    { "redis = { url = \"redis://h\";\n mode = \"kafka\"; };\n", 1, "redis.mode must be" },
    { "redis = { url = \"redis://h\"; stream = \"a b\"; };\n", 1, "redis.stream must be" },
    { "redis = { url = \"redis://h\"; maxlen = 0; };\n", 1, "maxlen" },
    { "tls = { listen = \"127.0.0.1:1\"; certificate = \"c\"; key = \"k\";\n ciphers = \"x\"; };\n", 2, "ciphers" },
    { "tls = { listen = \"nowhere\"; certificate = \"c\"; key = \"k\"; };\n", 1, "bad listen address" },
    { "tls = \"on\";\n", 1, "\"tls\" must be a group" },
    { "group = \"nogroup\";\n", 1, "\"group\" needs \"user\"" },
    { "shutdown_timeout = -1;\n", 1, "shutdown_timeout" },
    { "worker_shutdown_timeout = 3600001;\n", 1, "worker_shutdown_timeout" },
    { "user = \"\";\n", 1, "\"user\" must be a name" },
    { "pid_file = \"/run/emitd/\";\n", 1, "\"pid_file\" must name a file" },
    { "namespaces = ( { name = \"/a\"; jwt = { secret = \"0123456789abcdef\"; token_auth = \"\";"
      " token_query = \"\"; token_header = \"\"; }; } );\n", 1, "or be required = false" },
    { "namespaces = ( { name = \"/a\";\n shutdown_event = { message = \"m\"; }; } );\n", 2,
      "needs a \"name\"" },
    { "namespaces = ( { name = \"/a\"; shutdown_event = \"system.maintenance\"; } );\n", 1,
      "must be a group" },
    { "namespaces = ( { name = \"/a\"; shutdown_event = { name = \"x\"; when = 1; }; } );\n", 1,
      "when" },
};

START_TEST(test_bad)
{
    em_conf_t *c = load_text("bad.conf", em_bad[_i].text);
    char       where[300];

    ck_assert_msg(c == NULL, "accepted: %s", em_bad[_i].text);
    snprintf(where, sizeof(where), "%s/bad.conf:%d:", em_t_dir, em_bad[_i].line);
    if (em_bad[_i].line > 0) {
        ck_assert_msg(strncmp(em_t_err, where, strlen(where)) == 0, "error \"%s\" does not begin \"%s\"",
                      em_t_err, where);
    } else {
        snprintf(where, sizeof(where), "%s/bad.conf", em_t_dir);
        ck_assert_msg(strstr(em_t_err, where) != NULL, "error \"%s\" does not name the file", em_t_err);
    }
    ck_assert_msg(strstr(em_t_err, em_bad[_i].why) != NULL, "error \"%s\" does not say \"%s\"",
                  em_t_err, em_bad[_i].why);
}
END_TEST

/* admin_ui: its namespace appended to the first endpoint's, the defaults. */
START_TEST(test_admin_ui)
{
    em_conf_t *c = load_text("a.conf", "namespaces = ( { name = \"/\"; }, { name = \"/chat\"; } );\n"
                             "admin_ui = { username = \"admin\"; password = \"$2b$04$k/WMd9UO56PqMiizv/r/iu6pjthT2cDXFyVqTOfXFFsAu7r678gC2\"; };\n");
    char       host[256];

    ck_assert_msg(c != NULL, "%s", em_t_err);
    ck_assert_ptr_nonnull(c->admin_ui);
    ck_assert_uint_eq(c->nnsps, 3);
    ck_assert_uint_eq(c->admin_ui->nsp_index, 2);
    ck_assert_str_eq(c->nsps[2].name, "/admin");
    ck_assert_ptr_null(c->nsps[2].script);
    ck_assert_str_eq(c->admin_ui->nsp, "/admin");
    ck_assert_str_eq(c->admin_ui->username, "admin");
    ck_assert_str_eq(c->admin_ui->password, "$2b$04$k/WMd9UO56PqMiizv/r/iu6pjthT2cDXFyVqTOfXFFsAu7r678gC2");
    ck_assert_uint_eq(c->admin_ui->readonly, 0);
    ck_assert_uint_eq(c->admin_ui->production, 0);
    ck_assert_uint_eq(c->admin_ui->session_ttl, 86400);
    ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
    ck_assert_str_eq(c->admin_ui->server_id, host);
    ck_assert_int_eq(em_conf_needs_handshake(c), 1);     /* it lists each socket's handshake */
    em_conf_free(c);

    c = load_text("b.conf", "admin_ui = { auth = false; namespace = \"/dash\"; readonly = true;\n"
                  " mode = \"production\"; server_id = \"web-1\"; session_ttl = 60; };\n");
    ck_assert_msg(c != NULL, "%s", em_t_err);
    ck_assert_uint_eq(c->nnsps, 2);             /* "/" by default, then its own */
    ck_assert_str_eq(c->nsps[0].name, "/");
    ck_assert_str_eq(c->nsps[1].name, "/dash");
    ck_assert_ptr_null(c->admin_ui->username);
    ck_assert_ptr_null(c->admin_ui->password);
    ck_assert_uint_eq(c->admin_ui->readonly, 1);
    ck_assert_uint_eq(c->admin_ui->production, 1);
    ck_assert_str_eq(c->admin_ui->server_id, "web-1");
    ck_assert_uint_eq(c->admin_ui->session_ttl, 60);
    em_conf_free(c);
}
END_TEST

/* redis: the URL's parts, the defaults. */
START_TEST(test_redis)
{
    em_conf_t *c = load_text("r.conf", "redis = { url = \"redis://app:p%40ss@10.0.0.5:6380/3\"; };\n");

    ck_assert_msg(c != NULL, "%s", em_t_err);
    ck_assert_str_eq(c->redis->host, "10.0.0.5");
    ck_assert_uint_eq(c->redis->port, 6380);
    ck_assert_str_eq(c->redis->user, "app");
    ck_assert_str_eq(c->redis->password, "p@ss");
    ck_assert_uint_eq(c->redis->db, 3);
    ck_assert_str_eq(c->redis->key, "socket.io");
    ck_assert_str_eq(c->redis->text, "redis://***@10.0.0.5:6380/3");
    ck_assert_uint_eq(c->redis->max_message, 4194304);
    em_conf_free(c);
    c = load_text("r2.conf", "redis = { url = \"redis://[::1]\"; key = \"app1\"; max_message = 2048; };\n");
    ck_assert_msg(c != NULL, "%s", em_t_err);
    ck_assert_str_eq(c->redis->host, "::1");
    ck_assert_uint_eq(c->redis->port, 6379);
    ck_assert_ptr_null(c->redis->user);
    ck_assert_ptr_null(c->redis->password);
    ck_assert_uint_eq(c->redis->db, 0);
    ck_assert_str_eq(c->redis->key, "app1");
    ck_assert_str_eq(c->redis->text, "redis://[::1]:6379/0");
    em_conf_free(c);
    c = load_text("r3.conf", "redis = { url = \"redis://:secret@localhost/\"; };\n");
    ck_assert_msg(c != NULL, "%s", em_t_err);
    ck_assert_str_eq(c->redis->host, "localhost");
    ck_assert_ptr_null(c->redis->user);
    ck_assert_str_eq(c->redis->password, "secret");
    ck_assert_int_eq(c->redis->streams, 0);          /* Pub/Sub by default */
    ck_assert_str_eq(c->redis->stream, "socket.io");
    ck_assert_uint_eq(c->redis->maxlen, 10000);
    em_conf_free(c);
    c = load_text("r4.conf", "redis = { url = \"redis://h\"; mode = \"streams\"; stream = \"app-events\";\n"
                             " maxlen = 500; };\n");
    ck_assert_msg(c != NULL, "%s", em_t_err);
    ck_assert_int_eq(c->redis->streams, 1);
    ck_assert_str_eq(c->redis->stream, "app-events");
    ck_assert_uint_eq(c->redis->maxlen, 500);
    em_conf_free(c);
}
END_TEST

START_TEST(test_unreadable)
{
    em_conf_t *c = em_conf_load("/nonexistent/emitd.conf", em_t_err, sizeof(em_t_err));

    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(em_t_err, "/nonexistent/emitd.conf: cannot read the file"));
}
END_TEST

/* vars: the scripts' own settings, kept as a tree of values. */
START_TEST(test_vars)
{
    em_conf_t *c = load_text("vars.conf", "vars = { backend = \"http://127.0.0.1:8080\"; n = 3;\n"
                             "  big = 5000000000L; ratio = 0.5; on = true; list = [ \"a\", \"b\" ];\n"
                             "  deep = { x = ( 1, \"two\", { y = false; } ); }; };\n");

    ck_assert_msg(c != NULL, "%s", em_t_err);
    ck_assert_ptr_nonnull(c->vars);
    ck_assert_int_eq(c->vars->type, EM_VAR_GROUP);
    ck_assert_uint_eq(c->vars->nkids, 7);
    ck_assert_str_eq(c->vars->kids[0].name, "backend");
    ck_assert_str_eq(c->vars->kids[0].s, "http://127.0.0.1:8080");
    ck_assert_int_eq(c->vars->kids[1].i, 3);
    ck_assert_int_eq(c->vars->kids[2].i, 5000000000LL);
    ck_assert_double_eq(c->vars->kids[3].f, 0.5);
    ck_assert_int_eq(c->vars->kids[4].type, EM_VAR_BOOL);
    ck_assert_int_eq(c->vars->kids[5].type, EM_VAR_LIST);
    ck_assert_str_eq(c->vars->kids[5].kids[1].s, "b");
    const em_conf_var_t *x = &c->vars->kids[6].kids[0];
    ck_assert_int_eq(x->type, EM_VAR_LIST);
    ck_assert_uint_eq(x->nkids, 3);
    ck_assert_ptr_null(x->kids[1].name);
    ck_assert_str_eq(x->kids[2].kids[0].name, "y");
    em_conf_free(c);

    /* a token looked for nowhere: only with required = false (nsp:verify_token) */
    c = load_text("jwt-later.conf", "namespaces = ( { name = \"/a\"; jwt = { secret = \"0123456789abcdef\";"
                  " required = false; token_auth = \"\"; token_query = \"\"; token_header = \"\"; }; } );\n");
    ck_assert_msg(c != NULL, "%s", em_t_err);
    em_conf_free(c);
    c = load_text("pid.conf", "pid_file = \"/run/emitd.pid\";\n");
    ck_assert_msg(c != NULL, "%s", em_t_err);
    ck_assert_str_eq(c->pid_file, "/run/emitd.pid");
    em_conf_free(c);
    ck_assert_ptr_null(load_text("vars2.conf", "vars = 3;\n"));
    ck_assert_ptr_nonnull(strstr(em_t_err, "\"vars\" must be a group"));
    ck_assert_ptr_null(load_text("vars3.conf",
                                 "vars = { a = { b = { c = { d = { e = { f = { g = { h = { i = 1; }; }; }; }; }; }; }; }; };\n"));
    ck_assert_ptr_nonnull(strstr(em_t_err, "nests deeper than 8"));
}
END_TEST

/* -g: the text's top-level settings replace the file's, the rest stays. */
START_TEST(test_override)
{
    char       path[256];
    em_conf_t *c = load_text("over.conf", "workers = 3; log_level = \"warn\";\n"
                             "listen = \"127.0.0.1:3000\";\n"
                             "namespaces = ( { name = \"/a\"; } );\n");

    ck_assert_ptr_nonnull(c);
    em_conf_free(c);
    snprintf(path, sizeof(path), "%s/over.conf", em_t_dir);
    c = em_conf_load_with(path, "listen = [ \"127.0.0.1:4001\", \"127.0.0.1:4002\" ]; workers = 2;\n"
                          "namespaces = ( { name = \"/b\"; rooms = [ \"x:{auth.id}\" ];"
                          " connect_limit = { max = 5; window = 1000; block = 0; }; } );",
                          em_t_err, sizeof(em_t_err));
    ck_assert_msg(c != NULL, "%s", em_t_err);
    ck_assert_uint_eq(c->workers, 2);
    ck_assert_int_eq(c->log_level, EM_LOG_WARN);          /* kept from the file */
    ck_assert_uint_eq(c->nlisten, 2);
    ck_assert_str_eq(c->listen[1].port, "4002");
    ck_assert_uint_eq(c->nnsps, 1);
    ck_assert_str_eq(c->nsps[0].name, "/b");
    ck_assert_uint_eq(c->nsps[0].nrooms, 1);
    em_conf_free(c);

    /* a bad override is refused, naming -g */
    ck_assert_ptr_null(em_conf_load_with(path, "workers = ", em_t_err, sizeof(em_t_err)));
    ck_assert_ptr_nonnull(strstr(em_t_err, "-g:1: syntax error"));
    ck_assert_ptr_null(em_conf_load_with(NULL, "workers = \"two\";", em_t_err, sizeof(em_t_err)));
    ck_assert_ptr_nonnull(strstr(em_t_err, "\"workers\" must be an integer"));
    /* no file: the embedded default with the override */
    c = em_conf_load_with(NULL, "workers = 5;", em_t_err, sizeof(em_t_err));
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->workers, 5);
    ck_assert_str_eq(c->listen[0].port, "3000");
    em_conf_free(c);
}
END_TEST

static Suite *
conf_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("conf");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_default);
    tcase_add_test(tc, test_everything);
    tcase_add_test(tc, test_endpoint_lookup);
    tcase_add_loop_test(tc, test_bad, 0, (int) EM_NELEMS(em_bad));
    tcase_add_test(tc, test_unreadable);
    tcase_add_test(tc, test_admin_ui);
    tcase_add_test(tc, test_redis);
    tcase_add_test(tc, test_override);
    tcase_add_test(tc, test_vars);
    suite_add_tcase(s, tc);
    return s;
}

EM_CHECK_MAIN(conf_suite)
