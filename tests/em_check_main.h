/*
 * em_check_main.h - the main() every Check test program shares: run the
 * suite silently (results go out as TAP with CK_TAP_LOG_FILE_NAME=-, so
 * stdout stays clean for meson's TAP parser) and exit non-zero on failure.
 */
#ifndef EM_CHECK_MAIN_H
#define EM_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

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
