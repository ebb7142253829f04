/*
 * em_rreq.h - the requests of Socket.IO's Redis adapter from other hosts,
 * run on this host's sockets, with their responses (em_rreq.c).
 */
#ifndef EM_RREQ_H
#define EM_RREQ_H

#include "em_brkrec.h"

/* A request the broker handed to this worker (EM_BRK_KIND_REDIS_REQUEST:
 * data is the namespace, a NUL, then the request as published). */
void em_rreq_receive(const em_brk_cmd_msg_t *m);

#endif
