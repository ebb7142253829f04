#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "em_log.h"

#define EM_LOG_MIN(a, b) ((a) < (b) ? (a) : (b))

em_log_level_t em_log_level = EM_LOG_INFO;
static char em_log_role[32] = "emitd";

static const char *const em_log_names[] = { "error", "warn", "info", "debug" };
static const int em_log_prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

static char *em_log_path;       /* the log file, or NULL */
static int   em_log_syslog;     /* to syslog instead */

static int
em_log_open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    if (fd < 0) {
        return -1;
    }
    if (fd != STDERR_FILENO) {
        if (dup2(fd, STDERR_FILENO) < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        close(fd);
    }
    return 0;
}

int
em_log_open(const char *target)
{
    if (target == NULL || strcmp(target, "stderr") == 0) {
        return 0;
    }
    if (strcmp(target, "syslog") == 0) {
        openlog("emitd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
        em_log_syslog = 1;
        return 0;
    }
    if (em_log_open_file(target) != 0) {
        return -1;
    }
    free(em_log_path);
    em_log_path = strdup(target);
    return em_log_path != NULL ? 0 : -1;
}

void
em_log_reopen_ready(int registered)
{
    sigset_t usr1;

    if (!registered) {
        em_log(EM_LOG_WARN, 0, "cannot take SIGUSR1: the log will not be reopened here");
        return;
    }
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &usr1, NULL);
}

int
em_log_reopen(void)
{
    if (em_log_path == NULL) {
        return 0;
    }
    if (em_log_open_file(em_log_path) != 0) {
        int e = errno;
        em_log(EM_LOG_ERR, e, "cannot reopen the log file %s", em_log_path);  /* the old file */
        return -1;
    }
    em_log(EM_LOG_INFO, 0, "reopened the log file %s", em_log_path);
    return 0;
}

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
    if (em_log_syslog) {
        /* syslog stamps the time and pid itself: the role and message */
        const char *msg = strchr(line, '#');
        line[n] = '\0';
        syslog(em_log_prio[level], "%s", msg != NULL ? msg + 1 : line);
        return;
    }
    line[n++] = '\n';
    /* One write per line so lines from several processes do not interleave. */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void) w;
}
