/*
 * main.c - emitd's command line: emitd [-c file] [-g settings] [-t] [-v] [-h]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "em_conf.h"
#include "em_log.h"
#include "em_lua.h"
#include "em_master.h"
#include "em_proc.h"
#include "em_tls.h"
#include "em_worker.h"

#include <sodium.h>

static void
em_usage(FILE *out)
{
    fprintf(out,
            "usage: emitd [-c file] [-g settings] [-t] [-v] [-h]\n"
            "  -c file   read the configuration from file (default: the embedded one)\n"
            "  -g settings\n"
            "            top-level settings (libconfig syntax) that replace the file's\n"
            "            settings of the same name, e.g. -g 'workers = 2;'\n"
            "  -t        check the configuration and exit\n"
            "  -v        print the version and exit\n"
            "  -h        print this help and exit\n");
}

int
main(int argc, char **argv)
{
    const char *file = NULL;
    const char *over = NULL;
    int         test = 0;
    int         opt;
    char        err[1024];
    em_conf_t  *conf;

    while ((opt = getopt(argc, argv, "c:g:tvh")) != -1) {
        switch (opt) {
        case 'c':
            file = optarg;
            break;
        case 'g':
            over = optarg;
            break;
        case 't':
            test = 1;
            break;
        case 'v':
            printf("emitd version %s\n", EM_VERSION);
            return 0;
        case 'h':
            em_usage(stdout);
            return 0;
        default:
            em_usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "emitd: unexpected argument \"%s\"\n", argv[optind]);
        em_usage(stderr);
        return 2;
    }

    if (sodium_init() < 0) {
        fprintf(stderr, "emitd: [emerg] sodium_init() failed\n");
        return 1;
    }
    conf = em_conf_load_with(file, over, err, sizeof(err));
    if (conf != NULL && (em_lua_check_scripts(conf, test, err, sizeof(err)) != EM_OK
                         || em_tls_check(conf, err, sizeof(err)) != EM_OK)) {
        em_conf_free(conf);
        conf = NULL;
    }
    if (conf == NULL) {
        fprintf(stderr, "emitd: [emerg] %s\n", err);
        if (test) {
            fprintf(stderr, "emitd: configuration file %s test failed\n", file ? file : "(embedded)");
        }
        return 1;
    }
    if (test) {
        fprintf(stderr, "emitd: the configuration %s syntax is ok\n",
                file ? file : "(embedded default)");
        fprintf(stderr, "emitd: configuration %s test is successful\n",
                file ? file : "(embedded default)");
        em_conf_free(conf);
        return 0;
    }
    em_log_level = (em_log_level_t) conf->log_level;
    if (em_log_open(conf->error_log) != 0) {
        fprintf(stderr, "emitd: [emerg] cannot open the error_log %s: %s\n", conf->error_log,
                strerror(errno));
        em_conf_free(conf);
        return 1;
    }
    /* A reload reads them again; the process title reuses argv's memory. */
    char *file_copy = file != NULL ? strdup(file) : NULL;
    char *over_copy = over != NULL ? strdup(over) : NULL;
    if ((file != NULL && file_copy == NULL) || (over != NULL && over_copy == NULL)) {
        fprintf(stderr, "emitd: [emerg] out of memory\n");
        em_conf_free(conf);
        return 1;
    }
    if (em_access_open(conf->access_log) != 0) {
        fprintf(stderr, "emitd: [emerg] cannot open the access_log %s: %s\n", conf->access_log,
                strerror(errno));
        em_conf_free(conf);
        return 1;
    }
    em_proc_title_init(argc, argv);
    int rc = em_master_run(conf, file_copy, over_copy);
    free(file_copy);
    free(over_copy);
    return rc;
}
