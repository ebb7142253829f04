/*
 * fuzz_conf.c - libFuzzer harness for the configuration reader,
 * em_conf_load() (common/em_conf.c: libconfig syntax, defaults and
 * validation).
 *
 * The input is written to a memfd and loaded through /proc/self/fd/N. A
 * refused file leaves a message in err; an accepted one has at least one
 * listen address (numeric host, port 1-65535), namespace (beginning with
 * '/') and endpoint (path between '/'s, distinct paths, each found by
 * em_conf_endpoint()), limits within their ceilings, and is freed whole
 * (LeakSanitizer in the sanitizer build).
 *
 * Inputs holding "@include" are skipped: libconfig would read other files
 * of the machine (or block on a device), which tests libconfig and the
 * machine, not emitd.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "em_conf.h"
#include "em_log.h"

#define FUZZ_ASSERT(c) do { if (!(c)) { abort(); } } while (0)

/*
 * libconfig 1.5 (Debian 12) leaks the text gathered for a string token when
 * a syntax error ends the parse inside it (its scanner's strbuf_append, or
 * for an empty string "" the byte its scanner callocs, libconfig_yylex):
 * found by this harness, not emitd's to free, and a few bytes once per
 * refused configuration file. Told to LeakSanitizer so that the run goes on.
 */
const char *__lsan_default_suppressions(void);

const char *
__lsan_default_suppressions(void)
{
    return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

static int  fz_fd = -1;
static char fz_path[64];

static void
fz_check(const em_conf_t *c)
{
    FUZZ_ASSERT(c->nlisten >= 1 && c->listen != NULL);
    for (size_t i = 0; i < c->nlisten; i++) {
        long port = strtol(c->listen[i].port, NULL, 10);
        FUZZ_ASSERT(c->listen[i].host != NULL && c->listen[i].text != NULL);
        FUZZ_ASSERT(port >= 1 && port <= 65535);
    }
    FUZZ_ASSERT(c->workers >= 1 && c->workers <= EM_MAX_WORKERS);
    FUZZ_ASSERT(c->nnsps >= 1);
    for (size_t i = 0; i < c->nnsps; i++) {
        FUZZ_ASSERT(c->nsps[i].name != NULL
                    && (c->nsps[i].name[0] == '/' || c->nsps[i].name[0] == EM_CONF_NSP_PREFIX));
    }
    FUZZ_ASSERT(c->nendpoints >= 1 && !c->endpoints[0].raw);
    for (size_t i = 0; i < c->nendpoints; i++) {
        const em_conf_endpoint_t *ep = &c->endpoints[i];
        size_t                    len = strlen(ep->path);
        FUZZ_ASSERT(len >= 1 && ep->path[0] == '/' && ep->path[len - 1] == '/');
        FUZZ_ASSERT(ep->transports != 0 && (ep->transports & ~3u) == 0);
        FUZZ_ASSERT(ep->max_payload >= 16 && ep->ping_interval >= 1 && ep->ping_timeout >= 1);
        FUZZ_ASSERT((ep->raw != 0) == (ep->script != NULL));
        FUZZ_ASSERT(em_conf_endpoint(c, ep->path, len) == ep);
        /* a Socket.IO endpoint's namespaces carry its prefix */
        FUZZ_ASSERT(ep->raw ? ep->prefix == NULL : ep->prefix != NULL);
        const em_conf_cors_t *cors = em_conf_cors(c, ep);
        for (size_t k = 0; k < cors->norigins; k++) {
            FUZZ_ASSERT(em_conf_origin_allowed(cors, cors->origins[k], strlen(cors->origins[k])));
        }
    }
    for (size_t i = 0; i < c->nnsps; i++) {
        const em_conf_nsp_t *n = &c->nsps[i];
        FUZZ_ASSERT(n->endpoint < c->nendpoints && !c->endpoints[n->endpoint].raw);
        const char *prefix = c->endpoints[n->endpoint].prefix;
        FUZZ_ASSERT(strncmp(n->name, prefix, strlen(prefix)) == 0);
        em_str_t w = em_conf_nsp_wire(n->name, strlen(n->name));
        FUZZ_ASSERT(w.len >= 1 && w.data[0] == '/');
    }
    FUZZ_ASSERT(c->limits.attachments <= EM_CONF_MAX_ATTACHMENTS);
    FUZZ_ASSERT(c->limits.json_depth >= 1 && c->limits.json_depth <= EM_CONF_MAX_JSON_DEPTH);
    FUZZ_ASSERT(c->limits.output_soft <= c->limits.output_hard);
    (void) em_conf_has_connect_limits(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char       err[1024];
    em_conf_t *c;

    if (memmem(data, size, "@include", 8) != NULL) {
        return 0;
    }
    if (fz_fd < 0) {
        em_log_level = EM_LOG_ERR;
        fz_fd = memfd_create("fuzz-conf", MFD_CLOEXEC);
        FUZZ_ASSERT(fz_fd >= 0);
        snprintf(fz_path, sizeof(fz_path), "/proc/self/fd/%d", fz_fd);
    }
    FUZZ_ASSERT(ftruncate(fz_fd, 0) == 0);
    FUZZ_ASSERT(pwrite(fz_fd, data, size, 0) == (ssize_t) size);

    err[0] = '\0';
    c = em_conf_load(fz_path, err, sizeof(err));
    if (c == NULL) {
        FUZZ_ASSERT(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
        return 0;
    }
    fz_check(c);
    em_conf_free(c);
    return 0;
}
