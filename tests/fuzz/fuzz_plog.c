/*
 * fuzz_plog.c - libFuzzer harness for the recovery packet log of the
 * cluster-state segment: em_plog_begin/commit/abort, em_plog_replay,
 * em_recovery_expire and em_recovery_stats (broker/em_recovery.c), and the
 * repair the next locker makes when a process dies holding the log's lock
 * (em_plog_repair in state/em_state.c).
 *
 * One small segment is made per process (4096 log bytes, as in
 * tests/unit/test_state.c) and its log emptied before each input. The
 * input is a program, one operation after another:
 *
 *   commit   a record of one of a few namespaces, 0-3 rooms and 0-3
 *            except-rooms (names from a pool or cut from the input), data
 *            up to 1400 bytes (some larger than a quarter of the log) and
 *            0-3 attachments; or a begin that is aborted
 *   replay   from or after an offset the log has, had or never had
 *   expire / stats
 *   scribble raw bytes over the log's data area, or over a field of its
 *            header (em_plog_t), as a crashed or hostile process could
 *   die      a thread takes the log's lock (em_plog_begin) and exits
 *            holding it, so that the next call repairs the log first
 *
 * Checked always: nothing outside the log changes (the tables before it are
 * compared with a copy, and the segment after it is poisoned for ASan);
 * after every call the header is one that can be used (size as the area
 * allows, 8-aligned positions, tail <= head <= tail + size); each replayed
 * packet's slices lie inside its own block and are read through; no call
 * loops (every operation is bounded by the log's size).
 *
 * Checked while nothing was scribbled: against a model of the stored
 * records, a replay gives exactly the records after (or from) the offset
 * that a socket in those rooms would have received, byte for byte and in
 * order; a record just committed is replayed at once; a repair keeps
 * everything.
 *
 * The repair of em_state.c runs only with a header a dying process can
 * leave (its size intact, positions below 2^63, and head - tail within the
 * size unless tail passed head): it trusts those fields, and em_state.c is not this harness's
 * to change (see README.md).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "em_log.h"
#include "em_state.h"

#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#ifdef FUZZ_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define FUZZ_ASSERT(c) do { if (!(c)) { abort(); } } while (0)

#define FUZZ_LOG_BYTES 4096
#define FUZZ_MAX_OPS   512
#define FUZZ_MODEL     1024
#define FUZZ_DATA_MAX  1400

static em_state_t     fz_st = { .fd = -1 };
static uint64_t       fz_area;          /* bytes between the log header and the monitor zone */
static unsigned char *fz_copy;          /* what lies before the log, to compare */
static size_t         fz_copy_off, fz_copy_len;
static unsigned char  fz_pattern[FUZZ_DATA_MAX + 256];

static em_plog_t *
fz_log(void)
{
    return (em_plog_t *) ((char *) fz_st.hdr + fz_st.hdr->plog_off);
}

static void
fz_init(void)
{
    em_state_sizes_t sz;

    em_log_level = EM_LOG_ERR;          /* each repair warns */
    em_state_default_sizes(&sz);
    sz.limits = 16;
    sz.users = 16;
    sz.rooms = 16;
    sz.sessions = 8;
    sz.log_bytes = FUZZ_LOG_BYTES;
    sz.ips = 8;
    FUZZ_ASSERT(em_state_create(&fz_st, 2, &sz) == EM_OK);
    fz_area = fz_st.hdr->monitor_off - fz_st.hdr->plog_off - sizeof(em_plog_t);
    FUZZ_ASSERT(fz_log()->size == FUZZ_LOG_BYTES && fz_area >= FUZZ_LOG_BYTES);
    /* The tables between the segment's header and the log. */
    fz_copy_off = fz_st.hdr->limits_off;
    fz_copy_len = fz_st.hdr->plog_off - fz_copy_off;
    fz_copy = malloc(fz_copy_len);
    FUZZ_ASSERT(fz_copy != NULL);
    memcpy(fz_copy, (char *) fz_st.hdr + fz_copy_off, fz_copy_len);
    for (size_t i = 0; i < sizeof(fz_pattern); i++) {
        fz_pattern[i] = (unsigned char) (i * 131 + 7);
    }
#ifdef FUZZ_ASAN
    /* Nothing of the log's may touch the segment after it. */
    ASAN_POISON_MEMORY_REGION((char *) fz_st.hdr + fz_st.hdr->monitor_off,
                              fz_st.size - fz_st.hdr->monitor_off);
#endif
}

/* ---- the input ---- */

typedef struct {
    const uint8_t *p;
    size_t         left;
} fz_in_t;

static unsigned
fz_byte(fz_in_t *in)
{
    if (in->left == 0) {
        return 0;
    }
    in->left--;
    return *in->p++;
}

static uint64_t
fz_u64(fz_in_t *in)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++) {
        v = v << 8 | fz_byte(in);
    }
    return v;
}

/* n bytes: from the input while it lasts, then from the pattern. */
static em_str_t
fz_bytes(fz_in_t *in, size_t n)
{
    em_str_t s;

    if (in->left >= n) {
        s = (em_str_t) { (const char *) in->p, n };
        in->p += n;
        in->left -= n;
    } else {
        s = (em_str_t) { (const char *) fz_pattern + (n & 0xff), n };
    }
    return s;
}

static const em_str_t fz_nsps[] = { { "/", 1 }, { "/x", 2 }, { "", 0 }, { "/chat", 5 } };
static const em_str_t fz_names[] = { { "a", 1 }, { "b", 1 }, { "s1", 2 }, { "", 0 } };

/* A room name: from the pool, or cut from the input. */
static em_str_t
fz_name(fz_in_t *in)
{
    unsigned b = fz_byte(in);

    if (b & 0x80) {
        return fz_bytes(in, (b >> 2) & 0x1f);
    }
    return fz_names[b & 3];
}

/* ---- the model of stored records (while nothing was scribbled) ---- */

typedef struct {
    uint64_t offset;
    em_str_t nsp;
    em_str_t rooms[3], except[3], atts[3];
    size_t   nrooms, nexcept, natt;
    em_str_t data;
} fz_rec_t;

static fz_rec_t fz_model[FUZZ_MODEL];
static size_t   fz_nmodel;

static int
fz_eq(em_str_t a, em_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

static int
fz_any(const em_str_t *v, size_t n, const em_str_t *rooms, size_t nrooms)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < nrooms; j++) {
            if (fz_eq(v[i], rooms[j])) {
                return 1;
            }
        }
    }
    return 0;
}

/* Would a socket of nsp in rooms have received record r? */
static int
fz_for(const fz_rec_t *r, em_str_t nsp, const em_str_t *rooms, size_t nrooms)
{
    return fz_eq(r->nsp, nsp) && (r->nrooms == 0 || fz_any(r->rooms, r->nrooms, rooms, nrooms))
           && !fz_any(r->except, r->nexcept, rooms, nrooms);
}

/* ---- checks ---- */

/* The header after a call: one the next call can use as it is. */
static void
fz_check_header(void)
{
    em_plog_t *lg = fz_log();

    FUZZ_ASSERT(lg->size >= 64 && lg->size % 8 == 0 && lg->size <= fz_area);
    FUZZ_ASSERT(lg->head % 8 == 0 && lg->tail % 8 == 0);
    FUZZ_ASSERT(lg->tail <= lg->head && lg->head - lg->tail <= lg->size);
}

static void
fz_check_outside(void)
{
    FUZZ_ASSERT(memcmp(fz_copy, (char *) fz_st.hdr + fz_copy_off, fz_copy_len) == 0);
}

/* Every packet's slices lie inside its own block and can be read. */
static size_t
fz_check_pkts(const em_plog_pkt_t *pk)
{
    volatile unsigned sum = 0;
    size_t            n = 0;

    for (; pk != NULL; pk = pk->next, n++) {
        const char *lo = (const char *) ((const em_str_t *) (pk + 1) + pk->natt);
        const char *hi = lo + pk->data.len;
        FUZZ_ASSERT(pk->natt <= UINT16_MAX && pk->atts == (const em_str_t *) (pk + 1));
        for (size_t i = 0; i < pk->natt; i++) {
            hi += pk->atts[i].len;
        }
        FUZZ_ASSERT(pk->data.data >= lo && pk->data.len <= (size_t) (hi - pk->data.data));
        for (size_t i = 0; i < pk->data.len; i++) {
            sum += (unsigned char) pk->data.data[i];
        }
        for (size_t a = 0; a < pk->natt; a++) {
            FUZZ_ASSERT(pk->atts[a].data >= lo
                        && pk->atts[a].len <= (size_t) (hi - pk->atts[a].data));
            for (size_t i = 0; i < pk->atts[a].len; i++) {
                sum += (unsigned char) pk->atts[a].data[i];
            }
        }
    }
    (void) sum;
    return n;
}

/* A clean log's replay against the model (see the top of the file). */
static void
fz_check_model(em_str_t nsp, const em_str_t *rooms, size_t nrooms, uint64_t offset, int from,
               int rc, const em_plog_pkt_t *got)
{
    const em_plog_pkt_t *p = got;
    size_t               i = 0;

    if (rc != EM_OK && !from) {
        FUZZ_ASSERT(got == NULL);
        return;
    }
    if (rc != EM_OK) {
        /* Records from offset on are gone: what is left of them is a suffix. */
        if (got == NULL) {
            return;
        }
        while (i < fz_nmodel && fz_model[i].offset < got->offset) {
            i++;
        }
    }
    for (; i < fz_nmodel; i++) {
        const fz_rec_t *r = &fz_model[i];
        if ((from ? r->offset < offset : r->offset <= offset) || !fz_for(r, nsp, rooms, nrooms)) {
            continue;
        }
        FUZZ_ASSERT(p != NULL && p->offset == r->offset);
        FUZZ_ASSERT(fz_eq(p->data, r->data) && p->natt == r->natt);
        for (size_t a = 0; a < r->natt; a++) {
            FUZZ_ASSERT(fz_eq(p->atts[a], r->atts[a]));
        }
        p = p->next;
    }
    FUZZ_ASSERT(p == NULL);
}

/* ---- operations ---- */

static int fz_clean;

static void
fz_replay(em_str_t nsp, const em_str_t *rooms, size_t nrooms, uint64_t offset, int from)
{
    em_plog_pkt_t *pk = (em_plog_pkt_t *) 1;
    int            rc = em_plog_replay(&fz_st, nsp, rooms, nrooms, offset, from, &pk);

    FUZZ_ASSERT(rc == EM_OK || rc == EM_DECLINED);
    FUZZ_ASSERT(pk != (em_plog_pkt_t *) 1);
    FUZZ_ASSERT(rc == EM_OK || from || pk == NULL);
    fz_check_pkts(pk);
    if (fz_clean) {
        fz_check_model(nsp, rooms, nrooms, offset, from, rc, pk);
    }
    em_plog_pkts_free(pk);
}

static void
fz_commit(fz_in_t *in)
{
    fz_rec_t  r;
    unsigned  b = fz_byte(in), sizes = fz_byte(in);
    uint64_t  off, too_big = fz_log()->too_big, next = fz_log()->next_offset;
    size_t    dlen;
    int64_t   now = (int64_t) fz_byte(in) * 10;

    memset(&r, 0, sizeof(r));
    r.nsp = fz_nsps[b & 3];
    r.nrooms = (b >> 2) & 3;
    r.nexcept = (b >> 4) & 3;
    r.natt = (b >> 6) & 3;
    for (size_t i = 0; i < r.nrooms; i++) {
        r.rooms[i] = fz_name(in);
    }
    for (size_t i = 0; i < r.nexcept; i++) {
        r.except[i] = fz_name(in);
    }
    if (sizes & 0x80) {
        dlen = (((size_t) (sizes & 0x7f) << 8) | fz_byte(in)) % FUZZ_DATA_MAX;
    } else {
        dlen = sizes & 0x7f;
    }
    r.data = fz_bytes(in, dlen);
    for (size_t i = 0; i < r.natt; i++) {
        r.atts[i] = fz_bytes(in, fz_byte(in));
    }

    off = em_plog_begin(&fz_st);
    if (fz_clean) {
        FUZZ_ASSERT(off == next);
    }
    if (dlen == 1) {            /* one in a while: the caller gives up */
        em_plog_abort(&fz_st);
        FUZZ_ASSERT(!fz_clean || fz_log()->next_offset == next);
        return;
    }
    em_plog_commit(&fz_st, off, r.nsp, r.rooms, r.nrooms, r.except, r.nexcept, r.data, r.atts,
                   r.natt, now);
    if (!fz_clean) {
        return;
    }
    FUZZ_ASSERT(fz_log()->next_offset == off + 1);
    if (fz_log()->too_big != too_big) {
        FUZZ_ASSERT(fz_log()->too_big == too_big + 1);
        return;                 /* not stored */
    }
    if (fz_nmodel == FUZZ_MODEL) {
        fz_clean = 0;           /* the model is full: safety checks only from here */
        return;
    }
    r.offset = off;
    fz_model[fz_nmodel++] = r;
    /* The newest record is always kept: replayed from its offset it comes
     * alone (or nothing does, when its own rooms are among its excepts). */
    fz_replay(r.nsp, r.rooms, r.nrooms, off, 1);
}

static void
fz_replay_op(fz_in_t *in)
{
    unsigned b = fz_byte(in), k = fz_byte(in);
    em_str_t rooms[4];
    size_t   nrooms = (b >> 2) & 3;
    uint64_t offset;

    for (size_t i = 0; i < nrooms; i++) {
        rooms[i] = fz_name(in);
    }
    switch ((b >> 4) & 3) {
    case 0:
        offset = fz_nmodel ? fz_model[k % fz_nmodel].offset : k;
        break;
    case 1:
        offset = fz_log()->next_offset - (k & 3);
        break;
    case 2:
        offset = k;
        break;
    default:
        offset = fz_u64(in);
        break;
    }
    fz_replay(fz_nsps[b & 3], rooms, nrooms, offset, (b >> 6) & 1);
}

static void
fz_scribble_data(fz_in_t *in)
{
    em_plog_t     *lg = fz_log();
    unsigned       b = fz_byte(in);
    uint64_t       at;
    em_str_t       s;

    if (b & 0x80) {
        /* Near the live records: where the walks read headers. */
        at = ((lg->size ? lg->tail % lg->size : 0) + 8 * (uint64_t) fz_byte(in)) % fz_area;
    } else {
        at = (((uint64_t) fz_byte(in) << 8) | fz_byte(in)) % fz_area;
    }
    s = fz_bytes(in, (b & 0x3f) < 40 ? (b & 0x3f) : 32);
    if (s.len > fz_area - at) {
        s.len = (size_t) (fz_area - at);
    }
    memcpy((unsigned char *) (lg + 1) + at, s.data, s.len);
    fz_clean = 0;
}

static void
fz_scribble_header(fz_in_t *in)
{
    em_plog_t *lg = fz_log();
    uint64_t  *f[] = { &lg->size, &lg->head, &lg->tail, &lg->next_offset, &lg->records,
                       &lg->evicted, &lg->evicted_bytes, &lg->too_big };
    unsigned   b = fz_byte(in);
    uint64_t  *field = f[b & 7];
    uint64_t   v;

    switch ((b >> 3) & 7) {
    case 0:
        v = fz_u64(in);
        break;
    case 1:
        v = *field + fz_byte(in);
        break;
    case 2:
        v = *field - fz_byte(in);
        break;
    case 3:
        v = *field + (uint64_t) fz_byte(in) * lg->size;     /* whole turns of the ring */
        break;
    case 4:
        v = 0;
        break;
    case 5:
        v = UINT64_MAX - fz_byte(in);
        break;
    case 6:
        v = lg->head;
        break;
    default:
        v = lg->tail + 8 * (uint64_t) fz_byte(in);
        break;
    }
    *field = v;
    fz_clean = 0;
}

static void *
fz_die_holding(void *arg)
{
    (void) arg;
    (void) em_plog_begin(&fz_st);       /* and never commit nor unlock */
    return NULL;
}

static void
fz_die(void)
{
    em_plog_t *lg = fz_log();
    pthread_t  t;
    uint32_t   repairs = fz_st.hdr->repairs[EM_ZONE_SESSIONS];
    uint64_t   head = lg->head, records = lg->records;

    /* What em_plog_repair() relies on (see the top of the file). */
    if (lg->size < 64 || lg->size % 8 != 0 || lg->size > fz_area
        || lg->head > UINT64_MAX / 2 || lg->tail > UINT64_MAX / 2
        || (lg->tail <= lg->head && lg->head - lg->tail > lg->size)) {
        return;
    }
    FUZZ_ASSERT(pthread_create(&t, NULL, fz_die_holding, NULL) == 0);
    FUZZ_ASSERT(pthread_join(t, NULL) == 0);
    em_state_lock(&fz_st, EM_ZONE_SESSIONS);        /* EOWNERDEAD: repairs */
    em_state_unlock(&fz_st, EM_ZONE_SESSIONS);
    FUZZ_ASSERT(fz_st.hdr->repairs[EM_ZONE_SESSIONS] == repairs + 1);
    if (fz_clean) {
        FUZZ_ASSERT(lg->head == head && lg->records == records);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in_t            in = { data, size };
    em_plog_t         *lg;
    em_recovery_stats_t ss;

    if (fz_st.hdr == NULL) {
        fz_init();
    }
    lg = fz_log();
    lg->size = FUZZ_LOG_BYTES;
    lg->head = lg->tail = lg->records = lg->evicted = lg->evicted_bytes = lg->too_big = 0;
    lg->next_offset = 1;
    memset(lg + 1, 0, fz_area);
    fz_nmodel = 0;
    fz_clean = 1;

    for (int ops = 0; in.left > 0 && ops < FUZZ_MAX_OPS; ops++) {
        int called = 1;
        switch (fz_byte(&in) % 9) {
        case 0:
        case 1:
            fz_commit(&in);
            break;
        case 2:
            fz_replay_op(&in);
            break;
        case 3: {
            int64_t now = (int64_t) fz_byte(&in) * 20, keep = (int64_t) fz_byte(&in) * 10;
            em_recovery_expire(&fz_st, now, keep);
            break;
        }
        case 4:
            em_recovery_stats(&fz_st, 0, &ss);
            FUZZ_ASSERT(ss.log_bytes <= lg->size);
            break;
        case 5:
        case 6:
            fz_scribble_data(&in);
            called = 0;
            break;
        case 7:
            fz_scribble_header(&in);
            called = 0;
            break;
        default:
            fz_die();
            em_recovery_stats(&fz_st, 0, &ss);
            break;
        }
        fz_check_outside();
        if (called) {
            fz_check_header();
        }
    }
    /* Whatever the program left, the log still works. */
    em_recovery_expire(&fz_st, 0, 0);
    fz_replay(EM_STR("/"), NULL, 0, 0, 1);
    fz_check_header();
    fz_check_outside();
    return 0;
}
