/*
 * fuzz_eio.c - libFuzzer harness for Engine.IO packets, polling payloads and
 * base64.
 *
 * Checks that slices lie inside the input, that payload iteration always
 * advances and ends, and that base64 is a bijection between byte strings and
 * the accepted (canonical) texts: decode(encode(x)) == x and
 * encode(decode(t)) == t with its padding restored.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "em_eio.h"

#define FUZZ_ASSERT(c) do { if (!(c)) { abort(); } } while (0)

static void
check_inside(em_str_t s, const char *lo, const char *hi)
{
    FUZZ_ASSERT(s.len == 0 || s.data != NULL);
    if (s.data != NULL) {
        FUZZ_ASSERT(s.data >= lo && s.data + s.len <= hi);
    }
}

/* t decoded to out[0..n): re-encoding gives t back, padded. */
static void
check_b64_canonical(const char *t, size_t tlen, const unsigned char *out, size_t n)
{
    size_t enclen = em_eio_b64_encoded_len(n);
    char  *enc = malloc(enclen + 1);
    size_t i;

    FUZZ_ASSERT(enc != NULL);
    FUZZ_ASSERT(em_eio_b64_encode(out, n, enc) == enclen);
    FUZZ_ASSERT(tlen <= enclen && enclen - tlen <= 2);
    FUZZ_ASSERT(memcmp(enc, t, tlen) == 0);
    for (i = tlen; i < enclen; i++) {
        FUZZ_ASSERT(enc[i] == '=');
    }
    free(enc);
}

static void
check_b64_text(const char *t, size_t tlen)
{
    unsigned char *out = malloc(tlen + 1);
    ssize_t        n = em_eio_b64_decode(t, tlen, out, tlen);

    FUZZ_ASSERT(out != NULL);
    if (n >= 0) {
        FUZZ_ASSERT((size_t) n <= tlen / 4 * 3 + 2);
        check_b64_canonical(t, tlen, out, (size_t) n);
        /* Too small an output buffer is refused, never overrun. */
        if (n > 0) {
            FUZZ_ASSERT(em_eio_b64_decode(t, tlen, out, (size_t) n - 1) == -1);
        }
    }
    free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char     *buf = (const char *) data;
    em_eio_packet_t pkt;
    size_t          pos = 0, last = 0, records = 0;
    int             rc;

    if (em_eio_decode(buf, size, &pkt) == EM_OK) {
        FUZZ_ASSERT(pkt.type <= EM_EIO_NOOP && !pkt.binary && !pkt.base64);
        FUZZ_ASSERT(pkt.data.data == buf + 1 && pkt.data.len == size - 1);
    }

    while ((rc = em_eio_payload_next(buf, size, &pos, &pkt)) == EM_OK) {
        FUZZ_ASSERT(pos > last && pos <= size);
        last = pos;
        FUZZ_ASSERT(++records <= size);
        check_inside(pkt.data, buf, buf + size);
        FUZZ_ASSERT(memchr(pkt.data.data, EM_EIO_SEPARATOR, pkt.data.len) == NULL);
        if (pkt.binary) {
            unsigned char *out = malloc(pkt.data.len + 1);
            ssize_t        n;

            FUZZ_ASSERT(out != NULL && pkt.base64 && pkt.type == EM_EIO_MESSAGE);
            /* payload_next() accepted the base64, so decoding succeeds. */
            n = em_eio_b64_decode(pkt.data.data, pkt.data.len, out, pkt.data.len);
            FUZZ_ASSERT(n >= 0);
            check_b64_canonical(pkt.data.data, pkt.data.len, out, (size_t) n);
            free(out);
        }
    }
    FUZZ_ASSERT(rc == EM_DECLINED || rc == EM_ERROR);

    /* The whole input as base64 text, and as bytes to encode. */
    check_b64_text(buf, size);
    {
        size_t         enclen = em_eio_b64_encoded_len(size);
        char          *enc = malloc(enclen + 1);
        unsigned char *dec = malloc(size + 1);

        FUZZ_ASSERT(enc != NULL && dec != NULL);
        FUZZ_ASSERT(em_eio_b64_encode(data, size, enc) == enclen);
        FUZZ_ASSERT(em_eio_b64_decode(enc, enclen, dec, size) == (ssize_t) size);
        FUZZ_ASSERT(size == 0 || memcmp(dec, data, size) == 0);
        free(enc);
        free(dec);
    }

    /* The OPEN packet with the input as sid: refused or well-formed. */
    {
        char               sid[64], open[256];
        size_t             n = size < sizeof(sid) - 1 ? size : sizeof(sid) - 1;
        em_eio_handshake_t hs = { sid, (int) (size & 1), 25000, 20000, 1000000 };
        ssize_t            len;

        memcpy(sid, data, n);
        sid[n] = '\0';
        len = em_eio_encode_open(&hs, open, sizeof(open));
        FUZZ_ASSERT(len == -1 || (len > 2 && (size_t) len < sizeof(open)
                                  && open[len] == '\0' && memcmp(open, "0{", 2) == 0
                                  && open[len - 1] == '}'));
        if (len > 0) {
            FUZZ_ASSERT(strchr(sid, '"') == NULL && strchr(sid, '\\') == NULL);
        }
    }
    return 0;
}
