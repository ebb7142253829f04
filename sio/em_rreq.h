/*
 * em_rreq.h - the requests of Socket.IO's Redis adapter from other hosts,
 * run on this host's sockets, with their responses (em_rreq.c).
 */
#ifndef EM_RREQ_H
#define EM_RREQ_H

#include <jansson.h>

#include "em_brkrec.h"
#include "em_rstore.h"

/* A request the broker handed to this worker (EM_BRK_KIND_REDIS_REQUEST:
 * data is the namespace, a NUL, then the request as published). */
void em_rreq_receive(const em_brk_cmd_msg_t *m);

/* The answer to a serverSideEmit that waits for one (the script's ack):
 * {type: 6, requestId, data: arg} on namespace nsp's response channel. */
void em_rreq_server_ack(const char *nsp, const char *request_id, json_t *arg);

/* A server-side event to the other servers of namespace nsp (a script's
 * nsp:server_emit): data is the JSON array [event, ...args]. The broker
 * publishes {uid, type: 6, data} on the namespace's request channel, as a
 * Node server's io.serverSideEmit() does. EM_DECLINED without redis. */
int em_rreq_server_emit(const char *nsp, size_t nsplen, json_t *data);

/* The same, waiting for the other servers' answers (io.serverSideEmitWithAck):
 * done(arg, err, responses) runs once, with err NULL and every server's
 * answer, or an error text (a timeout: the answers that came) and what came.
 * EM_DECLINED without redis (done is not called), EM_ERROR when it cannot
 * be sent (done is not called either). */
typedef void (*em_rreq_done_pt)(void *arg, const char *err, json_t *responses);
int em_rreq_server_ask(const char *nsp, size_t nsplen, json_t *data, em_rreq_done_pt done, void *arg);
/* The answers the broker collected (EM_BRK_KIND_REDIS_SERVER_ANSWERS). */
void em_rreq_answers(const em_brk_cmd_msg_t *m);

/* A write of a script to emitd.store, for the other hosts' stores (the
 * broker publishes it on <key>-store#). EM_DECLINED without redis. */
int em_rreq_store(const em_rstore_op_t *op);

#endif
