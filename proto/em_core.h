/*
 * em_core.h - status codes and small helpers shared by every part of emitd.
 *
 * Functions return EM_OK, EM_ERROR or EM_AGAIN (or a pointer / NULL); errno
 * is handed to the logger at the failure site, never left for the caller.
 */
#ifndef EM_CORE_H
#define EM_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define EM_OK      0
#define EM_ERROR  -1
#define EM_AGAIN  -2     /* need more input / try again later */
#define EM_DECLINED -3   /* well-formed but refused (e.g. too large) */

#define EM_NELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define EM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define EM_MAX(a, b) ((a) > (b) ? (a) : (b))

/* A borrowed slice of bytes: never owns, never NUL-terminated. */
typedef struct {
    const char *data;
    size_t      len;
} em_str_t;

#define EM_STR(s) ((em_str_t){ (s), sizeof(s) - 1 })
#define EM_NULL_STR ((em_str_t){ NULL, 0 })

int em_str_eq(em_str_t a, const char *lit);
int em_str_caseeq(em_str_t a, const char *lit);

#endif
