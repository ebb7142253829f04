/*
 * em_master.c - the master process.
 *
 * The master owns the listening sockets. For every accepted connection it
 * reads just enough to see the request line, looks for an Engine.IO `sid`
 * (whose first character names the worker that owns the session), and hands
 * the descriptor plus the bytes already read to that worker, or to the least
 * loaded one, over the worker's channel with SCM_RIGHTS. Workers hand a
 * keep-alive connection back the same way when a later request on it names a
 * session of another worker. Signals only set libevent-dispatched flags; the
 * loop acts on them.
 */
#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <pwd.h>
#include <systemd/sd-daemon.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "em_broker.h"
#include "em_chan.h"
#include "em_http.h"
#include "em_log.h"
#include "em_lua.h"
#include "em_master.h"
#include "em_proc.h"
#include "em_sid.h"
#include "em_tls.h"
#include "em_worker.h"

#define EM_MASTER_ACCEPT_BATCH   64

/* What a worker slot does; a reload runs new workers in free slots while
 * the old ones drain. */
typedef enum {
    EM_M_FREE = 0,
    EM_M_STARTING,                /* a reload's new worker, not serving yet */
    EM_M_SERVING,
    EM_M_DRAINING                 /* replaced by a reload (or a reload that failed) */
} em_slot_mode_t;

typedef struct {
    em_slot_mode_t mode;
    int            ready;         /* STARTING: its loop runs (it reported its load) */
    pid_t          pid;
    int            chan;          /* master's end, -1 when not running */
    struct event  *chan_ev;
    time_t         started;
    unsigned       quick_deaths;  /* consecutive deaths soon after start */
    uint32_t       sent;          /* connections placed here by load (wraps) */
    uint32_t       acked;         /* of those, the ones the worker reported received */
    uint32_t       sessions;      /* Engine.IO sessions reported */
    struct event  *respawn_ev;
} em_slot_t;

typedef struct {
    int           fd;
    int           admin;          /* the admin listener (conf->admin) */
    int           tls;            /* a TLS listener (conf->tls) */
    int           fresh;          /* bound for a reload that has not switched yet */
    char         *text;           /* the address as configured */
    struct event *ev;
} em_listener_t;

/* A connection whose request line is still arriving. */
typedef struct {
    int           fd;
    struct event *ev;
    size_t        len;
    char          buf[EM_HTTP_MAX_HEAD];
} em_pending_t;

/* The broker process, when there is more than one worker. */
typedef struct {
    pid_t          pid;
    time_t         started;
    unsigned       quick_deaths;
    struct event  *respawn_ev;
} em_broker_proc_t;

static struct {
    em_conf_t          *conf;
    const char         *file;          /* what a reload reads again (NULL: embedded) */
    const char         *over;          /* and the -g settings */
    unsigned            nworkers;      /* workers serving; nslots is twice that, for reloads */
    /* A reload in progress: its configuration and listeners until the new
     * workers serve, the old workers' deadline, and one more asked for. */
    em_conf_t          *next_conf;
    em_listener_t      *next_listeners;
    size_t              next_nlisteners;
    struct event       *reload_ev;     /* the new workers' start deadline / the old ones' */
    int                 reloading;
    int                 reload_switched;   /* the new workers took over */
    int                 reload_queued;
    em_shm_t            shm;
    em_state_t          state;
    int                 have_broker;
    int                 broker_bell;
    int                 worker_bells[EM_MAX_WORKERS];
    em_broker_proc_t    broker;
    struct event_base  *base;
    em_slot_t           slots[EM_MAX_WORKERS];
    unsigned            nslots;
    em_listener_t      *listeners;
    size_t              nlisteners;
    int                 stopping;
    int                 exit_code;
    sigset_t            sigmask;       /* delivered through a signalfd */
    struct event       *kill_ev;
    struct event       *accept_ev;    /* resumes accepting after EMFILE */
    char                chanbuf[EM_CHAN_MAX_DATA];
} em_m;

static void em_master_spawn(unsigned slot, const em_conf_t *conf, em_slot_mode_t mode);
static void em_master_reload_ready(void);

/*
 * systemd's Type=notify (sd_notify; nothing without $NOTIFY_SOCKET): READY
 * once emitd serves, STATUS with the cluster's sessions every few seconds,
 * STOPPING on a stop signal.
 */
#define EM_MASTER_STATUS_SECONDS 5

/* Tell systemd the cluster's sessions, with `first` (e.g. READY=1) before. */
static void
em_master_status(const char *first)
{
    uint64_t n = em_state_sessions(&em_m.state, em_m.nslots);

    sd_notifyf(0, "%sSTATUS=%llu connections, %u workers", first, (unsigned long long) n,
               em_m.nworkers);
}

static void
em_master_status_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    if (!em_m.stopping) {
        em_master_status("");
    }
}

/* Who the children become (user, group): resolved once by the master. */
static struct {
    int    on;
    uid_t  uid;
    gid_t  gid;
    gid_t  groups[64];
    int    ngroups;
} em_drop;

/*
 * Resolve "user" and "group" (as root: else they are ignored, with a
 * warning). Returns 0, or -1 (logged) for a name that does not exist.
 */
static int
em_master_ids(const em_conf_t *conf)
{
    struct passwd *pw;

    if (conf->user == NULL) {
        return 0;
    }
    if (geteuid() != 0) {
        em_log(EM_LOG_WARN, 0, "\"user\" is used only when emitd starts as root: the workers "
               "run as uid %d", (int) geteuid());
        return 0;
    }
    errno = 0;
    if ((pw = getpwnam(conf->user)) == NULL) {
        em_log(EM_LOG_ERR, errno, "user \"%s\" does not exist", conf->user);
        return -1;
    }
    em_drop.uid = pw->pw_uid;
    em_drop.gid = pw->pw_gid;
    if (conf->group != NULL) {
        struct group *gr = getgrnam(conf->group);
        if (gr == NULL) {
            em_log(EM_LOG_ERR, errno, "group \"%s\" does not exist", conf->group);
            return -1;
        }
        em_drop.gid = gr->gr_gid;
    }
    em_drop.ngroups = (int) (sizeof(em_drop.groups) / sizeof(em_drop.groups[0]));
    if (getgrouplist(conf->user, em_drop.gid, em_drop.groups, &em_drop.ngroups) < 0) {
        em_drop.ngroups = 1;          /* more than 64: the primary group only */
        em_drop.groups[0] = em_drop.gid;
    }
    em_drop.on = 1;
    em_log(EM_LOG_INFO, 0, "the workers and the broker run as %s (uid %d, gid %d)", conf->user,
           (int) em_drop.uid, (int) em_drop.gid);
    return 0;
}

/* In a new child: become the configured user, for good, or exit. */
static void
em_master_drop(void)
{
    if (!em_drop.on) {
        return;
    }
    if (setgroups((size_t) em_drop.ngroups, em_drop.groups) != 0 || setgid(em_drop.gid) != 0
        || setuid(em_drop.uid) != 0 || (em_drop.uid != 0 && setuid(0) == 0)) {
        em_log(EM_LOG_ERR, errno, "cannot drop privileges to uid %d gid %d", (int) em_drop.uid,
               (int) em_drop.gid);
        _exit(EM_WORKER_EXIT_FATAL);
    }
}

/*
 * Raise the open-files limit for what the configuration needs: every
 * session may land on one worker (max_connections, plus room for the
 * listeners, rings, scripts' files and webhooks), or as far as the hard
 * limit goes without max_connections. A system that refuses is said
 * clearly; emitd runs on with what it has.
 */
#define EM_MASTER_FD_SPARE 1024

static void
em_master_nofile(const em_conf_t *conf)
{
    struct rlimit rl;
    rlim_t        want;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    /* A TLS connection takes three: the client's and the pair to its pump. */
    want = conf->max_connections ? (rlim_t) conf->max_connections * (conf->tls != NULL ? 3 : 1)
                                       + EM_MASTER_FD_SPARE
                                 : rl.rlim_max;
    if (want <= rl.rlim_cur) {
        return;
    }
    if (want > rl.rlim_max) {
        struct rlimit up = { want, want };
        if (setrlimit(RLIMIT_NOFILE, &up) == 0) {
            em_log(EM_LOG_INFO, 0, "open files limit raised to %llu", (unsigned long long) want);
            return;
        }
        em_log(EM_LOG_WARN, errno, "max_connections = %u needs %llu open files, but the system "
               "allows %llu (ulimit -n, LimitNOFILE=, /etc/security/limits.conf): clients past "
               "that are refused", conf->max_connections, (unsigned long long) want,
               (unsigned long long) rl.rlim_max);
        want = rl.rlim_max;
    }
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        em_log(EM_LOG_WARN, errno, "cannot raise the open files limit to %llu",
               (unsigned long long) want);
    }
}

/*
 * Write the master's pid to `path` atomically: a file of its own beside it,
 * then rename(2), so a reader never sees half a pid. Returns 0, or -1
 * (logged).
 */
static int
em_master_pid_write(const char *path)
{
    char tmp[1100], line[32];
    int  fd, n;

    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int) getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        em_log(EM_LOG_ERR, errno, "cannot write the pid file %s", path);
        return -1;
    }
    n = snprintf(line, sizeof(line), "%d\n", (int) getpid());
    if (write(fd, line, (size_t) n) != n || fsync(fd) != 0) {
        em_log(EM_LOG_ERR, errno, "cannot write the pid file %s", path);
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        em_log(EM_LOG_ERR, errno, "cannot write the pid file %s", path);
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Remove the pid file at exit, if it still holds this master's pid. */
static void
em_master_pid_remove(const char *path)
{
    char    buf[32];
    int     fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    ssize_t n;

    if (fd < 0) {
        return;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n > 0) {
        buf[n] = '\0';
        if (atoi(buf) == (int) getpid()) {
            unlink(path);
        }
    }
}

static void
em_master_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    for (size_t i = 0; i < em_m.nlisteners && !em_m.stopping; i++) {
        event_add(em_m.listeners[i].ev, NULL);
    }
}

static int
em_master_bind(const em_conf_listen_t *l)
{
    struct addrinfo  hints, *res, *ai;
    int              fd = -1, on = 1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(l->host, l->port, &hints, &res);
    if (rc != 0) {
        em_log(EM_LOG_ERR, 0, "getaddrinfo(\"%s\") failed: %s", l->text, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            em_log(EM_LOG_ERR, errno, "socket() for %s failed", l->text);
            continue;
        }
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        if (ai->ai_family == AF_INET6) {
            (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            em_log(EM_LOG_ERR, errno, "bind() to %s failed", l->text);
            close(fd);
            fd = -1;
            continue;
        }
        if (listen(fd, 4096) != 0) {
            em_log(EM_LOG_ERR, errno, "listen() on %s failed", l->text);
            close(fd);
            fd = -1;
            continue;
        }
        break;
    }
    freeaddrinfo(res);
    return fd;
}

/* Close the listeners of a set, but those another set (may be NULL) keeps. */
static void
em_master_listeners_free(em_listener_t *set, size_t n, const em_listener_t *keep, size_t nkeep)
{
    for (size_t i = 0; i < n; i++) {
        int kept = 0;
        for (size_t k = 0; keep != NULL && k < nkeep; k++) {
            kept |= keep[k].fd == set[i].fd;
        }
        if (set[i].ev != NULL) {
            event_free(set[i].ev);
        }
        if (!kept) {
            close(set[i].fd);
        }
        free(set[i].text);
    }
    free(set);
}

/*
 * The listeners of `conf`: those of `old` (the running set, or NULL) with
 * the same address and role are kept, the others bound now (fresh).
 * Returns 0 with *out set (no events yet), or -1 (logged; nothing of
 * `old` closed).
 */
static int
em_master_listeners_open(const em_conf_t *conf, const em_listener_t *old, size_t nold,
                         em_listener_t **out, size_t *nout)
{
    size_t         ntls = conf->tls != NULL ? conf->tls->nlisten : 0;
    size_t         n = conf->nlisten + ntls + (conf->admin != NULL), got = 0;
    em_listener_t *set = calloc(n + 1, sizeof(*set));

    if (set == NULL) {
        em_log(EM_LOG_ERR, errno, "no memory for the listeners");
        return -1;
    }
    for (size_t i = 0; i < n; i++, got++) {
        /* the plain listeners, the TLS ones, the admin one */
        int                     tls = i >= conf->nlisten && i < conf->nlisten + ntls;
        int                     admin = i >= conf->nlisten + ntls, fd = -1;
        const em_conf_listen_t *cl = admin ? &conf->admin->listen
                                     : tls ? &conf->tls->listen[i - conf->nlisten]
                                           : &conf->listen[i];
        for (size_t k = 0; old != NULL && k < nold && fd < 0; k++) {
            if (old[k].admin == admin && old[k].tls == tls && strcmp(old[k].text, cl->text) == 0) {
                fd = old[k].fd;
            }
        }
        set[i].fresh = fd < 0;
        if (fd < 0 && (fd = em_master_bind(cl)) < 0) {
            em_log(EM_LOG_ERR, 0, "cannot listen on %s", cl->text);
            em_master_listeners_free(set, got, old, nold);
            return -1;
        }
        set[i].fd = fd;
        set[i].admin = admin;
        set[i].tls = tls;
        if ((set[i].text = strdup(cl->text)) == NULL) {
            em_log(EM_LOG_ERR, errno, "no memory for the listeners");
            got++;
            em_master_listeners_free(set, got, old, nold);
            return -1;
        }
        /* The kernel holds a connection that sends nothing for about as
         * long before the master sees it (then the pending timeout runs). */
        int secs = (int) ((conf->limits.request_timeout + 999) / 1000), one = 1;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs));
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));   /* inherited */
        if (set[i].fresh) {
            em_log(EM_LOG_INFO, 0, "listening on %s%s", cl->text,
                   admin ? " (admin)" : tls ? " (TLS)" : "");
        }
    }
    *out = set;
    *nout = n;
    return 0;
}

static void em_master_accept(evutil_socket_t lfd, short what, void *arg);

/* Accept on the running set of listeners. */
static int
em_master_listeners_start(void)
{
    for (size_t i = 0; i < em_m.nlisteners; i++) {
        em_listener_t *l = &em_m.listeners[i];
        l->fresh = 0;
        l->ev = event_new(em_m.base, l->fd, EV_READ | EV_PERSIST, em_master_accept, l);
        if (l->ev == NULL || event_add(l->ev, NULL) != 0) {
            em_log(EM_LOG_ERR, 0, "event_add() for the listener on %s failed", l->text);
            return -1;
        }
    }
    return 0;
}

static void
em_master_reply_close(int fd, const char *status)
{
    char    buf[256];
    int     n = snprintf(buf, sizeof(buf),
                         "HTTP/1.1 %s\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", status);
    ssize_t w = send(fd, buf, (size_t) n, MSG_NOSIGNAL | MSG_DONTWAIT);

    (void) w;
    close(fd);
}

/* The worker to place a new session on: the fewest sessions, counting
 * connections placed on it by load that it has not reported yet. Those
 * routed to a session's owner are not counted: they add no session, and a
 * keep-alive connection moving between workers would otherwise look like a
 * burst of new load on both until their next reports. */
static int
em_master_least_loaded(void)
{
    int      best = -1;
    uint64_t best_load = UINT64_MAX;

    for (unsigned i = 0; i < em_m.nslots; i++) {
        em_slot_t *s = &em_m.slots[i];
        if (s->chan < 0 || s->mode != EM_M_SERVING) {
            continue;
        }
        uint64_t load = (uint64_t) s->sessions + (uint32_t) (s->sent - s->acked);
        if (load < best_load) {
            best_load = load;
            best = (int) i;
        }
    }
    return best;
}

/*
 * Send a connection to a worker. `slot` < 0 picks the least loaded one.
 * Takes ownership of fd in every case.
 */
static void
em_master_dispatch(int fd, int slot, const char *data, size_t len, unsigned flags)
{
    em_chan_msg_t msg;
    int           rc;

    if (slot < 0 || (unsigned) slot >= em_m.nslots || em_m.slots[slot].chan < 0) {
        if (slot >= 0) {
            flags |= EM_CHAN_F_NOROUTE;   /* its owner is gone: someone says so */
        }
        slot = em_master_least_loaded();
        flags |= EM_CHAN_F_PLACED;
    }
    if (slot < 0) {
        em_master_reply_close(fd, "503 Service Unavailable");
        return;
    }
    memset(&msg, 0, sizeof(msg));
    msg.type = EM_CHAN_CONN;
    msg.slot = (uint16_t) slot;
    msg.flags = (uint16_t) flags;
    msg.len = (uint32_t) len;
    rc = em_chan_send(em_m.slots[slot].chan, &msg, data, fd);
    if (rc != EM_OK) {
        em_log(EM_LOG_WARN, 0, "worker %d's channel is %s: connection refused with 503", slot + 1,
               rc == EM_AGAIN ? "full" : "broken");
        em_master_reply_close(fd, "503 Service Unavailable");
        return;
    }
    if (flags & EM_CHAN_F_PLACED) {
        em_m.slots[slot].sent++;
    }
    close(fd);
}

static void
em_pending_free(em_pending_t *p)
{
    if (p->ev != NULL) {
        event_free(p->ev);
    }
    free(p);
}

/* Decide where a pending connection goes once its request line is known. */
static int
em_pending_route(em_pending_t *p)
{
    em_str_t sid;
    int      rc = em_http_peek_param(p->buf, p->len, "sid", &sid);

    switch (rc) {
    case EM_AGAIN:
        if (p->len < sizeof(p->buf)) {
            return EM_AGAIN;
        }
        em_master_reply_close(p->fd, "414 URI Too Long");
        return EM_OK;
    case EM_ERROR:
        em_master_reply_close(p->fd, "400 Bad Request");
        return EM_OK;
    case EM_OK:
        em_master_dispatch(p->fd, em_sid_slot(sid.data, sid.len), p->buf, p->len, 0);
        return EM_OK;
    default:
        em_master_dispatch(p->fd, -1, p->buf, p->len, 0);
        return EM_OK;
    }
}

static void
em_pending_read(evutil_socket_t fd, short what, void *arg)
{
    em_pending_t *p = arg;
    ssize_t       n;

    if (what & EV_TIMEOUT) {
        em_master_reply_close(p->fd, "408 Request Timeout");
        em_pending_free(p);
        return;
    }
    n = recv(fd, p->buf + p->len, sizeof(p->buf) - p->len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        close(p->fd);
        em_pending_free(p);
        return;
    }
    p->len += (size_t) n;
    if (em_pending_route(p) == EM_OK) {
        em_pending_free(p);
    }
}

static void
em_master_accept(evutil_socket_t lfd, short what, void *arg)
{
    const em_listener_t *l = arg;

    (void) what;
    for (int i = 0; i < EM_MASTER_ACCEPT_BATCH; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
                || errno == ECONNABORTED) {
                return;
            }
            em_log(EM_LOG_ERR, errno, "accept4() failed");
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: stop accepting for a moment instead
                 * of spinning on a listener that stays readable. */
                struct timeval tv = { 0, 100 * 1000 };
                for (size_t k = 0; k < em_m.nlisteners; k++) {
                    event_del(em_m.listeners[k].ev);
                }
                evtimer_add(em_m.accept_ev, &tv);
            }
            return;
        }
        /* TCP_NODELAY comes from the listener (Linux copies it to every
         * accepted socket): no setsockopt() per connection. */
        if (l->tls) {
            /* Encrypted: no request line to read. The least loaded worker
             * runs the handshake, and its HTTP layer routes each request. */
            em_master_dispatch(fd, -1, NULL, 0, EM_CHAN_F_TLS);
            continue;
        }
        if (l->admin) {
            /* The backend API has no sessions to route by: any worker. */
            em_master_dispatch(fd, -1, NULL, 0, EM_CHAN_F_NOROUTE | EM_CHAN_F_ADMIN);
            continue;
        }
        em_pending_t *p = malloc(sizeof(*p));
        if (p == NULL) {
            em_log(EM_LOG_ERR, errno, "malloc() for a new connection failed");
            close(fd);
            continue;
        }
        p->fd = fd;
        p->len = 0;
        p->ev = NULL;
        /* With TCP_DEFER_ACCEPT the request line is usually here already. */
        ssize_t n = recv(fd, p->buf, sizeof(p->buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            close(fd);
            free(p);
            continue;
        }
        if (n > 0) {
            p->len = (size_t) n;
            if (em_pending_route(p) == EM_OK) {
                free(p);
                continue;
            }
        }
        /* limits.request_timeout to send the request line, as the worker
         * gives the rest of the request. */
        unsigned       ms = em_m.conf->limits.request_timeout;
        struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
        p->ev = event_new(em_m.base, fd, EV_READ | EV_PERSIST, em_pending_read, p);
        if (p->ev == NULL || event_add(p->ev, &tv) != 0) {
            em_log(EM_LOG_ERR, 0, "event_add() for a new connection failed");
            close(fd);
            em_pending_free(p);
        }
    }
}

static void
em_master_chan_read(evutil_socket_t chan, short what, void *arg)
{
    unsigned       slot = (unsigned) (uintptr_t) arg;
    em_chan_msg_t  msg;
    int            fd;
    (void) what;

    for (int i = 0; i < 256; i++) {
        int rc = em_chan_recv(chan, &msg, em_m.chanbuf, &fd);
        if (rc == EM_AGAIN) {
            return;
        }
        if (rc == EM_DECLINED) {
            /* The worker is gone; the child is reaped on SIGCHLD. */
            event_del(em_m.slots[slot].chan_ev);
            close(em_m.slots[slot].chan);
            em_m.slots[slot].chan = -1;
            return;
        }
        if (rc != EM_OK) {
            continue;
        }
        switch (msg.type) {
        case EM_CHAN_LOAD:
            em_m.slots[slot].sessions = (uint32_t) msg.arg;
            em_m.slots[slot].acked = (uint32_t) (msg.arg >> 32);
            if (em_m.slots[slot].mode == EM_M_STARTING && !em_m.slots[slot].ready) {
                em_m.slots[slot].ready = 1;      /* its loop runs */
                em_master_reload_ready();
            }
            break;
        case EM_CHAN_HANDOFF:
            if (msg.slot == EM_CHAN_SLOT_ANY) {
                em_master_dispatch(fd, -1, em_m.chanbuf, msg.len, EM_CHAN_F_NOROUTE);
                break;
            }
            if (msg.slot >= em_m.nslots || msg.slot == slot) {
                em_log(EM_LOG_WARN, 0, "worker %u handed off to invalid worker %u", slot + 1,
                       msg.slot + 1u);
                em_master_reply_close(fd, "400 Bad Request");
                break;
            }
            em_master_dispatch(fd, msg.slot, em_m.chanbuf, msg.len, EM_CHAN_F_NOROUTE);
            break;
        default:
            em_log(EM_LOG_WARN, 0, "unexpected message type %u from worker %u", msg.type, slot + 1);
            if (fd >= 0) {
                close(fd);
            }
        }
    }
}

static void
em_master_respawn_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    if (!em_m.stopping) {
        em_master_spawn((unsigned) (uintptr_t) arg, em_m.conf, EM_M_SERVING);
    }
}

/*
 * In a new child: keep exactly fds[0..n) as descriptors 3.. (in that order),
 * close every other descriptor, and forget the master's event loop.
 */
static void
em_master_child_fds(const int *keep, int nkeep)
{
    int high[4 + EM_MAX_WORKERS];     /* the broker's: 3 + a bell per worker, the access log */
    int fds[4 + EM_MAX_WORKERS];
    int n = nkeep, access = em_access_fd();

    if (nkeep < 0 || (size_t) nkeep >= sizeof(fds) / sizeof(fds[0])) {
        _exit(1);
    }
    memcpy(fds, keep, (size_t) nkeep * sizeof(int));
    if (access >= 0) {
        fds[n++] = access;            /* its own file: after the others */
    }

    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_IGN);      /* reload is the master's business */
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    if (n < 0 || (size_t) n > sizeof(high) / sizeof(high[0])) {
        _exit(1);
    }
    /* Copies above the target range first, so that no dup2() below can
     * overwrite a descriptor still to be moved. */
    for (int i = 0; i < n; i++) {
        high[i] = fcntl(fds[i], F_DUPFD, 3 + n);
        if (high[i] < 0) {
            _exit(1);
        }
    }
    for (int i = 0; i < n; i++) {
        if (dup2(high[i], 3 + i) < 0) {
            _exit(1);
        }
    }
    if (close_range((unsigned) (3 + n), ~0U, 0) != 0) {
        for (int f = 3 + n; f < 65536; f++) {
            close(f);
        }
    }
    if (access >= 0) {
        em_access_moved(3 + n - 1);
    }
    /* The master's loop (its epoll and signalfd are closed above) is not
     * ours; the signals it blocked are ours to take again. */
    em_m.base = NULL;
    /* SIGUSR1 (log reopen) stays blocked, so pending, until the child's loop
     * takes it; the others are the child's now. */
    sigset_t mine = em_m.sigmask;
    sigdelset(&mine, SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &mine, NULL);
    em_master_drop();
}

static void em_master_spawn_broker(void);

static void
em_master_broker_respawn_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    if (!em_m.stopping) {
        em_master_spawn_broker();
    }
}

static void
em_master_spawn_broker(void)
{
    int   fds[3 + EM_MAX_WORKERS];
    pid_t pid;

    /* Child: 3 = shared segment, 4 = its bell, 5 = state segment, then the
     * workers' bells. */
    fds[0] = em_m.shm.fd;
    fds[1] = em_m.broker_bell;
    fds[2] = em_m.state.fd;
    for (unsigned i = 0; i < em_m.nslots; i++) {
        fds[3 + i] = em_m.worker_bells[i];
    }
    pid = fork();
    if (pid < 0) {
        em_log(EM_LOG_ERR, errno, "fork() of the broker failed");
        return;
    }
    if (pid == 0) {
        int        bells[EM_MAX_WORKERS];
        em_shm_t   shm;
        em_state_t state;
        em_master_child_fds(fds, 3 + (int) em_m.nslots);
        for (unsigned i = 0; i < em_m.nslots; i++) {
            bells[i] = 6 + (int) i;
        }
        if (em_shm_map(&shm, 3) != EM_OK || em_state_map(&state, 5) != EM_OK) {
            exit(1);
        }
        exit(em_broker_run(&shm, 4, bells, &state, em_m.conf));
    }
    em_m.broker.pid = pid;
    em_state_broker_set(&em_m.state, (uint32_t) pid);
    em_m.broker.started = time(NULL);
    em_log(EM_LOG_INFO, 0, "started the broker (pid %d)", (int) pid);
}

static void
em_master_spawn(unsigned slot, const em_conf_t *conf, em_slot_mode_t mode)
{
    em_slot_t *s = &em_m.slots[slot];
    int        fds[2];
    pid_t      pid;

    if (em_chan_pair(fds) != EM_OK) {
        return;
    }
    pid = fork();
    if (pid < 0) {
        em_log(EM_LOG_ERR, errno, "fork() of worker %u failed", slot + 1);
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        /* Child: 3 = channel, 4 = state segment, then (with a broker)
         * 5 = shared segment, 6 = our bell, 7 = the broker's bell. */
        int keep[5] = { fds[1], em_m.state.fd, em_m.shm.fd, em_m.worker_bells[slot],
                        em_m.broker_bell };
        em_master_child_fds(keep, em_m.have_broker ? 5 : 2);
        em_log_level = (em_log_level_t) conf->log_level;     /* a reload's, maybe */
        exit(em_worker_run(conf, slot, em_m.nslots, 3, 4, em_m.have_broker ? 5 : -1, 6, 7));
    }
    close(fds[1]);
    s->mode = mode;
    s->ready = 0;
    em_state_slot_mode(&em_m.state, slot, EM_SLOT_SERVING);
    em_state_slot_set(&em_m.state, slot, (uint32_t) pid);
    s->pid = pid;
    s->chan = fds[0];
    s->started = time(NULL);
    s->sent = s->acked = s->sessions = 0;
    s->chan_ev = event_new(em_m.base, s->chan, EV_READ | EV_PERSIST, em_master_chan_read,
                           (void *) (uintptr_t) slot);
    if (s->chan_ev == NULL || event_add(s->chan_ev, NULL) != 0) {
        em_log(EM_LOG_ERR, 0, "event_add() for worker %u's channel failed", slot + 1);
    }
    em_log(EM_LOG_INFO, 0, "started worker %u (pid %d)", slot + 1, (int) pid);
}

/* ---- reload (SIGHUP) ---- */

#define EM_MASTER_START_DEADLINE_MS 60000   /* for a reload's new workers */

static unsigned
em_master_count(em_slot_mode_t mode)
{
    unsigned n = 0;

    for (unsigned i = 0; i < em_m.nslots; i++) {
        n += em_m.slots[i].mode == mode;
    }
    return n;
}

/* A slot no worker owns any more (its process is gone). */
static void
em_master_slot_free(unsigned i)
{
    em_slot_t      *s = &em_m.slots[i];
    em_st_wstats_t *w = em_state_wstats(&em_m.state, i);

    s->mode = EM_M_FREE;
    s->ready = 0;
    if (s->respawn_ev != NULL) {
        evtimer_del(s->respawn_ev);
    }
    em_state_slot_mode(&em_m.state, i, EM_SLOT_FREE);
    /* A worker killed at its deadline left its gauges. */
    __atomic_store_n(&w->sessions_ws, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&w->sessions_polling, 0, __ATOMIC_RELAXED);
    /* The broker may wait for room in this slot's ring: no one reads it now. */
    if (em_m.have_broker) {
        em_ring_bell_ring(em_m.broker_bell);
    }
}

/*
 * Settings a reload cannot change (the segments are sized by them, the
 * children's identity and the master's files were set at start): the new
 * configuration keeps the running values, and the log says so.
 */
static void
em_master_keep_str(char **now, char **next, const char *name)
{
    if ((*now == NULL) != (*next == NULL) || (*now != NULL && strcmp(*now, *next) != 0)) {
        em_log(EM_LOG_WARN, 0, "reload: \"%s\" changes only with a restart; kept \"%s\"", name,
               *now != NULL ? *now : "");
        char *t = *now;
        *now = *next;
        *next = t;
    }
}

#define EM_MASTER_KEEP_NUM(next, now, field, name)                                               \
    do {                                                                                        \
        if ((next)->field != (now)->field) {                                                    \
            em_log(EM_LOG_WARN, 0, "reload: \"%s\" changes only with a restart; kept %llu",     \
                   name, (unsigned long long) (now)->field);                                    \
            (next)->field = (now)->field;                                                       \
        }                                                                                       \
    } while (0)

static void
em_master_keep_settings(em_conf_t *next)
{
    em_conf_t *now = em_m.conf;

    EM_MASTER_KEEP_NUM(next, now, workers, "workers");
    EM_MASTER_KEEP_NUM(next, now, recovery, "recovery");
    EM_MASTER_KEEP_NUM(next, now, recovery_max_disconnection, "recovery.max_disconnection");
    EM_MASTER_KEEP_NUM(next, now, recovery_buffer, "recovery.buffer");
    EM_MASTER_KEEP_NUM(next, now, recovery_sessions, "recovery.sessions");
    EM_MASTER_KEEP_NUM(next, now, store_entries, "store.entries");
    em_master_keep_str(&now->pid_file, &next->pid_file, "pid_file");
    em_master_keep_str(&now->error_log, &next->error_log, "error_log");
    em_master_keep_str(&now->access_log, &next->access_log, "access_log");
    em_master_keep_str(&now->user, &next->user, "user");
    em_master_keep_str(&now->group, &next->group, "group");
    /* The broker's connection to Redis (and whether there is a broker). */
    const em_conf_redis_t *a = now->redis, *b = next->redis;
    if ((a == NULL) != (b == NULL)
        || (a != NULL && (strcmp(a->text, b->text) != 0 || strcmp(a->key, b->key) != 0
                          || a->max_message != b->max_message || a->streams != b->streams
                          || a->maxlen != b->maxlen || strcmp(a->stream, b->stream) != 0
                          || (a->password == NULL) != (b->password == NULL)
                          || (a->password != NULL && strcmp(a->password, b->password) != 0)))) {
        em_log(EM_LOG_WARN, 0, "reload: \"redis\" changes only with a restart; kept %s",
               a != NULL ? a->text : "none");
    }
    em_conf_redis_t *t = now->redis;
    now->redis = next->redis;
    next->redis = t;
}

/* The reload's deadline: the new workers' start, then the old ones' drain. */
static void
em_master_reload_arm(unsigned ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    evtimer_del(em_m.reload_ev);
    if (ms > 0) {
        evtimer_add(em_m.reload_ev, &tv);
    }
}

static void em_master_reload_progress(void);

/* The new workers cannot serve: back to the running configuration. */
static void
em_master_reload_abort(const char *why)
{
    em_log(EM_LOG_ERR, 0, "reload failed: %s; still serving the previous configuration", why);
    for (unsigned i = 0; i < em_m.nslots; i++) {
        em_slot_t *s = &em_m.slots[i];
        if (s->mode == EM_M_STARTING) {
            s->mode = EM_M_DRAINING;                /* it has no sessions: it just goes */
            em_state_slot_mode(&em_m.state, i, EM_SLOT_DRAINING);
            if (s->pid > 0) {
                kill(s->pid, SIGTERM);
            }
        }
    }
    em_master_listeners_free(em_m.next_listeners, em_m.next_nlisteners, em_m.listeners,
                             em_m.nlisteners);
    em_m.next_listeners = NULL;
    em_m.next_nlisteners = 0;
    em_conf_free(em_m.next_conf);
    em_m.next_conf = NULL;
    em_master_reload_arm(em_m.conf->worker_shutdown_timeout);
    em_master_status("READY=1\n");
    em_master_reload_progress();        /* none started: over now */
}

/* After a slot left a reload: when the last old worker is gone, the reload
 * is over, and one that was asked for meanwhile runs. */
static void em_master_reload(void);

static void
em_master_reload_progress(void)
{
    if (!em_m.reloading || em_m.next_conf != NULL || em_master_count(EM_M_DRAINING) > 0) {
        return;
    }
    em_m.reloading = 0;
    evtimer_del(em_m.reload_ev);
    em_log(EM_LOG_INFO, 0, em_m.reload_switched ? "reload: done, the old workers are gone"
                                                : "reload: cancelled, its new workers are gone");
    if (em_m.reload_queued && !em_m.stopping) {
        em_m.reload_queued = 0;
        em_master_reload();
    }
}

/* Every new worker serves: they take the new connections, the old ones drain. */
static void
em_master_reload_switch(void)
{
    em_conf_t *old = em_m.conf;
    unsigned   draining = 0;

    em_master_listeners_free(em_m.listeners, em_m.nlisteners, em_m.next_listeners,
                             em_m.next_nlisteners);
    em_m.listeners = em_m.next_listeners;
    em_m.nlisteners = em_m.next_nlisteners;
    em_m.next_listeners = NULL;
    em_m.next_nlisteners = 0;
    (void) em_master_listeners_start();
    em_m.conf = em_m.next_conf;
    em_m.next_conf = NULL;
    em_m.reload_switched = 1;
    em_log_level = (em_log_level_t) em_m.conf->log_level;
    em_master_nofile(em_m.conf);
    em_conf_free(old);
    for (unsigned i = 0; i < em_m.nslots; i++) {
        em_slot_t *s = &em_m.slots[i];
        if (s->mode == EM_M_SERVING) {
            if (s->pid == 0) {
                em_master_slot_free(i);         /* dead, waiting to restart: no more */
                continue;
            }
            s->mode = EM_M_DRAINING;
            em_state_slot_mode(&em_m.state, i, EM_SLOT_DRAINING);
            draining++;
            em_chan_msg_t msg = { .type = EM_CHAN_DRAIN, .slot = (uint16_t) i };
            if (s->chan < 0 || em_chan_send(s->chan, &msg, NULL, -1) != EM_OK) {
                kill(s->pid, SIGTERM);          /* the same goodbyes, the hard way */
            }
        } else if (s->mode == EM_M_STARTING) {
            s->mode = EM_M_SERVING;
        }
    }
    em_log(EM_LOG_INFO, 0, "reload: %u new workers serve the new configuration, %u old ones drain",
           em_m.nworkers, draining);
    em_master_reload_arm(em_m.conf->worker_shutdown_timeout);
    em_master_status("READY=1\n");
    em_master_reload_progress();
}

static void
em_master_reload_ready(void)
{
    if (em_m.next_conf == NULL || em_master_count(EM_M_STARTING) == 0) {
        return;
    }
    for (unsigned i = 0; i < em_m.nslots; i++) {
        if (em_m.slots[i].mode == EM_M_STARTING && !em_m.slots[i].ready) {
            return;
        }
    }
    em_master_reload_switch();
}

static void
em_master_reload_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    if (em_m.next_conf != NULL) {
        em_master_reload_abort("the new workers did not start in time");
        return;
    }
    for (unsigned i = 0; i < em_m.nslots; i++) {
        if (em_m.slots[i].mode == EM_M_DRAINING && em_m.slots[i].pid > 0) {
            em_log(EM_LOG_WARN, 0, "worker %u did not drain within worker_shutdown_timeout: SIGKILL",
                   i + 1);
            kill(em_m.slots[i].pid, SIGKILL);
        }
    }
}

/*
 * SIGHUP: read the configuration again. Invalid (syntax, a script that does
 * not compile, a key file, a listener that cannot be bound): the running
 * one stays, and the log says why. Valid: new workers start on it in free
 * slots; once each runs, they take every new connection, the listeners
 * change (the kept ones are never closed), and the old workers drain.
 */
static void
em_master_reload(void)
{
    char       err[1024];
    em_conf_t *conf;
    unsigned   started = 0, nfree = 0;

    if (em_m.stopping) {
        return;
    }
    if (em_m.reloading) {
        em_m.reload_queued = 1;
        em_log(EM_LOG_INFO, 0, "SIGHUP: a reload is in progress; this one follows it");
        return;
    }
    em_log(EM_LOG_INFO, 0, "SIGHUP: reloading the configuration %s",
           em_m.file != NULL ? em_m.file : "(embedded)");
    struct timespec mono;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the configuration",
               (unsigned long long) mono.tv_sec * 1000000ULL + (unsigned long long) mono.tv_nsec / 1000);
    conf = em_conf_load_with(em_m.file, em_m.over, err, sizeof(err));
    if (conf != NULL && (em_lua_check_scripts(conf, 0, err, sizeof(err)) != EM_OK
                         || em_tls_check(conf, err, sizeof(err)) != EM_OK)) {
        em_conf_free(conf);
        conf = NULL;
    }
    if (conf == NULL) {
        em_log(EM_LOG_ERR, 0, "reload failed: %s; still serving the previous configuration", err);
        em_master_status("READY=1\n");
        return;
    }
    em_master_keep_settings(conf);
    for (unsigned i = 0; i < em_m.nslots; i++) {
        nfree += em_m.slots[i].mode == EM_M_FREE && em_m.slots[i].pid == 0;
    }
    if (nfree < em_m.nworkers) {
        em_log(EM_LOG_ERR, 0, "reload failed: the new workers need %u free slots beside the "
               "running ones and there are %u (%d at most: a reload needs workers <= %d); still "
               "serving the previous configuration: restart emitd to apply it", em_m.nworkers,
               nfree, EM_MAX_WORKERS, EM_MAX_WORKERS / 2);
        em_conf_free(conf);
        em_master_status("READY=1\n");
        return;
    }
    if (em_master_listeners_open(conf, em_m.listeners, em_m.nlisteners, &em_m.next_listeners,
                                 &em_m.next_nlisteners) != 0) {
        em_log(EM_LOG_ERR, 0, "reload failed: a listener cannot be bound (see above); still "
               "serving the previous configuration");
        em_conf_free(conf);
        em_master_status("READY=1\n");
        return;
    }
    em_m.next_conf = conf;
    em_m.reloading = 1;
    if (conf->tls != NULL) {
        (void) em_tls_ticket_keys_new();     /* the new workers' own: rotated */
    }
    em_m.reload_switched = 0;
    for (unsigned i = 0; i < em_m.nslots && started < em_m.nworkers; i++) {
        if (em_m.slots[i].mode == EM_M_FREE && em_m.slots[i].pid == 0) {
            em_master_spawn(i, conf, EM_M_STARTING);
            started += em_m.slots[i].mode == EM_M_STARTING;
        }
    }
    if (started < em_m.nworkers) {
        em_master_reload_abort("a new worker could not be started");
        return;
    }
    em_master_reload_arm(EM_MASTER_START_DEADLINE_MS);
}

/*
 * When to start a dead child again: at once after a death that ended a
 * run of 2 s or more, and after the first quick one (a run shorter than
 * that); from the second quick death in a row on, after 250 ms doubling
 * each time, up to 30 s, so a child that cannot live never makes the master
 * spin. Logged; /health says the child is down meanwhile.
 */
#define EM_MASTER_BACKOFF_FIRST_MS 250
#define EM_MASTER_BACKOFF_MAX_MS   30000

static struct timeval
em_master_backoff(const char *who, unsigned quick_deaths)
{
    unsigned ms = 0;

    if (quick_deaths > 1) {
        unsigned shift = EM_MIN(quick_deaths - 2, 16u);
        ms = EM_MIN((unsigned) EM_MASTER_BACKOFF_FIRST_MS << shift, (unsigned) EM_MASTER_BACKOFF_MAX_MS);
    }
    if (ms == 0) {
        em_log(EM_LOG_WARN, 0, "restarting %s at once", who);
    } else {
        em_log(EM_LOG_WARN, 0, "restarting %s in %u ms (%u quick deaths in a row)", who, ms,
               quick_deaths);
    }
    return (struct timeval) { ms / 1000, (ms % 1000) * 1000 };
}

static void
em_master_reap(void)
{
    int   status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (em_m.have_broker && pid == em_m.broker.pid) {
            em_log(em_m.stopping ? EM_LOG_INFO : EM_LOG_ERR, 0, "the broker (pid %d) %s %d",
                   (int) pid, WIFSIGNALED(status) ? "was killed by signal" : "exited with code",
                   WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            em_m.broker.pid = 0;
            em_state_broker_set(&em_m.state, 0);
            if (!em_m.stopping) {
                em_broker_proc_t *b = &em_m.broker;
                b->quick_deaths = (time(NULL) - b->started < 2) ? b->quick_deaths + 1 : 0;
                struct timeval tv = em_master_backoff("the broker", b->quick_deaths);
                if (b->respawn_ev == NULL) {
                    b->respawn_ev = evtimer_new(em_m.base, em_master_broker_respawn_cb, NULL);
                }
                evtimer_add(b->respawn_ev, &tv);
            }
            continue;
        }
        for (unsigned i = 0; i < em_m.nslots; i++) {
            em_slot_t *s = &em_m.slots[i];
            if (s->pid != pid) {
                continue;
            }
            int level = em_m.stopping || s->mode == EM_M_DRAINING ? EM_LOG_INFO : EM_LOG_ERR;
            if (WIFSIGNALED(status)) {
                em_log(level, 0,
                       "worker %u (pid %d) was killed by signal %d", i + 1, (int) pid,
                       WTERMSIG(status));
            } else {
                em_log(level, 0,
                       "worker %u (pid %d) exited with code %d", i + 1, (int) pid,
                       WEXITSTATUS(status));
            }
            s->pid = 0;
            em_state_slot_set(&em_m.state, i, 0);
            if (s->chan_ev != NULL) {
                event_free(s->chan_ev);
                s->chan_ev = NULL;
            }
            if (s->chan >= 0) {
                close(s->chan);
                s->chan = -1;
            }
            if (s->mode != EM_M_SERVING || em_m.stopping) {
                /* An old worker that drained, or a reload's new one. */
                em_slot_mode_t was = s->mode;
                em_master_slot_free(i);
                if (was == EM_M_STARTING && !em_m.stopping) {
                    em_master_reload_abort("a new worker exited before it served (see above)");
                }
                em_master_reload_progress();
                break;
            }
            if (WIFEXITED(status) && WEXITSTATUS(status) == EM_WORKER_EXIT_FATAL) {
                /* Its scripts cannot load: restarting would only fail again. */
                em_log(EM_LOG_ERR, 0, "worker %u cannot start (see above): shutting down", i + 1);
                em_m.exit_code = 1;
                kill(getpid(), SIGTERM);
                break;
            }
            /* Restart at once, but back off from a worker that keeps dying. */
            s->quick_deaths = (time(NULL) - s->started < 2) ? s->quick_deaths + 1 : 0;
            char who[32];
            snprintf(who, sizeof(who), "worker %u", i + 1);
            struct timeval tv = em_master_backoff(who, s->quick_deaths);
            if (s->respawn_ev == NULL) {
                s->respawn_ev = evtimer_new(em_m.base, em_master_respawn_cb, (void *) (uintptr_t) i);
            }
            evtimer_add(s->respawn_ev, &tv);
            break;
        }
    }
}

static int
em_master_children(void)
{
    int n = em_m.broker.pid > 0;

    for (unsigned i = 0; i < em_m.nslots; i++) {
        n += em_m.slots[i].pid > 0;
    }
    return n;
}

static void
em_master_kill_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    if (em_m.broker.pid > 0) {
        kill(em_m.broker.pid, SIGKILL);
    }
    for (unsigned i = 0; i < em_m.nslots; i++) {
        if (em_m.slots[i].pid > 0) {
            em_log(EM_LOG_WARN, 0, "worker %u did not exit within shutdown_timeout: SIGKILL", i + 1);
            kill(em_m.slots[i].pid, SIGKILL);
        }
    }
}

static void
em_master_signal(int sig)
{
    switch (sig) {
    case SIGCHLD:
        em_master_reap();
        break;
    case SIGHUP:
        em_master_reload();
        return;
    case SIGUSR1:
        /* logrotate moved the log file: open it again here and in every child */
        em_log_reopen();
        for (unsigned i = 0; i < em_m.nslots; i++) {
            if (em_m.slots[i].pid > 0) {
                kill(em_m.slots[i].pid, SIGUSR1);
            }
        }
        if (em_m.broker.pid > 0) {
            kill(em_m.broker.pid, SIGUSR1);
        }
        return;
    case SIGTERM:
    case SIGINT:
    case SIGQUIT:
        if (!em_m.stopping) {
            em_log(EM_LOG_INFO, 0, "signal %d: shutting down", (int) sig);
            sd_notify(0, "STOPPING=1\nSTATUS=shutting down");
            em_m.stopping = 1;
            /* The listeners stay open until the workers are gone: a polling
             * client's last GET, on a new connection, fetches the goodbyes
             * its worker sends (new sessions are refused there). */
            for (unsigned i = 0; i < em_m.nslots; i++) {
                if (em_m.slots[i].pid > 0) {
                    kill(em_m.slots[i].pid, SIGTERM);
                }
            }
            if (em_m.broker.pid > 0) {
                kill(em_m.broker.pid, SIGTERM);
            }
            /* SIGQUIT: the same goodbyes, without a deadline */
            unsigned ms = em_m.conf->shutdown_timeout;
            if (sig != SIGQUIT && ms > 0) {
                struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
                em_m.kill_ev = evtimer_new(em_m.base, em_master_kill_cb, NULL);
                evtimer_add(em_m.kill_ev, &tv);
            }
        }
        break;
    }
    if (em_m.stopping && em_master_children() == 0) {
        event_base_loopbreak(em_m.base);
    }
}

/* Signals arrive as reads on a signalfd, so no handler runs at all and
 * forked children inherit no signal machinery of the master's loop. */
static void
em_master_signalfd_cb(evutil_socket_t fd, short what, void *arg)
{
    struct signalfd_siginfo si;
    (void) what;
    (void) arg;

    for (int i = 0; i < 64; i++) {
        if (read(fd, &si, sizeof(si)) != (ssize_t) sizeof(si)) {
            return;
        }
        em_master_signal((int) si.ssi_signo);
    }
}

int
em_master_run(em_conf_t *conf, const char *file, const char *over)
{
    static const int sigs[] = { SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1 };
    struct event    *sigev;
    int              sfd;

    em_m.conf = conf;
    em_m.file = file;
    em_m.over = over;
    em_m.nworkers = conf->workers;
    /* Twice the slots, so that a reload can run its new workers beside the
     * old ones (at most EM_MAX_WORKERS: more than half that cannot reload). */
    em_m.nslots = EM_MIN(2 * conf->workers, (unsigned) EM_MAX_WORKERS);
    em_log_set_role("master");
    em_proc_title_set("emitd: master");
    signal(SIGPIPE, SIG_IGN);

    em_master_nofile(conf);
    if (em_master_ids(conf) != 0) {
        return 1;
    }
    if (em_master_listeners_open(conf, NULL, 0, &em_m.listeners, &em_m.nlisteners) != 0) {
        em_log(EM_LOG_ERR, 0, "exiting");
        return 1;
    }

    em_m.base = event_base_new();
    if (em_m.base == NULL) {
        em_log(EM_LOG_ERR, 0, "event_base_new() failed");
        return 1;
    }
    sigemptyset(&em_m.sigmask);
    for (size_t i = 0; i < EM_NELEMS(sigs); i++) {
        sigaddset(&em_m.sigmask, sigs[i]);
    }
    sigprocmask(SIG_BLOCK, &em_m.sigmask, NULL);
    sfd = signalfd(-1, &em_m.sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
    sigev = (sfd >= 0) ? event_new(em_m.base, sfd, EV_READ | EV_PERSIST, em_master_signalfd_cb, NULL)
                       : NULL;
    if (sigev == NULL || event_add(sigev, NULL) != 0) {
        em_log(EM_LOG_ERR, errno, "signalfd() failed");
        return 1;
    }
    /* With several workers, a broker relays between them through rings in
     * a shared segment made now, so that restarted processes find it. */
    em_m.shm.fd = em_m.broker_bell = -1;
    for (unsigned i = 0; i < EM_MAX_WORKERS; i++) {
        em_m.worker_bells[i] = -1;
    }
    /* The cluster-wide state (presence, rooms, recovery sessions, rate
     * limits, monitoring) outlives any worker or broker. */
    em_state_sizes_t sizes;
    em_state_default_sizes(&sizes);
    sizes.sessions = conf->recovery_sessions;
    sizes.log_bytes = conf->recovery ? conf->recovery_buffer : 65536;
    sizes.store = conf->store_entries;
    if (em_state_create(&em_m.state, em_m.nslots, &sizes) != EM_OK) {
        return 1;
    }
    if (em_m.nworkers > 1 || conf->redis != NULL) {
        if (em_shm_create(&em_m.shm, em_m.nslots) != EM_OK
            || (em_m.broker_bell = em_ring_bell_open()) < 0) {
            return 1;
        }
        for (unsigned i = 0; i < em_m.nslots; i++) {
            if ((em_m.worker_bells[i] = em_ring_bell_open()) < 0) {
                return 1;
            }
        }
        em_m.have_broker = 1;
        em_master_spawn_broker();
    }
    for (unsigned i = 0; i < em_m.nslots; i++) {
        em_m.slots[i].chan = -1;
    }
    if (conf->tls != NULL && em_tls_ticket_keys_new() != EM_OK) {
        em_log(EM_LOG_WARN, 0, "no random bytes for TLS ticket keys: each worker makes its own");
    }
    for (unsigned i = 0; i < em_m.nworkers; i++) {
        em_master_spawn(i, conf, EM_M_SERVING);
    }
    em_m.accept_ev = evtimer_new(em_m.base, em_master_accept_resume, NULL);
    em_m.reload_ev = evtimer_new(em_m.base, em_master_reload_timer_cb, NULL);
    if (em_m.accept_ev == NULL || em_m.reload_ev == NULL || em_master_listeners_start() != 0) {
        return 1;
    }
    em_log(EM_LOG_INFO, 0, "emitd %s started with %u workers", EM_VERSION, em_m.nworkers);
    if (conf->pid_file != NULL && em_master_pid_write(conf->pid_file) != 0) {
        em_m.exit_code = 1;
        kill(getpid(), SIGTERM);      /* stop the children the usual way */
    } else {
        char ready[64];
        snprintf(ready, sizeof(ready), "READY=1\nMAINPID=%d\n", (int) getpid());
        em_master_status(ready);
    }
    struct timeval every = { EM_MASTER_STATUS_SECONDS, 0 };
    struct event  *status_ev = getenv("NOTIFY_SOCKET") != NULL
                                   ? event_new(em_m.base, -1, EV_PERSIST, em_master_status_cb, NULL)
                                   : NULL;
    if (status_ev != NULL) {
        event_add(status_ev, &every);
    }

    event_base_dispatch(em_m.base);

    em_log(EM_LOG_INFO, 0, "exiting");
    if (status_ev != NULL) {
        event_free(status_ev);
    }
    if (em_m.conf->pid_file != NULL) {           /* a reload keeps it */
        em_master_pid_remove(em_m.conf->pid_file);
    }
    event_free(sigev);
    close(sfd);
    for (unsigned i = 0; i < em_m.nslots; i++) {
        if (em_m.slots[i].respawn_ev) {
            event_free(em_m.slots[i].respawn_ev);
        }
    }
    if (em_m.broker.respawn_ev) {
        event_free(em_m.broker.respawn_ev);
    }
    em_master_listeners_free(em_m.listeners, em_m.nlisteners, NULL, 0);
    em_master_listeners_free(em_m.next_listeners, em_m.next_nlisteners, NULL, 0);
    if (em_m.kill_ev) {
        event_free(em_m.kill_ev);
    }
    event_free(em_m.accept_ev);
    event_free(em_m.reload_ev);
    event_base_free(em_m.base);
    em_conf_free(em_m.next_conf);
    em_conf_free(em_m.conf);
    return em_m.exit_code;
}
