/*
 * em_http_conn.h - HTTP/1.1 on a transport connection: request heads and
 * bodies (Content-Length or chunked), routing a request to its endpoint or,
 * for another worker's session, back through the master; CORS, responses,
 * keep-alive, parked long-polling GETs, and the WebSocket upgrade.
 *
 * An em_http_conn_t is a transport connection (em_conn_t, first) with the
 * HTTP state after it: the transport allocates it at that size.
 *
 * The layer above (Engine.IO sessions) registers what it must hear
 * (em_http_handlers_t): a complete request for one of its endpoints, and,
 * passed through to the transport, a WebSocket message and that a
 * connection attached to conn.upper is gone. This layer never names the one
 * above.
 */
#ifndef EM_HTTP_CONN_H
#define EM_HTTP_CONN_H

#include "em_conn.h"
#include "em_http.h"

typedef enum {
    EM_HTTP_PHASE_HEAD = 0,   /* reading a request head */
    EM_HTTP_PHASE_BODY,       /* reading a request body (POST) */
    EM_HTTP_PHASE_CHUNKED,    /* reading a chunked request body */
    EM_HTTP_PHASE_POLL        /* a long-polling GET parked until there is data */
} em_http_phase_t;

typedef struct em_http_conn {
    em_conn_t                  conn;          /* the transport: first */
    unsigned                   phase:2;       /* em_http_phase_t, while conn.state is OPEN */
    unsigned                   keep_alive:1;
    unsigned                   noroute:1;     /* serve the next request here */
    unsigned                   in_process:1;  /* inside em_http_conn_input() */
    unsigned                   reused:1;      /* a request was answered before */
    unsigned                   admin:1;       /* from the admin listener: its routes only */
    unsigned                   held:1;        /* a route holds the request (upper is its) */
    unsigned                   cors_cred:1;   /* the request's CORS allows credentials */
    unsigned                   route:5;       /* the route serving the request, + 1; or 0 */
    unsigned                   head_len:15;   /* BODY: head bytes still in input */
    uint32_t                   body_len;      /* BODY: Content-Length (<= max_payload) */
    const em_conf_endpoint_t  *endpoint;      /* of the request being served */
    char                      *origin;        /* allowed CORS origin to echo, or NULL */
    struct em_http_chunked_body *chunked;     /* CHUNKED: head copy, state, body */
} em_http_conn_t;

_Static_assert(EM_HTTP_MAX_HEAD < (1u << 15), "head_len holds a whole request head");

/* What the layer above hears. */
typedef struct {
    /* A complete request for endpoint h->endpoint (the body of a POST). */
    void        (*request)(em_http_conn_t *h, const em_http_req_t *req, const char *body,
                           size_t len);
    /* Passed to the transport (em_conn_handlers_t). */
    void        (*ws_message)(void *upper, em_conn_t *c, const char *data, size_t len, int binary);
    void        (*lost)(void *upper, em_conn_t *c);
    const char *(*upper_id)(const void *upper);
} em_http_handlers_t;

/* Register the layer above, and this layer with the transport. */
int em_http_conn_init(const em_http_handlers_t *h);

/*
 * A request for the path `path` (no query; with EM_HTTP_ROUTE_PREFIX, any
 * path it begins) goes to fn before the endpoints are looked at: the health
 * report, the metrics, the backend API. fn answers it with
 * em_http_conn_respond*(), now or later (em_http_conn_hold()). A route
 * serves the public listeners, the admin listener or both; only on the
 * admin listener does a route get the request's body (up to the admin
 * max_body; more: 413), which it must copy to keep. The admin listener
 * serves nothing but its routes. At most 16; path is kept.
 */
#define EM_HTTP_ROUTE_PUBLIC 0x1
#define EM_HTTP_ROUTE_ADMIN  0x2
#define EM_HTTP_ROUTE_PREFIX 0x4
typedef void (*em_http_route_fn)(em_http_conn_t *h, const em_http_req_t *req, const char *body,
                                 size_t len);
int em_http_conn_route(const char *path, unsigned flags, em_http_route_fn fn);

/* Routes hear through lost(upper) that a connection holding a request for
 * upper is gone before the answer. */
void em_http_conn_route_lost(void (*lost)(void *upper));

/* Answer the request later: the connection reads nothing more (no read
 * deadline) until em_http_conn_respond*(). */
void em_http_conn_hold(em_http_conn_t *h, void *upper);

/* Take a connection from the master: fd plus bytes it already read;
 * noroute: serve its first request here, never hand it back; admin: from
 * the admin listener. */
void em_http_conn_accept(int fd, const char *data, size_t len, int noroute, int admin);

/* Send a response. Completes the request: the connection goes back to
 * reading heads (keep-alive) or drains and closes. */
void em_http_conn_respond(em_http_conn_t *h, int status, const char *ctype, const char *body,
                          size_t len);

/* Answer (a parked GET) with 200 and the bytes of body, taken. */
void em_http_conn_respond_body(em_http_conn_t *h, struct evbuffer *body);
/* The same with a status and a content type. */
void em_http_conn_respond_body_type(em_http_conn_t *h, int status, const char *ctype,
                                    struct evbuffer *body);

/* Park a GET, attached to upper, until em_http_conn_respond*(); no read
 * deadline meanwhile. */
void em_http_conn_park(em_http_conn_t *h, void *upper);

/* Answer a WebSocket upgrade request with 101 and make the connection a
 * WebSocket of messages up to the endpoint's max_payload. EM_ERROR if the
 * request is not a valid upgrade (nothing written: answer it) or out of
 * memory. */
int em_http_conn_upgrade(em_http_conn_t *h, const em_http_req_t *req);

#endif
