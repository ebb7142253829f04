/*
 * em_worker.h - a worker process: one libevent loop serving HTTP/1.1,
 * WebSocket, Engine.IO and Socket.IO for the connections the master hands it.
 */
#ifndef EM_WORKER_H
#define EM_WORKER_H

#include <event2/event.h>
#include <stdint.h>

#include "em_conf.h"

typedef struct em_conn    em_conn_t;
typedef struct em_eio_session em_eio_session_t;

/* Per-process state of a worker (one loop, one thread). */
typedef struct {
    const em_conf_t    *conf;
    struct event_base  *base;
    unsigned            slot;         /* 0-based; logs and scripts say slot + 1 */
    unsigned            nworkers;
    int                 chan;
    em_eio_session_t       *sessions;     /* uthash by sid */
    uint32_t            nsessions;
    uint32_t            conns_received;
    unsigned            load_dirty:1;
    unsigned            stopping:1;
    struct event       *reap_ev;
    em_conn_t          *reap_conns;
    em_eio_session_t       *reap_sessions;
} em_worker_t;

extern em_worker_t em_w;

/* The limits and rules whose breach closes a client (em_worker_violation). */
typedef enum {
    EM_LIMIT_NONE = 0,
    EM_LIMIT_PROTOCOL,          /* a malformed packet or frame */
    EM_LIMIT_EVENT_ARGS,
    EM_LIMIT_ATTACHMENTS,
    EM_LIMIT_JSON_DEPTH,
    EM_LIMIT_EVENT_NAME,
    EM_LIMIT_NAMESPACES,
    EM_LIMIT_ROOMS,
    EM_LIMIT_PENDING_ACKS,
    EM_LIMIT_OUTPUT,            /* output_soft held too long or output_hard crossed */
    EM_LIMIT_WRITE_TIMEOUT,
    EM_LIMIT_REQUEST_TIMEOUT,
    EM_LIMIT_REQUEST_SIZE,      /* a request head, line or body over its bound */
    EM_LIMIT_MEMORY,            /* the worker could not allocate for this client */
    EM_LIMIT_COUNT
} em_limit_t;

/* The setting's name in the limits group ("event_args", ...; "protocol"). */
const char *em_limit_name(em_limit_t limit);

/*
 * A client broke a limit or the protocol and is being closed by the caller:
 * log why (with the client's address taken from fd when fd >= 0, and its
 * session id when sid is not NULL), at most 10 lines a second with a count of
 * those left out, and count it in the cluster's monitoring figures
 * (emitd.metrics().limitViolations) and ring of connection events (type
 * "limit"). Never closes anything itself.
 */
void em_worker_violation(int fd, const char *sid, em_limit_t limit, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A worker's exit status when it cannot start (its scripts fail to load). */
#define EM_WORKER_EXIT_FATAL 2

/* Entry point after fork(): never returns to the master's code. */
int em_worker_run(const em_conf_t *conf, unsigned slot, unsigned nworkers, int chan, int state_fd,
                  int shm_fd, int bell, int broker_bell);

/* Hand a connection back to the master for worker `slot` (fd + bytes read). */
int em_worker_handoff(int fd, unsigned slot, const void *data, size_t len);

/* Tell the master our load soon (coalesced). */
void em_worker_load_changed(void);

/* Schedule the reaper to run after the current callback. */
void em_worker_schedule_reap(void);

#endif
