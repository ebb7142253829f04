/*
 * em_shm.h - the rings' shared segment: made once by the master, mapped by
 * the broker and the workers (and again by any of them that restarts), and
 * the membership filter by which the broker forwards a record only to the
 * workers that may have its members. Also makes the memfd segments that the
 * cluster-wide state (em_state.h) lives in.
 */
#ifndef EM_SHM_H
#define EM_SHM_H

#include <stddef.h>
#include <stdint.h>

#include "em_ring.h"
#include "em_shm-t.h"

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

#endif
