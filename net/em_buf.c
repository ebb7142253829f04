#include <stdlib.h>
#include <string.h>

#include "em_buf.h"
#include "em_core.h"

em_buf_t *
em_buf_new(size_t cap)
{
    em_buf_t *b = malloc(sizeof(*b) + cap);

    if (b != NULL) {
        b->refs = 1;
        b->binary = 0;
        b->len = 0;
        b->cap = cap;
    }
    return b;
}

em_buf_t *
em_buf_copy(const void *data, size_t len, int binary)
{
    em_buf_t *b = em_buf_new(len);

    if (b != NULL) {
        if (len) {
            memcpy(b->data, data, len);
        }
        b->len = len;
        b->binary = binary ? 1 : 0;
    }
    return b;
}

int
em_buf_append(em_buf_t **bp, const void *data, size_t len)
{
    em_buf_t *b = *bp;

    if (b->len + len > b->cap) {
        size_t cap = EM_MAX(b->cap * 2, b->len + len);
        em_buf_t *nb = realloc(b, sizeof(*b) + cap);
        if (nb == NULL) {
            return EM_ERROR;
        }
        nb->cap = cap;
        *bp = b = nb;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return EM_OK;
}

void
em_buf_unref(em_buf_t *b)
{
    if (b != NULL && --b->refs == 0) {
        free(b);
    }
}

void
em_pkt_release(em_pkt_t *pkt)
{
    em_buf_unref(pkt->text);
    for (size_t i = 0; i < pkt->natt; i++) {
        em_buf_unref(pkt->att[i]);
    }
    free(pkt->att);
    memset(pkt, 0, sizeof(*pkt));
}
