/*
 * em_loop.h - what every layer of a worker shares: the configuration, the
 * event loop, the worker's slot, the reaper that frees closed objects after
 * the callbacks that closed them, and the report of a client that broke a
 * limit. The lowest layer of the worker: it names no layer above it, and the
 * worker process registers what it must hear (em_loop_handlers_t).
 */
#ifndef EM_LOOP_H
#define EM_LOOP_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "em_conf.h"
#include "em_state.h"

/* What the process above the layers does for them (em_worker.c sets it). */
typedef struct {
    /* Hand a connection (fd and the bytes read) to worker `slot` through the
     * master: EM_OK, or the connection stays here. */
    int  (*handoff)(int fd, unsigned slot, const void *data, size_t len);
    /* The number of sessions changed: report the load soon. */
    void (*load_changed)(void);
} em_loop_handlers_t;

typedef struct {
    const em_conf_t    *conf;
    struct event_base  *base;
    unsigned            slot;         /* 0-based; logs and scripts say slot + 1 */
    unsigned            nworkers;     /* worker slots: twice the workers, for a reload */
    unsigned            draining;     /* a reload replaced this worker: new sessions go */
    size_t              nconns;       /* client connections open (em_conn_t) */
    em_state_t         *state;        /* the cluster-wide state, once mapped */
    em_st_wstats_t     *stats;        /* this worker's figures (a private copy until mapped) */
    em_loop_handlers_t  handlers;
} em_loop_t;

extern em_loop_t em_loop;

/* Set the context up (the worker, once, before anything else runs). */
int  em_loop_init(const em_conf_t *conf, struct event_base *base, unsigned slot, unsigned nworkers);

/* The client's numeric address on connection fd ("" when unknown): its
 * TCP peer, or the one behind a TLS connection this worker pumps. */
void em_loop_peer(int fd, char *ip, size_t len);

/* A layer's reaper: free the objects it marked closed; 1 if it freed any. */
typedef int (*em_loop_reaper_t)(void);

/* Register a layer's reaper (at most 8; run in the order registered). */
int  em_loop_reaper_add(em_loop_reaper_t fn);

/* Run the reapers after the current callback. */
void em_loop_schedule_reap(void);

/* Run them now, until none has anything left (the worker's exit). */
void em_loop_reap(void);

/* The limits and rules whose breach closes a client (em_loop_violation). */
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
void em_loop_violation(int fd, const char *sid, em_limit_t limit, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
