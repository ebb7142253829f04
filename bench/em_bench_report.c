/*
 * em_bench_report.c - the run's report: an autocannon-style table, or one
 * JSON object for machines (--json).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "em_bench.h"

#define EM_BENCH_COLS 8
#define EM_BENCH_CELL 32

typedef char em_bench_row_t[EM_BENCH_COLS][EM_BENCH_CELL];

const char *
em_bench_scenario_name(em_bench_scenario_t s)
{
    static const char *names[] = { "connect", "idle", "echo", "broadcast", "reconnect" };

    return (unsigned) s < EM_NELEMS(names) ? names[s] : "?";
}

const char *
em_bench_transport_name(em_bench_transport_t t)
{
    return t == EM_BENCH_POLLING ? "polling" : "websocket";
}

uint64_t
em_bench_main_count(em_bench_scenario_t s, const em_bench_counters_t *c, const char **name)
{
    switch (s) {
    case EM_BENCH_CONNECT:   *name = "handshakes"; return c->handshakes;
    case EM_BENCH_IDLE:      *name = "connections"; return c->opened;
    case EM_BENCH_ECHO:      *name = "acks"; return c->acks;
    case EM_BENCH_BROADCAST: *name = "deliveries"; return c->deliveries;
    case EM_BENCH_RECONNECT: *name = "reconnects"; return c->reconnects;
    }
    *name = "?";
    return 0;
}

static double
em_bench_cpu_s(const em_bench_server_t *a, const em_bench_server_t *b)
{
    long hz = sysconf(_SC_CLK_TCK);
    uint64_t ta = a->utime_ticks + a->stime_ticks, tb = b->utime_ticks + b->stime_ticks;

    return tb > ta && hz > 0 ? (double) (tb - ta) / (double) hz : 0.0;
}

static void
em_bench_fmt_ms(char *out, double us)
{
    double ms = us / 1000.0;

    if (ms < 10.0) {
        snprintf(out, EM_BENCH_CELL, "%.2f ms", ms);
    } else if (ms < 1000.0) {
        snprintf(out, EM_BENCH_CELL, "%.1f ms", ms);
    } else {
        snprintf(out, EM_BENCH_CELL, "%.0f ms", ms);
    }
}

static void
em_bench_fmt_bytes(char *out, double b)
{
    static const char *units[] = { "B", "kB", "MB", "GB", "TB" };
    unsigned           u = 0;

    while (b >= 1000.0 && u + 1 < EM_NELEMS(units)) {
        b /= 1000.0;
        u++;
    }
    snprintf(out, EM_BENCH_CELL, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

static void
em_bench_fmt_count(char *out, double v)
{
    if (v >= 100.0 || v == (double) (uint64_t) v) {
        snprintf(out, EM_BENCH_CELL, "%.0f", v);
    } else {
        snprintf(out, EM_BENCH_CELL, "%.1f", v);
    }
}

static void
em_bench_rule(const size_t *w, unsigned ncols, const char *l, const char *m, const char *r)
{
    unsigned i;
    size_t   k;

    fputs(l, stdout);
    for (i = 0; i < ncols; i++) {
        for (k = 0; k < w[i] + 2; k++) {
            fputs("\u2500", stdout);
        }
        fputs(i + 1 < ncols ? m : r, stdout);
    }
    fputc('\n', stdout);
}

/* A box-drawn table: the first row is the header. */
static void
em_bench_table(em_bench_row_t *rows, unsigned nrows, unsigned ncols)
{
    size_t   w[EM_BENCH_COLS] = { 0 };
    unsigned i, j;

    for (i = 0; i < nrows; i++) {
        for (j = 0; j < ncols; j++) {
            w[j] = EM_MAX(w[j], strlen(rows[i][j]));
        }
    }
    em_bench_rule(w, ncols, "\u250c", "\u252c", "\u2510");
    for (i = 0; i < nrows; i++) {
        fputs("\u2502", stdout);
        for (j = 0; j < ncols; j++) {
            printf(" %-*s \u2502", (int) w[j], rows[i][j]);
        }
        fputc('\n', stdout);
        if (i == 0) {
            em_bench_rule(w, ncols, "\u251c", "\u253c", "\u2524");
        }
    }
    em_bench_rule(w, ncols, "\u2514", "\u2534", "\u2518");
}

static void
em_bench_latency_row(em_bench_row_t row, const char *name, const em_bench_hist_t *h)
{
    static const double q[] = { 0.5, 0.9, 0.99, 0.999 };
    unsigned            i;

    snprintf(row[0], EM_BENCH_CELL, "%s", name);
    for (i = 0; i < EM_NELEMS(q); i++) {
        em_bench_fmt_ms(row[1 + i], (double) em_bench_hist_quantile(h, q[i]));
    }
    em_bench_fmt_ms(row[5], em_bench_hist_mean(h));
    em_bench_fmt_ms(row[6], em_bench_hist_stdev(h));
    em_bench_fmt_ms(row[7], (double) h->max);
}

static void
em_bench_count_row(em_bench_row_t row, const char *name, double total, double secs,
                   double cpu, int bytes)
{
    snprintf(row[0], EM_BENCH_CELL, "%s", name);
    if (bytes) {
        em_bench_fmt_bytes(row[1], total);
        em_bench_fmt_bytes(row[2], secs > 0 ? total / secs : 0);
        if (cpu > 0) {
            em_bench_fmt_bytes(row[3], total / cpu);
        } else {
            snprintf(row[3], EM_BENCH_CELL, "-");
        }
    } else {
        em_bench_fmt_count(row[1], total);
        em_bench_fmt_count(row[2], secs > 0 ? total / secs : 0);
        if (cpu > 0) {
            em_bench_fmt_count(row[3], total / cpu);
        } else {
            snprintf(row[3], EM_BENCH_CELL, "-");
        }
    }
}

typedef struct {
    uint64_t p2_5, p50, p97_5, min, max;
    double   mean, stdev;
} em_bench_sec_stats_t;

static int
em_bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

    return x < y ? -1 : x > y;
}

/* Nearest-rank percentiles, mean and deviation of the per-second samples.
 * Returns 0 when there are none. */
static int
em_bench_sec_stats(const em_bench_report_t *r, em_bench_sec_stats_t *st)
{
    uint64_t *v;
    unsigned  n = r->nper_sec, i;
    double    acc = 0;

    memset(st, 0, sizeof(*st));
    if (n == 0 || (v = malloc(n * sizeof(*v))) == NULL) {
        return 0;
    }
    memcpy(v, r->per_sec, n * sizeof(*v));
    qsort(v, n, sizeof(*v), em_bench_cmp_u64);
    st->min = v[0];
    st->max = v[n - 1];
    st->p2_5 = v[(unsigned) ceil(0.025 * n) - 1];
    st->p50 = v[(unsigned) ceil(0.5 * n) - 1];
    st->p97_5 = v[(unsigned) ceil(0.975 * n) - 1];
    for (i = 0; i < n; i++) {
        st->mean += (double) v[i];
    }
    st->mean /= n;
    for (i = 0; i < n; i++) {
        acc += ((double) v[i] - st->mean) * ((double) v[i] - st->mean);
    }
    st->stdev = n > 1 ? sqrt(acc / n) : 0;
    free(v);
    return 1;
}

void
em_bench_report_table(const em_bench_report_t *r)
{
    const em_bench_opts_t     *o = r->opts;
    const em_bench_counters_t *c = &r->total.c;
    em_bench_row_t             rows[10];
    const char                *name;
    uint64_t                   main_count = em_bench_main_count(o->scenario, c, &name);
    double                     cpu = r->have_server ? em_bench_cpu_s(&r->server_go, &r->server_end) : 0;
    unsigned                   n = 0;
    char                       a[EM_BENCH_CELL], b[EM_BENCH_CELL];
    em_bench_sec_stats_t       st;

    memset(rows, 0, sizeof(rows));
    printf("Running %gs test @ %s\n", (double) o->duration_ms / 1000.0, o->url);
    printf("scenario %s, %s, %u connections, %u workers, %u source address%s\n\n",
           em_bench_scenario_name(o->scenario), em_bench_transport_name(o->transport),
           o->connections, o->workers, o->sources ? o->sources : 1,
           o->sources > 1 ? "es" : "");

    snprintf(rows[0][0], EM_BENCH_CELL, "Stat");
    snprintf(rows[0][1], EM_BENCH_CELL, "p50");
    snprintf(rows[0][2], EM_BENCH_CELL, "p90");
    snprintf(rows[0][3], EM_BENCH_CELL, "p99");
    snprintf(rows[0][4], EM_BENCH_CELL, "p99.9");
    snprintf(rows[0][5], EM_BENCH_CELL, "Avg");
    snprintf(rows[0][6], EM_BENCH_CELL, "Stdev");
    snprintf(rows[0][7], EM_BENCH_CELL, "Max");
    n = 1;
    if (o->scenario != EM_BENCH_IDLE) {
        em_bench_latency_row(rows[n++], o->scenario == EM_BENCH_BROADCAST ? "Delivery"
                                        : o->scenario == EM_BENCH_ECHO ? "Ack"
                                        : o->scenario == EM_BENCH_RECONNECT ? "Reconnect"
                                        : "Handshake", &r->total.latency);
    }
    if (o->scenario != EM_BENCH_CONNECT) {
        em_bench_latency_row(rows[n++], "Connect", &r->total.connect);
    }
    em_bench_table(rows, n, 8);

    memset(rows, 0, sizeof(rows));
    snprintf(rows[0][0], EM_BENCH_CELL, "Stat");
    snprintf(rows[0][1], EM_BENCH_CELL, "Total");
    snprintf(rows[0][2], EM_BENCH_CELL, "Per sec");
    snprintf(rows[0][3], EM_BENCH_CELL, "Per server core-sec");
    n = 1;
    if (o->scenario != EM_BENCH_IDLE) {
        char title[EM_BENCH_CELL];

        snprintf(title, sizeof(title), "%c%s", name[0] - 'a' + 'A', name + 1);
        em_bench_count_row(rows[n++], title, (double) main_count, r->duration_s, cpu, 0);
    }
    if (o->scenario == EM_BENCH_BROADCAST) {
        em_bench_count_row(rows[n++], "Publishes", (double) c->publishes, r->duration_s, cpu, 0);
    }
    em_bench_count_row(rows[n++], "Bytes sent", (double) c->bytes_sent, r->duration_s, cpu, 1);
    em_bench_count_row(rows[n++], "Bytes read", (double) c->bytes_recv, r->duration_s, cpu, 1);
    em_bench_table(rows, n, 4);

    if (o->scenario != EM_BENCH_IDLE && em_bench_sec_stats(r, &st)) {
        static const char *head[] = { "Stat", "2.5%", "50%", "97.5%", "Avg", "Stdev",
                                      "Min", "Max" };
        unsigned k;

        memset(rows, 0, sizeof(rows));
        for (k = 0; k < EM_BENCH_COLS; k++) {
            snprintf(rows[0][k], EM_BENCH_CELL, "%s", head[k]);
        }
        snprintf(rows[1][0], EM_BENCH_CELL, "%c%s/sec", name[0] - 'a' + 'A', name + 1);
        em_bench_fmt_count(rows[1][1], (double) st.p2_5);
        em_bench_fmt_count(rows[1][2], (double) st.p50);
        em_bench_fmt_count(rows[1][3], (double) st.p97_5);
        em_bench_fmt_count(rows[1][4], st.mean);
        em_bench_fmt_count(rows[1][5], st.stdev);
        em_bench_fmt_count(rows[1][6], (double) st.min);
        em_bench_fmt_count(rows[1][7], (double) st.max);
        em_bench_table(rows, 2, 8);
        printf("(%u one-second samples)\n", r->nper_sec);
    }

    em_bench_fmt_bytes(a, (double) c->bytes_recv);
    printf("\n%llu %s in %.2fs, %s read, %llu connections opened of %u, "
           "%llu errors, %llu timeouts\n",
           (unsigned long long) main_count, name, r->duration_s, a,
           (unsigned long long) c->opened, o->connections,
           (unsigned long long) c->errors, (unsigned long long) c->timeouts);
    if (o->scenario == EM_BENCH_BROADCAST) {
        printf("%llu subscribers joined, %llu publishes, %llu deliveries of %llu expected\n",
               (unsigned long long) c->joined, (unsigned long long) c->publishes,
               (unsigned long long) c->deliveries,
               (unsigned long long) r->expected_deliveries);
    }
    if (r->have_server) {
        const em_bench_server_t *s = &r->server_end;
        long                     hz = sysconf(_SC_CLK_TCK);

        em_bench_fmt_bytes(a, (double) r->server_ready.rss_bytes);
        em_bench_fmt_bytes(b, (double) r->server_ready.pss_bytes);
        printf("server: pid %d, %u processes, CPU %.2f s (user %.2f, system %.2f) "
               "while measuring, RSS %s, PSS %s with the connections open\n",
               (int) o->server_pid, s->processes, cpu,
               (double) (s->utime_ticks - r->server_go.utime_ticks) / (double) hz,
               (double) (s->stime_ticks - r->server_go.stime_ticks) / (double) hz, a, b);
        if (c->opened > 0 && o->scenario == EM_BENCH_IDLE) {
            em_bench_fmt_bytes(a, ((double) r->server_ready.rss_bytes
                                   - (double) r->server_before.rss_bytes) / (double) c->opened);
            em_bench_fmt_bytes(b, ((double) r->server_ready.pss_bytes
                                   - (double) r->server_before.pss_bytes) / (double) c->opened);
            printf("server memory per connection: RSS %s, PSS %s\n", a, b);
        }
    } else {
        printf("server: no --pid, no CPU or memory figures\n");
    }
    if (o->scenario == EM_BENCH_BROADCAST && c->deliveries < r->expected_deliveries) {
        printf("note: fewer deliveries than subscribers x publishes; a server whose "
               "rooms are per worker (emitd before its broker) needs workers = 1\n");
    }
    if (r->incomplete) {
        printf("warning: a worker process did not report; figures are partial\n");
    }
}

static void
em_bench_json_hist(const char *name, const em_bench_hist_t *h, int last)
{
    printf("\"%s\":{\"count\":%llu,\"min\":%llu,\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,"
           "\"p99_9\":%llu,\"max\":%llu,\"mean\":%.1f,\"stdev\":%.1f}%s",
           name, (unsigned long long) h->count,
           (unsigned long long) (h->count ? h->min : 0),
           (unsigned long long) em_bench_hist_quantile(h, 0.5),
           (unsigned long long) em_bench_hist_quantile(h, 0.9),
           (unsigned long long) em_bench_hist_quantile(h, 0.99),
           (unsigned long long) em_bench_hist_quantile(h, 0.999),
           (unsigned long long) h->max, em_bench_hist_mean(h), em_bench_hist_stdev(h),
           last ? "" : ",");
}

void
em_bench_report_json(const em_bench_report_t *r)
{
    const em_bench_opts_t     *o = r->opts;
    const em_bench_counters_t *c = &r->total.c;
    const char                *name;
    uint64_t                   main_count = em_bench_main_count(o->scenario, c, &name);
    double                     cpu = r->have_server ? em_bench_cpu_s(&r->server_go, &r->server_end) : 0;
    long                       hz = sysconf(_SC_CLK_TCK);
    const char                *p;

    printf("{\"url\":\"");
    for (p = o->url; *p; p++) {
        if (*p == '"' || *p == '\\') {
            putchar('\\');
        }
        if ((unsigned char) *p >= 0x20) {
            putchar(*p);
        }
    }
    printf("\",\"scenario\":\"%s\",\"transport\":\"%s\",\"connections\":%u,"
           "\"workers\":%u,\"sources\":%u,\"duration_s\":%.3f,\"rate\":%u,\"payload\":%u,",
           em_bench_scenario_name(o->scenario), em_bench_transport_name(o->transport),
           o->connections, o->workers, o->sources ? o->sources : 1, r->duration_s,
           o->rate, o->payload);
    printf("\"opened\":%llu,\"handshakes\":%llu,\"current\":%llu,\"requests\":%llu,"
           "\"acks\":%llu,\"joined\":%llu,\"publishes\":%llu,\"deliveries\":%llu,"
           "\"expected_deliveries\":%llu,\"reconnects\":%llu,"
           "\"bytes_sent\":%llu,\"bytes_received\":%llu,"
           "\"errors\":%llu,\"timeouts\":%llu,\"closed_by_server\":%llu,\"complete\":%s,",
           (unsigned long long) c->opened, (unsigned long long) c->handshakes,
           (unsigned long long) c->current, (unsigned long long) c->requests,
           (unsigned long long) c->acks, (unsigned long long) c->joined,
           (unsigned long long) c->publishes, (unsigned long long) c->deliveries,
           (unsigned long long) r->expected_deliveries,
           (unsigned long long) c->reconnects,
           (unsigned long long) c->bytes_sent, (unsigned long long) c->bytes_recv,
           (unsigned long long) c->errors, (unsigned long long) c->timeouts,
           (unsigned long long) c->closed_by_server, r->incomplete ? "false" : "true");
    printf("\"throughput\":{\"name\":\"%s\",\"total\":%llu,\"per_sec\":%.1f,"
           "\"per_server_core_sec\":%.1f},",
           name, (unsigned long long) main_count,
           r->duration_s > 0 ? (double) main_count / r->duration_s : 0.0,
           cpu > 0 ? (double) main_count / cpu : 0.0);
    {
        em_bench_sec_stats_t st;
        unsigned             i;

        (void) em_bench_sec_stats(r, &st);
        printf("\"per_second\":{\"samples\":[");
        for (i = 0; i < r->nper_sec; i++) {
            printf("%s%llu", i ? "," : "", (unsigned long long) r->per_sec[i]);
        }
        printf("],\"p2_5\":%llu,\"p50\":%llu,\"p97_5\":%llu,\"min\":%llu,\"max\":%llu,"
               "\"mean\":%.1f,\"stdev\":%.1f},",
               (unsigned long long) st.p2_5, (unsigned long long) st.p50,
               (unsigned long long) st.p97_5, (unsigned long long) st.min,
               (unsigned long long) st.max, st.mean, st.stdev);
    }
    em_bench_json_hist("latency_us", &r->total.latency, 0);
    em_bench_json_hist("connect_latency_us", &r->total.connect, 0);
    if (r->have_server) {
        double per = c->opened ? (double) c->opened : 1.0;

        printf("\"server\":{\"pid\":%d,\"processes\":%u,\"cpu_s\":%.3f,\"user_s\":%.3f,"
               "\"system_s\":%.3f,\"rss_bytes\":%llu,\"pss_bytes\":%llu,"
               "\"rss_before_bytes\":%llu,\"pss_before_bytes\":%llu,"
               "\"rss_per_connection\":%.0f,\"pss_per_connection\":%.0f}}\n",
               (int) o->server_pid, r->server_end.processes, cpu,
               (double) (r->server_end.utime_ticks - r->server_go.utime_ticks) / (double) hz,
               (double) (r->server_end.stime_ticks - r->server_go.stime_ticks) / (double) hz,
               (unsigned long long) r->server_ready.rss_bytes,
               (unsigned long long) r->server_ready.pss_bytes,
               (unsigned long long) r->server_before.rss_bytes,
               (unsigned long long) r->server_before.pss_bytes,
               ((double) r->server_ready.rss_bytes - (double) r->server_before.rss_bytes) / per,
               ((double) r->server_ready.pss_bytes - (double) r->server_before.pss_bytes) / per);
    } else {
        printf("\"server\":null}\n");
    }
}
