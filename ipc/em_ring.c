/*
 * em_ring.c - SPSC record rings in shared memory (see em_ring.h, em_ring-t.h).
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "em_log.h"
#include "em_ring.h"

#define EM_RING_STRIDE(len) \
    (sizeof(em_ring_rec_t) + (((uint64_t) (len) + EM_RING_ALIGN - 1) & ~(uint64_t) (EM_RING_ALIGN - 1)))

static uint32_t
em_ring_payload_limit(uint64_t capacity)
{
    uint64_t max = capacity - sizeof(em_ring_rec_t);

    return (uint32_t) EM_MIN(max, (uint64_t) EM_RING_MAX_PAYLOAD);
}

/* Copy n bytes into the data area at byte counter pos, in two parts if it crosses the end. */
static void
em_ring_copy_in(em_ring_t *ring, uint64_t pos, const void *src, size_t n)
{
    uint64_t off = pos & ring->mask;
    size_t   first = (size_t) EM_MIN((uint64_t) n, ring->capacity - off);

    if (n == 0) {
        return;
    }
    memcpy(ring->data + off, src, first);
    if (n > first) {
        memcpy(ring->data, (const unsigned char *) src + first, n - first);
    }
}

static void
em_ring_copy_out(const em_ring_t *ring, uint64_t pos, void *dst, size_t n)
{
    uint64_t off = pos & ring->mask;
    size_t   first = (size_t) EM_MIN((uint64_t) n, ring->capacity - off);

    if (n == 0) {
        return;
    }
    memcpy(dst, ring->data + off, first);
    if (n > first) {
        memcpy((unsigned char *) dst + first, ring->data, n - first);
    }
}

size_t
em_ring_size(size_t capacity)
{
    return EM_RING_HDR_SIZE + capacity;
}

static int
em_ring_geometry(em_ring_t *ring, void *mem, size_t size, const char *what)
{
    if (mem == NULL || ((uintptr_t) mem & (EM_RING_ALIGN - 1)) != 0) {
        em_log(EM_LOG_ERR, 0, "%s: ring memory %p is not 8-byte aligned", what, mem);
        return EM_ERROR;
    }
    if (size < em_ring_size(EM_RING_MIN_CAPACITY)) {
        em_log(EM_LOG_ERR, 0, "%s: ring of %zu bytes is smaller than the minimum %zu",
               what, size, em_ring_size(EM_RING_MIN_CAPACITY));
        return EM_ERROR;
    }
    memset(ring, 0, sizeof(*ring));
    ring->hdr = mem;
    ring->data = (unsigned char *) mem + EM_RING_HDR_SIZE;
    return EM_OK;
}

int
em_ring_init(em_ring_t *ring, void *mem, size_t size)
{
    em_ring_hdr_t *h;
    uint64_t       cap = EM_RING_MIN_CAPACITY;

    if (em_ring_geometry(ring, mem, size, "em_ring_init()") != EM_OK) {
        return EM_ERROR;
    }
    while (cap * 2 <= size - EM_RING_HDR_SIZE && cap * 2 > cap) {
        cap *= 2;
    }
    h = mem;
    memset(h, 0, sizeof(*h));
    h->capacity = cap;
    h->max_payload = em_ring_payload_limit(cap);
    h->hdr_size = EM_RING_HDR_SIZE;
    h->version = EM_RING_VERSION;
    atomic_init(&h->tail, 0);
    atomic_init(&h->written, 0);
    atomic_init(&h->bytes_written, 0);
    atomic_init(&h->full, 0);
    atomic_init(&h->head, 0);
    atomic_init(&h->read, 0);
    atomic_init(&h->bytes_read, 0);
    atomic_init(&h->waiting, 0);
    atomic_init(&h->space_wanted, 0);
    /* The magic last: a half-formatted ring never attaches. */
    atomic_thread_fence(memory_order_release);
    h->magic = EM_RING_MAGIC;

    ring->capacity = cap;
    ring->mask = cap - 1;
    ring->max_payload = h->max_payload;
    return EM_OK;
}

int
em_ring_attach(em_ring_t *ring, void *mem, size_t size)
{
    em_ring_hdr_t *h;
    uint64_t       cap, head, tail;

    if (em_ring_geometry(ring, mem, size, "em_ring_attach()") != EM_OK) {
        return EM_ERROR;
    }
    h = mem;
    if (h->magic != EM_RING_MAGIC) {
        em_log(EM_LOG_ERR, 0, "em_ring_attach(): bad magic 0x%08x", h->magic);
        return EM_ERROR;
    }
    atomic_thread_fence(memory_order_acquire);
    if (h->version != EM_RING_VERSION || h->hdr_size != EM_RING_HDR_SIZE) {
        em_log(EM_LOG_ERR, 0, "em_ring_attach(): ring version %u (header %u bytes), expected %u (%u)",
               h->version, h->hdr_size, EM_RING_VERSION, EM_RING_HDR_SIZE);
        return EM_ERROR;
    }
    cap = h->capacity;
    if (cap < EM_RING_MIN_CAPACITY || (cap & (cap - 1)) != 0 || cap > size - EM_RING_HDR_SIZE
        || h->max_payload != em_ring_payload_limit(cap)) {
        em_log(EM_LOG_ERR, 0, "em_ring_attach(): bad capacity %llu (max payload %u) for %zu bytes",
               (unsigned long long) cap, h->max_payload, size);
        return EM_ERROR;
    }
    /*
     * The side that attaches is the restarted one, so its own counter is
     * still; load head first: the producer cannot move tail past head + cap.
     */
    head = atomic_load_explicit(&h->head, memory_order_acquire);
    tail = atomic_load_explicit(&h->tail, memory_order_acquire);
    if (tail - head > cap || (head | tail) % EM_RING_ALIGN != 0) {
        em_log(EM_LOG_ERR, 0, "em_ring_attach(): inconsistent head %llu / tail %llu (capacity %llu)",
               (unsigned long long) head, (unsigned long long) tail, (unsigned long long) cap);
        return EM_ERROR;
    }
    ring->capacity = cap;
    ring->mask = cap - 1;
    ring->max_payload = h->max_payload;
    ring->head_cache = head;
    ring->tail_cache = tail;
    return EM_OK;
}

size_t
em_ring_max_payload(const em_ring_t *ring)
{
    return ring->max_payload;
}

int
em_ring_writev(em_ring_t *ring, uint16_t type, const struct iovec *iov, int iovcnt)
{
    em_ring_hdr_t *h = ring->hdr;
    em_ring_rec_t  rec;
    uint64_t       tail, stride, pos;
    size_t         len = 0;

    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > ring->max_payload - len) {
            em_log(EM_LOG_ERR, 0, "ring record of type %u is larger than %u bytes",
                   type, ring->max_payload);
            return EM_ERROR;
        }
        len += iov[i].iov_len;
    }
    stride = EM_RING_STRIDE(len);
    tail = atomic_load_explicit(&h->tail, memory_order_relaxed);
    if (ring->capacity - (tail - ring->head_cache) < stride) {
        ring->head_cache = atomic_load_explicit(&h->head, memory_order_acquire);
        if (tail - ring->head_cache > ring->capacity) {
            em_log(EM_LOG_ERR, 0, "ring corrupt: head %llu ahead of tail %llu",
                   (unsigned long long) ring->head_cache, (unsigned long long) tail);
            return EM_ERROR;
        }
        if (ring->capacity - (tail - ring->head_cache) < stride) {
            atomic_store_explicit(&h->full, atomic_load_explicit(&h->full, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
            return EM_AGAIN;
        }
    }

    rec.len = (uint32_t) len;
    rec.type = type;
    rec.version = EM_RING_REC_VERSION;
    rec.flags = 0;
    em_ring_copy_in(ring, tail, &rec, sizeof(rec));
    pos = tail + sizeof(rec);
    for (int i = 0; i < iovcnt; i++) {
        em_ring_copy_in(ring, pos, iov[i].iov_base, iov[i].iov_len);
        pos += iov[i].iov_len;
    }

    /* Single writer of these: a plain load and store, no locked instruction. */
    atomic_store_explicit(&h->written, atomic_load_explicit(&h->written, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&h->bytes_written,
                          atomic_load_explicit(&h->bytes_written, memory_order_relaxed) + len,
                          memory_order_relaxed);
    atomic_store_explicit(&h->tail, tail + stride, memory_order_release);
    return EM_OK;
}

int
em_ring_write(em_ring_t *ring, uint16_t type, const void *data, size_t len)
{
    struct iovec iov = { (void *) data, len };

    return em_ring_writev(ring, type, &iov, len ? 1 : 0);
}

/* The oldest record's header, validated; head is the consumer's position. */
static int
em_ring_front(em_ring_t *ring, uint64_t *head, em_ring_rec_t *rec)
{
    em_ring_hdr_t *h = ring->hdr;
    uint64_t       used;

    *head = atomic_load_explicit(&h->head, memory_order_relaxed);
    if (ring->tail_cache == *head) {
        ring->tail_cache = atomic_load_explicit(&h->tail, memory_order_acquire);
        if (ring->tail_cache == *head) {
            return EM_AGAIN;
        }
    }
    used = ring->tail_cache - *head;
    if (used > ring->capacity || used % EM_RING_ALIGN != 0) {
        em_log(EM_LOG_ERR, 0, "ring corrupt: head %llu, tail %llu, capacity %llu",
               (unsigned long long) *head, (unsigned long long) ring->tail_cache,
               (unsigned long long) ring->capacity);
        return EM_ERROR;
    }
    em_ring_copy_out(ring, *head, rec, sizeof(*rec));
    if (rec->version != EM_RING_REC_VERSION || rec->len > ring->max_payload
        || EM_RING_STRIDE(rec->len) > used) {
        em_log(EM_LOG_ERR, 0, "ring corrupt: record at %llu has version %u, length %u (%llu bytes pending)",
               (unsigned long long) *head, rec->version, rec->len, (unsigned long long) used);
        return EM_ERROR;
    }
    return EM_OK;
}

int
em_ring_peek(em_ring_t *ring, uint16_t *type, size_t *len)
{
    em_ring_rec_t rec;
    uint64_t      head;
    int           rc = em_ring_front(ring, &head, &rec);

    if (rc == EM_OK) {
        *type = rec.type;
        *len = rec.len;
    }
    return rc;
}

int
em_ring_copy(em_ring_t *ring, uint16_t *type, void *buf, size_t cap, size_t *len, uint64_t *pos)
{
    em_ring_rec_t rec;
    int           rc = em_ring_front(ring, pos, &rec);

    if (rc != EM_OK) {
        return rc;
    }
    *type = rec.type;
    *len = rec.len;
    if (rec.len > cap) {
        return EM_DECLINED;
    }
    em_ring_copy_out(ring, *pos + sizeof(rec), buf, rec.len);
    return EM_OK;
}

void
em_ring_consume(em_ring_t *ring, uint64_t pos, size_t len)
{
    em_ring_hdr_t *h = ring->hdr;

    atomic_store_explicit(&h->read, atomic_load_explicit(&h->read, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&h->bytes_read,
                          atomic_load_explicit(&h->bytes_read, memory_order_relaxed) + len,
                          memory_order_relaxed);
    /* Release: our copy-out happens before the producer may overwrite the bytes. */
    atomic_store_explicit(&h->head, pos + EM_RING_STRIDE(len), memory_order_release);
}

int
em_ring_read(em_ring_t *ring, uint16_t *type, void *buf, size_t cap, size_t *len)
{
    uint64_t pos;
    int      rc = em_ring_copy(ring, type, buf, cap, len, &pos);

    if (rc == EM_OK) {
        em_ring_consume(ring, pos, *len);
    }
    return rc;
}

uint64_t
em_ring_tail(const em_ring_t *ring)
{
    return atomic_load_explicit(&ring->hdr->tail, memory_order_acquire);
}

int
em_ring_empty(em_ring_t *ring)
{
    uint64_t head = atomic_load_explicit(&ring->hdr->head, memory_order_relaxed);

    ring->tail_cache = atomic_load_explicit(&ring->hdr->tail, memory_order_acquire);
    return ring->tail_cache == head;
}

void
em_ring_stats(const em_ring_t *ring, em_ring_stats_t *st)
{
    const em_ring_hdr_t *h = ring->hdr;
    uint64_t             head = atomic_load_explicit(&h->head, memory_order_relaxed);
    uint64_t             tail = atomic_load_explicit(&h->tail, memory_order_relaxed);

    st->capacity = ring->capacity;
    st->used = tail - head > ring->capacity ? ring->capacity : tail - head;
    st->written = atomic_load_explicit(&h->written, memory_order_relaxed);
    st->read = atomic_load_explicit(&h->read, memory_order_relaxed);
    st->bytes_written = atomic_load_explicit(&h->bytes_written, memory_order_relaxed);
    st->bytes_read = atomic_load_explicit(&h->bytes_read, memory_order_relaxed);
    st->full = atomic_load_explicit(&h->full, memory_order_relaxed);
}

/* ---- doorbell ------------------------------------------------------------ */

int
em_ring_wait_prepare(em_ring_t *ring)
{
    em_ring_hdr_t *h = ring->hdr;

    atomic_store_explicit(&h->waiting, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (!em_ring_empty(ring)) {
        atomic_store_explicit(&h->waiting, 0, memory_order_relaxed);
        return EM_AGAIN;
    }
    return EM_OK;
}

void
em_ring_wait_done(em_ring_t *ring)
{
    atomic_store_explicit(&ring->hdr->waiting, 0, memory_order_relaxed);
}

int
em_ring_notify_needed(em_ring_t *ring)
{
    em_ring_hdr_t *h = ring->hdr;

    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&h->waiting, memory_order_relaxed) == 0) {
        return 0;
    }
    return atomic_exchange_explicit(&h->waiting, 0, memory_order_relaxed) != 0;
}

int
em_ring_space_wait_prepare(em_ring_t *ring, size_t len)
{
    em_ring_hdr_t *h = ring->hdr;
    uint64_t       stride, tail;

    if (len > ring->max_payload) {
        return EM_AGAIN;   /* em_ring_write() will refuse it: never sleep on it */
    }
    stride = EM_RING_STRIDE(len);
    atomic_store_explicit(&h->space_wanted, (uint32_t) stride, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    tail = atomic_load_explicit(&h->tail, memory_order_relaxed);
    ring->head_cache = atomic_load_explicit(&h->head, memory_order_acquire);
    if (ring->capacity - (tail - ring->head_cache) >= stride) {
        atomic_store_explicit(&h->space_wanted, 0, memory_order_relaxed);
        return EM_AGAIN;
    }
    return EM_OK;
}

void
em_ring_space_wait_done(em_ring_t *ring)
{
    atomic_store_explicit(&ring->hdr->space_wanted, 0, memory_order_relaxed);
}

int
em_ring_space_notify_needed(em_ring_t *ring)
{
    em_ring_hdr_t *h = ring->hdr;
    uint64_t       wanted, head, tail;

    atomic_thread_fence(memory_order_seq_cst);
    wanted = atomic_load_explicit(&h->space_wanted, memory_order_relaxed);
    if (wanted == 0) {
        return 0;
    }
    head = atomic_load_explicit(&h->head, memory_order_relaxed);
    tail = atomic_load_explicit(&h->tail, memory_order_acquire);
    if (tail - head <= ring->capacity && ring->capacity - (tail - head) < wanted) {
        return 0;   /* not yet: a later batch of reads will look again */
    }
    return atomic_exchange_explicit(&h->space_wanted, 0, memory_order_relaxed) != 0;
}

int
em_ring_bell_open(void)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    if (fd < 0) {
        em_log(EM_LOG_ERR, errno, "eventfd() failed");
        return EM_ERROR;
    }
    return fd;
}

int
em_ring_bell_ring(int bell)
{
    uint64_t one = 1;

    for (;;) {
        if (write(bell, &one, sizeof(one)) == (ssize_t) sizeof(one)) {
            return EM_OK;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN) {
            return EM_OK;   /* counter saturated: the sleeper will wake anyway */
        }
        em_log(EM_LOG_ERR, errno, "write() to ring doorbell %d failed", bell);
        return EM_ERROR;
    }
}

int
em_ring_bell_drain(int bell)
{
    uint64_t n;

    for (;;) {
        if (read(bell, &n, sizeof(n)) == (ssize_t) sizeof(n)) {
            return EM_OK;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN) {
            return EM_OK;
        }
        em_log(EM_LOG_ERR, errno, "read() from ring doorbell %d failed", bell);
        return EM_ERROR;
    }
}
