/*
 * em_broker.c - the broker process: relays each record a worker publishes on
 * its "up" ring to the "down" ring of every other worker, in order, exactly
 * once. It reads a record only when every destination ring has room for it,
 * so a slow worker holds the others back (counted as "full" on its ring)
 * instead of losing records. It keeps no state outside the shared segment:
 * a record is consumed from its up ring only once every down ring has it,
 * and the fan-out in progress is noted in the segment's header
 * (em_shm_fan_t), so a broker killed at any point and restarted carries on
 * with what is left, neither losing a record nor giving one twice.
 */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "em_brkrec.h"
#include "em_broker.h"
#include "em_broker_presence.h"
#include "em_broker_redis.h"
#include "em_broker_store.h"
#include "em_log.h"
#include "em_proc.h"

#define EM_BROKER_BATCH 256       /* records from one worker per pass */

static struct {
    em_shm_t          *shm;
    struct event_base *base;
    struct event      *bell_ev;
    struct event      *again_ev;
    int                bell;
    const int         *worker_bells;
    em_ring_t          up[EM_MAX_WORKERS];
    em_ring_t          down[EM_MAX_WORKERS];
    unsigned char     *rec;
    size_t             rec_cap;
    em_state_t        *state;
    const em_conf_t   *conf;
    int64_t            keep;
    int                redis;         /* this host's broadcasts go to Redis too */
    uint64_t           remote_dropped; /* broadcasts from Redis a full ring could not take */
    /* A fan-out a killed broker left: resume it when that record is met. */
    int                resume;
    unsigned           resume_origin;
    uint64_t           resume_pos;
    unsigned           resume_from;
} em_b;

static em_shm_fan_t *
em_broker_fan(void)
{
    return &((em_shm_hdr_t *) em_b.shm->base)->fan;
}

#define EM_FAN_SET(f, field, v) __atomic_store_n(&(f)->field, (v), __ATOMIC_RELEASE)
#define EM_FAN_GET(f, field)    __atomic_load_n(&(f)->field, __ATOMIC_ACQUIRE)

/* The instances of one configured namespace with sockets on this host. */
typedef struct {
    const em_conf_t *conf;
    size_t           index;
    em_str_t        *names;     /* malloc'd copies */
    size_t           n;
} em_broker_inst_t;

#define EM_BROKER_INSTANCES_MAX 4096

static void
em_broker_inst_cb(em_str_t nsp, uint32_t n, void *arg)
{
    em_broker_inst_t *in = arg;
    size_t            idx;
    char             *copy;

    (void) n;
    if (nsp.len > 0 && nsp.data[0] == '/' && em_conf_nsp_index(in->conf, nsp.data, nsp.len, &idx) == EM_OK
        && idx == in->index && (copy = malloc(nsp.len)) != NULL) {
        memcpy(copy, nsp.data, nsp.len);
        in->names[in->n++] = (em_str_t) { copy, nsp.len };
    }
}

/*
 * A broadcast of this host's for Redis. One to every instance of a
 * parameterised namespace goes as Node's parent namespace sends it: once
 * on the channel of each instance that has sockets here.
 */
static void
em_broker_publish_remote(const void *rec, size_t len)
{
    em_brk_view_t    v;
    em_broker_inst_t in = { em_b.conf, 0, NULL, 0 };

    if (em_brkrec_decode(rec, len, &v) != EM_OK) {
        return;
    }
    if (!(v.flags & EM_BRK_F_CONF)) {
        em_broker_redis_publish(&v, (em_str_t) { NULL, 0 });
        return;
    }
    in.index = v.conf_index;
    if (em_b.state == NULL || v.conf_index >= em_b.conf->nnsps || !em_b.conf->nsps[v.conf_index].dynamic
        || (in.names = calloc(EM_BROKER_INSTANCES_MAX, sizeof(em_str_t))) == NULL) {
        return;
    }
    em_nsp_each(em_b.state, EM_BROKER_INSTANCES_MAX, em_broker_inst_cb, &in);
    for (size_t i = 0; i < in.n; i++) {
        em_broker_redis_publish(&v, in.names[i]);
        free((void *) in.names[i].data);
    }
    free(in.names);
}

/* What a broker before us left in the header: where to resume. */
static void
em_broker_resume_point(void)
{
    em_shm_fan_t *f = em_broker_fan();
    unsigned      n = em_b.shm->nworkers, origin, done, cur;

    em_b.resume = 0;
    if (!EM_FAN_GET(f, active) || (origin = EM_FAN_GET(f, origin)) >= n) {
        return;
    }
    done = EM_FAN_GET(f, done);
    cur = EM_FAN_GET(f, cur);
    if (cur != EM_SHM_FAN_NONE && cur >= done && cur < n) {
        done = em_ring_tail(&em_b.down[cur]) != EM_FAN_GET(f, cur_tail) ? cur + 1 : cur;
    }
    em_b.resume = 1;
    em_b.resume_origin = origin;
    em_b.resume_pos = EM_FAN_GET(f, up_head);
    em_b.resume_from = done;
}

/* A slot no worker owns (free until a reload runs new workers there): no
 * one reads its down ring, so nothing goes there and nothing waits on it. */
static int
em_broker_unowned(unsigned j)
{
    return em_b.state != NULL && em_state_slot_used(em_b.state, j) == EM_SLOT_FREE;
}

/* Relay the record at pos on worker i's up ring (copied into em_b.rec). */
static void
em_broker_fanout(unsigned i, uint16_t type, size_t len, uint64_t pos)
{
    em_shm_fan_t *f = em_broker_fan();
    unsigned      n = em_b.shm->nworkers, from = 0;
    unsigned      target = type == EM_BRK_REC_CMD ? em_brkcmd_target(em_b.rec, len) : EM_BRK_ALL;

    if (em_b.resume && em_b.resume_origin == i) {
        em_b.resume = 0;
        if (em_b.resume_pos == pos) {
            from = em_b.resume_from;
            em_log(EM_LOG_INFO, 0, "resuming the relay of a record from worker %u at worker %u",
                   i + 1, from + 1);
        }
    }
    if (from == 0) {
        EM_FAN_SET(f, active, 0);
        EM_FAN_SET(f, origin, i);
        EM_FAN_SET(f, up_head, pos);
        EM_FAN_SET(f, done, 0);
        EM_FAN_SET(f, cur, EM_SHM_FAN_NONE);
        EM_FAN_SET(f, active, 1);
    }
    for (unsigned j = from; j < n; j++) {
        if (j == i || em_broker_unowned(j)
            || (type == EM_BRK_REC_BCAST && !em_brk_wants(em_b.shm, j, em_b.rec, len))
            || (type == EM_BRK_REC_CMD && target != EM_BRK_ALL && target != j)) {
            continue;
        }
        EM_FAN_SET(f, cur, EM_SHM_FAN_NONE);
        EM_FAN_SET(f, cur_tail, em_ring_tail(&em_b.down[j]));
        EM_FAN_SET(f, cur, j);
        if (em_ring_write(&em_b.down[j], type, em_b.rec, len) != EM_OK) {
            em_log(EM_LOG_ERR, 0, "ring to worker %u refused a record it had room for", j + 1);
        }
        EM_FAN_SET(f, done, j + 1);
        if (em_ring_notify_needed(&em_b.down[j])) {
            em_ring_bell_ring(em_b.worker_bells[j]);
        }
    }
    em_ring_consume(&em_b.up[i], pos, len);
    EM_FAN_SET(f, active, 0);
    if (em_b.redis && type == EM_BRK_REC_BCAST) {
        em_broker_publish_remote(em_b.rec, len);
    } else if (em_b.redis && type == EM_BRK_REC_CMD && target == EM_BRK_BROKER) {
        em_broker_redis_command(em_b.rec, len);
    }
}

/* The record in em_b.rec onto worker j's down ring, if it has room now
 * (what comes from Redis waits for no one): EM_OK, or EM_AGAIN. */
static int
em_broker_put(unsigned j, uint16_t type, size_t len)
{
    em_ring_stats_t st;

    em_ring_stats(&em_b.down[j], &st);
    if (st.capacity - st.used < sizeof(em_ring_rec_t) + ((len + 7) & ~(size_t) 7)
        || em_ring_write(&em_b.down[j], type, em_b.rec, len) != EM_OK) {
        return EM_AGAIN;
    }
    if (em_ring_notify_needed(&em_b.down[j])) {
        em_ring_bell_ring(em_b.worker_bells[j]);
    }
    return EM_OK;
}

/* A command for worker slot j (or, with j -1, the first serving worker):
 * kind, with a NUL b as its data. */
static int
em_broker_tell(int to, uint32_t kind, em_str_t a, em_str_t b, const char *what)
{
    em_brk_cmd_msg_t m;
    size_t           size, out;
    char            *data;
    unsigned         j = to >= 0 ? (unsigned) to : 0;
    int              rc = EM_OK;

    for (; to < 0 && j < em_b.shm->nworkers; j++) {
        if (em_b.state != NULL && em_state_slot_used(em_b.state, j) == EM_SLOT_SERVING) {
            break;
        }
    }
    if (j >= em_b.shm->nworkers || a.len > EM_BRK_NAME_MAX || (data = malloc(a.len + 1 + b.len)) == NULL) {
        return EM_ERROR;
    }
    memcpy(data, a.data, a.len);
    data[a.len] = '\0';
    memcpy(data + a.len + 1, b.data, b.len);
    memset(&m, 0, sizeof(m));
    m.kind = kind;
    m.origin = EM_BRK_ORIGIN_REMOTE;
    m.target = (uint16_t) j;
    m.data = (em_str_t) { data, a.len + 1 + b.len };
    if (em_brkcmd_size(&m, &size) != EM_OK || size > em_b.rec_cap
        || em_brkcmd_encode(&m, em_b.rec, em_b.rec_cap, &out) != EM_OK
        || em_broker_put(j, EM_BRK_REC_CMD, out) != EM_OK) {
        em_log(EM_LOG_WARN, 0, "%s could not go to worker %u: dropped", what, j + 1);
        rc = EM_ERROR;
    }
    free(data);
    return rc;
}

/* A request of the adapter from Redis: to the first serving worker, which
 * runs it on every worker's sockets and answers. */
static void
em_broker_request(em_str_t nsp, const char *msg, size_t len)
{
    (void) em_broker_tell(-1, EM_BRK_KIND_REDIS_REQUEST, nsp, (em_str_t) { msg, len },
                          "a request from Redis");
}

/* A user offline on every host, for this host's scripts (one worker's). */
static void
em_broker_presence_report(int what, em_str_t nsp, em_str_t user)
{
    (void) what;
    (void) em_broker_tell(-1, EM_BRK_KIND_PRESENCE_OFFLINE, nsp, user, "a presence change");
}

/* The answers to a worker's server-side event with an ack: to that worker. */
static void
em_broker_answers(unsigned slot, em_str_t id, const char *json, size_t len)
{
    static const char too_big[] = "{\"err\":\"the answers are too large for the broker's records\","
                                  "\"responses\":[]}";

    if (em_broker_tell((int) slot, EM_BRK_KIND_REDIS_SERVER_ANSWERS, id, (em_str_t) { json, len },
                       "the answers to a server-side event") != EM_OK && len > sizeof(too_big)) {
        (void) em_broker_tell((int) slot, EM_BRK_KIND_REDIS_SERVER_ANSWERS, id,
                              (em_str_t) { too_big, sizeof(too_big) - 1 }, "its error");
    }
}

/*
 * A broadcast from another host (Redis): to each worker that has its
 * namespace or rooms, now or not at all. It is not on any up ring, so no
 * fan-out notes it: a broker killed in the middle leaves it with some of
 * them. A worker whose ring is full misses it (counted and logged), as a
 * Node server that is behind misses Redis messages.
 */
static void
em_broker_remote(const em_rmsg_t *r)
{
    em_brk_msg_t m = {
        .origin = EM_BRK_ORIGIN_REMOTE, .flags = r->vol ? EM_BRK_F_VOLATILE : 0, .nsp = r->nsp,
        .rooms = r->rooms, .nrooms = r->nrooms, .except = r->except, .nexcept = r->nexcept,
        .data = { r->data, r->data_len }, .att = r->att, .natt = r->natt,
    };
    size_t       size, len;

    if (em_brkrec_size(&m, &size, NULL) != EM_OK || size > em_b.rec_cap
        || em_brkrec_encode(&m, em_b.rec, em_b.rec_cap, &len) != EM_OK) {
        em_log(EM_LOG_WARN, 0, "a broadcast from Redis is too large for the rings: dropped");
        return;
    }
    for (unsigned j = 0; j < em_b.shm->nworkers; j++) {
        if (em_broker_unowned(j) || !em_brk_wants(em_b.shm, j, em_b.rec, len)) {
            continue;
        }
        if (em_broker_put(j, EM_BRK_REC_BCAST, len) != EM_OK) {
            em_log(EM_LOG_WARN, 0, "the ring to worker %u is full: a broadcast from Redis "
                   "missed it (%llu so far)", j + 1, (unsigned long long) ++em_b.remote_dropped);
        }
    }
}

/* Room for len more bytes in every down ring but the origin's? */
static int
em_broker_room(unsigned origin, size_t len)
{
    for (unsigned j = 0; j < em_b.shm->nworkers; j++) {
        em_ring_stats_t st;
        if (j == origin || em_broker_unowned(j)) {
            continue;
        }
        em_ring_stats(&em_b.down[j], &st);
        if (st.capacity - st.used < sizeof(em_ring_rec_t) + ((len + 7) & ~(size_t) 7)
            && em_ring_space_wait_prepare(&em_b.down[j], len) == EM_OK) {
            return 0;       /* worker j's reads ring our bell */
        }
    }
    return 1;
}

/* Relay what is waiting; returns 1 if more may be waiting. */
int
em_broker_relay(void)
{
    unsigned n = em_b.shm->nworkers;
    int      blocked = 0, progress = 0;

    for (unsigned i = 0; i < n && !blocked; i++) {
        for (int k = 0; k < EM_BROKER_BATCH; k++) {
            uint16_t type;
            size_t   len;
            uint64_t pos;
            if (em_ring_peek(&em_b.up[i], &type, &len) != EM_OK) {
                break;
            }
            if (!em_broker_room(i, len)) {
                blocked = 1;
                break;
            }
            if (em_ring_copy(&em_b.up[i], &type, em_b.rec, em_b.rec_cap, &len, &pos) != EM_OK) {
                break;
            }
            progress = 1;
            em_broker_fanout(i, type, len, pos);
        }
        if (em_ring_space_notify_needed(&em_b.up[i])) {
            em_ring_bell_ring(em_b.worker_bells[i]);
        }
    }
    if (blocked) {
        return 0;           /* the bell rings when a worker makes room */
    }
    /* Sleep only if every up ring is empty after the waiting flag is set. */
    int more = 0;
    for (unsigned i = 0; i < n; i++) {
        if (em_ring_wait_prepare(&em_b.up[i]) != EM_OK) {
            more = 1;
        }
    }
    return more || progress;
}

static void
em_broker_pass(void)
{
    if (em_broker_relay()) {
        event_active(em_b.again_ev, EV_TIMEOUT, 0);   /* after other events run */
    }
}

static void
em_broker_bell_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    em_ring_bell_drain(em_b.bell);
    for (unsigned i = 0; i < em_b.shm->nworkers; i++) {
        em_ring_wait_done(&em_b.up[i]);
        em_ring_space_wait_done(&em_b.down[i]);
    }
    em_broker_pass();
}

static void
em_broker_again_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    em_broker_pass();
}

static void
em_broker_tidy_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    em_recovery_expire(em_b.state, em_state_now(), em_b.keep);
}

static void
em_broker_signal(evutil_socket_t sig, short what, void *arg)
{
    (void) what;
    (void) arg;
    em_log(EM_LOG_INFO, 0, "signal %d: exiting", (int) sig);
    event_base_loopbreak(em_b.base);
}

int
em_broker_attach(em_shm_t *shm, const int *worker_bells)
{
    em_b.shm = shm;
    em_b.worker_bells = worker_bells;
    for (unsigned i = 0; i < shm->nworkers; i++) {
        if (em_shm_ring(shm, i, EM_SHM_UP, &em_b.up[i]) != EM_OK
            || em_shm_ring(shm, i, EM_SHM_DOWN, &em_b.down[i]) != EM_OK) {
            em_log(EM_LOG_ERR, 0, "cannot attach the rings of worker %u", i + 1);
            return EM_ERROR;
        }
    }
    em_b.rec_cap = em_ring_max_payload(&em_b.up[0]);
    free(em_b.rec);
    if ((em_b.rec = malloc(em_b.rec_cap)) == NULL) {
        em_log(EM_LOG_ERR, errno, "broker initialisation failed");
        return EM_ERROR;
    }
    em_broker_resume_point();
    return EM_OK;
}

/* SIGUSR1: logrotate moved the log file (the master forwards it). */
static void
em_broker_reopen(evutil_socket_t sig, short what, void *arg)
{
    (void) sig;
    (void) what;
    (void) arg;
    em_log_reopen();
}

int
em_broker_run(em_shm_t *shm, int bell, const int *worker_bells, em_state_t *state,
              const em_conf_t *conf)
{
    int64_t        keep = conf->recovery_max_disconnection;
    struct event  *sigterm, *sigint, *tidy;
    struct timeval second = { 1, 0 };

    em_log_set_role("broker");
    em_proc_title_set("emitd: broker");
    (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
    em_b.bell = bell;
    em_b.state = state;
    em_b.conf = conf;
    em_b.keep = keep;
    if (em_broker_attach(shm, worker_bells) != EM_OK) {
        return 1;
    }
    em_b.base = event_base_new();
    if (em_b.base == NULL) {
        em_log(EM_LOG_ERR, errno, "broker initialisation failed");
        return 1;
    }
    em_b.bell_ev = event_new(em_b.base, bell, EV_READ | EV_PERSIST, em_broker_bell_cb, NULL);
    em_b.again_ev = event_new(em_b.base, -1, 0, em_broker_again_cb, NULL);
    sigterm = evsignal_new(em_b.base, SIGTERM, em_broker_signal, NULL);
    sigint = evsignal_new(em_b.base, SIGINT, em_broker_signal, NULL);
    tidy = event_new(em_b.base, -1, EV_PERSIST, em_broker_tidy_cb, NULL);
    if (em_b.bell_ev == NULL || em_b.again_ev == NULL || sigterm == NULL || sigint == NULL
        || tidy == NULL || event_add(em_b.bell_ev, NULL) != 0 || evsignal_add(sigterm, NULL) != 0
        || evsignal_add(sigint, NULL) != 0 || event_add(tidy, &second) != 0) {
        em_log(EM_LOG_ERR, 0, "cannot set up the broker's events");
        return 1;
    }
    if (conf->redis != NULL) {
        em_broker_redis_handlers_t h = { em_broker_remote, em_broker_request,
                                         em_broker_presence_message, em_broker_store_message,
                                         em_broker_presence_up, em_broker_answers };
        if (em_broker_redis_start(em_b.base, conf, em_b.state, &h) != EM_OK) {
            return 1;
        }
        em_broker_store_start(em_b.state, em_broker_redis_uid());
        em_broker_presence_conf_t pc = { em_broker_redis_uid(), conf->redis->max_message,
                                         em_broker_redis_presence_send,
                                         em_broker_presence_report };
        if (em_broker_presence_start(em_b.base, em_b.state, &pc) != EM_OK) {
            em_broker_redis_stop();
            return 1;
        }
        em_b.redis = 1;
    }
    /* Records may have waited while no broker ran. */
    em_broker_pass();
    struct event *sigusr1 = evsignal_new(em_b.base, SIGUSR1, em_broker_reopen, NULL);
    em_log_reopen_ready(sigusr1 != NULL && evsignal_add(sigusr1, NULL) == 0);
    event_base_dispatch(em_b.base);
    if (sigusr1 != NULL) {
        event_free(sigusr1);
    }

    if (em_b.redis) {
        em_broker_presence_stop();
        em_broker_redis_stop();
    }
    event_free(sigterm);
    event_free(sigint);
    event_free(tidy);
    event_free(em_b.bell_ev);
    event_free(em_b.again_ev);
    event_base_free(em_b.base);
    free(em_b.rec);
    em_b.rec = NULL;
    return 0;
}
