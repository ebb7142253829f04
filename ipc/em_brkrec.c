/*
 * em_brkrec.c - encoding and decoding the broadcast records of
 * em_brkrec-t.h. The decoder walks every length against the bytes left
 * (never a sum of lengths, so nothing can overflow) and the encoder sums
 * with overflow checks, so neither side reads or writes past its buffer
 * whatever the other side or the shared memory between them holds.
 */
#include <string.h>

#include "em_brkrec.h"

static int
em_brk_fail(em_brk_fault_t *fault, int what, size_t value, size_t index)
{
    if (fault != NULL) {
        fault->what = what;
        fault->value = value;
        fault->index = index;
    }
    return EM_ERROR;
}

/* *sum += a; 0 on overflow. */
static int
em_brk_add(size_t *sum, size_t a)
{
    return !__builtin_add_overflow(*sum, a, sum);
}

/* Add a list of names with 16-bit lengths to *sum. */
static int
em_brk_size_names(const em_str_t *v, size_t n, int bad_count, int bad_name, size_t *sum,
                  em_brk_fault_t *fault)
{
    if (n > EM_BRK_LIST_MAX) {
        return em_brk_fail(fault, bad_count, n, 0);
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i].len > EM_BRK_NAME_MAX) {
            return em_brk_fail(fault, bad_name, v[i].len, i);
        }
        if (!em_brk_add(sum, 2 + v[i].len)) {
            return em_brk_fail(fault, EM_BRK_BAD_SIZE, 0, 0);
        }
    }
    return EM_OK;
}

int
em_brkrec_size(const em_brk_msg_t *m, size_t *size, em_brk_fault_t *fault)
{
    size_t sum = sizeof(em_brk_bcast_t);

    if ((m->flags & ~EM_BRK_F_KNOWN) != 0 || (!(m->flags & EM_BRK_F_CONF) && m->conf_index != 0)) {
        return em_brk_fail(fault, EM_BRK_BAD_FLAGS, m->flags, 0);
    }
    if (m->nsp.len > EM_BRK_NAME_MAX) {
        return em_brk_fail(fault, EM_BRK_BAD_NSP, m->nsp.len, 0);
    }
    sum += m->nsp.len;
    if (em_brk_size_names(m->rooms, m->nrooms, EM_BRK_BAD_NROOMS, EM_BRK_BAD_ROOM, &sum, fault)
            != EM_OK
        || em_brk_size_names(m->except, m->nexcept, EM_BRK_BAD_NEXCEPT, EM_BRK_BAD_EXCEPT, &sum,
                             fault) != EM_OK) {
        return EM_ERROR;
    }
    if (m->data.len > UINT32_MAX) {
        return em_brk_fail(fault, EM_BRK_BAD_DATA, m->data.len, 0);
    }
    if (!em_brk_add(&sum, m->data.len)) {
        return em_brk_fail(fault, EM_BRK_BAD_SIZE, 0, 0);
    }
    if (m->natt > EM_BRK_ATT_MAX) {
        return em_brk_fail(fault, EM_BRK_BAD_NATT, m->natt, 0);
    }
    for (size_t i = 0; i < m->natt; i++) {
        if (m->att[i].len > UINT32_MAX) {
            return em_brk_fail(fault, EM_BRK_BAD_ATT, m->att[i].len, i);
        }
        if (!em_brk_add(&sum, 4) || !em_brk_add(&sum, m->att[i].len)) {
            return em_brk_fail(fault, EM_BRK_BAD_SIZE, 0, 0);
        }
    }
    *size = sum;
    return EM_OK;
}

static char *
em_brk_put(char *w, const void *p, size_t n)
{
    if (n != 0) {
        memcpy(w, p, n);
    }
    return w + n;
}

static char *
em_brk_put_names(char *w, const em_str_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t l = (uint16_t) v[i].len;
        w = em_brk_put(w, &l, 2);
        w = em_brk_put(w, v[i].data, v[i].len);
    }
    return w;
}

/* Attachments: (uint32 len, bytes) each. */
static char *
em_brk_put_atts(char *w, const em_str_t *att, size_t natt)
{
    for (size_t i = 0; i < natt; i++) {
        uint32_t l = (uint32_t) att[i].len;
        w = em_brk_put(w, &l, 4);
        w = em_brk_put(w, att[i].data, att[i].len);
    }
    return w;
}

int
em_brkrec_encode(const em_brk_msg_t *m, void *buf, size_t cap, size_t *len)
{
    em_brk_bcast_t h;
    size_t         need;
    char          *w = buf;

    if (em_brkrec_size(m, &need, NULL) != EM_OK || cap < need) {
        return EM_ERROR;
    }
    memset(&h, 0, sizeof(h));
    h.version = EM_BRK_VERSION;
    h.flags = m->flags;
    h.origin = m->origin;
    h.nsp_len = (uint16_t) m->nsp.len;
    h.conf_index = m->conf_index;
    h.nrooms = (uint16_t) m->nrooms;
    h.nexcept = (uint16_t) m->nexcept;
    h.natt = (uint32_t) m->natt;
    h.data_len = (uint32_t) m->data.len;
    w = em_brk_put(w, &h, sizeof(h));
    w = em_brk_put(w, m->nsp.data, m->nsp.len);
    w = em_brk_put_names(w, m->rooms, m->nrooms);
    w = em_brk_put_names(w, m->except, m->nexcept);
    w = em_brk_put(w, m->data.data, m->data.len);
    w = em_brk_put_atts(w, m->att, m->natt);
    *len = (size_t) (w - (char *) buf);
    return EM_OK;
}

/* The length field of width bytes at p. */
static size_t
em_brk_get_len(const char *p, unsigned width)
{
    if (width == 2) {
        uint16_t l;
        memcpy(&l, p, 2);
        return l;
    }
    uint32_t l;
    memcpy(&l, p, 4);
    return l;
}

/* Take a list of n (len, bytes) entries from *p (before end) into *l. */
static int
em_brk_take_list(const char **p, const char *end, size_t n, unsigned width, em_brk_list_t *l)
{
    const char *q = *p;

    for (size_t i = 0; i < n; i++) {
        if ((size_t) (end - q) < width) {
            return EM_ERROR;
        }
        size_t len = em_brk_get_len(q, width);
        q += width;
        if ((size_t) (end - q) < len) {
            return EM_ERROR;
        }
        q += len;
    }
    l->p = *p;
    l->end = q;
    l->n = n;
    l->width = width;
    *p = q;
    return EM_OK;
}

/* Take n bytes from *p (before end) as a slice. */
static int
em_brk_take(const char **p, const char *end, size_t n, em_str_t *out)
{
    if ((size_t) (end - *p) < n) {
        return EM_ERROR;
    }
    out->data = *p;
    out->len = n;
    *p += n;
    return EM_OK;
}

int
em_brkrec_decode(const void *rec, size_t len, em_brk_view_t *v)
{
    const char     *p = rec, *end;
    em_brk_bcast_t  h;

    if (len < sizeof(h)) {
        return EM_ERROR;
    }
    end = p + len;
    memcpy(&h, p, sizeof(h));
    p += sizeof(h);
    if (h.version != EM_BRK_VERSION || (h.flags & ~EM_BRK_F_KNOWN) != 0 || h.reserved != 0
        || (!(h.flags & EM_BRK_F_CONF) && h.conf_index != 0)
        || h.natt > EM_BRK_ATT_MAX) {
        return EM_ERROR;
    }
    v->origin = h.origin;
    v->flags = h.flags;
    v->conf_index = h.conf_index;
    if (em_brk_take(&p, end, h.nsp_len, &v->nsp) != EM_OK
        || em_brk_take_list(&p, end, h.nrooms, 2, &v->rooms) != EM_OK
        || em_brk_take_list(&p, end, h.nexcept, 2, &v->except) != EM_OK
        || em_brk_take(&p, end, h.data_len, &v->data) != EM_OK
        || em_brk_take_list(&p, end, h.natt, 4, &v->att) != EM_OK
        || p != end) {
        return EM_ERROR;
    }
    return EM_OK;
}

int
em_brkrec_validate(const void *rec, size_t len)
{
    em_brk_view_t v;

    return em_brkrec_decode(rec, len, &v);
}

int
em_brk_list_next(em_brk_list_t *l, em_str_t *out)
{
    size_t len;

    if (l->n == 0 || (l->width != 2 && l->width != 4) || l->p > l->end
        || (size_t) (l->end - l->p) < l->width) {
        l->n = 0;
        return 0;
    }
    len = em_brk_get_len(l->p, l->width);
    if ((size_t) (l->end - l->p) - l->width < len) {
        l->n = 0;
        return 0;
    }
    out->data = l->p + l->width;
    out->len = len;
    l->p += l->width + len;
    l->n--;
    return 1;
}

/* ---- command records (EM_BRK_REC_CMD) ---- */

int
em_brkcmd_size(const em_brk_cmd_msg_t *m, size_t *size)
{
    size_t sum = sizeof(em_brk_cmd_t);

    if (m->kind == 0 || m->data.len > UINT32_MAX || m->natt > EM_BRK_ATT_MAX
        || !em_brk_add(&sum, m->data.len)) {
        return EM_ERROR;
    }
    for (size_t i = 0; i < m->natt; i++) {
        if (m->att[i].len > UINT32_MAX || !em_brk_add(&sum, 4) || !em_brk_add(&sum, m->att[i].len)) {
            return EM_ERROR;
        }
    }
    *size = sum;
    return EM_OK;
}

int
em_brkcmd_encode(const em_brk_cmd_msg_t *m, void *buf, size_t cap, size_t *len)
{
    em_brk_cmd_t h;
    size_t       need;
    char        *w = buf;

    if (em_brkcmd_size(m, &need) != EM_OK || cap < need) {
        return EM_ERROR;
    }
    memset(&h, 0, sizeof(h));
    h.version = EM_BRK_VERSION;
    h.kind = m->kind;
    h.origin = m->origin;
    h.target = m->target;
    h.data_len = (uint32_t) m->data.len;
    h.natt = (uint32_t) m->natt;
    h.req = m->req;
    w = em_brk_put(w, &h, sizeof(h));
    w = em_brk_put(w, m->data.data, m->data.len);
    w = em_brk_put_atts(w, m->att, m->natt);
    *len = (size_t) (w - (char *) buf);
    return EM_OK;
}

int
em_brkcmd_decode(const void *rec, size_t len, em_brk_cmd_msg_t *m)
{
    const char  *p = rec, *end;
    em_brk_cmd_t h;

    if (len < sizeof(h)) {
        return EM_ERROR;
    }
    end = p + len;
    memcpy(&h, p, sizeof(h));
    p += sizeof(h);
    if (h.version != EM_BRK_VERSION || h.kind == 0 || h.natt > EM_BRK_ATT_MAX) {
        return EM_ERROR;
    }
    memset(m, 0, sizeof(*m));
    m->kind = h.kind;
    m->origin = h.origin;
    m->target = h.target;
    m->req = h.req;
    m->natt = h.natt;
    if (em_brk_take(&p, end, h.data_len, &m->data) != EM_OK
        || em_brk_take_list(&p, end, h.natt, 4, &m->atts) != EM_OK || p != end) {
        return EM_ERROR;
    }
    return EM_OK;
}

unsigned
em_brkcmd_target(const void *rec, size_t len)
{
    em_brk_cmd_t h;

    if (len < sizeof(h)) {
        return EM_BRK_ALL;
    }
    memcpy(&h, rec, sizeof(h));
    return h.target;
}
