/*
 * fuzz_brkrec.c - libFuzzer harness for the broker's broadcast record codec
 * (ipc/em_brkrec.c).
 *
 * The input is first decoded as a record. When it is accepted: every slice
 * lies inside the input, the lists hold as many entries as they say, and
 * encoding what was decoded gives back exactly the input's bytes (the
 * record has one canonical form: em_brkrec-t.h). em_brkrec_validate()
 * agrees with the decoder, and every shorter prefix is refused.
 *
 * When it is refused, the same bytes describe a broadcast instead (counts,
 * flags and slices cut from the input), which is encoded, checked to have
 * the size em_brkrec_size() gave, and decoded back to the same parts.
 *
 * The same input is also decoded as a command record (EM_BRK_REC_CMD):
 * an accepted one lies inside the input, re-encodes to exactly its bytes,
 * and no proper prefix of it is one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "em_brkrec.h"

#define FUZZ_ASSERT(c) do { if (!(c)) { abort(); } } while (0)

static int
fuzz_inside(em_str_t s, const uint8_t *buf, size_t len)
{
    const char *b = (const char *) buf;

    return s.data >= b && s.len <= len && (size_t) (s.data - b) <= len - s.len;
}

/* Walk a list into out (up to max entries); how many it held. */
static size_t
fuzz_list(em_brk_list_t l, em_str_t *out, size_t max, const uint8_t *buf, size_t len)
{
    size_t   n = 0, want = l.n;
    em_str_t s;

    while (em_brk_list_next(&l, &s)) {
        FUZZ_ASSERT(fuzz_inside(s, buf, len));
        FUZZ_ASSERT(n < max);
        out[n++] = s;
    }
    FUZZ_ASSERT(n == want && l.n == 0);
    return n;
}

static void
fuzz_accepted(const uint8_t *data, size_t size, const em_brk_view_t *v)
{
    em_str_t     *rooms, *except, *att;
    em_brk_msg_t  m;
    size_t        need, len;
    char         *enc;

    FUZZ_ASSERT(fuzz_inside(v->nsp, data, size) && fuzz_inside(v->data, data, size));
    FUZZ_ASSERT((v->flags & ~EM_BRK_F_KNOWN) == 0);
    FUZZ_ASSERT(v->att.n <= EM_BRK_ATT_MAX);
    rooms = malloc((v->rooms.n + 1) * sizeof(em_str_t));
    except = malloc((v->except.n + 1) * sizeof(em_str_t));
    att = malloc((v->att.n + 1) * sizeof(em_str_t));
    FUZZ_ASSERT(rooms != NULL && except != NULL && att != NULL);
    m = (em_brk_msg_t) {
        .origin = v->origin,
        .flags = v->flags,
        .conf_index = v->conf_index,
        .nsp = v->nsp,
        .rooms = rooms,
        .nrooms = fuzz_list(v->rooms, rooms, v->rooms.n, data, size),
        .except = except,
        .nexcept = fuzz_list(v->except, except, v->except.n, data, size),
        .data = v->data,
        .att = att,
        .natt = fuzz_list(v->att, att, v->att.n, data, size),
    };
    FUZZ_ASSERT(em_brkrec_size(&m, &need, NULL) == EM_OK && need == size);
    enc = malloc(size);
    FUZZ_ASSERT(enc != NULL);
    FUZZ_ASSERT(em_brkrec_encode(&m, enc, size, &len) == EM_OK && len == size);
    FUZZ_ASSERT(memcmp(enc, data, size) == 0);
    free(enc);
    free(rooms);
    free(except);
    free(att);
}

/* Bytes of the input, taken from the front. */
typedef struct {
    const uint8_t *p;
    size_t         left;
} fuzz_in_t;

static unsigned
fuzz_byte(fuzz_in_t *in)
{
    if (in->left == 0) {
        return 0;
    }
    in->left--;
    return *in->p++;
}

/* A slice of the input of the length the next byte says (at most what is left). */
static em_str_t
fuzz_slice(fuzz_in_t *in)
{
    size_t   n = fuzz_byte(in);
    em_str_t s;

    n = n < in->left ? n : in->left;
    s = (em_str_t) { (const char *) in->p, n };
    in->p += n;
    in->left -= n;
    return s;
}

/* A broadcast made of the input's bytes goes through encode and decode. */
static void
fuzz_built(const uint8_t *data, size_t size)
{
    fuzz_in_t      in = { data, size };
    em_str_t       rooms[8], except[8], att[8], s;
    em_brk_msg_t   m;
    em_brk_view_t  v;
    em_brk_fault_t f;
    size_t         need, len, n;
    unsigned       counts = fuzz_byte(&in);
    char          *enc;

    memset(&m, 0, sizeof(m));
    m.nrooms = counts & 7;
    m.nexcept = (counts >> 3) & 7;
    m.natt = fuzz_byte(&in) & 7;
    m.origin = (uint16_t) fuzz_byte(&in);
    if (counts & 0x40) {
        m.flags = EM_BRK_F_CONF;
        m.conf_index = fuzz_byte(&in);
    }
    if (counts & 0x80) {
        m.flags |= (uint16_t) (fuzz_byte(&in) << 8);      /* unknown flags */
    }
    m.nsp = fuzz_slice(&in);
    for (size_t i = 0; i < m.nrooms; i++) {
        rooms[i] = fuzz_slice(&in);
    }
    for (size_t i = 0; i < m.nexcept; i++) {
        except[i] = fuzz_slice(&in);
    }
    for (size_t i = 0; i < m.natt; i++) {
        att[i] = fuzz_slice(&in);
    }
    m.rooms = rooms;
    m.except = except;
    m.att = att;
    m.data = (em_str_t) { (const char *) in.p, in.left };

    if (em_brkrec_size(&m, &need, &f) != EM_OK) {
        FUZZ_ASSERT(f.what == EM_BRK_BAD_FLAGS && (m.flags & ~EM_BRK_F_KNOWN) != 0);
        return;
    }
    FUZZ_ASSERT(need >= sizeof(em_brk_bcast_t) + m.nsp.len + m.data.len);
    enc = malloc(need);
    FUZZ_ASSERT(enc != NULL);
    FUZZ_ASSERT(em_brkrec_encode(&m, enc, need, &len) == EM_OK && len == need);
    FUZZ_ASSERT(em_brkrec_decode(enc, len, &v) == EM_OK);
    FUZZ_ASSERT(v.origin == m.origin && v.flags == m.flags && v.conf_index == m.conf_index);
    FUZZ_ASSERT(v.nsp.len == m.nsp.len && memcmp(v.nsp.data, m.nsp.data, m.nsp.len) == 0);
    FUZZ_ASSERT(v.data.len == m.data.len && memcmp(v.data.data, m.data.data, m.data.len) == 0);
    FUZZ_ASSERT(v.rooms.n == m.nrooms && v.except.n == m.nexcept && v.att.n == m.natt);
    for (n = 0; em_brk_list_next(&v.rooms, &s); n++) {
        FUZZ_ASSERT(s.len == rooms[n].len && memcmp(s.data, rooms[n].data, s.len) == 0);
    }
    FUZZ_ASSERT(n == m.nrooms);
    for (n = 0; em_brk_list_next(&v.except, &s); n++) {
        FUZZ_ASSERT(s.len == except[n].len && memcmp(s.data, except[n].data, s.len) == 0);
    }
    FUZZ_ASSERT(n == m.nexcept);
    for (n = 0; em_brk_list_next(&v.att, &s); n++) {
        FUZZ_ASSERT(s.len == att[n].len && memcmp(s.data, att[n].data, s.len) == 0);
    }
    FUZZ_ASSERT(n == m.natt);
    /* Cut short by one byte: refused. */
    FUZZ_ASSERT(em_brkrec_decode(enc, len - 1, &v) == EM_ERROR);
    free(enc);
}

static void
fuzz_cmd(const uint8_t *data, size_t size)
{
    em_brk_cmd_msg_t m;
    em_str_t        *att;
    size_t           len;
    char            *enc;

    (void) em_brkcmd_target(data, size);
    if (em_brkcmd_decode(data, size, &m) != EM_OK) {
        return;
    }
    FUZZ_ASSERT(fuzz_inside(m.data, data, size) && m.kind != 0 && m.natt <= EM_BRK_ATT_MAX);
    att = malloc((m.natt + 1) * sizeof(em_str_t));
    FUZZ_ASSERT(att != NULL);
    FUZZ_ASSERT(fuzz_list(m.atts, att, m.natt, data, size) == m.natt);
    m.att = att;
    enc = malloc(size);
    FUZZ_ASSERT(enc != NULL);
    FUZZ_ASSERT(em_brkcmd_encode(&m, enc, size, &len) == EM_OK && len == size);
    FUZZ_ASSERT(memcmp(enc, data, size) == 0);
    FUZZ_ASSERT(em_brkcmd_target(data, size) == m.target);
    FUZZ_ASSERT(size == 0 || em_brkcmd_decode(data, size - 1, &m) == EM_ERROR);
    free(enc);
    free(att);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_cmd(data, size);
    em_brk_view_t v;
    int           rc = em_brkrec_decode(data, size, &v);

    FUZZ_ASSERT(em_brkrec_validate(data, size) == rc);
    if (rc == EM_OK) {
        fuzz_accepted(data, size, &v);
        /* No proper prefix of a record is one: the lengths leave no room. */
        FUZZ_ASSERT(size == 0 || em_brkrec_validate(data, size - 1) == EM_ERROR);
    } else {
        FUZZ_ASSERT(rc == EM_ERROR);
        fuzz_built(data, size);
    }
    return 0;
}
