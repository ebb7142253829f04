/*
 * em_bus.h - a worker's side of the broker: publish what other workers must
 * deliver too (room broadcasts), and deliver what they published.
 */
#ifndef EM_BUS_H
#define EM_BUS_H

#include "em_adapter.h"
#include <stdint.h>

#include "em_brkrec.h"
#include "em_ring.h"
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
void em_bus_publish(em_str_t nsp, long conf_index, const em_bcast_t *b, em_str_t data, int logged,
                    em_buf_t *const *att, size_t natt);

/*
 * Tell the broker this worker now has (add) or no longer has (del) members
 * of `room` in namespace nsp — or, with room NULL, sockets in nsp — so that
 * it forwards only what this worker can deliver.
 */
void em_bus_key_add(const char *nsp, size_t nsp_len, const char *room, size_t room_len);
void em_bus_key_del(const char *nsp, size_t nsp_len, const char *room, size_t room_len);

/* Whether there are other workers to reach (a broker), and the largest
 * record the rings carry (SIZE_MAX without). */
int    em_bus_active(void);
size_t em_bus_max_record(void);

/* Send a command record (em_brkrec.h) to its target through the broker:
 * EM_OK, or EM_ERROR (logged) when there is no broker, it is too large or
 * the queue for the broker is full. */
int em_bus_send_cmd(const em_brk_cmd_msg_t *m);

/* The figures of worker slot's ring to the broker (up) or from it. */
int em_bus_ring_stats(unsigned slot, int up, em_ring_stats_t *out);

/* Records this worker has received from and published to the broker. */
void em_bus_counts(uint64_t *received, uint64_t *published);

#endif
