/*
 * em_socketio.h - the Socket.IO v5 layer of a worker: namespaces, sockets,
 * packets (with binary attachments), acks both ways.
 */
#ifndef EM_SOCKETIO_H
#define EM_SOCKETIO_H

#include <jansson.h>
#include <uthash.h>

#include "em_adapter.h"
#include "em_buf.h"
#include "em_eio_session.h"
#include "em_sid.h"
#include "em_sio.h"

typedef struct em_sio_client em_sio_client_t;

/* A namespace as it exists in this worker ("/chat", or "/device/42" of the
 * configured pattern "/device/:id"). */
struct em_nsp {
    char                 *name;
    size_t                name_len;
    size_t                conf_index;     /* into em_loop.conf->nsps */
    em_sio_socket_t      *sockets;        /* uthash by id */
    size_t                nsockets;
    em_room_t            *rooms;          /* uthash by name */
    UT_hash_handle        hh;
};

/*
 * A socket's life: CONNECTING while on_connect runs (its sends are held;
 * a disconnect asked for meanwhile is kept as CONNECTING_LEAVE or
 * CONNECTING_CLOSE and done once the CONNECT reply is out), OPEN, then
 * CLOSED: unlinked from everything, its sends dropped, and freed by the
 * layer's reaper after the callbacks (never inside one).
 */
typedef enum {
    EM_SIO_S_CONNECTING = 0,
    EM_SIO_S_CONNECTING_LEAVE,      /* then leave the namespace */
    EM_SIO_S_CONNECTING_CLOSE,      /* then close the whole connection */
    EM_SIO_S_OPEN,
    EM_SIO_S_CLOSED
} em_sio_state_t;

/* One client's membership of one namespace. The flags sit in the bytes
 * after the id: 184 bytes, a 192-byte chunk. */
struct em_sio_socket {
    char                  id[EM_SID_LEN + 1];
    uint8_t               state:3;        /* em_sio_state_t */
    uint8_t               recovered:1;    /* restored from a recovery session */
    uint8_t               counted:1;      /* in the cluster-wide namespace count */
    em_nsp_t             *nsp;
    em_sio_client_t      *client;
    em_sio_socket_t      *next;           /* in the client's list */
    int                   lref;           /* the script's socket object, or EM_SIO_NOREF */
    uint32_t              stamp;          /* last broadcast that reached it */
    uint64_t              replayed;       /* recovery: log offsets up to this were replayed */
    em_buf_t            **held;           /* sends made during on_connect */
    size_t                nheld;
    em_member_t          *rooms;
    int64_t               next_ack;
    char                 *user;           /* presence identity a script gave it, or NULL */
    char                 *pid;            /* its recovery session (recovery on), or NULL */
    char                 *token;          /* an application recovery token, or NULL */
    json_t               *claims;         /* the verified JWT's claims (jwt), or NULL */
    json_t               *data;           /* socket.data the connect_hook gave, or NULL */
    int64_t               connected_at;   /* ms */
    uint32_t              nrooms;         /* rooms it is in (limits.rooms) */
    uint32_t              nacks;          /* server emits waiting for its ack (limits.pending_acks) */
    UT_hash_handle        hh;
};

/* What Engine.IO sessions of a Socket.IO endpoint tell this layer. */
extern const em_eio_upper_t em_sio_eio_upper;

/* A socket no application object refers to (em_sio_socket_t.lref). */
#define EM_SIO_NOREF (-2)

/*
 * The application above (the Lua binding) registers what it hears. Only
 * sockets of a namespace with a script (has_script) are announced to it
 * (connect); events and acks come only for a socket it holds (lref set).
 */
typedef struct {
    /* Whether configured namespace conf_index has a script; whether any has. */
    int  (*has_script)(size_t conf_index);
    int  (*nsp_scripts)(void);
    /* A new socket: EM_OK accepts; EM_DECLINED refuses it, *reject is the
     * CONNECT_ERROR data object {"message": ..., "data": ...}. */
    int  (*connect)(em_sio_socket_t *s, json_t *auth, json_t **reject);
    /* A client event (args[0] is the name) with attachments, ack id or
     * EM_SIO_NO_ID; EM_ERROR: malformed (a bad attachment reference). */
    int  (*event)(em_sio_socket_t *s, json_t *args, const em_str_t *atts, size_t natt, int64_t id);
    /* The client's answer to a server emit that asked for one. */
    int  (*ack)(em_sio_socket_t *s, int64_t id, json_t *args, const em_str_t *atts, size_t natt);
    /* A reserved event ("disconnecting", "disconnect") with its reason. */
    void (*socket_event)(em_sio_socket_t *s, const char *event, const char *reason);
    /* The socket is gone: drop the application's object (lref). */
    void (*release)(em_sio_socket_t *s);
    /* A presence change (em_state.h), once in the cluster. */
    void (*presence)(const em_pchange_t *change);
    /* emitd is stopping (em_sio_shutdown): the last word to the sockets. */
    void (*shutdown)(void);
    /* The application's data of a socket as JSON (a new reference), or
     * NULL: for the backend API's listings. May be left NULL. */
    json_t *(*socket_data)(em_sio_socket_t *s);
    /* A server-side event from another server (the Redis adapter's
     * serverSideEmit) for configured namespace conf_index of namespace nsp:
     * args[0] is its name; request_id is set when the sender waits for an
     * answer (em_rreq_server_ack()). May be left NULL. */
    void (*server_emit)(size_t conf_index, json_t *args, const char *nsp, const char *request_id);
} em_sio_app_t;

extern em_sio_app_t em_sio_app;

void em_sio_set_app(const em_sio_app_t *app);

/*
 * A second listener above this layer (the admin dashboard): one configured
 * namespace of its own, whose CONNECTs and events it answers instead of the
 * application, and word of every socket's life in every namespace. Each
 * entry may be NULL.
 */
typedef struct {
    long  nsp_conf;         /* its namespace (index into conf->nsps), or -1: none */
    /* A CONNECT to its namespace: as em_sio_app_t.connect. */
    int  (*connect)(em_sio_socket_t *s, json_t *auth, json_t **reject);
    /* An event of its namespace (args[0] is the name; no attachments). */
    void (*event)(em_sio_socket_t *s, json_t *args);
    /* An event of any other namespace, before the application hears it. */
    void (*event_in)(em_sio_socket_t *s, json_t *args);
    /* A socket is connected (its CONNECT reply sent), or going with reason
     * (still in its rooms, which it leaves without a word to left()). */
    void (*opened)(em_sio_socket_t *s);
    void (*closed)(em_sio_socket_t *s, const char *reason);
    /* A connected socket joined or left a room. */
    void (*joined)(em_sio_socket_t *s, em_str_t room);
    void (*left)(em_sio_socket_t *s, em_str_t room);
    /* The socket's connection moved to WebSocket. */
    void (*upgraded)(em_sio_socket_t *s);
} em_sio_watch_t;

extern em_sio_watch_t em_sio_watch;

void em_sio_set_watch(const em_sio_watch_t *w);

/* The Engine.IO session id of a socket's client. */
const char *em_sio_socket_client_id(const em_sio_socket_t *s);

/*
 * This worker is stopping: from now on a broadcast reaches this worker's
 * sockets only (every worker tells its own, once each); the application
 * hears shutdown, then each configured namespace's shutdown_event goes to
 * every socket of it (every instance of a parameterised one) as
 * {"message": ..., "timestamp": ISO 8601}. The caller closes the sessions
 * after.
 */
void em_sio_shutdown(void);

/*
 * Encode a packet once: type EVENT or ACK (made BINARY_* when natt > 0), the
 * namespace, ack id (EM_SIO_NO_ID for none), JSON data (array). Takes over the
 * references in atts. Returns EM_OK or EM_ERROR.
 */
int em_sio_pkt_build(em_pkt_t *out, em_sio_type_t type, em_str_t nsp, int64_t id,
                     json_t *data, em_buf_t **atts, size_t natt);

/* The same from JSON text already encoded (a broadcast from another worker). */
int em_sio_pkt_build_raw(em_pkt_t *out, em_sio_type_t type, em_str_t nsp, int64_t id,
                         em_str_t data, em_buf_t **atts, size_t natt);

/* Broadcast an EVENT whose JSON array (and attachments) were encoded once
 * elsewhere, framed for namespace nsp: a parameterised namespace's other
 * instances, or a record relayed by the broker. The attachments are shared,
 * not copied. */
void em_sio_broadcast_raw(em_nsp_t *nsp, const em_bcast_t *b, em_str_t data, em_buf_t *const *atts,
                          size_t natt);

/*
 * Route an EVENT encoded once (pkt, framed for namespace `name`) to the
 * sockets b selects, in this worker and, through the bus, in the others:
 * of namespace `name` (conf < 0), or of every instance of configured
 * namespace conf, whose configured name `name` then is (each instance
 * once, framed with its own name). pkt stays the caller's.
 */
void em_sio_route(em_str_t name, long conf, const em_bcast_t *b, const em_pkt_t *pkt);

/* Sockets of every instance of configured namespace conf in this worker. */
size_t em_sio_conf_sockets(size_t conf);

/* Whether the socket is still in its namespace (not CLOSED). */
static inline int
em_sio_socket_live(const em_sio_socket_t *s)
{
    return s->state != EM_SIO_S_CLOSED;
}

/* Register the layer's reaper (closed sockets and clients). */
int  em_sio_init(void);

/* Send a packet to one socket (held back while it is still connecting). */
void em_sio_socket_send(em_sio_socket_t *s, const em_pkt_t *pkt);

/* Leave the namespace (server side): DISCONNECT packet, "server namespace
 * disconnect" to the script; close_conn also closes the whole connection. */
void em_sio_socket_disconnect(em_sio_socket_t *s, int close_conn);

/* The socket of nsp with that id in this worker, or NULL. */
em_sio_socket_t *em_nsp_socket_find(em_nsp_t *nsp, const char *id);

/* Find a namespace of this worker by name. */
em_nsp_t *em_nsp_find(const char *name, size_t len);

/* The configured namespace (index into conf->nsps) a name belongs to. */
int em_nsp_conf_index(const char *name, size_t len, size_t *index);

/* The first of the worker's namespaces (iterate with ->hh.next). */
em_nsp_t *em_nsp_first(void);

/* Whether a packet sent to the socket now goes out at once (volatile). */
int em_sio_socket_ready(const em_sio_socket_t *s);

/* The Engine.IO session a socket belongs to. */
em_eio_session_t *em_sio_socket_session(const em_sio_socket_t *s);

/* Parse JSON text as jansson does for packets (NUL allowed in strings). */
json_t *em_sio_json_parse(const char *data, size_t len);

#endif
