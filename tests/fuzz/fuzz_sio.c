/*
 * fuzz_sio.c - libFuzzer harness for the Socket.IO packet header codec.
 *
 * Checks the per-type rules on every accepted packet, that its slices lie
 * inside the input, and that encoding the decoded header in front of the
 * same data decodes to the same packet.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "em_sio.h"

#define FUZZ_ASSERT(c) do { if (!(c)) { abort(); } } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char     *buf = (const char *) data;
    em_sio_packet_t pkt, back;
    char           *enc;
    ssize_t         hlen;
    size_t          cap;

    (void) em_sio_valid_nsp((em_str_t) { buf, size });

    if (em_sio_decode(buf, size, &pkt) != EM_OK) {
        return 0;
    }

    FUZZ_ASSERT(pkt.type <= EM_SIO_BINARY_ACK);
    FUZZ_ASSERT(pkt.nattach <= EM_SIO_MAX_ATTACHMENTS);
    FUZZ_ASSERT(pkt.nattach == 0 || pkt.type == EM_SIO_BINARY_EVENT
                || pkt.type == EM_SIO_BINARY_ACK);
    FUZZ_ASSERT(pkt.id == EM_SIO_NO_ID || (pkt.id >= 0 && pkt.id <= INT64_C(9007199254740991)));
    FUZZ_ASSERT(em_sio_valid_nsp(pkt.nsp));
    FUZZ_ASSERT(em_str_eq(pkt.nsp, "/")
                || (pkt.nsp.data > buf && pkt.nsp.data + pkt.nsp.len <= buf + size));
    FUZZ_ASSERT(pkt.data.data >= buf && pkt.data.data + pkt.data.len == buf + size);
    FUZZ_ASSERT(pkt.data.len == 0 || pkt.data.data[0] == '[' || pkt.data.data[0] == '{');

    switch (pkt.type) {
    case EM_SIO_CONNECT:
        FUZZ_ASSERT(pkt.id == EM_SIO_NO_ID && (pkt.data.len == 0 || pkt.data.data[0] == '{'));
        break;
    case EM_SIO_DISCONNECT:
        FUZZ_ASSERT(pkt.id == EM_SIO_NO_ID && pkt.data.len == 0);
        break;
    case EM_SIO_EVENT:
    case EM_SIO_BINARY_EVENT:
        FUZZ_ASSERT(pkt.data.len > 0 && pkt.data.data[0] == '[');
        break;
    case EM_SIO_ACK:
    case EM_SIO_BINARY_ACK:
        FUZZ_ASSERT(pkt.id >= 0 && pkt.data.len > 0 && pkt.data.data[0] == '[');
        break;
    case EM_SIO_CONNECT_ERROR:
        FUZZ_ASSERT(pkt.id == EM_SIO_NO_ID && pkt.data.len > 0);
        break;
    }

    /* Re-encode: a header of at most 32 + nsp.len bytes, then the data. */
    cap = 32 + pkt.nsp.len;
    enc = malloc(cap + pkt.data.len);
    FUZZ_ASSERT(enc != NULL);
    hlen = em_sio_encode_header(pkt.type, pkt.nattach, pkt.nsp, pkt.id, pkt.data.len > 0,
                                enc, cap);
    FUZZ_ASSERT(hlen > 0 && (size_t) hlen <= cap);
    /* The canonical header is never longer than the one that was sent. */
    FUZZ_ASSERT((size_t) hlen <= size - pkt.data.len);
    memcpy(enc + hlen, pkt.data.data, pkt.data.len);
    FUZZ_ASSERT(em_sio_decode(enc, (size_t) hlen + pkt.data.len, &back) == EM_OK);
    FUZZ_ASSERT(back.type == pkt.type && back.nattach == pkt.nattach && back.id == pkt.id);
    FUZZ_ASSERT(back.nsp.len == pkt.nsp.len && memcmp(back.nsp.data, pkt.nsp.data, pkt.nsp.len) == 0);
    FUZZ_ASSERT(back.data.len == pkt.data.len);
    free(enc);
    return 0;
}
