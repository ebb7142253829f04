/*
 * fuzz_rpres.c - libFuzzer harness for the presence messages emitd's
 * brokers send each other through Redis (redis/em_rpres.c).
 *
 * When the input is accepted: every slice lies inside it, every value is
 * within its range, the structure check agrees (it scans to its own
 * length), no proper prefix is accepted, and the message packed again from
 * what was decoded decodes to the same values, and packs to the same bytes
 * once more. Tighter limits give EM_DECLINED or the same message, never
 * EM_ERROR for an input the looser ones accepted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "em_rmsg.h"
#include "em_rpres.h"
#include "fuzz_slices.h"


static void
fuzz_pack(const em_rpres_t *m, char **out, size_t *len)
{
    em_rpres_out_t o;

    em_rpres_out_init(&o);
    for (size_t i = 0; i < m->n; i++) {
        em_rpres_out_add(&o, &m->v[i]);
    }
    FUZZ_ASSERT(em_rpres_out_finish(&o, m->uid, m->seq, m->flags, m->target, out, len) == EM_OK);
    em_rpres_out_free(&o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *) data;
    em_rpres_t  m, m2, m3;
    size_t      end, len, len2;
    char       *buf, *buf2;
    int         rc;

    if (em_rpres_decode(in, size, 64, 384, 512, &m) != EM_OK) {
        return 0;
    }
    FUZZ_ASSERT(em_rmsg_scan(in, size, 3, &end) == EM_OK && end == size);
    FUZZ_ASSERT(fuzz_inside(m.uid, data, size) && fuzz_inside(m.target, data, size));
    FUZZ_ASSERT(m.uid.len <= 64 && m.target.len <= 64 && m.n <= 64 && m.flags <= 0xff);
    for (size_t i = 0; i < m.n; i++) {
        const em_rpres_ent_t *e = &m.v[i];
        FUZZ_ASSERT(e->type == EM_RPRES_USER || e->type == EM_RPRES_ROOM || e->type == EM_RPRES_LIMIT);
        FUZZ_ASSERT(fuzz_inside(e->key, data, size) && fuzz_inside(e->info, data, size));
        FUZZ_ASSERT(e->key.len <= 384 && e->info.len <= 512);
        FUZZ_ASSERT(e->status >= 0 && e->status <= EM_RPRES_UNREPORTED);
    }
    fuzz_pack(&m, &buf, &len);
    FUZZ_ASSERT(em_rpres_decode(buf, len, 64, 384, 512, &m2) == EM_OK);
    FUZZ_ASSERT(fuzz_same(m2.uid, m.uid) && fuzz_same(m2.target, m.target));
    FUZZ_ASSERT(m2.seq == m.seq && m2.flags == m.flags && m2.n == m.n);
    for (size_t i = 0; i < m.n; i++) {
        const em_rpres_ent_t *a = &m.v[i], *b = &m2.v[i];
        FUZZ_ASSERT(a->type == b->type && fuzz_same(a->key, b->key) && a->count == b->count);
        if (a->type == EM_RPRES_USER) {
            FUZZ_ASSERT(a->status == b->status && a->connected_at == b->connected_at
                        && a->last_seen == b->last_seen && fuzz_same(a->info, b->info));
        } else if (a->type == EM_RPRES_LIMIT) {
            FUZZ_ASSERT(a->until == b->until && a->blocked == b->blocked);
        }
    }
    fuzz_pack(&m2, &buf2, &len2);
    FUZZ_ASSERT(len2 == len && memcmp(buf2, buf, len) == 0);
    free(buf2);
    em_rpres_free(&m2);
    free(buf);
    if (size > 0) {
        FUZZ_ASSERT(em_rpres_decode(in, size - 1, 64, 384, 512, &m3) != EM_OK);
    }
    rc = em_rpres_decode(in, size, m.n > 0 ? m.n - 1 : 0, 16, 16, &m3);
    FUZZ_ASSERT(rc == EM_OK || rc == EM_DECLINED);
    em_rpres_free(&m3);
    em_rpres_free(&m);
    return 0;
}
