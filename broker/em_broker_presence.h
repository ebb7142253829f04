/*
 * em_broker_presence.h - presence and room sizes across hosts: each host's
 * broker tells the others, through Redis, which users are online on it and
 * how many of its sockets each room holds, and keeps theirs in the state
 * segment as the other hosts' share (em_presence_remote_apply), so that a
 * script's nsp:presence(), nsp:online(), nsp:room_size() ... count every
 * host.
 *
 * Once a second the broker compares its workers' presence with what it last
 * published and publishes what changed (em_rpres.h), or a heartbeat when
 * nothing did. A host it has not heard for EM_BP_TIMEOUT ms loses its share;
 * one whose messages it missed (a gap in its seq) is asked for a full list.
 *
 * Who reports a user's offline to the scripts: the host where its last
 * connection anywhere closes (the worker, at once). When the last ones
 * close on two hosts before either has heard of the other's, each sees the
 * other's "unreported" drop, and the one with the smaller uid reports it.
 * When a host is dropped (silent), the live host with the smallest uid
 * reports its users that are offline now.
 */
#ifndef EM_BROKER_PRESENCE_H
#define EM_BROKER_PRESENCE_H

#include <event2/event.h>
#include <stddef.h>

#include "em_state.h"

#define EM_BP_PERIOD  1000      /* ms between two publications */
#define EM_BP_TIMEOUT 5000      /* ms: a host silent this long is dropped */

typedef struct {
    em_str_t uid;               /* this host's */
    size_t   max_message;       /* bytes of one message at most */
    /* publish one message; EM_OK, or EM_DECLINED when it cannot go now */
    int    (*send)(const char *msg, size_t len);
    /* a user went offline on every host and this host is the one to tell
     * its scripts (EM_PCHG_OFFLINE): for a worker to run on_presence */
    void   (*report)(int what, em_str_t nsp, em_str_t user);
} em_broker_presence_conf_t;

int  em_broker_presence_start(struct event_base *base, em_state_t *st,
                              const em_broker_presence_conf_t *conf);
/* A message from Redis. */
void em_broker_presence_message(const char *msg, size_t len);
/* The connections to Redis are up again: publish everything, and ask
 * every other host for everything. */
void em_broker_presence_up(void);
void em_broker_presence_stop(void);

#endif
