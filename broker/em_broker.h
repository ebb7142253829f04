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

#include "em_broker-t.h"
#include "em_conf.h"
#include "em_ring.h"
#include "em_state.h"

/* The shared segment as a process maps it. */
typedef struct {
    int          fd;
    void        *base;
    size_t       size;
    unsigned     nworkers;
    size_t       ring_size;
} em_shm_t;

/* A new memfd of `size` zero bytes, mapped shared; NULL (logged) on error.
 * Used for the rings' segment and the state segment. */
void *em_shm_segment_new(const char *name, size_t size, int *fd);

/* Master: create and format the segment for nworkers (rings empty). */
int em_shm_create(em_shm_t *shm, unsigned nworkers);

/* Broker or worker: map an existing segment from its descriptor and check it. */
int em_shm_map(em_shm_t *shm, int fd);

/* Attach this process's handle to ring `dir` of worker `slot`. */
int em_shm_ring(em_shm_t *shm, unsigned slot, int dir, em_ring_t *ring);

/* Worker `slot`'s membership filter. */
uint16_t *em_shm_filter(em_shm_t *shm, unsigned slot);

/* The filter slot of a room of a namespace (room NULL: the namespace). */
uint32_t em_brk_key_hash(const char *nsp, size_t nsp_len, const char *room, size_t room_len);

/* May worker `slot` have members for this broadcast record? Decoded with
 * em_brkrec_decode(); a record that does not decode is forwarded (1): the
 * worker logs and drops it. */
int em_brk_wants(em_shm_t *shm, unsigned slot, const void *rec, size_t len);

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
 * i's; `keep` is how long (ms) recovery sessions and log records live.
 * Returns the exit status.
 */
int em_broker_run(em_shm_t *shm, int bell, const int *worker_bells, em_state_t *state,
                  int64_t keep);

#endif
