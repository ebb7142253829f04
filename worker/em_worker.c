/*
 * em_worker.c - a worker's process cycle: it wires the layers together (each
 * registers its handlers with the one below), reads the channel from the
 * master, hands connections back to it, reports the load, and exits in
 * order on SIGTERM.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "em_bus.h"
#include "em_chan.h"
#include "em_cluster.h"
#include "em_adminui.h"
#include "em_api.h"
#include "em_fetch.h"
#include "em_health.h"
#include "em_http_conn.h"
#include "em_eio_session.h"
#include "em_loop.h"
#include "em_log.h"
#include "em_lua.h"
#include "em_proc.h"
#include "em_socketio.h"
#include "em_tls.h"
#include "em_worker.h"

#define EM_WORKER_LOAD_DELAY_MS 20

/* The process's own state; what the layers share is em_loop. */
static struct {
    int                 chan;
    uint32_t            conns_received;   /* of those placed here by load */
    unsigned            load_dirty:1;
    unsigned            stopping:1;
    unsigned            drain_ticks;      /* drain checks so far */
    unsigned            drain_idle;       /* of those, since the last session went */
} em_w;

static struct event *em_worker_chan_ev;
static struct event *em_worker_load_ev;
static char          em_worker_chanbuf[EM_CHAN_MAX_DATA];

static void em_worker_load_changed(void);

static void
em_worker_send_load(evutil_socket_t fd, short what, void *arg)
{
    em_chan_msg_t msg;
    (void) fd;
    (void) what;
    (void) arg;

    em_w.load_dirty = 0;
    memset(&msg, 0, sizeof(msg));
    msg.type = EM_CHAN_LOAD;
    msg.slot = (uint16_t) em_loop.slot;
    msg.arg = ((uint64_t) em_w.conns_received << 32) | em_eio_session_count();
    if (em_chan_send(em_w.chan, &msg, NULL, -1) == EM_AGAIN) {
        em_worker_load_changed();
    }
}

static void
em_worker_load_changed(void)
{
    struct timeval tv = { 0, EM_WORKER_LOAD_DELAY_MS * 1000 };

    if (!em_w.load_dirty && em_worker_load_ev != NULL) {
        em_w.load_dirty = 1;
        evtimer_add(em_worker_load_ev, &tv);
    }
}

static int
em_worker_handoff(int fd, unsigned slot, const void *data, size_t len)
{
    em_chan_msg_t msg;

    memset(&msg, 0, sizeof(msg));
    msg.type = EM_CHAN_HANDOFF;
    msg.slot = (uint16_t) slot;
    msg.len = (uint32_t) len;
    return em_chan_send(em_w.chan, &msg, data, fd);
}

/*
 * A reload started new workers in other slots: close the sessions (the
 * clients see "transport close", reconnect to the new workers and, with
 * recovery on, recover there), hand every new session to the master, and
 * exit once the sessions are gone: polling ones once their next GET has
 * fetched the close. A session whose client has not sent its first
 * message (a handshake that reached us just before the switch) is given
 * EM_WORKER_DRAIN_FRESH_MS to send it. The master kills a worker that takes
 * longer than worker_shutdown_timeout.
 */
#define EM_WORKER_DRAIN_CHECK_MS 50
#define EM_WORKER_DRAIN_FRESH_MS 1000
#define EM_WORKER_DRAIN_IDLE_MS  1000

static struct event *em_worker_drain_ev;

static void
em_worker_drain_check(evutil_socket_t fd, short what, void *arg)
{
    struct timeval tv = { 0, EM_WORKER_DRAIN_CHECK_MS * 1000 };
    (void) fd;
    (void) what;
    (void) arg;

    em_w.drain_ticks++;
    if (em_w.drain_ticks * EM_WORKER_DRAIN_CHECK_MS < EM_WORKER_DRAIN_FRESH_MS) {
        (void) em_eio_session_close_heard("server shutting down");
    } else {
        em_eio_session_close_all("server shutting down");
    }
    /* Then the requests under way (each one's connection closes after its
     * response), for a moment: idle keep-alive connections close at exit. */
    if (em_eio_session_count() > 0) {
        em_w.drain_idle = 0;
        evtimer_add(em_worker_drain_ev, &tv);
        return;
    }
    if (em_loop.nconns > 0
        && em_w.drain_idle++ * EM_WORKER_DRAIN_CHECK_MS < EM_WORKER_DRAIN_IDLE_MS) {
        evtimer_add(em_worker_drain_ev, &tv);
        return;
    }
    em_log(EM_LOG_INFO, 0, "drained: exiting");
    /* The last writes reach the sockets before the loop ends. */
    event_base_loopexit(em_loop.base, &tv);
}

static void
em_worker_drain(void)
{
    if (em_w.stopping || em_loop.draining) {
        return;
    }
    em_loop.draining = 1;
    em_proc_title_set("emitd: worker %u (draining)", em_loop.slot + 1);
    em_log(EM_LOG_INFO, 0, "a reload replaced this worker: closing %u sessions",
           em_eio_session_count());
    em_worker_drain_ev = evtimer_new(em_loop.base, em_worker_drain_check, NULL);
    if (em_worker_drain_ev == NULL) {
        em_eio_session_close_all("server shutting down");
        event_base_loopexit(em_loop.base, NULL);
        return;
    }
    em_worker_drain_check(-1, 0, NULL);
}

static void
em_worker_chan_read(evutil_socket_t chan, short what, void *arg)
{
    em_chan_msg_t msg;
    int           fd;
    (void) what;
    (void) arg;

    for (int i = 0; i < 256; i++) {
        int rc = em_chan_recv(chan, &msg, em_worker_chanbuf, &fd);
        if (rc == EM_AGAIN) {
            return;
        }
        if (rc == EM_DECLINED) {
            em_log(EM_LOG_ERR, 0, "the master is gone: exiting");
            event_base_loopbreak(em_loop.base);
            return;
        }
        if (rc != EM_OK) {
            continue;
        }
        if (msg.type == EM_CHAN_DRAIN && fd < 0) {
            em_worker_drain();
            continue;
        }
        if (msg.type != EM_CHAN_CONN) {
            em_log(EM_LOG_WARN, 0, "unexpected channel message type %u", msg.type);
            if (fd >= 0) {
                close(fd);
            }
            continue;
        }
        if (msg.flags & EM_CHAN_F_PLACED) {
            em_w.conns_received++;
            em_worker_load_changed();
        }
        if (msg.flags & EM_CHAN_F_TLS) {
            /* We run the handshake and serve the plaintext end. */
            if ((fd = em_tls_accept(fd)) >= 0) {
                em_http_conn_accept(fd, NULL, 0, 0, (msg.flags & EM_CHAN_F_ADMIN) != 0);
            }
            continue;
        }
        /* Stopping: still served, for the closing sessions' last requests
         * (the Engine.IO layer refuses new sessions). */
        em_http_conn_accept(fd, em_worker_chanbuf, msg.len, (msg.flags & EM_CHAN_F_NOROUTE) != 0,
                            (msg.flags & EM_CHAN_F_ADMIN) != 0);
    }
}

static void
em_worker_signal(evutil_socket_t sig, short what, void *arg)
{
    (void) what;
    (void) arg;
    if (em_w.stopping) {
        return;
    }
    em_log(EM_LOG_INFO, 0, "signal %d: closing %u sessions and exiting", (int) sig,
           em_eio_session_count());
    em_w.stopping = 1;
    /* The scripts' on_shutdown and the configured shutdown events first. */
    em_sio_shutdown();
    em_eio_session_close_all("server shutting down");
    /* Let the goodbyes reach the sockets before the loop ends. */
    struct timeval tv = { 0, 200 * 1000 };
    event_base_loopexit(em_loop.base, &tv);
}

/* SIGUSR1: logrotate moved the log file (the master forwards it). */
static void
em_worker_reopen(evutil_socket_t sig, short what, void *arg)
{
    (void) sig;
    (void) what;
    (void) arg;
    em_log_reopen();
}

int
em_worker_run(const em_conf_t *conf, unsigned slot, unsigned nworkers, int chan, int state_fd,
              int shm_fd, int bell, int broker_bell)
{
    char          role[32];
    struct event *sigterm, *sigint;

    struct event_base *base;

    em_w.chan = chan;
    snprintf(role, sizeof(role), "worker %u", slot + 1);
    em_log_set_role(role);
    em_proc_title_set("emitd: worker %u", slot + 1);

    /* Broadcasts allocate and free output chains by the thousand per pass:
     * keep a few MiB at the heap's top instead of moving brk each time. */
    mallopt(M_TOP_PAD, 1 << 20);
    mallopt(M_TRIM_THRESHOLD, 4 << 20);
    base = event_base_new();
    if (base == NULL) {
        em_log(EM_LOG_ERR, 0, "event_base_new() failed");
        return 1;
    }
    if (em_loop_init(conf, base, slot, nworkers) != EM_OK) {
        return 1;
    }
    em_loop.handlers.handoff = em_worker_handoff;
    em_loop.handlers.load_changed = em_worker_load_changed;
    /* Wire the layers: each registers with the one below it. */
    if (em_eio_session_init(&em_sio_eio_upper, &em_lua_raw_eio_upper) != EM_OK
        || em_sio_init() != EM_OK) {
        return 1;
    }
    if (em_tls_init() != EM_OK) {
        return EM_WORKER_EXIT_FATAL;        /* its files went since the master read them */
    }
    if (em_cluster_init(state_fd) != EM_OK || em_health_init() != EM_OK || em_api_init() != EM_OK
        || em_adminui_init() != EM_OK
        || em_fetch_init(conf->webhook_max_inflight, conf->webhook_max_response) != EM_OK) {
        return 1;
    }
    if (em_lua_init() != EM_OK) {
        em_log(EM_LOG_ERR, 0, "handler scripts failed to load: worker exiting");
        return EM_WORKER_EXIT_FATAL;
    }
    if (em_bus_init(shm_fd, bell, broker_bell) != EM_OK) {
        return 1;
    }
    /* After the bus: what the sweep tells the scripts may be broadcast. */
    em_cluster_start();
    em_worker_load_ev = evtimer_new(em_loop.base, em_worker_send_load, NULL);
    em_worker_chan_ev = event_new(em_loop.base, chan, EV_READ | EV_PERSIST, em_worker_chan_read, NULL);
    sigterm = evsignal_new(em_loop.base, SIGTERM, em_worker_signal, NULL);
    sigint = evsignal_new(em_loop.base, SIGINT, em_worker_signal, NULL);
    if (em_worker_load_ev == NULL || em_worker_chan_ev == NULL
        || sigterm == NULL || sigint == NULL || event_add(em_worker_chan_ev, NULL) != 0
        || evsignal_add(sigterm, NULL) != 0 || evsignal_add(sigint, NULL) != 0) {
        em_log(EM_LOG_ERR, 0, "cannot set up the worker's events");
        return 1;
    }
    em_worker_load_changed();
    struct event *sigusr1 = evsignal_new(em_loop.base, SIGUSR1, em_worker_reopen, NULL);
    em_log_reopen_ready(sigusr1 != NULL && evsignal_add(sigusr1, NULL) == 0);

    event_base_dispatch(em_loop.base);
    if (sigusr1 != NULL) {
        event_free(sigusr1);
    }
    if (em_worker_drain_ev != NULL) {
        event_free(em_worker_drain_ev);
    }

    em_loop_reap();
    em_adminui_shutdown();
    em_tls_shutdown();
    em_lua_shutdown();
    em_fetch_shutdown();
    em_cluster_shutdown();
    return 0;
}
