/*
 * main.c - emitd-bench: the command line and the parent process, which
 * forks the workers, tells them when to start and stop, prints the
 * progress line, samples the server from /proc, merges the workers'
 * results and prints the report.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <event2/event.h>
#include <event2/buffer.h>

#include "em_bench.h"

#define EM_BENCH_SETUP_LIMIT_MS  30000   /* plus --timeout */
#define EM_BENCH_DRAIN_LIMIT_MS  15000   /* after STOP, for the results */

typedef struct {
    pid_t               pid;
    int                 ctl, res;
    struct event       *ev;
    struct evbuffer    *in;
    unsigned            ready:1, done:1, gone:1;
    em_bench_counters_t progress;
} em_bench_child_t;

static struct {
    em_bench_opts_t     opts;
    em_bench_child_t    child[EM_BENCH_MAX_WORKERS];
    struct event_base  *base;
    struct event       *go_limit_ev, *stop_ev, *deadline_ev, *progress_ev, *sigint_ev;
    unsigned            nready, ndone;
    int                 started, stopped;
    uint64_t            t_begin, t_go, t_stop, last_count, last_progress;
    uint64_t           *totals;         /* main count at each second's request */
    uint64_t           *per_sec;        /* differences of totals */
    unsigned            round, rounds_cap;
    uint64_t            t_request;      /* last PROGRESS request while measuring */
    em_bench_report_t   report;
} B;

static void
em_bench_usage(FILE *f)
{
    fprintf(f,
"usage: emitd-bench [options] URL\n"
"  URL                     ws://127.0.0.1:3000 (or http://...; a path sets the\n"
"                          Engine.IO path, /socket.io/ by default)\n"
"  -c, --connections N     connections (connect: handshakes in flight) [10]\n"
"  -d, --duration SEC      seconds to measure [10]\n"
"  -s, --scenario NAME     connect | idle | echo | broadcast | reconnect [echo]\n"
"  -t, --transport NAME    websocket | polling [websocket]\n"
"  -w, --workers N         client processes [1]\n"
"  -S, --sources N         source addresses 127.0.0.1 .. 127.0.0.N [1]\n"
"  -r, --rate N            broadcast: publishes per second, 0 = on each ack [0]\n"
"  -p, --payload BYTES     filler bytes in each message [16]\n"
"  -T, --timeout MS        limit for a handshake, a join or an ack [10000]\n"
"  -H, --hold MS           reconnect: mean time a connection is held [1000]\n"
"      --storm             reconnect: hold exactly --hold, all drop together\n"
"  -P, --pid PID           the server's master PID: CPU and memory from /proc\n"
"  -n, --nsp NAME          Socket.IO namespace [/]\n"
"  -j, --json              print the report as JSON\n"
"      --progress          progress line on stderr even when it is no terminal\n"
"  -q, --no-progress       no progress line\n"
"      --allow-remote      allow a target that is not a loopback address\n"
"  -h, --help, -V, --version\n");
}

static int
em_bench_number(const char *s, const char *what, double lo, double hi, double *out)
{
    char  *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "emitd-bench: %s must be a number from %.10g to %.10g: \"%s\"\n",
                what, lo, hi, s);
        return EM_ERROR;
    }
    *out = v;
    return EM_OK;
}

static int
em_bench_parse_args(int argc, char **argv, em_bench_opts_t *o)
{
    enum { OPT_ALLOW_REMOTE = 256, OPT_PROGRESS, OPT_STORM };
    static const struct option longopts[] = {
        { "connections", required_argument, NULL, 'c' },
        { "duration", required_argument, NULL, 'd' },
        { "scenario", required_argument, NULL, 's' },
        { "transport", required_argument, NULL, 't' },
        { "workers", required_argument, NULL, 'w' },
        { "sources", required_argument, NULL, 'S' },
        { "rate", required_argument, NULL, 'r' },
        { "payload", required_argument, NULL, 'p' },
        { "timeout", required_argument, NULL, 'T' },
        { "hold", required_argument, NULL, 'H' },
        { "storm", no_argument, NULL, OPT_STORM },
        { "pid", required_argument, NULL, 'P' },
        { "nsp", required_argument, NULL, 'n' },
        { "json", no_argument, NULL, 'j' },
        { "no-progress", no_argument, NULL, 'q' },
        { "progress", no_argument, NULL, OPT_PROGRESS },
        { "allow-remote", no_argument, NULL, OPT_ALLOW_REMOTE },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    static const char *scenarios[] = { "connect", "idle", "echo", "broadcast", "reconnect" };
    double             v;
    int                ch;
    unsigned           i;

    memset(o, 0, sizeof(*o));
    o->scenario = EM_BENCH_ECHO;
    o->connections = 10;
    o->duration_ms = 10000;
    o->workers = 1;
    o->sources = 1;
    o->payload = 16;
    o->timeout_ms = 10000;
    o->hold_ms = 1000;
    o->nsp = "/";
    o->progress = isatty(STDERR_FILENO);

    while ((ch = getopt_long(argc, argv, "c:d:s:t:w:S:r:p:T:H:P:n:jqhV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            if (em_bench_number(optarg, "--connections", 1, 1000000, &v)) return EM_ERROR;
            o->connections = (unsigned) v;
            break;
        case 'd':
            if (em_bench_number(optarg, "--duration", 0.1, 86400, &v)) return EM_ERROR;
            o->duration_ms = (unsigned) (v * 1000.0);
            break;
        case 's':
            for (i = 0; i < EM_NELEMS(scenarios) && strcmp(optarg, scenarios[i]) != 0; i++) {
            }
            if (i == EM_NELEMS(scenarios)) {
                fprintf(stderr, "emitd-bench: unknown scenario \"%s\"\n", optarg);
                return EM_ERROR;
            }
            o->scenario = (em_bench_scenario_t) i;
            break;
        case 't':
            if (strcmp(optarg, "websocket") == 0) {
                o->transport = EM_BENCH_WEBSOCKET;
            } else if (strcmp(optarg, "polling") == 0) {
                o->transport = EM_BENCH_POLLING;
            } else {
                fprintf(stderr, "emitd-bench: unknown transport \"%s\"\n", optarg);
                return EM_ERROR;
            }
            break;
        case 'w':
            if (em_bench_number(optarg, "--workers", 1, EM_BENCH_MAX_WORKERS, &v)) return EM_ERROR;
            o->workers = (unsigned) v;
            break;
        case 'S':
            if (em_bench_number(optarg, "--sources", 1, EM_BENCH_MAX_SOURCES, &v)) return EM_ERROR;
            o->sources = (unsigned) v;
            break;
        case 'r':
            if (em_bench_number(optarg, "--rate", 0, 10000000, &v)) return EM_ERROR;
            o->rate = (unsigned) v;
            break;
        case 'p':
            if (em_bench_number(optarg, "--payload", 0, 1000000, &v)) return EM_ERROR;
            o->payload = (unsigned) v;
            break;
        case 'T':
            if (em_bench_number(optarg, "--timeout", 10, 600000, &v)) return EM_ERROR;
            o->timeout_ms = (unsigned) v;
            break;
        case 'H':
            if (em_bench_number(optarg, "--hold", 0, 3600000, &v)) return EM_ERROR;
            o->hold_ms = (unsigned) v;
            break;
        case 'P':
            if (em_bench_number(optarg, "--pid", 1, 4194304, &v)) return EM_ERROR;
            o->server_pid = (pid_t) v;
            break;
        case 'n':
            if (optarg[0] != '/' || strlen(optarg) > 200 || strpbrk(optarg, ",\"\\") != NULL) {
                fprintf(stderr, "emitd-bench: bad namespace \"%s\"\n", optarg);
                return EM_ERROR;
            }
            o->nsp = optarg;
            break;
        case 'j': o->json = 1; break;
        case 'q': o->progress = 0; break;
        case OPT_PROGRESS: o->progress = 1; break;
        case OPT_STORM: o->storm = 1; break;
        case OPT_ALLOW_REMOTE: o->allow_remote = 1; break;
        case 'h': em_bench_usage(stdout); exit(0);
        case 'V': printf("emitd-bench %s\n", EM_VERSION); exit(0);
        default: em_bench_usage(stderr); return EM_ERROR;
        }
    }
    if (optind != argc - 1) {
        em_bench_usage(stderr);
        return EM_ERROR;
    }
    o->url = argv[optind];
    if (em_bench_url_parse(o->url, &o->target) != EM_OK) {
        fprintf(stderr, "emitd-bench: bad URL \"%s\" (ws://host[:port][/path])\n", o->url);
        return EM_ERROR;
    }
    if (o->workers > o->connections) {
        o->workers = o->connections;
    }
    return EM_OK;
}

/* Resolve the target and refuse anything but loopback unless allowed. */
static int
em_bench_resolve(em_bench_opts_t *o)
{
    struct addrinfo hints, *res, *ai;
    int             rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(o->target.host, o->target.port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "emitd-bench: getaddrinfo(%s) failed: %s\n", o->target.host,
                gai_strerror(rc));
        return EM_ERROR;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if (!em_bench_addr_is_loopback(ai->ai_addr) && !o->allow_remote) {
            fprintf(stderr, "emitd-bench: %s is not a loopback address; refusing to load "
                    "another host (--allow-remote to do it anyway)\n", o->target.host);
            freeaddrinfo(res);
            return EM_ERROR;
        }
    }
    memcpy(&o->addr, res->ai_addr, res->ai_addrlen);
    o->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    if (o->sources > 1 && o->addr.ss_family != AF_INET) {
        fprintf(stderr, "emitd-bench: --sources needs an IPv4 target; using one source\n");
        o->sources = 1;
    }
    return EM_OK;
}

/* Enough descriptors: polling needs two per connection. */
static void
em_bench_raise_nofile(const em_bench_opts_t *o)
{
    struct rlimit rl;
    rlim_t        need = (rlim_t) (o->connections / o->workers + 2)
                         * (o->transport == EM_BENCH_POLLING ? 2 : 1) + 64;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void) setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need) {
        fprintf(stderr, "emitd-bench: warning: %llu connections per worker need about %llu "
                "descriptors but the limit is %llu (raise ulimit -n or use more -w)\n",
                (unsigned long long) (o->connections / o->workers),
                (unsigned long long) need, (unsigned long long) rl.rlim_cur);
    }
}

static void
em_bench_tell(char byte)
{
    unsigned i;

    for (i = 0; i < B.opts.workers; i++) {
        if (!B.child[i].gone && write(B.child[i].ctl, &byte, 1) != 1) {
            B.child[i].gone = 1;
        }
    }
}

static void
em_bench_clear_progress(void)
{
    if (B.opts.progress) {
        fputs("\r\033[K", stderr);
    }
}

static void
em_bench_go(void)
{
    struct timeval tv = { (time_t) (B.opts.duration_ms / 1000),
                          (suseconds_t) (B.opts.duration_ms % 1000) * 1000 };

    if (B.started) {
        return;
    }
    B.started = 1;
    if (B.report.have_server) {
        (void) em_bench_server_sample(B.opts.server_pid, &B.report.server_ready);
        B.report.server_go = B.report.server_ready;
    }
    B.t_go = em_bench_now_us();
    B.last_progress = B.t_go;
    em_bench_tell(EM_BENCH_CTL_GO);
    em_bench_tell(EM_BENCH_CTL_PROGRESS);        /* the samples' origin */
    B.round = 1;
    B.t_request = B.t_go;
    evtimer_del(B.go_limit_ev);
    evtimer_add(B.stop_ev, &tv);
    /* Seconds counted from GO. */
    event_del(B.progress_ev);
    tv.tv_sec = 1;
    tv.tv_usec = 0;
    event_add(B.progress_ev, &tv);
}

/* The scenario's count summed over the workers' last PROGRESS. */
static uint64_t
em_bench_progress_sum(em_bench_counters_t *sum)
{
    const char *name;
    unsigned    i;

    memset(sum, 0, sizeof(*sum));
    for (i = 0; i < B.opts.workers; i++) {
        const em_bench_counters_t *p = &B.child[i].progress;

        sum->opened += p->opened;
        sum->current += p->current;
        sum->handshakes += p->handshakes;
        sum->acks += p->acks;
        sum->deliveries += p->deliveries;
        sum->reconnects += p->reconnects;
        sum->errors += p->errors;
        sum->timeouts += p->timeouts;
    }
    return em_bench_main_count(B.opts.scenario, sum, &name);
}

static void
em_bench_stop(void)
{
    if (B.stopped) {
        return;
    }
    if (!B.started) {
        em_bench_go();
    }
    B.stopped = 1;
    B.t_stop = em_bench_now_us();
    evtimer_del(B.stop_ev);
    /* Close the last second when the progress tick has not just done so:
     * its answer, the last PROGRESS, ends the last sample. */
    if (B.round > 0 && B.round < B.rounds_cap && B.t_stop - B.t_request >= 900000) {
        em_bench_counters_t sum;

        B.totals[B.round - 1] = em_bench_progress_sum(&sum);
        B.round++;
        em_bench_tell(EM_BENCH_CTL_PROGRESS);
    }
    em_bench_tell(EM_BENCH_CTL_STOP);
}

static void
em_bench_go_limit_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd; (void) what; (void) arg;
    em_bench_clear_progress();
    fprintf(stderr, "emitd-bench: warning: set-up not finished after %u ms; "
            "measuring with the connections open so far\n",
            EM_BENCH_SETUP_LIMIT_MS + B.opts.timeout_ms);
    em_bench_go();
}

static void
em_bench_stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd; (void) what; (void) arg;
    em_bench_stop();
}

static void
em_bench_sigint_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd; (void) what; (void) arg;
    em_bench_stop();
}

static void
em_bench_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    unsigned i;

    (void) fd; (void) what; (void) arg;
    em_bench_clear_progress();
    fprintf(stderr, "emitd-bench: time bound reached; stopping the workers\n");
    for (i = 0; i < B.opts.workers; i++) {
        if (!B.child[i].done && B.child[i].pid > 0) {
            kill(B.child[i].pid, SIGKILL);
        }
    }
    B.report.incomplete = 1;
    event_base_loopbreak(B.base);
}

static void
em_bench_progress_cb(evutil_socket_t fd, short what, void *arg)
{
    em_bench_counters_t sum;
    const char         *phase = !B.started ? "setting up" : !B.stopped ? "running" : "draining";
    uint64_t            now = em_bench_now_us(), count;
    double              el = B.started ? (double) (now - B.t_go) / 1e6 : 0, rate;

    (void) fd; (void) what; (void) arg;
    count = em_bench_progress_sum(&sum);
    if (B.started && !B.stopped && B.round < B.rounds_cap) {
        /* The answers to the last request are in: that second's total. */
        B.totals[B.round - 1] = count;
        B.round++;
        B.t_request = now;
    }
    if (!B.stopped) {
        em_bench_tell(EM_BENCH_CTL_PROGRESS);    /* none after STOP: see main() */
    }
    rate = now > B.last_progress
           ? (double) (count - EM_MIN(count, B.last_count)) * 1e6 / (double) (now - B.last_progress)
           : 0;
    B.last_count = count;
    B.last_progress = now;
    if (B.opts.progress) {
        fprintf(stderr, "\r\033[K%s %.0f/%.0fs  open %llu  %s %llu (%.0f/s)  errors %llu  "
                "timeouts %llu", phase, el, (double) B.opts.duration_ms / 1000.0,
                (unsigned long long) sum.current,
                B.opts.scenario == EM_BENCH_BROADCAST ? "deliveries"
                : B.opts.scenario == EM_BENCH_CONNECT ? "handshakes"
                : B.opts.scenario == EM_BENCH_RECONNECT ? "handshakes" : "acks",
                (unsigned long long) (B.opts.scenario == EM_BENCH_BROADCAST ? sum.deliveries
                                      : B.opts.scenario == EM_BENCH_ECHO ? sum.acks
                                      : sum.handshakes),
                rate, (unsigned long long) sum.errors, (unsigned long long) sum.timeouts);
    }
}

static void
em_bench_child_message(em_bench_child_t *ch, uint32_t type, const void *body, uint32_t len)
{
    const em_bench_result_t *r = body;

    switch (type) {
    case EM_BENCH_MSG_READY:
        if (!ch->ready) {
            ch->ready = 1;
            if (++B.nready == B.opts.workers) {
                em_bench_go();
            }
        }
        return;
    case EM_BENCH_MSG_PROGRESS:
        if (len == sizeof(em_bench_counters_t)) {
            memcpy(&ch->progress, body, len);
        }
        return;
    case EM_BENCH_MSG_RESULT:
        if (len != sizeof(*r) || r->version != EM_BENCH_RESULT_VERSION || ch->done) {
            fprintf(stderr, "emitd-bench: bad result from a worker\n");
            B.report.incomplete = 1;
            return;
        }
        ch->done = 1;
        {
            em_bench_counters_t *t = &B.report.total.c;
            const em_bench_counters_t *c = &r->c;

            t->opened += c->opened;
            t->handshakes += c->handshakes;
            t->current += c->current;
            t->requests += c->requests;
            t->acks += c->acks;
            t->publishes += c->publishes;
            t->deliveries += c->deliveries;
            t->bytes_sent += c->bytes_sent;
            t->bytes_recv += c->bytes_recv;
            t->errors += c->errors;
            t->timeouts += c->timeouts;
            t->closed_by_server += c->closed_by_server;
            t->joined += c->joined;
            t->reconnects += c->reconnects;
            em_bench_hist_merge(&B.report.total.latency, &r->latency);
            em_bench_hist_merge(&B.report.total.connect, &r->connect);
        }
        if (++B.ndone == B.opts.workers) {
            event_base_loopbreak(B.base);
        }
        return;
    default:
        return;
    }
}

static void
em_bench_child_cb(evutil_socket_t fd, short what, void *arg)
{
    em_bench_child_t *ch = arg;
    em_bench_msg_t    hdr;
    int               n;

    (void) what;
    n = evbuffer_read(ch->in, fd, 65536);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }
    while (evbuffer_get_length(ch->in) >= sizeof(hdr)) {
        evbuffer_copyout(ch->in, &hdr, sizeof(hdr));
        if (hdr.len > sizeof(em_bench_result_t)) {
            n = 0;                                /* garbage: drop the worker */
            break;
        }
        if (evbuffer_get_length(ch->in) < sizeof(hdr) + hdr.len) {
            break;
        }
        evbuffer_drain(ch->in, sizeof(hdr));
        em_bench_child_message(ch, hdr.type, evbuffer_pullup(ch->in, hdr.len), hdr.len);
        evbuffer_drain(ch->in, hdr.len);
    }
    if (n <= 0) {
        event_del(ch->ev);
        ch->gone = 1;
        if (!ch->done) {
            em_bench_clear_progress();
            fprintf(stderr, "emitd-bench: a worker process ended without its result\n");
            B.report.incomplete = 1;
            ch->done = 1;
            if (!ch->ready) {
                ch->ready = 1;
                if (++B.nready == B.opts.workers) {
                    em_bench_go();
                }
            }
            if (++B.ndone == B.opts.workers) {
                event_base_loopbreak(B.base);
            }
        }
    }
}

/* Fork the workers; each gets its control pipe (parent -> worker) and its
 * result pipe (worker -> parent). */
static int
em_bench_spawn(unsigned hard_s)
{
    unsigned i, k;
    int      ctl[2], res[2];
    pid_t    pid;

    for (i = 0; i < B.opts.workers; i++) {
        if (pipe2(ctl, O_CLOEXEC) != 0 || pipe2(res, O_CLOEXEC) != 0) {
            fprintf(stderr, "emitd-bench: pipe2() failed: %s\n", strerror(errno));
            return EM_ERROR;
        }
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
            fprintf(stderr, "emitd-bench: fork() failed: %s\n", strerror(errno));
            return EM_ERROR;
        }
        if (pid == 0) {
            for (k = 0; k < i; k++) {
                close(B.child[k].ctl);
                close(B.child[k].res);
            }
            close(ctl[1]);
            close(res[0]);
            signal(SIGINT, SIG_IGN);
            signal(SIGPIPE, SIG_IGN);
            alarm(hard_s + 5);                    /* never outlive the bound */
            /* exit(), not _exit(): sanitizers see the worker's end; stdio
             * was flushed before the fork. */
            exit(em_bench_worker_run(&B.opts, i, ctl[0], res[1]));
        }
        close(ctl[0]);
        close(res[1]);
        B.child[i].pid = pid;
        B.child[i].ctl = ctl[1];
        B.child[i].res = res[0];
    }
    return EM_OK;
}

/* Reap the workers, waiting at most a few seconds before killing. */
static void
em_bench_reap(void)
{
    unsigned i, left, tries;
    int      status;

    for (tries = 0; tries < 100; tries++) {
        left = 0;
        for (i = 0; i < B.opts.workers; i++) {
            if (B.child[i].pid > 0) {
                if (waitpid(B.child[i].pid, &status, WNOHANG) == B.child[i].pid
                    || (errno == ECHILD))
                {
                    B.child[i].pid = 0;
                } else {
                    left++;
                }
            }
        }
        if (left == 0) {
            return;
        }
        usleep(50000);
    }
    for (i = 0; i < B.opts.workers; i++) {
        if (B.child[i].pid > 0) {
            kill(B.child[i].pid, SIGKILL);
            (void) waitpid(B.child[i].pid, &status, 0);
        }
    }
}

int
main(int argc, char **argv)
{
    em_bench_opts_t *o = &B.opts;
    struct timeval   tv;
    unsigned         i, hard_s;

    if (em_bench_parse_args(argc, argv, o) != EM_OK) {
        return 2;
    }
    if (em_bench_resolve(o) != EM_OK) {
        return 2;
    }
    em_bench_raise_nofile(o);
    signal(SIGPIPE, SIG_IGN);

    B.report.opts = o;
    em_bench_hist_init(&B.report.total.latency);
    em_bench_hist_init(&B.report.total.connect);
    if (o->server_pid > 0) {
        if (em_bench_server_sample(o->server_pid, &B.report.server_before) == EM_OK) {
            B.report.have_server = 1;
        } else {
            fprintf(stderr, "emitd-bench: warning: no process %d in /proc; "
                    "no server figures\n", (int) o->server_pid);
        }
    }

    /* Every run is bounded: set-up, the duration, the drain. */
    hard_s = (EM_BENCH_SETUP_LIMIT_MS + o->timeout_ms + o->duration_ms
              + EM_BENCH_DRAIN_LIMIT_MS) / 1000 + 5;
    if (em_bench_spawn(hard_s) != EM_OK) {
        em_bench_reap();
        return 1;
    }

    B.rounds_cap = o->duration_ms / 1000 + 4;
    B.totals = calloc(B.rounds_cap, sizeof(uint64_t));
    B.per_sec = calloc(B.rounds_cap, sizeof(uint64_t));
    B.base = event_base_new();
    if (B.base == NULL || B.totals == NULL || B.per_sec == NULL) {
        fprintf(stderr, "emitd-bench: event_base_new() failed\n");
        return 1;
    }
    for (i = 0; i < o->workers; i++) {
        B.child[i].in = evbuffer_new();
        B.child[i].ev = event_new(B.base, B.child[i].res, EV_READ | EV_PERSIST,
                                  em_bench_child_cb, &B.child[i]);
        event_add(B.child[i].ev, NULL);
    }
    B.go_limit_ev = evtimer_new(B.base, em_bench_go_limit_cb, NULL);
    B.stop_ev = evtimer_new(B.base, em_bench_stop_cb, NULL);
    B.deadline_ev = evtimer_new(B.base, em_bench_deadline_cb, NULL);
    B.progress_ev = event_new(B.base, -1, EV_PERSIST, em_bench_progress_cb, NULL);
    B.sigint_ev = evsignal_new(B.base, SIGINT, em_bench_sigint_cb, NULL);
    tv.tv_sec = (EM_BENCH_SETUP_LIMIT_MS + o->timeout_ms) / 1000;
    tv.tv_usec = 0;
    evtimer_add(B.go_limit_ev, &tv);
    tv.tv_sec = hard_s;
    evtimer_add(B.deadline_ev, &tv);
    tv.tv_sec = 1;
    event_add(B.progress_ev, &tv);
    event_add(B.sigint_ev, NULL);
    B.t_begin = em_bench_now_us();

    event_base_dispatch(B.base);

    em_bench_clear_progress();
    if (B.report.have_server) {
        (void) em_bench_server_sample(o->server_pid, &B.report.server_end);
        if (!B.started) {
            B.report.server_go = B.report.server_ready = B.report.server_end;
        }
    }
    for (i = 0; i < o->workers; i++) {
        close(B.child[i].ctl);
        close(B.child[i].res);
        event_free(B.child[i].ev);
        evbuffer_free(B.child[i].in);
    }
    em_bench_reap();

    if (B.t_stop == 0) {
        B.t_stop = em_bench_now_us();
    }
    B.report.duration_s = B.t_go ? (double) (B.t_stop - B.t_go) / 1e6 : 0.0;
    if (B.round > 0) {
        em_bench_counters_t sum;

        /* No request after STOP: the last answers are the last total. */
        B.totals[B.round - 1] = em_bench_progress_sum(&sum);
        for (i = 0; i + 1 < B.round; i++) {
            B.per_sec[i] = B.totals[i + 1] >= B.totals[i] ? B.totals[i + 1] - B.totals[i] : 0;
        }
        B.report.per_sec = B.per_sec;
        B.report.nper_sec = B.round - 1;
    }
    B.report.expected_deliveries = B.report.total.c.publishes * B.report.total.c.joined;
    if (o->json) {
        em_bench_report_json(&B.report);
    } else {
        em_bench_report_table(&B.report);
    }

    event_free(B.go_limit_ev);
    event_free(B.stop_ev);
    event_free(B.deadline_ev);
    event_free(B.progress_ev);
    event_free(B.sigint_ev);
    event_base_free(B.base);
    free(B.totals);
    free(B.per_sec);
    return B.report.incomplete ? 1 : 0;
}
