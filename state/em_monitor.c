/*
 * em_monitor.c - connection figures for monitoring: totals, the active and
 * peak counts, connects per minute, the average duration, a ring of the
 * last EM_ST_EVENTS connection events, and how often each IP and user agent
 * connected (bounded tables; the least recently seen go first).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "em_state.h"

static em_st_monitor_t *
em_mon(em_state_t *st)
{
    return (em_st_monitor_t *) ((char *) st->hdr + st->hdr->monitor_off);
}

static em_shtab_t *
em_mon_tab(em_state_t *st, int which)
{
    return (em_shtab_t *) ((char *) st->hdr + (which ? st->hdr->uas_off : st->hdr->ips_off));
}

static int
em_mon_evictable(const void *v)
{
    (void) v;
    return 1;
}

static void
em_copy_field(char *dst, size_t size, em_str_t s)
{
    size_t n = s.data == NULL ? 0 : s.len < size ? s.len : size - 1;

    if (n) {
        memcpy(dst, s.data, n);
    }
    dst[n] = '\0';
}

void
em_monitor_event_fill(em_st_event_t *ev, const char *type, em_str_t sid, em_str_t nsp, em_str_t user,
                      em_str_t ip, em_str_t ua, em_str_t details)
{
    memset(ev, 0, sizeof(*ev));
    ev->time = em_state_now();
    em_copy_field(ev->type, sizeof(ev->type), (em_str_t) { type, strlen(type) });
    em_copy_field(ev->sid, sizeof(ev->sid), sid);
    em_copy_field(ev->nsp, sizeof(ev->nsp), nsp);
    em_copy_field(ev->user, sizeof(ev->user), user);
    em_copy_field(ev->ip, sizeof(ev->ip), ip);
    em_copy_field(ev->ua, sizeof(ev->ua), ua);
    if (details.data != NULL && details.len < sizeof(ev->details)) {
        em_copy_field(ev->details, sizeof(ev->details), details);
    } else {
        strcpy(ev->details, "{}");
    }
}

/* Under the lock: append to the ring of recent events. */
static void
em_mon_push(em_st_monitor_t *m, const em_st_event_t *ev)
{
    memcpy(&m->events[m->events_next % EM_ST_EVENTS], ev, sizeof(*ev));
    m->events_next++;
}

static void
em_mon_count(em_state_t *st, int which, const char *key)
{
    size_t    len = strlen(key);
    int       created;
    uint64_t *c;

    if (len == 0) {
        return;
    }
    c = em_shtab_put(em_mon_tab(st, which), key, len, &created, em_mon_evictable);
    if (c != NULL) {
        (*c)++;
    }
}

void
em_monitor_connect(em_state_t *st, unsigned slot, const em_st_event_t *ev)
{
    em_st_monitor_t *m = em_mon(st);
    int64_t          sec = ev->time / 1000;
    uint64_t         active = 0;

    if (slot >= EM_STATE_SLOTS) {
        return;
    }
    em_state_lock(st, EM_ZONE_MONITOR);
    m->total++;
    m->active[slot]++;
    for (unsigned i = 0; i < EM_STATE_SLOTS; i++) {
        active += m->active[i];
    }
    if (active > m->peak) {
        m->peak = active;
    }
    if (m->second_at[sec % 64] != sec) {
        m->second_at[sec % 64] = sec;
        m->second_count[sec % 64] = 0;
    }
    m->second_count[sec % 64]++;
    em_mon_push(m, ev);
    em_mon_count(st, 0, ev->ip);
    em_mon_count(st, 1, ev->ua);
    em_state_unlock(st, EM_ZONE_MONITOR);
}

void
em_monitor_disconnect(em_state_t *st, unsigned slot, int64_t duration, const em_st_event_t *ev)
{
    em_st_monitor_t *m = em_mon(st);

    if (slot >= EM_STATE_SLOTS) {
        return;
    }
    em_state_lock(st, EM_ZONE_MONITOR);
    if (m->active[slot] > 0) {
        m->active[slot]--;
    }
    m->closed++;
    m->duration_sum += duration > 0 ? (uint64_t) duration : 0;
    em_mon_push(m, ev);
    em_state_unlock(st, EM_ZONE_MONITOR);
}

void
em_monitor_failed(em_state_t *st, const em_st_event_t *ev)
{
    em_state_lock(st, EM_ZONE_MONITOR);
    em_mon(st)->failed++;
    em_mon_push(em_mon(st), ev);
    em_mon_count(st, 0, ev->ip);
    em_mon_count(st, 1, ev->ua);
    em_state_unlock(st, EM_ZONE_MONITOR);
}

void
em_monitor_record(em_state_t *st, const em_st_event_t *ev)
{
    em_state_lock(st, EM_ZONE_MONITOR);
    em_mon_push(em_mon(st), ev);
    em_state_unlock(st, EM_ZONE_MONITOR);
}

void
em_monitor_violation(em_state_t *st, const em_st_event_t *ev)
{
    em_state_lock(st, EM_ZONE_MONITOR);
    em_mon(st)->violations++;
    em_mon_push(em_mon(st), ev);
    em_state_unlock(st, EM_ZONE_MONITOR);
}

void
em_monitor_sweep_slot(em_state_t *st, unsigned slot)
{
    if (slot >= EM_STATE_SLOTS) {
        return;
    }
    em_state_lock(st, EM_ZONE_MONITOR);
    em_mon(st)->active[slot] = 0;
    em_state_unlock(st, EM_ZONE_MONITOR);
}

void
em_monitor_read(em_state_t *st, int64_t now, em_monitor_figures_t *out)
{
    em_st_monitor_t *m = em_mon(st);
    int64_t          sec = now / 1000;

    memset(out, 0, sizeof(*out));
    em_state_lock(st, EM_ZONE_MONITOR);
    out->last_reset = m->last_reset;
    out->total = m->total;
    out->failed = m->failed;
    out->peak = m->peak;
    out->closed = m->closed;
    out->violations = m->violations;
    out->avg_duration = m->closed ? m->duration_sum / m->closed : 0;
    for (unsigned i = 0; i < EM_STATE_SLOTS; i++) {
        out->active += m->active[i];
    }
    for (unsigned i = 0; i < 64; i++) {
        if (m->second_at[i] > sec - 60 && m->second_at[i] <= sec) {
            out->per_minute += m->second_count[i];
        }
    }
    em_state_unlock(st, EM_ZONE_MONITOR);
}

void
em_monitor_reset(em_state_t *st, int64_t now)
{
    em_st_monitor_t *m = em_mon(st);
    uint64_t         active = 0;

    em_state_lock(st, EM_ZONE_MONITOR);
    for (unsigned i = 0; i < EM_STATE_SLOTS; i++) {
        active += m->active[i];
    }
    m->last_reset = now;
    m->total = m->failed = m->closed = m->duration_sum = m->violations = 0;
    m->peak = active;
    memset(m->second_count, 0, sizeof(m->second_count));
    em_state_unlock(st, EM_ZONE_MONITOR);
}

size_t
em_monitor_events(em_state_t *st, em_st_event_t *out, size_t max,
                  int (*fn)(const em_st_event_t *ev, void *arg), void *arg)
{
    em_st_monitor_t *m = em_mon(st);
    size_t           n = 0;

    em_state_lock(st, EM_ZONE_MONITOR);
    uint64_t first = m->events_next > EM_ST_EVENTS ? m->events_next - EM_ST_EVENTS : 0;
    for (uint64_t i = m->events_next; i > first && n < max; i--) {
        const em_st_event_t *ev = &m->events[(i - 1) % EM_ST_EVENTS];
        if (fn == NULL || fn(ev, arg)) {
            memcpy(&out[n++], ev, sizeof(*ev));
        }
    }
    em_state_unlock(st, EM_ZONE_MONITOR);
    return n;
}

size_t
em_monitor_top(em_state_t *st, int which, em_monitor_top_t *out, size_t n)
{
    em_shtab_t *t;
    uint32_t    it = 0;
    uint64_t   *c;
    size_t      have = 0;

    if (n == 0) {
        return 0;
    }
    em_state_lock(st, EM_ZONE_MONITOR);
    t = em_mon_tab(st, which);
    while ((c = em_shtab_next(t, &it)) != NULL) {
        /* Insert into the sorted top list if it beats the last one. */
        size_t pos = have;
        while (pos > 0 && out[pos - 1].count < *c) {
            pos--;
        }
        if (pos >= n) {
            continue;
        }
        size_t move = (have < n ? have : n - 1) - pos;
        memmove(&out[pos + 1], &out[pos], move * sizeof(*out));
        size_t      klen;
        const char *k = em_shtab_key(t, c, &klen);
        em_copy_field(out[pos].key, sizeof(out[pos].key), (em_str_t) { k, klen });
        out[pos].count = *c;
        if (have < n) {
            have++;
        }
    }
    em_state_unlock(st, EM_ZONE_MONITOR);
    return have;
}
