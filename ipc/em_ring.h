/*
 * em_ring.h - lock-free single-producer / single-consumer record rings in
 * shared memory, with an eventfd doorbell so that neither side polls.
 *
 * The layout and the wrap strategy are described in em_ring-t.h. The caller
 * owns the mapping (the master creates it with memfd_create or shm_open and
 * MAP_SHARED) and passes a pointer and a size; each process keeps its own
 * em_ring_t handle on it. The handle copies the ring's geometry when it is
 * made, so a header scribbled on by a buggy peer cannot steer reads or
 * writes outside the mapping; head and tail are checked before every use.
 *
 * Exactly one process (or thread) writes and exactly one reads a given ring.
 * A record is committed when the producer stores `tail` (release) and
 * consumed when the consumer stores `head` (release); the consumer reads
 * `tail` and the producer reads `head` with acquire. A side that dies and is
 * restarted calls em_ring_attach() on the same bytes:
 *   - a restarted consumer resumes at `head`: every record committed and not
 *     yet consumed is read exactly once (a record whose em_ring_read() had
 *     copied it out but not yet stored `head` is delivered again, since it
 *     was not consumed);
 *   - a restarted producer resumes at `tail`: a half-written record was never
 *     published and is overwritten; nothing committed is lost.
 * The counters (written, read, bytes, full) are statistics updated next to
 * the commit, not with it, and may be one record off after a crash.
 *
 * Doorbell protocol. One eventfd per sleeping side (a process that sleeps on
 * several rings may share one eventfd among them); the ring only holds the
 * flags `waiting` (consumer wants data) and `space_wanted` (producer wants
 * room). Both follow the same pattern, each side doing "store my flag or
 * counter, full fence, load the other's":
 *
 *   consumer                                  producer
 *   --------                                  --------
 *   while (em_ring_read(r, ...) == EM_OK)     rc = em_ring_write(r, ...);
 *       handle it;                            if (rc == EM_OK
 *   if (em_ring_space_notify_needed(r))           && em_ring_notify_needed(r))
 *       em_ring_bell_ring(producer_bell);         em_ring_bell_ring(consumer_bell);
 *   if (em_ring_wait_prepare(r) == EM_OK) {   if (rc == EM_AGAIN
 *       poll(consumer_bell, ...);                 && em_ring_space_wait_prepare(r, len) == EM_OK) {
 *       em_ring_bell_drain(consumer_bell);        poll(producer_bell, ...);
 *       em_ring_wait_done(r);                     em_ring_bell_drain(producer_bell);
 *   }                                             em_ring_space_wait_done(r);
 *   (loop)                                    }   (retry)
 *
 * em_ring_wait_prepare() sets `waiting` and then looks at `tail` again: if a
 * record slipped in between the last read and the flag, it clears the flag
 * and returns EM_AGAIN (do not sleep). em_ring_notify_needed() is called
 * after publishing: it looks at `waiting` and, if set, takes it with an
 * atomic exchange so that one sleep costs at most one eventfd write. With a
 * sequentially consistent fence between each side's store and load, at least
 * one of them sees the other's store: no lost wake-up. A wake-up may be
 * spurious (both sides raced to clear the flag); the sleeper then finds the
 * ring empty and sleeps again. The producer side is symmetric, except that
 * the consumer rings only once at least `space_wanted` bytes are free; the
 * check runs after every batch of reads, so it is true at the latest when the
 * ring is empty. The notify calls may be made once per batch of writes or
 * reads, but must be made before the calling side sleeps or stops.
 */
#ifndef EM_RING_H
#define EM_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "em_core.h"
#include "em_ring-t.h"

/* A process's handle on a ring: geometry copied once, one cached counter per side. */
typedef struct {
    em_ring_hdr_t *hdr;
    unsigned char *data;
    uint64_t       capacity;
    uint64_t       mask;
    uint32_t       max_payload;
    uint64_t       head_cache;   /* producer: last `head` seen (free space is at least this) */
    uint64_t       tail_cache;   /* consumer: last `tail` seen (data is at least this) */
} em_ring_t;

/* A snapshot of a ring's figures for /metrics and tests. */
typedef struct {
    uint64_t capacity;
    uint64_t used;            /* bytes in use, record headers and padding included */
    uint64_t written;
    uint64_t read;
    uint64_t bytes_written;
    uint64_t bytes_read;
    uint64_t full;
} em_ring_stats_t;

/* Mapping size for a ring whose data area is `capacity` bytes (a power of two). */
size_t em_ring_size(size_t capacity);

/*
 * Format `size` bytes at `mem` (8-byte aligned, at least
 * em_ring_size(EM_RING_MIN_CAPACITY)) as an empty ring whose capacity is the
 * largest power of two that fits. Only the process that created the mapping
 * does this, before any producer or consumer uses it. EM_OK or EM_ERROR.
 */
int em_ring_init(em_ring_t *ring, void *mem, size_t size);

/*
 * Attach to a ring formatted by em_ring_init(), possibly with records
 * pending and the other side running. Checks magic, versions, geometry
 * against `size`, and head/tail consistency. EM_OK, or EM_ERROR (logged).
 */
int em_ring_attach(em_ring_t *ring, void *mem, size_t size);

/* Largest payload em_ring_write() accepts on this ring. */
size_t em_ring_max_payload(const em_ring_t *ring);

/*
 * Producer: publish one record of `len` bytes. EM_OK; EM_AGAIN when the ring
 * has no room now (counted in `full`; the record is not written, retry later
 * or wait with em_ring_space_wait_prepare()); EM_ERROR when len exceeds
 * em_ring_max_payload() (logged; retrying cannot help).
 */
int em_ring_write(em_ring_t *ring, uint16_t type, const void *data, size_t len);

/* Producer: as em_ring_write(), the payload gathered from iov[0..iovcnt). */
int em_ring_writev(em_ring_t *ring, uint16_t type, const struct iovec *iov, int iovcnt);

/*
 * Consumer: copy the oldest record into buf (cap bytes) and consume it.
 * EM_OK with *type and *len set; EM_AGAIN when the ring is empty;
 * EM_DECLINED when cap < the record's length: *type and *len are set and the
 * record stays in place (grow the buffer and call again); EM_ERROR when the
 * ring is corrupt (logged; the ring must be re-initialised).
 */
int em_ring_read(em_ring_t *ring, uint16_t *type, void *buf, size_t cap, size_t *len);

/*
 * Consumer, in two steps: em_ring_copy() copies the oldest record out as
 * em_ring_read() does but leaves it in place, with *pos its position (the
 * same until it is consumed, also across a restart); em_ring_consume()
 * then consumes it (pos and len from em_ring_copy()).
 */
int  em_ring_copy(em_ring_t *ring, uint16_t *type, void *buf, size_t cap, size_t *len, uint64_t *pos);
void em_ring_consume(em_ring_t *ring, uint64_t pos, size_t len);

/* Bytes ever published on the ring: moves when, and only when, a write commits. */
uint64_t em_ring_tail(const em_ring_t *ring);

/* Consumer: type and length of the oldest record, not consumed. As em_ring_read(). */
int em_ring_peek(em_ring_t *ring, uint16_t *type, size_t *len);

/* Consumer: 1 if no committed record is pending, else 0. */
int em_ring_empty(em_ring_t *ring);

void em_ring_stats(const em_ring_t *ring, em_ring_stats_t *st);

/*
 * Doorbell, consumer side. em_ring_wait_prepare(): EM_OK means sleep now
 * (until the bell rings); EM_AGAIN means records arrived, read them instead.
 * em_ring_wait_done() after waking, whatever woke it.
 */
int em_ring_wait_prepare(em_ring_t *ring);
void em_ring_wait_done(em_ring_t *ring);

/* Producer, after one or more successful writes: 1 if the consumer's bell must be rung. */
int em_ring_notify_needed(em_ring_t *ring);

/*
 * Doorbell, producer side, after em_ring_write() returned EM_AGAIN for a
 * payload of `len` bytes: EM_OK means sleep now; EM_AGAIN means there is room
 * already, retry. em_ring_space_wait_done() after waking.
 */
int em_ring_space_wait_prepare(em_ring_t *ring, size_t len);
void em_ring_space_wait_done(em_ring_t *ring);

/* Consumer, after one or more reads: 1 if the producer's bell must be rung. */
int em_ring_space_notify_needed(em_ring_t *ring);

/* An eventfd doorbell: nonblocking, close-on-exec. fd, or EM_ERROR (logged). */
int em_ring_bell_open(void);
/* Ring it. EM_OK or EM_ERROR (logged). */
int em_ring_bell_ring(int bell);
/* Reset it after waking (nonblocking; nothing pending is fine). EM_OK or EM_ERROR (logged). */
int em_ring_bell_drain(int bell);

#endif
