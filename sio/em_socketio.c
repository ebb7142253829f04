/*
 * em_socketio.c - Socket.IO v5 over an Engine.IO session.
 *
 * A client (one per session) holds one socket per namespace it joined. Text
 * packets are decoded by proto/em_sio.c and their JSON by jansson; a binary
 * packet waits for its attachments (the following Engine.IO binary messages)
 * before it is dispatched. Anything malformed closes the connection, as
 * Node's server does.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "em_bus.h"
#include "em_cmd.h"
#include "em_fetch.h"
#include "em_cluster.h"
#include "em_jwt.h"
#include "em_log.h"
#include "em_loop.h"
#include "em_socketio.h"

struct em_sio_client {
    em_eio_session_t *eio;
    em_sio_socket_t  *sockets;
    struct event     *connect_timer;
    /* A binary packet waiting for its attachments. */
    char             *bin_text;
    size_t            bin_text_len;
    unsigned          bin_need;
    unsigned          bin_have;
    em_str_t         *bin_att;      /* malloc'd copies */
    size_t            bin_bytes;
    unsigned          nsockets;     /* namespaces it is in (limits.namespaces) */
    unsigned          closed:1;     /* its session closed: freed by the reaper */
    /* A CONNECT waiting for its namespace's connect_hook; meanwhile what
     * the client sends waits in inq, in order. */
    struct em_sio_hook *hook;
    struct em_sio_inq  *inq_head, *inq_tail;
    size_t            inq_bytes;
    em_sio_client_t  *reap_next;
    struct em_sio_seen *seen;       /* for the access log, when it is on */
};

/* The namespaces a client left and the first user, for its access line. */
#define EM_SIO_SEEN_NSPS 200
#define EM_SIO_SEEN_USER 56
struct em_sio_seen {
    char nsps[EM_SIO_SEEN_NSPS];    /* escaped, comma-separated */
    char user[EM_SIO_SEEN_USER];
};

/* Closed sockets (linked by ->next, off their client's list by then) and
 * clients, freed after the callbacks by em_sio_reap(). */
static em_sio_socket_t *em_sio_reap_sockets;
static em_sio_client_t *em_sio_reap_clients;

static em_nsp_t *em_nsps;

/* ---- namespaces ---- */

em_nsp_t *
em_nsp_find(const char *name, size_t len)
{
    em_nsp_t *n;

    HASH_FIND(hh, em_nsps, name, len, n);
    return n;
}

em_sio_socket_t *
em_nsp_socket_find(em_nsp_t *nsp, const char *id)
{
    em_sio_socket_t *s;

    HASH_FIND(hh, nsp->sockets, id, EM_SID_LEN, s);
    return s;
}

em_nsp_t *
em_nsp_first(void)
{
    return em_nsps;
}

int
em_nsp_conf_index(const char *name, size_t len, size_t *index)
{
    return em_conf_nsp_index(em_loop.conf, name, len, index);
}

static em_nsp_t *
em_nsp_get(const char *name, size_t len, size_t conf_index)
{
    em_nsp_t *n = em_nsp_find(name, len);

    if (n != NULL) {
        return n;
    }
    n = calloc(1, sizeof(*n));
    if (n == NULL || (n->name = malloc(len + 1)) == NULL) {
        free(n);
        return NULL;
    }
    memcpy(n->name, name, len);
    n->name[len] = '\0';
    n->name_len = len;
    n->conf_index = conf_index;
    HASH_ADD_KEYPTR(hh, em_nsps, n->name, n->name_len, n);
    return n;
}

static void
em_nsp_release_if_empty(em_nsp_t *n)
{
    if (n->nsockets == 0 && em_loop.conf->nsps[n->conf_index].dynamic) {
        em_adapter_nsp_free(n);
        HASH_DELETE(hh, em_nsps, n);
        free(n->name);
        free(n);
    }
}

/* ---- encoding ---- */

static int
em_sio_dump_cb(const char *buf, size_t size, void *data)
{
    return em_buf_append((em_buf_t **) data, buf, size) == EM_OK ? 0 : -1;
}

json_t *
em_sio_json_parse(const char *data, size_t len)
{
    json_error_t err;

    return json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
}

/* "4" + header + JSON into a new text buffer; *data_off: where the JSON starts. */
static em_buf_t *
em_sio_encode(em_sio_type_t type, unsigned natt, em_str_t nsp, int64_t id, json_t *data,
              size_t *data_off)
{
    char      head[300];
    ssize_t   hlen;
    em_buf_t *b;

    nsp = em_conf_nsp_wire(nsp.data, nsp.len);     /* as clients name it */
    if (nsp.len > 256) {
        return NULL;
    }
    head[0] = '4';
    hlen = em_sio_encode_header(type, natt, nsp, id, data != NULL, head + 1, sizeof(head) - 1);
    if (hlen < 0 || (b = em_buf_new(256)) == NULL) {
        return NULL;
    }
    *data_off = (size_t) hlen + 1;
    if (em_buf_append(&b, head, (size_t) hlen + 1) != EM_OK
        || (data != NULL
            && json_dump_callback(data, em_sio_dump_cb, &b,
                                  JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER) != 0)) {
        em_buf_unref(b);
        return NULL;
    }
    return b;
}

int
em_sio_pkt_build_raw(em_pkt_t *out, em_sio_type_t type, em_str_t nsp, int64_t id, em_str_t data,
                     em_buf_t **atts, size_t natt)
{
    char    head[300];
    ssize_t hlen;

    if (natt > 0) {
        type = (type == EM_SIO_ACK) ? EM_SIO_BINARY_ACK : EM_SIO_BINARY_EVENT;
    }
    out->att = atts;
    out->natt = natt;
    out->offset = 0;
    out->text = NULL;
    nsp = em_conf_nsp_wire(nsp.data, nsp.len);     /* as clients name it */
    head[0] = '4';
    hlen = (nsp.len <= 256)
               ? em_sio_encode_header(type, (unsigned) natt, nsp, id, data.len > 0, head + 1,
                                      sizeof(head) - 1)
               : -1;
    if (hlen >= 0 && (out->text = em_buf_new((size_t) hlen + 1 + data.len)) != NULL) {
        memcpy(out->text->data, head, (size_t) hlen + 1);
        memcpy(out->text->data + hlen + 1, data.data, data.len);
        out->text->len = (size_t) hlen + 1 + data.len;
        out->data_off = (size_t) hlen + 1;
        return EM_OK;
    }
    em_pkt_release(out);
    return EM_ERROR;
}

void
em_sio_broadcast_raw(em_nsp_t *nsp, const em_bcast_t *b, em_str_t data, em_buf_t *const *atts,
                     size_t natt)
{
    em_pkt_t   pkt;
    em_buf_t **refs = calloc(natt + 1, sizeof(em_buf_t *));

    if (refs == NULL) {
        em_log(EM_LOG_ERR, 0, "calloc() for a broadcast to %s failed", nsp->name);
        return;
    }
    for (size_t i = 0; i < natt; i++) {
        refs[i] = em_buf_ref(atts[i]);
    }
    if (em_sio_pkt_build_raw(&pkt, EM_SIO_EVENT, (em_str_t) { nsp->name, nsp->name_len },
                             EM_SIO_NO_ID, data, refs, natt) == EM_OK) {
        em_adapter_broadcast(nsp, b, &pkt);
        em_pkt_release(&pkt);
    }
}

int
em_sio_pkt_build(em_pkt_t *out, em_sio_type_t type, em_str_t nsp, int64_t id, json_t *data,
                 em_buf_t **atts, size_t natt)
{
    if (natt > 0) {
        type = (type == EM_SIO_ACK) ? EM_SIO_BINARY_ACK : EM_SIO_BINARY_EVENT;
    }
    out->text = em_sio_encode(type, (unsigned) natt, nsp, id, data, &out->data_off);
    out->att = atts;
    out->natt = natt;
    out->offset = 0;
    if (out->text == NULL) {
        em_pkt_release(out);
        return EM_ERROR;
    }
    return EM_OK;
}

/* ---- API keys ---- */

/* Whether a and b are the same bytes, in a time that does not depend on
 * where they differ or on their lengths: their BLAKE2b hashes compared with
 * sodium_memcmp. */
static int
em_sio_key_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char ha[32], hb[32];

    crypto_generichash(ha, sizeof(ha), (const unsigned char *) a, alen, NULL, 0);
    crypto_generichash(hb, sizeof(hb), (const unsigned char *) b, blen, NULL, 0);
    return sodium_memcmp(ha, hb, sizeof(ha)) == 0;
}

/* The handshake request of s's session (kept when em_sio_keeps_handshake()
 * says so); EM_ERROR without one. */
static int
em_sio_handshake_req(em_sio_socket_t *s, em_http_req_t *req)
{
    em_eio_session_t *es = em_sio_socket_session(s);
    size_t            len = 0;
    const char       *head = es != NULL ? em_eio_session_head(es, &len) : NULL;

    if (head == NULL) {
        return EM_ERROR;
    }
    return em_http_parse(head, len, req);
}

/* Where a client presents a credential: a field of the CONNECT auth object,
 * a handshake query parameter, a handshake header (NULL: not looked at). */
typedef struct {
    const char *auth, *query, *header;
    unsigned    bearer:1;       /* drop a leading "Bearer " from the header */
} em_sio_cred_src_t;

/*
 * The credential a client presents: the auth field, else the query
 * parameter, else the header, the first it sends. NULL when it presents
 * none; buf (cap bytes) holds a decoded query value. A query value that is
 * malformed or does not fit is presented with length cap (longer than any
 * credential accepted): refused as wrong, never as missing.
 */
static const char *
em_sio_presented(em_sio_socket_t *s, const em_sio_cred_src_t *src, json_t *auth, char *buf,
                 size_t cap, size_t *len)
{
    em_http_req_t req;
    json_t       *v;

    if (src->auth != NULL && auth != NULL && (v = json_object_get(auth, src->auth)) != NULL
        && json_is_string(v)) {
        *len = json_string_length(v);
        return json_string_value(v);
    }
    if (em_sio_handshake_req(s, &req) != EM_OK) {
        return NULL;
    }
    if (src->query != NULL) {
        ssize_t n = em_http_query_get(req.query, src->query, buf, cap);
        if (n >= 0) {
            *len = (size_t) n;
            return buf;
        }
        if (n == -2) {
            memset(buf, 0, cap);
            *len = cap;
            return buf;
        }
    }
    if (src->header != NULL) {
        const em_http_header_t *h = em_http_header(&req, src->header);
        if (h != NULL) {
            em_str_t t = h->value;      /* points into the session's handshake */
            if (src->bearer && t.len >= 7 && strncasecmp(t.data, "Bearer ", 7) == 0) {
                t.data += 7;
                t.len -= 7;
            }
            *len = t.len;
            return t.data;
        }
    }
    return NULL;
}

/* NULL if the client may join the namespace, else the message it is
 * refused with. */
static const char *
em_sio_api_key_refusal(em_sio_socket_t *s, json_t *auth)
{
    const em_conf_api_key_t *ak = em_loop.conf->nsps[s->nsp->conf_index].api_key;
    char                     buf[EM_CONF_API_KEY_MAX + 1];
    size_t                   len = 0;
    const char              *key;
    int                      ok = 0;

    if (ak == NULL) {
        return NULL;
    }
    em_sio_cred_src_t src = { ak->auth, ak->query, ak->header, 0 };
    key = em_sio_presented(s, &src, auth, buf, sizeof(buf), &len);
    if (key == NULL || len == 0) {
        return ak->missing_message;
    }
    for (size_t i = 0; i < ak->nkeys; i++) {
        ok |= em_sio_key_eq(key, len, ak->keys[i], strlen(ak->keys[i]));
    }
    return ok ? NULL : ak->invalid_message;
}

/* ---- JSON Web Tokens ---- */

/* NULL if the client's token admits it (its claims kept on s), else the
 * message it is refused with. */
static const char *
em_sio_jwt_refusal(em_sio_socket_t *s, json_t *auth)
{
    const em_conf_jwt_t *j = em_loop.conf->nsps[s->nsp->conf_index].jwt;
    char                *buf;
    size_t               len = 0;
    const char          *tok, *refusal = NULL;

    if (j == NULL) {
        return NULL;
    }
    if ((buf = malloc(EM_JWT_MAX + 1)) == NULL) {
        return j->invalid_message;
    }
    em_sio_cred_src_t src = { j->token_auth, j->token_query, j->token_header, 1 };
    tok = em_sio_presented(s, &src, auth, buf, EM_JWT_MAX + 1, &len);
    if (tok == NULL || len == 0) {
        refusal = j->optional ? NULL : j->missing_message;
    } else {
        em_jwt_result_t r = em_jwt_verify(j, tok, len, em_state_now() / 1000, &s->claims);
        if (r != EM_JWT_OK) {
            em_log(EM_LOG_INFO, 0, "socket %s refused on %s: its token is %s", s->id,
                   s->nsp->name, em_jwt_result_str(r));
            refusal = r == EM_JWT_EXPIRED ? j->expired_message : j->invalid_message;
        }
    }
    free(buf);
    return refusal;
}

/* ---- room templates ---- */

/*
 * Expand template t ("user:{auth.userId}") for a socket into out (up to
 * EM_ROOM_NAME_MAX bytes). EM_DECLINED when a field is missing, empty or
 * not a string or an integer: the template is skipped.
 */
static int
em_sio_room_expand(const char *t, json_t *auth, json_t *claims, const em_http_req_t *req,
                   char *out, size_t *outlen)
{
    char   qbuf[EM_CONF_ROOM_TEMPLATE_MAX + 1];
    size_t n = 0;

    for (const char *p = t; *p != '\0';) {
        em_str_t v = { NULL, 0 };
        char     num[32];
        if (*p != '{') {
            const char *brace = strchr(p, '{');
            v.data = p;
            v.len = brace ? (size_t) (brace - p) : strlen(p);
            p += v.len;
        } else {
            const char *end = strchr(p, '}');       /* checked when loaded */
            const char *dot = memchr(p, '.', (size_t) (end - p));
            char        name[256];
            size_t      nlen = (size_t) (end - dot - 1);
            memcpy(name, dot + 1, nlen);
            name[nlen] = '\0';
            if (p[1] == 'a' || p[1] == 'c') {         /* auth. claims. */
                json_t *obj = p[1] == 'a' ? auth : claims;
                json_t *j = obj != NULL ? json_object_get(obj, name) : NULL;
                if (json_is_string(j)) {
                    v = (em_str_t) { json_string_value(j), json_string_length(j) };
                } else if (json_is_integer(j)) {
                    int w = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
                    v = (em_str_t) { num, (size_t) w };
                }
            } else if (req != NULL && p[1] == 'q') {  /* query. */
                ssize_t q = em_http_query_get(req->query, name, qbuf, sizeof(qbuf));
                if (q > 0) {
                    v = (em_str_t) { qbuf, (size_t) q };
                }
            } else if (req != NULL) {                 /* headers. */
                const em_http_header_t *h = em_http_header(req, name);
                if (h != NULL) {
                    v = h->value;
                }
            }
            if (v.len == 0) {
                return EM_DECLINED;
            }
            p = end + 1;
        }
        if (v.len > EM_ROOM_NAME_MAX - n) {
            return EM_DECLINED;
        }
        memcpy(out + n, v.data, v.len);
        n += v.len;
    }
    *outlen = n;
    return n > 0 ? EM_OK : EM_DECLINED;
}

/* Join s to the rooms of its namespace's templates. */
static void
em_sio_template_rooms(em_sio_socket_t *s, json_t *auth)
{
    const em_conf_nsp_t *cn = &em_loop.conf->nsps[s->nsp->conf_index];
    em_http_req_t        req;
    char                *room;
    int                  have_req;

    if (cn->nrooms == 0 || (room = malloc(EM_ROOM_NAME_MAX)) == NULL) {
        return;
    }
    have_req = em_sio_handshake_req(s, &req) == EM_OK;
    for (size_t i = 0; i < cn->nrooms; i++) {
        size_t len;
        if (em_sio_room_expand(cn->rooms[i], auth, s->claims, have_req ? &req : NULL, room, &len) != EM_OK) {
            continue;
        }
        if (em_adapter_join(s, (em_str_t) { room, len }) != EM_OK) {
            em_log(EM_LOG_WARN, 0, "socket %s: cannot join the room of template \"%s\" "
                   "(limits.rooms, or out of memory)", s->id, cn->rooms[i]);
        }
    }
    free(room);
}

/* ---- sockets ---- */

em_eio_session_t *
em_sio_socket_session(const em_sio_socket_t *s)
{
    return s->client->eio;
}

int
em_sio_socket_ready(const em_sio_socket_t *s)
{
    return s->state == EM_SIO_S_OPEN && em_eio_session_ready(s->client->eio);
}

/* Keep a send made during on_connect; a packet that cannot be kept closes
 * the session (never a silent gap in what the client receives). */
static int
em_sio_hold(em_sio_socket_t *s, em_buf_t *b)
{
    em_buf_t **held = realloc(s->held, (s->nheld + 1) * sizeof(*held));

    if (held == NULL) {
        em_eio_session_refuse(s->client->eio, EM_LIMIT_MEMORY,
                              "no memory to hold a packet sent during on_connect");
        return EM_ERROR;
    }
    s->held = held;
    s->held[s->nheld++] = em_buf_ref(b);
    return EM_OK;
}

void
em_sio_socket_send(em_sio_socket_t *s, const em_pkt_t *pkt)
{
    if (s->state == EM_SIO_S_CLOSED) {
        return;
    }
    if (s->state < EM_SIO_S_OPEN) {
        if (em_sio_hold(s, pkt->text) != EM_OK) {
            return;
        }
        for (size_t i = 0; i < pkt->natt; i++) {
            if (em_sio_hold(s, pkt->att[i]) != EM_OK) {
                return;
            }
        }
        return;
    }
    em_eio_session_send(s->client->eio, pkt->text);
    for (size_t i = 0; i < pkt->natt; i++) {
        em_eio_session_send(s->client->eio, pkt->att[i]);
    }
}

static void
em_sio_send_simple(em_sio_client_t *c, em_sio_type_t type, em_str_t nsp, json_t *data)
{
    size_t    off;
    em_buf_t *b = em_sio_encode(type, 0, nsp, EM_SIO_NO_ID, data, &off);

    if (b == NULL) {
        em_eio_session_refuse(c->eio, EM_LIMIT_MEMORY, "no memory to encode a packet of type %d",
                              (int) type);
        return;
    }
    em_eio_session_send(c->eio, b);
    em_buf_unref(b);
}

static void
em_sio_drop_held(em_sio_socket_t *s)
{
    for (size_t i = 0; i < s->nheld; i++) {
        em_buf_unref(s->held[i]);
    }
    free(s->held);
    s->held = NULL;
    s->nheld = 0;
}

/* An instance of a parameterised namespace with sockets also counts under
 * its pattern ("/device/:id"), so that the broker sends a broadcast to
 * every instance only to workers that have one. */
static void
em_sio_pattern_key(const em_nsp_t *nsp, int add)
{
    const em_conf_nsp_t *cn = &em_loop.conf->nsps[nsp->conf_index];

    if (cn->dynamic) {
        if (add) {
            em_bus_key_add(cn->name, strlen(cn->name), NULL, 0);
        } else {
            em_bus_key_del(cn->name, strlen(cn->name), NULL, 0);
        }
    }
}

/*
 * Hold (add) or release the bus keys a recovering socket needs while its
 * log is read: its namespace (and pattern), its own id and its rooms.
 */
static void
em_sio_recovery_keys(const em_nsp_t *nsp, const em_str_t *rooms, size_t nrooms, int add)
{
    void (*key)(const char *, size_t, const char *, size_t) = add ? em_bus_key_add : em_bus_key_del;

    if (nrooms == 0) {
        return;
    }
    key(nsp->name, nsp->name_len, NULL, 0);
    em_sio_pattern_key(nsp, add);
    for (size_t i = 0; i < nrooms; i++) {
        key(nsp->name, nsp->name_len, rooms[i].data, rooms[i].len);
    }
}

/* A CLOSED socket goes to the reaper (its client's list no longer has it,
 * so ->next is free to link it). */
static void
em_sio_socket_discard(em_sio_socket_t *s)
{
    json_decref(s->claims);
    s->claims = NULL;
    json_decref(s->data);
    s->data = NULL;
    s->next = em_sio_reap_sockets;
    em_sio_reap_sockets = s;
    em_loop_schedule_reap();
}

static size_t em_sio_log_put(char *buf, size_t n, size_t len, const char *s, size_t slen);

/* Append socket k's namespace (and user, the first one) to what the
 * client's access line will say. */
static void
em_sio_seen_note(em_sio_client_t *c, const em_sio_socket_t *k)
{
    struct em_sio_seen *x = c->seen;

    if (!em_access_on() || (x == NULL && (x = c->seen = calloc(1, sizeof(*x))) == NULL)) {
        return;
    }
    em_str_t wire = em_conf_nsp_wire(k->nsp->name, k->nsp->name_len);
    size_t   n = strlen(x->nsps);
    if (n > 0 && n + 4 < sizeof(x->nsps)) {
        x->nsps[n++] = ',';
    }
    (void) em_sio_log_put(x->nsps, n, sizeof(x->nsps), wire.data, wire.len);
    if (x->user[0] == '\0' && k->user != NULL) {
        (void) em_sio_log_put(x->user, 0, sizeof(x->user), k->user, strlen(k->user));
    }
}

/* Unlink a socket from everything; the reaper frees it. `reason` NULL: no
 * events. */
static void
em_sio_socket_remove(em_sio_socket_t *s, const char *reason)
{
    em_sio_client_t *c = s->client;
    em_nsp_t        *nsp = s->nsp;

    if (s->state == EM_SIO_S_CLOSED) {
        return;
    }
    em_sio_seen_note(c, s);
    s->state = EM_SIO_S_CLOSED;     /* first: a handler below cannot remove it twice */
    /* Off the client's list before any handler runs, so that a loop over
     * the client's sockets never meets one that is half removed. */
    for (em_sio_socket_t **p = &c->sockets; *p != NULL; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            c->nsockets--;
            break;
        }
    }
    if (reason != NULL && s->lref != EM_SIO_NOREF) {
        em_sio_app.socket_event(s, "disconnecting", reason);
    }
    if (s->counted && em_sio_watch.closed != NULL) {
        em_sio_watch.closed(s, reason != NULL ? reason : "server namespace disconnect");
    }
    em_adapter_leave_all(s);
    em_cmd_socket_gone(s);
    em_cluster_socket_gone(s, s->counted ? reason : NULL);
    HASH_DELETE(hh, nsp->sockets, s);
    em_bus_key_del(nsp->name, nsp->name_len, s->id, EM_SID_LEN);
    if (--nsp->nsockets == 0) {
        em_bus_key_del(nsp->name, nsp->name_len, NULL, 0);
        em_sio_pattern_key(nsp, 0);
    }
    if (s->lref != EM_SIO_NOREF) {
        if (reason != NULL) {
            em_sio_app.socket_event(s, "disconnect", reason);
        }
        em_sio_app.release(s);
    }
    em_sio_drop_held(s);
    em_nsp_release_if_empty(nsp);
    free(s->user);
    free(s->pid);
    free(s->token);
    s->user = s->pid = s->token = NULL;
    em_sio_socket_discard(s);
}

void
em_sio_socket_disconnect(em_sio_socket_t *s, int close_conn)
{
    em_sio_client_t *c = s->client;
    em_nsp_t        *nsp = s->nsp;

    if (s->state == EM_SIO_S_CLOSED) {
        return;
    }
    if (s->state < EM_SIO_S_OPEN) {
        /* Inside on_connect: connect first, as Node does, then disconnect. */
        if (close_conn || s->state == EM_SIO_S_CONNECTING) {
            s->state = close_conn ? EM_SIO_S_CONNECTING_CLOSE : EM_SIO_S_CONNECTING_LEAVE;
        }
        return;
    }
    if (!close_conn) {
        em_sio_send_simple(c, EM_SIO_DISCONNECT, (em_str_t) { nsp->name, nsp->name_len }, NULL);
        em_sio_socket_remove(s, "server namespace disconnect");
        return;
    }
    while (c->sockets != NULL) {
        em_sio_socket_t *x = c->sockets;
        em_sio_send_simple(c, EM_SIO_DISCONNECT, (em_str_t) { x->nsp->name, x->nsp->name_len }, NULL);
        em_sio_socket_remove(x, "server namespace disconnect");
    }
    em_eio_session_close(c->eio, "forced server close");
}

static em_sio_socket_t *
em_sio_client_socket(em_sio_client_t *c, em_str_t nsp)
{
    for (em_sio_socket_t *s = c->sockets; s != NULL; s = s->next) {
        em_str_t w = em_conf_nsp_wire(s->nsp->name, s->nsp->name_len);
        if (w.len == nsp.len && memcmp(w.data, nsp.data, nsp.len) == 0) {
            return s;
        }
    }
    return NULL;
}

static void
em_sio_connect_error(em_sio_client_t *c, em_str_t nsp, const char *message)
{
    json_t *err = json_pack("{s:s}", "message", message);

    em_sio_send_simple(c, EM_SIO_CONNECT_ERROR, nsp, err);
    json_decref(err);
}

static em_limit_t em_sio_data_check(const json_t *v, unsigned depth, int binary, size_t natt);

/* The rest of a CONNECT once it may go on (after the checks and the
 * connect_hook): recovery, the socket linked, its rooms, on_connect, the
 * CONNECT reply. Takes auth. */
static int
em_sio_connect_finish(em_sio_client_t *c, em_sio_socket_t *s, em_nsp_t *nsp, size_t conf_index,
                      json_t *auth, em_str_t wire)
{
    json_t *reject = NULL, *ok;

    /* A client coming back with {pid, offset}: its old id, rooms and the
     * packets it missed. */
    char          *rbuf = NULL;
    em_str_t      *rooms = NULL;
    size_t         nrooms = 0;
    em_plog_pkt_t *missed = NULL;
    uint64_t       offset;
    if (em_cluster_recover(s, auth, &rbuf, &rooms, &nrooms, &offset) == EM_OK) {
        /* On the bus before the log is read: an event logged after the
         * read reaches this worker live, one in both is skipped by its
         * offset, and none falls between the two. */
        em_sio_recovery_keys(nsp, rooms, nrooms, 1);
        if (em_cluster_recover_replay(s, rooms, nrooms, offset, &missed) != EM_OK) {
            em_sio_recovery_keys(nsp, rooms, nrooms, 0);
            free(rbuf);
            free(rooms);
            rbuf = NULL;
            rooms = NULL;
            nrooms = 0;
        }
    }

    s->next = c->sockets;
    c->sockets = s;
    c->nsockets++;
    HASH_ADD(hh, nsp->sockets, id, EM_SID_LEN, s);
    /* A socket is also the room named by its id; the namespace has sockets. */
    em_bus_key_add(nsp->name, nsp->name_len, s->id, EM_SID_LEN);
    if (nsp->nsockets++ == 0) {
        em_bus_key_add(nsp->name, nsp->name_len, NULL, 0);
        em_sio_pattern_key(nsp, 1);
    }
    for (size_t i = 1; i < nrooms; i++) {
        em_adapter_join(s, rooms[i]);
    }
    em_sio_recovery_keys(nsp, rooms, nrooms, 0);     /* joined now: held by the rooms */
    free(rbuf);
    free(rooms);
    /* The namespace's room templates, before on_connect sees the socket. */
    em_sio_template_rooms(s, auth);

    int watched = em_sio_watch.nsp_conf >= 0 && (size_t) em_sio_watch.nsp_conf == conf_index
                  && em_sio_watch.connect != NULL;
    if (watched || em_sio_app.has_script(conf_index)) {
        if (auth == NULL) {
            auth = json_object();
        }
        if ((watched ? em_sio_watch.connect(s, auth, &reject)
                     : em_sio_app.connect(s, auth, &reject)) != EM_OK) {
            json_t *m = json_object_get(reject, "message");
            em_cluster_connect_failed(s, "auth_failure", json_string_value(m));
            em_sio_send_simple(c, EM_SIO_CONNECT_ERROR, wire, reject);
            json_decref(reject);
            json_decref(auth);
            em_plog_pkts_free(missed);
            em_sio_socket_remove(s, NULL);
            return EM_OK;
        }
    }
    json_decref(auth);
    if (s->state == EM_SIO_S_CLOSED) {
        /* on_connect disconnected it for good (its connection closed). */
        em_plog_pkts_free(missed);
        return EM_OK;
    }
    em_cluster_socket_connected(s);
    ok = s->pid ? json_pack("{s:s,s:s}", "sid", s->id, "pid", s->pid)
                : json_pack("{s:s}", "sid", s->id);
    em_sio_send_simple(c, EM_SIO_CONNECT, (em_str_t) { nsp->name, nsp->name_len }, ok);
    json_decref(ok);
    em_sio_state_t pending = (em_sio_state_t) s->state;
    s->state = EM_SIO_S_OPEN;
    /* What it missed comes first, then what on_connect sent. */
    for (em_plog_pkt_t *m = missed; m != NULL; m = m->next) {
        em_buf_t **atts = m->natt ? calloc(m->natt, sizeof(*atts)) : NULL;
        em_pkt_t   pkt;
        size_t     na = 0;
        while (atts != NULL && na < m->natt
               && (atts[na] = em_buf_copy(m->atts[na].data, m->atts[na].len, 1)) != NULL) {
            na++;
        }
        if (na == m->natt && em_sio_pkt_build_raw(&pkt, EM_SIO_EVENT,
                                                  (em_str_t) { nsp->name, nsp->name_len },
                                                  EM_SIO_NO_ID, m->data, atts, na) == EM_OK) {
            em_sio_socket_send(s, &pkt);
            em_pkt_release(&pkt);
        } else if (na != m->natt) {
            for (size_t i = 0; i < na; i++) {
                em_buf_unref(atts[i]);
            }
            free(atts);
        }
    }
    em_plog_pkts_free(missed);
    for (size_t i = 0; i < s->nheld; i++) {
        em_eio_session_send(c->eio, s->held[i]);
    }
    em_sio_drop_held(s);
    if (c->connect_timer != NULL) {
        event_free(c->connect_timer);
        c->connect_timer = NULL;
    }
    if (em_sio_watch.opened != NULL) {
        em_sio_watch.opened(s);
    }
    if (pending != EM_SIO_S_CONNECTING && s->state == EM_SIO_S_OPEN) {
        em_sio_socket_disconnect(s, pending == EM_SIO_S_CONNECTING_CLOSE);
    }
    return EM_OK;
}

static int em_sio_hook_start(em_sio_client_t *c, em_sio_socket_t *s, em_nsp_t *nsp,
                             size_t conf_index, json_t *auth, em_str_t wire);

/* CONNECT to a namespace; returns EM_ERROR if the connection must close. */
static int
em_sio_connect(em_sio_client_t *c, const em_sio_packet_t *p)
{
    size_t           conf_index;
    em_nsp_t        *nsp;
    em_sio_socket_t *s;
    json_t          *auth = NULL;

    if (em_sio_client_socket(c, p->nsp) != NULL) {
        return EM_OK;   /* already connected: ignored, as Node does */
    }
    if (c->nsockets >= em_loop.conf->limits.namespaces) {
        em_eio_session_refuse(c->eio, EM_LIMIT_NAMESPACES, "a CONNECT to a namespace beyond %u at once",
                              em_loop.conf->limits.namespaces);
        return EM_OK;
    }
    if (p->data.len > 0) {
        auth = em_sio_json_parse(p->data.data, p->data.len);
        if (auth == NULL || !json_is_object(auth)) {
            json_decref(auth);
            return EM_ERROR;
        }
        if (em_sio_data_check(auth, 1, 0, 0) != EM_LIMIT_NONE) {
            em_eio_session_refuse(c->eio, EM_LIMIT_JSON_DEPTH, "CONNECT data nested deeper than %u",
                                  em_loop.conf->limits.json_depth);
            json_decref(auth);
            return EM_OK;
        }
    }
    /* The namespace inside emitd: the endpoint's prefix, then the name. */
    const char *prefix = c->eio->endpoint->prefix != NULL ? c->eio->endpoint->prefix : "";
    size_t      plen = strlen(prefix);
    char        key[600];
    if (plen + p->nsp.len > 512) {
        em_sio_connect_error(c, p->nsp, "Invalid namespace");
        json_decref(auth);
        return EM_OK;
    }
    memcpy(key, prefix, plen);
    memcpy(key + plen, p->nsp.data, p->nsp.len);
    if (em_nsp_conf_index(key, plen + p->nsp.len, &conf_index) != EM_OK
        || em_loop.conf->nsps[conf_index].endpoint != (size_t) (c->eio->endpoint - em_loop.conf->endpoints)
        || (nsp = em_nsp_get(key, plen + p->nsp.len, conf_index)) == NULL) {
        em_sio_connect_error(c, p->nsp, "Invalid namespace");
        json_decref(auth);
        return EM_OK;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        json_decref(auth);
        return EM_ERROR;
    }
    em_sid_random(s->id);
    s->nsp = nsp;
    s->client = c;
    s->lref = EM_SIO_NOREF;
    s->state = EM_SIO_S_CONNECTING;

    /* Over the namespace's connection limit for this address? Then an API
     * key or a token the namespace needs (after the limit, so that guessing
     * is limited too): refused and counted before anything of the client is
     * kept. */
    int64_t     retry = 0;
    json_t     *err = NULL;
    const char *type = "auth", *refusal = NULL;
    if (em_cluster_connect_limit(s, &retry) != EM_OK) {
        err = json_pack("{s:s,s:{s:I}}", "message",
                        "Too many connection attempts. Please try again later.", "data",
                        "retryAfter", (json_int_t) ((retry + 999) / 1000));
        type = "rate_limit";
        refusal = "connection rate limit";
    } else if ((refusal = em_sio_api_key_refusal(s, auth)) != NULL
               || (refusal = em_sio_jwt_refusal(s, auth)) != NULL) {
        err = json_pack("{s:s}", "message", refusal);
    }
    if (refusal != NULL) {
        em_cluster_connect_failed(s, type, refusal);
        em_sio_send_simple(c, EM_SIO_CONNECT_ERROR, p->nsp, err);
        json_decref(err);
        json_decref(auth);
        s->state = EM_SIO_S_CLOSED;     /* never linked anywhere */
        em_sio_socket_discard(s);
        em_nsp_release_if_empty(nsp);
        return EM_OK;
    }

    if (em_loop.conf->nsps[conf_index].connect_hook != NULL) {
        return em_sio_hook_start(c, s, nsp, conf_index, auth, p->nsp);
    }
    return em_sio_connect_finish(c, s, nsp, conf_index, auth, p->nsp);
}

/*
 * Check a packet's JSON data against the limits before anything acts on it:
 * arrays and objects nested at most json_depth deep (v, the argument list or
 * the CONNECT object, is at `depth` 1), and in a binary packet every placeholder
 * {"_placeholder":true,"num":n} naming one of its natt attachments. Returns
 * EM_LIMIT_NONE, EM_LIMIT_JSON_DEPTH or EM_LIMIT_PROTOCOL.
 */
static em_limit_t
em_sio_data_check(const json_t *v, unsigned depth, int binary, size_t natt)
{
    if (json_is_array(v)) {
        size_t        i;
        const json_t *e;
        if (depth > em_loop.conf->limits.json_depth) {
            return EM_LIMIT_JSON_DEPTH;
        }
        json_array_foreach(v, i, e) {
            em_limit_t l = em_sio_data_check(e, depth + 1, binary, natt);
            if (l != EM_LIMIT_NONE) {
                return l;
            }
        }
    } else if (json_is_object(v)) {
        const char *k;
        json_t     *e;
        json_t     *ph = json_object_get(v, "_placeholder");
        if (binary && ph != NULL && json_is_true(ph) && json_object_size(v) == 2) {
            json_t *num = json_object_get(v, "num");
            return (num != NULL && json_is_integer(num) && json_integer_value(num) >= 0
                    && (size_t) json_integer_value(num) < natt)
                       ? EM_LIMIT_NONE : EM_LIMIT_PROTOCOL;
        }
        if (depth > em_loop.conf->limits.json_depth) {
            return EM_LIMIT_JSON_DEPTH;
        }
        json_object_foreach((json_t *) v, k, e) {
            em_limit_t l = em_sio_data_check(e, depth + 1, binary, natt);
            if (l != EM_LIMIT_NONE) {
                return l;
            }
        }
    }
    return EM_LIMIT_NONE;
}

/* An EVENT's or ACK's arguments within the limits? Refuses the session
 * (EM_DECLINED) when not. */
static int
em_sio_args_check(em_sio_client_t *c, const em_sio_packet_t *p, const json_t *args, size_t natt)
{
    const em_conf_limits_t *lim = &em_loop.conf->limits;
    int                     event = p->type == EM_SIO_EVENT || p->type == EM_SIO_BINARY_EVENT;
    size_t                  nargs = json_array_size(args) - (event ? 1 : 0);
    em_limit_t              l;

    if (event && json_string_length(json_array_get(args, 0)) > lim->event_name) {
        em_eio_session_refuse(c->eio, EM_LIMIT_EVENT_NAME, "an event name of %zu bytes (limit %u)",
                              json_string_length(json_array_get(args, 0)), lim->event_name);
        return EM_DECLINED;
    }
    if (nargs > lim->event_args) {
        em_eio_session_refuse(c->eio, EM_LIMIT_EVENT_ARGS, "an %s with %zu arguments (limit %u)",
                              event ? "event" : "ack", nargs, lim->event_args);
        return EM_DECLINED;
    }
    l = em_sio_data_check(args, 1, natt > 0, natt);
    if (l == EM_LIMIT_JSON_DEPTH) {
        em_eio_session_refuse(c->eio, l, "packet data nested deeper than %u", lim->json_depth);
        return EM_DECLINED;
    }
    if (l != EM_LIMIT_NONE) {
        em_eio_session_refuse(c->eio, l, "a placeholder for an attachment the packet does not have");
        return EM_DECLINED;
    }
    return EM_OK;
}

/* A complete packet (attachments gathered). EM_ERROR closes the connection. */
static int
em_sio_dispatch(em_sio_client_t *c, const em_sio_packet_t *p, const em_str_t *atts, size_t natt)
{
    em_sio_socket_t *s;
    json_t          *args;
    int              rc;

    if (p->type == EM_SIO_CONNECT) {
        return em_sio_connect(c, p);
    }
    s = em_sio_client_socket(c, p->nsp);
    if (s == NULL) {
        return EM_ERROR;    /* not connected to that namespace */
    }
    switch (p->type) {
    case EM_SIO_DISCONNECT:
        em_sio_socket_remove(s, "client namespace disconnect");
        return EM_OK;
    case EM_SIO_EVENT:
    case EM_SIO_BINARY_EVENT:
    case EM_SIO_ACK:
    case EM_SIO_BINARY_ACK:
        args = em_sio_json_parse(p->data.data, p->data.len);
        if (args == NULL || !json_is_array(args)) {
            json_decref(args);
            return EM_ERROR;
        }
        if ((p->type == EM_SIO_EVENT || p->type == EM_SIO_BINARY_EVENT)
            && (json_array_size(args) == 0 || !json_is_string(json_array_get(args, 0)))) {
            json_decref(args);
            return EM_ERROR;
        }
        if (em_sio_args_check(c, p, args, natt) != EM_OK) {
            json_decref(args);
            return EM_OK;       /* refused: closed already */
        }
        if ((p->type == EM_SIO_EVENT || p->type == EM_SIO_BINARY_EVENT)
            && em_sio_watch.nsp_conf >= 0 && (size_t) em_sio_watch.nsp_conf == s->nsp->conf_index) {
            if (em_sio_watch.event != NULL && s->state == EM_SIO_S_OPEN) {
                em_sio_watch.event(s, args);
            }
            rc = EM_OK;
        } else if (p->type == EM_SIO_EVENT || p->type == EM_SIO_BINARY_EVENT) {
            if (em_sio_watch.event_in != NULL) {
                em_sio_watch.event_in(s, args);
            }
            rc = (s->lref != EM_SIO_NOREF) ? em_sio_app.event(s, args, atts, natt, p->id) : EM_OK;
        } else {
            if (em_cmd_ack(s, p->id, args, atts, natt)) {
                rc = EM_OK;     /* the answer to a backend API emit */
            } else {
                rc = (s->lref != EM_SIO_NOREF) ? em_sio_app.ack(s, p->id, args, atts, natt) : EM_OK;
            }
        }
        json_decref(args);
        return rc;
    default:
        return EM_ERROR;
    }
}

static void
em_sio_bin_reset(em_sio_client_t *c)
{
    for (unsigned i = 0; i < c->bin_have; i++) {
        free((void *) c->bin_att[i].data);
    }
    free(c->bin_att);
    free(c->bin_text);
    c->bin_att = NULL;
    c->bin_text = NULL;
    c->bin_need = c->bin_have = 0;
    c->bin_bytes = 0;
}

static int
em_sio_text(em_sio_client_t *c, const char *data, size_t len)
{
    em_sio_packet_t p;

    if (c->bin_need > 0 || em_sio_decode(data, len, &p) != EM_OK) {
        return EM_ERROR;
    }
    if (p.nattach > em_loop.conf->limits.attachments) {
        em_eio_session_refuse(c->eio, EM_LIMIT_ATTACHMENTS, "a packet announcing %u attachments (limit %u)",
                              p.nattach, em_loop.conf->limits.attachments);
        return EM_OK;
    }
    if ((p.type == EM_SIO_BINARY_EVENT || p.type == EM_SIO_BINARY_ACK) && p.nattach > 0) {
        c->bin_text = malloc(len);
        c->bin_att = calloc(p.nattach, sizeof(em_str_t));
        if (c->bin_text == NULL || c->bin_att == NULL) {
            em_sio_bin_reset(c);
            return EM_ERROR;
        }
        memcpy(c->bin_text, data, len);
        c->bin_text_len = len;
        c->bin_need = p.nattach;
        return EM_OK;
    }
    return em_sio_dispatch(c, &p, NULL, 0);
}

static int
em_sio_attachment(em_sio_client_t *c, const char *data, size_t len)
{
    em_sio_packet_t p;
    char           *copy;
    int             rc;

    if (c->bin_need == 0) {
        return EM_ERROR;
    }
    c->bin_bytes += len;
    if (c->bin_bytes > c->eio->endpoint->max_payload * 4) {
        em_eio_session_refuse(c->eio, EM_LIMIT_ATTACHMENTS,
                              "attachments of over %zu bytes in one packet (4 x max_payload)",
                              c->eio->endpoint->max_payload * 4);
        return EM_OK;
    }
    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        return EM_ERROR;
    }
    if (len) {
        memcpy(copy, data, len);
    }
    c->bin_att[c->bin_have].data = copy;
    c->bin_att[c->bin_have].len = len;
    if (++c->bin_have < c->bin_need) {
        return EM_OK;
    }
    /* All here: decode the saved header again (its slices point into bin_text). */
    if (em_sio_decode(c->bin_text, c->bin_text_len, &p) != EM_OK) {
        em_sio_bin_reset(c);
        return EM_ERROR;
    }
    /* Take the packet out of the client first: the handler may close the
     * connection, and the client with it. */
    char     *text = c->bin_text;
    em_str_t *att = c->bin_att;
    unsigned  natt = c->bin_have;
    c->bin_text = NULL;
    c->bin_att = NULL;
    c->bin_need = c->bin_have = 0;
    c->bin_bytes = 0;
    rc = em_sio_dispatch(c, &p, att, natt);
    for (unsigned i = 0; i < natt; i++) {
        free((void *) att[i].data);
    }
    free(att);
    free(text);
    return rc;
}

/* ---- connect_hook: the backend admits or refuses a CONNECT ---- */

/* A message the client sent while its CONNECT waited, kept in order. */
typedef struct em_sio_inq {
    struct em_sio_inq *next;
    int                binary;
    size_t             len;
    char               data[];
} em_sio_inq_t;

typedef struct em_sio_hook {
    em_sio_client_t *c;             /* NULL once the client went */
    em_sio_socket_t *s;             /* made, not linked anywhere yet */
    em_nsp_t        *nsp;
    size_t           conf_index;
    json_t          *auth;
    char             wire[260];     /* the namespace as the client named it */
    size_t           wire_len;
} em_sio_hook_t;

static int em_sio_text(em_sio_client_t *c, const char *data, size_t len);
static int em_sio_attachment(em_sio_client_t *c, const char *data, size_t len);

/* The handshake's query string as an object, and its headers (names in
 * lower case) as another. */
static void
em_sio_hook_handshake(em_sio_socket_t *s, json_t *body)
{
    em_http_req_t req;
    json_t       *q = json_object(), *h = json_object();

    if (q != NULL && h != NULL && em_sio_handshake_req(s, &req) == EM_OK) {
        for (size_t i = 0; i < req.nheaders; i++) {
            char name[128];
            size_t n = EM_MIN(req.headers[i].name.len, sizeof(name) - 1);
            for (size_t k = 0; k < n; k++) {
                char ch = req.headers[i].name.data[k];
                name[k] = (char) (ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
            }
            name[n] = '\0';
            json_object_set_new(h, name, json_stringn(req.headers[i].value.data, req.headers[i].value.len));
        }
        const char *p = req.query.data, *end = req.query.data + req.query.len;
        while (p < end) {
            const char *amp = memchr(p, '&', (size_t) (end - p));
            const char *e = amp != NULL ? amp : end;
            const char *eq = memchr(p, '=', (size_t) (e - p));
            char        key[128], val[2048];
            size_t      kl = (size_t) ((eq != NULL ? eq : e) - p);
            if (kl > 0 && kl < sizeof(key)) {
                memcpy(key, p, kl);
                key[kl] = '\0';
                ssize_t vl = em_http_query_get(req.query, key, val, sizeof(val));
                if (vl >= 0 && json_object_get(q, key) == NULL) {
                    json_object_set_new(q, key, json_stringn(val, (size_t) vl));
                }
            }
            p = e + 1;
        }
    }
    em_str_t ip = em_cluster_socket_ip(s);
    json_object_set_new(body, "query", q != NULL ? q : json_object());
    json_object_set_new(body, "headers", h != NULL ? h : json_object());
    json_object_set_new(body, "address", json_stringn(ip.data, ip.len));
}

static void em_sio_inq_run(em_sio_client_t *c);

static void
em_sio_hook_done(const em_fetch_res_t *res, void *arg)
{
    em_sio_hook_t        *k = arg;
    em_sio_client_t      *c = k->c;
    em_sio_socket_t      *s = k->s;
    const em_conf_hook_t *hook = em_loop.conf->nsps[k->conf_index].connect_hook;
    em_str_t              wire = { k->wire, k->wire_len };
    json_t               *doc = NULL;

    if (c == NULL) {
        /* The client went while the backend thought. */
        json_decref(k->auth);
        s->state = EM_SIO_S_CLOSED;
        em_sio_socket_discard(s);
        em_nsp_release_if_empty(k->nsp);
        free(k);
        return;
    }
    c->hook = NULL;
    c->nsockets--;                      /* counted again when it is linked */
    if (res->ok && res->body_len > 0) {
        doc = json_loadb(res->body, res->body_len, JSON_DECODE_ANY, NULL);
    }
    if (res->ok && res->status >= 200 && res->status < 300) {
        /* Admitted: its "data" is socket.data, its "rooms" are joined. */
        json_t *rooms = json_object_get(doc, "rooms");
        if (json_is_object(doc) && json_object_get(doc, "data") != NULL) {
            s->data = json_incref(json_object_get(doc, "data"));
        }
        json_t *extra = json_is_array(rooms) ? json_incref(rooms) : NULL;
        json_decref(doc);
        int rc = em_sio_connect_finish(c, s, k->nsp, k->conf_index, k->auth, wire);
        if (rc == EM_OK && extra != NULL && em_sio_socket_live(s)) {
            size_t  i;
            json_t *r;
            json_array_foreach(extra, i, r) {
                if (json_is_string(r) && em_sio_socket_live(s)) {
                    em_adapter_join(s, (em_str_t) { json_string_value(r), json_string_length(r) });
                }
            }
        }
        json_decref(extra);
        if (rc != EM_OK) {
            em_eio_session_close(c->eio, "parse error");
        }
    } else {
        const char *msg = json_string_value(json_object_get(doc, "message"));
        json_t     *err = json_pack("{s:s}", "message", msg != NULL ? msg : hook->message);
        if (err != NULL && json_object_get(doc, "data") != NULL) {
            json_object_set(err, "data", json_object_get(doc, "data"));
        }
        if (!res->ok) {
            em_log(EM_LOG_WARN, 0, "connect_hook of %s: %s: the CONNECT is refused",
                   em_loop.conf->nsps[k->conf_index].name, res->error);
        }
        em_cluster_connect_failed(s, "auth", msg != NULL ? msg : hook->message);
        em_sio_send_simple(c, EM_SIO_CONNECT_ERROR, wire, err);
        json_decref(err);
        json_decref(doc);
        json_decref(k->auth);
        s->state = EM_SIO_S_CLOSED;
        em_sio_socket_discard(s);
        em_nsp_release_if_empty(k->nsp);
    }
    free(k);
    em_sio_inq_run(c);
}

static int
em_sio_hook_start(em_sio_client_t *c, em_sio_socket_t *s, em_nsp_t *nsp, size_t conf_index,
                  json_t *auth, em_str_t wire)
{
    const em_conf_hook_t *hook = em_loop.conf->nsps[conf_index].connect_hook;
    em_sio_hook_t        *k = calloc(1, sizeof(*k));
    json_t               *body = json_object();
    const char           *why = NULL;
    char                 *text = NULL;

    if (k != NULL && body != NULL && wire.len < sizeof(k->wire)) {
        k->c = c;
        k->s = s;
        k->nsp = nsp;
        k->conf_index = conf_index;
        k->auth = auth;
        memcpy(k->wire, wire.data, wire.len);
        k->wire_len = wire.len;
        json_object_set_new(body, "namespace", json_stringn(wire.data, wire.len));
        json_object_set_new(body, "path", json_string(c->eio->endpoint->path));
        json_object_set_new(body, "socketId", json_string(s->id));
        json_object_set(body, "auth", auth != NULL ? auth : json_object());
        em_sio_hook_handshake(s, body);
        text = json_dumps(body, JSON_COMPACT);
    }
    json_decref(body);
    const char *hdr[] = { "Content-Type: application/json" };
    em_fetch_req_t req = { .method = "POST", .url = hook->url, .headers = hdr, .nheaders = 1,
                           .body = text, .body_len = text != NULL ? strlen(text) : 0,
                           .timeout_ms = hook->timeout };
    if (text != NULL && em_fetch_start(&req, em_sio_hook_done, k, &why) == EM_OK) {
        free(text);
        c->hook = k;
        c->nsockets++;              /* a CONNECT under way counts against limits.namespaces */
        return EM_OK;
    }
    free(text);
    em_log(EM_LOG_WARN, 0, "connect_hook of %s cannot be called: %s", nsp->name,
           why != NULL ? why : "out of memory");
    json_t *err = json_pack("{s:s}", "message", hook->message);
    em_cluster_connect_failed(s, "auth", hook->message);
    em_sio_send_simple(c, EM_SIO_CONNECT_ERROR, wire, err);
    json_decref(err);
    json_decref(auth);
    free(k);
    s->state = EM_SIO_S_CLOSED;
    em_sio_socket_discard(s);
    em_nsp_release_if_empty(nsp);
    return EM_OK;
}

/* Keep a message while a CONNECT waits: EM_ERROR past the bound (four
 * max_payloads, as a binary packet's attachments). */
static int
em_sio_inq_add(em_sio_client_t *c, const char *data, size_t len, int binary)
{
    size_t max = 4 * c->eio->endpoint->max_payload;

    if (c->inq_bytes + len > max) {
        em_eio_session_refuse(c->eio, EM_LIMIT_REQUEST_SIZE,
                              "over %zu bytes sent while its CONNECT waited for the connect_hook", max);
        return EM_OK;
    }
    em_sio_inq_t *q = malloc(sizeof(*q) + len);
    if (q == NULL) {
        em_eio_session_refuse(c->eio, EM_LIMIT_MEMORY, "no memory to keep a packet for later");
        return EM_OK;
    }
    q->next = NULL;
    q->binary = binary;
    q->len = len;
    memcpy(q->data, data, len);
    if (c->inq_tail != NULL) {
        c->inq_tail->next = q;
    } else {
        c->inq_head = q;
    }
    c->inq_tail = q;
    c->inq_bytes += len;
    return EM_OK;
}

static void
em_sio_inq_free(em_sio_client_t *c)
{
    while (c->inq_head != NULL) {
        em_sio_inq_t *q = c->inq_head;
        c->inq_head = q->next;
        free(q);
    }
    c->inq_tail = NULL;
    c->inq_bytes = 0;
}

/* What waited, in order, until the next CONNECT waits again. */
static void
em_sio_inq_run(em_sio_client_t *c)
{
    while (c->hook == NULL && !c->closed && c->inq_head != NULL && em_eio_session_open(c->eio)) {
        em_sio_inq_t *q = c->inq_head;
        c->inq_head = q->next;
        if (c->inq_head == NULL) {
            c->inq_tail = NULL;
        }
        c->inq_bytes -= q->len;
        int rc = q->binary ? em_sio_attachment(c, q->data, q->len) : em_sio_text(c, q->data, q->len);
        if (rc != EM_OK && em_eio_session_open(c->eio)) {
            em_eio_session_refuse(c->eio, EM_LIMIT_PROTOCOL, "a malformed Socket.IO packet of %zu bytes",
                                  q->len);
        }
        free(q);
    }
}

/* ---- Engine.IO hooks ---- */

static void
em_sio_connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    em_sio_client_t *c = arg;
    (void) fd;
    (void) what;

    if (c->sockets == NULL) {
        em_log_debug("session %s sent no CONNECT in time: closing", c->eio->sid);
        em_eio_session_close(c->eio, "connect timeout");
    }
}

static void
em_sio_open(em_eio_session_t *s)
{
    em_sio_client_t *c = calloc(1, sizeof(*c));
    unsigned         ms = s->endpoint->connect_timeout;
    struct timeval   tv = { ms / 1000, (ms % 1000) * 1000 };

    if (c == NULL) {
        em_eio_session_close(s, "server error");
        return;
    }
    c->eio = s;
    s->upper = c;
    c->connect_timer = evtimer_new(em_loop.base, em_sio_connect_timeout_cb, c);
    if (c->connect_timer != NULL) {
        evtimer_add(c->connect_timer, &tv);
    }
}

static void
em_sio_message(em_eio_session_t *s, const char *data, size_t len, int binary)
{
    em_sio_client_t *c = s->upper;
    int              rc;

    if (c == NULL) {
        return;
    }
    if (c->hook != NULL) {
        em_sio_inq_add(c, data, len, binary);  /* after the CONNECT that waits */
        return;
    }
    rc = binary ? em_sio_attachment(c, data, len) : em_sio_text(c, data, len);
    if (rc != EM_OK && em_eio_session_open(s)) {
        em_eio_session_refuse(s, EM_LIMIT_PROTOCOL, "a malformed Socket.IO %s of %zu bytes",
                              binary ? "attachment" : "packet", len);
    }
}

static void
em_sio_close(em_eio_session_t *s, const char *reason)
{
    em_sio_client_t *c = s->upper;

    if (c == NULL) {
        return;
    }
    s->upper = NULL;
    while (c->sockets != NULL) {
        em_sio_socket_remove(c->sockets, reason);
    }
    /* Maybe inside a handler of one of its sockets being removed: the
     * memory goes at the next reap. */
    c->closed = 1;
    em_sio_bin_reset(c);
    if (c->hook != NULL) {
        c->hook->c = NULL;      /* its answer finds no client */
        c->hook = NULL;
    }
    em_sio_inq_free(c);
    if (c->connect_timer != NULL) {
        event_free(c->connect_timer);
        c->connect_timer = NULL;
    }
    c->reap_next = em_sio_reap_clients;
    em_sio_reap_clients = c;
    em_loop_schedule_reap();
}

static int
em_sio_reap(void)
{
    em_sio_socket_t *s = em_sio_reap_sockets;
    em_sio_client_t *c = em_sio_reap_clients;

    em_sio_reap_sockets = NULL;
    em_sio_reap_clients = NULL;
    if (s == NULL && c == NULL) {
        return 0;
    }
    while (s != NULL) {
        em_sio_socket_t *next = s->next;
        free(s);
        s = next;
    }
    while (c != NULL) {
        em_sio_client_t *next = c->reap_next;
        free(c->seen);
        free(c);
        c = next;
    }
    return 1;
}

int
em_sio_init(void)
{
    return em_loop_reaper_add(em_sio_reap);
}

static int
em_sio_keeps_handshake(void)
{
    return em_sio_app.nsp_scripts() || em_conf_has_connect_limits(em_loop.conf)
           || em_conf_needs_handshake(em_loop.conf);
}

/* Append bytes to the access log's text, a byte that is not printable,
 * a space, '"', '%' or ',' as %XX (names come from clients and tokens). */
static size_t
em_sio_log_put(char *buf, size_t n, size_t len, const char *s, size_t slen)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < slen && n + 4 < len; i++) {
        unsigned char ch = (unsigned char) s[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '%' || ch == ',') {
            buf[n++] = '%';
            buf[n++] = hex[ch >> 4];
            buf[n++] = hex[ch & 15];
        } else {
            buf[n++] = (char) ch;
        }
    }
    buf[n] = '\0';
    return n;
}

/* The access log's " nsp=/,/chat user=alice": the namespaces the client
 * was in (those it left, then those it is in now, as clients name them)
 * and the first presence identity one of them had. */
static void
em_sio_describe(em_eio_session_t *s, char *buf, size_t len)
{
    const em_sio_client_t    *c = s->upper;
    const struct em_sio_seen *x;
    char                      nsps[2 * EM_SIO_SEEN_NSPS] = "", user[EM_SIO_SEEN_USER] = "";
    size_t                    n = 0;

    if (c == NULL || len == 0) {
        return;
    }
    if ((x = c->seen) != NULL) {
        n = strlen(x->nsps);
        memcpy(nsps, x->nsps, n + 1);
        memcpy(user, x->user, sizeof(user));
    }
    for (const em_sio_socket_t *k = c->sockets; k != NULL; k = k->next) {
        em_str_t wire = em_conf_nsp_wire(k->nsp->name, k->nsp->name_len);
        if (n > 0 && n + 4 < sizeof(nsps)) {
            nsps[n++] = ',';
        }
        n = em_sio_log_put(nsps, n, sizeof(nsps), wire.data, wire.len);
        if (user[0] == '\0' && k->user != NULL) {
            (void) em_sio_log_put(user, 0, sizeof(user), k->user, strlen(k->user));
        }
    }
    snprintf(buf, len, " nsp=%s user=%s", nsps[0] ? nsps : "-", user[0] ? user : "-");
}

/* The client moved to WebSocket: the watcher hears it for each socket. */
static void
em_sio_upgrade(em_eio_session_t *es)
{
    em_sio_client_t *c = es->upper;

    if (c == NULL || em_sio_watch.upgraded == NULL) {
        return;
    }
    for (em_sio_socket_t *s = c->sockets; s != NULL; s = s->next) {
        if (s->state == EM_SIO_S_OPEN) {
            em_sio_watch.upgraded(s);
        }
    }
}

const char *
em_sio_socket_client_id(const em_sio_socket_t *s)
{
    return s->client->eio->sid;
}

const em_eio_upper_t em_sio_eio_upper = {
    em_sio_open, em_sio_message, em_sio_close, em_sio_keeps_handshake, em_sio_describe,
    em_sio_upgrade
};

em_sio_watch_t em_sio_watch = { .nsp_conf = -1 };

void
em_sio_set_watch(const em_sio_watch_t *w)
{
    em_sio_watch = *w;
}

/* ---- the application above: until one registers, sockets have no script ---- */

static int
em_sio_no_script(size_t conf_index)
{
    (void) conf_index;
    return 0;
}

static int
em_sio_no_scripts(void)
{
    return 0;
}

static void
em_sio_no_presence(const em_pchange_t *change)
{
    (void) change;
}

static void
em_sio_no_shutdown(void)
{
}

em_sio_app_t em_sio_app = {
    .has_script = em_sio_no_script,
    .nsp_scripts = em_sio_no_scripts,
    .presence = em_sio_no_presence,
    .shutdown = em_sio_no_shutdown,
};

static unsigned em_sio_stopping;

void
em_sio_set_app(const em_sio_app_t *app)
{
    em_sio_app = *app;
}

/* ---- routing a broadcast: this worker's sockets, then the bus ---- */

void
em_sio_route(em_str_t name, long conf, const em_bcast_t *b, const em_pkt_t *pkt)
{
    em_str_t data = { pkt->text->data + pkt->data_off, pkt->text->len - pkt->data_off };

    em_stat_add(em_loop.stats->broadcasts, 1);
    if (conf < 0) {
        em_nsp_t *nsp = em_nsp_find(name.data, name.len);
        if (nsp != NULL) {
            em_adapter_broadcast(nsp, b, pkt);
        }
    }
    /* A configured namespace: every instance of it (one, unless parameterised). */
    for (em_nsp_t *nsp = conf < 0 ? NULL : em_nsp_first(), *next; nsp != NULL; nsp = next) {
        next = nsp->hh.next;
        if ((long) nsp->conf_index != conf) {
            continue;
        }
        if (nsp->name_len == name.len && memcmp(nsp->name, name.data, name.len) == 0) {
            em_adapter_broadcast(nsp, b, pkt);
        } else {
            /* Another instance of a parameterised namespace: its own name. */
            em_sio_broadcast_raw(nsp, b, data, pkt->att, pkt->natt);
        }
    }
    /* Only a parameterised namespace needs "every instance": its instances
     * differ per worker. A static one goes by name, so the broker can route
     * it to the workers with members. */
    long pconf = (conf >= 0 && em_loop.conf->nsps[conf].dynamic) ? conf : -1;
    if (!em_sio_stopping) {
        em_bus_publish(name, pconf, b, data, pkt->offset != 0, pkt->att, pkt->natt);
    }
}

void
em_sio_shutdown(void)
{
    const em_conf_t *conf = em_loop.conf;
    struct timespec  now;
    struct tm        tm;
    char             iso[40] = "";

    if (em_sio_stopping) {
        return;
    }
    em_sio_stopping = 1;
    em_sio_app.shutdown();
    clock_gettime(CLOCK_REALTIME, &now);
    if (gmtime_r(&now.tv_sec, &tm) != NULL) {
        size_t n = strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(iso + n, sizeof(iso) - n, ".%03ldZ", now.tv_nsec / 1000000);
    }
    for (size_t i = 0; i < conf->nnsps; i++) {
        const em_conf_nsp_t *cn = &conf->nsps[i];
        em_str_t             name = { cn->name, strlen(cn->name) };
        em_bcast_t           all = { 0 };
        em_pkt_t             pkt;

        if (cn->shutdown_event == NULL) {
            continue;
        }
        json_t *args = json_pack("[s{s:s,s:s}]", cn->shutdown_event, "message",
                                 cn->shutdown_message, "timestamp", iso);
        if (args == NULL
            || em_sio_pkt_build(&pkt, EM_SIO_EVENT, name, EM_SIO_NO_ID, args, NULL, 0) != EM_OK) {
            em_log(EM_LOG_ERR, 0, "cannot encode the shutdown event of %s", cn->name);
            json_decref(args);
            continue;
        }
        json_decref(args);
        em_sio_route(name, (long) i, &all, &pkt);
        em_pkt_release(&pkt);
    }
}

size_t
em_sio_conf_sockets(size_t conf)
{
    size_t n = 0;

    for (em_nsp_t *nsp = em_nsp_first(); nsp != NULL; nsp = nsp->hh.next) {
        if (nsp->conf_index == conf) {
            n += nsp->nsockets;
        }
    }
    return n;
}
