/*
 * em_proc.h - process titles shown by ps ("emitd: master", "emitd: worker 1").
 */
#ifndef EM_PROC_H
#define EM_PROC_H

/* Call once from main() before anything reads environ or argv. */
void em_proc_title_init(int argc, char **argv);

/* Set the title shown by ps and the thread name shown by top. */
void em_proc_title_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
