/*
 * em_mpack.h - reading msgpack-c's objects, for the decoders of emitd's
 * own messages between hosts (em_rpres.c, em_rstore.c).
 */
#ifndef EM_MPACK_H
#define EM_MPACK_H

#include <msgpack.h>
#include <stdint.h>

#include "em_core.h"

/* A bin or a str, as a slice of the buffer msgpack-c read it from. */
static inline int
em_mp_bytes(const msgpack_object *o, em_str_t *out)
{
    if (o->type == MSGPACK_OBJECT_BIN) {
        *out = (em_str_t) { o->via.bin.ptr, o->via.bin.size };
    } else if (o->type == MSGPACK_OBJECT_STR) {
        *out = (em_str_t) { o->via.str.ptr, o->via.str.size };
    } else {
        return 0;
    }
    if (out->data == NULL) {
        out->data = "";
    }
    return 1;
}

/* An integer that fits int64_t. */
static inline int
em_mp_int(const msgpack_object *o, int64_t *out)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *out = (int64_t) o->via.u64;
    } else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
    } else {
        return 0;
    }
    return 1;
}

#endif
