/*
 * em_broker_redis.h - the broker's connections to Redis (the "redis" group
 * of emitd.conf(5)): this host's broadcasts published as Socket.IO's Redis
 * adapter publishes them, and the adapter's broadcasts of other hosts, Node
 * servers and emitters handed to the relay for this host's workers.
 */
#ifndef EM_BROKER_REDIS_H
#define EM_BROKER_REDIS_H

#include <event2/event.h>
#include <stddef.h>

#include "em_brkrec.h"
#include "em_conf.h"
#include "em_rmsg.h"
#include "em_state.h"

/* What the broker hears from Redis, and what it is told of the connections. */
typedef struct {
    /* A broadcast from Redis, for this host's workers. */
    void (*deliver)(const em_rmsg_t *m);
    /* A request of the adapter for namespace nsp (on <key>-request#<nsp>#),
     * for one of this host's workers to run. */
    void (*request)(em_str_t nsp, const char *msg, size_t len);
    /* A message of another host's presence (on <key>-presence#, em_rpres.h). */
    void (*presence)(const char *msg, size_t len);
    /* A write of another host's scripts to their store (on <key>-store#,
     * em_rstore.h). */
    void (*store)(const char *msg, size_t len);
    /* Both connections are up again (or for the first time), subscribed. */
    void (*up)(void);
    /* The answers to a worker's server-side event with an ack: for worker
     * slot, request id, JSON {"err": null | text, "responses": [...]}. */
    void (*answers)(unsigned slot, em_str_t id, const char *json, size_t len);
} em_broker_redis_handlers_t;

/* Connect (and reconnect, with a back-off, whenever a connection is lost)
 * on base. The uid, and in streams mode the last entry read, are kept in
 * st (may be NULL) for a broker that follows this one. EM_OK, or EM_ERROR
 * when nothing could be set up. */
int  em_broker_redis_start(struct event_base *base, const em_conf_t *conf, em_state_t *st,
                           const em_broker_redis_handlers_t *h);

/* This host's uid on the adapter's channels (six letters and digits). */
em_str_t em_broker_redis_uid(void);

/* Publish msg on <key>-presence#: EM_OK, or EM_DECLINED when there is no
 * connection (or Redis is behind). */
int  em_broker_redis_presence_send(const char *msg, size_t len);

/* A command record a worker sent the broker itself (EM_BRK_BROKER): a
 * response to publish (EM_BRK_KIND_REDIS_PUBLISH), a server-side event of a
 * script (EM_BRK_KIND_REDIS_SERVER_EMIT, or with an ack
 * EM_BRK_KIND_REDIS_SERVER_ASK: the other servers counted with PUBSUB
 * NUMSUB, their answers collected for 5 s at most) or a write to the
 * scripts' store (EM_BRK_KIND_REDIS_STORE) to publish with this host's uid. */
void em_broker_redis_command(const void *rec, size_t len);

/* Publish a broadcast record (EM_BRK_REC_BCAST) a worker of this host made,
 * decoded (as one to namespace nsp when nsp.data is not NULL: an instance
 * of a broadcast to every instance of a parameterised namespace); one that
 * cannot go (no connection) is counted and logged, or in streams mode kept
 * until Redis is back. */
void em_broker_redis_publish(const em_brk_view_t *v, em_str_t nsp);

void em_broker_redis_stop(void);

#endif
