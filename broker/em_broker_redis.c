/*
 * em_broker_redis.c - the broker's side of Redis (em_broker_redis.h).
 *
 * Two connections, hiredis on the broker's libevent loop: one publishes
 * this host's broadcasts on the adapter's channels (<key>#<nsp># or
 * <key>#<nsp>#<room>#), one is subscribed to every namespace's
 * (PSUBSCRIBE <key>#*). A message whose uid is this broker's own came back
 * from Redis and is dropped; any other is decoded (em_rmsg.c) and handed to
 * the relay. A connection that fails, or is lost, is made again after
 * 250 ms, doubling to 10 s; meanwhile this host's broadcasts still reach
 * its own clients, and those that could not go to Redis are counted and
 * logged (once a second at most).
 */
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "em_brkrec.h"
#include "em_broker_redis.h"
#include "em_log.h"
#include "em_rstore.h"

#define EM_BR_BACKOFF_MIN  250      /* ms */
#define EM_BR_BACKOFF_MAX  10000
#define EM_BR_INFLIGHT_MAX 65536    /* PUBLISHes waiting for their reply */
#define EM_BR_ASK_TIMEOUT  5000     /* ms: the adapter's requestsTimeout */
#define EM_BR_ASKS_MAX     1024     /* server-side events waiting for answers */
#define EM_BR_QUEUE_MAX    10000    /* streams mode: broadcasts kept while Redis is away */
#define EM_BR_QUEUE_BYTES  (64u * 1024 * 1024)
#define EM_BR_XREAD_BLOCK  5000     /* ms */
#define EM_BR_XREAD_COUNT  100

/* A broadcast of this host for the stream, kept while Redis is away. */
typedef struct em_br_queued_s em_br_queued_t;
struct em_br_queued_s {
    em_br_queued_t *next;
    size_t          nsp_len, data_len;
    char            bytes[];    /* nsp, then data */
};

/* A worker's server-side event with an ack, waiting for the answers. */
typedef struct em_br_ask_s em_br_ask_t;
struct em_br_ask_s {
    em_br_ask_t  *next;
    char          id[7];
    unsigned      slot;         /* the asking worker's */
    char         *channel;      /* <key>-request#<nsp># */
    char         *request;      /* what to publish there */
    size_t        request_len;
    long long     numsub;       /* answers to wait for; -1: not counted yet */
    json_t       *responses;
    struct event *timer;
};

typedef struct {
    const char        *name;        /* "publish" or "subscribe" */
    redisAsyncContext *ac;
    int                connected;
    unsigned           backoff;     /* ms before the next attempt */
    struct event      *retry;
} em_br_conn_t;

static struct {
    struct event_base          *base;
    const em_conf_redis_t      *conf;
    em_broker_redis_handlers_t  h;
    const em_conf_t            *full;
    em_rmsg_limits_t            lim;
    em_br_conn_t                pub, sub, rd;   /* rd: streams mode's XREAD */
    char                        last_id[40];    /* the stream's last entry read, or "" */
    em_state_t                 *st;             /* where the uid and last_id are kept */
    struct em_br_queued_s      *queue, **queue_tail;  /* broadcasts waiting for Redis */
    size_t                      queued, queued_bytes;
    char                        uid[8];
    char                       *pattern;
    char                       *presence;  /* <key>-presence# */
    size_t                      presence_len;
    char                       *store;     /* <key>-store# */
    size_t                      store_len;
    int                         subscribed;
    size_t                      inflight;
    int                         stopping;
    uint64_t                    published, lost, received, refused;
    uint64_t                    lost_logged;
    time_t                      lost_when;
    em_br_ask_t                *asks;
    size_t                      nasks;
} em_br;

static void em_br_connect(em_br_conn_t *c);
static void em_br_flush(void);
static void em_br_lost(const char *why);
static void em_br_read_start(redisAsyncContext *ac);

/* Both connections up, the subscriptions made: tell the broker. */
static void
em_br_up(void)
{
    if (em_br.pub.connected && em_br.sub.connected && em_br.subscribed && em_br.h.up != NULL) {
        em_br.h.up();
    }
}

/* Six letters and digits, as the adapter's uid2(6). */
static void
em_br_uid(char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char     r[6] = { 0 };

    if (getrandom(r, sizeof(r), 0) != (ssize_t) sizeof(r)) {
        for (size_t i = 0; i < sizeof(r); i++) {
            r[i] = (unsigned char) (rand() & 0xff);
        }
    }
    for (size_t i = 0; i < sizeof(r); i++) {
        out[i] = abc[r[i] % (sizeof(abc) - 1)];
    }
    out[6] = '\0';
}

static void
em_br_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    em_br_connect(arg);
}

/* The next attempt, after the back-off grown: its delay in ms. */
static unsigned
em_br_schedule(em_br_conn_t *c)
{
    struct timeval tv;

    c->backoff = c->backoff == 0 ? EM_BR_BACKOFF_MIN : EM_MIN(c->backoff * 2, EM_BR_BACKOFF_MAX);
    if (!em_br.stopping) {
        tv.tv_sec = c->backoff / 1000;
        tv.tv_usec = (suseconds_t) (c->backoff % 1000) * 1000;
        evtimer_add(c->retry, &tv);
    }
    return c->backoff;
}

static void
em_br_connected(const redisAsyncContext *ac, int status)
{
    em_br_conn_t *c = ac->data;

    if (status != REDIS_OK) {
        c->ac = NULL;                   /* hiredis frees it */
        em_log(EM_LOG_ERR, 0, "redis: cannot connect to %s (%s): again in %u ms", em_br.conf->text,
               ac->errstr, em_br_schedule(c));
        return;
    }
    c->connected = 1;
    em_log(EM_LOG_INFO, 0, "redis: %s connection to %s up", c->name, em_br.conf->text);
    if (c == &em_br.pub) {
        em_br_flush();
    }
    em_br_up();
}

static void
em_br_disconnected(const redisAsyncContext *ac, int status)
{
    em_br_conn_t *c = ac->data;

    c->ac = NULL;
    c->connected = 0;
    if (c == &em_br.sub) {
        em_br.subscribed = 0;
    }
    if (em_br.stopping) {
        return;
    }
    em_log(EM_LOG_ERR, 0, "redis: the %s connection to %s was lost (%s): again in %u ms", c->name,
           em_br.conf->text, status == REDIS_OK ? "closed" : ac->errstr, em_br_schedule(c));
}

/* The reply to AUTH or SELECT: an error ends the connection (and retries). */
static void
em_br_setup_cb(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;

    (void) priv;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        em_log(EM_LOG_ERR, 0, "redis: %s refused %s: %.*s", em_br.conf->text,
               em_br.conf->password != NULL ? "the login or the database" : "the database",
               (int) EM_MIN(reply->len, 200), reply->str);
        redisAsyncDisconnect(ac);
    }
}

static void
em_br_publish_cb(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;

    (void) ac;
    (void) priv;
    em_br.inflight--;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        em_br_lost(reply->str != NULL ? reply->str : "Redis refused it");
    } else if (reply == NULL) {
        em_br.lost++;
    }
}

/* A broadcast of this host that did not go to Redis. */
static void
em_br_lost(const char *why)
{
    time_t now = time(NULL);

    em_br.lost++;
    if (now != em_br.lost_when) {
        em_log(EM_LOG_WARN, 0, "redis: %llu broadcasts not relayed to other hosts (%s)",
               (unsigned long long) (em_br.lost - em_br.lost_logged), why);
        em_br.lost_logged = em_br.lost;
        em_br.lost_when = now;
    }
}

static void
em_br_refused(const char *why, size_t len)
{
    em_br.refused++;
    em_log(EM_LOG_WARN, 0, "redis: a message of %zu bytes dropped: %s (%llu so far)", len, why,
           (unsigned long long) em_br.refused);
}

static void
em_br_message(const char *msg, size_t len)
{
    em_rmsg_t m;
    int       rc;

    if (len > em_br.conf->max_message) {
        em_br_refused("over redis.max_message", len);
        return;
    }
    rc = em_rmsg_decode(msg, len, &em_br.lim, &m);
    if (rc == EM_DECLINED) {
        em_br_refused("over a limit, or not an event", len);
        return;
    }
    if (rc != EM_OK) {
        em_br_refused("not a Socket.IO adapter broadcast", len);
        return;
    }
    if (m.uid.len != 6 || memcmp(m.uid.data, em_br.uid, 6) != 0) {
        em_br.received++;
        em_br.h.deliver(&m);
    }
    em_rmsg_free(&m);
}

/* A request on <key>-request#<nsp>#: for a worker. */
static void
em_br_request(const char *channel, size_t clen, const char *msg, size_t len)
{
    size_t klen = strlen(em_br.conf->key);

    if (len > em_br.conf->max_message) {
        em_br_refused("a request over redis.max_message", len);
        return;
    }
    if (clen < klen + 11 || memcmp(channel, em_br.conf->key, klen) != 0
        || memcmp(channel + klen, "-request#", 9) != 0 || channel[clen - 1] != '#') {
        return;
    }
    if (em_rmsg_request_is_from(msg, len, (em_str_t) { em_br.uid, 6 })) {
        return;     /* this host's own server-side event */
    }
    em_br.h.request((em_str_t) { channel + klen + 9, clen - klen - 10 }, msg, len);
}

static void em_br_subscribe_requests(redisAsyncContext *ac);
static void em_br_publish_raw(const char *channel, size_t clen, const char *msg, size_t len);

/* ---- server-side events with an ack ---- */

static int
em_br_is_response(const char *channel, size_t len)
{
    size_t klen = strlen(em_br.conf->key);

    return len > klen + 10 && memcmp(channel, em_br.conf->key, klen) == 0
           && memcmp(channel + klen, "-response#", 10) == 0;
}

/* Hand the answers to the asking worker, and forget the ask. */
static void
em_br_ask_end(em_br_ask_t *a, const char *err)
{
    json_t *j;
    char   *text;

    for (em_br_ask_t **pp = &em_br.asks; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == a) {
            *pp = a->next;
            em_br.nasks--;
            break;
        }
    }
    j = json_pack("{s:s?,s:O}", "err", err, "responses", a->responses);
    text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    if (text != NULL && em_br.h.answers != NULL) {
        em_br.h.answers(a->slot, (em_str_t) { a->id, 6 }, text, strlen(text));
    }
    free(text);
    json_decref(j);
    if (a->timer != NULL) {
        event_free(a->timer);
    }
    json_decref(a->responses);
    free(a->channel);
    free(a->request);
    free(a);
}

static void
em_br_ask_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    em_br_ask_t *a = arg;
    char         err[96];

    (void) fd;
    (void) what;
    /* the adapter's own words */
    snprintf(err, sizeof(err), "timeout reached: only %zu responses received out of %lld",
             json_array_size(a->responses), a->numsub);
    em_br_ask_end(a, err);
}

/* PUBSUB NUMSUB's reply: the servers of the namespace, this one among them. */
static void
em_br_numsub_cb(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply    *reply = r;
    em_br_ask_t   *a = priv;
    struct timeval tv = { EM_BR_ASK_TIMEOUT / 1000, (EM_BR_ASK_TIMEOUT % 1000) * 1000 };

    (void) ac;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[1]->type != REDIS_REPLY_INTEGER) {
        em_br_ask_end(a, "Redis did not count the servers");
        return;
    }
    a->numsub = reply->element[1]->integer - 1;
    if (a->numsub <= 0) {
        em_br_ask_end(a, NULL);         /* no other server: no answer to wait for */
        return;
    }
    if (!em_br.pub.connected || (a->timer = evtimer_new(em_br.base, em_br_ask_timeout_cb, a)) == NULL
        || evtimer_add(a->timer, &tv) != 0) {
        em_br_ask_end(a, "no connection to Redis");
        return;
    }
    em_br_publish_raw(a->channel, strlen(a->channel), a->request, a->request_len);
}

/* A response on <key>-response#<nsp>#: an answer to one of ours? */
static void
em_br_response(const char *msg, size_t len)
{
    json_t *data;

    if (em_br.asks == NULL || len > em_br.conf->max_message) {
        return;
    }
    for (em_br_ask_t *a = em_br.asks; a != NULL; a = a->next) {
        if (a->numsub > 0
            && em_rmsg_decode_server_answer(msg, len, (em_str_t) { a->id, 6 }, &data) == EM_OK) {
            json_array_append_new(a->responses, data);
            if ((long long) json_array_size(a->responses) >= a->numsub) {
                em_br_ask_end(a, NULL);
            }
            return;
        }
    }
}

/* A worker's ask: nsp NUL id NUL [event, ...]. */
static void
em_br_ask(unsigned slot, const char *data, size_t len)
{
    const char  *z1 = memchr(data, '\0', len), *z2;
    em_br_ask_t *a;
    size_t       nlen, klen = strlen(em_br.conf->key);

    if (z1 == NULL || (z2 = memchr(z1 + 1, '\0', len - (size_t) (z1 - data) - 1)) == NULL
        || z2 - z1 - 1 != 6 || (a = calloc(1, sizeof(*a))) == NULL) {
        return;
    }
    nlen = (size_t) (z1 - data);
    memcpy(a->id, z1 + 1, 6);
    a->slot = slot;
    a->numsub = -1;
    a->responses = json_array();
    a->channel = malloc(klen + nlen + 11);
    a->next = em_br.asks;
    em_br.asks = a;
    em_br.nasks++;
    if (a->responses == NULL || a->channel == NULL) {
        em_br_ask_end(a, "out of memory");
        return;
    }
    snprintf(a->channel, klen + nlen + 11, "%s-request#%.*s#", em_br.conf->key, (int) nlen, data);
    if (em_rmsg_encode_server_ask((em_str_t) { em_br.uid, 6 }, (em_str_t) { a->id, 6 }, z2 + 1,
                                  len - (size_t) (z2 - data) - 1, &a->request, &a->request_len)
        != EM_OK) {
        em_br_ask_end(a, "the event does not convert");
        return;
    }
    if (em_br.nasks > EM_BR_ASKS_MAX) {
        em_br_ask_end(a, "too many server-side events waiting for answers");
        return;
    }
    if (!em_br.pub.connected
        || redisAsyncCommand(em_br.pub.ac, em_br_numsub_cb, a, "PUBSUB NUMSUB %s", a->channel)
               != REDIS_OK) {
        em_br_ask_end(a, "no connection to Redis");
    }
}

/* A message on emitd's own channels between hosts (presence, store): for
 * its handler. 0 when the channel is another. */
static int
em_br_hosts_message(const redisReply *channel, const redisReply *msg)
{
    const struct {
        const char *name;
        size_t      len;
        void      (*fn)(const char *msg, size_t len);
        const char *what;
    } own[] = {
        { em_br.presence, em_br.presence_len, em_br.h.presence, "a presence message" },
        { em_br.store, em_br.store_len, em_br.h.store, "a store write" },
    };

    for (size_t i = 0; i < EM_NELEMS(own); i++) {
        if (channel->len != own[i].len || memcmp(channel->str, own[i].name, own[i].len) != 0) {
            continue;
        }
        if (msg->len > em_br.conf->max_message) {
            char why[64];
            snprintf(why, sizeof(why), "%s over redis.max_message", own[i].what);
            em_br_refused(why, msg->len);
        } else if (own[i].fn != NULL) {
            own[i].fn(msg->str, msg->len);
        }
        return 1;
    }
    return 0;
}

static void
em_br_sub_cb(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;

    (void) priv;
    if (reply == NULL) {
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        em_log(EM_LOG_ERR, 0, "redis: PSUBSCRIBE refused: %.*s", (int) EM_MIN(reply->len, 200),
               reply->str);
        redisAsyncDisconnect(ac);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3
        || reply->element[0]->type != REDIS_REPLY_STRING) {
        return;
    }
    if (reply->elements == 4 && strcmp(reply->element[0]->str, "pmessage") == 0
        && reply->element[3]->type == REDIS_REPLY_STRING) {
        em_br_message(reply->element[3]->str, reply->element[3]->len);
    } else if (reply->elements == 3 && strcmp(reply->element[0]->str, "message") == 0
               && reply->element[1]->type == REDIS_REPLY_STRING
               && reply->element[2]->type == REDIS_REPLY_STRING) {
        if (em_br_hosts_message(reply->element[1], reply->element[2])) {
            return;
        }
        if (em_br_is_response(reply->element[1]->str, reply->element[1]->len)) {
            em_br_response(reply->element[2]->str, reply->element[2]->len);
            return;
        }
        em_br_request(reply->element[1]->str, reply->element[1]->len, reply->element[2]->str,
                      reply->element[2]->len);
    } else if (strcmp(reply->element[0]->str, "psubscribe") == 0) {
        em_log(EM_LOG_INFO, 0, "redis: subscribed to %s", em_br.pattern);
    } else if (strcmp(reply->element[0]->str, "subscribe") == 0
               && reply->element[1]->type == REDIS_REPLY_STRING
               && reply->element[1]->len == em_br.presence_len
               && memcmp(reply->element[1]->str, em_br.presence, em_br.presence_len) == 0) {
        em_br.subscribed = 1;   /* the last channel of the SUBSCRIBE */
        em_br_up();
    }
}

/* SUBSCRIBE <key>-request#<nsp># for each namespace with a name (not a
 * pattern) of the first endpoint: a Node server counts its peers by these
 * subscriptions (PUBSUB NUMSUB), and waits for each one's answer; and
 * <key>-store# and <key>-presence#, last, for the other emitd hosts'. */
static void
em_br_subscribe_requests(redisAsyncContext *ac)
{
    const em_conf_t *conf = em_br.full;
    const char     **argv = calloc(2 * conf->nnsps + 3, sizeof(char *));
    size_t          *lens = calloc(2 * conf->nnsps + 3, sizeof(size_t));
    char           **names = calloc(2 * conf->nnsps + 3, sizeof(char *));
    int              argc = 1;

    if (argv == NULL || lens == NULL || names == NULL) {
        goto done;
    }
    argv[0] = "SUBSCRIBE";
    lens[0] = 9;
    for (size_t i = 0; i < conf->nnsps; i++) {
        const em_conf_nsp_t *n = &conf->nsps[i];
        size_t               len = strlen(em_br.conf->key) + strlen(n->name) + 11;
        if (n->dynamic || n->name[0] != '/' || (names[argc] = malloc(len)) == NULL) {
            continue;
        }
        snprintf(names[argc], len, "%s-request#%s#", em_br.conf->key, n->name);
        argv[argc] = names[argc];
        lens[argc] = strlen(names[argc]);
        argc++;
        /* and the answers to this host's server-side events with an ack */
        if ((names[argc] = malloc(len + 1)) != NULL) {
            snprintf(names[argc], len + 1, "%s-response#%s#", em_br.conf->key, n->name);
            argv[argc] = names[argc];
            lens[argc] = strlen(names[argc]);
            argc++;
        }
    }
    argv[argc] = em_br.store;
    lens[argc] = em_br.store_len;
    argv[argc + 1] = em_br.presence;
    lens[argc + 1] = em_br.presence_len;
    redisAsyncCommandArgv(ac, em_br_sub_cb, NULL, argc + 2, argv, lens);
done:
    for (int i = 1; names != NULL && i < argc; i++) {
        free(names[i]);
    }
    free(names);
    free(argv);
    free(lens);
}

static void
em_br_connect(em_br_conn_t *c)
{
    const em_conf_redis_t *rc = em_br.conf;
    redisAsyncContext     *ac = redisAsyncConnect(rc->host, (int) rc->port);

    if (ac == NULL || ac->err) {
        em_log(EM_LOG_ERR, 0, "redis: cannot connect to %s (%s): again in %u ms", rc->text,
               ac != NULL ? ac->errstr : "out of memory", em_br_schedule(c));
        if (ac != NULL) {
            redisAsyncFree(ac);
        }
        return;
    }
    ac->data = c;
    c->ac = ac;
    if (redisLibeventAttach(ac, em_br.base) != REDIS_OK) {
        redisAsyncFree(ac);
        c->ac = NULL;
        em_br_schedule(c);
        return;
    }
    redisAsyncSetConnectCallback(ac, em_br_connected);
    redisAsyncSetDisconnectCallback(ac, em_br_disconnected);
    /* Sent once the connection is up, in order. */
    if (rc->password != NULL && rc->user != NULL) {
        redisAsyncCommand(ac, em_br_setup_cb, NULL, "AUTH %s %s", rc->user, rc->password);
    } else if (rc->password != NULL) {
        redisAsyncCommand(ac, em_br_setup_cb, NULL, "AUTH %s", rc->password);
    }
    if (c == &em_br.sub) {
        redisAsyncCommand(ac, em_br_sub_cb, NULL, "PSUBSCRIBE %s", em_br.pattern);
        em_br_subscribe_requests(ac);
        return;
    }
    if (rc->db != 0) {
        redisAsyncCommand(ac, em_br_setup_cb, NULL, "SELECT %u", rc->db);
    }
    if (c == &em_br.rd) {
        em_br_read_start(ac);
    }
}

/* ---- streams mode ---- */

/* XADD <stream> MAXLEN ~ <maxlen> * uid <uid> nsp <nsp> type 3 data <data>,
 * as the Redis Streams adapter adds a broadcast. */
static int
em_br_xadd(em_str_t nsp, const char *data, size_t len)
{
    char        maxlen[16];
    const char *argv[14];
    size_t      lens[14];
    int         n = 0;

    snprintf(maxlen, sizeof(maxlen), "%u", em_br.conf->maxlen);
#define EM_ARG(s, l) (argv[n] = (s), lens[n++] = (l))
    EM_ARG("XADD", 4);
    EM_ARG(em_br.conf->stream, strlen(em_br.conf->stream));
    EM_ARG("MAXLEN", 6);
    EM_ARG("~", 1);
    EM_ARG(maxlen, strlen(maxlen));
    EM_ARG("*", 1);
    EM_ARG("uid", 3);
    EM_ARG(em_br.uid, 6);
    EM_ARG("nsp", 3);
    EM_ARG(nsp.data, nsp.len);
    EM_ARG("type", 4);
    EM_ARG("3", 1);
    EM_ARG("data", 4);
    EM_ARG(data, len);
#undef EM_ARG
    if (redisAsyncCommandArgv(em_br.pub.ac, em_br_publish_cb, NULL, n, argv, lens) != REDIS_OK) {
        return EM_ERROR;
    }
    em_br.inflight++;
    em_br.published++;
    return EM_OK;
}

/* Kept while Redis is away, to be added once it is back (bounded). */
static int
em_br_keep(em_str_t nsp, const char *data, size_t len)
{
    em_br_queued_t *q;

    if (em_br.queued >= EM_BR_QUEUE_MAX || em_br.queued_bytes + nsp.len + len > EM_BR_QUEUE_BYTES
        || (q = malloc(sizeof(*q) + nsp.len + len)) == NULL) {
        return EM_ERROR;
    }
    q->next = NULL;
    q->nsp_len = nsp.len;
    q->data_len = len;
    memcpy(q->bytes, nsp.data, nsp.len);
    memcpy(q->bytes + nsp.len, data, len);
    *em_br.queue_tail = q;
    em_br.queue_tail = &q->next;
    em_br.queued++;
    em_br.queued_bytes += nsp.len + len;
    return EM_OK;
}

/* The publish connection is up: what was kept goes first, in order. */
static void
em_br_flush(void)
{
    size_t n = em_br.queued;

    while (em_br.queue != NULL && em_br.pub.connected) {
        em_br_queued_t *q = em_br.queue;
        if (em_br_xadd((em_str_t) { q->bytes, q->nsp_len }, q->bytes + q->nsp_len, q->data_len)
            != EM_OK) {
            break;
        }
        em_br.queue = q->next;
        em_br.queued--;
        em_br.queued_bytes -= q->nsp_len + q->data_len;
        free(q);
    }
    if (em_br.queue == NULL) {
        em_br.queue_tail = &em_br.queue;
    }
    if (n > 0) {
        em_log(EM_LOG_INFO, 0, "redis: %zu broadcasts kept while Redis was away added to %s",
               n - em_br.queued, em_br.conf->stream);
    }
}

static void
em_br_queue_free(void)
{
    while (em_br.queue != NULL) {
        em_br_queued_t *q = em_br.queue;
        em_br.queue = q->next;
        free(q);
    }
    em_br.queue_tail = &em_br.queue;
    em_br.queued = em_br.queued_bytes = 0;
}

static void em_br_xread(redisAsyncContext *ac);

/* The value of field name among an entry's [k, v, ...], or an empty slice. */
static em_str_t
em_br_field(const redisReply *kv, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        const redisReply *k = kv->element[i], *v = kv->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING && k->len == n
            && memcmp(k->str, name, n) == 0) {
            return (em_str_t) { v->str, v->len };
        }
    }
    return (em_str_t) { NULL, 0 };
}

static void
em_br_entry(const redisReply *e)
{
    const redisReply *id, *kv;
    em_str_t          uid, nsp, type, data;
    em_rmsg_t         m;
    int               rc;

    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || (id = e->element[0])->type != REDIS_REPLY_STRING
        || (kv = e->element[1])->type != REDIS_REPLY_ARRAY || id->len >= sizeof(em_br.last_id)) {
        return;
    }
    memcpy(em_br.last_id, id->str, id->len);
    em_br.last_id[id->len] = '\0';
    if (em_br.st != NULL) {
        em_state_stream_id_set(em_br.st, id->str, id->len);
    }
    uid = em_br_field(kv, "uid");
    nsp = em_br_field(kv, "nsp");
    type = em_br_field(kv, "type");
    data = em_br_field(kv, "data");
    if (uid.data == NULL || nsp.data == NULL || type.data == NULL || data.data == NULL) {
        em_br_refused("a stream entry without uid, nsp, type and data", data.len);
        return;
    }
    if (uid.len == 6 && memcmp(uid.data, em_br.uid, 6) == 0) {
        return;                 /* this host's own: delivered here already */
    }
    if (data.len > em_br.conf->max_message) {
        em_br_refused("a stream entry over redis.max_message", data.len);
        return;
    }
    rc = em_rmsg_decode_stream(uid, nsp, type, data, &em_br.lim, &m);
    if (rc == EM_DECLINED) {
        return;                 /* another type of message, or over a limit */
    }
    if (rc != EM_OK) {
        em_br_refused("not a Redis Streams adapter broadcast", data.len);
        return;
    }
    em_br.received++;
    em_br.h.deliver(&m);
    em_rmsg_free(&m);
}

static void
em_br_xread_cb(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;

    (void) priv;
    if (reply == NULL) {
        return;                 /* the connection went: read again once it is back */
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        em_log(EM_LOG_ERR, 0, "redis: XREAD refused: %.*s", (int) EM_MIN(reply->len, 200), reply->str);
        redisAsyncDisconnect(ac);
        return;
    }
    /* [[stream, [[id, [k, v, ...]], ...]]], or nil when the block ended */
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1
        && reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2
        && reply->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
        const redisReply *entries = reply->element[0]->element[1];
        for (size_t i = 0; i < entries->elements; i++) {
            em_br_entry(entries->element[i]);
        }
    }
    em_br_xread(ac);
}

static void
em_br_xread(redisAsyncContext *ac)
{
    char block[16], count[16];

    snprintf(block, sizeof(block), "%d", EM_BR_XREAD_BLOCK);
    snprintf(count, sizeof(count), "%d", EM_BR_XREAD_COUNT);
    if (!em_br.stopping) {
        redisAsyncCommand(ac, em_br_xread_cb, NULL, "XREAD BLOCK %s COUNT %s STREAMS %s %s", block,
                          count, em_br.conf->stream, em_br.last_id);
    }
}

/* The stream's last entry when this broker first reads: what follows is new. */
static void
em_br_last_cb(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;

    (void) priv;
    if (reply == NULL) {
        return;
    }
    if (em_br.last_id[0] == '\0') {
        const char *id = "0-0";
        size_t      len = 3;
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1
            && reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2
            && reply->element[0]->element[0]->type == REDIS_REPLY_STRING
            && reply->element[0]->element[0]->len < sizeof(em_br.last_id)) {
            id = reply->element[0]->element[0]->str;
            len = reply->element[0]->element[0]->len;
        }
        memcpy(em_br.last_id, id, len);
        em_br.last_id[len] = '\0';
        if (em_br.st != NULL) {
            em_state_stream_id_set(em_br.st, id, len);
        }
    }
    em_br_xread(ac);
}

/* Read the stream from where this broker left it (catching up on what was
 * added while it was away), or from its end the first time. */
static void
em_br_read_start(redisAsyncContext *ac)
{
    if (em_br.last_id[0] != '\0') {
        em_br_xread(ac);
    } else {
        redisAsyncCommand(ac, em_br_last_cb, NULL, "XREVRANGE %s + - COUNT 1", em_br.conf->stream);
    }
}

int
em_broker_redis_start(struct event_base *base, const em_conf_t *conf, em_state_t *st,
                      const em_broker_redis_handlers_t *h)
{
    size_t n;

    memset(&em_br, 0, sizeof(em_br));
    em_br.base = base;
    em_br.conf = conf->redis;
    em_br.h = *h;
    em_br.full = conf;
    em_br.lim.max_depth = EM_MIN(conf->limits.json_depth, EM_RMSG_DEPTH_MAX - 3);
    em_br.lim.max_att = EM_MIN(conf->limits.attachments, EM_BRK_ATT_MAX);
    em_br.lim.max_rooms = EM_BRK_LIST_MAX;
    em_br.lim.max_name = EM_BRK_NAME_MAX;
    em_br.pub.name = "publish";
    em_br.sub.name = "subscribe";
    em_br.rd.name = "stream";
    em_br.queue_tail = &em_br.queue;
    em_br.st = st;
    /* a broker that follows one (killed, say) keeps its uid and goes on
     * reading the stream where it was */
    if (st == NULL || em_state_redis_uid_get(st, em_br.uid) != 6) {
        em_br_uid(em_br.uid);
        if (st != NULL) {
            em_state_redis_uid_set(st, em_br.uid);
        }
    }
    if (st != NULL && em_br.conf->streams) {
        (void) em_state_stream_id_get(st, em_br.last_id);
    }
    n = strlen(em_br.conf->key) + 3;
    em_br.pattern = malloc(n);
    em_br.presence_len = strlen(em_br.conf->key) + 10;
    em_br.presence = malloc(em_br.presence_len + 1);
    em_br.store_len = strlen(em_br.conf->key) + 7;
    em_br.store = malloc(em_br.store_len + 1);
    em_br.pub.retry = evtimer_new(base, em_br_retry_cb, &em_br.pub);
    em_br.sub.retry = evtimer_new(base, em_br_retry_cb, &em_br.sub);
    em_br.rd.retry = em_br.conf->streams ? evtimer_new(base, em_br_retry_cb, &em_br.rd) : NULL;
    if (em_br.pattern == NULL || em_br.presence == NULL || em_br.store == NULL || em_br.pub.retry == NULL
        || em_br.sub.retry == NULL) {
        em_log(EM_LOG_ERR, 0, "redis: out of memory");
        em_broker_redis_stop();
        return EM_ERROR;
    }
    snprintf(em_br.pattern, n, "%s#*", em_br.conf->key);
    snprintf(em_br.presence, em_br.presence_len + 1, "%s-presence#", em_br.conf->key);
    snprintf(em_br.store, em_br.store_len + 1, "%s-store#", em_br.conf->key);
    em_log(EM_LOG_INFO, 0, "redis: %s, channels %s, uid %s", em_br.conf->text, em_br.pattern,
           em_br.uid);
    em_br_connect(&em_br.pub);
    em_br_connect(&em_br.sub);
    if (em_br.conf->streams) {
        if (em_br.rd.retry == NULL) {
            em_broker_redis_stop();
            return EM_ERROR;
        }
        em_log(EM_LOG_INFO, 0, "redis: broadcasts by the stream %s (MAXLEN ~ %u)", em_br.conf->stream,
               em_br.conf->maxlen);
        em_br_connect(&em_br.rd);
    }
    return EM_OK;
}

/* The entries of a record's list as slices (free *out). */
static int
em_br_list(em_brk_list_t l, em_str_t **out, size_t *n)
{
    em_str_t s;

    *n = 0;
    *out = calloc(l.n + 1, sizeof(em_str_t));
    if (*out == NULL) {
        return EM_ERROR;
    }
    while (em_brk_list_next(&l, &s)) {
        (*out)[(*n)++] = s;
    }
    return EM_OK;
}

void
em_broker_redis_publish(const em_brk_view_t *view, em_str_t nsp)
{
    em_brk_view_t v = *view;
    em_str_t     *rooms = NULL, *except = NULL, *att = NULL;
    size_t        nrooms = 0, nexcept = 0, natt = 0, mlen, clen;
    char         *msg = NULL, *channel = NULL;

    if (nsp.data != NULL) {
        v.nsp = nsp;            /* one instance of an every-instance broadcast */
    } else if (v.flags & EM_BRK_F_CONF) {
        return;
    }
    /* The namespaces of other endpoints than the first have no name on the
     * adapter's channels: they stay on this host. */
    if (v.nsp.len == 0 || v.nsp.data[0] != '/') {
        return;
    }
    /* streams mode keeps what cannot go now; Pub/Sub would not keep it */
    if (!em_br.pub.connected && !em_br.conf->streams) {
        em_br_lost("no connection");
        return;
    }
    if (em_br.pub.connected && em_br.inflight >= EM_BR_INFLIGHT_MAX) {
        em_br_lost("Redis is behind");
        return;
    }
    if (em_br_list(v.rooms, &rooms, &nrooms) != EM_OK || em_br_list(v.except, &except, &nexcept) != EM_OK
        || em_br_list(v.att, &att, &natt) != EM_OK) {
        em_br_lost("out of memory");
        goto done;
    }
    em_rmsg_out_t o = {
        { em_br.uid, 6 }, v.nsp, v.data, att, natt, rooms, nrooms, except, nexcept,
        (v.flags & EM_BRK_F_VOLATILE) != 0, (v.flags & EM_BRK_F_OFFSET) != 0
    };
    if (em_br.conf->streams) {
        if (em_rmsg_encode_stream(&o, EM_RMSG_DEPTH_MAX - 3, &msg, &mlen) != EM_OK) {
            em_br_lost("its data does not convert");
        } else if (em_br.pub.connected) {
            if (em_br_xadd(v.nsp, msg, mlen) != EM_OK) {
                em_br_lost("the connection is closing");
            }
        } else if (o.vol) {
            em_br_lost("no connection, and it is volatile");
        } else if (em_br_keep(v.nsp, msg, mlen) != EM_OK) {
            em_br_lost("no connection, and the broadcasts kept for Redis are at their bound");
        }
        goto done;
    }
    if (em_rmsg_encode(&o, EM_RMSG_DEPTH_MAX - 3, &msg, &mlen) != EM_OK) {
        em_br_lost("its data does not convert");
        goto done;
    }
    clen = strlen(em_br.conf->key) + v.nsp.len + (nrooms == 1 ? rooms[0].len + 1 : 0) + 2;
    if ((channel = malloc(clen)) == NULL
        || em_rmsg_channel((em_str_t) { em_br.conf->key, strlen(em_br.conf->key) }, v.nsp,
                           nrooms == 1 ? &rooms[0] : NULL, channel, clen, &clen) != EM_OK) {
        em_br_lost("out of memory");
        goto done;
    }
    if (redisAsyncCommand(em_br.pub.ac, em_br_publish_cb, NULL, "PUBLISH %b %b", channel, clen, msg,
                          mlen) != REDIS_OK) {
        em_br_lost("the connection is closing");
        goto done;
    }
    em_br.inflight++;
    em_br.published++;
done:
    free(channel);
    free(msg);
    free(rooms);
    free(except);
    free(att);
}

static void
em_br_publish_raw(const char *channel, size_t clen, const char *msg, size_t len)
{
    if (redisAsyncCommand(em_br.pub.ac, em_br_publish_cb, NULL, "PUBLISH %b %b", channel, clen, msg,
                          len) == REDIS_OK) {
        em_br.inflight++;
    }
}

em_str_t
em_broker_redis_uid(void)
{
    return (em_str_t) { em_br.uid, 6 };
}

int
em_broker_redis_presence_send(const char *msg, size_t len)
{
    if (!em_br.pub.connected || em_br.inflight >= EM_BR_INFLIGHT_MAX) {
        return EM_DECLINED;
    }
    em_br_publish_raw(em_br.presence, em_br.presence_len, msg, len);
    return EM_OK;
}

void
em_broker_redis_command(const void *rec, size_t len)
{
    em_brk_cmd_msg_t m;
    const char      *sep;

    if (em_brkcmd_decode(rec, len, &m) != EM_OK
        || (m.kind != EM_BRK_KIND_REDIS_PUBLISH && m.kind != EM_BRK_KIND_REDIS_SERVER_EMIT
            && m.kind != EM_BRK_KIND_REDIS_STORE && m.kind != EM_BRK_KIND_REDIS_SERVER_ASK)
        || (sep = memchr(m.data.data, '\0', m.data.len)) == NULL) {
        em_log(EM_LOG_WARN, 0, "a command for the broker it does not know was dropped");
        return;
    }
    if (m.kind == EM_BRK_KIND_REDIS_SERVER_ASK) {
        em_br_ask(m.origin, m.data.data, m.data.len);   /* answers even without Redis */
        return;
    }
    if (!em_br.pub.connected || em_br.inflight >= EM_BR_INFLIGHT_MAX) {
        em_br_lost(m.kind == EM_BRK_KIND_REDIS_PUBLISH ? "a response: no connection"
                   : m.kind == EM_BRK_KIND_REDIS_STORE ? "a store write: no connection"
                                                       : "a server-side event: no connection");
        return;
    }
    size_t clen = (size_t) (sep - m.data.data);
    if (m.kind == EM_BRK_KIND_REDIS_PUBLISH) {
        em_br_publish_raw(m.data.data, clen, sep + 1, m.data.len - clen - 1);
        return;
    }
    if (m.kind == EM_BRK_KIND_REDIS_STORE) {
        /* the worker's write, with this host's uid */
        em_rstore_op_t op;
        em_str_t       none;
        char          *msg;
        size_t         mlen;
        if (em_rstore_decode(sep + 1, m.data.len - clen - 1, SIZE_MAX, SIZE_MAX, &none, &op) == EM_OK
            && em_rstore_encode((em_str_t) { em_br.uid, 6 }, &op, &msg, &mlen) == EM_OK) {
            em_br_publish_raw(em_br.store, em_br.store_len, msg, mlen);
            free(msg);
        }
        return;
    }
    /* A script's nsp:server_emit(): on <key>-request#<nsp>#, with this host's uid. */
    char  *msg, *channel;
    size_t mlen, chlen = strlen(em_br.conf->key) + clen + 11;
    if ((channel = malloc(chlen)) == NULL) {
        return;
    }
    snprintf(channel, chlen, "%s-request#%.*s#", em_br.conf->key, (int) clen, m.data.data);
    if (em_rmsg_encode_server_emit((em_str_t) { em_br.uid, 6 }, sep + 1, m.data.len - clen - 1, &msg,
                                   &mlen) == EM_OK) {
        em_br_publish_raw(channel, chlen - 1, msg, mlen);
        free(msg);
    }
    free(channel);
}

void
em_broker_redis_stop(void)
{
    em_br.stopping = 1;
    if (em_br.pub.ac != NULL) {
        redisAsyncFree(em_br.pub.ac);
    }
    if (em_br.sub.ac != NULL) {
        redisAsyncFree(em_br.sub.ac);
    }
    if (em_br.rd.ac != NULL) {
        redisAsyncFree(em_br.rd.ac);
    }
    if (em_br.rd.retry != NULL) {
        event_free(em_br.rd.retry);
    }
    em_br.rd.ac = NULL;
    em_br.rd.retry = NULL;
    em_br_queue_free();
    /* after the connections: hiredis ends the asks still counting */
    while (em_br.asks != NULL) {
        em_br_ask_end(em_br.asks, "the broker stops");
    }
    if (em_br.pub.retry != NULL) {
        event_free(em_br.pub.retry);
    }
    if (em_br.sub.retry != NULL) {
        event_free(em_br.sub.retry);
    }
    free(em_br.pattern);
    free(em_br.presence);
    free(em_br.store);
    em_br.pattern = em_br.presence = em_br.store = NULL;
    em_br.pub.ac = em_br.sub.ac = NULL;
    em_br.pub.retry = em_br.sub.retry = NULL;
}
