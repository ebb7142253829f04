/*
 * em_rstore.h - the scripts' store across hosts: each write to emitd.store
 * that one host's scripts make, as its broker publishes it on
 * <key>-store# for the other hosts' brokers to make too (emitd's own
 * format, MessagePack):
 *
 *     ["emitd-store", 1, uid, op, key, value, num, ttl, cap, written]
 *
 * op is EM_RSTORE_*; key and value are bin (value: the JSON text of a set
 * or a push, else empty); num is an incr's amount; ttl is in ms from when
 * it is made (0: none); cap a push's; written the writer's clock (ms), by
 * which the last set or delete of a key wins.
 */
#ifndef EM_RSTORE_H
#define EM_RSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "em_core.h"

#define EM_RSTORE_SET  1
#define EM_RSTORE_DEL  2
#define EM_RSTORE_INCR 3
#define EM_RSTORE_PUSH 4

typedef struct {
    int      op;                /* EM_RSTORE_* */
    em_str_t key;
    em_str_t value;
    int64_t  num;
    int64_t  ttl;
    uint32_t cap;
    int64_t  written;
} em_rstore_op_t;

/* The message (malloc'd *msg): EM_OK, or EM_ERROR (out of memory). */
int em_rstore_encode(em_str_t uid, const em_rstore_op_t *op, char **msg, size_t *len);
/* EM_OK (the slices point into buf); EM_DECLINED for a key over max_key
 * or a value over max_value bytes; EM_ERROR when it is not such a message
 * (an unknown op, a negative ttl or cap 0 for a push among them). */
int em_rstore_decode(const char *buf, size_t len, size_t max_key, size_t max_value, em_str_t *uid,
                     em_rstore_op_t *op);

#endif
