/*
 * em_bus.h - a worker's side of the broker: publish what other workers must
 * deliver too (room broadcasts), and deliver what they published.
 */
#ifndef EM_BUS_H
#define EM_BUS_H

#include "em_adapter.h"
#include "em_buf.h"

/* Map the shared segment and attach this worker's rings. No broker (one
 * worker): shm_fd < 0, and publishing does nothing. */
int em_bus_init(int shm_fd, int bell, int broker_bell);

/*
 * Publish a broadcast for the other workers: to namespace `nsp` (or, with
 * conf_index >= 0, every instance of that configured namespace), rooms and
 * except-rooms as in b (b->skip stays local), the EVENT's JSON array and its
 * attachments. Never blocks: a full ring queues it locally, in order.
 */
void em_bus_publish(em_str_t nsp, long conf_index, const em_bcast_t *b, em_str_t data,
                    em_buf_t *const *att, size_t natt);

#endif
