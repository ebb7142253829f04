/*
 * memcheck_probe.c - a program with one heap over-read and one definite
 * leak, and nothing else: memcheck.test.js runs it the way the harness runs
 * emitd under `tests/run --valgrind`, to prove that such errors fail a test.
 * Not part of emitd.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main(void)
{
    char *buf = malloc(8);
    char *lost = malloc(64);

    if (buf == NULL || lost == NULL) {
        return 1;
    }
    memcpy(buf, "12345678", 8);
    lost[0] = '\0';
    /* One byte past the block: memcheck reports an invalid read. */
    printf("%d\n", ((volatile char *) buf)[8]);
    free(buf);
    lost = NULL;                        /* the 64 bytes are now lost */
    return 0;
}
