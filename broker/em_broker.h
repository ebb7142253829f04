/*
 * em_broker.h - the broker process and the shared segment it serves.
 *
 * The broker relays what one worker publishes (room broadcasts) to the
 * other workers, through the rings of the shared segment, and keeps the
 * cluster-wide state segment (em_state.h) tidy: expired recovery sessions
 * and old log records go once a second. It keeps nothing in its own memory,
 * so a broker that is killed and restarted carries on from the records left
 * in the rings and the state left in the segment.
 */
#ifndef EM_BROKER_H
#define EM_BROKER_H

#include <stddef.h>

#include "em_conf.h"
#include "em_shm.h"
#include "em_state.h"

/*
 * The relay itself (em_broker_run() uses these; tests call them directly):
 * attach to the segment's rings and pick up a fan-out that a killed broker
 * left (EM_OK, or EM_ERROR logged), then relay what is waiting (returns 1 if
 * more may be waiting).
 */
int em_broker_attach(em_shm_t *shm, const int *worker_bells);
int em_broker_relay(void);

/*
 * The broker's process cycle: relay records until SIGTERM or until the
 * master is gone (PR_SET_PDEATHSIG). `bell` is the broker's eventfd; worker_bells[i] is worker
 * i's; conf gives how long recovery sessions and log records live and, with
 * "redis", the connection to other hosts (em_broker_redis.h).
 * Returns the exit status.
 */
int em_broker_run(em_shm_t *shm, int bell, const int *worker_bells, em_state_t *state,
                  const em_conf_t *conf);

#endif
