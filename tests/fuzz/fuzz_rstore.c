/*
 * fuzz_rstore.c - libFuzzer harness for the store writes emitd's brokers
 * send each other through Redis (redis/em_rstore.c).
 *
 * When the input is accepted: the slices lie inside it, the values are in
 * range, the structure check agrees, no proper prefix is accepted, and the
 * write packed again decodes to the same values and packs to the same
 * bytes once more; tighter limits give EM_DECLINED, never EM_ERROR.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "em_rmsg.h"
#include "em_rstore.h"
#include "fuzz_slices.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char    *in = (const char *) data;
    em_rstore_op_t op, op2;
    em_str_t       uid, uid2;
    size_t         end, len, len2;
    char          *buf, *buf2;
    int            rc;

    if (em_rstore_decode(in, size, 200, 2048, &uid, &op) != EM_OK) {
        return 0;
    }
    FUZZ_ASSERT(em_rmsg_scan(in, size, 1, &end) == EM_OK && end == size);
    FUZZ_ASSERT(fuzz_inside(uid, data, size) && fuzz_inside(op.key, data, size)
                && fuzz_inside(op.value, data, size));
    FUZZ_ASSERT(op.op >= EM_RSTORE_SET && op.op <= EM_RSTORE_PUSH && op.ttl >= 0);
    FUZZ_ASSERT(op.key.len >= 1 && op.key.len <= 200 && op.value.len <= 2048 && uid.len <= 64);
    FUZZ_ASSERT(op.op != EM_RSTORE_PUSH || op.cap > 0);
    FUZZ_ASSERT(em_rstore_encode(uid, &op, &buf, &len) == EM_OK);
    FUZZ_ASSERT(em_rstore_decode(buf, len, 200, 2048, &uid2, &op2) == EM_OK);
    FUZZ_ASSERT(fuzz_same(uid, uid2) && op.op == op2.op && fuzz_same(op.key, op2.key)
                && fuzz_same(op.value, op2.value) && op.num == op2.num && op.ttl == op2.ttl
                && op.cap == op2.cap && op.written == op2.written);
    FUZZ_ASSERT(em_rstore_encode(uid2, &op2, &buf2, &len2) == EM_OK);
    FUZZ_ASSERT(len2 == len && memcmp(buf2, buf, len) == 0);
    free(buf2);
    free(buf);
    if (size > 0) {
        FUZZ_ASSERT(em_rstore_decode(in, size - 1, 200, 2048, &uid2, &op2) != EM_OK);
    }
    rc = em_rstore_decode(in, size, op.key.len - 1, op.value.len, &uid2, &op2);
    FUZZ_ASSERT(rc == EM_DECLINED);
    return 0;
}
