/*
 * em_ring-t.h - the shared-memory layout of a worker <-> broker ring.
 *
 * A ring is a single-producer / single-consumer byte queue placed in a
 * MAP_SHARED mapping that the master creates (memfd_create or shm_open) before
 * it forks, so that a restarted broker or worker maps the same bytes again and
 * finds every record that was committed before the crash. One pair of rings
 * per worker: worker -> broker and broker -> worker.
 *
 *     +--------------------+ 0
 *     | em_ring_hdr_t      |   4 cache lines: constants, producer line,
 *     |                    |   consumer line, doorbell line
 *     +--------------------+ EM_RING_HDR_SIZE (256)
 *     | data area          |   `capacity` bytes, a power of two
 *     +--------------------+ EM_RING_HDR_SIZE + capacity
 *
 * `tail` (bytes ever published) and `head` (bytes ever consumed) are 64-bit
 * counters that only grow; a byte counter b lives at data[b & (capacity-1)].
 * tail - head is the number of bytes in use, never more than capacity. At
 * 10 GB/s a 64-bit counter wraps after 58 years, so wrap-around of the
 * counters themselves is not handled.
 *
 * A record is an em_ring_rec_t followed by `len` payload bytes, padded to a
 * multiple of EM_RING_ALIGN (8). Wrap strategy: a record may cross the end of
 * the data area; its payload is then copied in two parts (no padding record,
 * no wasted space). Because every record starts on an 8-byte boundary and the
 * capacity is a multiple of 8, the 8-byte record header itself never splits:
 * only payloads do.
 *
 * Each line is written by one side only: the producer writes `tail` and its
 * counters, the consumer `head` and its counters. The two doorbell flags are
 * set by the side that is about to sleep and cleared by whichever side wins
 * the atomic exchange (see em_ring.h for the protocol). The header is read
 * through _Atomic fields, which requires lock-free (hence address-free)
 * 32- and 64-bit atomics: asserted below.
 */
#ifndef EM_RING_T_H
#define EM_RING_T_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define EM_RING_MAGIC        0x454d5247u    /* "EMRG" */
#define EM_RING_VERSION      1              /* bump on any change to this file */
#define EM_RING_REC_VERSION  1              /* em_ring_rec_t framing version */

#define EM_RING_CACHELINE    64
#define EM_RING_HDR_SIZE     256            /* data area offset */
#define EM_RING_ALIGN        8              /* record alignment */
#define EM_RING_MIN_CAPACITY 64
#define EM_RING_MAX_PAYLOAD  (1u << 30)     /* absolute cap, below capacity - 8 */

typedef struct {
    /* line 0: written by em_ring_init() only, read-only afterwards */
    uint32_t          magic;          /* EM_RING_MAGIC */
    uint16_t          version;        /* EM_RING_VERSION */
    uint16_t          hdr_size;       /* EM_RING_HDR_SIZE */
    uint64_t          capacity;       /* data area bytes, power of two */
    uint32_t          max_payload;    /* largest record payload accepted */
    uint32_t          reserved0;
    uint8_t           pad0[EM_RING_CACHELINE - 24];

    /* line 1: producer */
    _Atomic uint64_t  tail;           /* bytes ever published (release) */
    _Atomic uint64_t  written;        /* records published */
    _Atomic uint64_t  bytes_written;  /* payload bytes published */
    _Atomic uint64_t  full;           /* writes refused: ring full (back-pressure) */
    uint8_t           pad1[EM_RING_CACHELINE - 32];

    /* line 2: consumer */
    _Atomic uint64_t  head;           /* bytes ever consumed (release) */
    _Atomic uint64_t  read;           /* records consumed */
    _Atomic uint64_t  bytes_read;     /* payload bytes consumed */
    uint8_t           pad2[EM_RING_CACHELINE - 24];

    /* line 3: doorbell flags */
    _Atomic uint32_t  waiting;        /* 1: consumer sleeps until data arrives */
    _Atomic uint32_t  space_wanted;   /* >0: producer sleeps until that many bytes are free */
    uint8_t           pad3[EM_RING_CACHELINE - 8];
} em_ring_hdr_t;

/* The fixed header in front of every record's payload. */
typedef struct {
    uint32_t len;        /* payload bytes, header and padding excluded */
    uint16_t type;       /* the caller's record type */
    uint8_t  version;    /* EM_RING_REC_VERSION */
    uint8_t  flags;      /* reserved, 0 */
} em_ring_rec_t;

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "ring needs lock-free 32-bit atomics");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "ring needs lock-free 64-bit atomics");
_Static_assert(sizeof(_Atomic uint64_t) == 8, "_Atomic uint64_t is not 8 bytes");
_Static_assert(sizeof(_Atomic uint32_t) == 4, "_Atomic uint32_t is not 4 bytes");

_Static_assert(sizeof(em_ring_hdr_t) == EM_RING_HDR_SIZE, "em_ring_hdr_t layout changed");
_Static_assert(offsetof(em_ring_hdr_t, magic) == 0, "em_ring_hdr_t layout changed");
_Static_assert(offsetof(em_ring_hdr_t, version) == 4, "em_ring_hdr_t layout changed");
_Static_assert(offsetof(em_ring_hdr_t, hdr_size) == 6, "em_ring_hdr_t layout changed");
_Static_assert(offsetof(em_ring_hdr_t, capacity) == 8, "em_ring_hdr_t layout changed");
_Static_assert(offsetof(em_ring_hdr_t, max_payload) == 16, "em_ring_hdr_t layout changed");
_Static_assert(offsetof(em_ring_hdr_t, tail) == 1 * EM_RING_CACHELINE, "em_ring_hdr_t layout changed");
_Static_assert(offsetof(em_ring_hdr_t, written) == 1 * EM_RING_CACHELINE + 8, "em_ring_hdr_t layout changed");
_Static_assert(offsetof(em_ring_hdr_t, bytes_written) == 1 * EM_RING_CACHELINE + 16, "em_ring_hdr_t layout changed");
_Static_assert(offsetof(em_ring_hdr_t, full) == 1 * EM_RING_CACHELINE + 24, "em_ring_hdr_t layout changed");
_Static_assert(offsetof(em_ring_hdr_t, head) == 2 * EM_RING_CACHELINE, "em_ring_hdr_t layout changed");
_Static_assert(offsetof(em_ring_hdr_t, read) == 2 * EM_RING_CACHELINE + 8, "em_ring_hdr_t layout changed");
_Static_assert(offsetof(em_ring_hdr_t, bytes_read) == 2 * EM_RING_CACHELINE + 16, "em_ring_hdr_t layout changed");
_Static_assert(offsetof(em_ring_hdr_t, waiting) == 3 * EM_RING_CACHELINE, "em_ring_hdr_t layout changed");
_Static_assert(offsetof(em_ring_hdr_t, space_wanted) == 3 * EM_RING_CACHELINE + 4, "em_ring_hdr_t layout changed");

_Static_assert(sizeof(em_ring_rec_t) == EM_RING_ALIGN, "em_ring_rec_t layout changed");
_Static_assert(offsetof(em_ring_rec_t, len) == 0, "em_ring_rec_t layout changed");
_Static_assert(offsetof(em_ring_rec_t, type) == 4, "em_ring_rec_t layout changed");
_Static_assert(offsetof(em_ring_rec_t, version) == 6, "em_ring_rec_t layout changed");
_Static_assert(offsetof(em_ring_rec_t, flags) == 7, "em_ring_rec_t layout changed");
_Static_assert(EM_RING_MIN_CAPACITY % EM_RING_ALIGN == 0, "capacity must hold whole record headers");

#endif
