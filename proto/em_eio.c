/*
 * em_eio.c - Engine.IO v4 packets, polling payloads and base64.
 */
#include <stdio.h>
#include <string.h>

#include "em_eio.h"

static const char em_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of each base64 character plus one; 0 for bytes outside the alphabet
 * (including '='). */
static const unsigned char em_b64_value[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,
    ['G'] = 7,  ['H'] = 8,  ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12,
    ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
    ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
    ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
    ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54,
    ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60,
    ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

int
em_eio_decode(const char *buf, size_t len, em_eio_packet_t *pkt)
{
    if (len == 0 || buf[0] < '0' || buf[0] > '6') {
        return EM_ERROR;
    }
    pkt->type = (em_eio_type_t) (buf[0] - '0');
    pkt->binary = 0;
    pkt->base64 = 0;
    pkt->data = (em_str_t) { buf + 1, len - 1 };
    return EM_OK;
}

/*
 * Check base64 text and return the number of bytes it decodes to, or -1.
 * Padding is optional, but when present it must complete a 4-character
 * group; the unused low bits of the last character must be zero, so that
 * every byte string has exactly one accepted padded and one unpadded form.
 */
static ssize_t
em_b64_check(const char *in, size_t n)
{
    size_t i, rem;

    if (n > 0 && in[n - 1] == '=') {
        if (n % 4 != 0) {
            return -1;
        }
        n--;
        if (in[n - 1] == '=') {
            n--;
        }
    }
    for (i = 0; i < n; i++) {
        if (em_b64_value[(unsigned char) in[i]] == 0) {
            return -1;
        }
    }
    rem = n % 4;
    if (rem == 1) {
        return -1;
    }
    if (rem == 2 && ((em_b64_value[(unsigned char) in[n - 1]] - 1) & 0x0f) != 0) {
        return -1;
    }
    if (rem == 3 && ((em_b64_value[(unsigned char) in[n - 1]] - 1) & 0x03) != 0) {
        return -1;
    }
    return (ssize_t) (n / 4 * 3 + (rem ? rem - 1 : 0));
}

int
em_eio_payload_next(const char *body, size_t len, size_t *pos, em_eio_packet_t *pkt)
{
    const char *rec, *sep;
    size_t      n;

    if (*pos > len) {
        return EM_DECLINED;
    }
    if (*pos == len) {
        /* An empty body, or a separator at the very end, is an empty record. */
        return (len == 0 || body[len - 1] == EM_EIO_SEPARATOR) ? EM_ERROR : EM_DECLINED;
    }

    rec = body + *pos;
    n = len - *pos;
    sep = memchr(rec, EM_EIO_SEPARATOR, n);
    if (sep != NULL) {
        n = (size_t) (sep - rec);
        *pos += n + 1;
    } else {
        *pos = len;
    }

    if (n > 0 && rec[0] == 'b') {
        if (em_b64_check(rec + 1, n - 1) < 0) {
            return EM_ERROR;
        }
        pkt->type = EM_EIO_MESSAGE;
        pkt->binary = 1;
        pkt->base64 = 1;
        pkt->data = (em_str_t) { rec + 1, n - 1 };
        return EM_OK;
    }
    return em_eio_decode(rec, n, pkt);
}

size_t
em_eio_b64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

size_t
em_eio_b64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i, o = 0;

    for (i = 0; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];

        out[o++] = em_b64_alphabet[v >> 18];
        out[o++] = em_b64_alphabet[(v >> 12) & 0x3f];
        out[o++] = em_b64_alphabet[(v >> 6) & 0x3f];
        out[o++] = em_b64_alphabet[v & 0x3f];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t) in[i] << 16;

        out[o++] = em_b64_alphabet[v >> 18];
        out[o++] = em_b64_alphabet[(v >> 12) & 0x3f];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8;

        out[o++] = em_b64_alphabet[v >> 18];
        out[o++] = em_b64_alphabet[(v >> 12) & 0x3f];
        out[o++] = em_b64_alphabet[(v >> 6) & 0x3f];
        out[o++] = '=';
    }
    return o;
}

ssize_t
em_eio_b64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    ssize_t  total = em_b64_check(in, n);
    size_t   i, o = 0, full;
    uint32_t v;

    if (total < 0 || (size_t) total > cap) {
        return -1;
    }

    /* em_b64_check() accepted the text, so the characters before any
     * padding are all in the alphabet. */
    full = (size_t) total / 3 * 4;
    for (i = 0; i < full; i += 4) {
        v = (uint32_t) (em_b64_value[(unsigned char) in[i]] - 1) << 18
            | (uint32_t) (em_b64_value[(unsigned char) in[i + 1]] - 1) << 12
            | (uint32_t) (em_b64_value[(unsigned char) in[i + 2]] - 1) << 6
            | (uint32_t) (em_b64_value[(unsigned char) in[i + 3]] - 1);
        out[o++] = (unsigned char) (v >> 16);
        out[o++] = (unsigned char) (v >> 8);
        out[o++] = (unsigned char) v;
    }
    switch ((size_t) total % 3) {
    case 1:
        v = (uint32_t) (em_b64_value[(unsigned char) in[i]] - 1) << 18
            | (uint32_t) (em_b64_value[(unsigned char) in[i + 1]] - 1) << 12;
        out[o++] = (unsigned char) (v >> 16);
        break;
    case 2:
        v = (uint32_t) (em_b64_value[(unsigned char) in[i]] - 1) << 18
            | (uint32_t) (em_b64_value[(unsigned char) in[i + 1]] - 1) << 12
            | (uint32_t) (em_b64_value[(unsigned char) in[i + 2]] - 1) << 6;
        out[o++] = (unsigned char) (v >> 16);
        out[o++] = (unsigned char) (v >> 8);
        break;
    default:
        break;
    }
    return (ssize_t) o;
}

/* True when s can go between JSON quotes as it is. */
static int
em_eio_json_safe(const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char) *s;

        if (c < 0x20 || c == '"' || c == '\\') {
            return 0;
        }
    }
    return 1;
}

ssize_t
em_eio_encode_open(const em_eio_handshake_t *hs, char *out, size_t cap)
{
    int n;

    if (hs->sid == NULL || !em_eio_json_safe(hs->sid)) {
        return -1;
    }
    n = snprintf(out, cap,
                 "0{\"sid\":\"%s\",\"upgrades\":[%s],\"pingInterval\":%u,"
                 "\"pingTimeout\":%u,\"maxPayload\":%zu}",
                 hs->sid, hs->upgrade_websocket ? "\"websocket\"" : "",
                 hs->ping_interval, hs->ping_timeout, hs->max_payload);
    if (n < 0 || (size_t) n >= cap) {
        return -1;
    }
    return n;
}
