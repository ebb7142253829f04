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

#include "em_state.h"

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

/* The upper bounds, in seconds, of the latency histogram each response is
 * counted in (em_loop.stats->webhook_le, for /metrics). */
extern const double em_fetch_buckets[EM_ST_LAT_BUCKETS];

#endif
