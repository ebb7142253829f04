/*
 * test_ring.c - unit tests of ipc/em_ring.c: table-driven scripts run
 * against a model FIFO, the doorbell protocol step by step, and a bounded
 * producer/consumer stress over a MAP_SHARED memfd (two processes, the real
 * use) and between two threads (for ThreadSanitizer).
 */
#include <check.h>

#include "em_check.h"
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "em_ring.h"

/*
 * Every ck_assert*() records a mark point with a write() even when it holds;
 * loops that run millions of times check with this instead.
 */
#define CHECK(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

#define STRIDE(len) (sizeof(em_ring_rec_t) + (((len) + 7) & ~(size_t) 7))

static unsigned char ring_mem[EM_RING_HDR_SIZE + 64 * 1024] __attribute__((aligned(64)));

/* Deterministic payload bytes for (type, len, seed). */
static void
fill_payload(unsigned char *p, size_t len, uint16_t type, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + type * 40503u + (uint32_t) len + 1;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char) x;
    }
}

/* ---- scripts against a model ------------------------------------------- */

typedef enum {
    OP_END = 0,
    OP_WRITE,       /* a = type, b = len; expect rc */
    OP_READ,        /* expect rc; EM_OK compares with the model's oldest */
    OP_READ_SMALL,  /* buffer of a bytes; expect rc (EM_DECLINED: record stays) */
    OP_PEEK,        /* expect rc; EM_OK compares type/len with the model */
    OP_FILL,        /* write len-b records until EM_AGAIN; a = expected count */
    OP_DRAIN,       /* read until EM_AGAIN, all checked; model ends empty */
    OP_CYCLE,       /* a = operations, b = largest len: random writes/reads */
    OP_REATTACH,    /* drop the handle, em_ring_attach() again: expect rc */
    OP_STATS,       /* a = written, b = read, rc = full */
    OP_USED,        /* a = bytes in use */
    OP_CAPACITY,    /* a = capacity */
    OP_POKE32,      /* header offset a := b (corruption) */
    OP_POKE64,      /* header offset a := b (corruption) */
    OP_POKE_DATA,   /* data byte a := b (corruption) */
    OP_ATTACH_SIZE, /* em_ring_attach() with size a: expect rc */
} op_code_t;

typedef struct {
    op_code_t op;
    uint64_t  a;
    uint64_t  b;
    int       rc;
} op_t;

typedef struct {
    const char *name;
    size_t      size;       /* bytes given to em_ring_init() */
    op_t        ops[24];
} script_t;

#define RING(cap)      (EM_RING_HDR_SIZE + (cap))
#define W(t, l, rc)    { OP_WRITE, (t), (l), (rc) }
#define R(rc)          { OP_READ, 0, 0, (rc) }
#define RS(cap, rc)    { OP_READ_SMALL, (cap), 0, (rc) }
#define PEEK(rc)       { OP_PEEK, 0, 0, (rc) }
#define FILL(n, l)     { OP_FILL, (n), (l), 0 }
#define DRAIN          { OP_DRAIN, 0, 0, 0 }
#define CYCLE(n, l)    { OP_CYCLE, (n), (l), 0 }
#define REATTACH(rc)   { OP_REATTACH, 0, 0, (rc) }
#define STATS(w, r, f) { OP_STATS, (w), (r), (f) }
#define USED(n)        { OP_USED, (n), 0, 0 }
#define CAP(n)         { OP_CAPACITY, (n), 0, 0 }
#define POKE32(o, v)   { OP_POKE32, (o), (v), 0 }
#define POKE64(o, v)   { OP_POKE64, (o), (v), 0 }
#define POKED(o, v)    { OP_POKE_DATA, (o), (v), 0 }
#define ATTACH(sz, rc) { OP_ATTACH_SIZE, (sz), 0, (rc) }

static const script_t scripts[] = {
    { "empty ring", RING(64), {
        CAP(64), R(EM_AGAIN), PEEK(EM_AGAIN), USED(0), STATS(0, 0, 0), REATTACH(EM_OK),
        R(EM_AGAIN) } },
    { "capacity is the largest power of two that fits", RING(4096) + 4095, {
        CAP(4096), FILL(4096 / 64, 56), DRAIN } },
    { "single record", RING(64), {
        W(7, 5, EM_OK), USED(16), PEEK(EM_OK), R(EM_OK), R(EM_AGAIN), USED(0), STATS(1, 1, 0) } },
    { "zero-length payloads", RING(64), {
        W(1, 0, EM_OK), W(2, 0, EM_OK), W(3, 0, EM_OK), USED(24), R(EM_OK), R(EM_OK),
        R(EM_OK), R(EM_AGAIN), FILL(8, 0), W(4, 0, EM_AGAIN), DRAIN, STATS(11, 11, 2) } },
    { "fill to full applies back-pressure and counts it", RING(256), {
        FILL(8, 24), USED(256), W(1, 24, EM_AGAIN), W(1, 0, EM_AGAIN), STATS(8, 0, 3),
        R(EM_OK), W(1, 32, EM_AGAIN), W(1, 24, EM_OK), W(1, 0, EM_AGAIN), STATS(9, 1, 5),
        DRAIN, USED(0) } },
    { "one record may fill the whole ring", RING(64), {
        W(9, 56, EM_OK), USED(64), W(9, 0, EM_AGAIN), R(EM_OK), W(9, 56, EM_OK), DRAIN } },
    { "oversized record refused, not counted as full", RING(64), {
        W(1, 57, EM_ERROR), W(1, 1u << 31, EM_ERROR), STATS(0, 0, 0), USED(0),
        W(1, 56, EM_OK), DRAIN } },
    { "records crossing the end", RING(64), {
        W(1, 24, EM_OK), W(2, 16, EM_OK), R(EM_OK), R(EM_OK),   /* head = tail = 56 */
        W(3, 40, EM_OK),              /* header at 56..63, payload wholly wrapped */
        R(EM_OK),                     /* head = tail = 104, offset 40 */
        W(4, 20, EM_OK),              /* header 40..47, payload 48..63 + 0..3 */
        W(5, 3, EM_OK), R(EM_OK), PEEK(EM_OK), R(EM_OK),
        W(6, 56, EM_OK),              /* the whole ring, from offset 24 round to 24 */
        DRAIN, USED(0) } },
    { "wrap around many times, varied sizes", RING(256), {
        CYCLE(20000, 120), DRAIN, CYCLE(20000, 248), DRAIN, USED(0) } },
    { "wrap around in a larger ring", RING(4096), {
        CYCLE(50000, 1500), DRAIN } },
    { "buffer too small: the record stays", RING(256), {
        W(1, 100, EM_OK), RS(99, EM_DECLINED), RS(0, EM_DECLINED), USED(112), R(EM_OK),
        W(1, 0, EM_OK), RS(0, EM_OK), STATS(2, 2, 0) } },
    { "restarted consumer reads pending records exactly once", RING(256), {
        W(1, 10, EM_OK), W(2, 20, EM_OK), W(3, 30, EM_OK), W(4, 0, EM_OK), W(5, 50, EM_OK),
        R(EM_OK), R(EM_OK), REATTACH(EM_OK), R(EM_OK), R(EM_OK), R(EM_OK), R(EM_AGAIN),
        STATS(5, 5, 0) } },
    { "restarted side after wrap-around, records crossing the end pending", RING(128), {
        CYCLE(777, 100), DRAIN, W(1, 20, EM_OK), R(EM_OK), W(2, 60, EM_OK), W(3, 13, EM_OK),
        REATTACH(EM_OK), W(4, 7, EM_OK), REATTACH(EM_OK), DRAIN, R(EM_AGAIN) } },
    { "bad magic refused", RING(64), {
        POKE32(0, 0x12345678), REATTACH(EM_ERROR) } },
    { "bad version refused", RING(64), {
        POKE32(4, (EM_RING_HDR_SIZE << 16) | (EM_RING_VERSION + 1)), REATTACH(EM_ERROR) } },
    { "bad capacity refused", RING(256), {
        POKE64(8, 96), REATTACH(EM_ERROR) } },
    { "capacity larger than the mapping refused", RING(256), {
        ATTACH(RING(128), EM_ERROR), ATTACH(RING(256), EM_OK), ATTACH(RING(16), EM_ERROR) } },
    { "head ahead of tail refused", RING(64), {
        W(1, 8, EM_OK), POKE64(128, 64), REATTACH(EM_ERROR) } },
    { "tail beyond head + capacity refused", RING(64), {
        POKE64(64, 72), REATTACH(EM_ERROR) } },
    { "corrupt record header refused", RING(64), {
        W(1, 8, EM_OK), POKED(6, 99), PEEK(EM_ERROR), R(EM_ERROR) } },
    { "record length beyond the tail refused", RING(64), {
        W(1, 8, EM_OK), POKED(0, 40), R(EM_ERROR) } },
};

typedef struct {
    uint16_t type;
    uint32_t len;
    uint32_t seed;
} model_rec_t;

#define MODEL_MAX 8192

typedef struct {
    const char  *name;        /* the script, for failure messages */
    em_ring_t    ring;
    size_t       size;
    model_rec_t  q[MODEL_MAX];
    size_t       first, count;
    uint32_t     seed;
    uint64_t     crossings;   /* records whose payload crossed the end */
    uint64_t     rounds;      /* times tail went round the data area */
} model_t;

static model_t       model;
static unsigned char buf_a[64 * 1024], buf_b[64 * 1024];

static int
model_write(model_t *m, uint16_t type, size_t len)
{
    uint64_t tail = atomic_load(&m->ring.hdr->tail);
    uint64_t off = tail & m->ring.mask;
    int      rc;

    fill_payload(buf_a, len > sizeof(buf_a) ? 0 : len, type, m->seed);
    rc = em_ring_write(&m->ring, type, buf_a, len);
    if (rc == EM_OK) {
        CHECK(m->count < MODEL_MAX, "%s: model overflow", m->name);
        m->q[(m->first + m->count++) % MODEL_MAX] = (model_rec_t) { type, (uint32_t) len, m->seed++ };
        if (off + STRIDE(len) > m->ring.capacity && len > 0) {
            m->crossings++;
        }
        if (((tail + STRIDE(len)) & ~m->ring.mask) != (tail & ~m->ring.mask)) {
            m->rounds++;
        }
    }
    return rc;
}

static int
model_read(model_t *m, size_t cap)
{
    uint16_t     type = 0;
    size_t       len = 0;
    int          rc = em_ring_read(&m->ring, &type, buf_b, cap, &len);
    model_rec_t *want;

    if (rc == EM_AGAIN) {
        CHECK(m->count == 0, "%s: ring empty, %zu records expected", m->name, m->count);
    }
    if (rc != EM_OK && rc != EM_DECLINED) {
        return rc;
    }
    CHECK(m->count > 0, "%s: record read from a ring that should be empty", m->name);
    want = &m->q[m->first];
    CHECK(type == want->type && len == want->len, "%s: record %u: type %u len %zu, expected %u %u",
          m->name, want->seed, type, len, want->type, want->len);
    if (rc == EM_OK) {
        fill_payload(buf_a, len, want->type, want->seed);
        CHECK(memcmp(buf_a, buf_b, len) == 0, "%s: record %u: payload differs", m->name, want->seed);
        m->first = (m->first + 1) % MODEL_MAX;
        m->count--;
    }
    return rc;
}

/* A failed step names the script and the step. */
#define OPCHECK(cond) \
    CHECK(cond, "%s: step %d: %s", s->name, (int) (op - s->ops), #cond)

START_TEST(test_script)
{
    const script_t *s = &scripts[_i];
    model_t        *m = &model;
    uint32_t        rnd = 12345;

    memset(m, 0, sizeof(*m));
    memset(ring_mem, 0xa5, sizeof(ring_mem));
    ck_assert_uint_le(s->size, sizeof(ring_mem));
    m->size = s->size;
    m->name = s->name;
    ck_assert_int_eq(em_ring_init(&m->ring, ring_mem, s->size), EM_OK);

    for (const op_t *op = s->ops; op->op != OP_END; op++) {
        em_ring_stats_t st;
        uint16_t        type;
        size_t          len;
        uint64_t        n;

        switch (op->op) {
        case OP_WRITE:
            OPCHECK(model_write(m, (uint16_t) op->a, op->b) == op->rc);
            break;
        case OP_READ:
            OPCHECK(model_read(m, sizeof(buf_b)) == op->rc);
            break;
        case OP_READ_SMALL:
            OPCHECK(model_read(m, op->a) == op->rc);
            break;
        case OP_PEEK:
            OPCHECK(em_ring_peek(&m->ring, &type, &len) == op->rc);
            if (op->rc == EM_OK) {
                OPCHECK(type == m->q[m->first].type);
                OPCHECK(len == m->q[m->first].len);
            }
            break;
        case OP_FILL:
            for (n = 0; model_write(m, 0x42, op->b) == EM_OK; n++) {
                CHECK(n <= op->a, "%s: more than %llu records fit", s->name, (unsigned long long) op->a);
            }
            OPCHECK(n == op->a);
            break;
        case OP_DRAIN:
            while (model_read(m, sizeof(buf_b)) == EM_OK) {
                /* checked inside */
            }
            OPCHECK(m->count == 0);
            break;
        case OP_CYCLE: {
            uint64_t crossings = m->crossings, rounds = m->rounds;

            for (n = 0; n < op->a; n++) {
                rnd = rnd * 1103515245u + 12345u;
                if ((rnd >> 16) % 3 != 0) {   /* write twice as often as read */
                    size_t l = (rnd >> 8) % (op->b + 1);

                    if (model_write(m, (uint16_t) (n & 0xffff), l) == EM_AGAIN) {
                        CHECK(m->count > 0, "%s: write of %zu refused by an empty ring", s->name, l);
                        CHECK(model_read(m, sizeof(buf_b)) == EM_OK, "%s: read failed", s->name);
                    }
                } else {
                    (void) model_read(m, sizeof(buf_b));   /* EM_AGAIN checked inside */
                }
            }
            if (op->a >= 10000) {
                OPCHECK(m->crossings - crossings > op->a / 100);
                OPCHECK(m->rounds - rounds > op->a / 100);
            }
            break;
        }
        case OP_REATTACH:
            memset(&m->ring, 0x5a, sizeof(m->ring));
            OPCHECK(em_ring_attach(&m->ring, ring_mem, m->size) == op->rc);
            break;
        case OP_ATTACH_SIZE: {
            em_ring_t other;

            OPCHECK(em_ring_attach(&other, ring_mem, op->a) == op->rc);
            break;
        }
        case OP_STATS:
            em_ring_stats(&m->ring, &st);
            OPCHECK(st.written == op->a);
            OPCHECK(st.read == op->b);
            OPCHECK(st.full == (uint64_t) op->rc);
            break;
        case OP_USED:
            em_ring_stats(&m->ring, &st);
            OPCHECK(st.used == op->a);
            OPCHECK(em_ring_empty(&m->ring) == (op->a == 0));
            break;
        case OP_CAPACITY:
            em_ring_stats(&m->ring, &st);
            OPCHECK(st.capacity == op->a);
            OPCHECK(em_ring_max_payload(&m->ring) == op->a - sizeof(em_ring_rec_t));
            break;
        case OP_POKE32: {
            uint32_t v = (uint32_t) op->b;

            memcpy(ring_mem + op->a, &v, sizeof(v));
            break;
        }
        case OP_POKE64:
            memcpy(ring_mem + op->a, &op->b, sizeof(op->b));
            break;
        case OP_POKE_DATA:
            ring_mem[EM_RING_HDR_SIZE + op->a] = (unsigned char) op->b;
            break;
        case OP_END:
            break;
        }
    }
}
END_TEST

START_TEST(test_stats_bytes)
{
    em_ring_t       r;
    em_ring_stats_t st;
    uint16_t        type;
    size_t          len;
    char            out[16];

    ck_assert_int_eq(em_ring_init(&r, ring_mem, RING(128)), EM_OK);
    ck_assert_int_eq(em_ring_write(&r, 1, "hello", 5), EM_OK);
    ck_assert_int_eq(em_ring_write(&r, 2, "", 0), EM_OK);
    ck_assert_int_eq(em_ring_writev(&r, 3, (struct iovec[]) { { "ab", 2 }, { NULL, 0 }, { "cde", 3 } }, 3),
                     EM_OK);
    ck_assert_int_eq(em_ring_read(&r, &type, out, sizeof(out), &len), EM_OK);
    ck_assert_int_eq(em_ring_read(&r, &type, NULL, 0, &len), EM_OK);
    ck_assert_int_eq(em_ring_read(&r, &type, out, sizeof(out), &len), EM_OK);
    ck_assert_uint_eq(type, 3);
    ck_assert_uint_eq(len, 5);
    ck_assert_mem_eq(out, "abcde", 5);
    em_ring_stats(&r, &st);
    ck_assert_uint_eq(st.bytes_written, 10);
    ck_assert_uint_eq(st.bytes_read, 10);
    ck_assert_uint_eq(st.written, 3);
    ck_assert_uint_eq(st.read, 3);
}
END_TEST

/* Copy without consuming (also from a second consumer handle, as a
 * restarted consumer would), then consume; the tail moves with each commit. */
START_TEST(test_copy_consume)
{
    em_ring_t r, again;
    uint16_t  type;
    size_t    len;
    uint64_t  pos, pos2, tail;
    char      out[16];

    ck_assert_int_eq(em_ring_init(&r, ring_mem, RING(128)), EM_OK);
    ck_assert_uint_eq(em_ring_tail(&r), 0);
    ck_assert_int_eq(em_ring_write(&r, 1, "first", 5), EM_OK);
    tail = em_ring_tail(&r);
    ck_assert_uint_gt(tail, 0);
    ck_assert_int_eq(em_ring_write(&r, 2, "second", 6), EM_OK);
    ck_assert_uint_gt(em_ring_tail(&r), tail);
    ck_assert_int_eq(em_ring_copy(&r, &type, out, sizeof(out), &len, &pos), EM_OK);
    ck_assert_uint_eq(type, 1);
    ck_assert_mem_eq(out, "first", 5);
    ck_assert_uint_eq(pos, 0);
    ck_assert_int_eq(em_ring_attach(&again, ring_mem, RING(128)), EM_OK);
    ck_assert_int_eq(em_ring_copy(&again, &type, out, 2, &len, &pos2), EM_DECLINED);
    ck_assert_int_eq(em_ring_copy(&again, &type, out, sizeof(out), &len, &pos2), EM_OK);
    ck_assert_uint_eq(pos2, pos);
    ck_assert_mem_eq(out, "first", 5);
    em_ring_consume(&again, pos2, len);
    ck_assert_int_eq(em_ring_copy(&r, &type, out, sizeof(out), &len, &pos), EM_OK);
    ck_assert_uint_eq(type, 2);
    ck_assert_mem_eq(out, "second", 6);
    ck_assert_uint_eq(pos, tail);
    em_ring_consume(&r, pos, len);
    ck_assert_int_eq(em_ring_copy(&r, &type, out, sizeof(out), &len, &pos), EM_AGAIN);
    ck_assert_int_eq(em_ring_empty(&r), 1);
}
END_TEST

START_TEST(test_init_refuses)
{
    em_ring_t r;

    ck_assert_int_eq(em_ring_init(&r, ring_mem, RING(63)), EM_ERROR);
    ck_assert_int_eq(em_ring_init(&r, ring_mem + 4, RING(64)), EM_ERROR);
    ck_assert_int_eq(em_ring_init(&r, NULL, RING(64)), EM_ERROR);
    ck_assert_int_eq(em_ring_init(&r, ring_mem, RING(64)), EM_OK);
    ck_assert_int_eq(em_ring_attach(&r, ring_mem + 8, RING(64)), EM_ERROR);
}
END_TEST

/* ---- doorbell protocol, step by step ----------------------------------- */

static int
bell_ready(int bell)
{
    struct pollfd pfd = { .fd = bell, .events = POLLIN };

    return poll(&pfd, 1, 0) == 1;
}

START_TEST(test_doorbell_steps)
{
    em_ring_t r;
    uint16_t  type;
    size_t    len;
    char      out[64];
    int       bell = em_ring_bell_open();

    ck_assert_int_ge(bell, 0);
    ck_assert_int_eq(em_ring_init(&r, ring_mem, RING(64)), EM_OK);

    /* Nobody waits: publishing rings nothing. */
    ck_assert_int_eq(em_ring_write(&r, 1, "x", 1), EM_OK);
    ck_assert_int_eq(em_ring_notify_needed(&r), 0);

    /* Data already there: the consumer must not sleep, and the flag is left clear. */
    ck_assert_int_eq(em_ring_wait_prepare(&r), EM_AGAIN);
    ck_assert_int_eq(em_ring_notify_needed(&r), 0);
    ck_assert_int_eq(em_ring_read(&r, &type, out, sizeof(out), &len), EM_OK);

    /* Empty: sleep; one publish rings once, however many records follow. */
    ck_assert_int_eq(em_ring_wait_prepare(&r), EM_OK);
    ck_assert_int_eq(em_ring_write(&r, 1, "y", 1), EM_OK);
    ck_assert_int_eq(em_ring_notify_needed(&r), 1);
    ck_assert_int_eq(em_ring_bell_ring(bell), EM_OK);
    ck_assert_int_eq(em_ring_write(&r, 1, "z", 1), EM_OK);
    ck_assert_int_eq(em_ring_notify_needed(&r), 0);
    ck_assert(bell_ready(bell));
    ck_assert_int_eq(em_ring_bell_drain(bell), EM_OK);
    ck_assert(!bell_ready(bell));
    ck_assert_int_eq(em_ring_bell_drain(bell), EM_OK);   /* nothing pending is fine */
    em_ring_wait_done(&r);
    ck_assert_int_eq(em_ring_read(&r, &type, out, sizeof(out), &len), EM_OK);
    ck_assert_int_eq(em_ring_read(&r, &type, out, sizeof(out), &len), EM_OK);

    /* Space: nobody waits, nothing to ring. */
    ck_assert_int_eq(em_ring_space_notify_needed(&r), 0);
    /* Full ring: the producer sleeps for a 32-byte payload (40 bytes). */
    while (em_ring_write(&r, 2, out, 8) == EM_OK) {
    }
    ck_assert_int_eq(em_ring_space_wait_prepare(&r, 32), EM_OK);
    ck_assert_int_eq(em_ring_read(&r, &type, out, sizeof(out), &len), EM_OK);
    ck_assert_int_eq(em_ring_space_notify_needed(&r), 0);   /* 16 free: not enough */
    ck_assert_int_eq(em_ring_read(&r, &type, out, sizeof(out), &len), EM_OK);
    ck_assert_int_eq(em_ring_read(&r, &type, out, sizeof(out), &len), EM_OK);
    ck_assert_int_eq(em_ring_space_notify_needed(&r), 1);   /* 48 free */
    ck_assert_int_eq(em_ring_space_notify_needed(&r), 0);   /* once */
    em_ring_space_wait_done(&r);
    ck_assert_int_eq(em_ring_write(&r, 2, out, 32), EM_OK);
    /* Room already there: the producer must not sleep. */
    ck_assert_int_eq(em_ring_space_wait_prepare(&r, 0), EM_AGAIN);
    ck_assert_int_eq(em_ring_space_notify_needed(&r), 0);
    /* A payload that can never fit: never sleep on it. */
    ck_assert_int_eq(em_ring_space_wait_prepare(&r, 57), EM_AGAIN);
    close(bell);
}
END_TEST

/* ---- stress: producer and consumer running concurrently ------------------ */

#define STRESS_CAPACITY  (16 * 1024)
#define STRESS_MAX_LEN   4000
#define STRESS_RECORDS   5000000
#define STRESS_SECONDS   2.0
#define STRESS_SLEEP_MS  1000
#define T_DATA 1
#define T_END  2

typedef struct {
    uint64_t seq;
    uint32_t len;    /* bytes of body that follow */
    uint32_t sum;    /* FNV-1a of the body */
} stress_hdr_t;

/* Results, in the shared mapping next to the ring. */
typedef struct {
    uint64_t sent;
    uint64_t sleeps;        /* producer slept waiting for room */
    uint64_t drains;        /* stop-and-wait rounds completed */
    uint64_t calls;         /* random state for the jitter in stress_wait_room() */
    int      failed;
    char     why[128];
} stress_prod_t;

typedef struct {
    em_ring_t      ring;
    int            cons_bell;   /* rung by the producer: data */
    int            prod_bell;   /* rung by the consumer: room */
    stress_prod_t *prod;
    double         seconds;
} stress_t;

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint32_t
fnv1a(const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

static size_t
stress_len(uint64_t seq)
{
    uint64_t x = seq * 0x9e3779b97f4a7c15ull;

    x ^= x >> 29;
    switch (x & 31) {
    case 0:
        return 0;
    case 1:
        return (size_t) (x >> 8) % (STRESS_MAX_LEN + 1);
    default:
        return (size_t) (x >> 8) % 240;
    }
}

static int
poll_bell(int bell)
{
    struct pollfd pfd = { .fd = bell, .events = POLLIN };
    int           n;

    do {
        n = poll(&pfd, 1, STRESS_SLEEP_MS);
    } while (n < 0 && errno == EINTR);
    return n;
}

/*
 * Producer: sleep on the doorbell until `len` bytes of payload fit (EM_OK
 * from em_ring_space_wait_prepare()), or return at once if they already do.
 * 0, or -1 with the reason in prod->why.
 */
static int
stress_wait_room(stress_t *st, size_t len, double hard_deadline)
{
    stress_prod_t *p = st->prod;

    /*
     * Jitter between seeing no room and raising the flag (up to ~2k spins,
     * one time in eight ~130k, longer than the consumer takes to wake): the
     * consumer may drain the ring meanwhile, which is what the re-check in
     * em_ring_space_wait_prepare() is for.
     */
    p->calls = p->calls * 6364136223846793005ull + 1442695040888963407ull;
    for (volatile unsigned i = (unsigned) (p->calls >> ((p->calls & 7) == 0 ? 47 : 53)); i > 0; i--) {
    }
    if (em_ring_space_wait_prepare(&st->ring, len) != EM_OK) {
        return 0;
    }
    p->sleeps++;
    if (poll_bell(st->prod_bell) == 0) {
        em_ring_stats_t s;

        em_ring_stats(&st->ring, &s);
        if (s.capacity - s.used >= STRIDE(len)) {
            snprintf(p->why, sizeof(p->why), "lost wake-up: slept 1 s with %llu bytes free",
                     (unsigned long long) (s.capacity - s.used));
            return -1;
        }
        if (now_s() > hard_deadline) {
            snprintf(p->why, sizeof(p->why), "consumer stopped reading");
            return -1;
        }
    }
    em_ring_bell_drain(st->prod_bell);
    em_ring_space_wait_done(&st->ring);
    return 0;
}

static int
stress_publish(stress_t *st, uint16_t type, const struct iovec *iov, int iovcnt, size_t len,
               double hard_deadline)
{
    for (;;) {
        int rc = em_ring_writev(&st->ring, type, iov, iovcnt);

        if (rc == EM_OK) {
            if (em_ring_notify_needed(&st->ring)) {
                em_ring_bell_ring(st->cons_bell);
            }
            return 0;
        }
        if (rc != EM_AGAIN || now_s() > hard_deadline) {
            snprintf(st->prod->why, sizeof(st->prod->why), "write of %zu bytes: %d%s", len, rc,
                     rc == EM_AGAIN ? ", past the deadline" : "");
            return -1;
        }
        if (stress_wait_room(st, len, hard_deadline) != 0) {
            return -1;
        }
    }
}

/* Producer: wait until the consumer has read everything (stop-and-wait, as a request would). */
static int
stress_wait_drained(stress_t *st, double hard_deadline)
{
    em_ring_stats_t s;

    for (int i = 0; i < 1000; i++) {
        em_ring_stats(&st->ring, &s);
        if (s.used == 0) {
            st->prod->drains++;
            return 0;
        }
        /* A record as large as the ring: room for it means the ring is empty. */
        if (stress_wait_room(st, em_ring_max_payload(&st->ring), hard_deadline) != 0) {
            return -1;
        }
    }
    snprintf(st->prod->why, sizeof(st->prod->why), "ring never drained");
    return -1;
}

static void
stress_produce(stress_t *st)
{
    static unsigned char body[STRESS_MAX_LEN];
    double               deadline = now_s() + st->seconds;
    uint64_t             seq;
    int                  burst = 1;

    for (seq = 0; seq < STRESS_RECORDS; seq++) {
        stress_hdr_t h = { seq, (uint32_t) stress_len(seq), 0 };
        struct iovec iov[2] = { { &h, sizeof(h) }, { body, h.len } };

        if ((seq & 1023) == 0 && now_s() > deadline) {
            break;
        }
        fill_payload(body, h.len, T_DATA, (uint32_t) seq);
        h.sum = fnv1a(body, h.len);
        if (stress_publish(st, T_DATA, iov, 2, sizeof(h) + h.len, deadline + 10) != 0) {
            st->prod->failed = 1;
            return;
        }
        /*
         * Bursts of 1..64 records, then either a pause of a few microseconds
         * without a system call, or (one burst in four) a wait until the
         * consumer has read everything: both sides then sleep, and a lost
         * wake-up on either side strands them until poll() times out.
         */
        if (--burst == 0) {
            uint64_t x = (seq + 1) * 0x9e3779b97f4a7c15ull;

            burst = 1 + (int) ((x >> 40) & 63);
            if ((x >> 62) == 0) {
                if (stress_wait_drained(st, deadline + 10) != 0) {
                    st->prod->failed = 1;
                    return;
                }
            } else {
                for (volatile unsigned i = (unsigned) ((x >> 20) & 4095); i > 0; i--) {
                }
            }
        }
    }
    st->prod->sent = seq;
    {
        struct iovec iov = { &seq, sizeof(seq) };

        if (stress_publish(st, T_END, &iov, 1, sizeof(seq), deadline + 10) != 0) {
            st->prod->failed = 1;
        }
    }
}

typedef struct {
    uint64_t received;
    uint64_t sleeps;
    uint64_t wakeups_empty;   /* woke (or was told to) and found nothing: spurious */
    uint64_t timeouts;        /* slept the whole second with the ring empty */
    double   seconds;
} stress_result_t;

/* Consume until T_END; ck_assert on any fault. */
static void
stress_consume(stress_t *st, stress_result_t *res)
{
    static unsigned char buf[sizeof(stress_hdr_t) + STRESS_MAX_LEN], want[STRESS_MAX_LEN];
    double               start = now_s(), hard_deadline = start + st->seconds + 10;
    uint64_t             next = 0;

    memset(res, 0, sizeof(*res));
    for (;;) {
        uint16_t type;
        size_t   len;
        int      rc, batch = 0;

        while ((rc = em_ring_read(&st->ring, &type, buf, sizeof(buf), &len)) == EM_OK) {
            stress_hdr_t h;

            if (type == T_END) {
                CHECK(len == sizeof(uint64_t), "end record of %zu bytes", len);
                memcpy(&h.seq, buf, sizeof(h.seq));
                CHECK(h.seq == next, "producer sent %llu, received %llu",
                      (unsigned long long) h.seq, (unsigned long long) next);
                res->received = next;
                res->seconds = now_s() - start;
                return;
            }
            CHECK(type == T_DATA && len >= sizeof(h), "record %llu: type %u, %zu bytes",
                  (unsigned long long) next, type, len);
            memcpy(&h, buf, sizeof(h));
            CHECK(h.seq == next, "record %llu arrived, expected %llu",
                  (unsigned long long) h.seq, (unsigned long long) next);
            CHECK(h.len == stress_len(next) && len == sizeof(h) + h.len,
                  "record %llu: %zu bytes", (unsigned long long) next, len);
            CHECK(fnv1a(buf + sizeof(h), h.len) == h.sum, "record %llu: bad checksum",
                  (unsigned long long) next);
            if ((next & 15) == 0) {
                fill_payload(want, h.len, T_DATA, (uint32_t) next);
                CHECK(memcmp(want, buf + sizeof(h), h.len) == 0, "record %llu: payload differs",
                      (unsigned long long) next);
            }
            next++;
            if ((next & 4095) == 0) {
                /* Stop reading (at most 2 ms) until the producer finds the ring full. */
                uint64_t full = atomic_load_explicit(&st->ring.hdr->full, memory_order_relaxed);
                double   until = now_s() + 0.002;

                while (atomic_load_explicit(&st->ring.hdr->full, memory_order_relaxed) == full
                       && now_s() < until) {
                }
            }
            if (++batch == 32) {
                batch = 0;
                CHECK(next <= STRESS_RECORDS && ((next & 0xffff) != 0 || now_s() < hard_deadline),
                      "no end record after %llu records", (unsigned long long) next);
                if (em_ring_space_notify_needed(&st->ring)) {
                    em_ring_bell_ring(st->prod_bell);
                }
            }
        }
        CHECK(rc == EM_AGAIN, "em_ring_read(): %d", rc);
        if (em_ring_space_notify_needed(&st->ring)) {
            em_ring_bell_ring(st->prod_bell);
        }
        if (em_ring_wait_prepare(&st->ring) != EM_OK) {
            continue;
        }
        res->sleeps++;
        if (poll_bell(st->cons_bell) == 0) {
            res->timeouts++;
            CHECK(em_ring_empty(&st->ring),
                  "lost wake-up: slept %d ms with records pending", STRESS_SLEEP_MS);
            /* Both asleep, the ring empty, the producer waiting for room: its wake-up was lost. */
            CHECK(atomic_load(&st->ring.hdr->space_wanted) == 0,
                  "lost wake-up: producer slept %d ms waiting for room in an empty ring",
                  STRESS_SLEEP_MS);
            CHECK(!st->prod->failed, "producer failed: %s", st->prod->why);
            CHECK(now_s() < hard_deadline, "producer stopped (record %llu)",
                  (unsigned long long) next);
        }
        em_ring_bell_drain(st->cons_bell);
        em_ring_wait_done(&st->ring);
        if (em_ring_empty(&st->ring)) {
            res->wakeups_empty++;
        }
    }
}

static void
stress_report(const char *how, stress_t *st, const stress_result_t *res)
{
    em_ring_stats_t s;

    em_ring_stats(&st->ring, &s);
    ck_assert_uint_eq(st->prod->sent, res->received);
    ck_assert_uint_eq(s.written, res->received + 1);
    ck_assert_uint_eq(s.read, res->received + 1);
    ck_assert_uint_eq(s.bytes_written, s.bytes_read);
    ck_assert_uint_gt(res->received, 1000);
    ck_assert_uint_gt(s.full, 0);                /* back-pressure was exercised */
    ck_assert_uint_gt(st->prod->sleeps, 0);      /* so was each side's doorbell */
    ck_assert_uint_gt(res->sleeps, 0);
    printf("# stress (%s): %llu records, %.1f MB in %.2f s = %.2f M records/s; "
           "ring full %llu times, %llu stop-and-wait rounds, producer slept %llu, "
           "consumer slept %llu (%llu spurious, %llu idle timeouts)\n",
           how, (unsigned long long) res->received, s.bytes_read / 1e6, res->seconds,
           res->received / res->seconds / 1e6, (unsigned long long) s.full,
           (unsigned long long) st->prod->drains, (unsigned long long) st->prod->sleeps, (unsigned long long) res->sleeps,
           (unsigned long long) res->wakeups_empty, (unsigned long long) res->timeouts);
}

static void *
stress_setup(stress_t *st, size_t *map_size, double seconds)
{
    size_t size = em_ring_size(STRESS_CAPACITY) + sizeof(stress_prod_t);
    int    fd = memfd_create("emitd-test-ring", MFD_CLOEXEC);
    void  *mem;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t) size), 0);
    mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ck_assert_ptr_ne(mem, MAP_FAILED);
    close(fd);
    memset(st, 0, sizeof(*st));
    ck_assert_int_eq(em_ring_init(&st->ring, mem, em_ring_size(STRESS_CAPACITY)), EM_OK);
    st->prod = (stress_prod_t *) ((char *) mem + em_ring_size(STRESS_CAPACITY));
    st->cons_bell = em_ring_bell_open();
    st->prod_bell = em_ring_bell_open();
    ck_assert_int_ge(st->cons_bell, 0);
    ck_assert_int_ge(st->prod_bell, 0);
    st->seconds = seconds;
    *map_size = size;
    return mem;
}

/* A producer left running by a failed assertion is stopped here (checked teardown). */
static pid_t stress_child = -1;

static void
stress_teardown(void)
{
    if (stress_child > 0) {
        kill(stress_child, SIGKILL);
        (void) waitpid(stress_child, NULL, 0);
        stress_child = -1;
    }
}

START_TEST(test_stress_processes)
{
    stress_t        st;
    stress_result_t res;
    size_t          size;
    void           *mem = stress_setup(&st, &size, STRESS_SECONDS);
    pid_t           pid;
    int             status;

    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        stress_t child = st;

        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);

        /* The producer attaches as a separate process would after exec/restart. */
        if (em_ring_attach(&child.ring, mem, em_ring_size(STRESS_CAPACITY)) != EM_OK) {
            _exit(2);
        }
        stress_produce(&child);
        _exit(child.prod->failed ? 1 : 0);
    }
    stress_child = pid;
    stress_consume(&st, &res);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    stress_child = -1;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "producer: %s", st.prod->why);
    stress_report("2 processes, memfd", &st, &res);
    close(st.cons_bell);
    close(st.prod_bell);
    munmap(mem, size);
}
END_TEST

static void *
stress_thread(void *arg)
{
    stress_produce(arg);
    return NULL;
}

START_TEST(test_stress_threads)
{
    stress_t        st, prod;
    stress_result_t res;
    size_t          size;
    void           *mem = stress_setup(&st, &size, STRESS_SECONDS / 2);
    pthread_t       tid;

    prod = st;
    ck_assert_int_eq(em_ring_attach(&prod.ring, mem, em_ring_size(STRESS_CAPACITY)), EM_OK);
    ck_assert_int_eq(pthread_create(&tid, NULL, stress_thread, &prod), 0);
    stress_consume(&st, &res);
    ck_assert_int_eq(pthread_join(tid, NULL), 0);
    ck_assert_msg(!st.prod->failed, "producer: %s", st.prod->why);
    stress_report("2 threads", &st, &res);
    close(st.cons_bell);
    close(st.prod_bell);
    munmap(mem, size);
}
END_TEST

static Suite *
ring_suite(void)
{
    Suite *s = suite_create("ring");
    TCase *tc;

    tc = tcase_create("script");
    tcase_add_loop_test(tc, test_script, 0, EM_NELEMS(scripts));
    tcase_add_test(tc, test_stats_bytes);
    tcase_add_test(tc, test_copy_consume);
    tcase_add_test(tc, test_init_refuses);
    suite_add_tcase(s, tc);

    tc = tcase_create("doorbell");
    tcase_add_test(tc, test_doorbell_steps);
    suite_add_tcase(s, tc);

    tc = tcase_create("stress");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, NULL, stress_teardown);
    tcase_add_test(tc, test_stress_processes);
    tcase_add_test(tc, test_stress_threads);
    suite_add_tcase(s, tc);
    return s;
}

EM_CHECK_MAIN(ring_suite)
