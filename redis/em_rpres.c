/*
 * em_rpres.c - presence across hosts on the wire (em_rpres.h), with
 * msgpack-c.
 */
#include <stdlib.h>
#include <string.h>

#include "em_mpack.h"
#include "em_rmsg.h"
#include "em_rpres.h"

#define EM_RPRES_MAGIC "emitd-presence"
#define EM_RPRES_VERSION 1

void
em_rpres_out_init(em_rpres_out_t *o)
{
    msgpack_sbuffer_init(&o->sb);
    msgpack_packer_init(&o->pk, &o->sb, msgpack_sbuffer_write);
    o->n = 0;
}

static void
em_rpres_pack_bin(msgpack_packer *pk, em_str_t s)
{
    msgpack_pack_bin(pk, s.len);
    msgpack_pack_bin_body(pk, s.data, s.len);
}

static void
em_rpres_pack_str(msgpack_packer *pk, em_str_t s)
{
    msgpack_pack_str(pk, s.len);
    msgpack_pack_str_body(pk, s.data, s.len);
}

void
em_rpres_out_add(em_rpres_out_t *o, const em_rpres_ent_t *e)
{
    msgpack_packer *pk = &o->pk;

    if (e->type == EM_RPRES_USER) {
        msgpack_pack_array(pk, 7);
        msgpack_pack_uint8(pk, EM_RPRES_USER);
        em_rpres_pack_bin(pk, e->key);
        msgpack_pack_uint32(pk, e->count);
        msgpack_pack_int(pk, e->status);
        msgpack_pack_int64(pk, e->connected_at);
        msgpack_pack_int64(pk, e->last_seen);
        em_rpres_pack_bin(pk, e->info);
    } else if (e->type == EM_RPRES_LIMIT) {
        msgpack_pack_array(pk, 5);
        msgpack_pack_uint8(pk, EM_RPRES_LIMIT);
        em_rpres_pack_bin(pk, e->key);
        msgpack_pack_uint32(pk, e->count);
        msgpack_pack_int64(pk, e->until);
        msgpack_pack_int64(pk, e->blocked);
    } else {
        msgpack_pack_array(pk, 3);
        msgpack_pack_uint8(pk, EM_RPRES_ROOM);
        em_rpres_pack_bin(pk, e->key);
        msgpack_pack_uint32(pk, e->count);
    }
    o->n++;
}

size_t
em_rpres_out_size(const em_rpres_out_t *o)
{
    return o->sb.size;
}

int
em_rpres_out_finish(em_rpres_out_t *o, em_str_t uid, uint64_t seq, unsigned flags, em_str_t target,
                    char **msg, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer  pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 7);
    em_rpres_pack_str(&pk, (em_str_t) { EM_RPRES_MAGIC, sizeof(EM_RPRES_MAGIC) - 1 });
    msgpack_pack_uint8(&pk, EM_RPRES_VERSION);
    em_rpres_pack_str(&pk, uid);
    msgpack_pack_uint64(&pk, seq);
    msgpack_pack_unsigned_int(&pk, flags);
    em_rpres_pack_str(&pk, target);
    msgpack_pack_array(&pk, o->n);
    if (o->sb.size > 0) {
        msgpack_sbuffer_write(&sb, o->sb.data, o->sb.size);
    }
    msgpack_sbuffer_clear(&o->sb);
    o->n = 0;
    /* msgpack-c's sbuffer grows with realloc and stops writing when one fails */
    if (sb.data == NULL) {
        return EM_ERROR;
    }
    *len = sb.size;
    *msg = msgpack_sbuffer_release(&sb);
    return *msg != NULL ? EM_OK : EM_ERROR;
}

void
em_rpres_out_free(em_rpres_out_t *o)
{
    msgpack_sbuffer_destroy(&o->sb);
    o->n = 0;
}

static int
em_rpres_uint(const msgpack_object *o, uint64_t max, uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max) {
        return 0;
    }
    *out = o->via.u64;
    return 1;
}

/* One entry; EM_OK, EM_DECLINED (over a limit) or EM_ERROR. */
static int
em_rpres_entry(const msgpack_object *o, size_t max_key, size_t max_info, em_rpres_ent_t *e)
{
    const msgpack_object *a;
    uint64_t              type, count, status;

    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 3) {
        return EM_ERROR;
    }
    a = o->via.array.ptr;
    memset(e, 0, sizeof(*e));
    e->info = (em_str_t) { "", 0 };
    if (!em_rpres_uint(&a[0], EM_RPRES_LIMIT, &type) || !em_mp_bytes(&a[1], &e->key)
        || !em_rpres_uint(&a[2], UINT32_MAX, &count)
        || o->via.array.size != (type == EM_RPRES_USER ? 7u : type == EM_RPRES_LIMIT ? 5u : 3u)) {
        return EM_ERROR;
    }
    if (type == EM_RPRES_LIMIT
        && (!em_mp_int(&a[3], &e->until) || !em_mp_int(&a[4], &e->blocked))) {
        return EM_ERROR;
    }
    e->type = (int) type;
    e->count = (uint32_t) count;
    if (type == EM_RPRES_USER
        && (!em_rpres_uint(&a[3], EM_RPRES_UNREPORTED, &status)
            || !em_mp_int(&a[4], &e->connected_at) || !em_mp_int(&a[5], &e->last_seen)
            || !em_mp_bytes(&a[6], &e->info))) {
        return EM_ERROR;
    }
    if (type == EM_RPRES_USER) {
        e->status = (int) status;
    }
    return e->key.len > max_key || e->info.len > max_info ? EM_DECLINED : EM_OK;
}

int
em_rpres_decode(const char *buf, size_t len, size_t max_entries, size_t max_key, size_t max_info,
                em_rpres_t *m)
{
    msgpack_unpacked      up;
    const msgpack_object *a, *list;
    em_str_t              magic;
    uint64_t              version, seq, flags;
    size_t                end = 0, off = 0;
    int                   rc;

    memset(m, 0, sizeof(*m));
    /* the outer array, the list, an entry: 3 deep */
    if ((rc = em_rmsg_scan(buf, len, 3, &end)) != EM_OK || end != len) {
        return EM_ERROR;
    }
    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len) {
        msgpack_unpacked_destroy(&up);
        return EM_ERROR;
    }
    rc = EM_ERROR;
    if (up.data.type != MSGPACK_OBJECT_ARRAY || up.data.via.array.size != 7) {
        goto done;
    }
    a = up.data.via.array.ptr;
    list = &a[6];
    if (!em_mp_bytes(&a[0], &magic) || magic.len != sizeof(EM_RPRES_MAGIC) - 1
        || memcmp(magic.data, EM_RPRES_MAGIC, magic.len) != 0
        || !em_rpres_uint(&a[1], UINT32_MAX, &version) || version != EM_RPRES_VERSION
        || a[2].type != MSGPACK_OBJECT_STR || !em_mp_bytes(&a[2], &m->uid)
        || !em_rpres_uint(&a[3], UINT64_MAX, &seq) || !em_rpres_uint(&a[4], 0xff, &flags)
        || a[5].type != MSGPACK_OBJECT_STR || !em_mp_bytes(&a[5], &m->target)
        || list->type != MSGPACK_OBJECT_ARRAY) {
        goto done;
    }
    if (m->uid.len > 64 || m->target.len > 64 || list->via.array.size > max_entries) {
        rc = EM_DECLINED;
        goto done;
    }
    m->seq = seq;
    m->flags = (unsigned) flags;
    /* the slices point into buf, not into the unpacker's zone: msgpack-c
     * references a str or bin in the buffer it was given */
    if (list->via.array.size > 0
        && (m->v = calloc(list->via.array.size, sizeof(*m->v))) == NULL) {
        goto done;
    }
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        if ((rc = em_rpres_entry(&list->via.array.ptr[i], max_key, max_info, &m->v[i])) != EM_OK) {
            goto done;
        }
    }
    m->n = list->via.array.size;
    rc = EM_OK;
done:
    msgpack_unpacked_destroy(&up);
    if (rc != EM_OK) {
        em_rpres_free(m);
    }
    return rc;
}

void
em_rpres_free(em_rpres_t *m)
{
    free(m->v);
    memset(m, 0, sizeof(*m));
}
