/*
 * em_log.h - leveled logging to stderr, nginx style:
 *   2026/11/22 06:30:00 [error] 1234#worker 1: accept4() failed (24: Too many open files)
 */
#ifndef EM_LOG_H
#define EM_LOG_H

#include <stdarg.h>

typedef enum { EM_LOG_ERR = 0, EM_LOG_WARN, EM_LOG_INFO, EM_LOG_DEBUG } em_log_level_t;

extern em_log_level_t em_log_level;

/* Name of the running process's role, used as the prefix ("master", "worker 2"). */
void em_log_set_role(const char *role);

/* Parse "error" | "warn" | "info" | "debug"; -1 if unknown. */
int em_log_level_parse(const char *name);

/*
 * Where the log goes: NULL or "stderr" (standard error, as it is),
 * "syslog" (facility daemon), or a file name, opened for appending and put
 * on standard error so that children and libraries write there too.
 * Returns 0, or -1 with errno.
 */
int em_log_open(const char *target);

/* Open the log file again (logrotate moved it: SIGUSR1). 0, or -1 (logged). */
int em_log_reopen(void);

/*
 * A child's loop takes SIGUSR1 now (its handler registered): unblock it, so
 * that one sent since the fork, held pending, comes in; registered 0: the handler
 * could not be registered (logged; the signal stays blocked).
 */
void em_log_reopen_ready(int registered);

/*
 * The access log, a line per Engine.IO session: NULL (where the error log
 * goes), "off", "stderr", "syslog" (facility daemon, priority info) or a
 * file (appended to; SIGUSR1 reopens it with the error log). Returns 0, or
 * -1 with errno.
 */
int  em_access_open(const char *target);
int  em_access_on(void);
/* Its own file's descriptor (>= 3), or -1; a child given it at another
 * number says so with em_access_moved(). */
int  em_access_fd(void);
void em_access_moved(int fd);
/* One line (without its newline), written at once. */
void em_access_write(const char *line, size_t len);

/* Log a message; err != 0 appends " (err: strerror(err))". */
void em_log(em_log_level_t level, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define em_log_debug(...) \
    do { if (em_log_level >= EM_LOG_DEBUG) em_log(EM_LOG_DEBUG, 0, __VA_ARGS__); } while (0)

#endif
