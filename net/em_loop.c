/*
 * em_loop.c - the worker's shared loop context, its reaper, and the report
 * of limit violations.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "em_log.h"
#include "em_loop.h"
#include "em_tls.h"

static em_st_wstats_t em_loop_unmapped;    /* figures before the state is mapped */
em_loop_t em_loop = { .stats = &em_loop_unmapped };

#define EM_LOOP_REAPERS 8

static em_loop_reaper_t em_loop_reapers[EM_LOOP_REAPERS];
static size_t           em_loop_nreapers;
static struct event    *em_loop_reap_ev;

_Static_assert(EM_LIMIT_COUNT <= 32, "the suppressed limits are a 32-bit mask");

/* The violations of this second past the lines it may log: summed up in
 * one line when the second is over, by the timer or by the next one. */
static struct {
    time_t         second;
    unsigned       logged;
    unsigned       suppressed;
    uint32_t       limits;          /* 1 << em_limit_t of those suppressed */
    struct event  *flush_ev;
} em_loop_viol;

static void em_loop_violations_cb(evutil_socket_t fd, short what, void *arg);

int
em_loop_reaper_add(em_loop_reaper_t fn)
{
    if (em_loop_nreapers == EM_LOOP_REAPERS) {
        em_log(EM_LOG_ERR, 0, "too many reapers registered");
        return EM_ERROR;
    }
    em_loop_reapers[em_loop_nreapers++] = fn;
    return EM_OK;
}

void
em_loop_reap(void)
{
    int more;

    do {
        more = 0;
        for (size_t i = 0; i < em_loop_nreapers; i++) {
            more |= em_loop_reapers[i]();
        }
    } while (more);
}

static void
em_loop_reap_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    em_loop_reap();
}

int
em_loop_init(const em_conf_t *conf, struct event_base *base, unsigned slot, unsigned nworkers)
{
    em_loop.conf = conf;
    em_loop.base = base;
    em_loop.slot = slot;
    em_loop.nworkers = nworkers;
    em_loop_reap_ev = event_new(base, -1, 0, em_loop_reap_cb, NULL);
    em_loop_viol.flush_ev = evtimer_new(base, em_loop_violations_cb, NULL);
    if (em_loop_reap_ev == NULL || em_loop_viol.flush_ev == NULL) {
        em_log(EM_LOG_ERR, 0, "event_new() for the loop's timers failed");
        return EM_ERROR;
    }
    return EM_OK;
}

void
em_loop_schedule_reap(void)
{
    event_active(em_loop_reap_ev, EV_TIMEOUT, 0);
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

#define EM_LOOP_VIOLATION_LOGS 10     /* lines per second, then counted only */

static void
em_loop_violations_flush(void)
{
    char   names[256];
    size_t n = 0;

    if (em_loop_viol.suppressed == 0) {
        return;
    }
    names[0] = '\0';
    for (unsigned i = 0; i < EM_LIMIT_COUNT; i++) {
        if (em_loop_viol.limits & (1u << i)) {
            int w = snprintf(names + n, sizeof(names) - n, "%s%s", n ? ", " : "",
                             em_limit_names[i]);
            if (w < 0 || (size_t) w >= sizeof(names) - n) {
                break;
            }
            n += (size_t) w;
        }
    }
    em_log(EM_LOG_WARN, 0, "%u more clients closed for breaking limits (%s) in the last second "
           "(not logged one by one)", em_loop_viol.suppressed, names);
    em_loop_viol.suppressed = 0;
    em_loop_viol.limits = 0;
}

static void
em_loop_violations_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    em_loop_violations_flush();
}

void
em_loop_peer(int fd, char *ip, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t               sl = sizeof(ss);

    ip[0] = '\0';
    if (getpeername(fd, (struct sockaddr *) &ss, &sl) != 0) {
        return;
    }
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *) &ss)->sin_addr, ip, (socklen_t) len);
    } else if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *) &ss)->sin6_addr, ip, (socklen_t) len);
    } else if (ss.ss_family == AF_UNIX && em_tls_peer(fd, ip, len) != 0) {
        ip[0] = '\0';
    }
}

void
em_loop_violation(int fd, const char *sid, em_limit_t limit, const char *fmt, ...)
{
    char            why[200], ip[INET6_ADDRSTRLEN] = "", details[240];
    va_list         ap;
    time_t          now = time(NULL);

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (fd >= 0) {
        em_loop_peer(fd, ip, sizeof(ip));
    }
    if (now != em_loop_viol.second) {
        em_loop_violations_flush();
        em_loop_viol.second = now;
        em_loop_viol.logged = 0;
    }
    if (em_loop_viol.logged < EM_LOOP_VIOLATION_LOGS) {
        em_loop_viol.logged++;
        em_log(EM_LOG_WARN, 0, "closing client %s%s%s: %s (limit \"%s\")", ip[0] ? ip : "?",
               sid ? " session " : "", sid ? sid : "", why, em_limit_name(limit));
    } else {
        if (em_loop_viol.suppressed++ == 0 && em_loop_viol.flush_ev != NULL) {
            /* Said within a second even if no other client breaks one. */
            struct timeval tv = { 1, 0 };
            evtimer_add(em_loop_viol.flush_ev, &tv);
        }
        if ((unsigned) limit < EM_LIMIT_COUNT) {
            em_loop_viol.limits |= 1u << limit;
        }
    }
    if (em_loop.state != NULL && em_loop.state->hdr != NULL) {
        em_st_event_t ev;
        /* The reason is our own text: no quotes or backslashes to escape. */
        int n = snprintf(details, sizeof(details), "{\"limit\":\"%s\",\"reason\":\"%s\"}",
                         em_limit_name(limit), why);
        em_monitor_event_fill(&ev, "limit", (em_str_t) { sid, sid ? strlen(sid) : 0 }, EM_STR(""),
                              EM_STR(""), (em_str_t) { ip, strlen(ip) }, EM_STR(""),
                              n > 0 && (size_t) n < sizeof(details) ? (em_str_t) { details, (size_t) n }
                                                                       : (em_str_t) { NULL, 0 });
        em_monitor_violation(em_loop.state, &ev);
    }
}

