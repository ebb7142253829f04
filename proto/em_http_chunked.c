/*
 * em_http_chunked.c - the chunked request body decoder (RFC 9112 7.1).
 *
 * Unlike the head parser, a body may be far longer than a head, so it keeps
 * a small caller-owned state and looks at each byte once.
 */
#include <string.h>

#include "em_http-int.h"
#include "em_http.h"

/*
 * States of em_http_chunked_parse(). A zeroed em_http_chunked_t starts at
 * EM_CHUNK_SIZE_START. In the size line `remaining` accumulates the size and
 * `digits` counts the line's bytes; in the data `remaining` is what is left of
 * the chunk; in the trailer section `remaining` counts the field lines and
 * `digits` the bytes of the current one.
 */
enum {
    EM_CHUNK_SIZE_START = 0,    /* first hex digit of a size line */
    EM_CHUNK_SIZE,              /* more hex digits */
    EM_CHUNK_EXT_WS,            /* BWS after the size or a value: ';' follows */
    EM_CHUNK_EXT_NAME_WS,       /* BWS after ';': a name follows */
    EM_CHUNK_EXT_NAME,
    EM_CHUNK_EXT_EQ_WS,         /* BWS after a name: '=' or ';' follows */
    EM_CHUNK_EXT_VAL_WS,        /* BWS after '=': a value follows */
    EM_CHUNK_EXT_TOKEN,
    EM_CHUNK_EXT_QUOTED,
    EM_CHUNK_EXT_QPAIR,         /* after '\' in a quoted string */
    EM_CHUNK_EXT_QEND,          /* after the closing '"' */
    EM_CHUNK_SIZE_LF,           /* CR ended the size line */
    EM_CHUNK_DATA,
    EM_CHUNK_DATA_CR,           /* line end after the chunk data */
    EM_CHUNK_DATA_LF,
    EM_CHUNK_TRAILER_START,     /* a trailer field line or the final line end */
    EM_CHUNK_TRAILER_NAME,
    EM_CHUNK_TRAILER_VALUE,
    EM_CHUNK_TRAILER_LF,
    EM_CHUNK_FINAL_LF,
    EM_CHUNK_DONE,
    EM_CHUNK_ERROR,
    EM_CHUNK_DECLINED
};

#define EM_CHUNK_SIZE_MAX ((uint64_t) 1 << 62)

static inline int
em_http_is_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* qdtext of RFC 9110 5.6.4: HTAB, SP, VCHAR but '"' and '\', obs-text. */
static inline int
em_http_is_qdtext(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f);
}

/* What a quoted-pair may escape: HTAB, SP, VCHAR, obs-text. */
static inline int
em_http_is_qpair(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int
em_http_chunk_fail(em_http_chunked_t *st, unsigned state)
{
    st->state = state;
    return state == EM_CHUNK_DECLINED ? EM_DECLINED : EM_ERROR;
}

/* The size line ended: start the chunk's data, or the trailer section after
 * the last chunk. A chunk that cannot fit in `avail` is refused now. */
static int
em_http_chunk_size_done(em_http_chunked_t *st, size_t avail)
{
    st->digits = 0;
    if (st->remaining == 0) {
        st->state = EM_CHUNK_TRAILER_START;
        return EM_AGAIN;
    }
    if (st->remaining > avail) {
        return em_http_chunk_fail(st, EM_CHUNK_DECLINED);
    }
    st->state = EM_CHUNK_DATA;
    return EM_AGAIN;
}

/* Advance a size line (size and extensions) by one byte. */
static int
em_http_chunk_size_byte(em_http_chunked_t *st, unsigned char c, size_t avail)
{
    int d;

    if (c == '\r' || c == '\n') {
        switch (st->state) {
        case EM_CHUNK_SIZE:
        case EM_CHUNK_EXT_NAME:
        case EM_CHUNK_EXT_TOKEN:
        case EM_CHUNK_EXT_QEND:
            if (c == '\r') {
                st->state = EM_CHUNK_SIZE_LF;
                return EM_AGAIN;
            }
            return em_http_chunk_size_done(st, avail);
        default:
            return em_http_chunk_fail(st, EM_CHUNK_ERROR);
        }
    }
    if (++st->digits > EM_HTTP_CHUNK_LINE_MAX) {
        return em_http_chunk_fail(st, EM_CHUNK_ERROR);
    }

    switch (st->state) {
    case EM_CHUNK_SIZE_START:
    case EM_CHUNK_SIZE:
        d = em_http_hex((char) c);
        if (d >= 0) {
            if (st->remaining > (EM_CHUNK_SIZE_MAX - (uint64_t) d) >> 4) {
                return em_http_chunk_fail(st, EM_CHUNK_ERROR);
            }
            st->remaining = st->remaining << 4 | (uint64_t) d;
            st->state = EM_CHUNK_SIZE;
            return EM_AGAIN;
        }
        if (st->state == EM_CHUNK_SIZE_START) {
            break;
        }
        if (c == ';') {
            st->state = EM_CHUNK_EXT_NAME_WS;
            return EM_AGAIN;
        }
        if (em_http_is_ws(c)) {
            st->state = EM_CHUNK_EXT_WS;
            return EM_AGAIN;
        }
        break;

    case EM_CHUNK_EXT_WS:
        if (c == ';') {
            st->state = EM_CHUNK_EXT_NAME_WS;
            return EM_AGAIN;
        }
        if (em_http_is_ws(c)) {
            return EM_AGAIN;
        }
        break;

    case EM_CHUNK_EXT_NAME_WS:
        if (em_http_is_tchar((char) c)) {
            st->state = EM_CHUNK_EXT_NAME;
            return EM_AGAIN;
        }
        if (em_http_is_ws(c)) {
            return EM_AGAIN;
        }
        break;

    case EM_CHUNK_EXT_NAME:
    case EM_CHUNK_EXT_EQ_WS:
        if (st->state == EM_CHUNK_EXT_NAME && em_http_is_tchar((char) c)) {
            return EM_AGAIN;
        }
        if (c == '=') {
            st->state = EM_CHUNK_EXT_VAL_WS;
            return EM_AGAIN;
        }
        if (c == ';') {
            st->state = EM_CHUNK_EXT_NAME_WS;
            return EM_AGAIN;
        }
        if (em_http_is_ws(c)) {
            st->state = EM_CHUNK_EXT_EQ_WS;
            return EM_AGAIN;
        }
        break;

    case EM_CHUNK_EXT_VAL_WS:
        if (c == '"') {
            st->state = EM_CHUNK_EXT_QUOTED;
            return EM_AGAIN;
        }
        if (em_http_is_tchar((char) c)) {
            st->state = EM_CHUNK_EXT_TOKEN;
            return EM_AGAIN;
        }
        if (em_http_is_ws(c)) {
            return EM_AGAIN;
        }
        break;

    case EM_CHUNK_EXT_TOKEN:
    case EM_CHUNK_EXT_QEND:
        if (st->state == EM_CHUNK_EXT_TOKEN && em_http_is_tchar((char) c)) {
            return EM_AGAIN;
        }
        if (c == ';') {
            st->state = EM_CHUNK_EXT_NAME_WS;
            return EM_AGAIN;
        }
        if (em_http_is_ws(c)) {
            st->state = EM_CHUNK_EXT_WS;
            return EM_AGAIN;
        }
        break;

    case EM_CHUNK_EXT_QUOTED:
        if (c == '"') {
            st->state = EM_CHUNK_EXT_QEND;
            return EM_AGAIN;
        }
        if (c == '\\') {
            st->state = EM_CHUNK_EXT_QPAIR;
            return EM_AGAIN;
        }
        if (em_http_is_qdtext(c)) {
            return EM_AGAIN;
        }
        break;

    case EM_CHUNK_EXT_QPAIR:
        if (em_http_is_qpair(c)) {
            st->state = EM_CHUNK_EXT_QUOTED;
            return EM_AGAIN;
        }
        break;

    default:
        break;
    }
    return em_http_chunk_fail(st, EM_CHUNK_ERROR);
}

/* Advance the trailer section by one byte; EM_OK after its final line end. */
static int
em_http_chunk_trailer_byte(em_http_chunked_t *st, unsigned char c)
{
    switch (st->state) {
    case EM_CHUNK_TRAILER_START:
        if (c == '\r') {
            st->state = EM_CHUNK_FINAL_LF;
            return EM_AGAIN;
        }
        if (c == '\n') {
            st->state = EM_CHUNK_DONE;
            return EM_OK;
        }
        /* A field line; one starting with SP/HT would be obs-fold. */
        if (!em_http_is_tchar((char) c) || ++st->remaining > EM_HTTP_MAX_TRAILERS) {
            break;
        }
        st->digits = 1;
        st->state = EM_CHUNK_TRAILER_NAME;
        return EM_AGAIN;

    case EM_CHUNK_TRAILER_NAME:
        if (++st->digits > EM_HTTP_TRAILER_LINE_MAX) {
            break;
        }
        if (c == ':') {
            st->state = EM_CHUNK_TRAILER_VALUE;
            return EM_AGAIN;
        }
        if (em_http_is_tchar((char) c)) {
            return EM_AGAIN;
        }
        break;

    case EM_CHUNK_TRAILER_VALUE:
        if (c == '\r') {
            st->state = EM_CHUNK_TRAILER_LF;
            return EM_AGAIN;
        }
        if (c == '\n') {
            st->state = EM_CHUNK_TRAILER_START;
            return EM_AGAIN;
        }
        if ((c < 0x20 && c != '\t') || c == 0x7f || ++st->digits > EM_HTTP_TRAILER_LINE_MAX) {
            break;
        }
        return EM_AGAIN;

    case EM_CHUNK_TRAILER_LF:
        if (c == '\n') {
            st->state = EM_CHUNK_TRAILER_START;
            return EM_AGAIN;
        }
        break;

    case EM_CHUNK_FINAL_LF:
        if (c == '\n') {
            st->state = EM_CHUNK_DONE;
            return EM_OK;
        }
        break;

    default:
        break;
    }
    return em_http_chunk_fail(st, EM_CHUNK_ERROR);
}

int
em_http_chunked_parse(em_http_chunked_t *st, const char *buf, size_t len, size_t *used,
                      char *out, size_t cap, size_t *outlen)
{
    size_t p = 0;
    int    rc = EM_AGAIN;

    *used = 0;
    switch (st->state) {
    case EM_CHUNK_DONE:
        return EM_OK;
    case EM_CHUNK_ERROR:
        return EM_ERROR;
    case EM_CHUNK_DECLINED:
        return EM_DECLINED;
    default:
        break;
    }

    while (p < len && rc == EM_AGAIN) {
        size_t        avail = *outlen < cap ? cap - *outlen : 0;
        unsigned char c;

        if (st->state == EM_CHUNK_DATA) {
            size_t n = st->remaining < len - p ? (size_t) st->remaining : len - p;

            /* Checked when the size was read; again in case the caller
             * moved *outlen or cap since. */
            if (n > avail) {
                rc = em_http_chunk_fail(st, EM_CHUNK_DECLINED);
                p++;
                break;
            }
            memcpy(out + *outlen, buf + p, n);
            *outlen += n;
            p += n;
            st->remaining -= n;
            if (st->remaining == 0) {
                st->state = EM_CHUNK_DATA_CR;
            }
            continue;
        }

        c = (unsigned char) buf[p++];
        switch (st->state) {
        case EM_CHUNK_SIZE_LF:
            rc = c == '\n' ? em_http_chunk_size_done(st, avail)
                           : em_http_chunk_fail(st, EM_CHUNK_ERROR);
            break;
        case EM_CHUNK_DATA_CR:
            if (c == '\r') {
                st->state = EM_CHUNK_DATA_LF;
            } else if (c == '\n') {
                st->state = EM_CHUNK_SIZE_START;
            } else {
                rc = em_http_chunk_fail(st, EM_CHUNK_ERROR);
            }
            break;
        case EM_CHUNK_DATA_LF:
            if (c == '\n') {
                st->state = EM_CHUNK_SIZE_START;
            } else {
                rc = em_http_chunk_fail(st, EM_CHUNK_ERROR);
            }
            break;
        default:
            rc = st->state < EM_CHUNK_SIZE_LF ? em_http_chunk_size_byte(st, c, avail)
                                              : em_http_chunk_trailer_byte(st, c);
            break;
        }
    }

    *used = p;
    return rc;
}
