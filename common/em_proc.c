/*
 * em_proc.c - rewrite argv[] in place (moving environ out of the way, as
 * nginx's ngx_setproctitle.c does) so ps shows each process's role.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "em_proc.h"

#define EM_PROC_MIN(a, b) ((a) < (b) ? (a) : (b))

extern char **environ;

static char  *em_title_start;
static size_t em_title_len;

void
em_proc_title_init(int argc, char **argv)
{
    char  *start, *end;
    size_t n;
    char **env;

    if (argc == 0 || argv[0] == NULL) {
        return;
    }
    start = argv[0];
    end = argv[0] + strlen(argv[0]) + 1;
    for (int i = 1; i < argc; i++) {
        if (argv[i] == end) {
            end = argv[i] + strlen(argv[i]) + 1;
        }
    }
    for (n = 0; environ[n] != NULL; n++) {
        if (environ[n] == end) {
            end = environ[n] + strlen(environ[n]) + 1;
        }
    }
    /* Move the environment and the arguments so their space can be reused. */
    env = calloc(n + 1, sizeof(char *));
    if (env == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if ((env[i] = strdup(environ[i])) == NULL) {
            goto failed;
        }
    }
    for (int i = 0; i < argc; i++) {
        char *copy = strdup(argv[i]);
        if (copy == NULL) {
            goto failed;                /* titles stay off; argv still valid */
        }
        argv[i] = copy;
    }
    environ = env;
    em_title_start = start;
    em_title_len = (size_t) (end - start);
    return;

failed:
    for (size_t i = 0; i < n; i++) {
        free(env[i]);
    }
    free(env);
}

void
em_proc_title_set(const char *fmt, ...)
{
    char    title[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(title, sizeof(title), fmt, ap);
    va_end(ap);

    (void) prctl(PR_SET_NAME, title, 0, 0, 0);
    if (em_title_start == NULL || em_title_len < 2) {
        return;
    }
    memset(em_title_start, 0, em_title_len);
    memcpy(em_title_start, title, EM_PROC_MIN(strlen(title), em_title_len - 1));
}
