/*
 * test_broker.c - the broker's relay (broker/em_broker.c) on a real shared
 * segment: every record reaches every other worker once and in order, and a
 * broker killed at each point of a fan-out (after a write committed, before
 * it did, after it was noted, after the record was consumed, while relaying
 * another worker's record) is resumed by the next broker with nothing lost
 * and nothing given twice. The killed broker's state is what it leaves in
 * the segment: the rings and the header's em_shm_fan_t.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "em_broker.h"
#include "em_check.h"

#define CHECK(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

#define TYPE 0x77       /* not a broadcast: relayed to every other worker */
#define N    3

static em_shm_t shm;
static int      bells[N];

static void
setup(void)
{
    CHECK(em_shm_create(&shm, N) == EM_OK, "em_shm_create");
    for (int i = 0; i < N; i++) {
        bells[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        CHECK(bells[i] >= 0, "eventfd");
    }
}

static void
teardown(void)
{
    for (int i = 0; i < N; i++) {
        close(bells[i]);
    }
    munmap(shm.base, shm.size);
    close(shm.fd);
}

static em_shm_fan_t *
fan(void)
{
    return &((em_shm_hdr_t *) shm.base)->fan;
}

/* Write text as one record on ring dir of slot (the test is its producer). */
static void
put(unsigned slot, int dir, const char *text)
{
    em_ring_t r;

    CHECK(em_shm_ring(&shm, slot, dir, &r) == EM_OK, "attach");
    CHECK(em_ring_write(&r, TYPE, text, strlen(text)) == EM_OK, "write %s", text);
}

/* Everything on worker slot's down ring, as "a,b,...", consumed. */
static void
drain(unsigned slot, char *out, size_t cap)
{
    em_ring_t r;
    char      buf[64];
    uint16_t  type;
    size_t    len, n = 0;

    out[0] = '\0';
    CHECK(em_shm_ring(&shm, slot, EM_SHM_DOWN, &r) == EM_OK, "attach");
    while (em_ring_read(&r, &type, buf, sizeof(buf) - 1, &len) == EM_OK) {
        CHECK(type == TYPE, "type %u", type);
        buf[len] = '\0';
        n += (size_t) snprintf(out + n, cap - n, "%s%s", n ? "," : "", buf);
    }
}

static int
up_empty(unsigned slot)
{
    em_ring_t r;

    CHECK(em_shm_ring(&shm, slot, EM_SHM_UP, &r) == EM_OK, "attach");
    return em_ring_empty(&r);
}

static void
relay(void)
{
    CHECK(em_broker_attach(&shm, bells) == EM_OK, "em_broker_attach");
    for (int i = 0; i < 10 && em_broker_relay(); i++) {
        /* until nothing is left */
    }
}

#define EXPECT(slot, want) do { \
        char got_[256]; \
        drain((slot), got_, sizeof(got_)); \
        CHECK(strcmp(got_, (want)) == 0, "worker %u got \"%s\", not \"%s\"", (slot) + 1, got_, (want)); \
    } while (0)

/* What a broker relaying "x" from worker 1 (slot 0) leaves when killed. */
static void
killed(uint32_t done, uint32_t cur, uint64_t cur_tail)
{
    em_shm_fan_t *f = fan();

    f->origin = 0;
    f->up_head = 0;
    f->done = done;
    f->cur = cur;
    f->cur_tail = cur_tail;
    f->active = 1;
}

START_TEST(test_relay)
{
    put(0, EM_SHM_UP, "a1");
    put(1, EM_SHM_UP, "b1");
    put(0, EM_SHM_UP, "a2");
    relay();
    EXPECT(0, "b1");
    EXPECT(1, "a1,a2");
    EXPECT(2, "a1,a2,b1");
    CHECK(up_empty(0) && up_empty(1), "up rings consumed");
    CHECK(fan()->active == 0, "no fan-out left active");
}
END_TEST

START_TEST(test_killed_after_write)
{
    /* x written to worker 2 (committed), not yet noted as done. */
    put(0, EM_SHM_UP, "x");
    killed(0, 1, 0);
    put(1, EM_SHM_DOWN, "x");
    relay();
    EXPECT(1, "x");
    EXPECT(2, "x");
    EXPECT(0, "");
    CHECK(up_empty(0), "x consumed");
    CHECK(fan()->active == 0, "fan-out finished");
}
END_TEST

START_TEST(test_killed_before_commit)
{
    /* About to write x to worker 2: nothing committed there. */
    put(0, EM_SHM_UP, "x");
    killed(0, 1, 0);
    relay();
    EXPECT(1, "x");
    EXPECT(2, "x");
    CHECK(up_empty(0), "x consumed");
}
END_TEST

START_TEST(test_killed_between_destinations)
{
    /* Worker 2 has x and it was noted; cur cleared before worker 3. */
    put(0, EM_SHM_UP, "x");
    put(1, EM_SHM_DOWN, "x");
    killed(2, EM_SHM_FAN_NONE, 0);
    relay();
    EXPECT(1, "x");
    EXPECT(2, "x");
}
END_TEST

START_TEST(test_killed_after_consume)
{
    em_ring_t r;
    char      buf[8];
    uint16_t  type;
    size_t    len;

    /* x went everywhere and was consumed; active not yet cleared. Then y. */
    put(0, EM_SHM_UP, "x");
    CHECK(em_shm_ring(&shm, 0, EM_SHM_UP, &r) == EM_OK, "attach");
    CHECK(em_ring_read(&r, &type, buf, sizeof(buf), &len) == EM_OK, "consume x");
    put(1, EM_SHM_DOWN, "x");
    put(2, EM_SHM_DOWN, "x");
    killed(3, 2, 0);
    put(0, EM_SHM_UP, "y");
    relay();
    EXPECT(1, "x,y");
    EXPECT(2, "x,y");
}
END_TEST

START_TEST(test_killed_relaying_another_worker)
{
    em_shm_fan_t *f = fan();

    /* Killed relaying b from worker 2 (slot 1): worker 1 has it (done),
     * worker 3 has it too (committed, not noted). a waits on worker 1's
     * ring and is relayed first by the next broker. */
    put(0, EM_SHM_UP, "a");
    put(1, EM_SHM_UP, "b");
    put(0, EM_SHM_DOWN, "b");
    put(2, EM_SHM_DOWN, "b");
    f->origin = 1;
    f->up_head = 0;
    f->done = 1;
    f->cur = 2;
    f->cur_tail = 0;
    f->active = 1;
    relay();
    EXPECT(0, "b");
    EXPECT(1, "a");
    EXPECT(2, "b,a");
    CHECK(up_empty(0) && up_empty(1), "up rings consumed");
}
END_TEST

START_TEST(test_marker_each_step)
{
    /* Replay the marker a real fan-out writes, killing after every store:
     * the next broker always ends with x once at workers 2 and 3. */
    for (int step = 0; step < 9; step++) {
        teardown();
        setup();
        put(0, EM_SHM_UP, "x");
        em_shm_fan_t *f = fan();
        /* 0: active off; 1: marker set; 2..4: worker 2 noted, written;
         * 5: done 2; 6..7: worker 3 noted; 8: worker 3 written */
        if (step >= 1) {
            killed(0, EM_SHM_FAN_NONE, 0);
        }
        if (step >= 2) {
            f->cur_tail = 0;
            f->cur = 1;
        }
        if (step >= 3) {
            put(1, EM_SHM_DOWN, "x");
        }
        if (step >= 4) {
            f->done = 2;
        }
        if (step >= 5) {
            f->cur = EM_SHM_FAN_NONE;
        }
        if (step >= 6) {
            f->cur_tail = 0;
        }
        if (step >= 7) {
            f->cur = 2;
        }
        if (step >= 8) {
            put(2, EM_SHM_DOWN, "x");
        }
        relay();
        EXPECT(1, "x");
        EXPECT(2, "x");
        EXPECT(0, "");
        CHECK(up_empty(0), "step %d: x consumed", step);
    }
}
END_TEST

static Suite *
broker_suite(void)
{
    Suite *s = suite_create("broker");
    TCase *tc = tcase_create("relay");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_relay);
    tcase_add_test(tc, test_killed_after_write);
    tcase_add_test(tc, test_killed_before_commit);
    tcase_add_test(tc, test_killed_between_destinations);
    tcase_add_test(tc, test_killed_after_consume);
    tcase_add_test(tc, test_killed_relaying_another_worker);
    tcase_add_test(tc, test_marker_each_step);
    suite_add_tcase(s, tc);
    return s;
}

EM_CHECK_MAIN(broker_suite)
