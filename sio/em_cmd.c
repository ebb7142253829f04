/*
 * em_cmd.c - commands on every worker's sockets (em_cmd.h).
 *
 * The worker that asks keeps a request (em_cmd_req_t) with the parts still
 * due and a timer; it sends the command once through the broker to every
 * other worker, then runs its own part. Each worker's part ends in
 * em_cmd_part_done(): merged at once when it is the asker's own, sent back
 * as a REPLY record otherwise. An EMIT part waits for its sockets' acks
 * (em_cmd_acks_t), each sent with an ack id of the socket's own sequence
 * and found again by (socket id, ack id) when the client answers.
 */
#include <event2/event.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>

#include "em_adapter.h"
#include "em_bus.h"
#include "em_cluster.h"
#include "em_cmd.h"
#include "em_conf.h"
#include "em_http.h"
#include "em_log.h"
#include "em_loop.h"
#include "em_socketio.h"

/* ---- requests, at the worker that asked ---- */

typedef struct em_cmd_req {
    uint64_t        id;
    json_t         *result;
    uint64_t        due;            /* slots whose part is due: this worker's and the live others' */
    uint32_t        pids[EM_STATE_SLOTS];   /* the process each was asked in */
    int             complete;       /* 0 once a part could not be asked for or answered */
    int64_t         deadline;       /* ms (em_state_now) */
    struct event   *timer;          /* ticks until then, or runs at once when done */
    em_cmd_done_fn  done;
    void           *arg;
    UT_hash_handle  hh;
} em_cmd_req_t;

static em_cmd_req_t *em_cmd_reqs;
static uint64_t      em_cmd_last;

/* Add src's numbers to dst's and append its lists to dst's. */
static void
em_cmd_merge(em_cmd_req_t *r, json_t *src)
{
    const char *key;
    json_t     *v;

    if (!json_is_object(src)) {
        r->complete = 0;
        return;
    }
    json_object_foreach(src, key, v) {
        json_t *d = json_object_get(r->result, key);
        if (strcmp(key, "incomplete") == 0) {
            r->complete = 0;
        } else if (json_is_integer(v)) {
            json_int_t sum = json_integer_value(v) + (json_is_integer(d) ? json_integer_value(d) : 0);
            json_object_set_new(r->result, key, json_integer(sum));
        } else if (json_is_array(v)) {
            if (!json_is_array(d)) {
                json_object_set_new(r->result, key, json_array());
                d = json_object_get(r->result, key);
            }
            json_array_extend(d, v);
        }
    }
}

static void
em_cmd_finish(em_cmd_req_t *r)
{
    em_cmd_done_fn done = r->done;
    void          *arg = r->arg;
    json_t        *result = r->result;
    int            complete = r->complete && r->due == 0;

    HASH_DEL(em_cmd_reqs, r);
    event_free(r->timer);
    free(r);
    if (done != NULL) {
        done(result, complete, arg);
    } else {
        json_decref(result);
    }
}

/*
 * A worker that went after it was asked (it died, or drained for a reload,
 * before it answered) is not waited for: its sockets went with it.
 */
#define EM_CMD_TICK_MS 100

static void
em_cmd_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    em_cmd_req_t  *r = arg;
    struct timeval tick = { 0, EM_CMD_TICK_MS * 1000 };
    (void) fd;
    (void) what;

    for (unsigned i = 0; i < EM_STATE_SLOTS; i++) {
        if ((r->due & (1ULL << i)) && i != em_loop.slot
            && em_state_slot_pid(&em_cluster, i) != r->pids[i]) {
            r->due &= ~(1ULL << i);
        }
    }
    if (r->due != 0 && em_state_now() < r->deadline) {
        event_add(r->timer, &tick);
        return;
    }
    em_cmd_finish(r);
}

/* Worker `from`'s part of request id arrived here. */
static void
em_cmd_part_merge(uint64_t id, unsigned from, json_t *part)
{
    em_cmd_req_t *r;

    HASH_FIND(hh, em_cmd_reqs, &id, sizeof(id), r);
    if (r == NULL || from >= EM_STATE_SLOTS || (r->due & (1ULL << from)) == 0) {
        return;             /* finished (timed out), cancelled, or not asked */
    }
    em_cmd_merge(r, part);
    r->due &= ~(1ULL << from);
    if (r->due == 0) {
        /* Answered by every worker: done() runs from the loop, never
         * inside the call that completed it. */
        event_del(r->timer);
        event_active(r->timer, EV_TIMEOUT, 0);
    }
}

/* This worker's part of a command from `origin` is done: to the asker. */
static void
em_cmd_part_done(uint16_t origin, uint64_t req, json_t *part)
{
    if (origin == em_loop.slot) {
        em_cmd_part_merge(req, em_loop.slot, part);
        json_decref(part);
        return;
    }
    char  *text = json_dumps(part, JSON_COMPACT);
    size_t max = em_bus_max_record();
    json_decref(part);
    if (text != NULL && strlen(text) + sizeof(em_brk_cmd_t) > max) {
        em_log(EM_LOG_WARN, 0, "a reply of %zu bytes to worker %u is too large for the rings: "
               "sent as incomplete", strlen(text), origin + 1u);
        free(text);
        text = strdup("{\"incomplete\":true}");
    }
    if (text == NULL) {
        em_log(EM_LOG_ERR, 0, "no memory for a reply to worker %u", origin + 1u);
        return;             /* the asker's timer ends its wait */
    }
    em_brk_cmd_msg_t m = {
        .kind = EM_CMD_REPLY,
        .origin = (uint16_t) em_loop.slot,
        .target = origin,
        .req = req,
        .data = { text, strlen(text) },
    };
    (void) em_bus_send_cmd(&m);
    free(text);
}

/* ---- selecting sockets ---- */

typedef struct {
    em_sio_socket_t **v;
    size_t            n, cap;
    int               oom;
} em_cmd_set_t;

static void
em_cmd_collect(em_sio_socket_t *s, void *arg)
{
    em_cmd_set_t *set = arg;

    if (set->n == set->cap) {
        size_t            cap = set->cap ? set->cap * 2 : 64;
        em_sio_socket_t **v = realloc(set->v, cap * sizeof(*v));
        if (v == NULL) {
            set->oom = 1;
            return;
        }
        set->v = v;
        set->cap = cap;
    }
    set->v[set->n++] = s;
}

/* A list of names from a JSON array (of strings, within the bounds of a
 * broadcast record); EM_ERROR for anything else. The slices point into
 * the JSON. */
static int
em_cmd_names(const json_t *a, em_str_t **out, size_t *n)
{
    size_t i;
    json_t *v;

    *out = NULL;
    *n = 0;
    if (a == NULL) {
        return EM_OK;
    }
    if (!json_is_array(a) || json_array_size(a) > EM_BRK_LIST_MAX) {
        return EM_ERROR;
    }
    if ((*out = calloc(json_array_size(a) + 1, sizeof(em_str_t))) == NULL) {
        return EM_ERROR;
    }
    json_array_foreach(a, i, v) {
        if (!json_is_string(v) || json_string_length(v) > EM_ROOM_NAME_MAX) {
            free(*out);
            *out = NULL;
            return EM_ERROR;
        }
        (*out)[i] = (em_str_t) { json_string_value(v), json_string_length(v) };
    }
    *n = json_array_size(a);
    return EM_OK;
}

/* Call fn for each namespace of this worker the command names. */
static void
em_cmd_each_nsp(const json_t *cmd, void (*fn)(em_nsp_t *nsp, void *arg), void *arg)
{
    const json_t *nsp = json_object_get(cmd, "nsp");
    const json_t *conf = json_object_get(cmd, "conf");

    if (json_is_string(nsp)) {
        em_nsp_t *ns = em_nsp_find(json_string_value(nsp), json_string_length(nsp));
        if (ns != NULL) {
            fn(ns, arg);
        }
        return;
    }
    int all = json_is_true(json_object_get(cmd, "all"));
    if (!json_is_integer(conf) && !all) {
        return;
    }
    for (em_nsp_t *ns = em_nsp_first(), *next; ns != NULL; ns = next) {
        next = ns->hh.next;
        if (all || (json_int_t) ns->conf_index == json_integer_value(conf)) {
            fn(ns, arg);
        }
    }
}

typedef struct {
    em_bcast_t    b;
    em_cmd_set_t  set;
} em_cmd_sel_t;

static void
em_cmd_select_nsp(em_nsp_t *nsp, void *arg)
{
    em_cmd_sel_t *sel = arg;

    em_adapter_select(nsp, &sel->b, em_cmd_collect, &sel->set);
}

/* The sockets of this worker the command selects, in *set (free set->v);
 * EM_ERROR when its lists are malformed or memory ran out. */
static int
em_cmd_select(const json_t *cmd, em_cmd_set_t *set)
{
    em_cmd_sel_t sel;
    em_str_t    *rooms, *except;
    int          rc = EM_OK;

    memset(&sel, 0, sizeof(sel));
    if (em_cmd_names(json_object_get(cmd, "rooms"), &rooms, &sel.b.nrooms) != EM_OK) {
        return EM_ERROR;
    }
    if (em_cmd_names(json_object_get(cmd, "except"), &except, &sel.b.nexcept) != EM_OK) {
        free(rooms);
        return EM_ERROR;
    }
    sel.b.rooms = rooms;
    sel.b.except = except;
    em_cmd_each_nsp(cmd, em_cmd_select_nsp, &sel);
    free(rooms);
    free(except);
    if (sel.set.oom) {
        free(sel.set.v);
        return EM_ERROR;
    }
    *set = sel.set;
    return rc;
}

/* ---- binary arguments of acks ---- */

/* A copy of v with each attachment placeholder replaced by
 * {"$binary": base64}; NULL when out of memory. */
static json_t *
em_cmd_unplace(const json_t *v, const em_str_t *atts, size_t natt)
{
    const char *key;
    json_t     *e, *out;
    size_t      i;

    if (json_is_object(v)) {
        json_t *num = json_object_get(v, "num");
        if (json_is_true(json_object_get(v, "_placeholder")) && json_is_integer(num)
            && json_integer_value(num) >= 0 && (size_t) json_integer_value(num) < natt) {
            const em_str_t *a = &atts[json_integer_value(num)];
            size_t          blen = sodium_base64_encoded_len(a->len, sodium_base64_VARIANT_ORIGINAL);
            char           *b64 = malloc(blen);
            if (b64 == NULL) {
                return NULL;
            }
            sodium_bin2base64(b64, blen, (const unsigned char *) a->data, a->len,
                              sodium_base64_VARIANT_ORIGINAL);
            out = json_pack("{s:s}", "$binary", b64);
            free(b64);
            return out;
        }
        out = json_object();
        json_object_foreach((json_t *) v, key, e) {
            json_t *c = em_cmd_unplace(e, atts, natt);
            if (out == NULL || c == NULL || json_object_set_new(out, key, c) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    if (json_is_array(v)) {
        out = json_array();
        json_array_foreach(v, i, e) {
            json_t *c = em_cmd_unplace(e, atts, natt);
            if (out == NULL || c == NULL || json_array_append_new(out, c) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    return json_deep_copy(v);
}

/* ---- EMIT: an event that waits for acks ---- */

typedef struct em_cmd_acks em_cmd_acks_t;

typedef struct {
    char     sid[EM_SID_LEN + 4];   /* zero-padded: the key has no holes */
    int64_t  ack;
} em_cmd_wkey_t;

typedef struct em_cmd_sock em_cmd_sock_t;

/* A sent event waiting for one socket's ack: in the hash by (socket id,
 * ack id) and on its socket's list. */
typedef struct em_cmd_waiter {
    em_cmd_wkey_t         key;
    em_cmd_acks_t        *g;
    size_t                idx;      /* in g->w */
    em_cmd_sock_t        *sock;
    struct em_cmd_waiter *prev, *next;
    UT_hash_handle        hh;
} em_cmd_waiter_t;

/* The waiters of one socket (by id), so that its going costs its own. */
struct em_cmd_sock {
    char             sid[EM_SID_LEN + 4];
    em_cmd_waiter_t *list;
    UT_hash_handle   hh;
};

struct em_cmd_acks {
    uint16_t          origin;
    uint64_t          req;
    json_t           *acks;
    size_t            sent, left;
    em_cmd_waiter_t **w;            /* [sent]; NULL once answered or gone */
    struct event     *timer;
    em_cmd_acks_t    *next;
};

static em_cmd_waiter_t *em_cmd_waiters;
static em_cmd_sock_t   *em_cmd_socks;
static em_cmd_acks_t   *em_cmd_gathers;

static void
em_cmd_wkey(em_cmd_wkey_t *k, const char *sid, int64_t ack)
{
    memset(k, 0, sizeof(*k));
    memcpy(k->sid, sid, strnlen(sid, EM_SID_LEN));
    k->ack = ack;
}

/* Put w in the hash and on its socket's list: EM_ERROR when out of memory. */
static int
em_cmd_waiter_add(em_cmd_waiter_t *w)
{
    em_cmd_sock_t *so;

    HASH_FIND(hh, em_cmd_socks, w->key.sid, sizeof(w->key.sid), so);
    if (so == NULL) {
        if ((so = calloc(1, sizeof(*so))) == NULL) {
            return EM_ERROR;
        }
        memcpy(so->sid, w->key.sid, sizeof(so->sid));
        HASH_ADD(hh, em_cmd_socks, sid, sizeof(so->sid), so);
    }
    w->sock = so;
    w->next = so->list;
    if (so->list != NULL) {
        so->list->prev = w;
    }
    so->list = w;
    HASH_ADD(hh, em_cmd_waiters, key, sizeof(w->key), w);
    return EM_OK;
}

static void
em_cmd_waiter_free(em_cmd_waiter_t *w)
{
    em_cmd_sock_t *so = w->sock;

    if (w->prev != NULL) {
        w->prev->next = w->next;
    } else {
        so->list = w->next;
    }
    if (w->next != NULL) {
        w->next->prev = w->prev;
    }
    if (so->list == NULL) {
        HASH_DEL(em_cmd_socks, so);
        free(so);
    }
    HASH_DEL(em_cmd_waiters, w);
    w->g->w[w->idx] = NULL;
    free(w);
}

static void
em_cmd_acks_finish(em_cmd_acks_t *g)
{
    for (em_cmd_acks_t **p = &em_cmd_gathers; *p != NULL; p = &(*p)->next) {
        if (*p == g) {
            *p = g->next;
            break;
        }
    }
    for (size_t i = 0; i < g->sent; i++) {
        if (g->w[i] != NULL) {
            em_cmd_waiter_free(g->w[i]);
        }
    }
    free(g->w);
    if (g->timer != NULL) {
        event_free(g->timer);
    }
    json_t *part = json_pack("{s:I,s:o}", "sockets", (json_int_t) g->sent, "acks", g->acks);
    em_cmd_part_done(g->origin, g->req, part != NULL ? part : json_pack("{s:b}", "incomplete", 1));
    free(g);
}

static void
em_cmd_acks_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    em_cmd_acks_finish(arg);
}

/* Forget a waiter of g (answered or its socket gone); finish g after the
 * last. */
static void
em_cmd_waiter_done(em_cmd_acks_t *g, em_cmd_waiter_t *w)
{
    em_cmd_waiter_free(w);
    if (--g->left == 0) {
        event_del(g->timer);
        event_active(g->timer, EV_TIMEOUT, 0);   /* finish from the loop */
    }
}

int
em_cmd_ack(em_sio_socket_t *s, int64_t id, json_t *args, const em_str_t *atts, size_t natt)
{
    em_cmd_wkey_t    k;
    em_cmd_waiter_t *w;

    if (em_cmd_waiters == NULL) {
        return 0;
    }
    em_cmd_wkey(&k, s->id, id);
    HASH_FIND(hh, em_cmd_waiters, &k, sizeof(k), w);
    if (w == NULL) {
        return 0;
    }
    json_t *first = json_array_size(args) > 0 ? json_array_get(args, 0) : NULL;
    json_t *reply = first != NULL ? em_cmd_unplace(first, atts, natt) : json_null();
    if (reply != NULL) {
        json_array_append_new(w->g->acks, reply);
    }
    em_cmd_waiter_done(w->g, w);
    return 1;
}

void
em_cmd_socket_gone(em_sio_socket_t *s)
{
    em_cmd_wkey_t  k;
    em_cmd_sock_t *so;

    if (em_cmd_socks == NULL) {
        return;
    }
    em_cmd_wkey(&k, s->id, 0);
    HASH_FIND(hh, em_cmd_socks, k.sid, sizeof(k.sid), so);
    while (so != NULL) {
        /* The last waiter frees so: look it up again each time. */
        em_cmd_waiter_done(so->list->g, so->list);
        HASH_FIND(hh, em_cmd_socks, k.sid, sizeof(k.sid), so);
    }
}

static void
em_cmd_emit(const json_t *cmd, em_buf_t *const *atts, size_t natt, uint16_t origin, uint64_t req)
{
    const json_t *data = json_object_get(cmd, "data");
    json_int_t    timeout = json_integer_value(json_object_get(cmd, "timeout"));
    em_cmd_set_t  set;
    em_cmd_acks_t *g;

    if (!json_is_string(data) || em_cmd_select(cmd, &set) != EM_OK) {
        em_cmd_part_done(origin, req, json_pack("{s:b}", "incomplete", 1));
        return;
    }
    timeout = EM_MAX(1, EM_MIN(timeout, (json_int_t) EM_CONF_ADMIN_TIMEOUT_MAX));
    g = calloc(1, sizeof(*g));
    if (g == NULL || (g->w = calloc(set.n + 1, sizeof(*g->w))) == NULL
        || (g->acks = json_array()) == NULL
        || (g->timer = evtimer_new(em_loop.base, em_cmd_acks_timer_cb, g)) == NULL) {
        if (g != NULL) {
            free(g->w);
            json_decref(g->acks);
            free(g);
        }
        free(set.v);
        em_cmd_part_done(origin, req, json_pack("{s:b}", "incomplete", 1));
        return;
    }
    g->origin = origin;
    g->req = req;
    g->next = em_cmd_gathers;
    em_cmd_gathers = g;
    em_str_t text = { json_string_value(data), json_string_length(data) };
    for (size_t i = 0; i < set.n; i++) {
        em_sio_socket_t *s = set.v[i];
        em_pkt_t         pkt;
        em_buf_t       **refs;
        em_cmd_waiter_t *w;
        if (!em_sio_socket_live(s) || (refs = calloc(natt + 1, sizeof(*refs))) == NULL) {
            continue;
        }
        for (size_t k = 0; k < natt; k++) {
            refs[k] = em_buf_ref(atts[k]);
        }
        int64_t id = s->next_ack++;
        if (em_sio_pkt_build_raw(&pkt, EM_SIO_EVENT, (em_str_t) { s->nsp->name, s->nsp->name_len },
                                 id, text, refs, natt) != EM_OK) {
            continue;
        }
        if ((w = calloc(1, sizeof(*w))) == NULL) {
            em_pkt_release(&pkt);
            continue;
        }
        em_cmd_wkey(&w->key, s->id, id);
        w->g = g;
        w->idx = g->sent;
        if (em_cmd_waiter_add(w) != EM_OK) {
            free(w);
            em_pkt_release(&pkt);
            continue;
        }
        g->w[g->sent++] = w;
        g->left++;
        em_sio_socket_send(s, &pkt);
        em_pkt_release(&pkt);
    }
    free(set.v);
    if (g->left == 0) {
        event_active(g->timer, EV_TIMEOUT, 0);
    } else {
        struct timeval tv = { (time_t) (timeout / 1000), (suseconds_t) (timeout % 1000) * 1000 };
        event_add(g->timer, &tv);
    }
}

/* ---- the other kinds: done at once ---- */

static void
em_cmd_rooms_cb(const char *room, size_t len, void *arg)
{
    json_array_append_new(arg, json_stringn(room, len));
}

/* An object of the pairs of query (percent-decoded; a pair that does not
 * decode into the buffers is left out). */
static json_t *
em_cmd_query_json(em_str_t query)
{
    json_t  *o = json_object();
    size_t   pos = 0;
    em_str_t k, v;
    char     key[256], val[4096];

    while (o != NULL && em_http_query_next(query, &pos, &k, &v)) {
        ssize_t kl = em_http_pct_decode(k, key, sizeof(key));
        ssize_t vl = em_http_pct_decode(v, val, sizeof(val));
        if (kl > 0 && vl >= 0) {
            key[kl] = '\0';
            json_object_set_new(o, key, json_stringn(val, (size_t) vl));
        }
    }
    return o;
}

/* socket.handshake as Socket.IO describes it, from the request head kept
 * at the Engine.IO handshake: url, query, headers (names in lower case),
 * xdomain (an Origin was sent), secure, issued and time. */
static json_t *
em_cmd_handshake(em_sio_socket_t *s)
{
    em_eio_session_t *es = em_sio_socket_session(s);
    size_t            hlen = 0;
    const char       *head = em_eio_session_head(es, &hlen);
    em_http_req_t     req;
    json_t           *h, *headers = json_object();
    int               xdomain = 0;
    char              when[80];
    time_t            secs = (time_t) (s->connected_at / 1000);
    struct tm         tm;

    if (headers != NULL && head != NULL && em_http_parse(head, hlen, &req) == EM_OK) {
        for (size_t i = 0; i < req.nheaders; i++) {
            char   name[128];
            size_t n = EM_MIN(req.headers[i].name.len, sizeof(name) - 1);
            for (size_t k = 0; k < n; k++) {
                char ch = req.headers[i].name.data[k];
                name[k] = (ch >= 'A' && ch <= 'Z') ? (char) (ch + 32) : ch;
            }
            name[n] = '\0';
            xdomain |= strcmp(name, "origin") == 0;
            json_object_set_new(headers, name, json_stringn(req.headers[i].value.data,
                                                            req.headers[i].value.len));
        }
        h = json_pack("{s:s%,s:o}", "url", req.target.data, req.target.len,
                      "query", em_cmd_query_json(req.query));
    } else {
        h = json_pack("{s:s,s:{}}", "url", "", "query");
    }
    gmtime_r(&secs, &tm);
    strftime(when, sizeof(when), "%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)", &tm);
    if (h != NULL) {
        json_object_set_new(h, "headers", headers != NULL ? headers : json_object());
        json_object_set_new(h, "address", json_string(em_eio_session_address(es)));
        json_object_set_new(h, "xdomain", json_boolean(xdomain));
        json_object_set_new(h, "secure", json_false());
        json_object_set_new(h, "issued", json_integer((json_int_t) s->connected_at));
        json_object_set_new(h, "time", json_string(when));
    } else {
        json_decref(headers);
    }
    return h;
}

json_t *
em_cmd_socket_info(em_sio_socket_t *s, int handshake)
{
    em_eio_session_t *es = em_sio_socket_session(s);
    em_str_t          ip = em_cluster_socket_ip(s);
    json_t           *rooms = json_array();
    json_t           *data = em_sio_app.socket_data != NULL ? em_sio_app.socket_data(s) : NULL;

    if (data == NULL && s->data != NULL) {
        data = json_incref(s->data);        /* the connect_hook's, no script made one */
    }
    em_str_t          wire = em_conf_nsp_wire(s->nsp->name, s->nsp->name_len);

    if (rooms != NULL) {
        json_array_append_new(rooms, json_string(s->id));
        em_adapter_socket_rooms(s, em_cmd_rooms_cb, rooms);
    }
    json_t *info = json_pack("{s:s,s:s%,s:o,s:o,s:o,s:s%,s:s,s:I,s:b,s:i}",
                     "id", s->id,
                     "namespace", wire.data, wire.len,
                     "rooms", rooms != NULL ? rooms : json_array(),
                     "data", data != NULL ? data : json_null(),
                     "user", s->user != NULL ? json_string(s->user) : json_null(),
                     "address", ip.data, ip.len,
                     "transport", es->transport == EM_TRANSPORT_WEBSOCKET ? "websocket" : "polling",
                     "connectedAt", (json_int_t) s->connected_at,
                     "recovered", (int) s->recovered,
                     "worker", (int) em_loop.slot + 1);
    if (info != NULL && handshake) {
        json_object_set_new(info, "clientId", json_string(em_sio_socket_client_id(s)));
        json_object_set_new(info, "handshake", em_cmd_handshake(s));
    }
    return info;
}

typedef struct {
    json_t *list;
} em_cmd_rooms_t;

static void
em_cmd_room_cb(em_nsp_t *nsp, const char *room, size_t len, size_t members, void *arg)
{
    json_array_append_new(arg, json_pack("[s%,s%,I]", nsp->name, nsp->name_len, room, len,
                                         (json_int_t) members));
}

static void
em_cmd_rooms_nsp(em_nsp_t *nsp, void *arg)
{
    em_adapter_rooms(nsp, em_cmd_room_cb, arg);
}

/* Run this worker's part of a command from origin. */
static void
em_cmd_exec(em_cmd_kind_t kind, const json_t *cmd, em_buf_t *const *atts, size_t natt,
            uint16_t origin, uint64_t req)
{
    em_cmd_set_t set;
    json_t      *part = NULL;
    size_t       n = 0;

    if (kind == EM_CMD_EMIT) {
        em_cmd_emit(cmd, atts, natt, origin, req);
        return;
    }
    if (kind == EM_CMD_SYNC) {
        em_cmd_part_done(origin, req, json_object());
        return;
    }
    if (kind == EM_CMD_ROOMS) {
        json_t *list = json_array();
        if (list != NULL) {
            em_cmd_each_nsp(cmd, em_cmd_rooms_nsp, list);
            part = json_pack("{s:o}", "rooms", list);
        }
        em_cmd_part_done(origin, req, part != NULL ? part : json_pack("{s:b}", "incomplete", 1));
        return;
    }
    if (em_cmd_select(cmd, &set) != EM_OK) {
        em_cmd_part_done(origin, req, json_pack("{s:b}", "incomplete", 1));
        return;
    }
    switch (kind) {
    case EM_CMD_JOIN:
    case EM_CMD_LEAVE: {
        em_str_t *names;
        size_t    nnames;
        if (em_cmd_names(json_object_get(cmd, "join"), &names, &nnames) != EM_OK) {
            break;
        }
        for (size_t i = 0; i < set.n; i++) {
            int did = 0;
            for (size_t k = 0; k < nnames && em_sio_socket_live(set.v[i]); k++) {
                if (kind == EM_CMD_LEAVE) {
                    em_adapter_leave(set.v[i], names[k]);
                    did = 1;
                } else {
                    did |= em_adapter_join(set.v[i], names[k]) == EM_OK;
                }
            }
            n += did;
        }
        free(names);
        part = json_pack("{s:I}", "sockets", (json_int_t) n);
        break;
    }
    case EM_CMD_DISCONNECT: {
        int close_conn = json_is_true(json_object_get(cmd, "close"));
        for (size_t i = 0; i < set.n; i++) {
            if (em_sio_socket_live(set.v[i])) {
                em_sio_socket_disconnect(set.v[i], close_conn);
                n++;
            }
        }
        part = json_pack("{s:I}", "sockets", (json_int_t) n);
        break;
    }
    case EM_CMD_SOCKETS: {
        json_int_t limit = json_integer_value(json_object_get(cmd, "limit"));
        int        handshake = json_is_true(json_object_get(cmd, "handshake"));
        json_t    *list = json_array();
        limit = EM_MAX(0, EM_MIN(limit, EM_CMD_SOCKETS_MAX));
        for (size_t i = 0; list != NULL && i < set.n; i++) {
            if (!em_sio_socket_live(set.v[i])) {
                continue;
            }
            if ((json_int_t) json_array_size(list) < limit) {
                json_array_append_new(list, em_cmd_socket_info(set.v[i], handshake));
            }
            n++;
        }
        if (list != NULL) {
            part = json_pack("{s:o,s:I}", "sockets", list, "total", (json_int_t) n);
        }
        break;
    }
    default:
        break;
    }
    free(set.v);
    em_cmd_part_done(origin, req, part != NULL ? part : json_pack("{s:b}", "incomplete", 1));
}

/* ---- the interface ---- */

uint64_t
em_cmd_run(em_cmd_kind_t kind, json_t *cmd, em_buf_t *const *atts, size_t natt,
           unsigned timeout_ms, em_cmd_done_fn done, void *arg)
{
    em_cmd_req_t *r = calloc(1, sizeof(*r));

    if (r == NULL || (r->result = json_object()) == NULL
        || (r->timer = evtimer_new(em_loop.base, em_cmd_timer_cb, r)) == NULL) {
        if (r != NULL) {
            json_decref(r->result);
            free(r);
        }
        return 0;
    }
    if (em_cmd_last == 0) {
        /* Not the ids of the process this slot had before: a late reply to
         * one of those finds no request of ours. */
        em_cmd_last = (uint64_t) getpid() << 32;
    }
    r->id = ++em_cmd_last;
    r->due = 1ULL << em_loop.slot;
    r->complete = 1;
    r->done = done;
    r->arg = arg;
    HASH_ADD(hh, em_cmd_reqs, id, sizeof(r->id), r);

    uint64_t others = 0;
    for (unsigned i = 0; em_bus_active() && i < em_loop.nworkers && i < EM_STATE_SLOTS; i++) {
        if (i != em_loop.slot && (r->pids[i] = em_state_slot_pid(&em_cluster, i)) != 0) {
            others |= 1ULL << i;
        }
    }
    if (others != 0) {
        char      *text = json_dumps(cmd, JSON_COMPACT);
        em_str_t   small[8], *slices = natt <= 8 ? small : calloc(natt, sizeof(em_str_t));
        if (text != NULL && slices != NULL) {
            for (size_t i = 0; i < natt; i++) {
                slices[i] = (em_str_t) { atts[i]->data, atts[i]->len };
            }
            em_brk_cmd_msg_t m = {
                .kind = (uint16_t) kind,
                .origin = (uint16_t) em_loop.slot,
                .target = EM_BRK_ALL,
                .req = r->id,
                .data = { text, strlen(text) },
                .att = slices,
                .natt = natt,
            };
            if (em_bus_send_cmd(&m) == EM_OK) {
                r->due |= others;
            } else {
                r->complete = 0;
            }
        } else {
            r->complete = 0;
        }
        free(text);
        if (slices != small) {
            free(slices);
        }
    }
    struct timeval tick = { 0, (suseconds_t) EM_MIN(timeout_ms, EM_CMD_TICK_MS) * 1000 };
    r->deadline = em_state_now() + timeout_ms;
    event_add(r->timer, &tick);
    uint64_t id = r->id;
    em_cmd_exec(kind, cmd, atts, natt, (uint16_t) em_loop.slot, id);   /* may complete r */
    return id;
}

void
em_cmd_cancel(uint64_t handle)
{
    em_cmd_req_t *r;

    HASH_FIND(hh, em_cmd_reqs, &handle, sizeof(handle), r);
    if (r != NULL) {
        r->done = NULL;
        r->arg = NULL;
    }
}

void
em_cmd_receive(const em_brk_cmd_msg_t *m)
{
    json_t       *j = json_loadb(m->data.data, m->data.len, JSON_ALLOW_NUL, NULL);
    em_buf_t     *small[8], **atts = small;
    em_brk_list_t l = m->atts;
    em_str_t      a;
    size_t        natt = 0;

    if (!json_is_object(j)) {
        em_log(EM_LOG_ERR, 0, "a command from worker %u that is not a JSON object was dropped",
               m->origin + 1u);
        json_decref(j);
        return;
    }
    if (m->kind == EM_CMD_REPLY) {
        em_cmd_part_merge(m->req, m->origin, j);
        json_decref(j);
        return;
    }
    if (m->kind < EM_CMD_EMIT || m->kind > EM_CMD_SYNC || m->origin >= em_loop.nworkers) {
        em_log(EM_LOG_ERR, 0, "a command of unknown kind %u was dropped", m->kind);
        json_decref(j);
        return;
    }
    if (m->natt > EM_NELEMS(small) && (atts = calloc(m->natt, sizeof(*atts))) == NULL) {
        json_decref(j);
        return;
    }
    while (natt < m->natt && em_brk_list_next(&l, &a)) {
        if ((atts[natt] = em_buf_copy(a.data, a.len, 1)) == NULL) {
            break;
        }
        natt++;
    }
    if (natt == m->natt) {
        em_cmd_exec((em_cmd_kind_t) m->kind, j, atts, natt, m->origin, m->req);
    } else {
        em_cmd_part_done(m->origin, m->req, json_pack("{s:b}", "incomplete", 1));
    }
    for (size_t i = 0; i < natt; i++) {
        em_buf_unref(atts[i]);
    }
    if (atts != small) {
        free(atts);
    }
    json_decref(j);
}
