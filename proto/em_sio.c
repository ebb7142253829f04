/*
 * em_sio.c - Socket.IO v5 packet header codec.
 *
 * Only the header is parsed here; the JSON data is sliced out and left to the
 * caller's JSON parser.
 */
#include <string.h>

#include "em_sio.h"

#define EM_SIO_MAX_ID   INT64_C(9007199254740991)   /* 2^53 - 1 */
#define EM_SIO_MAX_NSP  256

static inline int
em_sio_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int
em_sio_valid_nsp(em_str_t nsp)
{
    size_t i;

    if (nsp.len == 0 || nsp.len > EM_SIO_MAX_NSP || nsp.data[0] != '/') {
        return 0;
    }
    for (i = 1; i < nsp.len; i++) {
        unsigned char c = (unsigned char) nsp.data[i];

        if (c < 0x20 || c == 0x7f || c == ',') {
            return 0;
        }
    }
    return 1;
}

int
em_sio_decode(const char *buf, size_t len, em_sio_packet_t *pkt)
{
    size_t  p = 1;
    int64_t id = EM_SIO_NO_ID;
    char    first;

    if (len == 0 || buf[0] < '0' || buf[0] > '6') {
        return EM_ERROR;
    }
    pkt->type = (em_sio_type_t) (buf[0] - '0');
    pkt->nattach = 0;
    pkt->nsp = EM_STR("/");

    /* <attachments>- : binary types only, and always present there. */
    if (pkt->type == EM_SIO_BINARY_EVENT || pkt->type == EM_SIO_BINARY_ACK) {
        unsigned n = 0;
        size_t   start = p;

        while (p < len && em_sio_is_digit(buf[p])) {
            n = n * 10 + (unsigned) (buf[p] - '0');
            if (n > EM_SIO_MAX_ATTACHMENTS) {
                return EM_ERROR;
            }
            p++;
        }
        if (p == start || p == len || buf[p] != '-') {
            return EM_ERROR;
        }
        pkt->nattach = n;
        p++;
    }

    /* <namespace>, : up to the first ',' or to the end of the packet. */
    if (p < len && buf[p] == '/') {
        const char *comma = memchr(buf + p, ',', len - p);
        size_t      end = comma != NULL ? (size_t) (comma - buf) : len;

        pkt->nsp = (em_str_t) { buf + p, end - p };
        if (!em_sio_valid_nsp(pkt->nsp)) {
            return EM_ERROR;
        }
        p = comma != NULL ? end + 1 : len;
    }

    /* <ack id> : digits right before the data. */
    if (p < len && em_sio_is_digit(buf[p])) {
        id = 0;
        do {
            id = id * 10 + (buf[p] - '0');
            if (id > EM_SIO_MAX_ID) {
                return EM_ERROR;
            }
            p++;
        } while (p < len && em_sio_is_digit(buf[p]));
    }
    pkt->id = id;

    /* first is '\0' for "no data"; data that starts with a NUL byte is
     * refused here, so the two never mix. */
    pkt->data = (em_str_t) { buf + p, len - p };
    first = p < len ? buf[p] : '\0';
    if (p < len && first != '[' && first != '{') {
        return EM_ERROR;
    }

    switch (pkt->type) {
    case EM_SIO_CONNECT:
        return (id == EM_SIO_NO_ID && (first == '\0' || first == '{')) ? EM_OK : EM_ERROR;
    case EM_SIO_DISCONNECT:
        return (id == EM_SIO_NO_ID && first == '\0') ? EM_OK : EM_ERROR;
    case EM_SIO_EVENT:
    case EM_SIO_BINARY_EVENT:
        return first == '[' ? EM_OK : EM_ERROR;
    case EM_SIO_ACK:
    case EM_SIO_BINARY_ACK:
        return (first == '[' && id != EM_SIO_NO_ID) ? EM_OK : EM_ERROR;
    case EM_SIO_CONNECT_ERROR:
        return (id == EM_SIO_NO_ID && first != '\0') ? EM_OK : EM_ERROR;
    }
    return EM_ERROR;
}

/* Write v in decimal at out; returns the number of digits. */
static size_t
em_sio_put_uint(uint64_t v, char *out)
{
    char   tmp[20];
    size_t n = 0, i;

    do {
        tmp[n++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (i = 0; i < n; i++) {
        out[i] = tmp[n - 1 - i];
    }
    return n;
}

ssize_t
em_sio_encode_header(em_sio_type_t type, unsigned nattach, em_str_t nsp,
                     int64_t id, int has_data, char *out, size_t cap)
{
    char   head[12], idbuf[20];
    size_t hlen = 0, idlen = 0, comma = 0, total;
    int    root = nsp.len == 0 || (nsp.len == 1 && nsp.data[0] == '/');

    if ((unsigned) type > EM_SIO_BINARY_ACK || id > EM_SIO_MAX_ID) {
        return -1;
    }

    head[hlen++] = (char) ('0' + type);
    if (type == EM_SIO_BINARY_EVENT || type == EM_SIO_BINARY_ACK) {
        hlen += em_sio_put_uint(nattach, head + hlen);
        head[hlen++] = '-';
    }
    if (id >= 0) {
        idlen = em_sio_put_uint((uint64_t) id, idbuf);
    }
    if (!root && (id >= 0 || has_data)) {
        comma = 1;
    }

    total = hlen + (root ? 0 : nsp.len) + comma + idlen;
    if (total > cap) {
        return -1;
    }

    memcpy(out, head, hlen);
    if (!root) {
        memcpy(out + hlen, nsp.data, nsp.len);
        if (comma) {
            out[hlen + nsp.len] = ',';
        }
    }
    memcpy(out + total - idlen, idbuf, idlen);
    return (ssize_t) total;
}
