#include <string.h>

#include "em_wsframe.h"

void
em_wsframe_scan(const unsigned char *buf, size_t len, size_t max_payload, int fragmented,
                em_wsframe_scan_t *out)
{
    size_t pos = 0;

    memset(out, 0, sizeof(*out));
    out->fragmented = fragmented ? 1 : 0;
    while (len - pos >= 2) {
        unsigned fin = buf[pos] >> 7;
        unsigned opcode = buf[pos] & 0x0f;
        unsigned masked = buf[pos + 1] >> 7;
        uint64_t plen = buf[pos + 1] & 0x7f;
        size_t   hlen = 2;

        if (plen == 126) {
            if (len - pos < 4) {
                break;
            }
            plen = ((uint64_t) buf[pos + 2] << 8) | buf[pos + 3];
            hlen = 4;
        } else if (plen == 127) {
            if (len - pos < 10) {
                break;
            }
            plen = 0;
            for (int i = 0; i < 8; i++) {
                plen = (plen << 8) | buf[pos + 2 + i];
            }
            hlen = 10;
        }
        hlen += masked ? 4 : 0;
        if (plen > max_payload) {
            out->oversized = 1;
            out->badlength = (plen >> 63) != 0;
            break;
        }
        if (len - pos < hlen || len - pos - hlen < plen) {
            out->need = (len - pos >= hlen) ? hlen + plen : 0;
            break;
        }
        pos += hlen + (size_t) plen;
        out->frames++;
        if (opcode & 0x8) {
            out->control = 1;             /* control frames never fragment a message */
        } else {
            out->fragmented = !fin;       /* text/binary/continuation */
        }
    }
    out->complete = pos;
}
