/*
 * em_cluster.c - a worker's side of the cluster-wide state.
 *
 * Every socket is counted in its namespace and rooms on every worker, a
 * socket a script names a user for is that user's connection in presence,
 * and with recovery on every socket has a session (key: its pid) that is
 * kept current as it joins and leaves rooms, so that the socket can be
 * restored on any worker, even after its own worker died. Scripts hear of
 * presence changes after the shared state changed, with no lock held.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "em_bus.h"
#include "em_cluster.h"
#include "em_http.h"
#include "em_log.h"
#include "em_loop.h"
#include "em_socketio.h"

em_state_t em_cluster;

static struct event *em_cluster_tidy_ev;

int
em_cluster_init(int fd)
{
    if (em_state_map(&em_cluster, fd) != EM_OK) {
        return EM_ERROR;
    }
    em_loop.state = &em_cluster;
    if (em_cluster.hdr->nworkers != em_loop.nworkers) {
        em_log(EM_LOG_ERR, 0, "the state segment is for %u workers, not %u",
               em_cluster.hdr->nworkers, em_loop.nworkers);
        return EM_ERROR;
    }
    em_state_slot_set(&em_cluster, em_loop.slot, (uint32_t) getpid());
    em_loop.stats = em_state_wstats(&em_cluster, em_loop.slot);
    /* The sessions of a worker that was here before died with it. */
    __atomic_store_n(&em_loop.stats->sessions_ws, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&em_loop.stats->sessions_polling, 0, __ATOMIC_RELAXED);
    return EM_OK;
}

static int em_cluster_private;

int
em_cluster_init_private(void)
{
    em_state_sizes_t sz = {
        .limits = 256, .users = 256, .rooms = 256, .sessions = 64, .log_bytes = 65536, .ips = 64,
        .store = 256
    };

    if (em_state_create(&em_cluster, 1, &sz) != EM_OK) {
        return EM_ERROR;
    }
    em_loop.state = &em_cluster;
    em_loop.stats = em_state_wstats(&em_cluster, 0);
    em_cluster_private = 1;
    return EM_OK;
}

static int64_t
em_cluster_keep(void)
{
    return (int64_t) em_loop.conf->recovery_max_disconnection;
}

static void
em_cluster_tidy_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    em_recovery_expire(&em_cluster, em_state_now(), em_cluster_keep());
}

void
em_cluster_start(void)
{
    em_pchanges_t chg = { 0 };

    /* A worker that died in this slot left its sockets in the shared
     * state: they are gone, and their users may be offline now. */
    em_state_sweep_slot(&em_cluster, em_loop.slot, em_state_now(), em_cluster_keep(), &chg);
    em_cluster_fire(&chg);

    /* Without a broker, the only worker keeps the state tidy. */
    if (!em_bus_active()) {
        struct timeval second = { 1, 0 };
        em_cluster_tidy_ev = event_new(em_loop.base, -1, EV_PERSIST, em_cluster_tidy_cb, NULL);
        if (em_cluster_tidy_ev != NULL) {
            event_add(em_cluster_tidy_ev, &second);
        }
    }
}

void
em_cluster_shutdown(void)
{
    if (em_cluster_tidy_ev != NULL) {
        event_free(em_cluster_tidy_ev);
        em_cluster_tidy_ev = NULL;
    }
    em_loop.state = NULL;
    em_state_unmap(&em_cluster);
    if (em_cluster_private) {
        close(em_cluster.fd);
        em_cluster.fd = -1;
        em_cluster_private = 0;
    }
}

void
em_cluster_receive(const em_brk_cmd_msg_t *m)
{
    const char  *z = memchr(m->data.data, '\0', m->data.len);
    em_pchange_t c = { EM_PCHG_OFFLINE, NULL, NULL, NULL };
    size_t        n;

    if (m->kind != EM_BRK_KIND_PRESENCE_OFFLINE || z == NULL) {
        return;
    }
    n = (size_t) (z - m->data.data);
    c.nsp = strndup(m->data.data, n);
    c.user = strndup(z + 1, m->data.len - n - 1);
    if (c.nsp != NULL && c.user != NULL) {
        em_sio_app.presence(&c);
    }
    free(c.nsp);
    free(c.user);
}

void
em_cluster_fire(em_pchanges_t *chg)
{
    if (chg->lost > 0) {
        em_log(EM_LOG_ERR, 0, "out of memory: %zu presence changes were not reported to the scripts",
               chg->lost);
    }
    for (size_t i = 0; i < chg->n; i++) {
        em_sio_app.presence(&chg->v[i]);
    }
    em_pchanges_free(chg);
}

static em_str_t
em_cluster_nsp(const em_sio_socket_t *s)
{
    return (em_str_t) { s->nsp->name, s->nsp->name_len };
}

static em_str_t
em_cluster_user(const em_sio_socket_t *s)
{
    return s->user ? (em_str_t) { s->user, strlen(s->user) } : (em_str_t) { "", 0 };
}

em_str_t
em_cluster_socket_ip(const em_sio_socket_t *s)
{
    em_eio_session_t *es = em_sio_socket_session(s);
    const char       *addr = es != NULL ? em_eio_session_address(es) : "";

    return (em_str_t) { addr, strlen(addr) };
}

em_str_t
em_cluster_socket_ua(const em_sio_socket_t *s)
{
    em_eio_session_t *es = em_sio_socket_session(s);
    em_http_req_t     req;
    size_t            len = 0;
    const char       *head = es != NULL ? em_eio_session_head(es, &len) : NULL;

    if (head == NULL) {
        return (em_str_t) { "", 0 };
    }
    if (em_http_parse(head, len, &req) != EM_OK) {
        return (em_str_t) { "", 0 };
    }
    for (size_t i = 0; i < req.nheaders; i++) {
        if (em_str_caseeq(req.headers[i].name, "user-agent")) {
            return req.headers[i].value;    /* points into es->handshake */
        }
    }
    return (em_str_t) { "", 0 };
}

int
em_cluster_connect_limit(em_sio_socket_t *s, int64_t *retry_after)
{
    const em_conf_limit_t *l = &em_loop.conf->nsps[s->nsp->conf_index].connect_limit;
    em_str_t               ip = em_cluster_socket_ip(s);
    em_limit_result_t      r;
    char                   key[256];
    int                    n;

    if (l->max == 0 || ip.len == 0) {
        return EM_OK;
    }
    n = snprintf(key, sizeof(key), "connect\n%zu\n%.*s", s->nsp->conf_index, (int) ip.len,
                 ip.data);
    if (n < 0 || (size_t) n >= sizeof(key)) {
        return EM_OK;
    }
    em_limit_hit(&em_cluster, key, (size_t) n, l->max, l->window, l->block, em_state_now(), &r);
    *retry_after = r.retry_after;
    return r.allowed ? EM_OK : EM_DECLINED;
}

/* ---- sessions ---- */

typedef struct {
    char    *buf;
    size_t   len;
    uint16_t n;
    int      overflow;
} em_rooms_blob_t;

static void
em_cluster_blob_add(const char *room, size_t len, void *arg)
{
    em_rooms_blob_t *b = arg;
    uint16_t         l = (uint16_t) len;

    if (b->overflow || len > UINT16_MAX || b->len + 2 + len > EM_ST_ROOMS_MAX) {
        b->overflow = 1;
        return;
    }
    memcpy(b->buf + b->len, &l, 2);
    memcpy(b->buf + b->len + 2, room, len);
    b->len += 2 + len;
    b->n++;
}

static void
em_cluster_session_rooms(em_sio_socket_t *s)
{
    char            buf[EM_ST_ROOMS_MAX + 1];
    em_rooms_blob_t b = { buf, 0, 0, 0 };
    int64_t         now;

    if (s->pid == NULL && s->token == NULL) {
        return;
    }
    em_adapter_socket_rooms(s, em_cluster_blob_add, &b);
    now = em_state_now();
    if (s->pid != NULL) {
        em_recovery_set_rooms(&em_cluster, (em_str_t) { s->pid, strlen(s->pid) }, buf,
                              b.overflow ? EM_ST_ROOMS_MAX + 1 : b.len, b.n, now);
    }
    if (s->token != NULL) {
        em_recovery_set_rooms(&em_cluster, (em_str_t) { s->token, strlen(s->token) }, buf,
                              b.overflow ? EM_ST_ROOMS_MAX + 1 : b.len, b.n, now);
    }
}

/* A new session for the socket under key (its pid or a token). */
static int
em_cluster_session_new(em_sio_socket_t *s, const char *key, int kind)
{
    em_st_session_t *e = calloc(1, sizeof(*e));
    em_rooms_blob_t  b;
    int64_t          now = em_state_now();
    int              rc;

    if (e == NULL) {
        return EM_ERROR;
    }
    e->created = e->last_activity = now;
    e->owner_pid = (uint32_t) getpid();
    e->owner_slot = (uint16_t) em_loop.slot;
    e->kind = (uint8_t) kind;
    memcpy(e->sid, s->id, EM_SID_LEN);
    e->nsp_len = (uint16_t) (s->nsp->name_len < EM_ST_NAME_MAX ? s->nsp->name_len : 0);
    memcpy(e->nsp, s->nsp->name, e->nsp_len);
    em_str_t user = em_cluster_user(s);
    e->user_len = (uint16_t) (user.len < EM_ST_NAME_MAX ? user.len : 0);
    memcpy(e->user, user.data, e->user_len);
    b = (em_rooms_blob_t) { e->rooms, 0, 0, 0 };
    em_adapter_socket_rooms(s, em_cluster_blob_add, &b);
    e->rooms_len = (uint16_t) b.len;
    e->nrooms = b.n;
    e->overflow = (uint8_t) b.overflow;
    rc = em_recovery_save(&em_cluster, (em_str_t) { key, strlen(key) }, e, now);
    free(e);
    return rc;
}

/* Decimal text of an offset, the form the client sends back. */
static uint64_t
em_cluster_offset_parse(const char *s)
{
    uint64_t v = 0;

    if (s == NULL || *s == '\0' || strlen(s) > 19) {
        return 0;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return 0;
        }
        v = v * 10 + (uint64_t) (*s - '0');
    }
    return v;
}

/* The rooms of a stored session as a NUL-separated list plus the socket's
 * own id first (for matching logged packets). */
static int
em_cluster_session_list(const em_st_session_t *e, char **list, size_t *n, em_str_t **strs)
{
    size_t               cnt = (size_t) e->nrooms + 1, off = 0;
    const unsigned char *p = (const unsigned char *) e->rooms, *end = p + e->rooms_len;
    char                *l = malloc((size_t) e->rooms_len + EM_SID_LEN + cnt + 1);
    em_str_t            *v = calloc(cnt, sizeof(*v));

    if (l == NULL || v == NULL) {
        free(l);
        free(v);
        return EM_ERROR;
    }
    memcpy(l, e->sid, EM_SID_LEN);
    l[EM_SID_LEN] = '\0';
    v[0] = (em_str_t) { l, EM_SID_LEN };
    off = EM_SID_LEN + 1;
    for (size_t i = 1; i < cnt; i++) {
        uint16_t rl;
        if (end - p < 2) {
            cnt = i;
            break;
        }
        memcpy(&rl, p, 2);
        p += 2;
        if (end - p < rl) {
            cnt = i;
            break;
        }
        memcpy(l + off, p, rl);
        l[off + rl] = '\0';
        v[i] = (em_str_t) { l + off, rl };
        off += (size_t) rl + 1;
        p += rl;
    }
    *list = l;
    *n = cnt;
    *strs = v;
    return EM_OK;
}

int
em_cluster_recover(em_sio_socket_t *s, json_t *auth, char **buf, em_str_t **rooms, size_t *nrooms,
                   uint64_t *offset)
{
    const char      *pid, *offs;
    em_st_session_t *e;
    int              rc = EM_DECLINED;

    *buf = NULL;
    *rooms = NULL;
    *nrooms = 0;
    *offset = 0;
    if (!em_loop.conf->recovery || auth == NULL
        || (pid = json_string_value(json_object_get(auth, "pid"))) == NULL
        || (offs = json_string_value(json_object_get(auth, "offset"))) == NULL
        || (*offset = em_cluster_offset_parse(offs)) == 0 || strlen(pid) >= 64) {
        return EM_DECLINED;
    }
    e = malloc(sizeof(*e));
    if (e == NULL) {
        return EM_DECLINED;
    }
    if (em_recovery_take(&em_cluster, (em_str_t) { pid, strlen(pid) }, EM_ST_SESSION_PID, em_loop.slot,
                         (uint32_t) getpid(), em_state_now(), e) != EM_OK
        || e->overflow || e->nsp_len != s->nsp->name_len
        || memcmp(e->nsp, s->nsp->name, e->nsp_len) != 0
        || em_nsp_socket_find(s->nsp, e->sid) != NULL
        || em_cluster_session_list(e, buf, nrooms, rooms) != EM_OK
        || (s->pid = strdup(pid)) == NULL) {
        free(*buf);
        free(*rooms);
        *buf = NULL;
        *rooms = NULL;
        *nrooms = 0;
        em_stat_add(em_loop.stats->recovery_misses, 1);
        goto done;
    }
    rc = EM_OK;
done:
    free(e);
    return rc;
}

int
em_cluster_recover_replay(em_sio_socket_t *s, const em_str_t *rooms, size_t nrooms, uint64_t offset,
                          em_plog_pkt_t **missed)
{
    *missed = NULL;
    if (em_plog_replay_upto(&em_cluster, em_cluster_nsp(s), rooms, nrooms, offset, 0, missed,
                            &s->replayed) != EM_OK) {
        s->replayed = 0;
        free(s->pid);
        s->pid = NULL;
        em_stat_add(em_loop.stats->recovery_misses, 1);
        return EM_DECLINED;
    }
    em_stat_add(em_loop.stats->recovery_hits, 1);
    memcpy(s->id, rooms[0].data, EM_SID_LEN);
    s->id[EM_SID_LEN] = '\0';
    s->recovered = 1;
    return EM_OK;
}

void
em_cluster_socket_connected(em_sio_socket_t *s)
{
    em_st_event_t ev;
    em_pchanges_t chg = { 0 };

    s->connected_at = em_state_now();
    em_presence_connect(&em_cluster, em_loop.slot, em_cluster_nsp(s), (em_str_t) { "", 0 },
                        (em_str_t) { NULL, 0 }, s->connected_at, &chg);
    s->counted = 1;
    em_pchanges_free(&chg);
    if (em_loop.conf->recovery) {
        if (s->pid == NULL) {
            char pid[EM_SID_LEN + 1];
            em_sid_random(pid);
            s->pid = strdup(pid);
        }
        if (s->pid != NULL && em_cluster_session_new(s, s->pid, EM_ST_SESSION_PID) != EM_OK) {
            em_log(EM_LOG_WARN, 0, "the recovery session table is full: socket %s cannot be recovered",
                   s->id);
        }
    }
    em_monitor_event_fill(&ev, "connect", (em_str_t) { s->id, EM_SID_LEN }, em_cluster_nsp(s),
                          em_cluster_user(s), em_cluster_socket_ip(s), em_cluster_socket_ua(s),
                          (em_str_t) { s->recovered ? "{\"recovered\":true}" : "{}",
                                       s->recovered ? 18 : 2 });
    em_monitor_connect(&em_cluster, em_loop.slot, &ev);
}

void
em_cluster_connect_failed(em_sio_socket_t *s, const char *type, const char *message)
{
    em_st_event_t ev;
    json_t       *d = json_pack("{s:s}", "message", message ? message : "");
    char         *text = d ? json_dumps(d, JSON_COMPACT) : NULL;

    if (strcmp(type, "rate_limit") == 0) {
        em_stat_add(em_loop.stats->refusals_rate, 1);
    } else if (strcmp(type, "auth") == 0 || strcmp(type, "auth_failure") == 0) {
        em_stat_add(em_loop.stats->refusals_auth, 1);
    }
    em_monitor_event_fill(&ev, type, (em_str_t) { s->id, EM_SID_LEN }, em_cluster_nsp(s),
                          em_cluster_user(s), em_cluster_socket_ip(s), em_cluster_socket_ua(s),
                          (em_str_t) { text, text ? strlen(text) : 0 });
    em_monitor_failed(&em_cluster, &ev);
    free(text);
    json_decref(d);
}

/* Reasons after which Socket.IO keeps the session for recovery. */
static int
em_cluster_recoverable(const char *reason)
{
    static const char *const ok[] = {
        "transport error", "transport close", "forced close", "ping timeout",
        "server shutting down", "forced server close", NULL
    };

    for (size_t i = 0; reason != NULL && ok[i] != NULL; i++) {
        if (strcmp(reason, ok[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

void
em_cluster_socket_gone(em_sio_socket_t *s, const char *reason)
{
    em_pchanges_t chg = { 0 };
    int64_t       now = em_state_now();

    if (s->user != NULL) {
        em_presence_disconnect(&em_cluster, em_loop.slot, em_cluster_nsp(s), em_cluster_user(s), now,
                               &chg);
    }
    if (s->counted) {
        em_presence_disconnect(&em_cluster, em_loop.slot, em_cluster_nsp(s), (em_str_t) { "", 0 },
                               now, NULL);
        s->counted = 0;
        em_st_event_t ev;
        char          details[160];
        int           n = snprintf(details, sizeof(details), "{\"reason\":\"%s\"}",
                                   reason ? reason : "");
        em_monitor_event_fill(&ev, "disconnect", (em_str_t) { s->id, EM_SID_LEN },
                              em_cluster_nsp(s), em_cluster_user(s), em_cluster_socket_ip(s),
                              em_cluster_socket_ua(s), (em_str_t) { details, (size_t) n });
        em_monitor_disconnect(&em_cluster, em_loop.slot, now - s->connected_at, &ev);
    }
    if (s->pid != NULL) {
        em_str_t key = { s->pid, strlen(s->pid) };
        if (reason != NULL && em_cluster_recoverable(reason)) {
            em_recovery_release(&em_cluster, key, now, em_cluster_keep());
        } else {
            em_recovery_drop(&em_cluster, key);
        }
    }
    if (s->token != NULL) {
        em_recovery_release(&em_cluster, (em_str_t) { s->token, strlen(s->token) }, now,
                            em_cluster_keep());
    }
    em_cluster_fire(&chg);
}

void
em_cluster_room_joined(em_sio_socket_t *s, em_str_t room)
{
    em_pchanges_t chg = { 0 };

    em_room_add(&em_cluster, em_loop.slot, em_cluster_nsp(s), room, em_cluster_user(s), &chg);
    em_cluster_session_rooms(s);
    em_cluster_fire(&chg);
}

void
em_cluster_room_left(em_sio_socket_t *s, em_str_t room)
{
    em_pchanges_t chg = { 0 };

    em_room_del(&em_cluster, em_loop.slot, em_cluster_nsp(s), room, em_cluster_user(s), &chg);
    if (em_sio_socket_live(s)) {
        em_cluster_session_rooms(s);
    }
    em_cluster_fire(&chg);
}

/* Move the socket's rooms from one user to another in the shared counts. */
typedef struct {
    em_sio_socket_t *s;
    em_str_t         from, to;
    em_pchanges_t   *chg;
} em_cluster_move_t;

static void
em_cluster_move_room(const char *room, size_t len, void *arg)
{
    em_cluster_move_t *m = arg;
    em_str_t           r = { room, len };

    em_room_del(&em_cluster, em_loop.slot, em_cluster_nsp(m->s), r, m->from, m->chg);
    em_room_add(&em_cluster, em_loop.slot, em_cluster_nsp(m->s), r, m->to, m->chg);
}

int
em_cluster_set_user(em_sio_socket_t *s, em_str_t user, em_str_t info)
{
    em_pchanges_t chg = { 0 };
    int64_t       now = em_state_now();
    char         *copy = NULL;
    int           rc = EM_OK;

    if (!em_sio_socket_live(s) || user.len >= EM_ST_NAME_MAX
        || (user.len && memchr(user.data, '\0', user.len) != NULL)) {
        return EM_ERROR;        /* a socket being removed takes no new identity */
    }
    if (s->user != NULL && strlen(s->user) == user.len && memcmp(s->user, user.data, user.len) == 0) {
        if (info.data != NULL) {
            /* Same user: only the info changes (no new connection). */
            em_presence_connect(&em_cluster, em_loop.slot, em_cluster_nsp(s), user, info, now, NULL);
            em_presence_disconnect(&em_cluster, em_loop.slot, em_cluster_nsp(s), user, now, NULL);
        }
        return EM_OK;
    }
    if (user.len > 0) {
        /* The new identity first: if it cannot be recorded nothing moves. */
        if ((copy = strndup(user.data, user.len)) == NULL
            || em_presence_connect(&em_cluster, em_loop.slot, em_cluster_nsp(s), user, info, now,
                                   &chg) != EM_OK) {
            free(copy);
            em_cluster_fire(&chg);
            return EM_ERROR;
        }
    }
    em_cluster_move_t m = { s, em_cluster_user(s), user, &chg };
    em_adapter_socket_rooms(s, em_cluster_move_room, &m);
    if (s->user != NULL) {
        em_presence_disconnect(&em_cluster, em_loop.slot, em_cluster_nsp(s), em_cluster_user(s), now,
                               &chg);
        free(s->user);
    }
    s->user = copy;
    em_cluster_fire(&chg);
    return rc;
}

const char *
em_cluster_token(em_sio_socket_t *s)
{
    unsigned char raw[24];
    char          tok[2 * sizeof(raw) + 1];

    if (s->token != NULL) {
        return s->token;
    }
    randombytes_buf(raw, sizeof(raw));
    for (size_t i = 0; i < sizeof(raw); i++) {
        snprintf(tok + 2 * i, 3, "%02x", raw[i]);
    }
    s->token = strdup(tok);
    if (s->token == NULL || em_cluster_session_new(s, s->token, EM_ST_SESSION_TOKEN) != EM_OK) {
        free(s->token);
        s->token = NULL;
        return NULL;
    }
    return s->token;
}

int
em_cluster_session_room(const em_st_session_t *e, size_t *off, em_str_t *room)
{
    uint16_t rl;

    if (*off > e->rooms_len || e->rooms_len - *off < 2) {
        return 0;
    }
    memcpy(&rl, e->rooms + *off, 2);
    if (e->rooms_len - *off - 2 < rl) {
        return 0;
    }
    *room = (em_str_t) { e->rooms + *off + 2, rl };
    *off += 2 + (size_t) rl;
    return 1;
}

/* Add or remove the bus keys of a stored session's rooms. */
static void
em_cluster_session_keys(const em_sio_socket_t *s, const em_st_session_t *e, int add)
{
    size_t   off = 0;
    em_str_t room;

    while (em_cluster_session_room(e, &off, &room)) {
        if (add) {
            em_bus_key_add(s->nsp->name, s->nsp->name_len, room.data, room.len);
        } else {
            em_bus_key_del(s->nsp->name, s->nsp->name_len, room.data, room.len);
        }
    }
}

void
em_cluster_redeem_done(em_sio_socket_t *s, const em_st_session_t *e)
{
    em_cluster_session_keys(s, e, 0);
}

int
em_cluster_redeem(em_sio_socket_t *s, em_str_t token, em_st_session_t *out, em_plog_pkt_t **queued,
                  int *lost)
{
    em_str_t *strs = NULL;
    char     *list = NULL;
    size_t    n = 0;

    *queued = NULL;
    *lost = 0;
    if (token.len == 0 || token.len >= 64
        || em_recovery_take(&em_cluster, token, EM_ST_SESSION_TOKEN, em_loop.slot, (uint32_t) getpid(),
                            em_state_now(), out) != EM_OK) {
        return EM_DECLINED;
    }
    if (out->nsp_len != s->nsp->name_len || memcmp(out->nsp, s->nsp->name, out->nsp_len) != 0) {
        /* Not this namespace's: give it back as it was (not held). */
        em_recovery_release(&em_cluster, token, em_state_now(), em_cluster_keep());
        return EM_DECLINED;
    }
    /* Events sent to the session's rooms (or its old socket) since it went;
     * on the bus first, so that none falls between the log and the joins. */
    em_cluster_session_keys(s, out, 1);
    if (em_cluster_session_list(out, &list, &n, &strs) == EM_OK) {
        if (out->offset != 0
            && em_plog_replay_upto(&em_cluster, em_cluster_nsp(s), strs, n, out->offset, 1, queued,
                                   &s->replayed) != EM_OK) {
            *lost = 1;
        }
        free(list);
        free(strs);
    }
    /* The token now belongs to this socket. */
    if (s->token != NULL && (strlen(s->token) != token.len
                             || memcmp(s->token, token.data, token.len) != 0)) {
        em_recovery_drop(&em_cluster, (em_str_t) { s->token, strlen(s->token) });
    }
    free(s->token);
    s->token = strndup(token.data, token.len);
    return EM_OK;
}

int
em_cluster_event_pkt(em_pkt_t *pkt, em_str_t nsp, json_t *args, em_buf_t **atts, size_t natt,
                     const em_bcast_t *b, const em_sio_socket_t *self)
{
    char      tail[32];
    uint64_t  offset;
    em_str_t  one, *except = NULL, atts_s[EM_CONF_MAX_ATTACHMENTS];
    size_t    nexcept = 0;
    em_buf_t *text;
    int       n;

    /* Encode first, with no lock held: only the offset's few bytes are
     * added under the lock of the log, whose order is the offsets'. */
    if (em_sio_pkt_build(pkt, EM_SIO_EVENT, nsp, EM_SIO_NO_ID, args, atts, natt) != EM_OK) {
        return EM_ERROR;
    }
    if (!em_loop.conf->recovery) {
        return EM_OK;
    }
    if (pkt->natt > EM_CONF_MAX_ATTACHMENTS || pkt->text->len < pkt->data_off + 2
        || pkt->text->data[pkt->text->len - 1] != ']') {
        em_log(EM_LOG_ERR, 0, "an event for %.*s cannot be logged for recovery", (int) nsp.len,
               nsp.data);
        return EM_OK;
    }
    if (b != NULL && (b->nexcept > 0 || b->skip != NULL)) {
        except = calloc(b->nexcept + 1, sizeof(*except));
        if (except == NULL) {
            em_log(EM_LOG_ERR, 0, "out of memory: an event for %.*s is not logged for recovery",
                   (int) nsp.len, nsp.data);
            return EM_OK;
        }
        for (size_t i = 0; i < b->nexcept; i++) {
            except[nexcept++] = b->except[i];
        }
        if (b->skip != NULL) {
            except[nexcept++] = (em_str_t) { b->skip->id, EM_SID_LEN };
        }
    }
    for (size_t i = 0; i < pkt->natt; i++) {
        atts_s[i] = (em_str_t) { pkt->att[i]->data, pkt->att[i]->len };
    }
    one = self ? (em_str_t) { self->id, EM_SID_LEN } : (em_str_t) { "", 0 };

    offset = em_plog_begin(&em_cluster);        /* locks the log */
    n = snprintf(tail, sizeof(tail), ",\"%llu\"]", (unsigned long long) offset);
    text = em_buf_new(pkt->text->len - 1 + (size_t) n);
    if (text == NULL) {
        em_plog_abort(&em_cluster);
        free(except);
        em_log(EM_LOG_ERR, 0, "out of memory: an event for %.*s is not logged for recovery",
               (int) nsp.len, nsp.data);
        return EM_OK;
    }
    memcpy(text->data, pkt->text->data, pkt->text->len - 1);
    memcpy(text->data + pkt->text->len - 1, tail, (size_t) n);
    text->len = pkt->text->len - 1 + (size_t) n;
    em_buf_unref(pkt->text);
    pkt->text = text;
    pkt->offset = offset;
    em_plog_commit(&em_cluster, offset, nsp, b ? b->rooms : &one, b ? b->nrooms : 1, except,
                   nexcept, (em_str_t) { text->data + pkt->data_off, text->len - pkt->data_off },
                   atts_s, pkt->natt, em_state_now());      /* unlocks */
    free(except);
    return EM_OK;
}
