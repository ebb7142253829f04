/*
 * em_utf8.h - UTF-8 validation (pure).
 */
#ifndef EM_UTF8_H
#define EM_UTF8_H

#include "em_core.h"

/*
 * True when buf[0..len) is well-formed UTF-8 as RFC 3629 defines it: no
 * overlong forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF,
 * no sequence cut short at the end. A WebSocket text message must be
 * (RFC 6455 section 8.1).
 */
int em_utf8_valid(const char *buf, size_t len);

#endif
