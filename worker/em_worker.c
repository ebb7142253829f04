/*
 * em_worker.c - a worker's process cycle: the channel from the master, the
 * reaper that frees connections and sessions after the callbacks that closed
 * them, load reports, and an orderly exit on SIGTERM.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <time.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "em_bus.h"
#include "em_chan.h"
#include "em_cluster.h"
#include "em_conn.h"
#include "em_engine.h"
#include "em_log.h"
#include "em_lua.h"
#include "em_proc.h"
#include "em_worker.h"

#define EM_WORKER_LOAD_DELAY_MS 20

em_worker_t em_w;

static struct event *em_worker_chan_ev;
static struct event *em_worker_load_ev;
static char          em_worker_chanbuf[EM_CHAN_MAX_DATA];

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
    msg.slot = (uint16_t) em_w.slot;
    msg.arg = ((uint64_t) em_w.conns_received << 32) | em_w.nsessions;
    if (em_chan_send(em_w.chan, &msg, NULL, -1) == EM_AGAIN) {
        em_worker_load_changed();
    }
}

void
em_worker_load_changed(void)
{
    struct timeval tv = { 0, EM_WORKER_LOAD_DELAY_MS * 1000 };

    if (!em_w.load_dirty && em_worker_load_ev != NULL) {
        em_w.load_dirty = 1;
        evtimer_add(em_worker_load_ev, &tv);
    }
}

int
em_worker_handoff(int fd, unsigned slot, const void *data, size_t len)
{
    em_chan_msg_t msg;

    memset(&msg, 0, sizeof(msg));
    msg.type = EM_CHAN_HANDOFF;
    msg.slot = (uint16_t) slot;
    msg.len = (uint32_t) len;
    return em_chan_send(em_w.chan, &msg, data, fd);
}

static const char *const em_limit_names[EM_LIMIT_COUNT] = {
    "none", "protocol", "event_args", "attachments", "json_depth", "event_name", "namespaces",
    "rooms", "pending_acks", "output", "write_timeout", "request_timeout", "request_size",
    "memory"
};

const char *
em_limit_name(em_limit_t limit)
{
    return (unsigned) limit < EM_LIMIT_COUNT ? em_limit_names[limit] : "unknown";
}

#define EM_WORKER_VIOLATION_LOGS 10     /* lines per second, then counted only */

void
em_worker_violation(int fd, const char *sid, em_limit_t limit, const char *fmt, ...)
{
    static time_t   second;
    static unsigned logged, suppressed;
    char            why[200], ip[INET6_ADDRSTRLEN] = "", details[240];
    struct sockaddr_storage ss;
    socklen_t       sl = sizeof(ss);
    va_list         ap;
    time_t          now = time(NULL);

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (fd >= 0 && getpeername(fd, (struct sockaddr *) &ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *) &ss)->sin_addr, ip, sizeof(ip));
        } else if (ss.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *) &ss)->sin6_addr, ip, sizeof(ip));
        }
    }
    if (now != second) {
        if (suppressed > 0) {
            em_log(EM_LOG_WARN, 0, "%u more clients closed for breaking limits in the last second "
                   "(not logged one by one)", suppressed);
        }
        second = now;
        logged = suppressed = 0;
    }
    if (logged < EM_WORKER_VIOLATION_LOGS) {
        logged++;
        em_log(EM_LOG_WARN, 0, "closing client %s%s%s: %s (limit \"%s\")", ip[0] ? ip : "?",
               sid ? " session " : "", sid ? sid : "", why, em_limit_name(limit));
    } else {
        suppressed++;
    }
    if (em_cluster.hdr != NULL) {
        em_st_event_t ev;
        /* The reason is our own text: no quotes or backslashes to escape. */
        int n = snprintf(details, sizeof(details), "{\"limit\":\"%s\",\"reason\":\"%s\"}",
                         em_limit_name(limit), why);
        em_monitor_event_fill(&ev, "limit", (em_str_t) { sid, sid ? strlen(sid) : 0 }, EM_STR(""),
                              EM_STR(""), (em_str_t) { ip, strlen(ip) }, EM_STR(""),
                              n > 0 && (size_t) n < sizeof(details) ? (em_str_t) { details, (size_t) n }
                                                                       : (em_str_t) { NULL, 0 });
        em_monitor_violation(&em_cluster, &ev);
    }
}

static void
em_worker_reap(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;

    while (em_w.reap_conns != NULL || em_w.reap_sessions != NULL) {
        em_conn_t    *c = em_w.reap_conns;
        em_eio_session_t *s = em_w.reap_sessions;
        em_w.reap_conns = NULL;
        em_w.reap_sessions = NULL;
        while (c != NULL) {
            em_conn_t *next = c->reap_next;
            em_conn_reap(c);
            c = next;
        }
        while (s != NULL) {
            em_eio_session_t *next = s->reap_next;
            em_eio_session_reap(s);
            s = next;
        }
    }
}

void
em_worker_schedule_reap(void)
{
    event_active(em_w.reap_ev, EV_TIMEOUT, 0);
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
            event_base_loopbreak(em_w.base);
            return;
        }
        if (rc != EM_OK) {
            continue;
        }
        if (msg.type != EM_CHAN_CONN) {
            em_log(EM_LOG_WARN, 0, "unexpected channel message type %u", msg.type);
            if (fd >= 0) {
                close(fd);
            }
            continue;
        }
        em_w.conns_received++;
        em_worker_load_changed();
        if (em_w.stopping) {
            close(fd);
            continue;
        }
        em_conn_accept(fd, em_worker_chanbuf, msg.len, (msg.flags & EM_CHAN_F_NOROUTE) != 0);
    }
}

static void
em_worker_signal(evutil_socket_t sig, short what, void *arg)
{
    (void) what;
    (void) arg;
    em_log(EM_LOG_INFO, 0, "signal %d: closing %u sessions and exiting", (int) sig, em_w.nsessions);
    em_w.stopping = 1;
    em_eio_session_t *s, *tmp;
    HASH_ITER(hh, em_w.sessions, s, tmp) {
        em_eio_session_close(s, "server shutting down");
    }
    /* Let the goodbyes reach the sockets before the loop ends. */
    struct timeval tv = { 0, 200 * 1000 };
    event_base_loopexit(em_w.base, &tv);
}

int
em_worker_run(const em_conf_t *conf, unsigned slot, unsigned nworkers, int chan, int state_fd,
              int shm_fd, int bell, int broker_bell)
{
    char          role[32];
    struct event *sigterm, *sigint;

    em_w.conf = conf;
    em_w.slot = slot;
    em_w.nworkers = nworkers;
    em_w.chan = chan;
    snprintf(role, sizeof(role), "worker %u", slot + 1);
    em_log_set_role(role);
    em_proc_title_set("emitd: worker %u", slot + 1);

    /* Broadcasts allocate and free output chains by the thousand per pass:
     * keep a few MiB at the heap's top instead of moving brk each time. */
    mallopt(M_TOP_PAD, 1 << 20);
    mallopt(M_TRIM_THRESHOLD, 4 << 20);
    em_w.base = event_base_new();
    if (em_w.base == NULL) {
        em_log(EM_LOG_ERR, 0, "event_base_new() failed");
        return 1;
    }
    if (em_cluster_init(state_fd) != EM_OK) {
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
    em_w.reap_ev = event_new(em_w.base, -1, 0, em_worker_reap, NULL);
    em_worker_load_ev = evtimer_new(em_w.base, em_worker_send_load, NULL);
    em_worker_chan_ev = event_new(em_w.base, chan, EV_READ | EV_PERSIST, em_worker_chan_read, NULL);
    sigterm = evsignal_new(em_w.base, SIGTERM, em_worker_signal, NULL);
    sigint = evsignal_new(em_w.base, SIGINT, em_worker_signal, NULL);
    if (em_w.reap_ev == NULL || em_worker_load_ev == NULL || em_worker_chan_ev == NULL
        || sigterm == NULL || sigint == NULL || event_add(em_worker_chan_ev, NULL) != 0
        || evsignal_add(sigterm, NULL) != 0 || evsignal_add(sigint, NULL) != 0) {
        em_log(EM_LOG_ERR, 0, "cannot set up the worker's events");
        return 1;
    }
    em_worker_load_changed();

    event_base_dispatch(em_w.base);

    em_worker_reap(-1, 0, NULL);
    em_lua_shutdown();
    em_cluster_shutdown();
    return 0;
}
