/*
 * em_str.c - comparisons of borrowed slices against C string literals.
 */
#include <string.h>

#include "em_core.h"

/* ASCII-only lower-casing: header names and tokens are ASCII, and the C
 * locale's tolower() would be a needless function call per byte. */
static inline unsigned char
em_ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char) (c | 0x20) : c;
}

/* True when the slice holds exactly the bytes of lit (lit may be "" to test
 * for an empty slice). */
int
em_str_eq(em_str_t a, const char *lit)
{
    size_t n = strlen(lit);

    return a.len == n && (n == 0 || memcmp(a.data, lit, n) == 0);
}

/* Like em_str_eq() but ignoring ASCII case, as HTTP header names, connection
 * tokens and similar protocol words require. */
int
em_str_caseeq(em_str_t a, const char *lit)
{
    size_t i;

    for (i = 0; i < a.len; i++) {
        if (lit[i] == '\0'
            || em_ascii_lower((unsigned char) a.data[i])
               != em_ascii_lower((unsigned char) lit[i]))
        {
            return 0;
        }
    }
    return lit[i] == '\0';
}
