/*
 * test_sid.c - ids handed to clients (common/em_sid.c): their alphabet and
 * length, the slot a session id carries, and that ids drawn from the block
 * of random bytes are distinct within a process and across a fork (a child
 * must not hand out the ids its parent's unused block would have given).
 */
#include <sys/wait.h>
#include <unistd.h>

#include "em_check.h"
#include "em_sid.h"

#define N_IDS 2000

static int
id_ok(const char *id)
{
    if (strlen(id) != EM_SID_LEN) {
        return 0;
    }
    for (size_t i = 0; i < EM_SID_LEN; i++) {
        char ch = id[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
              || ch == '-' || ch == '_')) {
            return 0;
        }
    }
    return 1;
}

static int
cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, EM_SID_LEN + 1);
}

START_TEST(test_sid_format_and_slot)
{
    char id[EM_SID_LEN + 1];

    for (unsigned slot = 0; slot < 64; slot++) {
        em_sid_new(slot, id);
        ck_assert_msg(id_ok(id), "bad id \"%s\"", id);
        ck_assert_int_eq(em_sid_slot(id, EM_SID_LEN), (int) slot);
    }
    ck_assert_int_eq(em_sid_slot(id, EM_SID_LEN - 1), -1);
    ck_assert_int_eq(em_sid_slot("!bcdefghijklmnopqrst", EM_SID_LEN), -1);
}
END_TEST

START_TEST(test_sid_distinct_across_fork)
{
    static char ids[2 * N_IDS][EM_SID_LEN + 1];
    int         fds[2];
    pid_t       pid;
    int         status;

    /* The parent draws one id first, so a block of random bytes is left
     * over when it forks. */
    em_sid_random(ids[0]);
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char id[EM_SID_LEN + 1];
        for (int i = 0; i < N_IDS; i++) {
            em_sid_random(id);
            if (write(fds[1], id, sizeof(id)) != (ssize_t) sizeof(id)) {
                _exit(1);
            }
        }
        _exit(0);
    }
    close(fds[1]);
    for (int i = 1; i < N_IDS; i++) {
        em_sid_random(ids[i]);
    }
    size_t got = 0;
    char  *p = (char *) ids[N_IDS];
    while (got < (size_t) N_IDS * (EM_SID_LEN + 1)) {
        ssize_t n = read(fds[0], p + got, (size_t) N_IDS * (EM_SID_LEN + 1) - got);
        if (n <= 0) {
            break;
        }
        got += (size_t) n;
    }
    close(fds[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_uint_eq(got, (size_t) N_IDS * (EM_SID_LEN + 1));
    for (int i = 0; i < 2 * N_IDS; i++) {
        ck_assert_msg(id_ok(ids[i]), "bad id \"%s\"", ids[i]);
    }
    qsort(ids, 2 * N_IDS, sizeof(ids[0]), cmp_id);
    for (int i = 1; i < 2 * N_IDS; i++) {
        ck_assert_msg(strcmp(ids[i - 1], ids[i]) != 0, "id \"%s\" handed out twice", ids[i]);
    }
}
END_TEST

static Suite *
sid_suite(void)
{
    Suite *s = suite_create("sid");
    TCase *tc = tcase_create("sid");

    tcase_add_test(tc, test_sid_format_and_slot);
    tcase_add_test(tc, test_sid_distinct_across_fork);
    suite_add_tcase(s, tc);
    return s;
}

EM_CHECK_MAIN(sid_suite)
