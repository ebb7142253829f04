/*
 * fuzz_rmsg.c - libFuzzer harness for the Socket.IO Redis adapter's
 * broadcasts (redis/em_rmsg.c).
 *
 * The input is decoded as a request of a broadcast with acks: when it is
 * one, its slices lie inside the input and an ack of its data encodes.
 * Else it is decoded as a message from Redis. When it is accepted, every
 * slice lies inside the input, and encoding what was decoded and decoding
 * that gives the same uid, namespace, attachments, rooms, except-rooms and
 * volatile flag; the data text is stable from then on (an integral float
 * becomes an integer once, as JavaScript numbers are packed: "2.0" -> 2).
 * The structure check agrees: a decoded message scans to its own length,
 * and no proper prefix of it decodes. Read as the data field of a Redis
 * Streams adapter entry (JSON, or base64 of MessagePack), what is accepted
 * packs again and reads the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "em_rmsg.h"
#include "fuzz_slices.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const em_rmsg_limits_t lim = { 20, 64, 64, 512 };
    em_rmsg_t                     m, m2;
    size_t                        end;
    char                         *buf;
    size_t                        len;

    /* As a stream entry's data field: what is read packs again and reads
     * the same. */
    if (em_rmsg_decode_stream((em_str_t) { "u", 1 }, (em_str_t) { "/", 1 }, (em_str_t) { "3", 1 },
                              (em_str_t) { (const char *) data, size }, &lim, &m) == EM_OK) {
        em_rmsg_out_t so = { m.uid, m.nsp, { m.data, m.data_len }, m.att, m.natt, m.rooms, m.nrooms,
                             m.except, m.nexcept, m.vol, 0 };
        FUZZ_ASSERT(em_rmsg_encode_stream(&so, lim.max_depth + 1, &buf, &len) == EM_OK);
        FUZZ_ASSERT(em_rmsg_decode_stream(m.uid, m.nsp, (em_str_t) { "3", 1 }, (em_str_t) { buf, len },
                                          &lim, &m2) == EM_OK);
        FUZZ_ASSERT(fuzz_same(m2.nsp, m.nsp) && m2.vol == m.vol && m2.natt == m.natt
                    && m2.nrooms == m.nrooms && m2.nexcept == m.nexcept);
        for (size_t i = 0; i < m.nrooms; i++) {
            FUZZ_ASSERT(fuzz_same(m2.rooms[i], m.rooms[i]));
        }
        for (size_t i = 0; i < m.natt; i++) {
            FUZZ_ASSERT(fuzz_same(m2.att[i], m.att[i]));
        }
        em_rmsg_free(&m2);
        free(buf);
        em_rmsg_free(&m);
    }
    if (em_rmsg_decode_request((const char *) data, size, &lim, &m) == EM_OK) {
        /* A broadcast with acks: its slices lie in the input, and its ack encodes. */
        FUZZ_ASSERT(fuzz_inside(m.request_id, data, size) && fuzz_inside(m.uid, data, size));
        for (size_t i = 0; i < m.natt; i++) {
            FUZZ_ASSERT(fuzz_inside(m.att[i], data, size));
        }
        FUZZ_ASSERT(m.timeout >= 0 && m.timeout <= 3600000);
        json_t *arg = json_loadb(m.data, m.data_len, JSON_ALLOW_NUL, NULL);
        FUZZ_ASSERT(arg != NULL);
        FUZZ_ASSERT(em_rmsg_encode_ack(m.request_id, arg, &buf, &len) == EM_OK);
        free(buf);
        json_decref(arg);
        em_rmsg_free(&m);
        return 0;
    }
    if (em_rmsg_decode((const char *) data, size, &lim, &m) != EM_OK) {
        return 0;
    }
    FUZZ_ASSERT(em_rmsg_scan((const char *) data, size, EM_RMSG_DEPTH_MAX, &end) == EM_OK);
    FUZZ_ASSERT(end == size);
    FUZZ_ASSERT(fuzz_inside(m.uid, data, size));
    for (size_t i = 0; i < m.natt; i++) {
        FUZZ_ASSERT(fuzz_inside(m.att[i], data, size));
    }
    for (size_t i = 0; i < m.nrooms; i++) {
        FUZZ_ASSERT(fuzz_inside(m.rooms[i], data, size));
    }
    em_rmsg_out_t o = { m.uid, m.nsp, { m.data, m.data_len }, m.att, m.natt, m.rooms, m.nrooms,
                        m.except, m.nexcept, m.vol, 0 };
    FUZZ_ASSERT(em_rmsg_encode(&o, lim.max_depth + 1, &buf, &len) == EM_OK);
    FUZZ_ASSERT(em_rmsg_decode(buf, len, &lim, &m2) == EM_OK);
    {
        /* Once more: the same bytes, the same text. */
        em_rmsg_out_t o2 = { m2.uid, m2.nsp, { m2.data, m2.data_len }, m2.att, m2.natt, m2.rooms,
                             m2.nrooms, m2.except, m2.nexcept, m2.vol, 0 };
        char         *buf2;
        size_t        len2;
        em_rmsg_t     m3;
        FUZZ_ASSERT(em_rmsg_encode(&o2, lim.max_depth + 1, &buf2, &len2) == EM_OK);
        FUZZ_ASSERT(len2 == len && memcmp(buf2, buf, len) == 0);
        FUZZ_ASSERT(em_rmsg_decode(buf2, len2, &lim, &m3) == EM_OK);
        FUZZ_ASSERT(m3.data_len == m2.data_len && memcmp(m3.data, m2.data, m2.data_len) == 0);
        em_rmsg_free(&m3);
        free(buf2);
    }
    FUZZ_ASSERT(fuzz_same(m2.uid, m.uid) && fuzz_same(m2.nsp, m.nsp) && m2.vol == m.vol);
    FUZZ_ASSERT(m2.natt == m.natt && m2.nrooms == m.nrooms && m2.nexcept == m.nexcept);
    for (size_t i = 0; i < m.natt; i++) {
        FUZZ_ASSERT(fuzz_same(m2.att[i], m.att[i]));
    }
    for (size_t i = 0; i < m.nrooms; i++) {
        FUZZ_ASSERT(fuzz_same(m2.rooms[i], m.rooms[i]));
    }
    for (size_t i = 0; i < m.nexcept; i++) {
        FUZZ_ASSERT(fuzz_same(m2.except[i], m.except[i]));
    }
    em_rmsg_free(&m2);
    free(buf);
    if (size > 0) {
        FUZZ_ASSERT(em_rmsg_decode((const char *) data, size - 1, &lim, &m2) != EM_OK);
    }
    em_rmsg_free(&m);
    return 0;
}
