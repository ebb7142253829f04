/*
 * em_bench.h - emitd-bench: options, the figures a worker process reports,
 * and the messages on the pipes between the parent and its workers.
 *
 * The parent forks -w workers. Each opens its share of the connections in
 * its own libevent loop and reports over its pipe: READY once its set-up
 * (connections opened, rooms joined) is done, PROGRESS once a second, and
 * RESULT at the end. The parent answers on a second pipe with GO (every
 * worker is ready: start measuring) and STOP (the duration is over: drain
 * and report), and asks for a PROGRESS once a second with a PROGRESS byte
 * (so that every worker's counters are read at the same moment: the
 * per-second samples). A worker whose parent goes away exits.
 */
#ifndef EM_BENCH_H
#define EM_BENCH_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

#include "em_core.h"
#include "em_bench_hist.h"
#include "em_bench_proto.h"

typedef enum {
    EM_BENCH_CONNECT = 0,
    EM_BENCH_IDLE,
    EM_BENCH_ECHO,
    EM_BENCH_BROADCAST,
    EM_BENCH_RECONNECT
} em_bench_scenario_t;

typedef enum {
    EM_BENCH_WEBSOCKET = 0,
    EM_BENCH_POLLING
} em_bench_transport_t;

#define EM_BENCH_MAX_SOURCES  254
#define EM_BENCH_MAX_WORKERS  64
#define EM_BENCH_ROOM         "bench"

typedef struct {
    em_bench_scenario_t  scenario;
    em_bench_transport_t transport;
    unsigned             connections;     /* -c */
    unsigned             duration_ms;     /* -d, in seconds on the command line */
    unsigned             workers;         /* -w */
    unsigned             sources;         /* --sources: 127.0.0.1 .. 127.0.0.N */
    unsigned             rate;            /* --rate: publishes/s, 0 = closed loop */
    unsigned             payload;         /* --payload: filler bytes per message */
    unsigned             timeout_ms;      /* --timeout: a handshake or an ack */
    unsigned             hold_ms;         /* --hold: reconnect's mean hold time */
    int                  storm;           /* --storm: every hold exactly hold_ms */
    int                  json;
    int                  allow_remote;
    int                  progress;        /* progress line on stderr */
    pid_t                server_pid;      /* --pid, 0 = unknown */
    const char          *url;
    const char          *nsp;             /* --nsp, "/" by default */
    em_bench_url_t       target;
    struct sockaddr_storage addr;         /* resolved target */
    socklen_t            addrlen;
} em_bench_opts_t;

/* Counters a worker keeps; summed by the parent. */
typedef struct {
    uint64_t opened;          /* connections that completed a first handshake */
    uint64_t handshakes;      /* every completed EIO open + CONNECT */
    uint64_t current;         /* connections established right now */
    uint64_t requests;        /* emits that asked for an ack */
    uint64_t acks;            /* acks received in time */
    uint64_t publishes;       /* broadcast: publish events sent */
    uint64_t deliveries;      /* broadcast: ticks received */
    uint64_t bytes_sent;
    uint64_t bytes_recv;
    uint64_t errors;          /* failed connects, protocol errors, closes */
    uint64_t timeouts;        /* handshakes or acks past --timeout */
    uint64_t closed_by_server;
    uint64_t joined;          /* broadcast: subscribers in the room */
    uint64_t reconnects;      /* reconnect: drops followed by a new handshake */
} em_bench_counters_t;

/* RESULT: crosses the process boundary over a pipe, sent whole. */
typedef struct {
    uint32_t            version;
    uint32_t            worker;
    uint64_t            measured_us;  /* GO to STOP as this worker saw it */
    em_bench_counters_t c;
    em_bench_hist_t     latency;      /* the scenario's latency */
    em_bench_hist_t     connect;      /* handshake latency (all scenarios) */
} em_bench_result_t;

#define EM_BENCH_RESULT_VERSION 1

_Static_assert(sizeof(em_bench_counters_t) == 14 * 8, "counters are 14 u64");
_Static_assert(sizeof(em_bench_result_t) % 8 == 0, "result is u64-aligned");

enum {
    EM_BENCH_MSG_READY = 1,
    EM_BENCH_MSG_PROGRESS,
    EM_BENCH_MSG_RESULT
};

/* Header of a worker -> parent message; `len` bytes of body follow
 * (0 for READY, an em_bench_counters_t for PROGRESS, an em_bench_result_t
 * for RESULT). */
typedef struct {
    uint32_t type;
    uint32_t len;
} em_bench_msg_t;

#define EM_BENCH_CTL_GO       'G'
#define EM_BENCH_CTL_STOP     'S'
#define EM_BENCH_CTL_PROGRESS 'P'    /* answer with a PROGRESS now */

/* Monotonic clock in microseconds (CLOCK_MONOTONIC is one clock for every
 * process of the machine, so a timestamp taken by the publisher in one
 * worker is comparable with a subscriber's in another). */
uint64_t em_bench_now_us(void);

/*
 * Run one worker process: `index` of opts->workers, with its own share of
 * the connections. Reads control bytes from ctl_fd and writes messages to
 * res_fd. Returns the process exit status.
 */
int em_bench_worker_run(const em_bench_opts_t *opts, unsigned index,
                        int ctl_fd, int res_fd);

/* Server figures from /proc for a master PID and its children. */
typedef struct {
    unsigned processes;
    uint64_t utime_ticks, stime_ticks;
    uint64_t rss_bytes, pss_bytes;    /* pss_bytes 0 when unreadable */
} em_bench_server_t;

/* Sample the server (master pid and every process whose parent it is).
 * Returns EM_OK, or EM_ERROR when the pid is not there. */
int em_bench_server_sample(pid_t pid, em_bench_server_t *s);

/* Everything the report needs. */
typedef struct {
    const em_bench_opts_t *opts;
    em_bench_result_t      total;
    double                 duration_s;      /* measured window */
    int                    have_server;
    em_bench_server_t      server_before;   /* before any connection */
    em_bench_server_t      server_ready;    /* set-up done (idle: all held) */
    em_bench_server_t      server_go;       /* GO */
    em_bench_server_t      server_end;      /* all results in */
    uint64_t               expected_deliveries;
    const uint64_t        *per_sec;         /* the scenario's count in each
                                             * whole second measured */
    unsigned               nper_sec;
    int                    incomplete;      /* a worker did not report */
} em_bench_report_t;

/* The count a scenario is about (handshakes, held connections, acks,
 * deliveries, reconnects) and its name. */
uint64_t em_bench_main_count(em_bench_scenario_t s, const em_bench_counters_t *c,
                             const char **name);

/* Print the autocannon-style table to stdout. */
void em_bench_report_table(const em_bench_report_t *r);

/* Print the report as one JSON object to stdout. */
void em_bench_report_json(const em_bench_report_t *r);

/* Name of a scenario / transport. */
const char *em_bench_scenario_name(em_bench_scenario_t s);
const char *em_bench_transport_name(em_bench_transport_t t);

#endif
