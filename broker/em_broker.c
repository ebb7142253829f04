/*
 * em_broker.c - the broker process: relays each record a worker publishes on
 * its "up" ring to the "down" ring of every other worker, in order, exactly
 * once. It reads a record only when every destination ring has room for it,
 * so a slow worker holds the others back (counted as "full" on its ring)
 * instead of losing records. It keeps no state outside the rings, so a
 * restarted broker carries on with what is left in them.
 */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "em_broker.h"
#include "em_log.h"
#include "em_proc.h"

#define EM_BROKER_BATCH 256       /* records from one worker per pass */

static struct {
    em_shm_t          *shm;
    struct event_base *base;
    struct event      *bell_ev;
    struct event      *again_ev;
    int                bell;
    const int         *worker_bells;
    em_ring_t          up[EM_MAX_WORKERS];
    em_ring_t          down[EM_MAX_WORKERS];
    unsigned char     *rec;
    size_t             rec_cap;
    em_state_t        *state;
    int64_t            keep;
} em_b;

/* Room for len more bytes in every down ring but the origin's? */
static int
em_broker_room(unsigned origin, size_t len)
{
    for (unsigned j = 0; j < em_b.shm->nworkers; j++) {
        em_ring_stats_t st;
        if (j == origin) {
            continue;
        }
        em_ring_stats(&em_b.down[j], &st);
        if (st.capacity - st.used < sizeof(em_ring_rec_t) + ((len + 7) & ~(size_t) 7)
            && em_ring_space_wait_prepare(&em_b.down[j], len) == EM_OK) {
            return 0;       /* worker j's reads ring our bell */
        }
    }
    return 1;
}

/* Relay what is waiting; returns 1 if more may be waiting. */
static int
em_broker_relay(void)
{
    unsigned n = em_b.shm->nworkers;
    int      blocked = 0, progress = 0;

    for (unsigned i = 0; i < n && !blocked; i++) {
        for (int k = 0; k < EM_BROKER_BATCH; k++) {
            uint16_t type;
            size_t   len;
            if (em_ring_peek(&em_b.up[i], &type, &len) != EM_OK) {
                break;
            }
            if (!em_broker_room(i, len)) {
                blocked = 1;
                break;
            }
            if (em_ring_read(&em_b.up[i], &type, em_b.rec, em_b.rec_cap, &len) != EM_OK) {
                break;
            }
            progress = 1;
            for (unsigned j = 0; j < n; j++) {
                if (j == i || (type == EM_BRK_REC_BCAST && !em_brk_wants(em_b.shm, j, em_b.rec, len))) {
                    continue;
                }
                if (em_ring_write(&em_b.down[j], type, em_b.rec, len) != EM_OK) {
                    em_log(EM_LOG_ERR, 0, "ring to worker %u refused a record it had room for", j + 1);
                    continue;
                }
                if (em_ring_notify_needed(&em_b.down[j])) {
                    em_ring_bell_ring(em_b.worker_bells[j]);
                }
            }
        }
        if (em_ring_space_notify_needed(&em_b.up[i])) {
            em_ring_bell_ring(em_b.worker_bells[i]);
        }
    }
    if (blocked) {
        return 0;           /* the bell rings when a worker makes room */
    }
    /* Sleep only if every up ring is empty after the waiting flag is set. */
    int more = 0;
    for (unsigned i = 0; i < n; i++) {
        if (em_ring_wait_prepare(&em_b.up[i]) != EM_OK) {
            more = 1;
        }
    }
    return more || progress;
}

static void
em_broker_pass(void)
{
    if (em_broker_relay()) {
        event_active(em_b.again_ev, EV_TIMEOUT, 0);   /* after other events run */
    }
}

static void
em_broker_bell_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    em_ring_bell_drain(em_b.bell);
    for (unsigned i = 0; i < em_b.shm->nworkers; i++) {
        em_ring_wait_done(&em_b.up[i]);
        em_ring_space_wait_done(&em_b.down[i]);
    }
    em_broker_pass();
}

static void
em_broker_again_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    em_broker_pass();
}

static void
em_broker_tidy_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    em_session_expire(em_b.state, em_state_now(), em_b.keep);
}

static void
em_broker_signal(evutil_socket_t sig, short what, void *arg)
{
    (void) what;
    (void) arg;
    em_log(EM_LOG_INFO, 0, "signal %d: exiting", (int) sig);
    event_base_loopbreak(em_b.base);
}

int
em_broker_run(em_shm_t *shm, int bell, const int *worker_bells, em_state_t *state, int64_t keep)
{
    struct event  *sigterm, *sigint, *tidy;
    struct timeval second = { 1, 0 };

    em_log_set_role("broker");
    em_proc_title_set("emitd: broker");
    (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
    em_b.shm = shm;
    em_b.bell = bell;
    em_b.worker_bells = worker_bells;
    em_b.state = state;
    em_b.keep = keep;
    for (unsigned i = 0; i < shm->nworkers; i++) {
        if (em_shm_ring(shm, i, EM_SHM_UP, &em_b.up[i]) != EM_OK
            || em_shm_ring(shm, i, EM_SHM_DOWN, &em_b.down[i]) != EM_OK) {
            em_log(EM_LOG_ERR, 0, "cannot attach the rings of worker %u", i + 1);
            return 1;
        }
    }
    em_b.rec_cap = em_ring_max_payload(&em_b.up[0]);
    em_b.rec = malloc(em_b.rec_cap);
    em_b.base = event_base_new();
    if (em_b.rec == NULL || em_b.base == NULL) {
        em_log(EM_LOG_ERR, errno, "broker initialisation failed");
        return 1;
    }
    em_b.bell_ev = event_new(em_b.base, bell, EV_READ | EV_PERSIST, em_broker_bell_cb, NULL);
    em_b.again_ev = event_new(em_b.base, -1, 0, em_broker_again_cb, NULL);
    sigterm = evsignal_new(em_b.base, SIGTERM, em_broker_signal, NULL);
    sigint = evsignal_new(em_b.base, SIGINT, em_broker_signal, NULL);
    tidy = event_new(em_b.base, -1, EV_PERSIST, em_broker_tidy_cb, NULL);
    if (em_b.bell_ev == NULL || em_b.again_ev == NULL || sigterm == NULL || sigint == NULL
        || tidy == NULL || event_add(em_b.bell_ev, NULL) != 0 || evsignal_add(sigterm, NULL) != 0
        || evsignal_add(sigint, NULL) != 0 || event_add(tidy, &second) != 0) {
        em_log(EM_LOG_ERR, 0, "cannot set up the broker's events");
        return 1;
    }
    /* Records may have waited while no broker ran. */
    em_broker_pass();
    event_base_dispatch(em_b.base);

    event_free(sigterm);
    event_free(sigint);
    event_free(tidy);
    event_free(em_b.bell_ev);
    event_free(em_b.again_ev);
    event_base_free(em_b.base);
    free(em_b.rec);
    return 0;
}
