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

static struct {
    int   on;
    int   fd;                   /* where the lines go, or -1 for syslog */
    char *path;                 /* its own file, or NULL */
} em_access = { 0, -1, NULL };

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

int
em_access_open(const char *target)
{
    em_access.on = 0;
    if (target != NULL && strcmp(target, "off") == 0) {
        return 0;
    }
    if (target == NULL) {
        /* With the error log: its file or standard error, or syslog. */
        em_access.fd = em_log_syslog ? -1 : STDERR_FILENO;
    } else if (strcmp(target, "stderr") == 0) {
        em_access.fd = STDERR_FILENO;
    } else if (strcmp(target, "syslog") == 0) {
        if (!em_log_syslog) {
            openlog("emitd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
        }
        em_access.fd = -1;
    } else {
        int fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0) {
            return -1;
        }
        free(em_access.path);
        if ((em_access.path = strdup(target)) == NULL) {
            close(fd);
            return -1;
        }
        em_access.fd = fd;
    }
    em_access.on = 1;
    return 0;
}

int
em_access_fd(void)
{
    return em_access.on && em_access.path != NULL ? em_access.fd : -1;
}

void
em_access_moved(int fd)
{
    em_access.fd = fd;
}

int
em_access_on(void)
{
    return em_access.on;
}

void
em_access_write(const char *line, size_t len)
{
    char    buf[1024];
    ssize_t w;

    if (!em_access.on) {
        return;
    }
    if (em_access.fd < 0) {
        syslog(LOG_INFO, "%.*s", (int) EM_LOG_MIN(len, sizeof(buf)), line);
        return;
    }
    /* One write(2) of the whole line: O_APPEND keeps the workers' lines whole. */
    len = EM_LOG_MIN(len, sizeof(buf) - 1);
    memcpy(buf, line, len);
    buf[len++] = '\n';
    w = write(em_access.fd, buf, len);
    (void) w;
}

/* SIGUSR1: the access log's own file too. */
static void
em_access_reopen(void)
{
    int fd;

    if (em_access.path == NULL) {
        return;
    }
    if ((fd = open(em_access.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)) < 0) {
        em_log(EM_LOG_ERR, errno, "cannot reopen the access log %s", em_access.path);
        return;
    }
    if (dup2(fd, em_access.fd) < 0) {
        em_log(EM_LOG_ERR, errno, "cannot reopen the access log %s", em_access.path);
    } else {
        em_log(EM_LOG_INFO, 0, "reopened the access log %s", em_access.path);
    }
    close(fd);
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
    em_access_reopen();
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
