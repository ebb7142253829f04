/*
 * em_wsframe.h - finding WebSocket frame boundaries in received bytes (pure).
 *
 * The worker feeds wslay only whole frames, so that between reads wslay
 * holds no partial state and its context (9 KiB) can be freed while a
 * connection is idle. This scanner reads just the frame headers (RFC 6455
 * section 5.2); wslay still parses and validates every frame.
 */
#ifndef EM_WSFRAME_H
#define EM_WSFRAME_H

#include "em_core.h"

typedef struct {
    size_t   complete;      /* bytes of whole frames at the start of the input */
    uint64_t need;          /* size of the first frame not whole, once its header is in (else 0) */
    unsigned frames;        /* how many whole frames that is */
    unsigned fragmented:1;  /* the last whole data frame left a message open (FIN=0) */
    unsigned oversized:1;   /* the next frame declares more than max_payload bytes */
    unsigned badlength:1;   /* ... and its 64-bit length has the top bit set (RFC 6455 5.2) */
    unsigned control:1;     /* a whole frame is a control frame (close, ping, pong) */
} em_wsframe_scan_t;

/*
 * Scan buf[0..len) for whole frames. `fragmented` is the state before these
 * bytes (a message left open by an earlier frame) and is updated in *out.
 * Stops at the first incomplete frame, or at a frame whose declared payload
 * exceeds max_payload (out->oversized: hand everything to wslay, which
 * refuses it with close code 1009). Never fails: malformed bits are wslay's
 * to reject.
 */
void em_wsframe_scan(const unsigned char *buf, size_t len, size_t max_payload, int fragmented,
                     em_wsframe_scan_t *out);

#endif
