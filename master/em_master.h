/*
 * em_master.h - the master process: binds the listeners, forks and supervises
 * the workers, accepts connections and routes each one to a worker.
 */
#ifndef EM_MASTER_H
#define EM_MASTER_H

#include "em_conf.h"

/* Run the master until SIGTERM/SIGINT; returns the process exit code. A
 * reload (SIGHUP) reads `file` (NULL: the embedded default) with the -g
 * settings `over` again. */
int em_master_run(em_conf_t *conf, const char *file, const char *over);

#endif
