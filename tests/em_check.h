/*
 * em_check.h - what every Check test program shares: the main() that runs
 * the suite silently (results go out as TAP with CK_TAP_LOG_FILE_NAME=-, so
 * stdout stays clean for meson's TAP parser) and exits non-zero on failure,
 * and helpers for byte-string table rows and slices.
 */
#ifndef EM_CHECK_H
#define EM_CHECK_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "em_core.h"

/* A byte string with an explicit length, so rows may hold NUL bytes. */
#define B(s) (s), (sizeof(s) - 1)

static inline em_str_t
S(const char *s)
{
    return (em_str_t) { s, strlen(s) };
}

/* Assert that a slice holds exactly the C string want. */
#define ck_slice(got, want, what)                                                       \
    ck_assert_msg(em_str_eq((got), (want)), "%s: got \"%.*s\", want \"%s\"", (what),   \
                  (int) (got).len, (got).data ? (got).data : "", (want))

#define EM_CHECK_MAIN(suite_fn)                                   \
    int                                                          \
    main(void)                                                   \
    {                                                            \
        SRunner *sr = srunner_create(suite_fn());                \
        int      failed;                                         \
        srunner_run_all(sr, CK_SILENT);                          \
        failed = srunner_ntests_failed(sr);                      \
        srunner_free(sr);                                        \
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;        \
    }

#endif
