#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "em_log.h"

#define EM_LOG_MIN(a, b) ((a) < (b) ? (a) : (b))

em_log_level_t em_log_level = EM_LOG_INFO;
static char em_log_role[32] = "emitd";

static const char *const em_log_names[] = { "error", "warn", "info", "debug" };

void
em_log_set_role(const char *role)
{
    snprintf(em_log_role, sizeof(em_log_role), "%s", role);
}

int
em_log_level_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(em_log_names) / sizeof(em_log_names[0]); i++) {
        if (strcasecmp(name, em_log_names[i]) == 0) {
            return (int) i;
        }
    }
    return -1;
}

void
em_log(em_log_level_t level, int err, const char *fmt, ...)
{
    char     line[2048];
    size_t   n;
    int      r;
    va_list  ap;
    time_t   now;
    struct tm tm;

    if (level > em_log_level) {
        return;
    }
    now = time(NULL);
    localtime_r(&now, &tm);
    n = strftime(line, sizeof(line), "%Y/%m/%d %H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, " [%s] %d#%s: ",
                 em_log_names[level], (int) getpid(), em_log_role);
    n += (r > 0) ? (size_t) r : 0;

    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    n = (r > 0) ? EM_LOG_MIN(n + (size_t) r, sizeof(line) - 1) : n;

    if (err != 0 && n < sizeof(line) - 1) {
        r = snprintf(line + n, sizeof(line) - n, " (%d: %s)", err, strerror(err));
        n = (r > 0) ? EM_LOG_MIN(n + (size_t) r, sizeof(line) - 1) : n;
    }
    if (n >= sizeof(line) - 1) {
        n = sizeof(line) - 2;
    }
    line[n++] = '\n';
    /* One write per line so lines from several processes do not interleave. */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void) w;
}
