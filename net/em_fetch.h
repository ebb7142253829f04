/*
 * em_fetch.h - HTTP(S) requests from a worker to its backends (webhooks),
 * with libcurl's multi interface on the worker's event loop: nothing
 * blocks, connections to a backend are kept and reused (libcurl's
 * connection cache), every request has a timeout, the response is bounded,
 * and at most max_inflight requests run at once in a worker.
 */
#ifndef EM_FETCH_H
#define EM_FETCH_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char        *method;      /* "GET", "POST", ... */
    const char        *url;         /* http:// or https:// only */
    const char *const *headers;     /* "Name: value" lines */
    size_t             nheaders;
    const char        *body;        /* copied; may be NULL */
    size_t             body_len;
    unsigned           timeout_ms;  /* the whole request */
} em_fetch_req_t;

typedef struct {
    int          ok;                /* 1: a response came (any status) */
    long         status;
    const char  *headers;           /* the response's header lines, as sent */
    size_t       headers_len;
    const char  *body;
    size_t       body_len;
    const char  *error;             /* !ok: why (timeout, refused, too large, ...) */
    double       seconds;           /* from start to the end */
} em_fetch_res_t;

/* The response is the callee's to read during the call only. */
typedef void (*em_fetch_done_fn)(const em_fetch_res_t *res, void *arg);

/* Set up on em_loop.base. max_response: bytes of a response body (more:
 * an error "response too large"). EM_OK or EM_ERROR. */
int  em_fetch_init(unsigned max_inflight, size_t max_response);
void em_fetch_shutdown(void);

/* Start a request; done() is called once, later (never inside this call).
 * EM_OK, EM_DECLINED when max_inflight are running already, EM_ERROR when
 * the request cannot be made (a bad URL or out of memory; *why says). */
int  em_fetch_start(const em_fetch_req_t *req, em_fetch_done_fn done, void *arg, const char **why);

/* Requests running now, and the totals since the worker started. */
typedef struct {
    uint64_t running;
    uint64_t started;
    uint64_t failed;                /* no response: timeout, refused, too large */
    uint64_t by_class[6];           /* responses by status class: [1] 1xx ... [5] 5xx, [0] other */
    uint64_t declined;              /* over max_inflight */
    uint64_t latency_le[8];         /* responses within 0.01 0.05 0.1 0.25 0.5 1 2.5 10 s */
    uint64_t latency_count;
    double   latency_sum;
} em_fetch_stats_t;

void em_fetch_stats(em_fetch_stats_t *st);

/* The buckets of latency_le, in seconds. */
extern const double em_fetch_buckets[8];

#endif
