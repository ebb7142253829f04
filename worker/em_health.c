/*
 * em_health.c - GET <health_path>: the cluster's health as JSON, in the
 * shape of photo-events.md's /health, from the shared state, so that any
 * worker answers for all of them:
 *
 *   {"status": "ok", "timestamp": "2026-12-07T04:40:00.000Z",
 *    "details": {"websocket": {"status": "healthy", "connectedClients": 5,
 *                              "activeRooms": 10},
 *                "workers": [{"worker": 1, "status": "up"}, ...],
 *                "broker": {"status": "up"}}}       (with several workers)
 *
 * 200 when every worker and the broker are up; 503, "status": "degraded",
 * while one is down (between its death and its restart).
 */
#include <event2/buffer.h>
#include <stddef.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "em_bus.h"
#include "em_cluster.h"
#include "em_fetch.h"
#include "em_health.h"
#include "em_http_conn.h"
#include "em_log.h"
#include "em_loop.h"

static void
em_health_serve(em_http_conn_t *h, const em_http_req_t *req, const char *body, size_t len)
{
    em_monitor_figures_t fig;
    struct timespec      now;
    struct tm            tm;
    char                 iso[40] = "";
    json_t              *workers, *doc;
    unsigned             down = 0;

    (void) body;
    (void) len;
    if (req->method != EM_HTTP_GET) {
        h->keep_alive = 0;
        em_http_conn_respond(h, 405, "text/plain; charset=UTF-8", "Method Not Allowed", 18);
        return;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    if (gmtime_r(&now.tv_sec, &tm) != NULL) {
        size_t n = strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(iso + n, sizeof(iso) - n, ".%03ldZ", now.tv_nsec / 1000000);
    }
    em_monitor_read(&em_cluster, em_state_now(), &fig);
    workers = json_array();
    for (unsigned i = 0; workers != NULL && i < em_loop.nworkers; i++) {
        int mode = em_state_slot_used(&em_cluster, i);
        int up = em_state_slot_pid(&em_cluster, i) != 0;
        if (mode == EM_SLOT_FREE) {
            continue;           /* no worker's slot (a reload may use it) */
        }
        down += !up && mode == EM_SLOT_SERVING;
        json_array_append_new(workers, json_pack("{s:I,s:s}", "worker", (json_int_t) i + 1,
                                                 "status", !up ? "down"
                                                           : mode == EM_SLOT_DRAINING ? "draining"
                                                                                      : "up"));
    }
    /* With several workers, the broker carries the broadcasts between them. */
    int broker = em_bus_active();
    int broker_up = broker && em_state_broker_pid(&em_cluster) != 0;
    down += broker && !broker_up;
    doc = json_pack("{s:s,s:s,s:{s:{s:s,s:I,s:I},s:o}}",
                    "status", down ? "degraded" : "ok",
                    "timestamp", iso,
                    "details",
                    "websocket",
                    "status", down ? "degraded" : "healthy",
                    "connectedClients", (json_int_t) fig.active,
                    "activeRooms", (json_int_t) em_rooms_active(&em_cluster),
                    "workers", workers);
    if (doc != NULL && broker) {
        json_object_set_new(json_object_get(doc, "details"), "broker",
                            json_pack("{s:s}", "status", broker_up ? "up" : "down"));
    }
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (text == NULL) {
        em_http_conn_respond(h, 500, "text/plain; charset=UTF-8", "Internal Server Error", 21);
        return;
    }
    em_http_conn_respond(h, down ? 503 : 200, "application/json", text, strlen(text));
    free(text);
}

/* ---- GET <metrics_path>: Prometheus text format 0.0.4 ---- */

/* A label value with \, " and newlines escaped. */
static void
em_metrics_label(struct evbuffer *b, const char *v)
{
    for (const char *p = v; *p != '\0'; p++) {
        if (*p == '\\' || *p == '"') {
            evbuffer_add_printf(b, "\\%c", *p);
        } else if (*p == '\n') {
            evbuffer_add(b, "\\n", 2);
        } else {
            evbuffer_add(b, p, 1);
        }
    }
}

static void
em_metrics_one(struct evbuffer *b, const char *name, const char *type, const char *help,
               uint64_t v)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
                        (unsigned long long) v);
}

/* The figures each worker keeps of itself (em_st_wstats_t), one series per
 * worker. */
#define EM_WSTAT(f) offsetof(em_st_wstats_t, f)
static const struct {
    const char *name, *type, *help, *labels;
    size_t      off;
} em_metrics_wstats[] = {
    { "emitd_handshakes_total", "counter", "Engine.IO sessions opened.", NULL, EM_WSTAT(handshakes) },
    { "emitd_connections", "gauge", "Engine.IO sessions open now, by transport.",
      "transport=\"websocket\"", EM_WSTAT(sessions_ws) },
    { "emitd_connections", NULL, NULL, "transport=\"polling\"", EM_WSTAT(sessions_polling) },
    { "emitd_messages_received_total", "counter", "Engine.IO messages (packets) from clients.", NULL,
      EM_WSTAT(messages_in) },
    { "emitd_messages_sent_total", "counter", "Engine.IO messages (packets) to clients.", NULL,
      EM_WSTAT(messages_out) },
    { "emitd_received_bytes_total", "counter", "Bytes read from clients (HTTP and WebSocket).", NULL,
      EM_WSTAT(bytes_in) },
    { "emitd_sent_bytes_total", "counter", "Bytes written to clients.", NULL, EM_WSTAT(bytes_out) },
    { "emitd_broadcasts_total", "counter",
      "Broadcasts published from a worker (scripts and the backend API).", NULL, EM_WSTAT(broadcasts) },
    { "emitd_deliveries_total", "counter", "Packets a broadcast delivered to a worker's sockets.",
      NULL, EM_WSTAT(deliveries) },
    { "emitd_recovery_total", "counter",
      "CONNECTs that asked for connection-state recovery, by result.", "result=\"hit\"",
      EM_WSTAT(recovery_hits) },
    { "emitd_recovery_total", NULL, NULL, "result=\"miss\"", EM_WSTAT(recovery_misses) },
    { "emitd_connect_refusals_total", "counter",
      "CONNECTs refused, by reason: auth (api_key, jwt) or rate_limit (connect_limit).",
      "reason=\"auth\"", EM_WSTAT(refusals_auth) },
    { "emitd_connect_refusals_total", NULL, NULL, "reason=\"rate_limit\"", EM_WSTAT(refusals_rate) },
    { "emitd_script_errors_total", "counter", "Errors raised in handler scripts.", NULL,
      EM_WSTAT(script_errors) },
    { "emitd_webhook_requests_total", "counter",
      "Webhook calls (emitd.http) by result: the response's status class, error or declined.",
      "status=\"1xx\"", EM_WSTAT(webhook_class[1]) },
    { "emitd_webhook_requests_total", NULL, NULL, "status=\"2xx\"", EM_WSTAT(webhook_class[2]) },
    { "emitd_webhook_requests_total", NULL, NULL, "status=\"3xx\"", EM_WSTAT(webhook_class[3]) },
    { "emitd_webhook_requests_total", NULL, NULL, "status=\"4xx\"", EM_WSTAT(webhook_class[4]) },
    { "emitd_webhook_requests_total", NULL, NULL, "status=\"5xx\"", EM_WSTAT(webhook_class[5]) },
    { "emitd_webhook_requests_total", NULL, NULL, "status=\"error\"", EM_WSTAT(webhook_failed) },
    { "emitd_webhook_requests_total", NULL, NULL, "status=\"declined\"", EM_WSTAT(webhook_declined) },
    { "emitd_api_requests_total", "counter", "Backend API calls answered.", NULL, EM_WSTAT(api_calls) },
};

static uint64_t
em_metrics_wget(const em_st_wstats_t *w, size_t off)
{
    return __atomic_load_n((const uint64_t *) ((const char *) w + off), __ATOMIC_RELAXED);
}

static void
em_metrics_workers(struct evbuffer *b)
{
    for (size_t m = 0; m < EM_NELEMS(em_metrics_wstats); m++) {
        if (em_metrics_wstats[m].type != NULL) {
            evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", em_metrics_wstats[m].name,
                                em_metrics_wstats[m].help, em_metrics_wstats[m].name,
                                em_metrics_wstats[m].type);
        }
        for (unsigned i = 0; i < em_loop.nworkers; i++) {
            const em_st_wstats_t *w = em_state_wstats(&em_cluster, i);
            if (em_state_slot_used(&em_cluster, i) == EM_SLOT_FREE) {
                continue;
            }
            evbuffer_add_printf(b, "%s{worker=\"%u\"%s%s} %llu\n", em_metrics_wstats[m].name, i + 1,
                                em_metrics_wstats[m].labels ? "," : "",
                                em_metrics_wstats[m].labels ? em_metrics_wstats[m].labels : "",
                                (unsigned long long) em_metrics_wget(w, em_metrics_wstats[m].off));
        }
    }
    /* The webhooks' latency, a histogram per worker. */
    evbuffer_add_printf(b, "# HELP emitd_webhook_duration_seconds Time from a webhook call to its "
                        "response.\n# TYPE emitd_webhook_duration_seconds histogram\n");
    for (unsigned i = 0; i < em_loop.nworkers; i++) {
        const em_st_wstats_t *w = em_state_wstats(&em_cluster, i);
        if (em_state_slot_used(&em_cluster, i) == EM_SLOT_FREE) {
            continue;
        }
        for (size_t k = 0; k < EM_ST_LAT_BUCKETS; k++) {
            evbuffer_add_printf(b, "emitd_webhook_duration_seconds_bucket{worker=\"%u\",le=\"%g\"} %llu\n",
                                i + 1, em_fetch_buckets[k],
                                (unsigned long long) __atomic_load_n(&w->webhook_le[k], __ATOMIC_RELAXED));
        }
        uint64_t n = __atomic_load_n(&w->webhook_count, __ATOMIC_RELAXED);
        evbuffer_add_printf(b, "emitd_webhook_duration_seconds_bucket{worker=\"%u\",le=\"+Inf\"} %llu\n"
                            "emitd_webhook_duration_seconds_sum{worker=\"%u\"} %.6f\n"
                            "emitd_webhook_duration_seconds_count{worker=\"%u\"} %llu\n",
                            i + 1, (unsigned long long) n, i + 1,
                            (double) __atomic_load_n(&w->webhook_sum_us, __ATOMIC_RELAXED) / 1e6,
                            i + 1, (unsigned long long) n);
    }
}

/* The rings between the workers and the broker: records, and how often a
 * writer found one full (back-pressure). */
static void
em_metrics_rings(struct evbuffer *b)
{
    static const char *const names[] = { "emitd_ring_records_total", "emitd_ring_full_total",
                                         "emitd_ring_used_bytes" };
    static const char *const help[] = {
        "Records written to a worker's ring to the broker (up) or from it (down).",
        "Times a record waited because the ring was full (back-pressure).",
        "Bytes in use in the ring now." };
    em_ring_stats_t rs;

    if (!em_bus_active()) {
        return;
    }
    for (int m = 0; m < 3; m++) {
        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", names[m], help[m], names[m],
                            m == 2 ? "gauge" : "counter");
        for (unsigned i = 0; i < em_loop.nworkers; i++) {
            for (int up = 1; up >= 0; up--) {
                if (em_state_slot_used(&em_cluster, i) == EM_SLOT_FREE
                    || em_bus_ring_stats(i, up, &rs) != EM_OK) {
                    continue;
                }
                uint64_t v = m == 0 ? rs.written : m == 1 ? rs.full : rs.used;
                evbuffer_add_printf(b, "%s{worker=\"%u\",direction=\"%s\"} %llu\n", names[m], i + 1,
                                    up ? "up" : "down", (unsigned long long) v);
            }
        }
    }
}

static void
em_metrics_store(struct evbuffer *b)
{
    em_kv_stats_t s;

    em_kv_stats(&em_cluster, &s);
    em_metrics_one(b, "emitd_store_entries", "gauge",
                   "Keys and list items in the scripts' shared store.", s.entries);
    em_metrics_one(b, "emitd_store_capacity", "gauge", "Entries the shared store holds at most.",
                   s.capacity);
    em_metrics_one(b, "emitd_store_evicted_total", "counter",
                   "Entries the shared store dropped to make room (least recently used first).",
                   s.evicted);
}

static void
em_metrics_serve(em_http_conn_t *h, const em_http_req_t *req, const char *body, size_t len)
{
    const em_conf_t     *conf = em_loop.conf;
    em_monitor_figures_t fig;
    em_recovery_stats_t  rec;
    struct evbuffer     *b;

    (void) body;
    (void) len;
    if (req->method != EM_HTTP_GET) {
        h->keep_alive = 0;
        em_http_conn_respond(h, 405, "text/plain; charset=UTF-8", "Method Not Allowed", 18);
        return;
    }
    if ((b = evbuffer_new()) == NULL) {
        em_http_conn_respond(h, 500, "text/plain; charset=UTF-8", "Internal Server Error", 21);
        return;
    }
    em_monitor_read(&em_cluster, em_state_now(), &fig);
    em_recovery_stats(&em_cluster, em_state_now(), &rec);
    em_metrics_one(b, "emitd_sockets", "gauge",
                   "Socket.IO sockets connected now, on every worker.", fig.active);
    em_metrics_one(b, "emitd_sockets_peak", "gauge",
                   "The most sockets connected at once since the figures were reset.", fig.peak);
    em_metrics_one(b, "emitd_socket_connects_total", "counter",
                   "Sockets admitted to a namespace (reset by emitd.metrics_reset()).", fig.total);
    em_metrics_one(b, "emitd_socket_refusals_total", "counter",
                   "CONNECTs refused: connect_limit, api_key, jwt or on_connect.", fig.failed);
    em_metrics_one(b, "emitd_socket_disconnects_total", "counter",
                   "Sockets that left.", fig.closed);
    em_metrics_one(b, "emitd_limit_violations_total", "counter",
                   "Clients closed for breaking a limit or the protocol.", fig.violations);
    em_metrics_one(b, "emitd_rooms", "gauge",
                   "Rooms with a socket in them, every namespace, every worker.",
                   em_rooms_active(&em_cluster));
    em_metrics_one(b, "emitd_recovery_sessions", "gauge",
                   "Connection-state recovery sessions kept (connected and disconnected).",
                   rec.pid_sessions);
    em_metrics_one(b, "emitd_recovery_tokens", "gauge", "Application recovery tokens kept.",
                   rec.tokens);
    em_metrics_one(b, "emitd_packet_log_records", "gauge",
                   "Packets in the recovery log.", rec.log_records);
    em_metrics_one(b, "emitd_packet_log_evicted_total", "counter",
                   "Packets that left the recovery log for room before they expired.",
                   rec.log_evicted);
    evbuffer_add_printf(b, "# HELP emitd_namespace_sockets Sockets in a namespace, every worker "
                        "(by endpoint path and configured name; a parameterised one under its "
                        "pattern).\n# TYPE emitd_namespace_sockets gauge\n");
    for (size_t i = 0; i < conf->nnsps; i++) {
        const em_conf_nsp_t *nsp = &conf->nsps[i];
        em_str_t             name = { nsp->name, strlen(nsp->name) };
        /* the name clients use (a suffix of the internal one, which carries
         * the endpoint's prefix), with the endpoint's path */
        em_str_t             wire = em_conf_nsp_wire(name.data, name.len);

        evbuffer_add_printf(b, "emitd_namespace_sockets{path=\"");
        em_metrics_label(b, conf->endpoints[nsp->endpoint].path);
        evbuffer_add_printf(b, "\",namespace=\"");
        em_metrics_label(b, wire.data);
        evbuffer_add_printf(b, "\"} %u\n", em_room_size(&em_cluster, name, (em_str_t) { "", 0 }));
    }
    evbuffer_add_printf(b, "# HELP emitd_worker_up Whether the worker process runs (1) or is "
                        "being restarted (0).\n# TYPE emitd_worker_up gauge\n");
    for (unsigned i = 0; i < em_loop.nworkers; i++) {
        if (em_state_slot_used(&em_cluster, i) != EM_SLOT_FREE) {
            evbuffer_add_printf(b, "emitd_worker_up{worker=\"%u\"} %d\n", i + 1,
                                em_state_slot_pid(&em_cluster, i) != 0);
        }
    }
    if (em_bus_active()) {
        em_metrics_one(b, "emitd_broker_up", "gauge",
                       "Whether the broker process runs (1) or is being restarted (0).",
                       em_state_broker_pid(&em_cluster) != 0);
    }
    em_metrics_workers(b);
    em_metrics_rings(b);
    em_metrics_store(b);
    em_http_conn_respond_body_type(h, 200, "text/plain; version=0.0.4; charset=utf-8", b);
    evbuffer_free(b);
}

int
em_health_init(void)
{
    const em_conf_t *conf = em_loop.conf;

    /* On the public listeners where configured; on the admin listener,
     * always, at /health and /metrics. */
    if ((conf->metrics_path != NULL
         && em_http_conn_route(conf->metrics_path, EM_HTTP_ROUTE_PUBLIC, em_metrics_serve) != EM_OK)
        || (conf->health_path != NULL
            && em_http_conn_route(conf->health_path, EM_HTTP_ROUTE_PUBLIC, em_health_serve) != EM_OK)) {
        return EM_ERROR;
    }
    if (conf->admin != NULL
        && (em_http_conn_route("/health", EM_HTTP_ROUTE_ADMIN, em_health_serve) != EM_OK
            || em_http_conn_route("/metrics", EM_HTTP_ROUTE_ADMIN, em_metrics_serve) != EM_OK)) {
        return EM_ERROR;
    }
    return EM_OK;
}
