/*
 * em_buf.h - reference-counted byte buffers.
 *
 * A packet is encoded once into an em_buf_t; every recipient's output queue
 * (WebSocket output buffer via evbuffer_add_reference, or a polling queue)
 * takes a reference to the same bytes. Single-threaded: plain counters.
 */
#ifndef EM_BUF_H
#define EM_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct em_buf {
    unsigned refs;
    unsigned binary;    /* an Engine.IO binary message (raw bytes) */
    size_t   len;
    size_t   cap;
    char     data[];
} em_buf_t;

/* A new buffer with room for cap bytes, len 0, one reference. NULL on ENOMEM. */
em_buf_t *em_buf_new(size_t cap);

/* A new buffer holding a copy of data. */
em_buf_t *em_buf_copy(const void *data, size_t len, int binary);

/* Append bytes, growing the buffer (only while it has a single owner). */
int em_buf_append(em_buf_t **b, const void *data, size_t len);

static inline em_buf_t *
em_buf_ref(em_buf_t *b)
{
    b->refs++;
    return b;
}

void em_buf_unref(em_buf_t *b);

/* A Socket.IO packet ready to send: one text message and its attachments. */
typedef struct {
    em_buf_t  *text;
    size_t     data_off;    /* where the JSON data starts in text */
    size_t     natt;
    em_buf_t **att;
    uint64_t   offset;      /* the recovery log offset it carries last (0: none) */
} em_pkt_t;

void em_pkt_release(em_pkt_t *pkt);

#endif
