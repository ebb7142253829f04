/*
 * em_bench_server.c - the server's figures from /proc: CPU time (utime +
 * stime) and memory (RSS from stat, PSS from smaps_rollup) of a master PID
 * and of every process whose parent it is (emitd's workers and broker).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "em_bench.h"

/* Read /proc/PID/stat: parent pid, utime, stime, rss (pages).
 * Returns EM_OK or EM_ERROR. */
static int
em_bench_proc_stat(pid_t pid, pid_t *ppid, uint64_t *ut, uint64_t *st, uint64_t *rss)
{
    char                path[64], buf[1024], *p;
    FILE               *f;
    size_t              n;
    int                 field;
    unsigned long long  v[24];

    snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
    f = fopen(path, "re");
    if (f == NULL) {
        return EM_ERROR;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: skip to the last ')'. */
    p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ') {
        return EM_ERROR;
    }
    p += 2;
    if (*p != '\0') {
        p += 2;                                   /* state letter */
    }
    /* Fields 4.. : ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime stime cutime cstime priority nice threads itreal
     * starttime vsize rss */
    for (field = 0; field < 21; field++) {
        char *end;

        v[field] = strtoull(p, &end, 10);
        if (end == p) {
            return EM_ERROR;
        }
        p = end;
        while (*p == ' ') {
            p++;
        }
    }
    *ppid = (pid_t) v[0];
    *ut = v[10];
    *st = v[11];
    *rss = v[20];
    return EM_OK;
}

/* PSS in bytes from /proc/PID/smaps_rollup, 0 when unreadable. */
static uint64_t
em_bench_proc_pss(pid_t pid)
{
    char               path[64], line[256];
    FILE              *f;
    unsigned long long kb = 0;

    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int) pid);
    f = fopen(path, "re");
    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "Pss: %llu kB", &kb) == 1) {
            break;
        }
    }
    fclose(f);
    return (uint64_t) kb * 1024u;
}

static void
em_bench_server_add(em_bench_server_t *s, pid_t pid, uint64_t ut, uint64_t st, uint64_t rss)
{
    static long page;

    if (page == 0) {
        page = sysconf(_SC_PAGESIZE);
    }
    s->processes++;
    s->utime_ticks += ut;
    s->stime_ticks += st;
    s->rss_bytes += rss * (uint64_t) page;
    s->pss_bytes += em_bench_proc_pss(pid);
}

int
em_bench_server_sample(pid_t pid, em_bench_server_t *s)
{
    DIR           *d;
    struct dirent *de;
    pid_t          ppid, child;
    uint64_t       ut, st, rss;

    memset(s, 0, sizeof(*s));
    if (pid <= 0 || em_bench_proc_stat(pid, &ppid, &ut, &st, &rss) != EM_OK) {
        return EM_ERROR;
    }
    em_bench_server_add(s, pid, ut, st, rss);

    d = opendir("/proc");
    if (d == NULL) {
        return EM_OK;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9') {
            continue;
        }
        child = (pid_t) strtol(de->d_name, NULL, 10);
        if (child == pid || em_bench_proc_stat(child, &ppid, &ut, &st, &rss) != EM_OK
            || ppid != pid)
        {
            continue;
        }
        em_bench_server_add(s, child, ut, st, rss);
    }
    closedir(d);
    return EM_OK;
}
