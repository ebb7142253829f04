/*
 * em_rstore.c - the scripts' store writes between hosts on the wire
 * (em_rstore.h), with msgpack-c.
 */
#include <msgpack.h>
#include <string.h>

#include "em_mpack.h"
#include "em_rmsg.h"
#include "em_rstore.h"

#define EM_RSTORE_MAGIC   "emitd-store"
#define EM_RSTORE_VERSION 1

static void
em_rstore_pack_raw(msgpack_packer *pk, em_str_t s, int bin)
{
    if (bin) {
        msgpack_pack_bin(pk, s.len);
        msgpack_pack_bin_body(pk, s.data, s.len);
    } else {
        msgpack_pack_str(pk, s.len);
        msgpack_pack_str_body(pk, s.data, s.len);
    }
}

int
em_rstore_encode(em_str_t uid, const em_rstore_op_t *op, char **msg, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer  pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 10);
    em_rstore_pack_raw(&pk, (em_str_t) { EM_RSTORE_MAGIC, sizeof(EM_RSTORE_MAGIC) - 1 }, 0);
    msgpack_pack_uint8(&pk, EM_RSTORE_VERSION);
    em_rstore_pack_raw(&pk, uid, 0);
    msgpack_pack_uint8(&pk, (uint8_t) op->op);
    em_rstore_pack_raw(&pk, op->key, 1);
    em_rstore_pack_raw(&pk, op->value, 1);
    msgpack_pack_int64(&pk, op->num);
    msgpack_pack_int64(&pk, op->ttl);
    msgpack_pack_uint32(&pk, op->cap);
    msgpack_pack_int64(&pk, op->written);
    if (sb.data == NULL) {
        return EM_ERROR;
    }
    *len = sb.size;
    *msg = msgpack_sbuffer_release(&sb);
    return *msg != NULL ? EM_OK : EM_ERROR;
}

/* A bin or a str, as the field must be. */
static int
em_rstore_raw(const msgpack_object *o, msgpack_object_type type, em_str_t *out)
{
    return o->type == type && em_mp_bytes(o, out);
}

int
em_rstore_decode(const char *buf, size_t len, size_t max_key, size_t max_value, em_str_t *uid,
                 em_rstore_op_t *op)
{
    msgpack_unpacked      up;
    const msgpack_object *a;
    em_str_t              magic;
    int64_t               version, kind, cap;
    size_t                end = 0, off = 0;
    int                   rc = EM_ERROR;

    memset(op, 0, sizeof(*op));
    /* one flat array: nothing in it nests */
    if (em_rmsg_scan(buf, len, 1, &end) != EM_OK || end != len) {
        return EM_ERROR;
    }
    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len) {
        msgpack_unpacked_destroy(&up);
        return EM_ERROR;
    }
    if (up.data.type != MSGPACK_OBJECT_ARRAY || up.data.via.array.size != 10) {
        goto done;
    }
    a = up.data.via.array.ptr;
    if (!em_rstore_raw(&a[0], MSGPACK_OBJECT_STR, &magic) || magic.len != sizeof(EM_RSTORE_MAGIC) - 1
        || memcmp(magic.data, EM_RSTORE_MAGIC, magic.len) != 0 || !em_mp_int(&a[1], &version)
        || version != EM_RSTORE_VERSION || !em_rstore_raw(&a[2], MSGPACK_OBJECT_STR, uid)
        || !em_mp_int(&a[3], &kind) || kind < EM_RSTORE_SET || kind > EM_RSTORE_PUSH
        || !em_rstore_raw(&a[4], MSGPACK_OBJECT_BIN, &op->key)
        || !em_rstore_raw(&a[5], MSGPACK_OBJECT_BIN, &op->value) || !em_mp_int(&a[6], &op->num)
        || !em_mp_int(&a[7], &op->ttl) || op->ttl < 0 || !em_mp_int(&a[8], &cap) || cap < 0
        || cap > UINT32_MAX || (kind == EM_RSTORE_PUSH && cap == 0)
        || !em_mp_int(&a[9], &op->written) || op->key.len == 0 || uid->len > 64) {
        goto done;
    }
    op->op = (int) kind;
    op->cap = (uint32_t) cap;
    rc = op->key.len > max_key || op->value.len > max_value ? EM_DECLINED : EM_OK;
done:
    msgpack_unpacked_destroy(&up);
    return rc;
}
