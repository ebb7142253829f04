/*
 * em_worker.h - a worker process: one libevent loop serving HTTP/1.1,
 * WebSocket, Engine.IO and Socket.IO for the connections the master hands it.
 */
#ifndef EM_WORKER_H
#define EM_WORKER_H

#include "em_conf.h"

/* A worker's exit status when it cannot start (its scripts fail to load). */
#define EM_WORKER_EXIT_FATAL 2

/* Entry point after fork(): never returns to the master's code. */
int em_worker_run(const em_conf_t *conf, unsigned slot, unsigned nworkers, int chan, int state_fd,
                  int shm_fd, int bell, int broker_bell);


#endif
