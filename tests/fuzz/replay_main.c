/*
 * replay_main.c - the main() the libFuzzer harnesses get in the normal
 * build (gcc or clang, no libFuzzer): every file of each directory named on
 * the command line (and each file named) goes once through
 * LLVMFuzzerTestOneInput(), in name order, from a buffer of exactly its
 * size, so that a sanitizer build catches a read past the input.
 *
 * Speaks TAP: the plan, then one point per argument, "ok N - corpus/sio: 71
 * files". A harness that aborts (a broken invariant), crashes, trips a
 * sanitizer or runs more than REPLAY_TIMEOUT seconds on one input ends the
 * run with "Bail out! <the input>", so the meson test fails and names it.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REPLAY_TIMEOUT 60

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
/* Given by the sanitizer runtimes (gcc's and clang's) when linked in. */
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

#if defined(__SANITIZE_ADDRESS__)
#define REPLAY_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REPLAY_ASAN 1
#endif
#endif

/* "Bail out! <input> ...": prepared before each input, written by the
 * signal handlers and the sanitizer's death callback with write(2). */
static char   replay_bail[4352];
static size_t replay_bail_len;

static void
replay_bail_out(void)
{
    ssize_t w = write(STDOUT_FILENO, replay_bail, replay_bail_len);

    (void) w;
}

static void
replay_on_signal(int sig)
{
    replay_bail_out();
    if (sig == SIGALRM) {
        static const char msg[] = "# (the input ran too long)\n";
        ssize_t           w = write(STDOUT_FILENO, msg, sizeof(msg) - 1);
        (void) w;
        _exit(1);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void
replay_signals(void)
{
    struct sigaction sa;
    const int        sigs[] = { SIGABRT, SIGALRM,
#ifndef REPLAY_ASAN
                                SIGSEGV, SIGBUS, SIGFPE, SIGILL,   /* ASan reports these itself */
#endif
    };

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = replay_on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        sigaction(sigs[i], &sa, NULL);
    }
    if (__sanitizer_set_death_callback != NULL) {
        __sanitizer_set_death_callback(replay_bail_out);
    }
}

/* Run the harness on one file; 0, or -1 (with errno) if it cannot be read. */
static int
replay_file(const char *path)
{
    FILE          *f = fopen(path, "rb");
    struct stat    st;
    unsigned char *buf;
    size_t         n;
    int            n_bail;

    if (f == NULL) {
        return -1;
    }
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
        fclose(f);
        return -1;
    }
    n = (size_t) st.st_size;
    buf = malloc(n ? n : 1);
    if (buf == NULL || fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        errno = EIO;
        return -1;
    }
    fclose(f);
    n_bail = snprintf(replay_bail, sizeof(replay_bail), "Bail out! %s\n", path);
    replay_bail_len = n_bail > 0 ? ((size_t) n_bail < sizeof(replay_bail) ? (size_t) n_bail
                                                                         : sizeof(replay_bail) - 1)
                                 : 0;
    alarm(REPLAY_TIMEOUT);
    LLVMFuzzerTestOneInput(buf, n);
    alarm(0);
    free(buf);
    return 0;
}

static int
replay_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Every regular file of dir, in name order; how many, or -1. */
static long
replay_dir(const char *dir)
{
    DIR           *d = opendir(dir);
    struct dirent *e;
    char         **names = NULL;
    size_t         n = 0, cap = 0;
    long           done = 0;

    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **more = realloc(names, cap * sizeof(*names));
            if (more == NULL) {
                abort();
            }
            names = more;
        }
        names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2);
        if (names[n] == NULL) {
            abort();
        }
        sprintf(names[n], "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), replay_cmp);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
            if (replay_file(names[i]) != 0) {
                done = -1;
                break;
            }
            done++;
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    return done;
}

/* The last two components of a path, for the TAP line. */
static const char *
replay_label(const char *path)
{
    const char *end = path + strlen(path), *p = end;
    int         slashes = 0;

    while (p > path && end[-1] == '/') {
        end--;
        p--;
    }
    while (p > path) {
        if (p[-1] == '/' && ++slashes == 2) {
            break;
        }
        p--;
    }
    return p;
}

int
main(int argc, char **argv)
{
    int failed = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize != NULL) {
        LLVMFuzzerInitialize(&argc, &argv);
    }
    replay_signals();
    printf("1..%d\n", argc - 1);
    fflush(stdout);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        long        n;

        if (stat(argv[i], &st) != 0) {
            printf("not ok %d - %s: %s\n", i, replay_label(argv[i]), strerror(errno));
            failed = 1;
        } else if (S_ISDIR(st.st_mode)) {
            n = replay_dir(argv[i]);
            if (n < 0) {
                printf("not ok %d - %s: cannot read it: %s\n", i, replay_label(argv[i]),
                       strerror(errno));
                failed = 1;
            } else {
                printf("ok %d - %s: %ld files\n", i, replay_label(argv[i]), n);
            }
        } else if (replay_file(argv[i]) != 0) {
            printf("not ok %d - %s: cannot read it: %s\n", i, replay_label(argv[i]),
                   strerror(errno));
            failed = 1;
        } else {
            printf("ok %d - %s\n", i, replay_label(argv[i]));
        }
        fflush(stdout);
    }
    return failed;
}
