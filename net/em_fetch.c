/*
 * em_fetch.c - webhooks on libcurl's multi interface, driven by the
 * worker's libevent loop: libcurl says which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION) and when to call it back (CURLMOPT_TIMERFUNCTION);
 * events on those sockets and the timer call curl_multi_socket_action(),
 * and finished transfers are collected with curl_multi_info_read().
 */
#include <curl/curl.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "em_fetch.h"
#include "em_log.h"
#include "em_loop.h"

#define EM_FETCH_HEADERS_MAX (64 * 1024)     /* bytes of a response's header lines */

const double em_fetch_buckets[EM_ST_LAT_BUCKETS] = { 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10 };

typedef struct em_fetch {
    CURL              *easy;
    struct curl_slist *headers;
    char              *hdr;
    size_t             hdr_len;
    char              *body;
    size_t             body_len, body_cap;
    int                too_large;
    struct timespec    start;
    em_fetch_done_fn   done;
    void              *arg;
    struct em_fetch   *prev, *next;     /* running */
    char               errbuf[CURL_ERROR_SIZE];
} em_fetch_t;

/* A socket libcurl asked us to watch. */
typedef struct {
    struct event *ev;
    curl_socket_t fd;
} em_fetch_sock_t;

static struct {
    CURLM            *multi;
    struct event     *timer;
    unsigned          max_inflight;
    size_t            max_response;
    unsigned          inflight;     /* requests under way */
    em_fetch_t       *running;
} em_f;

static void
em_fetch_unlink(em_fetch_t *f)
{
    if (f->prev != NULL) {
        f->prev->next = f->next;
    } else {
        em_f.running = f->next;
    }
    if (f->next != NULL) {
        f->next->prev = f->prev;
    }
}

static void em_fetch_check(void);

static double
em_fetch_since(const struct timespec *t0)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double) (now.tv_sec - t0->tv_sec) + (double) (now.tv_nsec - t0->tv_nsec) / 1e9;
}

static size_t
em_fetch_write_cb(char *p, size_t size, size_t n, void *arg)
{
    em_fetch_t *f = arg;
    size_t      len = size * n;

    if (len > em_f.max_response - f->body_len) {
        f->too_large = 1;
        return 0;           /* libcurl ends the transfer with CURLE_WRITE_ERROR */
    }
    if (f->body_len + len > f->body_cap) {
        size_t cap = f->body_cap ? f->body_cap : 4096;
        while (cap < f->body_len + len) {
            cap *= 2;
        }
        cap = cap < em_f.max_response ? cap : em_f.max_response;
        char *b = realloc(f->body, cap + 1);
        if (b == NULL) {
            return 0;
        }
        f->body = b;
        f->body_cap = cap;
    }
    memcpy(f->body + f->body_len, p, len);
    f->body_len += len;
    return len;
}

static size_t
em_fetch_header_cb(char *p, size_t size, size_t n, void *arg)
{
    em_fetch_t *f = arg;
    size_t      len = size * n;

    /* A redirect or a 100 Continue starts another set: keep the last. */
    if (len > 5 && memcmp(p, "HTTP/", 5) == 0) {
        f->hdr_len = 0;
    }
    if (f->hdr_len + len > EM_FETCH_HEADERS_MAX) {
        f->too_large = 1;
        return 0;
    }
    char *h = realloc(f->hdr, f->hdr_len + len + 1);
    if (h == NULL) {
        return 0;
    }
    f->hdr = h;
    memcpy(f->hdr + f->hdr_len, p, len);
    f->hdr_len += len;
    return len;
}

static void
em_fetch_free(em_fetch_t *f)
{
    curl_slist_free_all(f->headers);
    if (f->easy != NULL) {
        curl_easy_cleanup(f->easy);
    }
    free(f->hdr);
    free(f->body);
    free(f);
}

static void
em_fetch_finish(em_fetch_t *f, CURLcode code)
{
    em_fetch_res_t res = { 0 };

    res.seconds = em_fetch_since(&f->start);
    if (code == CURLE_OK) {
        res.ok = 1;
        curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &res.status);
        res.headers = f->hdr != NULL ? f->hdr : "";
        res.headers_len = f->hdr_len;
        res.body = f->body != NULL ? f->body : "";
        res.body_len = f->body_len;
        long cls = res.status / 100;
        em_st_wstats_t *w = em_loop.stats;
        em_stat_add(w->webhook_class[cls >= 1 && cls <= 5 ? cls : 0], 1);
        for (size_t i = 0; i < EM_ST_LAT_BUCKETS; i++) {
            em_stat_add(w->webhook_le[i], res.seconds <= em_fetch_buckets[i]);
        }
        em_stat_add(w->webhook_count, 1);
        em_stat_add(w->webhook_sum_us, (uint64_t) (res.seconds * 1e6));
    } else {
        em_stat_add(em_loop.stats->webhook_failed, 1);
        res.error = f->too_large ? "response too large"
                  : code == CURLE_OPERATION_TIMEDOUT ? "timeout"
                  : f->errbuf[0] != '\0' ? f->errbuf : curl_easy_strerror(code);
    }
    em_f.inflight--;
    f->done(&res, f->arg);
}

/* Hand every finished transfer to its caller. */
static void
em_fetch_check(void)
{
    CURLMsg *m;
    int      left;

    while ((m = curl_multi_info_read(em_f.multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        em_fetch_t *f = NULL;
        CURLcode    code = m->data.result;
        CURL       *easy = m->easy_handle;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &f);
        curl_multi_remove_handle(em_f.multi, easy);
        if (f != NULL) {
            em_fetch_unlink(f);
            em_fetch_finish(f, code);
            em_fetch_free(f);
        }
    }
}

static void
em_fetch_event_cb(evutil_socket_t fd, short what, void *arg)
{
    int running, flags = 0;
    (void) arg;

    flags |= (what & EV_READ) ? CURL_CSELECT_IN : 0;
    flags |= (what & EV_WRITE) ? CURL_CSELECT_OUT : 0;
    curl_multi_socket_action(em_f.multi, fd, flags, &running);
    em_fetch_check();
}

static void
em_fetch_timer_event(evutil_socket_t fd, short what, void *arg)
{
    int running;
    (void) fd;
    (void) what;
    (void) arg;

    curl_multi_socket_action(em_f.multi, CURL_SOCKET_TIMEOUT, 0, &running);
    em_fetch_check();
}

static int
em_fetch_sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    em_fetch_sock_t *s = socketp;
    (void) easy;
    (void) userp;

    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            event_free(s->ev);
            free(s);
            curl_multi_assign(em_f.multi, fd, NULL);
        }
        return 0;
    }
    if (s == NULL) {
        if ((s = calloc(1, sizeof(*s))) == NULL) {
            return -1;
        }
        s->fd = fd;
        curl_multi_assign(em_f.multi, fd, s);
    } else {
        event_free(s->ev);
    }
    short ev = (short) (((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0));
    s->ev = event_new(em_loop.base, fd, (short) (ev | EV_PERSIST), em_fetch_event_cb, NULL);
    if (s->ev == NULL || event_add(s->ev, NULL) != 0) {
        em_log(EM_LOG_ERR, 0, "cannot watch a webhook's socket");
        return -1;
    }
    return 0;
}

static int
em_fetch_timer_cb(CURLM *multi, long ms, void *userp)
{
    (void) multi;
    (void) userp;

    if (ms < 0) {
        evtimer_del(em_f.timer);
        return 0;
    }
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(em_f.timer, &tv);
    return 0;
}

int
em_fetch_init(unsigned max_inflight, size_t max_response)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK
        || (em_f.multi = curl_multi_init()) == NULL
        || (em_f.timer = evtimer_new(em_loop.base, em_fetch_timer_event, NULL)) == NULL) {
        em_log(EM_LOG_ERR, 0, "cannot set up libcurl for webhooks");
        return EM_ERROR;
    }
    em_f.max_inflight = max_inflight;
    em_f.max_response = max_response;
    curl_multi_setopt(em_f.multi, CURLMOPT_SOCKETFUNCTION, em_fetch_sock_cb);
    curl_multi_setopt(em_f.multi, CURLMOPT_TIMERFUNCTION, em_fetch_timer_cb);
    /* Reuse kept connections; a few per backend at once, more wait. */
    curl_multi_setopt(em_f.multi, CURLMOPT_MAX_HOST_CONNECTIONS, 32L);
    curl_multi_setopt(em_f.multi, CURLMOPT_MAXCONNECTS, 64L);
    return EM_OK;
}

void
em_fetch_shutdown(void)
{
    /* What still runs ends here: its callers hear so. */
    while (em_f.running != NULL) {
        em_fetch_t    *f = em_f.running;
        em_fetch_res_t res = { .error = "emitd is stopping" };
        em_fetch_unlink(f);
        curl_multi_remove_handle(em_f.multi, f->easy);
        em_f.inflight--;
        f->done(&res, f->arg);
        em_fetch_free(f);
    }
    if (em_f.multi != NULL) {
        curl_multi_cleanup(em_f.multi);
        em_f.multi = NULL;
    }
    if (em_f.timer != NULL) {
        event_free(em_f.timer);
        em_f.timer = NULL;
    }
}

int
em_fetch_start(const em_fetch_req_t *req, em_fetch_done_fn done, void *arg, const char **why)
{
    em_fetch_t *f;

    *why = NULL;
    if (em_f.multi == NULL) {
        *why = "webhooks are not set up";
        return EM_ERROR;
    }
    if (em_f.inflight >= em_f.max_inflight) {
        em_stat_add(em_loop.stats->webhook_declined, 1);
        *why = "too many webhook calls in flight (webhooks.max_inflight)";
        return EM_DECLINED;
    }
    if (strncmp(req->url, "http://", 7) != 0 && strncmp(req->url, "https://", 8) != 0) {
        *why = "the url must begin with http:// or https://";
        return EM_ERROR;
    }
    if ((f = calloc(1, sizeof(*f))) == NULL || (f->easy = curl_easy_init()) == NULL) {
        free(f);
        *why = "out of memory";
        return EM_ERROR;
    }
    for (size_t i = 0; i < req->nheaders; i++) {
        struct curl_slist *l = curl_slist_append(f->headers, req->headers[i]);
        if (l == NULL) {
            em_fetch_free(f);
            *why = "out of memory";
            return EM_ERROR;
        }
        f->headers = l;
    }
    /* No "Expect: 100-continue" wait before a body. */
    f->headers = curl_slist_append(f->headers, "Expect:");
    CURL *e = f->easy;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, f);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long) req->timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, em_fetch_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, em_fetch_header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "emitd/" EM_VERSION);
    if (req->body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body);
    }
    if (strcmp(req->method, "GET") == 0 && req->body == NULL) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "POST") != 0 || req->body == NULL) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    }
    f->done = done;
    f->arg = arg;
    clock_gettime(CLOCK_MONOTONIC, &f->start);
    if (curl_multi_add_handle(em_f.multi, e) != CURLM_OK) {
        em_fetch_free(f);
        *why = "libcurl refused the request";
        return EM_ERROR;
    }
    /* libcurl's timer callback starts it from the loop: done() never runs
     * inside this call. */
    f->next = em_f.running;
    if (f->next != NULL) {
        f->next->prev = f;
    }
    em_f.running = f;
    em_f.inflight++;
    return EM_OK;
}
