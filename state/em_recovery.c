/*
 * em_recovery.c - recovery sessions and the packet log they are restored
 * from.
 *
 * A Socket.IO session (key: its pid) is stored when the socket connects and
 * kept current as it joins and leaves rooms, so that it survives even the
 * death of its worker; when the socket goes it is kept for
 * recovery.max_disconnection. The log holds every event sent without an ack
 * while recovery is on, each with the offset the client saw last; it is a
 * byte ring bounded in size whose oldest records are dropped (and counted)
 * to make room or once they are too old to be asked for.
 */
#include <stdlib.h>
#include <string.h>

#include "em_state.h"

static int64_t em_recovery_clock;    /* "now" for the eviction test, under the lock */

static em_shtab_t *
em_recovery_table(em_state_t *st)
{
    return (em_shtab_t *) ((char *) st->hdr + st->hdr->sessions_off);
}

/* Positions never come near this (2^63 bytes written): beyond it, adding a
 * record's length could wrap around. */
#define EM_PLOG_POS_MAX (UINT64_MAX / 2)

/*
 * The packet log, its header made safe to use first. Any process may have
 * died in the middle of an update or scribbled over the segment, so the
 * header's numbers are held against what this process knows itself: the
 * data area lies between the header and the monitor zone and inside the
 * segment's size (st->size, from this process's own fstat()); positions are
 * 8-aligned, below EM_PLOG_POS_MAX, with tail <= head <= tail + size. A size that is wrong is put
 * back to the area's and a span that is wrong empties the log (its records
 * are lost, nothing is read from them). NULL when the segment's offsets
 * leave no room for a log at all.
 */
static em_plog_t *
em_plog(em_state_t *st)
{
    const em_state_hdr_t *h = st->hdr;
    uint64_t              end, area;
    em_plog_t            *lg;

    end = h->monitor_off > h->plog_off && h->monitor_off <= st->size ? h->monitor_off : st->size;
    if (h->plog_off % 8 != 0 || h->plog_off > end
        || end - h->plog_off < sizeof(em_plog_t) + 2 * sizeof(em_plog_rec_t)) {
        return NULL;
    }
    area = (end - h->plog_off - sizeof(em_plog_t)) & ~(uint64_t) 7;
    lg = (em_plog_t *) ((char *) st->hdr + h->plog_off);
    if (lg->size < 2 * sizeof(em_plog_rec_t) || lg->size % 8 != 0 || lg->size > area) {
        lg->size = area;
        lg->head = lg->tail = 0;
        lg->records = 0;
    }
    if (lg->head > EM_PLOG_POS_MAX || lg->tail > EM_PLOG_POS_MAX) {
        lg->head = lg->tail = 0;
        lg->records = 0;
    }
    if (lg->head % 8 != 0 || lg->tail % 8 != 0 || lg->tail > lg->head
        || lg->head - lg->tail > lg->size) {
        lg->head = lg->tail = EM_MAX(lg->head, lg->tail) & ~(uint64_t) 7;
        lg->records = 0;
    }
    return lg;
}

/* The offset the next log record gets (0: there is no log). */
static uint64_t
em_plog_next(em_state_t *st)
{
    em_plog_t *lg = em_plog(st);

    return lg != NULL ? lg->next_offset : 0;
}

/* Only an expired session may make room for another. */
static int
em_recovery_evictable(const void *v)
{
    const em_st_session_t *s = v;

    return s->expires != 0 && s->expires < em_recovery_clock;
}

int
em_recovery_save(em_state_t *st, em_str_t key, const em_st_session_t *s, int64_t now)
{
    em_st_session_t *e;
    int              created;

    em_state_lock(st, EM_ZONE_SESSIONS);
    em_recovery_clock = now;
    e = em_shtab_put(em_recovery_table(st), key.data, key.len, &created, em_recovery_evictable);
    if (e != NULL) {
        memcpy(e, s, sizeof(*e));
    }
    em_state_unlock(st, EM_ZONE_SESSIONS);
    return e != NULL ? EM_OK : EM_ERROR;
}

/*
 * Copy a session entry out of the segment. Its lengths are held against
 * the arrays they describe: another process may have died in the middle of
 * writing the entry, or scribbled over it, and the copy sizes the reads of
 * whoever uses it (a length out of range reads as an empty field, and an
 * over-long room list as one that overflowed).
 */
static void
em_recovery_copy(em_st_session_t *out, const em_st_session_t *e)
{
    memcpy(out, e, sizeof(*out));
    out->sid[sizeof(out->sid) - 1] = '\0';
    if (out->nsp_len > EM_ST_NAME_MAX) {
        out->nsp_len = 0;
    }
    if (out->user_len > EM_ST_NAME_MAX) {
        out->user_len = 0;
    }
    if (out->rooms_len > EM_ST_ROOMS_MAX) {
        out->rooms_len = 0;
        out->nrooms = 0;
        out->overflow = 1;
    }
}

int
em_recovery_get(em_state_t *st, em_str_t key, em_st_session_t *out)
{
    em_st_session_t *e;

    em_state_lock(st, EM_ZONE_SESSIONS);
    e = em_shtab_get(em_recovery_table(st), key.data, key.len);
    if (e != NULL) {
        em_recovery_copy(out, e);
    }
    em_state_unlock(st, EM_ZONE_SESSIONS);
    return e != NULL ? EM_OK : EM_DECLINED;
}

int
em_recovery_take(em_state_t *st, em_str_t key, int kind, unsigned slot, uint32_t pid, int64_t now,
                 em_st_session_t *out)
{
    em_st_session_t *e;
    int              rc = EM_DECLINED;

    em_state_lock(st, EM_ZONE_SESSIONS);
    e = em_shtab_get(em_recovery_table(st), key.data, key.len);
    if (e == NULL || e->kind != kind) {
        goto done;
    }
    if (e->expires != 0 && e->expires < now) {
        em_shtab_del(em_recovery_table(st), e);
        goto done;
    }
    if (e->expires == 0) {
        /* Held by a socket: only if that socket's worker has died. */
        if (em_state_slot_pid(st, e->owner_slot) == e->owner_pid) {
            goto done;
        }
        e->offset = em_plog_next(st);
    }
    em_recovery_copy(out, e);
    if (kind == EM_ST_SESSION_PID) {
        em_shtab_del(em_recovery_table(st), e);
    } else {
        e->expires = 0;
        e->owner_slot = (uint16_t) slot;
        e->owner_pid = pid;
        e->last_activity = now;
    }
    rc = EM_OK;
done:
    em_state_unlock(st, EM_ZONE_SESSIONS);
    return rc;
}

int
em_recovery_set_rooms(em_state_t *st, em_str_t key, const char *rooms, size_t len, uint16_t nrooms,
                      int64_t now)
{
    em_st_session_t *e;

    em_state_lock(st, EM_ZONE_SESSIONS);
    e = em_shtab_get(em_recovery_table(st), key.data, key.len);
    if (e != NULL) {
        if (len <= EM_ST_ROOMS_MAX) {
            memcpy(e->rooms, rooms, len);
            e->rooms_len = (uint16_t) len;
            e->nrooms = nrooms;
            e->overflow = 0;
        } else {
            e->overflow = 1;
        }
        e->last_activity = now;
    }
    em_state_unlock(st, EM_ZONE_SESSIONS);
    return e != NULL ? EM_OK : EM_DECLINED;
}

void
em_recovery_release(em_state_t *st, em_str_t key, int64_t now, int64_t keep)
{
    em_st_session_t *e;

    em_state_lock(st, EM_ZONE_SESSIONS);
    e = em_shtab_get(em_recovery_table(st), key.data, key.len);
    if (e != NULL && e->expires == 0) {
        e->expires = now + keep;
        e->last_activity = now;
        e->offset = em_plog_next(st);
    }
    em_state_unlock(st, EM_ZONE_SESSIONS);
}

void
em_recovery_drop(em_state_t *st, em_str_t key)
{
    em_st_session_t *e;

    em_state_lock(st, EM_ZONE_SESSIONS);
    e = em_shtab_get(em_recovery_table(st), key.data, key.len);
    if (e != NULL) {
        em_shtab_del(em_recovery_table(st), e);
    }
    em_state_unlock(st, EM_ZONE_SESSIONS);
}

void
em_recovery_sweep_slot(em_state_t *st, unsigned slot, int64_t now, int64_t keep)
{
    uint32_t         it = 0, me = em_state_slot_pid(st, slot);
    em_st_session_t *e;

    em_state_lock(st, EM_ZONE_SESSIONS);
    while ((e = em_shtab_next(em_recovery_table(st), &it)) != NULL) {
        if (e->expires == 0 && e->owner_slot == slot && e->owner_pid != me) {
            e->expires = now + keep;
            e->offset = em_plog_next(st);
        }
    }
    em_state_unlock(st, EM_ZONE_SESSIONS);
}

/* ---- the log ---- */

/* The record at position pos: its header in *r; returns the bytes to skip
 * (the rest of the ring when a header does not fit before the end), 0 when
 * the bytes there are not a record. */
static uint64_t
em_plog_at(em_plog_t *lg, uint64_t pos, em_plog_rec_t *r)
{
    uint64_t at = pos % lg->size;

    if (lg->size - at < sizeof(*r)) {
        memset(r, 0, sizeof(*r));
        return lg->size - at;
    }
    memcpy(r, (char *) (lg + 1) + at, sizeof(*r));
    if (r->len < sizeof(*r) || r->len % 8 != 0 || r->len > lg->size - at) {
        return 0;
    }
    return r->len;
}

static void
em_plog_pop(em_plog_t *lg)
{
    em_plog_rec_t r;
    uint64_t      n = em_plog_at(lg, lg->tail, &r);

    if (n == 0 || n > lg->head - lg->tail) {
        lg->tail = lg->head;        /* cannot happen; start afresh */
        lg->records = 0;
        return;
    }
    lg->tail += n;
    if (r.offset != 0) {
        lg->records--;
        lg->evicted++;
        lg->evicted_bytes += n;
    }
}

void
em_recovery_expire(em_state_t *st, int64_t now, int64_t keep)
{
    uint32_t         it = 0;
    em_st_session_t *e;
    em_plog_t       *lg;

    em_state_lock(st, EM_ZONE_SESSIONS);
    while ((e = em_shtab_next(em_recovery_table(st), &it)) != NULL) {
        if (e->expires != 0 && e->expires < now) {
            em_shtab_del(em_recovery_table(st), e);
        }
    }
    lg = em_plog(st);
    while (lg != NULL && lg->tail < lg->head) {
        em_plog_rec_t r;
        uint64_t      n = em_plog_at(lg, lg->tail, &r);
        if (n != 0 && r.offset != 0 && r.time >= now - keep) {
            break;
        }
        em_plog_pop(lg);
    }
    em_state_unlock(st, EM_ZONE_SESSIONS);
}

void
em_recovery_stats(em_state_t *st, int64_t now, em_recovery_stats_t *out)
{
    uint32_t         it = 0;
    em_st_session_t *e;

    memset(out, 0, sizeof(*out));
    em_state_lock(st, EM_ZONE_SESSIONS);
    while ((e = em_shtab_next(em_recovery_table(st), &it)) != NULL) {
        if (e->expires != 0 && e->expires < now) {
            continue;
        }
        if (e->kind == EM_ST_SESSION_PID) {
            out->pid_sessions++;
        } else {
            out->tokens++;
        }
        out->held += e->expires == 0;
        out->age_sum += now - e->created;
    }
    em_plog_t *lg = em_plog(st);
    if (lg != NULL) {
        out->log_records = lg->records;
        out->log_evicted = lg->evicted;
        out->log_bytes = lg->head - lg->tail;
    }
    em_state_unlock(st, EM_ZONE_SESSIONS);
}

uint64_t
em_plog_begin(em_state_t *st)
{
    em_state_lock(st, EM_ZONE_SESSIONS);
    return em_plog_next(st);
}

void
em_plog_abort(em_state_t *st)
{
    em_state_unlock(st, EM_ZONE_SESSIONS);
}

uint64_t
em_plog_next_offset(em_state_t *st)
{
    uint64_t o;

    em_state_lock(st, EM_ZONE_SESSIONS);
    o = em_plog_next(st);
    em_state_unlock(st, EM_ZONE_SESSIONS);
    return o;
}

static void
em_plog_put(unsigned char **w, const void *p, size_t n)
{
    if (n != 0) {       /* p may be NULL then */
        memcpy(*w, p, n);
    }
    *w += n;
}

void
em_plog_commit(em_state_t *st, uint64_t offset, em_str_t nsp, const em_str_t *rooms, size_t nrooms,
               const em_str_t *except, size_t nexcept, em_str_t data, const em_str_t *atts,
               size_t natt, int64_t now)
{
    em_plog_t     *lg = em_plog(st);
    uint64_t       need = sizeof(em_plog_rec_t) + nsp.len + data.len, pad, at;
    em_plog_rec_t  r;
    unsigned char *w;

    int too_long = 0;
    for (size_t i = 0; i < nrooms; i++) {
        need += 2 + rooms[i].len;
        too_long |= rooms[i].len > UINT16_MAX;
    }
    for (size_t i = 0; i < nexcept; i++) {
        need += 2 + except[i].len;
        too_long |= except[i].len > UINT16_MAX;
    }
    for (size_t i = 0; i < natt; i++) {
        too_long |= atts[i].len > UINT32_MAX;
    }
    for (size_t i = 0; i < natt; i++) {
        need += 4 + atts[i].len;
    }
    need = (need + 7) & ~(uint64_t) 7;
    if (lg == NULL) {
        em_state_unlock(st, EM_ZONE_SESSIONS);
        return;
    }
    lg->next_offset = offset + 1;
    if (too_long || need > lg->size / 4 || nrooms > UINT16_MAX || nexcept > UINT16_MAX || natt > UINT16_MAX
        || nsp.len > UINT16_MAX || data.len > UINT32_MAX) {
        lg->too_big++;
        em_state_unlock(st, EM_ZONE_SESSIONS);
        return;
    }
    at = lg->head % lg->size;
    pad = lg->size - at < need ? lg->size - at : 0;
    while (lg->head - lg->tail + pad + need > lg->size) {
        em_plog_pop(lg);
        if (lg->tail == lg->head) {
            /* Empty: start at the beginning. head goes first, so that a
             * process dying in between leaves tail > head, which the next
             * locker takes for an empty log (never head - tail > size). */
            lg->head = 0;
            __atomic_store_n(&lg->tail, 0, __ATOMIC_RELEASE);
            at = 0;
            pad = 0;
            break;
        }
    }
    if (pad != 0) {
        if (pad >= sizeof(r)) {
            memset(&r, 0, sizeof(r));
            r.len = (uint32_t) pad;
            memcpy((char *) (lg + 1) + at, &r, sizeof(r));
        }
        lg->head += pad;
        at = 0;
    }
    memset(&r, 0, sizeof(r));
    r.len = (uint32_t) need;
    r.nsp_len = (uint16_t) nsp.len;
    r.nrooms = (uint16_t) nrooms;
    r.nexcept = (uint16_t) nexcept;
    r.natt = (uint16_t) natt;
    r.offset = offset;
    r.time = now;
    r.data_len = (uint32_t) data.len;
    w = (unsigned char *) (lg + 1) + at;
    em_plog_put(&w, &r, sizeof(r));
    em_plog_put(&w, nsp.data, nsp.len);
    for (size_t i = 0; i < nrooms + nexcept; i++) {
        const em_str_t *s = i < nrooms ? &rooms[i] : &except[i - nrooms];
        uint16_t        l = (uint16_t) s->len;
        em_plog_put(&w, &l, 2);
        em_plog_put(&w, s->data, s->len);
    }
    em_plog_put(&w, data.data, data.len);
    for (size_t i = 0; i < natt; i++) {
        uint32_t l = (uint32_t) atts[i].len;
        em_plog_put(&w, &l, 4);
        em_plog_put(&w, atts[i].data, atts[i].len);
    }
    lg->head += need;
    lg->records++;
    em_state_unlock(st, EM_ZONE_SESSIONS);
}

/* Do the variable parts of record r (starting at p, after the header) stay
 * within its length? */
static int
em_plog_rec_valid(const em_plog_rec_t *r, const unsigned char *p)
{
    const unsigned char *end = p + (r->len - sizeof(*r));
    size_t               n = r->nrooms + (size_t) r->nexcept;

    if ((size_t) (end - p) < r->nsp_len) {
        return 0;
    }
    p += r->nsp_len;
    for (size_t i = 0; i < n; i++) {
        uint16_t l;
        if (end - p < 2) {
            return 0;
        }
        memcpy(&l, p, 2);
        if ((size_t) (end - p - 2) < l) {
            return 0;
        }
        p += 2 + l;
    }
    if ((size_t) (end - p) < r->data_len) {
        return 0;
    }
    p += r->data_len;
    for (unsigned i = 0; i < r->natt; i++) {
        uint32_t l;
        if (end - p < 4) {
            return 0;
        }
        memcpy(&l, p, 4);
        if ((size_t) (end - p - 4) < l) {
            return 0;
        }
        p += 4 + l;
    }
    return 1;
}

/* Does a list of (uint16 len, bytes) at *p name any of rooms? Advances *p. */
static int
em_plog_list_hits(const unsigned char **p, unsigned n, const em_str_t *rooms, size_t nrooms)
{
    int hit = 0;

    for (unsigned i = 0; i < n; i++) {
        uint16_t l;
        memcpy(&l, *p, 2);
        *p += 2;
        for (size_t j = 0; !hit && j < nrooms; j++) {
            hit = rooms[j].len == l && (l == 0 || memcmp(rooms[j].data, *p, l) == 0);
        }
        *p += l;
    }
    return hit;
}

static em_plog_pkt_t *
em_plog_copy(const em_plog_rec_t *r, const unsigned char *data, const unsigned char *atts)
{
    size_t               total = sizeof(em_plog_pkt_t) + r->natt * sizeof(em_str_t) + r->data_len;
    const unsigned char *a = atts;

    for (unsigned i = 0; i < r->natt; i++) {
        uint32_t l;
        memcpy(&l, a, 4);
        a += 4 + l;
        total += l;
    }
    em_plog_pkt_t *pk = malloc(total);
    if (pk == NULL) {
        return NULL;
    }
    char *w = (char *) (pk + 1) + r->natt * sizeof(em_str_t);
    pk->next = NULL;
    pk->offset = r->offset;
    pk->natt = r->natt;
    pk->atts = (em_str_t *) (pk + 1);
    memcpy(w, data, r->data_len);
    pk->data.data = w;
    pk->data.len = r->data_len;
    w += r->data_len;
    a = atts;
    for (unsigned i = 0; i < r->natt; i++) {
        uint32_t l;
        memcpy(&l, a, 4);
        memcpy(w, a + 4, l);
        pk->atts[i].data = w;
        pk->atts[i].len = l;
        w += l;
        a += 4 + l;
    }
    return pk;
}

int
em_plog_replay(em_state_t *st, em_str_t nsp, const em_str_t *rooms, size_t nrooms, uint64_t offset,
               int from_offset, em_plog_pkt_t **out)
{
    return em_plog_replay_upto(st, nsp, rooms, nrooms, offset, from_offset, out, NULL);
}

int
em_plog_replay_upto(em_state_t *st, em_str_t nsp, const em_str_t *rooms, size_t nrooms,
                    uint64_t offset, int from_offset, em_plog_pkt_t **out, uint64_t *upto)
{
    em_plog_t      *lg;
    em_plog_pkt_t  *head = NULL, **tail = &head;
    int             found = from_offset, gap = 0;
    uint64_t        first = 0;

    *out = NULL;
    em_state_lock(st, EM_ZONE_SESSIONS);
    lg = em_plog(st);
    for (uint64_t pos = lg != NULL ? lg->tail : 0; lg != NULL && pos < lg->head;) {
        em_plog_rec_t        r;
        uint64_t             n = em_plog_at(lg, pos, &r);
        const unsigned char *p;
        if (n == 0 || n > lg->head - pos) {
            break;      /* not a record, or one that runs past what was committed */
        }
        p = (const unsigned char *) (lg + 1) + pos % lg->size + sizeof(r);
        pos += n;
        if (r.offset == 0) {
            continue;
        }
        if (first == 0) {
            first = r.offset;
        }
        if (!found) {
            found = r.offset == offset;
            continue;
        }
        if (!em_plog_rec_valid(&r, p)) {
            break;      /* not a record we wrote: stop here rather than read past it */
        }
        if (r.offset < offset || r.nsp_len != nsp.len
            || (nsp.len != 0 && memcmp(p, nsp.data, nsp.len) != 0)) {
            continue;
        }
        p += r.nsp_len;
        int in = em_plog_list_hits(&p, r.nrooms, rooms, nrooms) || r.nrooms == 0;
        int out_ = em_plog_list_hits(&p, r.nexcept, rooms, nrooms);
        if (!in || out_) {
            continue;
        }
        em_plog_pkt_t *pk = em_plog_copy(&r, p, p + r.data_len);
        if (pk != NULL) {
            *tail = pk;
            tail = &pk->next;
        }
    }
    /* From an offset: records from it on that are gone may have been for
     * this session (the log cannot tell any more). */
    gap = from_offset && (lg == NULL || (offset < lg->next_offset && (first == 0 || first > offset)));
    if (upto != NULL) {
        *upto = lg != NULL && lg->next_offset > 0 ? lg->next_offset - 1 : 0;
    }
    em_state_unlock(st, EM_ZONE_SESSIONS);
    if (!found) {
        em_plog_pkts_free(head);
        return EM_DECLINED;
    }
    *out = head;
    return gap ? EM_DECLINED : EM_OK;
}

void
em_plog_pkts_free(em_plog_pkt_t *p)
{
    while (p != NULL) {
        em_plog_pkt_t *next = p->next;
        free(p);
        p = next;
    }
}
